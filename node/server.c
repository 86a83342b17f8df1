/*
 * server.c - client connections and the native protocol (see server.h);
 * the RESP commands live in server_resp.c.
 *
 * Connection life:
 *
 *   accept -> reading <-> paused (backpressure / RESP read-after-write)
 *                |
 *          closing (error, QUIT, idle, stop): no more input is processed;
 *          pending output is flushed first when the close is polite
 *                |
 *          uv_close -> close_cb: the "open" reference is dropped
 *
 * A connection is freed when its last reference goes: one for being open,
 * one per request waiting on the core. A reply that arrives after the
 * connection closed is dropped.
 *
 * Output: replies append to conn->out; conn goes on the dirty list; the
 * check handle (after each poll phase) tries uv_try_write() and hands the
 * remainder to one uv_write() at a time (double buffer: out / wbuf).
 *
 * RESP connections share all of this; server_resp.c parses and answers
 * their commands (in order, through a FIFO of reply slots).
 *
 * Peers connect here too, as native clients that first pass the peer
 * handshake (hello, auth: see peer.c and docs/protocol.md). Replica
 * operations (rput, rget, fput, fdel) are taken only from such a
 * connection; any other gets a definite forbidden error.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/log.h"
#include "node/peer_auth.h"
#include "node/server_internal.h"

static void server_close_handle(struct server *s, uv_handle_t *h);
static void conn_process(struct conn *c);

/* ---- connection lifetime -------------------------------------------------
 */

static size_t conn_mem(const struct conn *c)
{
    return sizeof(*c) + stream_mem(&c->st) + c->req_bytes + c->slot_bytes;
}

void server__conn_account(struct conn *c)
{
    size_t m = c->refs > 0 ? conn_mem(c) : 0;
    c->srv->mem = c->srv->mem - c->mem_counted + m;
    c->mem_counted = m;
}

int server__admit(struct conn *c, const char **why)
{
    struct server *s = c->srv;
    if (s->inflight >= s->o.max_inflight) {
        s->overloaded_inflight++;
        *why = "node overloaded: max_inflight requests are waiting";
        return RK_EOVERLOADED;
    }
    if (s->mem > s->o.max_buffer) {
        s->overloaded_memory++;
        *why = "node overloaded: connections hold more than max_buffer bytes";
        return RK_EOVERLOADED;
    }
    return 0;
}

size_t server__reply_cap(const struct server *s)
{
    return s->o.conn_max_buffer > s->o.lim.max_frame ? s->o.conn_max_buffer
                                                     : s->o.lim.max_frame;
}

void server__conn_unref(struct conn *c)
{
    if (--c->refs > 0)
        return;
    server__conn_account(c); /* refs == 0: gives back everything */
    free(c->hs);
    stream_free(&c->st);
    msgpack_zone_destroy(&c->zone);
    free(c);
}

static void conn_close_cb(uv_handle_t *h)
{
    struct conn *c = (struct conn *)h;
    server__conn_unref(c);
}

void server__conn_close(struct conn *c)
{
    struct server *s = c->srv;
    if (c->closed)
        return;
    c->closing = true;
    c->closed = true;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    s->nconns--;
    uv_close((uv_handle_t *)&c->tcp, conn_close_cb);
}

void server__conn_dirty(struct conn *c)
{
    if (c->dirty || c->closed)
        return;
    c->dirty = true;
    c->dirty_next = c->srv->dirty;
    c->srv->dirty = c;
}

/* Polite close: flush what is queued, then close. */
void server__conn_close_after_flush(struct conn *c)
{
    c->closing = true;
    c->close_when_flushed = true;
    stream_read_stop(&c->st);
    server__conn_dirty(c);
}

/* ---- reading and backpressure ------------------------------------------
 */

static void conn_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct conn *c = (struct conn *)h;
    (void)hint;
    stream_read_buf(&c->st, buf);
}

bool server__conn_should_pause(const struct conn *c)
{
    return stream_queued(&c->st) + c->slot_bytes > c->srv->o.conn_max_buffer ||
           c->inflight >= c->srv->o.conn_max_inflight;
}

