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
    char id[72]; /* "" while unknown (peers_add without an id) */
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
    bool forgotten;       /* peers_forget(): not dialed, not used */
    bool drop_later;      /* forgotten while linked: drop at "later" */
    bool is_self;         /* proved to be this node: never dialed again */
};

struct peers {
    uv_loop_t *loop;
    struct peer **p; /* slots [0, n), each allocated once, never reused */
    uint32_t n, cap, self;
    uint32_t max_frame;
    uint64_t give_up_ms;
    struct peers_auth auth;
    struct peers_stats st;
    uv_timer_t tick;  /* reconnects and the give-up sweep */
    uv_timer_t later; /* peers_forget()'s drops, outside the caller */
    uv_check_t flush;
    struct stream *dirty; /* links to flush (stream_mark_dirty) */
    int handles;
    bool closing;
    msgpack_zone zone;
    peers_link_fn on_link; /* peers_on_link(); NULL = none */
    void *on_link_arg;
};

static void dial(struct peer *pe);
static void drop_link(struct peer *pe, int err);

/* pe's id for log lines. */
static const char *label(const struct peer *pe)
{
    return pe->id[0] != '\0' ? pe->id : "(id unknown)";
}

/* Tells the link callback that pe went up or down. */
static void notify(struct peer *pe, bool up)
{
    struct peers *ps = pe->owner;
    if (ps->on_link != NULL)
        ps->on_link(ps->on_link_arg, pe->idx, pe->id, up);
}

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
    bool was_up = pe->was_up;
    if (was_up) {
        pe->owner->st.links_dropped++;
        LOG_WARN("peer %s (%s) is down: %s", label(pe), pe->addr,
                 err < 0 && err > -4096 ? uv_strerror(err) : rk_err_msg(err));
    }
    pe->was_up = false;
    pe->state = PEER_DOWN;
    pe->overflow = false;
    stream_reset(&pe->st);
    fail_all(pe, err);
    if (was_up)
        notify(pe, false);
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
             label(pe), pe->addr, why, PEER_AUTH_RETRY_MS);
    pe->retry_at = uv_now(ps->loop) + PEER_AUTH_RETRY_MS;
    drop_link(pe, RK_EFORBIDDEN);
}

/* acc_id[0..acc_len): the id the acceptor claims (ours for it when we
 * know it, else the one it sent). */
static void auth_input(const struct peer *pe, const uint8_t *acc_nonce,
                       const uint8_t *acc_id, size_t acc_len,
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
        .acceptor_id = acc_id,
        .acceptor_id_len = acc_len,
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

/* The acceptor proved id h->node on a slot whose id we did not know:
 * record it, or forget the slot quietly when it is this node. Returns true
 * when the handshake goes on. */
static bool learn_id(struct peer *pe, const struct wire_hello *h)
{
    struct peers *ps = pe->owner;
    const char *self = ps->auth.self_id;
    if (h->node_len == strlen(self) &&
        memcmp(h->node, self, h->node_len) == 0) {
        LOG_INFO("peer address %s is this node (%s); forgetting it", pe->addr,
                 self);
        snprintf(pe->id, sizeof(pe->id), "%s", self);
        pe->is_self = true;
        pe->forgotten = true;
        drop_link(pe, -ENOTCONN); /* never up: nothing pending, no notice */
        return false;
    }
    memcpy(pe->id, h->node, h->node_len);
    pe->id[h->node_len] = '\0';
    LOG_INFO("peer address %s is node %s", pe->addr, pe->id);
    return true;
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
        if (!pe->was_up) {
            LOG_INFO("peer %s (%s) is up (authenticated)", label(pe), pe->addr);
            pe->was_up = true;
            notify(pe, true);
        }
        return;
    }
    const struct wire_hello *h = &r->hello;
    bool known = pe->id[0] != '\0';
    if (h->node == NULL || h->node_len == 0 || h->node_len >= sizeof(pe->id) ||
        (known && (h->node_len != strlen(pe->id) ||
                   memcmp(h->node, pe->id, h->node_len) != 0))) {
        snprintf(why, sizeof(why),
                 "node id mismatch: expected %s, it says %.*s",
                 known ? pe->id : "any id of at most 71 bytes",
                 h->node ? (int)h->node_len : 1,
                 h->node ? (const char *)h->node : "?");
        auth_failed(pe, why);
        return;
    }
    if (h->nonce == NULL || h->nonce_len != PEER_AUTH_NONCE_LEN) {
        auth_failed(pe, "its hello answer has no nonce");
        return;
    }
    auth_input(pe, h->nonce, h->node, h->node_len, &in);
    peer_auth_mac(mac, PEER_AUTH_ACCEPTOR, &in);
    bool proven = peer_auth_check(mac, h->mac, h->mac_len);
    if (proven && !known && !learn_id(pe, h))
        return;
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
        LOG_WARN("peer %s (%s) sent a bad response (%s); reconnecting",
                 label(pe), pe->addr, why ? why : rk_err_msg(rc));
        drop_link(pe, RK_EPROTO);
        return;
    }
    if (pe->state == PEER_HELLO || pe->state == PEER_AUTH) {
        on_handshake(pe, &r);
        return;
    }
    if (!pend_take(pe, r.id, &e)) {
        if (r.id == 0)
            LOG_DEBUG("peer %s says: %s", label(pe), r.msg ? r.msg : "?");
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
             label(pe), pe->addr, len, ps->max_frame);
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
            LOG_WARN("peer %s (%s) sent a bad frame; reconnecting", label(pe),
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
    if (pe->owner->closing || req->handle != (uv_stream_t *)pe->tcp) {
        return; /* peers_close() or a drop already closed the handle */
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
        struct peer *pe = ps->p[i];
        if (i == ps->self || pe->drop_later)
            continue;
        if (pe->state == PEER_DOWN && now >= pe->retry_at && !pe->forgotten)
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
                     label(pe), pe->addr);
            drop_link(pe, -ENOBUFS);
        } else if (expired && pe->state == PEER_UP) {
            LOG_WARN("peer %s (%s) did not answer in time; reconnecting",
                     label(pe), pe->addr);
            drop_link(pe, RK_ETIMEOUT);
        } else if (expired) {
            fail_all(pe, RK_ETIMEOUT);
        }
    }
}

