/*
 * gossip.c - SWIM membership: member table, probe cycle, suspicion and
 * death, piggy-backed dissemination, push-pull sync, cluster state blob.
 * The protocol, precedence rules and bounds are described in gossip.h;
 * the message layout in gossip_msg.h.
 *
 * Design: the table is an array with self at index 0; other members are
 * found by linear search (n <= GOSSIP_MAX_MEMBERS, a probe period handles
 * a handful of messages). Every state change goes through set_state(),
 * which emits the event and gives the member a fresh retransmit budget
 * (tx_sent = 0); each outgoing ping/ack takes the GOSSIP_PIGGY_MAX members
 * the fewest sends so far (newest change first), while sends < retransmit_mult
 * * ceil(log2(n+1)) for the current n. The probe order is a shuffled array of
 * indices, rebuilt when exhausted or when reaping moved indices; new members
 * are inserted at a random position of what is left of it (as memberlist does),
 * so every member is probed within n periods.
 *
 * Relaying: C asked by A to probe B sends PING(seq, origin=A) to B; B's
 * ACK(seq, origin=A) comes back to C, which forwards ACK(seq) with an empty
 * origin to A. A accepts any ACK carrying its current probe's seq.
 *
 * Invariants: m[0] is self; 1 <= n <= GOSSIP_MAX_MEMBERS; ids are unique
 * and non-empty; order[] holds indices < n (or is empty); the out and event
 * queues never exceed their bounds.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gossip/gossip.h"
#include "gossip/gossip_msg.h"
#include "proto/errors.h"
#include "proto/rng.h"

struct member {
    char id[GOSSIP_ID_MAX + 1];
    char addr[GOSSIP_ADDR_MAX + 1];
    enum gossip_state state;
    uint64_t inc;
    uint64_t state_at; /* when the state (or incarnation) last changed */
    uint64_t heard_at; /* last heard from, directly or indirectly */
    uint32_t tx_sent;  /* piggy-back sends of its current update */
    bool probe_next;   /* transport said unreachable: probe it next */
};

struct outmsg {
    char addr[GOSSIP_ADDR_MAX + 1];
    uint8_t *buf;
    size_t len;
};

/* A bounded FIFO of fixed-size items: items[head..len) are queued. */
struct fifo {
    void *items;
    int head, len, cap;
};

struct gossip {
    struct gossip_conf conf; /* strings point into the arrays below */
    char cluster[GOSSIP_CLUSTER_MAX + 1];

    struct member *m; /* m[0] is self */
    int n, cap;

    struct rk_rng rng;

    int order[GOSSIP_MAX_MEMBERS];
    int order_len, order_pos;
    int scratch[GOSSIP_MAX_MEMBERS];

    bool probing, acked, indirect_sent;
    char probe_id[GOSSIP_ID_MAX + 1];
    uint64_t probe_seq, probe_at, next_probe_at, next_sync_at, next_seed_at,
        next_join_at;

    char seeds[GOSSIP_SEEDS_MAX][GOSSIP_ADDR_MAX + 1];
    int nseeds, seed_pos;
    int join_syncs; /* push-pulls left in the join phase */

    struct fifo out;  /* struct outmsg */
    uint8_t *cur_buf; /* the last message handed out, freed on next call */

    struct fifo ev; /* struct gossip_event */

    uint64_t st_ver, st_hash;
    uint8_t *st;
    size_t st_len;
    uint64_t st_req_ver, st_req_hash, st_req_at;
    bool st_req;

    struct gossip_stats stats;
};

/* ---- small helpers ----------------------------------------------------- */

const char *gossip_state_name(enum gossip_state s)
{
    switch (s) {
    case GOSSIP_ALIVE:
        return "alive";
    case GOSSIP_SUSPECT:
        return "suspect";
    case GOSSIP_DEAD:
        return "dead";
    case GOSSIP_LEFT:
        return "left";
    default:
        return "?";
    }
}

struct gossip_conf gossip_conf_defaults(void)
{
    struct gossip_conf c = {0};
    c.probe_interval_ms = 1000;
    c.probe_timeout_ms = 400;
    c.indirect_probes = 3;
    c.suspicion_mult = 4;
    c.retransmit_mult = 3;
    c.sync_interval_ms = 30000;
    c.reap_ms = 3600000;
    return c;
}

