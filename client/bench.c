/*
 * bench.c - ringkv-bench: load generator and staleness meter for ringkv
 * (native protocol) and, with --resp, for any RESP server (SET/GET).
 *
 *   main: options -> resolve nodes -> T worker threads -> progress line
 *         (stderr, once a second, on a terminal) -> merge -> report
 *   worker (own uv loop, connections i with i % T == its index):
 *     connect all -> barrier -> warmup -> measure -> drain -> close
 *     closed loop: every answer frees a slot that is refilled at once
 *     open loop:   a 1 ms timer sends every request whose intended time
 *                  (bench_sched_intended) has come, on any connection with
 *                  a free slot; latency counts from the intended time
 *     staleness:   each connection writes its own keys pbs:<conn>:<j> one
 *                  at a time with increasing versions; each acknowledged
 *                  write schedules reads at the --delays on the worker's
 *                  connections (a bounded min-heap by due time)
 *
 * Design: the logic (histogram, key choice, schedule, classifier, options,
 * RESP replies) is in bench_*.c, pure and unit-tested; this file is I/O.
 * Each worker owns its results; main merges them after the threads end, so
 * nothing is shared but the progress snapshot (under a mutex) and a few
 * atomics.
 *
 * Invariants:
 *  - a slot is busy from its request's encoding until its answer (or the
 *    connection's death) and outstanding counts the busy slots;
 *  - native ids are seq * pipeline + slot + 1, so an answer names its slot
 *    and an id that is not the slot's current one is a protocol error;
 *  - RESP answers come in order: fifo holds the busy slots oldest first;
 *  - requests are encoded into a connection's out buffer and written at the
 *    end of the callback that made them (flush_dirty), one write per
 *    connection per callback, so a pipeline refills with one syscall;
 *  - a connection that fails is dead: its busy slots are counted as
 *    indefinite errors and it sends nothing more.
 */
#include <errno.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "client/bench.h"
#include "proto/errors.h"
#include "proto/resp.h"
#include "proto/wire.h"

enum { OP_GET = 0, OP_PUT, OP_RMW, NOPS };
static const char *const OP_NAMES[NOPS] = {"get", "put", "rmw"};

enum phase { PH_CONNECT = 0, PH_WARMUP, PH_MEASURE, PH_DRAIN, PH_DONE };

#define READ_CHUNK       (64u << 10)
#define MAX_RESPONSE     (64u << 20)
#define MAX_CTX          (64u << 10) /* a context we keep for a put */
#define CTX_CACHE_MAX    65536       /* per worker: key -> last context */
#define CTX_CACHE_SLOT   192         /* bytes of one cached context */
#define STALE_HEAP_MAX   65536       /* scheduled staleness reads per worker */
#define DRAIN_TIMEOUT_MS 30000
#define NCODES           (RK_ERR_LAST_ - RK_ERR_BASE) /* [0] = system */
#define KEY_MAX          48

/* What one worker measured; main merges them. */
struct result {
    struct bench_hist hist[NOPS];
    uint64_t ops[NOPS];
    uint64_t notfound, definite, indefinite;
    uint64_t codes[NCODES];
    uint64_t ctx_uncached; /* puts sent without a context: cache miss */
    uint64_t unfinished;   /* still unanswered at the drain timeout */
    uint64_t first_ns, last_ns;
    struct bench_stale stale;
    char sample[200]; /* the first error message */
};

struct slot {
    uint64_t id;
    uint64_t intended, sent;
    uint64_t key; /* key index; staleness: global stale key */
    uint64_t version;
    uint8_t op, phase; /* rmw: phase 0 get, 1 put */
    bool busy, measured, stale;
    uint16_t delay;
    uint32_t writer;
    uint8_t *ctx; /* rmw: the get's context */
    uint32_t ctx_len, ctx_cap;
};

struct stale_read {
    uint64_t due;
    uint64_t version;
    uint32_t key;
    uint16_t delay;
    uint16_t reader;
    uint32_t writer;
    bool measured;
};

struct ctx_entry {
    uint64_t key;
    uint32_t len; /* 0 = empty */
    uint8_t data[CTX_CACHE_SLOT];
};

struct worker;

struct conn {
    struct worker *w;
    unsigned gidx, lidx;
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    struct wire_buf out, wbuf, in;
    msgpack_zone zone;
    struct slot *slots;
    uint32_t *free_slots, nfree;
    uint32_t *fifo, fifo_head, fifo_count;
    unsigned outstanding;
    uint64_t seq;
    bool inited, zone_ok, connected, dead, writing, dirty;
    /* staleness */
    uint64_t *versions; /* own keys: the last version sent */
    uint64_t next_own;
    bool writer_busy;
    uint64_t *last_seen; /* every stale key: newest version read */
};

struct worker {
    unsigned idx;
    uv_loop_t loop;
    uv_thread_t thread;
    uv_timer_t tick, phase_timer, progress;
    struct conn *conns;
    unsigned nconns;
    struct conn **dirty; /* connections with requests to flush */
    unsigned ndirty;
    unsigned pending_connects;
    int setup_err;
    char setup_msg[300];
    enum phase phase;
    uint64_t start_ns, measure_ns;
    uint64_t quota, issued; /* --ops: measured requests to send */
    double rate;            /* this worker's share; 0 = closed loop */
    uint64_t sched_i;       /* open loop: next request index */
    unsigned rr;            /* open loop: next connection to try */
    struct bench_rng rng;
    struct result res;
    struct bench_hist interval; /* progress: since the last snapshot */
    uint64_t interval_ops, interval_errs;
    struct ctx_entry *ctx_cache;
    size_t ctx_cache_n;
    uint8_t *value;
    struct stale_read *heap;
    size_t nheap;
    uint64_t stale_kpc;
    bool loop_ok;
    atomic_bool done;
};

static struct bench_opts opts;
static struct sockaddr_storage addrs[BENCH_MAX_NODES];
static struct bench_zipf zipf;
static uv_barrier_t start_barrier;
static atomic_int setup_failed;
static uv_mutex_t progress_mu;
static struct bench_hist progress_hist;
static uint64_t progress_ops, progress_errs;

