/*
 * ring_state.c - the versioned ownership state and the plan for safe data
 * movement on a membership change. The encoding lives in
 * ring_state_codec.c.
 *
 * Flow of one change (see ring_state.h for the model and its invariants):
 *
 *   epoch 2e        cur = R, nothing pending
 *   change          next = ring_rebuild(R, members'), plan = transfers,
 *                   epoch 2e+1 (writes: pref_cur u pref_next, W in each)
 *   transfer_done   one done bit per call, step + 1 each
 *   last bit        cur = next, plan dropped, epoch 2e+2 (the flip)
 *
 * ring_state_merge() joins two nodes' views of one change (done bits are
 * a grow-only set); a later epoch always wins, so a flip is never undone.
 *
 * Design: the plan is a flat array sorted by (partition, position of the
 * destination in pref_next), so it is a pure function of (cur, next, N,
 * sources chosen) and two nodes that agree on those agree on every byte.
 * Sources are chosen in pref_cur order, skipping removed (dead) members and
 * those the caller names unavailable; a transfer without one is blocked.
 * Nothing here reads a clock or draws a random number.
 */
#include "ring/ring_state.h"
#include "proto/errors.h"
#include "ring/ring_internal.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* pref list of k in r, at most RING_STATE_NVAL_MAX entries. */
static uint32_t pref(const struct ring *r, uint32_t k, uint32_t nval,
                     uint32_t *out)
{
    int n = ring_pref_list(r, k, nval, out);

    assert(n >= 0);
    return (uint32_t)n;
}

static bool has(const uint32_t *list, uint32_t n, uint32_t m)
{
    uint32_t i;

    for (i = 0; i < n; i++) {
        if (list[i] == m)
            return true;
    }
    return false;
}

static bool named(const char *const *ids, uint32_t n, const char *id)
{
    uint32_t i;

    for (i = 0; i < n; i++) {
        if (ids[i] != NULL && strcmp(ids[i], id) == 0)
            return true;
    }
    return false;
}

/* The first member of pc[0..npc) (cur indices) that is neither removed nor
 * named in unavailable, or RING_NONE. */
static uint32_t pick_src(const struct ring_state *s, const uint32_t *pc,
                         uint32_t npc, const char *const *unavailable,
                         uint32_t nunavail)
{
    uint32_t i;

    for (i = 0; i < npc; i++) {
        if (s->gone[pc[i]] == RING__REMOVED)
            continue;
        if (named(unavailable, nunavail, ring_member(s->cur, pc[i])))
            continue;
        return pc[i];
    }
    return RING_NONE;
}

/* to_cur[d] = index in s->cur of member d of s->next, or RING_NONE. */
static void map_next(const struct ring_state *s, uint32_t *to_cur)
{
    uint32_t d;

    for (d = 0; d < ring_members(s->next); d++) {
        int i = ring_member_index(s->cur, ring_member(s->next, d));

        to_cur[d] = i < 0 ? RING_NONE : (uint32_t)i;
    }
}

int ring__plan(struct ring_state *s, const char *const *unavailable,
               uint32_t nunavail)
{
    uint32_t to_cur[RING_MAX_NODES];
    uint32_t pc[RING_STATE_NVAL_MAX], pn[RING_STATE_NVAL_MAX];
    uint32_t q = ring_q(s->cur), k, i, npc, npn, count = 0;
    struct ring__xfer *x;

    map_next(s, to_cur);
    for (k = 0; k < q; k++) {
        npc = pref(s->cur, k, s->nval, pc);
        npn = pref(s->next, k, s->nval, pn);
        for (i = 0; i < npn; i++)
            count += !has(pc, npc, to_cur[pn[i]]);
    }
    x = calloc(count > 0 ? count : 1, sizeof(*x));
    if (x == NULL)
        return -ENOMEM;
    count = 0;
    for (k = 0; k < q; k++) {
        npc = pref(s->cur, k, s->nval, pc);
        npn = pref(s->next, k, s->nval, pn);
        for (i = 0; i < npn; i++) {
            if (has(pc, npc, to_cur[pn[i]]))
                continue;
            x[count].part = k;
            x[count].dest = pn[i];
            x[count].src = pick_src(s, pc, npc, unavailable, nunavail);
            count++;
        }
    }
    s->xfer = x;
    s->nxfer = count;
    s->ndone = 0;
    return 0;
}

