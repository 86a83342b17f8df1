/*
 * fuzz_dvvsync.c - libFuzzer target for dvv_sync, the merge every replica,
 * read and repair runs on records from other nodes.
 *
 * Input: a 2-byte big-endian length L, then record a (L bytes, clamped to
 * what is there), then record b (the rest). Both are decoded with the
 * record decoder (dvv_decode, as fuzz_dvv does); inputs that do not decode
 * are skipped. For every pair that does, sync must be
 *   commutative   sync(a, b) == sync(b, a)
 *   idempotent    sync(a, a) == a, sync(sync(a, b), b) == sync(a, b)
 *                 (and the same with a)
 *   lossless      every value of a whose dot b does not cover, or that b
 *                 also holds, is in sync(a, b) (and the same for b); the
 *                 merge holds no dot neither side holds, and each value it
 *                 holds is one of the two copies of that dot
 *   encodable     sync(a, b) encodes (or is refused as RK_ETOO_LARGE past
 *                 the record limits) and decodes back to itself
 * Equality is dvv_equal: same vector, same dots, same value under each
 * dot. Entries are sorted and values ordered by dot, so that is equality
 * as sets of dots and values. A violated property traps.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/errors.h"
#include "quorum/dvv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond))                                                           \
            __builtin_trap();                                                  \
    } while (0)

/* The entry of actor in d, or NULL. */
static const struct dvv_entry *entry_of(const struct dvv *d, uint64_t actor)
{
    for (uint32_t i = 0; i < d->n; i++)
        if (d->e[i].actor == actor)
            return &d->e[i];
    return NULL;
}

/* The value d holds under dot (actor, dot), or NULL. */
static const struct dvv_val *val_at(const struct dvv *d, uint64_t actor,
                                    uint64_t dot)
{
    const struct dvv_entry *e = entry_of(d, actor);
    if (e == NULL || dot > e->counter || e->counter - dot >= e->nvals)
        return NULL;
    return &e->vals[e->counter - dot];
}

static bool covers_dot(const struct dvv *d, uint64_t actor, uint64_t dot)
{
    const struct dvv_entry *e = entry_of(d, actor);
    return e != NULL && e->counter >= dot;
}

static bool same_val(const struct dvv_val *x, const struct dvv_val *y)
{
    return x->len == y->len && x->flags == y->flags && x->ts == y->ts &&
           (x->len == 0 || memcmp(x->data, y->data, x->len) == 0);
}

/* Every value of x that y does not supersede survives in s. */
static void check_keeps(const struct dvv *x, const struct dvv *y,
                        const struct dvv *s)
{
    for (uint32_t i = 0; i < x->n; i++) {
        const struct dvv_entry *e = &x->e[i];
        for (uint32_t k = 0; k < e->nvals; k++) {
            uint64_t dot = e->counter - k;
            if (covers_dot(y, e->actor, dot) &&
                val_at(y, e->actor, dot) == NULL)
                continue; /* superseded on y's side */
            CHECK(val_at(s, e->actor, dot) != NULL);
        }
    }
}

/* Everything s holds comes from x or y; its vector is their maximum. */
static void check_origin(const struct dvv *x, const struct dvv *y,
                         const struct dvv *s)
{
    for (uint32_t i = 0; i < s->n; i++) {
        const struct dvv_entry *e = &s->e[i];
        const struct dvv_entry *xe = entry_of(x, e->actor);
        const struct dvv_entry *ye = entry_of(y, e->actor);
        uint64_t xc = xe != NULL ? xe->counter : 0;
        uint64_t yc = ye != NULL ? ye->counter : 0;
        CHECK(e->counter == (xc > yc ? xc : yc));
        for (uint32_t k = 0; k < e->nvals; k++) {
            uint64_t dot = e->counter - k;
            const struct dvv_val *xv = val_at(x, e->actor, dot);
            const struct dvv_val *yv = val_at(y, e->actor, dot);
            CHECK((xv != NULL && same_val(xv, &e->vals[k])) ||
                  (yv != NULL && same_val(yv, &e->vals[k])));
        }
    }
    for (uint32_t i = 0; i < x->n; i++)
        CHECK(entry_of(s, x->e[i].actor) != NULL);
    for (uint32_t i = 0; i < y->n; i++)
        CHECK(entry_of(s, y->e[i].actor) != NULL);
}

static void check_pair(const struct dvv *a, const struct dvv *b,
                       struct dvv_arena *ar)
{
    struct dvv ab, ba, aa, abb, aba;
    CHECK(dvv_sync(a, b, ar, &ab) == 0);
    CHECK(dvv_sync(b, a, ar, &ba) == 0);
    CHECK(dvv_equal(&ab, &ba));

    CHECK(dvv_sync(a, a, ar, &aa) == 0);
    CHECK(dvv_equal(&aa, a));
    CHECK(dvv_sync(&ab, b, ar, &abb) == 0);
    CHECK(dvv_equal(&abb, &ab));
    CHECK(dvv_sync(&ab, a, ar, &aba) == 0);
    CHECK(dvv_equal(&aba, &ab));

    check_keeps(a, b, &ab);
    check_keeps(b, a, &ab);
    check_origin(a, b, &ab);
    CHECK(dvv_covers(&ab, a) && dvv_covers(&ab, b));

    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = dvv_encode(&ab, &buf, &len);
    CHECK(rc == 0 || rc == RK_ETOO_LARGE);
    if (rc == 0) {
        struct dvv back;
        CHECK(dvv_decode(buf, len, ar, &back) == 0);
        CHECK(dvv_equal(&back, &ab));
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dvv_arena ar;
    struct dvv a, b;

    if (size < 2)
        return 0;
    size_t la = (size_t)data[0] << 8 | data[1];
    data += 2;
    size -= 2;
    if (la > size)
        la = size;
    dvv_arena_init(&ar);
    int ra = dvv_decode(data, la, &ar, &a);
    int rb = dvv_decode(data + la, size - la, &ar, &b);
    CHECK(ra == 0 || ra == RK_ECORRUPT);
    CHECK(rb == 0 || rb == RK_ECORRUPT);
    if (ra == 0 && rb == 0)
        check_pair(&a, &b, &ar);
    dvv_arena_free(&ar);
    return 0;
}