/* peers_forget()'s drops, from a libuv callback of their own. */
static void later_cb(uv_timer_t *h)
{
    struct peers *ps = h->data;
    for (uint32_t i = 0; i < ps->n; i++) {
        struct peer *pe = ps->p[i];
        if (!pe->drop_later)
            continue;
        pe->drop_later = false;
        drop_link(pe, -ENOTCONN);
    }
}

/* ---- slots ----------------------------------------------------------------
 */

/* Splits "host:port" or "[v6]:port" into host (NUL-terminated) and port.
 * Returns 0 or -EINVAL. */
static int split_addr(const char *addr, char *host, size_t hostlen,
                      uint16_t *port)
{
    const char *h = addr, *colon;
    size_t hl;

    if (addr == NULL || addr[0] == '\0')
        return -EINVAL;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (close == NULL || close[1] != ':')
            return -EINVAL;
        h = addr + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(addr, ':');
        if (colon == NULL || memchr(addr, ':', (size_t)(colon - addr)))
            return -EINVAL; /* no port, or a bare IPv6 address */
        hl = (size_t)(colon - addr);
    }
    if (hl == 0 || hl >= hostlen)
        return -EINVAL;
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(colon + 1, &end, 10);
    if (colon[1] < '0' || colon[1] > '9' || *end != '\0' || errno != 0 ||
        v == 0 || v > 65535)
        return -EINVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (uint16_t)v;
    return 0;
}

static int resolve(const char *host, uint16_t port, struct sockaddr_storage *sa)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    char ps[8];
    snprintf(ps, sizeof(ps), "%u", (unsigned)port);
    int rc = getaddrinfo(host, ps, &hints, &ai);
    if (rc != 0 || ai == NULL)
        return rc != 0 ? rc : EAI_NONAME;
    memcpy(sa, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    return 0;
}

static bool same_sockaddr(const struct sockaddr_storage *a,
                          const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port &&
               x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    return false;
}

/* A new slot (the next index) with id (NULL or "" = unknown) and display
 * address addr; the caller fills pe->sa. Returns it, or NULL when
 * PEERS_MAX slots exist (counted) or memory runs out. */
