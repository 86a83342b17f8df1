/*
 * test_gossip.c - unit tests of gossip/: the codec (round trip, truncated,
 * oversized and garbage input), the refusals (cluster name, sender), the
 * precedence rules, and whole clusters of 8..128 members driven over an
 * in-process simulated network with virtual time, seeded loss and delay:
 * convergence from one seed each in O(log n) probe periods, failure
 * detection within the bound of gossip.h, refutation under 10 % loss,
 * leave/remove/reap, and convergence of the cluster state blob.
 *
 * The simulation is deterministic: one xorshift generator for the network,
 * each member's gossip seeded from its index. Time advances in STEP ms.
 */
#include "gossip/gossip.h"
#include "gossip/gossip_msg.h"

#include "proto/errors.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(gossip, .timeout = 120);

#define MAXN     128
#define STEP     10  /* ms per simulation step */
#define INTERVAL 200 /* probe period in the simulated clusters */

/* ---- the simulated network ----------------------------------------------- */

struct flight {
    int from, to;
    uint64_t at;
    uint8_t *buf;
    size_t len;
};

struct sim {
    int n;
    struct gossip *g[MAXN];
    bool down[MAXN];
    int side[MAXN]; /* messages between different sides are lost */
    char id[MAXN][16], addr[MAXN][32];
    uint64_t now, rng;
    unsigned loss_pct, max_delay;
    struct flight *f;
    size_t nf, capf;
    /* events about the watched member */
    int watch;
    uint64_t first_suspect, first_dead;
    int dead_events;
};

static uint64_t srand64(struct sim *s)
{
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    return s->rng;
}

static struct gossip_conf sim_conf(struct sim *s, int i)
{
    struct gossip_conf c = gossip_conf_defaults();
    c.cluster = "test";
    c.self_id = s->id[i];
    c.self_addr = s->addr[i];
    c.seed = 1000 + (uint64_t)i;
    c.probe_interval_ms = INTERVAL;
    c.probe_timeout_ms = 60;
    c.sync_interval_ms = 10 * INTERVAL;
    c.reap_ms = 600 * INTERVAL;
    return c;
}

static void sim_start(struct sim *s, int i, uint64_t incarnation)
{
    struct gossip_conf c = sim_conf(s, i);
    c.incarnation = incarnation;
    cr_assert_eq(gossip_create(&s->g[i], &c, s->now), 0);
    s->down[i] = false;
}

/* n members; member i > 0 knows one seed: a random earlier member. */
static void sim_init(struct sim *s, int n, uint64_t seed)
{
    memset(s, 0, sizeof(*s));
    s->n = n;
    s->rng = seed | 1;
    s->max_delay = 10;
    s->watch = -1;
    s->now = 1000000;
    for (int i = 0; i < n; i++) {
        snprintf(s->id[i], sizeof(s->id[i]), "n%03d", i);
        snprintf(s->addr[i], sizeof(s->addr[i]), "10.0.%d.%d:7001", i / 200,
                 i % 200 + 1);
        sim_start(s, i, 0);
    }
    for (int i = 1; i < n; i++)
        cr_assert_eq(
            gossip_add_seed(s->g[i], s->addr[srand64(s) % (uint64_t)i]), 0);
}

static void sim_free(struct sim *s)
{
    for (int i = 0; i < s->n; i++)
        gossip_destroy(s->g[i]);
    for (size_t k = 0; k < s->nf; k++)
        free(s->f[k].buf);
    free(s->f);
}

static int addr_index(const struct sim *s, const char *addr)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->addr[i], addr) == 0)
            return i;
    return -1;
}

static void drain(struct sim *s, int i)
{
    char addr[GOSSIP_ADDR_MAX + 1];
    uint8_t *buf;
    size_t len;
    struct gossip_event ev;
    while (gossip_next_msg(s->g[i], addr, &buf, &len) == 0) {
        int to = addr_index(s, addr);
        if (to < 0 || srand64(s) % 100 < s->loss_pct ||
            s->side[to] != s->side[i])
            continue;
        if (s->nf == s->capf) {
            s->capf = s->capf ? s->capf * 2 : 256;
            s->f = realloc(s->f, s->capf * sizeof(*s->f));
            cr_assert_not_null(s->f);
        }
        struct flight *f = &s->f[s->nf++];
        f->from = i;
        f->to = to;
        f->at = s->now + 1 + srand64(s) % s->max_delay;
        f->buf = malloc(len);
        cr_assert_not_null(f->buf);
        memcpy(f->buf, buf, len);
        f->len = len;
    }
    while (gossip_next_event(s->g[i], &ev) == 0) {
        if (s->watch < 0 || ev.type != GOSSIP_EV_MEMBER_STATE ||
            strcmp(ev.id, s->id[s->watch]) != 0)
            continue;
        if (ev.new_state == GOSSIP_SUSPECT && s->first_suspect == 0)
            s->first_suspect = s->now;
        if (ev.new_state == GOSSIP_DEAD) {
            s->dead_events++;
            if (s->first_dead == 0)
                s->first_dead = s->now;
        }
    }
}

