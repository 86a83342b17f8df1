/*
 * core.c - request handling for one node: the coordinator of the
 * replication design (DESIGN.md "A write, end to end") and the replica side
 * of it, behind the environment seam (node/env.h).
 *
 *   client get:  ask all N replicas (self locally, others "rget");
 *                answer after R replies with the merge of what they hold;
 *                keep merging late replies until all answered or the
 *                timeout; then read-repair every replica whose copy differs
 *                from the final merge ("rput", asynchronously).
 *   client put:  if this node is not in the key's preference list, forward
 *                ("fput"/"fdel") to the first reachable replica, which
 *                coordinates. Otherwise version the write locally (the dot
 *                comes from this node's actor, inside the storage
 *                transaction, so it is atomic with the read of the current
 *                counter), then send the resulting record to the other
 *                replicas ("rput"); answer after W acknowledgements, the
 *                local commit counting as one.
 *   rput:        merge (dvv_sync) the record into the local one, store,
 *                acknowledge after the commit satisfied the fsync policy.
 *   rget:        answer with the locally stored record.
 *
 * Benchmarking switches (core_opts; docs/design.md, "Measuring
 * staleness"): exact_fanout narrows a get to r and a put to w replicas
 * chosen uniformly among the reachable ones (quorum/decide.h's
 * decide_pick; a put is forwarded to the coordinator it drew unless that
 * is this node); no_read_repair skips coord_get_repair's writes.
 *
 * Why versioning happens on a replica: the new dot is (actor, c + 1) where
 * c is the actor's counter in the local record; a non-replica has no local
 * record and two of its writes with the same context would get the same
 * dot for different values — a lost write. Riak forwards for the same
 * reason.
 *
 * Failure semantics: a put refused before anything was applied (bad
 * quorum, too few replicas reachable, local commit failed) is a *definite*
 * error; once the local commit succeeded, failing to reach W is
 * *indefinite* (the value exists on at least one replica and read repair
 * may spread it). Reads are always definite: they apply nothing.
 *
 * Lifetimes: a struct coord lives while anything can still call back into
 * it: its timer, each outstanding peer request, its local storage op. refs
 * counts those; the client is answered exactly once (quorum.h decides when)
 * and the coord is freed when refs drops to 0. core_shutdown() fires every
 * pending timer at once so the loop can drain.
 *
 * Threads: everything here runs on the node's thread except the apply
 * callbacks, which run on the storage worker and touch only their own
 * struct core_write.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "node/core.h"
#include "node/log.h"
#include "node/peer_auth.h"
#include "quorum/decide.h"
#include "quorum/dvv.h"
#include "quorum/fwd_window.h"
#include "quorum/hlc.h"
#include "quorum/quorum.h"
#include "quorum/version.h"
#include "ring/ring.h"

#define CORE_FWD_SLACK_MS 1000 /* a forward waits a bit past the timeout */

struct coord;

struct core {
    struct env *env;
    struct core_opts o;
    struct hlc hlc;
    bool shutting_down;
    uint32_t nmembers; /* in cur */
    uint32_t nval;     /* min(n, members) */
    /* The placement in use (core_set_view): reads use cur, writes go to
     * cur and next. Member numbers are the env's (peer slots); a ring
     * index maps to one through cur_slot / next_slot. */
    const struct ring *cur, *next;
    uint32_t cur_slot[RING_MAX_NODES], next_slot[RING_MAX_NODES];
    bool no_ring; /* a view without a ring: not in a cluster yet */
    struct core_member *members; /* by cur index, when known */
    core_down_fn down;
    void *down_arg;
    uint8_t r_def; /* min(r, nval) */
    uint8_t w_def; /* min(w, nval) */
    struct coord *active;
    uint64_t fwd_seq;            /* our forwards' sequence */
    struct fwd_window *fwd_seen; /* per member (quorum/fwd_window.h) */
    struct core_stats st;
    bool ctx_tagged; /* contexts carry a tag (core_opts.ctx_key) */
    uint8_t ctx_key[PEER_AUTH_CTX_KEY_LEN];
};

/* ---- logging through the env -------------------------------------------- */

/* Like LOG() (node/log.h): the level is checked before the arguments are
 * evaluated; the line goes to env's log op. Loop thread only. */
#define CORE_LOG(c, level, ...)                                                \
    do {                                                                       \
        if ((level) >= log_min_level)                                          \
            emit_log((c), (level), __VA_ARGS__);                               \
    } while (0)