static void conn_kill(struct conn *c, int err, const char *why);
static void issue_more(struct conn *c);
static void open_loop_send(struct worker *w);
static void stale_next_write(struct conn *c);

static uint64_t now_ns(void)
{
    return uv_hrtime();
}

/* ---- results --------------------------------------------------------------
 */

static void result_error(struct result *r, int err, bool definite,
                         const char *msg, size_t msg_len)
{
    if (definite)
        r->definite++;
    else
        r->indefinite++;
    int idx = err <= RK_ERR_BASE || err >= RK_ERR_LAST_ ? 0 : err - RK_ERR_BASE;
    r->codes[idx]++;
    if (r->sample[0] == '\0')
        snprintf(r->sample, sizeof(r->sample), "%s: %.*s", rk_err_code(err),
                 (int)(msg_len > 150 ? 150 : msg_len), msg != NULL ? msg : "");
}

static void result_merge(struct result *dst, const struct result *src)
{
    for (int i = 0; i < NOPS; i++) {
        bench_hist_merge(&dst->hist[i], &src->hist[i]);
        dst->ops[i] += src->ops[i];
    }
    dst->notfound += src->notfound;
    dst->definite += src->definite;
    dst->indefinite += src->indefinite;
    for (int i = 0; i < NCODES; i++)
        dst->codes[i] += src->codes[i];
    dst->ctx_uncached += src->ctx_uncached;
    dst->unfinished += src->unfinished;
    if (src->first_ns != 0 &&
        (dst->first_ns == 0 || src->first_ns < dst->first_ns))
        dst->first_ns = src->first_ns;
    if (src->last_ns > dst->last_ns)
        dst->last_ns = src->last_ns;
    bench_stale_merge(&dst->stale, &src->stale);
    if (dst->sample[0] == '\0')
        memcpy(dst->sample, src->sample, sizeof(dst->sample));
}

/* ---- the context cache ----------------------------------------------------
 */

static struct ctx_entry *ctx_slot(struct worker *w, uint64_t key)
{
    return &w->ctx_cache[(key * 0x9e3779b97f4a7c15ull >> 17) % w->ctx_cache_n];
}

static void ctx_store(struct worker *w, uint64_t key, const uint8_t *ctx,
                      uint32_t len)
{
    struct ctx_entry *e = ctx_slot(w, key);
    if (len == 0 || len > CTX_CACHE_SLOT) {
        if (e->key == key)
            e->len = 0;
        return;
    }
    e->key = key;
    e->len = len;
    memcpy(e->data, ctx, len);
}

static const struct ctx_entry *ctx_find(struct worker *w, uint64_t key)
{
    struct ctx_entry *e = ctx_slot(w, key);
    return e->len > 0 && e->key == key ? e : NULL;
}

/* ---- staleness heap ---------------------------------------------------------
 */

static void heap_push(struct worker *w, const struct stale_read *r)
{
    if (w->nheap == STALE_HEAP_MAX) {
        w->res.stale.dropped++;
        return;
    }
    size_t i = w->nheap++;
    while (i > 0 && w->heap[(i - 1) / 2].due > r->due) {
        w->heap[i] = w->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    w->heap[i] = *r;
}

static void heap_pop(struct worker *w)
{
    struct stale_read last = w->heap[--w->nheap];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= w->nheap)
            break;
        if (c + 1 < w->nheap && w->heap[c + 1].due < w->heap[c].due)
            c++;
        if (last.due <= w->heap[c].due)
            break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (w->nheap > 0)
        w->heap[i] = last;
}

/* ---- sending
 * ------------------------------------------------------------------ */

static void on_write(uv_write_t *req, int status);

static void conn_flush(struct conn *c)
{
    if (c->dead || c->writing || c->out.len == 0)
        return;
    struct wire_buf t = c->wbuf;
    c->wbuf = c->out;
    c->out = t;
    c->out.len = 0;
    uv_buf_t b = uv_buf_init((char *)c->wbuf.data, (unsigned)c->wbuf.len);
    int rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (rc != 0) {
        conn_kill(c, rc, "write failed");
        return;
    }
    c->writing = true;
}

static void on_write(uv_write_t *req, int status)
{
    struct conn *c = req->data;
    c->writing = false;
    c->wbuf.len = 0;
    if (status != 0) {
        if (status != UV_ECANCELED)
            conn_kill(c, status, "write failed");
        return;
    }
    conn_flush(c);
}

static struct slot *slot_take(struct conn *c)
{
    if (c->nfree == 0)
        return NULL;
    uint32_t i = c->free_slots[--c->nfree];
    struct slot *s = &c->slots[i];
    s->busy = true;
    s->stale = false;
    s->phase = 0;
    c->outstanding++;
    if (opts.resp)
        c->fifo[(c->fifo_head + c->fifo_count++) % opts.pipeline] = i;
    return s;
}

static void slot_release(struct conn *c, struct slot *s)
{
    s->busy = false;
    s->id = 0;
    c->outstanding--;
    c->free_slots[c->nfree++] = (uint32_t)(s - c->slots);
}

static size_t key_name(char *buf, const struct slot *s)
{
    int n;
    if (s->stale)
        n = snprintf(buf, KEY_MAX, "pbs:%llu", (unsigned long long)s->key);
    else
        n = snprintf(buf, KEY_MAX, "key:%llu", (unsigned long long)s->key);
    return (size_t)n;
}

