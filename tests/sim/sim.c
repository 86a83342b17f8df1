/*
 * sim.c - the deterministic simulator's engine: event queue, PRNG streams,
 * the simulated env (node/env.h) of every node, the network, the disk, and
 * the fault injector (crash/restart/wipe, partitions, pauses, skew).
 *
 * Design. One binary heap of events ordered by (virtual time, sequence
 * number); one run = pop until the queue is empty. Every node is the REAL
 * struct core over a struct env whose ops live here:
 *
 *   core --peer_request--> wire_encode_req --> net (delay/loss/dup/cut)
 *        --> SIM_EV_MSG at dst --> wire_decode_req --> core_request(dst)
 *        --> reply fn --> wire_encode_resp --> net --> SIM_EV_MSG at src
 *        --> wire_decode_resp --> match id --> env_reply_fn
 *   core --store_submit--> queue --COMMIT (apply, in order, unsynced)-->
 *        --SYNC (durable)--> done, in submission order
 *
 * Invariants kept here:
 *   - determinism: nothing reads the wall clock, an address or a hash
 *     table's pointer order; every random draw comes from a named stream
 *     (sim_internal.h) so draws in one place never shift another;
 *   - an env_reply_fn runs exactly once and never inside peer_request:
 *     with the reply, with RK_ETIMEOUT at the give-up deadline
 *     (2 x timeout + 1000 ms, as node/peer.c), with -ECONNRESET when the
 *     peer crashed, or with RK_ESHUTTING_DOWN when its own node crashed;
 *   - a crash ends an incarnation: its core is shut down, every pending
 *     peer request and storage op is failed (ops with RK_ESTORAGE, no
 *     apply), the core destroyed; nothing it emits afterwards leaves the
 *     node, and every event stamped with the old incarnation is dropped;
 *   - fsync=always: a done runs only after its batch is durable; a crash
 *     drops the unsynced batch whole (a torn last write) and the queue;
 *   - a store that is created or wiped gets an epoch never used before.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "node/log.h"
#include "node/peer_auth.h"
#include "node/storage_op.h"
#include "proto/errors.h"
#include "proto/wire.h"
#include "quorum/dvv.h"
#include "quorum/quorum.h"
#include "tests/sim/sim_internal.h"

#define SIM_WALL_BASE_MS 1700000000000ull
#define SIM_MAX_EVENTS   50000000ull
#define SIM_QUIESCE_MS   (30ull * 60 * 1000) /* longest drain allowed */
/* Membership settles when the last ring state change is this old: past
 * member.c's MEMBER_DROP_DELAY_MS (5 s), plus time to drop. */
#define SIM_SETTLE_MS 8000ull

/* ---- PRNG ----------------------------------------------------------------
 */

void sim__rng_seed(struct sim_rng *r, uint64_t seed, uint64_t stream)
{
    rk_rng_seed(&r->rk, seed ^ (stream * 0xd1342543de82ef95ull));
}

uint64_t sim__rand(struct sim_rng *r)
{
    return rk_rng_next(&r->rk);
}

uint64_t sim__below(struct sim_rng *r, uint64_t n)
{
    return n <= 1 ? 0 : sim__rand(r) % n;
}

uint64_t sim__range(struct sim_rng *r, uint64_t lo, uint64_t hi)
{
    return hi <= lo ? lo : lo + sim__below(r, hi - lo + 1);
}

bool sim__chance(struct sim_rng *r, double p)
{
    if (p <= 0)
        return false;
    return (double)(sim__rand(r) >> 11) * 0x1.0p-53 < p;
}

/* ---- event queue ---------------------------------------------------------
 */

static bool ev_before(const struct sim_event *a, const struct sim_event *b)
{
    return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

static void heap_push(struct sim *s, struct sim_event *e)
{
    if (s->nheap == s->capheap) {
        size_t cap = s->capheap ? s->capheap * 2 : 1024;
        struct sim_event **h = realloc(s->heap, cap * sizeof(*h));
        if (h == NULL)
            abort(); /* the simulator cannot go on without its queue */
        s->heap = h;
        s->capheap = cap;
    }
    size_t i = s->nheap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!ev_before(e, s->heap[p]))
            break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = e;
}

static struct sim_event *heap_pop(struct sim *s)
{
    struct sim_event *top = s->heap[0];
    struct sim_event *last = s->heap[--s->nheap];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l >= s->nheap)
            break;
        m = l;
        if (l + 1 < s->nheap && ev_before(s->heap[l + 1], s->heap[l]))
            m = l + 1;
        if (!ev_before(s->heap[m], last))
            break;
        s->heap[i] = s->heap[m];
        i = m;
    }
    if (s->nheap > 0)
        s->heap[i] = last;
    return top;
}

struct sim_event *sim__event(struct sim *s, uint64_t at, enum sim_ev_kind k,
                             int node)
{
    struct sim_event *e = calloc(1, sizeof(*e));
    if (e == NULL)
        abort();
    e->t = at < s->now ? s->now : at;
    e->seq = s->seq++;
    e->kind = k;
    e->node = node;
    e->inc = node >= 0 ? s->node[node].inc : 0;
    e->src = -1;
    heap_push(s, e);
    return e;
}

struct sim_timer {
    env_timer_fn fn;
    void *arg;
    bool cancelled;
};

static void event_free(struct sim_event *e)
{
    free(e->bytes);
    free(e->timer);
    if (e->creq != NULL)
        sim__creq_discard(e->creq);
    free(e);
}

/* ---- trace, hash, report -------------------------------------------------
 */

static const char *const ev_names[SIM_EV_MAX] = {
    "msg",        "timer",  "commit",  "sync", "give_up", "reset",
    "creq",       "cnext",  "nemesis", "heal", "restart", "unpause",
    "end_active", "member", "admin",   "stop"};

void sim__trace(struct sim *s, const char *fmt, ...)
{
    va_list ap;
    if (s->cfg.trace == NULL)
        return;
    fprintf(s->cfg.trace, "%8" PRIu64 " ", s->now);
    va_start(ap, fmt);
    vfprintf(s->cfg.trace, fmt, ap);
    va_end(ap);
    fputc('\n', s->cfg.trace);
}

void sim__report(struct sim *s, const char *fmt, ...)
{
    va_list ap;
    if (s->cfg.report == NULL)
        return;
    fprintf(s->cfg.report, "seed %" PRIu64 ": ", s->cfg.seed);
    va_start(ap, fmt);
    vfprintf(s->cfg.report, fmt, ap);
    va_end(ap);
    fputc('\n', s->cfg.report);
}

void sim__hash(struct sim *s, const void *p, size_t n)
{
    XXH64_update(s->xx, p, n);
}

static void hash_event(struct sim *s, const struct sim_event *e)
{
    uint64_t h[4] = {e->t, (uint64_t)e->kind, (uint64_t)(int64_t)e->node,
                     (uint64_t)(int64_t)e->src};
    sim__hash(s, h, sizeof(h));
    if (e->bytes != NULL)
        sim__hash(s, e->bytes, e->len);
}

bool sim__paused(const struct sim *s, int node)
{
    return s->node[node].paused_until > s->now;
}

/* ---- in-memory store -----------------------------------------------------
 */

static uint32_t store_bucket(const uint8_t *key, uint32_t len)
{
    return (uint32_t)(XXH64(key, len, 0) % SIM_STORE_BUCKETS);
}

static struct sim_rec *store_find(struct sim_store *st, const uint8_t *key,
                                  uint32_t len)
{
    for (struct sim_rec *r = st->b[store_bucket(key, len)]; r; r = r->next)
        if (r->key_len == len && memcmp(r->key, key, len) == 0)
            return r;
    return NULL;
}

/* Sets key to val (copied; val NULL records a deletion in an overlay). */
static void store_set(struct sim_store *st, const uint8_t *key, uint32_t len,
                      const uint8_t *val, size_t vlen)
{
    struct sim_rec *r = store_find(st, key, len);
    if (r == NULL) {
        uint32_t b = store_bucket(key, len);
        if ((r = calloc(1, sizeof(*r))) == NULL ||
            (r->key = malloc(len)) == NULL)
            abort();
        memcpy(r->key, key, len);
        r->key_len = len;
        r->next = st->b[b];
        st->b[b] = r;
    }
    free(r->val);
    r->val = NULL;
    r->len = 0;
    if (val != NULL) {
        if ((r->val = malloc(vlen ? vlen : 1)) == NULL)
            abort();
        memcpy(r->val, val, vlen);
        r->len = vlen;
    }
}

static void store_clear(struct sim_store *st)
{
    for (uint32_t i = 0; i < SIM_STORE_BUCKETS; i++) {
        struct sim_rec *r = st->b[i];
        while (r != NULL) {
            struct sim_rec *next = r->next;
            free(r->key);
            free(r->val);
            free(r);
            r = next;
        }
        st->b[i] = NULL;
    }
}

