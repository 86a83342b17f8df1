/*
 * fwd_window.c - the forward dedupe window (see fwd_window.h).
 *
 * Bit (seq % SIZE) says whether seq was seen; when hwm advances, the bits
 * of the sequences it skips are cleared first, so a bit always belongs to
 * a sequence in (hwm - SIZE, hwm].
 */
#include <string.h>

#include "quorum/fwd_window.h"

bool fwd_window_first(struct fwd_window *w, uint64_t inc, uint64_t seq)
{
    if (seq == 0)
        return true;
    if (w->inc != inc) { /* the forwarder restarted */
        memset(w, 0, sizeof(*w));
        w->inc = inc;
    }
    if (seq + FWD_WINDOW_SIZE <= w->hwm)
        return false;
    if (seq > w->hwm) {
        uint64_t gap = seq - w->hwm;
        for (uint64_t k = 1; k <= gap && k <= FWD_WINDOW_SIZE; k++) {
            uint64_t b = (w->hwm + k) % FWD_WINDOW_SIZE;
            w->bits[b / 64] &= ~(1ull << (b % 64));
        }
        w->hwm = seq;
    }
    uint64_t b = seq % FWD_WINDOW_SIZE;
    if (w->bits[b / 64] & (1ull << (b % 64)))
        return false;
    w->bits[b / 64] |= 1ull << (b % 64);
    return true;
}
