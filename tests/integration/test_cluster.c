/*
 * test_cluster.c - real 5-node clusters: placement on exactly N nodes,
 * quorums with nodes down, siblings across coordinators, read repair of a
 * replica that missed a write.
 */
#include "quorum/dvv.h"
#include "ring/ring.h"
#include "tests/integration/itest.h"

TestSuite(cluster, .timeout = 240, .fini = itest_cleanup);

#define NODES 5

/* The itest nodes (indices into itest_nodes) holding key, in preference
 * order, as node n's ring says. Returns how many (N). */
static int replicas_of(const struct itest_node *n, const char *key, int *out)
{
    struct rkc *c = itest_conn(n, 0, 0);
    struct rkc_result r = {0};
    cr_assert_eq(rkc_ring(c, &r), 0);
    uint32_t p = ring_partition(key, strlen(key), (uint32_t)r.q);
    for (size_t j = 0; j < r.nval; j++) {
        uint16_t m = r.pref[p * r.nval + j];
        cr_assert_lt(m, r.nmembers);
        int idx = atoi(r.members[m].id + 1) - 1; /* "n3" -> 2 */
        out[j] = idx;
    }
    int nval = (int)r.nval;
    rkc_result_free(&r);
    rkc_close(c);
    return nval;
}

static int in_list(const int *l, int n, int x)
{
    for (int i = 0; i < n; i++)
        if (l[i] == x)
            return 1;
    return 0;
}

Test(cluster, every_key_is_stored_on_exactly_n_nodes)
{
    itest_cluster(NODES, "--fsync", "never", NULL);
    struct rkc *c = itest_conn(&itest_nodes[0], 0, 3); /* w = n: all acked */
    char key[32];

    for (int k = 0; k < 40; k++) {
        snprintf(key, sizeof(key), "place-%d", k);
        itest_put_ok(c, key, key);
    }
    rkc_close(c);
    for (int k = 0; k < 40; k++) {
        int reps[8];
        snprintf(key, sizeof(key), "place-%d", k);
        int nrep = replicas_of(&itest_nodes[k % NODES], key, reps);
        cr_assert_eq(nrep, 3);
        int holders = 0;
        for (int i = 0; i < NODES; i++) {
            size_t nv = itest_local_values(&itest_nodes[i], key);
            cr_assert_eq(nv, (size_t)in_list(reps, nrep, i),
                         "%s on %s: %zu values", key, itest_nodes[i].id, nv);
            holders += nv > 0;
        }
        cr_assert_eq(holders, 3);
    }
}

Test(cluster, with_one_node_down_quorum_two_reads_and_writes_succeed)
{
    itest_cluster(NODES, "--fsync", "never", NULL);
    itest_signal(&itest_nodes[4], SIGKILL);
    for (int i = 0; i < 4; i++)
        itest_wait_members(&itest_nodes[i], 4);
    struct rkc *c[4];
    for (int i = 0; i < 4; i++)
        c[i] = itest_conn(&itest_nodes[i], 2, 2);
    char key[32];
    for (int k = 0; k < 60; k++) {
        snprintf(key, sizeof(key), "down1-%d", k);
        itest_put_ok(c[k % 4], key, key);
        itest_get_is(c[(k + 1) % 4], key, key);
    }
    for (int i = 0; i < 4; i++)
        rkc_close(c[i]);
}

/* A key none of whose replicas is node 0, so node 0 coordinates by
 * forwarding (puts) and by asking the replicas (gets). */
static void key_off(int node, char *key, size_t cap, int *reps)
{
    for (int k = 0;; k++) {
        snprintf(key, cap, "off-%d", k);
        replicas_of(&itest_nodes[0], key, reps);
        if (!in_list(reps, 3, node))
            return;
    }
}