const struct sim_rec *sim__durable(struct sim_node *nd, const uint8_t *key,
                                   uint32_t key_len)
{
    const struct sim_rec *r = store_find(&nd->durable, key, key_len);
    return r != NULL && r->val != NULL ? r : NULL;
}

uint32_t sim__partition(const struct sim *s, const uint8_t *key,
                        uint32_t key_len)
{
    return ring_partition(key, key_len, ring_q(s->ring));
}

/* ---- disk ------------------------------------------------------------------
 */

struct sim_dop {
    struct sim_dop *next;
    struct storage_op *op;
    bool replica; /* submitted while an rput was handled */
};

static void disk_schedule(struct sim_node *nd)
{
    struct sim *s = nd->sim;
    if (nd->disk_busy || nd->queue == NULL || !nd->up)
        return;
    nd->disk_busy = true;
    sim__event(s, s->now + sim__range(&s->disk, 0, s->p.commit_max_ms),
               SIM_EV_DISK_COMMIT, nd->idx);
}

/* TEST-ONLY seam (cfg.break_merge): keep one value of a replica merge. */
static void break_merge(uint8_t **out, size_t *out_len)
{
    struct dvv_arena a;
    struct dvv d;
    uint8_t *enc = NULL;
    size_t enc_len = 0;
    bool kept = false;

    dvv_arena_init(&a);
    if (dvv_decode(*out, *out_len, &a, &d) == 0 && dvv_count(&d) > 1) {
        for (uint32_t i = 0; i < d.n; i++) {
            if (kept)
                d.e[i].nvals = 0;
            else if (d.e[i].nvals > 0) {
                d.e[i].nvals = 1;
                kept = true;
            }
        }
        if (dvv_encode(&d, &enc, &enc_len) == 0) {
            free(*out);
            *out = enc;
            *out_len = enc_len;
        }
    }
    dvv_arena_free(&a);
}

static void disk_commit(struct sim *s, struct sim_node *nd)
{
    uint32_t n = 0;
    nd->batch = nd->queue;
    nd->queue = NULL;
    nd->queue_tail = &nd->queue;
    for (struct sim_dop *d = nd->batch; d != NULL; d = d->next, n++) {
        struct storage_op *op = d->op;
        uint8_t *out = NULL;
        size_t out_len = 0;
        op->status = 0;
        op->result = NULL;
        op->result_len = 0;
        if (op->key_len > STORAGE_MAX_KEY_LEN) {
            op->status = RK_ETOO_LARGE;
            continue;
        }
        const struct sim_rec *old =
            store_find(&nd->overlay, op->key, op->key_len);
        if (old == NULL)
            old = sim__durable(nd, op->key, op->key_len);
        int rc = op->apply(op, old ? old->val : NULL, old ? old->len : 0, &out,
                           &out_len);
        if (rc == STORAGE_APPLY_PUT && out != NULL) {
            if (d->replica && s->cfg.break_merge)
                break_merge(&out, &out_len);
            store_set(&nd->overlay, op->key, op->key_len, out, out_len);
        } else if (rc == STORAGE_APPLY_DELETE) {
            store_set(&nd->overlay, op->key, op->key_len, NULL, 0);
        } else if (rc < 0) {
            op->status = rc;
            free(out);
            out = NULL;
            out_len = 0;
        }
        op->result = out;
        op->result_len = out_len;
    }
    sim__trace(s, "n%d disk commit %u op(s), unsynced", nd->idx + 1, n);
    sim__event(s, s->now + sim__range(&s->disk, 0, s->p.sync_max_ms),
               SIM_EV_DISK_SYNC, nd->idx);
}

/* Checks that the stored vector only grows, then makes the overlay durable. */
static void disk_make_durable(struct sim *s, struct sim_node *nd)
{
    for (uint32_t b = 0; b < SIM_STORE_BUCKETS; b++) {
        for (struct sim_rec *r = nd->overlay.b[b]; r != NULL; r = r->next) {
            const struct sim_rec *old = sim__durable(nd, r->key, r->key_len);
            /* A deletion (member.c dropping a partition this node no
             * longer holds) removes the record: no vector to compare. */
            if (old != NULL && r->val != NULL) {
                struct dvv_arena a;
                struct dvv x, y;
                dvv_arena_init(&a);
                bool ok = dvv_decode(old->val, old->len, &a, &x) == 0 &&
                          dvv_decode(r->val, r->len, &a, &y) == 0 &&
                          dvv_covers(&y, &x);
                dvv_arena_free(&a);
                if (!ok) {
                    s->res->vv_regressed++;
                    sim__report(s,
                                "invariant: n%d's stored version of key "
                                "'%.*s' went backwards at t=%" PRIu64,
                                nd->idx + 1, (int)r->key_len, r->key, s->now);
                }
            }
            if (r->val != NULL)
                store_set(&nd->durable, r->key, r->key_len, r->val, r->len);
            else
                store_set(&nd->durable, r->key, r->key_len, NULL, 0);
        }
    }
    store_clear(&nd->overlay);
}

static void disk_sync(struct sim *s, struct sim_node *nd)
{
    struct sim_dop *d = nd->batch;
    disk_make_durable(s, nd);
    sim__trace(s, "n%d disk sync", nd->idx + 1);
    nd->batch = NULL;
    nd->disk_busy = false;
    while (d != NULL) {
        struct sim_dop *next = d->next;
        uint8_t *result = d->op->result;
        d->op->done(d->op); /* may free op */
        free(result);
        free(d);
        d = next;
    }
    disk_schedule(nd);
}

/* Crash: the batch in progress is torn (dropped whole), the queue lost;
 * every op completes with RK_ESTORAGE so the dead core can drain. */
static void disk_fail_all(struct sim_node *nd)
{
    struct sim_dop *lists[2] = {nd->batch, nd->queue};
    store_clear(&nd->overlay);
    nd->batch = NULL;
    nd->queue = NULL;
    nd->queue_tail = &nd->queue;
    nd->disk_busy = false;
    for (int l = 0; l < 2; l++) {
        struct sim_dop *d = lists[l];
        while (d != NULL) {
            struct sim_dop *next = d->next;
            free(d->op->result);
            d->op->result = NULL;
            d->op->result_len = 0;
            d->op->status = RK_ESTORAGE;
            d->op->done(d->op);
            free(d);
            d = next;
        }
    }
}

/* ---- env ops ---------------------------------------------------------------
 */

static struct sim_node *node_of(struct env *env)
{
    return env->impl;
}

static uint64_t op_now_ms(struct env *env)
{
    return node_of(env)->sim->now;
}

static uint64_t op_wall_ms(struct env *env)
{
    struct sim_node *nd = node_of(env);
    return (uint64_t)((int64_t)(SIM_WALL_BASE_MS + nd->sim->now) + nd->skew_ms);
}

static int op_store_get(struct env *env, uint32_t partition, const uint8_t *key,
                        uint32_t key_len, storage_read_fn fn, void *arg)
{
    struct sim_node *nd = node_of(env);
    (void)partition;
    if (!nd->up)
        return RK_ESTORAGE;
    const struct sim_rec *r = sim__durable(nd, key, key_len);
    return fn(arg, r ? r->val : NULL, r ? r->len : 0);
}

static uint64_t new_epoch(struct sim *s);

static int key_cmp(const uint8_t *a, uint32_t al, const uint8_t *b, uint32_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    if (c != 0)
        return c;
    return al < bl ? -1 : al > bl ? 1 : 0;
}

static int rec_cmp(const void *x, const void *y)
{
    const struct sim_rec *a = *(const struct sim_rec *const *)x;
    const struct sim_rec *b = *(const struct sim_rec *const *)y;
    return key_cmp(a->key, a->key_len, b->key, b->key_len);
}

/* The durable records of partition in key order (LMDB's: bytes, then
 * length), strictly after after; fn may submit ops (they change nothing
 * durable before this returns). */
static int op_store_scan(struct env *env, uint32_t partition,
                         const uint8_t *after, uint32_t after_len,
                         storage_scan_fn fn, void *arg)
{
    struct sim_node *nd = node_of(env);
    const struct sim_rec **v = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    if (!nd->up)
        return RK_ESTORAGE;
    for (uint32_t b = 0; b < SIM_STORE_BUCKETS; b++) {
        for (const struct sim_rec *r = nd->durable.b[b]; r; r = r->next) {
            if (r->val == NULL ||
                sim__partition(nd->sim, r->key, r->key_len) != partition ||
                (after != NULL &&
                 key_cmp(r->key, r->key_len, after, after_len) <= 0))
                continue;
            if (n == cap) {
                cap = cap ? 2 * cap : 64;
                const struct sim_rec **nv = realloc(v, cap * sizeof(*v));
                if (nv == NULL)
                    abort();
                v = nv;
            }
            v[n++] = r;
        }
    }
    if (n > 1)
        qsort(v, n, sizeof(*v), rec_cmp);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = fn(arg, v[i]->key, v[i]->key_len, v[i]->val, v[i]->len);
    free(v);
    return rc < 0 ? rc : 0;
}

