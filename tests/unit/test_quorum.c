/*
 * test_quorum.c - the coordinator state machines without sockets: scripted
 * replies, drops, duplicates, timeouts and late replies.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "proto/errors.h"
#include "quorum/quorum.h"

TestSuite(quorum, .timeout = 10);

Test(quorum, quorum_outside_one_to_n_is_refused)
{
    struct quorum_put p;
    struct quorum_get g;
    cr_assert_eq(quorum_put_init(&p, 3, 0), RK_EBAD_QUORUM);
    cr_assert_eq(quorum_put_init(&p, 3, 4), RK_EBAD_QUORUM);
    cr_assert_eq(quorum_get_init(&g, 3, 0, false), RK_EBAD_QUORUM);
    cr_assert_eq(quorum_get_init(&g, 3, 4, false), RK_EBAD_QUORUM);
    cr_assert_eq(quorum_put_init(&p, QUORUM_MAX_N + 1, 1), RK_EBAD_QUORUM);
    cr_assert_eq(quorum_put_init(&p, 3, 3), 0);
}

Test(quorum, put_succeeds_exactly_when_the_wth_ack_arrives)
{
    struct quorum_put p;
    cr_assert_eq(quorum_put_init(&p, 3, 2), 0);
    cr_assert_not(quorum_put_reply(&p, 0, true));
    cr_assert_eq(p.state, QUORUM_PENDING);
    cr_assert(quorum_put_reply(&p, 2, true), "second ack decides");
    cr_assert_eq(p.state, QUORUM_OK);
    cr_assert_not(quorum_put_reply(&p, 1, true), "a late ack decides nothing");
    cr_assert_eq(p.acks, 3);
    cr_assert_not(quorum_put_timeout(&p), "timeout after success is moot");
    cr_assert_eq(p.state, QUORUM_OK);
}

Test(quorum, put_fails_as_soon_as_w_is_out_of_reach)
{
    struct quorum_put p;
    cr_assert_eq(quorum_put_init(&p, 3, 2), 0);
    cr_assert_not(quorum_put_reply(&p, 0, true));
    cr_assert_not(quorum_put_reply(&p, 1, false), "2 of 3 still possible");
    cr_assert(quorum_put_reply(&p, 2, false), "now w=2 is unreachable");
    cr_assert_eq(p.state, QUORUM_FAILED);
    cr_assert_eq(p.acks, 1);
}

Test(quorum, duplicate_and_out_of_range_replies_are_ignored)
{
    struct quorum_put p;
    cr_assert_eq(quorum_put_init(&p, 3, 2), 0);
    cr_assert_not(quorum_put_reply(&p, 1, true));
    cr_assert_not(quorum_put_reply(&p, 1, true), "duplicate");
    cr_assert_not(quorum_put_reply(&p, 7, true), "no replica 7");
    cr_assert_eq(p.acks, 1);
    cr_assert_eq(p.state, QUORUM_PENDING);
}

Test(quorum, put_timeout_fails_a_pending_write_once)
{
    struct quorum_put p;
    cr_assert_eq(quorum_put_init(&p, 3, 3), 0);
    cr_assert_not(quorum_put_reply(&p, 0, true));
    cr_assert(quorum_put_timeout(&p));
    cr_assert_eq(p.state, QUORUM_FAILED);
    cr_assert_not(quorum_put_timeout(&p));
    cr_assert_not(quorum_put_reply(&p, 1, true), "decided already");
}

Test(quorum, w_of_one_is_decided_by_the_first_ack)
{
    struct quorum_put p;
    cr_assert_eq(quorum_put_init(&p, 3, 1), 0);
    cr_assert(quorum_put_reply(&p, 1, true));
    cr_assert_eq(p.state, QUORUM_OK);
}

/* Builds an encoded record holding one value written by actor. */
static void record(uint64_t actor, const char *val, uint8_t **out, size_t *len)
{
    struct dvv_arena a;
    struct dvv empty = {0}, d;
    struct dvv_vv ctx = {0};
    struct dvv_val v = {(const uint8_t *)val, (uint32_t)strlen(val), 0, 1};
    dvv_arena_init(&a);
    cr_assert_eq(dvv_update(&empty, &ctx, v, actor, &a, &d), 0);
    cr_assert_eq(dvv_encode(&d, out, len), 0);
    dvv_arena_free(&a);
}

/* Builds the record of `base` superseded by a write of val by actor. */
static void record_after(const uint8_t *base, size_t blen, uint64_t actor,
                         const char *val, uint8_t **out, size_t *len)
{
    struct dvv_arena a;
    struct dvv d, n;
    struct dvv_vv ctx;
    struct dvv_val v = {(const uint8_t *)val, (uint32_t)strlen(val), 0, 2};
    dvv_arena_init(&a);
    cr_assert_eq(dvv_decode(base, blen, &a, &d), 0);
    cr_assert_eq(dvv_join(&d, &a, &ctx), 0);
    cr_assert_eq(dvv_update(&d, &ctx, v, actor, &a, &n), 0);
    cr_assert_eq(dvv_encode(&n, out, len), 0);
    dvv_arena_free(&a);
}