static void conn_read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

void server__conn_resume(struct conn *c)
{
    if (c->closing || c->st.reading || c->srv->stopping ||
        server__conn_should_pause(c))
        return;
    stream_read_start(&c->st, conn_alloc_cb, conn_read_cb);
    /* Bytes already buffered may hold whole requests. */
    conn_process(c);
}

void server__conn_pause(struct conn *c)
{
    if (!c->st.reading)
        return;
    if (c->inflight >= c->srv->o.conn_max_inflight)
        c->srv->paused_inflight++;
    else if (server__conn_should_pause(c))
        c->srv->paused_buffer++;
    stream_read_stop(&c->st);
}

static void conn_read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = (struct conn *)st;
    (void)buf;
    if (nread == 0)
        return;
    if (nread < 0) {
        if (nread != UV_EOF)
            LOG_DEBUG("client read error: %s", uv_strerror((int)nread));
        server__conn_close(c);
        return;
    }
    stream_received(&c->st, (size_t)nread);
    conn_process(c);
}

/* ---- writing -----------------------------------------------------------
 */

/* A write of c's ended (stream_flush started it and took a reference). */
static void conn_written(struct stream *st, int status)
{
    struct conn *c = st->data;
    stream_trim(&c->st);
    server__conn_account(c);
    if (status < 0) {
        if (!c->closed)
            server__conn_close(c);
    } else if (!c->closed) {
        server__conn_dirty(c);
        server__conn_resume(c);
    }
    server__conn_unref(c);
}

static void conn_flush(struct conn *c)
{
    if (c->closed || c->st.writing)
        return;
    int rc = stream_flush(&c->st);
    if (rc < 0) {
        server__conn_close(c);
        return;
    }
    if (rc > 0) {
        c->refs++; /* dropped by conn_written */
        return;
    }
    stream_trim(&c->st);
    server__conn_account(c);
    if (c->close_when_flushed && c->inflight == 0 && c->head == NULL)
        server__conn_close(c);
    else
        server__conn_resume(c);
}

static void server_flush_cb(uv_check_t *h)
{
    struct server *s = h->data;
    while (s->dirty != NULL) {
        struct conn *c = s->dirty;
        s->dirty = c->dirty_next;
        c->dirty = false;
        conn_flush(c);
    }
    /* Stopping: the check handle goes last, once every connection closed. */
    if (s->stopping && s->conns == NULL)
        server_close_handle(s, (uv_handle_t *)&s->flush);
}

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

static void native_error(struct conn *c, uint64_t id, int err, bool definite,
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

static void native_stats(struct conn *c, uint64_t id);

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
    native_error(c, id, RK_EFORBIDDEN, true, why);
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
        native_error(c, req->id, -ENOMEM, true, NULL);
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
    free(c->hs);
    c->hs = NULL;
    c->peer = true;
    struct wire_resp r = {.id = req->id, .op = WIRE_OP_AUTH};
    native_send(c, &r);
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
            native_error(c, id, -ENOMEM, true, NULL);
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
        native_error(c, req.id, err, true, why);
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
    case WIRE_OP_RPUT:
    case WIRE_OP_RGET:
    case WIRE_OP_FPUT:
    case WIRE_OP_FDEL:
        if (!c->peer) {
            s->replica_ops_refused++;
            LOG_DEBUG("refused %s from an unauthenticated connection",
                      wire_op_name(req.op));
            native_error(c, req.id, RK_EFORBIDDEN, true, NULL);
            return;
        }
        break;
    case WIRE_OP_GET:
    case WIRE_OP_PUT:
    case WIRE_OP_DEL:
        break;
    default:
        native_error(c, req.id, RK_EUNKNOWN_OP, true, NULL);
        return;
    }
    if ((err = server__admit(c, &why)) != 0) {
        native_error(c, req.id, err, true, why);
        return;
    }
    struct nreq *q = malloc(sizeof(*q));
    if (q == NULL) {
        native_error(c, req.id, -ENOMEM, true, NULL);
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
        native_error(c, id, RK_ETOO_LARGE, true, msg);
}