/* A new epoch from the epoch stream, kept in the node's durable state: a
 * restart (without a wipe) comes back with it. */
static int op_store_new_epoch(struct env *env, uint64_t *epoch)
{
    struct sim_node *nd = node_of(env);
    if (!nd->up)
        return RK_ESTORAGE;
    nd->epoch = new_epoch(nd->sim);
    *epoch = nd->epoch;
    sim__trace(nd->sim, "n%d new epoch %016" PRIx64, nd->idx + 1, nd->epoch);
    return 0;
}

static int op_store_submit(struct env *env, struct storage_op *op)
{
    struct sim_node *nd = node_of(env);
    struct sim_dop *d;
    if (!nd->up)
        return RK_ESHUTTING_DOWN;
    if ((d = calloc(1, sizeof(*d))) == NULL)
        return -ENOMEM;
    d->op = op;
    d->replica = nd->in_rput;
    *nd->queue_tail = d;
    nd->queue_tail = &d->next;
    disk_schedule(nd);
    return 0;
}

static struct env_timer *op_timer_start(struct env *env, uint64_t ms,
                                        env_timer_fn fn, void *arg)
{
    struct sim_node *nd = node_of(env);
    struct sim *s = nd->sim;
    struct sim_timer *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->fn = fn;
    t->arg = arg;
    struct sim_event *e = sim__event(s, s->now + ms, SIM_EV_TIMER, nd->idx);
    e->timer = t;
    return (struct env_timer *)t;
}

static void op_timer_cancel(struct env *env, struct env_timer *t)
{
    (void)env;
    ((struct sim_timer *)t)->cancelled = true; /* its event frees it */
}

static bool link_up(const struct sim *s, int a, int b)
{
    return !s->blocked[a][b];
}

static bool op_peer_up(struct env *env, uint32_t member)
{
    struct sim_node *nd = node_of(env);
    struct sim *s = nd->sim;
    if (member >= s->nnodes)
        return false;
    if ((int)member == nd->idx)
        return true;
    return !nd->forgotten[member] && link_up(s, nd->idx, (int)member) &&
           s->node[member].up && !sim__paused(s, (int)member);
}

struct sim_pend {
    struct sim_pend *next;
    uint64_t id;
    int dst;
    env_reply_fn fn;
    void *arg;
};

static uint64_t net_delay(struct sim *s)
{
    uint64_t lo = s->p.delay_min_ms, hi = s->p.delay_max_ms;
    if (s->p.delay_skewed && !sim__chance(&s->net, 0.1))
        hi = lo + (hi - lo) / 10;
    return sim__range(&s->net, lo, hi);
}

/* Puts one framed message on the wire from src to dst (bytes copied). */
static void net_send(struct sim *s, int src, int dst, bool reply,
                     const uint8_t *bytes, size_t len)
{
    s->res->msgs_sent++;
    if (!link_up(s, src, dst) || sim__chance(&s->net, s->p.loss)) {
        s->res->msgs_lost++;
        sim__trace(s, "n%d -> n%d %s lost (%zu bytes)", src + 1, dst + 1,
                   reply ? "reply" : "request", len);
        return;
    }
    int copies = 1 + sim__chance(&s->net, s->p.dup);
    if (copies > 1)
        s->res->msgs_duplicated++;
    for (int i = 0; i < copies; i++) {
        struct sim_event *e =
            sim__event(s, s->now + net_delay(s), SIM_EV_MSG, dst);
        e->src = src;
        e->reply = reply;
        if ((e->bytes = malloc(len)) == NULL)
            abort();
        memcpy(e->bytes, bytes, len);
        e->len = len;
    }
}

static int op_peer_request(struct env *env, uint32_t member,
                           const struct wire_req *req, env_reply_fn fn,
                           void *arg)
{
    struct sim_node *nd = node_of(env);
    struct sim *s = nd->sim;
    struct wire_buf b;
    struct wire_req q = *req;
    struct sim_pend *p;

    if (!nd->up)
        return RK_ESHUTTING_DOWN; /* a dead incarnation sends nothing */
    if (member >= s->nnodes || (int)member == nd->idx ||
        !op_peer_up(env, member))
        return -ENOTCONN;
    if ((p = calloc(1, sizeof(*p))) == NULL)
        return -ENOMEM;
    q.id = ++nd->next_id;
    wire_buf_init(&b);
    if (wire_encode_req(&b, &q) != 0) {
        wire_buf_free(&b);
        free(p);
        return -ENOMEM;
    }
    p->id = q.id;
    p->dst = (int)member;
    p->fn = fn;
    p->arg = arg;
    p->next = nd->pend;
    nd->pend = p;
    struct sim_event *g = sim__event(s, s->now + 2 * s->p.timeout_ms + 1000,
                                     SIM_EV_GIVE_UP, nd->idx);
    g->id = q.id;
    net_send(s, nd->idx, (int)member, false, b.data, b.len);
    wire_buf_free(&b);
    return 0;
}

/* Membership: a slot is a node index; a node is found by its id or by its
 * address string ("sim:I"). Neither draws randomness nor schedules an
 * event unless it changes something, so seeds that never call them keep
 * their traces. */
static int op_peer_slot(struct env *env, const char *id)
{
    struct sim *s = node_of(env)->sim;
    for (uint32_t i = 0; id != NULL && i < s->nnodes; i++)
        if (strcmp(s->members[i].id, id) == 0)
            return (int)i;
    return -ENOENT;
}

static int op_peer_add(struct env *env, const char *id, const char *addr)
{
    struct sim_node *nd = node_of(env);
    struct sim *s = nd->sim;
    int slot = id != NULL && id[0] != '\0' ? op_peer_slot(env, id) : -ENOENT;
    for (uint32_t i = 0; slot < 0 && addr != NULL && i < s->nnodes; i++)
        if (strcmp(s->members[i].addr, addr) == 0)
            slot = (int)i;
    if (slot < 0)
        return -EINVAL; /* no such simulated node */
    if (nd->forgotten[slot]) {
        nd->forgotten[slot] = false;
        sim__trace(s, "n%d adds n%d again", nd->idx + 1, slot + 1);
    }
    return slot;
}

static void op_peer_forget(struct env *env, uint32_t slot)
{
    struct sim_node *nd = node_of(env);
    struct sim *s = nd->sim;
    if (slot >= s->nnodes || (int)slot == nd->idx || nd->forgotten[slot])
        return;
    nd->forgotten[slot] = true;
    sim__trace(s, "n%d forgets n%d", nd->idx + 1, slot + 1);
    /* What waits on it fails from an event of its own, not in this call. */
    for (struct sim_pend *p = nd->pend; p != NULL; p = p->next) {
        if (p->dst != (int)slot)
            continue;
        struct sim_event *e = sim__event(s, s->now, SIM_EV_PEER_FAIL, nd->idx);
        e->id = p->id;
        e->err = -ENOTCONN;
    }
}

static uint64_t op_random64(struct env *env)
{
    return sim__rand(&node_of(env)->rnd);
}

/* A node's log line, stamped with virtual time: in the trace when there is
 * one (not hashed: logging is no event), else on stderr. */
static void op_log(struct env *env, enum log_level level, const char *msg)
{
    struct sim_node *nd = node_of(env);
    struct sim *s = nd->sim;
    if (s->cfg.trace != NULL)
        sim__trace(s, "n%d log %s: %s", nd->idx + 1, log_level_name(level),
                   msg);
    else if (level >= LOG_WARN) /* membership's info lines: trace only */
        fprintf(stderr, "%8" PRIu64 " seed %" PRIu64 " n%d %s: %s\n", s->now,
                s->cfg.seed, nd->idx + 1, log_level_name(level), msg);
}

