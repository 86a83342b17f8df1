/*
 * env_uv.c - the production environment: libuv's clocks and node/storage.c.
 * Deliberately thin: all policy lives in the code behind the seam.
 */
#include <sys/time.h>

#include "node/env.h"

struct env_uv {
    uv_loop_t *loop;
    struct storage *store;
};

static uint64_t env_uv_now(struct env *env)
{
    struct env_uv *u = env->impl;
    return uv_now(u->loop);
}

static uint64_t env_uv_wall(struct env *env)
{
    struct timeval tv;
    (void)env;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

static int env_uv_get(struct env *env, uint32_t partition, const uint8_t *key,
                      uint32_t key_len, storage_read_fn fn, void *arg)
{
    struct env_uv *u = env->impl;
    return storage_get(u->store, partition, key, key_len, fn, arg);
}

static int env_uv_submit(struct env *env, struct storage_op *op)
{
    struct env_uv *u = env->impl;
    return storage_submit(u->store, op);
}

static const struct env_ops env_uv_ops = {
    .now_ms = env_uv_now,
    .wall_ms = env_uv_wall,
    .store_get = env_uv_get,
    .store_submit = env_uv_submit,
};

/* One production env per process. */
static struct env_uv env_uv_state;

void env_uv_init(struct env *env, uv_loop_t *loop, struct storage *store)
{
    env_uv_state.loop = loop;
    env_uv_state.store = store;
    env->ops = &env_uv_ops;
    env->impl = &env_uv_state;
}