static struct peer *new_slot(struct peers *ps, const char *id, const char *addr)
{
    if (ps->n >= PEERS_MAX) {
        ps->st.slots_refused++;
        return NULL;
    }
    if (ps->n == ps->cap) {
        uint32_t ncap = ps->cap ? ps->cap * 2 : 8;
        struct peer **np = realloc(ps->p, ncap * sizeof(*np));
        if (np == NULL)
            return NULL;
        ps->p = np;
        ps->cap = ncap;
    }
    struct peer *pe = calloc(1, sizeof(*pe));
    if (pe == NULL)
        return NULL;
    stream_init(&pe->st, NULL, on_written, pe);
    pe->owner = ps;
    pe->idx = ps->n;
    pe->next_id = 1;
    snprintf(pe->id, sizeof(pe->id), "%s", id ? id : "");
    snprintf(pe->addr, sizeof(pe->addr), "%s", addr);
    ps->p[ps->n++] = pe;
    return pe;
}

/* A forgotten slot is used again (peers_add of its id or address). */
static void reactivate(struct peer *pe)
{
    if (!pe->forgotten || pe->is_self)
        return;
    pe->forgotten = false;
    pe->retry_at = 0; /* the next tick dials */
    LOG_INFO("peer %s (%s) added again", label(pe), pe->addr);
}

static void free_slots(struct peers *ps)
{
    for (uint32_t i = 0; i < ps->n; i++) {
        stream_free(&ps->p[i]->st);
        free(ps->p[i]->pend);
        free(ps->p[i]);
    }
    free(ps->p);
}

/* ---- public ---------------------------------------------------------------
 */

int peers_create(struct peers **out, uv_loop_t *loop,
                 const struct peer_conf *members, uint32_t n, uint32_t self,
                 const struct peers_auth *auth, uint32_t max_frame,
                 uint64_t give_up_ms, char *err, size_t errlen)
{
    if (n == 0 || self >= n || n > PEERS_MAX) {
        snprintf(err, errlen,
                 "%u members (self %u): need 1..%d including "
                 "this node",
                 (unsigned)n, (unsigned)self, PEERS_MAX);
        return RK_ECONFIG;
    }
    struct peers *ps = calloc(1, sizeof(*ps));
    if (ps == NULL)
        return -ENOMEM;
    ps->loop = loop;
    ps->self = self;
    ps->max_frame = max_frame;
    ps->give_up_ms = give_up_ms;
    ps->auth = *auth;
    msgpack_zone_init(&ps->zone, 4096);
    for (uint32_t i = 0; i < n; i++) {
        char addr[280];
        snprintf(addr, sizeof(addr), "%s:%u", members[i].host,
                 (unsigned)members[i].port);
        struct peer *pe = new_slot(ps, members[i].id, addr);
        int rc = 0;
        if (pe != NULL && i != self)
            rc = resolve(members[i].host, members[i].port, &pe->sa);
        if (pe == NULL || rc != 0) {
            if (pe == NULL)
                snprintf(err, errlen, "out of memory");
            else
                snprintf(err, errlen, "cannot resolve peer %s host '%s': %s",
                         members[i].id, members[i].host, gai_strerror(rc));
            msgpack_zone_destroy(&ps->zone);
            free_slots(ps);
            free(ps);
            return pe == NULL ? -ENOMEM : RK_ECONFIG;
        }
    }
    uv_timer_init(loop, &ps->tick);
    ps->tick.data = ps;
    uv_timer_init(loop, &ps->later);
    ps->later.data = ps;
    uv_check_init(loop, &ps->flush);
    ps->flush.data = ps;
    uv_check_start(&ps->flush, peers_flush_cb);
    uv_timer_start(&ps->tick, peers_tick_cb, PEER_RECONNECT_MS,
                   PEER_RECONNECT_MS);
    for (uint32_t i = 0; i < n; i++)
        if (i != self)
            dial(ps->p[i]);
    *out = ps;
    return 0;
}

