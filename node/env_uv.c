/*
 * env_uv.c - the production environment: libuv's clocks and timers,
 * node/storage.c and node/peer.c. Deliberately thin: all policy lives in
 * the code behind the seam.
 *
 * Peer delay (peer_delay_mean_ms, a benchmarking switch): every peer
 * request waits an exponentially distributed time before it goes to
 * peers_request(), each on its own timer, so messages overtake each other
 * as on a real network:
 *
 *   core --peer_request--> [struct delayed: a copy of the request, a timer]
 *                              | after -mean * ln(U) ms
 *                              v
 *                          peers_request() ---> fn later (reply or error)
 *
 * Invariants: at most max_delayed requests wait (more are refused with
 * RK_EOVERLOADED, synchronously, counted); a request to a peer that is down
 * is refused at once, as without the delay; once accepted, fn runs exactly
 * once (a peer that went down meanwhile, or env_uv_close() at shutdown,
 * fails it); a waiting request's memory goes in its timer's close callback.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>
#include <unistd.h>

#include "node/env_uv.h"
#include "node/log.h"
#include "node/peer.h"
#include "proto/errors.h"

struct delayed;

struct env_uv {
    uv_loop_t *loop;
    struct storage *store;
    struct peers *peers;
    uint64_t delay_mean_ms; /* 0: requests go out at once */
    uint64_t max_delayed;
    bool closed;
    struct delayed *waiting; /* doubly linked */
    struct env_uv_stats st;
};

