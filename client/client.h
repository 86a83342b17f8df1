/*
 * client.h - the ringkv C client: one blocking TCP connection to one node,
 * speaking the native protocol (proto/wire.h, docs/protocol.md).
 *
 * Two ways to use a connection, never at the same time:
 *
 *   simple calls   rkc_get / rkc_put / rkc_del / rkc_ping / rkc_stats (and
 *                  rkc_get_local, rkc_members, rkc_ring) send one
 *                  request and wait for its answer. They refuse to run
 *                  (-EBUSY) while pipelined requests are outstanding, so they
 *                  can never consume or drop someone else's response.
 *   pipelining     rkc_send queues requests (rkc_flush writes them), rkc_recv
 *                  returns the next response, whatever its id. The server may
 *                  answer out of order: match responses by id.
 *
 * Errors. Every int result is 0 or negative: -errno for system and
 * connection errors (-ECONNREFUSED, -ECONNRESET, -ETIMEDOUT, ...), RK_E*
 * (proto/errors.h) for errors the server reported or for RK_EPROTO. Names and
 * messages: rk_err_code() and rk_err_msg().
 *
 * Broken connections. A connection error, a timeout, or a response that
 * violates the protocol (RK_EPROTO: bad frame, undecodable body, an id that
 * was never asked for) leaves the stream in an unknown state, so the
 * connection becomes unusable: that call returns the error and every later
 * call returns -ENOTCONN without doing I/O. rkc_broken() tells which error
 * broke it. Close it and connect again. An error the server answered (say
 * RK_EUNAVAILABLE) is an ordinary response and does not break anything.
 *
 * Timeouts. Each call that does I/O gets the connection's timeout as one
 * deadline for the whole call (a simple call: send and receive together).
 * Timeouts are measured on the monotonic clock.
 *
 * Threads. A struct rkc is not thread-safe; use one per thread. Nothing is
 * global, and SIGPIPE is never raised (writes use MSG_NOSIGNAL).
 */
#ifndef RINGKV_CLIENT_H
#define RINGKV_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/errors.h"
#include "proto/wire.h"

/* The largest response body accepted (bytes). A larger length prefix is a
 * protocol error: the client never buffers more than this for one frame. */
#define RKC_MAX_RESPONSE (64u << 20)
/* Bytes of an error message kept in a result (longer ones are cut). */
#define RKC_MAX_MSG WIRE_MAX_MSG
/* rkc_connect: the host name did not resolve. Outside the -errno range and
 * the project's error range (rk_err_code() calls it "system"). */
#define RKC_ERESOLVE (RK_ERR_BASE - 1)
/* The default node port of the native protocol. */
#define RKC_DEFAULT_PORT 7001

struct rkc; /* opaque: one connection */

/* One value (a sibling) of a get. data has len bytes and one extra NUL byte
 * after them, so text values can be used as C strings (values may contain
 * NUL bytes themselves: always use len). */
struct rkc_value {
    const uint8_t *data;
    size_t len;
};

/* One statistic: an integer (sval == NULL, ival holds it) or a string. */
struct rkc_stat {
    const char *name; /* NUL-terminated */
    const char *sval; /* NUL-terminated string value, or NULL */
    int64_t ival;
};

/* One cluster member, as the answering node sees it. */
struct rkc_member {
    const char *id;   /* NUL-terminated node id */
    const char *addr; /* NUL-terminated "host:port" */
    bool up;          /* the answering node has a live connection to it */
    bool self;        /* it is the answering node (the one connected to) */
};

/* A preference-list entry that names no member: it pads the lists of a
 * ring whose cluster has fewer members than nval. */
#define RKC_NO_MEMBER WIRE_NO_MEMBER

/*
 * The outcome of one request. Every function that takes a result writes all
 * of it on every return, success or failure; it never reads what the result
 * held before. Whatever the outcome, release it with rkc_result_free() before
 * reusing or dropping it (freeing is always safe, also after failures).
 *
 * All pointers point into memory owned by the result and live until
 * rkc_result_free(); they do not depend on the connection, which may be
 * closed first. Everything a result points to (values, stats, members and
 * their strings, pref, ctx) is one allocation, copied out of the response.
 */
