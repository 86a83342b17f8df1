/*
 * sim_internal.h - what the simulator's files share (sim.c: engine, env,
 * network, disk, faults; sim_work.c: clients, history, checkers). Nothing
 * outside tests/sim/ includes it.
 */
#ifndef RINGKV_SIM_INTERNAL_H
#define RINGKV_SIM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <xxhash.h>

#include "node/core.h"
#include "node/env.h"
#include "node/member.h"
#include "proto/rng.h"
#include "ring/ring.h"
#include "ring/ring_state.h"
#include "tests/sim/sim.h"

/* ---- PRNG: xoshiro256** per stream, streams seeded by splitmix64 ------- */

struct sim_rng {
    struct rk_rng rk; /* proto/rng.h */
};

enum sim_stream {
    SIM_S_SWARM = 1,    /* fault parameters of this seed */
    SIM_S_NET,          /* delays, loss, duplication */
    SIM_S_FAULT,        /* the nemesis: what fails when */
    SIM_S_DISK,         /* commit and sync delays */
    SIM_S_EPOCH,        /* storage epochs */
    SIM_S_CLOCK,        /* skews */
    SIM_S_CHECK,        /* the final phase's coordinators */
    SIM_S_MEMBER,       /* membership events: when, what, whom */
    SIM_S_CLIENT0 = 64, /* + client index */
    SIM_S_NODE0 = 128   /* + node index: the node's env random64 */
};

void sim__rng_seed(struct sim_rng *r, uint64_t seed, uint64_t stream);
uint64_t sim__rand(struct sim_rng *r);
uint64_t sim__below(struct sim_rng *r, uint64_t n); /* [0, n), n > 0 */
uint64_t sim__range(struct sim_rng *r, uint64_t lo, uint64_t hi); /* [lo,hi] */
bool sim__chance(struct sim_rng *r, double p);

/* ---- events --------------------------------------------------------------
 */

enum sim_ev_kind {
    SIM_EV_MSG = 0,     /* bytes arrive at node (request or reply) */
    SIM_EV_TIMER,       /* a core timer fires */
    SIM_EV_DISK_COMMIT, /* the node's disk applies its queued batch */
    SIM_EV_DISK_SYNC,   /* the batch is synced; done callbacks run */
    SIM_EV_GIVE_UP,     /* a peer request's give-up deadline */
    SIM_EV_PEER_FAIL,   /* a peer request fails (connection reset) */
    SIM_EV_CLIENT_REQ,  /* a client request arrives at a node */
    SIM_EV_CLIENT_NEXT, /* a client starts its next operation */
    SIM_EV_NEMESIS,     /* the fault injector acts */
    SIM_EV_HEAL,        /* a partition ends */
    SIM_EV_RESTART,     /* a crashed node restarts */
    SIM_EV_UNPAUSE,     /* a pause ends (trace only: pauses are times) */
    SIM_EV_END_ACTIVE,  /* the active phase ends: heal and quiesce */
    SIM_EV_MEMBER,      /* a membership event: join, leave or remove */
    SIM_EV_ADMIN,       /* re-issues unfinished leaves and removals */
    SIM_EV_STOP,        /* a node that left stops (its on_left fired) */
    SIM_EV_MAX
};

struct sim_timer;
struct sim_creq;

struct sim_event {
    uint64_t t, seq;
    enum sim_ev_kind kind;
    int node;     /* whose processing this is; -1 for the world */
    uint32_t inc; /* node's incarnation it belongs to */
    int src;      /* MSG: sender */
    bool reply;   /* MSG: a response */
    uint64_t id;  /* GIVE_UP, PEER_FAIL: the request id */
    int err;      /* PEER_FAIL */
    struct sim_timer *timer;
    struct sim_creq *creq;
    uint32_t client;
    uint8_t *bytes; /* MSG: one framed message, owned */
    size_t len;
};

/* ---- nodes ----------------------------------------------------------------
 */

struct sim_rec {
    struct sim_rec *next;
    uint8_t *key;
    uint32_t key_len;
    uint8_t *val;
    size_t len;
};

#define SIM_STORE_BUCKETS 64

struct sim_store {
    struct sim_rec *b[SIM_STORE_BUCKETS];
};

struct sim_dop;  /* a submitted storage op */
struct sim_pend; /* an outgoing peer request waiting for its answer */