static const struct env_ops sim_env_ops = {
    .now_ms = op_now_ms,
    .wall_ms = op_wall_ms,
    .store_get = op_store_get,
    .store_scan = op_store_scan,
    .store_new_epoch = op_store_new_epoch,
    .store_submit = op_store_submit,
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

static struct sim_pend *pend_take(struct sim_node *nd, uint64_t id)
{
    for (struct sim_pend **pp = &nd->pend; *pp; pp = &(*pp)->next) {
        if ((*pp)->id == id) {
            struct sim_pend *p = *pp;
            *pp = p->next;
            return p;
        }
    }
    return NULL;
}

/* ---- peer requests arriving ------------------------------------------------
 */

struct sim_inreq {
    struct sim_node *nd;
    uint32_t inc;
    int src;
    uint64_t id;
    enum wire_op op;
};

/* The receiving core answered a peer: encode as node/server.c does. */
static void peer_reply(void *arg, const struct core_reply *rep)
{
    struct sim_inreq *q = arg;
    struct sim_node *nd = q->nd;
    struct sim *s = nd->sim;
    struct wire_value vals[WIRE_MAX_VALUES];
    struct wire_resp r;
    struct wire_buf b;

    if (!nd->up || q->inc != nd->inc) {
        free(q); /* after a crash nothing leaves the node */
        return;
    }
    core_reply_to_wire(rep, q->id, q->op, vals, &r);
    wire_buf_init(&b);
    if (wire_encode_resp(&b, &r) == 0)
        net_send(s, nd->idx, q->src, true, b.data, b.len);
    else
        s->res->sim_errors++;
    wire_buf_free(&b);
    free(q);
}

/* gossip and admin go to the member service, answered as
 * node/server_native.c's native_gossip and native_admin do (the sender is
 * an authenticated peer). */
static void member_request(struct sim *s, struct sim_node *nd, int src,
                           const struct wire_req *req)
{
    struct wire_resp r = {.id = req->id, .op = req->op};
    struct wire_buf b;
    char *text = NULL;
    int rc;

    if (nd->member == NULL)
        rc = RK_EUNKNOWN_OP;
    else if (req->op == WIRE_OP_GOSSIP)
        rc = member_gossip_in(nd->member, s->members[src].id, req->data,
                              req->data_len);
    else
        rc = member_admin(nd->member, req->cmd ? req->cmd : "",
                          req->arg ? req->arg : "", req->part, req->json, true,
                          &text);
    if (rc < 0 || (req->op == WIRE_OP_ADMIN && rc != 0)) {
        r.err = rc;
        r.definite = true;
        r.msg = text;
    } else {
        r.text = text;
    }
    if (nd->up) { /* member_admin may not stop it, but be sure */
        wire_buf_init(&b);
        if (wire_encode_resp(&b, &r) == 0)
            net_send(s, nd->idx, src, true, b.data, b.len);
        else
            s->res->sim_errors++;
        wire_buf_free(&b);
    }
    free(text);
}

static void deliver_request(struct sim *s, struct sim_node *nd, int src,
                            const uint8_t *body, size_t n)
{
    static const struct wire_limits lim = {.max_frame = WIRE_DEFAULT_MAX_FRAME,
                                           .max_key = WIRE_DEFAULT_MAX_KEY,
                                           .max_value = WIRE_DEFAULT_MAX_VALUE};
    msgpack_zone zone;
    struct wire_req req;
    const char *why = NULL;

    msgpack_zone_init(&zone, 1024);
    if (wire_decode_req(body, n, &lim, &zone, &req, &why) != 0) {
        s->res->sim_errors++;
        sim__report(s, "simulator: n%d sent a request n%d cannot decode: %s",
                    src + 1, nd->idx + 1, why ? why : "?");
        msgpack_zone_destroy(&zone);
        return;
    }
    sim__trace(s, "n%d -> n%d %s id=%" PRIu64 " key=%.*s", src + 1, nd->idx + 1,
               wire_op_name(req.op), req.id, (int)req.key_len,
               req.key ? (const char *)req.key : "");
    if (req.op == WIRE_OP_GOSSIP || req.op == WIRE_OP_ADMIN) {
        member_request(s, nd, src, &req);
        msgpack_zone_destroy(&zone);
        return;
    }
    struct sim_inreq *q = malloc(sizeof(*q));
    if (q == NULL)
        abort();
    *q = (struct sim_inreq){nd, nd->inc, src, req.id, req.op};
    struct core_req cr;
    core_req_from_wire(&req, &cr);
    nd->in_rput = req.op == WIRE_OP_RPUT;
    core_request(nd->core, &cr, peer_reply, q);
    nd->in_rput = false;
    msgpack_zone_destroy(&zone);
}

static void deliver_reply(struct sim *s, struct sim_node *nd, int src,
                          const uint8_t *body, size_t n)
{
    msgpack_zone zone;
    struct wire_resp resp;
    const char *why = NULL;

    msgpack_zone_init(&zone, 1024);
    if (wire_decode_resp(body, n, &zone, &resp, &why) != 0) {
        s->res->sim_errors++;
        sim__report(s, "simulator: n%d sent a reply n%d cannot decode: %s",
                    src + 1, nd->idx + 1, why ? why : "?");
        msgpack_zone_destroy(&zone);
        return;
    }
    struct sim_pend *p = pend_take(nd, resp.id);
    sim__trace(s, "n%d -> n%d reply id=%" PRIu64 " err=%s%s", src + 1,
               nd->idx + 1, resp.id, resp.err ? rk_err_code(resp.err) : "0",
               p ? "" : " (nobody waits: dropped)");
    if (p != NULL) {
        p->fn(p->arg, 0, &resp);
        free(p);
    }
    msgpack_zone_destroy(&zone);
}

static void deliver_msg(struct sim *s, struct sim_event *e)
{
    struct sim_node *nd = &s->node[e->node];
    uint32_t len = 0;

    if (!link_up(s, e->src, e->node)) {
        s->res->msgs_lost++;
        sim__trace(s, "n%d -> n%d cut by a partition", e->src + 1, e->node + 1);
        return;
    }
    if (e->len < WIRE_HDR_LEN ||
        wire_frame_len(e->bytes, WIRE_DEFAULT_MAX_FRAME, &len) != 0 ||
        len != e->len - WIRE_HDR_LEN) {
        s->res->sim_errors++;
        return;
    }
    if (e->reply)
        deliver_reply(s, nd, e->src, e->bytes + WIRE_HDR_LEN, len);
    else
        deliver_request(s, nd, e->src, e->bytes + WIRE_HDR_LEN, len);
}

static void fail_pending(struct sim *s, struct sim_event *e)
{
    struct sim_pend *p = pend_take(&s->node[e->node], e->id);
    if (p == NULL)
        return;
    sim__trace(s, "n%d request id=%" PRIu64 " to n%d fails: %s", e->node + 1,
               e->id, p->dst + 1, rk_err_code(e->err));
    p->fn(p->arg, e->err, NULL);
    free(p);
}

/* ---- node lifecycle
 * ----------------------------------------------------------
 */

static uint64_t new_epoch(struct sim *s)
{
    uint64_t ep;
    do
        ep = sim__rand(&s->epoch);
    while (ep == 0);
    for (size_t i = 0; i < s->nepochs; i++) {
        if (s->epochs[i] == ep) {
            s->res->epoch_reused++;
            sim__report(s, "invariant: epoch %016" PRIx64 " reused", ep);
        }
    }
    if (s->nepochs == s->capepochs) {
        size_t cap = s->capepochs ? 2 * s->capepochs : 16;
        uint64_t *a = realloc(s->epochs, cap * sizeof(*a));
        if (a == NULL)
            abort();
        s->epochs = a;
        s->capepochs = cap;
    }
    s->epochs[s->nepochs++] = ep;
    return ep;
}

/* Every simulated node shares one context key, as nodes sharing a cluster
 * secret do: contexts are tagged and checked across coordinators. */
static const uint8_t sim_ctx_key[PEER_AUTH_CTX_KEY_LEN] = "sim-context-key";

/* member_opts.save_state: the node's durable ring state (a wipe keeps it:
 * see docs/simulation.md, "Not modelled yet"). */
static void save_state(void *arg, const uint8_t *buf, size_t len)
{
    struct sim_node *nd = arg;
    if (nd->state != NULL && nd->state_len == len &&
        memcmp(nd->state, buf, len) == 0)
        return;
    nd->sim->state_changed_ms = nd->sim->now;
    uint8_t *c = malloc(len ? len : 1);
    if (c == NULL)
        abort();
    memcpy(c, buf, len);
    free(nd->state);
    nd->state = c;
    nd->state_len = len;
}

/* member_opts.on_left: the node stops, from an event of its own (not
 * inside the member service's tick). */
static void on_left(void *arg)
{
    struct sim_node *nd = arg;
    struct sim_event *e = sim__event(nd->sim, nd->sim->now, SIM_EV_STOP, -1);
    e->src = nd->idx;
    e->inc = nd->inc;
}

/* Gossip timing in virtual time: a probe timeout over the slowest round
 * trip the seed's network can take, a tick-friendly interval. */
static void gossip_timing(const struct sim *s, uint32_t *interval,
                          uint32_t *timeout)
{
    uint64_t t = 2 * s->p.delay_max_ms + 100;
    if (t < 200)
        t = 200;
    *timeout = (uint32_t)t;
    *interval = (uint32_t)(t + 300);
}

static int start_member(struct sim *s, struct sim_node *nd)
{
    const char *ids[SIM_MAX_NODES], *seeds[SIM_MAX_NODES];
    uint32_t nids = 0, nseeds = 0;
    char err[160];
    bool founder = (uint32_t)nd->idx < s->ninit;
    for (uint32_t i = 0; i < s->nnodes; i++) {
        if (i < s->ninit && founder)
            ids[nids++] = s->members[i].id;
        if ((int)i != nd->idx && !s->node[i].absent)
            seeds[nseeds++] = s->members[i].addr;
    }
    struct member_opts mo = {
        .cluster = "sim",
        .self_id = s->members[nd->idx].id,
        .self_addr = s->members[nd->idx].addr,
        .seeds = seeds,
        .nseeds = nseeds,
        .static_ids = ids,
        .nstatic = nids,
        .partitions = ring_q(s->ring),
        .nval = s->cfg.n,
        .transfer_batch = 16,
        .saved = nd->state,
        .saved_len = nd->state_len,
        .save_state = save_state,
        .on_left = on_left,
        .cb_arg = nd,
        .test_skip_copy = s->cfg.break_transfer,
    };
    gossip_timing(s, &mo.probe_interval_ms, &mo.probe_timeout_ms);
    int rc =
        member_create(&nd->member, &nd->env, nd->core, &mo, err, sizeof(err));
    if (rc != 0)
        sim__report(s, "simulator: n%d's member service: %s", nd->idx + 1, err);
    return rc;
}

static int start_node(struct sim *s, struct sim_node *nd)
{
    bool founder = (uint32_t)nd->idx < s->ninit;
    memset(nd->forgotten, 0, sizeof(nd->forgotten));
    struct core_opts o = {
        .actor = nd->epoch,
        .partitions = ring_q(s->ring),
        .conflict = CORE_CONFLICT_SIBLINGS,
        .ring = founder ? s->ring : NULL,
        .members = founder ? s->members : NULL,
        .self = (uint32_t)nd->idx,
        .n = s->cfg.n,
        .r = s->cfg.r,
        .w = s->cfg.w,
        .timeout_ms = s->p.timeout_ms,
        .ctx_key = sim_ctx_key,
    };
    nd->up = true;
    nd->inc++;
    nd->core = core_create(&nd->env, &o);
    if (nd->core == NULL)
        return -ENOMEM;
    /* A (re)started member service waits out the drop delay afresh. */
    s->state_changed_ms = s->now;
    return start_member(s, nd);
}

static void crash_node(struct sim *s, struct sim_node *nd)
{
    sim__trace(s, "n%d CRASH (incarnation %u ends)", nd->idx + 1, nd->inc);
    s->res->crashes++;
    nd->up = false;
    nd->inc++;
    sim__client_node_crashed(s, nd);
    member_close(nd->member);
    core_shutdown(nd->core);
    while (nd->pend != NULL || nd->queue != NULL || nd->batch != NULL) {
        while (nd->pend != NULL) {
            struct sim_pend *p = nd->pend;
            nd->pend = p->next;
            p->fn(p->arg, RK_ESHUTTING_DOWN, NULL);
            free(p);
        }
        disk_fail_all(nd);
    }
    member_destroy(nd->member);
    nd->member = NULL;
    core_destroy(nd->core);
    nd->core = NULL;
    /* The others' connections to it reset: what waits on it fails. */
    for (uint32_t i = 0; i < s->nnodes; i++) {
        struct sim_node *o = &s->node[i];
        if (!o->up)
            continue;
        for (struct sim_pend *p = o->pend; p != NULL; p = p->next) {
            if (p->dst != nd->idx)
                continue;
            struct sim_event *e =
                sim__event(s, s->now + net_delay(s), SIM_EV_PEER_FAIL, (int)i);
            e->id = p->id;
            e->err = -ECONNRESET;
        }
    }
}

static void restart_node(struct sim *s, struct sim_node *nd, bool wipe)
{
    if (nd->up || nd->absent)
        return;
    if (wipe) {
        store_clear(&nd->durable);
        nd->epoch = new_epoch(s);
        nd->ever_wiped = true;
        nd->wiped_at = s->now;
        s->wiped_mask |= 1u << nd->idx;
        s->res->wipes++;
    }
    if (start_node(s, nd) != 0) {
        s->res->sim_errors++;
        nd->up = false;
        return;
    }
    sim__trace(s, "n%d RESTART%s epoch %016" PRIx64 " (incarnation %u)",
               nd->idx + 1, wipe ? " with a WIPED disk," : ",", nd->epoch,
               nd->inc);
}

/* ---- faults
 * ------------------------------------------------------------------
 */

static void partition_start(struct sim *s)
{
    uint32_t m = s->nnodes;
    uint64_t kind = sim__below(&s->fault, 3);
    int side[SIM_MAX_NODES] = {0};
    int bridge = -1;
    char desc[64];
    size_t dl = 0;

    if (kind == 0) { /* isolate one node */
        side[sim__below(&s->fault, m)] = 1;
    } else { /* halves, or halves joined by a bridge node */
        uint32_t perm[SIM_MAX_NODES] = {0};
        for (uint32_t i = 0; i < m; i++)
            perm[i] = i;
        for (uint32_t i = m - 1; i > 0; i--) {
            uint32_t j = (uint32_t)sim__below(&s->fault, i + 1);
            uint32_t t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        uint32_t first = kind == 2 ? 1 : 0;
        if (kind == 2)
            bridge = (int)perm[0];
        for (uint32_t i = first; i < m; i++)
            side[perm[i]] = (i - first) < (m - first) / 2 ? 1 : 0;
    }
    for (uint32_t a = 0; a < m; a++)
        for (uint32_t b = 0; b < m; b++)
            s->blocked[a][b] = a != b && side[a] != side[b] &&
                               (int)a != bridge && (int)b != bridge;
    for (uint32_t i = 0; i < m && dl + 8 < sizeof(desc); i++)
        dl += (size_t)snprintf(desc + dl, sizeof(desc) - dl, "%s%s",
                               (int)i == bridge ? "B"
                               : side[i]        ? "1"
                                                : "0",
                               i + 1 < m ? "" : "");
    s->partitioned = true;
    s->res->partitions++;
    sim__trace(s, "PARTITION %s sides %s (node order n1..n%u)",
               kind == 0   ? "isolate"
               : kind == 1 ? "halves"
                           : "bridge",
               desc, m);
    sim__event(s, s->now + sim__range(&s->fault, 50, s->p.fault_max_ms),
               SIM_EV_HEAL, -1);
}

static void partition_heal(struct sim *s)
{
    memset(s->blocked, 0, sizeof(s->blocked));
    if (s->partitioned)
        sim__trace(s, "HEAL partition");
    s->partitioned = false;
}

static void nemesis(struct sim *s)
{
    enum { F_PART, F_CRASH, F_PAUSE, F_NUM };
    bool on[F_NUM] = {s->p.partitions && !s->partitioned, s->p.crashes,
                      s->p.pauses};
    uint32_t n = 0, pick;
    if (!s->active)
        return;
    for (int i = 0; i < F_NUM; i++)
        n += on[i];
    if (n > 0) {
        pick = (uint32_t)sim__below(&s->fault, n);
        int f = 0;
        for (f = 0; f < F_NUM; f++)
            if (on[f] && pick-- == 0)
                break;
        int victim = (int)sim__below(&s->fault, s->nnodes);
        struct sim_node *nd = &s->node[victim];
        uint64_t d = sim__range(&s->fault, 50, s->p.fault_max_ms);
        if (f == F_PART) {
            partition_start(s);
        } else if (f == F_CRASH && nd->up) {
            crash_node(s, nd);
            struct sim_event *e = sim__event(s, s->now + d, SIM_EV_RESTART, -1);
            e->src = victim;
        } else if (f == F_PAUSE && nd->up && !sim__paused(s, victim)) {
            nd->paused_until = s->now + d;
            s->res->pauses++;
            sim__trace(s, "n%d PAUSE for %" PRIu64 " ms", victim + 1, d);
            struct sim_event *e =
                sim__event(s, nd->paused_until, SIM_EV_UNPAUSE, -1);
            e->src = victim;
        }
    }
    sim__event(s,
               s->now + sim__range(&s->fault, s->p.nemesis_every_ms / 2,
                                   s->p.nemesis_every_ms * 3 / 2),
               SIM_EV_NEMESIS, -1);
}

static void restart_event(struct sim *s, int victim)
{
    struct sim_node *nd = &s->node[victim];
    uint32_t bit = 1u << victim;
    uint32_t wiped = (uint32_t)__builtin_popcount(s->wiped_mask);
    /* A wipe is allowed only while at most w - 1 distinct nodes were ever
     * wiped: more would lose acknowledged writes legitimately. */
    bool may = s->p.wipes && ((s->wiped_mask & bit) || wiped + 1 < s->w);
    bool wipe = may && sim__chance(&s->fault, s->p.wipe_p);
    if (s->active)
        restart_node(s, nd, wipe);
}

static void end_active(struct sim *s)
{
    sim__trace(s, "END of the active phase: heal, restart, stop faults");
    s->active = false;
    s->stopping = true;
    partition_heal(s);
    s->p.loss = 0;
    s->p.dup = 0;
    /* Slow links are no fault, but a round trip over the request timeout
     * would fail every final read: keep delays well inside it. */
    s->p.delay_skewed = false;
    if (s->p.delay_max_ms > s->p.timeout_ms / 4)
        s->p.delay_max_ms = s->p.timeout_ms / 4;
    for (uint32_t i = 0; i < s->nnodes; i++) {
        if (s->node[i].paused_until > s->now)
            s->node[i].paused_until = s->now;
        restart_node(s, &s->node[i], false);
    }
}

/* ---- membership events ------------------------------------------------
 *
 * On seeds with membership events (cfg.membership): a few SIM_EV_MEMBER
 * in the active phase, each a join (a spare slot starts with seeds and no
 * ring), a leave (admin "leave" on a member; it stops when on_left fires)
 * or a removal (a member is killed for good, then admin "remove" on
 * another). At least nval + 1 members stay; a removed node counts against
 * the wipe budget (its copies are gone). SIM_EV_ADMIN re-issues leaves and
 * removals until they are done (a node that crashed forgot its wish; a
 * removal needs gossip to have declared the victim dead first).
 */

/* The decoded ring state with the highest version among present, live
 * nodes (owned by the caller), or NULL. */
static struct ring_state *latest_state(struct sim *s)
{
    struct ring_state *best = NULL;
    for (uint32_t i = 0; i < s->nnodes; i++) {
        struct sim_node *nd = &s->node[i];
        struct ring_state *rs = NULL;
        if (nd->absent || !nd->up || nd->state == NULL ||
            ring_state_decode(nd->state, nd->state_len, &rs, NULL) != 0)
            continue;
        if (best == NULL || ring_state_version(rs) > ring_state_version(best)) {
            ring_state_destroy(best);
            best = rs;
        } else {
            ring_state_destroy(rs);
        }
    }
    return best;
}

static uint32_t present_count(const struct sim *s)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->nnodes; i++)
        n += !s->node[i].absent && !s->node[i].leaving;
    return n;
}

