/*
 * test_bench_gen.c - ringkv-bench's arithmetic (client/bench.h): zipfian
 * and uniform key shapes for a fixed seed, the PBS closed form against
 * hand-computed values, open-loop intended times and latency from them
 * when the sender is late, the staleness classifier, versioned values and
 * the RESP reply decoder. No sockets, no clock.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "client/bench.h"
#include "proto/errors.h"

TestSuite(bench_gen, .timeout = 30);

/* ---- key distributions ----------------------------------------------------
 */

#define ZN       1000
#define ZSAMPLES 2000000

Test(bench_gen, zipf_rank_frequencies_follow_theta)
{
    static uint64_t count[ZN];
    struct bench_zipf z;
    struct bench_rng r;
    const double theta = 0.99;
    cr_assert_eq(bench_zipf_init(&z, ZN, theta), 0);
    bench_rng_seed(&r, 42);
    for (int i = 0; i < ZSAMPLES; i++) {
        uint64_t k = bench_zipf_rank(&z, bench_rng_unit(&r));
        cr_assert_lt(k, ZN);
        count[k]++;
    }
    /* P(rank 0) = 1 / zeta(n, theta), zeta summed here independently;
     * rank 0 : rank 1 = 2^theta */
    double zeta = 0;
    for (int i = 1; i <= ZN; i++)
        zeta += pow(i, -theta);
    double p0 = (double)count[0] / ZSAMPLES;
    cr_assert(fabs(p0 - 1.0 / zeta) < 0.02 / zeta, "p0 %f want %f", p0,
              1.0 / zeta);
    double r01 = (double)count[0] / (double)count[1];
    cr_assert(fabs(r01 - pow(2, theta)) < 0.05 * pow(2, theta), "%f", r01);
    /* the tail: the slope of log(frequency) over log(rank + 1) for ranks
     * 2..200 (Gray's approximation there) is -theta within 0.1 */
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    int m = 0;
    for (int k = 2; k < 200; k++) {
        double x = log(k + 1), y = log((double)count[k]);
        sx += x;
        sy += y;
        sxx += x * x;
        sxy += x * y;
        m++;
    }
    double slope = (m * sxy - sx * sy) / (m * sxx - sx * sx);
    cr_assert(fabs(slope + theta) < 0.1, "slope %f", slope);
}

Test(bench_gen, zipf_with_a_smaller_theta_is_flatter)
{
    struct bench_zipf hot, flat;
    cr_assert_eq(bench_zipf_init(&hot, ZN, 0.99), 0);
    cr_assert_eq(bench_zipf_init(&flat, ZN, 0.5), 0);
    struct bench_rng r1, r2;
    bench_rng_seed(&r1, 1);
    bench_rng_seed(&r2, 1);
    uint64_t hot0 = 0, flat0 = 0;
    for (int i = 0; i < 200000; i++) {
        hot0 += bench_zipf_rank(&hot, bench_rng_unit(&r1)) == 0;
        flat0 += bench_zipf_rank(&flat, bench_rng_unit(&r2)) == 0;
    }
    cr_assert_gt(hot0, 3 * flat0);
}

Test(bench_gen, zipf_refuses_bad_parameters)
{
    struct bench_zipf z;
    cr_assert_eq(bench_zipf_init(&z, 0, 0.5), -EINVAL);
    cr_assert_eq(bench_zipf_init(&z, 10, 0.0), -EINVAL);
    cr_assert_eq(bench_zipf_init(&z, 10, 1.0), -EINVAL);
    cr_assert_eq(bench_zipf_init(&z, 10, NAN), -EINVAL);
}

Test(bench_gen, scrambling_spreads_ranks_over_the_key_space)
{
    for (uint64_t k = 0; k < 1000; k++)
        cr_assert_lt(bench_zipf_scramble(k, 777), 777);
    /* the first ranks are not neighbours */
    uint64_t a = bench_zipf_scramble(0, 1000000);
    uint64_t b = bench_zipf_scramble(1, 1000000);
    cr_assert(a != b && (a > b ? a - b : b - a) > 1);
}

