/*
 * bench.h - the logic of ringkv-bench (client/bench.c is the libuv runtime):
 * options, the latency histogram, random numbers and key distributions,
 * open-loop scheduling arithmetic, the staleness classifier, the PBS closed
 * form and a RESP reply decoder. Everything here is pure (no I/O, no clock,
 * no libuv) so tests/unit/test_bench_*.c exercise it without sockets.
 */
#ifndef RINGKV_BENCH_H
#define RINGKV_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "proto/rng.h"

/* ---- options ------------------------------------------------------------ */

#define BENCH_MAX_NODES     64
#define BENCH_MAX_CONNS     4096
#define BENCH_MAX_PIPELINE  4096
#define BENCH_MAX_THREADS   64
#define BENCH_MAX_DELAYS    16
#define BENCH_MAX_KEYS      100000000ull
#define BENCH_MAX_VALUE     (4u << 20)
#define BENCH_MAX_K         8  /* k-staleness buckets 0..BENCH_MAX_K-1, more */
#define BENCH_STALE_MIN_VAL 12 /* magic + version */

enum bench_dist { BENCH_DIST_UNIFORM = 0, BENCH_DIST_ZIPF };

struct bench_node {
    char host[256];
    uint16_t port;
};

struct bench_opts {
    struct bench_node nodes[BENCH_MAX_NODES];
    size_t nnodes;
    unsigned connections, pipeline, threads;
    double duration_s; /* used when ops == 0 */
    uint64_t ops;      /* 0 = run for duration_s */
    uint64_t keys;
    enum bench_dist dist;
    double theta;
    uint32_t value_size;
    char workload;     /* 'a', 'b', 'c', 'f' or 0 (--read-ratio) */
    double read_ratio; /* fraction of ops that are gets */
    bool rmw;          /* workload f: the writes are read-modify-writes */
    unsigned r, w;     /* 0 = the node's default */
    double rate;       /* ops/s over all connections; 0 = closed loop */
    double warmup_s;
    bool json, resp, staleness, help;
    uint64_t seed;
    double delays_ms[BENCH_MAX_DELAYS];
    size_t ndelays;
    /* --pbs-closed-form N R W [k] */
    bool pbs;
    unsigned pbs_n, pbs_r, pbs_w, pbs_k;
};

/* Fills o with the defaults (127.0.0.1:7379, 4 connections, pipeline 1,
 * 10 s, 100000 keys, uniform, 100-byte values, workload a, 1 thread). */
void bench_opts_default(struct bench_opts *o);

/* Parses argv[1..argc) into o (defaults first). Returns 0, or -EINVAL with
 * a one-line message naming the option and the problem in err. */
int bench_opts_parse(struct bench_opts *o, int argc, char **argv, char *err,
                     size_t errlen);

/* Prints the option list (--help). */
void bench_usage(FILE *f);

/* ---- latency histogram ---------------------------------------------------
 * Log-linear (HDR-style): values below 2 * BENCH_HIST_SUB are exact; above,
 * each power of two is split into BENCH_HIST_SUB linear sub-buckets, so a
 * bucket is at most 1/BENCH_HIST_SUB of its lower bound wide and the value
 * reported (the bucket's midpoint) is within 1/(2 * BENCH_HIST_SUB) = 0.4 %
 * of any value recorded in it. Histograms of the same shape merge by adding
 * counts. Units are the caller's (ringkv-bench records nanoseconds). */

#define BENCH_HIST_SUB_BITS 7
#define BENCH_HIST_SUB      (1u << BENCH_HIST_SUB_BITS)
#define BENCH_HIST_BUCKETS                                                     \
    (2 * BENCH_HIST_SUB + (63 - BENCH_HIST_SUB_BITS) * BENCH_HIST_SUB)

struct bench_hist {
    uint64_t n, max, min;
    uint64_t counts[BENCH_HIST_BUCKETS];
};

void bench_hist_reset(struct bench_hist *h);
void bench_hist_add(struct bench_hist *h, uint64_t v);
/* Adds src's counts to dst. */
void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src);
/* The value at percentile p (0 < p <= 100): the smallest recorded bucket
 * holding at least ceil(p% of n) values, reported as its midpoint and
 * clamped to [min, max]; p = 100 is max exactly. 0 when the histogram is
 * empty. */
uint64_t bench_hist_pct(const struct bench_hist *h, double p);
/* The bucket of v, and a bucket's [lo, hi] range (for tests). */
size_t bench_hist_index(uint64_t v);
void bench_hist_range(size_t idx, uint64_t *lo, uint64_t *hi);

/* ---- random numbers and keys ------------------------------------------- */

struct bench_rng {
    struct rk_rng rk; /* proto/rng.h: xoshiro256** */
};

/* Seeds from seed with splitmix64 (any seed, including 0, is fine). */
void bench_rng_seed(struct bench_rng *r, uint64_t seed);
uint64_t bench_rng_next(struct bench_rng *r);
/* Uniform in [0, 1). */
double bench_rng_unit(struct bench_rng *r);

/* Zipfian ranks over 0..n-1 with parameter theta in (0, 1), after Gray et
 * al., "Quickly generating billion-record synthetic databases" (SIGMOD
 * 1994), as YCSB's ZipfianGenerator: rank 0 is the most popular. */