int peers_add(struct peers *ps, const char *id, const char *addr, char *err,
              size_t errlen)
{
    struct sockaddr_storage sa;
    char host[256];
    uint16_t port;
    int rc;

    if (ps->closing) {
        snprintf(err, errlen, "shutting down");
        return RK_ESHUTTING_DOWN;
    }
    if (id != NULL && id[0] == '\0')
        id = NULL;
    if (id != NULL && strlen(id) >= sizeof(ps->p[0]->id)) {
        snprintf(err, errlen, "node id '%s' is longer than %zu bytes", id,
                 sizeof(ps->p[0]->id) - 1);
        return -EINVAL;
    }
    if (id != NULL && (rc = peers_slot(ps, id)) >= 0) {
        reactivate(ps->p[rc]);
        return rc;
    }
    if (split_addr(addr, host, sizeof(host), &port) != 0) {
        snprintf(err, errlen,
                 "bad peer address '%s': want host:port or [v6]:port",
                 addr ? addr : "(null)");
        return -EINVAL;
    }
    if ((rc = resolve(host, port, &sa)) != 0) {
        snprintf(err, errlen, "cannot resolve peer host '%s': %s", host,
                 gai_strerror(rc));
        return RK_ECONFIG;
    }
    for (uint32_t i = 0; i < ps->n; i++) {
        struct peer *pe = ps->p[i];
        if (i == ps->self || !same_sockaddr(&pe->sa, &sa))
            continue;
        if (pe->is_self)
            return (int)ps->self;
        if (id != NULL && pe->id[0] != '\0')
            continue; /* another node used to be there */
        if (id != NULL)
            snprintf(pe->id, sizeof(pe->id), "%s", id);
        reactivate(pe);
        return (int)i;
    }
    struct peer *pe = new_slot(ps, id, addr);
    if (pe == NULL) {
        bool full = ps->n >= PEERS_MAX;
        snprintf(err, errlen,
                 full ? "too many peers (PEERS_MAX %d)" : "out of memory",
                 PEERS_MAX);
        return full ? -ENOSPC : -ENOMEM;
    }
    pe->sa = sa;
    LOG_INFO("peer %s (%s) added as slot %u", label(pe), pe->addr,
             (unsigned)pe->idx);
    dial(pe); /* a new slot: nothing pending, no callback runs here */
    return (int)pe->idx;
}

int peers_slot(const struct peers *ps, const char *id)
{
    int best = -ENOENT, rank = -1;
    if (id == NULL || id[0] == '\0')
        return -ENOENT;
    if (strcmp(id, ps->p[ps->self]->id) == 0)
        return (int)ps->self;
    for (uint32_t i = 0; i < ps->n; i++) {
        const struct peer *pe = ps->p[i];
        if (pe->is_self || strcmp(pe->id, id) != 0)
            continue;
        int r = pe->forgotten ? 0 : pe->state == PEER_UP ? 2 : 1;
        if (r > rank) {
            rank = r;
            best = (int)i;
        }
    }
    return best;
}

const char *peers_id(const struct peers *ps, uint32_t slot)
{
    return slot < ps->n ? ps->p[slot]->id : "";
}

const char *peers_addr(const struct peers *ps, uint32_t slot)
{
    return slot < ps->n ? ps->p[slot]->addr : "";
}

uint32_t peers_count(const struct peers *ps)
{
    return ps->n;
}

void peers_forget(struct peers *ps, uint32_t slot)
{
    if (ps->closing || slot >= ps->n || slot == ps->self)
        return;
    struct peer *pe = ps->p[slot];
    if (pe->forgotten)
        return;
    pe->forgotten = true;
    LOG_INFO("peer %s (%s) forgotten", label(pe), pe->addr);
    if (pe->state != PEER_DOWN || pe->pend_n > 0) {
        pe->drop_later = true;
        uv_timer_start(&ps->later, later_cb, 0, 0);
    }
}

void peers_on_link(struct peers *ps, peers_link_fn fn, void *arg)
{
    ps->on_link = fn;
    ps->on_link_arg = arg;
}

int peers_request(struct peers *ps, uint32_t member, const struct wire_req *req,
                  env_reply_fn fn, void *arg)
{
    if (ps->closing)
        return RK_ESHUTTING_DOWN;
    if (member >= ps->n || member == ps->self)
        return -EINVAL;
    struct peer *pe = ps->p[member];
    if (pe->state != PEER_UP || pe->forgotten)
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
    return member < ps->n && ps->p[member]->state == PEER_UP &&
           !ps->p[member]->forgotten;
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
        struct peer *pe = ps->p[i];
        if (i == ps->self)
            continue;
        pe->was_up = false;
        pe->drop_later = false;
        drop_link(pe, RK_ESHUTTING_DOWN);
    }
    ps->closing = true;
    ps->handles += 3;
    uv_close((uv_handle_t *)&ps->tick, peers_handle_closed);
    uv_close((uv_handle_t *)&ps->later, peers_handle_closed);
    uv_close((uv_handle_t *)&ps->flush, peers_handle_closed);
}

void peers_destroy(struct peers *ps)
{
    if (ps == NULL)
        return;
    msgpack_zone_destroy(&ps->zone);
    free_slots(ps);
    free(ps);
}