/* The seeded xoshiro256** of proto/rng.h (deterministic per seed). */
static uint64_t rnd(struct gossip *g)
{
    return rk_rng_next(&g->rng);
}

static int rnd_below(struct gossip *g, int n)
{
    return (int)(rnd(g) % (uint64_t)n);
}

static bool valid_str(const char *s, size_t max)
{
    return s != NULL && s[0] != '\0' && strnlen(s, max + 1) <= max;
}

static bool is_live(enum gossip_state s)
{
    return s == GOSSIP_ALIVE || s == GOSSIP_SUSPECT;
}

static int find(const struct gossip *g, const char *id)
{
    for (int i = 0; i < g->n; i++)
        if (strcmp(g->m[i].id, id) == 0)
            return i;
    return -1;
}

static int find_addr(const struct gossip *g, const char *addr)
{
    for (int i = 1; i < g->n; i++)
        if (strcmp(g->m[i].addr, addr) == 0)
            return i;
    return -1;
}

static int live_count(const struct gossip *g)
{
    int c = 0;
    for (int i = 0; i < g->n; i++)
        c += is_live(g->m[i].state);
    return c;
}

static uint32_t ceil_log2(uint64_t x)
{
    uint32_t k = 0;
    while (k < 63 && (1ull << k) < x)
        k++;
    return k;
}

static uint32_t tx_budget(const struct gossip *g)
{
    uint32_t b = g->conf.retransmit_mult * ceil_log2((uint64_t)g->n + 1);
    return b > 0 ? b : 1;
}

uint64_t gossip_suspicion_timeout_ms(const struct gossip *g)
{
    uint64_t scale = 1;
    for (uint64_t p = 10; p < (uint64_t)live_count(g) + 1; p *= 10)
        scale++;
    return (uint64_t)g->conf.suspicion_mult * g->conf.probe_interval_ms * scale;
}

static bool pair_greater(uint64_t v1, uint64_t h1, uint64_t v2, uint64_t h2)
{
    return v1 > v2 || (v1 == v2 && h1 > h2);
}

/* ---- queues ------------------------------------------------------------ */

/* Makes room for one more item of size bytes, up to max items: compacts,
 * then grows by doubling. Returns false when full (or out of memory). */
static bool fifo_room(struct fifo *q, size_t size, int max)
{
    if (q->head > 0 && q->len == q->cap) {
        memmove(q->items, (char *)q->items + (size_t)q->head * size,
                (size_t)(q->len - q->head) * size);
        q->len -= q->head;
        q->head = 0;
    }
    if (q->len < q->cap)
        return true;
    int cap = q->cap ? q->cap * 2 : 16;
    if (cap > max)
        cap = max;
    if (cap <= q->cap)
        return false;
    void *p = realloc(q->items, (size_t)cap * size);
    if (p == NULL)
        return false;
    q->items = p;
    q->cap = cap;
    return true;
}

static void push_event(struct gossip *g, const struct gossip_event *e)
{
    if (!fifo_room(&g->ev, sizeof(*e), GOSSIP_EVQ_MAX)) {
        g->stats.events_dropped++;
        return;
    }
    ((struct gossip_event *)g->ev.items)[g->ev.len++] = *e;
}

static void member_event(struct gossip *g, enum gossip_event_type t,
                         const struct member *m, enum gossip_state old)
{
    struct gossip_event e;
    memset(&e, 0, sizeof(e));
    e.type = t;
    memcpy(e.id, m->id, sizeof(e.id));
    memcpy(e.addr, m->addr, sizeof(e.addr));
    e.old_state = old;
    e.new_state = m->state;
    e.incarnation = m->inc;
    push_event(g, &e);
}

/* Takes ownership of buf (freed when dropped). */
static void push_out(struct gossip *g, const char *addr, uint8_t *buf,
                     size_t len)
{
    if (!fifo_room(&g->out, sizeof(struct outmsg), GOSSIP_OUTQ_MAX)) {
        g->stats.out_dropped++;
        free(buf);
        return;
    }
    struct outmsg *o = (struct outmsg *)g->out.items + g->out.len++;
    snprintf(o->addr, sizeof(o->addr), "%s", addr);
    o->buf = buf;
    o->len = len;
    g->stats.msgs_sent++;
}