struct rkc_result {
    /* 0, or the error: the one the server answered, or a local one
     * (-errno, RK_EPROTO). */
    int err;
    /* Meaningful when err != 0 on a write (put, del): true when the write
     * was certainly not applied (the server said so, or the request never
     * left this process); false when it may have been applied (a quorum
     * timeout, or the connection failed after the request was sent). */
    bool definite;
    /* "" when err == 0; otherwise the server's message, or rk_err_msg(err)
     * when the server gave none or the error is local. */
    char message[RKC_MAX_MSG + 1];
    /* get: the live values; several are concurrent siblings the caller
     * should resolve and write back with ctx. nvalues == 0 with err == 0
     * means the key was not found (or is deleted). */
    const struct rkc_value *values;
    size_t nvalues;
    /* get, put, del: the opaque causal context covering what was read or
     * written; pass it back on the next put/del of the key. May be empty. */
    const uint8_t *ctx;
    size_t ctx_len;
    /* stats: name/value pairs, in the server's order. */
    const struct rkc_stat *stats;
    size_t nstats;
    /* members, ring: the member table, in the server's order (the ring's
     * preference lists index into it). */
    const struct rkc_member *members;
    size_t nmembers;
    /* ring: q partitions, each with a preference list of nval member
     * indices, row-major: partition p's j-th replica is pref[p * nval + j],
     * an index below nmembers or RKC_NO_MEMBER (padding; pads come last).
     * q, nval 0 and pref NULL for every other call. */
    size_t q;
    size_t nval;
    const uint16_t *pref;
    /* put, del with err != 0: how many replicas the node reports as having
     * acknowledged the write before it gave up (its message says the same
     * in words). 0 when it reported none, and for local errors. */
    uint32_t acks;
    /* admin: the node's answer (human text, or JSON when asked); NULL for
     * every other call. */
    const char *text;

    void *mem_; /* private: the one allocation holding the above */
};

/* Releases what res holds and leaves it empty (err 0, no values). NULL and
 * already-freed results are fine. */
void rkc_result_free(struct rkc_result *res);

/* ---- connections -------------------------------------------------------- */

/*
 * Resolves host (a name or an address; IPv4 and IPv6) and connects to the
 * first address that accepts, with TCP_NODELAY. timeout_ms bounds the whole
 * connect (resolution excluded) and becomes the per-call timeout of the
 * connection; timeout_ms <= 0 means no limit.
 *
 * On success returns 0 and *out is a connection the caller owns (free with
 * rkc_close). On failure *out is NULL and the result is:
 *   -EINVAL        out or host is NULL, or port is 0
 *   RKC_ERESOLVE   the name does not resolve
 *   -ETIMEDOUT     no address answered in time
 *   -ENOMEM, or the -errno of the last address tried (-ECONNREFUSED, ...)
 */
int rkc_connect(struct rkc **out, const char *host, uint16_t port,
                int timeout_ms);

/* Closes the socket and frees the connection. Outstanding pipelined
 * requests are abandoned (their writes may or may not be applied). NULL is
 * a no-op. */
void rkc_close(struct rkc *c);

/* Sets the per-call timeout for later calls; <= 0 means no limit. */
void rkc_set_timeout(struct rkc *c, int timeout_ms);

/* Sets the read and write quorum sent with later requests (1..255), 0 meaning
 * the node's default. Applies to the simple calls, and to rkc_send for
 * requests whose own r or w is 0. The server checks them against its N
 * (RK_EBAD_QUORUM). */
void rkc_set_quorum(struct rkc *c, uint8_t r, uint8_t w);

/* 0 while the connection is usable, else the error that broke it. */
int rkc_broken(const struct rkc *c);

/* Number of pipelined requests sent (queued) and not yet answered. */
size_t rkc_outstanding(const struct rkc *c);

/* ---- simple calls --------------------------------------------------------
 *
 * Each sends one request, waits for its response, fills *res and returns
 * res->err. Besides the server's errors they return:
 *   -EINVAL     a NULL argument, an empty key, or a size over UINT32_MAX
 *   -EBUSY      pipelined requests are outstanding (nothing is sent)
 *   -ENOTCONN   the connection is broken (see rkc_broken)
 *   -ETIMEDOUT, other -errno, RK_EPROTO: the connection is now broken
 *   -ENOMEM
 * key, value and ctx are borrowed for the duration of the call only.
 */

