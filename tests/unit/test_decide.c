/*
 * test_decide.c - the coordinator's decisions without sockets, env or
 * simulator: replica planning and forward choice (quorum/decide.h), how a
 * failed put, get or forward is reported, and the forward dedupe window
 * (quorum/fwd_window.h).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "proto/errors.h"
#include "quorum/decide.h"
#include "quorum/fwd_window.h"

TestSuite(decide, .timeout = 10);

Test(decide, plan_counts_self_as_up_and_finds_its_position)
{
    uint32_t reps[3] = {4, 2, 9};
    bool up[3] = {false, false, true}; /* self (2) says down: ignored */
    struct decide_plan p;
    decide_plan(reps, 3, 2, up, &p);
    cr_assert_eq(p.up, 2);
    cr_assert(p.mine);
    cr_assert_eq(p.self_i, 1);
    cr_assert_eq(p.target, 2, "the first replica up");
}

Test(decide, plan_for_a_non_replica_forwards_to_the_first_replica_up)
{
    uint32_t reps[3] = {4, 2, 9};
    bool up[3] = {false, true, true};
    struct decide_plan p;
    decide_plan(reps, 3, 5, up, &p);
    cr_assert_not(p.mine);
    cr_assert_eq(p.up, 2);
    cr_assert_eq(p.target, 2);
    memset(up, 0, sizeof(up));
    decide_plan(reps, 3, 5, up, &p);
    cr_assert_eq(p.up, 0);
    cr_assert_eq(p.target, DECIDE_NO_TARGET);
}

/* Regression: a put that could no longer reach w because a replica
 * answered with an error, while another had not answered yet, was
 * reported as a timeout (the classification looked at "not everyone
 * replied" instead of "the timer decided"). */
Test(decide, put_failed_early_by_a_replica_error_is_unavailable_not_timeout)
{
    struct quorum_put q;
    struct decide_outcome o;
    char msg[128];
    cr_assert_eq(quorum_put_init(&q, 3, 3), 0);
    cr_assert_not(quorum_put_reply(&q, 0, true)); /* the local commit */
    cr_assert(quorum_put_reply(&q, 1, false));    /* w = 3 now impossible */
    cr_assert_eq(q.state, QUORUM_FAILED);
    decide_put_failed(&q, msg, sizeof(msg), &o);
    cr_assert_eq(o.err, RK_EUNAVAILABLE, "got %d (%s)", o.err,
                 rk_err_msg(o.err));
    cr_assert_not(o.definite, "the local commit happened");
    cr_assert_eq(o.acks, 1);
    cr_assert(strstr(o.msg, "timed out") == NULL, "%s", o.msg);
    cr_assert(strstr(o.msg, "1 of 3 replicas acknowledged, w is 3") != NULL,
              "%s", o.msg);
}

Test(decide, put_decided_by_the_timer_is_an_indefinite_timeout)
{
    struct quorum_put q;
    struct decide_outcome o;
    char msg[128];
    cr_assert_eq(quorum_put_init(&q, 3, 2), 0);
    cr_assert_not(quorum_put_reply(&q, 0, true));
    cr_assert(quorum_put_timeout(&q));
    decide_put_failed(&q, msg, sizeof(msg), &o);
    cr_assert_eq(o.err, RK_ETIMEOUT);
    cr_assert_not(o.definite);
    cr_assert(strstr(o.msg, "(timed out)") != NULL, "%s", o.msg);
    /* A reply after the timer changes nothing about the classification. */
    cr_assert_not(quorum_put_reply(&q, 1, false));
    decide_put_failed(&q, msg, sizeof(msg), &o);
    cr_assert_eq(o.err, RK_ETIMEOUT);
}

Test(decide, put_failed_when_every_replica_answered_is_unavailable)
{
    struct quorum_put q;
    struct decide_outcome o;
    char msg[128];
    cr_assert_eq(quorum_put_init(&q, 3, 2), 0);
    cr_assert_not(quorum_put_reply(&q, 0, true));
    cr_assert_not(quorum_put_reply(&q, 1, false));
    cr_assert(quorum_put_reply(&q, 2, false));
    decide_put_failed(&q, msg, sizeof(msg), &o);
    cr_assert_eq(o.err, RK_EUNAVAILABLE);
}