/* Encodes the request slot s stands for (its op and phase) and sends it. */
static void send_slot(struct conn *c, struct slot *s)
{
    struct worker *w = c->w;
    char key[KEY_MAX];
    size_t klen = key_name(key, s);
    bool is_get = s->op == OP_GET || (s->op == OP_RMW && s->phase == 0);
    int rc;
    if (s->stale && !is_get)
        bench_value_fill(w->value, opts.value_size, s->version);
    if (opts.resp) {
        rc = resp_array(&c->out, is_get ? 2 : 3);
        rc |= resp_bulk(&c->out, is_get ? "GET" : "SET", 3);
        rc |= resp_bulk(&c->out, key, klen);
        if (!is_get)
            rc |= resp_bulk(&c->out, w->value, opts.value_size);
    } else {
        uint32_t sidx = (uint32_t)(s - c->slots);
        s->id = ++c->seq * opts.pipeline + sidx + 1;
        struct wire_req q = {.id = s->id,
                             .op = is_get ? WIRE_OP_GET : WIRE_OP_PUT,
                             .key = (const uint8_t *)key,
                             .key_len = (uint32_t)klen,
                             .r = (uint8_t)opts.r,
                             .w = (uint8_t)opts.w};
        if (!is_get) {
            q.value = w->value;
            q.value_len = opts.value_size;
            uint64_t ck = s->stale ? s->key | (1ull << 63) : s->key;
            const struct ctx_entry *e;
            if (s->op == OP_RMW) {
                q.ctx = s->ctx_len > 0 ? s->ctx : NULL;
                q.ctx_len = s->ctx_len;
            } else if ((e = ctx_find(w, ck)) != NULL) {
                q.ctx = e->data;
                q.ctx_len = e->len;
            } else if (s->measured) {
                w->res.ctx_uncached++;
            }
        }
        rc = wire_encode_req(&c->out, &q);
    }
    if (rc != 0) {
        conn_kill(c, -ENOMEM, "out of memory encoding a request");
        return;
    }
    s->sent = now_ns();
    if (!c->dirty) {
        c->dirty = true;
        w->dirty[w->ndirty++] = c;
    }
}

/* Writes what the callback that is ending queued: one write per connection
 * for all its new requests, as a pipelining client does. */
static void flush_dirty(struct worker *w)
{
    for (unsigned i = 0; i < w->ndirty; i++) {
        w->dirty[i]->dirty = false;
        conn_flush(w->dirty[i]);
    }
    w->ndirty = 0;
}

static bool may_issue(struct worker *w)
{
    if (w->phase != PH_WARMUP && w->phase != PH_MEASURE)
        return false;
    return w->quota == 0 || w->phase == PH_WARMUP || w->issued < w->quota;
}

static uint64_t pick_key(struct worker *w)
{
    if (opts.dist == BENCH_DIST_ZIPF)
        return bench_zipf_scramble(
            bench_zipf_rank(&zipf, bench_rng_unit(&w->rng)), opts.keys);
    return bench_rng_next(&w->rng) % opts.keys;
}

/* Starts one workload request intended at intended_ns on c (a free slot
 * must exist). */
static void issue(struct conn *c, uint64_t intended_ns)
{
    struct worker *w = c->w;
    struct slot *s = slot_take(c);
    double u = bench_rng_unit(&w->rng);
    s->op = u < opts.read_ratio ? OP_GET : opts.rmw ? OP_RMW : OP_PUT;
    s->key = pick_key(w);
    s->intended = intended_ns;
    s->measured = w->phase == PH_MEASURE && intended_ns >= w->measure_ns;
    s->ctx_len = 0;
    if (s->measured)
        w->issued++;
    send_slot(c, s);
}

static void issue_more(struct conn *c)
{
    struct worker *w = c->w;
    if (c->dead || w->rate > 0 || opts.staleness)
        return;
    while (c->nfree > 0 && may_issue(w))
        issue(c, now_ns());
}

/* ---- finishing
 * ------------------------------------------------------------------ */

static void on_close(uv_handle_t *h)
{
}

static unsigned outstanding(const struct worker *w)
{
    unsigned n = 0;
    for (unsigned i = 0; i < w->nconns; i++)
        n += w->conns[i].dead ? 0 : w->conns[i].outstanding;
    return n;
}

static void worker_finish(struct worker *w)
{
    if (w->phase == PH_DONE)
        return;
    w->phase = PH_DONE;
    for (unsigned i = 0; i < w->nconns; i++) {
        struct conn *c = &w->conns[i];
        if (!c->dead && c->outstanding > 0)
            w->res.unfinished += c->outstanding;
        c->dead = true;
        if (c->inited && !uv_is_closing((uv_handle_t *)&c->tcp))
            uv_close((uv_handle_t *)&c->tcp, on_close);
    }
    uv_timer_stop(&w->tick);
    uv_timer_stop(&w->phase_timer);
    uv_timer_stop(&w->progress);
    uv_close((uv_handle_t *)&w->tick, on_close);
    uv_close((uv_handle_t *)&w->phase_timer, on_close);
    uv_close((uv_handle_t *)&w->progress, on_close);
}

/* Drained, or nothing more to send and nothing outstanding: done. */
static void maybe_finish(struct worker *w)
{
    if (w->phase == PH_DONE)
        return;
    bool alive = false;
    for (unsigned i = 0; i < w->nconns; i++)
        alive |= !w->conns[i].dead;
    if (!alive) {
        worker_finish(w);
        return;
    }
    bool stopped =
        w->phase == PH_DRAIN ||
        (w->phase == PH_MEASURE && w->quota > 0 && w->issued >= w->quota);
    if (stopped && outstanding(w) == 0 && w->nheap == 0)
        worker_finish(w);
}

/* ---- answers
 * ------------------------------------------------------------------ */

/* Records a finished request. */
static void record(struct conn *c, struct slot *s, uint64_t done)
{
    struct worker *w = c->w;
    uint64_t lat = bench_latency(w->rate > 0 && !opts.staleness, s->intended,
                                 s->sent, done);
    bench_hist_add(&w->interval, lat); /* progress: warmup included */
    w->interval_ops++;
    if (!s->measured)
        return;
    bench_hist_add(&w->res.hist[s->op], lat);
    w->res.ops[s->op]++;
    if (w->res.first_ns == 0)
        w->res.first_ns = w->measure_ns;
    w->res.last_ns = done;
}

static void slot_error(struct conn *c, struct slot *s, int err, bool definite,
                       const char *msg, size_t msg_len)
{
    struct worker *w = c->w;
    if (s->measured) {
        result_error(&w->res, err, definite, msg, msg_len);
        w->interval_errs++;
    }
}

/* The version a get read: the newest of the siblings (0 = none). */
static uint64_t newest_version(struct worker *w, const struct wire_resp *r)
{
    uint64_t best = 0;
    for (uint32_t i = 0; i < r->nvalues; i++) {
        uint64_t v = 0;
        if (bench_value_version(r->values[i].data, r->values[i].len, &v) != 0)
            w->res.stale.undecodable++;
        else if (v > best)
            best = v;
    }
    return best;
}

