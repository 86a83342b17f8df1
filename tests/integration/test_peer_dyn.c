/*
 * test_peer_dyn.c - the dynamic peer transport (issue 11, item 2): a
 * struct peers driven on a libuv loop inside the test, against real ringkv
 * processes started with the cluster secret.
 *
 *  - a node added by address only comes up, and peers_id() reports the id
 *    it proved; adding its id or address again gives the same slot;
 *  - an address that proves to be ourselves is forgotten quietly;
 *  - with a wrong secret the link never comes up and the failure counts;
 *  - peers_forget() closes the link, fails what was pending with
 *    -ENOTCONN (later, not inside the call), and re-adding brings the same
 *    slot back up;
 *  - gossip: refused (forbidden, counted) from a plain client connection;
 *    over an authenticated peer link a node without a membership layer
 *    answers not supported (unknown_op); a server in this process with a
 *    handler (server_on_gossip) hands it the payload and the node id the
 *    peer proved, and answers ok or the handler's error.
 *  - PEERS_MAX slots at most, the refusal counted; slots are never reused.
 *
 * Waiting is polling the loop with a deadline; nothing asserts on timing.
 */
#include "node/core.h"
#include "node/env_uv.h"
#include "node/log.h"
#include "node/peer.h"
#include "node/peer_auth.h"
#include "node/server.h"
#include "node/storage.h"
#include "ring/ring.h"
#include "tests/integration/itest.h"

TestSuite(peer_dyn, .timeout = 120, .fini = itest_cleanup);

#define CLUSTER "ringkv" /* the default cluster_name */

struct harness {
    uv_loop_t loop;
    struct peers *p;
    int ups, downs;        /* link callbacks seen */
    uint32_t last_slot;    /* of the last link callback */
    char last_id[72];      /* ... and its id */
    int replies, last_err; /* request callbacks seen */
    bool in_call;          /* a peers_* call is on the stack */
    bool cb_in_call;       /* a callback ran inside one */
};

static void on_link(void *arg, uint32_t slot, const char *id, bool up)
{
    struct harness *h = arg;
    h->cb_in_call |= h->in_call;
    h->last_slot = slot;
    snprintf(h->last_id, sizeof(h->last_id), "%s", id);
    if (up)
        h->ups++;
    else
        h->downs++;
}

static void on_reply(void *arg, int err, const struct wire_resp *resp)
{
    struct harness *h = arg;
    h->cb_in_call |= h->in_call;
    h->replies++;
    h->last_err = err != 0 ? err : resp->err;
}

/* A transport of one member (self_id, nothing to dial) with secret. */
static void start(struct harness *h, const char *self_id, const char *secret)
{
    static struct peers_auth auth;
    char err[256] = "";
    struct peer_conf self = {.id = self_id, .host = "127.0.0.1", .port = 1};

    memset(h, 0, sizeof(*h));
    log_min_level = LOG_WARN;
    cr_assert_eq(peer_auth_init(), 0);
    auth = (struct peers_auth){.self_id = self_id,
                               .cluster = CLUSTER,
                               .secret = (const uint8_t *)secret,
                               .secret_len = strlen(secret)};
    cr_assert_eq(uv_loop_init(&h->loop), 0);
    cr_assert_eq(peers_create(&h->p, &h->loop, &self, 1, 0, &auth,
                              WIRE_DEFAULT_MAX_FRAME, 10000, err, sizeof(err)),
                 0, "%s", err);
    cr_assert_eq(peers_count(h->p), 1);
    peers_on_link(h->p, on_link, h);
}

static void stop(struct harness *h)
{
    peers_close(h->p);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    peers_destroy(h->p);
    cr_assert_eq(uv_loop_close(&h->loop), 0, "every handle closed");
}

