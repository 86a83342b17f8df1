/*
 * test_ring_state.c - unit tests of ring/ring_state: the transfer plan of a
 * join, leave and remove is exactly the (partition, new replica) pairs
 * needed; nothing flips before the last copy; writes during a change need W
 * acks in both rings; a seeded property test over many random membership
 * changes (coverage of the new preference lists, never fewer than N
 * holders, same state and bytes on two nodes); the codec's round trip and
 * its rejection of malformed states.
 */
#include "ring/ring_state.h"

#include "proto/errors.h"
#include "ring_test_util.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(ring_state, .timeout = 30);

/* A state over ids[0..n) at Q = q, N = nval. */
static struct ring_state *state_of(uint32_t n, uint32_t q, uint32_t nval)
{
    struct ring *r = NULL;
    struct ring_state *s = NULL;

    make_ids();
    cr_assert_eq(ring_build(&r, q, ids, n), 0);
    cr_assert_eq(ring_state_create(&s, r, nval), 0);
    ring_destroy(r);
    return s;
}

static bool in_list(const char *const *list, uint32_t n, const char *id)
{
    uint32_t i;

    for (i = 0; i < n; i++) {
        if (strcmp(list[i], id) == 0)
            return true;
    }
    return false;
}

/* The ids of pref(r, k), at most 8. */
static uint32_t pref_ids(const struct ring *r, uint32_t k, uint32_t nval,
                         const char **out)
{
    uint32_t idx[RING_STATE_NVAL_MAX], i;
    int n = ring_pref_list(r, k, nval, idx);

    cr_assert_geq(n, 0);
    for (i = 0; i < (uint32_t)n; i++)
        out[i] = ring_member(r, idx[i]);
    return (uint32_t)n;
}

/* The plan is exactly the pairs (k, d), d in pref_next(k) \ pref_cur(k),
 * in order; every source is a live member of pref_cur(k), never the
 * destination, never a member in dead[0..ndead); a transfer is blocked only
 * when every member of pref_cur(k) is in dead. */
static void assert_plan_exact(const struct ring_state *s,
                              const char *const *dead, uint32_t ndead)
{
    const struct ring *cur = ring_state_cur(s), *next = ring_state_next(s);
    uint32_t nval = ring_state_nval(s), k, i, j = 0, npc, npn;
    const char *pc[RING_STATE_NVAL_MAX], *pn[RING_STATE_NVAL_MAX];
    struct ring_transfer t;

    cr_assert_not_null(next);
    for (k = 0; k < ring_q(cur); k++) {
        bool all_dead = true;

        npc = pref_ids(cur, k, nval, pc);
        npn = pref_ids(next, k, nval, pn);
        for (i = 0; i < npc; i++)
            all_dead &= in_list(dead, ndead, pc[i]);
        for (i = 0; i < npn; i++) {
            if (in_list(pc, npc, pn[i]))
                continue;
            cr_assert_lt(j, ring_state_transfers(s), "k=%u", k);
            cr_assert_eq(ring_state_transfer(s, j, &t), 0);
            cr_assert_eq(t.part, k);
            cr_assert_str_eq(t.dest, pn[i]);
            if (t.src == NULL) {
                cr_assert(all_dead, "k=%u blocked with a live source", k);
            } else {
                cr_assert(in_list(pc, npc, t.src));
                cr_assert_str_neq(t.src, t.dest);
                cr_assert(!in_list(dead, ndead, t.src), "k=%u src %s", k,
                          t.src);
            }
            j++;
        }
    }
    cr_assert_eq(j, ring_state_transfers(s), "plan has extra transfers");
}

/* Every partition's pref list holds min(N, n) distinct members of r. */
static void assert_pref_distinct(const struct ring *r, uint32_t nval)
{
    const char *p[RING_STATE_NVAL_MAX];
    uint32_t k, i, j, n, want = nval < ring_members(r) ? nval : ring_members(r);

    for (k = 0; k < ring_q(r); k++) {
        n = pref_ids(r, k, nval, p);
        cr_assert_eq(n, want);
        for (i = 0; i < n; i++) {
            cr_assert_geq(ring_member_index(r, p[i]), 0);
            for (j = 0; j < i; j++)
                cr_assert_str_neq(p[i], p[j]);
        }
    }
}

/* Marks every transfer done, checking before each that nothing flipped. */
static void complete(struct ring_state *s)
{
    uint32_t n = ring_state_transfers(s), i;
    struct ring_transfer t;
    uint64_t v = ring_state_version(s);

    for (i = 0; i < n; i++) {
        cr_assert(ring_state_pending(s), "flipped with %u of %u done", i, n);
        cr_assert_eq(ring_state_transfer(s, i, &t), 0);
        cr_assert_eq(ring_state_transfer_done(s, t.part, t.dest), 0);
        v++;
        if (i + 1 < n)
            cr_assert_eq(ring_state_version(s), v);
    }
    cr_assert(!ring_state_pending(s));
    cr_assert_eq(ring_state_version(s), (RING_STATE_EPOCH(v) + 1) << 32,
                 "the flip starts an epoch");
}

static struct ring_change joining(const char *const *j, uint32_t n)
{
    struct ring_change c = {0};

    c.join = j;
    c.njoin = n;
    return c;
}