Test(cluster, with_two_replicas_down_quorum_two_fails_clearly_and_one_succeeds)
{
    itest_cluster(NODES, "--fsync", "never", "--request-timeout", "2s", NULL);
    char key[32];
    int reps[3];
    struct rkc_result r = {0};

    key_off(0, key, sizeof(key), reps);
    itest_signal(&itest_nodes[reps[1]], SIGKILL);
    itest_signal(&itest_nodes[reps[2]], SIGKILL);
    itest_wait_members(&itest_nodes[0], 3);
    itest_wait_members(&itest_nodes[reps[0]], 3);

    struct rkc *q2 = itest_conn(&itest_nodes[0], 2, 2);
    int rc = rkc_put(q2, key, strlen(key), "v", 1, NULL, 0, &r);
    cr_assert_eq(rc, RK_EUNAVAILABLE, "w=2 with one replica up: %d %s", rc,
                 r.message);
    cr_assert(r.definite, "refused before anything was written");
    rkc_result_free(&r);
    rc = rkc_get(q2, key, strlen(key), &r);
    cr_assert_eq(rc, RK_EUNAVAILABLE, "r=2 with one replica up: %s", r.message);
    rkc_result_free(&r);
    rkc_close(q2);

    struct rkc *q1 = itest_conn(&itest_nodes[0], 1, 1);
    itest_put_ok(q1, key, "survivor");
    itest_get_is(q1, key, "survivor");
    rkc_close(q1);
    /* Out-of-range quorums are a clear, definite error. */
    struct rkc *q4 = itest_conn(&itest_nodes[0], 4, 4);
    rc = rkc_put(q4, key, strlen(key), "v", 1, NULL, 0, &r);
    cr_assert_eq(rc, RK_EBAD_QUORUM);
    cr_assert(r.definite);
    rkc_result_free(&r);
    rkc_close(q4);
}

Test(cluster, blind_puts_on_two_coordinators_are_siblings_until_resolved)
{
    itest_cluster(NODES, "--fsync", "never", NULL);
    struct rkc *a = itest_conn(&itest_nodes[0], 0, 0);
    struct rkc *b = itest_conn(&itest_nodes[3], 0, 0);
    struct rkc_result r = {0};

    itest_put_ok(a, "sib", "from-n1");
    itest_put_ok(b, "sib", "from-n4");
    cr_assert_eq(rkc_get(a, "sib", 3, &r), 0);
    cr_assert_eq(r.nvalues, 2, "neither write is lost");
    uint8_t ctx[256];
    size_t ctx_len = r.ctx_len;
    cr_assert_leq(ctx_len, sizeof(ctx));
    memcpy(ctx, r.ctx, ctx_len);
    rkc_result_free(&r);

    cr_assert_eq(rkc_put(b, "sib", 3, "merged", 6, ctx, ctx_len, &r), 0, "%s",
                 r.message);
    rkc_result_free(&r);
    itest_get_is(a, "sib", "merged");
    rkc_close(a);
    rkc_close(b);
}

Test(cluster, a_replica_that_missed_a_write_holds_it_after_a_read)
{
    itest_cluster(NODES, "--fsync", "always", NULL);
    char key[] = "repair-me";
    int reps[3];
    replicas_of(&itest_nodes[0], key, reps);
    struct itest_node *stale = &itest_nodes[reps[2]];

    itest_signal(stale, SIGKILL);
    itest_wait_members(&itest_nodes[reps[0]], NODES - 1);
    struct rkc *c = itest_conn(&itest_nodes[reps[0]], 0, 2);
    itest_put_ok(c, key, "fresh");
    rkc_close(c);

    itest_restart(stale);
    for (int i = 0; i < NODES; i++)
        itest_wait_members(&itest_nodes[i], NODES);
    cr_assert_eq(itest_local_values(stale, key), 0, "it missed the write");

    c = itest_conn(&itest_nodes[reps[0]], 3,
                   0); /* r=3: every replica answers */
    itest_get_is(c, key, "fresh");
    rkc_close(c);
    uint64_t deadline = itest_now_ms() + 10000;
    while (itest_local_values(stale, key) != 1) {
        cr_assert(itest_now_ms() < deadline, "read repair never arrived");
        itest_nap();
    }
}

