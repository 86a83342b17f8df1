/*
 * dvv.c - dotted version vector sets (DVVSet) and their msgpack encodings.
 *
 * Design. An entry (actor, counter, vals[0..nvals)) holds the values whose
 * dots are (actor, counter - j) for j = 0..nvals-1, so the values an entry
 * holds are exactly the dots in the half-open range (low, counter] with
 * low = counter - nvals. Every operation is phrased on that range:
 *
 *   sync: a dot (i, k) survives iff some side holds it and no side has
 *         counter >= k without holding it. Per actor that is the range
 *         (max(low_x, low_y), max(counter_x, counter_y)], so sync is the
 *         componentwise max of (counter, low): commutative, associative and
 *         idempotent by construction.
 *   update: every local value whose dot the context covers is dropped, the
 *         vector becomes max(local, ctx), and the writing actor gets a new
 *         dot max(local[actor], ctx[actor]) + 1 holding the new value.
 *
 * A dot names one write, so both sides of a sync normally hold identical
 * bytes for a shared dot. The one exception is dvv_lww(), which (like
 * DVVSet's lww) moves the winner to the newest dot of its actor; that dot may
 * still hold the loser on another replica. Sync therefore keeps, per shared
 * dot, the copy with the greater (ts, flags, len, bytes): the lww winner
 * always has the strictly greater ts, and the choice is symmetric, so sync
 * stays commutative in the bytes too.
 *
 * Invariants of every struct dvv this file produces: entries sorted by
 * actor, actors distinct, 1 <= counter <= DVV_MAX_COUNTER, nvals <= counter.
 * Results never share vals arrays with their inputs (only value bytes are
 * borrowed), so mutating a result never changes an input.
 *
 * Encodings (msgpack), see docs/dvv.md:
 *   record  = [1, [[actor, counter, [[bin data, flags, ts], ...]], ...]]
 *   context = [[actor, counter], ...]          (empty input = empty vector)
 * Encoding is a two-pass hand-written writer (exact size, one malloc).
 * Decoding is a hand-written bounds-checked reader: every count and length
 * is checked against the bytes that remain before anything is allocated,
 * integers must be non-negative, trailing bytes are rejected. Decode never
 * asserts; anything encode produces decodes (encode enforces the limits).
 */
#include "quorum/dvv.h"

#include <assert.h>
#include <errno.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "proto/errors.h"

#define DVV_FORMAT_VERSION 1

/* ---- arena --------------------------------------------------------------- */

#define ARENA_MIN_CHUNK 1024
#define ARENA_MAX_GROW  (1u << 20)

struct dvv_arena_chunk {
    struct dvv_arena_chunk *next;
    size_t used;
    size_t cap;
    max_align_t mem[];
};

void dvv_arena_init(struct dvv_arena *a)
{
    a->head = NULL;
}

