/*
 * env_uv.c - the production environment: libuv's clocks and timers,
 * node/storage.c and node/peer.c. Deliberately thin: all policy lives in
 * the code behind the seam.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/time.h>
#include <unistd.h>

#include "node/env_uv.h"
#include "node/log.h"
#include "node/peer.h"

struct env_uv {
    uv_loop_t *loop;
    struct storage *store;
    struct peers *peers;
};

/* A timer owns its uv handle; the memory goes in the close callback. */
struct env_timer {
    uv_timer_t h;
    env_timer_fn fn;
    void *arg;
};

static uint64_t op_now(struct env *env)
{
    struct env_uv *u = env->impl;
    return uv_now(u->loop);
}

static uint64_t op_wall(struct env *env)
{
    struct timeval tv;
    (void)env;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

static int op_store_get(struct env *env, uint32_t partition, const uint8_t *key,
                        uint32_t key_len, storage_read_fn fn, void *arg)
{
    struct env_uv *u = env->impl;
    return storage_get(u->store, partition, key, key_len, fn, arg);
}

static int op_store_submit(struct env *env, struct storage_op *op)
{
    struct env_uv *u = env->impl;
    return storage_submit(u->store, op);
}

static void timer_closed_cb(uv_handle_t *h)
{
    free(h);
}

static void timer_fired_cb(uv_timer_t *h)
{
    struct env_timer *t = (struct env_timer *)h;
    env_timer_fn fn = t->fn;
    void *arg = t->arg;
    uv_close((uv_handle_t *)h, timer_closed_cb);
    fn(arg);
}

static struct env_timer *op_timer_start(struct env *env, uint64_t ms,
                                        env_timer_fn fn, void *arg)
{
    struct env_uv *u = env->impl;
    struct env_timer *t = malloc(sizeof(*t));
    if (t == NULL)
        return NULL;
    t->fn = fn;
    t->arg = arg;
    uv_timer_init(u->loop, &t->h);
    uv_timer_start(&t->h, timer_fired_cb, ms, 0);
    return t;
}

static void op_timer_cancel(struct env *env, struct env_timer *t)
{
    (void)env;
    uv_timer_stop(&t->h);
    uv_close((uv_handle_t *)&t->h, timer_closed_cb);
}

static int op_peer_request(struct env *env, uint32_t member,
                           const struct wire_req *req, env_reply_fn fn,
                           void *arg)
{
    struct env_uv *u = env->impl;
    if (u->peers == NULL)
        return -ENOTCONN;
    return peers_request(u->peers, member, req, fn, arg);
}

static bool op_peer_up(struct env *env, uint32_t member)
{
    struct env_uv *u = env->impl;
    return u->peers != NULL && peers_up(u->peers, member);
}

uint64_t env_uv_random64(void)
{
    uint64_t e = 0;
    while (e == 0) {
        if (getrandom(&e, sizeof(e), 0) != (ssize_t)sizeof(e)) {
            /* getrandom cannot fail for 8 bytes once the pool is ready;
             * fall back to libuv's source rather than proceeding with 0. */
            if (uv_random(NULL, NULL, &e, sizeof(e), 0, NULL) != 0)
                e = (uint64_t)uv_hrtime() ^ ((uint64_t)getpid() << 32);
        }
    }
    return e;
}

static uint64_t op_random64(struct env *env)
{
    (void)env;
    return env_uv_random64();
}

static void op_log(struct env *env, enum log_level level, const char *msg)
{
    (void)env;
    log_write(level, "%s", msg);
}

static const struct env_ops env_uv_ops = {
    .now_ms = op_now,
    .wall_ms = op_wall,
    .store_get = op_store_get,
    .store_submit = op_store_submit,
    .timer_start = op_timer_start,
    .timer_cancel = op_timer_cancel,
    .peer_request = op_peer_request,
    .peer_up = op_peer_up,
    .random64 = op_random64,
    .log = op_log,
};

/* One production env per process. */
static struct env_uv env_uv_state;

void env_uv_init(struct env *env, uv_loop_t *loop, struct storage *store,
                 struct peers *peers)
{
    env_uv_state.loop = loop;
    env_uv_state.store = store;
    env_uv_state.peers = peers;
    env->ops = &env_uv_ops;
    env->impl = &env_uv_state;
}