int sim__pick_node(struct sim *s, struct sim_rng *r)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->nnodes; i++)
        n += !s->node[i].absent;
    uint64_t k = sim__below(r, n);
    for (uint32_t i = 0; i < s->nnodes; i++)
        if (!s->node[i].absent && k-- == 0)
            return (int)i;
    return 0;
}

/* A present, live node with a member service other than not, or -1. */
static int pick_admin(struct sim *s, int not )
{
    int c[SIM_MAX_NODES], n = 0;
    for (uint32_t i = 0; i < s->nnodes; i++)
        if ((int)i != not &&!s->node[i].absent && s->node[i].up &&
            s->node[i].member != NULL && !s->node[i].leaving)
            c[n++] = (int)i;
    return n ? c[sim__below(&s->member, (uint64_t)n)] : -1;
}

static void admin(struct sim *s, int at, const char *cmd, const char *arg)
{
    char *out = NULL;
    int rc = member_admin(s->node[at].member, cmd, arg, 0, false, false, &out);
    sim__trace(s, "n%d admin %s %s: %s%s", at + 1, cmd, arg,
               rc ? rk_err_code(rc) : "ok ", out ? out : "");
    free(out);
}

static void arm_admin(struct sim *s)
{
    if (!s->admin_armed) {
        s->admin_armed = true;
        sim__event(s, s->now + 1000, SIM_EV_ADMIN, -1);
    }
}

