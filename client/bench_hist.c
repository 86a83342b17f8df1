/*
 * bench_hist.c - ringkv-bench's log-linear latency histogram (bench.h).
 *
 * Bucket layout, S = BENCH_HIST_SUB sub-buckets per power of two:
 *
 *   v < 2S                 bucket v (exact)
 *   v >= 2S, msb(v) = m    shift = m - log2(S); bucket
 *                          2S + (shift - 1) * S + ((v >> shift) - S)
 *
 * so the bucket of v spans [(v >> shift) << shift, + 2^shift), at most v/S
 * wide. Invariant: n is the sum of counts; min and max are exact.
 */
#include <string.h>

#include "client/bench.h"

static unsigned msb64(uint64_t v)
{
    return 63u - (unsigned)__builtin_clzll(v);
}

size_t bench_hist_index(uint64_t v)
{
    if (v < 2 * BENCH_HIST_SUB)
        return (size_t)v;
    unsigned shift = msb64(v) - BENCH_HIST_SUB_BITS;
    return 2 * BENCH_HIST_SUB + (size_t)(shift - 1) * BENCH_HIST_SUB +
           (size_t)((v >> shift) - BENCH_HIST_SUB);
}

void bench_hist_range(size_t idx, uint64_t *lo, uint64_t *hi)
{
    if (idx < 2 * BENCH_HIST_SUB) {
        *lo = *hi = idx;
        return;
    }
    size_t rel = idx - 2 * BENCH_HIST_SUB;
    unsigned shift = (unsigned)(rel / BENCH_HIST_SUB) + 1;
    uint64_t sub = BENCH_HIST_SUB + rel % BENCH_HIST_SUB;
    *lo = sub << shift;
    *hi = *lo + ((1ull << shift) - 1);
}

void bench_hist_reset(struct bench_hist *h)
{
    memset(h, 0, sizeof(*h));
}

void bench_hist_add(struct bench_hist *h, uint64_t v)
{
    h->counts[bench_hist_index(v)]++;
    if (h->n == 0 || v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
    h->n++;
}

void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src)
{
    if (src->n == 0)
        return;
    for (size_t i = 0; i < BENCH_HIST_BUCKETS; i++)
        dst->counts[i] += src->counts[i];
    if (dst->n == 0 || src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
    dst->n += src->n;
}

uint64_t bench_hist_pct(const struct bench_hist *h, double p)
{
    if (h->n == 0)
        return 0;
    double want_d = p / 100.0 * (double)h->n;
    uint64_t want = (uint64_t)want_d;
    if ((double)want < want_d)
        want++;
    if (want < 1)
        want = 1;
    if (want >= h->n)
        return h->max; /* the top rank is the maximum, exactly */
    uint64_t seen = 0;
    for (size_t i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= want) {
            uint64_t lo, hi;
            bench_hist_range(i, &lo, &hi);
            uint64_t mid = lo + (hi - lo) / 2;
            if (mid < h->min)
                mid = h->min;
            if (mid > h->max)
                mid = h->max;
            return mid;
        }
    }
    return h->max;
}
