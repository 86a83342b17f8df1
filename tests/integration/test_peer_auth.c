/*
 * test_peer_auth.c - replica operations only from authenticated peers
 * (issue 9, finding 1) and records bounded by max_record (finding 2):
 *
 *  - a client connection's rput / rget / fput / fdel are refused
 *    (forbidden, definite), so the INT64_MAX poison leaves the key usable;
 *  - a peer with the wrong secret or cluster name never gets a link: w=all
 *    writes fail as unavailable, counters move, both logs say why;
 *  - an authenticated peer's record claiming this node's own actor beyond
 *    what it issued is refused; an honest one merges;
 *  - two siblings over max_record: the second put is too_large (definite),
 *    no peer link drops, reads at r=3 and other keys keep working;
 *  - an oversized frame between peers (mixed max_frame) is skipped and
 *    answered, never a dropped link.
 *
 * The test itself speaks the peer handshake over a raw socket (with the
 * node's own peer_auth code), so it can act as a peer.
 */
#include "node/peer_auth.h"
#include "quorum/dvv.h"
#include "tests/integration/itest.h"

TestSuite(peer_auth, .timeout = 240, .fini = itest_cleanup);

#define WRONG_SECRET "a-wrong-secret-0123456789"

/* The node's actor (its storage epoch, stat "epoch" in hex). */
static uint64_t node_epoch(const struct itest_node *n)
{
    struct rkc *c;
    struct rkc_result r = {0};
    uint64_t e = 0;
    cr_assert_eq(rkc_connect(&c, "127.0.0.1", (uint16_t)n->port, 5000), 0);
    cr_assert_eq(rkc_stats(c, &r), 0);
    for (uint32_t i = 0; i < r.nstats; i++)
        if (strcmp(r.stats[i].name, "epoch") == 0 && r.stats[i].sval)
            e = strtoull(r.stats[i].sval, NULL, 16);
    rkc_result_free(&r);
    rkc_close(c);
    cr_assert_neq(e, 0);
    return e;
}

static struct rkc *conn(const struct itest_node *n, uint8_t r, uint8_t w)
{
    struct rkc *c = NULL;
    cr_assert_eq(rkc_connect(&c, "127.0.0.1", (uint16_t)n->port, 20000), 0);
    rkc_set_quorum(c, r, w);
    return c;
}

/* Polls until stat name of n reaches at least want. */
static void wait_stat(const struct itest_node *n, const char *name,
                      int64_t want)
{
    uint64_t deadline = itest_now_ms() + 30000;
    while (itest_stat(n, name) < want) {
        cr_assert(itest_now_ms() < deadline, "%s: %s stays below %lld", n->id,
                  name, (long long)want);
        itest_nap();
    }
}

static int log_has(const struct itest_node *n, const char *what)
{
    return itest_sh(NULL, 0, "grep -qF '%s' '%s'", what, n->log) == 0;
}

/* ---- a raw native connection ------------------------------------------ */

struct raw {
    int fd;
    uint8_t body[1 << 17];
    msgpack_zone zone;
};

static void raw_open(struct raw *c, const struct itest_node *n)
{
    c->fd = itest_raw_connect(n->port);
    msgpack_zone_init(&c->zone, 4096);
}

static void raw_close(struct raw *c)
{
    close(c->fd);
    msgpack_zone_destroy(&c->zone);
}

static void raw_send(struct raw *c, const struct wire_req *req)
{
    struct wire_buf b;
    wire_buf_init(&b);
    cr_assert_eq(wire_encode_req(&b, req), 0);
    cr_assert_eq(write(c->fd, b.data, b.len), (ssize_t)b.len);
    wire_buf_free(&b);
}

/* Reads one response into *r (valid until the next call). */
static void raw_recv(struct raw *c, struct wire_resp *r)
{
    uint8_t hdr[4];
    uint32_t len;
    const char *why = NULL;
    size_t got = 0;
    while (got < 4) {
        ssize_t k = read(c->fd, hdr + got, 4 - got);
        cr_assert_gt(k, 0, "expected a response");
        got += (size_t)k;
    }
    cr_assert_eq(wire_frame_len(hdr, sizeof(c->body), &len), 0);
    for (got = 0; got < len;) {
        ssize_t k = read(c->fd, c->body + got, len - got);
        cr_assert_gt(k, 0, "short response");
        got += (size_t)k;
    }
    msgpack_zone_clear(&c->zone);
    cr_assert_eq(wire_decode_resp(c->body, len, &c->zone, r, &why), 0, "%s",
                 why);
}

