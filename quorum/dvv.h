/*
 * dvv.h - causal versions: dotted version vector sets (DVVSet, Almeida et
 * al., "Scalable and Accurate Causality Tracking for Eventually Consistent
 * Stores"; Riak's dvvset.erl is the reference design), plus the encoded
 * record a node stores per key and the opaque context a client carries.
 *
 * Pure: no I/O, no clock, no globals; every function is thread-safe on its
 * own arguments (storage applies writes on a worker thread with these).
 *
 * Model. An actor is a 64-bit id naming one node *incarnation*: the storage
 * epoch, drawn at random whenever a node starts with empty storage, so a
 * wiped node never reuses old dots (Riak kv679). A DVVSet is a list of
 * entries, one per actor, sorted by actor:
 *     (actor, counter, [v_counter, v_counter-1, ..., v_counter-k+1])
 * The entry's vector part says "every event of actor up to counter is
 * known"; the values are the live siblings whose dots are (actor, counter),
 * (actor, counter-1), ... newest first, so nvals <= counter.
 *
 * Context. The version vector that covers a set of versions (dvv_join): the
 * client sends it back on write; the write supersedes exactly what the
 * context covers and is concurrent with everything else (kept as sibling).
 *
 * Memory. Decoded structures borrow value bytes from the encoded buffer;
 * arrays are allocated in a struct dvv_arena that is freed as a whole.
 */
#ifndef RINGKV_DVV_H
#define RINGKV_DVV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DVV_TOMBSTONE 0x1u /* value flag: a delete marker */
#define DVV_LWW                                                                \
    0x2u /* value flag: written by a client that cannot                        \
            see siblings (RESP SET/DEL); concurrent                            \
            values that all carry it resolve by                                \
            last-write-wins (dvv_resolve) */

/* Decoding limits: a record or context outside these is corrupt. */
#define DVV_MAX_ACTORS 1024
#define DVV_MAX_VALUES 4096 /* values in one record, all entries */
/* Counters (records and contexts) never exceed this: it keeps every counter
 * a signed 64-bit integer for msgpack readers in other languages. */
#define DVV_MAX_COUNTER ((uint64_t)INT64_MAX)

struct dvv_val {
    const uint8_t *data;
    uint32_t len;
    uint32_t flags; /* DVV_TOMBSTONE */
    uint64_t ts;    /* hybrid logical clock timestamp of the write */
};

struct dvv_entry {
    uint64_t actor;
    uint64_t counter;
    uint32_t nvals;
    struct dvv_val *vals; /* newest first */
};

struct dvv {
    uint32_t n; /* entries, sorted by actor, actors distinct */
    struct dvv_entry *e;
};

struct dvv_vv_entry {
    uint64_t actor;
    uint64_t counter;
};

/* A version vector (a context): entries sorted by actor, counters >= 1. */
struct dvv_vv {
    uint32_t n;
    struct dvv_vv_entry *e;
};

/* A bump allocator; everything in it is freed by dvv_arena_free(). */
struct dvv_arena {
    struct dvv_arena_chunk *head;
};
void dvv_arena_init(struct dvv_arena *a);
void dvv_arena_free(struct dvv_arena *a);
/* Returns NULL when memory runs out. */
void *dvv_arena_alloc(struct dvv_arena *a, size_t n);

/* ---- records ----------------------------------------------------------- */

/* Encodes d as a record (msgpack; format documented in dvv.c and
 * docs/dvv.md). *out is malloc'd, owned by the caller. Everything encode
 * accepts decodes again. Returns 0, -ENOMEM, RK_ETOO_LARGE when d exceeds
 * DVV_MAX_ACTORS / DVV_MAX_VALUES / DVV_MAX_COUNTER (the write or merge that
 * produced d must be refused, never stored), or RK_EINTERNAL when d breaks
 * the struct's invariants (unsorted actors, counter 0, nvals > counter). */
int dvv_encode(const struct dvv *d, uint8_t **out, size_t *out_len);

/* Decodes a record. Values borrow from p. Returns 0, or RK_ECORRUPT when
 * the bytes are not a valid record (bad structure, unsorted or duplicate
 * actors, nvals > counter, limits exceeded), or -ENOMEM. */