/* Runs the loop until done(h, slot) holds; fails the test after 20 s. */
static void run_until(struct harness *h, uint32_t slot,
                      bool (*done)(struct harness *h, uint32_t slot),
                      const char *what)
{
    uint64_t deadline = itest_now_ms() + 20000;
    while (!done(h, slot)) {
        cr_assert(itest_now_ms() < deadline, "timed out waiting: %s", what);
        uv_run(&h->loop, UV_RUN_ONCE);
    }
}

static bool is_up(struct harness *h, uint32_t slot)
{
    return peers_up(h->p, slot);
}

static bool id_known(struct harness *h, uint32_t slot)
{
    return peers_id(h->p, slot)[0] != '\0';
}

static bool handshake_failed(struct harness *h, uint32_t slot)
{
    struct peers_stats st;
    (void)slot;
    peers_get_stats(h->p, &st);
    return st.handshakes_failed >= 1;
}

static bool replied(struct harness *h, uint32_t slot)
{
    (void)slot;
    return h->replies >= 1;
}

static bool went_down(struct harness *h, uint32_t slot)
{
    (void)slot;
    return h->downs >= 1;
}

static int add(struct harness *h, const char *id, const char *addr)
{
    char err[256] = "";
    h->in_call = true;
    int rc = peers_add(h->p, id, addr, err, sizeof(err));
    h->in_call = false;
    return rc;
}

static const char *addr_of(const struct itest_node *n)
{
    static char buf[64];
    snprintf(buf, sizeof(buf), "127.0.0.1:%d", n->port);
    return buf;
}

static struct itest_node *node(const char *id)
{
    return itest_start("--node-id", id, "--cluster-secret", ITEST_SECRET, NULL);
}

Test(peer_dyn, added_by_address_comes_up_with_the_id_it_proves)
{
    struct itest_node *n = node("dn1");
    struct harness h;
    start(&h, "tester", ITEST_SECRET);

    int slot = add(&h, NULL, addr_of(n));
    cr_assert_eq(slot, 1, "the first added member gets slot 1");
    cr_assert_str_eq(peers_id(h.p, 1), "", "the id is unknown until proven");
    cr_assert_str_eq(peers_addr(h.p, 1), addr_of(n));
    cr_assert_eq(peers_slot(h.p, "dn1"), -ENOENT);
    run_until(&h, 1, is_up, "the link to an address-only member");
    cr_assert_str_eq(peers_id(h.p, 1), "dn1");
    cr_assert_eq(h.ups, 1);
    cr_assert_eq(h.last_slot, 1);
    cr_assert_str_eq(h.last_id, "dn1");
    cr_assert_eq(peers_slot(h.p, "dn1"), 1);
    cr_assert_eq(peers_slot(h.p, "tester"), 0, "our own id is self's slot");
    cr_assert_eq(add(&h, "dn1", "127.0.0.1:9"), 1, "a known id: its slot");
    cr_assert_eq(add(&h, NULL, addr_of(n)), 1, "a known address: its slot");
    cr_assert_eq(add(&h, NULL, "[::1]:9"), 2, "IPv6 addresses parse");
    cr_assert_eq(add(&h, NULL, "::1:9"), -EINVAL, "a bare v6 is ambiguous");
    cr_assert_eq(add(&h, NULL, "127.0.0.1"), -EINVAL, "no port");
    cr_assert_eq(add(&h, NULL, "127.0.0.1:0"), -EINVAL, "port 0");
    cr_assert_eq(peers_count(h.p), 3);
    cr_assert_not(h.cb_in_call, "no callback inside peers_add");
    stop(&h);
}

