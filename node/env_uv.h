/*
 * env_uv.h - the production environment (node/env.h's struct env on libuv,
 * LMDB and the peer transport). Only node/main.c needs it: the core sees
 * struct env alone.
 */
#ifndef RINGKV_ENV_UV_H
#define RINGKV_ENV_UV_H

#include <uv.h>

#include "node/env.h"
#include "node/storage.h"

struct peers;

/* The production environment: libuv clocks and timers, an open LMDB store,
 * and the peer transport (NULL for a node without peers). */
void env_uv_init(struct env *env, uv_loop_t *loop, struct storage *store,
                 struct peers *peers);

/* peer_delay_mean_ms: from now on every peer request waits an exponential
 * delay with mean mean_ms (0: none) before it is sent; at most max_delayed
 * wait at once, more are refused (RK_EOVERLOADED, fn not called). A
 * request to a peer that is down is refused at once (-ENOTCONN); one
 * accepted gets fn exactly once, later. */
void env_uv_delay_peers(struct env *env, uint64_t mean_ms,
                        uint64_t max_delayed);

/* Shutdown, before peers_close(): fails every delayed request
 * (RK_ESHUTTING_DOWN; fn runs inside this call) and refuses new ones, so
 * the loop can run dry. An env never initialised (impl NULL) is a no-op. */
void env_uv_close(struct env *env);

struct env_uv_stats {
    uint64_t delayed;       /* peer requests delayed (peer_delay_mean_ms) */
    uint64_t delayed_now;   /* waiting out their delay now */
    uint64_t delay_refused; /* refused: max_delayed were waiting */
};

/* Counters since env_uv_init(); env may be NULL (all zero). */
void env_uv_get_stats(const struct env *env, struct env_uv_stats *out);

/* 64 random nonzero bits from getrandom (storage epochs, incarnations; the
 * env's random64 op). */
uint64_t env_uv_random64(void);

#endif