Test(decide, get_failed_by_errors_is_unavailable_by_the_timer_timeout)
{
    struct quorum_get g;
    struct decide_outcome o;
    cr_assert_eq(quorum_get_init(&g, 3, 3, false), 0);
    cr_assert(quorum_get_reply(&g, 1, false, NULL, 0));
    decide_get_failed(&g, &o);
    cr_assert_eq(o.err, RK_EUNAVAILABLE);
    cr_assert(o.definite);
    cr_assert_not(quorum_get_timeout(&g), "already decided");
    decide_get_failed(&g, &o);
    cr_assert_eq(o.err, RK_EUNAVAILABLE, "the timer did not decide it");
    quorum_get_free(&g);

    cr_assert_eq(quorum_get_init(&g, 3, 2, false), 0);
    cr_assert_not(quorum_get_reply(&g, 0, true, NULL, 0));
    cr_assert(quorum_get_timeout(&g));
    decide_get_failed(&g, &o);
    cr_assert_eq(o.err, RK_ETIMEOUT);
    cr_assert(o.definite, "a read applies nothing");
    quorum_get_free(&g);
}

Test(decide, forward_lost_in_transport_is_indefinite)
{
    struct decide_outcome o;
    cr_assert_not(decide_fwd_reply(-ENOTCONN, NULL, &o));
    cr_assert_eq(o.err, RK_EUNAVAILABLE);
    cr_assert_not(o.definite);
    cr_assert_not(decide_fwd_reply(RK_ETIMEOUT, NULL, &o));
    cr_assert_eq(o.err, RK_ETIMEOUT);
    cr_assert_not(o.definite);
}

Test(decide, forward_whose_reply_was_skipped_as_too_large_says_so)
{
    struct decide_outcome o;
    cr_assert_not(decide_fwd_reply(RK_ETOO_LARGE, NULL, &o));
    cr_assert_eq(o.err, RK_ETOO_LARGE);
    cr_assert_not(o.definite, "the write may have been applied");
    cr_assert(strstr(o.msg, "max_frame") != NULL, "%s", o.msg);
}

Test(decide, forward_answered_passes_the_coordinators_outcome_through)
{
    struct decide_outcome o;
    struct wire_resp r = {.err = RK_ESIBLING_LIMIT,
                          .definite = true,
                          .msg = "too many",
                          .acks = 0};
    cr_assert_not(decide_fwd_reply(0, &r, &o));
    cr_assert_eq(o.err, RK_ESIBLING_LIMIT);
    cr_assert(o.definite);
    cr_assert_str_eq(o.msg, "too many");
    r = (struct wire_resp){.err = 0};
    cr_assert(decide_fwd_reply(0, &r, &o));
}

Test(decide, fwd_window_refuses_copies_and_forwards_older_than_the_window)
{
    static struct fwd_window w;
    memset(&w, 0, sizeof(w));
    cr_assert(fwd_window_first(&w, 1, 5));
    cr_assert_not(fwd_window_first(&w, 1, 5), "a copy");
    cr_assert(fwd_window_first(&w, 1, 3), "late but new");
    cr_assert_not(fwd_window_first(&w, 1, 3));
    cr_assert(fwd_window_first(&w, 1, 5 + FWD_WINDOW_SIZE));
    cr_assert_not(fwd_window_first(&w, 1, 5), "slid out: too old to tell");
    cr_assert(fwd_window_first(&w, 1, 6), "the oldest in the window, unseen");
    cr_assert_not(fwd_window_first(&w, 1, 6));
}

Test(decide, fwd_window_forgets_a_restarted_forwarder)
{
    static struct fwd_window w;
    memset(&w, 0, sizeof(w));
    cr_assert(fwd_window_first(&w, 1, 9));
    cr_assert(fwd_window_first(&w, 2, 9), "new incarnation");
    cr_assert_not(fwd_window_first(&w, 2, 9));
}

Test(decide, fwd_window_reuses_a_slot_only_after_the_window_moved_past_it)
{
    static struct fwd_window w;
    memset(&w, 0, sizeof(w));
    cr_assert(fwd_window_first(&w, 1, 1));
    /* A big jump clears every bit it passes: 1 + SIZE lands on 1's slot. */
    cr_assert(fwd_window_first(&w, 1, 1 + FWD_WINDOW_SIZE));
    cr_assert(fwd_window_first(&w, 1, 10 * FWD_WINDOW_SIZE));
    cr_assert_not(fwd_window_first(&w, 1, 10 * FWD_WINDOW_SIZE));
    cr_assert(fwd_window_first(&w, 1, 0), "not stamped");
    cr_assert(fwd_window_first(&w, 1, 0));
}

/* ---- replica fanout "exact": decide_pick ------------------------------- */