static void raw_call(struct raw *c, const struct wire_req *req,
                     struct wire_resp *r)
{
    raw_send(c, req);
    raw_recv(c, r);
    cr_assert_eq(r->id, req->id);
}

/* Runs the peer handshake as node `self` against node `peer_id`. Returns
 * the error of the step that failed (0 = authenticated). */
static int raw_handshake(struct raw *c, const char *cluster, const char *self,
                         const char *peer_id, const char *secret)
{
    uint8_t nonce[PEER_AUTH_NONCE_LEN], acc_nonce[PEER_AUTH_NONCE_LEN];
    uint8_t mac[PEER_AUTH_MAC_LEN];
    struct wire_resp r;

    cr_assert_eq(peer_auth_init(), 0);
    peer_auth_nonce(nonce);
    struct wire_req hello = {.id = 1,
                             .op = WIRE_OP_HELLO,
                             .hello = {.cluster = (const uint8_t *)cluster,
                                       .cluster_len = (uint32_t)strlen(cluster),
                                       .node = (const uint8_t *)self,
                                       .node_len = (uint32_t)strlen(self),
                                       .nonce = nonce,
                                       .nonce_len = sizeof(nonce)}};
    raw_call(c, &hello, &r);
    if (r.err != 0)
        return r.err;
    cr_assert_eq(r.hello.nonce_len, PEER_AUTH_NONCE_LEN);
    memcpy(acc_nonce, r.hello.nonce, sizeof(acc_nonce));
    struct peer_auth_input in = {
        .secret = (const uint8_t *)secret,
        .secret_len = strlen(secret),
        .acceptor_nonce = acc_nonce,
        .dialer_nonce = nonce,
        .cluster = (const uint8_t *)cluster,
        .cluster_len = strlen(cluster),
        .acceptor_id = (const uint8_t *)peer_id,
        .acceptor_id_len = strlen(peer_id),
        .dialer_id = (const uint8_t *)self,
        .dialer_id_len = strlen(self),
    };
    peer_auth_mac(mac, PEER_AUTH_ACCEPTOR, &in);
    /* The acceptor proves it holds the secret too. */
    bool acceptor_ok = peer_auth_check(mac, r.hello.mac, r.hello.mac_len);
    if (strcmp(secret, ITEST_SECRET) == 0)
        cr_assert(acceptor_ok, "the node's proof checks out");
    peer_auth_mac(mac, PEER_AUTH_DIALER, &in);
    struct wire_req auth = {.id = 2,
                            .op = WIRE_OP_AUTH,
                            .hello = {.mac = mac, .mac_len = sizeof(mac)}};
    raw_call(c, &auth, &r);
    return r.err;
}

/* A record with one entry: actor's counter, and (when val != NULL) the
 * value at that dot. *out is malloc'd. */
static size_t record(uint64_t actor, uint64_t counter, const char *val,
                     uint8_t **out)
{
    struct dvv_val v = {.data = (const uint8_t *)val,
                        .len = val ? (uint32_t)strlen(val) : 0,
                        .ts = 1};
    struct dvv_entry e = {
        .actor = actor, .counter = counter, .nvals = val ? 1 : 0, .vals = &v};
    struct dvv d = {.n = 1, .e = &e};
    size_t len = 0;
    cr_assert_eq(dvv_encode(&d, out, &len), 0);
    return len;
}

static void put_ok(struct rkc *c, const char *key, const void *val, size_t len)
{
    struct rkc_result r = {0};
    int rc = rkc_put(c, key, strlen(key), val, len, NULL, 0, &r);
    cr_assert_eq(rc, 0, "put %s: %s", key, r.message);
    rkc_result_free(&r);
}