Test(ring_state, join_one_into_three_copies_exactly_the_needed_pairs)
{
    struct ring_state *s = state_of(3, 64, 3);
    const char *j[] = {"n4"};
    struct ring_change c = joining(j, 1);
    struct ring *before = NULL, *next = NULL;
    struct ring_transfer t;
    uint32_t i, n;

    cr_assert_eq(ring_build(&before, 64, ids, 3), 0);
    cr_assert_eq(ring_state_version(s), 1);
    cr_assert_eq(ring_state_change(s, &c), 0);
    cr_assert_eq(ring_state_version(s), 1ull << 32, "epoch 1, step 0");
    assert_plan_exact(s, NULL, 0);
    n = ring_state_transfers(s);
    /* n4 takes 16 partitions; with N = 3 it joins the pref list of each
     * partition whose list it enters: its own 16 and up to 2 before each. */
    cr_assert_gt(n, 16);
    for (i = 0; i < n; i++) {
        cr_assert_eq(ring_state_transfer(s, i, &t), 0);
        cr_assert_str_eq(t.dest, "n4", "only the joiner receives data");
        cr_assert(!t.done);
    }
    cr_assert_eq(ring_rebuild(&next, before,
                              (const char *[]){"n1", "n2", "n3", "n4"}, 4),
                 0);
    assert_same(ring_state_next(s), next);
    /* Nothing flips while a bit is unset: reads keep the old ring. */
    for (i = 0; i + 1 < n; i++) {
        cr_assert_eq(ring_state_transfer(s, i, &t), 0);
        cr_assert_eq(ring_state_transfer_done(s, t.part, t.dest), 0);
        cr_assert(ring_state_pending(s));
        assert_same(ring_state_cur(s), before);
    }
    cr_assert_eq(ring_state_transfers_done(s), n - 1);
    cr_assert_eq(ring_state_transfer(s, n - 1, &t), 0);
    cr_assert_eq(ring_state_transfer_done(s, t.part, t.dest), 0);
    cr_assert(!ring_state_pending(s));
    cr_assert_eq(ring_state_version(s), 2ull << 32, "epoch 2, step 0");
    assert_same(ring_state_cur(s), next);
    assert_pref_distinct(ring_state_cur(s), 3);
    cr_assert_eq(ring_state_transfers(s), 0);
    ring_destroy(before);
    ring_destroy(next);
    ring_state_destroy(s);
}

Test(ring_state, abort_keeps_cur_drops_the_plan_and_outranks_the_change)
{
    struct ring_state *s = state_of(3, 64, 3), *d = NULL;
    const char *j[] = {"n4"};
    struct ring_change c = joining(j, 1);
    struct ring *before = NULL;
    uint8_t *buf = NULL;
    size_t len = 0;

    cr_assert_eq(ring_build(&before, 64, ids, 3), 0);
    cr_assert_eq(ring_state_abort(s), -ENOENT, "nothing pending");
    cr_assert_eq(ring_state_change(s, &c), 0);
    uint64_t pending = ring_state_version(s);
    cr_assert_eq(ring_state_abort(s), 0);
    cr_assert(!ring_state_pending(s));
    cr_assert_gt(ring_state_version(s), pending);
    cr_assert_eq(ring_state_version(s), 2ull << 32, "epoch 2, step 0");
    assert_same(ring_state_cur(s), before);
    cr_assert_eq(ring_state_transfers(s), 0);
    cr_assert(!ring_state_responsible(s, "n4", 0));
    cr_assert_eq(ring_state_encode(s, &buf, &len), 0);
    cr_assert_eq(ring_state_decode(buf, len, &d, NULL), 0, "a valid state");
    cr_assert_eq(ring_state_version(d), ring_state_version(s));
    /* the same join can start again */
    cr_assert_eq(ring_state_change(s, &c), 0);
    cr_assert(ring_state_pending(s));
    free(buf);
    ring_state_destroy(d);
    ring_destroy(before);
    ring_state_destroy(s);
}

Test(ring_state, bump_only_raises_the_step)
{
    struct ring_state *s = state_of(3, 64, 3);
    const char *j[] = {"n4"};
    struct ring_change c = joining(j, 1);
    cr_assert_eq(ring_state_change(s, &c), 0);
    uint64_t v = ring_state_version(s);
    uint32_t n = ring_state_transfers(s);
    cr_assert_eq(ring_state_bump(s), 0);
    cr_assert_eq(ring_state_version(s), v + 1);
    cr_assert(ring_state_pending(s));
    cr_assert_eq(ring_state_transfers(s), n);
    cr_assert_eq(ring_state_transfers_done(s), 0);
    cr_assert_eq(ring_state_bump(NULL), -EINVAL);
    ring_state_destroy(s);
}

Test(ring_state, leave_sources_from_the_leaver_and_drops_it_at_the_flip)
{
    struct ring_state *s = state_of(5, 64, 3);
    const char *l[] = {"n2"};
    struct ring_change c = {0};
    struct ring_transfer t;
    uint32_t i, from_leaver = 0;

    c.leave = l;
    c.nleave = 1;
    cr_assert_eq(ring_state_change(s, &c), 0);
    assert_plan_exact(s, NULL, 0);
    cr_assert(ring_state_leaving(s, "n2"));
    cr_assert(!ring_state_removed(s, "n2"));
    cr_assert(!ring_state_leaving(s, "n1"));
    cr_assert_eq(ring_member_index(ring_state_next(s), "n2"), -ENOENT);
    cr_assert_geq(ring_member_index(ring_state_cur(s), "n2"), 0);
    for (i = 0; i < ring_state_transfers(s); i++) {
        cr_assert_eq(ring_state_transfer(s, i, &t), 0);
        from_leaver += t.src != NULL && strcmp(t.src, "n2") == 0;
    }
    cr_assert_gt(from_leaver, 0, "a graceful leaver is a source");
    cr_assert_eq(ring_state_transfers_blocked(s), 0);
    complete(s);
    cr_assert_eq(ring_member_index(ring_state_cur(s), "n2"), -ENOENT);
    cr_assert(!ring_state_leaving(s, "n2"));
    assert_pref_distinct(ring_state_cur(s), 3);
    ring_state_destroy(s);
}

