/*
 * rng.h - the project's seeded pseudo-random generator: xoshiro256**
 * (Blackman and Vigna), its state filled from the seed by splitmix64.
 * Deterministic and pure: the same seed gives the same stream on every
 * platform, so the simulator and ringkv-bench can replay a run. Not for
 * secrets (libsodium is).
 */
#ifndef RINGKV_RNG_H
#define RINGKV_RNG_H

#include <stdint.h>

struct rk_rng {
    uint64_t s[4];
};

/* Seeds r from seed (any value, 0 included). */
void rk_rng_seed(struct rk_rng *r, uint64_t seed);

/* The next 64 random bits. */
uint64_t rk_rng_next(struct rk_rng *r);

#endif
