/*
 * server_native.c - the native protocol on client connections (see
 * server.h and docs/protocol.md): frames split by the connection's stream
 * (stream.c) are decoded, checked and dispatched; replies are encoded to
 * the stream's output, a reply over max_frame is refused (replies_too_large).
 *
 *   frame --wire_decode_req--> ping, stats, ring, members: answered here
 *                          --> hello, auth: the peer handshake
 *                          --> gossip (peers only): the member layer's
 *                              handler (server_on_gossip), answered here
 *                          --> get, put, del, (peers only) rput, rget,
 *                              fput, fdel: admitted, then core_request()
 *                              --> native_reply
 *
 * Peers connect here too, as native clients that first pass the peer
 * handshake (hello, auth: see peer.c and docs/protocol.md). Replica
 * operations (rput, rget, fput, fdel) are taken only from such a
 * connection; any other gets a definite forbidden error. On such a
 * connection an oversized request frame is skipped and answered too_large;
 * on any other it ends the connection.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/log.h"
#include "node/peer_auth.h"
#include "node/server_internal.h"

/* ---- native protocol -----------------------------------------------------
 */

struct nreq {
    struct conn *conn;
    uint64_t id;
    enum wire_op op;
    size_t bytes; /* counted in conn->req_bytes while waiting */
};

static void native_send(struct conn *c, const struct wire_resp *r)
{
    size_t mark = c->st.out.len;
    if (c->closed)
        return;
    if (wire_encode_resp(&c->st.out, r) != 0) {
        LOG_ERROR("out of memory encoding a reply; closing the connection");
        server__conn_close(c);
        return;
    }
    size_t body = c->st.out.len - mark - WIRE_HDR_LEN;
    if (r->err == 0 && body > c->srv->o.lim.max_frame) {
        /* The other side would refuse the frame (a peer would drop the
         * link): answer this request with an error instead. */
        char msg[128];
        c->st.out.len = mark;
        c->srv->replies_too_large++;
        snprintf(msg, sizeof(msg),
                 "reply of %zu bytes exceeds max_frame (%" PRIu32 ")", body,
                 c->srv->o.lim.max_frame);
        /* A write's reply comes after the write was applied: only a
         * read's refusal is definite. */
        bool write = r->op == WIRE_OP_PUT || r->op == WIRE_OP_DEL ||
                     r->op == WIRE_OP_FPUT || r->op == WIRE_OP_FDEL ||
                     r->op == WIRE_OP_RPUT;
        struct wire_resp e = {
            .id = r->id, .err = RK_ETOO_LARGE, .definite = !write, .msg = msg};
        native_send(c, &e);
        return;
    }
    server__conn_dirty(c);
}

void server__native_error(struct conn *c, uint64_t id, int err, bool definite,
                          const char *msg)
{
    struct wire_resp r = {
        .id = id, .err = err, .definite = definite, .msg = msg};
    native_send(c, &r);
}

static void native_reply(void *arg, const struct core_reply *rep)
{
    struct nreq *q = arg;
    struct conn *c = q->conn;
    struct wire_value vals[WIRE_MAX_VALUES];
    struct wire_resp r;

    core_reply_to_wire(rep, q->id, q->op, vals, &r);
    native_send(c, &r);
    c->inflight--;
    c->srv->inflight--;
    c->req_bytes -= q->bytes;
    free(q);
    server__conn_account(c);
    if (!c->closed)
        server__conn_resume(c);
    server__conn_unref(c);
}

static void native_stats(struct conn *c, uint64_t id)
{
    struct wire_stat st[SERVER_NSTATS];
    struct wire_resp r = {.id = id, .op = WIRE_OP_STATS, .stats = st};
    r.nstats = server__collect(c->srv, st);
    native_send(c, &r);
}
/* ---- peer handshake --------------------------------------------------------
 */

/* What the acceptor keeps between hello and auth. */
struct server_hs {
    uint8_t nonce[PEER_AUTH_NONCE_LEN];        /* ours */
    uint8_t dialer_nonce[PEER_AUTH_NONCE_LEN]; /* theirs */
    char node[256];                            /* the id the dialer gave */
};

/* "host:port" of c's remote end, for log lines. */
static void conn_addr(struct conn *c, char *buf, size_t len)
{
    struct sockaddr_storage sa;
    int sl = sizeof(sa);
    char host[64] = "?";
    int port = 0;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&sa, &sl) == 0) {
        if (sa.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&sa, host, sizeof(host));
            port = ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
        } else {
            uv_ip4_name((struct sockaddr_in *)&sa, host, sizeof(host));
            port = ntohs(((struct sockaddr_in *)&sa)->sin_port);
        }
    }
    snprintf(buf, len, "%s:%d", host, port);
}