Test(bench_gen, uniform_keys_are_flat)
{
    static uint64_t count[100];
    struct bench_rng r;
    bench_rng_seed(&r, 5);
    for (int i = 0; i < 1000000; i++)
        count[bench_rng_next(&r) % 100]++;
    /* 10000 each; 5 % is five standard deviations */
    for (int k = 0; k < 100; k++)
        cr_assert(count[k] > 9500 && count[k] < 10500, "key %d: %llu", k,
                  (unsigned long long)count[k]);
}

Test(bench_gen, the_same_seed_gives_the_same_stream)
{
    struct bench_rng a, b;
    bench_rng_seed(&a, 123);
    bench_rng_seed(&b, 123);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(bench_rng_next(&a), bench_rng_next(&b));
    for (int i = 0; i < 1000; i++) {
        double u = bench_rng_unit(&a);
        cr_assert(u >= 0.0 && u < 1.0);
    }
}

/* ---- the PBS closed form
 * ------------------------------------------------------ */

Test(bench_gen, pbs_closed_form_matches_hand_computed_values)
{
    /* 1 - (C(n-w, r) / C(n, r))^k */
    cr_assert_float_eq(bench_pbs_closed_form(3, 1, 1, 1), 1.0 / 3, 1e-12);
    cr_assert_float_eq(bench_pbs_closed_form(3, 1, 1, 2), 5.0 / 9, 1e-12);
    cr_assert_float_eq(bench_pbs_closed_form(3, 1, 2, 1), 2.0 / 3, 1e-12);
    cr_assert_float_eq(bench_pbs_closed_form(3, 2, 1, 1), 2.0 / 3, 1e-12);
    cr_assert_float_eq(bench_pbs_closed_form(3, 2, 2, 1), 1.0, 1e-12);
    cr_assert_float_eq(bench_pbs_closed_form(3, 1, 3, 1), 1.0, 1e-12);
    /* n=5 r=w=2: C(3,2)/C(5,2) = 3/10 */
    cr_assert_float_eq(bench_pbs_closed_form(5, 2, 2, 1), 0.7, 1e-12);
    cr_assert_float_eq(bench_pbs_closed_form(5, 2, 2, 3), 1 - 0.027, 1e-12);
    /* n=10 r=w=1: 9/10 miss */
    cr_assert_float_eq(bench_pbs_closed_form(10, 1, 1, 1), 0.1, 1e-12);
    cr_assert_float_eq(bench_pbs_closed_form(10, 1, 1, 2), 0.19, 1e-12);
}

Test(bench_gen, pbs_closed_form_refuses_impossible_quorums)
{
    cr_assert_eq(bench_pbs_closed_form(3, 4, 1, 1), -1.0);
    cr_assert_eq(bench_pbs_closed_form(3, 1, 4, 1), -1.0);
    cr_assert_eq(bench_pbs_closed_form(3, 0, 1, 1), -1.0);
    cr_assert_eq(bench_pbs_closed_form(3, 1, 1, 0), -1.0);
}

/* ---- open-loop scheduling --------------------------------------------------
 */

#define MS 1000000ull

Test(bench_gen, intended_times_are_evenly_spaced_from_the_start)
{
    const uint64_t start = 5 * MS;
    cr_assert_eq(bench_sched_intended(start, 1000, 0), start);
    cr_assert_eq(bench_sched_intended(start, 1000, 1), start + MS);
    cr_assert_eq(bench_sched_intended(start, 1000, 250), start + 250 * MS);
    cr_assert_eq(bench_sched_intended(start, 4000, 3), start + 750000);
}