static void emit_log(struct core *c, enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void emit_log(struct core *c, enum log_level level, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    c->env->ops->log(c->env, level, line);
}

/* ---- local writes (the storage worker applies them) -------------------- */

enum core_write_kind {
    CW_UPDATE, /* a coordinator's put/del: dvv_update with our actor */
    CW_MERGE   /* a replica write or repair: dvv_sync */
};

struct core_write {
    struct storage_op op;
    struct core *core;
    core_reply_fn fn;
    void *fn_arg;
    enum core_write_kind kind;
    struct dvv_arena arena;
    struct version_update up; /* CW_UPDATE (quorum/version.h) */
    struct version_merge mg;  /* CW_MERGE */
    const uint8_t *rec;       /* CW_MERGE: incoming record (in buf) */
    uint32_t rec_len;
    uint64_t max_record; /* 0 = no limit */
    char msg[160];       /* the error's detail, when apply set one */
    /* results (worker) */
    bool existed;
    uint32_t live;
    uint32_t lww_dropped;
    uint8_t *ctx_out;
    size_t ctx_out_len;
    uint8_t buf[];
};

/* Appends the context's tag for key (any thread: the key is read only).
 * Contexts are untagged when the core has no context key. */
static int ctx_seal(const struct core *c, const uint8_t *key, size_t key_len,
                    uint8_t **ctx, size_t *len)
{
    if (!c->ctx_tagged)
        return 0;
    uint8_t *p = realloc(*ctx, *len + PEER_AUTH_CTX_TAG_LEN);
    if (p == NULL)
        return -ENOMEM;
    peer_auth_ctx_tag(p + *len, c->ctx_key, key, key_len, p, *len);
    *ctx = p;
    *len += PEER_AUTH_CTX_TAG_LEN;
    return 0;
}

/* Checks a context received from a client and returns the length of its
 * untagged part in *len: only a context the cluster issued for this key
 * is accepted (a forged or another key's context could claim dots that
 * were never written here, and every write they cover would be lost). */
static int ctx_open(const struct core *c, const uint8_t *key, size_t key_len,
                    const uint8_t *ctx, uint32_t *len)
{
    if (!c->ctx_tagged)
        return 0;
    if (*len < PEER_AUTH_CTX_TAG_LEN)
        return RK_EBAD_CONTEXT;
    uint32_t n = *len - PEER_AUTH_CTX_TAG_LEN;
    if (!peer_auth_ctx_check(c->ctx_key, key, key_len, ctx, n, ctx + n))
        return RK_EBAD_CONTEXT;
    *len = n;
    return 0;
}

/* Worker thread: refuses an encoded record over max_record (*out freed). */
static int check_size(struct core_write *w, uint8_t **out, size_t len)
{
    if (w->max_record == 0 || len <= w->max_record)
        return 0;
    snprintf(w->msg, sizeof(w->msg),
             "the record would be %zu bytes, over max_record (%" PRIu64
             "): read the key and write back fewer or smaller siblings",
             len, w->max_record);
    free(*out);
    *out = NULL;
    return RK_ETOO_LARGE;
}

/* Worker thread: version a coordinator's write against the current record. */
static int apply_update(struct core_write *w, const struct dvv *local,
                        uint8_t **out, size_t *out_len)
{
    struct dvv next;
    struct dvv_vv joined;
    int err = version_update(&w->up, local, &w->arena, &next);

    w->existed = w->up.existed;
    w->live = w->up.live;
    w->lww_dropped = w->up.lww_dropped;
    snprintf(w->msg, sizeof(w->msg), "%s", w->up.msg);
    if (err != 0 || (err = dvv_join(&next, &w->arena, &joined)) != 0 ||
        (err = dvv_vv_encode(&joined, &w->ctx_out, &w->ctx_out_len)) != 0 ||
        (err = ctx_seal(w->core, w->buf, w->op.key_len, &w->ctx_out,
                        &w->ctx_out_len)) != 0 ||
        (err = dvv_encode(&next, out, out_len)) != 0 ||
        (err = check_size(w, out, *out_len)) != 0)
        return err;
    return STORAGE_APPLY_PUT;
}

/* Worker thread: merge a replicated record into the current one. */
static int apply_merge(struct core_write *w, const struct dvv *local,
                       uint8_t **out, size_t *out_len)
{
    struct dvv in, next;
    int err;

    if ((err = dvv_decode(w->rec, w->rec_len, &w->arena, &in)) != 0)
        return err == RK_ECORRUPT ? RK_EBAD_REQUEST : err;
    err = version_merge(&w->mg, local, &in, &w->arena, &next);
    w->live = w->mg.live;
    w->lww_dropped = w->mg.lww_dropped;
    snprintf(w->msg, sizeof(w->msg), "%s", w->mg.msg);
    if (err != 0)
        return err;
    if (!w->mg.changed)
        return STORAGE_APPLY_NOOP; /* nothing new: no write */
    if ((err = dvv_encode(&next, out, out_len)) != 0 ||
        (err = check_size(w, out, *out_len)) != 0)
        return err;
    return STORAGE_APPLY_PUT;
}

static int apply_op(struct storage_op *op, const uint8_t *old, size_t old_len,
                    uint8_t **out, size_t *out_len)
{
    struct core_write *w = op->arg;
    struct dvv local = {0};
    int err;

    free(w->ctx_out); /* storage may run apply again (storage.h) */
    w->ctx_out = NULL;
    w->ctx_out_len = 0;
    w->msg[0] = '\0';
    if (old != NULL && (err = dvv_decode(old, old_len, &w->arena, &local)))
        return err;
    if (w->kind == CW_UPDATE)
        return apply_update(w, &local, out, out_len);
    return apply_merge(w, &local, out, out_len);
}

/* Loop thread: the commit is durable per the fsync policy (or failed). */
static void write_done(struct storage_op *op)
{
    struct core_write *w = op->arg;
    struct core *c = w->core;
    struct core_reply rep = {.err = op->status,
                             .definite = !op->indefinite,
                             .msg = w->msg[0] != '\0' ? w->msg : op->msg,
                             .ctx = w->ctx_out,
                             .ctx_len = (uint32_t)w->ctx_out_len,
                             .existed = w->existed,
                             .rec = op->result,
                             .rec_len = (uint32_t)op->result_len};

    c->st.writes_pending--;
    if (op->status == RK_ESIBLING_LIMIT)
        c->st.sibling_limit++;
    if (op->status == RK_ECLOCK_SKEW)
        c->st.clock_skew_rejected++;
    if (op->status == RK_ETOO_LARGE && w->msg[0] != '\0') {
        c->st.record_too_large++;
        CORE_LOG(c, LOG_DEBUG, "write refused: %s", w->msg);
    }
    if (op->status == RK_EFORBIDDEN) {
        c->st.own_actor_refused++;
        CORE_LOG(c, LOG_WARN,
                 "refused a replicated record (%" PRIu32 "-byte key): %s",
                 op->key_len, w->msg);
    }
    if (op->status == 0) {
        c->st.lww_discarded += w->lww_dropped;
        if (w->live > c->st.max_siblings_seen)
            c->st.max_siblings_seen = w->live;
    } else if (w->kind == CW_MERGE) {
        /* A replica write answers its requester directly; a coordinator's
         * own write is counted when the coord answers (coord_reply). */
        c->st.errors++;
    }
    w->fn(w->fn_arg, &rep);
    free(w->ctx_out);
    dvv_arena_free(&w->arena);
    free(w);
}

/* Submits a local write. On error fn is not called. */
static int write_submit(struct core *c, enum core_write_kind kind,
                        const struct core_req *req, uint32_t partition,
                        core_reply_fn fn, void *arg)
{
    bool put = req->op == WIRE_OP_PUT || req->op == WIRE_OP_FPUT;
    size_t blen = kind == CW_MERGE ? req->rec_len : put ? req->value_len : 0;
    struct core_write *w = malloc(sizeof(*w) + req->key_len + blen);
    int err;

    if (w == NULL)
        return -ENOMEM;
    memset(w, 0, sizeof(*w));
    memcpy(w->buf, req->key, req->key_len);
    if (blen > 0)
        memcpy(w->buf + req->key_len, kind == CW_MERGE ? req->rec : req->value,
               blen);
    dvv_arena_init(&w->arena);
    w->core = c;
    w->fn = fn;
    w->fn_arg = arg;
    w->kind = kind;
    w->max_record = c->o.max_record;
    bool lww = c->o.conflict == CORE_CONFLICT_LWW;
    if (kind == CW_MERGE) {
        w->rec = w->buf + req->key_len;
        w->rec_len = (uint32_t)blen;
        w->mg.actor = c->o.actor;
        w->mg.lww = lww;
        if (lww)
            w->mg.max_ts =
                version_max_ts(c->env->ops->wall_ms(c->env), c->o.max_drift_ms);
    } else {
        bool overwrite = (req->flags & CORE_F_OVERWRITE) != 0;
        w->up.actor = c->o.actor;
        w->up.lww = lww;
        w->up.max_siblings = c->o.max_siblings;
        w->up.overwrite = overwrite;
        w->up.val = (struct dvv_val){
            .data = w->buf + req->key_len,
            .len = (uint32_t)blen,
            .flags = (put ? 0 : DVV_TOMBSTONE) | (overwrite ? DVV_LWW : 0),
            .ts = hlc_now(&c->hlc, c->env->ops->wall_ms(c->env))};
        uint32_t ctx_len = req->ctx_len;
        if (!overwrite && req->ctx != NULL &&
            (ctx_open(c, req->key, req->key_len, req->ctx, &ctx_len) != 0 ||
             dvv_vv_decode(req->ctx, ctx_len, &w->arena, &w->up.ctx) != 0)) {
            dvv_arena_free(&w->arena);
            free(w);
            return RK_EBAD_CONTEXT;
        }
    }
    w->op.partition = partition;
    w->op.key = w->buf;
    w->op.key_len = req->key_len;
    w->op.apply = apply_op;
    w->op.done = write_done;
    w->op.arg = w;
    w->op.size = sizeof(*w) + req->key_len + blen;
    err = c->env->ops->store_submit(c->env, &w->op);
    if (err != 0) {
        dvv_arena_free(&w->arena);
        free(w);
        return err;
    }
    c->st.writes_pending++;
    return 0;
}

/* ---- helpers --------------------------------------------------------------
 */

static void set_view(struct core *c, const struct core_view *v);

static void fail_reply(struct core *c, core_reply_fn fn, void *arg, int err,
                       bool definite, const char *msg)
{
    struct core_reply rep = {.err = err, .definite = definite, .msg = msg};
    c->st.errors++;
    fn(arg, &rep);
}

static uint32_t key_partition(const struct core *c, const struct core_req *r)
{
    return ring_partition(r->key, r->key_len, c->o.partitions);
}

/* The key's replicas in cur (members); returns how many. */
static uint32_t replica_list(const struct core *c, uint32_t part, uint32_t *out)
{
    uint32_t idx[QUORUM_MAX_N];
    if (c->cur == NULL) {
        if (c->no_ring)
            return 0;
        out[0] = c->o.self;
        return 1;
    }
    int n = ring_pref_list(c->cur, part, c->nval, idx);
    for (int i = 0; i < n; i++)
        out[i] = c->cur_slot[idx[i]];
    return n > 0 ? (uint32_t)n : 0;
}

/* A write's replicas: cur's, then next's that are not in cur (while a
 * membership change is pending). *extra is how many acks beyond w the
 * write needs so that w of them land in cur and w in next, whichever
 * members answer: max(|next \ cur|, |cur \ next|) (docs/design.md,
 * "Membership"). */
static uint32_t write_list(const struct core *c, uint32_t part, uint32_t *out,
                           uint32_t *extra)
{
    uint32_t n = replica_list(c, part, out), idx[QUORUM_MAX_N];
    *extra = 0;
    if (c->next == NULL || n == 0)
        return n;
    uint32_t nv =
        c->o.n < ring_members(c->next) ? c->o.n : ring_members(c->next);
    if (nv > QUORUM_MAX_N / 2)
        nv = QUORUM_MAX_N / 2;
    int nn = ring_pref_list(c->next, part, nv, idx);
    uint32_t added = 0, shared = 0, ncur = n;
    for (int i = 0; i < nn; i++) {
        uint32_t s = c->next_slot[idx[i]];
        bool found = false;
        for (uint32_t j = 0; j < ncur; j++)
            found = found || out[j] == s;
        if (found) {
            shared++;
        } else if (n < QUORUM_MAX_N) {
            out[n++] = s;
            added++;
        }
    }
    uint32_t removed = ncur - shared;
    *extra = added > removed ? added : removed;
    return n;
}

static bool count_up(struct core *c, uint32_t member)
{
    if (member == c->o.self)
        return true;
    if (member == CORE_NO_MEMBER ||
        (c->down != NULL && c->down(c->down_arg, member)))
        return false;
    return c->env->ops->peer_up(c->env, member);
}

/* Asks the env which of co's replicas are up (up[0..n), self counted as
 * up) and plans from that. */
static void plan_replicas(struct core *c, const uint32_t *replicas, uint32_t n,
                          bool *up, struct decide_plan *plan)
{
    for (uint32_t i = 0; i < n; i++)
        up[i] = count_up(c, replicas[i]);
    decide_plan(replicas, n, c->o.self, up, plan);
}

static uint64_t draw_random(void *arg)
{
    struct core *c = arg;
    return c->env->ops->random64(c->env);
}

/* Values and context of a record, handed to fn as a get reply. */
static int reply_record(struct core *c, const uint8_t *key, size_t key_len,
                        const struct dvv *d, struct dvv_arena *a,
                        core_reply_fn fn, void *arg)
{
    struct core_reply rep = {0};
    struct core_value *vals = NULL;
    struct dvv_vv vv;
    uint8_t *ctx = NULL;
    size_t ctx_len = 0;
    uint32_t live = dvv_live(d);
    int err;

    if (live > 0 && (vals = dvv_arena_alloc(a, live * sizeof(*vals))) == NULL)
        return -ENOMEM;
    for (uint32_t i = 0; i < d->n; i++) {
        for (uint32_t j = 0; j < d->e[i].nvals; j++) {
            const struct dvv_val *v = &d->e[i].vals[j];
            if (v->flags & DVV_TOMBSTONE)
                continue;
            vals[rep.nvalues++] = (struct core_value){.data = v->data,
                                                      .len = v->len,
                                                      .ts = v->ts,
                                                      .actor = d->e[i].actor};
        }
    }
    if ((err = dvv_join(d, a, &vv)) != 0 ||
        (err = dvv_vv_encode(&vv, &ctx, &ctx_len)) != 0 ||
        (err = ctx_seal(c, key, key_len, &ctx, &ctx_len)) != 0) {
        free(ctx);
        return err;
    }
    rep.values = vals;
    rep.ctx = ctx;
    rep.ctx_len = (uint32_t)ctx_len;
    if (rep.nvalues == 0)
        c->st.not_found++;
    fn(arg, &rep);
    free(ctx);
    return 0;
}

/* ---- local reads (get --local, rget, and the coordinator's own copy) ---- */

struct core_read {
    struct core *core;
    core_reply_fn fn;
    void *arg;
    bool raw;           /* rget: the record bytes; else values + context */
    const uint8_t *key; /* for the context's tag */
    size_t key_len;
    int err;
};

static int local_read_cb(void *arg, const uint8_t *val, size_t len)
{
    struct core_read *rd = arg;
    struct core *c = rd->core;
    struct dvv_arena a;
    struct dvv d = {0};
    int err = 0;

    if (rd->raw) {
        struct core_reply rep = {.rec = val, .rec_len = (uint32_t)len};
        rd->fn(rd->arg, &rep);
        return 0;
    }
    dvv_arena_init(&a);
    if (val != NULL && (err = dvv_decode(val, len, &a, &d)) != 0)
        CORE_LOG(c, LOG_ERROR, "stored record fails to decode (%zu bytes): %s",
                 len, rk_err_msg(err));
    if (err == 0)
        err = reply_record(c, rd->key, rd->key_len, &d, &a, rd->fn, rd->arg);
    dvv_arena_free(&a);
    if (err != 0)
        fail_reply(c, rd->fn, rd->arg, err, true, NULL);
    return 0;
}

static void read_local(struct core *c, const struct core_req *req, bool raw,
                       core_reply_fn fn, void *arg)
{
    struct core_read rd = {.core = c,
                           .fn = fn,
                           .arg = arg,
                           .raw = raw,
                           .key = req->key,
                           .key_len = req->key_len};
    int err = c->env->ops->store_get(c->env, key_partition(c, req), req->key,
                                     req->key_len, local_read_cb, &rd);
    if (err != 0) /* the callback did not run */
        fail_reply(c, fn, arg, err, true, NULL);
}

/* ---- coordination ---------------------------------------------------------
 */

enum coord_kind { CO_GET, CO_PUT, CO_FWD };

struct coord_slot {
    struct coord *co;
    uint32_t i; /* replica position */
};

struct coord {
    struct core *core;
    struct coord *prev, *next; /* core->active */
    enum coord_kind kind;
    core_reply_fn fn;
    void *arg;
    bool replied;
    int refs;
    struct env_timer *timer;
    uint32_t partition;
    uint32_t nrep;
    uint32_t replicas[QUORUM_MAX_N];
    uint32_t self_i; /* put: this node's position in replicas */
    uint32_t extra;  /* put: acks needed beyond w (write_list) */
    struct coord_slot slots[QUORUM_MAX_N];
    struct quorum_put put;
    struct quorum_get get;
    uint8_t *ctx; /* put: context of the written version */
    size_t ctx_len;
    bool existed;
    uint8_t *key;
    uint32_t key_len;
};

static void coord_release(struct coord *co)
{
    struct core *c = co->core;
    if (--co->refs > 0)
        return;
    if (co->prev)
        co->prev->next = co->next;
    else
        c->active = co->next;
    if (co->next)
        co->next->prev = co->prev;
    c->st.coordinating--;
    if (co->kind == CO_GET)
        quorum_get_free(&co->get);
    free(co->ctx);
    free(co);
}

static struct coord *coord_new(struct core *c, enum coord_kind kind,
                               const struct core_req *req, core_reply_fn fn,
                               void *arg)
{
    struct coord *co = calloc(1, sizeof(*co) + req->key_len);
    if (co == NULL)
        return NULL;
    co->core = c;
    co->kind = kind;
    co->fn = fn;
    co->arg = arg;
    co->refs = 1; /* the caller's, released when it is done setting up */
    co->key = (uint8_t *)(co + 1);
    memcpy(co->key, req->key, req->key_len);
    co->key_len = req->key_len;
    co->partition = key_partition(c, req);
    if (kind == CO_GET)
        co->nrep = replica_list(c, co->partition, co->replicas);
    else
        co->nrep = write_list(c, co->partition, co->replicas, &co->extra);
    for (uint32_t i = 0; i < co->nrep; i++)
        co->slots[i] = (struct coord_slot){co, i};
    co->next = c->active;
    if (c->active)
        c->active->prev = co;
    c->active = co;
    c->st.coordinating++;
    return co;
}

/* Replica fanout "exact": narrows co's replicas to k of those up, chosen
 * uniformly (quorum/decide.h), with replica index `force` always in
 * (DECIDE_NO_TARGET: none). Returns 0 or RK_EUNAVAILABLE. */
static int coord_narrow(struct coord *co, const bool *up, uint32_t k,
                        uint32_t force)
{
    uint32_t idx[QUORUM_MAX_N];
    int got = decide_pick(up, co->nrep, k, force, draw_random, co->core, idx);
    if (got < 0)
        return got;
    for (uint32_t j = 0; j < (uint32_t)got; j++) {
        if (idx[j] == force)
            co->self_i = j;
        co->replicas[j] = co->replicas[idx[j]];
    }
    co->nrep = (uint32_t)got;
    return 0;
}

static void coord_reply(struct coord *co, const struct core_reply *rep)
{
    if (co->replied)
        return;
    co->replied = true;
    if (rep->err != 0)
        co->core->st.errors++;
    co->fn(co->arg, rep);
}

static void coord_fail(struct coord *co, int err, bool definite,
                       const char *msg, uint32_t acks)
{
    struct core_reply rep = {
        .err = err, .definite = definite, .msg = msg, .acks = acks};
    coord_reply(co, &rep);
}

/* Answers with a failure quorum/decide.h classified, counting it. */
static void coord_fail_outcome(struct coord *co, const struct decide_outcome *o)
{
    if (o->err == RK_ETIMEOUT)
        co->core->st.timeouts++;
    else if (o->err == RK_EUNAVAILABLE)
        co->core->st.unavailable++;
    coord_fail(co, o->err, o->definite, o->msg, o->acks);
}

static void coord_timer_fired(void *arg);

static void coord_arm(struct coord *co, uint64_t ms)
{
    struct core *c = co->core;
    if (c->shutting_down)
        return; /* the caller treats a missing timer as already expired */
    co->timer = c->env->ops->timer_start(c->env, ms, coord_timer_fired, co);
    if (co->timer != NULL)
        co->refs++;
}

/* Cancels the timer and drops its reference. Callers always hold another
 * reference (a peer reply, the local write, the setup), so this never frees
 * the coord. */
static void coord_disarm(struct coord *co)
{
    if (co->timer == NULL)
        return;
    co->core->env->ops->timer_cancel(co->core->env, co->timer);
    co->timer = NULL;
    assert(co->refs > 1);
    co->refs--;
}

/* -- get -- */

static void coord_get_repair(struct coord *co);

/* A get event happened: answer if decided now, repair when finished. */
static void coord_get_progress(struct coord *co, bool decided)
{
    struct core *c = co->core;
    if (decided) {
        if (co->get.state == QUORUM_OK) {
            struct dvv_arena a;
            dvv_arena_init(&a);
            int err = reply_record(c, co->key, co->key_len, &co->get.merged, &a,
                                   co->fn, co->arg);
            dvv_arena_free(&a);
            if (err != 0) /* the callback did not run */
                coord_fail(co, err, true, NULL, 0);
            else
                co->replied = true;
        } else {
            struct decide_outcome o;
            decide_get_failed(&co->get, &o);
            coord_fail_outcome(co, &o);
        }
    }
    if (quorum_get_finished(&co->get) && co->timer != NULL)
        coord_disarm(co);
    if (quorum_get_finished(&co->get))
        coord_get_repair(co);
}

static void coord_get_local(struct core *c, struct coord *co, uint32_t i);

static void coord_get_peer_reply(void *arg, int err,
                                 const struct wire_resp *resp)
{
    struct coord_slot *sl = arg;
    struct coord *co = sl->co;
    bool ok = err == 0 && resp->err == 0;
    bool decided = quorum_get_reply(&co->get, sl->i, ok, ok ? resp->rec : NULL,
                                    ok ? resp->rec_len : 0);
    coord_get_progress(co, decided);
    coord_release(co);
}

static void coord_get_local_reply(void *arg, const struct core_reply *rep)
{
    struct coord_slot *sl = arg;
    struct coord *co = sl->co;
    bool decided = quorum_get_reply(&co->get, sl->i, rep->err == 0, rep->rec,
                                    rep->rec_len);
    coord_get_progress(co, decided);
}

static void coord_get_local(struct core *c, struct coord *co, uint32_t i)
{
    struct core_req req = {.key = co->key, .key_len = co->key_len};
    read_local(c, &req, true, coord_get_local_reply, &co->slots[i]);
}

static void coord_get(struct core *c, const struct core_req *req,
                      core_reply_fn fn, void *arg)
{
    struct coord *co;
    unsigned r = req->r ? req->r : c->r_def;
    struct decide_plan plan;
    bool up[QUORUM_MAX_N];
    int err;

    c->st.gets++;
    co = coord_new(c, CO_GET, req, fn, arg);
    if (co == NULL) {
        fail_reply(c, fn, arg, -ENOMEM, true, NULL);
        return;
    }
    if (co->nrep == 0) {
        c->st.unavailable++;
        coord_fail(co, RK_EUNAVAILABLE, true, "this node is not in a ring yet",
                   0);
        co->get.finished = true;
        coord_release(co);
        return;
    }
    plan_replicas(c, co->replicas, co->nrep, up, &plan);
    /* exact: ask r replicas only; too few up is refused below */
    if (c->o.exact_fanout && quorum_check(co->nrep, r) == 0 && plan.up >= r)
        coord_narrow(co, up, r, DECIDE_NO_TARGET);
    if ((err = quorum_get_init(&co->get, co->nrep, r,
                               c->o.conflict == CORE_CONFLICT_LWW)) != 0) {
        coord_fail(co, err, true, NULL, 0);
        coord_release(co);
        return;
    }
    if (plan.up < r) {
        c->st.unavailable++;
        coord_fail(co, RK_EUNAVAILABLE, true,
                   "fewer than r replicas are reachable", 0);
        co->get.finished = true;
        coord_release(co);
        return;
    }
    coord_arm(co, c->o.timeout_ms);
    for (uint32_t i = 0; i < co->nrep && !co->get.finished; i++) {
        uint32_t m = co->replicas[i];
        if (m == c->o.self) {
            coord_get_local(c, co, i);
            continue;
        }
        struct wire_req q = {
            .op = WIRE_OP_RGET, .key = co->key, .key_len = co->key_len};
        err = c->env->ops->peer_request(c->env, m, &q, coord_get_peer_reply,
                                        &co->slots[i]);
        if (err == 0) {
            co->refs++;
        } else {
            bool decided = quorum_get_reply(&co->get, i, false, NULL, 0);
            coord_get_progress(co, decided);
        }
    }
    if (co->timer == NULL && !co->get.finished) {
        /* Shutting down: no timer, give up now. */
        bool decided = quorum_get_timeout(&co->get);
        coord_get_progress(co, decided);
    }
    coord_release(co);
}

static void repair_reply(void *arg, int err, const struct wire_resp *resp)
{
    struct core *c = arg;
    if (err != 0 || resp->err != 0)
        c->st.read_repair_failures++;
}

static void repair_local_done(void *arg, const struct core_reply *rep)
{
    struct core *c = arg;
    if (rep->err != 0)
        c->st.read_repair_failures++;
}

/* Sends the final merge to every replica whose copy differs. Runs once,
 * when the get is finished; never touches the client's answer. */
static void coord_get_repair(struct coord *co)
{
    struct core *c = co->core;
    uint32_t mask = quorum_get_repairs(&co->get);
    uint8_t *rec = NULL;
    size_t rec_len = 0;

    co->get.ok_mask = 0; /* repair at most once */
    if (mask == 0 || c->shutting_down || c->o.no_read_repair)
        return;
    if (dvv_encode(&co->get.merged, &rec, &rec_len) != 0)
        return;
    if (c->o.max_record != 0 && rec_len > c->o.max_record) {
        /* Replicas would refuse it: the merge stays unrepaired until a
         * client resolves the siblings. */
        c->st.record_too_large++;
        c->st.read_repair_failures++;
        free(rec);
        return;
    }
    for (uint32_t i = 0; i < co->nrep; i++) {
        if (!(mask & (1u << i)))
            continue;
        uint32_t m = co->replicas[i];
        struct core_req req = {.op = WIRE_OP_RPUT,
                               .key = co->key,
                               .key_len = co->key_len,
                               .rec = rec,
                               .rec_len = (uint32_t)rec_len};
        int err;
        c->st.read_repairs++;
        if (m == c->o.self) {
            err = write_submit(c, CW_MERGE, &req, co->partition,
                               repair_local_done, c);
        } else {
            struct wire_req q = {.op = WIRE_OP_RPUT,
                                 .key = co->key,
                                 .key_len = co->key_len,
                                 .rec = rec,
                                 .rec_len = (uint32_t)rec_len};
            err = c->env->ops->peer_request(c->env, m, &q, repair_reply, c);
        }
        if (err != 0)
            c->st.read_repair_failures++;
    }
    free(rec);
}

/* -- put -- */

static void coord_put_decided(struct coord *co)
{
    if (co->put.state == QUORUM_OK) {
        struct core_reply rep = {.ctx = co->ctx,
                                 .ctx_len = (uint32_t)co->ctx_len,
                                 .existed = co->existed};
        coord_reply(co, &rep);
        return;
    }
    char msg[128];
    struct decide_outcome o;
    decide_put_failed(&co->put, msg, sizeof(msg), &o);
    coord_fail_outcome(co, &o);
}

static void coord_put_event(struct coord *co, bool decided)
{
    if (decided)
        coord_put_decided(co);
    if (co->put.replied == (1u << co->nrep) - 1)
        coord_disarm(co);
}

static void coord_put_peer_reply(void *arg, int err,
                                 const struct wire_resp *resp)
{
    struct coord_slot *sl = arg;
    struct coord *co = sl->co;
    bool ok = err == 0 && resp->err == 0;
    coord_put_event(co, quorum_put_reply(&co->put, sl->i, ok));
    coord_release(co);
}

/* The coordinator's own commit is durable: replicate the record. */
static void coord_put_local_done(void *arg, const struct core_reply *rep)
{
    struct coord *co = arg;
    struct core *c = co->core;

    if (rep->err != 0) {
        /* Nothing was applied anywhere, unless the local commit failed in
         * a way that may have reached the disk (indefinite). */
        coord_fail(co, rep->err, rep->definite, rep->msg, 0);
        coord_release(co);
        return;
    }
    if (rep->ctx_len > 0 && (co->ctx = malloc(rep->ctx_len)) != NULL) {
        memcpy(co->ctx, rep->ctx, rep->ctx_len);
        co->ctx_len = rep->ctx_len;
    }
    co->existed = rep->existed;
    uint32_t self_i = co->self_i;
    coord_arm(co, c->o.timeout_ms);
    coord_put_event(co, quorum_put_reply(&co->put, self_i, true));
    /* The coordinator's clock, past every timestamp in the record. */
    uint64_t ts = hlc_now(&c->hlc, c->env->ops->wall_ms(c->env));
    for (uint32_t i = 0; i < co->nrep; i++) {
        if (i == self_i)
            continue;
        struct wire_req q = {.op = WIRE_OP_RPUT,
                             .key = co->key,
                             .key_len = co->key_len,
                             .rec = rep->rec,
                             .rec_len = rep->rec_len,
                             .ts = ts};
        int err = c->env->ops->peer_request(
            c->env, co->replicas[i], &q, coord_put_peer_reply, &co->slots[i]);
        if (err == 0)
            co->refs++;
        else
            coord_put_event(co, quorum_put_reply(&co->put, i, false));
    }
    if (co->timer == NULL && co->put.state == QUORUM_PENDING)
        coord_put_event(co, quorum_put_timeout(&co->put)); /* shutting down */
    coord_release(co);
}

static void coord_forward(struct core *c, const struct core_req *req,
                          uint32_t target, core_reply_fn fn, void *arg);

/* True the first time (from, inc, seq) is seen (quorum/fwd_window.h). */
static bool fwd_first(struct core *c, const struct core_req *req)
{
    if (req->fwd_from >= CORE_MAX_MEMBERS || c->fwd_seen == NULL)
        return true; /* not stamped: nothing to compare */
    return fwd_window_first(&c->fwd_seen[req->fwd_from], req->fwd_inc,
                            req->fwd_seq);
}

static void coord_put(struct core *c, const struct core_req *req,
                      core_reply_fn fn, void *arg)
{
    struct coord *co;
    unsigned w = req->w ? req->w : c->w_def;
    struct decide_plan plan;
    bool up[QUORUM_MAX_N];
    uint32_t pick;
    int err;

    if (req->forwarded && !fwd_first(c, req)) {
        /* A copy of a forward already handled: applying it again could make
         * a write the client was told failed definitely appear after all
         * (found by the simulator, docs/simulation.md). The first copy's
         * answer stands; this one says only "maybe". */
        c->st.duplicate_forwards++;
        fail_reply(c, fn, arg, RK_EPROTO, false,
                   "duplicate forwarded request; the first copy's outcome "
                   "stands");
        return;
    }
    co = coord_new(c, CO_PUT, req, fn, arg);
    if (co == NULL) {
        fail_reply(c, fn, arg, -ENOMEM, true, NULL);
        return;
    }
    if (co->nrep == 0) {
        c->st.unavailable++;
        coord_fail(co, RK_EUNAVAILABLE, true,
                   "this node is not in a ring yet; nothing was written", 0);
        coord_release(co);
        return;
    }
    plan_replicas(c, co->replicas, co->nrep, up, &plan);
    if (w > 0 && w <= c->nval)
        w += co->extra; /* a membership change is pending */
    if ((err = quorum_put_init(&co->put, co->nrep, w)) != 0) {
        coord_fail(co, err, true, NULL, 0);
        coord_release(co);
        return;
    }
    /* exact: the write set is w replicas chosen uniformly, coordinated by
     * one of them: a uniform coordinator here, w - 1 others around it on
     * the coordinator (quorum/decide.h). Forwarded: we are it. */
    uint32_t target = plan.target;
    if (c->o.exact_fanout && !req->forwarded &&
        decide_pick(up, co->nrep, 1, DECIDE_NO_TARGET, draw_random, c, &pick) ==
            1)
        target = co->replicas[pick];
    if (!plan.mine || (c->o.exact_fanout && !req->forwarded &&
                       target != c->o.self && plan.up >= w)) {
        coord_release(co);
        if (req->forwarded) {
            fail_reply(c, fn, arg, RK_EUNAVAILABLE, true,
                       "forwarded to a node that is not a replica");
            return;
        }
        coord_forward(c, req, target, fn, arg);
        return;
    }
    co->self_i = plan.self_i;
    if (plan.up < w) {
        c->st.unavailable++;
        coord_fail(co, RK_EUNAVAILABLE, true,
                   "fewer than w replicas are reachable; nothing was written",
                   0);
        coord_release(co);
        return;
    }
    if (c->o.exact_fanout) {
        /* plan.up >= w: the pick cannot fail */
        coord_narrow(co, up, w, plan.self_i);
        quorum_put_init(&co->put, co->nrep, w);
    }
    /* The local write holds the caller's reference until it is done. */
    err = write_submit(c, CW_UPDATE, req, co->partition, coord_put_local_done,
                       co);
    if (err != 0) {
        coord_fail(co, err, true, NULL, 0);
        coord_release(co);
    }
}

/* -- forward -- */

static void coord_fwd_reply(void *arg, int err, const struct wire_resp *resp)
{
    struct coord *co = arg;
    struct decide_outcome o;
    if (!decide_fwd_reply(err, resp, &o)) {
        coord_fail(co, o.err, o.definite, o.msg, o.acks);
    } else {
        struct core_reply rep = {.ctx = resp->ctx,
                                 .ctx_len = resp->ctx_len,
                                 .existed = resp->existed};
        coord_reply(co, &rep);
    }
    coord_disarm(co);
    coord_release(co);
}

/* Forwards a put/del to replica target (a member index, or
 * DECIDE_NO_TARGET: none is reachable) to coordinate. */
static void coord_forward(struct core *c, const struct core_req *req,
                          uint32_t target, core_reply_fn fn, void *arg)
{
    struct coord *co = coord_new(c, CO_FWD, req, fn, arg);
    int err;

    if (co == NULL) {
        fail_reply(c, fn, arg, -ENOMEM, true, NULL);
        return;
    }
    if (target == DECIDE_NO_TARGET) {
        c->st.unavailable++;
        coord_fail(co, RK_EUNAVAILABLE, true, "no replica is reachable", 0);
        coord_release(co);
        return;
    }
    bool put = req->op == WIRE_OP_PUT || req->op == WIRE_OP_FPUT;
    struct wire_req q = {
        .op = put ? WIRE_OP_FPUT : WIRE_OP_FDEL,
        .key = req->key,
        .key_len = req->key_len,
        .value = req->value,
        .value_len = req->value_len,
        .ctx = req->ctx,
        .ctx_len = req->ctx_len,
        .w = req->w,
        .flags = (req->flags & CORE_F_OVERWRITE) ? WIRE_F_OVERWRITE : 0,
        .from = c->o.self,
        .inc = c->o.incarnation,
        .seq = ++c->fwd_seq};
    c->st.forwarded++;
    err = c->env->ops->peer_request(c->env, target, &q, coord_fwd_reply, co);
    if (err == RK_ETOO_LARGE) {
        coord_fail(co, RK_ETOO_LARGE, true,
                   "the request is too large to forward to a replica (over "
                   "max_frame); nothing was written",
                   0);
        coord_release(co);
        return;
    }
    if (err != 0) {
        coord_fail(co, RK_EUNAVAILABLE, true, "no replica is reachable", 0);
        coord_release(co);
        return;
    }
    co->refs++;
    coord_arm(co, c->o.timeout_ms + CORE_FWD_SLACK_MS);
    coord_release(co);
}

static void coord_timer_fired(void *arg)
{
    struct coord *co = arg;
    co->timer = NULL;
    switch (co->kind) {
    case CO_GET:
        coord_get_progress(co, quorum_get_timeout(&co->get));
        break;
    case CO_PUT:
        if (quorum_put_timeout(&co->put))
            coord_put_decided(co);
        break;
    case CO_FWD:
        co->core->st.timeouts++;
        coord_fail(co, RK_ETIMEOUT, false,
                   "the coordinating replica did not answer in time; the "
                   "write may have been applied",
                   0);
        break;
    }
    coord_release(co);
}

/* ---- replica side ---------------------------------------------------------
 */

static void rput_op(struct core *c, const struct core_req *req,
                    core_reply_fn fn, void *arg)
{
    uint64_t wall = c->env->ops->wall_ms(c->env);
    c->st.replica_puts++;
    if (req->ts != 0 &&
        hlc_observe(&c->hlc, req->ts, wall, c->o.max_drift_ms) != 0) {
        /* A timestamp from too far in the future: under last-write-wins it
         * would beat every honest write for that long. */
        c->st.clock_skew_rejected++;
        if (c->o.conflict == CORE_CONFLICT_LWW) {
            CORE_LOG(c, LOG_WARN,
                     "refused a replicated write stamped %" PRIu64
                     " ms ahead of this clock",
                     hlc_physical_ms(req->ts) - wall);
            fail_reply(c, fn, arg, RK_ECLOCK_SKEW, true,
                       "write timestamp too far in the future");
            return;
        }
    }
    int err = write_submit(c, CW_MERGE, req, key_partition(c, req), fn, arg);
    if (err != 0)
        fail_reply(c, fn, arg, err, true, NULL);
}

/* ---- public ----------------------------------------------------------------
 */

struct core *core_create(struct env *env, const struct core_opts *o)
{
    struct core *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->env = env;
    c->o = *o;
    c->o.ctx_key = NULL; /* copied below, not borrowed */
    if (o->ctx_key != NULL) {
        memcpy(c->ctx_key, o->ctx_key, sizeof(c->ctx_key));
        c->ctx_tagged = true;
    }
    if (c->o.max_siblings == 0)
        c->o.max_siblings = CORE_DEFAULT_MAX_SIBLINGS;
    if (c->o.n == 0)
        c->o.n = 3;
    if (c->o.r == 0)
        c->o.r = 2;
    if (c->o.w == 0)
        c->o.w = 2;
    if (c->o.timeout_ms == 0)
        c->o.timeout_ms = 5000;
    if (c->o.max_drift_ms == 0)
        c->o.max_drift_ms = 60000;
    if (c->o.incarnation == 0)
        c->o.incarnation = env->ops->random64(env) | 1;
    c->fwd_seen = calloc(CORE_MAX_MEMBERS, sizeof(*c->fwd_seen));
    c->members = calloc(RING_MAX_NODES, sizeof(*c->members));
    if (c->fwd_seen == NULL || c->members == NULL) {
        free(c->fwd_seen);
        free(c->members);
        free(c);
        return NULL;
    }
    /* The static placement: ring indices are the env's member numbers. */
    struct core_view v = {.cur = o->ring, .self = o->self};
    uint32_t ident[RING_MAX_NODES];
    for (uint32_t i = 0; i < RING_MAX_NODES; i++)
        ident[i] = i;
    v.cur_slot = ident;
    v.members = o->members;
    c->no_ring = false;
    set_view(c, &v);
    return c;
}

void core_destroy(struct core *c)
{
    if (c == NULL)
        return;
    free(c->fwd_seen);
    free(c->members);
    sodium_memzero(c->ctx_key, sizeof(c->ctx_key));
    free(c);
}

void core_reply_to_wire(const struct core_reply *rep, uint64_t id,
                        enum wire_op op, struct wire_value *vals,
                        struct wire_resp *out)
{
    *out = (struct wire_resp){.id = id,
                              .op = op,
                              .err = rep->err,
                              .definite = rep->definite,
                              .msg = rep->msg,
                              .ctx = rep->ctx,
                              .ctx_len = rep->ctx_len,
                              .acks = rep->acks,
                              .existed = rep->existed};
    if (rep->err != 0)
        return;
    if (op == WIRE_OP_GET && rep->nvalues > WIRE_MAX_VALUES) {
        out->err = RK_ESIBLING_LIMIT;
        out->definite = true;
        out->msg = "more siblings than one reply carries";
    } else if (op == WIRE_OP_GET) {
        for (uint32_t i = 0; i < rep->nvalues; i++)
            vals[i] =
                (struct wire_value){rep->values[i].data, rep->values[i].len};
        out->values = vals;
        out->nvalues = rep->nvalues;
    } else if (op == WIRE_OP_RGET) {
        out->rec = rep->rec;
        out->rec_len = rep->rec_len;
    }
}

void core_req_from_wire(const struct wire_req *w, struct core_req *out)
{
    *out = (struct core_req){
        .op = w->op,
        .key = w->key,
        .key_len = w->key_len,
        .value = w->value,
        .value_len = w->value_len,
        .ctx = w->ctx,
        .ctx_len = w->ctx_len,
        .r = w->r,
        .w = w->w,
        .flags = (w->flags & WIRE_F_OVERWRITE) ? CORE_F_OVERWRITE : 0,
        .local = w->local,
        .forwarded = w->op == WIRE_OP_FPUT || w->op == WIRE_OP_FDEL,
        .rec = w->rec,
        .rec_len = w->rec_len,
        .ts = w->ts,
        .fwd_from = w->from,
        .fwd_inc = w->inc,
        .fwd_seq = w->seq};
}

void core_shutdown(struct core *c)
{
    c->shutting_down = true;
    /* Fire every timer now: requests waiting on replicas are answered and
     * their coords go once their peer requests fail (peers_close). */
    struct coord *co = c->active;
    while (co != NULL) {
        struct coord *next = co->next;
        if (co->timer != NULL) {
            /* Cancelled, the timer will not fire: fire it by hand, which
             * also releases the timer's reference. */
            c->env->ops->timer_cancel(c->env, co->timer);
            coord_timer_fired(co);
        }
        co = next;
    }
}

void core_get_stats(const struct core *c, struct core_stats *st)
{
    *st = c->st;
}

uint32_t core_nval(const struct core *c)
{
    return c->nval;
}

uint32_t core_members(struct core *c, struct wire_member *out, uint32_t cap)
{
    /* Members in cur's order (the indices core_ring_pref uses). A node
     * alone (no ring) reports itself; its id may be unknown (""). */
    uint32_t n = c->cur != NULL ? c->nmembers : (c->no_ring ? 0 : 1);
    for (uint32_t i = 0; i < n && i < cap; i++) {
        uint32_t slot = c->cur != NULL ? c->cur_slot[i] : c->o.self;
        out[i].id = c->members[i].id;
        out[i].addr = c->members[i].addr;
        out[i].self = slot == c->o.self;
        out[i].up = count_up(c, slot);
    }
    return n;
}

void core_ring_pref(const struct core *c, uint16_t *out)
{
    uint32_t reps[QUORUM_MAX_N];
    for (uint32_t p = 0; p < c->o.partitions; p++) {
        int n = c->cur != NULL ? ring_pref_list(c->cur, p, c->nval, reps) : 1;
        if (c->cur == NULL)
            reps[0] = 0;
        for (uint32_t j = 0; j < c->nval; j++)
            out[p * c->nval + j] =
                (int)j < n ? (uint16_t)reps[j] : (uint16_t)WIRE_NO_MEMBER;
    }
}

static void set_view(struct core *c, const struct core_view *v)
{
    c->cur = v->cur;
    c->next = v->next;
    c->o.self = v->self;
    c->nmembers = v->cur ? ring_members(v->cur) : 1;
    for (uint32_t i = 0; v->cur != NULL && i < c->nmembers; i++) {
        c->cur_slot[i] = v->cur_slot ? v->cur_slot[i] : i;
        if (v->members != NULL)
            c->members[i] = v->members[i];
        else
            snprintf(c->members[i].id, sizeof(c->members[i].id), "%s",
                     ring_member(v->cur, i));
    }
    if (v->cur == NULL && v->members != NULL)
        c->members[0] = v->members[0];
    for (uint32_t i = 0; v->next != NULL && i < ring_members(v->next); i++)
        c->next_slot[i] = v->next_slot ? v->next_slot[i] : i;
    if (v->nval > 0 && v->nval <= QUORUM_MAX_N / 2)
        c->o.n = (uint8_t)v->nval;
    c->nval = c->o.n < c->nmembers ? c->o.n : c->nmembers;
    if (c->nval > QUORUM_MAX_N / 2)
        c->nval = QUORUM_MAX_N / 2;
    c->r_def = (uint8_t)(c->o.r < c->nval ? c->o.r : c->nval);
    c->w_def = (uint8_t)(c->o.w < c->nval ? c->o.w : c->nval);
}

void core_set_view(struct core *c, const struct core_view *v)
{
    c->no_ring = v->cur == NULL;
    set_view(c, v);
}

void core_set_actor(struct core *c, uint64_t actor)
{
    c->o.actor = actor;
}

void core_set_liveness(struct core *c, core_down_fn down, void *arg)
{
    c->down = down;
    c->down_arg = arg;
}

void core_request(struct core *c, const struct core_req *req, core_reply_fn fn,
                  void *arg)
{
    if (c->shutting_down) {
        fail_reply(c, fn, arg, RK_ESHUTTING_DOWN, true, NULL);
        return;
    }
    switch (req->op) {
    case WIRE_OP_GET:
        if (req->local) {
            c->st.gets++;
            read_local(c, req, false, fn, arg);
        } else {
            coord_get(c, req, fn, arg);
        }
        break;
    case WIRE_OP_PUT:
    case WIRE_OP_DEL:
    case WIRE_OP_FPUT:
    case WIRE_OP_FDEL:
        if (req->op == WIRE_OP_PUT || req->op == WIRE_OP_FPUT)
            c->st.puts++;
        else
            c->st.dels++;
        coord_put(c, req, fn, arg);
        break;
    case WIRE_OP_RGET:
        c->st.replica_gets++;
        read_local(c, req, true, fn, arg);
        break;
    case WIRE_OP_RPUT:
        rput_op(c, req, fn, arg);
        break;
    default:
        fail_reply(c, fn, arg, RK_EUNKNOWN_OP, true, NULL);
        break;
    }
}