bool ring__src_valid(const struct ring_state *s, uint32_t k, uint32_t src)
{
    uint32_t pc[RING_STATE_NVAL_MAX];
    uint32_t npc = pref(s->cur, k, s->nval, pc);

    return has(pc, npc, src) && s->gone[src] != RING__REMOVED;
}

void ring__change_free(struct ring_state *s)
{
    ring_destroy(s->next);
    free(s->gone);
    free(s->xfer);
    s->next = NULL;
    s->gone = NULL;
    s->xfer = NULL;
    s->nxfer = 0;
    s->ndone = 0;
}

int ring_state_create(struct ring_state **out, const struct ring *cur,
                      uint32_t nval)
{
    struct ring_state *s;

    if (out == NULL || cur == NULL)
        return -EINVAL;
    if (nval < 1 || nval > RING_STATE_NVAL_MAX)
        return RK_ECONFIG;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->cur = ring__copy(cur);
    if (s->cur == NULL) {
        free(s);
        return -ENOMEM;
    }
    s->version = 1;
    s->nval = nval;
    *out = s;
    return 0;
}

void ring_state_destroy(struct ring_state *s)
{
    if (s == NULL)
        return;
    ring__change_free(s);
    ring_destroy(s->cur);
    free(s);
}

uint64_t ring_state_version(const struct ring_state *s)
{
    return s->version;
}

uint32_t ring_state_nval(const struct ring_state *s)
{
    return s->nval;
}

const struct ring *ring_state_cur(const struct ring_state *s)
{
    return s->cur;
}

const struct ring *ring_state_next(const struct ring_state *s)
{
    return s->next;
}

bool ring_state_pending(const struct ring_state *s)
{
    return s->next != NULL;
}

static bool gone_is(const struct ring_state *s, const char *id,
                    enum ring__gone what)
{
    int i;

    if (s->next == NULL || id == NULL)
        return false;
    i = ring_member_index(s->cur, id);
    return i >= 0 && s->gone[i] == what;
}

bool ring_state_leaving(const struct ring_state *s, const char *id)
{
    return gone_is(s, id, RING__LEAVING);
}

bool ring_state_removed(const struct ring_state *s, const char *id)
{
    return gone_is(s, id, RING__REMOVED);
}

/* Starts the next epoch: step 0. */
static void next_epoch(struct ring_state *s)
{
    s->version = (RING_STATE_EPOCH(s->version) + 1) << 32;
}

/* -EOVERFLOW when the step of s cannot grow. */
static int step_room(const struct ring_state *s)
{
    return RING_STATE_STEP(s->version) < RING_STATE_STEP_MAX ? 0 : -EOVERFLOW;
}

/* cur = next: the copy is complete (invariant I1). */
static void flip(struct ring_state *s)
{
    assert(s->next != NULL && s->ndone == s->nxfer);
    ring_destroy(s->cur);
    s->cur = s->next;
    s->next = NULL;
    ring__change_free(s);
    next_epoch(s);
}

/* Marks the members of ids[0..n) as what in gone[]. RK_ECONFIG when one is
 * not a member of cur or already marked. */
static int mark_gone(const struct ring_state *s, uint8_t *gone,
                     const char *const *ids, uint32_t n, enum ring__gone what)
{
    uint32_t j;

    for (j = 0; j < n; j++) {
        int i;

        if (ids[j] == NULL)
            return -EINVAL;
        i = ring_member_index(s->cur, ids[j]);
        if (i < 0 || gone[i] != RING__STAYS)
            return RK_ECONFIG;
        gone[i] = (uint8_t)what;
    }
    return 0;
}

/* The member list of the changed ring: cur minus gone, plus join. */
static int next_members(const struct ring_state *s, const uint8_t *gone,
                        const struct ring_change *c, const char ***out,
                        uint32_t *n)
{
    uint32_t ncur = ring_members(s->cur), i, count = 0;
    const char **m;

    m = calloc((size_t)ncur + c->njoin + 1, sizeof(*m));
    if (m == NULL)
        return -ENOMEM;
    for (i = 0; i < ncur; i++) {
        if (gone[i] == RING__STAYS)
            m[count++] = ring_member(s->cur, i);
    }
    for (i = 0; i < c->njoin; i++) {
        if (c->join[i] == NULL) {
            free(m);
            return -EINVAL;
        }
        if (ring_member_index(s->cur, c->join[i]) >= 0) {
            free(m);
            return RK_ECONFIG;
        }
        m[count++] = c->join[i];
    }
    *out = m;
    *n = count;
    return 0;
}

