/*
 * sim_main.c - ringkv-sim: runs seeds of the deterministic simulator
 * (tests/sim/sim.h) and reports which failed and how to reproduce them.
 *
 * One line per seed (seed, trace hash, events, operations and faults, PASS
 * or FAIL) unless --quiet; the checkers' findings on stderr; a closing
 * summary with seeds run, seeds failed and seeds per second (the only
 * wall-clock reading, and it never feeds a run). Exit status 1 when any
 * seed failed, 2 for bad usage.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/sim/sim.h"

static void usage(FILE *f)
{
    fprintf(
        f, "usage: ringkv-sim [options]\n"
           "Runs whole simulated ringkv clusters (the real node core over an\n"
           "in-memory network, disk and clock), one per seed, and checks "
           "them.\n"
           "\n"
           "  --seeds K        run K seeds (default 1)\n"
           "  --first F        first seed of the range (default 1)\n"
           "  --seed S         run seed S only (same as --first S --seeds "
           "1)\n"
           "  --nodes M        nodes, 3..7 (default 5)\n"
           "  --n N --r R --w W  replication defaults (default 3, 2, 2)\n"
           "  --clients C      clients, 1..16 (default 4)\n"
           "  --duration MS    virtual length of the faulty phase (default "
           "20000)\n"
           "  --faults F       none | light | heavy | swarm (default swarm:\n"
           "                   fault parameters drawn per seed)\n"
           "  --trace          print every event, one line each (stdout)\n"
           "  --quiet          print only failures and the summary\n"
           "  --break-merge    TEST ONLY: replica merges keep one sibling, so\n"
           "                   the checkers must report lost writes\n"
           "  --membership M   auto | on | off: joins, leaves and removals\n"
           "                   while the seed runs (default auto: seeds\n"
           "                   with seed %% 4 == 0)\n"
           "  --break-transfer TEST ONLY: transfers report partitions copied\n"
           "                   without sending them, so the checkers must\n"
           "                   fail on seeds with membership changes\n"
           "  --help           this text\n"
           "\n"
           "A failing seed reproduces exactly: scripts/simulate.sh --seed S\n"
           "(same --nodes/--faults/... as the failing run). Exit status: 0\n"
           "all seeds passed, 1 some failed, 2 bad usage.\n");
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-')
        return -1;
    *out = v;
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    struct sim_config cfg;
    uint64_t seeds = 1, first = 1, v;
    bool quiet = false, trace = false;
    char extra[256] = "";
    size_t el = 0;

    sim_config_default(&cfg);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = true;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--quiet") == 0) {
            quiet = true;
            takes = false;
        } else if (strcmp(a, "--trace") == 0) {
            trace = true;
            takes = false;
        } else if (strcmp(a, "--break-merge") == 0) {
            cfg.break_merge = true;
            takes = false;
        } else if (strcmp(a, "--break-transfer") == 0) {
            cfg.break_transfer = true;
            takes = false;
        } else if (val == NULL) {
            fprintf(stderr, "ringkv-sim: %s needs a value\n", a);
            return 2;
        } else if (strcmp(a, "--faults") == 0) {
            int f = sim_faults_parse(val);
            if (f < 0) {
                fprintf(stderr, "ringkv-sim: unknown --faults %s\n", val);
                return 2;
            }
            cfg.faults = (enum sim_faults)f;
        } else if (strcmp(a, "--membership") == 0) {
            int mm = sim_membership_parse(val);
            if (mm < 0) {
                fprintf(stderr, "ringkv-sim: unknown --membership %s\n", val);
                return 2;
            }
            cfg.membership = (enum sim_membership)mm;
        } else if (parse_u64(val, &v) != 0) {
            fprintf(stderr, "ringkv-sim: %s: not a number: %s\n", a, val);
            return 2;
        } else if (strcmp(a, "--seeds") == 0) {
            seeds = v;
        } else if (strcmp(a, "--first") == 0) {
            first = v;
        } else if (strcmp(a, "--seed") == 0) {
            first = v;
            seeds = 1;
        } else if (strcmp(a, "--nodes") == 0 && v <= 1000) {
            cfg.nodes = (uint32_t)v;
        } else if (strcmp(a, "--clients") == 0 && v <= 1000) {
            cfg.clients = (uint32_t)v;
        } else if (strcmp(a, "--n") == 0 && v <= 255) {
            cfg.n = (uint8_t)v;
        } else if (strcmp(a, "--r") == 0 && v <= 255) {
            cfg.r = (uint8_t)v;
        } else if (strcmp(a, "--w") == 0 && v <= 255) {
            cfg.w = (uint8_t)v;
        } else if (strcmp(a, "--duration") == 0) {
            cfg.duration_ms = v;
        } else {
            fprintf(stderr, "ringkv-sim: unknown option %s (see --help)\n", a);
            return 2;
        }
        if (takes) {
            if (strcmp(a, "--seeds") != 0 && strcmp(a, "--first") != 0 &&
                strcmp(a, "--seed") != 0 && el + 40 < sizeof(extra))
                el += (size_t)snprintf(extra + el, sizeof(extra) - el, " %s %s",
                                       a, val);
            i++;
        }
    }
    if (cfg.break_merge && el + 16 < sizeof(extra))
        el +=
            (size_t)snprintf(extra + el, sizeof(extra) - el, " --break-merge");
    if (cfg.break_transfer && el + 20 < sizeof(extra))
        el += (size_t)snprintf(extra + el, sizeof(extra) - el,
                               " --break-transfer");
    cfg.trace = trace ? stdout : NULL;
    /* With a trace, findings go to the same stream, in order. */
    cfg.report = trace ? stdout : stderr;

    uint64_t failed = 0, *fails = NULL, nfail_cap = 0;
    uint64_t events = 0, changed = 0;
    double t0 = now_s();
    for (uint64_t k = 0; k < seeds; k++) {
        struct sim_result res;
        cfg.seed = first + k;
        int rc = sim_run(&cfg, &res);
        if (rc < 0) {
            fprintf(stderr, "ringkv-sim: invalid configuration (see --help)\n");
            free(fails);
            return 2;
        }
        events += res.events;
        if (!quiet || rc != 0)
            printf("seed %" PRIu64 " hash %016" PRIx64 " events %" PRIu64
                   " ops %" PRIu64 " (ok %" PRIu64 " fail %" PRIu64
                   " indefinite %" PRIu64 ") crashes %" PRIu64 " wipes %" PRIu64
                   " partitions %" PRIu64 " pauses %" PRIu64 " msgs %" PRIu64
                   " lost %" PRIu64 " dup %" PRIu64 " joins %" PRIu64
                   " leaves %" PRIu64 " removes %" PRIu64 " ring v%" PRIu64
                   " %s\n",
                   res.seed, res.hash, res.events, res.ops, res.ops_ok,
                   res.ops_definite, res.ops_indefinite, res.crashes, res.wipes,
                   res.partitions, res.pauses, res.msgs_sent, res.msgs_lost,
                   res.msgs_duplicated, res.joins, res.leaves, res.removes,
                   res.ring_version, rc == 0 ? "PASS" : "FAIL");
        if (res.joins + res.leaves + res.removes > 0)
            changed++;
        if (rc != 0) {
            if (failed == nfail_cap) {
                nfail_cap = nfail_cap ? 2 * nfail_cap : 16;
                uint64_t *f = realloc(fails, nfail_cap * sizeof(*f));
                if (f == NULL) {
                    free(fails);
                    return 2;
                }
                fails = f;
            }
            fails[failed++] = res.seed;
        }
        fflush(stdout);
    }
    double dt = now_s() - t0;
    for (uint64_t i = 0; i < failed; i++)
        printf("FAILED seed %" PRIu64 ": reproduce with scripts/simulate.sh "
               "--seed %" PRIu64 "%s\n",
               fails[i], fails[i], extra);
    printf("seeds with membership changes: %" PRIu64 "\n", changed);
    printf("seeds run: %" PRIu64 ", seeds failed: %" PRIu64
           ", seeds/second: %.1f (%.0f events/second)\n",
           seeds, failed, dt > 0 ? (double)seeds / dt : 0.0,
           dt > 0 ? (double)events / dt : 0.0);
    free(fails);
    return failed ? 1 : 0;
}