static void sim_step(struct sim *s)
{
    s->now += STEP;
    size_t k = 0;
    for (size_t j = 0; j < s->nf; j++) {
        struct flight f = s->f[j];
        if (f.at > s->now) {
            s->f[k++] = f;
            continue;
        }
        if (!s->down[f.to])
            (void)gossip_recv(s->g[f.to], s->now, s->id[f.from], f.buf, f.len);
        free(f.buf);
    }
    s->nf = k;
    for (int i = 0; i < s->n; i++)
        if (!s->down[i]) {
            gossip_tick(s->g[i], s->now);
            drain(s, i);
        }
}

static struct gossip_member view_buf[GOSSIP_MAX_MEMBERS];

/* What member obs thinks of member i: its state, or -1 when not listed. */
static int view(const struct sim *s, int obs, int i, uint64_t *inc)
{
    int n = gossip_members(s->g[obs], s->now, view_buf, GOSSIP_MAX_MEMBERS);
    for (int k = 0; k < n; k++)
        if (strcmp(view_buf[k].id, s->id[i]) == 0) {
            if (inc != NULL)
                *inc = view_buf[k].incarnation;
            return (int)view_buf[k].state;
        }
    return -1;
}

/* Every up member lists member i in state st (i itself excluded). */
static bool all_see(const struct sim *s, int i, int st)
{
    for (int obs = 0; obs < s->n; obs++)
        if (!s->down[obs] && obs != i && view(s, obs, i, NULL) != st)
            return false;
    return true;
}

static bool converged(const struct sim *s)
{

    for (int i = 0; i < s->n; i++)
        if (!s->down[i] && !all_see(s, i, GOSSIP_ALIVE))
            return false;
    return true;
}

/* Steps until cond holds or max_ms passes; returns the ms it took or -1. */
#define RUN_UNTIL(s, cond, max_ms)                                             \
    ({                                                                         \
        uint64_t start_ = (s)->now;                                            \
        long r_ = -1;                                                          \
        while ((s)->now - start_ <= (max_ms)) {                                \
            if (cond) {                                                        \
                r_ = (long)((s)->now - start_);                                \
                break;                                                         \
            }                                                                  \
            sim_step(s);                                                       \
        }                                                                      \
        r_;                                                                    \
    })

static struct gossip_stats sum_stats(const struct sim *s)
{
    struct gossip_stats t = {0}, x;
    for (int i = 0; i < s->n; i++) {
        gossip_stats(s->g[i], &x);
        t.suspicions += x.suspicions;
        t.refuted += x.refuted;
        t.deaths += x.deaths;
        t.msgs_sent += x.msgs_sent;
        t.state_syncs += x.state_syncs;
        t.malformed += x.malformed;
    }
    return t;
}

static int ilog2_ceil(int n)
{
    int k = 0;
    while ((1 << k) < n)
        k++;
    return k;
}

/* ---- convergence --------------------------------------------------------- */

/* c in "within c * log2(n) probe periods" */
#define CONVERGE_C 2

Test(gossip, members_started_from_one_seed_converge_in_log_n_periods)
{
    static struct sim s;
    int sizes[] = {8, 16, 32, 64, 128};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        int n = sizes[k];
        sim_init(&s, n, 42 + (uint64_t)n);
        long ms = RUN_UNTIL(&s, converged(&s), 200u * INTERVAL);
        cr_assert_geq(ms, 0, "n=%d did not converge", n);
        double periods = (double)ms / INTERVAL;
        printf("gossip converge: n=%3d  periods=%5.1f  log2(n)=%d  "
               "periods/log2(n)=%.2f  msgs/member=%.0f\n",
               n, periods, ilog2_ceil(n), periods / ilog2_ceil(n),
               (double)sum_stats(&s).msgs_sent / n);
        cr_assert_leq(periods, CONVERGE_C * ilog2_ceil(n),
                      "n=%d took %.1f periods", n, periods);
        /* one update spreading by piggy-back alone: the last member leaves */
        cr_assert_eq(gossip_leave(s.g[n - 1], s.now), 0);
        ms = RUN_UNTIL(&s, all_see(&s, n - 1, GOSSIP_LEFT), 200u * INTERVAL);
        cr_assert_geq(ms, 0, "n=%d: leave did not spread", n);
        periods = (double)ms / INTERVAL;
        printf("gossip spread: n=%3d  one update everywhere in %4.1f periods\n",
               n, periods);
        cr_assert_leq(periods, CONVERGE_C * ilog2_ceil(n),
                      "n=%d: leave took %.1f periods", n, periods);
        sim_free(&s);
    }
}

