/*
 * ring_state.h - the versioned ownership state of a cluster and the plan
 * that moves data safely when members join, leave or are removed.
 *
 * Model. A struct ring_state holds
 *   - version = epoch << 32 | step, strictly increasing with every change
 *     of the state. The epoch grows by one when a change starts and again
 *     when it flips (so a change is pending iff the epoch is odd), with the
 *     step reset to 0; the step grows when a transfer is marked done, the
 *     plan is re-sourced or two views are merged (ring_state_merge()).
 *     Hence every state after a flip outranks every state of the change
 *     before it, however many steps that change took. Gossip converges on
 *     the highest version, merging views of the same change. The first
 *     version is 1 (epoch 0, step 1);
 *   - nval: the replication factor N (1..RING_STATE_NVAL_MAX);
 *   - cur: the ring reads use; pref_cur(k) = ring_pref_list(cur, k, N);
 *   - while a change is pending: next (the ring being moved to, built with
 *     ring_rebuild(cur, new member set)), which members of cur are leaving
 *     (gracefully, still a source) or removed (dead, never a source), and a
 *     transfer plan: for every partition k and every member d in
 *     pref_next(k) \ pref_cur(k), one transfer "copy partition k to d from
 *     src", src being the first member of pref_cur(k) (in list order) that
 *     is neither removed nor named unavailable by the caller, or none
 *     (blocked) when there is no such member. Each transfer has a done bit.
 *
 * Invariants (checked by ring_state_decode(), kept by every function):
 *   I1 ownership flips only when the copy is complete: next is replaced
 *      (cur = next, next = none, the plan and the leaving/removed sets are
 *      dropped) in the same step that sets the last done bit, never before;
 *   I2 the plan is exactly the (k, d) pairs above, sorted by k then by d's
 *      position in pref_next(k); no transfer's source is its destination or
 *      a removed member, and a source always lies in pref_cur(k);
 *   I3 while a change is pending, every member holding partition k now
 *      (pref_cur(k)) plus every destination of a done transfer for k
 *      covers pref_next(k) once all bits are set, so no partition ever has
 *      fewer than min(N, members) holders;
 *   I4 determinism: the same inputs (state, change, unavailable set) give
 *      the same state and the same encoding on every node.
 *
 * During a change: writes for partition k go to pref_cur(k) u pref_next(k)
 * (ring_state_write_set()) and are acknowledged only with W acks among
 * pref_cur(k) AND W acks among pref_next(k) (ring_state_write_acked()).
 * Reads keep using pref_cur(k) until the flip. After the flip a node drops
 * the partitions for which ring_state_responsible() is false.
 *
 * A change is started only when none is pending (-EBUSY otherwise): merging
 * two changes safely would need the first plan's done bits re-validated
 * against a third ring; the caller queues the second change instead.
 *
 * Purity: no I/O, clock, randomness or global state. A struct ring_state is
 * not thread-safe; the functions that change it say so.
 *
 * Errors: 0 or a count is success; negative is failure:
 *   -EINVAL     a required pointer is NULL, or k >= Q
 *   -ENOMEM     allocation failed (the state is unchanged)
 *   -EBUSY      a change is already pending
 *   -ENOENT     no such transfer
 *   -EOVERFLOW  the epoch or step would pass RING_STATE_EPOCH_MAX /
 *               RING_STATE_STEP_MAX (2^31 - 1 each; unreachable in practice,
 *               and decode refuses larger ones)
 *   RK_ECONFIG  a bad nval, an id that is not (or already is) a member, a
 *               duplicate id, a change that would leave no member, an
 *               empty change
 *   RK_EPROTO   ring_state_decode(): the bytes are not a valid state
 */
#ifndef RINGKV_RING_STATE_H
#define RINGKV_RING_STATE_H

#include "ring/ring.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RING_STATE_NVAL_MAX  8           /* largest N a state accepts */
#define RING_STATE_MAX_BYTES (16u << 20) /* largest encoding decoded */
#define RING_STATE_FORMAT    1           /* the "fmt" of the encoding */

#define RING_STATE_EPOCH(v)  ((uint64_t)(v) >> 32)
#define RING_STATE_STEP(v)   ((uint32_t)(v))
#define RING_STATE_EPOCH_MAX 0x7fffffffu
#define RING_STATE_STEP_MAX  0x7fffffffu