/* Refuses a handshake: logs why (naming the address and claimed node),
 * counts it, answers forbidden and hangs up. */
static void native_hs_refuse(struct conn *c, uint64_t id, const char *node,
                             const char *why)
{
    char addr[80];
    conn_addr(c, addr, sizeof(addr));
    c->srv->peer_auth_refused++;
    LOG_WARN("peer handshake from %s (node %s) refused: %s", addr,
             node ? node : "?", why);
    server__native_error(c, id, RK_EFORBIDDEN, true, why);
    server__conn_close_after_flush(c);
}

static void native_hs_input(const struct server *s, const struct server_hs *hs,
                            struct peer_auth_input *in)
{
    *in = (struct peer_auth_input){
        .secret = s->o.secret,
        .secret_len = s->o.secret_len,
        .acceptor_nonce = hs->nonce,
        .dialer_nonce = hs->dialer_nonce,
        .cluster = (const uint8_t *)s->o.cluster,
        .cluster_len = strlen(s->o.cluster),
        .acceptor_id = (const uint8_t *)s->node_id,
        .acceptor_id_len = strlen(s->node_id),
        .dialer_id = (const uint8_t *)hs->node,
        .dialer_id_len = strlen(hs->node),
    };
}

static void native_hello(struct conn *c, const struct wire_req *req)
{
    struct server *s = c->srv;
    const struct wire_hello *h = &req->hello;
    char node[256], why[384];
    struct peer_auth_input in;
    uint8_t mac[PEER_AUTH_MAC_LEN];

    snprintf(node, sizeof(node), "%.*s", h->node ? (int)h->node_len : 1,
             h->node ? (const char *)h->node : "?");
    if (c->peer || c->hs != NULL) {
        native_hs_refuse(c, req->id, node, "handshake repeated");
        return;
    }
    if (s->o.secret == NULL) {
        native_hs_refuse(c, req->id, node,
                         "this node has no cluster secret (a single node)");
        return;
    }
    if (h->cluster == NULL || h->node == NULL || h->node_len == 0 ||
        h->nonce == NULL || h->nonce_len != PEER_AUTH_NONCE_LEN) {
        native_hs_refuse(c, req->id, node,
                         "hello needs cluster, node and a 32-byte nonce");
        return;
    }
    if (h->cluster_len != strlen(s->o.cluster) ||
        memcmp(h->cluster, s->o.cluster, h->cluster_len) != 0) {
        snprintf(why, sizeof(why),
                 "cluster name mismatch: this is cluster '%s', the peer says "
                 "'%.*s'",
                 s->o.cluster, (int)h->cluster_len, (const char *)h->cluster);
        native_hs_refuse(c, req->id, node, why);
        return;
    }
    c->hs = calloc(1, sizeof(*c->hs));
    if (c->hs == NULL) {
        server__native_error(c, req->id, -ENOMEM, true, NULL);
        return;
    }
    memcpy(c->hs->node, node, sizeof(node));
    memcpy(c->hs->dialer_nonce, h->nonce, PEER_AUTH_NONCE_LEN);
    peer_auth_nonce(c->hs->nonce);
    native_hs_input(s, c->hs, &in);
    peer_auth_mac(mac, PEER_AUTH_ACCEPTOR, &in);
    struct wire_resp r = {.id = req->id,
                          .op = WIRE_OP_HELLO,
                          .hello = {.node = (const uint8_t *)s->node_id,
                                    .node_len = (uint32_t)strlen(s->node_id),
                                    .nonce = c->hs->nonce,
                                    .nonce_len = PEER_AUTH_NONCE_LEN,
                                    .mac = mac,
                                    .mac_len = sizeof(mac)}};
    native_send(c, &r);
}