/* ---- failure detection --------------------------------------------------- */

Test(gossip, silent_member_is_suspected_then_dead_everywhere_then_alive_again)
{
    static struct sim s;
    int n = 32, victim = 7;
    sim_init(&s, n, 7);
    cr_assert_geq(RUN_UNTIL(&s, converged(&s), 100u * INTERVAL), 0);

    s.watch = victim;
    s.down[victim] = true;
    uint64_t susp = gossip_suspicion_timeout_ms(s.g[0]);
    /* gossip.h: P * interval + timeout + S + D, P = 4,
     * D = (ceil(log2 n) + 2) periods */
    uint64_t bound =
        4 * INTERVAL + 60 + susp + (uint64_t)(ilog2_ceil(n) + 2) * INTERVAL;
    long ms = RUN_UNTIL(&s, all_see(&s, victim, GOSSIP_DEAD), bound);
    cr_assert_geq(ms, 0, "not dead everywhere within %llu ms",
                  (unsigned long long)bound);
    cr_assert_gt(s.first_suspect, 0);
    cr_assert_geq(s.first_dead, s.first_suspect + susp,
                  "declared dead before the suspicion timeout");
    printf("gossip detect: n=%d dead everywhere after %ld ms (bound %llu ms, "
           "suspicion timeout %llu ms)\n",
           n, ms, (unsigned long long)bound, (unsigned long long)susp);

    /* back with the same id and a higher incarnation */
    uint64_t inc = 0;
    cr_assert_eq(view(&s, 0, victim, &inc), GOSSIP_DEAD);
    gossip_destroy(s.g[victim]);
    sim_start(&s, victim, inc + 1);
    cr_assert_eq(gossip_add_seed(s.g[victim], s.addr[0]), 0);
    ms = RUN_UNTIL(&s, converged(&s), 40u * INTERVAL);
    cr_assert_geq(ms, 0, "the member did not come back everywhere");
    printf("gossip detect: n=%d alive again everywhere after %ld ms\n", n, ms);
    sim_free(&s);
}

/* Each side of {0,1,2} | {3,4,5} sees the whole other side DEAD. */
static bool split_complete(const struct sim *s)
{
    for (int a = 0; a < s->n; a++)
        for (int b = 0; b < s->n; b++)
            if (s->side[a] != s->side[b] && view(s, a, b, NULL) != GOSSIP_DEAD)
                return false;
    return true;
}

/* Regression (found by the cluster simulator, seed 168): after a partition
 * longer than the suspicion timeout each side held the other DEAD, probed
 * only live members and synced only with live ones, so the sides never
 * met again. */
Test(gossip, sides_of_a_long_partition_that_declared_each_other_dead_rejoin)
{
    static struct sim s;
    int n = 6;
    sim_init(&s, n, 11);
    cr_assert_geq(RUN_UNTIL(&s, converged(&s), 100u * INTERVAL), 0);
    for (int i = 0; i < n; i++)
        s.side[i] = i < n / 2 ? 0 : 1;
    cr_assert_geq(RUN_UNTIL(&s, split_complete(&s), 200u * INTERVAL), 0,
                  "the sides did not declare each other dead");
    for (int i = 0; i < n; i++)
        s.side[i] = 0;
    /* sync_interval_ms is 10 periods: a few sync rounds are enough. */
    long ms = RUN_UNTIL(&s, converged(&s), 60u * INTERVAL);
    cr_assert_geq(ms, 0, "the sides of the healed partition never met again");
    printf("gossip heal: n=%d one cluster again %ld ms after the heal\n", n,
           ms);
    sim_free(&s);
}

Test(gossip, restarted_member_at_old_incarnation_refutes_its_death)
{
    static struct sim s;
    int n = 8, victim = 3;
    sim_init(&s, n, 9);
    cr_assert_geq(RUN_UNTIL(&s, converged(&s), 100u * INTERVAL), 0);
    s.down[victim] = true;
    cr_assert_geq(
        RUN_UNTIL(&s, all_see(&s, victim, GOSSIP_DEAD), 100u * INTERVAL), 0);
    gossip_destroy(s.g[victim]);
    sim_start(&s, victim, 0); /* lost its incarnation */
    cr_assert_eq(gossip_add_seed(s.g[victim], s.addr[0]), 0);
    cr_assert_geq(RUN_UNTIL(&s, converged(&s), 40u * INTERVAL), 0);
    struct gossip_stats st;
    gossip_stats(s.g[victim], &st);
    cr_assert_geq(st.refuted, 1);
    sim_free(&s);
}

