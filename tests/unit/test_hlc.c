/*
 * test_hlc.c - hybrid logical clocks: strictly increasing under a backwards
 * wall clock, observing moves past remote timestamps, far-future timestamps
 * are rejected, logical overflow carries into the physical part.
 */
#include <criterion/criterion.h>
#include <stddef.h>

#include "proto/errors.h"
#include "quorum/hlc.h"

TestSuite(hlc, .timeout = 10);

#define TS(ms, l) (((uint64_t)(ms) << HLC_LOGICAL_BITS) | (l))

Test(hlc, now_follows_the_wall_clock_when_it_moves_forward)
{
    struct hlc c = {0};
    cr_assert_eq(hlc_now(&c, 1000), TS(1000, 0));
    cr_assert_eq(hlc_now(&c, 1005), TS(1005, 0));
    cr_assert_eq(hlc_physical_ms(hlc_now(&c, 2000)), 2000);
}

Test(hlc, now_is_strictly_increasing_when_the_wall_clock_goes_backwards)
{
    struct hlc c = {0};
    uint64_t a = hlc_now(&c, 5000);
    uint64_t b = hlc_now(&c, 4000);
    uint64_t d = hlc_now(&c, 4000);
    uint64_t e = hlc_now(&c, 5000);
    cr_assert_gt(b, a);
    cr_assert_gt(d, b);
    cr_assert_gt(e, d);
    cr_assert_eq(b, TS(5000, 1));
    cr_assert_eq(e, TS(5000, 3));
    cr_assert_eq(hlc_now(&c, 5001), TS(5001, 0));
}

Test(hlc, observe_moves_the_clock_past_a_remote_timestamp)
{
    struct hlc c = {0};
    hlc_now(&c, 1000);
    cr_assert_eq(hlc_observe(&c, TS(1200, 7), 1000, 500), 0);
    uint64_t t = hlc_now(&c, 1000);
    cr_assert_gt(t, TS(1200, 7));
    cr_assert_eq(t, TS(1200, 8));
    /* An older remote timestamp changes nothing. */
    cr_assert_eq(hlc_observe(&c, TS(10, 0), 1000, 500), 0);
    cr_assert_eq(hlc_now(&c, 1000), TS(1200, 9));
}

Test(hlc, observe_rejects_far_future_timestamps_and_keeps_the_clock)
{
    struct hlc c = {0};
    uint64_t before = hlc_now(&c, 1000);
    cr_assert_eq(hlc_observe(&c, TS(1501, 0), 1000, 500), RK_EBAD_REQUEST);
    cr_assert_eq(c.last, before);
    cr_assert_eq(hlc_observe(&c, UINT64_MAX, 1000, 500), RK_EBAD_REQUEST);
    cr_assert_eq(c.last, before);
    /* Exactly max_drift_ms ahead is accepted. */
    cr_assert_eq(hlc_observe(&c, TS(1500, 0xffff), 1000, 500), 0);
    cr_assert_eq(c.last, TS(1500, 0xffff));
    /* A huge drift allowance does not overflow. */
    cr_assert_eq(hlc_observe(&c, TS(1600, 0), 1000, UINT64_MAX), 0);
}

Test(hlc, logical_overflow_carries_into_the_physical_part)
{
    struct hlc c = {TS(1000, 0xfffe)};
    cr_assert_eq(hlc_now(&c, 900), TS(1000, 0xffff));
    uint64_t t = hlc_now(&c, 900);
    cr_assert_eq(t, TS(1001, 0));
    cr_assert_eq(hlc_physical_ms(t), 1001);
    /* The wall clock catching up does not go back below the carry. */
    cr_assert_eq(hlc_now(&c, 1001), TS(1001, 1));
    cr_assert_eq(hlc_now(&c, 1002), TS(1002, 0));
}

Test(hlc, timestamps_strictly_increase_under_random_clocks_and_observes)
{
    uint64_t s = 88172645463325252ull;
    struct hlc c = {0};
    uint64_t wall = 1000000, prev = 0;
    for (int i = 0; i < 20000; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        wall = wall + (s % 7) - 3; /* drifts both ways */
        if (s % 5 == 0) {
            uint64_t remote = TS(wall + (s >> 8) % 40 - 20, (s >> 20) & 0xff);
            int rc = hlc_observe(&c, remote, wall, 10);
            cr_assert(rc == 0 || rc == RK_EBAD_REQUEST);
            cr_assert_geq(c.last, prev);
            cr_assert_leq(hlc_physical_ms(c.last), wall + 20 + i);
            if (rc == 0)
                cr_assert_geq(c.last, remote);
            prev = c.last;
            continue;
        }
        uint64_t t = hlc_now(&c, wall);
        cr_assert_gt(t, prev);
        cr_assert_geq(hlc_physical_ms(t), wall);
        prev = t;
    }
}

Test(hlc, the_last_timestamp_saturates_instead_of_wrapping)
{
    struct hlc c = {UINT64_MAX - 1};
    cr_assert_eq(hlc_now(&c, 0), UINT64_MAX);
    cr_assert_eq(hlc_now(&c, UINT64_MAX), UINT64_MAX);
}