Test(peer_dyn, an_address_that_proves_to_be_ourselves_is_forgotten)
{
    struct itest_node *n = node("dn1");
    struct harness h;
    struct peers_stats st;
    start(&h, "dn1", ITEST_SECRET); /* we claim the node's own id */

    int slot = add(&h, NULL, addr_of(n));
    cr_assert_eq(slot, 1);
    run_until(&h, 1, id_known, "the handshake to learn who is there");
    cr_assert_str_eq(peers_id(h.p, 1), "dn1");
    cr_assert_not(peers_up(h.p, 1), "never up");
    cr_assert_eq(peers_slot(h.p, "dn1"), 0, "our id is self's slot");
    cr_assert_eq(add(&h, NULL, addr_of(n)), 0, "re-adding it gives self");
    cr_assert_eq(h.ups, 0);
    peers_get_stats(h.p, &st);
    cr_assert_eq(st.handshakes_failed, 0, "quietly: not a failure");
    stop(&h);
}

Test(peer_dyn, a_wrong_secret_never_comes_up_and_is_counted)
{
    struct itest_node *n = node("dn1");
    struct harness h;
    start(&h, "tester", "a-wrong-secret-0123456789");

    cr_assert_eq(add(&h, NULL, addr_of(n)), 1);
    run_until(&h, 1, handshake_failed, "the handshake to fail");
    cr_assert_not(peers_up(h.p, 1));
    cr_assert_eq(h.ups, 0);
    cr_assert_str_eq(peers_id(h.p, 1), "", "an unproven id is not learned");
    cr_assert_eq(peers_slot(h.p, "dn1"), -ENOENT);
    stop(&h);
    cr_assert_geq(itest_stat(n, "peer_auth_refused"), 1,
                  "the node refused our proof too");
}

Test(peer_dyn, forget_closes_the_link_and_fails_what_is_pending)
{
    struct itest_node *n = node("dn1");
    struct harness h;
    start(&h, "tester", ITEST_SECRET);

    cr_assert_eq(add(&h, "dn1", addr_of(n)), 1);
    run_until(&h, 1, is_up, "the link");
    struct wire_req ping = {.op = WIRE_OP_PING};
    h.in_call = true;
    cr_assert_eq(peers_request(h.p, 1, &ping, on_reply, &h), 0);
    peers_forget(h.p, 1);
    h.in_call = false;
    cr_assert_eq(h.replies, 0, "not failed inside peers_forget");
    cr_assert_not(peers_up(h.p, 1), "forgotten: not up");
    cr_assert_eq(peers_request(h.p, 1, &ping, on_reply, &h), -ENOTCONN);
    run_until(&h, 1, replied, "the pending ping to fail");
    cr_assert_eq(h.last_err, -ENOTCONN);
    run_until(&h, 1, went_down, "the link-down callback");
    cr_assert_eq(h.last_slot, 1);
    cr_assert_not(h.cb_in_call, "no callback inside a peers_* call");

    /* Re-adding the address uses the same slot and it comes back up. */
    cr_assert_eq(add(&h, NULL, addr_of(n)), 1);
    run_until(&h, 1, is_up, "the link after re-adding");
    cr_assert_eq(h.ups, 2);
    stop(&h);
}

/* One request over a raw client connection; returns the answer's error. */
static int raw_gossip(const struct itest_node *n)
{
    uint8_t body[4096], hdr[4];
    struct wire_buf b;
    struct wire_resp r;
    msgpack_zone zone;
    const char *why = NULL;
    uint32_t len = 0;
    int fd = itest_raw_connect(n->port);
    struct wire_req q = {.id = 7,
                         .op = WIRE_OP_GOSSIP,
                         .data = (const uint8_t *)"x",
                         .data_len = 1};

    wire_buf_init(&b);
    cr_assert_eq(wire_encode_req(&b, &q), 0);
    cr_assert_eq(write(fd, b.data, b.len), (ssize_t)b.len);
    wire_buf_free(&b);
    cr_assert_eq(read(fd, hdr, 4), 4);
    cr_assert_eq(wire_frame_len(hdr, sizeof(body), &len), 0);
    for (size_t got = 0; got < len;) {
        ssize_t k = read(fd, body + got, len - got);
        cr_assert_gt(k, 0);
        got += (size_t)k;
    }
    close(fd);
    msgpack_zone_init(&zone, 1024);
    cr_assert_eq(wire_decode_resp(body, len, &zone, &r, &why), 0, "%s", why);
    cr_assert_eq(r.id, 7);
    int err = r.err;
    cr_assert(err == 0 || r.definite, "a refusal is definite");
    msgpack_zone_destroy(&zone);
    return err;
}