Test(gossip, false_suspicions_under_ten_percent_loss_are_refuted)
{
    static struct sim s;
    int n = 32;
    sim_init(&s, n, 11);
    cr_assert_geq(RUN_UNTIL(&s, converged(&s), 100u * INTERVAL), 0);
    struct gossip_stats before = sum_stats(&s);
    s.loss_pct = 10;
    int rounds = 500;
    (void)RUN_UNTIL(&s, false, (uint64_t)rounds * INTERVAL);
    s.loss_pct = 0;
    long ms = RUN_UNTIL(&s, converged(&s), 20u * INTERVAL);
    struct gossip_stats after = sum_stats(&s);
    uint64_t probes = (uint64_t)n * (uint64_t)rounds;
    printf("gossip loss 10%%: n=%d rounds=%d probes~%llu suspicions=%llu "
           "refutations=%llu deaths=%llu\n",
           n, rounds, (unsigned long long)probes,
           (unsigned long long)(after.suspicions - before.suspicions),
           (unsigned long long)(after.refuted - before.refuted),
           (unsigned long long)(after.deaths - before.deaths));
    cr_assert_eq(after.deaths, before.deaths,
                 "a live member was declared dead");
    cr_assert_geq(ms, 0, "members did not all end ALIVE");
    /* rare: a probe fails when the ping or ack is lost (19 %) and all three
     * indirect paths of 4 messages fail too (0.344^3 = 4 %): about 0.8 % of
     * probes; require under 2 % */
    cr_assert_lt((after.suspicions - before.suspicions) * 50, probes);
    cr_assert_geq(after.refuted - before.refuted, 1);
    sim_free(&s);
}

/* ---- single-member rules ------------------------------------------------- */

static struct gossip *make(const char *id, const char *addr)
{
    struct gossip_conf c = gossip_conf_defaults();
    c.cluster = "test";
    c.self_id = id;
    c.self_addr = addr;
    c.seed = 1;
    struct gossip *g;
    cr_assert_eq(gossip_create(&g, &c, 0), 0);
    return g;
}

static void header(struct gossip_msg *m, uint8_t type, const char *cluster,
                   const char *from)
{
    memset(m, 0, sizeof(*m));
    m->type = type;
    snprintf(m->cluster, sizeof(m->cluster), "%s", cluster);
    snprintf(m->from_id, sizeof(m->from_id), "%s", from);
    snprintf(m->from_addr, sizeof(m->from_addr), "%s:1", from);
}

static int deliver(struct gossip *g, const char *auth,
                   const struct gossip_msg *m)
{
    uint8_t *buf;
    size_t len;
    cr_assert_eq(gossip_msg_encode(m, &buf, &len), 0);
    int rc = gossip_recv(g, 10, auth, buf, len);
    free(buf);
    return rc;
}

static uint64_t self_inc(struct gossip *g)
{
    struct gossip_member me[4];
    cr_assert_geq(gossip_members(g, 0, me, 4), 1);
    cr_assert(me[0].self);
    return me[0].incarnation;
}

Test(gossip, member_told_it_is_suspect_raises_its_incarnation)
{
    struct gossip *g = make("a", "a:1");
    struct gossip_msg m;
    struct gossip_update u = {
        .id = "a", .addr = "a:1", .state = GOSSIP_SUSPECT, .incarnation = 5};
    header(&m, GOSSIP_MSG_PING, "test", "b");
    m.upd = &u;
    m.nupd = 1;
    cr_assert_eq(deliver(g, "b", &m), 0);
    cr_assert_eq(self_inc(g), 6);

    /* the ack piggy-backs "a alive at 6" */
    char addr[GOSSIP_ADDR_MAX + 1];
    uint8_t *buf;
    size_t len;
    struct gossip_msg out;
    bool found = false;
    cr_assert_eq(gossip_next_msg(g, addr, &buf, &len), 0);
    cr_assert_str_eq(addr, "b:1");
    cr_assert_eq(gossip_msg_decode(buf, len, &out, NULL), 0);
    cr_assert_eq(out.type, GOSSIP_MSG_ACK);
    for (uint32_t i = 0; i < out.nupd; i++)
        found |= strcmp(out.upd[i].id, "a") == 0 &&
                 out.upd[i].state == GOSSIP_ALIVE &&
                 out.upd[i].incarnation == 6;
    cr_assert(found);
    gossip_msg_free(&out);

    /* an older suspicion changes nothing */
    u.incarnation = 4;
    cr_assert_eq(deliver(g, "b", &m), 0);
    cr_assert_eq(self_inc(g), 6);
    struct gossip_stats st;
    gossip_stats(g, &st);
    cr_assert_eq(st.refuted, 1);
    gossip_destroy(g);
}