/* ---- table changes ----------------------------------------------------- */

/* The one setter of a member's state and incarnation. */
static void set_state(struct gossip *g, struct member *m, enum gossip_state s,
                      uint64_t inc, uint64_t now)
{
    enum gossip_state old = m->state;
    m->state = s;
    m->inc = inc;
    m->state_at = now;
    m->tx_sent = 0;
    if (old != s)
        member_event(g, GOSSIP_EV_MEMBER_STATE, m, old);
}

static void refute(struct gossip *g, uint64_t above)
{
    struct member *self = &g->m[0];
    self->inc = above + 1;
    self->tx_sent = 0;
    g->stats.refuted++;
}

static struct member *add_member(struct gossip *g,
                                 const struct gossip_update *u, uint64_t now)
{
    if (g->n >= GOSSIP_MAX_MEMBERS) {
        g->stats.members_refused++;
        return NULL;
    }
    if (g->n == g->cap) {
        int cap = g->cap * 2;
        if (cap > GOSSIP_MAX_MEMBERS)
            cap = GOSSIP_MAX_MEMBERS;
        struct member *p = realloc(g->m, (size_t)cap * sizeof(*p));
        if (p == NULL) {
            g->stats.members_refused++;
            return NULL;
        }
        g->m = p;
        g->cap = cap;
    }
    int idx = g->n++;
    struct member *m = &g->m[idx];
    memset(m, 0, sizeof(*m));
    memcpy(m->id, u->id, sizeof(m->id));
    memcpy(m->addr, u->addr, sizeof(m->addr));
    m->state = (enum gossip_state)u->state;
    m->inc = u->incarnation;
    m->state_at = now;
    m->heard_at = now;
    m->tx_sent = 0;
    /* into what is left of the probe order, at a random place */
    if (g->order_len > 0 && g->order_len < GOSSIP_MAX_MEMBERS) {
        int at = g->order_pos + rnd_below(g, g->order_len - g->order_pos + 1);
        g->order[g->order_len++] = g->order[at];
        g->order[at] = idx;
    }
    member_event(g, GOSSIP_EV_MEMBER_JOINED, m, m->state);
    return m;
}

static void apply_update(struct gossip *g, const struct gossip_update *u,
                         uint64_t now)
{
    if (strcmp(u->id, g->m[0].id) == 0) {
        struct member *self = &g->m[0];
        if (self->state == GOSSIP_LEFT)
            return;
        if ((u->state != GOSSIP_ALIVE && u->incarnation >= self->inc) ||
            u->incarnation > self->inc)
            refute(g, u->incarnation);
        return;
    }
    int i = find(g, u->id);
    if (i < 0) {
        if (is_live((enum gossip_state)u->state))
            add_member(g, u, now);
        return;
    }
    struct member *m = &g->m[i];
    if (u->incarnation < m->inc ||
        (u->incarnation == m->inc && u->state <= m->state))
        return;
    if (u->incarnation > m->inc && u->state == GOSSIP_ALIVE)
        m->heard_at = now;
    memcpy(m->addr, u->addr, sizeof(m->addr));
    set_state(g, m, (enum gossip_state)u->state, u->incarnation, now);
}

/* ---- sending ----------------------------------------------------------- */

static void fill_header(struct gossip *g, struct gossip_msg *msg, uint8_t type)
{
    memset(msg, 0, sizeof(*msg));
    msg->type = type;
    memcpy(msg->cluster, g->cluster, sizeof(msg->cluster));
    memcpy(msg->from_id, g->m[0].id, sizeof(msg->from_id));
    memcpy(msg->from_addr, g->m[0].addr, sizeof(msg->from_addr));
    msg->from_inc = g->m[0].inc;
    msg->state_version = g->st_ver;
    msg->state_hash = g->st_hash;
}

static void to_update(const struct member *m, struct gossip_update *u)
{
    memcpy(u->id, m->id, sizeof(u->id));
    memcpy(u->addr, m->addr, sizeof(u->addr));
    u->state = (uint8_t)m->state;
    u->incarnation = m->inc;
}