void dvv_arena_free(struct dvv_arena *a)
{
    struct dvv_arena_chunk *c = a->head;
    while (c != NULL) {
        struct dvv_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
}

void *dvv_arena_alloc(struct dvv_arena *a, size_t n)
{
    const size_t align = alignof(max_align_t);
    size_t need = n == 0 ? align : (n + align - 1) / align * align;
    if (need < n)
        return NULL;
    struct dvv_arena_chunk *c = a->head;
    if (c == NULL || c->cap - c->used < need) {
        size_t cap = ARENA_MIN_CHUNK;
        if (c != NULL)
            cap = c->cap >= ARENA_MAX_GROW ? ARENA_MAX_GROW : c->cap * 2;
        if (cap < need)
            cap = need;
        if (cap > SIZE_MAX - sizeof(*c))
            return NULL;
        c = malloc(sizeof(*c) + cap);
        if (c == NULL)
            return NULL;
        c->next = a->head;
        c->used = 0;
        c->cap = cap;
        a->head = c;
    }
    void *p = (char *)c->mem + c->used;
    c->used += need;
    return p;
}

/* Allocates count elements of size sz, NULL on overflow or no memory. A zero
 * count yields NULL without failing: callers check count first. */
static void *arena_array(struct dvv_arena *a, size_t count, size_t sz)
{
    if (count == 0)
        return NULL;
    if (count > SIZE_MAX / sz)
        return NULL;
    return dvv_arena_alloc(a, count * sz);
}

/* ---- helpers ------------------------------------------------------------- */

/* The dots an entry holds are (entry_low, counter]. */
static uint64_t entry_low(const struct dvv_entry *e)
{
    return e->nvals <= e->counter ? e->counter - e->nvals : 0;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

/* A total order on value copies, used only to choose between two copies of
 * the same dot (see the file comment). */
static int val_cmp(const struct dvv_val *a, const struct dvv_val *b)
{
    if (a->ts != b->ts)
        return a->ts < b->ts ? -1 : 1;
    if (a->flags != b->flags)
        return a->flags < b->flags ? -1 : 1;
    if (a->len != b->len)
        return a->len < b->len ? -1 : 1;
    if (a->len == 0)
        return 0;
    return memcmp(a->data, b->data, a->len);
}

/* ---- msgpack writer ------------------------------------------------------ */

static size_t uint_size(uint64_t v)
{
    if (v < 0x80)
        return 1;
    if (v <= UINT8_MAX)
        return 2;
    if (v <= UINT16_MAX)
        return 3;
    if (v <= UINT32_MAX)
        return 5;
    return 9;
}

static size_t arr_size(uint32_t n)
{
    if (n < 16)
        return 1;
    if (n <= UINT16_MAX)
        return 3;
    return 5;
}

static size_t bin_size(uint32_t n)
{
    if (n <= UINT8_MAX)
        return 2 + (size_t)n;
    if (n <= UINT16_MAX)
        return 3 + (size_t)n;
    return 5 + (size_t)n;
}

static uint8_t *put_be(uint8_t *w, uint64_t v, unsigned bytes)
{
    for (unsigned i = 0; i < bytes; i++)
        w[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
    return w + bytes;
}

static uint8_t *put_uint(uint8_t *w, uint64_t v)
{
    if (v < 0x80) {
        *w++ = (uint8_t)v;
        return w;
    }
    if (v <= UINT8_MAX) {
        *w++ = 0xcc;
        return put_be(w, v, 1);
    }
    if (v <= UINT16_MAX) {
        *w++ = 0xcd;
        return put_be(w, v, 2);
    }
    if (v <= UINT32_MAX) {
        *w++ = 0xce;
        return put_be(w, v, 4);
    }
    *w++ = 0xcf;
    return put_be(w, v, 8);
}

static uint8_t *put_arr(uint8_t *w, uint32_t n)
{
    if (n < 16) {
        *w++ = (uint8_t)(0x90 | n);
        return w;
    }
    if (n <= UINT16_MAX) {
        *w++ = 0xdc;
        return put_be(w, n, 2);
    }
    *w++ = 0xdd;
    return put_be(w, n, 4);
}

static uint8_t *put_bin(uint8_t *w, const uint8_t *p, uint32_t n)
{
    if (n <= UINT8_MAX) {
        *w++ = 0xc4;
        w = put_be(w, n, 1);
    } else if (n <= UINT16_MAX) {
        *w++ = 0xc5;
        w = put_be(w, n, 2);
    } else {
        *w++ = 0xc6;
        w = put_be(w, n, 4);
    }
    if (n > 0)
        memcpy(w, p, n);
    return w + n;
}

/* ---- msgpack reader ------------------------------------------------------ */

/* Each rd_* reads one item and returns 0, or -EBADMSG when the bytes are
 * short or not the expected type; the callers turn that into the record's
 * error (RK_ECORRUPT, RK_EBAD_CONTEXT). */
struct rd {
    const uint8_t *p;
    size_t n; /* bytes remaining */
};

static int rd_be(struct rd *r, unsigned bytes, uint64_t *out)
{
    if (r->n < bytes)
        return -EBADMSG;
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; i++)
        v = v << 8 | r->p[i];
    r->p += bytes;
    r->n -= bytes;
    *out = v;
    return 0;
}

static int rd_byte(struct rd *r, uint8_t *out)
{
    if (r->n < 1)
        return -EBADMSG;
    *out = r->p[0];
    r->p++;
    r->n--;
    return 0;
}

/* A non-negative integer in any msgpack int encoding. */
static int rd_uint(struct rd *r, uint64_t *out)
{
    uint8_t t;
    uint64_t v;
    if (rd_byte(r, &t) != 0)
        return -EBADMSG;
    if (t < 0x80) {
        *out = t;
        return 0;
    }
    switch (t) {
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf:
        return rd_be(r, 1u << (t - 0xcc), out);
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: {
        unsigned bytes = 1u << (t - 0xd0);
        if (rd_be(r, bytes, &v) != 0)
            return -EBADMSG;
        if (v >> (8 * bytes - 1))
            return -EBADMSG; /* negative */
        *out = v;
        return 0;
    }
    default:
        return -EBADMSG;
    }
}

/* An array header. Every element takes at least min_elem bytes, so a count
 * that cannot fit in what remains is rejected before anyone allocates. */
static int rd_arr(struct rd *r, size_t min_elem, uint32_t *out)
{
    uint8_t t;
    uint64_t v;
    if (rd_byte(r, &t) != 0)
        return -EBADMSG;
    if ((t & 0xf0) == 0x90) {
        v = t & 0x0f;
    } else if (t == 0xdc) {
        if (rd_be(r, 2, &v) != 0)
            return -EBADMSG;
    } else if (t == 0xdd) {
        if (rd_be(r, 4, &v) != 0)
            return -EBADMSG;
    } else {
        return -EBADMSG;
    }
    if (v > r->n / min_elem)
        return -EBADMSG;
    *out = (uint32_t)v;
    return 0;
}

static int rd_bin(struct rd *r, const uint8_t **p, uint32_t *len)
{
    uint8_t t;
    uint64_t v;
    if (rd_byte(r, &t) != 0)
        return -EBADMSG;
    if (t < 0xc4 || t > 0xc6)
        return -EBADMSG;
    if (rd_be(r, 1u << (t - 0xc4), &v) != 0)
        return -EBADMSG;
    if (v > r->n)
        return -EBADMSG;
    *p = r->p;
    *len = (uint32_t)v;
    r->p += v;
    r->n -= v;
    return 0;
}

/* ---- records ------------------------------------------------------------- */

/* Checks the invariants encode promises to decode. */
static int check_encoded(const struct dvv *d)
{
    if (d->n > DVV_MAX_ACTORS)
        return RK_ETOO_LARGE;
    uint32_t total = 0;
    for (uint32_t i = 0; i < d->n; i++) {
        const struct dvv_entry *e = &d->e[i];
        if (i > 0 && e->actor <= d->e[i - 1].actor)
            return RK_EINTERNAL;
        if (e->counter > DVV_MAX_COUNTER)
            return RK_ETOO_LARGE;
        if (e->counter == 0 || e->nvals > e->counter)
            return RK_EINTERNAL;
        if (e->nvals > DVV_MAX_VALUES - total)
            return RK_ETOO_LARGE;
        total += e->nvals;
    }
    return 0;
}

int dvv_encode(const struct dvv *d, uint8_t **out, size_t *out_len)
{
    int rc = check_encoded(d);
    if (rc != 0)
        return rc;

    size_t size = arr_size(2) + uint_size(DVV_FORMAT_VERSION) + arr_size(d->n);
    for (uint32_t i = 0; i < d->n; i++) {
        const struct dvv_entry *e = &d->e[i];
        size += arr_size(3) + uint_size(e->actor) + uint_size(e->counter) +
                arr_size(e->nvals);
        for (uint32_t j = 0; j < e->nvals; j++) {
            const struct dvv_val *v = &e->vals[j];
            size += arr_size(3) + bin_size(v->len) + uint_size(v->flags) +
                    uint_size(v->ts);
        }
    }

    uint8_t *buf = malloc(size);
    if (buf == NULL)
        return -ENOMEM;
    uint8_t *w = buf;
    w = put_arr(w, 2);
    w = put_uint(w, DVV_FORMAT_VERSION);
    w = put_arr(w, d->n);
    for (uint32_t i = 0; i < d->n; i++) {
        const struct dvv_entry *e = &d->e[i];
        w = put_arr(w, 3);
        w = put_uint(w, e->actor);
        w = put_uint(w, e->counter);
        w = put_arr(w, e->nvals);
        for (uint32_t j = 0; j < e->nvals; j++) {
            const struct dvv_val *v = &e->vals[j];
            w = put_arr(w, 3);
            w = put_bin(w, v->data, v->len);
            w = put_uint(w, v->flags);
            w = put_uint(w, v->ts);
        }
    }
    assert((size_t)(w - buf) == size);
    *out = buf;
    *out_len = size;
    return 0;
}

/* Smallest encodings: an entry [actor, counter, []] and a value
 * [bin8 "", flags, ts]. */
#define MIN_ENTRY_BYTES 4
#define MIN_VAL_BYTES   5
#define MIN_VV_BYTES    3

static int decode_val(struct rd *r, struct dvv_val *v)
{
    uint32_t n;
    uint64_t flags;
    if (rd_arr(r, 1, &n) != 0 || n != 3)
        return -EBADMSG;
    if (rd_bin(r, &v->data, &v->len) != 0)
        return -EBADMSG;
    if (rd_uint(r, &flags) != 0 || flags > UINT32_MAX)
        return -EBADMSG;
    v->flags = (uint32_t)flags;
    return rd_uint(r, &v->ts);
}

int dvv_decode(const uint8_t *p, size_t n, struct dvv_arena *a, struct dvv *out)
{
    struct rd r = {p, n};
    uint32_t len, nent;
    uint64_t version;

    if (rd_arr(&r, 1, &len) != 0 || len != 2)
        return RK_ECORRUPT;
    if (rd_uint(&r, &version) != 0 || version != DVV_FORMAT_VERSION)
        return RK_ECORRUPT;
    if (rd_arr(&r, MIN_ENTRY_BYTES, &nent) != 0 || nent > DVV_MAX_ACTORS)
        return RK_ECORRUPT;

    struct dvv_entry *es = NULL;
    if (nent > 0) {
        es = arena_array(a, nent, sizeof(*es));
        if (es == NULL)
            return -ENOMEM;
    }
    uint32_t total = 0;
    for (uint32_t i = 0; i < nent; i++) {
        struct dvv_entry *e = &es[i];
        uint32_t nv;
        if (rd_arr(&r, 1, &len) != 0 || len != 3)
            return RK_ECORRUPT;
        if (rd_uint(&r, &e->actor) != 0 || rd_uint(&r, &e->counter) != 0)
            return RK_ECORRUPT;
        if (i > 0 && e->actor <= es[i - 1].actor)
            return RK_ECORRUPT;
        if (e->counter == 0 || e->counter > DVV_MAX_COUNTER)
            return RK_ECORRUPT;
        if (rd_arr(&r, MIN_VAL_BYTES, &nv) != 0 || nv > e->counter ||
            nv > DVV_MAX_VALUES - total)
            return RK_ECORRUPT;
        total += nv;
        e->nvals = nv;
        e->vals = NULL;
        if (nv > 0) {
            e->vals = arena_array(a, nv, sizeof(*e->vals));
            if (e->vals == NULL)
                return -ENOMEM;
        }
        for (uint32_t j = 0; j < nv; j++)
            if (decode_val(&r, &e->vals[j]) != 0)
                return RK_ECORRUPT;
    }
    if (r.n != 0)
        return RK_ECORRUPT;
    out->n = nent;
    out->e = es;
    return 0;
}

/* ---- contexts ------------------------------------------------------------ */

int dvv_join(const struct dvv *d, struct dvv_arena *a, struct dvv_vv *out)
{
    uint32_t n = 0;
    struct dvv_vv_entry *ve = NULL;
    if (d->n > 0) {
        ve = arena_array(a, d->n, sizeof(*ve));
        if (ve == NULL)
            return -ENOMEM;
    }
    for (uint32_t i = 0; i < d->n; i++) {
        if (d->e[i].counter == 0)
            continue;
        ve[n].actor = d->e[i].actor;
        ve[n].counter = d->e[i].counter;
        n++;
    }
    out->n = n;
    out->e = ve;
    return 0;
}

int dvv_vv_encode(const struct dvv_vv *vv, uint8_t **out, size_t *out_len)
{
    if (vv->n > DVV_MAX_ACTORS)
        return RK_ETOO_LARGE;
    size_t size = arr_size(vv->n);
    for (uint32_t i = 0; i < vv->n; i++) {
        const struct dvv_vv_entry *e = &vv->e[i];
        if (i > 0 && e->actor <= vv->e[i - 1].actor)
            return RK_EINTERNAL;
        if (e->counter == 0)
            return RK_EINTERNAL;
        if (e->counter > DVV_MAX_COUNTER)
            return RK_ETOO_LARGE;
        size += arr_size(2) + uint_size(e->actor) + uint_size(e->counter);
    }
    uint8_t *buf = malloc(size);
    if (buf == NULL)
        return -ENOMEM;
    uint8_t *w = put_arr(buf, vv->n);
    for (uint32_t i = 0; i < vv->n; i++) {
        w = put_arr(w, 2);
        w = put_uint(w, vv->e[i].actor);
        w = put_uint(w, vv->e[i].counter);
    }
    assert((size_t)(w - buf) == size);
    *out = buf;
    *out_len = size;
    return 0;
}

int dvv_vv_decode(const uint8_t *p, size_t n, struct dvv_arena *a,
                  struct dvv_vv *out)
{
    struct rd r = {p, n};
    uint32_t cnt, len;

    out->n = 0;
    out->e = NULL;
    if (n == 0)
        return 0;
    if (rd_arr(&r, MIN_VV_BYTES, &cnt) != 0 || cnt > DVV_MAX_ACTORS)
        return RK_EBAD_CONTEXT;
    struct dvv_vv_entry *ve = NULL;
    if (cnt > 0) {
        ve = arena_array(a, cnt, sizeof(*ve));
        if (ve == NULL)
            return -ENOMEM;
    }
    for (uint32_t i = 0; i < cnt; i++) {
        if (rd_arr(&r, 1, &len) != 0 || len != 2)
            return RK_EBAD_CONTEXT;
        if (rd_uint(&r, &ve[i].actor) != 0 || rd_uint(&r, &ve[i].counter) != 0)
            return RK_EBAD_CONTEXT;
        if (i > 0 && ve[i].actor <= ve[i - 1].actor)
            return RK_EBAD_CONTEXT;
        if (ve[i].counter == 0 || ve[i].counter > DVV_MAX_COUNTER)
            return RK_EBAD_CONTEXT;
    }
    if (r.n != 0)
        return RK_EBAD_CONTEXT;
    out->n = cnt;
    out->e = ve;
    return 0;
}

/* ---- operations ---------------------------------------------------------- */

/* Copies src[0..n) into a fresh arena array (NULL when n == 0). */
static int copy_vals(struct dvv_arena *a, const struct dvv_val *src, uint32_t n,
                     uint32_t extra, struct dvv_val **out)
{
    *out = NULL;
    if ((uint64_t)n + extra == 0)
        return 0;
    struct dvv_val *v = arena_array(a, (size_t)n + extra, sizeof(*v));
    if (v == NULL)
        return -ENOMEM;
    if (n > 0)
        memcpy(v + extra, src, (size_t)n * sizeof(*v));
    *out = v;
    return 0;
}

int dvv_update(const struct dvv *local, const struct dvv_vv *ctx,
               struct dvv_val v, uint64_t actor, struct dvv_arena *a,
               struct dvv *out)
{
    size_t cap = (size_t)local->n + ctx->n + 1;
    struct dvv_entry *es = arena_array(a, cap, sizeof(*es));
    if (es == NULL)
        return -ENOMEM;

    uint32_t i = 0, j = 0, n = 0;
    bool wrote = false;
    while (i < local->n || j < ctx->n || !wrote) {
        /* The next actor in order among local, ctx and the writer. */
        uint64_t act = UINT64_MAX;
        bool have = false;
        if (i < local->n) {
            act = local->e[i].actor;
            have = true;
        }
        if (j < ctx->n && (!have || ctx->e[j].actor < act)) {
            act = ctx->e[j].actor;
            have = true;
        }
        if (!wrote && (!have || actor <= act))
            act = actor;

        const struct dvv_entry *le = NULL;
        uint64_t c = 0;
        if (i < local->n && local->e[i].actor == act)
            le = &local->e[i++];
        if (j < ctx->n && ctx->e[j].actor == act)
            c = ctx->e[j++].counter;

        uint64_t nl = le != NULL ? le->counter : 0;
        uint32_t keep = 0;
        if (le != NULL && nl > c)
            keep = (nl - c) < le->nvals ? (uint32_t)(nl - c) : le->nvals;

        struct dvv_entry *e = &es[n];
        e->actor = act;
        e->counter = max_u64(nl, c);
        if (act == actor) {
            wrote = true;
            if (e->counter >= DVV_MAX_COUNTER)
                return RK_EBAD_CONTEXT;
            e->counter++;
            if (copy_vals(a, le != NULL ? le->vals : NULL, keep, 1, &e->vals) !=
                0)
                return -ENOMEM;
            e->vals[0] = v;
            e->nvals = keep + 1;
        } else {
            if (e->counter == 0)
                continue; /* a zero counter carries no information */
            if (copy_vals(a, le != NULL ? le->vals : NULL, keep, 0, &e->vals) !=
                0)
                return -ENOMEM;
            e->nvals = keep;
        }
        n++;
    }
    out->n = n;
    out->e = es;
    return 0;
}

/* Merges two entries of the same actor (see the file comment). */
static int sync_entry(const struct dvv_entry *x, const struct dvv_entry *y,
                      struct dvv_arena *a, struct dvv_entry *out)
{
    if (x->counter < y->counter) {
        const struct dvv_entry *t = x;
        x = y;
        y = t;
    }
    uint64_t ylow = entry_low(y);
    uint64_t low = max_u64(entry_low(x), ylow);
    uint32_t cnt = (uint32_t)(x->counter - low); /* <= x->nvals */

    out->actor = x->actor;
    out->counter = x->counter;
    out->nvals = cnt;
    if (copy_vals(a, x->vals, cnt, 0, &out->vals) != 0)
        return -ENOMEM;
    for (uint32_t k = 0; k < cnt; k++) {
        uint64_t dot = x->counter - k;
        if (dot > y->counter || dot <= ylow)
            continue;
        const struct dvv_val *yv = &y->vals[y->counter - dot];
        if (val_cmp(yv, &out->vals[k]) > 0)
            out->vals[k] = *yv;
    }
    return 0;
}

int dvv_sync(const struct dvv *x, const struct dvv *y, struct dvv_arena *a,
             struct dvv *out)
{
    out->n = 0;
    out->e = NULL;
    size_t cap = (size_t)x->n + y->n;
    if (cap == 0)
        return 0;
    struct dvv_entry *es = arena_array(a, cap, sizeof(*es));
    if (es == NULL)
        return -ENOMEM;

    uint32_t i = 0, j = 0, n = 0;
    while (i < x->n || j < y->n) {
        const struct dvv_entry *xe = i < x->n ? &x->e[i] : NULL;
        const struct dvv_entry *ye = j < y->n ? &y->e[j] : NULL;
        int rc;
        if (xe != NULL && ye != NULL && xe->actor == ye->actor) {
            rc = sync_entry(xe, ye, a, &es[n]);
            i++;
            j++;
        } else {
            const struct dvv_entry *only;
            if (ye == NULL || (xe != NULL && xe->actor < ye->actor)) {
                only = xe;
                i++;
            } else {
                only = ye;
                j++;
            }
            es[n] = *only;
            rc = copy_vals(a, only->vals, only->nvals, 0, &es[n].vals);
        }
        if (rc != 0)
            return rc;
        n++;
    }
    out->n = n;
    out->e = es;
    return 0;
}

uint32_t dvv_count(const struct dvv *d)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < d->n; i++)
        n += d->e[i].nvals;
    return n;
}

