/*
 * bench_gen.c - ringkv-bench's arithmetic (bench.h): random numbers,
 * zipfian keys, open-loop schedule, versioned values, the staleness
 * classifier and the PBS closed form. Pure: the runtime passes time in.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "client/bench.h"
#include "proto/rng.h"

/* ---- random numbers (proto/rng.h) ---------------------------------------- */

void bench_rng_seed(struct bench_rng *r, uint64_t seed)
{
    rk_rng_seed(&r->rk, seed);
}

uint64_t bench_rng_next(struct bench_rng *r)
{
    return rk_rng_next(&r->rk);
}

double bench_rng_unit(struct bench_rng *r)
{
    return (double)(bench_rng_next(r) >> 11) * 0x1.0p-53;
}

/* ---- zipfian ------------------------------------------------------------ */

int bench_zipf_init(struct bench_zipf *z, uint64_t n, double theta)
{
    if (n == 0 || !(theta > 0.0 && theta < 1.0))
        return -EINVAL;
    double zetan = 0.0;
    for (uint64_t i = 1; i <= n; i++)
        zetan += 1.0 / pow((double)i, theta);
    double zeta2 = 1.0 + 1.0 / pow(2.0, theta);
    z->n = n;
    z->theta = theta;
    z->alpha = 1.0 / (1.0 - theta);
    z->zetan = zetan;
    z->half_pow_theta = 1.0 + pow(0.5, theta);
    z->eta = (1.0 - pow(2.0 / (double)n, 1.0 - theta)) / (1.0 - zeta2 / zetan);
    return 0;
}

uint64_t bench_zipf_rank(const struct bench_zipf *z, double u)
{
    double uz = u * z->zetan;
    if (uz < 1.0)
        return 0;
    if (uz < z->half_pow_theta)
        return z->n > 1 ? 1 : 0;
    uint64_t rank =
        (uint64_t)((double)z->n * pow(z->eta * u - z->eta + 1.0, z->alpha));
    return rank < z->n ? rank : z->n - 1;
}

uint64_t bench_zipf_scramble(uint64_t rank, uint64_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < 8; i++) {
        h ^= (rank >> (8 * i)) & 0xff;
        h *= 0x100000001b3ull;
    }
    return h % n;
}

/* ---- open loop ------------------------------------------------------------
 */

uint64_t bench_sched_intended(uint64_t start_ns, double rate, uint64_t i)
{
    return start_ns + (uint64_t)((double)i * 1e9 / rate);
}

uint64_t bench_sched_due(uint64_t start_ns, double rate, uint64_t now_ns)
{
    if (now_ns < start_ns)
        return 0;
    uint64_t due = (uint64_t)((double)(now_ns - start_ns) * rate / 1e9) + 1;
    /* floating point: never count one whose intended time is still ahead */
    while (due > 0 && bench_sched_intended(start_ns, rate, due - 1) > now_ns)
        due--;
    while (bench_sched_intended(start_ns, rate, due) <= now_ns)
        due++;
    return due;
}

uint64_t bench_latency(bool open_loop, uint64_t intended_ns, uint64_t sent_ns,
                       uint64_t done_ns)
{
    uint64_t from = open_loop ? intended_ns : sent_ns;
    return done_ns > from ? done_ns - from : 0;
}

/* ---- versioned values ------------------------------------------------------
 */

static const uint8_t VALUE_MAGIC[4] = {'R', 'K', 'B', 'V'};

void bench_value_fill(uint8_t *buf, size_t len, uint64_t version)
{
    memcpy(buf, VALUE_MAGIC, 4);
    for (int i = 0; i < 8; i++)
        buf[4 + i] = (uint8_t)(version >> (56 - 8 * i));
    if (len > BENCH_STALE_MIN_VAL)
        memset(buf + BENCH_STALE_MIN_VAL, 'v', len - BENCH_STALE_MIN_VAL);
}

int bench_value_version(const uint8_t *buf, size_t len, uint64_t *version)
{
    if (len < BENCH_STALE_MIN_VAL || memcmp(buf, VALUE_MAGIC, 4) != 0)
        return -EINVAL;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | buf[4 + i];
    *version = v;
    return 0;
}

/* ---- staleness ------------------------------------------------------------
 */

void bench_stale_init(struct bench_stale *s, const double *delays_ms,
                      size_t ndelays)
{
    memset(s, 0, sizeof(*s));
    if (ndelays > BENCH_MAX_DELAYS)
        ndelays = BENCH_MAX_DELAYS;
    s->ndelays = ndelays;
    memcpy(s->delays_ms, delays_ms, ndelays * sizeof(*delays_ms));
}

void bench_stale_record(struct bench_stale *s, size_t d, uint64_t acked,
                        uint64_t got, bool same_client, uint64_t *last_seen)
{
    if (d >= s->ndelays)
        return;
    s->reads[d]++;
    uint64_t behind = got >= acked ? 0 : acked - got;
    if (behind == 0)
        s->consistent[d]++;
    else if (same_client)
        s->ryw_violations++;
    s->k[d][behind < BENCH_MAX_K ? behind : BENCH_MAX_K]++;
    if (got < *last_seen)
        s->mono_violations++;
    else
        *last_seen = got;
}

void bench_stale_merge(struct bench_stale *dst, const struct bench_stale *src)
{
    for (size_t d = 0; d < dst->ndelays && d < src->ndelays; d++) {
        dst->reads[d] += src->reads[d];
        dst->consistent[d] += src->consistent[d];
        for (size_t j = 0; j <= BENCH_MAX_K; j++)
            dst->k[d][j] += src->k[d][j];
    }
    dst->ryw_violations += src->ryw_violations;
    dst->mono_violations += src->mono_violations;
    dst->undecodable += src->undecodable;
    dst->dropped += src->dropped;
}

/* C(a, b) as a double; 0 when b > a. */
static double choose(unsigned a, unsigned b)
{
    if (b > a)
        return 0.0;
    double c = 1.0;
    for (unsigned i = 1; i <= b; i++)
        c = c * (double)(a - b + i) / (double)i;
    return c;
}

double bench_pbs_closed_form(unsigned n, unsigned r, unsigned w, unsigned k)
{
    if (n < 1 || r < 1 || w < 1 || r > n || w > n || k < 1)
        return -1.0;
    double miss = choose(n - w, r) / choose(n, r);
    return 1.0 - pow(miss, (double)k);
}
