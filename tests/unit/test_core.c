/*
 * test_core.c - node/core.c's glue over a scripted env: no sockets, no
 * libuv, no simulator. The env queues what the core asks for (commits,
 * peer requests, timers) and the test decides when and how each finishes,
 * so an outcome the quorum/ decisions classify can be checked end to end.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "node/core.h"
#include "proto/errors.h"
#include "quorum/dvv.h"
#include "ring/ring.h"

TestSuite(core, .timeout = 10);

#define FAKE_MAX 16

struct env_timer {
    env_timer_fn fn;
    void *arg;
    bool live;
};

struct fake_peer_req {
    uint32_t member;
    env_reply_fn fn;
    void *arg;
};

struct fake {
    struct env env;
    struct storage_op *ops[FAKE_MAX]; /* applied, done not run yet */
    uint32_t nops;
    struct fake_peer_req reqs[FAKE_MAX]; /* waiting for an answer */
    uint32_t nreqs;
    struct env_timer timers[FAKE_MAX];
    uint32_t ntimers;
    uint32_t logs;
};

static struct fake *fake_of(struct env *env)
{
    return env->impl;
}

static uint64_t fake_now(struct env *env)
{
    return 1000;
}

static uint64_t fake_wall(struct env *env)
{
    return 1700000000000ull;
}

static int fake_get(struct env *env, uint32_t partition, const uint8_t *key,
                    uint32_t key_len, storage_read_fn fn, void *arg)
{
    return fn(arg, NULL, 0);
}

/* Applies at once (the stored record is always absent); done runs when the
 * test calls fake_commit(). */
static int fake_submit(struct env *env, struct storage_op *op)
{
    struct fake *f = fake_of(env);
    uint8_t *out = NULL;
    size_t len = 0;
    cr_assert_lt(f->nops, FAKE_MAX);
    int rc = op->apply(op, NULL, 0, &out, &len);
    op->status = rc < 0 ? rc : 0;
    op->result = out;
    op->result_len = len;
    f->ops[f->nops++] = op;
    return 0;
}

static void fake_commit(struct fake *f)
{
    while (f->nops > 0) {
        struct storage_op *op = f->ops[--f->nops];
        uint8_t *result = op->result;
        op->done(op); /* may free op */
        free(result);
    }
}

static struct env_timer *fake_timer_start(struct env *env, uint64_t ms,
                                          env_timer_fn fn, void *arg)
{
    struct fake *f = fake_of(env);
    cr_assert_lt(f->ntimers, FAKE_MAX);
    struct env_timer *t = &f->timers[f->ntimers++];
    *t = (struct env_timer){.fn = fn, .arg = arg, .live = true};
    return t;
}

static void fake_timer_cancel(struct env *env, struct env_timer *t)
{
    t->live = false;
}

static int fake_peer_request(struct env *env, uint32_t member,
                             const struct wire_req *req, env_reply_fn fn,
                             void *arg)
{
    struct fake *f = fake_of(env);
    cr_assert_lt(f->nreqs, FAKE_MAX);
    f->reqs[f->nreqs++] = (struct fake_peer_req){member, fn, arg};
    return 0;
}

static bool fake_peer_up(struct env *env, uint32_t member)
{
    return true;
}

static uint64_t fake_random64(struct env *env)
{
    return 42;
}

static void fake_log(struct env *env, enum log_level level, const char *msg)
{
    fake_of(env)->logs++;
}

static const struct env_ops fake_ops = {
    .now_ms = fake_now,
    .wall_ms = fake_wall,
    .store_get = fake_get,
    .store_submit = fake_submit,
    .timer_start = fake_timer_start,
    .timer_cancel = fake_timer_cancel,
    .peer_request = fake_peer_request,
    .peer_up = fake_peer_up,
    .random64 = fake_random64,
    .log = fake_log,
};

struct answer {
    int calls;
    int err;
    bool definite;
    uint32_t acks;
    char msg[200];
};

static void record_reply(void *arg, const struct core_reply *rep)
{
    struct answer *a = arg;
    a->calls++;
    a->err = rep->err;
    a->definite = rep->definite;
    a->acks = rep->acks;
    snprintf(a->msg, sizeof(a->msg), "%s", rep->msg ? rep->msg : "");
}

/* A 3-member cluster (n = 3, so every node is a replica of every key) seen
 * from member 0, with w = 3. */