Test(cluster, resp_sets_through_every_node_leave_one_value)
{
    itest_cluster(NODES, "--fsync", "never", NULL);
    char out[256];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < NODES; i++) {
            int rc =
                itest_sh(out, sizeof(out), "redis-cli -p %d SET reg v%d-%d",
                         itest_nodes[i].resp_port, round, i);
            cr_assert_eq(rc, 0);
            cr_assert_str_eq(out, "OK\n");
        }
    }
    for (int i = 0; i < NODES; i++) {
        cr_assert_eq(itest_sh(out, sizeof(out), "redis-cli -p %d SIBLINGS reg",
                              itest_nodes[i].resp_port),
                     0);
        cr_assert_str_eq(out, "v2-4\n", "one value, the last SET (node %d)",
                         i + 1);
    }
}

/* Regression (review): a RESP SET refused at once (fewer than w replicas
 * reachable) freed its reply slot and then read it. */
Test(cluster, resp_set_refused_for_want_of_replicas_answers_with_an_error)
{
    itest_cluster(3, "--fsync", "never", NULL);
    itest_signal(&itest_nodes[1], SIGKILL);
    itest_signal(&itest_nodes[2], SIGKILL);
    itest_wait_members(&itest_nodes[0], 1);
    char out[512];
    cr_assert_eq(itest_sh(out, sizeof(out), "redis-cli -p %d SET k v",
                          itest_nodes[0].resp_port),
                 0);
    cr_assert(strstr(out, "ERR") != NULL, "got %s", out);
    cr_assert(itest_ping(&itest_nodes[0]), "the node is still serving");
}

/* A stopped (not dead) replica must not stall its peers or grow their
 * memory: writes with w=2 keep succeeding while it is stopped, and the
 * cluster is whole again once it continues. */
Test(cluster, a_stopped_replica_does_not_stall_the_others)
{
    itest_cluster(3, "--fsync", "never", "--request-timeout", "1s", NULL);
    struct rkc *c = itest_conn(&itest_nodes[0], 2, 2);
    char key[32];

    kill(itest_nodes[2].pid, SIGSTOP);
    for (int k = 0; k < 300; k++) {
        snprintf(key, sizeof(key), "stop-%d", k);
        itest_put_ok(c, key, key);
    }
    /* Past the give-up time (2 x 1 s + 1 s) the peer link is dropped and
     * rebuilt; the coordinator keeps answering throughout. */
    uint64_t until = itest_now_ms() + 3500;
    while (itest_now_ms() < until) {
        cr_assert(itest_ping(&itest_nodes[0]));
        itest_nap();
    }
    snprintf(key, sizeof(key), "stop-after");
    itest_put_ok(c, key, key);
    kill(itest_nodes[2].pid, SIGCONT);
    itest_wait_members(&itest_nodes[0], 3);
    c = (rkc_close(c), itest_conn(&itest_nodes[0], 3, 3));
    itest_put_ok(c, "all-three", "x");
    itest_get_is(c, "stop-7", "stop-7");
    rkc_close(c);
}

/* Context bytes of a get of key through c (copied; at most cap bytes). */
static size_t read_ctx(struct rkc *c, const char *key, uint8_t *out, size_t cap,
                       size_t want_values)
{
    struct rkc_result r = {0};
    cr_assert_eq(rkc_get(c, key, strlen(key), &r), 0, "%s", r.message);
    cr_assert_eq(r.nvalues, want_values, "get %s: %zu values", key, r.nvalues);
    cr_assert(r.ctx_len <= cap);
    size_t len = r.ctx_len;
    memcpy(out, r.ctx, len);
    rkc_result_free(&r);
    return len;
}

/* The put is refused as a bad context, definitely, and applies nothing. */
static void refused_ctx(struct rkc *c, const char *key, const uint8_t *ctx,
                        size_t len, const char *why)
{
    struct rkc_result r = {0};
    cr_assert_eq(rkc_put(c, key, strlen(key), "forged", 6, ctx, len, &r),
                 RK_EBAD_CONTEXT, "%s: got %d (%s)", why, r.err, r.message);
    cr_assert(r.definite, "%s", why);
    rkc_result_free(&r);
}

/* A client's context can claim any counter for any node's actor (actors
 * are public): one claiming node 2's counter 1000 was stored by the other
 * replicas, and node 2's next writes of the key were acknowledged by every
 * replica and then never read back. Contexts are tagged with a key derived
 * from the cluster secret and bound to their key: only a context this
 * cluster issued for this key is accepted, by any node. */