Test(ring_state, remove_never_picks_the_dead_node_as_a_source)
{
    struct ring_state *s = state_of(5, 64, 3);
    const char *r[] = {"n2"};
    struct ring_change c = {0};

    c.remove = r;
    c.nremove = 1;
    cr_assert_eq(ring_state_change(s, &c), 0);
    cr_assert(ring_state_removed(s, "n2"));
    assert_plan_exact(s, r, 1);
    cr_assert_gt(ring_state_transfers(s), 0);
    cr_assert_eq(ring_state_transfers_blocked(s), 0);
    complete(s);
    assert_pref_distinct(ring_state_cur(s), 3);
    ring_state_destroy(s);
}

Test(ring_state, remove_reports_blocked_when_every_old_replica_is_down)
{
    struct ring_state *s = state_of(5, 64, 3);
    const char *r[] = {"n2"}, *down[] = {"n1", "n3"};
    const char *dead[] = {"n1", "n2", "n3"};
    struct ring_change c = {0};
    uint64_t v;
    int blocked;

    c.remove = r;
    c.nremove = 1;
    c.unavailable = down;
    c.nunavailable = 2;
    cr_assert_eq(ring_state_change(s, &c), 0);
    assert_plan_exact(s, dead, 3);
    cr_assert_gt(ring_state_transfers_blocked(s), 0);
    /* n1 and n3 come back: every transfer gets a source, still not n2. */
    v = ring_state_version(s);
    blocked = ring_state_replan(s, NULL, 0);
    cr_assert_eq(blocked, 0);
    cr_assert_eq(ring_state_version(s), v + 1);
    assert_plan_exact(s, r, 1);
    cr_assert_eq(ring_state_replan(s, NULL, 0), 0);
    cr_assert_eq(ring_state_version(s), v + 1, "nothing changed");
    ring_state_destroy(s);
}

Test(ring_state, write_acked_only_in_cur_is_not_acknowledged_during_a_change)
{
    struct ring_state *s = state_of(3, 64, 3);
    const char *j[] = {"n4"};
    struct ring_change c = joining(j, 1);
    struct ring_state_target set[6];
    bool acked[6] = {0};
    uint32_t i, k, in_cur, in_next;
    struct ring_transfer t;
    int n;

    /* Idle: the write set is pref_cur, W acks there suffice. */
    n = ring_state_write_set(s, 0, set, 6);
    cr_assert_eq(n, 3);
    for (i = 0; i < 3; i++)
        cr_assert_eq(set[i].sets, RING_STATE_IN_CUR);
    acked[0] = acked[1] = true;
    cr_assert(ring_state_write_acked(set, 3, acked, 2));
    cr_assert(!ring_state_write_acked(set, 3, acked, 3));
    cr_assert(!ring_state_write_acked(set, 3, acked, 0));
    cr_assert_eq(ring_state_write_set(s, 0, set, 5), -EINVAL);
    cr_assert_eq(ring_state_write_set(s, 64, set, 6), -EINVAL);

    cr_assert_eq(ring_state_change(s, &c), 0);
    cr_assert_eq(ring_state_transfer(s, 0, &t), 0);
    k = t.part; /* n4 enters pref(k) and some old replica drops out */
    n = ring_state_write_set(s, k, set, 6);
    cr_assert_eq(n, 4);
    cr_assert_str_eq(set[3].id, "n4");
    cr_assert_eq(set[3].sets, RING_STATE_IN_NEXT);
    memset(acked, 0, sizeof(acked));
    /* Acks from the whole of pref_cur: W = 3 in cur ... */
    for (i = 0; i < 3; i++) {
        cr_assert(set[i].sets & RING_STATE_IN_CUR);
        acked[i] = true;
    }
    ring_state_count_acks(set, 4, acked, &in_cur, &in_next);
    cr_assert_eq(in_cur, 3);
    cr_assert_eq(in_next, 2);
    /* ... but only 2 in next: a W = 3 write is not acknowledged. */
    cr_assert(!ring_state_write_acked(set, 4, acked, 3));
    /* Two old-only acks: W = 2 met in cur but not in next. */
    memset(acked, 0, sizeof(acked));
    for (i = 0; i < 3; i++) {
        if (set[i].sets == RING_STATE_IN_CUR)
            acked[i] = true;
    }
    ring_state_count_acks(set, 4, acked, &in_cur, &in_next);
    cr_assert_eq(in_next, 0);
    cr_assert(!ring_state_write_acked(set, 4, acked, 1));
    acked[3] = true;
    cr_assert(ring_state_write_acked(set, 4, acked, 1));
    memset(acked, true, sizeof(acked));
    cr_assert(ring_state_write_acked(set, 4, acked, 3));
    ring_state_destroy(s);
}

Test(ring_state, responsible_covers_both_rings_until_the_flip)
{
    struct ring_state *s = state_of(4, 64, 2);
    const char *l[] = {"n1"};
    struct ring_change c = {0};
    const char *p[RING_STATE_NVAL_MAX];
    uint32_t k, np;

    c.leave = l;
    c.nleave = 1;
    cr_assert_eq(ring_state_change(s, &c), 0);
    for (k = 0; k < 64; k++) {
        np = pref_ids(ring_state_cur(s), k, 2, p);
        cr_assert_eq(ring_state_responsible(s, "n1", k), in_list(p, np, "n1"));
        np = pref_ids(ring_state_next(s), k, 2, p);
        for (uint32_t i = 0; i < np; i++)
            cr_assert(ring_state_responsible(s, p[i], k));
    }
    complete(s);
    for (k = 0; k < 64; k++) {
        cr_assert(!ring_state_responsible(s, "n1", k));
        np = pref_ids(ring_state_cur(s), k, 2, p);
        for (uint32_t i = 0; i < 4; i++)
            cr_assert_eq(ring_state_responsible(s, ids[i], k),
                         in_list(p, np, ids[i]));
    }
    cr_assert(!ring_state_responsible(s, "n2", 64));
    cr_assert(!ring_state_responsible(s, "nobody", 0));
    ring_state_destroy(s);
}