Test(peer_dyn, gossip_is_for_authenticated_peers_only)
{
    struct itest_node *n = node("dn1");
    struct harness h;

    int64_t before = itest_stat(n, "replica_ops_refused");
    cr_assert_eq(raw_gossip(n), RK_EFORBIDDEN);
    cr_assert_eq(itest_stat(n, "replica_ops_refused"), before + 1,
                 "the refusal is counted");

    start(&h, "tester", ITEST_SECRET);
    cr_assert_eq(add(&h, NULL, addr_of(n)), 1);
    run_until(&h, 1, is_up, "the link");
    struct wire_req g = {
        .op = WIRE_OP_GOSSIP, .data = (const uint8_t *)"hi", .data_len = 2};
    cr_assert_eq(peers_request(h.p, 1, &g, on_reply, &h), 0);
    run_until(&h, 1, replied, "the gossip answer");
    cr_assert_eq(h.last_err, RK_EPROTO,
                 "the node's membership layer refuses a malformed payload");
    stop(&h);
}

/* ---- a server in this process, with a gossip handler ------------------- */

struct gossip_seen {
    int calls;
    char from[72];
    char payload[64];
    int answer; /* what the handler returns */
};

static int on_gossip(void *arg, const char *from_id, const uint8_t *buf,
                     size_t len)
{
    struct gossip_seen *g = arg;
    g->calls++;
    snprintf(g->from, sizeof(g->from), "%s", from_id);
    snprintf(g->payload, sizeof(g->payload), "%.*s", (int)len,
             buf ? (const char *)buf : "");
    return g->answer;
}

static bool gossip_answered(struct harness *h, uint32_t slot)
{
    (void)slot;
    return h->replies >= 2;
}