static void native_process(struct conn *c)
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
            native_error(c, 0, f.err, true,
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

static void conn_process(struct conn *c)
{
    if (c->resp)
        server__resp_process(c);
    else
        native_process(c);
    if (!c->closed) {
        stream_trim(&c->st);
        server__conn_account(c);
    }
}

/* ---- stats ---------------------------------------------------------------
 */

uint32_t server__collect(struct server *s, struct wire_stat *st)
{
    struct core_stats cs;
    struct storage_stats ss;
    struct peers_stats ps;
    uint32_t n = 0;

    core_get_stats(s->core, &cs);
    storage_get_stats(s->store, &ss);
    peers_get_stats(s->o.peers, &ps);
#define STAT_I(nm, v)                                                          \
    st[n++] = (struct wire_stat){.name = nm, .ival = (int64_t)(v)}
    st[n++] = (struct wire_stat){.name = "node_id", .sval = s->node_id};
    st[n++] = (struct wire_stat){.name = "epoch", .sval = s->epoch_hex};
    STAT_I("pid", uv_os_getpid());
    STAT_I("uptime_ms", uv_now(s->loop) - s->start_ms);
    STAT_I("connections", s->nconns);
    STAT_I("connections_accepted", s->accepted);
    STAT_I("connections_refused", s->refused);
    STAT_I("commands", s->commands);
    STAT_I("bad_frames", s->bad_frames);
    STAT_I("resp_errors", s->resp_errors);
    STAT_I("resp_oversized", s->resp_oversized);
    STAT_I("client_bytes", s->mem);
    STAT_I("client_inflight", s->inflight);
    STAT_I("overloaded_inflight", s->overloaded_inflight);
    STAT_I("overloaded_memory", s->overloaded_memory);
    STAT_I("replies_too_large", s->replies_too_large);
    STAT_I("paused_inflight", s->paused_inflight);
    STAT_I("paused_buffer", s->paused_buffer);
    STAT_I("idle_closed", s->idle_closed);
    STAT_I("replica_ops_refused", s->replica_ops_refused);
    STAT_I("peer_auth_refused", s->peer_auth_refused);
    STAT_I("peer_frames_skipped_in", s->peer_frames_skipped);
    STAT_I("peer_links_dropped", ps.links_dropped);
    STAT_I("peer_handshakes_failed", ps.handshakes_failed);
    STAT_I("peer_frames_skipped_out", ps.frames_skipped);
    STAT_I("peer_requests_too_large", ps.requests_too_large);
    STAT_I("gets", cs.gets);
    STAT_I("puts", cs.puts);
    STAT_I("dels", cs.dels);
    STAT_I("not_found", cs.not_found);
    STAT_I("errors", cs.errors);
    STAT_I("sibling_limit_refused", cs.sibling_limit);
    STAT_I("siblings_max_seen", cs.max_siblings_seen);
    STAT_I("lww_discarded", cs.lww_discarded);
    STAT_I("writes_pending", cs.writes_pending);
    STAT_I("coordinating", cs.coordinating);
    STAT_I("forwarded", cs.forwarded);
    STAT_I("replica_puts", cs.replica_puts);
    STAT_I("replica_gets", cs.replica_gets);
    STAT_I("timeouts", cs.timeouts);
    STAT_I("unavailable", cs.unavailable);
    STAT_I("read_repairs", cs.read_repairs);
    STAT_I("read_repair_failures", cs.read_repair_failures);
    STAT_I("clock_skew_rejected", cs.clock_skew_rejected);
    STAT_I("duplicate_forwards", cs.duplicate_forwards);
    STAT_I("record_too_large", cs.record_too_large);
    STAT_I("own_actor_refused", cs.own_actor_refused);
    STAT_I("storage_commits", ss.commits);
    STAT_I("storage_ops", ss.ops);
    STAT_I("storage_syncs", ss.syncs);
    STAT_I("storage_max_batch", ss.max_batch);
    STAT_I("storage_failures", ss.failures);
    STAT_I("storage_queued", ss.queued);
    STAT_I("storage_queued_bytes", ss.queued_bytes);
    STAT_I("storage_queue_refused", ss.queue_refused);
    STAT_I("storage_map_size", ss.map_size);
    STAT_I("storage_map_grows", ss.map_grows);
    STAT_I("storage_map_full", ss.map_full);
    STAT_I("storage_keys", ss.keys);
#undef STAT_I
    return n;
}

static void native_stats(struct conn *c, uint64_t id)
{
    struct wire_stat st[SERVER_NSTATS];
    struct wire_resp r = {.id = id, .op = WIRE_OP_STATS, .stats = st};
    r.nstats = server__collect(c->srv, st);
    native_send(c, &r);
}

/* ---- accept, idle, lifecycle ---------------------------------------------
 */

/* A new connection's struct, its handle initialised but not yet open. */
static struct conn *conn_new(struct server *s, bool resp)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->srv = s;
    c->resp = resp;
    c->id = ++s->next_conn_id;
    c->refs = 1;
    msgpack_zone_init(&c->zone, 4096);
    uv_tcp_init(s->loop, &c->tcp);
    stream_init(&c->st, (uv_stream_t *)&c->tcp, conn_written, c);
    return c;
}