Test(quorum, get_answers_after_r_replies_with_their_merge)
{
    struct quorum_get g;
    uint8_t *r1, *r2;
    size_t l1, l2;
    record(1, "old", &r1, &l1);
    record_after(r1, l1, 2, "new", &r2, &l2);

    cr_assert_eq(quorum_get_init(&g, 3, 2, false), 0);
    cr_assert_not(quorum_get_reply(&g, 0, true, r1, l1));
    cr_assert(quorum_get_reply(&g, 1, true, r2, l2));
    cr_assert_eq(g.state, QUORUM_OK);
    cr_assert_eq(dvv_live(&g.merged), 1, "new supersedes old");
    cr_assert_not(quorum_get_finished(&g), "replica 2 may still answer");
    free(r1);
    free(r2);
    quorum_get_free(&g);
}

Test(quorum, late_replies_are_merged_and_stale_replicas_are_repaired)
{
    struct quorum_get g;
    uint8_t *r1, *r2;
    size_t l1, l2;
    record(1, "old", &r1, &l1);
    record_after(r1, l1, 2, "new", &r2, &l2);

    cr_assert_eq(quorum_get_init(&g, 3, 1, false), 0);
    cr_assert(quorum_get_reply(&g, 0, true, r1, l1), "r=1: decided by one");
    /* After the client was answered: a newer copy and a missing one. */
    cr_assert_not(quorum_get_reply(&g, 1, true, r2, l2));
    cr_assert_not(quorum_get_reply(&g, 2, true, NULL, 0));
    cr_assert(quorum_get_finished(&g));
    uint32_t rep = quorum_get_repairs(&g);
    cr_assert_eq(rep, (1u << 0) | (1u << 2),
                 "the stale and the empty replica are repaired, not the "
                 "up-to-date one (mask %x)",
                 rep);
    free(r1);
    free(r2);
    quorum_get_free(&g);
}

Test(quorum, get_of_a_key_nobody_has_is_not_found_and_needs_no_repair)
{
    struct quorum_get g;
    cr_assert_eq(quorum_get_init(&g, 3, 2, false), 0);
    cr_assert_not(quorum_get_reply(&g, 0, true, NULL, 0));
    cr_assert(quorum_get_reply(&g, 2, true, NULL, 0));
    cr_assert_eq(g.state, QUORUM_OK);
    cr_assert_eq(dvv_live(&g.merged), 0);
    cr_assert_not(quorum_get_reply(&g, 1, true, NULL, 0));
    cr_assert_eq(quorum_get_repairs(&g), 0);
    quorum_get_free(&g);
}

Test(quorum, get_fails_when_too_many_replicas_fail_or_time_out)
{
    struct quorum_get g;
    cr_assert_eq(quorum_get_init(&g, 3, 2, false), 0);
    cr_assert_not(quorum_get_reply(&g, 0, false, NULL, 0));
    cr_assert(quorum_get_reply(&g, 1, false, NULL, 0));
    cr_assert_eq(g.state, QUORUM_FAILED);
    quorum_get_free(&g);

    cr_assert_eq(quorum_get_init(&g, 3, 2, false), 0);
    cr_assert_not(quorum_get_reply(&g, 0, true, NULL, 0));
    cr_assert(quorum_get_timeout(&g));
    cr_assert_eq(g.state, QUORUM_FAILED);
    cr_assert(quorum_get_finished(&g));
    cr_assert_not(quorum_get_reply(&g, 1, true, NULL, 0),
                  "nothing after the timeout");
    quorum_get_free(&g);
}

Test(quorum, a_corrupt_reply_counts_as_a_failure)
{
    struct quorum_get g;
    const uint8_t junk[] = {0x92, 0x07, 0xc1};
    cr_assert_eq(quorum_get_init(&g, 2, 2, false), 0);
    cr_assert(quorum_get_reply(&g, 0, true, junk, sizeof(junk)));
    cr_assert_eq(g.state, QUORUM_FAILED);
    cr_assert_neq(g.err, 0);
    quorum_get_free(&g);
}

Test(quorum, concurrent_copies_merge_into_siblings)
{
    struct quorum_get g;
    uint8_t *a, *b;
    size_t la, lb;
    record(1, "x", &a, &la);
    record(2, "y", &b, &lb);
    cr_assert_eq(quorum_get_init(&g, 2, 2, false), 0);
    cr_assert_not(quorum_get_reply(&g, 0, true, a, la));
    cr_assert(quorum_get_reply(&g, 1, true, b, lb));
    cr_assert_eq(dvv_live(&g.merged), 2, "neither write is lost");
    cr_assert_eq(quorum_get_repairs(&g), 3, "each lacks the other's write");
    free(a);
    free(b);
    quorum_get_free(&g);
}

/* Issue 9 finding 4: a node whose store a crash rolled back mints the same
 * dot (actor 1, counter 1) again for another value. The replica holding the
 * other value must be repaired: the copies are not equal just because their
 * dots are. */
Test(quorum, a_reissued_dot_with_another_value_is_repaired)
{
    struct quorum_get g;
    uint8_t *a, *b;
    size_t la, lb;
    record(1, "lost", &a, &la);
    record(1, "reissued", &b, &lb);
    cr_assert_eq(quorum_get_init(&g, 2, 2, false), 0);
    cr_assert_not(quorum_get_reply(&g, 0, true, a, la));
    cr_assert(quorum_get_reply(&g, 1, true, b, lb));
    cr_assert(quorum_get_finished(&g));
    cr_assert_eq(dvv_count(&g.merged), 1, "one dot, one value");
    uint32_t rep = quorum_get_repairs(&g);
    cr_assert_neq(rep, 0, "the copies differ: one replica is repaired");
    cr_assert_neq(rep, 3, "the copy equal to the merge needs nothing");
    free(a);
    free(b);
    quorum_get_free(&g);
}
