/*
 * hlc.h - hybrid logical clocks (Kulkarni et al.) for last-write-wins
 * timestamps. Pure: the caller passes the physical time in.
 *
 * A timestamp is a u64: physical milliseconds in the high 48 bits, a logical
 * counter in the low 16. Timestamps issued by one clock strictly increase,
 * even when the physical clock goes backwards; observing a remote timestamp
 * moves the clock past it, unless it is further than max_drift_ms ahead of
 * our physical time, which is rejected (lesson 10: clock skew under LWW).
 */
#ifndef RINGKV_HLC_H
#define RINGKV_HLC_H

#include <stdint.h>

#define HLC_LOGICAL_BITS 16

struct hlc {
    uint64_t last; /* the last timestamp issued or observed */
};

static inline uint64_t hlc_physical_ms(uint64_t ts)
{
    return ts >> HLC_LOGICAL_BITS;
}

/* A new timestamp greater than every one issued or observed so far. */
uint64_t hlc_now(struct hlc *c, uint64_t wall_ms);

/* Observes a timestamp from elsewhere. Returns 0, or RK_EBAD_REQUEST when
 * ts is more than max_drift_ms ahead of wall_ms (the clock is unchanged). */
int hlc_observe(struct hlc *c, uint64_t ts, uint64_t wall_ms,
                uint64_t max_drift_ms);

#endif
