/*
 * member.c - live membership glued to the env and the core (member.h).
 *
 * One timer drives everything, every MEMBER_TICK_MS:
 *
 *   gossip_tick -> events (log, liveness, state adopted) -> messages out
 *   -> claimant duties -> this node's transfer -> drops -> leave check
 *
 * Invariants:
 *   - the core's view always comes from the ring state this node holds
 *     (rs): reads use cur, writes go to cur and next (W in each, see
 *     ring/ring_state.h), so a change is safe for requests at any moment;
 *   - a partition is dropped only when no change is pending, the state
 *     has not changed for MEMBER_DROP_DELAY_MS, and ring_state_responsible()
 *     says this node does not hold it;
 *   - a transfer is reported done only after every record of one complete
 *     scan was acknowledged by the destination; a failure restarts from
 *     the last fully acknowledged batch, a new state from the first key.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gossip/gossip.h"
#include "node/core.h"
#include "node/member.h"
#include "proto/errors.h"
#include "ring/ring_state.h"

#define MEMBER_TICK_MS        100
#define MEMBER_DROP_DELAY_MS  5000
#define MEMBER_RESEND_MS      1000 /* sticky requests to the claimant */
#define MEMBER_MAX_REQS       16   /* leave/remove requests held */
#define MEMBER_XFER_MAX_BATCH 1024
#define MEMBER_LEFT_LINGER    10 /* ticks spreading our LEFT before exit */
#define MEMBER_NO_SLOT        UINT32_MAX
#define MEMBER_DEPARTED_MS    60000
#define MEMBER_ABORT_MS       10000 /* a change blocked this long is dropped */
#define MEMBER_SLOTS          1024  /* as PEERS_MAX */

struct xrec {
    uint8_t *key;
    uint32_t key_len;
    uint8_t *rec;
    uint32_t rec_len;
};

struct xfer {
    bool active;
    uint32_t part;
    char dest[GOSSIP_ID_MAX + 1];
    uint64_t state_version; /* the state it started under */
    uint8_t last_key[STORAGE_MAX_KEY_LEN];
    uint32_t last_len;
    bool have_last; /* last_key: the last fully acknowledged key */
    struct xrec *batch;
    uint32_t nbatch, inflight;
    bool batch_failed;
    bool scan_done;   /* everything sent and acknowledged */
    uint64_t done_at; /* when xfer_done was last sent */
    uint64_t next_at; /* throttle: no batch before */
    uint64_t keys, bytes, started_ms;
    uint32_t gen; /* callbacks of an abandoned transfer are ignored */
};

struct member {
    struct env *env;
    struct core *core;
    struct member_opts o;
    char cluster[GOSSIP_CLUSTER_MAX + 1];
    char self_id[GOSSIP_ID_MAX + 1];
    char self_addr[GOSSIP_ADDR_MAX + 1];
    struct gossip *g;
    struct ring_state *rs; /* NULL: not in a ring yet */
    struct env_timer *timer;
    bool closing;
    uint32_t self_slot;
    bool down[MEMBER_SLOTS]; /* gossip says DEAD or LEFT */
    /* this node's sticky wishes, re-sent to the claimant */
    bool want_leave;
    uint32_t left_ticks; /* > 0: LEFT spread, counting down to on_left */
    char want_remove[MEMBER_MAX_REQS][GOSSIP_ID_MAX + 1];
    uint32_t nwant_remove;
    uint64_t resend_at;
    /* claimant inbox */
    char leave_req[MEMBER_MAX_REQS][GOSSIP_ID_MAX + 1];
    uint32_t nleave_req;
    char remove_req[MEMBER_MAX_REQS][GOSSIP_ID_MAX + 1];
    uint32_t nremove_req;
    /* members whose leave completed here: not joined again while they
     * linger before stopping (MEMBER_DEPARTED_MS) */
    char departed[MEMBER_MAX_REQS][GOSSIP_ID_MAX + 1];
    uint32_t ndeparted;
    uint64_t departed_at;
    struct xfer x;
    struct env_timer *pump; /* continues transfers between ticks */
    struct {
        uint32_t part;
        char dest[GOSSIP_ID_MAX + 1];
    } * rep; /* reported copies (report_done) */
    uint32_t nrep, rep_cap;
    uint64_t rep_at;
    uint64_t state_changed_ms;
    uint64_t pending_since; /* when this node first saw the change pending */
    uint32_t done_since;    /* copies done then (for the ETA) */
    uint64_t abort_since;   /* claimant: the pending change blocked since */
    uint32_t drop_part;     /* next partition to check */
    bool renewed;           /* a new actor was taken for this drop round */
    bool dropping;          /* a drop batch is in flight */
    struct member_stats st;
};

/* ---- logging ------------------------------------------------------------ */

