/*
 * sim_work.c - the simulator's clients, their history, and the checkers.
 *
 * Clients. Each client has its own PRNG stream and runs one operation at a
 * time against a node it picks at random, through core_request() exactly
 * as a transport would (the client link itself is reliable; a client whose
 * node crashes mid-request records the operation as *indefinite*, one whose
 * node is down when it connects records a *definite* refusal). Workloads:
 *   set       read a set key, union every sibling (a value is a sorted list
 *             of unique big-endian u32 ids), add a fresh id, write back
 *             with the read's context;
 *   register  blind puts of fresh ids, or read then put with the context;
 *   delete    a key owned by one client: a few blind puts, a read, a delete
 *             with the read's context, then never written again.
 * Every written id is unique in the run, so an id names one write.
 *
 * History: per operation invoke time, node, outcome (ok / definite failure
 * / indefinite) and, for writes, the context sent or acknowledged.
 *
 * Checkers (after heal + quiesce + one r = n read per key + quiesce):
 *   lost_acked         every id whose add was acknowledged is in the
 *                      final set;
 *   diverged           every replica of every key holds an equal record
 *                      (dvv_equal: same dots and the same value under
 *                      each; a replica holding nothing is the empty
 *                      record);
 *   definite_observed  no id whose write failed definitely was ever read,
 *                      during the run or at the end;
 *   resurrected        after an acknowledged delete with context D, no
 *                      live value whose dot D covers survives; and, in runs
 *                      without wipes or duplication where none of the
 *                      owner's writes was indefinite, nothing survives.
 * Checked during the run: an acknowledged put/del has at least w nodes
 * whose durable record covers the acknowledged context (nodes wiped since
 * the invoke count: their copy was destroyed by the fault, not the code).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "node/peer_auth.h"
#include "proto/errors.h"
#include "quorum/dvv.h"
#include "quorum/quorum.h"
#include "tests/sim/sim_internal.h"

#define SIM_SET_KEYS 4
#define SIM_REG_KEYS 4

enum op_kind {
    OP_SET_READ = 0,
    OP_SET_ADD,
    OP_REG_READ,
    OP_REG_PUT,
    OP_DEL_PUT,
    OP_DEL_READ,
    OP_DEL_DEL,
    OP_FINAL_READ,
    OP_MAX
};

static const char *const op_names[OP_MAX] = {
    "set-read", "set-add",  "reg-read", "reg-put",
    "del-put",  "del-read", "del",      "final-read"};

enum outcome { OUT_PENDING = 0, OUT_OK, OUT_FAIL, OUT_INDEF };

enum key_kind { K_SET, K_REG, K_DEL };

struct wkey {
    char name[24];
    uint32_t len;
    enum key_kind kind;
    int owner;
};

struct hop {
    uint32_t client;
    enum op_kind kind;
    uint32_t key;
    uint32_t vid; /* the fresh id this write adds, 0 for none */
    int node;
    uint64_t t_inv, t_done;
    enum outcome out;
    int err;
    uint8_t *ctx; /* del: the context sent; ok writes: the one acked */
    uint32_t ctx_len;
};

struct client {
    struct sim_rng rng;
    /* a read's result waiting for its write */
    bool have_read;
    enum op_kind next; /* OP_SET_ADD, OP_REG_PUT or OP_DEL_DEL */
    uint32_t key;
    uint8_t *ctx;
    uint32_t ctx_len;
    uint32_t *elems;
    uint32_t nelems;
    /* the delete workload */
    int dkey; /* -1: none */
    uint32_t dwrites;
    uint32_t dkeys_made;
};

struct sim_creq {
    struct sim *s;
    struct sim_creq *next; /* the node's list */
    struct sim_node *nd;
    uint32_t hop;
    bool abandoned;
    struct core_req req;
    uint8_t *buf; /* value and ctx, owned */
};

