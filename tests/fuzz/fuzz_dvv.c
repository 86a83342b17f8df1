/*
 * fuzz_dvv.c - libFuzzer target for the record and context decoders.
 *
 * The whole input is decoded both as a record and as a context. A record
 * that decodes must re-encode to bytes that decode to the same versions
 * (dots and value bytes), must be a fixed point of sync with itself, and
 * its join must round-trip as a context. A context that decodes must
 * round-trip, and a write with it must either be refused with a definite
 * error or encode to a record that decodes. Any mismatch aborts.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/errors.h"
#include "quorum/dvv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same_bytes(const struct dvv *a, const struct dvv *b)
{
    if (!dvv_equal(a, b))
        return false;
    for (uint32_t i = 0; i < a->n; i++)
        for (uint32_t j = 0; j < a->e[i].nvals; j++) {
            const struct dvv_val *x = &a->e[i].vals[j];
            const struct dvv_val *y = &b->e[i].vals[j];
            if (x->len != y->len || x->flags != y->flags || x->ts != y->ts)
                return false;
            if (x->len > 0 && memcmp(x->data, y->data, x->len) != 0)
                return false;
        }
    return true;
}

static bool same_vv(const struct dvv_vv *a, const struct dvv_vv *b)
{
    if (a->n != b->n)
        return false;
    for (uint32_t i = 0; i < a->n; i++)
        if (a->e[i].actor != b->e[i].actor ||
            a->e[i].counter != b->e[i].counter)
            return false;
    return true;
}

static void check_record(const struct dvv *d, struct dvv_arena *a)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    struct dvv d2, s;
    if (dvv_encode(d, &buf, &len) != 0)
        abort(); /* everything decode accepts encodes */
    if (dvv_decode(buf, len, a, &d2) != 0 || !same_bytes(d, &d2))
        abort();
    if (dvv_sync(d, d, a, &s) != 0 || !same_bytes(d, &s))
        abort();
    if (dvv_count(d) < dvv_live(d) || !dvv_covers(d, d))
        abort();

    struct dvv_vv vv, vv2;
    uint8_t *cbuf = NULL;
    size_t clen = 0;
    if (dvv_join(d, a, &vv) != 0 || dvv_vv_encode(&vv, &cbuf, &clen) != 0)
        abort();
    if (dvv_vv_decode(cbuf, clen, a, &vv2) != 0 || !same_vv(&vv, &vv2))
        abort();

    struct dvv l = s;
    uint32_t before = dvv_count(&l);
    uint32_t dropped = dvv_lww(&l);
    if (dvv_count(&l) != (before > 0 ? 1 : 0) ||
        dropped + dvv_count(&l) != before)
        abort();
    if (!dvv_covers(&l, d) || !dvv_covers(d, &l))
        abort();
    free(cbuf);
    free(buf);
}

static void check_context(const struct dvv_vv *vv, const struct dvv *local,
                          struct dvv_arena *a)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    struct dvv_vv vv2;
    if (dvv_vv_encode(vv, &buf, &len) != 0)
        abort();
    if (dvv_vv_decode(buf, len, a, &vv2) != 0 || !same_vv(vv, &vv2))
        abort();
    free(buf);

    struct dvv_val v = {(const uint8_t *)"w", 1, 0, 42};
    uint64_t actor = vv->n > 0 ? vv->e[0].actor : 1;
    struct dvv out, back;
    int rc = dvv_update(local, vv, v, actor, a, &out);
    if (rc == RK_EBAD_CONTEXT)
        return;
    if (rc != 0)
        abort();
    rc = dvv_encode(&out, &buf, &len);
    if (rc == RK_ETOO_LARGE)
        return;
    if (rc != 0 || dvv_decode(buf, len, a, &back) != 0 ||
        !same_bytes(&out, &back))
        abort();
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dvv_arena a;
    struct dvv d = {0, NULL};
    struct dvv_vv vv;
    dvv_arena_init(&a);

    int rc = dvv_decode(data, size, &a, &d);
    if (rc == 0)
        check_record(&d, &a);
    else if (rc != RK_ECORRUPT)
        abort();

    rc = dvv_vv_decode(data, size, &a, &vv);
    if (rc == 0)
        check_context(&vv, &d, &a);
    else if (rc != RK_EBAD_CONTEXT)
        abort();

    dvv_arena_free(&a);
    return 0;
}