static struct core *three_node_core(struct fake *f, struct ring **ring)
{
    static const char *const ids[] = {"a", "b", "c"};
    memset(f, 0, sizeof(*f));
    f->env = (struct env){.ops = &fake_ops, .impl = f};
    cr_assert_eq(ring_build(ring, 64, ids, 3), 0);
    struct core_opts o = {.actor = 7,
                          .partitions = 64,
                          .ring = *ring,
                          .self = 0,
                          .n = 3,
                          .r = 2,
                          .w = 3,
                          .timeout_ms = 5000};
    struct core *c = core_create(&f->env, &o);
    cr_assert_not_null(c);
    return c;
}

/* Puts k = v through c and commits it locally: the rputs to the two other
 * replicas are then waiting in f->reqs. */
static void start_put(struct fake *f, struct core *c, struct answer *a)
{
    struct core_req req = {.op = WIRE_OP_PUT,
                           .key = (const uint8_t *)"k",
                           .key_len = 1,
                           .value = (const uint8_t *)"v",
                           .value_len = 1};
    core_request(c, &req, record_reply, a);
    cr_assert_eq(a->calls, 0, "waits for the local commit");
    fake_commit(f);
    cr_assert_eq(f->nreqs, 2, "rput to both other replicas");
    cr_assert_eq(f->ntimers, 1);
    cr_assert_eq(a->calls, 0);
}

/* Regression: with w = n = 3, one replica answering an error makes w
 * unreachable at once; the coordinator reported that as `timeout` while
 * the third replica had not answered (quorum/decide.c now classifies by
 * what decided: replies -> unavailable, the timer -> timeout). */
Test(core, put_failed_early_by_a_replica_error_answers_unavailable)
{
    struct fake f;
    struct ring *ring;
    struct core *c = three_node_core(&f, &ring);
    struct answer a = {0};
    struct core_stats st;

    start_put(&f, c, &a);

    struct wire_resp bad = {.err = RK_ESTORAGE, .definite = true};
    f.reqs[0].fn(f.reqs[0].arg, 0, &bad);
    cr_assert_eq(a.calls, 1, "decided without waiting for the third");
    cr_assert_eq(a.err, RK_EUNAVAILABLE, "got %s: %s", rk_err_msg(a.err),
                 a.msg);
    cr_assert_not(a.definite, "the coordinator's own commit happened");
    cr_assert_eq(a.acks, 1);
    cr_assert(strstr(a.msg, "timed out") == NULL, "%s", a.msg);
    core_get_stats(c, &st);
    cr_assert_eq(st.unavailable, 1);
    cr_assert_eq(st.timeouts, 0);

    f.reqs[1].fn(f.reqs[1].arg, 0, &(struct wire_resp){0});
    cr_assert_eq(a.calls, 1, "answered once");
    core_destroy(c);
    ring_destroy(ring);
}

Test(core, put_decided_by_the_timer_answers_timeout)
{
    struct fake f;
    struct ring *ring;
    struct core *c = three_node_core(&f, &ring);
    struct answer a = {0};
    struct core_stats st;

    start_put(&f, c, &a);
    f.reqs[0].fn(f.reqs[0].arg, 0, &(struct wire_resp){0});
    cr_assert_eq(a.calls, 0, "2 of 3 acks, w = 3: still waiting");
    cr_assert(f.timers[0].live);
    f.timers[0].live = false;
    f.timers[0].fn(f.timers[0].arg);
    cr_assert_eq(a.calls, 1);
    cr_assert_eq(a.err, RK_ETIMEOUT, "got %s", rk_err_msg(a.err));
    cr_assert_not(a.definite);
    cr_assert_eq(a.acks, 2);
    core_get_stats(c, &st);
    cr_assert_eq(st.timeouts, 1);
    cr_assert_eq(st.unavailable, 0);

    f.reqs[1].fn(f.reqs[1].arg, -ECONNRESET, NULL);
    cr_assert_eq(a.calls, 1, "answered once");
    core_destroy(c);
    ring_destroy(ring);
}

/* The core logs through the env's log op (never log_write directly): a
 * replicated record claiming dots of our actor that we never issued is
 * refused with a warning. */
