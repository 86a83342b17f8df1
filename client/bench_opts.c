/*
 * bench_opts.c - ringkv-bench's command line (bench.h): every option is
 * parsed strictly (the whole argument must be a number in range) and a
 * refusal names the option, the value and what is allowed.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "client/bench.h"

static const double DEFAULT_DELAYS[] = {0, 1, 2, 5, 10, 50, 100};

void bench_opts_default(struct bench_opts *o)
{
    memset(o, 0, sizeof(*o));
    snprintf(o->nodes[0].host, sizeof(o->nodes[0].host), "127.0.0.1");
    o->nodes[0].port = 7379;
    o->nnodes = 1;
    o->connections = 4;
    o->pipeline = 1;
    o->threads = 1;
    o->duration_s = 10;
    o->keys = 100000;
    o->dist = BENCH_DIST_UNIFORM;
    o->theta = 0.99;
    o->value_size = 100;
    o->workload = 'a';
    o->read_ratio = 0.5;
    o->seed = 1;
    o->ndelays = sizeof(DEFAULT_DELAYS) / sizeof(DEFAULT_DELAYS[0]);
    memcpy(o->delays_ms, DEFAULT_DELAYS, sizeof(DEFAULT_DELAYS));
}

void bench_usage(FILE *f)
{
    fputs(
        "usage: ringkv-bench [options]\n"
        "       ringkv-bench --pbs-closed-form N R W [k]\n"
        "  --nodes H:P[,H:P...]  targets; connections spread round-robin "
        "(127.0.0.1:7379)\n"
        "  --resp                speak RESP (SET/GET) instead of the native "
        "protocol\n"
        "  --connections C       connections in all (4)\n"
        "  --pipeline P          outstanding requests per connection (1)\n"
        "  --threads T           generator threads, each its own loop (1)\n"
        "  --duration S          seconds to measure (10)\n"
        "  --ops N               operations to measure instead of a duration\n"
        "  --warmup S            seconds run but not measured first (0)\n"
        "  --keys K              key space key:0..K-1 (100000)\n"
        "  --dist D              uniform | zipf[:theta] (uniform; theta "
        "0.99)\n"
        "  --value-size B        value bytes (100)\n"
        "  --workload W          a 50/50 | b 95/5 | c 100/0 | f 50 get/50 "
        "read-modify-write (a)\n"
        "  --read-ratio X        fraction of gets, 0..1 (instead of "
        "--workload)\n"
        "  --r R --w W           per-request quorum, 1..255 (native only)\n"
        "  --rate OPS            open loop at OPS requests/s in all; latency "
        "from the intended send time\n"
        "  --staleness           PBS staleness mode (native only)\n"
        "  --delays MS[,MS...]   staleness read delays (0,1,2,5,10,50,100)\n"
        "  --json                machine-readable result on stdout\n"
        "  --seed N              random seed (1)\n"
        "  --pbs-closed-form N R W [k]  print 1 - (C(N-W,R)/C(N,R))^k "
        "(k = 1)\n"
        "  --help                this list\n",
        f);
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* A whole-string unsigned integer in [lo, hi]. */
static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end = NULL;
    if (s == NULL || *s == '\0' || *s == '-' || *s == '+')
        return -EINVAL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        return -EINVAL;
    *out = v;
    return 0;
}

/* A whole-string finite number in [lo, hi]. */
static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end = NULL;
    if (s == NULL || *s == '\0')
        return -EINVAL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v) || v < lo || v > hi)
        return -EINVAL;
    *out = v;
    return 0;
}

static int parse_nodes(struct bench_opts *o, const char *s, char *err,
                       size_t errlen)
{
    o->nnodes = 0;
    const char *p = s;
    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        const char *colon = NULL;
        for (size_t k = len; k > 0 && colon == NULL; k--)
            if (p[k - 1] == ':')
                colon = p + k - 1;
        if (colon == NULL || colon == p)
            return fail(err, errlen, "--nodes: '%.*s' is not host:port",
                        (int)len, p);
        if (o->nnodes == BENCH_MAX_NODES)
            return fail(err, errlen, "--nodes: more than %d nodes",
                        BENCH_MAX_NODES);
        struct bench_node *n = &o->nodes[o->nnodes];
        size_t hlen = (size_t)(colon - p);
        if (hlen >= sizeof(n->host))
            return fail(err, errlen, "--nodes: host name too long");
        char port[16];
        size_t plen = len - hlen - 1;
        uint64_t v = 0;
        if (plen == 0 || plen >= sizeof(port))
            return fail(err, errlen, "--nodes: '%.*s' has no valid port",
                        (int)len, p);
        memcpy(port, colon + 1, plen);
        port[plen] = '\0';
        if (parse_u64(port, 1, 65535, &v) != 0)
            return fail(err, errlen,
                        "--nodes: port '%s' is not a number in 1..65535", port);
        memcpy(n->host, p, hlen);
        n->host[hlen] = '\0';
        n->port = (uint16_t)v;
        o->nnodes++;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    if (o->nnodes == 0)
        return fail(err, errlen, "--nodes: no node given");
    return 0;
}

