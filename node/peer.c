/*
 * peer.c - outgoing connections to the other members (see peer.h).
 *
 *   DOWN --connect--> CONNECTING --ok--> HELLO --proof ok--> AUTH --ok--> UP
 *     ^                   |                  |                   |        |
 *     +---reconnect timer-+--refused---------+--refused, bad-----+--EOF---+
 *         (after PEER_AUTH_RETRY_MS when the handshake failed)
 *
 * Handshake (dialer's side; server.c answers it):
 *
 *   dialer                                   acceptor
 *     hello {cluster, node, nonce}  ------->  checks the cluster name
 *           <-------  {node, nonce, mac = HMAC(acceptor proof)}
 *     checks node id and mac
 *     auth {mac = HMAC(dialer proof)} ----->  checks mac, marks the link
 *           <-------  ok                      a peer link
 *
 * Pending requests live in a per-peer open-addressing table keyed by id
 * (linear probing, backward-shift deletion), so a response finds its
 * callback in O(1) whatever order responses come in. A 1 s sweep fails
 * requests older than give_up_ms. Every callback runs from a libuv
 * callback (read, close, timer), never inside peers_request().
 */
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/log.h"
#include "node/peer.h"
#include "node/peer_auth.h"
#include "node/stream.h"

/* An idle connection gets a ping this often, so the other side's client
 * idle timeout never closes it and a hung peer is noticed. */
#define PEER_KEEPALIVE_MS 10000
/* Unsent bytes to one peer beyond which it is treated as down. */
#define PEER_MAX_OUT (64u << 20)

enum peer_state {
    PEER_DOWN = 0,
    PEER_CONNECTING,
    PEER_HELLO, /* connected, hello sent: waiting for the acceptor's proof */
    PEER_AUTH,  /* our proof sent: waiting for the acceptor's ok */
    PEER_UP,
    PEER_STATE_MAX
};

struct peer_pending {
    uint64_t id; /* 0 = empty slot */
    env_reply_fn fn;
    void *arg;
    uint64_t deadline;
};

struct peer {
    struct peers *owner;
    uint32_t idx;
    char id[72];
    char addr[280];
    struct sockaddr_storage sa;
    enum peer_state state;
    uv_tcp_t *tcp; /* NULL when down; freed in its close callback */
    uv_connect_t conn_req;
    struct stream st; /* buffers, frame split, writes (node/stream.h) */
    uint64_t next_id;
    struct peer_pending *pend;
    uint32_t pend_cap, pend_n;
    bool was_up;        /* for logging state changes once */
    uint64_t last_send; /* loop time of the last request sent */
    bool overflow;      /* out passed PEER_MAX_OUT: drop at the next tick */
    uint8_t nonce[PEER_AUTH_NONCE_LEN]; /* ours, for this connection */
    uint64_t hs_deadline; /* HELLO/AUTH: drop when not done by then */
    uint64_t retry_at;    /* DOWN: do not reconnect before (loop time) */
};

struct peers {
    uv_loop_t *loop;
    struct peer *p;
    uint32_t n, self;
    uint32_t max_frame;
    uint64_t give_up_ms;
    struct peers_auth auth;
    struct peers_stats st;
    uv_timer_t tick; /* reconnects and the give-up sweep */
    uv_check_t flush;
    struct stream *dirty; /* links to flush (stream_mark_dirty) */
    int handles;
    bool closing;
    msgpack_zone zone;
};

static void dial(struct peer *pe);
static void drop_link(struct peer *pe, int err);

/* ---- pending table ------------------------------------------------------ */

static uint32_t link_slot(const struct peer *pe, uint64_t id)
{
    return (uint32_t)(id * 0x9E3779B97F4A7C15ull >> 32) & (pe->pend_cap - 1);
}