/* Reads key. Not found is err 0 with nvalues 0 (an RK_ENOT_FOUND answer is
 * turned into that too). */
int rkc_get(struct rkc *c, const void *key, size_t klen,
            struct rkc_result *res);

/* Writes value under key. ctx (may be NULL with ctxlen 0) is the context of
 * an earlier read: the write supersedes what it covers and stays a sibling
 * of anything else. On success res->ctx is the context of the new version. */
int rkc_put(struct rkc *c, const void *key, size_t klen, const void *value,
            size_t vlen, const void *ctx, size_t ctxlen,
            struct rkc_result *res);

/* Deletes key (a tombstone that supersedes what ctx covers; without ctx,
 * what the coordinator has seen). res->ctx is the tombstone's context. */
int rkc_del(struct rkc *c, const void *key, size_t klen, const void *ctx,
            size_t ctxlen, struct rkc_result *res);

/* Like rkc_get, but asks for the connected node's own stored versions only
 * ("local": no coordination with replicas, r does not apply). For
 * inspecting one replica; the values may be stale or missing elsewhere, and
 * a context from it covers only what this node has seen. */
int rkc_get_local(struct rkc *c, const void *key, size_t klen,
                  struct rkc_result *res);

/* The node's member table, in res->members (the node's own entry has self
 * set). */
int rkc_members(struct rkc *c, struct rkc_result *res);

/* The node's ring: res->members, and res->q preference lists of res->nval
 * member indices each in res->pref. */
int rkc_ring(struct rkc *c, struct rkc_result *res);

/* Membership administration (docs/protocol.md "admin"): cmd is members,
 * transfers, join (arg: a seed host:port), leave or remove (arg: a node
 * id); the answer is res->text (JSON when json). */
int rkc_admin(struct rkc *c, const char *cmd, const char *arg, bool json,
              struct rkc_result *res);

/* Round trip to the node. Returns 0 or an error as above; the server's error
 * message is not kept (use rkc_send/rkc_recv for that). */
int rkc_ping(struct rkc *c);

/* The node's counters, in res->stats. */
int rkc_stats(struct rkc *c, struct rkc_result *res);

/* ---- pipelining ----------------------------------------------------------
 *
 * rkc_send encodes req into the connection's output buffer; nothing is
 * written until rkc_flush or rkc_recv (which flushes first). Keep the number
 * of outstanding requests moderate (hundreds): a very deep pipeline whose
 * responses are never read can fill both socket buffers and make a flush
 * time out.
 */

/* Queues req. req and what it points to are borrowed for the call only. If
 * req->id is 0 the library assigns an unused id; otherwise req->id is used
 * and must not equal an outstanding id. r and w of 0 are replaced by the
 * connection's quorum (rkc_set_quorum). On success *id (if id is not NULL)
 * is the request's id. Returns 0, -EINVAL (NULL req, invalid op, duplicate
 * id, sizes over UINT32_MAX), -ENOTCONN (broken), or -ENOMEM (nothing was
 * queued). */
int rkc_send(struct rkc *c, const struct wire_req *req, uint64_t *id);

/* Writes every queued request. Returns 0, -ENOTCONN, or the error that
 * broke the connection (-ETIMEDOUT, -EPIPE, ...). */
int rkc_flush(struct rkc *c);

/*
 * Flushes, then waits for the next response and fills *res (free it with
 * rkc_result_free).
 *
 * Returns 0 when a response to an outstanding request arrived: *id (if not
 * NULL) is its id and res->err is the server's answer for it (0 or an error
 * with res->definite).
 *
 * Returns a negative error when no response could be delivered; *id is 0,
 * res->err is the same error and res->definite is false (outstanding writes
 * may have been applied). The connection is then broken, except for:
 *   -EINVAL     nothing is outstanding (or c/res is NULL)
 * Breaking errors: -ETIMEDOUT, -ECONNRESET (the server closed), other
 * -errno, RK_EPROTO, and an error the server sent for the whole connection
 * (a response with id 0, e.g. RK_ESHUTTING_DOWN, with its message).
 */
int rkc_recv(struct rkc *c, struct rkc_result *res, uint64_t *id);

#endif
