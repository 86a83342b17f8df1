/*
 * test_switches.c - the benchmarking switches of a real 3-node cluster
 * (n = 3, so every node is a replica of every key): replica_fanout = exact
 * puts a w = 1 write on exactly one node, chosen at random (all: on every
 * node), and an r = 1 read asks one replica; read_repair
 * = off leaves a stale replica stale after r = 3 reads (on: repaired), and
 * peer_delay_mean_ms delays every peer request, loses none, and shuts down
 * cleanly with requests still waiting out their delay.
 */
#include "tests/integration/itest.h"

TestSuite(switches, .timeout = 240, .fini = itest_cleanup);

#define NODES 3

/* How many nodes hold key; *who = the last one found. */
static int holders(const char *key, int *who)
{
    int h = 0;
    for (int i = 0; i < NODES; i++) {
        if (itest_local_values(&itest_nodes[i], key) > 0) {
            h++;
            if (who != NULL)
                *who = i;
        }
    }
    return h;
}

static int64_t stat_sum(const char *name)
{
    int64_t s = 0;
    for (int i = 0; i < NODES; i++)
        s += itest_stat(&itest_nodes[i], name);
    return s;
}

/* Waits until every node holds key. */
static void wait_everywhere(const char *key)
{
    uint64_t deadline = itest_now_ms() + 20000;
    while (holders(key, NULL) != NODES) {
        cr_assert(itest_now_ms() < deadline, "%s never reached every node",
                  key);
        itest_nap();
    }
}

/* Puts prefix-0 .. prefix-(count-1), each valued as its key, with w = 1
 * through node 1. */
static void put_keys(const char *prefix, int count)
{
    struct rkc *c = itest_conn(&itest_nodes[0], 0, 1);
    char key[32];
    for (int k = 0; k < count; k++) {
        snprintf(key, sizeof(key), "%s-%d", prefix, k);
        itest_put_ok(c, key, key);
    }
    rkc_close(c);
}

Test(switches, exact_fanout_writes_one_random_replica_at_w1_and_reads_one_at_r1)
{
    itest_cluster(NODES, "--fsync", "never", "--replica-fanout", "exact",
                  "--read-repair", "off", "--w", "1", NULL);
    char key[32];
    int per_node[NODES] = {0};

    put_keys("exact", 60);
    /* A RESP SET (w = 1, the node's default here) and DEL, too. */
    char out[256];
    cr_assert_eq(itest_sh(out, sizeof(out), "redis-cli -p %d SET resp-k v",
                          itest_nodes[1].resp_port),
                 0);
    cr_assert_str_eq(out, "OK\n");
    for (int k = 0; k < 60; k++) {
        int who = -1;
        snprintf(key, sizeof(key), "exact-%d", k);
        cr_assert_eq(holders(key, &who), 1, "%s on %d nodes", key,
                     holders(key, NULL));
        per_node[who]++;
    }
    cr_assert_eq(holders("resp-k", NULL), 1);
    /* Every write went through node 1, yet the one replica is chosen at
     * random: each node holds some (all on one node: p = 3 * (1/3)^60). */
    for (int i = 0; i < NODES; i++)
        cr_assert_gt(per_node[i], 0, "node %d holds none of 60 keys", i + 1);
    cr_assert_eq(stat_sum("replica_puts"), 0,
                 "w = 1: no replica write was ever sent");
    cr_assert_gt(itest_stat(&itest_nodes[0], "forwarded"), 0,
                 "node 1 handed writes to the replica chosen");

    /* r = 1 reads ask one random replica: each finds its key with p = 1/3
     * (PBS for n = 3, r = w = 1), and no read asks more than one peer. */
    struct rkc *c = itest_conn(&itest_nodes[0], 1, 0);
    int64_t rgets = stat_sum("replica_gets");
    int fresh = 0;
    for (int k = 0; k < 30; k++) {
        struct rkc_result r = {0};
        snprintf(key, sizeof(key), "exact-%d", k);
        cr_assert_eq(rkc_get(c, key, strlen(key), &r), 0, "%s", r.message);
        fresh += r.nvalues == 1;
        rkc_result_free(&r);
    }
    rkc_close(c);
    cr_assert(fresh > 0 && fresh < 30, "%d of 30 reads found their key", fresh);
    cr_assert_leq(stat_sum("replica_gets") - rgets, 30,
                  "at most one replica read per get");
}

Test(switches, fanout_all_puts_a_w1_write_on_every_replica)
{
    itest_cluster(NODES, "--fsync", "never", NULL);
    struct rkc *c = itest_conn(&itest_nodes[0], 0, 1);
    itest_put_ok(c, "all-k", "v");
    rkc_close(c);
    wait_everywhere("all-k");
}