static void mlog(struct member *m, enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void mlog(struct member *m, enum log_level level, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    if (level < log_min_level)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    m->env->ops->log(m->env, level, line);
}

static uint64_t now(struct member *m)
{
    return m->env->ops->now_ms(m->env);
}

/* ---- looking members up ------------------------------------------------- */

/* gossip's view of id: its state, or GOSSIP_STATE_MAX_ when unknown. addr
 * (GOSSIP_ADDR_MAX + 1 bytes, may be NULL) gets its address. */
static enum gossip_state gossip_of(struct member *m, const char *id, char *addr)
{
    static struct gossip_member tab[GOSSIP_MAX_MEMBERS];
    int n = gossip_members(m->g, now(m), tab, GOSSIP_MAX_MEMBERS);
    if (n > GOSSIP_MAX_MEMBERS)
        n = GOSSIP_MAX_MEMBERS;
    for (int i = 0; i < n; i++) {
        if (strcmp(tab[i].id, id) == 0) {
            if (addr != NULL)
                snprintf(addr, GOSSIP_ADDR_MAX + 1, "%s", tab[i].addr);
            return tab[i].state;
        }
    }
    return GOSSIP_STATE_MAX_;
}

static bool is_alive(struct member *m, const char *id)
{
    if (strcmp(id, m->self_id) == 0)
        return !m->closing;
    enum gossip_state s = gossip_of(m, id, NULL);
    return s == GOSSIP_ALIVE || s == GOSSIP_SUSPECT;
}

/* The peer slot of id (connecting it when gossip knows its address), or
 * MEMBER_NO_SLOT. */
static uint32_t slot_of(struct member *m, const char *id)
{
    char addr[GOSSIP_ADDR_MAX + 1] = "";
    if (strcmp(id, m->self_id) == 0)
        return m->self_slot;
    int s = m->env->ops->peer_slot(m->env, id);
    if (s >= 0)
        return (uint32_t)s;
    if (gossip_of(m, id, addr) == GOSSIP_STATE_MAX_ || addr[0] == '\0')
        return MEMBER_NO_SLOT;
    s = m->env->ops->peer_add(m->env, id, addr);
    return s >= 0 ? (uint32_t)s : MEMBER_NO_SLOT;
}

static bool ring_has(const struct ring *r, const char *id)
{
    return r != NULL && ring_member_index(r, id) >= 0;
}

/* The claimant: the live member of cur with the lowest id. */
static const char *claimant(struct member *m)
{
    const struct ring *r = m->rs ? ring_state_cur(m->rs) : NULL;
    if (r == NULL)
        return NULL;
    for (uint32_t i = 0; i < ring_members(r); i++)
        if (is_alive(m, ring_member(r, i)))
            return ring_member(r, i);
    return NULL;
}

static bool am_claimant(struct member *m)
{
    const char *c = claimant(m);
    return c != NULL && strcmp(c, m->self_id) == 0;
}

/* ---- the core's view ---------------------------------------------------- */

static void map_ring(struct member *m, const struct ring *r, uint32_t *slots)
{
    for (uint32_t i = 0; r != NULL && i < ring_members(r); i++)
        slots[i] = slot_of(m, ring_member(r, i));
}

static void install_view(struct member *m)
{
    static uint32_t cur_slot[RING_MAX_NODES], next_slot[RING_MAX_NODES];
    struct core_view v = {.self = m->self_slot};
    if (m->rs != NULL) {
        v.nval = ring_state_nval(m->rs);
        v.cur = ring_state_cur(m->rs);
        v.next = ring_state_next(m->rs);
        map_ring(m, v.cur, cur_slot);
        map_ring(m, v.next, next_slot);
        v.cur_slot = cur_slot;
        v.next_slot = next_slot;
    }
    core_set_view(m->core, &v);
}

static bool slot_down(void *arg, uint32_t slot)
{
    struct member *m = arg;
    return slot < MEMBER_SLOTS && m->down[slot];
}

/* ---- the ring state ----------------------------------------------------- */

static void take_state(struct member *m, struct ring_state *rs)
{
    bool had_self = m->rs && ring_has(ring_state_cur(m->rs), m->self_id);
    ring_state_destroy(m->rs);
    m->rs = rs;
    m->st.ring_version = ring_state_version(rs);
    m->state_changed_ms = now(m);
    m->drop_part = 0;
    m->renewed = false;
    install_view(m);
    if (!had_self && ring_has(ring_state_cur(rs), m->self_id))
        mlog(m, LOG_INFO, "in the ring now (version %" PRIu64 ", %u members)",
             ring_state_version(rs), ring_members(ring_state_cur(rs)));
}

static void save(struct member *m, const uint8_t *buf, size_t len)
{
    if (m->o.save_state != NULL)
        m->o.save_state(m->o.cb_arg, buf, len);
}

/* Spreads and adopts this node's changed rs. */
static void publish(struct member *m)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = ring_state_encode(m->rs, &buf, &len);
    if (rc == 0)
        rc = gossip_set_state(m->g, ring_state_version(m->rs), buf, len);
    if (rc != 0 && rc != -ESTALE) {
        mlog(m, LOG_ERROR, "cannot spread ring state version %" PRIu64 ": %s",
             ring_state_version(m->rs), rk_err_msg(rc));
    } else {
        save(m, buf, len);
        m->st.ring_version = ring_state_version(m->rs);
        m->state_changed_ms = now(m);
        m->drop_part = 0;
        m->renewed = false;
        install_view(m);
    }
    free(buf);
}

/* True when rs encodes to exactly bytes[0..len). */
static bool same_state(const struct ring_state *rs, const uint8_t *bytes,
                       size_t len)
{
    uint8_t *buf = NULL;
    size_t n = 0;
    bool same = ring_state_encode(rs, &buf, &n) == 0 && n == len &&
                memcmp(buf, bytes, len) == 0;
    free(buf);
    return same;
}

/* Gossip brought a state: adopt it when it is newer than ours. */
static void adopt(struct member *m)
{
    uint64_t version;
    const uint8_t *bytes;
    size_t len;
    struct ring_state *rs = NULL;
    const char *why = NULL;

    gossip_get_state(m->g, &version, &bytes, &len);
    if (len == 0 || (m->rs != NULL && version < ring_state_version(m->rs)))
        return;
    if (m->rs != NULL && version == ring_state_version(m->rs) &&
        same_state(m->rs, bytes, len))
        return;
    int rc = ring_state_decode(bytes, len, &rs, &why);
    if (rc != 0) {
        m->st.states_refused++;
        mlog(m, LOG_WARN, "ring state version %" PRIu64 " refused: %s", version,
             why ? why : rk_err_msg(rc));
        return;
    }
    if (ring_state_version(rs) != version) {
        m->st.states_refused++;
        ring_state_destroy(rs);
        return;
    }
    if (ring_q(ring_state_cur(rs)) != m->o.partitions) {
        /* Keys are stored under partition prefixes: a node created with
         * another Q cannot hold this cluster's data. */
        m->st.states_refused++;
        mlog(m, LOG_ERROR,
             "ring state version %" PRIu64 " has %u partitions but this "
             "node's store has %u: refused (partitions must be the same on "
             "every node)",
             version, ring_q(ring_state_cur(rs)), m->o.partitions);
        ring_state_destroy(rs);
        return;
    }
    if (m->rs != NULL && version == ring_state_version(m->rs)) {
        /* Another state at our version (two claimants marked different
         * copies done): gossip keeps the one with the greater hash, so
         * merge it in. When the merge keeps content the other lacks at the
         * same version, bump it, or gossip would never carry it and the
         * change would wait for good (simulator seed 5179 --membership
         * on). */
        rc = ring_state_merge(m->rs, rs);
        ring_state_destroy(rs);
        if (rc < 0 ||
            (ring_state_version(m->rs) == version &&
             !same_state(m->rs, bytes, len) && ring_state_bump(m->rs) != 0))
            return;
        publish(m);
        mlog(m, LOG_DEBUG, "ring state version %" PRIu64 " merged", version);
        return;
    }
    save(m, bytes, len);
    take_state(m, rs);
    mlog(m, LOG_DEBUG, "ring state version %" PRIu64 " adopted", version);
}

/* ---- sending to peers --------------------------------------------------- */

static void ignore_reply(void *arg, int err, const struct wire_resp *resp)
{
    (void)arg;
    (void)err;
    (void)resp;
}

static void send_gossip(struct member *m)
{
    char addr[GOSSIP_ADDR_MAX + 1];
    uint8_t *buf;
    size_t len;
    while (gossip_next_msg(m->g, addr, &buf, &len) == 0) {
        int slot = m->env->ops->peer_add(m->env, NULL, addr);
        if (slot < 0 || (uint32_t)slot == m->self_slot)
            continue;
        struct wire_req q = {
            .op = WIRE_OP_GOSSIP, .data = buf, .data_len = (uint32_t)len};
        int rc = m->env->ops->peer_request(m->env, (uint32_t)slot, &q,
                                           ignore_reply, NULL);
        if (rc != 0)
            gossip_unreachable(m->g, now(m), addr);
    }
}

/* Sends an admin command to the claimant (or handles it here when this
 * node is the claimant). */
static int to_claimant(struct member *m, const char *cmd, const char *arg,
                       uint32_t part)
{
    const char *c = claimant(m);
    if (c == NULL)
        return RK_EUNAVAILABLE;
    if (strcmp(c, m->self_id) == 0) {
        char *out = NULL;
        int rc = member_admin(m, cmd, arg, part, false, true, &out);
        free(out);
        return rc;
    }
    uint32_t slot = slot_of(m, c);
    if (slot == MEMBER_NO_SLOT)
        return RK_EUNAVAILABLE;
    struct wire_req q = {
        .op = WIRE_OP_ADMIN,
        .cmd = cmd,
        .arg = arg,
        .part = part,
    };
    return m->env->ops->peer_request(m->env, slot, &q, ignore_reply, NULL);
}