/* c's socket is open: serve it, or refuse it past max_clients. */
static void conn_serve(struct conn *c)
{
    struct server *s = c->srv;

    uv_tcp_nodelay(&c->tcp, 1);
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    c->last_active = uv_now(s->loop);
    if (s->nconns > s->o.max_clients) {
        s->refused++;
        if (c->resp) {
            resp_error(&c->st.out, "ERR max number of clients reached");
        } else {
            native_error(c, 0, RK_EOVERLOADED, true,
                         "max number of clients reached");
        }
        server__conn_close_after_flush(c);
        server__conn_dirty(c);
        return;
    }
    s->accepted++;
    server__conn_resume(c);
}

static void server_on_conn(uv_stream_t *ls, int status)
{
    struct server *s = ls->data;
    struct conn *c;

    if (status < 0) {
        LOG_WARN("accept failed: %s", uv_strerror(status));
        return;
    }
    c = conn_new(s, ls == (uv_stream_t *)&s->lresp);
    if (c == NULL)
        return;
    if (uv_accept(ls, (uv_stream_t *)&c->tcp) != 0) {
        c->closed = true;
        uv_close((uv_handle_t *)&c->tcp, conn_close_cb);
        return;
    }
    conn_serve(c);
}

int server_adopt(struct server *s, uv_os_sock_t fd, bool resp)
{
    struct conn *c;
    int rc;

    if (s->stopping)
        return RK_ESHUTTING_DOWN;
    if ((c = conn_new(s, resp)) == NULL)
        return -ENOMEM;
    if ((rc = uv_tcp_open(&c->tcp, fd)) != 0) {
        c->closed = true; /* the handle does not own fd yet */
        uv_close((uv_handle_t *)&c->tcp, conn_close_cb);
        return rc;
    }
    conn_serve(c);
    return 0;
}

void server_get_load(const struct server *s, struct server_load *out)
{
    *out = (struct server_load){
        .connections = s->nconns, .inflight = s->inflight, .bytes = s->mem};
    for (const struct conn *c = s->conns; c != NULL; c = c->next) {
        out->unsent += stream_queued(&c->st);
        out->reading += c->st.reading;
    }
}

static void server_idle_cb(uv_timer_t *t)
{
    struct server *s = t->data;
    uint64_t now = uv_now(s->loop);
    struct conn *c = s->conns;
    while (c != NULL) {
        struct conn *next = c->next;
        if (c->inflight == 0 && now - c->last_active > s->o.idle_timeout_ms) {
            LOG_DEBUG("closing idle client connection");
            s->idle_closed++;
            server__conn_close(c);
        }
        c = next;
    }
}

