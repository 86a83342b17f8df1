/*
 * hlc.c - hybrid logical clocks (Kulkarni et al.), pure: the caller passes
 * the wall time in milliseconds.
 *
 * Design. A timestamp packs physical ms into the high 48 bits and a logical
 * counter into the low 16, so timestamps compare as plain integers. The
 * clock keeps only the last timestamp issued or observed. A new timestamp is
 * the wall time with logical 0 when that is ahead of the last one, otherwise
 * last + 1: when the logical part is 0xffff the increment carries into the
 * physical part (the clock runs slightly ahead of wall time) instead of
 * wrapping.
 *
 * Invariants: c->last never decreases; hlc_now() returns strictly increasing
 * values (until the u64 itself is exhausted, where it stays at UINT64_MAX);
 * hlc_observe() never moves the clock more than max_drift_ms past the wall.
 */
#include "quorum/hlc.h"

#include <stddef.h> /* proto/errors.h uses size_t */

#include "proto/errors.h"

#define HLC_MAX_PHYSICAL (UINT64_MAX >> HLC_LOGICAL_BITS)

static uint64_t wall_ts(uint64_t wall_ms)
{
    if (wall_ms > HLC_MAX_PHYSICAL)
        wall_ms = HLC_MAX_PHYSICAL;
    return wall_ms << HLC_LOGICAL_BITS;
}

uint64_t hlc_now(struct hlc *c, uint64_t wall_ms)
{
    uint64_t w = wall_ts(wall_ms);
    if (w > c->last)
        c->last = w;
    else if (c->last != UINT64_MAX)
        c->last++;
    return c->last;
}

int hlc_observe(struct hlc *c, uint64_t ts, uint64_t wall_ms,
                uint64_t max_drift_ms)
{
    uint64_t phys = hlc_physical_ms(ts);
    if (phys > wall_ms && phys - wall_ms > max_drift_ms)
        return RK_EBAD_REQUEST;
    if (ts > c->last)
        c->last = ts;
    return 0;
}