/* splitmix64: a fixed stream, so the counts below are reproducible. */
static uint64_t test_rand(void *arg)
{
    uint64_t *s = arg;
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* The chosen indices as a bit mask; asserts they are k distinct, in
 * increasing (preference) order, and all up (or forced). */
static uint32_t pick_mask(const bool *up, uint32_t n, uint32_t k,
                          uint32_t force, uint64_t *seed)
{
    uint32_t out[16], mask = 0;
    int got = decide_pick(up, n, k, force, test_rand, seed, out);
    cr_assert_eq(got, (int)k);
    for (uint32_t j = 0; j < k; j++) {
        cr_assert_lt(out[j], n);
        cr_assert(up[out[j]] || out[j] == force, "replica %u is down", out[j]);
        if (j > 0)
            cr_assert_gt(out[j], out[j - 1], "distinct, preference order");
        mask |= 1u << out[j];
    }
    return mask;
}

Test(decide, pick_chooses_exactly_k_distinct_replicas_that_are_up)
{
    bool up[5] = {true, true, false, true, true};
    uint64_t seed = 1;
    for (int i = 0; i < 1000; i++) {
        uint32_t m = pick_mask(up, 5, 2, DECIDE_NO_TARGET, &seed);
        cr_assert_eq(__builtin_popcount(m), 2);
        cr_assert_eq(m & (1u << 2), 0, "never the replica that is down");
    }
    for (int i = 0; i < 100; i++)
        cr_assert_eq(pick_mask(up, 5, 4, DECIDE_NO_TARGET, &seed), 0x1bu,
                     "k = replicas up: all of them");
}

Test(decide, pick_is_uniform_over_the_subsets_of_replicas_up)
{
    /* 4 of 5 up, k = 2: C(4, 2) = 6 subsets, each 1/6 of the draws. */
    bool up[5] = {true, true, true, false, true};
    uint32_t count[32] = {0};
    const int draws = 60000;
    uint64_t seed = 42;
    for (int i = 0; i < draws; i++)
        count[pick_mask(up, 5, 2, DECIDE_NO_TARGET, &seed)]++;
    int subsets = 0;
    for (uint32_t m = 0; m < 32; m++) {
        if (count[m] == 0)
            continue;
        subsets++;
        /* expected 10000, sd ~91: +-5 % is over 5 sd */
        cr_assert(count[m] > 9500 && count[m] < 10500,
                  "subset %#x drawn %u times of %d", m, count[m], draws);
    }
    cr_assert_eq(subsets, 6);
}

Test(decide, pick_keeps_the_forced_replica_and_picks_the_rest_uniformly)
{
    bool up[3] = {true, false, true}; /* the forced one's flag is ignored */
    uint32_t count[8] = {0};
    uint64_t seed = 7;
    for (int i = 0; i < 20000; i++) {
        uint32_t m = pick_mask(up, 3, 2, 1, &seed);
        cr_assert(m & 2u, "the forced replica is always in");
        count[m]++;
    }
    cr_assert_eq(count[0x3] + count[0x6], 20000);
    cr_assert(count[0x3] > 9500 && count[0x3] < 10500, "%u", count[0x3]);
    uint32_t out[3];
    cr_assert_eq(decide_pick(up, 3, 1, 1, test_rand, &seed, out), 1);
    cr_assert_eq(out[0], 1, "k = 1: the forced replica alone");
}

/* What the node does for a put: a uniform coordinator, then w - 1 others
 * around it. The write sets come out uniform over all C(n, w). */
Test(decide, pick_forced_on_a_uniform_coordinator_is_uniform_over_write_sets)
{
    bool up[3] = {true, true, true};
    uint32_t count[8] = {0}, coord[3];
    uint64_t seed = 9;
    for (int i = 0; i < 30000; i++) {
        cr_assert_eq(
            decide_pick(up, 3, 1, DECIDE_NO_TARGET, test_rand, &seed, coord),
            1);
        count[pick_mask(up, 3, 2, coord[0], &seed)]++;
    }
    for (uint32_t m = 3; m < 7; m++) {
        if (m == 4)
            continue; /* {0,1} = 3, {0,2} = 5, {1,2} = 6 */
        cr_assert(count[m] > 9500 && count[m] < 10500, "set %#x: %u", m,
                  count[m]);
    }
}

Test(decide, pick_fails_unavailable_when_fewer_than_k_are_up)
{
    bool up[3] = {true, false, false};
    uint32_t out[3] = {99, 99, 99};
    uint64_t seed = 3;
    cr_assert_eq(decide_pick(up, 3, 2, DECIDE_NO_TARGET, test_rand, &seed, out),
                 RK_EUNAVAILABLE);
    cr_assert_eq(out[0], 99, "out untouched");
    cr_assert_eq(decide_pick(up, 3, 2, 0, test_rand, &seed, out),
                 RK_EUNAVAILABLE, "self forced, no other replica up");
    cr_assert_eq(decide_pick(up, 3, 0, 0, test_rand, &seed, out),
                 RK_EBAD_QUORUM);
    cr_assert_eq(decide_pick(up, 3, 4, 0, test_rand, &seed, out),
                 RK_EBAD_QUORUM);
}