static int pend_grow(struct peer *pe)
{
    uint32_t ncap = pe->pend_cap ? pe->pend_cap * 2 : 64;
    struct peer_pending *old = pe->pend;
    uint32_t ocap = pe->pend_cap;
    struct peer_pending *np = calloc(ncap, sizeof(*np));
    if (np == NULL)
        return -ENOMEM;
    pe->pend = np;
    pe->pend_cap = ncap;
    for (uint32_t i = 0; i < ocap; i++) {
        if (old[i].id == 0)
            continue;
        uint32_t s = link_slot(pe, old[i].id);
        while (np[s].id != 0)
            s = (s + 1) & (ncap - 1);
        np[s] = old[i];
    }
    free(old);
    return 0;
}

static int pend_add(struct peer *pe, const struct peer_pending *e)
{
    if ((pe->pend_n + 1) * 2 > pe->pend_cap && pend_grow(pe) != 0)
        return -ENOMEM;
    uint32_t s = link_slot(pe, e->id);
    while (pe->pend[s].id != 0)
        s = (s + 1) & (pe->pend_cap - 1);
    pe->pend[s] = *e;
    pe->pend_n++;
    return 0;
}

/* Removes slot s, shifting later entries of its cluster back. */
static void pend_del_slot(struct peer *pe, uint32_t s)
{
    uint32_t mask = pe->pend_cap - 1;
    uint32_t i = s, j = s;
    pe->pend[s].id = 0;
    pe->pend_n--;
    for (;;) {
        j = (j + 1) & mask;
        if (pe->pend[j].id == 0)
            return;
        uint32_t home = link_slot(pe, pe->pend[j].id);
        /* Move j back to i unless its home lies cyclically in (i, j]. */
        bool stay = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (stay)
            continue;
        pe->pend[i] = pe->pend[j];
        pe->pend[j].id = 0;
        i = j;
    }
}

/* Takes the pending entry for id out of the table. */
static bool pend_take(struct peer *pe, uint64_t id, struct peer_pending *e)
{
    if (pe->pend_cap == 0 || id == 0)
        return false;
    uint32_t s = link_slot(pe, id);
    while (pe->pend[s].id != 0) {
        if (pe->pend[s].id == id) {
            *e = pe->pend[s];
            pend_del_slot(pe, s);
            return true;
        }
        s = (s + 1) & (pe->pend_cap - 1);
    }
    return false;
}

/* Fails every pending request of pe with err. The table is emptied first
 * (one pass), then the callbacks run: they may send new requests, to other
 * peers or to pe once it is up again. */
static void fail_all(struct peer *pe, int err)
{
    struct peer_pending *old = pe->pend;
    uint32_t cap = pe->pend_cap;

    if (pe->pend_n == 0)
        return;
    pe->pend = NULL;
    pe->pend_cap = 0;
    pe->pend_n = 0;
    for (uint32_t i = 0; i < cap; i++)
        if (old[i].id != 0)
            old[i].fn(old[i].arg, err, NULL);
    free(old);
}

/* ---- I/O ------------------------------------------------------------------
 */

static void mark_dirty(struct peer *pe)
{
    stream_mark_dirty(&pe->owner->dirty, &pe->st);
}

static void close_cb(uv_handle_t *h)
{
    struct peers *ps = h->data;
    ps->handles--;
    free(h);
}

/* The connection is gone: fail what is pending, go DOWN. */
static void drop_link(struct peer *pe, int err)
{
    if (pe->tcp != NULL) {
        pe->tcp->data = pe->owner;
        uv_close((uv_handle_t *)pe->tcp, close_cb);
        pe->tcp = NULL;
    }
    if (pe->was_up) {
        pe->owner->st.links_dropped++;
        LOG_WARN("peer %s (%s) is down: %s", pe->id, pe->addr,
                 err < 0 && err > -4096 ? uv_strerror(err) : rk_err_msg(err));
    }
    pe->was_up = false;
    pe->state = PEER_DOWN;
    pe->overflow = false;
    stream_reset(&pe->st);
    fail_all(pe, err);
}

static void on_written(struct stream *st, int status)
{
    struct peer *pe = st->data;
    if (pe->tcp == NULL || pe->state < PEER_HELLO)
        return; /* dropped meanwhile */
    if (status < 0) {
        drop_link(pe, status);
        return;
    }
    if (pe->st.out.len > 0)
        mark_dirty(pe);
}