/* A key written with w = 1 under exact fanout is on one node: the other
 * two are stale replicas. Three r = 3 reads through every node see it. */
static int stale_then_read(void)
{
    struct rkc *c = itest_conn(&itest_nodes[0], 0, 1);
    int who = -1;
    itest_put_ok(c, "stale-k", "fresh");
    rkc_close(c);
    cr_assert_eq(holders("stale-k", &who), 1);
    for (int i = 0; i < NODES; i++) {
        c = itest_conn(&itest_nodes[i], 3, 0);
        itest_get_is(c, "stale-k", "fresh");
        rkc_close(c);
    }
    return who;
}

Test(switches, with_read_repair_off_a_stale_replica_stays_stale_after_r3_reads)
{
    itest_cluster(NODES, "--fsync", "never", "--replica-fanout", "exact",
                  "--read-repair", "off", NULL);
    stale_then_read();
    /* A repair is counted when it is sent, before the read's answer left:
     * none was. */
    cr_assert_eq(stat_sum("read_repairs"), 0);
    cr_assert_eq(holders("stale-k", NULL), 1, "the stale replicas stay stale");
}

Test(switches, with_read_repair_on_the_stale_replicas_are_repaired)
{
    itest_cluster(NODES, "--fsync", "never", "--replica-fanout", "exact", NULL);
    stale_then_read();
    cr_assert_gt(stat_sum("read_repairs"), 0);
    wait_everywhere("stale-k");
}

Test(switches, peer_delay_delays_every_peer_request_and_loses_no_write)
{
    itest_cluster(NODES, "--fsync", "never", "--peer-delay-mean-ms", "50",
                  NULL);
    char key[32];
    put_keys("late", 20);
    for (int k = 0; k < 20; k++) {
        snprintf(key, sizeof(key), "late-%d", k);
        wait_everywhere(key);
    }
    /* n = 3 on 3 nodes: node 1 coordinates each put and sends 2 rputs. */
    cr_assert_geq(itest_stat(&itest_nodes[0], "peer_delayed"), 40);
    cr_assert_eq(stat_sum("peer_delay_refused"), 0);
    struct rkc *c = itest_conn(&itest_nodes[1], 3, 0);
    itest_get_is(c, "late-7", "late-7");
    rkc_close(c);
    cr_assert_geq(itest_stat(&itest_nodes[1], "peer_delayed"), 2,
                  "the get's rgets were delayed too");
}

/* SIGTERM, then the wait status once it exited; fails the test when it
 * takes over 20 s (the grace for unsent replies is 5 s). */
static int stop_within(struct itest_node *n)
{
    uint64_t deadline = itest_now_ms() + 20000;
    int st = 0;
    kill(n->pid, SIGTERM);
    while (waitpid(n->pid, &st, WNOHANG) != n->pid) {
        cr_assert(itest_now_ms() < deadline,
                  "%s waits out its delayed requests instead of stopping",
                  n->id);
        itest_nap();
    }
    n->pid = 0;
    return st;
}

Test(switches, a_node_stops_cleanly_with_peer_requests_still_delayed)
{
    /* A 10 s mean: the 100 rputs of 50 w = 1 puts are still waiting (the
     * last of them ~50 s away) when the coordinator is told to stop. They
     * fail at once, the loop closes (exit 0), ASan finds nothing leaked. */
    itest_cluster(NODES, "--fsync", "never", "--peer-delay-mean-ms", "10000",
                  NULL);
    put_keys("pending", 50);
    cr_assert_gt(itest_stat(&itest_nodes[0], "peer_delayed_now"), 0);
    int st = stop_within(&itest_nodes[0]);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "ringkv did not stop cleanly (status %#x, see %s)", st,
              itest_nodes[0].log);
}

Test(switches, delayed_peer_requests_are_bounded_by_max_inflight)
{
    /* Two may wait; each w = 1 put sends two rputs that wait ~10 s: from
     * the second put on, its rputs are refused and counted, and the puts
     * still succeed on the coordinator's own commit. */
    itest_cluster(NODES, "--fsync", "never", "--peer-delay-mean-ms", "10000",
                  "--max-inflight", "2", NULL);
    put_keys("bounded", 5);
    int64_t delayed = itest_stat(&itest_nodes[0], "peer_delayed");
    int64_t refused = itest_stat(&itest_nodes[0], "peer_delay_refused");
    cr_assert_leq(itest_stat(&itest_nodes[0], "peer_delayed_now"), 2);
    cr_assert_eq(delayed + refused, 10, "every rput delayed or refused");
    cr_assert_geq(refused, 6,
                  "at most 2 waiting, so at most 4 accepted "
                  "(2 more only if 2 fired within the test)");
}