static void admin_retry(struct sim *s)
{
    s->admin_armed = false;
    if (s->members_closed)
        return;
    struct ring_state *rs = latest_state(s);
    bool more = false;
    for (uint32_t i = 0; i < s->nnodes; i++) {
        struct sim_node *nd = &s->node[i];
        bool in_ring = rs != NULL && ring_member_index(ring_state_cur(rs),
                                                       s->members[i].id) >= 0;
        if (nd->leaving && !nd->absent) {
            more = true;
            if (nd->up && nd->member != NULL)
                admin(s, (int)i, "leave", "");
        } else if (nd->removing && in_ring) {
            int at = pick_admin(s, (int)i);
            more = true;
            if (at >= 0)
                admin(s, at, "remove", s->members[i].id);
        }
    }
    ring_state_destroy(rs);
    if (more)
        arm_admin(s);
}

static void member_event(struct sim *s)
{
    uint64_t kind = sim__below(&s->member, 3);
    if (!s->active)
        return;
    if (kind == 0) { /* join: the first spare slot */
        for (uint32_t i = s->ninit; i < s->nnodes; i++) {
            struct sim_node *nd = &s->node[i];
            if (nd->started)
                continue;
            nd->started = true;
            nd->absent = false;
            s->res->joins++;
            sim__trace(s, "n%u JOINS with seeds", i + 1);
            if (start_node(s, nd) != 0)
                s->res->sim_errors++;
            return;
        }
        kind = 1 + sim__below(&s->member, 2);
    }
    if (present_count(s) < (uint32_t)s->nval + 2) {
        sim__trace(s, "membership event skipped: too few members");
        return;
    }
    int victim = pick_admin(s, -1);
    if (victim < 0)
        return;
    struct sim_node *nd = &s->node[victim];
    uint32_t bit = 1u << victim;
    if (kind == 2 && (uint32_t)__builtin_popcount(s->wiped_mask | bit) < s->w) {
        /* Removal: kill it for good; its data counts as wiped. */
        sim__trace(s, "n%d KILLED for good, to be removed", victim + 1);
        crash_node(s, nd);
        s->res->crashes--;
        nd->absent = true;
        nd->removing = true;
        s->wiped_mask |= bit;
        s->res->removes++;
        int at = pick_admin(s, victim);
        if (at >= 0)
            admin(s, at, "remove", s->members[victim].id);
    } else {
        nd->leaving = true;
        s->res->leaves++;
        admin(s, victim, "leave", "");
    }
    arm_admin(s);
}

/* A node that left the cluster stops and stays away. */
static void stop_event(struct sim *s, struct sim_event *e)
{
    struct sim_node *nd = &s->node[e->src];
    if (!nd->up || nd->inc != e->inc)
        return;
    sim__trace(s, "n%d STOPS: it left the cluster", e->src + 1);
    crash_node(s, nd);
    s->res->crashes--;
    nd->absent = true;
}

/* ---- parameters (swarm)
 * ------------------------------------------------------
 */

static uint64_t pick_u64(struct sim_rng *r, const uint64_t *v, size_t n)
{
    return v[sim__below(r, n)];
}

static double pick_dbl(struct sim_rng *r, const double *v, size_t n)
{
    return v[sim__below(r, n)];
}

#define PICK(r, ...)                                                           \
    pick_u64(r, (const uint64_t[]){__VA_ARGS__},                               \
             sizeof((const uint64_t[]){__VA_ARGS__}) / sizeof(uint64_t))
#define PICKD(r, ...)                                                          \
    pick_dbl(r, (const double[]){__VA_ARGS__},                                 \
             sizeof((const double[]){__VA_ARGS__}) / sizeof(double))