static int parse_dist(struct bench_opts *o, const char *s, char *err,
                      size_t errlen)
{
    if (strcmp(s, "uniform") == 0) {
        o->dist = BENCH_DIST_UNIFORM;
        return 0;
    }
    if (strncmp(s, "zipf", 4) == 0 && (s[4] == '\0' || s[4] == ':')) {
        o->dist = BENCH_DIST_ZIPF;
        if (s[4] == ':' && (parse_double(s + 5, 0, 1, &o->theta) != 0 ||
                            o->theta <= 0 || o->theta >= 1))
            return fail(err, errlen,
                        "--dist: zipf theta '%s' must be a number in (0, 1)",
                        s + 5);
        return 0;
    }
    return fail(err, errlen, "--dist: '%s' is not uniform or zipf[:theta]", s);
}

static int parse_delays(struct bench_opts *o, const char *s, char *err,
                        size_t errlen)
{
    char buf[512];
    if (strlen(s) >= sizeof(buf))
        return fail(err, errlen, "--delays: list too long");
    snprintf(buf, sizeof(buf), "%s", s);
    o->ndelays = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t != NULL;
         t = strtok_r(NULL, ",", &save)) {
        if (o->ndelays == BENCH_MAX_DELAYS)
            return fail(err, errlen, "--delays: more than %d delays",
                        BENCH_MAX_DELAYS);
        if (parse_double(t, 0, 60000, &o->delays_ms[o->ndelays]) != 0)
            return fail(err, errlen,
                        "--delays: '%s' is not a number of ms in 0..60000", t);
        o->ndelays++;
    }
    if (o->ndelays == 0)
        return fail(err, errlen, "--delays: no delay given");
    return 0;
}

static int parse_workload(struct bench_opts *o, const char *s, char *err,
                          size_t errlen)
{
    static const struct {
        char name;
        double read;
        bool rmw;
    } presets[] = {{'a', 0.5, false},
                   {'b', 0.95, false},
                   {'c', 1.0, false},
                   {'f', 0.5, true}};
    for (size_t i = 0; i < sizeof(presets) / sizeof(presets[0]); i++) {
        if (s[0] == presets[i].name && s[1] == '\0') {
            o->workload = presets[i].name;
            o->read_ratio = presets[i].read;
            o->rmw = presets[i].rmw;
            return 0;
        }
    }
    return fail(err, errlen, "--workload: '%s' is not a, b, c or f", s);
}

static bool known(const char *name)
{
    static const char *const names[] = {
        "--nodes",    "--connections", "--pipeline", "--threads",
        "--duration", "--ops",         "--warmup",   "--keys",
        "--dist",     "--value-size",  "--workload", "--read-ratio",
        "--r",        "--w",           "--rate",     "--seed",
        "--delays"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(name, names[i]) == 0)
            return true;
    return false;
}

/* Parses the value of option name (argv[*i + 1]). */
static int parse_one(struct bench_opts *o, const char *name, const char *val,
                     char *err, size_t errlen)
{
    uint64_t u = 0;
    double d = 0;
#define UNUM(lo, hi, field)                                                    \
    do {                                                                       \
        if (parse_u64(val, (lo), (hi), &u) != 0)                               \
            return fail(err, errlen,                                           \
                        "%s: '%s' is not an integer in %llu..%llu", name, val, \
                        (unsigned long long)(lo), (unsigned long long)(hi));   \
        field = u;                                                             \
    } while (0)
#define DNUM(lo, hi, field)                                                    \
    do {                                                                       \
        if (parse_double(val, (lo), (hi), &d) != 0)                            \
            return fail(err, errlen, "%s: '%s' is not a number in %g..%g",     \
                        name, val, (double)(lo), (double)(hi));                \
        field = d;                                                             \
    } while (0)
    if (strcmp(name, "--nodes") == 0)
        return parse_nodes(o, val, err, errlen);
    if (strcmp(name, "--connections") == 0)
        UNUM(1, BENCH_MAX_CONNS, o->connections);
    else if (strcmp(name, "--pipeline") == 0)
        UNUM(1, BENCH_MAX_PIPELINE, o->pipeline);
    else if (strcmp(name, "--threads") == 0)
        UNUM(1, BENCH_MAX_THREADS, o->threads);
    else if (strcmp(name, "--duration") == 0) {
        DNUM(0.001, 86400, o->duration_s);
        o->ops = 0;
    } else if (strcmp(name, "--ops") == 0)
        UNUM(1, UINT64_MAX / 2, o->ops);
    else if (strcmp(name, "--warmup") == 0)
        DNUM(0, 3600, o->warmup_s);
    else if (strcmp(name, "--keys") == 0)
        UNUM(1, BENCH_MAX_KEYS, o->keys);
    else if (strcmp(name, "--dist") == 0)
        return parse_dist(o, val, err, errlen);
    else if (strcmp(name, "--value-size") == 0)
        UNUM(0, BENCH_MAX_VALUE, o->value_size);
    else if (strcmp(name, "--workload") == 0)
        return parse_workload(o, val, err, errlen);
    else if (strcmp(name, "--read-ratio") == 0) {
        DNUM(0, 1, o->read_ratio);
        o->workload = 0;
        o->rmw = false;
    } else if (strcmp(name, "--r") == 0)
        UNUM(1, 255, o->r);
    else if (strcmp(name, "--w") == 0)
        UNUM(1, 255, o->w);
    else if (strcmp(name, "--rate") == 0)
        DNUM(0.001, 1e9, o->rate);
    else if (strcmp(name, "--seed") == 0)
        UNUM(0, UINT64_MAX, o->seed);
    else if (strcmp(name, "--delays") == 0)
        return parse_delays(o, val, err, errlen);
    else
        return fail(err, errlen, "unknown option '%s' (see --help)", name);
#undef UNUM
#undef DNUM
    return 0;
}