int dvv_decode(const uint8_t *p, size_t n, struct dvv_arena *a,
               struct dvv *out);

/* ---- contexts ---------------------------------------------------------- */

/* The version vector covering every version in d. */
int dvv_join(const struct dvv *d, struct dvv_arena *a, struct dvv_vv *out);

/* Opaque context bytes for clients. *out malloc'd. 0 or -ENOMEM, or (never
 * for the join of a record that encodes) RK_ETOO_LARGE past the limits and
 * RK_EINTERNAL for an unsorted vector or a zero counter. */
int dvv_vv_encode(const struct dvv_vv *vv, uint8_t **out, size_t *out_len);
/* Decodes a context from a client. Empty input (n == 0) is the empty
 * vector. Returns 0, RK_EBAD_CONTEXT, or -ENOMEM. */
int dvv_vv_decode(const uint8_t *p, size_t n, struct dvv_arena *a,
                  struct dvv_vv *out);

/* ---- operations ---------------------------------------------------------- */

/* A coordinator's write: the result holds v (with the dot (actor, c+1),
 * where c is the larger of actor's counter in local and in ctx) plus every
 * value of local whose dot ctx does not cover; values covered by ctx are
 * dropped. Its vector is max(local, ctx) plus the new dot, so actors known
 * only to ctx keep their counters. local may be empty (n == 0). Returns 0,
 * -ENOMEM, or RK_EBAD_CONTEXT when the new dot would pass DVV_MAX_COUNTER
 * (only a forged context gets there). v.data and the value bytes of local
 * are borrowed by out; out's arrays are fresh in a.
 *
 * Sibling cap: there is no cap parameter. The caller enforces its cap by
 * checking dvv_live(out) after dvv_update and refusing the write with a
 * definite error (and counting it) when it is over; nothing is stored. */
int dvv_update(const struct dvv *local, const struct dvv_vv *ctx,
               struct dvv_val v, uint64_t actor, struct dvv_arena *a,
               struct dvv *out);

/* Merges two replicas' versions: a value survives unless the other side's
 * vector covers its dot and the other side does not hold it (it was
 * superseded there). Commutative, associative, idempotent. When both sides
 * hold a dot, one copy is kept: the greater by (ts, flags, bytes), which only
 * matters after dvv_lww moved a winner onto a dot (see there). out borrows
 * value bytes from x and y; its arrays are fresh in a. Returns 0 or
 * -ENOMEM. */
int dvv_sync(const struct dvv *x, const struct dvv *y, struct dvv_arena *a,
             struct dvv *out);

/* Number of values (siblings, tombstones included) in d. */
uint32_t dvv_count(const struct dvv *d);

/* Number of values in d that are not tombstones. */
uint32_t dvv_live(const struct dvv *d);

/* True when a's vector covers b's (every dot of b is known to a). */
bool dvv_covers(const struct dvv *a, const struct dvv *b);

/* True when both hold the same vector, the same dots and, under each dot,
 * the same value (bytes, flags and timestamp). */
bool dvv_equal(const struct dvv *a, const struct dvv *b);

/* Last-write-wins: keeps only the value with the greatest (ts, actor, dot)
 * and drops the rest, keeping the vector. Returns how many values were
 * dropped. As in DVVSet the winner moves to the newest dot of its actor's
 * entry (the representation has no holes); sync then prefers it over the
 * loser another replica may still hold under that dot, since the winner's ts
 * is strictly greater. Modifies d's entries only, never the vals arrays.
 * Stamp writes after hlc_observe() of local values' ts: when a causally
 * later write has a smaller ts, a key can lose all values (docs/dvv.md). */
uint32_t dvv_lww(struct dvv *d);

/* The conflict policy, applied after every update, sync and read merge:
 * with lww, dvv_lww(); otherwise, when d holds several values and every one
 * of them carries DVV_LWW (all written by sibling-blind clients), dvv_lww()
 * too, so RESP clients see Redis's last-write-wins register and siblings
 * only arise when a context-carrying (native) client took part. Returns the
 * number of values dropped. */
uint32_t dvv_resolve(struct dvv *d, bool lww);

#endif