Test(gossip, precedence_higher_incarnation_then_left_dead_suspect_alive)
{
    struct gossip *g = make("a", "a:1");
    struct gossip_msg m;
    struct gossip_update u = {
        .id = "c", .addr = "c:1", .state = GOSSIP_ALIVE, .incarnation = 3};
    struct gossip_member v[4];
    header(&m, GOSSIP_MSG_SYNC_REPLY, "test", "b");
    m.upd = &u;
    m.nupd = 1;
    struct {
        uint8_t state;
        uint64_t inc;
        int want_state;
        uint64_t want_inc;
    } steps[] = {
        {GOSSIP_ALIVE, 3, GOSSIP_ALIVE, 3},
        {GOSSIP_SUSPECT, 2, GOSSIP_ALIVE, 3},   /* older: ignored */
        {GOSSIP_SUSPECT, 3, GOSSIP_SUSPECT, 3}, /* suspect > alive */
        {GOSSIP_ALIVE, 3, GOSSIP_SUSPECT, 3},   /* alive < suspect */
        {GOSSIP_DEAD, 3, GOSSIP_DEAD, 3},
        {GOSSIP_SUSPECT, 3, GOSSIP_DEAD, 3},
        {GOSSIP_LEFT, 3, GOSSIP_LEFT, 3},
        {GOSSIP_DEAD, 3, GOSSIP_LEFT, 3}, /* left final at 3 */
        {GOSSIP_ALIVE, 3, GOSSIP_LEFT, 3},
        {GOSSIP_ALIVE, 4, GOSSIP_ALIVE, 4}, /* higher incarnation wins */
    };
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        u.state = steps[i].state;
        u.incarnation = steps[i].inc;
        cr_assert_eq(deliver(g, NULL, &m), 0);
        int n = gossip_members(g, 0, v, 4);
        cr_assert_eq(n, 3); /* a, b, c */
        int c = strcmp(v[1].id, "c") == 0 ? 1 : 2;
        cr_assert_eq((int)v[c].state, steps[i].want_state, "step %zu", i);
        cr_assert_eq(v[c].incarnation, steps[i].want_inc, "step %zu", i);
    }
    /* a dead member nobody here knows is not added */
    struct gossip_update z = {.id = "z", .addr = "z:1", .state = GOSSIP_DEAD};
    m.upd = &z;
    cr_assert_eq(deliver(g, NULL, &m), 0);
    cr_assert_eq(gossip_members(g, 0, v, 4), 3);
    gossip_destroy(g);
}

Test(gossip, wrong_cluster_and_sender_mismatch_are_refused_and_counted)
{
    struct gossip *g = make("a", "a:1");
    struct gossip_msg m;
    struct gossip_stats st;
    struct gossip_member v[4];

    header(&m, GOSSIP_MSG_PING, "other", "b");
    cr_assert_eq(deliver(g, "b", &m), RK_ECONFIG);
    header(&m, GOSSIP_MSG_PING, "test", "b");
    cr_assert_eq(deliver(g, "mallory", &m), RK_EFORBIDDEN);
    header(&m, GOSSIP_MSG_PING, "test", "a"); /* claims to be us */
    cr_assert_eq(deliver(g, NULL, &m), RK_EFORBIDDEN);
    cr_assert_eq(gossip_recv(g, 10, NULL, (const uint8_t *)"\x93\x01", 2),
                 RK_EPROTO);

    gossip_stats(g, &st);
    cr_assert_eq(st.refused_cluster, 1);
    cr_assert_eq(st.refused_sender, 2);
    cr_assert_eq(st.malformed, 1);
    cr_assert_eq(st.msgs_received, 0);
    cr_assert_eq(gossip_members(g, 0, v, 4), 1, "a refused sender was added");
    char addr[GOSSIP_ADDR_MAX + 1];
    uint8_t *buf;
    size_t len;
    cr_assert_eq(gossip_next_msg(g, addr, &buf, &len), -EAGAIN);

    header(&m, GOSSIP_MSG_PING, "test", "b");
    cr_assert_eq(deliver(g, "b", &m), 0);
    gossip_stats(g, &st);
    cr_assert_eq(st.msgs_received, 1);
    gossip_destroy(g);
}

/* ---- leave, remove, reap ------------------------------------------------- */

Test(gossip, leave_and_remove_spread_and_are_reaped)
{
    static struct sim s;
    int n = 16;
    sim_init(&s, n, 13);
    cr_assert_geq(RUN_UNTIL(&s, converged(&s), 100u * INTERVAL), 0);

    cr_assert_eq(gossip_leave(s.g[3], s.now), 0);
    cr_assert_geq(RUN_UNTIL(&s, all_see(&s, 3, GOSSIP_LEFT), 20u * INTERVAL), 0,
                  "leave did not spread");
    s.down[3] = true; /* the process exits */

    s.down[5] = true;
    cr_assert_geq(RUN_UNTIL(&s, all_see(&s, 5, GOSSIP_DEAD), 100u * INTERVAL),
                  0);
    cr_assert_eq(gossip_remove(s.g[0], s.id[1], s.now), -EBUSY);
    cr_assert_eq(gossip_remove(s.g[0], s.id[0], s.now), -EBUSY);
    cr_assert_eq(gossip_remove(s.g[0], "nobody", s.now), -ENOENT);
    cr_assert_eq(gossip_remove(s.g[0], s.id[5], s.now), 0);
    cr_assert_geq(RUN_UNTIL(&s, all_see(&s, 5, GOSSIP_LEFT), 20u * INTERVAL), 0,
                  "remove did not spread");

    /* after reap_ms both are forgotten everywhere, and stay forgotten */
    cr_assert_geq(RUN_UNTIL(&s, all_see(&s, 3, -1) && all_see(&s, 5, -1),
                            700u * INTERVAL),
                  0);
    (void)RUN_UNTIL(&s, false, 40u * INTERVAL);
    cr_assert(all_see(&s, 3, -1) && all_see(&s, 5, -1));
    cr_assert(converged(&s));
    sim_free(&s);
}