struct sim_work {
    struct hop *hops;
    size_t nhops, caphops;
    struct wkey *keys;
    size_t nkeys, capkeys;
    struct client cl[SIM_MAX_CLIENTS];
    uint8_t *seen; /* by id: observed in some read */
    uint32_t next_vid, capseen;
};

/* ---- small helpers ---------------------------------------------------------
 */

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (q == NULL)
        abort();
    return q;
}

static uint32_t add_key(struct sim_work *w, enum key_kind k, int owner,
                        const char *name)
{
    if (w->nkeys == w->capkeys) {
        w->capkeys = w->capkeys ? 2 * w->capkeys : 32;
        w->keys = xrealloc(w->keys, w->capkeys * sizeof(*w->keys));
    }
    struct wkey *key = &w->keys[w->nkeys];
    snprintf(key->name, sizeof(key->name), "%s", name);
    key->len = (uint32_t)strlen(key->name);
    key->kind = k;
    key->owner = owner;
    return (uint32_t)w->nkeys++;
}

static uint32_t new_hop(struct sim *s, uint32_t client, enum op_kind k,
                        uint32_t key)
{
    struct sim_work *w = s->work;
    if (w->nhops == w->caphops) {
        w->caphops = w->caphops ? 2 * w->caphops : 256;
        w->hops = xrealloc(w->hops, w->caphops * sizeof(*w->hops));
    }
    struct hop *h = &w->hops[w->nhops];
    memset(h, 0, sizeof(*h));
    h->client = client;
    h->kind = k;
    h->key = key;
    h->node = -1;
    h->t_inv = s->now;
    return (uint32_t)w->nhops++;
}

static uint32_t fresh_vid(struct sim_work *w)
{
    uint32_t v = ++w->next_vid;
    if (v >= w->capseen) {
        uint32_t cap = w->capseen ? 2 * w->capseen : 1024;
        w->seen = xrealloc(w->seen, cap);
        memset(w->seen + w->capseen, 0, cap - w->capseen);
        w->capseen = cap;
    }
    return v;
}