static void params(struct sim *s)
{
    struct sim_params *p = &s->p;
    struct sim_rng *r = &s->swarm;
    memset(p, 0, sizeof(*p));
    p->delay_min_ms = 1;
    p->think_max_ms = 30;
    switch (s->cfg.faults) {
    case SIM_FAULTS_NONE:
    case SIM_FAULTS_MAX:
        p->delay_max_ms = 5;
        p->commit_max_ms = 2;
        p->sync_max_ms = 2;
        p->timeout_ms = 1000;
        break;
    case SIM_FAULTS_LIGHT:
        p->delay_max_ms = 20;
        p->loss = 0.01;
        p->dup = 0.01;
        p->nemesis_every_ms = 1500;
        p->partitions = p->crashes = p->pauses = p->wipes = true;
        p->wipe_p = 0.2;
        p->fault_max_ms = 1500;
        p->skew_max_ms = 200;
        p->commit_max_ms = 3;
        p->sync_max_ms = 5;
        p->timeout_ms = 1000;
        break;
    case SIM_FAULTS_HEAVY:
        p->delay_max_ms = 100;
        p->delay_skewed = true;
        p->loss = 0.1;
        p->dup = 0.05;
        p->nemesis_every_ms = 400;
        p->partitions = p->crashes = p->pauses = p->wipes = true;
        p->wipe_p = 0.5;
        p->fault_max_ms = 3000;
        p->skew_max_ms = 70000;
        p->commit_max_ms = 10;
        p->sync_max_ms = 20;
        p->timeout_ms = 500;
        break;
    case SIM_FAULTS_SWARM:
        p->delay_max_ms = PICK(r, 2, 5, 20, 100, 400);
        p->delay_skewed = sim__chance(r, 0.5);
        p->loss = PICKD(r, 0, 0, 0.01, 0.05, 0.2);
        p->dup = PICKD(r, 0, 0, 0.02, 0.1);
        p->nemesis_every_ms = PICK(r, 0, 300, 1000, 3000);
        p->partitions = sim__chance(r, 0.5);
        p->crashes = sim__chance(r, 0.5);
        p->pauses = sim__chance(r, 0.5);
        p->wipes = sim__chance(r, 0.5);
        p->wipe_p = PICKD(r, 0.2, 0.6);
        p->fault_max_ms = PICK(r, 300, 1500, 4000);
        p->skew_max_ms = PICK(r, 0, 50, 5000, 90000);
        p->commit_max_ms = PICK(r, 0, 2, 10);
        p->sync_max_ms = PICK(r, 0, 5, 30);
        p->timeout_ms = PICK(r, 300, 1000, 3000);
        p->think_max_ms = PICK(r, 5, 30, 100);
        break;
    }
}

/* ---- the run
 * -------------------------------------------------------------------
 */

static void dispatch(struct sim *s, struct sim_event *e)
{
    struct sim_node *nd = e->node >= 0 ? &s->node[e->node] : NULL;

    if (nd != NULL && (!nd->up || e->inc != nd->inc)) {
        if (e->kind == SIM_EV_MSG) {
            s->res->msgs_lost++;
            sim__trace(s, "n%d -> n%d %s dropped: n%d is down or restarted",
                       e->src + 1, e->node + 1, e->reply ? "reply" : "request",
                       e->node + 1);
        } else if (e->kind != SIM_EV_TIMER) {
            sim__trace(s, "n%d %s dropped: belongs to a dead incarnation",
                       e->node + 1, ev_names[e->kind]);
        }
        return; /* belongs to a dead incarnation */
    }
    switch (e->kind) {
    case SIM_EV_MSG:
        deliver_msg(s, e);
        break;
    case SIM_EV_TIMER: {
        struct sim_timer *t = e->timer;
        e->timer = NULL;
        if (!t->cancelled) {
            sim__trace(s, "n%d timer fires", e->node + 1);
            env_timer_fn fn = t->fn;
            void *arg = t->arg;
            free(t);
            fn(arg);
        } else {
            free(t);
        }
        break;
    }
    case SIM_EV_DISK_COMMIT:
        disk_commit(s, nd);
        break;
    case SIM_EV_DISK_SYNC:
        disk_sync(s, nd);
        break;
    case SIM_EV_GIVE_UP:
        e->err = RK_ETIMEOUT;
        fail_pending(s, e);
        break;
    case SIM_EV_PEER_FAIL:
        fail_pending(s, e);
        break;
    case SIM_EV_CLIENT_REQ:
        sim__client_deliver(s, e);
        break;
    case SIM_EV_CLIENT_NEXT:
        sim__client_next(s, e->client);
        break;
    case SIM_EV_NEMESIS:
        nemesis(s);
        break;
    case SIM_EV_HEAL:
        partition_heal(s);
        break;
    case SIM_EV_RESTART:
        restart_event(s, e->src);
        break;
    case SIM_EV_UNPAUSE:
        sim__trace(s, "n%d resumes", e->src + 1);
        break;
    case SIM_EV_END_ACTIVE:
        end_active(s);
        break;
    case SIM_EV_MEMBER:
        member_event(s);
        break;
    case SIM_EV_ADMIN:
        admin_retry(s);
        break;
    case SIM_EV_STOP:
        stop_event(s, e);
        break;
    case SIM_EV_MAX:
        break;
    }
}

/* Processes the next event. */
static void step(struct sim *s)
{
    struct sim_event *e = heap_pop(s);
    s->now = e->t;
    s->res->events++;
    if (e->node >= 0 && e->inc == s->node[e->node].inc &&
        sim__paused(s, e->node)) {
        /* A paused node processes nothing: defer, keeping order. */
        e->t = s->node[e->node].paused_until;
        e->seq = s->seq++;
        heap_push(s, e);
        return;
    }
    hash_event(s, e);
    dispatch(s, e);
    event_free(e);
}

/* Runs events until the queue is empty; false if it would not drain. */
static bool run_queue(struct sim *s, uint64_t deadline)
{
    while (s->nheap > 0) {
        if (s->heap[0]->t > deadline || s->res->events >= SIM_MAX_EVENTS)
            return false;
        step(s);
    }
    return true;
}

/* Runs the events due by until (the member services never run dry);
 * false when the event budget ran out. */
static bool run_until(struct sim *s, uint64_t until)
{
    while (s->nheap > 0 && s->heap[0]->t <= until) {
        if (s->res->events >= SIM_MAX_EVENTS)
            return false;
        step(s);
    }
    if (s->now < until)
        s->now = until;
    return true;
}

/* Membership has settled: every present node is up, holds the latest ring
 * state, which has no change pending, contains every present node and no
 * node that left or was removed. */
static bool members_agree(struct sim *s, uint64_t *version)
{
    struct ring_state *rs = latest_state(s);
    bool ok = rs != NULL && !ring_state_pending(rs);
    for (uint32_t i = 0; ok && i < s->nnodes; i++) {
        struct sim_node *nd = &s->node[i];
        bool in = ring_member_index(ring_state_cur(rs), s->members[i].id) >= 0;
        if (nd->absent) {
            ok = !in;
            continue;
        }
        /* The same bytes: two states can share a version. */
        uint8_t *buf = NULL;
        size_t len = 0;
        ok = nd->up && in && !nd->leaving && nd->state != NULL &&
             ring_state_encode(rs, &buf, &len) == 0 && len == nd->state_len &&
             memcmp(buf, nd->state, len) == 0;
        free(buf);
    }
    *version = rs ? ring_state_version(rs) : 0;
    ring_state_destroy(rs);
    return ok;
}

/* After the active phase: runs until membership has settled and the last
 * state change is SIM_SETTLE_MS old (drops done), then stops every member
 * service so the queue can drain. False when it did not settle. */
static bool settle(struct sim *s, uint64_t deadline)
{
    uint64_t version = 0;
    bool ok = false;
    while (s->now < deadline) {
        if (!run_until(s, s->now + 1000))
            break;
        if (members_agree(s, &version) &&
            s->now >= s->state_changed_ms + SIM_SETTLE_MS) {
            ok = true;
            break;
        }
    }
    s->members_closed = true;
    sim__trace(
        s, "membership %s at ring version %" PRIu64 ": member services stop",
        ok ? "settled" : "DID NOT SETTLE", version);
    for (uint32_t i = 0; i < s->nnodes; i++)
        if (s->node[i].member != NULL)
            member_close(s->node[i].member);
    s->final = latest_state(s);
    s->res->ring_version = s->final ? ring_state_version(s->final) : 0;
    return ok;
}

int sim__owners(struct sim *s, uint32_t part, uint32_t *nodes)
{
    const struct ring *r = s->final ? ring_state_cur(s->final) : s->ring;
    uint32_t pref[QUORUM_MAX_N];
    int n = ring_pref_list(r, part, s->nval, pref);
    for (int i = 0; i < n; i++) {
        const char *id = ring_member(r, pref[i]);
        nodes[i] = 0;
        for (uint32_t k = 0; k < s->nnodes; k++)
            if (strcmp(s->members[k].id, id) == 0)
                nodes[i] = k;
    }
    return n;
}

void sim_config_default(struct sim_config *c)
{
    memset(c, 0, sizeof(*c));
    c->seed = 1;
    c->nodes = 5;
    c->n = 3;
    c->r = 2;
    c->w = 2;
    c->clients = 4;
    c->duration_ms = 20000;
    c->faults = SIM_FAULTS_SWARM;
}

const char *sim_membership_name(enum sim_membership m)
{
    static const char *const names[SIM_MEMBERSHIP_MAX] = {"auto", "on", "off"};
    return m < SIM_MEMBERSHIP_MAX ? names[m] : "?";
}