static void native_auth(struct conn *c, const struct wire_req *req)
{
    struct peer_auth_input in;
    uint8_t mac[PEER_AUTH_MAC_LEN];
    char addr[80];

    if (c->hs == NULL) {
        native_hs_refuse(c, req->id, NULL, "auth without hello");
        return;
    }
    native_hs_input(c->srv, c->hs, &in);
    peer_auth_mac(mac, PEER_AUTH_DIALER, &in);
    if (!peer_auth_check(mac, req->hello.mac, req->hello.mac_len)) {
        native_hs_refuse(c, req->id, c->hs->node,
                         "bad secret: the proof does not match this node's "
                         "cluster secret");
        return;
    }
    conn_addr(c, addr, sizeof(addr));
    LOG_INFO("peer %s (%s) authenticated", c->hs->node, addr);
    memcpy(c->peer_id, c->hs->node, sizeof(c->peer_id));
    free(c->hs);
    c->hs = NULL;
    c->peer = true;
    struct wire_resp r = {.id = req->id, .op = WIRE_OP_AUTH};
    native_send(c, &r);
}

/* gossip: hands the payload to the member layer with the id the peer
 * proved; answers ok or its error. */
static void native_gossip(struct conn *c, const struct wire_req *req)
{
    struct server *s = c->srv;
    if (!c->peer) {
        s->replica_ops_refused++;
        LOG_DEBUG("refused gossip from an unauthenticated connection");
        server__native_error(c, req->id, RK_EFORBIDDEN, true, NULL);
        return;
    }
    if (s->gossip_fn == NULL) {
        server__native_error(c, req->id, RK_EUNKNOWN_OP, true,
                             "gossip not supported: this node has no "
                             "membership layer");
        return;
    }
    int rc = s->gossip_fn(s->gossip_arg, c->peer_id, req->data, req->data_len);
    if (rc < 0) {
        server__native_error(c, req->id, rc, true, NULL);
        return;
    }
    struct wire_resp r = {.id = req->id, .op = req->op};
    native_send(c, &r);
}

/* admin: the member layer answers (join, leave, remove, members,
 * transfers; peers' requests to the claimant). */
static void native_admin(struct conn *c, const struct wire_req *req)
{
    struct server *s = c->srv;
    char *text = NULL;
    if (s->admin_fn == NULL) {
        server__native_error(c, req->id, RK_EUNKNOWN_OP, true,
                             "admin not supported: this node has no "
                             "membership layer (it needs a cluster secret)");
        return;
    }
    int rc = s->admin_fn(s->admin_arg, req->cmd, req->arg, req->part, req->json,
                         c->peer, &text);
    if (rc != 0) {
        server__native_error(c, req->id, rc, true, text);
    } else {
        struct wire_resp r = {.id = req->id, .op = req->op, .text = text};
        native_send(c, &r);
    }
    free(text);
}

static void native_cluster(struct conn *c, uint64_t id, enum wire_op op)
{
    struct server *s = c->srv;
    struct wire_member m[WIRE_MAX_MEMBERS];
    struct wire_resp r = {.id = id, .op = op, .members = m};
    uint16_t *pref = NULL;

    r.nmembers = core_members(s->core, m, WIRE_MAX_MEMBERS);
    if (op == WIRE_OP_RING) {
        r.q = s->o.partitions;
        r.nval = core_nval(s->core);
        pref = malloc((size_t)r.q * r.nval * sizeof(*pref));
        if (pref == NULL) {
            server__native_error(c, id, -ENOMEM, true, NULL);
            return;
        }
        core_ring_pref(s->core, pref);
        r.pref = pref;
    }
    native_send(c, &r);
    free(pref);
}

/* The message of a too_large request: which limit, the size and the limit
 * (wire_decode_req fills the lengths before it refuses). */
static const char *native_too_large(const struct server *s,
                                    const struct wire_req *req, char *buf,
                                    size_t cap)
{
    const struct wire_limits *l = &s->o.lim;
    if (req->key_len > l->max_key)
        snprintf(buf, cap,
                 "key of %" PRIu32 " bytes exceeds max_key (%" PRIu32 " bytes)",
                 req->key_len, l->max_key);
    else if (req->value_len > l->max_value)
        snprintf(buf, cap,
                 "value of %" PRIu32 " bytes exceeds max_value (%" PRIu32
                 " bytes)",
                 req->value_len, l->max_value);
    else if (req->rec_len > l->max_frame)
        snprintf(buf, cap,
                 "record of %" PRIu32 " bytes exceeds max_frame (%" PRIu32
                 " bytes)",
                 req->rec_len, l->max_frame);
    else
        return NULL;
    return buf;
}