/* The live values of key; the first, when there is one, into first. */
static size_t get_values(struct rkc *c, const char *key, char *first,
                         size_t cap)
{
    struct rkc_result r = {0};
    int rc = rkc_get(c, key, strlen(key), &r);
    cr_assert_eq(rc, 0, "get %s: %s", key, r.message);
    size_t n = r.nvalues;
    if (first != NULL && n > 0)
        snprintf(first, cap, "%.*s", (int)r.values[0].len,
                 (const char *)r.values[0].data);
    rkc_result_free(&r);
    return n;
}

/* ---- finding 1 ----------------------------------------------------------- */

Test(peer_auth, client_replica_ops_are_refused_and_the_poison_leaves_key_usable)
{
    struct itest_node *n = itest_start(NULL);
    struct rkc *c = conn(n, 0, 0);
    struct raw raw;
    struct wire_resp r;
    uint8_t *rec;
    char v[64];

    put_ok(c, "k", "v1", 2);
    uint64_t epoch = node_epoch(n);
    size_t rec_len = record(epoch, (uint64_t)INT64_MAX, NULL, &rec);

    raw_open(&raw, n);
    const struct wire_req reqs[] = {
        {.id = 11,
         .op = WIRE_OP_RPUT,
         .key = (const uint8_t *)"k",
         .key_len = 1,
         .rec = rec,
         .rec_len = (uint32_t)rec_len},
        {.id = 12,
         .op = WIRE_OP_RGET,
         .key = (const uint8_t *)"k",
         .key_len = 1},
        {.id = 13,
         .op = WIRE_OP_FPUT,
         .key = (const uint8_t *)"k",
         .key_len = 1,
         .value = (const uint8_t *)"x",
         .value_len = 1},
        {.id = 14,
         .op = WIRE_OP_FDEL,
         .key = (const uint8_t *)"k",
         .key_len = 1},
    };
    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        raw_call(&raw, &reqs[i], &r);
        cr_assert_eq(r.err, RK_EFORBIDDEN, "%s answered %s",
                     wire_op_name(reqs[i].op), rk_err_code(r.err));
        cr_assert(r.definite);
    }
    raw_close(&raw);
    free(rec);

    /* The key is still readable and writable. */
    cr_assert_eq(get_values(c, "k", v, sizeof(v)), 1);
    cr_assert_str_eq(v, "v1");
    put_ok(c, "k", "v2", 2);
    cr_assert_eq(itest_stat(n, "replica_ops_refused"), 4);
    rkc_close(c);
}

/* Restarts node i of the cluster with extra arguments appended (a later
 * flag overrides an earlier one). */
static void restart_with(struct itest_node *n, const char *a, const char *b)
{
    itest_signal(n, SIGTERM);
    n->extra[n->nextra++] = a;
    n->extra[n->nextra++] = b;
    itest_restart(n);
}

static void assert_w_all_unavailable(struct itest_node *n)
{
    struct rkc *c = conn(n, 0, 3);
    struct rkc_result r = {0};
    int rc = rkc_put(c, "w3", 2, "x", 1, NULL, 0, &r);
    cr_assert_eq(rc, RK_EUNAVAILABLE, "put w=3: %s", r.message);
    rkc_result_free(&r);
    rkc_close(c);
}

Test(peer_auth, a_peer_with_the_wrong_secret_cannot_replicate)
{
    struct itest_node *n1 = itest_cluster(3, NULL);
    struct itest_node *n3 = &itest_nodes[2];
    struct rkc *c = conn(n1, 0, 3);

    put_ok(c, "before", "x", 1); /* the right secret works: w=3 */
    rkc_close(c);
    restart_with(n3, "--cluster-secret", WRONG_SECRET);
    wait_stat(n1, "peer_handshakes_failed", 1);
    wait_stat(n3, "peer_handshakes_failed", 1);
    wait_stat(n1, "peer_auth_refused", 1); /* the acceptors say so too */
    wait_stat(n3, "peer_auth_refused", 1);
    cr_assert_eq(itest_members_up(n1), 2);
    cr_assert_eq(itest_members_up(n3), 1);
    assert_w_all_unavailable(n1);
    cr_assert(log_has(n1, "bad secret"), "n1's log says why");
    cr_assert(log_has(n3, "bad secret"), "n3's log says why");

    /* A client that tries the handshake with a guessed secret. n3 would
     * keep redialing n1 with its wrong secret and move n1's counter, so it
     * is stopped first: then the one refusal is the raw client's. */
    itest_signal(n3, SIGTERM);
    int64_t refused = itest_stat(n1, "peer_auth_refused");
    struct raw raw;
    raw_open(&raw, n1);
    cr_assert_eq(raw_handshake(&raw, "ringkv", "n9", "n1", WRONG_SECRET),
                 RK_EFORBIDDEN);
    raw_close(&raw);
    cr_assert_eq(itest_stat(n1, "peer_auth_refused"), refused + 1,
                 "one refusal counted for one bad handshake");
    cr_assert(log_has(n1, "(node n9) refused: bad secret"),
              "n1's log names the client's claimed node");
}

