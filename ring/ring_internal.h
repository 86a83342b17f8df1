/*
 * ring_internal.h - the layout of struct ring and the claim functions shared
 * by ring.c and ring_claim.c, and the layout of struct ring_state shared by
 * ring_state.c and ring_state_codec.c. Nothing outside ring/ includes this.
 */
#ifndef RINGKV_RING_INTERNAL_H
#define RINGKV_RING_INTERNAL_H

#include "ring/ring.h"
#include "ring/ring_state.h"

#include <stdbool.h>
#include <stdint.h>

/* owner[] entry for a partition whose previous owner left (claim input). */
#define RING__ORPHAN UINT16_MAX

_Static_assert(RING_MAX_NODES < RING__ORPHAN, "owner indices fit uint16_t");
_Static_assert((RING_Q_MAX & (RING_Q_MAX - 1)) == 0, "RING_Q_MAX is 2^k");

struct ring {
    uint32_t q;                   /* partitions, a power of two */
    uint32_t n;                   /* members, 1..RING_MAX_NODES */
    uint16_t *owner;              /* [q] member index owning each partition */
    uint32_t *owned;              /* [n] partitions owned by each member */
    char (*ids)[RING_ID_MAX + 1]; /* [n] NUL-terminated, strictly ascending */
};

/* Fills r->owner by dealing partitions in rounds over the sorted members
 * (from-scratch placement). r->q and r->n are set; r->owned is not
 * touched. */
void ring__deal(struct ring *r);

/* Resolves r->owner, in which some entries may be RING__ORPHAN, into a
 * balanced ownership moving as few partitions as balance allows (see
 * ring_rebuild() in ring.h). Returns 0 or -ENOMEM (r->owner is then
 * unspecified). r->owned is not touched. */
int ring__claim(struct ring *r);

/* What the pending change does to a member of cur (ring_state.gone[]). */
enum ring__gone { RING__STAYS, RING__LEAVING, RING__REMOVED, RING__GONE_MAX };

/* One planned copy: partition part to member dest of next, from member src
 * of cur (RING_NONE: blocked). */
struct ring__xfer {
    uint32_t part;
    uint32_t dest;
    uint32_t src;
    bool done;
};

struct ring_state {
    uint64_t version;
    uint32_t nval;
    struct ring *cur;
    struct ring *next;       /* NULL when no change is pending */
    uint8_t *gone;           /* [members of cur] enum ring__gone; or NULL */
    struct ring__xfer *xfer; /* [nxfer] the plan, in plan order */
    uint32_t nxfer;
    uint32_t ndone;
};

/* A copy of r, or NULL when memory runs out. */
struct ring *ring__copy(const struct ring *r);

/* Computes the plan of s (s->cur, s->next, s->nval, s->gone set) into
 * s->xfer / s->nxfer with every done bit clear; unavailable[0..nunavail)
 * (ids) are not picked as sources, nor are removed members. Returns 0 or
 * -ENOMEM (s->xfer untouched). */
int ring__plan(struct ring_state *s, const char *const *unavailable,
               uint32_t nunavail);

/* True if src (a member index of s->cur) may be the source of a transfer
 * of partition k: it is in pref_cur(k) and not removed. */
bool ring__src_valid(const struct ring_state *s, uint32_t k, uint32_t src);

/* Frees what a pending change holds (next, gone, plan). */
void ring__change_free(struct ring_state *s);

#endif