uint32_t dvv_live(const struct dvv *d)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < d->n; i++)
        for (uint32_t j = 0; j < d->e[i].nvals; j++)
            if (!(d->e[i].vals[j].flags & DVV_TOMBSTONE))
                n++;
    return n;
}

bool dvv_covers(const struct dvv *a, const struct dvv *b)
{
    uint32_t i = 0;
    for (uint32_t j = 0; j < b->n; j++) {
        const struct dvv_entry *be = &b->e[j];
        while (i < a->n && a->e[i].actor < be->actor)
            i++;
        uint64_t ac =
            i < a->n && a->e[i].actor == be->actor ? a->e[i].counter : 0;
        if (ac < be->counter)
            return false;
    }
    return true;
}

bool dvv_equal(const struct dvv *a, const struct dvv *b)
{
    if (a->n != b->n)
        return false;
    for (uint32_t i = 0; i < a->n; i++) {
        const struct dvv_entry *x = &a->e[i], *y = &b->e[i];
        if (x->actor != y->actor || x->counter != y->counter ||
            x->nvals != y->nvals)
            return false;
        /* A dot names one write only while no actor reissues it; a store
         * rolled back by a crash could (docs/design.md, "Safe actors").
         * Comparing the values makes such a copy look different, so merge
         * writes it and read repair sends it instead of both passing it
         * over as "nothing new". */
        for (uint32_t k = 0; k < x->nvals; k++)
            if (val_cmp(&x->vals[k], &y->vals[k]) != 0)
                return false;
    }
    return true;
}