/* ---- events ------------------------------------------------------------- */

static void on_events(struct member *m)
{
    struct gossip_event ev;
    bool state = false, view = false;
    while (gossip_next_event(m->g, &ev) == 0) {
        switch (ev.type) {
        case GOSSIP_EV_MEMBER_JOINED:
            mlog(m, LOG_INFO, "member %s (%s) joined gossip, %s", ev.id,
                 ev.addr, gossip_state_name(ev.new_state));
            view = true;
            break;
        case GOSSIP_EV_MEMBER_STATE: {
            mlog(m, LOG_INFO,
                 "member %s is %s (was %s, incarnation %" PRIu64 ")", ev.id,
                 gossip_state_name(ev.new_state),
                 gossip_state_name(ev.old_state), ev.incarnation);
            int s = m->env->ops->peer_slot(m->env, ev.id);
            if (s >= 0 && s < MEMBER_SLOTS)
                m->down[s] =
                    ev.new_state == GOSSIP_DEAD || ev.new_state == GOSSIP_LEFT;
            if (ev.new_state == GOSSIP_LEFT && s >= 0 &&
                strcmp(ev.id, m->self_id) != 0)
                m->env->ops->peer_forget(m->env, (uint32_t)s);
            view = true;
            break;
        }
        case GOSSIP_EV_MEMBER_GONE:
            mlog(m, LOG_INFO, "member %s forgotten", ev.id);
            break;
        case GOSSIP_EV_STATE_CHANGED:
            state = true;
            break;
        }
    }
    if (state)
        adopt(m);
    else if (view)
        install_view(m);
}

/* ---- claimant ----------------------------------------------------------- */

static bool listed(char (*list)[GOSSIP_ID_MAX + 1], uint32_t n, const char *id)
{
    for (uint32_t i = 0; i < n; i++)
        if (strcmp(list[i], id) == 0)
            return true;
    return false;
}

static void add_listed(char (*list)[GOSSIP_ID_MAX + 1], uint32_t *n,
                       const char *id)
{
    if (listed(list, *n, id) || *n >= MEMBER_MAX_REQS)
        return;
    snprintf(list[(*n)++], GOSSIP_ID_MAX + 1, "%.64s", id);
}

static void drop_listed(char (*list)[GOSSIP_ID_MAX + 1], uint32_t *n,
                        const char *id)
{
    for (uint32_t i = 0; i < *n; i++) {
        if (strcmp(list[i], id) == 0) {
            memmove(list[i], list[i + 1], (*n - i - 1) * sizeof(list[0]));
            (*n)--;
            return;
        }
    }
}

/* Re-sources the pending change's transfers whose source is not alive. */
static void replan(struct member *m, const struct ring *cur, const char **unav,
                   uint32_t nu)
{
    for (uint32_t i = 0; i < ring_members(cur); i++)
        if (!is_alive(m, ring_member(cur, i)))
            unav[nu++] = ring_member(cur, i);
    uint64_t v = ring_state_version(m->rs);
    if (ring_state_replan(m->rs, unav, nu) >= 0 &&
        ring_state_version(m->rs) != v)
        publish(m);
}

static void claim(struct member *m)
{
    static struct gossip_member tab[GOSSIP_MAX_MEMBERS];
    static const char *join[GOSSIP_MAX_MEMBERS], *unav[RING_MAX_NODES];
    const char *leave[MEMBER_MAX_REQS], *rem[MEMBER_MAX_REQS];
    uint32_t nj = 0, nl = 0, nr = 0, nu = 0;
    const struct ring *cur = ring_state_cur(m->rs);

    if (ring_state_pending(m->rs)) {
        /* A dead destination never receives its copies, so the change
         * would never finish, and a removal waits for no change to be
         * pending: everything would stay blocked for good. Abandon the
         * change when a joiner died (it is joined again if it returns) or
         * when a dead member is to be removed (the next change plans the
         * removal with the rest). cur holds every write (W acks in cur). */
        const struct ring *next = ring_state_next(m->rs);
        const char *why = NULL;
        char id[GOSSIP_ID_MAX + 1] = "";
        for (uint32_t i = 0; i < ring_members(next) && why == NULL; i++) {
            snprintf(id, sizeof(id), "%s", ring_member(next, i));
            if (!ring_has(cur, id) && !is_alive(m, id))
                why = "joining member %s is dead";
        }
        for (uint32_t i = 0; i < m->nremove_req && why == NULL; i++) {
            snprintf(id, sizeof(id), "%s", m->remove_req[i]);
            if (ring_has(cur, id) && !is_alive(m, id) &&
                !ring_state_removed(m->rs, id))
                why = "dead member %s is to be removed";
        }
        /* Only after the reason held for MEMBER_ABORT_MS: an abort and a
         * flip of the same change get the same version, so a claimant
         * whose state is stale (the change already flipped elsewhere) must
         * have had time to hear of the flip first. */
        if (why == NULL || m->abort_since == 0 ||
            now(m) < m->abort_since + MEMBER_ABORT_MS) {
            if (why == NULL || m->abort_since == 0)
                m->abort_since = why != NULL ? now(m) : 0;
            replan(m, cur, unav, nu);
            return;
        }
        m->abort_since = 0;
        if (ring_state_abort(m->rs) == 0) { /* frees next */
            char msg[160];
            snprintf(msg, sizeof(msg), why, id);
            mlog(m, LOG_WARN, "ring change abandoned: %s (version %" PRIu64 ")",
                 msg, ring_state_version(m->rs));
            publish(m);
        }
        return;
    }
    m->abort_since = 0;
    int n = gossip_members(m->g, now(m), tab, GOSSIP_MAX_MEMBERS);
    if (m->ndeparted > 0 && now(m) > m->departed_at + MEMBER_DEPARTED_MS)
        m->ndeparted = 0;
    for (int i = 0; i < n && i < GOSSIP_MAX_MEMBERS; i++)
        if (tab[i].state == GOSSIP_ALIVE && !ring_has(cur, tab[i].id) &&
            !listed(m->departed, m->ndeparted, tab[i].id) &&
            nj < RING_MAX_NODES - ring_members(cur))
            join[nj++] = tab[i].id;
    for (uint32_t i = 0; i < m->nleave_req; i++)
        if (ring_has(cur, m->leave_req[i]) && nl + 1 < ring_members(cur))
            leave[nl++] = m->leave_req[i];
    for (uint32_t i = 0; i < m->nremove_req; i++) {
        const char *id = m->remove_req[i];
        if (ring_has(cur, id) && !is_alive(m, id) &&
            !listed(m->leave_req, 0, id))
            rem[nr++] = id;
    }
    if (nj + nl + nr == 0)
        return;
    for (uint32_t i = 0; i < ring_members(cur); i++)
        if (!is_alive(m, ring_member(cur, i)))
            unav[nu++] = ring_member(cur, i);
    struct ring_change ch = {.join = join,
                             .njoin = nj,
                             .leave = leave,
                             .nleave = nl,
                             .remove = rem,
                             .nremove = nr,
                             .unavailable = unav,
                             .nunavailable = nu};
    int rc = ring_state_change(m->rs, &ch);
    if (rc != 0) {
        mlog(m, LOG_WARN,
             "cannot start a ring change (%u joining, %u "
             "leaving, %u removed): %s",
             nj, nl, nr, rk_err_msg(rc));
        /* A bad request must not block joins forever. */
        m->nleave_req = m->nremove_req = 0;
        return;
    }
    if (!ring_state_pending(m->rs)) { /* an empty plan flips at once */
        for (uint32_t i = 0; i < nl; i++)
            add_listed(m->departed, &m->ndeparted, leave[i]);
        m->departed_at = now(m);
    }
    m->st.changes_started++;
    mlog(m, LOG_INFO,
         "ring change started: %u joining, %u leaving, %u "
         "removed; %u partition copies (version %" PRIu64 ")",
         nj, nl, nr, ring_state_transfers(m->rs), ring_state_version(m->rs));
    m->nleave_req = m->nremove_req = 0;
    publish(m);
}