int sim_membership_parse(const char *str)
{
    for (int m = 0; m < SIM_MEMBERSHIP_MAX; m++)
        if (strcmp(str, sim_membership_name((enum sim_membership)m)) == 0)
            return m;
    return -1;
}

const char *sim_faults_name(enum sim_faults f)
{
    static const char *const names[SIM_FAULTS_MAX] = {"none", "light", "heavy",
                                                      "swarm"};
    return f < SIM_FAULTS_MAX ? names[f] : "?";
}

int sim_faults_parse(const char *str)
{
    for (int f = 0; f < SIM_FAULTS_MAX; f++)
        if (strcmp(str, sim_faults_name((enum sim_faults)f)) == 0)
            return f;
    return -1;
}

static int sim_setup(struct sim *s)
{
    const char *ids[SIM_MAX_NODES];
    char names[SIM_MAX_NODES][16];
    int err;

    sim__rng_seed(&s->swarm, s->cfg.seed, SIM_S_SWARM);
    sim__rng_seed(&s->net, s->cfg.seed, SIM_S_NET);
    sim__rng_seed(&s->fault, s->cfg.seed, SIM_S_FAULT);
    sim__rng_seed(&s->disk, s->cfg.seed, SIM_S_DISK);
    sim__rng_seed(&s->epoch, s->cfg.seed, SIM_S_EPOCH);
    sim__rng_seed(&s->clock, s->cfg.seed, SIM_S_CLOCK);
    sim__rng_seed(&s->check, s->cfg.seed, SIM_S_CHECK);
    params(s);
    if ((s->xx = XXH64_createState()) == NULL)
        return -ENOMEM;
    XXH64_reset(s->xx, s->cfg.seed);
    sim__rng_seed(&s->member, s->cfg.seed, SIM_S_MEMBER);
    s->membership =
        s->cfg.membership == SIM_MEMBERSHIP_ON ||
        (s->cfg.membership == SIM_MEMBERSHIP_AUTO && s->cfg.seed % 4 == 0);
    s->ninit = s->cfg.nodes;
    /* Seeds with membership events get up to two spare slots to join. */
    s->nnodes = s->ninit;
    if (s->membership)
        s->nnodes = s->ninit + 2 < SIM_MAX_NODES ? s->ninit + 2 : SIM_MAX_NODES;
    for (uint32_t i = 0; i < s->nnodes; i++) {
        snprintf(names[i], sizeof(names[i]), "n%u", i + 1);
        ids[i] = names[i];
    }
    if ((err = ring_build(&s->ring, 64, ids, s->ninit)) != 0)
        return err;
    s->nval = (uint8_t)(s->cfg.n < s->ninit ? s->cfg.n : s->ninit);
    s->w = (uint8_t)(s->cfg.w < s->nval ? s->cfg.w : s->nval);
    for (uint32_t i = 0; i < s->nnodes; i++) {
        struct sim_node *nd = &s->node[i];
        const char *id = i < s->ninit ? ring_member(s->ring, i) : ids[i];
        snprintf(s->members[i].id, sizeof(s->members[i].id), "%s", id);
        snprintf(s->members[i].addr, sizeof(s->members[i].addr), "sim:%u",
                 i + 1);
        nd->sim = s;
        nd->idx = (int)i;
        nd->env.ops = &sim_env_ops;
        nd->env.impl = nd;
        nd->queue_tail = &nd->queue;
        sim__rng_seed(&nd->rnd, s->cfg.seed, SIM_S_NODE0 + i);
        nd->epoch = new_epoch(s);
        nd->skew_ms =
            s->p.skew_max_ms == 0
                ? 0
                : (int64_t)sim__range(&s->clock, 0, 2 * s->p.skew_max_ms) -
                      (int64_t)s->p.skew_max_ms;
        nd->absent = i >= s->ninit; /* a joiner, started by an event */
    }
    /* Every node's id and address first: the member services know them. */
    for (uint32_t i = 0; i < s->ninit; i++)
        if ((err = start_node(s, &s->node[i])) != 0)
            return err;
    return sim__work_init(s);
}

static void sim_teardown(struct sim *s)
{
    s->cfg.trace = NULL;
    s->cfg.report = NULL;
    while (s->nheap > 0)
        event_free(heap_pop(s));
    for (uint32_t i = 0; i < s->nnodes; i++) {
        struct sim_node *nd = &s->node[i];
        if (nd->core != NULL) {
            /* Drain the way a crash does, then free. */
            crash_node(s, nd);
            s->res->crashes--;
            while (s->nheap > 0)
                event_free(heap_pop(s));
        }
        store_clear(&nd->durable);
        store_clear(&nd->overlay);
        free(nd->state);
    }
    ring_state_destroy(s->final);
    sim__work_free(s);
    ring_destroy(s->ring);
    free(s->heap);
    free(s->epochs);
    if (s->xx)
        XXH64_freeState(s->xx);
}

int sim_run(const struct sim_config *c, struct sim_result *res)
{
    struct sim *s;
    int err;

    memset(res, 0, sizeof(*res));
    res->seed = c->seed;
    if (c->nodes < SIM_MIN_NODES || c->nodes > SIM_MAX_NODES ||
        c->clients < 1 || c->clients > SIM_MAX_CLIENTS || c->n < 1 ||
        c->n > QUORUM_MAX_N || c->r < 1 || c->w < 1 || c->r > c->n ||
        c->w > c->n || c->faults >= SIM_FAULTS_MAX ||
        c->membership >= SIM_MEMBERSHIP_MAX)
        return -EINVAL;
    if ((s = calloc(1, sizeof(*s))) == NULL)
        return -ENOMEM;
    s->cfg = *c;
    s->res = res;
    if ((err = sim_setup(s)) != 0) {
        res->sim_errors++;
        goto out;
    }
    sim__trace(s,
               "seed %" PRIu64 ": %u nodes n=%u r=%u w=%u, %u clients, "
               "faults %s: delay %" PRIu64 "..%" PRIu64 " ms%s loss %.2f "
               "dup %.2f nemesis every %" PRIu64 " ms (%s%s%s%s) skew "
               "+-%" PRIu64 " ms timeout %" PRIu64 " ms",
               c->seed, c->nodes, c->n, c->r, c->w, c->clients,
               sim_faults_name(c->faults), s->p.delay_min_ms, s->p.delay_max_ms,
               s->p.delay_skewed ? " (skewed)" : "", s->p.loss, s->p.dup,
               s->p.nemesis_every_ms, s->p.partitions ? "partitions " : "",
               s->p.crashes ? "crashes " : "", s->p.pauses ? "pauses " : "",
               s->p.wipes ? "wipes" : "", s->p.skew_max_ms, s->p.timeout_ms);
    s->active = true;
    if (s->p.nemesis_every_ms > 0)
        sim__event(s, s->p.nemesis_every_ms, SIM_EV_NEMESIS, -1);
    sim__event(s, c->duration_ms, SIM_EV_END_ACTIVE, -1);
    if (s->membership) {
        uint64_t k = sim__range(&s->member, 1, 3);
        for (uint64_t i = 0; i < k; i++)
            sim__event(s,
                       sim__range(&s->member, 1000,
                                  c->duration_ms * 3 / 4 > 1000
                                      ? c->duration_ms * 3 / 4
                                      : 1000),
                       SIM_EV_MEMBER, -1);
    }
    sim__work_start(s);
    if (!run_until(s, c->duration_ms)) {
        res->sim_errors++;
        sim__report(s, "the event budget ran out in the active phase");
        goto out;
    }
    if (!settle(s, c->duration_ms + SIM_QUIESCE_MS)) {
        res->unsettled++;
        sim__report(s, "membership did not settle after the active phase");
    }
    if (!run_queue(s, s->now + SIM_QUIESCE_MS)) {
        res->sim_errors++;
        sim__report(s, "the cluster did not quiesce after the active phase");
        goto out;
    }
    sim__trace(s, "QUIESCED: one r=%u read per key", s->nval);
    sim__work_final_reads(s);
    if (!run_queue(s, s->now + SIM_QUIESCE_MS)) {
        res->sim_errors++;
        sim__report(s, "the cluster did not quiesce after the final reads");
        goto out;
    }
    sim__work_check(s);
out:
    res->end_ms = s->now;
    res->hash = s->xx ? XXH64_digest(s->xx) : 0;
    sim_teardown(s);
    res->failures = res->lost_acked + res->diverged + res->definite_observed +
                    res->resurrected + res->vv_regressed +
                    res->ack_underreplicated + res->epoch_reused +
                    res->final_read_failed + res->misplaced + res->unsettled +
                    res->sim_errors;
    free(s);
    return res->failures ? 1 : 0;
}