Test(ring_state, bad_changes_are_refused_and_leave_the_state_alone)
{
    struct ring_state *s = state_of(3, 64, 3);
    const char *dup[] = {"n4", "n4"}, *old[] = {"n1"}, *none[] = {"x"};
    const char *all[] = {"n1", "n2", "n3"}, *j[] = {"n4"};
    const char *toolong[] = {
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"};
    struct ring_change c = {0};
    uint8_t *b0, *b1;
    size_t l0, l1;

    cr_assert_eq(ring_state_encode(s, &b0, &l0), 0);
    cr_assert_eq(ring_state_change(s, &c), RK_ECONFIG, "empty change");
    c = joining(dup, 2);
    cr_assert_eq(ring_state_change(s, &c), RK_ECONFIG);
    c = joining(old, 1);
    cr_assert_eq(ring_state_change(s, &c), RK_ECONFIG);
    c = joining(toolong, 1);
    cr_assert_eq(ring_state_change(s, &c), RK_ECONFIG);
    c = (struct ring_change){.leave = none, .nleave = 1};
    cr_assert_eq(ring_state_change(s, &c), RK_ECONFIG);
    c = (struct ring_change){.remove = all, .nremove = 3};
    cr_assert_eq(ring_state_change(s, &c), RK_ECONFIG, "nobody left");
    c = (struct ring_change){
        .leave = old, .nleave = 1, .remove = old, .nremove = 1};
    cr_assert_eq(ring_state_change(s, &c), RK_ECONFIG, "named twice");
    c = (struct ring_change){.njoin = 1};
    cr_assert_eq(ring_state_change(s, &c), -EINVAL);
    cr_assert_eq(ring_state_change(s, NULL), -EINVAL);
    cr_assert_eq(ring_state_encode(s, &b1, &l1), 0);
    cr_assert_eq(l0, l1);
    cr_assert_eq(memcmp(b0, b1, l0), 0, "a refused change changed nothing");
    free(b1);

    c = joining(j, 1);
    cr_assert_eq(ring_state_change(s, &c), 0);
    cr_assert_eq(ring_state_change(s, &c), -EBUSY);
    cr_assert_eq(ring_state_transfer_done(s, 0, "n1"), -ENOENT);
    cr_assert_eq(ring_state_transfer_done(s, 0, "zz"), -ENOENT);
    cr_assert_eq(ring_state_transfer_done(s, 64, "n4"), -EINVAL);
    free(b0);
    ring_state_destroy(s);
}

Test(ring_state, transfer_done_twice_counts_once)
{
    struct ring_state *s = state_of(3, 64, 3);
    const char *j[] = {"n4"};
    struct ring_change c = joining(j, 1);
    struct ring_transfer t;
    uint64_t v;

    cr_assert_eq(ring_state_change(s, &c), 0);
    cr_assert_eq(ring_state_transfer(s, 0, &t), 0);
    cr_assert_eq(ring_state_transfer_done(s, t.part, t.dest), 0);
    v = ring_state_version(s);
    cr_assert_eq(ring_state_transfer_done(s, t.part, t.dest), 0);
    cr_assert_eq(ring_state_version(s), v);
    cr_assert_eq(ring_state_transfers_done(s), 1);
    cr_assert_eq(ring_state_transfer(s, ring_state_transfers(s), &t), -EINVAL);
    ring_state_destroy(s);
}

/* ---- property test ------------------------------------------------------ */

static uint64_t rng_state;

static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

static void assert_same_bytes(const struct ring_state *a,
                              const struct ring_state *b)
{
    uint8_t *ba, *bb;
    size_t la, lb;

    cr_assert_eq(ring_state_encode(a, &ba, &la), 0);
    cr_assert_eq(ring_state_encode(b, &bb, &lb), 0);
    cr_assert_eq(la, lb);
    cr_assert_eq(memcmp(ba, bb, la), 0);
    free(ba);
    free(bb);
}

/* decode(encode(s)) encodes to the same bytes; returns the decoded copy. */
static struct ring_state *round_trip(const struct ring_state *s)
{
    struct ring_state *d = NULL;
    const char *why = NULL;
    uint8_t *b;
    size_t l;
    int rc;

    cr_assert_eq(ring_state_encode(s, &b, &l), 0);
    rc = ring_state_decode(b, l, &d, &why);
    cr_assert_eq(rc, 0, "decode: %s", why != NULL ? why : "?");
    free(b);
    assert_same_bytes(s, d);
    return d;
}

/* Every partition has min(N, members) holders (pref_cur while pending) and
 * pref_cur(k) plus the destinations of k's transfers cover pref_next(k). */
static void assert_covered(const struct ring_state *s)
{
    const struct ring *cur = ring_state_cur(s), *next = ring_state_next(s);
    uint32_t nval = ring_state_nval(s), k, i, np, nh;
    const char *held[2 * RING_STATE_NVAL_MAX], *p[RING_STATE_NVAL_MAX];
    uint32_t want, x = 0;
    struct ring_transfer t;

    want = nval < ring_members(cur) ? nval : ring_members(cur);
    for (k = 0; k < ring_q(cur); k++) {
        nh = pref_ids(cur, k, nval, held);
        cr_assert_eq(nh, want, "k=%u has %u holders", k, nh);
        if (next == NULL)
            continue;
        for (; x < ring_state_transfers(s); x++) {
            cr_assert_eq(ring_state_transfer(s, x, &t), 0);
            if (t.part != k)
                break;
            held[nh++] = t.dest;
        }
        np = pref_ids(next, k, nval, p);
        for (i = 0; i < np; i++)
            cr_assert(in_list(held, nh, p[i]), "k=%u: %s not covered", k, p[i]);
    }
}

/* A random member of cur (an id from ids[]) not in skip[0..nskip). */
static const char *pick_member(const struct ring_state *s,
                               const char *const *skip, uint32_t nskip)
{
    const struct ring *cur = ring_state_cur(s);
    uint32_t i, n = ring_members(cur), v = rnd(n);

    for (i = 0; i < n; i++, v = (v + 1) % n) {
        int x = atoi(ring_member(cur, v) + 1) - 1; /* "n<x+1>" */

        if (!in_list(skip, nskip, ids[x]))
            return ids[x];
    }
    return NULL;
}

Test(ring_state, random_changes_keep_n_holders_and_agree_across_nodes)
{
    uint32_t seed, rounds = 0;

    make_ids();
    for (seed = 1; seed <= 60; seed++) {
        static const uint32_t qs[] = {16, 64, 256};
        uint32_t nval = 1 + seed % 4, q = qs[seed % 3];
        uint32_t n = nval + 1 + seed % 5, next_id = n, step, i;
        struct ring *r = NULL;
        struct ring_state *a = NULL;

        rng_state = seed * 0x9e3779b97f4a7c15ull;
        cr_assert_eq(ring_build(&r, q, ids, n), 0);
        cr_assert_eq(ring_state_create(&a, r, nval), 0);
        ring_destroy(r);
        for (step = 0; step < 6; step++) {
            const char *join[4], *gone[4], *down[4];
            uint32_t nj = 0, nl = 0, nr = 0, nd = 0;
            uint32_t nm = ring_members(ring_state_cur(a));
            struct ring_change c;
            struct ring_state *b;

            /* Joins while ids last; leaves and removes keep more than N
             * members, and fewer than N are removed, so every partition
             * keeps a live old replica. gone[] = leaves then removes. */
            if (next_id < MAXN && rnd(2) == 0)
                for (i = 1 + rnd(2); i > 0 && next_id < MAXN; i--)
                    join[nj++] = ids[next_id++];
            if (nm - 1 > nval && rnd(3) == 0)
                gone[nl++] = pick_member(a, NULL, 0);
            if (nval > 1 && nm - nl - 1 > nval && rnd(2) == 0) {
                gone[nl + nr] = pick_member(a, gone, nl);
                nr++;
            }
            if (nj + nl + nr == 0 && next_id < MAXN)
                join[nj++] = ids[next_id++];
            if (nj + nl + nr == 0)
                break;
            for (i = 0; i < 2; i++) {
                if (rnd(4) == 0)
                    down[nd++] = pick_member(a, gone + nl, nr);
            }
            c = (struct ring_change){join,      nj, gone, nl,
                                     gone + nl, nr, down, nd};
            b = round_trip(a); /* a second node, from gossip */
            cr_assert_eq(ring_state_change(a, &c), 0, "seed %u step %u", seed,
                         step);
            cr_assert_eq(ring_state_change(b, &c), 0);
            assert_same_bytes(a, b);
            if (ring_state_pending(a)) {
                const char *dead[8];
                uint32_t ndead = 0;

                for (i = 0; i < nr; i++)
                    dead[ndead++] = gone[nl + i];
                for (i = 0; i < nd; i++)
                    dead[ndead++] = down[i];
                assert_plan_exact(a, dead, ndead);
                cr_assert_geq(ring_state_replan(a, NULL, 0), 0);
                cr_assert_eq(ring_state_transfers_blocked(a), 0);
                assert_plan_exact(a, gone + nl, nr);
                ring_state_destroy(b);
                b = round_trip(a);
            }
            /* Transfers complete in a random order on node a; node b hears
             * of each one and must stay byte-identical. */
            while (ring_state_pending(a)) {
                uint32_t nx = ring_state_transfers(a), x = rnd(nx);
                struct ring_transfer t;

                assert_covered(a);
                while (ring_state_transfer(a, x, &t) == 0 && t.done)
                    x = (x + 1) % nx;
                cr_assert_eq(ring_state_transfer_done(a, t.part, t.dest), 0);
                cr_assert_eq(ring_state_transfer_done(b, t.part, t.dest), 0);
                assert_same_bytes(a, b);
            }
            assert_covered(a);
            assert_pref_distinct(ring_state_cur(a), nval);
            cr_assert_eq(ring_members(ring_state_cur(a)), nm + nj - nl - nr);
            ring_state_destroy(b);
            b = round_trip(a);
            ring_state_destroy(b);
            rounds++;
        }
        ring_state_destroy(a);
    }
    cr_assert_gt(rounds, 200);
}

/* ---- codec -------------------------------------------------------------- */

#define FQ   64
#define FMAX 512

/* A state spelled out field by field, packed by the test's own writer so
 * each field can be broken on its own. */
struct fake {
    uint64_t fmt, version, nval, q;
    uint32_t ncur, ncur_own, nnext;
    const char *cur_ids[MAXN], *next_ids[MAXN];
    uint32_t cur_own[FQ + 1], next_own[FQ];
    bool has_next;
    uint32_t ngone, gone[MAXN];
    uint32_t nx, xk[FMAX], xd[FMAX];
    int64_t xs[FMAX]; /* -1: nil */
    uint32_t nbits;
    uint8_t bits[FMAX / 8 + 2];
    bool extra_key;
};

static void fake_of(const struct ring_state *s, struct fake *f)
{
    const struct ring *cur = ring_state_cur(s), *next = ring_state_next(s);
    struct ring_transfer t;
    uint32_t i;

    memset(f, 0, sizeof(*f));
    f->fmt = 1;
    f->version = ring_state_version(s);
    f->nval = ring_state_nval(s);
    f->q = ring_q(cur);
    cr_assert_leq(f->q, FQ);
    f->ncur = ring_members(cur);
    f->ncur_own = (uint32_t)f->q;
    for (i = 0; i < f->ncur; i++)
        f->cur_ids[i] = ring_member(cur, i);
    for (i = 0; i < f->q; i++)
        f->cur_own[i] = ring_owner(cur, i);
    f->has_next = next != NULL;
    if (next == NULL)
        return;
    f->nnext = ring_members(next);
    for (i = 0; i < f->nnext; i++)
        f->next_ids[i] = ring_member(next, i);
    for (i = 0; i < f->q; i++)
        f->next_own[i] = ring_owner(next, i);
    f->ngone = f->ncur;
    for (i = 0; i < f->ncur; i++)
        f->gone[i] = ring_state_leaving(s, f->cur_ids[i])   ? 1
                     : ring_state_removed(s, f->cur_ids[i]) ? 2
                                                            : 0;
    f->nx = ring_state_transfers(s);
    cr_assert_leq(f->nx, FMAX);
    f->nbits = (f->nx + 7) / 8;
    for (i = 0; i < f->nx; i++) {
        cr_assert_eq(ring_state_transfer(s, i, &t), 0);
        f->xk[i] = t.part;
        f->xd[i] = (uint32_t)ring_member_index(next, t.dest);
        f->xs[i] = t.src == NULL ? -1 : ring_member_index(cur, t.src);
        if (t.done)
            f->bits[i / 8] |= (uint8_t)(1u << (i % 8));
    }
}

static int sbuf_write(void *data, const char *buf, size_t len)
{
    return msgpack_sbuffer_write(data, buf, len);
}

static void pk_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

static void pk_ring(msgpack_packer *pk, const char *const *id, uint32_t n,
                    const uint32_t *own, uint32_t nown)
{
    uint32_t i;

    msgpack_pack_array(pk, 2);
    msgpack_pack_array(pk, n);
    for (i = 0; i < n; i++)
        pk_str(pk, id[i]);
    msgpack_pack_array(pk, nown);
    for (i = 0; i < nown; i++)
        msgpack_pack_uint32(pk, own[i]);
}

static void pack_fake(const struct fake *f, msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    uint32_t i;

    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, sbuf_write);
    msgpack_pack_map(&pk, 9 + f->extra_key);
    pk_str(&pk, "fmt");
    msgpack_pack_uint64(&pk, f->fmt);
    pk_str(&pk, "version");
    msgpack_pack_uint64(&pk, f->version);
    pk_str(&pk, "nval");
    msgpack_pack_uint64(&pk, f->nval);
    pk_str(&pk, "q");
    msgpack_pack_uint64(&pk, f->q);
    pk_str(&pk, "cur");
    pk_ring(&pk, f->cur_ids, f->ncur, f->cur_own, f->ncur_own);
    pk_str(&pk, "next");
    if (f->has_next)
        pk_ring(&pk, f->next_ids, f->nnext, f->next_own, (uint32_t)f->q);
    else
        msgpack_pack_nil(&pk);
    pk_str(&pk, "gone");
    msgpack_pack_array(&pk, f->ngone);
    for (i = 0; i < f->ngone; i++)
        msgpack_pack_uint32(&pk, f->gone[i]);
    pk_str(&pk, "xfers");
    msgpack_pack_array(&pk, f->nx);
    for (i = 0; i < f->nx; i++) {
        msgpack_pack_array(&pk, 3);
        msgpack_pack_uint32(&pk, f->xk[i]);
        msgpack_pack_uint32(&pk, f->xd[i]);
        if (f->xs[i] < 0)
            msgpack_pack_nil(&pk);
        else
            msgpack_pack_uint32(&pk, (uint32_t)f->xs[i]);
    }
    pk_str(&pk, "done");
    msgpack_pack_bin(&pk, f->nbits);
    msgpack_pack_bin_body(&pk, f->bits, f->nbits);
    if (f->extra_key) {
        pk_str(&pk, "later");
        msgpack_pack_nil(&pk);
    }
}

