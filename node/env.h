/*
 * env.h - the seam between a node's logic and the world.
 *
 * Everything the request-handling code (node/core.c today; the coordinator,
 * membership, hints and anti-entropy as they land) does that touches the
 * world goes through one struct env: clocks, storage reads and commits, and
 * (with replication) timers, randomness and sending to peers. Replies to
 * clients go to the reply callback the caller passed with each request.
 *
 * Production implements it with libuv and LMDB (node/main.c wires
 * node/storage.c in); the deterministic simulator (tests/sim/) implements it
 * in memory with virtual time, so the simulator runs the real logic, not a
 * model of it. Rule: nothing under node/core*.c calls uv_*, mdb_*, time(),
 * rand() or a socket directly.
 */
#ifndef RINGKV_ENV_H
#define RINGKV_ENV_H

#include <stdint.h>

#include "node/storage.h"

struct env;

struct env_ops {
    /* Monotonic milliseconds (timeouts, idle checks). */
    uint64_t (*now_ms)(struct env *env);
    /* Wall-clock milliseconds since the epoch (HLC timestamps). */
    uint64_t (*wall_ms)(struct env *env);
    /* storage_get(): fn runs before this returns. */
    int (*store_get)(struct env *env, uint32_t partition, const uint8_t *key,
                     uint32_t key_len, storage_read_fn fn, void *arg);
    /* storage_submit(): op->done runs later, on the node's thread. */
    int (*store_submit)(struct env *env, struct storage_op *op);
};

struct env {
    const struct env_ops *ops;
    void *impl;
};

/* The production environment: libuv clocks and an open LMDB store. */
void env_uv_init(struct env *env, uv_loop_t *loop, struct storage *store);

#endif