Test(cluster, only_contexts_the_cluster_issued_for_the_key_are_accepted)
{
    struct itest_node *n = itest_cluster(3, "--fsync", "never", NULL);
    struct rkc *c1 = itest_conn(&n[0], 3, 3), *c2 = itest_conn(&n[1], 3, 3),
               *c3 = itest_conn(&n[2], 3, 3);
    struct rkc_result r = {0};
    uint8_t ctx[512], own[512], forged[512];

    /* Node 1's actor, alone in a context; then "a" with dots of nodes 1
     * and 2 (blind writes through both: siblings). */
    cr_assert_eq(rkc_put(c1, "z", 1, "z", 1, NULL, 0, &r), 0);
    rkc_result_free(&r);
    size_t own_len = read_ctx(c1, "z", own, sizeof(own), 1);
    cr_assert_eq(rkc_put(c1, "a", 1, "one", 3, NULL, 0, &r), 0);
    rkc_result_free(&r);
    cr_assert_eq(rkc_put(c2, "a", 1, "two", 3, NULL, 0, &r), 0);
    rkc_result_free(&r);
    size_t len = read_ctx(c1, "a", ctx, sizeof(ctx), 2);
    cr_assert_gt(len, 16, "a context carries its 16-byte tag");

    /* Another key's context, through any node. */
    refused_ctx(c2, "b", ctx, len, "a's context on b");
    refused_ctx(c3, "b", own, own_len, "z's context on b");

    /* The attack: node 2's counter raised to 1000, sent through node 1,
     * with the old tag, with no tag, and a real context with a bad tag. */
    struct dvv_arena a;
    struct dvv_vv vv;
    uint8_t *enc = NULL;
    size_t enc_len = 0;
    uint64_t actor1;
    dvv_arena_init(&a);
    cr_assert_eq(dvv_vv_decode(own, own_len - 16, &a, &vv), 0);
    cr_assert_eq(vv.n, 1);
    actor1 = vv.e[0].actor;
    cr_assert_eq(dvv_vv_decode(ctx, len - 16, &a, &vv), 0);
    cr_assert_eq(vv.n, 2);
    for (uint32_t i = 0; i < vv.n; i++)
        if (vv.e[i].actor != actor1)
            vv.e[i].counter = 1000;
    cr_assert_eq(dvv_vv_encode(&vv, &enc, &enc_len), 0);
    cr_assert(enc_len + 16 <= sizeof(forged));
    memcpy(forged, enc, enc_len);
    memcpy(forged + enc_len, ctx + len - 16, 16);
    free(enc);
    dvv_arena_free(&a);
    refused_ctx(c1, "a", forged, enc_len + 16, "raised counter, old tag");
    refused_ctx(c1, "a", forged, enc_len, "raised counter, no tag");
    refused_ctx(c1, "a", ctx, len - 16, "real context, no tag");
    ctx[len - 1] ^= 1;
    refused_ctx(c1, "a", ctx, len, "real context, bad tag");
    ctx[len - 1] ^= 1;

    /* Nothing was lost: node 2's next write is read back by every node. */
    cr_assert_eq(rkc_put(c2, "a", 1, "three", 5, NULL, 0, &r), 0);
    rkc_result_free(&r);
    read_ctx(c3, "a", forged, sizeof(forged), 3);

    /* A context read through node 1 resolves the siblings through node 2:
     * every node checks every node's tags. */
    len = read_ctx(c1, "a", ctx, sizeof(ctx), 3);
    cr_assert_eq(rkc_put(c2, "a", 1, "merged", 6, ctx, len, &r), 0, "%s",
                 r.message);
    rkc_result_free(&r);
    cr_assert_eq(rkc_get(c3, "a", 1, &r), 0);
    cr_assert_eq(r.nvalues, 1);
    cr_assert_eq(memcmp(r.values[0].data, "merged", 6), 0);
    rkc_result_free(&r);
    rkc_close(c1);
    rkc_close(c2);
    rkc_close(c3);
}