struct sim_node {
    struct sim *sim;
    int idx;
    struct env env;
    struct core *core;
    struct member *member; /* its member service (node/member.h) */
    bool started;          /* a joiner: it has been started once */
    bool absent;           /* not in the cluster: a joiner not started yet,
                              or a node that left or was removed */
    bool leaving;          /* asked to leave; stops when on_left fires */
    bool removing;         /* killed for good: remove it from the ring */
    uint8_t *state;        /* durable: the last ring state it saved */
    size_t state_len;
    bool up;      /* not crashed */
    uint32_t inc; /* incarnation: bumps at crash and at restart */
    uint64_t paused_until;
    int64_t skew_ms;
    uint64_t epoch;
    struct sim_rng rnd; /* env random64 (incarnations) */
    bool ever_wiped;
    uint64_t wiped_at;        /* virtual time of the last wipe */
    struct sim_store durable; /* synced records */
    struct sim_dop *queue;    /* submitted, waiting for a batch */
    struct sim_dop **queue_tail;
    struct sim_dop *batch;    /* applied, not synced yet */
    struct sim_store overlay; /* the batch's results */
    bool disk_busy;           /* a commit is scheduled or in progress */
    struct sim_pend *pend;
    uint64_t next_id;
    bool in_rput;           /* core_request of an rput is on the stack */
    struct sim_creq *creqs; /* client requests sent to this incarnation */
    /* env peer_forget(): slots (node indices) this incarnation stopped
     * using until its peer_add() of them; cleared at every start */
    bool forgotten[SIM_MAX_NODES];
};

/* ---- the whole simulation -------------------------------------------------
 */

struct sim_params {
    uint64_t delay_min_ms, delay_max_ms; /* per message */
    bool delay_skewed;                   /* most fast, some slow */
    double loss, dup;
    uint64_t nemesis_every_ms; /* 0: no nemesis */
    bool partitions, crashes, pauses, wipes;
    double wipe_p;
    uint64_t fault_max_ms; /* longest partition, downtime, pause */
    uint64_t skew_max_ms;
    uint64_t commit_max_ms, sync_max_ms;
    uint64_t timeout_ms; /* core request_timeout */
    uint64_t think_max_ms;
};

struct sim_work; /* sim_work.c */

struct sim {
    struct sim_config cfg;
    struct sim_result *res;
    struct sim_params p;
    struct sim_rng swarm, net, fault, disk, epoch, clock, check, member;
    uint64_t now;
    uint64_t seq;
    struct sim_event **heap;
    size_t nheap, capheap;
    XXH64_state_t *xx;
    struct ring *ring;
    struct core_member members[SIM_MAX_NODES];
    struct sim_node node[SIM_MAX_NODES];
    uint32_t nnodes;           /* node slots, joiners included */
    uint32_t ninit;            /* the founding members: n1..n<ninit> */
    bool membership;           /* membership events this seed */
    bool admin_armed;          /* an SIM_EV_ADMIN is scheduled */
    bool members_closed;       /* settled: member services stopped */
    uint64_t state_changed_ms; /* a node last saved a new ring state */
    struct ring_state *final;  /* the settled ring state (checkers) */
    uint8_t nval, w;
    bool blocked[SIM_MAX_NODES][SIM_MAX_NODES];
    bool partitioned;
    bool active;      /* faults and clients running */
    bool stopping;    /* clients stop starting operations */
    uint64_t *epochs; /* every epoch ever used */
    size_t nepochs, capepochs;
    uint32_t wiped_mask; /* nodes ever wiped */
    struct sim_work *work;
};

/* sim.c services for sim_work.c */
struct sim_event *sim__event(struct sim *s, uint64_t at, enum sim_ev_kind k,
                             int node);
void sim__trace(struct sim *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void sim__report(struct sim *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void sim__hash(struct sim *s, const void *p, size_t n);
/* The durable record of key on node i, or NULL. */
const struct sim_rec *sim__durable(struct sim_node *nd, const uint8_t *key,
                                   uint32_t key_len);
uint32_t sim__partition(const struct sim *s, const uint8_t *key,
                        uint32_t key_len);
bool sim__paused(const struct sim *s, int node);
/* A present node (not absent), drawn uniformly with r: the k-th of them
 * for k = below(number present), so seeds without membership events draw
 * exactly as before. */
int sim__pick_node(struct sim *s, struct sim_rng *r);
/* The node indices of partition part's owners in the final ring (s->final,
 * or the founding ring); returns how many (at most QUORUM_MAX_N). */
int sim__owners(struct sim *s, uint32_t part, uint32_t *nodes);

/* sim_work.c: clients and checkers */
int sim__work_init(struct sim *s);
void sim__work_free(struct sim *s);
void sim__work_start(struct sim *s);
/* A client request reached its node (SIM_EV_CLIENT_REQ). */
void sim__client_deliver(struct sim *s, struct sim_event *e);
void sim__client_next(struct sim *s, uint32_t client);
/* Node idx crashed: its in-flight client requests become indefinite. */
void sim__client_node_crashed(struct sim *s, struct sim_node *nd);
/* Drops an undelivered client request (its event is being freed). */
void sim__creq_discard(struct sim_creq *q);
/* After the heal-and-quiesce phase: one r = n read per key. */
void sim__work_final_reads(struct sim *s);
/* Runs every end-of-run checker; adds findings to s->res. */
void sim__work_check(struct sim *s);

#endif