/* ---- transfers (this node as a source) ---------------------------------- */

static void xfer_free_batch(struct xfer *x)
{
    for (uint32_t i = 0; i < x->nbatch; i++) {
        free(x->batch[i].key);
        free(x->batch[i].rec);
    }
    x->nbatch = 0;
}

static void xfer_stop(struct member *m)
{
    xfer_free_batch(&m->x);
    free(m->x.batch);
    uint32_t gen = m->x.gen + 1;
    memset(&m->x, 0, sizeof(m->x));
    m->x.gen = gen;
}

struct xcb {
    struct member *m;
    uint32_t gen;
};

static void pump(struct member *m);

static void xfer_acked(void *arg, int err, const struct wire_resp *resp)
{
    struct xcb *cb = arg;
    struct member *m = cb->m;
    struct xfer *x = &m->x;
    bool mine = cb->gen == x->gen && x->active;
    free(cb);
    if (!mine)
        return;
    if (err != 0 || resp == NULL || resp->err != 0)
        x->batch_failed = true;
    if (--x->inflight > 0)
        return;
    if (x->batch_failed) {
        m->st.transfer_errors++;
        x->batch_failed = false;
        x->next_at = now(m) + MEMBER_RESEND_MS; /* retry the batch */
        xfer_free_batch(x);
        return;
    }
    /* The whole batch is in: it is the new resume point. */
    if (x->nbatch > 0) {
        struct xrec *last = &x->batch[x->nbatch - 1];
        memcpy(x->last_key, last->key, last->key_len);
        x->last_len = last->key_len;
        x->have_last = true;
    }
    bool short_batch = x->nbatch < m->o.transfer_batch;
    xfer_free_batch(x);
    if (short_batch)
        x->scan_done = true;
    pump(m);
}

struct scan_ctx {
    struct xfer *x;
    uint32_t max;
};

static int collect(void *arg, const uint8_t *key, uint32_t key_len,
                   const uint8_t *val, size_t len)
{
    struct scan_ctx *sc = arg;
    struct xfer *x = sc->x;
    struct xrec *r = &x->batch[x->nbatch];
    r->key = malloc(key_len ? key_len : 1);
    r->rec = malloc(len ? len : 1);
    if (r->key == NULL || r->rec == NULL) {
        free(r->key);
        free(r->rec);
        return -ENOMEM;
    }
    memcpy(r->key, key, key_len);
    memcpy(r->rec, val, len);
    r->key_len = key_len;
    r->rec_len = (uint32_t)len;
    x->nbatch++;
    return x->nbatch >= sc->max ? 1 : 0;
}

static void xfer_batch(struct member *m)
{
    struct xfer *x = &m->x;
    uint32_t slot = slot_of(m, x->dest);
    if (slot == MEMBER_NO_SLOT || !m->env->ops->peer_up(m->env, slot))
        return; /* wait for the destination */
    struct scan_ctx sc = {x, m->o.transfer_batch};
    int rc = m->env->ops->store_scan(
        m->env, x->part, x->have_last ? x->last_key : NULL,
        x->have_last ? x->last_len : 0, collect, &sc);
    if (rc < 0) {
        m->st.transfer_errors++;
        xfer_free_batch(x);
        x->next_at = now(m) + MEMBER_RESEND_MS;
        return;
    }
    if (x->nbatch == 0) {
        x->scan_done = true;
        return;
    }
    x->inflight = 1; /* held until every request is out */
    for (uint32_t i = 0; i < x->nbatch; i++) {
        struct xcb *cb = malloc(sizeof(*cb));
        struct wire_req q = {.op = WIRE_OP_RPUT,
                             .key = x->batch[i].key,
                             .key_len = x->batch[i].key_len,
                             .rec = x->batch[i].rec,
                             .rec_len = x->batch[i].rec_len};
        if (cb == NULL) {
            x->batch_failed = true;
            break;
        }
        *cb = (struct xcb){m, x->gen};
        if (m->env->ops->peer_request(m->env, slot, &q, xfer_acked, cb) != 0) {
            free(cb);
            x->batch_failed = true;
            break;
        }
        x->inflight++;
        x->keys++;
        x->bytes += x->batch[i].key_len + x->batch[i].rec_len;
        m->st.transfer_keys++;
        m->st.transfer_bytes += x->batch[i].key_len + x->batch[i].rec_len;
    }
    if (m->o.transfer_rate > 0)
        x->next_at = now(m) + (uint64_t)x->nbatch * 1000 / m->o.transfer_rate;
    /* Drop the hold; the callbacks run later, never inside peer_request. */
    struct xcb *hold = malloc(sizeof(*hold));
    if (hold == NULL) {
        x->inflight--;
        return;
    }
    *hold = (struct xcb){m, x->gen};
    xfer_acked(hold, 0, &(struct wire_resp){0});
}

static bool reported(struct member *m, uint32_t part, const char *dest);

/* Finds this node's first unfinished transfer in the plan. */
static bool next_transfer(struct member *m, struct ring_transfer *out)
{
    uint32_t n = ring_state_transfers(m->rs);
    for (uint32_t i = 0; i < n; i++) {
        if (ring_state_transfer(m->rs, i, out) != 0)
            continue;
        if (!out->done && out->src != NULL &&
            strcmp(out->src, m->self_id) == 0 && is_alive(m, out->dest) &&
            !reported(m, out->part, out->dest))
            return true;
    }
    return false;
}

static bool still_planned(struct member *m)
{
    uint32_t n = ring_state_transfers(m->rs);
    struct ring_transfer t;
    for (uint32_t i = 0; i < n; i++)
        if (ring_state_transfer(m->rs, i, &t) == 0 && t.part == m->x.part &&
            strcmp(t.dest, m->x.dest) == 0)
            return !t.done && t.src != NULL && strcmp(t.src, m->self_id) == 0;
    return false;
}

/* The copies this node finished and reported to the claimant, not yet
 * marked done in the state it holds: re-reported every MEMBER_RESEND_MS,
 * and skipped when choosing the next copy, so the source does not wait a
 * gossip round per partition. */
static bool reported(struct member *m, uint32_t part, const char *dest)
{
    for (uint32_t i = 0; i < m->nrep; i++)
        if (m->rep[i].part == part && strcmp(m->rep[i].dest, dest) == 0)
            return true;
    return false;
}