uint32_t dvv_lww(struct dvv *d)
{
    uint32_t total = dvv_count(d);
    if (total == 0)
        return 0;

    /* The winner: greatest (ts, actor, dot). Entries are sorted by actor and
     * values are newest first, so ">=" on ts alone while scanning in order
     * would prefer the greater actor but the *older* dot; compare fully. */
    uint32_t wi = 0, wj = 0;
    bool found = false;
    for (uint32_t i = 0; i < d->n; i++) {
        for (uint32_t j = 0; j < d->e[i].nvals; j++) {
            const struct dvv_val *v = &d->e[i].vals[j];
            if (found) {
                const struct dvv_val *w = &d->e[wi].vals[wj];
                /* Same actor: a smaller j is the greater dot. */
                bool better = v->ts > w->ts || (v->ts == w->ts && i > wi);
                if (!better)
                    continue;
            }
            wi = i;
            wj = j;
            found = true;
        }
    }
    /* The winner takes its actor's newest dot, as in DVVSet: pointing vals
     * at it leaves the input arrays untouched. */
    for (uint32_t i = 0; i < d->n; i++) {
        if (i == wi) {
            d->e[i].vals = &d->e[i].vals[wj];
            d->e[i].nvals = 1;
        } else {
            d->e[i].vals = NULL;
            d->e[i].nvals = 0;
        }
    }
    return total - 1;
}

uint32_t dvv_resolve(struct dvv *d, bool lww)
{
    if (lww)
        return dvv_lww(d);
    if (dvv_count(d) < 2)
        return 0;
    for (uint32_t i = 0; i < d->n; i++)
        for (uint32_t j = 0; j < d->e[i].nvals; j++)
            if (!(d->e[i].vals[j].flags & DVV_LWW))
                return 0;
    return dvv_lww(d);
}