static void stale_answer(struct conn *c, struct slot *s, uint64_t done,
                         const struct wire_resp *r)
{
    struct worker *w = c->w;
    if (s->op == OP_PUT) {
        c->writer_busy = false;
        if (r->err == 0) {
            struct stale_read sr = {.version = s->version,
                                    .key = (uint32_t)s->key,
                                    .writer = c->gidx,
                                    .measured = s->measured};
            for (size_t d = 0; d < opts.ndelays; d++) {
                sr.due = done + (uint64_t)(opts.delays_ms[d] * 1e6);
                sr.delay = (uint16_t)d;
                sr.reader = (uint16_t)((c->lidx + d) % w->nconns);
                heap_push(w, &sr);
            }
        }
        return;
    }
    if (r->err != 0)
        return;
    uint64_t got = newest_version(w, r);
    uint64_t *last = &c->last_seen[s->key];
    bench_stale_record(&w->res.stale, s->delay, s->version, got,
                       s->writer == c->gidx, last);
}

static void native_answer(struct conn *c, const struct wire_resp *r)
{
    struct worker *w = c->w;
    if (r->id == 0 || r->id > (uint64_t)(c->seq + 1) * opts.pipeline) {
        conn_kill(c, r->err != 0 ? r->err : RK_EPROTO,
                  r->msg != NULL ? r->msg : "answer to a request never sent");
        return;
    }
    struct slot *s = &c->slots[(r->id - 1) % opts.pipeline];
    if (!s->busy || s->id != r->id) {
        conn_kill(c, RK_EPROTO, "answer to a request never sent");
        return;
    }
    uint64_t done = now_ns();
    bool is_get = s->op == OP_GET || (s->op == OP_RMW && s->phase == 0);
    uint64_t ck = s->stale ? s->key | (1ull << 63) : s->key;
    if (r->err == 0 && r->ctx != NULL)
        ctx_store(w, ck, r->ctx, r->ctx_len);
    if (r->err != 0) {
        const char *m = r->msg != NULL ? r->msg : rk_err_msg(r->err);
        slot_error(c, s, r->err, r->definite, m, strlen(m));
    } else if (is_get && r->nvalues == 0 && s->measured && !s->stale) {
        w->res.notfound++;
    }
    if (s->op == OP_RMW && s->phase == 0 && r->err == 0) {
        /* read done: write back with its context */
        uint32_t len = r->ctx != NULL ? r->ctx_len : 0;
        if (len > MAX_CTX) {
            len = 0;
            if (s->measured)
                w->res.ctx_uncached++;
        }
        if (len > s->ctx_cap) {
            uint8_t *p = realloc(s->ctx, len);
            if (p == NULL) {
                conn_kill(c, -ENOMEM, "out of memory keeping a context");
                return;
            }
            s->ctx = p;
            s->ctx_cap = len;
        }
        if (len > 0)
            memcpy(s->ctx, r->ctx, len);
        s->ctx_len = len;
        s->phase = 1;
        send_slot(c, s);
        return;
    }
    if (s->stale)
        stale_answer(c, s, done, r);
    if (r->err == 0)
        record(c, s, done);
    bool was_stale_write = s->stale && s->op == OP_PUT;
    slot_release(c, s);
    if (was_stale_write)
        stale_next_write(c);
    issue_more(c);
    if (w->rate > 0)
        open_loop_send(w);
}

static void on_resp_answer(struct conn *c, const struct bench_resp_reply *r)
{
    struct worker *w = c->w;
    if (c->fifo_count == 0) {
        conn_kill(c, RK_EPROTO, "a reply to nothing asked");
        return;
    }
    struct slot *s = &c->slots[c->fifo[c->fifo_head]];
    bool is_get = s->op == OP_GET || (s->op == OP_RMW && s->phase == 0);
    uint64_t done = now_ns();
    c->fifo_head = (c->fifo_head + 1) % opts.pipeline;
    c->fifo_count--;
    bool ok = true;
    if (r->type == BENCH_RESP_ERROR) {
        /* RESP has no definite flag: an error may have been applied */
        slot_error(c, s, RK_EINTERNAL, false, (const char *)r->p, r->len);
        ok = false;
    } else if (is_get && r->type == BENCH_RESP_NIL) {
        if (s->measured)
            w->res.notfound++;
    } else if (is_get ? r->type != BENCH_RESP_BULK
                      : r->type != BENCH_RESP_SIMPLE) {
        conn_kill(c, RK_EPROTO, "unexpected reply type");
        return;
    }
    if (s->op == OP_RMW && s->phase == 0 && ok) {
        s->phase = 1;
        c->fifo[(c->fifo_head + c->fifo_count++) % opts.pipeline] =
            (uint32_t)(s - c->slots);
        send_slot(c, s);
        return;
    }
    if (ok)
        record(c, s, done);
    slot_release(c, s);
    issue_more(c);
    if (w->rate > 0)
        open_loop_send(w);
}

/* Decodes every whole answer in c->in. */
static void conn_parse(struct conn *c)
{
    size_t off = 0;
    while (!c->dead) {
        if (opts.resp) {
            struct bench_resp_reply r;
            int n = bench_resp_reply(c->in.data + off, c->in.len - off,
                                     BENCH_MAX_VALUE, &r);
            if (n < 0) {
                conn_kill(c, RK_EPROTO, "undecodable RESP reply");
                return;
            }
            if (n == 0)
                break;
            off += (size_t)n;
            on_resp_answer(c, &r);
            continue;
        }
        struct wire_frame f;
        uint64_t skip = 0;
        enum wire_split sp = wire_split_next(c->in.data, c->in.len, &off,
                                             MAX_RESPONSE, false, &skip, &f);
        if (sp == WIRE_SPLIT_MORE)
            break;
        if (sp != WIRE_SPLIT_FRAME) {
            conn_kill(c, RK_EPROTO, "response frame length is 0 or too large");
            return;
        }
        struct wire_resp wr;
        const char *why = NULL;
        int rc = wire_decode_resp(f.body, f.len, &c->zone, &wr, &why);
        if (rc != 0 || wr.err > 0) {
            conn_kill(c, RK_EPROTO, why != NULL ? why : "bad error code");
            return;
        }
        native_answer(c, &wr);
        msgpack_zone_clear(&c->zone);
    }
    if (!c->dead)
        wire_buf_consume(&c->in, off);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct conn *c = h->data;
    if (wire_buf_reserve(&c->in, READ_CHUNK) != 0) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    *buf = uv_buf_init((char *)c->in.data + c->in.len,
                       (unsigned)(c->in.cap - c->in.len));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = st->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        conn_kill(c, (int)nread,
                  nread == UV_EOF ? "the server closed the connection"
                                  : "read failed");
        return;
    }
    c->in.len += (size_t)nread;
    conn_parse(c);
    flush_dirty(c->w);
    maybe_finish(c->w);
}