static void report_done(struct member *m, uint32_t part, const char *dest)
{
    if (!reported(m, part, dest)) {
        if (m->nrep == m->rep_cap) {
            uint32_t cap = m->rep_cap ? m->rep_cap * 2 : 64;
            void *np = realloc(m->rep, cap * sizeof(*m->rep));
            if (np == NULL)
                return; /* re-copied later: harmless */
            m->rep = np;
            m->rep_cap = cap;
        }
        m->rep[m->nrep].part = part;
        snprintf(m->rep[m->nrep].dest, sizeof(m->rep[0].dest), "%s", dest);
        m->nrep++;
    }
    to_claimant(m, "xfer_done", dest, part);
}

/* Drops reports the state confirms (or no longer plans); re-sends the
 * rest now and then. */
static void rereport(struct member *m)
{
    bool resend = now(m) >= m->rep_at;
    if (resend)
        m->rep_at = now(m) + MEMBER_RESEND_MS;
    for (uint32_t i = 0; i < m->nrep;) {
        struct ring_transfer t;
        bool open = false;
        uint32_t n = m->rs ? ring_state_transfers(m->rs) : 0;
        for (uint32_t j = 0; j < n; j++)
            if (ring_state_transfer(m->rs, j, &t) == 0 &&
                t.part == m->rep[i].part && strcmp(t.dest, m->rep[i].dest) == 0)
                open =
                    !t.done && t.src != NULL && strcmp(t.src, m->self_id) == 0;
        if (!open) {
            m->rep[i] = m->rep[--m->nrep];
            continue;
        }
        if (resend)
            to_claimant(m, "xfer_done", m->rep[i].dest, m->rep[i].part);
        i++;
    }
}

static void transfers(struct member *m)
{
    struct xfer *x = &m->x;
    if (m->rs == NULL || !ring_state_pending(m->rs)) {
        if (x->active)
            xfer_stop(m);
        m->nrep = 0;
        return;
    }
    rereport(m);
    /* Several steps at once: an empty or small partition takes one. */
    for (int step = 0; step < 64 && m->rs != NULL && ring_state_pending(m->rs);
         step++) {
        if (x->active && !still_planned(m))
            xfer_stop(m);
        if (!x->active) {
            struct ring_transfer t;
            if (!next_transfer(m, &t))
                return;
            x->batch = calloc(m->o.transfer_batch, sizeof(*x->batch));
            if (x->batch == NULL)
                return;
            x->active = true;
            x->part = t.part;
            snprintf(x->dest, sizeof(x->dest), "%s", t.dest);
            x->state_version = ring_state_version(m->rs);
            x->started_ms = now(m);
            mlog(m, LOG_DEBUG, "transfer of partition %u to %s started",
                 x->part, x->dest);
        }
        if (x->inflight > 0 || now(m) < x->next_at)
            return;
        if (!x->scan_done && m->o.test_skip_copy)
            x->scan_done = true; /* TEST ONLY: a broken transfer */
        if (!x->scan_done) {
            xfer_batch(m);
            if (!x->scan_done)
                return; /* a batch is out (or waits for the destination) */
        }
        m->st.transfers_sent++;
        mlog(m, x->keys > 0 ? LOG_INFO : LOG_DEBUG,
             "transfer of partition %u to %s copied: %" PRIu64
             " records, %" PRIu64 " bytes in %" PRIu64 " ms",
             x->part, x->dest, x->keys, x->bytes, now(m) - x->started_ms);
        char dest[GOSSIP_ID_MAX + 1];
        uint32_t part = x->part;
        snprintf(dest, sizeof(dest), "%s", x->dest);
        xfer_stop(m);
        report_done(m, part, dest);
    }
}

static void pump_fired(void *arg)
{
    struct member *m = arg;
    m->pump = NULL;
    if (!m->closing)
        transfers(m);
}

/* A batch finished: go on without waiting for the tick (throttled by
 * next_at). */
static void pump(struct member *m)
{
    if (m->pump != NULL || m->closing)
        return;
    uint64_t t = now(m), at = m->x.next_at;
    m->pump =
        m->env->ops->timer_start(m->env, at > t ? at - t : 0, pump_fired, m);
}

/* ---- dropping partitions no longer held --------------------------------- */

struct drop_op {
    struct storage_op op;
    struct member *m;
    uint8_t key[];
};

static int drop_apply(struct storage_op *op, const uint8_t *old, size_t len,
                      uint8_t **out, size_t *out_len)
{
    (void)old;
    (void)len;
    (void)out;
    (void)out_len;
    return STORAGE_APPLY_DELETE;
}

static void drop_done(struct storage_op *op)
{
    struct drop_op *d = (struct drop_op *)op;
    if (op->status == 0)
        d->m->st.keys_dropped++;
    free(d);
}

struct drop_scan {
    struct member *m;
    uint32_t part, n;
    int err;
};

static int drop_one(void *arg, const uint8_t *key, uint32_t key_len,
                    const uint8_t *val, size_t len)
{
    struct drop_scan *ds = arg;
    (void)val;
    (void)len;
    struct drop_op *d = calloc(1, sizeof(*d) + key_len);
    if (d == NULL)
        return -ENOMEM;
    memcpy(d->key, key, key_len);
    d->m = ds->m;
    d->op = (struct storage_op){.partition = ds->part,
                                .key = d->key,
                                .key_len = key_len,
                                .apply = drop_apply,
                                .done = drop_done,
                                .size = key_len};
    int rc = ds->m->env->ops->store_submit(ds->m->env, &d->op);
    if (rc != 0) {
        free(d);
        return rc;
    }
    return ++ds->n >= 256 ? 1 : 0;
}

static void drops(struct member *m)
{
    if (m->rs == NULL || ring_state_pending(m->rs) || m->want_leave ||
        now(m) < m->state_changed_ms + MEMBER_DROP_DELAY_MS)
        return;
    uint32_t q = ring_q(ring_state_cur(m->rs));
    if (m->drop_part < q && !m->renewed) {
        /* Dropping keys loses dots this node's actor issued; writes it
         * coordinates later must not reissue them (docs/design.md, "Safe
         * actors"): take a new actor first, durably. */
        bool any = false;
        for (uint32_t p = m->drop_part; p < q && !any; p++)
            any = !ring_state_responsible(m->rs, m->self_id, p);
        if (!any) {
            m->drop_part = q;
            return;
        }
        uint64_t epoch;
        int rc = m->env->ops->store_new_epoch(m->env, &epoch);
        if (rc != 0)
            return; /* logged; tried again next tick */
        core_set_actor(m->core, epoch);
        m->renewed = true;
        mlog(m, LOG_INFO,
             "new actor %016" PRIx64 " before dropping partitions this node "
             "no longer holds",
             epoch);
    }
    /* A few partitions per tick; a partition with keys left is revisited. */
    for (uint32_t tries = 0; tries < 8 && m->drop_part < q; tries++) {
        uint32_t p = m->drop_part;
        if (ring_state_responsible(m->rs, m->self_id, p)) {
            m->drop_part++;
            continue;
        }
        struct drop_scan ds = {m, p, 0, 0};
        int rc = m->env->ops->store_scan(m->env, p, NULL, 0, drop_one, &ds);
        if (rc < 0)
            return; /* tried again next tick */
        if (ds.n == 0) {
            m->drop_part++; /* nothing held here: check the next one */
            continue;
        }
        if (ds.n < 256) {
            m->st.partitions_dropped++;
            mlog(m, LOG_INFO,
                 "partition %u is no longer held here: %u keys "
                 "dropped",
                 p, ds.n);
            m->drop_part++;
        }
        return; /* one batch per tick */
    }
}

