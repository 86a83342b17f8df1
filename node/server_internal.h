/*
 * server_internal.h - what the client-server files share: the connection
 * and server structs and the connection primitives. server.c owns
 * connection lifetime, budgets, output and stats; server_native.c the
 * native protocol and the peer handshake; server_resp.c the RESP commands.
 * Nothing outside node/server*.c includes this header.
 */
#ifndef RINGKV_SERVER_INTERNAL_H
#define RINGKV_SERVER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "node/server.h"
#include "node/stream.h"
#include "proto/resp.h"

#define SERVER_RESP_ARGS 1024
/* A client name (CLIENT SETNAME, HELLO SETNAME) longer than this is
 * refused with an error. */
#define SERVER_CLIENT_NAME_MAX 128

struct resp_slot;

struct conn {
    uv_tcp_t tcp; /* first: handle->data is not needed */
    struct server *srv;
    struct conn *prev, *next; /* all connections */
    bool resp;
    bool closing; /* no more input; uv_close pending or done */
    bool closed;  /* uv_close called */
    bool close_when_flushed;
    bool peer;            /* passed the peer handshake: replica ops allowed */
    struct server_hs *hs; /* handshake in progress (server_native.c) */
    char peer_id[256];    /* c->peer: the node id the peer proved */
    int refs;
    uint32_t inflight;
    uint64_t id; /* CLIENT ID: unique per node run, from 1 */
    /* Memory accounting (server__conn_account): bytes of requests waiting
     * on the core, of RESP reply slots queued, and what this connection
     * last added to srv->mem. */
    size_t req_bytes, slot_bytes, mem_counted;
    uint64_t last_active;
    struct stream st; /* buffers, frame split, writes (node/stream.h) */
    msgpack_zone zone;
    /* RESP */
    struct resp_slot *head, *tail;
    uint32_t writes_inflight;
    uint64_t skip_args;  /* discarding an oversized command: args left */
    uint64_t skip_bytes; /* ... and bytes left of the current argument */
    uint64_t skipped;    /* ... and bytes discarded so far */
    bool in_multi;       /* after a (refused) MULTI, until EXEC / DISCARD */
    char name[SERVER_CLIENT_NAME_MAX + 1];
};

struct server {
    uv_loop_t *loop;
    struct core *core;
    struct storage *store;
    struct server_opts o;
    char listen_addr[64];
    char node_id[72];
    char cluster[256];
    char epoch_hex[17];
    uv_tcp_t lnative, lresp;
    uv_check_t flush;
    uv_timer_t idle;
    int handles_open;
    bool stopping;
    struct conn *conns;
    struct stream *dirty; /* connections to flush (stream_mark_dirty) */
    uint64_t nconns;
    uint64_t next_conn_id;
    uint64_t start_ms;
    /* counters */
    uint64_t accepted, refused, bad_frames, resp_errors, commands;
    uint64_t resp_oversized; /* RESP commands discarded for a size limit */
    uint64_t mem;            /* bytes held for all connections */
    uint64_t inflight;       /* requests waiting on the core, all conns */
    uint64_t overloaded_inflight, overloaded_memory; /* refused requests */
    uint64_t replies_too_large; /* replies over conn_max_buffer refused */
    uint64_t paused_inflight, paused_buffer; /* reads paused, by cause */
    uint64_t idle_closed;                    /* closed by idle_timeout */
    uint64_t replica_ops_refused; /* replica ops from non-peer connections */
    uint64_t peer_auth_refused;   /* handshakes refused (name, secret) */
    uint64_t peer_frames_skipped; /* peer request frames over max_frame */
    /* server_on_gossip(): the member layer's handler, NULL = none */
    int (*gossip_fn)(void *arg, const char *from_id, const uint8_t *buf,
                     size_t len);
    void *gossip_arg;
    server_admin_fn admin_fn; /* server_on_admin(), NULL = none */
    struct member *member;    /* server_set_member(), NULL = none */
    void *admin_arg;
    struct resp_arg argv[SERVER_RESP_ARGS];
};

/* Connection primitives (server.c). */
void server__conn_dirty(struct conn *c);  /* flush at the next check */
void server__conn_pause(struct conn *c);  /* stop reading */
void server__conn_resume(struct conn *c); /* read again, if allowed */
bool server__conn_should_pause(const struct conn *c);
void server__conn_unref(struct conn *c); /* drops one reference */
void server__conn_close(struct conn *c); /* now; output is dropped */
void server__conn_close_after_flush(struct conn *c);

/* Recomputes what c holds (buffers, queued replies, requests in flight)
 * and updates srv->mem by the difference. Call after c's buffers or
 * queues changed; a freed connection gives back all it held. */
void server__conn_account(struct conn *c);

/* Admission of one request that will wait on the core: 0, or
 * RK_EOVERLOADED (counted) when the node is past max_inflight or
 * max_buffer; *why then says which. */
int server__admit(struct conn *c, const char **why);

/* The largest reply one connection may queue: conn_max_buffer, but never
 * less than max_frame (one frame always fits). */
size_t server__reply_cap(const struct server *s);

/* Stats as name/value pairs for INFO and the native stats op; st has room
 * for SERVER_NSTATS entries. Returns how many were filled. */
#define SERVER_NSTATS 128 /* stats server__collect() reports, at most */
uint32_t server__collect(struct server *s, struct wire_stat *st);

/* Native (server_native.c): splits, decodes and runs the frames c's
 * stream holds, while c reads. */
void server__native_process(struct conn *c);
/* Queues a native error reply (id 0: about the whole connection). */
void server__native_error(struct conn *c, uint64_t id, int err, bool definite,
                          const char *msg);

/* RESP (server_resp.c): parses and runs what c->st.in holds. */
void server__resp_process(struct conn *c);

#endif