/* Marks c dead: what it had outstanding counts as indefinite errors. */
static void conn_kill(struct conn *c, int err, const char *why)
{
    if (c->dead)
        return;
    c->dead = true;
    for (uint32_t i = 0; i < opts.pipeline; i++) {
        struct slot *s = &c->slots[i];
        if (s->busy)
            slot_error(c, s, err, false, why, strlen(why));
    }
    if (c->w->phase == PH_CONNECT || c->w->phase == PH_DONE)
        return;
    uv_read_stop((uv_stream_t *)&c->tcp);
    fprintf(stderr, "ringkv-bench: connection %u to %s:%u: %s (%s)\n", c->gidx,
            opts.nodes[c->gidx % opts.nnodes].host,
            opts.nodes[c->gidx % opts.nnodes].port, why,
            err > RK_ERR_BASE ? uv_strerror(err) : rk_err_msg(err));
}

/* ---- open loop and staleness
 * --------------------------------------------------- */

static void open_loop_send(struct worker *w)
{
    if (w->phase != PH_WARMUP && w->phase != PH_MEASURE)
        return;
    uint64_t due = bench_sched_due(w->start_ns, w->rate, now_ns());
    while (w->sched_i < due && may_issue(w)) {
        struct conn *c = NULL;
        for (unsigned k = 0; k < w->nconns; k++) {
            struct conn *t = &w->conns[(w->rr + k) % w->nconns];
            if (!t->dead && t->nfree > 0) {
                c = t;
                w->rr = (w->rr + k + 1) % w->nconns;
                break;
            }
        }
        if (c == NULL)
            return; /* every slot busy: the backlog keeps its times */
        issue(c, bench_sched_intended(w->start_ns, w->rate, w->sched_i));
        w->sched_i++;
    }
}

static void stale_next_write(struct conn *c)
{
    struct worker *w = c->w;
    if (c->dead || c->writer_busy || !may_issue(w) || c->nfree == 0)
        return;
    /* reads that are due go first: writing faster than the readers keep up
     * would only delay the reads past their t */
    if (w->nheap > 0 && w->heap[0].due <= now_ns())
        return;
    struct slot *s = slot_take(c);
    uint64_t own = c->next_own++ % w->stale_kpc;
    s->stale = true;
    s->op = OP_PUT;
    s->key = (uint64_t)c->gidx * w->stale_kpc + own;
    s->version = ++c->versions[own];
    s->writer = c->gidx;
    s->intended = now_ns();
    s->measured = w->phase == PH_MEASURE;
    if (s->measured)
        w->issued++;
    c->writer_busy = true;
    send_slot(c, s);
}

static void stale_send_reads(struct worker *w)
{
    uint64_t now = now_ns();
    while (w->nheap > 0 && w->heap[0].due <= now) {
        struct stale_read r = w->heap[0];
        struct conn *c = &w->conns[r.reader];
        if (c->dead) {
            heap_pop(w);
            continue;
        }
        if (c->nfree == 0)
            return; /* the reader is busy: try again on the next tick */
        heap_pop(w);
        struct slot *s = slot_take(c);
        s->stale = true;
        s->op = OP_GET;
        s->key = r.key;
        s->version = r.version;
        s->delay = r.delay;
        s->writer = r.writer;
        s->intended = r.due;
        s->measured = r.measured;
        send_slot(c, s);
    }
}

static void on_tick(uv_timer_t *t)
{
    struct worker *w = t->data;
    if (opts.staleness) {
        stale_send_reads(w);
        for (unsigned i = 0; i < w->nconns; i++)
            stale_next_write(&w->conns[i]);
    } else if (w->rate > 0) {
        open_loop_send(w);
    }
    flush_dirty(w);
    maybe_finish(w);
}

static void on_phase(uv_timer_t *t)
{
    struct worker *w = t->data;
    uint64_t now = now_ns();
    if (w->phase == PH_WARMUP) {
        w->phase = PH_MEASURE;
        w->measure_ns = now;
        if (w->quota == 0)
            uv_timer_start(&w->phase_timer, on_phase,
                           (uint64_t)(opts.duration_s * 1000), 0);
        for (unsigned i = 0; i < w->nconns; i++)
            issue_more(&w->conns[i]);
        flush_dirty(w);
        return;
    }
    if (w->phase == PH_MEASURE) {
        /* stop sending; answers and scheduled staleness reads still run */
        w->phase = PH_DRAIN;
        uv_timer_start(&w->phase_timer, on_phase, DRAIN_TIMEOUT_MS, 0);
        maybe_finish(w);
        return;
    }
    /* the drain timed out */
    worker_finish(w);
}

static void on_progress(uv_timer_t *t)
{
    struct worker *w = t->data;
    uv_mutex_lock(&progress_mu);
    bench_hist_merge(&progress_hist, &w->interval);
    progress_ops += w->interval_ops;
    progress_errs += w->interval_errs;
    uv_mutex_unlock(&progress_mu);
    bench_hist_reset(&w->interval);
    w->interval_ops = w->interval_errs = 0;
}

/* ---- connecting and the worker thread
 * ---------------------------------------- */