static void observe(struct sim_work *w, uint32_t vid)
{
    if (vid > 0 && vid < w->capseen)
        w->seen[vid] = 1;
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Appends the ids in value to *set (unsorted; call set_norm after). */
static void set_absorb(uint32_t **set, uint32_t *n, const uint8_t *v,
                       uint32_t len)
{
    uint32_t k = len / 4;
    if (k == 0)
        return;
    *set = xrealloc(*set, (*n + k) * sizeof(**set));
    for (uint32_t i = 0; i < k; i++)
        (*set)[(*n)++] = get_be32(v + 4 * i);
}

static void set_norm(uint32_t *set, uint32_t *n)
{
    uint32_t m = 0;
    if (*n == 0)
        return;
    qsort(set, *n, sizeof(*set), cmp_u32);
    for (uint32_t i = 0; i < *n; i++)
        if (m == 0 || set[m - 1] != set[i])
            set[m++] = set[i];
    *n = m;
}

static bool set_has(const uint32_t *set, uint32_t n, uint32_t v)
{
    return bsearch(&v, set, n, sizeof(*set), cmp_u32) != NULL;
}

/* ---- issuing requests ------------------------------------------------------
 */

static void client_schedule(struct sim *s, uint32_t c)
{
    struct sim_event *e = sim__event(
        s, s->now + sim__range(&s->work->cl[c].rng, 1, s->p.think_max_ms),
        SIM_EV_CLIENT_NEXT, -1);
    e->client = c;
}

static void hop_done(struct sim *s, struct hop *h, enum outcome out, int err)
{
    h->out = out;
    h->err = err;
    h->t_done = s->now;
    s->res->ops++;
    if (out == OUT_OK)
        s->res->ops_ok++;
    else if (out == OUT_FAIL)
        s->res->ops_definite++;
    else
        s->res->ops_indefinite++;
    sim__trace(s, "c%u %s %s key=%s id=%u via n%d%s%s",
               h->client == UINT32_MAX ? 0 : h->client + 1, op_names[h->kind],
               out == OUT_OK     ? "ok"
               : out == OUT_FAIL ? "FAIL(definite)"
                                 : "INDEFINITE",
               s->work->keys[h->key].name, h->vid, h->node + 1, err ? ": " : "",
               err ? rk_err_code(err) : "");
    uint64_t hh[4] = {h->key, h->vid, (uint64_t)out, (uint64_t)(int64_t)err};
    sim__hash(s, hh, sizeof(hh));
}

/* Sends one request from client c (UINT32_MAX: the checker) to node. */
static void issue(struct sim *s, uint32_t c, int node, uint32_t hop,
                  enum wire_op op, const uint8_t *val, uint32_t val_len,
                  const uint8_t *ctx, uint32_t ctx_len, uint8_t r)
{
    struct sim_work *w = s->work;
    struct hop *h = &w->hops[hop];
    struct sim_node *nd = &s->node[node];
    const struct wkey *k = &w->keys[h->key];

    h->node = node;
    sim__hash(s, k->name, k->len);
    if (val_len)
        sim__hash(s, val, val_len);
    if (!nd->up) {
        /* Connection refused: nothing reached any node. */
        hop_done(s, h, OUT_FAIL, -ECONNREFUSED);
        if (c != UINT32_MAX)
            client_schedule(s, c);
        return;
    }
    struct sim_creq *q = calloc(1, sizeof(*q));
    if (q == NULL || (q->buf = malloc(k->len + val_len + ctx_len + 1)) == NULL)
        abort();
    /* The request owns copies: keys may move, client state changes. */
    memcpy(q->buf, k->name, k->len);
    if (val_len)
        memcpy(q->buf + k->len, val, val_len);
    if (ctx_len)
        memcpy(q->buf + k->len + val_len, ctx, ctx_len);
    q->s = s;
    q->nd = nd;
    q->hop = hop;
    q->req =
        (struct core_req){.op = op,
                          .key = q->buf,
                          .key_len = k->len,
                          .value = q->buf + k->len,
                          .value_len = val_len,
                          .ctx = ctx_len ? q->buf + k->len + val_len : NULL,
                          .ctx_len = ctx_len,
                          .r = r};
    q->next = nd->creqs;
    nd->creqs = q;
    struct sim_rng *rng = c == UINT32_MAX ? &s->check : &w->cl[c].rng;
    struct sim_event *e =
        sim__event(s, s->now + sim__range(rng, 0, 2), SIM_EV_CLIENT_REQ, node);
    e->creq = q;
    e->client = c;
}

static void creq_unlink(struct sim_creq *q)
{
    for (struct sim_creq **pp = &q->nd->creqs; *pp; pp = &(*pp)->next) {
        if (*pp == q) {
            *pp = q->next;
            return;
        }
    }
}

static void creq_free(struct sim_creq *q)
{
    free(q->buf);
    free(q);
}

void sim__creq_discard(struct sim_creq *q)
{
    if (!q->abandoned)
        creq_unlink(q);
    creq_free(q);
}

/* Every node's durable record of key that covers ctx, plus every node
 * wiped since t (their copies were destroyed by the fault). */
static uint32_t durable_cover(struct sim *s, const struct wkey *k,
                              const uint8_t *ctx, uint32_t ctx_len, uint64_t t)
{
    struct dvv_arena a;
    struct dvv_vv vv;
    uint32_t n = 0;
    dvv_arena_init(&a);
    /* Contexts end with their tag (node/peer_auth.h). */
    if (ctx_len < PEER_AUTH_CTX_TAG_LEN ||
        dvv_vv_decode(ctx, ctx_len - PEER_AUTH_CTX_TAG_LEN, &a, &vv) != 0) {
        dvv_arena_free(&a);
        return 0;
    }
    struct dvv want = {.n = vv.n,
                       .e = dvv_arena_alloc(&a, (vv.n + 1) * sizeof(*want.e))};
    for (uint32_t i = 0; i < vv.n; i++)
        want.e[i] = (struct dvv_entry){vv.e[i].actor, vv.e[i].counter, 0, NULL};
    for (uint32_t i = 0; i < s->nnodes; i++) {
        struct sim_node *nd = &s->node[i];
        const struct sim_rec *r =
            sim__durable(nd, (const uint8_t *)k->name, k->len);
        struct dvv have;
        if (nd->ever_wiped && nd->wiped_at >= t)
            n++;
        else if (r != NULL && dvv_decode(r->val, r->len, &a, &have) == 0 &&
                 dvv_covers(&have, &want))
            n++;
    }
    dvv_arena_free(&a);
    return n;
}

static void keep_ctx(uint8_t **dst, uint32_t *dst_len, const uint8_t *ctx,
                     uint32_t len)
{
    free(*dst);
    *dst = NULL;
    *dst_len = 0;
    if (len > 0) {
        *dst = xrealloc(NULL, len);
        memcpy(*dst, ctx, len);
        *dst_len = len;
    }
}

static void client_reply(void *arg, const struct core_reply *rep)
{
    struct sim_creq *q = arg;
    struct sim *s = q->s;
    struct sim_work *w = s->work;

    if (q->abandoned) { /* its node crashed: already indefinite */
        creq_free(q);
        return;
    }
    creq_unlink(q);
    struct hop *h = &w->hops[q->hop];
    const struct wkey *k = &w->keys[h->key];
    uint32_t c = h->client;
    struct client *cl = c == UINT32_MAX ? NULL : &w->cl[c];

    if (rep->err != 0) {
        hop_done(s, h, rep->definite ? OUT_FAIL : OUT_INDEF, rep->err);
        if (cl != NULL && h->kind == OP_DEL_READ)
            cl->have_read = false; /* the delete waits for a good read */
        goto next;
    }
    switch (h->kind) {
    case OP_SET_READ:
    case OP_REG_READ:
    case OP_DEL_READ:
    case OP_FINAL_READ:
        if (cl != NULL) {
            cl->nelems = 0;
            keep_ctx(&cl->ctx, &cl->ctx_len, rep->ctx, rep->ctx_len);
        }
        for (uint32_t i = 0; i < rep->nvalues; i++) {
            const struct core_value *v = &rep->values[i];
            for (uint32_t j = 0; j + 4 <= v->len; j += 4)
                observe(w, get_be32(v->data + j));
            if (cl != NULL && h->kind == OP_SET_READ)
                set_absorb(&cl->elems, &cl->nelems, v->data, v->len);
        }
        if (cl != NULL) {
            set_norm(cl->elems, &cl->nelems);
            cl->have_read = true;
            cl->key = h->key;
            cl->next = h->kind == OP_SET_READ   ? OP_SET_ADD
                       : h->kind == OP_REG_READ ? OP_REG_PUT
                                                : OP_DEL_DEL;
        }
        hop_done(s, h, OUT_OK, 0);
        break;
    default: {
        keep_ctx(&h->ctx, &h->ctx_len, rep->ctx, rep->ctx_len);
        uint32_t cover = durable_cover(s, k, rep->ctx, rep->ctx_len, h->t_inv);
        if (cover < s->w) {
            s->res->ack_underreplicated++;
            sim__report(s,
                        "invariant: %s of key '%s' (id %u) acknowledged "
                        "at t=%" PRIu64 " with %u durable cop%s covering "
                        "its context, w is %u",
                        op_names[h->kind], k->name, h->vid, s->now, cover,
                        cover == 1 ? "y" : "ies", s->w);
        }
        hop_done(s, h, OUT_OK, 0);
        break;
    }
    }
next:
    if (h->kind == OP_DEL_DEL && rep->err == 0) {
        /* h->ctx must be the context sent, for the resurrection check:
         * the client kept it in q->buf. */
        keep_ctx(&h->ctx, &h->ctx_len, q->req.ctx, q->req.ctx_len);
    }
    creq_free(q);
    if (c != UINT32_MAX)
        client_schedule(s, c);
}

void sim__client_deliver(struct sim *s, struct sim_event *e)
{
    struct sim_creq *q = e->creq;
    struct sim_node *nd = &s->node[e->node];
    e->creq = NULL; /* the core owns it now, until client_reply */
    sim__trace(s, "c%u -> n%d %s key=%.*s",
               e->client == UINT32_MAX ? 0 : e->client + 1, e->node + 1,
               wire_op_name(q->req.op), (int)q->req.key_len,
               (const char *)q->req.key);
    core_request(nd->core, &q->req, client_reply, q);
}

void sim__client_node_crashed(struct sim *s, struct sim_node *nd)
{
    struct sim_creq *q = nd->creqs;
    nd->creqs = NULL;
    while (q != NULL) {
        struct sim_creq *next = q->next;
        struct hop *h = &s->work->hops[q->hop];
        q->abandoned = true;
        q->next = NULL;
        hop_done(s, h, OUT_INDEF, RK_ESHUTTING_DOWN);
        if (h->client != UINT32_MAX)
            client_schedule(s, h->client);
        q = next;
    }
}

/* ---- the client loop -------------------------------------------------------
 */

static void encode_set(uint8_t **out, uint32_t *len, const uint32_t *e,
                       uint32_t n)
{
    *out = xrealloc(NULL, 4 * (size_t)n + 1);
    for (uint32_t i = 0; i < n; i++)
        put_be32(*out + 4 * i, e[i]);
    *len = 4 * n;
}

void sim__client_next(struct sim *s, uint32_t c)
{
    struct sim_work *w = s->work;
    struct client *cl = &w->cl[c];
    int node;
    uint32_t hop;

    if (s->stopping)
        return;
    node = sim__pick_node(s, &cl->rng);
    if (cl->have_read) {
        cl->have_read = false;
        if (cl->next == OP_SET_ADD) {
            uint32_t vid = fresh_vid(w);
            uint8_t *val;
            uint32_t len;
            cl->elems = xrealloc(cl->elems, (cl->nelems + 1) * 4);
            cl->elems[cl->nelems++] = vid;
            set_norm(cl->elems, &cl->nelems);
            encode_set(&val, &len, cl->elems, cl->nelems);
            hop = new_hop(s, c, OP_SET_ADD, cl->key);
            w->hops[hop].vid = vid;
            issue(s, c, node, hop, WIRE_OP_PUT, val, len, cl->ctx, cl->ctx_len,
                  0);
            free(val);
            return;
        }
        if (cl->next == OP_REG_PUT) {
            uint8_t val[4];
            uint32_t vid = fresh_vid(w);
            put_be32(val, vid);
            hop = new_hop(s, c, OP_REG_PUT, cl->key);
            w->hops[hop].vid = vid;
            issue(s, c, node, hop, WIRE_OP_PUT, val, 4, cl->ctx, cl->ctx_len,
                  0);
            return;
        }
        /* OP_DEL_DEL: delete with the read's context; the key is done. */
        hop = new_hop(s, c, OP_DEL_DEL, cl->key);
        cl->dkey = -1;
        issue(s, c, node, hop, WIRE_OP_DEL, NULL, 0, cl->ctx, cl->ctx_len, 0);
        return;
    }
    uint64_t roll = sim__below(&cl->rng, 100);
    if (roll < 45) {
        uint32_t key = (uint32_t)sim__below(&cl->rng, SIM_SET_KEYS);
        hop = new_hop(s, c, OP_SET_READ, key);
        issue(s, c, node, hop, WIRE_OP_GET, NULL, 0, NULL, 0, 0);
    } else if (roll < 75) {
        uint32_t key =
            SIM_SET_KEYS + (uint32_t)sim__below(&cl->rng, SIM_REG_KEYS);
        if (sim__chance(&cl->rng, 0.5)) {
            hop = new_hop(s, c, OP_REG_READ, key);
            issue(s, c, node, hop, WIRE_OP_GET, NULL, 0, NULL, 0, 0);
        } else {
            uint8_t val[4];
            uint32_t vid = fresh_vid(w);
            put_be32(val, vid);
            hop = new_hop(s, c, OP_REG_PUT, key);
            w->hops[hop].vid = vid;
            issue(s, c, node, hop, WIRE_OP_PUT, val, 4, NULL, 0, 0);
        }
    } else {
        if (cl->dkey < 0) {
            char name[24];
            snprintf(name, sizeof(name), "d%u.%u", c + 1, cl->dkeys_made++);
            cl->dkey = (int)add_key(w, K_DEL, (int)c, name);
            cl->dwrites = (uint32_t)sim__range(&cl->rng, 1, 3);
        }
        uint32_t key = (uint32_t)cl->dkey;
        if (cl->dwrites > 0) {
            uint8_t val[4];
            uint32_t vid = fresh_vid(w);
            cl->dwrites--;
            put_be32(val, vid);
            hop = new_hop(s, c, OP_DEL_PUT, key);
            w->hops[hop].vid = vid;
            issue(s, c, node, hop, WIRE_OP_PUT, val, 4, NULL, 0, 0);
        } else {
            hop = new_hop(s, c, OP_DEL_READ, key);
            issue(s, c, node, hop, WIRE_OP_GET, NULL, 0, NULL, 0, 0);
        }
    }
}

/* ---- setup -----------------------------------------------------------------
 */

int sim__work_init(struct sim *s)
{
    struct sim_work *w = calloc(1, sizeof(*w));
    char name[24];
    if (w == NULL)
        return -ENOMEM;
    s->work = w;
    for (uint32_t i = 0; i < SIM_SET_KEYS; i++) {
        snprintf(name, sizeof(name), "s%u", i);
        add_key(w, K_SET, -1, name);
    }
    for (uint32_t i = 0; i < SIM_REG_KEYS; i++) {
        snprintf(name, sizeof(name), "r%u", i);
        add_key(w, K_REG, -1, name);
    }
    for (uint32_t c = 0; c < s->cfg.clients; c++) {
        sim__rng_seed(&w->cl[c].rng, s->cfg.seed, SIM_S_CLIENT0 + c);
        w->cl[c].dkey = -1;
    }
    return 0;
}

void sim__work_start(struct sim *s)
{
    for (uint32_t c = 0; c < s->cfg.clients; c++)
        client_schedule(s, c);
}

void sim__work_free(struct sim *s)
{
    struct sim_work *w = s->work;
    if (w == NULL)
        return;
    for (size_t i = 0; i < w->nhops; i++)
        free(w->hops[i].ctx);
    for (uint32_t c = 0; c < SIM_MAX_CLIENTS; c++) {
        free(w->cl[c].ctx);
        free(w->cl[c].elems);
    }
    free(w->hops);
    free(w->keys);
    free(w->seen);
    free(w);
    s->work = NULL;
}

void sim__work_final_reads(struct sim *s)
{
    struct sim_work *w = s->work;
    for (uint32_t k = 0; k < w->nkeys; k++) {
        int node = sim__pick_node(s, &s->check);
        uint32_t hop = new_hop(s, UINT32_MAX, OP_FINAL_READ, k);
        issue(s, UINT32_MAX, node, hop, WIRE_OP_GET, NULL, 0, NULL, 0, s->nval);
    }
}

/* ---- checkers --------------------------------------------------------------
 */

/* Decodes node's durable record of key (empty when absent). */
static int replica_rec(struct sim_node *nd, const struct wkey *k,
                       struct dvv_arena *a, struct dvv *out)
{
    const struct sim_rec *r =
        sim__durable(nd, (const uint8_t *)k->name, k->len);
    memset(out, 0, sizeof(*out));
    return r ? dvv_decode(r->val, r->len, a, out) : 0;
}

/* Every key on exactly the final ring's N owners: a present node that is
 * not an owner holds no record of it (drops ran), and when any node holds
 * one, every owner does (transfers copied it, read repair filled gaps). */
static void check_owners(struct sim *s, const struct wkey *k,
                         const uint32_t *pref, int n)
{
    bool own[SIM_MAX_NODES] = {false};
    uint32_t held = 0, stray = 0;
    char line[160];
    size_t l = 0;
    for (int i = 0; i < n; i++)
        own[pref[i]] = true;
    for (uint32_t i = 0; i < s->nnodes; i++) {
        struct sim_node *nd = &s->node[i];
        bool has = !nd->absent &&
                   sim__durable(nd, (const uint8_t *)k->name, k->len) != NULL;
        if (has && !own[i])
            stray++;
        held += has && own[i];
        if (has && l + 8 < sizeof(line))
            l += (size_t)snprintf(line + l, sizeof(line) - l, " n%u%s", i + 1,
                                  own[i] ? "" : "(not an owner)");
    }
    if (stray == 0 && (held == 0 || held == (uint32_t)n))
        return;
    s->res->misplaced++;
    sim__report(s,
                "MISPLACED: key '%s' should be on its %d owners of the "
                "final ring (version %" PRIu64 "), yet it is held by:%s",
                k->name, n, s->res->ring_version, l ? line : " nobody");
}

static void check_key(struct sim *s, uint32_t ki)
{
    struct sim_work *w = s->work;
    const struct wkey *k = &w->keys[ki];
    uint32_t pref[QUORUM_MAX_N];
    struct dvv_arena a;
    struct dvv recs[QUORUM_MAX_N], merged = {0};
    int n = sim__owners(s, sim__partition(s, (const uint8_t *)k->name, k->len),
                        pref);
    bool diverged = false;

    check_owners(s, k, pref, n);
    dvv_arena_init(&a);
    for (int i = 0; i < n; i++) {
        struct dvv next;
        if (replica_rec(&s->node[pref[i]], k, &a, &recs[i]) != 0) {
            s->res->diverged++;
            sim__report(s, "key '%s': n%u's record does not decode", k->name,
                        pref[i] + 1);
            dvv_arena_free(&a);
            return;
        }
        if (i > 0 && !dvv_equal(&recs[0], &recs[i]))
            diverged = true;
        if (dvv_sync(&merged, &recs[i], &a, &next) != 0)
            abort();
        merged = next;
    }
    if (diverged) {
        s->res->diverged++;
        char line[256];
        size_t l = 0;
        for (int i = 0; i < n && l + 40 < sizeof(line); i++)
            l += (size_t)snprintf(line + l, sizeof(line) - l,
                                  " n%u:%u entries/%u values", pref[i] + 1,
                                  recs[i].n, dvv_count(&recs[i]));
        sim__report(s, "replicas of key '%s' disagree after the final read:%s",
                    k->name, line);
    }
    /* What the key finally holds (the merge of its replicas). */
    uint32_t *set = NULL, nset = 0;
    for (uint32_t i = 0; i < merged.n; i++) {
        for (uint32_t j = 0; j < merged.e[i].nvals; j++) {
            const struct dvv_val *v = &merged.e[i].vals[j];
            if (v->flags & DVV_TOMBSTONE)
                continue;
            for (uint32_t b = 0; b + 4 <= v->len; b += 4)
                observe(w, get_be32(v->data + b));
            set_absorb(&set, &nset, v->data, v->len);
        }
    }
    set_norm(set, &nset);
    bool owner_indef = false;
    for (size_t hi = 0; hi < w->nhops; hi++) {
        const struct hop *h = &w->hops[hi];
        if (h->key != ki)
            continue;
        if (h->kind == OP_DEL_PUT && h->out == OUT_INDEF)
            owner_indef = true;
        if (k->kind == K_SET && h->kind == OP_SET_ADD && h->out == OUT_OK &&
            !set_has(set, nset, h->vid)) {
            s->res->lost_acked++;
            sim__report(s,
                        "LOST: add of id %u to set '%s' was acknowledged "
                        "(c%u via n%d, t=%" PRIu64 "..%" PRIu64
                        ") but the final set lacks it",
                        h->vid, k->name, h->client + 1, h->node + 1, h->t_inv,
                        h->t_done);
        }
    }
    for (size_t hi = 0; hi < w->nhops && k->kind == K_DEL; hi++) {
        const struct hop *h = &w->hops[hi];
        if (h->key != ki || h->kind != OP_DEL_DEL || h->out != OUT_OK)
            continue;
        struct dvv_vv d = {0};
        if (h->ctx_len > 0 && dvv_vv_decode(h->ctx, h->ctx_len, &a, &d) != 0)
            continue;
        uint32_t live = 0;
        for (uint32_t i = 0; i < merged.n; i++) {
            const struct dvv_entry *e = &merged.e[i];
            uint64_t dc = 0;
            for (uint32_t x = 0; x < d.n; x++)
                if (d.e[x].actor == e->actor)
                    dc = d.e[x].counter;
            for (uint32_t j = 0; j < e->nvals; j++) {
                if (e->vals[j].flags & DVV_TOMBSTONE)
                    continue;
                live++;
                if (e->counter - j <= dc) {
                    s->res->resurrected++;
                    sim__report(s,
                                "RESURRECTED: key '%s' was deleted (t=%" PRIu64
                                ") with a context covering dot (%016" PRIx64
                                ", %" PRIu64 "), which is alive at the end",
                                k->name, h->t_done, e->actor, e->counter - j);
                }
            }
        }
        if (live > 0 && !owner_indef && s->res->wipes == 0 &&
            s->res->msgs_duplicated == 0 && s->cfg.r + s->w > s->nval) {
            s->res->resurrected++;
            sim__report(s,
                        "RESURRECTED: key '%s' was deleted (t=%" PRIu64
                        ") after acknowledged writes only, yet %u value(s) "
                        "live at the end",
                        k->name, h->t_done, live);
        }
    }
    free(set);
    dvv_arena_free(&a);
}

void sim__work_check(struct sim *s)
{
    struct sim_work *w = s->work;
    for (size_t hi = 0; hi < w->nhops; hi++) {
        const struct hop *h = &w->hops[hi];
        if (h->kind == OP_FINAL_READ && h->out != OUT_OK) {
            s->res->final_read_failed++;
            sim__report(s, "the final read of key '%s' failed: %s",
                        w->keys[h->key].name, rk_err_code(h->err));
        }
    }
    for (uint32_t k = 0; k < w->nkeys; k++)
        check_key(s, k);
    for (size_t hi = 0; hi < w->nhops; hi++) {
        const struct hop *h = &w->hops[hi];
        if (h->vid != 0 && h->out == OUT_FAIL && h->vid < w->capseen &&
            w->seen[h->vid]) {
            s->res->definite_observed++;
            sim__report(s,
                        "DEFINITE FAILURE APPLIED: %s of id %u to key '%s' "
                        "failed definitely (%s, c%u via n%d, t=%" PRIu64
                        ") yet a read observed it",
                        op_names[h->kind], h->vid, w->keys[h->key].name,
                        rk_err_code(h->err), h->client + 1, h->node + 1,
                        h->t_inv);
        }
    }
}