static void native_frame(struct conn *c, const uint8_t *p, size_t n)
{
    struct server *s = c->srv;
    struct wire_req req;
    const char *why = NULL;
    char msg[160]; /* why, when it is formatted here */
    int err;

    c->last_active = uv_now(s->loop); /* a whole request arrived */
    msgpack_zone_clear(&c->zone);
    err = wire_decode_req(p, n, &s->o.lim, &c->zone, &req, &why);
    if (err == RK_ETOO_LARGE) {
        const char *m = native_too_large(s, &req, msg, sizeof(msg));
        why = m != NULL ? m : why;
    }
    if (err != 0) {
        s->bad_frames++;
        LOG_DEBUG("bad request: %s", why ? why : rk_err_msg(err));
        server__native_error(c, req.id, err, true, why);
        return;
    }
    s->commands++;
    switch (req.op) {
    case WIRE_OP_PING: {
        struct wire_resp r = {.id = req.id, .op = req.op};
        native_send(c, &r);
        return;
    }
    case WIRE_OP_STATS:
        native_stats(c, req.id);
        return;
    case WIRE_OP_RING:
    case WIRE_OP_MEMBERS:
        native_cluster(c, req.id, req.op);
        return;
    case WIRE_OP_HELLO:
        native_hello(c, &req);
        return;
    case WIRE_OP_AUTH:
        native_auth(c, &req);
        return;
    case WIRE_OP_GOSSIP:
        native_gossip(c, &req);
        return;
    case WIRE_OP_ADMIN:
        native_admin(c, &req);
        return;
    case WIRE_OP_RPUT:
    case WIRE_OP_RGET:
    case WIRE_OP_FPUT:
    case WIRE_OP_FDEL:
        if (!c->peer) {
            s->replica_ops_refused++;
            LOG_DEBUG("refused %s from an unauthenticated connection",
                      wire_op_name(req.op));
            server__native_error(c, req.id, RK_EFORBIDDEN, true, NULL);
            return;
        }
        break;
    case WIRE_OP_GET:
    case WIRE_OP_PUT:
    case WIRE_OP_DEL:
        break;
    default:
        server__native_error(c, req.id, RK_EUNKNOWN_OP, true, NULL);
        return;
    }
    if ((err = server__admit(c, &why)) != 0) {
        server__native_error(c, req.id, err, true, why);
        return;
    }
    struct nreq *q = malloc(sizeof(*q));
    if (q == NULL) {
        server__native_error(c, req.id, -ENOMEM, true, NULL);
        return;
    }
    q->conn = c;
    q->id = req.id;
    q->op = req.op;
    q->bytes = sizeof(*q) + n;
    c->refs++;
    c->inflight++;
    s->inflight++;
    c->req_bytes += q->bytes;
    struct core_req cr;
    core_req_from_wire(&req, &cr);
    core_request(s->core, &cr, native_reply, q);
}

/* A peer's request frame of len bytes (over max_frame), request id (0 =
 * unknown), is being skipped: answer it too_large. The peer link and its
 * other requests survive. */
static void native_skipped(struct conn *c, uint32_t len, uint64_t id)
{
    struct server *s = c->srv;
    char msg[128], addr[80];

    s->peer_frames_skipped++;
    snprintf(msg, sizeof(msg),
             "frame of %" PRIu32 " bytes exceeds max_frame (%" PRIu32 ")", len,
             s->o.lim.max_frame);
    conn_addr(c, addr, sizeof(addr));
    LOG_WARN("peer %s: %s; skipped", addr, msg);
    if (id != 0)
        server__native_error(c, id, RK_ETOO_LARGE, true, msg);
}

void server__native_process(struct conn *c)
{
    struct server *s = c->srv;
    struct wire_frame f;

    while (!c->closing && c->st.reading) {
        int k = stream_next(&c->st, s->o.lim.max_frame, c->peer, &f);
        if (k == WIRE_SPLIT_MORE)
            break;
        if (k < 0) {
            server__conn_close(c);
            break;
        }
        if (k == WIRE_SPLIT_SKIPPED) {
            native_skipped(c, f.len, f.id);
            continue;
        }
        if (k == WIRE_SPLIT_BAD) {
            /* The stream cannot be framed any more: answer and hang up. */
            char msg[128];
            snprintf(msg, sizeof(msg),
                     "frame of %" PRIu32 " bytes exceeds max_frame (%" PRIu32
                     " bytes)",
                     f.len, s->o.lim.max_frame);
            s->bad_frames++;
            server__native_error(c, 0, f.err, true,
                                 f.err == RK_ETOO_LARGE ? msg : "empty frame");
            server__conn_close_after_flush(c);
            break;
        }
        native_frame(c, f.body, f.len);
        if (server__conn_should_pause(c))
            server__conn_pause(c);
    }
    stream_consume(&c->st);
}
