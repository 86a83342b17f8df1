/*
 * ring_internal.h - the layout of struct ring and the claim functions shared
 * by ring.c and ring_claim.c. Nothing outside ring/ includes this.
 */
#ifndef RINGKV_RING_INTERNAL_H
#define RINGKV_RING_INTERNAL_H

#include "ring/ring.h"

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

#endif
