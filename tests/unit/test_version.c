/*
 * test_version.c - versioning on apply (quorum/version.h) without storage:
 * the timestamp bump, the own-actor checks, the sibling cap and the lww
 * skew check, on records built in memory.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "proto/errors.h"
#include "quorum/version.h"

TestSuite(version, .timeout = 10);

#define ME    7u
#define OTHER 9u

/* A record holding one value per (actor, counter, ts) triple. */
static void one_value(struct dvv *d, struct dvv_entry *e, struct dvv_val *v,
                      uint64_t actor, uint64_t counter, uint64_t ts)
{
    *v = (struct dvv_val){.data = (const uint8_t *)"x", .len = 1, .ts = ts};
    *e = (struct dvv_entry){
        .actor = actor, .counter = counter, .nvals = 1, .vals = v};
    *d = (struct dvv){.n = 1, .e = e};
}

static struct version_update update_of(uint64_t ts)
{
    return (struct version_update){
        .actor = ME,
        .max_siblings = 64,
        .val = {.data = (const uint8_t *)"new", .len = 3, .ts = ts}};
}

Test(version, update_of_nothing_mints_our_first_dot)
{
    struct dvv_arena a;
    struct dvv local = {0}, next;
    struct version_update u = update_of(100);
    dvv_arena_init(&a);
    cr_assert_eq(version_update(&u, &local, &a, &next), 0);
    cr_assert_not(u.existed);
    cr_assert_eq(u.live, 1);
    cr_assert_eq(next.n, 1);
    cr_assert_eq(next.e[0].actor, ME);
    cr_assert_eq(next.e[0].counter, 1);
    cr_assert_eq(next.e[0].vals[0].ts, 100);
    dvv_arena_free(&a);
}

Test(version, update_stamps_past_every_local_value_when_our_clock_is_behind)
{
    struct dvv_arena a;
    struct dvv local, next;
    struct dvv_entry e;
    struct dvv_val v;
    struct version_update u = update_of(100);
    dvv_arena_init(&a);
    one_value(&local, &e, &v, OTHER, 1, 500);
    cr_assert_eq(version_update(&u, &local, &a, &next), 0);
    cr_assert_eq(u.val.ts, 501);
    cr_assert(u.existed);
    cr_assert_eq(u.live, 2, "no context: a sibling");
    dvv_arena_free(&a);
}

Test(version, update_with_a_context_claiming_unissued_dots_of_ours_is_refused)
{
    struct dvv_arena a;
    struct dvv local, next;
    struct dvv_entry e;
    struct dvv_val v;
    struct dvv_vv_entry ce = {.actor = ME, .counter = 5};
    struct version_update u = update_of(100);
    dvv_arena_init(&a);
    one_value(&local, &e, &v, ME, 2, 50);
    u.ctx = (struct dvv_vv){.n = 1, .e = &ce};
    cr_assert_eq(version_update(&u, &local, &a, &next), RK_EBAD_CONTEXT);
    cr_assert(strstr(u.msg, "counter 5") != NULL, "%s", u.msg);
    cr_assert(strstr(u.msg, "issued 2") != NULL, "%s", u.msg);
    /* The same claim within what we issued is fine. */
    ce.counter = 2;
    cr_assert_eq(version_update(&u, &local, &a, &next), 0);
    cr_assert_eq(u.live, 1, "the context covered the old value");
    cr_assert_str_empty(u.msg);
    dvv_arena_free(&a);
}

Test(version, overwrite_ignores_the_context_and_supersedes_everything)
{
    struct dvv_arena a;
    struct dvv local, next;
    struct dvv_entry e;
    struct dvv_val v;
    struct dvv_vv_entry ce = {.actor = ME, .counter = 99};
    struct version_update u = update_of(100);
    dvv_arena_init(&a);
    one_value(&local, &e, &v, OTHER, 3, 10);
    u.overwrite = true;
    u.ctx = (struct dvv_vv){.n = 1, .e = &ce};
    cr_assert_eq(version_update(&u, &local, &a, &next), 0);
    cr_assert_eq(u.live, 1);
    dvv_arena_free(&a);
}

Test(version, update_leaving_more_siblings_than_the_cap_is_refused)
{
    struct dvv_arena a;
    struct dvv local, next;
    struct dvv_entry e;
    struct dvv_val v;
    struct version_update u = update_of(100);
    dvv_arena_init(&a);
    one_value(&local, &e, &v, OTHER, 1, 10);
    u.max_siblings = 1;
    cr_assert_eq(version_update(&u, &local, &a, &next), RK_ESIBLING_LIMIT);
    cr_assert_eq(u.live, 2);
    u.max_siblings = 2;
    cr_assert_eq(version_update(&u, &local, &a, &next), 0);
    dvv_arena_free(&a);
}

Test(version, update_under_lww_keeps_only_the_newest)
{
    struct dvv_arena a;
    struct dvv local, next;
    struct dvv_entry e;
    struct dvv_val v;
    struct version_update u = update_of(100);
    dvv_arena_init(&a);
    one_value(&local, &e, &v, OTHER, 1, 10);
    u.lww = true;
    cr_assert_eq(version_update(&u, &local, &a, &next), 0);
    cr_assert_eq(u.live, 1);
    cr_assert_eq(u.lww_dropped, 1);
    dvv_arena_free(&a);
}

Test(version, merge_of_a_value_from_the_future_is_refused_under_lww)
{
    struct dvv_arena a;
    struct dvv local = {0}, in, next;
    struct dvv_entry e;
    struct dvv_val v;
    struct version_merge m = {.actor = ME, .lww = true};
    dvv_arena_init(&a);
    m.max_ts = version_max_ts(1000, 60);
    one_value(&in, &e, &v, OTHER, 1, m.max_ts + 1);
    cr_assert_eq(version_merge(&m, &local, &in, &a, &next), RK_ECLOCK_SKEW);
    v.ts = m.max_ts;
    cr_assert_eq(version_merge(&m, &local, &in, &a, &next), 0);
    cr_assert(m.changed);
    m.max_ts = 0; /* no limit */
    v.ts = UINT64_MAX / 2;
    cr_assert_eq(version_merge(&m, &local, &in, &a, &next), 0);
    dvv_arena_free(&a);
}

Test(version, merge_claiming_unissued_dots_of_ours_is_forbidden)
{
    struct dvv_arena a;
    struct dvv local, in, next;
    struct dvv_entry le, ie;
    struct dvv_val lv, iv;
    struct version_merge m = {.actor = ME};
    dvv_arena_init(&a);
    one_value(&local, &le, &lv, ME, 1, 10);
    one_value(&in, &ie, &iv, ME, 4, 20);
    cr_assert_eq(version_merge(&m, &local, &in, &a, &next), RK_EFORBIDDEN);
    cr_assert(strstr(m.msg, "counter 4") != NULL, "%s", m.msg);
    cr_assert(strstr(m.msg, "issued 1") != NULL, "%s", m.msg);
    dvv_arena_free(&a);
}

Test(version, merge_of_what_is_already_stored_changes_nothing)
{
    struct dvv_arena a;
    struct dvv local, next;
    struct dvv_entry e;
    struct dvv_val v;
    struct version_merge m = {.actor = ME};
    dvv_arena_init(&a);
    one_value(&local, &e, &v, OTHER, 2, 10);
    cr_assert_eq(version_merge(&m, &local, &local, &a, &next), 0);
    cr_assert_not(m.changed);
    cr_assert_eq(m.live, 1);
    dvv_arena_free(&a);
}
