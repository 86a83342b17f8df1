/*
 * ring.c - the ring object: key -> partition hashing, building and
 * validating rings, accessors and preference lists. The claim (who owns
 * what) lives in ring_claim.c.
 *
 * Design: a ring is an immutable snapshot, a sorted copy of the member ids
 * plus one owner index per partition. Readers (ring_partition,
 * ring_pref_list, accessors) are pure functions of it and never allocate,
 * so the node may keep the current ring behind one pointer and swap it when
 * membership changes. Builders validate everything they are given; once a
 * ring exists its invariants are ours and guarded by assert only.
 *
 * Invariants of a built ring:
 *   - q is a power of two in 1..RING_Q_MAX, n is in 1..RING_MAX_NODES;
 *   - ids[0..n) are 1..RING_ID_MAX bytes, strictly ascending by strcmp;
 *   - owner[p] < n for every p < q, and owned[i] counts i in owner[].
 */
#include "ring/ring.h"
#include "proto/errors.h"
#include "ring/ring_internal.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

bool ring_q_valid(uint32_t q)
{
    return q >= 1 && q <= RING_Q_MAX && (q & (q - 1)) == 0;
}

uint32_t ring_partition(const void *key, size_t len, uint32_t q)
{
    static const unsigned char empty[1];
    uint32_t bits = 0;
    uint64_t h;

    if (q <= 1)
        return 0;
    while ((q >> (bits + 1)) != 0)
        bits++;
    h = XXH64(key != NULL ? key : empty, len, 0);
    return (uint32_t)(h >> (64 - bits));
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Checks q, n and members, and allocates a ring whose ids are the members
 * sorted. If sorted_from is not NULL, sorted_from[i] is set to the position
 * in members[] of sorted member i. */
static int alloc_ring(struct ring **out, uint32_t q, const char *const *members,
                      uint32_t n, uint32_t *sorted_from)
{
    const char **sorted = NULL;
    struct ring *r = NULL;
    uint32_t i;
    int err;

    if (members == NULL)
        return -EINVAL;
    if (!ring_q_valid(q) || n < 1 || n > RING_MAX_NODES)
        return RK_ECONFIG;
    for (i = 0; i < n; i++) {
        size_t len;

        if (members[i] == NULL)
            return -EINVAL;
        len = strnlen(members[i], RING_ID_MAX + 1);
        if (len == 0 || len > RING_ID_MAX)
            return RK_ECONFIG;
    }

    err = -ENOMEM;
    sorted = malloc(n * sizeof(*sorted));
    r = calloc(1, sizeof(*r));
    if (sorted == NULL || r == NULL)
        goto fail;
    r->q = q;
    r->n = n;
    r->owner = calloc(q, sizeof(*r->owner));
    r->owned = calloc(n, sizeof(*r->owned));
    r->ids = calloc(n, sizeof(*r->ids));
    if (r->owner == NULL || r->owned == NULL || r->ids == NULL)
        goto fail;

    for (i = 0; i < n; i++)
        sorted[i] = members[i];
    qsort(sorted, n, sizeof(*sorted), cmp_id);
    err = RK_ECONFIG;
    for (i = 0; i < n; i++) {
        if (i > 0 && strcmp(sorted[i - 1], sorted[i]) == 0)
            goto fail;
        strcpy(r->ids[i], sorted[i]);
    }
    if (sorted_from != NULL) {
        /* ids are unique now, so each given id has exactly one rank. */
        for (i = 0; i < n; i++) {
            int idx = ring_member_index(r, members[i]);

            assert(idx >= 0);
            sorted_from[idx] = i;
        }
    }
    free(sorted);
    *out = r;
    return 0;

fail:
    free(sorted);
    ring_destroy(r);
    return err;
}

static void count_owned(struct ring *r)
{
    uint32_t p;

    memset(r->owned, 0, r->n * sizeof(*r->owned));
    for (p = 0; p < r->q; p++) {
        assert(r->owner[p] < r->n);
        r->owned[r->owner[p]]++;
    }
}

int ring_build(struct ring **out, uint32_t q, const char *const *members,
               uint32_t n)
{
    struct ring *r;
    int err;

    if (out == NULL)
        return -EINVAL;
    err = alloc_ring(&r, q, members, n, NULL);
    if (err != 0)
        return err;
    ring__deal(r);
    count_owned(r);
    *out = r;
    return 0;
}

int ring_rebuild(struct ring **out, const struct ring *prev,
                 const char *const *members, uint32_t n)
{
    uint16_t map[RING_MAX_NODES];
    struct ring *r;
    uint32_t i, p;
    int err;

    if (out == NULL || prev == NULL)
        return -EINVAL;
    err = alloc_ring(&r, prev->q, members, n, NULL);
    if (err != 0)
        return err;
    for (i = 0; i < prev->n; i++) {
        int idx = ring_member_index(r, prev->ids[i]);

        map[i] = idx < 0 ? RING__ORPHAN : (uint16_t)idx;
    }
    for (p = 0; p < r->q; p++)
        r->owner[p] = map[prev->owner[p]];
    err = ring__claim(r);
    if (err != 0) {
        ring_destroy(r);
        return err;
    }
    count_owned(r);
    *out = r;
    return 0;
}

int ring_build_owned(struct ring **out, uint32_t q, const char *const *members,
                     uint32_t n, const uint32_t *owners)
{
    uint32_t from[RING_MAX_NODES];
    uint32_t to[RING_MAX_NODES];
    struct ring *r;
    uint32_t i, p;
    int err;

    if (out == NULL || owners == NULL)
        return -EINVAL;
    err = alloc_ring(&r, q, members, n, from);
    if (err != 0)
        return err;
    for (i = 0; i < n; i++)
        to[from[i]] = i;
    for (p = 0; p < q; p++) {
        if (owners[p] >= n) {
            ring_destroy(r);
            return RK_ECONFIG;
        }
        r->owner[p] = (uint16_t)to[owners[p]];
    }
    count_owned(r);
    *out = r;
    return 0;
}

struct ring *ring__copy(const struct ring *r)
{
    struct ring *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->q = r->q;
    c->n = r->n;
    c->owner = malloc(r->q * sizeof(*c->owner));
    c->owned = malloc(r->n * sizeof(*c->owned));
    c->ids = malloc(r->n * sizeof(*c->ids));
    if (c->owner == NULL || c->owned == NULL || c->ids == NULL) {
        ring_destroy(c);
        return NULL;
    }
    memcpy(c->owner, r->owner, r->q * sizeof(*c->owner));
    memcpy(c->owned, r->owned, r->n * sizeof(*c->owned));
    memcpy(c->ids, r->ids, r->n * sizeof(*c->ids));
    return c;
}

void ring_destroy(struct ring *r)
{
    if (r == NULL)
        return;
    free(r->owner);
    free(r->owned);
    free(r->ids);
    free(r);
}

uint32_t ring_q(const struct ring *r)
{
    return r->q;
}

uint32_t ring_members(const struct ring *r)
{
    return r->n;
}

const char *ring_member(const struct ring *r, uint32_t idx)
{
    return idx < r->n ? r->ids[idx] : NULL;
}

int ring_member_index(const struct ring *r, const char *id)
{
    uint32_t lo = 0, hi = r->n;

    if (id == NULL)
        return -ENOENT;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = strcmp(r->ids[mid], id);

        if (c == 0)
            return (int)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -ENOENT;
}

uint32_t ring_owner(const struct ring *r, uint32_t partition)
{
    return partition < r->q ? r->owner[partition] : RING_NONE;
}

uint32_t ring_owned(const struct ring *r, uint32_t idx)
{
    return idx < r->n ? r->owned[idx] : 0;
}

static bool chosen(const uint32_t *nodes, uint32_t count, uint32_t m)
{
    uint32_t i;

    for (i = 0; i < count; i++) {
        if (nodes[i] == m)
            return true;
    }
    return false;
}

int ring_pref_list(const struct ring *r, uint32_t partition, uint32_t nval,
                   uint32_t *out_nodes)
{
    uint32_t want, count = 0, i, m;

    if (r == NULL || (out_nodes == NULL && nval > 0) || partition >= r->q)
        return -EINVAL;
    want = nval < r->n ? nval : r->n;
    for (i = 0; i < r->q && count < want; i++) {
        m = r->owner[(partition + i) & (r->q - 1)];
        if (!chosen(out_nodes, count, m))
            out_nodes[count++] = m;
    }
    /* Only when n > Q: members owning nothing complete the list. */
    for (m = 0; m < r->n && count < want; m++) {
        if (r->owned[m] == 0)
            out_nodes[count++] = m;
    }
    assert(count == want);
    return (int)count;
}
