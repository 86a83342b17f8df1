/*
 * core.c - request handling for one node: local reads and versioned writes.
 *
 * Design. Reads decode the stored record on the node's thread and answer at
 * once. Writes are versioned inside the storage transaction: the apply
 * callback (worker thread) decodes the key's current record, applies
 * dvv_update() with this node's actor, checks the sibling limit, applies
 * last-write-wins if configured, and encodes the result. Doing the version
 * step inside the write transaction makes read-modify-write atomic without
 * locks: two concurrent writes to one key are applied one after the other,
 * each seeing the other's dot. The reply is sent from the op's done
 * callback, i.e. only after the commit satisfied the fsync policy.
 *
 * Invariants. Every request is answered exactly once. A struct core_write
 * is touched by the worker only between submit and done, and by the loop
 * thread only outside that window; the core's own fields are read-only on
 * the worker (it copies what apply needs into the write).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "node/core.h"
#include "node/log.h"
#include "quorum/dvv.h"
#include "quorum/hlc.h"
#include "ring/ring.h"

struct core {
    struct env *env;
    struct core_opts o;
    struct hlc hlc;
    bool shutting_down;
    struct core_stats st;
};

/* One write in flight: the storage op, what apply needs, and its results.
 * Key and value bytes are copied into buf. */
struct core_write {
    struct storage_op op;
    struct core *core;
    core_reply_fn fn;
    void *fn_arg;
    enum wire_op kind; /* PUT or DEL */
    bool overwrite;
    uint64_t actor;
    uint32_t max_siblings;
    bool lww;
    struct dvv_arena arena;
    struct dvv_vv ctx;
    struct dvv_val val;
    /* results (worker) */
    int err;
    bool existed;
    uint32_t live;
    uint32_t lww_dropped;
    uint8_t *ctx_out;
    size_t ctx_out_len;
    uint8_t buf[];
};

struct core *core_create(struct env *env, const struct core_opts *o)
{
    struct core *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->env = env;
    c->o = *o;
    if (c->o.max_siblings == 0)
        c->o.max_siblings = CORE_DEFAULT_MAX_SIBLINGS;
    return c;
}

void core_destroy(struct core *c)
{
    free(c);
}

void core_shutdown(struct core *c)
{
    c->shutting_down = true;
}

void core_get_stats(const struct core *c, struct core_stats *st)
{
    *st = c->st;
}

static void core_fail(struct core *c, core_reply_fn fn, void *arg, int err,
                      bool definite, const char *msg)
{
    struct core_reply rep = {.err = err, .definite = definite, .msg = msg};
    c->st.errors++;
    fn(arg, &rep);
}

/* ---- reads ---------------------------------------------------------------
 */

struct core_read {
    struct core *core;
    core_reply_fn fn;
    void *arg;
};

static int core_read_cb(void *arg, const uint8_t *val, size_t len)
{
    struct core_read *rd = arg;
    struct core *c = rd->core;
    struct core_reply rep = {0};
    struct dvv_arena a;
    struct dvv d = {0};
    struct dvv_vv vv = {0};
    struct core_value *vals = NULL;
    uint8_t *ctx = NULL;
    size_t ctx_len = 0;
    int err = 0;

    dvv_arena_init(&a);
    if (val != NULL) {
        err = dvv_decode(val, len, &a, &d);
        if (err != 0) {
            LOG_ERROR("stored record fails to decode (%zu bytes): %s", len,
                      rk_err_msg(err));
            goto out;
        }
    }
    uint32_t live = dvv_live(&d);
    if (live > 0) {
        vals = dvv_arena_alloc(&a, live * sizeof(*vals));
        if (vals == NULL) {
            err = -ENOMEM;
            goto out;
        }
    }
    for (uint32_t i = 0; i < d.n; i++) {
        for (uint32_t j = 0; j < d.e[i].nvals; j++) {
            const struct dvv_val *v = &d.e[i].vals[j];
            if (v->flags & DVV_TOMBSTONE)
                continue;
            vals[rep.nvalues++] = (struct core_value){.data = v->data,
                                                      .len = v->len,
                                                      .ts = v->ts,
                                                      .actor = d.e[i].actor};
        }
    }
    if ((err = dvv_join(&d, &a, &vv)) != 0 ||
        (err = dvv_vv_encode(&vv, &ctx, &ctx_len)) != 0)
        goto out;
    rep.values = vals;
    rep.ctx = ctx;
    rep.ctx_len = (uint32_t)ctx_len;
    if (rep.nvalues == 0)
        c->st.not_found++;
    rd->fn(rd->arg, &rep);
out:
    if (err != 0)
        core_fail(c, rd->fn, rd->arg, err, true, NULL);
    free(ctx);
    dvv_arena_free(&a);
    return 0;
}

static void core_get(struct core *c, const struct core_req *req,
                     core_reply_fn fn, void *arg)
{
    struct core_read rd = {.core = c, .fn = fn, .arg = arg};
    uint32_t part = ring_partition(req->key, req->key_len, c->o.partitions);
    int err;

    c->st.gets++;
    err = c->env->ops->store_get(c->env, part, req->key, req->key_len,
                                 core_read_cb, &rd);
    if (err != 0) /* the callback did not run */
        core_fail(c, fn, arg, err, true, NULL);
}

/* ---- writes -------------------------------------------------------------
 */