Test(peer_auth, a_peer_with_the_wrong_cluster_name_cannot_replicate)
{
    struct itest_node *n1 = itest_cluster(3, NULL);
    struct itest_node *n3 = &itest_nodes[2];

    restart_with(n3, "--cluster-name", "other");
    wait_stat(n1, "peer_auth_refused", 1);
    wait_stat(n3, "peer_handshakes_failed", 1);
    cr_assert_eq(itest_members_up(n1), 2);
    assert_w_all_unavailable(n1);
    cr_assert(log_has(n1, "cluster name mismatch"), "n1's log says why");
    cr_assert(log_has(n3, "cluster name mismatch"), "n3's log says why");
}

Test(peer_auth, a_record_claiming_this_nodes_unissued_dots_is_refused)
{
    struct itest_node *n =
        itest_start("--node-id", "n1", "--cluster-secret", ITEST_SECRET, NULL);
    struct rkc *c = conn(n, 0, 0);
    struct raw raw;
    struct wire_resp r;
    uint8_t *rec;
    char v[64];

    put_ok(c, "k", "v1", 2);
    uint64_t epoch = node_epoch(n);
    raw_open(&raw, n);
    cr_assert_eq(raw_handshake(&raw, "ringkv", "n9", "n1", ITEST_SECRET), 0);

    /* Forged: this node's actor at INT64_MAX. */
    size_t len = record(epoch, (uint64_t)INT64_MAX, NULL, &rec);
    struct wire_req rput = {.id = 21,
                            .op = WIRE_OP_RPUT,
                            .key = (const uint8_t *)"k",
                            .key_len = 1,
                            .rec = rec,
                            .rec_len = (uint32_t)len};
    raw_call(&raw, &rput, &r);
    cr_assert_eq(r.err, RK_EFORBIDDEN, "%s", rk_err_code(r.err));
    cr_assert(r.definite);
    free(rec);
    cr_assert_eq(itest_stat(n, "own_actor_refused"), 1);
    cr_assert_eq(itest_stat(n, "replica_ops_refused"), 0);

    /* Honest: another actor's value merges as a sibling. */
    len = record(42, 1, "peer", &rec);
    rput.id = 22;
    rput.rec = rec;
    rput.rec_len = (uint32_t)len;
    raw_call(&raw, &rput, &r);
    cr_assert_eq(r.err, 0, "%s", r.msg ? r.msg : "");
    free(rec);
    struct wire_req rget = {.id = 23,
                            .op = WIRE_OP_RGET,
                            .key = (const uint8_t *)"k",
                            .key_len = 1};
    raw_call(&raw, &rget, &r);
    cr_assert_eq(r.err, 0);
    cr_assert_not_null(r.rec);
    raw_close(&raw);

    cr_assert_eq(get_values(c, "k", v, sizeof(v)), 2);
    put_ok(c, "k2", "fine", 4); /* and writes keep working */
    cr_assert(log_has(n, "which has issued"));
    rkc_close(c);
}

/* ---- finding 2 ----------------------------------------------------------- */

#define BIG 39000

static void assert_no_link_dropped(void)
{
    for (int i = 0; i < 3; i++)
        cr_assert_eq(itest_stat(&itest_nodes[i], "peer_links_dropped"), 0,
                     "%s dropped a peer link", itest_nodes[i].id);
}