static void flush_one(struct peer *pe)
{
    if (pe->state < PEER_HELLO || pe->st.writing || pe->st.out.len == 0)
        return;
    int rc = stream_flush(&pe->st);
    if (rc < 0)
        drop_link(pe, rc);
}

static void peers_flush_cb(uv_check_t *h)
{
    struct peers *ps = h->data;
    struct stream *st;
    while ((st = stream_take_dirty(&ps->dirty)) != NULL)
        flush_one(st->data);
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct peer *pe = h->data;
    (void)hint;
    stream_read_buf(&pe->st, buf);
}

/* The handshake failed: say why, count it, drop the connection and wait
 * PEER_AUTH_RETRY_MS before dialing again. */
static void auth_failed(struct peer *pe, const char *why)
{
    struct peers *ps = pe->owner;
    ps->st.handshakes_failed++;
    LOG_WARN("peer %s (%s): handshake failed: %s; not using the link, retry "
             "in %d ms",
             pe->id, pe->addr, why, PEER_AUTH_RETRY_MS);
    pe->retry_at = uv_now(ps->loop) + PEER_AUTH_RETRY_MS;
    drop_link(pe, RK_EFORBIDDEN);
}

static void auth_input(const struct peer *pe, const uint8_t *acc_nonce,
                       struct peer_auth_input *in)
{
    const struct peers_auth *a = &pe->owner->auth;
    *in = (struct peer_auth_input){
        .secret = a->secret,
        .secret_len = a->secret_len,
        .acceptor_nonce = acc_nonce,
        .dialer_nonce = pe->nonce,
        .cluster = (const uint8_t *)a->cluster,
        .cluster_len = strlen(a->cluster),
        .acceptor_id = (const uint8_t *)pe->id,
        .acceptor_id_len = strlen(pe->id),
        .dialer_id = (const uint8_t *)a->self_id,
        .dialer_id_len = strlen(a->self_id),
    };
}

/* Appends a handshake request to pe->st.out and flushes it. */
static void send_hs(struct peer *pe, const struct wire_req *req)
{
    struct wire_req r = *req;
    r.id = pe->next_id++;
    if (wire_encode_req(&pe->st.out, &r) != 0) {
        drop_link(pe, -ENOMEM);
        return;
    }
    mark_dirty(pe);
}

/* HELLO or AUTH: the acceptor's answer to our hello or auth. */
static void on_handshake(struct peer *pe, const struct wire_resp *r)
{
    struct peer_auth_input in;
    uint8_t mac[PEER_AUTH_MAC_LEN];
    char why[160];

    if (r->err != 0) {
        snprintf(why, sizeof(why), "it refused our %s: %s",
                 pe->state == PEER_HELLO ? "hello" : "proof",
                 r->msg ? r->msg : rk_err_msg(r->err));
        auth_failed(pe, why);
        return;
    }
    if (pe->state == PEER_AUTH) {
        pe->state = PEER_UP;
        pe->last_send = uv_now(pe->owner->loop);
        if (!pe->was_up)
            LOG_INFO("peer %s (%s) is up (authenticated)", pe->id, pe->addr);
        pe->was_up = true;
        return;
    }
    const struct wire_hello *h = &r->hello;
    if (h->node == NULL || h->node_len != strlen(pe->id) ||
        memcmp(h->node, pe->id, h->node_len) != 0) {
        snprintf(why, sizeof(why),
                 "node id mismatch: expected %s, it says %.*s", pe->id,
                 h->node ? (int)h->node_len : 1,
                 h->node ? (const char *)h->node : "?");
        auth_failed(pe, why);
        return;
    }
    if (h->nonce == NULL || h->nonce_len != PEER_AUTH_NONCE_LEN) {
        auth_failed(pe, "its hello answer has no nonce");
        return;
    }
    auth_input(pe, h->nonce, &in);
    peer_auth_mac(mac, PEER_AUTH_ACCEPTOR, &in);
    bool proven = peer_auth_check(mac, h->mac, h->mac_len);
    peer_auth_mac(mac, PEER_AUTH_DIALER, &in);
    struct wire_req auth = {.op = WIRE_OP_AUTH,
                            .hello = {.mac = mac, .mac_len = sizeof(mac)}};
    pe->state = PEER_AUTH;
    send_hs(pe, &auth);
    if (!proven) {
        /* Our proof goes out anyway (best effort, before the drop), so
         * the acceptor logs the bad secret too; nothing else is sent. */
        flush_one(pe);
        auth_failed(pe, "bad secret: its proof does not match our "
                        "cluster secret");
    }
}