static void encode_and_queue(struct gossip *g, const char *addr,
                             const struct gossip_msg *msg)
{
    uint8_t *buf;
    size_t len;
    if (gossip_msg_encode(msg, &buf, &len) != 0) {
        g->stats.out_dropped++;
        return;
    }
    push_out(g, addr, buf, len);
}

/* A ping/ack/ping-req/state message with piggy-backed updates. */
static void send_small(struct gossip *g, const char *addr, uint8_t type,
                       uint64_t seq, const char *target, const char *origin)
{
    struct gossip_msg msg;
    struct gossip_update upd[GOSSIP_PIGGY_MAX];
    fill_header(g, &msg, type);
    msg.seq = seq;
    snprintf(msg.target_addr, sizeof(msg.target_addr), "%s", target);
    snprintf(msg.origin_addr, sizeof(msg.origin_addr), "%s", origin);
    int picked[GOSSIP_PIGGY_MAX];
    uint32_t budget = tx_budget(g);
    while (msg.nupd < GOSSIP_PIGGY_MAX) {
        int best = -1;
        for (int i = 0; i < g->n; i++) {
            bool taken = false;
            for (uint32_t j = 0; j < msg.nupd; j++)
                taken |= picked[j] == i;
            if (taken || g->m[i].tx_sent >= budget)
                continue;
            if (best < 0 || g->m[i].tx_sent < g->m[best].tx_sent ||
                (g->m[i].tx_sent == g->m[best].tx_sent &&
                 g->m[i].state_at > g->m[best].state_at))
                best = i;
        }
        if (best < 0)
            break;
        g->m[best].tx_sent++;
        picked[msg.nupd] = best;
        to_update(&g->m[best], &upd[msg.nupd++]);
    }
    msg.upd = upd;
    if (type == GOSSIP_MSG_STATE) {
        msg.blob = g->st;
        msg.blob_len = g->st_len;
    }
    encode_and_queue(g, addr, &msg);
}

static void send_sync(struct gossip *g, const char *addr, uint8_t type)
{
    struct gossip_msg msg;
    fill_header(g, &msg, type);
    msg.upd = malloc((size_t)g->n * sizeof(*msg.upd));
    if (msg.upd == NULL) {
        g->stats.out_dropped++;
        return;
    }
    for (int i = 0; i < g->n; i++)
        to_update(&g->m[i], &msg.upd[i]);
    msg.nupd = (uint32_t)g->n;
    encode_and_queue(g, addr, &msg);
    free(msg.upd);
}

/* Up to k random live members other than self and skip (may be -1) into
 * g->scratch; returns how many. */
static int pick_random(struct gossip *g, int k, int skip)
{
    int c = 0;
    for (int i = 1; i < g->n; i++)
        if (i != skip && g->m[i].state == GOSSIP_ALIVE)
            g->scratch[c++] = i;
    if (k > c)
        k = c;
    for (int i = 0; i < k; i++) {
        int j = i + rnd_below(g, c - i);
        int t = g->scratch[i];
        g->scratch[i] = g->scratch[j];
        g->scratch[j] = t;
    }
    return k;
}

/* A random DEAD (not LEFT) member's index, or 0 when there is none (no
 * random draw then). */
static int pick_dead(struct gossip *g)
{
    int c = 0;
    for (int i = 1; i < g->n; i++)
        if (g->m[i].state == GOSSIP_DEAD)
            g->scratch[c++] = i;
    return c > 0 ? g->scratch[rnd_below(g, c)] : 0;
}

/* ---- probing ----------------------------------------------------------- */

static void send_ping_reqs(struct gossip *g, int target)
{
    int k = pick_random(g, (int)g->conf.indirect_probes, target);
    for (int i = 0; i < k; i++) {
        send_small(g, g->m[g->scratch[i]].addr, GOSSIP_MSG_PING_REQ,
                   g->probe_seq, g->m[target].addr, "");
        g->stats.indirect_probes++;
    }
    g->indirect_sent = true;
}