Test(peer_dyn, a_gossip_handler_gets_the_payload_and_the_proven_id)
{
    struct harness h;
    struct gossip_seen seen = {0};
    struct storage *store = NULL;
    struct storage_info info;
    struct env env;
    struct ring *ring = NULL;
    struct core_member self = {0};
    struct server *srv = NULL;
    char err[256] = "", dir[] = "/tmp/ringkv-itest-XXXXXX", addr[64];

    start(&h, "tester", ITEST_SECRET);
    cr_assert(mkdtemp(dir) != NULL);
    struct storage_opts so = {.dir = dir,
                              .fsync = STORAGE_FSYNC_NEVER,
                              .fsync_interval_ms = 1000,
                              .map_size = 1ull << 26,
                              .partitions = 64,
                              .node_id = "gn1",
                              .new_epoch = 0x5eed};
    cr_assert_eq(storage_open(&store, &h.loop, &so, &info, err, sizeof(err)), 0,
                 "%s", err);
    /* The open files live on unlinked: nothing is left if the test fails. */
    itest_sh(NULL, 0, "rm -rf '%s'", dir);
    env_uv_init(&env, &h.loop, store, NULL);
    const char *ids[1] = {"gn1"};
    cr_assert_eq(ring_build(&ring, 64, ids, 1), 0);
    snprintf(self.id, sizeof(self.id), "gn1");
    snprintf(self.addr, sizeof(self.addr), "127.0.0.1:1");
    struct core_opts co = {.actor = info.epoch,
                           .partitions = 64,
                           .max_siblings = 8,
                           .conflict = CORE_CONFLICT_SIBLINGS,
                           .max_drift_ms = 60000,
                           .ring = ring,
                           .members = &self,
                           .self = 0,
                           .n = 1,
                           .r = 1,
                           .w = 1,
                           .timeout_ms = 5000,
                           .incarnation = 1};
    struct core *core = core_create(&env, &co);
    cr_assert_not_null(core);
    int port = itest_pick_ports();
    struct server_opts o = {.listen = "127.0.0.1",
                            .port = (uint16_t)port,
                            .lim = {WIRE_DEFAULT_MAX_FRAME,
                                    WIRE_DEFAULT_MAX_KEY,
                                    WIRE_DEFAULT_MAX_VALUE},
                            .max_clients = 16,
                            .conn_max_inflight = 4,
                            .conn_max_buffer = 1 << 20,
                            .max_inflight = 1024,
                            .max_buffer = 64u << 20,
                            .node_id = "gn1",
                            .epoch = info.epoch,
                            .partitions = 64,
                            .cluster = CLUSTER,
                            .secret = (const uint8_t *)ITEST_SECRET,
                            .secret_len = strlen(ITEST_SECRET)};
    cr_assert_eq(server_start(&srv, &h.loop, core, store, &o, err, sizeof(err)),
                 0, "%s", err);
    server_on_gossip(srv, on_gossip, &seen);

    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    cr_assert_eq(add(&h, NULL, addr), 1);
    run_until(&h, 1, is_up, "the link to the in-process server");
    cr_assert_str_eq(peers_id(h.p, 1), "gn1");
    struct wire_req g = {.op = WIRE_OP_GOSSIP,
                         .data = (const uint8_t *)"alive:n7",
                         .data_len = 8};
    cr_assert_eq(peers_request(h.p, 1, &g, on_reply, &h), 0);
    run_until(&h, 1, replied, "the gossip answer");
    cr_assert_eq(h.last_err, 0, "the handler took it: ok");
    cr_assert_eq(seen.calls, 1);
    cr_assert_str_eq(seen.from, "tester", "the id the dialer proved");
    cr_assert_str_eq(seen.payload, "alive:n7");

    seen.answer = RK_EOVERLOADED; /* the handler's error is the answer */
    cr_assert_eq(peers_request(h.p, 1, &g, on_reply, &h), 0);
    run_until(&h, 1, gossip_answered, "the second gossip answer");
    cr_assert_eq(h.last_err, RK_EOVERLOADED);
    cr_assert_eq(seen.calls, 2);

    peers_close(h.p);
    server_stop(srv);
    core_shutdown(core);
    storage_close(store);
    uv_run(&h.loop, UV_RUN_DEFAULT);
    server_destroy(srv);
    core_destroy(core);
    peers_destroy(h.p);
    ring_destroy(ring);
    cr_assert_eq(uv_loop_close(&h.loop), 0, "every handle closed");
}

Test(peer_dyn, slots_stop_at_peers_max_and_the_refusal_is_counted)
{
    struct harness h;
    struct peers_stats st;
    char addr[64], err[256] = "";
    start(&h, "tester", ITEST_SECRET);

    /* Nothing listens on 127.0.0.1:1..1023 here that would matter: the
     * slots only have to exist (their dials may fail). */
    for (int i = 1; i < PEERS_MAX; i++) {
        snprintf(addr, sizeof(addr), "127.0.0.1:%d", i);
        cr_assert_eq(add(&h, NULL, addr), i);
    }
    cr_assert_eq(peers_count(h.p), PEERS_MAX);
    cr_assert_eq(peers_add(h.p, NULL, "127.0.0.2:1", err, sizeof(err)),
                 -ENOSPC);
    cr_assert(strstr(err, "PEERS_MAX") != NULL, "%s", err);
    peers_get_stats(h.p, &st);
    cr_assert_eq(st.slots_refused, 1);
    cr_assert_eq(add(&h, NULL, "127.0.0.1:5"), 5, "known ones still found");
    peers_forget(h.p, 5);
    cr_assert_eq(add(&h, NULL, "127.0.0.1:5"), 5, "forgotten: same slot");
    cr_assert_eq(peers_count(h.p), PEERS_MAX, "never reused or grown");
    stop(&h);
}