static void on_connect(uv_connect_t *req, int status)
{
    struct conn *c = req->data;
    struct worker *w = c->w;
    if (status == 0) {
        uv_tcp_nodelay(&c->tcp, 1);
        status = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    }
    if (status != 0) {
        if (w->setup_err == 0) {
            w->setup_err = status;
            const struct bench_node *n = &opts.nodes[c->gidx % opts.nnodes];
            snprintf(w->setup_msg, sizeof(w->setup_msg),
                     "cannot connect to %s:%u: %s", n->host, n->port,
                     uv_strerror(status));
        }
        c->dead = true;
    } else {
        c->connected = true;
    }
    if (--w->pending_connects == 0)
        uv_stop(&w->loop);
}

static int conn_init(struct worker *w, struct conn *c, unsigned gidx,
                     unsigned lidx)
{
    c->w = w;
    c->gidx = gidx;
    c->lidx = lidx;
    wire_buf_init(&c->out);
    wire_buf_init(&c->wbuf);
    wire_buf_init(&c->in);
    if (!msgpack_zone_init(&c->zone, 4096))
        return -ENOMEM;
    c->zone_ok = true;
    c->slots = calloc(opts.pipeline, sizeof(*c->slots));
    c->free_slots = calloc(opts.pipeline, sizeof(*c->free_slots));
    c->fifo = calloc(opts.pipeline, sizeof(*c->fifo));
    if (c->slots == NULL || c->free_slots == NULL || c->fifo == NULL)
        return -ENOMEM;
    for (uint32_t i = 0; i < opts.pipeline; i++)
        c->free_slots[c->nfree++] = opts.pipeline - 1 - i;
    if (opts.staleness) {
        c->versions = calloc(w->stale_kpc, sizeof(*c->versions));
        c->last_seen =
            calloc(w->stale_kpc * opts.connections, sizeof(*c->last_seen));
        if (c->versions == NULL || c->last_seen == NULL)
            return -ENOMEM;
    }
    int rc = uv_tcp_init(&w->loop, &c->tcp);
    if (rc != 0)
        return rc;
    c->inited = true;
    c->tcp.data = c;
    c->creq.data = c;
    c->wreq.data = c;
    rc = uv_tcp_connect(&c->creq, &c->tcp,
                        (const struct sockaddr *)&addrs[gidx % opts.nnodes],
                        on_connect);
    if (rc == 0)
        w->pending_connects++;
    return rc;
}

static void conn_free(struct conn *c)
{
    wire_buf_free(&c->out);
    wire_buf_free(&c->wbuf);
    wire_buf_free(&c->in);
    if (c->zone_ok)
        msgpack_zone_destroy(&c->zone);
    if (c->slots != NULL)
        for (uint32_t i = 0; i < opts.pipeline; i++)
            free(c->slots[i].ctx);
    free(c->slots);
    free(c->free_slots);
    free(c->fifo);
    free(c->versions);
    free(c->last_seen);
}

static void worker_setup(struct worker *w)
{
    for (unsigned i = 0; i < w->nconns && w->setup_err == 0; i++) {
        int rc = conn_init(w, &w->conns[i], w->idx + i * opts.threads, i);
        if (rc != 0) {
            w->setup_err = rc;
            snprintf(w->setup_msg, sizeof(w->setup_msg),
                     "cannot set up connection %u: %s",
                     w->idx + i * opts.threads, uv_strerror(rc));
        }
    }
    if (w->pending_connects > 0)
        uv_run(&w->loop, UV_RUN_DEFAULT);
}

static void worker_main(void *arg)
{
    struct worker *w = arg;
    worker_setup(w);
    if (w->setup_err != 0)
        atomic_store(&setup_failed, 1);
    uv_barrier_wait(&start_barrier);
    uv_timer_init(&w->loop, &w->tick);
    uv_timer_init(&w->loop, &w->phase_timer);
    uv_timer_init(&w->loop, &w->progress);
    w->tick.data = w->phase_timer.data = w->progress.data = w;
    if (atomic_load(&setup_failed)) {
        worker_finish(w);
    } else {
        w->start_ns = now_ns();
        w->phase = PH_WARMUP;
        if (opts.warmup_s > 0) {
            w->measure_ns = w->start_ns + (uint64_t)(opts.warmup_s * 1e9);
            uv_timer_start(&w->phase_timer, on_phase,
                           (uint64_t)(opts.warmup_s * 1000), 0);
        } else {
            on_phase(&w->phase_timer);
        }
        if (w->rate > 0 || opts.staleness)
            uv_timer_start(&w->tick, on_tick, 1, 1);
        uv_timer_start(&w->progress, on_progress, 1000, 1000);
        for (unsigned i = 0; i < w->nconns; i++)
            issue_more(&w->conns[i]);
        on_tick(&w->tick);
    }
    uv_run(&w->loop, UV_RUN_DEFAULT);
    on_progress(&w->progress);
    atomic_store(&w->done, true);
}

/* ---- report
 * ------------------------------------------------------------------------ */

static double us(uint64_t ns)
{
    return (double)ns / 1000.0;
}

static const double PCTS[] = {50, 90, 99, 99.9};