static int next_target(struct gossip *g)
{
    for (int i = 1; i < g->n; i++)
        if (g->m[i].probe_next) {
            g->m[i].probe_next = false;
            if (is_live(g->m[i].state))
                return i;
        }
    for (int round = 0; round < 2; round++) {
        while (g->order_pos < g->order_len) {
            int i = g->order[g->order_pos++];
            if (i > 0 && i < g->n && is_live(g->m[i].state))
                return i;
        }
        g->order_len = 0;
        g->order_pos = 0;
        for (int i = 1; i < g->n; i++)
            if (is_live(g->m[i].state))
                g->order[g->order_len++] = i;
        for (int i = g->order_len - 1; i > 0; i--) {
            int j = rnd_below(g, i + 1);
            int t = g->order[i];
            g->order[i] = g->order[j];
            g->order[j] = t;
        }
    }
    return -1;
}

static void probe_tick(struct gossip *g, uint64_t now)
{
    int t = g->probing ? find(g, g->probe_id) : -1;
    if (g->probing && t < 0)
        g->probing = false;
    if (g->probing && !g->acked) {
        if (!g->indirect_sent && now >= g->probe_at + g->conf.probe_timeout_ms)
            send_ping_reqs(g, t);
        if (now >= g->probe_at + g->conf.probe_interval_ms) {
            struct member *m = &g->m[t];
            if (m->state == GOSSIP_ALIVE) {
                set_state(g, m, GOSSIP_SUSPECT, m->inc, now);
                g->stats.suspicions++;
            }
            g->probing = false;
        }
    } else if (g->probing && now >= g->probe_at + g->conf.probe_interval_ms) {
        g->probing = false;
    }
    if (g->probing || now < g->next_probe_at)
        return;
    g->next_probe_at = now + g->conf.probe_interval_ms;
    t = next_target(g);
    if (t < 0)
        return;
    g->probing = true;
    g->acked = false;
    g->indirect_sent = false;
    g->probe_seq++;
    g->probe_at = now;
    memcpy(g->probe_id, g->m[t].id, sizeof(g->probe_id));
    g->stats.probes++;
    send_small(g, g->m[t].addr, GOSSIP_MSG_PING, g->probe_seq, "", "");
}

/* ---- public API -------------------------------------------------------- */

int gossip_create(struct gossip **out, const struct gossip_conf *c,
                  uint64_t now_ms)
{
    if (out == NULL || c == NULL ||
        !valid_str(c->cluster, GOSSIP_CLUSTER_MAX) ||
        !valid_str(c->self_id, GOSSIP_ID_MAX) ||
        !valid_str(c->self_addr, GOSSIP_ADDR_MAX))
        return -EINVAL;
    if (c->probe_interval_ms == 0 || c->probe_timeout_ms == 0 ||
        c->probe_timeout_ms >= c->probe_interval_ms || c->suspicion_mult == 0 ||
        c->retransmit_mult == 0 || c->sync_interval_ms == 0)
        return RK_ECONFIG;
    struct gossip *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return -ENOMEM;
    g->cap = 16;
    g->m = calloc((size_t)g->cap, sizeof(*g->m));
    if (g->m == NULL) {
        free(g);
        return -ENOMEM;
    }
    g->conf = *c;
    snprintf(g->cluster, sizeof(g->cluster), "%s", c->cluster);
    g->conf.cluster = g->cluster;
    struct member *self = &g->m[0];
    snprintf(self->id, sizeof(self->id), "%s", c->self_id);
    snprintf(self->addr, sizeof(self->addr), "%s", c->self_addr);
    g->conf.self_id = self->id;
    g->conf.self_addr = self->addr;
    self->state = GOSSIP_ALIVE;
    self->inc = c->incarnation;
    self->state_at = self->heard_at = now_ms;
    self->tx_sent = 0;
    g->n = 1;
    rk_rng_seed(&g->rng, c->seed);
    /* spread the members' first probes over the period */
    g->next_probe_at = now_ms + rnd(g) % c->probe_interval_ms;
    g->next_sync_at = now_ms + c->sync_interval_ms;
    *out = g;
    return 0;
}

void gossip_destroy(struct gossip *g)
{
    if (g == NULL)
        return;
    struct outmsg *o = g->out.items;
    for (int i = g->out.head; i < g->out.len; i++)
        free(o[i].buf);
    free(g->out.items);
    free(g->cur_buf);
    free(g->ev.items);
    free(g->st);
    free(g->m);
    free(g);
}