static int server_listen(struct server *s, uv_tcp_t *h, uint16_t port,
                         bool init, char *err, size_t errlen)
{
    struct sockaddr_storage sa;
    int rc;

    /* Initialised first: server_stop() closes it whatever fails next. */
    if (init) {
        uv_tcp_init(s->loop, h);
        h->data = s;
        s->handles_open++;
    }
    if ((rc = uv_ip4_addr(s->listen_addr, port, (struct sockaddr_in *)&sa)) &&
        (rc = uv_ip6_addr(s->listen_addr, port, (struct sockaddr_in6 *)&sa))) {
        snprintf(err, errlen,
                 "bad listen address '%s' (a numeric IPv4 or IPv6 address)",
                 s->listen_addr);
        return RK_ECONFIG;
    }
    if ((rc = uv_tcp_bind(h, (struct sockaddr *)&sa, 0)) != 0 ||
        (rc = uv_listen((uv_stream_t *)h, 511, server_on_conn)) != 0) {
        snprintf(err, errlen, "cannot listen on %s:%u: %s", s->listen_addr,
                 (unsigned)port, uv_strerror(rc));
        return rc;
    }
    return 0;
}

static void server_handle_closed(uv_handle_t *h)
{
    struct server *s = h->data;
    s->handles_open--;
}

static void server_close_handle(struct server *s, uv_handle_t *h)
{
    h->data = s;
    if (!uv_is_closing(h))
        uv_close(h, server_handle_closed);
}

int server_start(struct server **out, uv_loop_t *loop, struct core *core,
                 struct storage *store, const struct server_opts *o, char *err,
                 size_t errlen)
{
    struct server *s = calloc(1, sizeof(*s));
    int rc;

    if (s == NULL)
        return -ENOMEM;
    s->loop = loop;
    s->core = core;
    s->store = store;
    s->o = *o;
    snprintf(s->listen_addr, sizeof(s->listen_addr), "%s", o->listen);
    snprintf(s->node_id, sizeof(s->node_id), "%s", o->node_id);
    snprintf(s->cluster, sizeof(s->cluster), "%s",
             o->cluster ? o->cluster : "");
    s->o.cluster = s->cluster;
    snprintf(s->epoch_hex, sizeof(s->epoch_hex), "%016" PRIx64, o->epoch);
    s->o.listen = s->listen_addr;
    s->o.node_id = s->node_id;
    s->start_ms = uv_now(loop);
    /* Initialised up front so every handle server_stop() closes exists. */
    uv_tcp_init(loop, &s->lresp);
    s->lresp.data = s;
    s->handles_open++;

    uv_check_init(loop, &s->flush);
    s->flush.data = s;
    s->handles_open++;
    uv_check_start(&s->flush, server_flush_cb);
    uv_timer_init(loop, &s->idle);
    s->idle.data = s;
    s->handles_open++;
    if (o->idle_timeout_ms > 0)
        uv_timer_start(&s->idle, server_idle_cb, 1000, 1000);

    rc = server_listen(s, &s->lnative, o->port, true, err, errlen);
    if (rc == 0 && o->resp_port != 0)
        rc = server_listen(s, &s->lresp, o->resp_port, false, err, errlen);
    *out = s;
    if (rc != 0)
        server_stop(s);
    return rc;
}

void server_stop(struct server *s)
{
    if (s->stopping)
        return;
    s->stopping = true;
    server_close_handle(s, (uv_handle_t *)&s->lnative);
    server_close_handle(s, (uv_handle_t *)&s->lresp);
    server_close_handle(s, (uv_handle_t *)&s->idle);
    /* Flush everything queued, then close; the check handle goes last. */
    for (struct conn *c = s->conns; c != NULL; c = c->next)
        server__conn_close_after_flush(c);
    server_flush_cb(&s->flush);
}

void server_force_close(struct server *s)
{
    struct conn *c = s->conns;
    while (c != NULL) {
        struct conn *next = c->next;
        server__conn_close(c); /* uv_close cancels pending writes */
        c = next;
    }
    if (!uv_is_closing((uv_handle_t *)&s->flush))
        server_close_handle(s, (uv_handle_t *)&s->flush);
}

void server_destroy(struct server *s)
{
    if (s == NULL)
        return;
    free(s);
}