/* ---- leave ---------------------------------------------------------------
 */

static void leaving(struct member *m)
{
    if (!m->want_leave || m->rs == NULL)
        return;
    if (m->left_ticks > 0) {
        if (--m->left_ticks == 0 && m->o.on_left != NULL) {
            mlog(m, LOG_INFO, "left the cluster; stopping");
            m->o.on_left(m->o.cb_arg);
        }
        return;
    }
    const struct ring *cur = ring_state_cur(m->rs);
    if (!ring_has(cur, m->self_id) && !ring_state_pending(m->rs)) {
        gossip_leave(m->g, now(m));
        m->left_ticks = MEMBER_LEFT_LINGER;
        return;
    }
    if (!ring_state_leaving(m->rs, m->self_id) && now(m) >= m->resend_at) {
        m->resend_at = now(m) + MEMBER_RESEND_MS;
        to_claimant(m, "leave_req", m->self_id, 0);
    }
}

static void removing(struct member *m)
{
    if (m->rs == NULL || m->nwant_remove == 0 || now(m) < m->resend_at)
        return;
    m->resend_at = now(m) + MEMBER_RESEND_MS;
    for (uint32_t i = 0; i < m->nwant_remove;) {
        const char *id = m->want_remove[i];
        if (!ring_has(ring_state_cur(m->rs), id) ||
            ring_state_removed(m->rs, id)) {
            drop_listed(m->want_remove, &m->nwant_remove, id);
            continue;
        }
        to_claimant(m, "remove_req", id, 0);
        i++;
    }
}

/* ---- the tick ----------------------------------------------------------- */

static void watch_change(struct member *m);

static void tick(void *arg)
{
    struct member *m = arg;
    m->timer = NULL;
    if (m->closing)
        return;
    gossip_tick(m->g, now(m));
    on_events(m);
    watch_change(m);
    if (m->rs != NULL && am_claimant(m))
        claim(m);
    transfers(m);
    drops(m);
    leaving(m);
    removing(m);
    send_gossip(m);
    if (!m->closing)
        m->timer = m->env->ops->timer_start(m->env, MEMBER_TICK_MS, tick, m);
}

/* ---- public ------------------------------------------------------------- */

static int found(struct member *m, const struct member_opts *o, char *err,
                 size_t errlen)
{
    struct ring *r = NULL;
    struct ring_state *rs = NULL;
    const char *self = m->self_id;
    const char *const *ids = o->nstatic > 0 ? o->static_ids : &self;
    uint32_t n = o->nstatic > 0 ? o->nstatic : 1;
    int rc = ring_build(&r, o->partitions, ids, n);
    if (rc == 0)
        rc = ring_state_create(&rs, r, o->nval);
    ring_destroy(r);
    if (rc != 0) {
        snprintf(err, errlen, "cannot build the first ring: %s",
                 rk_err_msg(rc));
        return rc;
    }
    m->rs = rs;
    publish(m);
    return 0;
}

int member_create(struct member **out, struct env *env, struct core *core,
                  const struct member_opts *o, char *err, size_t errlen)
{
    struct member *m = calloc(1, sizeof(*m));
    int rc;
    if (m == NULL)
        return -ENOMEM;
    m->env = env;
    m->core = core;
    m->o = *o;
    if (m->o.transfer_batch == 0 || m->o.transfer_batch > MEMBER_XFER_MAX_BATCH)
        m->o.transfer_batch = 64;
    snprintf(m->cluster, sizeof(m->cluster), "%s", o->cluster);
    snprintf(m->self_id, sizeof(m->self_id), "%s", o->self_id);
    snprintf(m->self_addr, sizeof(m->self_addr), "%s", o->self_addr);
    int self = env->ops->peer_slot(env, m->self_id);
    m->self_slot = self >= 0 ? (uint32_t)self : 0;
    struct gossip_conf gc = gossip_conf_defaults();
    gc.cluster = m->cluster;
    gc.self_id = m->self_id;
    gc.self_addr = m->self_addr;
    /* Wall-clock milliseconds: a restarted node comes back at a higher
     * incarnation than its last life had, so its ALIVE outranks whatever
     * the others remember of it. */
    gc.incarnation = o->incarnation ? o->incarnation : env->ops->wall_ms(env);
    gc.seed = env->ops->random64(env);
    if (o->probe_interval_ms)
        gc.probe_interval_ms = o->probe_interval_ms;
    if (o->probe_timeout_ms)
        gc.probe_timeout_ms = o->probe_timeout_ms;
    if (o->suspicion_mult)
        gc.suspicion_mult = o->suspicion_mult;
    if ((rc = gossip_create(&m->g, &gc, now(m))) != 0) {
        snprintf(err, errlen, "cannot start gossip: %s", rk_err_msg(rc));
        free(m);
        return rc;
    }
    core_set_liveness(core, slot_down, m);
    if (o->saved != NULL && o->saved_len > 0) {
        const char *why = NULL;
        struct ring_state *rs = NULL;
        rc = ring_state_decode(o->saved, o->saved_len, &rs, &why);
        if (rc != 0) {
            snprintf(err, errlen, "the saved ring state is not valid: %s",
                     why ? why : rk_err_msg(rc));
            gossip_destroy(m->g);
            free(m);
            return RK_ECORRUPT;
        }
        gossip_set_state(m->g, ring_state_version(rs), o->saved, o->saved_len);
        take_state(m, rs);
    } else if (o->nstatic > 0 || o->nseeds == 0) {
        if ((rc = found(m, o, err, errlen)) != 0) {
            gossip_destroy(m->g);
            free(m);
            return rc;
        }
    } else {
        install_view(m); /* no ring yet: requests fail unavailable */
    }
    for (uint32_t i = 0; i < o->nseeds; i++)
        gossip_add_seed(m->g, o->seeds[i]);
    m->timer = env->ops->timer_start(env, MEMBER_TICK_MS, tick, m);
    *out = m;
    return 0;
}

void member_close(struct member *m)
{
    if (m == NULL || m->closing)
        return;
    m->closing = true;
    if (m->timer != NULL)
        m->env->ops->timer_cancel(m->env, m->timer);
    m->timer = NULL;
    if (m->pump != NULL)
        m->env->ops->timer_cancel(m->env, m->pump);
    m->pump = NULL;
    xfer_stop(m);
    core_set_liveness(m->core, NULL, NULL);
}

void member_destroy(struct member *m)
{
    if (m == NULL)
        return;
    xfer_stop(m);
    free(m->rep);
    gossip_destroy(m->g);
    ring_state_destroy(m->rs);
    free(m);
}

int member_gossip_in(struct member *m, const char *from_id, const uint8_t *buf,
                     size_t len)
{
    if (m->closing)
        return RK_ESHUTTING_DOWN;
    int rc = gossip_recv(m->g, now(m), from_id, buf, len);
    if (rc != 0) {
        m->st.gossip_refused++;
        return rc;
    }
    on_events(m);
    send_gossip(m);
    return 0;
}

void member_link(struct member *m, uint32_t slot, const char *id, bool up)
{
    (void)slot;
    (void)id;
    if (!up || m->closing)
        return;
    /* A member whose slot just got its id: the view may map it now. */
    install_view(m);
}