static void on_frame(struct peer *pe, const uint8_t *p, size_t n)
{
    struct peers *ps = pe->owner;
    struct wire_resp r;
    struct peer_pending e;
    const char *why = NULL;

    msgpack_zone_clear(&ps->zone);
    int rc = wire_decode_resp(p, n, &ps->zone, &r, &why);
    if (rc != 0) {
        LOG_WARN("peer %s (%s) sent a bad response (%s); reconnecting", pe->id,
                 pe->addr, why ? why : rk_err_msg(rc));
        drop_link(pe, RK_EPROTO);
        return;
    }
    if (pe->state == PEER_HELLO || pe->state == PEER_AUTH) {
        on_handshake(pe, &r);
        return;
    }
    if (!pend_take(pe, r.id, &e)) {
        if (r.id == 0)
            LOG_DEBUG("peer %s says: %s", pe->id, r.msg ? r.msg : "?");
        return; /* given up on, or an id-0 connection error */
    }
    e.fn(e.arg, 0, &r);
}

/* A response frame of len bytes (over max_frame), answering request id
 * (0 = unknown), is being skipped: fail that request; the link stays. */
static void on_skipped(struct peer *pe, uint32_t len, uint64_t id)
{
    struct peers *ps = pe->owner;
    struct peer_pending e;

    ps->st.frames_skipped++;
    LOG_WARN("peer %s (%s) sent a %" PRIu32 "-byte frame, over max_frame "
             "(%" PRIu32 "); skipped it",
             pe->id, pe->addr, len, ps->max_frame);
    if (pend_take(pe, id, &e))
        e.fn(e.arg, RK_ETOO_LARGE, NULL);
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct peer *pe = st->data;
    struct peers *ps = pe->owner;
    struct wire_frame f;
    (void)buf;

    if (nread == 0)
        return;
    if (nread < 0) {
        drop_link(pe, (int)nread);
        return;
    }
    stream_received(&pe->st, (size_t)nread);
    while (pe->state >= PEER_HELLO) {
        int k = stream_next(&pe->st, ps->max_frame, pe->state == PEER_UP, &f);
        if (k == WIRE_SPLIT_MORE)
            break;
        if (k < 0) {
            drop_link(pe, k);
            break;
        }
        if (k == WIRE_SPLIT_SKIPPED) {
            on_skipped(pe, f.len, f.id);
            continue;
        }
        if (k == WIRE_SPLIT_BAD) {
            LOG_WARN("peer %s (%s) sent a bad frame; reconnecting", pe->id,
                     pe->addr);
            drop_link(pe, RK_EPROTO);
            return;
        }
        on_frame(pe, f.body, f.len);
    }
    if (pe->state >= PEER_HELLO)
        stream_consume(&pe->st);
}

static void dial_cb(uv_connect_t *req, int status)
{
    struct peer *pe = req->data;
    if (pe->owner->closing) {
        return; /* peers_close() already closed the handle */
    }
    if (status < 0) {
        drop_link(pe, status);
        return;
    }
    const struct peers_auth *a = &pe->owner->auth;
    pe->state = PEER_HELLO;
    pe->hs_deadline = uv_now(pe->owner->loop) + pe->owner->give_up_ms;
    uv_tcp_nodelay(pe->tcp, 1);
    if (stream_read_start(&pe->st, alloc_cb, read_cb) != 0) {
        drop_link(pe, -EIO);
        return;
    }
    peer_auth_nonce(pe->nonce);
    struct wire_req hello = {
        .op = WIRE_OP_HELLO,
        .hello = {.cluster = (const uint8_t *)a->cluster,
                  .cluster_len = (uint32_t)strlen(a->cluster),
                  .node = (const uint8_t *)a->self_id,
                  .node_len = (uint32_t)strlen(a->self_id),
                  .nonce = pe->nonce,
                  .nonce_len = sizeof(pe->nonce)}};
    send_hs(pe, &hello);
}

