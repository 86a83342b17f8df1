/*
 * fwd_window.h - which forwarded writes from one member were already seen:
 * a sliding window of sequence numbers (like IPsec's anti-replay window)
 * for that member's current incarnation.
 *
 * A forward is applied at most once: applying a copy again could make a
 * write the client was told failed definitely appear after all (found by
 * the simulator, docs/simulation.md). A copy, or a forward too old to
 * tell, is refused. Pure; one struct per forwarding member, zeroed to
 * start.
 */
#ifndef RINGKV_FWD_WINDOW_H
#define RINGKV_FWD_WINDOW_H

#include <stdbool.h>
#include <stdint.h>

#define FWD_WINDOW_SIZE 1024 /* forwards remembered per forwarder */

struct fwd_window {
    uint64_t inc;
    uint64_t hwm; /* highest sequence seen */
    uint64_t bits[FWD_WINDOW_SIZE / 64];
};

/* True the first time (inc, seq) is seen; false for a copy or a sequence
 * FWD_WINDOW_SIZE or more below the highest seen. A new incarnation (the
 * forwarder restarted) forgets the old one's window. seq 0 means "not
 * stamped" and is always first. */
bool fwd_window_first(struct fwd_window *w, uint64_t inc, uint64_t seq);

#endif