int gossip_add_seed(struct gossip *g, const char *addr)
{
    if (g == NULL || !valid_str(addr, GOSSIP_ADDR_MAX))
        return -EINVAL;
    if (g->nseeds >= GOSSIP_SEEDS_MAX)
        return RK_ETOO_LARGE;
    snprintf(g->seeds[g->nseeds++], GOSSIP_ADDR_MAX + 1, "%s", addr);
    if (strcmp(addr, g->m[0].addr) != 0)
        send_sync(g, addr, GOSSIP_MSG_SYNC);
    g->join_syncs = GOSSIP_JOIN_SYNCS;
    return 0;
}

void gossip_tick(struct gossip *g, uint64_t now)
{
    uint64_t susp = gossip_suspicion_timeout_ms(g);
    for (int i = 1; i < g->n; i++) {
        struct member *m = &g->m[i];
        if (m->state == GOSSIP_SUSPECT && now >= m->state_at + susp) {
            set_state(g, m, GOSSIP_DEAD, m->inc, now);
            g->stats.deaths++;
        } else if (!is_live(m->state) && now >= m->state_at + g->conf.reap_ms) {
            member_event(g, GOSSIP_EV_MEMBER_GONE, m, m->state);
            g->m[i] = g->m[--g->n];
            g->order_len = g->order_pos = 0;
            i--;
        }
    }
    if (g->m[0].state == GOSSIP_LEFT)
        return;
    probe_tick(g, now);

    bool alone = live_count(g) <= 1;
    if (alone && g->nseeds > 0 && now >= g->next_seed_at) {
        const char *s = g->seeds[g->seed_pos++ % g->nseeds];
        if (strcmp(s, g->m[0].addr) != 0)
            send_sync(g, s, GOSSIP_MSG_SYNC);
        g->next_seed_at = now + g->conf.probe_interval_ms;
    }
    bool join_sync = !alone && g->join_syncs > 0 && now >= g->next_join_at;
    if (join_sync) {
        g->join_syncs--;
        g->next_join_at = now + g->conf.probe_interval_ms;
    }
    if (now >= g->next_sync_at || join_sync) {
        if (now >= g->next_sync_at)
            g->next_sync_at = now + g->conf.sync_interval_ms;
        if (pick_random(g, 1, -1) == 1) {
            send_sync(g, g->m[g->scratch[0]].addr, GOSSIP_MSG_SYNC);
            g->stats.syncs++;
        }
        /* After a partition longer than the suspicion timeout each side
         * holds the other DEAD and probes only live members, so nothing
         * would ever cross again: two clusters for good. A sync also goes
         * to one DEAD member: if it is alive it hears our verdict and
         * refutes, and its answer brings it (and its view) back. */
        int d = pick_dead(g);
        if (d > 0) {
            send_sync(g, g->m[d].addr, GOSSIP_MSG_SYNC);
            g->stats.syncs++;
        }
    }
}

static void take_state(struct gossip *g, const struct gossip_msg *msg)
{
    if (gossip_msg_hash(msg->blob, msg->blob_len) != msg->state_hash) {
        g->stats.state_refused++;
        return;
    }
    if (!pair_greater(msg->state_version, msg->state_hash, g->st_ver,
                      g->st_hash))
        return;
    uint8_t *p = NULL;
    if (msg->blob_len > 0) {
        p = malloc(msg->blob_len);
        if (p == NULL)
            return;
        memcpy(p, msg->blob, msg->blob_len);
    }
    free(g->st);
    g->st = p;
    g->st_len = msg->blob_len;
    g->st_ver = msg->state_version;
    g->st_hash = msg->state_hash;
    g->st_req = false;
    g->stats.state_syncs++;
    struct gossip_event e;
    memset(&e, 0, sizeof(e));
    e.type = GOSSIP_EV_STATE_CHANGED;
    memcpy(e.id, msg->from_id, sizeof(e.id));
    memcpy(e.addr, msg->from_addr, sizeof(e.addr));
    e.state_version = g->st_ver;
    push_event(g, &e);
}