Test(bench_gen, due_counts_every_request_whose_time_has_come)
{
    const uint64_t start = 7 * MS;
    cr_assert_eq(bench_sched_due(start, 1000, start - 1), 0);
    cr_assert_eq(bench_sched_due(start, 1000, start), 1);
    cr_assert_eq(bench_sched_due(start, 1000, start + MS - 1), 1);
    cr_assert_eq(bench_sched_due(start, 1000, start + MS), 2);
    cr_assert_eq(bench_sched_due(start, 1000, start + 5 * MS - 1), 5);
    cr_assert_eq(bench_sched_due(start, 3, start + 1000 * MS), 4);
    /* consistent with the intended times for an awkward rate */
    for (uint64_t now = start; now < start + 50 * MS; now += 77777) {
        uint64_t due = bench_sched_due(start, 333.3, now);
        cr_assert_leq(bench_sched_intended(start, 333.3, due - 1), now);
        cr_assert_gt(bench_sched_intended(start, 333.3, due), now);
    }
}

Test(bench_gen, a_late_sender_shows_up_as_latency_in_open_loop)
{
    /* rate 1000/s: requests 0..9 intended at 0..9 ms; the generator stalls
     * and sends all ten at 10 ms; each answer takes 100 us. */
    const uint64_t start = 0;
    for (uint64_t i = 0; i < 10; i++) {
        uint64_t intended = bench_sched_intended(start, 1000, i);
        uint64_t sent = 10 * MS, done = sent + 100000;
        cr_assert_eq(bench_latency(true, intended, sent, done), done - i * MS);
        /* closed loop would only see the service time */
        cr_assert_eq(bench_latency(false, intended, sent, done), 100000);
    }
    /* an answer never counts negative */
    cr_assert_eq(bench_latency(true, 5 * MS, 5 * MS, 4 * MS), 0);
}

/* ---- staleness
 * ----------------------------------------------------------------- */

Test(bench_gen, versioned_values_round_trip)
{
    uint8_t buf[64];
    uint64_t v = 0;
    bench_value_fill(buf, sizeof(buf), 0x0102030405060708ull);
    cr_assert_eq(bench_value_version(buf, sizeof(buf), &v), 0);
    cr_assert_eq(v, 0x0102030405060708ull);
    bench_value_fill(buf, BENCH_STALE_MIN_VAL, 7);
    cr_assert_eq(bench_value_version(buf, BENCH_STALE_MIN_VAL, &v), 0);
    cr_assert_eq(v, 7);
    cr_assert_eq(bench_value_version(buf, BENCH_STALE_MIN_VAL - 1, &v),
                 -EINVAL);
    memset(buf, 'x', sizeof(buf));
    cr_assert_eq(bench_value_version(buf, sizeof(buf), &v), -EINVAL);
}

Test(bench_gen, reads_are_classified_by_versions_behind)
{
    const double delays[] = {0, 10};
    struct bench_stale s;
    bench_stale_init(&s, delays, 2);
    uint64_t seen_a = 0, seen_b = 0;
    bench_stale_record(&s, 0, 5, 5, false, &seen_a);  /* latest */
    bench_stale_record(&s, 0, 5, 6, false, &seen_a);  /* newer: fine */
    bench_stale_record(&s, 0, 5, 3, false, &seen_b);  /* 2 behind */
    bench_stale_record(&s, 1, 5, 0, false, &seen_b);  /* not found: 5 */
    bench_stale_record(&s, 1, 20, 1, false, &seen_b); /* >= MAX_K */
    cr_assert_eq(s.reads[0], 3);
    cr_assert_eq(s.consistent[0], 2);
    cr_assert_eq(s.k[0][0], 2);
    cr_assert_eq(s.k[0][2], 1);
    cr_assert_eq(s.reads[1], 2);
    cr_assert_eq(s.consistent[1], 0);
    cr_assert_eq(s.k[1][5], 1);
    cr_assert_eq(s.k[1][BENCH_MAX_K], 1);
    /* b read 3, then 0 and 1: two monotonic-read violations */
    cr_assert_eq(s.mono_violations, 2);
    cr_assert_eq(seen_a, 6);
    cr_assert_eq(seen_b, 3);
    cr_assert_eq(s.ryw_violations, 0);
}