/* ---- cluster state ------------------------------------------------------- */

static bool state_everywhere(const struct sim *s, uint64_t ver,
                             const char *bytes)
{
    for (int i = 0; i < s->n; i++) {
        uint64_t v;
        const uint8_t *b;
        size_t l;
        gossip_get_state(s->g[i], &v, &b, &l);
        if (v != ver || l != strlen(bytes) || memcmp(b, bytes, l) != 0)
            return false;
    }
    return true;
}

Test(gossip, cluster_state_converges_to_the_highest_version)
{
    static struct sim s;
    sim_init(&s, 16, 17);
    cr_assert_geq(RUN_UNTIL(&s, converged(&s), 100u * INTERVAL), 0);
    cr_assert_eq(gossip_set_state(s.g[3], 5, (const uint8_t *)"ring5", 5), 0);
    cr_assert_eq(gossip_set_state(s.g[9], 7, (const uint8_t *)"ring7", 5), 0);
    cr_assert_eq(gossip_set_state(s.g[1], 6, (const uint8_t *)"ring6", 5), 0);
    cr_assert_eq(gossip_set_state(s.g[1], 6, (const uint8_t *)"ring6", 5),
                 -ESTALE);
    long ms = RUN_UNTIL(&s, state_everywhere(&s, 7, "ring7"), 40u * INTERVAL);
    cr_assert_geq(ms, 0);
    printf("gossip state: version 7 everywhere after %ld ms\n", ms);

    /* equal versions: the greater hash wins everywhere */
    const char *x = "ring8-x", *y = "ring8-y";
    const char *win = gossip_msg_hash((const uint8_t *)x, 7) >
                              gossip_msg_hash((const uint8_t *)y, 7)
                          ? x
                          : y;
    cr_assert_eq(gossip_set_state(s.g[2], 8, (const uint8_t *)x, 7), 0);
    cr_assert_eq(gossip_set_state(s.g[12], 8, (const uint8_t *)y, 7), 0);
    cr_assert_geq(RUN_UNTIL(&s, state_everywhere(&s, 8, win), 40u * INTERVAL),
                  0);
    struct gossip_stats st = sum_stats(&s);
    cr_assert_geq(st.state_syncs, 15);
    sim_free(&s);
}

Test(gossip, state_changed_event_reports_the_new_version)
{
    struct gossip *a = make("a", "a:1");
    struct gossip_msg m;
    struct gossip_event ev;
    header(&m, GOSSIP_MSG_STATE, "test", "b");
    m.state_version = 3;
    m.blob = (uint8_t *)"xyz";
    m.blob_len = 3;
    m.state_hash = gossip_msg_hash(m.blob, 3) + 1; /* lies */
    cr_assert_eq(deliver(a, "b", &m), 0);
    uint64_t v;
    const uint8_t *b;
    size_t l;
    gossip_get_state(a, &v, &b, &l);
    cr_assert_eq(v, 0, "a blob with a wrong hash was taken");
    m.state_hash = gossip_msg_hash(m.blob, 3);
    cr_assert_eq(deliver(a, "b", &m), 0);
    gossip_get_state(a, &v, &b, &l);
    cr_assert_eq(v, 3);
    cr_assert_eq(l, 3);
    bool seen = false;
    while (gossip_next_event(a, &ev) == 0)
        seen |= ev.type == GOSSIP_EV_STATE_CHANGED && ev.state_version == 3;
    cr_assert(seen);
    gossip_destroy(a);
}

/* ---- codec --------------------------------------------------------------- */