static void handle(struct gossip *g, uint64_t now, const struct gossip_msg *msg)
{
    /* the sender is alive at its incarnation */
    struct gossip_update su;
    memcpy(su.id, msg->from_id, sizeof(su.id));
    memcpy(su.addr, msg->from_addr, sizeof(su.addr));
    su.state = GOSSIP_ALIVE;
    su.incarnation = msg->from_inc;
    apply_update(g, &su, now);
    int s = find(g, msg->from_id);
    uint32_t budget = tx_budget(g);
    if (s > 0) {
        g->m[s].heard_at = now;
        /* it may not know what we think of it: tell it, so it refutes */
        if (g->m[s].state != GOSSIP_ALIVE && g->m[s].tx_sent >= budget)
            g->m[s].tx_sent = budget - 1;
    }
    int n_before = g->n;
    for (uint32_t i = 0; i < msg->nupd; i++)
        apply_update(g, &msg->upd[i], now);
    /* a pull that taught us members: the cluster is growing, pull again */
    if (msg->type == GOSSIP_MSG_SYNC_REPLY && g->n > n_before)
        g->join_syncs = GOSSIP_JOIN_SYNCS;

    if (msg->type != GOSSIP_MSG_STATE &&
        pair_greater(msg->state_version, msg->state_hash, g->st_ver,
                     g->st_hash) &&
        (!g->st_req || msg->state_version != g->st_req_ver ||
         msg->state_hash != g->st_req_hash ||
         now >= g->st_req_at + g->conf.probe_interval_ms)) {
        g->st_req = true;
        g->st_req_ver = msg->state_version;
        g->st_req_hash = msg->state_hash;
        g->st_req_at = now;
        send_small(g, msg->from_addr, GOSSIP_MSG_STATE_REQ, 0, "", "");
    }

    switch (msg->type) {
    case GOSSIP_MSG_PING:
        send_small(g, msg->from_addr, GOSSIP_MSG_ACK, msg->seq, "",
                   msg->origin_addr);
        break;
    case GOSSIP_MSG_ACK:
        if (msg->origin_addr[0] != '\0' &&
            strcmp(msg->origin_addr, g->m[0].addr) != 0) {
            send_small(g, msg->origin_addr, GOSSIP_MSG_ACK, msg->seq, "", "");
        } else if (g->probing && msg->seq == g->probe_seq) {
            g->acked = true;
            int t = find(g, g->probe_id);
            if (t > 0)
                g->m[t].heard_at = now;
        }
        break;
    case GOSSIP_MSG_PING_REQ:
        if (msg->target_addr[0] != '\0' &&
            strcmp(msg->target_addr, g->m[0].addr) != 0)
            send_small(g, msg->target_addr, GOSSIP_MSG_PING, msg->seq, "",
                       msg->from_addr);
        break;
    case GOSSIP_MSG_SYNC:
        send_sync(g, msg->from_addr, GOSSIP_MSG_SYNC_REPLY);
        break;
    case GOSSIP_MSG_STATE_REQ:
        if (g->st_ver > 0 || g->st_len > 0)
            send_small(g, msg->from_addr, GOSSIP_MSG_STATE, 0, "", "");
        break;
    case GOSSIP_MSG_STATE:
        take_state(g, msg);
        break;
    default:
        break;
    }
}

int gossip_recv(struct gossip *g, uint64_t now_ms, const char *auth_from_id,
                const uint8_t *buf, size_t len)
{
    struct gossip_msg msg;
    const char *why;
    if (g == NULL)
        return -EINVAL;
    int rc = gossip_msg_decode(buf, len, &msg, &why);
    if (rc != 0) {
        if (rc != -ENOMEM)
            g->stats.malformed++;
        return rc;
    }
    if (strcmp(msg.cluster, g->cluster) != 0) {
        g->stats.refused_cluster++;
        rc = RK_ECONFIG;
    } else if ((auth_from_id != NULL && strcmp(auth_from_id, msg.from_id)) ||
               strcmp(msg.from_id, g->m[0].id) == 0) {
        g->stats.refused_sender++;
        rc = RK_EFORBIDDEN;
    } else {
        g->stats.msgs_received++;
        handle(g, now_ms, &msg);
    }
    gossip_msg_free(&msg);
    return rc;
}