static void dial(struct peer *pe)
{
    struct peers *ps = pe->owner;
    uv_tcp_t *t = malloc(sizeof(*t));
    if (t == NULL)
        return;
    uv_tcp_init(ps->loop, t);
    ps->handles++;
    t->data = pe;
    pe->tcp = t;
    pe->st.h = (uv_stream_t *)t;
    pe->state = PEER_CONNECTING;
    pe->conn_req.data = pe;
    int rc =
        uv_tcp_connect(&pe->conn_req, t, (struct sockaddr *)&pe->sa, dial_cb);
    if (rc != 0)
        drop_link(pe, rc);
}

static void ping_reply(void *arg, int err, const struct wire_resp *resp)
{
    (void)arg;
    (void)err;
    (void)resp;
}

static void peers_tick_cb(uv_timer_t *h)
{
    struct peers *ps = h->data;
    uint64_t now = uv_now(ps->loop);
    for (uint32_t i = 0; i < ps->n; i++) {
        struct peer *pe = &ps->p[i];
        if (i == ps->self)
            continue;
        if (pe->state == PEER_DOWN && now >= pe->retry_at)
            dial(pe);
        if ((pe->state == PEER_HELLO || pe->state == PEER_AUTH) &&
            now >= pe->hs_deadline) {
            auth_failed(pe, "no answer to the handshake in time");
            continue;
        }
        if (pe->state == PEER_UP && now - pe->last_send >= PEER_KEEPALIVE_MS) {
            struct wire_req ping = {.op = WIRE_OP_PING};
            peers_request(ps, i, &ping, ping_reply, NULL);
        }
        /* A request unanswered past its deadline means the peer is hung
         * (stopped, or a partition TCP has not noticed): drop the
         * connection, failing everything pending with it, and reconnect.
         * Bounds both memory and how long callers wait. */
        bool expired = false;
        for (uint32_t k = 0; k < pe->pend_cap && !expired; k++)
            expired = pe->pend[k].id != 0 && pe->pend[k].deadline <= now;
        if (pe->overflow && pe->state == PEER_UP) {
            LOG_WARN("peer %s (%s) does not read what we send; reconnecting",
                     pe->id, pe->addr);
            drop_link(pe, -ENOBUFS);
        } else if (expired && pe->state == PEER_UP) {
            LOG_WARN("peer %s (%s) did not answer in time; reconnecting",
                     pe->id, pe->addr);
            drop_link(pe, RK_ETIMEOUT);
        } else if (expired) {
            fail_all(pe, RK_ETIMEOUT);
        }
    }
}

/* ---- public ---------------------------------------------------------------
 */

int peers_create(struct peers **out, uv_loop_t *loop,
                 const struct peer_conf *members, uint32_t n, uint32_t self,
                 const struct peers_auth *auth, uint32_t max_frame,
                 uint64_t give_up_ms, char *err, size_t errlen)
{
    struct peers *ps = calloc(1, sizeof(*ps));
    if (ps == NULL)
        return -ENOMEM;
    ps->p = calloc(n, sizeof(*ps->p));
    if (ps->p == NULL) {
        free(ps);
        return -ENOMEM;
    }
    ps->loop = loop;
    ps->n = n;
    ps->self = self;
    ps->max_frame = max_frame;
    ps->give_up_ms = give_up_ms;
    ps->auth = *auth;
    msgpack_zone_init(&ps->zone, 4096);
    for (uint32_t i = 0; i < n; i++) {
        struct peer *pe = &ps->p[i];
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
        char port[8];

        stream_init(&pe->st, NULL, on_written, pe);
        pe->owner = ps;
        pe->idx = i;
        pe->next_id = 1;
        snprintf(pe->id, sizeof(pe->id), "%s", members[i].id);
        snprintf(pe->addr, sizeof(pe->addr), "%s:%u", members[i].host,
                 (unsigned)members[i].port);
        if (i == self)
            continue;
        snprintf(port, sizeof(port), "%u", (unsigned)members[i].port);
        int rc = getaddrinfo(members[i].host, port, &hints, &ai);
        if (rc != 0 || ai == NULL) {
            snprintf(err, errlen, "cannot resolve peer %s host '%s': %s",
                     members[i].id, members[i].host, gai_strerror(rc));
            msgpack_zone_destroy(&ps->zone);
            free(ps->p);
            free(ps);
            return RK_ECONFIG;
        }
        memcpy(&pe->sa, ai->ai_addr, ai->ai_addrlen);
        freeaddrinfo(ai);
    }
    uv_timer_init(loop, &ps->tick);
    ps->tick.data = ps;
    uv_check_init(loop, &ps->flush);
    ps->flush.data = ps;
    uv_check_start(&ps->flush, peers_flush_cb);
    uv_timer_start(&ps->tick, peers_tick_cb, PEER_RECONNECT_MS,
                   PEER_RECONNECT_MS);
    for (uint32_t i = 0; i < n; i++)
        if (i != self)
            dial(&ps->p[i]);
    *out = ps;
    return 0;
}

