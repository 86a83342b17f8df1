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

/* 64 random nonzero bits from getrandom (storage epochs, incarnations; the
 * env's random64 op). */
uint64_t env_uv_random64(void);

#endif