void gossip_unreachable(struct gossip *g, uint64_t now_ms, const char *addr)
{
    if (g == NULL || addr == NULL)
        return;
    int i = find_addr(g, addr);
    if (i < 0 || !is_live(g->m[i].state))
        return;
    if (g->probing && !g->acked && !g->indirect_sent &&
        strcmp(g->probe_id, g->m[i].id) == 0)
        send_ping_reqs(g, i);
    else
        g->m[i].probe_next = true;
}

int gossip_leave(struct gossip *g, uint64_t now_ms)
{
    if (g == NULL)
        return -EINVAL;
    struct member *self = &g->m[0];
    if (self->state == GOSSIP_LEFT)
        return 0;
    set_state(g, self, GOSSIP_LEFT, self->inc + 1, now_ms);
    g->probing = false;
    int k = pick_random(g, (int)g->conf.indirect_probes, -1);
    for (int i = 0; i < k; i++)
        send_small(g, g->m[g->scratch[i]].addr, GOSSIP_MSG_PING, 0, "", "");
    return 0;
}

int gossip_remove(struct gossip *g, const char *id, uint64_t now_ms)
{
    if (g == NULL || id == NULL)
        return -EINVAL;
    int i = find(g, id);
    if (i < 0)
        return -ENOENT;
    struct member *m = &g->m[i];
    if (i == 0 || is_live(m->state))
        return -EBUSY;
    if (m->state == GOSSIP_DEAD)
        set_state(g, m, GOSSIP_LEFT, m->inc, now_ms);
    return 0;
}

int gossip_next_msg(struct gossip *g, char addr[GOSSIP_ADDR_MAX + 1],
                    uint8_t **buf, size_t *len)
{
    free(g->cur_buf);
    g->cur_buf = NULL;
    if (g->out.head == g->out.len) {
        g->out.head = g->out.len = 0;
        return -EAGAIN;
    }
    struct outmsg *o = (struct outmsg *)g->out.items + g->out.head++;
    memcpy(addr, o->addr, GOSSIP_ADDR_MAX + 1);
    g->cur_buf = o->buf;
    *buf = o->buf;
    *len = o->len;
    return 0;
}

int gossip_next_event(struct gossip *g, struct gossip_event *ev)
{
    if (g->ev.head == g->ev.len) {
        g->ev.head = g->ev.len = 0;
        return -EAGAIN;
    }
    *ev = ((struct gossip_event *)g->ev.items)[g->ev.head++];
    return 0;
}

int gossip_members(const struct gossip *g, uint64_t now_ms,
                   struct gossip_member *out, int cap)
{
    for (int i = 0; i < g->n && i < cap; i++) {
        const struct member *m = &g->m[i];
        memcpy(out[i].id, m->id, sizeof(out[i].id));
        memcpy(out[i].addr, m->addr, sizeof(out[i].addr));
        out[i].state = m->state;
        out[i].incarnation = m->inc;
        out[i].since_heard_ms =
            i == 0 || now_ms < m->heard_at ? 0 : now_ms - m->heard_at;
        out[i].self = i == 0;
    }
    return g->n;
}

int gossip_set_state(struct gossip *g, uint64_t version, const uint8_t *bytes,
                     size_t len)
{
    if (g == NULL || (bytes == NULL && len > 0))
        return -EINVAL;
    if (len > GOSSIP_STATE_MAX)
        return RK_ETOO_LARGE;
    uint64_t h = gossip_msg_hash(bytes, len);
    if (!pair_greater(version, h, g->st_ver, g->st_hash))
        return -ESTALE;
    uint8_t *p = NULL;
    if (len > 0) {
        p = malloc(len);
        if (p == NULL)
            return -ENOMEM;
        memcpy(p, bytes, len);
    }
    free(g->st);
    g->st = p;
    g->st_len = len;
    g->st_ver = version;
    g->st_hash = h;
    return 0;
}

void gossip_clear_state(struct gossip *g)
{
    free(g->st);
    g->st = NULL;
    g->st_len = 0;
    g->st_ver = 0;
    g->st_hash = 0;
}

void gossip_get_state(const struct gossip *g, uint64_t *version,
                      const uint8_t **bytes, size_t *len)
{
    *version = g->st_ver;
    *bytes = g->st;
    *len = g->st_len;
}

void gossip_stats(const struct gossip *g, struct gossip_stats *out)
{
    *out = g->stats;
}