static int decode_fake(const struct fake *f, const char **why)
{
    msgpack_sbuffer sb;
    struct ring_state *d = NULL;
    int rc;

    pack_fake(f, &sb);
    *why = NULL;
    rc = ring_state_decode((const uint8_t *)sb.data, sb.size, &d, why);
    msgpack_sbuffer_destroy(&sb);
    ring_state_destroy(d);
    return rc;
}

/* A pending 3 -> 4 join at Q = 64, N = 3 with the first 3 transfers done. */
static struct ring_state *pending_join(void)
{
    struct ring_state *s = state_of(3, FQ, 3);
    const char *j[] = {"n4"};
    struct ring_change c = joining(j, 1);
    struct ring_transfer t;
    uint32_t i;

    cr_assert_eq(ring_state_change(s, &c), 0);
    for (i = 0; i < 3; i++) {
        cr_assert_eq(ring_state_transfer(s, i, &t), 0);
        cr_assert_eq(ring_state_transfer_done(s, t.part, t.dest), 0);
    }
    return s;
}

/* The test's writer and ring_state_encode() agree byte for byte, so the
 * format in docs/ring.md is what goes on the wire. */
static void assert_encodes_as_fake(const struct ring_state *s)
{
    struct fake f;
    msgpack_sbuffer sb;
    uint8_t *b;
    size_t l;

    fake_of(s, &f);
    pack_fake(&f, &sb);
    cr_assert_eq(ring_state_encode(s, &b, &l), 0);
    cr_assert_eq(l, sb.size);
    cr_assert_eq(memcmp(b, sb.data, l), 0);
    free(b);
    msgpack_sbuffer_destroy(&sb);
}