static void report_human(const struct result *r, double secs)
{
    uint64_t total = r->ops[0] + r->ops[1] + r->ops[2];
    printf("ringkv-bench: %s, %zu node(s), %u connection(s), pipeline %u, "
           "%u thread(s), %s loop%s\n",
           opts.resp ? "RESP" : "native", opts.nnodes, opts.connections,
           opts.pipeline, opts.threads, opts.rate > 0 ? "open" : "closed",
           opts.rate > 0 ? " (latency from intended send time)" : "");
    printf("%-5s %10s %12s %10s %10s %10s %10s %10s\n", "op", "count", "ops/s",
           "p50 us", "p90 us", "p99 us", "p99.9 us", "max us");
    for (int i = 0; i < NOPS; i++) {
        const struct bench_hist *h = &r->hist[i];
        if (r->ops[i] == 0)
            continue;
        printf("%-5s %10llu %12.0f", OP_NAMES[i], (unsigned long long)r->ops[i],
               secs > 0 ? (double)r->ops[i] / secs : 0.0);
        for (size_t p = 0; p < sizeof(PCTS) / sizeof(PCTS[0]); p++)
            printf(" %10.1f", us(bench_hist_pct(h, PCTS[p])));
        printf(" %10.1f\n", us(h->max));
    }
    printf("total %10llu %12.0f  in %.3f s\n", (unsigned long long)total,
           secs > 0 ? (double)total / secs : 0.0, secs);
    printf("errors: definite %llu, indefinite %llu, unfinished %llu; "
           "not found %llu\n",
           (unsigned long long)r->definite, (unsigned long long)r->indefinite,
           (unsigned long long)r->unfinished, (unsigned long long)r->notfound);
    for (int i = 0; i < NCODES; i++)
        if (r->codes[i] > 0)
            printf("  %-14s %llu\n",
                   i == 0 ? "system" : rk_err_code(RK_ERR_BASE + i),
                   (unsigned long long)r->codes[i]);
    if (r->sample[0] != '\0')
        printf("  first error: %s\n", r->sample);
    if (r->ctx_uncached > 0)
        printf("puts without a context (cache miss): %llu\n",
               (unsigned long long)r->ctx_uncached);
    if (!opts.staleness)
        return;
    const struct bench_stale *s = &r->stale;
    printf("staleness (PBS): t ms, reads, P(consistent), k-staleness "
           "(versions behind: 0 1 2 ... %d+)\n",
           BENCH_MAX_K);
    for (size_t d = 0; d < s->ndelays; d++) {
        printf("  t=%-6g %8llu %8.4f  ", s->delays_ms[d],
               (unsigned long long)s->reads[d],
               s->reads[d] > 0 ? (double)s->consistent[d] / (double)s->reads[d]
                               : 0.0);
        for (int k = 0; k <= BENCH_MAX_K; k++)
            printf(" %llu", (unsigned long long)s->k[d][k]);
        printf("\n");
    }
    printf("  read-your-writes violations %llu, monotonic-read violations "
           "%llu, undecodable %llu, reads dropped (queue full) %llu\n",
           (unsigned long long)s->ryw_violations,
           (unsigned long long)s->mono_violations,
           (unsigned long long)s->undecodable, (unsigned long long)s->dropped);
}

static void report_json(const struct result *r, double secs)
{
    uint64_t total = r->ops[0] + r->ops[1] + r->ops[2];
    printf("{\"protocol\":\"%s\",\"nodes\":%zu,\"connections\":%u,"
           "\"pipeline\":%u,\"threads\":%u,\"loop\":\"%s\",\"rate\":%g,"
           "\"seconds\":%.6f,\"total\":%llu,\"throughput\":%.1f,\"ops\":{",
           opts.resp ? "resp" : "native", opts.nnodes, opts.connections,
           opts.pipeline, opts.threads, opts.rate > 0 ? "open" : "closed",
           opts.rate, secs, (unsigned long long)total,
           secs > 0 ? (double)total / secs : 0.0);
    for (int i = 0; i < NOPS; i++) {
        const struct bench_hist *h = &r->hist[i];
        printf("%s\"%s\":{\"count\":%llu,\"throughput\":%.1f,\"p50_us\":%.1f,"
               "\"p90_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,"
               "\"max_us\":%.1f}",
               i > 0 ? "," : "", OP_NAMES[i], (unsigned long long)r->ops[i],
               secs > 0 ? (double)r->ops[i] / secs : 0.0,
               us(bench_hist_pct(h, 50)), us(bench_hist_pct(h, 90)),
               us(bench_hist_pct(h, 99)), us(bench_hist_pct(h, 99.9)),
               us(h->max));
    }
    printf("},\"errors\":{\"definite\":%llu,\"indefinite\":%llu,"
           "\"unfinished\":%llu,\"not_found\":%llu,\"by_code\":{",
           (unsigned long long)r->definite, (unsigned long long)r->indefinite,
           (unsigned long long)r->unfinished, (unsigned long long)r->notfound);
    bool first = true;
    for (int i = 0; i < NCODES; i++) {
        if (r->codes[i] == 0)
            continue;
        printf("%s\"%s\":%llu", first ? "" : ",",
               i == 0 ? "system" : rk_err_code(RK_ERR_BASE + i),
               (unsigned long long)r->codes[i]);
        first = false;
    }
    printf("}},\"puts_without_context\":%llu",
           (unsigned long long)r->ctx_uncached);
    if (opts.staleness) {
        const struct bench_stale *s = &r->stale;
        printf(",\"staleness\":{\"delays\":[");
        for (size_t d = 0; d < s->ndelays; d++) {
            printf("%s{\"t_ms\":%g,\"reads\":%llu,\"p_consistent\":%.6f,"
                   "\"k\":[",
                   d > 0 ? "," : "", s->delays_ms[d],
                   (unsigned long long)s->reads[d],
                   s->reads[d] > 0
                       ? (double)s->consistent[d] / (double)s->reads[d]
                       : 0.0);
            for (int k = 0; k <= BENCH_MAX_K; k++)
                printf("%s%llu", k > 0 ? "," : "",
                       (unsigned long long)s->k[d][k]);
            printf("]}");
        }
        printf("],\"ryw_violations\":%llu,\"monotonic_violations\":%llu,"
               "\"undecodable\":%llu,\"dropped\":%llu}",
               (unsigned long long)s->ryw_violations,
               (unsigned long long)s->mono_violations,
               (unsigned long long)s->undecodable,
               (unsigned long long)s->dropped);
    }
    printf("}\n");
}

/* ---- main
 * -------------------------------------------------------------------------- */

static int resolve(void)
{
    for (size_t i = 0; i < opts.nnodes; i++) {
        struct addrinfo hints = {.ai_family = AF_UNSPEC,
                                 .ai_socktype = SOCK_STREAM};
        struct addrinfo *ai = NULL;
        char port[8];
        snprintf(port, sizeof(port), "%u", opts.nodes[i].port);
        int rc = getaddrinfo(opts.nodes[i].host, port, &hints, &ai);
        if (rc != 0 || ai == NULL) {
            fprintf(stderr, "ringkv-bench: cannot resolve host '%s': %s\n",
                    opts.nodes[i].host, gai_strerror(rc));
            return -1;
        }
        memcpy(&addrs[i], ai->ai_addr, ai->ai_addrlen);
        freeaddrinfo(ai);
    }
    return 0;
}

