/*
 * server.h - the node's client listeners: the native protocol (framed
 * msgpack, docs/protocol.md) and RESP (so redis-cli, redis-benchmark and
 * every Redis client library work unmodified).
 *
 * Both feed node/core.c. Replies are appended to a per-connection buffer and
 * written once per event-loop iteration (a uv_check handle flushes every
 * connection that has output), so a burst of replies costs one syscall.
 *
 * Bad input never harms other clients: frames over the limit, malformed
 * msgpack, wrong field types, unknown ops and RESP garbage get an error
 * reply (or, when the stream can no longer be framed, the error and a
 * disconnect).
 *
 * Memory is bounded per connection and per node. Per connection: at most
 * one frame is buffered beyond what was processed, and a connection whose
 * replies pile up (unsent, or queued behind a slower reply) past
 * conn_max_buffer, or that has conn_max_inflight requests waiting, is not
 * read until it drains. Per node: the bytes held for all connections
 * (buffers, queued replies, requests in flight) and the requests in flight
 * are counted; past max_buffer or max_inflight, new requests are refused
 * with a definite overloaded error. Every refusal is counted (stats).
 */
#ifndef RINGKV_SERVER_H
#define RINGKV_SERVER_H

#include <stdint.h>

#include <uv.h>

#include "node/core.h"
#include "node/peer.h"
#include "node/storage.h"
#include "proto/wire.h"

struct server_opts {
    const char *listen;         /* address to bind, e.g. "127.0.0.1" */
    uint16_t port;              /* native protocol */
    uint16_t resp_port;         /* RESP; 0 = off */
    struct wire_limits lim;     /* frame, key and value limits */
    uint32_t max_clients;       /* connections beyond are refused */
    uint32_t conn_max_inflight; /* per connection: pause reading beyond */
    uint64_t conn_max_buffer;   /* per connection reply bytes: pause */
    uint32_t max_inflight;      /* all connections: refuse beyond */
    uint64_t max_buffer;        /* all connections' bytes: refuse beyond */
    uint64_t idle_timeout_ms;   /* 0 = never close idle connections */
    const char *node_id;        /* for stats and INFO */
    uint64_t epoch;             /* for stats and INFO */
    uint32_t partitions;        /* Q, for the ring op */
    /* The peer handshake: only a connection that proved it holds the
     * secret may send replica operations (rput, rget, fput, fdel). No
     * secret (a single node): every handshake is refused. */
    const char *cluster;   /* cluster name */
    const uint8_t *secret; /* NULL = none */
    size_t secret_len;
    struct peers *peers;   /* for stats; NULL for a single node */
    const struct env *env; /* for stats (node/env_uv.h); may be NULL */
};

struct server;

/* Binds and listens on both ports. store is used for stats only. Returns 0
 * with *out set, or -errno / RK_E* with a message in err. Borrowed pointers
 * (core, store, strings in o) must outlive the server. */
int server_start(struct server **out, uv_loop_t *loop, struct core *core,
                 struct storage *store, const struct server_opts *o, char *err,
                 size_t errlen);

/* Stops accepting and reading. Connections are closed once their pending
 * replies are written (call after the last reply can arrive, i.e. after
 * storage_close()). Handles close asynchronously; run the loop, then
 * server_destroy(). */
void server_stop(struct server *s);

/* After server_stop(): closes the connections that are still flushing
 * (a client that does not read its replies), cancelling their writes, so
 * shutdown cannot hang on them. */
void server_force_close(struct server *s);

/* Frees the server once the loop has run dry after server_stop(). NULL is a
 * no-op. */
void server_destroy(struct server *s);

/* Membership payloads. A gossip request (docs/protocol.md) is taken only
 * from a connection that passed the peer handshake (any other gets a
 * definite forbidden error, counted in replica_ops_refused, like rput).
 * With a handler set, fn(arg, from_id, buf, len) runs inside the read
 * callback: from_id is the node id the peer proved in the handshake
 * (NUL-terminated), buf[0..len) the payload (len <= WIRE_MAX_GOSSIP; buf
 * is NULL when len is 0); both are borrowed for the call only. fn returns
 * 0 (answered ok) or a negative RK_E* / -errno (answered as that error,
 * definite). Without a handler (fn NULL, the default) gossip is answered
 * with a definite unknown_op error saying membership is not supported.
 * Call before the loop runs, or at any time from the loop's thread. */
void server_on_gossip(struct server *s,
                      int (*fn)(void *arg, const char *from_id,
                                const uint8_t *buf, size_t len),
                      void *arg);

/* Membership administration (the admin op, docs/protocol.md): fn(arg,
 * cmd, arg, part, json, from_peer, &text) runs inside the read callback;
 * from_peer says the connection passed the peer handshake; *text is a
 * malloc'd answer the server frees. It returns 0 (answered with text) or
 * an error (answered with that error, text as its message). Without a
 * handler, admin is answered unknown_op (a node without membership). */
typedef int (*server_admin_fn)(void *arg, const char *cmd, const char *carg,
                               uint32_t part, bool json, bool from_peer,
                               char **text);
void server_on_admin(struct server *s, server_admin_fn fn, void *arg);

/* The membership service whose counters the stats op reports (NULL: a
 * node without membership reports them as 0). */
struct member;
void server_set_member(struct server *s, struct member *m);

/* ---- test hooks (tests/fuzz/fuzz_conn.c) ------------------------------ */

/* Serves fd, an already connected stream socket (TCP, or AF_UNIX from
 * socketpair()), as a client connection of the native protocol or, when
 * resp, of RESP: from here on exactly as if a listener had accepted it
 * (max_clients, idle_timeout, server_stop() apply). Returns 0 and the
 * server owns fd (closed with the connection); or RK_ESHUTTING_DOWN after
 * server_stop(), -ENOMEM, or uv_tcp_open()'s error, and fd stays the
 * caller's. */
int server_adopt(struct server *s, uv_os_sock_t fd, bool resp);

/* What the server holds right now. Once every connection is closed and
 * every request answered, connections, inflight and bytes are all 0. */
struct server_load {
    uint64_t connections; /* open (the stats' connections) */
    uint64_t inflight;    /* requests waiting on the core (client_inflight) */
    uint64_t bytes;       /* held for connections (client_bytes) */
    uint64_t unsent;      /* reply bytes of open connections not written */
    uint64_t reading;     /* open connections whose socket is being read */
};
void server_get_load(const struct server *s, struct server_load *out);

#endif