/* Which set a member of a write set counts in (a bit mask). */
#define RING_STATE_IN_CUR  1u
#define RING_STATE_IN_NEXT 2u

struct ring_state; /* opaque */

/* A membership change. Every array may be NULL when its count is 0. ids are
 * NUL-terminated and borrowed for the call only. */
struct ring_change {
    const char *const *join; /* new members, none already in cur */
    uint32_t njoin;
    const char *const *leave; /* members leaving gracefully (a source) */
    uint32_t nleave;
    const char *const *remove; /* dead members: never a source */
    uint32_t nremove;
    const char *const *unavailable; /* members not to pick as sources now */
    uint32_t nunavailable;          /* (ids that are not members: ignored) */
};

/* One planned copy, as ring_state_transfer() reports it. Strings are
 * borrowed from the state and live until it next changes. */
struct ring_transfer {
    uint32_t part;    /* the partition to copy */
    const char *dest; /* the member that must receive it (in next) */
    const char *src;  /* the member to copy from (in cur), NULL if blocked */
    bool done;
};

/* A member of a write set: its id (borrowed from the state, valid until the
 * state next changes) and the sets it counts in (RING_STATE_IN_*). */
struct ring_state_target {
    const char *id;
    unsigned sets;
};

/* Creates a state at version 1 (epoch 0, step 1) with no change pending, whose
 * cur is a copy of cur (cur may be destroyed afterwards). On success *out is
 * owned by the caller (ring_state_destroy()); on failure it is untouched.
 * Errors: -EINVAL, -ENOMEM, RK_ECONFIG (nval outside 1..RING_STATE_NVAL_MAX).
 */
int ring_state_create(struct ring_state **out, const struct ring *cur,
                      uint32_t nval);

/* Frees s; NULL is a no-op. */
void ring_state_destroy(struct ring_state *s);

uint64_t ring_state_version(const struct ring_state *s);
uint32_t ring_state_nval(const struct ring_state *s);

/* The ring reads use. Borrowed: lives until s next changes. */
const struct ring *ring_state_cur(const struct ring_state *s);

/* The ring being moved to, or NULL when no change is pending. Borrowed: lives
 * until s next changes. */
const struct ring *ring_state_next(const struct ring_state *s);

/* True while a change is pending (ring_state_next() is not NULL). */
bool ring_state_pending(const struct ring_state *s);

/* True if id is a member of cur that the pending change takes out: leaving
 * gracefully (ring_state_leaving) or removed as dead (ring_state_removed).
 * False when nothing is pending. */
bool ring_state_leaving(const struct ring_state *s, const char *id);
bool ring_state_removed(const struct ring_state *s, const char *id);

/* Starts change c: next = ring_rebuild(cur, cur + join - leave - remove) and
 * the transfer plan (see the model above), next epoch. If the plan is
 * empty the state flips at once (two epochs in all). On failure s is
 * unchanged. Errors: -EINVAL (s or c NULL, or a NULL id), -EBUSY (a change
 * is pending), -ENOMEM, -EOVERFLOW, RK_ECONFIG (a join id already a member or
 * invalid, a leave/remove id not a member, an id named twice, nothing to
 * change, or no member would remain). */
int ring_state_change(struct ring_state *s, const struct ring_change *c);

/* The number of transfers in the plan (0 when nothing is pending), the
 * number done, and the number blocked (not done and without a source). */
uint32_t ring_state_transfers(const struct ring_state *s);
uint32_t ring_state_transfers_done(const struct ring_state *s);
uint32_t ring_state_transfers_blocked(const struct ring_state *s);

/* Fills *out with transfer i (0 <= i < ring_state_transfers(s), in plan
 * order). Returns 0, or -EINVAL (NULL pointer, i out of range). */
int ring_state_transfer(const struct ring_state *s, uint32_t i,
                        struct ring_transfer *out);

/* Marks the copy of partition k to dest done: step + 1, and when it was
 * the last bit, the state flips (cur = next, next epoch). Marking a
 * transfer that is already done changes nothing and returns 0 (peers may
 * report twice). Marking a blocked transfer done is how the caller accepts
 * that its data is lost (every old replica is gone); the node decides that,
 * not this module. Errors: -EINVAL (NULL pointer, k >= Q), -ENOENT (no
 * change pending, or no transfer (k, dest)), -EOVERFLOW. */