int peers_request(struct peers *ps, uint32_t member, const struct wire_req *req,
                  env_reply_fn fn, void *arg)
{
    if (ps->closing)
        return RK_ESHUTTING_DOWN;
    if (member >= ps->n || member == ps->self)
        return -EINVAL;
    struct peer *pe = &ps->p[member];
    if (pe->state != PEER_UP)
        return -ENOTCONN;
    if (pe->st.out.len > PEER_MAX_OUT) {
        /* The peer does not drain what we send: refuse, and let the tick
         * drop the connection (not here: that would run other requests'
         * callbacks inside this call). */
        pe->overflow = true;
        return -ENOTCONN;
    }
    struct wire_req r = *req;
    size_t mark = pe->st.out.len;
    r.id = pe->next_id++;
    if (wire_encode_req(&pe->st.out, &r) != 0)
        return -ENOMEM;
    if (pe->st.out.len - mark - WIRE_HDR_LEN > ps->max_frame) {
        pe->st.out.len = mark; /* the peer would refuse it: never send it */
        ps->st.requests_too_large++;
        return RK_ETOO_LARGE;
    }
    struct peer_pending e = {.id = r.id,
                             .fn = fn,
                             .arg = arg,
                             .deadline = uv_now(ps->loop) + ps->give_up_ms};
    if (pend_add(pe, &e) != 0) {
        pe->st.out.len = mark; /* unsend: the frame is the last thing in out */
        return -ENOMEM;
    }
    pe->last_send = uv_now(ps->loop);
    mark_dirty(pe);
    return 0;
}

bool peers_up(const struct peers *ps, uint32_t member)
{
    if (member == ps->self)
        return true;
    return member < ps->n && ps->p[member].state == PEER_UP;
}

void peers_get_stats(const struct peers *ps, struct peers_stats *out)
{
    if (ps == NULL)
        *out = (struct peers_stats){0};
    else
        *out = ps->st;
}

static void peers_handle_closed(uv_handle_t *h)
{
    struct peers *ps = h->data;
    ps->handles--;
}

void peers_close(struct peers *ps)
{
    if (ps == NULL || ps->closing)
        return;
    for (uint32_t i = 0; i < ps->n; i++) {
        struct peer *pe = &ps->p[i];
        if (i == ps->self)
            continue;
        pe->was_up = false;
        drop_link(pe, RK_ESHUTTING_DOWN);
    }
    ps->closing = true;
    ps->handles += 2;
    uv_close((uv_handle_t *)&ps->tick, peers_handle_closed);
    uv_close((uv_handle_t *)&ps->flush, peers_handle_closed);
}

void peers_destroy(struct peers *ps)
{
    if (ps == NULL)
        return;
    for (uint32_t i = 0; i < ps->n; i++) {
        stream_free(&ps->p[i].st);
        free(ps->p[i].pend);
    }
    msgpack_zone_destroy(&ps->zone);
    free(ps->p);
    free(ps);
}
