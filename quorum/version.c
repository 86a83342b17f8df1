/*
 * version.c - versioning on apply (see version.h).
 *
 * The own-actor check rests on one invariant: only this node mints dots of
 * its own actor, and it stores each one before anyone else sees it. So a
 * context or record claiming a later counter for our actor than the stored
 * record holds was not issued by this node for this key; accepting it would
 * cover, and so hide, our next writes until the counter catches up.
 */
#include <inttypes.h>
#include <stdio.h>

#include "proto/errors.h"
#include "quorum/hlc.h"
#include "quorum/version.h"

static uint64_t own_dvv_counter(const struct dvv *d, uint64_t actor)
{
    uint64_t c = 0;
    for (uint32_t i = 0; i < d->n; i++)
        if (d->e[i].actor == actor)
            c = d->e[i].counter;
    return c;
}

static uint64_t vv_counter(const struct dvv_vv *vv, uint64_t actor)
{
    uint64_t c = 0;
    for (uint32_t i = 0; i < vv->n; i++)
        if (vv->e[i].actor == actor)
            c = vv->e[i].counter;
    return c;
}

int version_update(struct version_update *u, const struct dvv *local,
                   struct dvv_arena *a, struct dvv *next)
{
    int err;

    u->msg[0] = '\0';
    u->existed = dvv_live(local) > 0;
    if (u->overwrite) {
        /* Supersede everything stored. A delete of nothing stores nothing
         * here, but replicas that have something still get the tombstone. */
        if ((err = dvv_join(local, a, &u->ctx)) != 0)
            return err;
    }
    /* A write supersedes what it covers with a later timestamp, even when
     * this node's clock is behind the one that stamped a local value
     * (otherwise last-write-wins could pick the superseded value). */
    for (uint32_t i = 0; i < local->n; i++)
        for (uint32_t j = 0; j < local->e[i].nvals; j++)
            if (local->e[i].vals[j].ts >= u->val.ts)
                u->val.ts = local->e[i].vals[j].ts + 1;
    /* An overwrite's context is the stored record's own join. */
    uint64_t claimed = u->overwrite ? 0 : vv_counter(&u->ctx, u->actor);
    uint64_t issued = own_dvv_counter(local, u->actor);
    if (claimed > issued) {
        snprintf(u->msg, sizeof(u->msg),
                 "the context claims counter %" PRIu64 " for this node, "
                 "which has issued %" PRIu64 " for the key: it was not "
                 "read from this key",
                 claimed, issued);
        return RK_EBAD_CONTEXT;
    }
    if ((err = dvv_update(local, &u->ctx, u->val, u->actor, a, next)) != 0)
        return err;
    u->lww_dropped = dvv_resolve(next, u->lww);
    u->live = dvv_live(next);
    if (u->live > u->max_siblings)
        return RK_ESIBLING_LIMIT;
    return 0;
}

int version_merge(struct version_merge *m, const struct dvv *local,
                  const struct dvv *in, struct dvv_arena *a, struct dvv *next)
{
    int err;

    m->msg[0] = '\0';
    m->changed = false;
    /* Under last-write-wins a value stamped far in the future would beat
     * every honest write for that long: refuse it whatever brought it
     * (replication or read repair). */
    for (uint32_t i = 0; m->max_ts != 0 && i < in->n; i++)
        for (uint32_t j = 0; j < in->e[i].nvals; j++)
            if (in->e[i].vals[j].ts > m->max_ts)
                return RK_ECLOCK_SKEW;
    uint64_t claimed = own_dvv_counter(in, m->actor);
    uint64_t issued = own_dvv_counter(local, m->actor);
    if (claimed > issued) {
        snprintf(m->msg, sizeof(m->msg),
                 "record claims counter %" PRIu64 " for this node's actor, "
                 "which has issued %" PRIu64 " for the key",
                 claimed, issued);
        return RK_EFORBIDDEN;
    }
    if ((err = dvv_sync(local, in, a, next)) != 0)
        return err;
    m->lww_dropped = dvv_resolve(next, m->lww);
    m->live = dvv_live(next);
    m->changed = !dvv_equal(next, local);
    return 0;
}

uint64_t version_max_ts(uint64_t wall_ms, uint64_t max_drift_ms)
{
    /* physical ms in the high bits, see quorum/hlc.h */
    return (wall_ms + max_drift_ms) << HLC_LOGICAL_BITS;
}