/* Worker thread: version the write against the current record. */
static int core_apply(struct storage_op *op, const uint8_t *old, size_t old_len,
                      uint8_t **out, size_t *out_len)
{
    struct core_write *w = op->arg;
    struct dvv local = {0}, next;
    struct dvv_vv joined;
    int err;

    if (old != NULL && (err = dvv_decode(old, old_len, &w->arena, &local)))
        return w->err = err;
    w->existed = dvv_live(&local) > 0;
    if (w->overwrite) {
        /* Supersede everything stored. A delete of nothing stores nothing. */
        if (w->kind == WIRE_OP_DEL && !w->existed && dvv_count(&local) == 0)
            return STORAGE_APPLY_NOOP;
        if ((err = dvv_join(&local, &w->arena, &w->ctx)) != 0)
            return w->err = err;
    }
    if ((err = dvv_update(&local, &w->ctx, w->val, w->actor, &w->arena,
                          &next)) != 0)
        return w->err = err;
    if (w->lww)
        w->lww_dropped = dvv_lww(&next);
    w->live = dvv_live(&next);
    if (w->live > w->max_siblings)
        return w->err = RK_ESIBLING_LIMIT;
    if ((err = dvv_join(&next, &w->arena, &joined)) != 0 ||
        (err = dvv_vv_encode(&joined, &w->ctx_out, &w->ctx_out_len)) != 0 ||
        (err = dvv_encode(&next, out, out_len)) != 0)
        return w->err = err;
    return STORAGE_APPLY_PUT;
}

/* Loop thread: the commit is durable per the fsync policy (or failed). */
static void core_write_done(struct storage_op *op)
{
    struct core_write *w = op->arg;
    struct core *c = w->core;

    c->st.writes_pending--;
    if (op->status != 0) {
        bool definite = true; /* a failed op or batch was not applied */
        if (op->status == RK_ESIBLING_LIMIT)
            c->st.sibling_limit++;
        core_fail(c, w->fn, w->fn_arg, op->status, definite, NULL);
    } else {
        struct core_reply rep = {.ctx = w->ctx_out,
                                 .ctx_len = (uint32_t)w->ctx_out_len,
                                 .existed = w->existed};
        c->st.lww_discarded += w->lww_dropped;
        if (w->live > c->st.max_siblings_seen)
            c->st.max_siblings_seen = w->live;
        w->fn(w->fn_arg, &rep);
    }
    free(w->ctx_out);
    dvv_arena_free(&w->arena);
    free(w);
}

static void core_write(struct core *c, const struct core_req *req,
                       core_reply_fn fn, void *arg)
{
    size_t vlen = req->op == WIRE_OP_PUT ? req->value_len : 0;
    struct core_write *w = malloc(sizeof(*w) + req->key_len + vlen);
    int err;

    if (req->op == WIRE_OP_PUT)
        c->st.puts++;
    else
        c->st.dels++;
    if (w == NULL) {
        core_fail(c, fn, arg, -ENOMEM, true, NULL);
        return;
    }
    memset(w, 0, sizeof(*w));
    memcpy(w->buf, req->key, req->key_len);
    if (vlen > 0)
        memcpy(w->buf + req->key_len, req->value, vlen);
    dvv_arena_init(&w->arena);
    w->core = c;
    w->fn = fn;
    w->fn_arg = arg;
    w->kind = req->op;
    w->overwrite = (req->flags & CORE_F_OVERWRITE) != 0;
    w->actor = c->o.actor;
    w->max_siblings = c->o.max_siblings;
    w->lww = c->o.conflict == CORE_CONFLICT_LWW;
    w->val =
        (struct dvv_val){.data = w->buf + req->key_len,
                         .len = (uint32_t)vlen,
                         .flags = req->op == WIRE_OP_DEL ? DVV_TOMBSTONE : 0,
                         .ts = hlc_now(&c->hlc, c->env->ops->wall_ms(c->env))};
    if (!w->overwrite && req->ctx != NULL &&
        (err = dvv_vv_decode(req->ctx, req->ctx_len, &w->arena, &w->ctx))) {
        dvv_arena_free(&w->arena);
        free(w);
        core_fail(c, fn, arg, RK_EBAD_CONTEXT, true, NULL);
        return;
    }
    w->op.partition = ring_partition(req->key, req->key_len, c->o.partitions);
    w->op.key = w->buf;
    w->op.key_len = req->key_len;
    w->op.apply = core_apply;
    w->op.done = core_write_done;
    w->op.arg = w;
    err = c->env->ops->store_submit(c->env, &w->op);
    if (err != 0) {
        dvv_arena_free(&w->arena);
        free(w);
        core_fail(c, fn, arg, err, true, NULL);
        return;
    }
    c->st.writes_pending++;
}

void core_request(struct core *c, const struct core_req *req, core_reply_fn fn,
                  void *arg)
{
    if (c->shutting_down) {
        core_fail(c, fn, arg, RK_ESHUTTING_DOWN, true, NULL);
        return;
    }
    switch (req->op) {
    case WIRE_OP_GET:
        core_get(c, req, fn, arg);
        break;
    case WIRE_OP_PUT:
    case WIRE_OP_DEL:
        core_write(c, req, fn, arg);
        break;
    default:
        core_fail(c, fn, arg, RK_EUNKNOWN_OP, true, NULL);
        break;
    }
}