int ring_state_change(struct ring_state *s, const struct ring_change *c)
{
    struct ring_state t;
    const char **members = NULL;
    uint32_t n;
    int err;

    if (s == NULL || c == NULL || (c->njoin > 0 && c->join == NULL) ||
        (c->nleave > 0 && c->leave == NULL) ||
        (c->nremove > 0 && c->remove == NULL) ||
        (c->nunavailable > 0 && c->unavailable == NULL))
        return -EINVAL;
    if (s->next != NULL)
        return -EBUSY;
    if (RING_STATE_EPOCH(s->version) + 2 > RING_STATE_EPOCH_MAX)
        return -EOVERFLOW;
    if (c->njoin + (uint64_t)c->nleave + c->nremove == 0)
        return RK_ECONFIG;
    if (c->njoin > RING_MAX_NODES)
        return RK_ECONFIG;

    t = *s;
    t.gone = calloc(ring_members(s->cur), sizeof(*t.gone));
    if (t.gone == NULL)
        return -ENOMEM;
    err = mark_gone(s, t.gone, c->leave, c->nleave, RING__LEAVING);
    if (err == 0)
        err = mark_gone(s, t.gone, c->remove, c->nremove, RING__REMOVED);
    if (err == 0)
        err = next_members(s, t.gone, c, &members, &n);
    if (err == 0)
        err = ring_rebuild(&t.next, s->cur, members, n);
    free(members);
    if (err == 0)
        err = ring__plan(&t, c->unavailable, c->nunavailable);
    if (err != 0) {
        ring_destroy(t.next);
        free(t.gone);
        return err;
    }
    *s = t;
    next_epoch(s);
    if (s->nxfer == 0)
        flip(s);
    return 0;
}

uint32_t ring_state_transfers(const struct ring_state *s)
{
    return s->nxfer;
}

uint32_t ring_state_transfers_done(const struct ring_state *s)
{
    return s->ndone;
}

uint32_t ring_state_transfers_blocked(const struct ring_state *s)
{
    uint32_t i, count = 0;

    for (i = 0; i < s->nxfer; i++)
        count += !s->xfer[i].done && s->xfer[i].src == RING_NONE;
    return count;
}

int ring_state_transfer(const struct ring_state *s, uint32_t i,
                        struct ring_transfer *out)
{
    const struct ring__xfer *x;

    if (s == NULL || out == NULL || i >= s->nxfer)
        return -EINVAL;
    x = &s->xfer[i];
    out->part = x->part;
    out->dest = ring_member(s->next, x->dest);
    out->src = x->src == RING_NONE ? NULL : ring_member(s->cur, x->src);
    out->done = x->done;
    return 0;
}