/* A peer request waiting out its delay; the request's bytes live in buf. */
struct delayed {
    uv_timer_t h;
    struct env_uv *u;
    struct delayed *prev, *next;
    uint32_t member;
    struct wire_req req;
    env_reply_fn fn;
    void *arg;
    uint8_t buf[];
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

static int op_store_new_epoch(struct env *env, uint64_t *epoch)
{
    struct env_uv *u = env->impl;
    uint64_t e = env_uv_random64();
    int rc = storage_renew_epoch(u->store, e);
    if (rc == 0)
        *epoch = e;
    return rc;
}

static int op_store_scan(struct env *env, uint32_t partition,
                         const uint8_t *after, uint32_t after_len,
                         storage_scan_fn fn, void *arg)
{
    struct env_uv *u = env->impl;
    return storage_scan_from(u->store, partition, after, after_len, fn, arg);
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

static void delayed_closed_cb(uv_handle_t *h)
{
    free(h);
}

static void unlink_delayed(struct delayed *d)
{
    struct env_uv *u = d->u;
    if (d->prev)
        d->prev->next = d->next;
    else
        u->waiting = d->next;
    if (d->next)
        d->next->prev = d->prev;
    u->st.delayed_now--;
}

static void delayed_fired_cb(uv_timer_t *h)
{
    struct delayed *d = (struct delayed *)h;
    struct env_uv *u = d->u;
    unlink_delayed(d);
    /* The copy lives until the close callback, after this returns. */
    int err = peers_request(u->peers, d->member, &d->req, d->fn, d->arg);
    uv_close((uv_handle_t *)h, delayed_closed_cb);
    if (err != 0) /* accepted earlier: fn runs once, with the error */
        d->fn(d->arg, err, NULL);
}

/* An exponentially distributed delay with mean ms: -mean * ln(U), U in
 * (0, 1] from 53 random bits (inverse CDF). */
static uint64_t draw_delay(uint64_t mean)
{
    double u = (double)((env_uv_random64() >> 11) + 1) * 0x1p-53;
    return (uint64_t)llround(-(double)mean * log(u));
}

static void copy_field(uint8_t **at, const uint8_t **field, uint32_t len)
{
    if (*field == NULL)
        return;
    memcpy(*at, *field, len);
    *field = *at;
    *at += len;
}

static int delay_request(struct env_uv *u, uint32_t member,
                         const struct wire_req *req, env_reply_fn fn, void *arg)
{
    if (u->st.delayed_now >= u->max_delayed) {
        u->st.delay_refused++;
        return RK_EOVERLOADED;
    }
    size_t len =
        (size_t)req->key_len + req->value_len + req->ctx_len + req->rec_len;
    struct delayed *d = malloc(sizeof(*d) + len);
    if (d == NULL)
        return -ENOMEM;
    uint8_t *at = d->buf;
    d->u = u;
    d->member = member;
    d->req = *req;
    d->fn = fn;
    d->arg = arg;
    copy_field(&at, &d->req.key, req->key_len);
    copy_field(&at, &d->req.value, req->value_len);
    copy_field(&at, &d->req.ctx, req->ctx_len);
    copy_field(&at, &d->req.rec, req->rec_len);
    uv_timer_init(u->loop, &d->h);
    uv_timer_start(&d->h, delayed_fired_cb, draw_delay(u->delay_mean_ms), 0);
    d->prev = NULL;
    d->next = u->waiting;
    if (u->waiting)
        u->waiting->prev = d;
    u->waiting = d;
    u->st.delayed++;
    u->st.delayed_now++;
    return 0;
}

static int op_peer_request(struct env *env, uint32_t member,
                           const struct wire_req *req, env_reply_fn fn,
                           void *arg)
{
    struct env_uv *u = env->impl;
    if (u->peers == NULL)
        return -ENOTCONN;
    /* Only replication is delayed (what staleness is about); membership
     * traffic (gossip, admin) goes out at once. */
    if (u->delay_mean_ms == 0 || req->op == WIRE_OP_GOSSIP ||
        req->op == WIRE_OP_ADMIN)
        return peers_request(u->peers, member, req, fn, arg);
    if (u->closed)
        return RK_ESHUTTING_DOWN;
    if (!peers_up(u->peers, member))
        return -ENOTCONN; /* as peers_request() would, at once */
    return delay_request(u, member, req, fn, arg);
}

static bool op_peer_up(struct env *env, uint32_t member)
{
    struct env_uv *u = env->impl;
    return u->peers != NULL && peers_up(u->peers, member);
}

static int op_peer_add(struct env *env, const char *id, const char *addr)
{
    struct env_uv *u = env->impl;
    char err[256];
    if (u->peers == NULL)
        return -ENOTCONN;
    int rc = peers_add(u->peers, id, addr, err, sizeof(err));
    if (rc < 0)
        LOG_WARN("cannot add peer %s (%s): %s", id ? id : "(id unknown)",
                 addr ? addr : "?", err);
    return rc;
}

static int op_peer_slot(struct env *env, const char *id)
{
    struct env_uv *u = env->impl;
    return u->peers == NULL ? -ENOENT : peers_slot(u->peers, id);
}

static void op_peer_forget(struct env *env, uint32_t slot)
{
    struct env_uv *u = env->impl;
    if (u->peers != NULL)
        peers_forget(u->peers, slot);
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
    .store_scan = op_store_scan,
    .store_new_epoch = op_store_new_epoch,
    .timer_start = op_timer_start,
    .timer_cancel = op_timer_cancel,
    .peer_request = op_peer_request,
    .peer_up = op_peer_up,
    .peer_add = op_peer_add,
    .peer_slot = op_peer_slot,
    .peer_forget = op_peer_forget,
    .random64 = op_random64,
    .log = op_log,
};

/* One production env per process. */
static struct env_uv env_uv_state;

void env_uv_init(struct env *env, uv_loop_t *loop, struct storage *store,
                 struct peers *peers)
{
    env_uv_state =
        (struct env_uv){.loop = loop, .store = store, .peers = peers};
    env->ops = &env_uv_ops;
    env->impl = &env_uv_state;
}

void env_uv_delay_peers(struct env *env, uint64_t mean_ms, uint64_t max_delayed)
{
    struct env_uv *u = env->impl;
    u->delay_mean_ms = mean_ms;
    u->max_delayed = max_delayed;
}

void env_uv_close(struct env *env)
{
    struct env_uv *u = env->impl;
    if (u == NULL)
        return;
    u->closed = true;
    while (u->waiting != NULL) {
        struct delayed *d = u->waiting;
        unlink_delayed(d);
        uv_timer_stop(&d->h);
        uv_close((uv_handle_t *)&d->h, delayed_closed_cb);
        d->fn(d->arg, RK_ESHUTTING_DOWN, NULL);
    }
}

void env_uv_get_stats(const struct env *env, struct env_uv_stats *out)
{
    const struct env_uv *u = env != NULL ? env->impl : NULL;
    if (u == NULL)
        *out = (struct env_uv_stats){0};
    else
        *out = u->st;
}