Test(bench_gen, the_writer_reading_an_older_version_violates_ryw)
{
    const double delays[] = {0};
    struct bench_stale s, sum;
    bench_stale_init(&s, delays, 1);
    bench_stale_init(&sum, delays, 1);
    uint64_t seen = 0;
    bench_stale_record(&s, 0, 4, 4, true, &seen);
    bench_stale_record(&s, 0, 5, 4, true, &seen);
    cr_assert_eq(s.ryw_violations, 1);
    cr_assert_eq(s.mono_violations, 0);
    bench_stale_record(&s, 3, 5, 4, true, &seen); /* no such delay */
    cr_assert_eq(s.reads[0], 2);
    bench_stale_merge(&sum, &s);
    bench_stale_merge(&sum, &s);
    cr_assert_eq(sum.reads[0], 4);
    cr_assert_eq(sum.ryw_violations, 2);
    cr_assert_eq(sum.k[0][1], 2);
}

/* ---- RESP replies
 * ------------------------------------------------------------- */

static int dec(const char *s, struct bench_resp_reply *r)
{
    return bench_resp_reply((const uint8_t *)s, strlen(s), 1 << 20, r);
}

Test(bench_gen, resp_replies_decode)
{
    struct bench_resp_reply r;
    cr_assert_eq(dec("+OK\r\n", &r), 5);
    cr_assert_eq(r.type, BENCH_RESP_SIMPLE);
    cr_assert_eq(r.len, 2);
    cr_assert_eq(dec("-ERR no\r\n+OK\r\n", &r), 9);
    cr_assert_eq(r.type, BENCH_RESP_ERROR);
    cr_assert_eq(memcmp(r.p, "ERR no", 6), 0);
    cr_assert_eq(dec(":-12\r\n", &r), 6);
    cr_assert_eq(r.ival, -12);
    cr_assert_eq(dec("$3\r\nabc\r\n", &r), 9);
    cr_assert_eq(r.type, BENCH_RESP_BULK);
    cr_assert_eq(memcmp(r.p, "abc", 3), 0);
    cr_assert_eq(dec("$0\r\n\r\n", &r), 6);
    cr_assert_eq(r.len, 0);
    cr_assert_eq(dec("$-1\r\n", &r), 5);
    cr_assert_eq(r.type, BENCH_RESP_NIL);
    cr_assert_eq(dec("*-1\r\n", &r), 5);
    cr_assert_eq(r.type, BENCH_RESP_NIL);
}

Test(bench_gen, resp_partial_replies_ask_for_more)
{
    struct bench_resp_reply r;
    cr_assert_eq(dec("", &r), 0);
    cr_assert_eq(dec("+OK", &r), 0);
    cr_assert_eq(dec("+OK\r", &r), 0);
    cr_assert_eq(dec("$3\r\nab", &r), 0);
    cr_assert_eq(dec("$3\r\nabc\r", &r), 0);
}

Test(bench_gen, resp_bad_replies_are_protocol_errors)
{
    struct bench_resp_reply r;
    cr_assert_eq(dec("?x\r\n", &r), RK_EPROTO);
    cr_assert_eq(dec("\r\n", &r), RK_EPROTO);
    cr_assert_eq(dec(":1x\r\n", &r), RK_EPROTO);
    cr_assert_eq(dec(":\r\n", &r), RK_EPROTO);
    cr_assert_eq(dec("$-2\r\n", &r), RK_EPROTO);
    cr_assert_eq(dec("$99999999999999999999\r\n", &r), RK_EPROTO);
    cr_assert_eq(dec("$2000000\r\n", &r), RK_EPROTO); /* over max_bulk */
    cr_assert_eq(dec("$3\r\nabcXY", &r), RK_EPROTO);
    cr_assert_eq(dec("*2\r\n", &r), RK_EPROTO);
    /* a header line that never ends */
    static char line[5000];
    memset(line, 'a', sizeof(line) - 1);
    line[0] = '+';
    cr_assert_eq(dec(line, &r), RK_EPROTO);
}
