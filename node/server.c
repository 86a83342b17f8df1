/*
 * server.c - client connections (see server.h): accept, budgets,
 * back-pressure, output, idle timeout, stats and shutdown. The native
 * protocol lives in server_native.c, the RESP commands in server_resp.c;
 * both read and write through the connection's framed stream (stream.c).
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
 * Output: replies append to conn->st.out; conn goes on the dirty list; the
 * check handle (after each poll phase) tries uv_try_write() and hands the
 * remainder to one uv_write() at a time (double buffer: out / wbuf).
 *
 * RESP connections share all of this; server_resp.c parses and answers
 * their commands (in order, through a FIFO of reply slots).
 *
 * Native connections (server_native.c) include the peers' links.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/env_uv.h"
#include "node/log.h"
#include "node/member.h"
#include "node/server_internal.h"

static void close_handle(struct server *s, uv_handle_t *h);
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
    if (!c->closed)
        stream_mark_dirty(&c->srv->dirty, &c->st);
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

static void flush_cb(uv_check_t *h)
{
    struct server *s = h->data;
    struct stream *st;
    while ((st = stream_take_dirty(&s->dirty)) != NULL)
        conn_flush(st->data);
    /* Stopping: the check handle goes last, once every connection closed. */
    if (s->stopping && s->conns == NULL)
        close_handle(s, (uv_handle_t *)&s->flush);
}

static void conn_process(struct conn *c)
{
    if (c->resp)
        server__resp_process(c);
    else
        server__native_process(c);
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
    struct env_uv_stats es;
    struct member_stats ms = {0};
    uint32_t n = 0;

    if (s->member != NULL)
        member_get_stats(s->member, &ms);

    core_get_stats(s->core, &cs);
    storage_get_stats(s->store, &ss);
    peers_get_stats(s->o.peers, &ps);
    env_uv_get_stats(s->o.env, &es);
    /* Bounded: a stat beyond SERVER_NSTATS is dropped (test_stats_doc
     * then fails, naming it), never written past the caller's array. */
#define STAT_I(nm, v)                                                          \
    do {                                                                       \
        if (n < SERVER_NSTATS)                                                 \
            st[n++] = (struct wire_stat){.name = nm, .ival = (int64_t)(v)};    \
    } while (0)
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
    STAT_I("peer_delayed", es.delayed);
    STAT_I("peer_delayed_now", es.delayed_now);
    STAT_I("peer_delay_refused", es.delay_refused);
    STAT_I("peer_slots_refused", ps.slots_refused);
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
    STAT_I("members_alive", ms.alive);
    STAT_I("members_suspect", ms.suspect);
    STAT_I("members_dead", ms.dead);
    STAT_I("members_left", ms.left);
    STAT_I("ring_version", ms.ring_version);
    STAT_I("ring_members", ms.ring_members);
    STAT_I("ring_change_pending", ms.ring_pending);
    STAT_I("ring_changes_started", ms.changes_started);
    STAT_I("ring_states_refused", ms.states_refused);
    STAT_I("transfers", ms.transfers);
    STAT_I("transfers_done", ms.transfers_done);
    STAT_I("transfers_blocked", ms.transfers_blocked);
    STAT_I("transfers_sent", ms.transfers_sent);
    STAT_I("transfer_keys", ms.transfer_keys);
    STAT_I("transfer_bytes", ms.transfer_bytes);
    STAT_I("transfer_errors", ms.transfer_errors);
    STAT_I("partitions_dropped", ms.partitions_dropped);
    STAT_I("keys_dropped", ms.keys_dropped);
    STAT_I("gossip_sent", ms.gossip_sent);
    STAT_I("gossip_received", ms.gossip_received);
    STAT_I("gossip_refused", ms.gossip_refused);
    STAT_I("gossip_refused_cluster", ms.gossip_refused_cluster);
    STAT_I("gossip_refused_sender", ms.gossip_refused_sender);
    STAT_I("gossip_malformed", ms.gossip_malformed);
    STAT_I("gossip_dropped", ms.gossip_dropped);
    STAT_I("gossip_suspicions", ms.suspicions);
    STAT_I("gossip_refuted", ms.refuted);
    STAT_I("gossip_deaths", ms.deaths);
#undef STAT_I
    return n;
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
            server__native_error(c, 0, RK_EOVERLOADED, true,
                                 "max number of clients reached");
        }
        server__conn_close_after_flush(c);
        server__conn_dirty(c);
        return;
    }
    s->accepted++;
    server__conn_resume(c);
}

static void on_conn(uv_stream_t *ls, int status)
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

void server_on_gossip(struct server *s,
                      int (*fn)(void *arg, const char *from_id,
                                const uint8_t *buf, size_t len),
                      void *arg)
{
    s->gossip_fn = fn;
    s->gossip_arg = arg;
}

void server_on_admin(struct server *s, server_admin_fn fn, void *arg)
{
    s->admin_fn = fn;
    s->admin_arg = arg;
}

void server_set_member(struct server *s, struct member *m)
{
    s->member = m;
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

static void idle_cb(uv_timer_t *t)
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

static int listen_on(struct server *s, uv_tcp_t *h, uint16_t port, bool init,
                     char *err, size_t errlen)
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
        (rc = uv_listen((uv_stream_t *)h, 511, on_conn)) != 0) {
        snprintf(err, errlen, "cannot listen on %s:%u: %s", s->listen_addr,
                 (unsigned)port, uv_strerror(rc));
        return rc;
    }
    return 0;
}

static void handle_closed(uv_handle_t *h)
{
    struct server *s = h->data;
    s->handles_open--;
}

static void close_handle(struct server *s, uv_handle_t *h)
{
    h->data = s;
    if (!uv_is_closing(h))
        uv_close(h, handle_closed);
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
    uv_check_start(&s->flush, flush_cb);
    uv_timer_init(loop, &s->idle);
    s->idle.data = s;
    s->handles_open++;
    if (o->idle_timeout_ms > 0)
        uv_timer_start(&s->idle, idle_cb, 1000, 1000);

    rc = listen_on(s, &s->lnative, o->port, true, err, errlen);
    if (rc == 0 && o->resp_port != 0)
        rc = listen_on(s, &s->lresp, o->resp_port, false, err, errlen);
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
    close_handle(s, (uv_handle_t *)&s->lnative);
    close_handle(s, (uv_handle_t *)&s->lresp);
    close_handle(s, (uv_handle_t *)&s->idle);
    /* Flush everything queued, then close; the check handle goes last. */
    for (struct conn *c = s->conns; c != NULL; c = c->next)
        server__conn_close_after_flush(c);
    flush_cb(&s->flush);
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
        close_handle(s, (uv_handle_t *)&s->flush);
}

void server_destroy(struct server *s)
{
    if (s == NULL)
        return;
    free(s);
}