Test(ring_state, codec_round_trips_and_pins_the_format)
{
    struct ring_state *s = state_of(3, FQ, 3), *d;

    assert_encodes_as_fake(s);
    d = round_trip(s);
    cr_assert_eq(ring_state_version(d), 1);
    cr_assert(!ring_state_pending(d));
    ring_state_destroy(d);
    ring_state_destroy(s);

    s = pending_join();
    assert_encodes_as_fake(s);
    d = round_trip(s);
    cr_assert_eq(ring_state_version(d), ring_state_version(s));
    cr_assert_eq(ring_state_transfers_done(d), 3);
    assert_same(ring_state_next(d), ring_state_next(s));
    ring_state_destroy(d);
    ring_state_destroy(s);
}

/* Each case breaks one thing in a valid pending state. */
Test(ring_state, codec_rejects_malformed_states_with_a_reason)
{
    struct ring_state *s = pending_join();
    struct fake good, f;
    const char *why;

#define REJECT(mutation)                                                       \
    do {                                                                       \
        f = good;                                                              \
        mutation;                                                              \
        cr_assert_eq(decode_fake(&f, &why), RK_EPROTO, "%s", #mutation);       \
        cr_assert_not_null(why, "%s", #mutation);                              \
    } while (0)

    fake_of(s, &good);
    cr_assert_eq(decode_fake(&good, &why), 0, "%s", why);
    REJECT(f.fmt = 2);
    REJECT(f.version = 0);
    REJECT(f.version = 2ull << 32); /* even epoch: nothing pending */
    REJECT(f.version = 1ull << 32 | (RING_STATE_STEP_MAX + 1ull));
    REJECT(f.version = (RING_STATE_EPOCH_MAX + 2ull) << 32);
    REJECT(f.nval = 0);
    REJECT(f.nval = RING_STATE_NVAL_MAX + 1);
    REJECT(f.q = 48);
    REJECT(f.ncur_own = FQ - 1);
    REJECT(f.ncur_own = FQ + 1);
    REJECT(f.cur_own[5] = f.ncur);
    REJECT(f.cur_ids[0] = "n3"; f.cur_ids[2] = "n1"); /* not ascending */
    REJECT(f.cur_ids[1] = "n1");                      /* duplicate */
    REJECT(f.cur_ids[0] = "");
    REJECT(f.cur_ids[0] =
               "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
               "aaaaaaaaaaaa");
    REJECT(f.ncur = 0);
    REJECT(f.next_own[0] = f.next_own[1]; f.next_own[1] = good.next_own[0]);
    cr_assert_not_null(strstr(why, "rebuild"), "%s", why);
    REJECT(f.gone[0] = 1);
    REJECT(f.gone[0] = 3);
    REJECT(f.ngone = 0);
    REJECT(f.nx--; f.nbits = (f.nx + 7) / 8);
    REJECT(f.xd[0] = 0);
    REJECT(f.xk[0]++);
    REJECT(f.xs[0] = 3);   /* n4 is not in cur */
    REJECT(f.xs[0] = 200); /* not a member index */
    REJECT(f.nbits--);
    REJECT(f.nbits++);
    REJECT(f.bits[f.nbits - 1] |= 0x80; cr_assert_neq(f.nx % 8, 0));
    REJECT(memset(f.bits, 0xff, f.nx / 8);
           f.bits[f.nx / 8] = (uint8_t)((1u << (f.nx % 8)) - 1));
    REJECT(f.extra_key = true);
    REJECT(f.has_next = false; f.ngone = 0); /* a plan with nothing pending */
    ring_state_destroy(s);
}

Test(ring_state, codec_rejects_a_dead_source_and_broken_bytes)
{
    struct ring_state *s = state_of(5, FQ, 3), *d = NULL;
    const char *r[] = {"n2"}, *why;
    struct ring_change c = {0};
    struct fake good, f;
    uint8_t *b, *big;
    size_t l, cut;
    uint32_t i;

    c.remove = r;
    c.nremove = 1;
    cr_assert_eq(ring_state_change(s, &c), 0);
    fake_of(s, &good);
    cr_assert_eq(decode_fake(&good, &why), 0, "%s", why);
    /* n2 (index 1) is in pref_cur of some partition's transfer: naming it
     * as the source must be refused. */
    for (i = 0; i < good.nx; i++) {
        const char *p[RING_STATE_NVAL_MAX];
        uint32_t np = pref_ids(ring_state_cur(s), good.xk[i], 3, p);

        if (in_list(p, np, "n2"))
            break;
    }
    cr_assert_lt(i, good.nx);
    REJECT(f.xs[i] = 1);
    for (uint32_t m = 0; m < 5; m++) { /* a live member outside pref_cur */
        const char *p[RING_STATE_NVAL_MAX];
        uint32_t np = pref_ids(ring_state_cur(s), good.xk[0], 3, p);

        if (!in_list(p, np, ids[m]))
            REJECT(f.xs[0] = m);
    }
    REJECT(f.gone[1] = 1; f.xs[i] = 1; cr_assert_eq(decode_fake(&f, &why), 0);
           f.gone[1] = 2);

    cr_assert_eq(ring_state_encode(s, &b, &l), 0);
    for (cut = 0; cut < l; cut++)
        cr_assert_eq(ring_state_decode(b, cut, &d, &why), RK_EPROTO,
                     "a %zu-byte prefix", cut);
    big = calloc(1, l + 1);
    memcpy(big, b, l);
    cr_assert_eq(ring_state_decode(big, l + 1, &d, &why), RK_EPROTO,
                 "trailing byte");
    free(big);
    big = calloc(1, RING_STATE_MAX_BYTES + 1);
    cr_assert_eq(ring_state_decode(big, RING_STATE_MAX_BYTES + 1, &d, &why),
                 RK_EPROTO);
    free(big);
    cr_assert_eq(ring_state_decode((const uint8_t *)"\x91\x01", 2, &d, &why),
                 RK_EPROTO);
    cr_assert_eq(
        ring_state_decode((const uint8_t *)"\xdd\xff\xff\xff\xff", 5, &d, &why),
        RK_EPROTO, "a count larger than the bytes present");
    cr_assert_eq(ring_state_decode(NULL, 0, &d, &why), -EINVAL);
    cr_assert_null(d);
    free(b);
    ring_state_destroy(s);
}

/* ---- merging views ------------------------------------------------------ */

static struct ring_state *pending_join_of(uint32_t n, const char *joiner)
{
    struct ring_state *s = state_of(n, FQ, 3);
    const char *j[] = {joiner};
    struct ring_change c = joining(j, 1);

    cr_assert_eq(ring_state_change(s, &c), 0);
    return s;
}

static void mark(struct ring_state *s, uint32_t i)
{
    struct ring_transfer t;

    cr_assert_eq(ring_state_transfer(s, i, &t), 0);
    cr_assert_eq(ring_state_transfer_done(s, t.part, t.dest), 0);
}

Test(ring_state, merge_keeps_both_nodes_done_marks_at_the_same_version)
{
    struct ring_state *s = pending_join_of(3, "n4");
    struct ring_state *a = round_trip(s), *b = round_trip(s);
    uint64_t v = ring_state_version(s);

    mark(a, 0);
    mark(b, 1);
    cr_assert_eq(ring_state_version(a), ring_state_version(b));
    cr_assert_eq(ring_state_merge(a, b), 1);
    cr_assert_eq(ring_state_merge(b, a), 1);
    assert_same_bytes(a, b);
    cr_assert_eq(ring_state_transfers_done(a), 2);
    cr_assert_eq(ring_state_version(a), v + 2, "max + 1: newer than both");
    cr_assert_eq(ring_state_merge(a, b), 0, "nothing new");
    /* An older view of the same change adds nothing. */
    cr_assert_eq(ring_state_merge(a, s), 0);
    cr_assert_eq(ring_state_merge(s, a), 1);
    assert_same_bytes(a, s);
    ring_state_destroy(a);
    ring_state_destroy(b);
    ring_state_destroy(s);
}

Test(ring_state, merge_flips_when_the_union_completes_the_plan)
{
    struct ring_state *a = pending_join_of(3, "n4"), *b = round_trip(a);
    uint32_t i, n = ring_state_transfers(a);

    for (i = 0; i < n; i++)
        mark(i % 2 == 0 ? a : b, i);
    cr_assert(ring_state_pending(a) && ring_state_pending(b));
    cr_assert_eq(ring_state_merge(a, b), 1);
    cr_assert(!ring_state_pending(a));
    cr_assert_eq(ring_state_merge(b, a), 1, "b adopts the flipped state");
    assert_same_bytes(a, b);
    ring_state_destroy(a);
    ring_state_destroy(b);
}

Test(ring_state, merge_never_undoes_a_flip)
{
    struct ring_state *a = pending_join_of(3, "n4"), *b = round_trip(a);
    const char *down[2][1] = {{"n1"}, {"n2"}};
    uint32_t i;

    complete(a);
    /* b re-sources its plan many times: its step passes a's, but a is a
     * later epoch. */
    for (i = 0; i < 40; i++)
        cr_assert_geq(ring_state_replan(b, down[i % 2], 1), 0);
    cr_assert_gt(RING_STATE_STEP(ring_state_version(b)),
                 RING_STATE_STEP(ring_state_version(a)));
    cr_assert_eq(ring_state_merge(a, b), 0);
    cr_assert(!ring_state_pending(a));
    cr_assert_eq(ring_state_merge(b, a), 1);
    assert_same_bytes(a, b);
    ring_state_destroy(a);
    ring_state_destroy(b);
}

Test(ring_state, merge_of_two_concurrent_changes_picks_one_on_both_nodes)
{
    struct ring_state *a = pending_join_of(3, "n4");
    struct ring_state *b = pending_join_of(3, "n5");

    mark(a, 0);
    mark(b, 0);
    struct ring_state *a2 = round_trip(a), *b2 = round_trip(b);

    cr_assert_eq(ring_state_version(a), ring_state_version(b));
    /* Each node merges the other's view into its own. */
    cr_assert_eq(ring_state_merge(a2, b) + ring_state_merge(b2, a), 1,
                 "exactly one side adopts the other");
    assert_same_bytes(a2, b2);
    cr_assert_eq(ring_state_merge(NULL, b), -EINVAL);
    ring_state_destroy(a);
    ring_state_destroy(b);
    ring_state_destroy(a2);
    ring_state_destroy(b2);
}