int ring_state_transfer_done(struct ring_state *s, uint32_t k,
                             const char *dest);

/* Re-picks the source of every transfer not yet done, with
 * unavailable[0..n) as the members not to use (removed members are never
 * used). step + 1 if any source changed. Returns the number of transfers
 * still blocked, or -EINVAL, -ENOENT (nothing pending), -EOVERFLOW. */
int ring_state_replan(struct ring_state *s, const char *const *unavailable,
                      uint32_t n);

/* Abandons the pending change: cur stays, next and the plan are dropped,
 * next epoch (so the result outranks every state of the change). Safe for
 * data: cur's members never dropped anything while the change was pending
 * and every acknowledged write reached W of them. For a change that cannot
 * finish (a joining destination died). Errors: -EINVAL (s NULL), -ENOENT
 * (nothing pending), -EOVERFLOW. */
int ring_state_abort(struct ring_state *s);

/* step + 1, nothing else: s then outranks another state of the same
 * version (a node whose merge kept its own content at that version bumps
 * it so gossip carries it). Errors: -EINVAL (s NULL), -EOVERFLOW. */
int ring_state_bump(struct ring_state *s);

/* Merges o, another node's view of the same cluster, into s, so that gossip
 * converges even when two nodes mark different transfers done at the same
 * version. If both are pending with the same change (same epoch, N, cur, next
 * and leaving/removed members), done bits are OR-ed and each source is taken
 * from the higher version (at equal versions: the lower member index, a
 * blocked source last); the version becomes that of the side the result
 * equals (the higher one if both), otherwise max + 1; if every bit is then
 * set, s flips. Otherwise s becomes a copy of o if o's version is higher,
 * or equal with a bytewise smaller encoding (two changes started
 * concurrently: one wins, the other's copies are redone under its plan).
 * The result does not depend on which side is s (commutative). Returns 1
 * if s changed, 0 if not; -EINVAL, -ENOMEM or -EOVERFLOW (s unchanged). */
int ring_state_merge(struct ring_state *s, const struct ring_state *o);

/* The members a write for partition k goes to: pref_cur(k) in list order,
 * then the members of pref_next(k) not in pref_cur(k) in list order, each
 * with the sets it counts in. out must hold cap >= 2 * nval entries.
 * Returns the count, or -EINVAL (NULL pointer, k >= Q, cap too small). */
int ring_state_write_set(const struct ring_state *s, uint32_t k,
                         struct ring_state_target *out, uint32_t cap);

/* Pure ack counting over a write set: acked[i] says whether set[i] acked.
 * Stores how many acks count in cur and in next (either may be NULL). */
void ring_state_count_acks(const struct ring_state_target *set, uint32_t n,
                           const bool *acked, uint32_t *in_cur,
                           uint32_t *in_next);

/* True if the write is acknowledged: at least w acks among the members
 * counting in cur, and, if any member counts in next (a change is pending),
 * at least w among those too. w == 0 is never acknowledged. */
bool ring_state_write_acked(const struct ring_state_target *set, uint32_t n,
                            const bool *acked, uint32_t w);

/* True if member id must hold partition k now: it is in pref_cur(k), or a
 * change is pending and it is in pref_next(k). False for k >= Q or an
 * unknown id. A node drops a partition it holds once this is false. */
bool ring_state_responsible(const struct ring_state *s, const char *id,
                            uint32_t k);

/* Encodes s (msgpack, see docs/ring.md "Changing membership"); the same
 * state always gives the same bytes. On success *buf is malloc'd and owned
 * by the caller, *len its size. Errors: -EINVAL, -ENOMEM. */
int ring_state_encode(const struct ring_state *s, uint8_t **buf, size_t *len);

/* Decodes and fully validates p[0..n) (untrusted: a peer's gossip). On
 * success *out is a new state owned by the caller; decoding the encoding of
 * a state gives an equal state (same encoding). Errors: -EINVAL (NULL pointer),
 * -ENOMEM, RK_EPROTO with *why (if why is not NULL) set to a static string
 * naming the problem. */
int ring_state_decode(const uint8_t *p, size_t n, struct ring_state **out,
                      const char **why);

#endif