struct bench_zipf {
    uint64_t n;
    double theta, alpha, zetan, eta, half_pow_theta;
};

/* Returns 0, or -EINVAL when n == 0 or theta is outside (0, 1). Takes O(n)
 * to sum the zeta constant. */
int bench_zipf_init(struct bench_zipf *z, uint64_t n, double theta);
/* The rank drawn by u in [0, 1). */
uint64_t bench_zipf_rank(const struct bench_zipf *z, double u);
/* YCSB's scrambled zipfian: the rank hashed (FNV-1a 64) onto 0..n-1, so the
 * popular keys are not neighbours. */
uint64_t bench_zipf_scramble(uint64_t rank, uint64_t n);

/* ---- open-loop scheduling -----------------------------------------------
 * Request i of a stream at rate ops/s starting at start_ns is intended for
 * start_ns + i * 1e9 / rate. Latency is measured from the intended time, not
 * from when the sender got round to it, so a stalled server (or generator)
 * shows up as latency instead of as fewer, faster samples (coordinated
 * omission, Gil Tene). */

uint64_t bench_sched_intended(uint64_t start_ns, double rate, uint64_t i);
/* How many requests (indices 0..) are due at now_ns (>= start_ns). */
uint64_t bench_sched_due(uint64_t start_ns, double rate, uint64_t now_ns);
/* The latency of a request intended at intended_ns, sent at sent_ns and
 * answered at done_ns: from the intended time in open loop (rate > 0),
 * from the send in closed loop. */
uint64_t bench_latency(bool open_loop, uint64_t intended_ns, uint64_t sent_ns,
                       uint64_t done_ns);

/* ---- staleness ------------------------------------------------------------
 * Values written in --staleness mode carry their version: "RKBV" and the
 * version as 8 bytes big-endian, then filler. */

/* Writes a value of len (>= BENCH_STALE_MIN_VAL) bytes carrying version. */
void bench_value_fill(uint8_t *buf, size_t len, uint64_t version);
/* Reads the version from a value. Returns 0, or -EINVAL when the value was
 * not written by bench_value_fill. */
int bench_value_version(const uint8_t *buf, size_t len, uint64_t *version);

struct bench_stale {
    size_t ndelays;
    double delays_ms[BENCH_MAX_DELAYS];
    uint64_t reads[BENCH_MAX_DELAYS];
    uint64_t consistent[BENCH_MAX_DELAYS];
    /* k[d][j]: reads at delay d that were j versions behind the version
     * whose acknowledgement scheduled them (j = BENCH_MAX_K: that many or
     * more); j = 0 is consistent */
    uint64_t k[BENCH_MAX_DELAYS][BENCH_MAX_K + 1];
    uint64_t ryw_violations;  /* the writer read an older version */
    uint64_t mono_violations; /* a client read older than it had read */
    uint64_t undecodable;     /* a value without a version */
    uint64_t dropped;         /* scheduled reads refused: queue full */
};

void bench_stale_init(struct bench_stale *s, const double *delays_ms,
                      size_t ndelays);
/* Classifies one read at delay index d of a key whose version acked was
 * acknowledged before the read was scheduled; got is the version read (0 =
 * not found). same_client: the reader is the client that wrote acked.
 * *last_seen is the reader's newest version of this key so far (updated). */
void bench_stale_record(struct bench_stale *s, size_t d, uint64_t acked,
                        uint64_t got, bool same_client, uint64_t *last_seen);
void bench_stale_merge(struct bench_stale *dst, const struct bench_stale *src);

/* The closed form of PBS k-staleness (Bailis et al., "Probabilistically
 * Bounded Staleness for Practical Partial Quorums", VLDB 2012, section 3.2):
 * the probability that a read returns one of the last k acknowledged
 * versions, with non-expanding quorums chosen uniformly at random and no
 * anti-entropy or read repair: 1 - (C(n-w, r) / C(n, r))^k. Returns -1 when
 * not 1 <= r, w <= n or k < 1. */
double bench_pbs_closed_form(unsigned n, unsigned r, unsigned w, unsigned k);

/* ---- RESP replies ------------------------------------------------------- */

enum bench_resp_type {
    BENCH_RESP_SIMPLE = 1, /* +OK */
    BENCH_RESP_ERROR,      /* -ERR ... */
    BENCH_RESP_INT,        /* :n */
    BENCH_RESP_BULK,       /* $n ... */
    BENCH_RESP_NIL         /* $-1 or *-1 */
};

struct bench_resp_reply {
    enum bench_resp_type type;
    const uint8_t *p; /* SIMPLE, ERROR, BULK: borrowed from the buffer */
    size_t len;
    int64_t ival; /* INT */
};

/* Decodes one reply from buf[0..n): SET and GET answers (no arrays but a
 * null one). Returns the bytes it takes (> 0), 0 when more bytes are
 * needed, or RK_EPROTO when the bytes are not such a reply or a bulk is
 * longer than max_bulk. Untrusted input: lengths are checked. */
int bench_resp_reply(const uint8_t *buf, size_t n, size_t max_bulk,
                     struct bench_resp_reply *out);

#endif