static int parse_pbs(struct bench_opts *o, int argc, char **argv, int i,
                     char *err, size_t errlen)
{
    int left = argc - i - 1;
    uint64_t v[4] = {0, 0, 0, 1};
    static const char *const what[4] = {"N", "R", "W", "k"};
    if (left < 3 || left > 4)
        return fail(err, errlen, "--pbs-closed-form takes N R W [k]");
    for (int j = 0; j < left; j++)
        if (parse_u64(argv[i + 1 + j], 1, j == 3 ? 1000000 : 255, &v[j]) != 0)
            return fail(err, errlen,
                        "--pbs-closed-form: %s '%s' is not an integer in "
                        "1..%d",
                        what[j], argv[i + 1 + j], j == 3 ? 1000000 : 255);
    if (v[1] > v[0] || v[2] > v[0])
        return fail(err, errlen,
                    "--pbs-closed-form: R and W must be at most N");
    o->pbs = true;
    o->pbs_n = (unsigned)v[0];
    o->pbs_r = (unsigned)v[1];
    o->pbs_w = (unsigned)v[2];
    o->pbs_k = (unsigned)v[3];
    return 0;
}

static int check(const struct bench_opts *o, char *err, size_t errlen)
{
    if (o->threads > o->connections)
        return fail(err, errlen,
                    "--threads %u is more than --connections %u: each thread "
                    "needs a connection",
                    o->threads, o->connections);
    if (o->resp && (o->r != 0 || o->w != 0))
        return fail(err, errlen,
                    "--r and --w need the native protocol, not "
                    "--resp");
    if (o->resp && o->staleness)
        return fail(err, errlen,
                    "--staleness needs the native protocol, not "
                    "--resp");
    if (o->staleness && o->rate > 0)
        return fail(err, errlen,
                    "--rate does not apply to --staleness (each "
                    "connection writes one key at a time)");
    if (o->staleness && o->value_size < BENCH_STALE_MIN_VAL)
        return fail(err, errlen,
                    "--staleness: --value-size must be at least %d bytes "
                    "(the version lives in the value)",
                    BENCH_STALE_MIN_VAL);
    if (o->staleness && o->keys < o->connections)
        return fail(err, errlen,
                    "--staleness: --keys %llu is fewer than --connections %u "
                    "(each connection writes keys of its own)",
                    (unsigned long long)o->keys, o->connections);
    if (o->staleness && (double)o->keys * (double)o->connections > 1e8)
        return fail(err, errlen,
                    "--staleness: --keys x --connections must be at most "
                    "1e8 (each client tracks each key)");
    if (o->rate > 0 && o->rate < o->connections && o->ops == 0 &&
        o->duration_s * o->rate < 1)
        return fail(err, errlen, "--rate %g for %g s sends nothing", o->rate,
                    o->duration_s);
    return 0;
}

int bench_opts_parse(struct bench_opts *o, int argc, char **argv, char *err,
                     size_t errlen)
{
    bench_opts_default(o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            o->help = true;
            return 0;
        }
        if (strcmp(a, "--pbs-closed-form") == 0)
            return parse_pbs(o, argc, argv, i, err, errlen);
        if (strcmp(a, "--json") == 0) {
            o->json = true;
            continue;
        }
        if (strcmp(a, "--resp") == 0) {
            o->resp = true;
            continue;
        }
        if (strcmp(a, "--staleness") == 0) {
            o->staleness = true;
            continue;
        }
        if (strncmp(a, "--", 2) != 0)
            return fail(err, errlen, "unexpected argument '%s' (see --help)",
                        a);
        if (i + 1 >= argc)
            return known(a) ? fail(err, errlen, "%s needs a value", a)
                            : fail(err, errlen,
                                   "unknown option '%s' (see --help)", a);
        int rc = parse_one(o, a, argv[i + 1], err, errlen);
        if (rc != 0)
            return rc;
        i++;
    }
    if (o->staleness && o->workload == 'a')
        o->read_ratio = 0; /* staleness mode schedules its own reads */
    return check(o, err, errlen);
}
