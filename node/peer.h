/*
 * peer.h - the node's outgoing connections to the other members: one TCP
 * connection per peer carrying framed native requests (rput, rget, fput,
 * fdel) and their responses, matched by id.
 *
 * A peer is "up" while its connection is established; a refused, reset or
 * closed connection makes it "down" at once (on loopback a killed process
 * resets its connections) and a reconnect is tried every
 * PEER_RECONNECT_MS. Requests to a down peer fail synchronously; requests
 * in flight when the connection drops fail with its error. A peer that
 * leaves a request unanswered past the give-up time, or does not read what
 * we send (PEER_MAX_OUT unsent bytes), is treated as hung: its connection
 * is dropped (everything pending fails) and re-established, so neither
 * memory nor waiting callers grow without bound when a peer hangs.
 *
 * Handshake. A new connection is not "up" until it passed the peer
 * handshake (docs/protocol.md): hello (cluster name, our id, our nonce) ->
 * the acceptor's id, nonce and proof, which we check -> auth (our proof)
 * -> ok. Only then does the acceptor take replica operations from us. A
 * refused or failed handshake is logged with its cause (cluster name
 * mismatch, bad secret, a different node at that address), counted, and
 * retried after PEER_AUTH_RETRY_MS; the link is not used meanwhile.
 *
 * Sizes. A request whose frame would exceed max_frame is refused at once
 * (RK_ETOO_LARGE), never sent. A response frame over max_frame is skipped
 * (its length is known): only the request it answers fails, with
 * RK_ETOO_LARGE; the link and everything else in flight on it survive.
 *
 * Writes are batched: requests are encoded into the peer's buffer and one
 * uv_check handle flushes every peer with output once per loop iteration
 * (a burst of replication messages costs one syscall per peer).
 */
#ifndef RINGKV_PEER_H
#define RINGKV_PEER_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "node/env.h"
#include "proto/wire.h"

#define PEER_RECONNECT_MS  250
#define PEER_AUTH_RETRY_MS 5000

/* What the handshake proves: this node's id, the cluster name and the
 * shared secret. Borrowed; must outlive the peers. */
struct peers_auth {
    const char *self_id;
    const char *cluster;
    const uint8_t *secret;
    size_t secret_len;
};

struct peers_stats {
    uint64_t links_dropped;      /* established links lost, for any reason */
    uint64_t handshakes_failed;  /* refused or failed handshakes (dialer) */
    uint64_t frames_skipped;     /* response frames over max_frame skipped */
    uint64_t requests_too_large; /* requests not sent: over max_frame */
};

struct peer_conf {
    const char *id;   /* member id */
    const char *host; /* numeric address or resolvable name */
    uint16_t port;    /* its native port */
};

struct peers;

/* Creates the transport for members[0..n) (self is members[self] and gets
 * no connection) and starts connecting. Names are resolved here, once.
 * give_up_ms bounds how long a request waits for its answer. Returns 0, or
 * an error with a message in err (an unresolvable host). */
int peers_create(struct peers **out, uv_loop_t *loop,
                 const struct peer_conf *members, uint32_t n, uint32_t self,
                 const struct peers_auth *auth, uint32_t max_frame,
                 uint64_t give_up_ms, char *err, size_t errlen);

/* Sends req to member (never self). req->id is assigned here. Returns 0:
 * fn(arg, err, resp) will run exactly once, later, never inside this call:
 * with the response (err 0; resp and what it points to live during the
 * call only), or with an error and resp NULL. Returns -ENOTCONN when the
 * peer is down (or not yet authenticated), RK_ETOO_LARGE when the frame
 * would exceed max_frame, -ENOMEM, or RK_ESHUTTING_DOWN: fn is then never
 * called. */
int peers_request(struct peers *p, uint32_t member, const struct wire_req *req,
                  env_reply_fn fn, void *arg);

/* True while member's connection is established and authenticated
 * (always true for self). */
bool peers_up(const struct peers *p, uint32_t member);

/* Counters since creation. p may be NULL (a single node): all zero. */
void peers_get_stats(const struct peers *p, struct peers_stats *out);

/* Fails every pending request (RK_ESHUTTING_DOWN), stops reconnecting and
 * closes the handles. Run the loop, then peers_destroy(). */
void peers_close(struct peers *p);

/* Frees p after peers_close() and the loop ran dry. NULL is a no-op. */
void peers_destroy(struct peers *p);

#endif
