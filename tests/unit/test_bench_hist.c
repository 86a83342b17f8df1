/*
 * test_bench_hist.c - ringkv-bench's latency histogram (client/bench.h):
 * every percentile within 1 % of the exact one on uniform, exponential and
 * fixed samples; buckets never wider than 1/BENCH_HIST_SUB of their value;
 * merging two histograms equals recording everything in one.
 */
#include <math.h>
#include <stdlib.h>

#include <criterion/criterion.h>

#include "client/bench.h"

TestSuite(bench_hist, .timeout = 30);

#define NSAMPLES 200000

static const double PCTS[] = {1, 10, 50, 90, 99, 99.9, 99.99, 100};

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The exact percentile: the value at rank ceil(p% of n) of the sorted
 * samples, the definition bench_hist_pct() approximates. */
static uint64_t exact_pct(const uint64_t *sorted, size_t n, double p)
{
    size_t rank = (size_t)ceil(p / 100.0 * (double)n);
    if (rank < 1)
        rank = 1;
    return sorted[rank - 1];
}

static void check_all_within_1pct(uint64_t *v, size_t n)
{
    struct bench_hist *h = calloc(1, sizeof(*h));
    cr_assert_not_null(h);
    for (size_t i = 0; i < n; i++)
        bench_hist_add(h, v[i]);
    qsort(v, n, sizeof(*v), cmp_u64);
    cr_assert_eq(h->n, n);
    cr_assert_eq(h->min, v[0]);
    cr_assert_eq(h->max, v[n - 1]);
    for (size_t i = 0; i < sizeof(PCTS) / sizeof(PCTS[0]); i++) {
        double want = (double)exact_pct(v, n, PCTS[i]);
        double got = (double)bench_hist_pct(h, PCTS[i]);
        cr_assert(fabs(got - want) <= 0.01 * want,
                  "p%g: histogram %.0f, exact %.0f", PCTS[i], got, want);
    }
    free(h);
}

Test(bench_hist, uniform_samples_are_within_one_percent)
{
    static uint64_t v[NSAMPLES];
    struct bench_rng r;
    bench_rng_seed(&r, 7);
    for (size_t i = 0; i < NSAMPLES; i++)
        v[i] = 1 + bench_rng_next(&r) % 10000000; /* 1 ns .. 10 ms */
    check_all_within_1pct(v, NSAMPLES);
}

Test(bench_hist, exponential_samples_are_within_one_percent)
{
    static uint64_t v[NSAMPLES];
    struct bench_rng r;
    bench_rng_seed(&r, 8);
    for (size_t i = 0; i < NSAMPLES; i++)
        v[i] = (uint64_t)(-200000.0 * log(1.0 - bench_rng_unit(&r))) + 1;
    check_all_within_1pct(v, NSAMPLES);
}

Test(bench_hist, fixed_values_come_back_exactly)
{
    const uint64_t fixed[] = {
        0, 1, 255, 256, 12345, 999999937ull, (uint64_t)1 << 40, UINT64_MAX};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        struct bench_hist *h = calloc(1, sizeof(*h));
        cr_assert_not_null(h);
        for (int k = 0; k < 1000; k++)
            bench_hist_add(h, fixed[i]);
        for (size_t p = 0; p < sizeof(PCTS) / sizeof(PCTS[0]); p++)
            cr_assert_eq(bench_hist_pct(h, PCTS[p]), fixed[i], "value %llu p%g",
                         (unsigned long long)fixed[i], PCTS[p]);
        free(h);
    }
}

Test(bench_hist, two_fixed_values_split_at_their_share)
{
    struct bench_hist *h = calloc(1, sizeof(*h));
    cr_assert_not_null(h);
    for (int k = 0; k < 900; k++)
        bench_hist_add(h, 1000);
    for (int k = 0; k < 100; k++)
        bench_hist_add(h, 5000000);
    cr_assert(fabs((double)bench_hist_pct(h, 90) - 1000) <= 10);
    cr_assert(fabs((double)bench_hist_pct(h, 90.1) - 5000000) <= 50000);
    cr_assert_eq(bench_hist_pct(h, 100), 5000000);
    free(h);
}

Test(bench_hist, every_bucket_is_at_most_one_percent_of_its_value_wide)
{
    for (size_t i = 0; i < BENCH_HIST_BUCKETS; i++) {
        uint64_t lo, hi;
        bench_hist_range(i, &lo, &hi);
        cr_assert(hi >= lo);
        cr_assert((double)(hi - lo) <= 0.01 * (double)lo || hi == lo,
                  "bucket %zu: [%llu, %llu]", i, (unsigned long long)lo,
                  (unsigned long long)hi);
        cr_assert_eq(bench_hist_index(lo), i);
        cr_assert_eq(bench_hist_index(hi), i);
        if (i + 1 < BENCH_HIST_BUCKETS) {
            uint64_t lo2, hi2;
            bench_hist_range(i + 1, &lo2, &hi2);
            cr_assert_eq(lo2, hi + 1, "buckets %zu and %zu leave a gap", i,
                         i + 1);
        }
    }
    cr_assert_eq(bench_hist_index(UINT64_MAX), BENCH_HIST_BUCKETS - 1);
}

Test(bench_hist, merging_equals_recording_in_one)
{
    struct bench_hist *a = calloc(1, sizeof(*a));
    struct bench_hist *b = calloc(1, sizeof(*b));
    struct bench_hist *all = calloc(1, sizeof(*all));
    cr_assert(a != NULL && b != NULL && all != NULL);
    struct bench_rng r;
    bench_rng_seed(&r, 9);
    for (int i = 0; i < 50000; i++) {
        uint64_t v = bench_rng_next(&r) % 1000000;
        bench_hist_add(i % 3 == 0 ? a : b, v);
        bench_hist_add(all, v);
    }
    bench_hist_merge(a, b);
    cr_assert_eq(a->n, all->n);
    cr_assert_eq(a->min, all->min);
    cr_assert_eq(a->max, all->max);
    cr_assert_arr_eq(a->counts, all->counts, sizeof(all->counts));
    for (size_t p = 0; p < sizeof(PCTS) / sizeof(PCTS[0]); p++)
        cr_assert_eq(bench_hist_pct(a, PCTS[p]), bench_hist_pct(all, PCTS[p]));
    struct bench_hist *empty = calloc(1, sizeof(*empty));
    cr_assert_not_null(empty);
    bench_hist_merge(empty, all);
    cr_assert_eq(empty->min, all->min);
    cr_assert_eq(bench_hist_pct(empty, 50), bench_hist_pct(all, 50));
    free(a);
    free(b);
    free(all);
    free(empty);
}

Test(bench_hist, an_empty_histogram_reports_zero)
{
    struct bench_hist *h = calloc(1, sizeof(*h));
    cr_assert_not_null(h);
    cr_assert_eq(bench_hist_pct(h, 99), 0);
    free(h);
}