void member_get_stats(const struct member *m, struct member_stats *st)
{
    static struct gossip_member tab[GOSSIP_MAX_MEMBERS];
    struct gossip_stats gs;
    *st = m->st;
    int n = gossip_members(m->g, m->env->ops->now_ms(m->env), tab,
                           GOSSIP_MAX_MEMBERS);
    for (int i = 0; i < n && i < GOSSIP_MAX_MEMBERS; i++) {
        switch (tab[i].state) {
        case GOSSIP_ALIVE:
            st->alive++;
            break;
        case GOSSIP_SUSPECT:
            st->suspect++;
            break;
        case GOSSIP_DEAD:
            st->dead++;
            break;
        default:
            st->left++;
            break;
        }
    }
    if (m->rs != NULL) {
        st->ring_members = ring_members(ring_state_cur(m->rs));
        st->ring_pending = ring_state_pending(m->rs);
        st->transfers = ring_state_transfers(m->rs);
        st->transfers_done = ring_state_transfers_done(m->rs);
        st->transfers_blocked = ring_state_transfers_blocked(m->rs);
    }
    gossip_stats(m->g, &gs);
    st->gossip_sent = gs.msgs_sent;
    st->gossip_received = gs.msgs_received;
    st->gossip_refused_cluster = gs.refused_cluster;
    st->gossip_refused_sender = gs.refused_sender;
    st->gossip_malformed = gs.malformed;
    st->gossip_dropped = gs.out_dropped;
    st->suspicions = gs.suspicions;
    st->refuted = gs.refuted;
    st->deaths = gs.deaths;
}

/* ---- admin -------------------------------------------------------------- */

struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void sb_printf(struct sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    if (b->oom)
        return;
    for (;;) {
        size_t room = b->cap - b->len;
        va_start(ap, fmt);
        int n =
            vsnprintf(b->p ? b->p + b->len : NULL, b->p ? room : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = true;
            return;
        }
        if (b->p != NULL && (size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t ncap = b->cap ? b->cap * 2 : 1024;
        while (ncap < b->len + (size_t)n + 1)
            ncap *= 2;
        char *np = realloc(b->p, ncap);
        if (np == NULL) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = ncap;
    }
}

/* id and addr are ours or gossip's: printable, but quoted for JSON. */
static void sb_json_str(struct sbuf *b, const char *s)
{
    sb_printf(b, "\"");
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            sb_printf(b, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            sb_printf(b, "\\u%04x", (unsigned)(unsigned char)*s);
        else
            sb_printf(b, "%c", *s);
    }
    sb_printf(b, "\"");
}

static const char *ring_role(struct member *m, const char *id)
{
    if (m->rs == NULL)
        return "none";
    bool in_cur = ring_has(ring_state_cur(m->rs), id);
    bool in_next = ring_has(ring_state_next(m->rs), id);
    if (in_cur && ring_state_removed(m->rs, id))
        return "removing";
    if (in_cur && ring_state_leaving(m->rs, id))
        return "leaving";
    if (in_cur)
        return "member";
    if (in_next)
        return "joining";
    return "none";
}

static void members_out(struct member *m, bool json, struct sbuf *b)
{
    static struct gossip_member tab[GOSSIP_MAX_MEMBERS];
    int n = gossip_members(m->g, now(m), tab, GOSSIP_MAX_MEMBERS);
    if (n > GOSSIP_MAX_MEMBERS)
        n = GOSSIP_MAX_MEMBERS;
    if (json) {
        sb_printf(b, "{\"ring_version\":%" PRIu64 ",\"members\":[",
                  m->rs ? ring_state_version(m->rs) : 0);
        for (int i = 0; i < n; i++) {
            const struct gossip_member *g = &tab[i];
            sb_printf(b, "%s{\"id\":", i ? "," : "");
            sb_json_str(b, g->id);
            sb_printf(b, ",\"addr\":");
            sb_json_str(b, g->addr);
            sb_printf(b,
                      ",\"state\":\"%s\",\"incarnation\":%" PRIu64
                      ",\"last_heard_ms\":%" PRIu64
                      ",\"ring\":\"%s\",\"self\":%s}",
                      gossip_state_name(g->state), g->incarnation,
                      g->self ? 0 : g->since_heard_ms, ring_role(m, g->id),
                      g->self ? "true" : "false");
        }
        sb_printf(b, "]}\n");
        return;
    }
    sb_printf(b, "%-20s %-24s %-8s %-12s %-10s %s\n", "ID", "ADDRESS", "STATE",
              "INCARNATION", "HEARD", "RING");
    for (int i = 0; i < n; i++) {
        const struct gossip_member *g = &tab[i];
        char heard[32];
        if (g->self)
            snprintf(heard, sizeof(heard), "self");
        else
            snprintf(heard, sizeof(heard), "%" PRIu64 "ms", g->since_heard_ms);
        sb_printf(b, "%-20s %-24s %-8s %-12" PRIu64 " %-10s %s\n", g->id,
                  g->addr, gossip_state_name(g->state), g->incarnation, heard,
                  ring_role(m, g->id));
    }
    sb_printf(b, "ring version %" PRIu64 "%s\n",
              m->rs ? ring_state_version(m->rs) : 0,
              m->rs && ring_state_pending(m->rs) ? ", change pending" : "");
}

/* Tracks how long the pending change has been watched, for the ETA. */
static void watch_change(struct member *m)
{
    if (m->rs == NULL || !ring_state_pending(m->rs)) {
        m->pending_since = 0;
    } else if (m->pending_since == 0) {
        m->pending_since = now(m);
        m->done_since = ring_state_transfers_done(m->rs);
    }
}

/* Seconds until every copy is done at the pace seen so far; -1 when no
 * copy finished yet while watched (or nothing is pending). */
static int64_t eta_s(struct member *m, uint32_t n, uint32_t done)
{
    if (m->pending_since == 0 || done <= m->done_since || done >= n)
        return done >= n && n > 0 ? 0 : -1;
    uint64_t el = now(m) - m->pending_since;
    return (int64_t)(el * (n - done) / (done - m->done_since) / 1000);
}

static void transfers_out(struct member *m, bool json, struct sbuf *b)
{
    uint32_t n = m->rs ? ring_state_transfers(m->rs) : 0;
    uint32_t done = m->rs ? ring_state_transfers_done(m->rs) : 0;
    int64_t eta = eta_s(m, n, done);
    uint32_t blocked = m->rs ? ring_state_transfers_blocked(m->rs) : 0;
    struct xfer *x = &m->x;
    uint64_t el = x->active ? now(m) - x->started_ms : 0;
    double rate = el > 0 ? (double)x->keys * 1000.0 / (double)el : 0.0;
    if (json) {
        sb_printf(b,
                  "{\"ring_version\":%" PRIu64
                  ",\"pending\":%s,\"total\":%u,\"done\":%u,\"blocked\":%u,"
                  "\"eta_s\":%" PRId64 ",\"sent_partitions\":%" PRIu64
                  ",\"sent_keys\":%" PRIu64 ",\"sent_bytes\":%" PRIu64
                  ",\"active\":",
                  m->rs ? ring_state_version(m->rs) : 0,
                  m->rs && ring_state_pending(m->rs) ? "true" : "false", n,
                  done, blocked, eta, m->st.transfers_sent, m->st.transfer_keys,
                  m->st.transfer_bytes);
        if (x->active) {
            sb_printf(b, "{\"partition\":%u,\"dest\":", x->part);
            sb_json_str(b, x->dest);
            sb_printf(b,
                      ",\"keys\":%" PRIu64 ",\"bytes\":%" PRIu64
                      ",\"keys_per_s\":%.0f,\"copied\":%s}",
                      x->keys, x->bytes, rate, x->scan_done ? "true" : "false");
        } else {
            sb_printf(b, "null");
        }
        sb_printf(b, ",\"transfers\":[");
    } else {
        sb_printf(b,
                  "ring version %" PRIu64 ": %s; %u transfers, %u done, %u "
                  "in flight or pending, %u blocked\n",
                  m->rs ? ring_state_version(m->rs) : 0,
                  m->rs && ring_state_pending(m->rs) ? "change pending"
                                                     : "no change pending",
                  n, done, n - done, blocked);
        if (eta > 0)
            sb_printf(b, "about %" PRId64 " s to go at the pace so far\n", eta);
        sb_printf(b,
                  "this node sent %" PRIu64 " partitions, %" PRIu64
                  " records, %" PRIu64 " bytes\n",
                  m->st.transfers_sent, m->st.transfer_keys,
                  m->st.transfer_bytes);
        if (x->active)
            sb_printf(b,
                      "sending partition %u to %s: %" PRIu64
                      " records so far, %.0f records/s%s\n",
                      x->part, x->dest, x->keys, rate,
                      x->scan_done ? ", copied, waiting for the claimant" : "");
        if (n > 0)
            sb_printf(b, "%-9s %-20s %-20s %s\n", "PARTITION", "TO", "FROM",
                      "STATE");
    }
    for (uint32_t i = 0; i < n; i++) {
        struct ring_transfer t;
        if (ring_state_transfer(m->rs, i, &t) != 0)
            continue;
        bool inflight =
            x->active && x->part == t.part && strcmp(x->dest, t.dest) == 0;
        const char *st = t.done          ? "done"
                         : t.src == NULL ? "blocked: no live replica holds it"
                         : inflight      ? "in flight"
                                         : "pending";
        if (json) {
            sb_printf(b, "%s{\"partition\":%u,\"dest\":", i ? "," : "", t.part);
            sb_json_str(b, t.dest);
            sb_printf(b, ",\"src\":");
            if (t.src)
                sb_json_str(b, t.src);
            else
                sb_printf(b, "null");
            sb_printf(b, ",\"state\":\"%s\"}",
                      t.done          ? "done"
                      : t.src == NULL ? "blocked"
                      : inflight      ? "in_flight"
                                      : "pending");
        } else {
            sb_printf(b, "%-9u %-20s %-20s %s\n", t.part, t.dest,
                      t.src ? t.src : "-", st);
        }
    }
    if (json)
        sb_printf(b, "]}\n");
}

static int admin_err(char **out, int err, const char *msg)
{
    *out = strdup(msg);
    return err;
}

int member_admin(struct member *m, const char *cmd, const char *arg,
                 uint32_t part, bool json, bool from_peer, char **out)
{
    struct sbuf b = {0};
    *out = NULL;
    if (m->closing)
        return admin_err(out, RK_ESHUTTING_DOWN, "the node is shutting down");
    if (strcmp(cmd, "members") == 0) {
        members_out(m, json, &b);
    } else if (strcmp(cmd, "transfers") == 0) {
        transfers_out(m, json, &b);
    } else if (strcmp(cmd, "join") == 0) {
        if (arg == NULL || arg[0] == '\0')
            return admin_err(out, RK_EBAD_REQUEST, "join needs a seed address");
        if (m->rs != NULL && ring_members(ring_state_cur(m->rs)) > 1)
            return admin_err(out, RK_ECONFIG,
                             "this node is already in a cluster of several "
                             "members; leave it first");
        if (m->rs != NULL) {
            /* Give up the one-member ring this node founded alone. */
            ring_state_destroy(m->rs);
            m->rs = NULL;
            gossip_clear_state(m->g);
            install_view(m);
        }
        int rc = gossip_add_seed(m->g, arg);
        if (rc != 0)
            return admin_err(out, rc, "cannot add that seed");
        send_gossip(m);
        sb_printf(&b, "joining through %s\n", arg);
    } else if (strcmp(cmd, "leave") == 0) {
        if (m->rs == NULL || !ring_has(ring_state_cur(m->rs), m->self_id))
            return admin_err(out, RK_ECONFIG, "this node is not in a ring");
        if (ring_members(ring_state_cur(m->rs)) < 2)
            return admin_err(out, RK_ECONFIG,
                             "the last member of a ring cannot leave it");
        m->want_leave = true;
        m->resend_at = 0;
        sb_printf(&b, "leaving: this node hands its partitions over and "
                      "then stops\n");
    } else if (strcmp(cmd, "remove") == 0) {
        if (m->rs == NULL || !ring_has(ring_state_cur(m->rs), arg))
            return admin_err(out, RK_ECONFIG, "no such ring member");
        if (strcmp(arg, m->self_id) == 0 || is_alive(m, arg))
            return admin_err(out, RK_ECONFIG,
                             "that member is alive: use leave on it "
                             "instead");
        add_listed(m->want_remove, &m->nwant_remove, arg);
        m->resend_at = 0;
        sb_printf(&b,
                  "removing %s: its partitions are rebuilt from the other "
                  "replicas\n",
                  arg);
    } else if (strcmp(cmd, "leave_req") == 0 ||
               strcmp(cmd, "remove_req") == 0 ||
               strcmp(cmd, "xfer_done") == 0) {
        if (!from_peer)
            return admin_err(out, RK_EFORBIDDEN, "peer-only command");
        if (m->rs == NULL || !am_claimant(m))
            return admin_err(out, RK_EUNAVAILABLE, "not the claimant");
        if (cmd[0] == 'l') {
            add_listed(m->leave_req, &m->nleave_req, arg);
        } else if (cmd[0] == 'r') {
            add_listed(m->remove_req, &m->nremove_req, arg);
        } else {
            uint64_t v = ring_state_version(m->rs);
            const struct ring *cur = ring_state_cur(m->rs);
            char gone[MEMBER_MAX_REQS][GOSSIP_ID_MAX + 1];
            uint32_t ngone = 0;
            for (uint32_t i = 0; i < ring_members(cur); i++)
                if (ring_state_leaving(m->rs, ring_member(cur, i)))
                    add_listed(gone, &ngone, ring_member(cur, i));
            int rc = ring_state_transfer_done(m->rs, part, arg);
            if (rc == 0 && !ring_state_pending(m->rs)) {
                for (uint32_t i = 0; i < ngone; i++)
                    add_listed(m->departed, &m->ndeparted, gone[i]);
                m->departed_at = now(m);
            }
            if (rc == 0 && ring_state_version(m->rs) != v) {
                if (!ring_state_pending(m->rs))
                    mlog(m, LOG_INFO,
                         "ring change complete: every copy is done "
                         "(version %" PRIu64 ", %u members)",
                         ring_state_version(m->rs),
                         ring_members(ring_state_cur(m->rs)));
                publish(m);
            }
        }
        sb_printf(&b, "ok\n");
    } else {
        return admin_err(out, RK_EBAD_REQUEST, "unknown admin command");
    }
    if (b.oom) {
        free(b.p);
        return -ENOMEM;
    }
    *out = b.p;
    return 0;
}
