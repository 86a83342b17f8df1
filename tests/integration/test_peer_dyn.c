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
 *    answers not supported (unknown_op).
 *
 * Waiting is polling the loop with a deadline; nothing asserts on timing.
 */
#include "node/log.h"
#include "node/peer.h"
#include "node/peer_auth.h"
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
    cr_assert_eq(h.last_err, RK_EUNKNOWN_OP,
                 "without a membership layer: not supported");
    stop(&h);
}