static void progress_line(uint64_t elapsed_ms)
{
    uv_mutex_lock(&progress_mu);
    uint64_t ops = progress_ops, errs = progress_errs;
    uint64_t p99 = bench_hist_pct(&progress_hist, 99);
    progress_ops = progress_errs = 0;
    bench_hist_reset(&progress_hist);
    uv_mutex_unlock(&progress_mu);
    fprintf(stderr, "\r[%5.0f s] %10llu ops/s  errors %llu  p99 %.1f us   ",
            (double)elapsed_ms / 1000.0, (unsigned long long)ops,
            (unsigned long long)errs, us(p99));
}

int main(int argc, char **argv)
{
    char err[300] = "";
    if (bench_opts_parse(&opts, argc, argv, err, sizeof(err)) != 0) {
        fprintf(stderr, "ringkv-bench: %s\n", err);
        return 2;
    }
    if (opts.help) {
        bench_usage(stdout);
        return 0;
    }
    if (opts.pbs) {
        printf("%.6f\n", bench_pbs_closed_form(opts.pbs_n, opts.pbs_r,
                                               opts.pbs_w, opts.pbs_k));
        return 0;
    }
    if (opts.dist == BENCH_DIST_ZIPF &&
        bench_zipf_init(&zipf, opts.keys, opts.theta) != 0) {
        fprintf(stderr, "ringkv-bench: --dist zipf: bad parameters\n");
        return 2;
    }
    if (resolve() != 0)
        return 2;

    int rc = 2;
    struct worker *ws = calloc(opts.threads, sizeof(*ws));
    struct result *total = calloc(1, sizeof(*total));
    uv_mutex_init(&progress_mu);
    uv_barrier_init(&start_barrier, opts.threads);
    if (ws == NULL || total == NULL) {
        fprintf(stderr, "ringkv-bench: out of memory\n");
        goto out;
    }
    bench_stale_init(&total->stale, opts.delays_ms, opts.ndelays);
    unsigned started = 0;
    for (unsigned t = 0; t < opts.threads; t++) {
        struct worker *w = &ws[t];
        w->idx = t;
        w->nconns = opts.connections / opts.threads +
                    (t < opts.connections % opts.threads);
        w->rate = opts.rate * (double)w->nconns / (double)opts.connections;
        if (opts.ops > 0)
            w->quota = opts.ops / opts.threads + (t < opts.ops % opts.threads);
        w->stale_kpc = opts.keys / opts.connections;
        bench_rng_seed(&w->rng, opts.seed * 0x100000001b3ull + t);
        bench_stale_init(&w->res.stale, opts.delays_ms, opts.ndelays);
        w->ctx_cache_n = opts.keys < CTX_CACHE_MAX ? opts.keys : CTX_CACHE_MAX;
        if (opts.staleness)
            w->ctx_cache_n = CTX_CACHE_MAX;
        w->ctx_cache = calloc(w->ctx_cache_n, sizeof(*w->ctx_cache));
        w->conns = calloc(w->nconns, sizeof(*w->conns));
        w->dirty = calloc(w->nconns, sizeof(*w->dirty));
        w->value = malloc(opts.value_size + 1);
        w->heap =
            opts.staleness ? calloc(STALE_HEAP_MAX, sizeof(*w->heap)) : NULL;
        if (w->ctx_cache == NULL || w->conns == NULL || w->dirty == NULL ||
            w->value == NULL || (opts.staleness && w->heap == NULL) ||
            uv_loop_init(&w->loop) != 0) {
            fprintf(stderr, "ringkv-bench: out of memory\n");
            goto out;
        }
        w->loop_ok = true;
        memset(w->value, 'x', opts.value_size + 1);
    }
    for (unsigned t = 0; t < opts.threads; t++) {
        if (uv_thread_create(&ws[t].thread, worker_main, &ws[t]) != 0) {
            fprintf(stderr, "ringkv-bench: cannot start a thread\n");
            abort(); /* the barrier waits for every thread */
        }
        started++;
    }
    bool tty = isatty(STDERR_FILENO) != 0 && !opts.json;
    uint64_t t0 = now_ns(), next = 1000;
    for (;;) {
        bool all = true;
        for (unsigned t = 0; t < opts.threads; t++)
            all &= atomic_load(&ws[t].done);
        if (all)
            break;
        uv_sleep(50);
        uint64_t ms = (now_ns() - t0) / 1000000;
        if (tty && ms >= next && !atomic_load(&setup_failed)) {
            progress_line(ms);
            next += 1000;
        }
    }
    if (tty && next > 1000)
        fputc('\n', stderr);
    for (unsigned t = 0; t < started; t++)
        uv_thread_join(&ws[t].thread);
    bool failed = false;
    for (unsigned t = 0; t < opts.threads; t++) {
        if (ws[t].setup_err != 0) {
            if (!failed)
                fprintf(stderr, "ringkv-bench: %s\n", ws[t].setup_msg);
            failed = true;
        }
        result_merge(total, &ws[t].res);
    }
    if (!failed) {
        double secs = total->last_ns > total->first_ns
                          ? (double)(total->last_ns - total->first_ns) / 1e9
                          : 0.0;
        if (opts.json)
            report_json(total, secs);
        else
            report_human(total, secs);
        rc = 0;
    }
out:
    for (unsigned t = 0; ws != NULL && t < opts.threads; t++) {
        struct worker *w = &ws[t];
        if (w->conns != NULL)
            for (unsigned i = 0; i < w->nconns; i++)
                conn_free(&w->conns[i]);
        if (w->loop_ok) {
            uv_run(&w->loop, UV_RUN_DEFAULT);
            if (uv_loop_close(&w->loop) != 0)
                fprintf(stderr, "ringkv-bench: a loop did not close\n");
        }
        free(w->ctx_cache);
        free(w->conns);
        free(w->dirty);
        free(w->value);
        free(w->heap);
    }
    free(ws);
    free(total);
    uv_barrier_destroy(&start_barrier);
    uv_mutex_destroy(&progress_mu);
    return rc;
}
