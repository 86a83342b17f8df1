/*
 * version.h - versioning on apply: what a replica decides when it turns a
 * coordinator's write (an update with a client context) or a replicated
 * record (a merge) into the next stored record.
 *
 * Pure: the storage worker (node/core.c's apply callback) decodes the
 * stored record, calls one of these, and encodes what they produce. No
 * clock, no I/O: the caller passes the timestamps and limits it read.
 *
 *   update: [overwrite: ctx := join(local)] -> ts past every local value
 *           -> own-actor check of ctx -> dvv_update -> resolve (lww)
 *           -> sibling cap
 *   merge:  skew check (lww) -> own-actor check of the record
 *           -> dvv_sync -> resolve (lww) -> changed?
 */
#ifndef RINGKV_VERSION_H
#define RINGKV_VERSION_H

#include <stdbool.h>
#include <stdint.h>

#include "quorum/dvv.h"

struct version_update {
    /* in */
    uint64_t actor;        /* this node's actor: mints the new dot */
    bool overwrite;        /* supersede every stored version (ctx ignored) */
    bool lww;              /* resolve with last-write-wins */
    uint32_t max_siblings; /* more live values after the write: refused */
    struct dvv_vv ctx;     /* the client's context (replaced on overwrite) */
    struct dvv_val val;    /* the value; val.ts is raised past local's */
    /* out */
    bool existed;         /* local had live values */
    uint32_t live;        /* live values in next */
    uint32_t lww_dropped; /* values last-write-wins discarded */
    char msg[160];        /* detail of an RK_EBAD_CONTEXT, else "" */
};

/* Versions u->val against local into *next (allocated from a, which must
 * outlive next). Returns 0, RK_EBAD_CONTEXT (the context claims dots of
 * u->actor that local never issued: it was not read from this key; msg
 * says which), RK_ESIBLING_LIMIT (more than max_siblings live values would
 * remain), or a dvv error (-ENOMEM). */
int version_update(struct version_update *u, const struct dvv *local,
                   struct dvv_arena *a, struct dvv *next);

struct version_merge {
    /* in */
    uint64_t actor;  /* this node's actor */
    bool lww;        /* resolve with last-write-wins */
    uint64_t max_ts; /* refuse values stamped later; 0: no limit */
    /* out */
    uint32_t live;
    uint32_t lww_dropped;
    bool changed;  /* next differs from local (else: nothing to write) */
    char msg[160]; /* detail of an RK_EFORBIDDEN, else "" */
};

/* Merges the replicated record in into local as *next (from a). Returns 0,
 * RK_ECLOCK_SKEW (a value of in is stamped past max_ts), RK_EFORBIDDEN (in
 * claims a later counter for our actor than local holds: forged, or from a
 * store we lost; msg says which) or a dvv error. */
int version_merge(struct version_merge *m, const struct dvv *local,
                  const struct dvv *in, struct dvv_arena *a, struct dvv *next);

/* The latest timestamp a replicated value may carry under last-write-wins:
 * max_drift_ms past the wall clock, as an HLC timestamp (quorum/hlc.h). */
uint64_t version_max_ts(uint64_t wall_ms, uint64_t max_drift_ms);

#endif