Test(peer_auth, siblings_over_max_record_are_refused_and_links_survive)
{
    struct itest_node *n1 =
        itest_cluster(3, "--max-frame", "64KiB", "--max-value", "40KiB", NULL);
    struct rkc *c = conn(n1, 0, 0);
    struct rkc_result r = {0};
    char *big = malloc(BIG);
    char v[64];

    memset(big, 'a', BIG);
    put_ok(c, "k", big, BIG);
    memset(big, 'b', BIG);
    /* A blind put: a concurrent sibling, 2 x 39 KB > max_record. */
    int rc = rkc_put(c, "k", 1, big, BIG, NULL, 0, &r);
    cr_assert_eq(rc, RK_ETOO_LARGE, "second sibling: %s", r.message);
    cr_assert(r.definite);
    cr_assert(strstr(r.message, "max_record") != NULL, "%s", r.message);
    rkc_result_free(&r);
    free(big);

    struct rkc *c3 = conn(n1, 3, 0);
    cr_assert_eq(rkc_get(c3, "k", 1, &r), 0, "get --r 3: %s", r.message);
    cr_assert_eq(r.nvalues, 1);
    cr_assert_eq(r.values[0].len, BIG);
    rkc_result_free(&r);
    put_ok(c, "other", "fine", 4);
    cr_assert_eq(get_values(c3, "other", v, sizeof(v)), 1);
    cr_assert_str_eq(v, "fine");
    assert_no_link_dropped();
    cr_assert_geq(itest_stat(n1, "record_too_large"), 1);
    rkc_close(c3);
    rkc_close(c);
}

Test(peer_auth, an_oversized_frame_between_peers_is_skipped_not_a_dropped_link)
{
    itest_cluster(3, NULL);
    struct itest_node *n1 = &itest_nodes[0], *n2 = &itest_nodes[1];
    struct rkc_result r = {0};
    char *big = malloc(BIG);
    char v[64];

    /* n1 takes smaller frames than its peers (a mixed configuration). */
    itest_signal(n1, SIGTERM);
    n1->extra[n1->nextra++] = "--max-frame";
    n1->extra[n1->nextra++] = "64KiB";
    n1->extra[n1->nextra++] = "--max-value";
    n1->extra[n1->nextra++] = "40KiB";
    itest_restart(n1);
    for (int i = 0; i < 3; i++)
        itest_wait_members(&itest_nodes[i], 3);
    int64_t dropped[3];
    for (int i = 0; i < 3; i++)
        dropped[i] = itest_stat(&itest_nodes[i], "peer_links_dropped");

    /* Two 39 KB siblings through n2: its rput to n1 is over n1's frame. */
    struct rkc *c2 = conn(n2, 0, 0);
    memset(big, 'a', BIG);
    put_ok(c2, "k", big, BIG);
    memset(big, 'b', BIG);
    put_ok(c2, "k", big, BIG);
    free(big);
    rkc_close(c2);
    /* Until n1 dealt with the frame, one way or the other. */
    uint64_t deadline = itest_now_ms() + 30000;
    while (itest_stat(n1, "peer_frames_skipped_in") < 1 &&
           itest_stat(n2, "peer_links_dropped") == dropped[1]) {
        cr_assert(itest_now_ms() < deadline, "n1 never saw the frame");
        itest_nap();
    }
    cr_assert_eq(itest_stat(n2, "peer_links_dropped"), dropped[1],
                 "n2 lost its link to n1 over one oversized frame");

    /* n1 reading at r=3: its peers' answers are over its frame. */
    struct rkc *c1 = conn(n1, 3, 0);
    int rc = rkc_get(c1, "k", 1, &r);
    cr_assert_neq(rc, 0, "get --r 3 cannot collect three copies");
    rkc_result_free(&r);
    cr_assert_eq(itest_stat(n1, "peer_links_dropped"), dropped[0],
                 "n1 lost a link over an oversized answer");
    cr_assert_geq(itest_stat(n1, "peer_frames_skipped_out"), 1);

    /* Nothing else suffered: other keys at r=3 / w=3, no link dropped. */
    rkc_set_quorum(c1, 3, 3);
    put_ok(c1, "other", "fine", 4);
    cr_assert_eq(get_values(c1, "other", v, sizeof(v)), 1);
    cr_assert_str_eq(v, "fine");
    rkc_close(c1);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(itest_stat(&itest_nodes[i], "peer_links_dropped"),
                     dropped[i], "%s dropped a peer link", itest_nodes[i].id);
}