int ring_state_transfer_done(struct ring_state *s, uint32_t k, const char *dest)
{
    uint32_t lo = 0, hi, i;
    int d;

    if (s == NULL || dest == NULL || k >= ring_q(s->cur))
        return -EINVAL;
    if (s->next == NULL)
        return -ENOENT;
    d = ring_member_index(s->next, dest);
    if (d < 0)
        return -ENOENT;
    hi = s->nxfer;
    while (lo < hi) { /* first transfer of partition >= k */
        uint32_t mid = lo + (hi - lo) / 2;

        if (s->xfer[mid].part < k)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (i = lo; i < s->nxfer && s->xfer[i].part == k; i++) {
        if (s->xfer[i].dest != (uint32_t)d)
            continue;
        if (s->xfer[i].done)
            return 0;
        if (step_room(s) != 0)
            return -EOVERFLOW;
        s->xfer[i].done = true;
        s->ndone++;
        s->version++;
        if (s->ndone == s->nxfer)
            flip(s);
        return 0;
    }
    return -ENOENT;
}

int ring_state_abort(struct ring_state *s)
{
    if (s == NULL)
        return -EINVAL;
    if (s->next == NULL)
        return -ENOENT;
    if (RING_STATE_EPOCH(s->version) + 1 > RING_STATE_EPOCH_MAX)
        return -EOVERFLOW;
    ring__change_free(s);
    next_epoch(s);
    return 0;
}

int ring_state_bump(struct ring_state *s)
{
    if (s == NULL)
        return -EINVAL;
    int rc = step_room(s);
    if (rc != 0)
        return rc;
    s->version++;
    return 0;
}

int ring_state_replan(struct ring_state *s, const char *const *unavailable,
                      uint32_t n)
{
    uint32_t pc[RING_STATE_NVAL_MAX];
    uint32_t i, npc, src;
    bool changed = false;

    if (s == NULL || (n > 0 && unavailable == NULL))
        return -EINVAL;
    if (s->next == NULL)
        return -ENOENT;
    if (step_room(s) != 0)
        return -EOVERFLOW;
    for (i = 0; i < s->nxfer; i++) {
        struct ring__xfer *x = &s->xfer[i];

        if (x->done)
            continue;
        npc = pref(s->cur, x->part, s->nval, pc);
        src = pick_src(s, pc, npc, unavailable, n);
        changed |= src != x->src;
        x->src = src;
    }
    if (changed)
        s->version++;
    return (int)ring_state_transfers_blocked(s);
}

int ring_state_write_set(const struct ring_state *s, uint32_t k,
                         struct ring_state_target *out, uint32_t cap)
{
    uint32_t to_cur[RING_MAX_NODES];
    uint32_t pc[RING_STATE_NVAL_MAX], pn[RING_STATE_NVAL_MAX];
    uint32_t npc, npn = 0, i, count = 0;

    if (s == NULL || out == NULL || k >= ring_q(s->cur) || cap < 2 * s->nval)
        return -EINVAL;
    npc = pref(s->cur, k, s->nval, pc);
    if (s->next != NULL) {
        npn = pref(s->next, k, s->nval, pn);
        map_next(s, to_cur);
        for (i = 0; i < npn; i++)
            pn[i] = to_cur[pn[i]] == RING_NONE ? RING_NONE - 1 - pn[i]
                                               : to_cur[pn[i]];
    }
    /* pn now holds cur indices, or RING_NONE - 1 - d for a member d of next
     * that is not in cur (a joiner): both sets in one index space. */
    for (i = 0; i < npc; i++) {
        out[count].id = ring_member(s->cur, pc[i]);
        out[count].sets =
            RING_STATE_IN_CUR | (has(pn, npn, pc[i]) ? RING_STATE_IN_NEXT : 0);
        count++;
    }
    for (i = 0; i < npn; i++) {
        if (has(pc, npc, pn[i]))
            continue;
        out[count].id = pn[i] >= RING_MAX_NODES
                            ? ring_member(s->next, RING_NONE - 1 - pn[i])
                            : ring_member(s->cur, pn[i]);
        out[count].sets = RING_STATE_IN_NEXT;
        count++;
    }
    return (int)count;
}

void ring_state_count_acks(const struct ring_state_target *set, uint32_t n,
                           const bool *acked, uint32_t *in_cur,
                           uint32_t *in_next)
{
    uint32_t i, c = 0, x = 0;

    for (i = 0; i < n; i++) {
        if (!acked[i])
            continue;
        c += (set[i].sets & RING_STATE_IN_CUR) != 0;
        x += (set[i].sets & RING_STATE_IN_NEXT) != 0;
    }
    if (in_cur != NULL)
        *in_cur = c;
    if (in_next != NULL)
        *in_next = x;
}

bool ring_state_write_acked(const struct ring_state_target *set, uint32_t n,
                            const bool *acked, uint32_t w)
{
    uint32_t c, x, i;
    bool any_next = false;

    if (w == 0)
        return false;
    for (i = 0; i < n; i++)
        any_next |= (set[i].sets & RING_STATE_IN_NEXT) != 0;
    ring_state_count_acks(set, n, acked, &c, &x);
    return c >= w && (!any_next || x >= w);
}

bool ring_state_responsible(const struct ring_state *s, const char *id,
                            uint32_t k)
{
    uint32_t list[RING_STATE_NVAL_MAX];
    uint32_t n;
    int i;

    if (s == NULL || id == NULL || k >= ring_q(s->cur))
        return false;
    i = ring_member_index(s->cur, id);
    if (i >= 0) {
        n = pref(s->cur, k, s->nval, list);
        if (has(list, n, (uint32_t)i))
            return true;
    }
    if (s->next == NULL)
        return false;
    i = ring_member_index(s->next, id);
    if (i < 0)
        return false;
    n = pref(s->next, k, s->nval, list);
    return has(list, n, (uint32_t)i);
}

/* ---- merging two nodes' views ------------------------------------------- */

static bool same_ring(const struct ring *a, const struct ring *b)
{
    return a->q == b->q && a->n == b->n &&
           memcmp(a->ids, b->ids, a->n * sizeof(*a->ids)) == 0 &&
           memcmp(a->owner, b->owner, a->q * sizeof(*a->owner)) == 0;
}

/* Both pending with the same change: same epoch, N, rings and gone
 * members, so
 * the same plan up to sources and done bits. */
static bool same_change(const struct ring_state *a, const struct ring_state *b)
{
    return a->next != NULL && b->next != NULL && a->nval == b->nval &&
           RING_STATE_EPOCH(a->version) == RING_STATE_EPOCH(b->version) &&
           same_ring(a->cur, b->cur) && same_ring(a->next, b->next) &&
           memcmp(a->gone, b->gone, a->cur->n) == 0;
}

static bool same_plan(const struct ring__xfer *a, const struct ring__xfer *b,
                      uint32_t n)
{
    uint32_t i;

    for (i = 0; i < n; i++) {
        if (a[i].src != b[i].src || a[i].done != b[i].done)
            return false;
    }
    return true;
}

/* *out = a deep copy of o. */
static int copy_state(const struct ring_state *o, struct ring_state *out)
{
    struct ring_state c = *o;

    c.next = NULL;
    c.gone = NULL;
    c.xfer = NULL;
    c.cur = ring__copy(o->cur);
    if (c.cur == NULL)
        return -ENOMEM;
    if (o->next != NULL) {
        c.next = ring__copy(o->next);
        c.gone = malloc(o->cur->n);
        c.xfer = malloc((o->nxfer > 0 ? o->nxfer : 1) * sizeof(*c.xfer));
        if (c.next == NULL || c.gone == NULL || c.xfer == NULL) {
            ring__change_free(&c);
            ring_destroy(c.cur);
            return -ENOMEM;
        }
        memcpy(c.gone, o->gone, o->cur->n);
        memcpy(c.xfer, o->xfer, o->nxfer * sizeof(*c.xfer));
    }
    *out = c;
    return 0;
}

/* True if o should replace s when they are not the same change: the higher
 * version wins; at equal versions the bytewise smaller encoding. */
static int other_wins(const struct ring_state *s, const struct ring_state *o)
{
    uint8_t *a = NULL, *b = NULL;
    size_t la, lb;
    int c;

    if (o->version != s->version)
        return o->version > s->version;
    if (ring_state_encode(s, &a, &la) != 0 ||
        ring_state_encode(o, &b, &lb) != 0) {
        free(a);
        return -ENOMEM;
    }
    c = memcmp(a, b, la < lb ? la : lb);
    free(a);
    free(b);
    return c > 0 || (c == 0 && lb < la);
}

/* Same change: done bits are OR-ed; a source comes from the higher version,
 * or at equal versions is the lower member index (RING_NONE last). */
static int merge_plans(struct ring_state *s, const struct ring_state *o)
{
    struct ring__xfer *m;
    uint32_t i;
    bool eq_s, eq_o;

    if (step_room(s) != 0 || step_room(o) != 0)
        return -EOVERFLOW;
    m = malloc((s->nxfer > 0 ? s->nxfer : 1) * sizeof(*m));
    if (m == NULL)
        return -ENOMEM;
    for (i = 0; i < s->nxfer; i++) {
        const struct ring__xfer *a = &s->xfer[i], *b = &o->xfer[i];

        m[i] = *a;
        m[i].done = a->done || b->done;
        if (o->version > s->version)
            m[i].src = b->src;
        else if (o->version == s->version && b->src < a->src)
            m[i].src = b->src;
    }
    eq_s = same_plan(m, s->xfer, s->nxfer);
    eq_o = same_plan(m, o->xfer, s->nxfer);
    if (eq_s && s->version >= o->version) {
        free(m);
        return 0;
    }
    free(s->xfer);
    s->xfer = m;
    s->version = eq_o && o->version >= s->version
                     ? o->version
                     : (s->version > o->version ? s->version : o->version) + 1;
    s->ndone = 0;
    for (i = 0; i < s->nxfer; i++)
        s->ndone += m[i].done;
    if (s->ndone == s->nxfer)
        flip(s);
    return 1;
}

int ring_state_merge(struct ring_state *s, const struct ring_state *o)
{
    struct ring_state c;
    int rc;

    if (s == NULL || o == NULL)
        return -EINVAL;
    if (same_change(s, o))
        return merge_plans(s, o);
    rc = other_wins(s, o);
    if (rc <= 0)
        return rc;
    rc = copy_state(o, &c);
    if (rc != 0)
        return rc;
    ring__change_free(s);
    ring_destroy(s->cur);
    *s = c;
    return 1;
}
