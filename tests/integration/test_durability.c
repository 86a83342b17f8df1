/*
 * test_durability.c - every acknowledged write survives kill -9 (fsync
 * always) and SIGTERM (in-flight commits finish before exit).
 *
 * The writer keeps a deep pipeline of puts with unique keys and records
 * each key whose success response arrived. The node is killed while
 * requests are outstanding, restarted, and every recorded key must read
 * back with its value. Note (LESSONS.md #16): kill -9 keeps the page cache,
 * so this proves the ack-after-commit ordering, not fsync itself; the
 * simulator's disk model covers lost unsynced writes.
 */
#include "tests/integration/itest.h"

TestSuite(durability, .timeout = 300, .fini = itest_cleanup);

#define PIPELINE 64

struct writer {
    struct rkc *c;
    uint64_t ids[PIPELINE];
    int keyno[PIPELINE];
    int *acked; /* acked[k] = 1 once key k is acknowledged */
    int next_key;
    int nacked;
};

static void key_of(int k, char *buf, size_t cap)
{
    snprintf(buf, cap, "dur-%d", k);
}

static int writer_send(struct writer *w, int slot)
{
    char key[32];
    key_of(w->next_key, key, sizeof(key));
    struct wire_req q = {.op = WIRE_OP_PUT,
                         .key = (const uint8_t *)key,
                         .key_len = (uint32_t)strlen(key),
                         .value = (const uint8_t *)key,
                         .value_len = (uint32_t)strlen(key)};
    w->keyno[slot] = w->next_key++;
    return rkc_send(w->c, &q, &w->ids[slot]);
}

/* Writes until kill_after acks arrived, then SIGKILLs (or signals) the node
 * with PIPELINE requests outstanding, and collects late acks. */
static void write_and_kill(struct itest_node *n, struct writer *w,
                           int kill_after, int sig)
{
    struct rkc_result r = {0};
    int outstanding = 0;

    cr_assert_eq(rkc_connect(&w->c, "127.0.0.1", (uint16_t)n->port, 20000), 0);
    for (int s = 0; s < PIPELINE; s++, outstanding++)
        cr_assert_eq(writer_send(w, s), 0);
    int killed = 0, acks = 0;
    for (;;) {
        uint64_t id;
        if (!killed && acks >= kill_after) {
            cr_assert_eq(rkc_flush(w->c), 0);
            kill(n->pid, sig);
            killed = 1;
        }
        int rc = rkc_recv(w->c, &r, &id);
        if (rc != 0) {
            cr_assert(killed, "connection failed before the kill: %d", rc);
            rkc_result_free(&r);
            break;
        }
        int s;
        for (s = 0; s < PIPELINE && w->ids[s] != id; s++)
            ;
        cr_assert_lt(s, PIPELINE, "response matches a request");
        if (r.err == 0) {
            w->acked[w->keyno[s]] = 1;
            w->nacked++;
            acks++;
        } else {
            cr_assert(killed, "write failed before the kill: %s", r.message);
        }
        rkc_result_free(&r);
        outstanding--;
        if (!killed) {
            cr_assert_eq(writer_send(w, s), 0);
            outstanding++;
        } else if (outstanding == 0) {
            break;
        }
    }
    rkc_close(w->c);
    int st;
    waitpid(n->pid, &st, 0);
    n->pid = 0;
    if (sig == SIGTERM)
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "SIGTERM exits cleanly (status %d)", st);
}

static void check_all_acked(struct itest_node *n, const struct writer *w)
{
    struct rkc *c;
    struct rkc_result r = {0};
    int checked = 0;

    cr_assert_eq(rkc_connect(&c, "127.0.0.1", (uint16_t)n->port, 20000), 0);
    for (int k = 0; k < w->next_key; k++) {
        if (!w->acked[k])
            continue;
        char key[32];
        key_of(k, key, sizeof(key));
        cr_assert_eq(rkc_get(c, key, strlen(key), &r), 0);
        cr_assert_eq(r.nvalues, 1, "acknowledged key %s is present", key);
        cr_assert_eq(r.values[0].len, strlen(key));
        cr_assert_eq(memcmp(r.values[0].data, key, strlen(key)), 0);
        rkc_result_free(&r);
        checked++;
    }
    cr_assert_eq(checked, w->nacked);
    rkc_close(c);
}

Test(durability, kill_9_under_write_load_loses_no_acknowledged_write)
{
    struct itest_node *n = itest_start("--fsync", "always", NULL);
    struct writer w = {0};
    unsigned seed = (unsigned)getpid();

    w.acked = calloc(1 << 20, sizeof(int));
    for (int round = 0; round < 3; round++) {
        int kill_after = 50 + (int)(rand_r(&seed) % 400);
        write_and_kill(n, &w, kill_after, SIGKILL);
        itest_restart(n);
        check_all_acked(n, &w);
    }
    cr_assert_gt(w.nacked, 150);
    free(w.acked);
}

Test(durability, sigterm_finishes_in_flight_writes_and_exits_cleanly)
{
    struct itest_node *n = itest_start("--fsync", "interval", NULL);
    struct writer w = {0};

    w.acked = calloc(1 << 20, sizeof(int));
    write_and_kill(n, &w, 300, SIGTERM);
    itest_restart(n);
    check_all_acked(n, &w);
    free(w.acked);
}