static void sample(struct gossip_msg *m, struct gossip_update *u)
{
    header(m, GOSSIP_MSG_PING_REQ, "prod", "node-1");
    snprintf(m->from_addr, sizeof(m->from_addr), "[::1]:7001");
    m->from_inc = 9;
    m->seq = 77;
    snprintf(m->target_addr, sizeof(m->target_addr), "10.1.2.3:7001");
    m->state_version = 4;
    m->state_hash = 0xdeadbeefcafeull;
    for (int i = 0; i < 3; i++) {
        memset(&u[i], 0, sizeof(u[i]));
        snprintf(u[i].id, sizeof(u[i].id), "m%d", i);
        snprintf(u[i].addr, sizeof(u[i].addr), "h%d:70%02d", i, i);
        u[i].state = (uint8_t)i;
        u[i].incarnation = 100 + (uint64_t)i;
    }
    m->upd = u;
    m->nupd = 3;
    m->blob = (uint8_t *)"blob";
    m->blob_len = 4;
}

Test(gossip, codec_round_trips)
{
    struct gossip_msg m, d;
    struct gossip_update u[3];
    uint8_t *buf;
    size_t len;
    sample(&m, u);
    cr_assert_eq(gossip_msg_encode(&m, &buf, &len), 0);
    cr_assert_eq(gossip_msg_decode(buf, len, &d, NULL), 0);
    cr_assert_eq(d.type, m.type);
    cr_assert_str_eq(d.cluster, "prod");
    cr_assert_str_eq(d.from_id, "node-1");
    cr_assert_str_eq(d.from_addr, "[::1]:7001");
    cr_assert_str_eq(d.target_addr, "10.1.2.3:7001");
    cr_assert_str_eq(d.origin_addr, "");
    cr_assert_eq(d.from_inc, 9);
    cr_assert_eq(d.seq, 77);
    cr_assert_eq(d.state_version, 4);
    cr_assert_eq(d.state_hash, 0xdeadbeefcafeull);
    cr_assert_eq(d.nupd, 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_str_eq(d.upd[i].id, u[i].id);
        cr_assert_str_eq(d.upd[i].addr, u[i].addr);
        cr_assert_eq(d.upd[i].state, u[i].state);
        cr_assert_eq(d.upd[i].incarnation, u[i].incarnation);
    }
    cr_assert_eq(d.blob_len, 4);
    cr_assert_eq(memcmp(d.blob, "blob", 4), 0);
    gossip_msg_free(&d);
    free(buf);
}

Test(gossip, codec_rejects_truncated_oversized_and_garbage_input)
{
    struct gossip_msg m, d;
    struct gossip_update u[3];
    uint8_t *buf;
    size_t len;
    const char *why;
    sample(&m, u);
    cr_assert_eq(gossip_msg_encode(&m, &buf, &len), 0);
    for (size_t l = 0; l < len; l++)
        cr_assert_eq(gossip_msg_decode(buf, l, &d, &why), RK_EPROTO,
                     "prefix %zu accepted", l);
    free(buf);

    /* too many updates: refused by encode and by decode */
    m.nupd = GOSSIP_MAX_MEMBERS + 1;
    cr_assert_eq(gossip_msg_encode(&m, &buf, &len), RK_ETOO_LARGE);
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 13);
    msgpack_pack_uint64(&pk, 1);
    msgpack_pack_uint64(&pk, GOSSIP_MSG_PING);
    for (int i = 0; i < 3; i++) {
        msgpack_pack_str(&pk, 1);
        msgpack_pack_str_body(&pk, "x", 1);
    }
    for (int i = 0; i < 2; i++)
        msgpack_pack_uint64(&pk, 0);
    for (int i = 0; i < 2; i++)
        msgpack_pack_str(&pk, 0);
    for (int i = 0; i < 2; i++)
        msgpack_pack_uint64(&pk, 0);
    msgpack_pack_array(&pk, GOSSIP_MAX_MEMBERS + 1);
    for (int i = 0; i < GOSSIP_MAX_MEMBERS + 1; i++) {
        msgpack_pack_array(&pk, 4);
        msgpack_pack_str(&pk, 1);
        msgpack_pack_str_body(&pk, "y", 1);
        msgpack_pack_str(&pk, 1);
        msgpack_pack_str_body(&pk, "y", 1);
        msgpack_pack_uint64(&pk, 0);
        msgpack_pack_uint64(&pk, 0);
    }
    msgpack_pack_bin(&pk, 0);
    cr_assert_eq(gossip_msg_decode((uint8_t *)sb.data, sb.size, &d, &why),
                 RK_ETOO_LARGE);
    cr_assert_str_eq(why, "too many updates");
    msgpack_sbuffer_destroy(&sb);

    /* over the message size bound, before anything is parsed */
    size_t big = GOSSIP_MSG_MAX + 1;
    uint8_t *huge = calloc(1, big);
    cr_assert_not_null(huge);
    cr_assert_eq(gossip_msg_decode(huge, big, &d, &why), RK_ETOO_LARGE);
    free(huge);

    /* a declared count far beyond the bytes present */
    const uint8_t lie[] = {0xdd, 0x7f, 0xff, 0xff, 0xff, 0x01};
    cr_assert_eq(gossip_msg_decode(lie, sizeof(lie), &d, &why), RK_EPROTO);

    /* garbage: never accepted, never crashes, counted by recv */
    struct gossip *g = make("a", "a:1");
    uint64_t x = 88172645463325252ull;
    uint8_t junk[256];
    for (int t = 0; t < 2000; t++) {
        size_t l = 1 + (size_t)(t % 255);
        for (size_t i = 0; i < l; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            junk[i] = (uint8_t)x;
        }
        junk[0] = (uint8_t)(0x9d); /* array of 13: get past the first check */
        int rc = gossip_recv(g, 0, NULL, junk, l);
        cr_assert(rc == RK_EPROTO || rc == RK_ETOO_LARGE, "rc=%d", rc);
    }
    struct gossip_stats st;
    gossip_stats(g, &st);
    cr_assert_eq(st.malformed, 2000);
    gossip_destroy(g);
}

