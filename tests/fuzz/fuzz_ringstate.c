/*
 * fuzz_ringstate.c - libFuzzer target for the ring state decoder
 * (ring/ring_state.h), the blob gossip carries between nodes.
 *
 * Input: the bytes of an encoded state. Anything but a decode must be
 * refused with RK_EPROTO (or -ENOMEM). A state that decodes must encode to
 * bytes that decode to a state with the same encoding, and the operations
 * a node runs on a learned state must keep it valid: write sets and
 * responsibility for a few partitions, re-sourcing the plan, and marking
 * one transfer done (which may flip the state), each followed by another
 * round trip, and merging the views before and after the mark both ways.
 * Any mismatch aborts.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/errors.h"
#include "ring/ring_state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz_ringstate: check failed: %s (line %d)\n",    \
                    #cond, __LINE__);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* decode(encode(s)) encodes to the same bytes; returns the copy. */
static struct ring_state *copy_of(const struct ring_state *s)
{
    struct ring_state *d = NULL;
    uint8_t *a = NULL, *b = NULL;
    size_t la = 0, lb = 0;
    const char *why = NULL;

    FUZZ_CHECK(ring_state_encode(s, &a, &la) == 0);
    FUZZ_CHECK(ring_state_decode(a, la, &d, &why) == 0);
    FUZZ_CHECK(ring_state_encode(d, &b, &lb) == 0);
    FUZZ_CHECK(la == lb && memcmp(a, b, la) == 0);
    FUZZ_CHECK(ring_state_version(d) == ring_state_version(s));
    free(a);
    free(b);
    return d;
}

static void round_trip(const struct ring_state *s)
{
    ring_state_destroy(copy_of(s));
}

static bool same_bytes(const struct ring_state *x, const struct ring_state *y)
{
    uint8_t *a = NULL, *b = NULL;
    size_t la = 0, lb = 0;
    bool same;

    FUZZ_CHECK(ring_state_encode(x, &a, &la) == 0);
    FUZZ_CHECK(ring_state_encode(y, &b, &lb) == 0);
    same = la == lb && memcmp(a, b, la) == 0;
    free(a);
    free(b);
    return same;
}

static void exercise(struct ring_state *s)
{
    struct ring_state_target set[2 * RING_STATE_NVAL_MAX];
    bool acked[2 * RING_STATE_NVAL_MAX];
    const struct ring *cur = ring_state_cur(s);
    uint32_t q = ring_q(cur), k, i;
    struct ring_transfer t;
    uint64_t v;

    for (k = 0; k < q && k < 4; k++) {
        int n = ring_state_write_set(s, k, set, 2 * RING_STATE_NVAL_MAX);

        FUZZ_CHECK(n >= 1 && n <= 2 * (int)ring_state_nval(s));
        for (i = 0; i < (uint32_t)n; i++) {
            FUZZ_CHECK(ring_state_responsible(s, set[i].id, k));
            acked[i] = true;
        }
        FUZZ_CHECK(ring_state_write_acked(set, (uint32_t)n, acked, 1));
    }
    if (!ring_state_pending(s))
        return;
    FUZZ_CHECK(ring_state_replan(s, NULL, 0) >= 0);
    round_trip(s);
    for (i = 0; i < ring_state_transfers(s); i++) {
        FUZZ_CHECK(ring_state_transfer(s, i, &t) == 0);
        if (t.done)
            continue;
        struct ring_state *old = copy_of(s);

        v = ring_state_version(s);
        FUZZ_CHECK(ring_state_transfer_done(s, t.part, t.dest) == 0);
        FUZZ_CHECK(ring_state_version(s) > v);
        round_trip(s);
        /* A node that missed the mark learns it by merging; the newer view
         * learns nothing from the older one. */
        FUZZ_CHECK(ring_state_merge(s, old) == 0);
        FUZZ_CHECK(ring_state_merge(old, s) == 1);
        FUZZ_CHECK(same_bytes(s, old));
        ring_state_destroy(old);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ring_state *s = NULL;
    const char *why = NULL;
    int rc = ring_state_decode(data, size, &s, &why);

    if (rc != 0) {
        FUZZ_CHECK(rc == RK_EPROTO || rc == -ENOMEM);
        FUZZ_CHECK(rc != RK_EPROTO || why != NULL);
        return 0;
    }
    round_trip(s);
    exercise(s);
    ring_state_destroy(s);
    return 0;
}