Test(core, a_refused_forged_record_is_logged_through_the_env)
{
    struct fake f;
    struct ring *ring;
    struct core *c = three_node_core(&f, &ring);
    struct answer a = {0};
    struct dvv_val v = {.data = (const uint8_t *)"x", .len = 1, .ts = 1};
    struct dvv_entry e = {.actor = 7, .counter = 5, .nvals = 1, .vals = &v};
    struct dvv forged = {.n = 1, .e = &e};
    uint8_t *rec = NULL;
    size_t rec_len = 0;
    struct core_stats st;

    cr_assert_eq(dvv_encode(&forged, &rec, &rec_len), 0);
    struct core_req req = {.op = WIRE_OP_RPUT,
                           .key = (const uint8_t *)"k",
                           .key_len = 1,
                           .rec = rec,
                           .rec_len = (uint32_t)rec_len};
    core_request(c, &req, record_reply, &a);
    fake_commit(&f);
    cr_assert_eq(a.calls, 1);
    cr_assert_eq(a.err, RK_EFORBIDDEN, "got %s", rk_err_msg(a.err));
    cr_assert_eq(f.logs, 1, "one warning, through env->ops->log");
    core_get_stats(c, &st);
    cr_assert_eq(st.own_actor_refused, 1);
    free(rec);
    core_destroy(c);
    ring_destroy(ring);
}

/* During a membership change a write goes to the key's replicas in the
 * current ring and in the next one, and is acknowledged only once w of
 * each ring have it (docs/design.md, "Membership"): here w = 2 acks that
 * both lie in the current ring are not enough while the next ring holds
 * only one of them. */
Test(core, a_write_during_a_change_needs_w_in_both_rings)
{
    static const char *const ids4[] = {"a", "b", "c", "d"};
    struct fake f;
    struct ring *ring, *next;
    struct core *c = three_node_core(&f, &ring);
    struct answer a = {0};
    uint32_t p_cur[3], p_next[3];
    char key[16];
    uint32_t part = 0;

    cr_assert_eq(ring_rebuild(&next, ring, ids4, 4), 0);
    /* A key this node replicates in both rings, whose lists differ. */
    for (int i = 0;; i++) {
        cr_assert_lt(i, 10000);
        snprintf(key, sizeof(key), "k%d", i);
        part = ring_partition(key, strlen(key), 64);
        cr_assert_eq(ring_pref_list(ring, part, 3, p_cur), 3);
        cr_assert_eq(ring_pref_list(next, part, 3, p_next), 3);
        bool self_next = false, differ = false;
        for (int j = 0; j < 3; j++) {
            self_next |= p_next[j] == 0;
            bool in_cur = false;
            for (int k = 0; k < 3; k++)
                in_cur |= p_cur[k] == p_next[j];
            differ |= !in_cur;
        }
        if (self_next && differ)
            break;
    }
    /* next's members are a, b, c, d (sorted): member numbers 0..3 */
    uint32_t cur_slot[3] = {0, 1, 2}, next_slot[4] = {0, 1, 2, 3};
    struct core_view v = {.cur = ring,
                          .next = next,
                          .cur_slot = cur_slot,
                          .next_slot = next_slot,
                          .self = 0};
    core_set_view(c, &v);

    struct core_req req = {.op = WIRE_OP_PUT,
                           .key = (const uint8_t *)key,
                           .key_len = (uint32_t)strlen(key),
                           .value = (const uint8_t *)"v",
                           .value_len = 1,
                           .w = 2};
    core_request(c, &req, record_reply, &a);
    fake_commit(&f);
    cr_assert_eq(f.nreqs, 3, "two other replicas of cur, one new in next");
    /* Ack from the member that is in cur but not in next, if any; else any
     * other member of cur. */
    int only_cur = -1, only_next = -1;
    for (uint32_t i = 0; i < f.nreqs; i++) {
        bool in_cur = false, in_next = false;
        for (int k = 0; k < 3; k++) {
            in_cur |= f.reqs[i].member == p_cur[k];
            in_next |= f.reqs[i].member == p_next[k];
        }
        if (in_cur && !in_next)
            only_cur = (int)i;
        if (in_next && !in_cur)
            only_next = (int)i;
    }
    cr_assert_geq(only_cur, 0);
    cr_assert_geq(only_next, 0);
    f.reqs[only_cur].fn(f.reqs[only_cur].arg, 0, &(struct wire_resp){0});
    cr_assert_eq(a.calls, 0,
                 "2 acks, both in cur, only 1 in next: not yet acknowledged");
    f.reqs[only_next].fn(f.reqs[only_next].arg, 0, &(struct wire_resp){0});
    cr_assert_eq(a.calls, 1);
    cr_assert_eq(a.err, 0, "w in each ring: ok (%s)", a.msg);
    for (uint32_t i = 0; i < f.nreqs; i++)
        if ((int)i != only_cur && (int)i != only_next)
            f.reqs[i].fn(f.reqs[i].arg, -ECONNRESET, NULL);
    core_destroy(c);
    ring_destroy(next);
    ring_destroy(ring);
}
