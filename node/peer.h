/*
 * peer.h - the node's outgoing connections to the other members: one TCP
 * connection per peer carrying framed native requests (rput, rget, fput,
 * fdel, gossip) and their responses, matched by id.
 *
 * Slots. Every member the transport knows has a slot: a number that names
 * it for the life of the process and is never reused. peers_create()'s
 * list becomes slots 0..n-1 in the given order (so for a static cluster a
 * slot is the member's ring index), self included (self gets no
 * connection). peers_add() appends slots at run time, at most PEERS_MAX in
 * all (refusals counted in slots_refused); peers_forget() stops using one
 * (the slot stays: re-adding its id or address brings it back). A slot may
 * be added by address only: its id is then unknown ("") until the
 * acceptor proves one in the handshake, and is recorded from then on (a
 * seed list needs only addresses). An address that proves to be this node
 * (a seed list that includes ourselves) is forgotten quietly. Two slots may
 * end up with the same id (added by id at one address and by address at
 * another); peers_slot() then picks the one that is up.
 *
 *   peers_add(id?, addr) --> slot, dialing --handshake--> up (on_link)
 *        ^                      |  proves self: forgotten quietly
 *        | (same slot)          |
 *        +----- forgotten <--peers_forget()-- link closed (on_link down)
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
/* Slots one transport holds at most, self and forgotten ones included. */
#define PEERS_MAX 1024

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
    uint64_t slots_refused;      /* peers_add() refused: PEERS_MAX slots */
};

struct peer_conf {
    const char *id;   /* member id */
    const char *host; /* numeric address or resolvable name */
    uint16_t port;    /* its native port */
};

struct peers;

/* Creates the transport for members[0..n) (slots 0..n-1; self is
 * members[self] and gets no connection; n == 1 is this node alone, which
 * dials nothing until peers_add()) and starts connecting. Names are
 * resolved here, once (not self's). give_up_ms bounds how long a request
 * waits for its answer. Returns 0, or an error with a message in err:
 * RK_ECONFIG for an unresolvable host or n outside 1..PEERS_MAX or self
 * >= n, -ENOMEM. */
int peers_create(struct peers **out, uv_loop_t *loop,
                 const struct peer_conf *members, uint32_t n, uint32_t self,
                 const struct peers_auth *auth, uint32_t max_frame,
                 uint64_t give_up_ms, char *err, size_t errlen);

/* Adds a member at run time and starts dialing it. id is its node id, or
 * NULL (or "") when unknown: the handshake then accepts whatever id the
 * acceptor proves with the cluster secret (checked exactly as for a known
 * id) and records it. addr is "host:port" or "[v6addr]:port"; a name is
 * resolved here, once (numeric addresses are the norm). Both strings are
 * copied. Returns the slot (>= 0):
 *   - an id already known: its slot (peers_slot()), address unchanged;
 *   - an address already known (same resolved address and port) whose id
 *     is unknown, or any known address when id is NULL: that slot, and id
 *     is recorded for it when given;
 *   - an address that proved to be this node: self's slot;
 *   - else a new slot (dialed at once).
 * A forgotten slot found this way is used again (dialed at the next
 * tick). Errors, with a message in err: -EINVAL (bad address or an id of
 * 72 bytes or more), RK_ECONFIG (unresolvable host), -ENOSPC (PEERS_MAX
 * slots exist; counted in slots_refused), -ENOMEM, RK_ESHUTTING_DOWN
 * (after peers_close()). Never runs a callback. */
int peers_add(struct peers *p, const char *id, const char *addr, char *err,
              size_t errlen);

/* The slot of node id: self's slot for our own id; else among the slots
 * with that id, the lowest that is up, else the lowest not forgotten, else
 * the lowest forgotten one. -ENOENT when no slot has it (an id still
 * unknown is no match). */
int peers_slot(const struct peers *p, const char *id);

/* Slot's node id ("" while unknown, and for a slot out of range).
 * Borrowed: valid until the id is learned or peers_destroy(). */
const char *peers_id(const struct peers *p, uint32_t slot);

/* Slot's address as given ("host:port"; "" for a slot out of range).
 * Borrowed: valid until peers_destroy(). */
const char *peers_addr(const struct peers *p, uint32_t slot);

/* The number of slots (self and forgotten ones included): valid slots are
 * 0..peers_count()-1. */
uint32_t peers_count(const struct peers *p);

/* Stops using slot: it is no longer dialed, peers_up() is false and
 * peers_request() refuses it (-ENOTCONN) from now on; the link is closed
 * and its pending requests fail with -ENOTCONN from a libuv callback
 * shortly after (never inside this call), when on_link also hears it go
 * down. The slot stays: peers_add() of its id or address uses it again.
 * Self, a slot out of range or one already forgotten: no-op. */
void peers_forget(struct peers *p, uint32_t slot);

/* Called with a slot's id when its link becomes authenticated-up (up
 * true) or an up link goes down (up false); id is borrowed for the call.
 * Runs from libuv callbacks (never inside peers_add, peers_forget or
 * peers_request); not at peers_close(). fn NULL: none (the default). */
typedef void (*peers_link_fn)(void *arg, uint32_t slot, const char *id,
                              bool up);
void peers_on_link(struct peers *p, peers_link_fn fn, void *arg);

/* Sends req to member (never self). req->id is assigned here. Returns 0:
 * fn(arg, err, resp) will run exactly once, later, never inside this call:
 * with the response (err 0; resp and what it points to live during the
 * call only), or with an error and resp NULL. Returns -ENOTCONN when the
 * peer is down (or not yet authenticated, or forgotten), RK_ETOO_LARGE when the
 * frame would exceed max_frame, -ENOMEM, or RK_ESHUTTING_DOWN: fn is then never
 * called. */
int peers_request(struct peers *p, uint32_t member, const struct wire_req *req,
                  env_reply_fn fn, void *arg);

/* True while member's connection is established and authenticated and
 * the slot is not forgotten (always true for self). */
bool peers_up(const struct peers *p, uint32_t member);

/* Counters since creation. p may be NULL (a single node): all zero. */
void peers_get_stats(const struct peers *p, struct peers_stats *out);

/* Fails every pending request (RK_ESHUTTING_DOWN), stops reconnecting and
 * closes the handles. Run the loop, then peers_destroy(). */
void peers_close(struct peers *p);

/* Frees p after peers_close() and the loop ran dry. NULL is a no-op. */
void peers_destroy(struct peers *p);

#endif