Test(gossip, create_refuses_bad_configuration)
{
    struct gossip_conf c = gossip_conf_defaults();
    struct gossip *g = NULL;
    c.cluster = "test";
    c.self_id = "a";
    c.self_addr = "a:1";
    cr_assert_eq(gossip_create(&g, NULL, 0), -EINVAL);
    c.probe_timeout_ms = c.probe_interval_ms;
    cr_assert_eq(gossip_create(&g, &c, 0), RK_ECONFIG);
    c = gossip_conf_defaults();
    c.cluster = "test";
    c.self_addr = "a:1";
    char longid[GOSSIP_ID_MAX + 2];
    memset(longid, 'x', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    c.self_id = longid;
    cr_assert_eq(gossip_create(&g, &c, 0), -EINVAL);
    cr_assert_null(g);
    gossip_destroy(NULL);
}

/* ---- transport hints and bounds ------------------------------------------ */

static void know(struct gossip *g, const char **ids, int n)
{
    struct gossip_msg m;
    struct gossip_update u[8];
    header(&m, GOSSIP_MSG_SYNC_REPLY, "test", ids[0]);
    for (int i = 0; i < n; i++) {
        memset(&u[i], 0, sizeof(u[i]));
        snprintf(u[i].id, sizeof(u[i].id), "%s", ids[i]);
        snprintf(u[i].addr, sizeof(u[i].addr), "%s:1", ids[i]);
    }
    m.upd = u;
    m.nupd = (uint32_t)n;
    cr_assert_eq(deliver(g, NULL, &m), 0);
}

/* The type of the first queued message to addr (0 if none); drains all. */
static int first_to(struct gossip *g, const char *to)
{
    char addr[GOSSIP_ADDR_MAX + 1];
    uint8_t *buf;
    size_t len;
    int type = 0;
    while (gossip_next_msg(g, addr, &buf, &len) == 0) {
        struct gossip_msg m;
        cr_assert_eq(gossip_msg_decode(buf, len, &m, NULL), 0);
        if (type == 0 && strcmp(addr, to) == 0)
            type = m.type;
        gossip_msg_free(&m);
    }
    return type;
}

Test(gossip, unreachable_hint_probes_the_member_next_and_never_kills_it)
{
    struct gossip *g = make("a", "a:1");
    const char *ids[] = {"b", "c", "d", "e"};
    know(g, ids, 4);
    (void)first_to(g, "");
    gossip_unreachable(g, 0, "d:1");
    gossip_tick(g, 5000); /* a probe is due */
    cr_assert_eq(first_to(g, "d:1"), GOSSIP_MSG_PING, "d not probed next");
    /* while d's probe is out, a second hint starts the ping-reqs at once */
    gossip_unreachable(g, 5001, "d:1");
    struct gossip_stats st;
    gossip_stats(g, &st);
    cr_assert_eq(st.indirect_probes, 3);
    struct gossip_member v[8];
    int n = gossip_members(g, 5001, v, 8);
    for (int i = 0; i < n; i++)
        cr_assert_eq(v[i].state, GOSSIP_ALIVE);
    gossip_destroy(g);
}

Test(gossip, output_queue_is_bounded_and_counts_what_it_dropped)
{
    struct gossip *g = make("a", "a:1");
    struct gossip_msg m;
    header(&m, GOSSIP_MSG_PING, "test", "b");
    for (int i = 0; i < GOSSIP_OUTQ_MAX + 100; i++)
        cr_assert_eq(deliver(g, "b", &m), 0);
    struct gossip_stats st;
    gossip_stats(g, &st);
    cr_assert_eq(st.out_dropped, 100);
    cr_assert_eq(st.msgs_sent, GOSSIP_OUTQ_MAX);
    char addr[GOSSIP_ADDR_MAX + 1];
    uint8_t *buf;
    size_t len;
    int k = 0;
    while (gossip_next_msg(g, addr, &buf, &len) == 0)
        k++;
    cr_assert_eq(k, GOSSIP_OUTQ_MAX);
    gossip_destroy(g);
}
