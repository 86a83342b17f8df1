/*
 * ring.h - placement on a consistent-hash ring: partitions, ownership claim,
 * preference lists.
 *
 * The key space is cut into Q partitions (Q a power of two, 1..65536, fixed
 * when a cluster is created because data is stored under partition
 * prefixes). A key's partition depends only on the key and Q. Each partition
 * has exactly one owner among the ring's members; the preference list of a
 * partition is the first N distinct owners met walking the ring clockwise
 * from it. See docs/ring.md for the operator's view, and ring_state.h for
 * how the cluster moves from one ring to the next when members change.
 *
 * Purity: nothing here does I/O, reads a clock, draws random numbers or
 * keeps global state. ring_partition(), ring_pref_list() and the accessors
 * never allocate; building a ring does. A struct ring is immutable once
 * built, so any number of threads may read one concurrently.
 *
 * Determinism: a ring is a function of its inputs only. ring_build() depends
 * on (Q, member SET) - the order of the given list does not matter, members
 * are sorted by id (bytewise, as strcmp). ring_rebuild() depends on (the
 * previous ring's ownership by id, new member set). Two nodes given the same
 * inputs get identical rings (same member indices, same owners).
 *
 * Errors: 0 or a count is success; negative is failure:
 *   -EINVAL      a required pointer is NULL, or a partition is >= Q
 *   -ENOMEM      allocation failed (builders only)
 *   RK_ECONFIG   invalid Q, member count outside 1..RING_MAX_NODES, an id
 *                that is empty or longer than RING_ID_MAX bytes, a
 *                duplicate id, or an owner index out of range
 */
#ifndef RINGKV_RING_H
#define RINGKV_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RING_MAX_NODES 256 /* members per ring */
#define RING_ID_MAX    64  /* bytes in a member id, without the NUL */
#define RING_Q_DEFAULT 64  /* partitions when the config says nothing */
#define RING_Q_MAX     65536
#define RING_TARGET_N                                                          \
    4                        /* claim tries to give any RING_TARGET_N          \
                                consecutive partitions distinct owners */
#define RING_NONE UINT32_MAX /* "no member" from ring_owner() */

struct ring; /* opaque, immutable once built */

/* Whether q is a valid partition count (a power of two in 1..RING_Q_MAX). */
bool ring_q_valid(uint32_t q);

/* The partition of key[0..len): the top log2(q) bits of
 * XXH64(key, len, seed 0), so it depends on nothing but the key and q.
 * q should satisfy ring_q_valid(); for any other q > 0 the result still
 * lies in [0, q) (log2 is rounded down), and q == 0 gives 0. key may be
 * NULL when len is 0. Never allocates. The storage layer prefixes keys with
 * this value: changing it orphans every stored key (tests pin it). */
uint32_t ring_partition(const void *key, size_t len, uint32_t q);

/* Builds a ring of q partitions owned by the n members named in
 * members[0..n) (NUL-terminated ids, any order), from scratch: owners are
 * dealt in rounds over the sorted members so that every member owns
 * floor(q/n) or ceil(q/n) partitions and, where the counts allow it, any
 * RING_TARGET_N consecutive partitions have distinct owners. The lowest
 * q mod n ids (in sorted order) get the extra partition.
 *
 * On success *out is a new ring owned by the caller (ring_destroy()); the
 * ids are copied, so members may be freed after the call. On failure *out
 * is untouched. Errors: -EINVAL (out or members NULL, or a NULL id),
 * -ENOMEM, RK_ECONFIG (bad q, n, id, or a duplicate id). */
int ring_build(struct ring **out, uint32_t q, const char *const *members,
               uint32_t n);

/* Builds the ring that follows prev when the member set becomes
 * members[0..n): same Q as prev, partitions moved as little as balance
 * allows. Claim:
 *   1. targets: every member gets floor(Q/n) or ceil(Q/n); the q mod n
 *      extra partitions go to the members that already own the most
 *      (ties: lower sorted index).
 *   2. partitions of members that left go to members below target,
 *      preferring a member with no other partition within RING_TARGET_N-1
 *      positions, then the largest deficit, then the lower index.
 *   3. members still below target take partitions from members above it,
 *      walking the ring in even strides, first only where the taker has no
 *      other partition within RING_TARGET_N-1 positions, then relaxing.
 * Consequences: a member that stays and is not above its target keeps all
 * its partitions; adding one member to n moves exactly floor(Q/(n+1))
 * partitions, all to the new member; removing one member moves exactly the
 * partitions it owned. If the member set equals prev's and prev is balanced,
 * the result equals prev.
 *
 * Ownership and errors as for ring_build(); prev is only read and may be
 * destroyed after the call. -EINVAL also when prev is NULL. */
int ring_rebuild(struct ring **out, const struct ring *prev,
                 const char *const *members, uint32_t n);

/* Builds a ring with an explicit owner table: partition p is owned by
 * members[owners[p]] for p in [0, q), indices into the list AS GIVEN (not
 * sorted). No balancing is done. This is how a node adopts a ring it
 * learned from a peer; ring_owner() and ring_member() export one. Members
 * owning nothing are allowed. Errors as for ring_build(), -EINVAL also when
 * owners is NULL, RK_ECONFIG also when an owners[p] is >= n. */
int ring_build_owned(struct ring **out, uint32_t q, const char *const *members,
                     uint32_t n, const uint32_t *owners);

/* Frees r. NULL is a no-op. Pointers from ring_member() die with r. */
void ring_destroy(struct ring *r);

/* Q, the number of partitions. */
uint32_t ring_q(const struct ring *r);

/* The number of members (1..RING_MAX_NODES). */
uint32_t ring_members(const struct ring *r);

/* The id of member idx (members are indexed 0..ring_members()-1 in sorted id
 * order), or NULL when idx is out of range. The string is NUL-terminated,
 * borrowed, and lives as long as r. */
const char *ring_member(const struct ring *r, uint32_t idx);

/* The index of the member named id, or -ENOENT if id is not a member (or
 * NULL). O(log n). */
int ring_member_index(const struct ring *r, const char *id);

/* The member index that owns partition, or RING_NONE when partition >= Q. */
uint32_t ring_owner(const struct ring *r, uint32_t partition);

/* How many partitions member idx owns (0 when idx is out of range). */
uint32_t ring_owned(const struct ring *r, uint32_t idx);

/* The preference list of partition: walking partition, partition+1, ...
 * (mod Q) clockwise, the owners not already chosen, until nval members are
 * chosen or the ring has been walked once. If members that own no partition
 * exist (only when n > Q) and fewer than nval were found, they follow in
 * index order. Writes member indices (see ring_member()) to out_nodes, which
 * must hold nval entries, first the partition's owner (the coordinator's
 * first choice), then its successors.
 *
 * Returns the number written, min(nval, ring_members(r)); all distinct.
 * Never allocates; O(Q * nval) in the worst case, O(nval^2) when consecutive
 * owners are distinct. Errors: -EINVAL (r NULL, out_nodes NULL with
 * nval > 0, or partition >= Q). */
int ring_pref_list(const struct ring *r, uint32_t partition, uint32_t nval,
                   uint32_t *out_nodes);

#endif
