/*
 * env.h - the seam between a node's logic and the world.
 *
 * Everything the request-handling code (node/core.c today; membership,
 * hints and anti-entropy as they land) does that touches the world goes
 * through one struct env: clocks, storage reads and commits, timers,
 * sending to peers, randomness and log lines. Replies to clients go to the
 * reply callback the caller passed with each request. The decisions
 * themselves are pure code in quorum/; the core glues them to the env.
 *
 * Production implements it with libuv and LMDB (node/env_uv.h; node/main.c
 * wires node/storage.c in); the deterministic simulator (tests/sim/)
 * implements it in memory with virtual time and seeded randomness, so the
 * simulator runs the real logic, not a model of it. Rules: this header
 * includes no libuv or LMDB header, and nothing under node/core*.c calls
 * uv_*, mdb_*, time(), rand(), getrandom(), log_write() or a socket
 * directly (the core library, ringkv_core, does not link libuv).
 */
#ifndef RINGKV_ENV_H
#define RINGKV_ENV_H

#include <stdint.h>

#include "node/log.h"
#include "node/storage_op.h"
#include "proto/wire.h"

struct env;
struct env_timer;

typedef void (*env_timer_fn)(void *arg);

/* A peer's answer: err 0 with resp, or an error (connection lost, peer
 * down, given up) with resp NULL. resp lives during the call only. */
typedef void (*env_reply_fn)(void *arg, int err, const struct wire_resp *resp);

struct env_ops {
    /* Monotonic milliseconds (timeouts, idle checks). */
    uint64_t (*now_ms)(struct env *env);
    /* Wall-clock milliseconds since the epoch (HLC timestamps). */
    uint64_t (*wall_ms)(struct env *env);
    /* storage_get(): fn runs before this returns. */
    int (*store_get)(struct env *env, uint32_t partition, const uint8_t *key,
                     uint32_t key_len, storage_read_fn fn, void *arg);
    /* storage_scan_from(): walks partition strictly after key after
     * (NULL: from its start) until fn returns nonzero; fn runs before this
     * returns. */
    int (*store_scan)(struct env *env, uint32_t partition, const uint8_t *after,
                      uint32_t after_len, storage_scan_fn fn, void *arg);
    /* A new storage epoch, drawn and stored durably (storage_renew_epoch):
     * the node's next actor. Returns 0 with *epoch set, or an error. */
    int (*store_new_epoch)(struct env *env, uint64_t *epoch);
    /* storage_submit(): op->done runs later, on the node's thread. */
    int (*store_submit)(struct env *env, struct storage_op *op);
    /* Runs fn(arg) once after ms milliseconds, unless cancelled first.
     * Returns NULL when memory runs out. */
    struct env_timer *(*timer_start)(struct env *env, uint64_t ms,
                                     env_timer_fn fn, void *arg);
    /* Cancels a timer that has not fired; fn will not run. */
    void (*timer_cancel)(struct env *env, struct env_timer *t);
    /* Sends req to a member (see peers_request() in node/peer.h for the
     * contract): 0 and fn runs once later, or an error and fn never runs. */
    int (*peer_request)(struct env *env, uint32_t member,
                        const struct wire_req *req, env_reply_fn fn, void *arg);
    /* True when member is believed reachable. */
    bool (*peer_up)(struct env *env, uint32_t member);
    /* Membership (peers_add, peers_slot, peers_forget in node/peer.h).
     * A member number is a slot: stable for the life of the process,
     * never reused, equal to the ring index for a static cluster.
     * peer_add: the slot of the member with id (NULL: unknown, learned in
     * the handshake) at addr ("host:port", "[v6]:port"), added when new;
     * or a negative error (logged). peer_slot: id's slot or -ENOENT.
     * peer_forget: stop using slot (its pending requests fail later with
     * -ENOTCONN; re-adding brings the same slot back). */
    int (*peer_add)(struct env *env, const char *id, const char *addr);
    int (*peer_slot)(struct env *env, const char *id);
    void (*peer_forget)(struct env *env, uint32_t slot);
    /* 64 random bits (production: getrandom; the simulator: a stream
     * seeded from its seed). */
    uint64_t (*random64)(struct env *env);
    /* Writes one log line (msg has no newline). The caller has checked
     * level against log_min_level (node/log.h). Production: log_write();
     * the simulator stamps its virtual time and the node. */
    void (*log)(struct env *env, enum log_level level, const char *msg);
};

struct env {
    const struct env_ops *ops;
    void *impl;
};

#endif
