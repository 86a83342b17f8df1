/*
 * sim.h - the deterministic cluster simulator (issue 4): M real node cores
 * (node/core.c) in one process over an in-memory network, disk and clock,
 * driven by one event queue and one seeded PRNG. One call runs one seed
 * from start to checked finish; docs/simulation.md describes the models,
 * the faults and the checkers.
 *
 * Determinism: everything a run does is a function of struct sim_config
 * (the seed included). sim_run() never reads the wall clock, never touches
 * libuv, and keeps no global state, so runs may follow each other (or run
 * in separate threads) in one process and still give the same trace hash.
 */
#ifndef RINGKV_SIM_H
#define RINGKV_SIM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define SIM_MIN_NODES   3
#define SIM_MAX_NODES   7
#define SIM_MAX_CLIENTS 16

/* Membership events (joins, leaves, removals) during the active phase. */
enum sim_membership {
    SIM_MEMBERSHIP_AUTO = 0, /* on for every fourth seed (seed % 4 == 0) */
    SIM_MEMBERSHIP_ON,
    SIM_MEMBERSHIP_OFF,
    SIM_MEMBERSHIP_MAX
};

enum sim_faults {
    SIM_FAULTS_NONE = 0, /* a perfect network, no crashes, no pauses */
    SIM_FAULTS_LIGHT,    /* a little of everything */
    SIM_FAULTS_HEAVY,    /* a lot of everything */
    SIM_FAULTS_SWARM,    /* each fault dimension drawn per seed */
    SIM_FAULTS_MAX
};

struct sim_config {
    uint64_t seed;
    uint32_t nodes;       /* SIM_MIN_NODES..SIM_MAX_NODES */
    uint8_t n, r, w;      /* replication defaults given to every core */
    uint32_t clients;     /* 1..SIM_MAX_CLIENTS */
    uint64_t duration_ms; /* virtual length of the faulty, active phase */
    enum sim_faults faults;
    /* TEST ONLY: the simulated store keeps only one sibling of what a
     * replica merge (an rput) produced, so acknowledged writes get lost.
     * Proves the checker can fail; production has no such switch. */
    bool break_merge;
    /* Whether this seed joins, removes and retires nodes while it runs
     * (gossip and the member service run on every seed regardless). */
    enum sim_membership membership;
    /* TEST ONLY: a transfer's source reports the partition copied without
     * sending a record (member_opts.test_skip_copy), so a membership change
     * loses data. Proves the checkers see a broken transfer. */
    bool break_transfer;
    FILE *trace;  /* one readable line per event, or NULL */
    FILE *report; /* the checker's findings, or NULL */
};

struct sim_result {
    uint64_t seed;
    uint64_t hash;   /* XXH64 over the full event trace */
    uint64_t events; /* events processed */
    uint64_t end_ms; /* virtual time at the end */
    /* history */
    uint64_t ops, ops_ok, ops_definite, ops_indefinite;
    uint64_t crashes, wipes, partitions, pauses;
    uint64_t msgs_sent, msgs_lost, msgs_duplicated;
    uint64_t joins, leaves, removes; /* membership events started */
    uint64_t ring_version;           /* of the final ring */
    /* findings; failures is their sum */
    uint32_t lost_acked;          /* an acknowledged add missing at the end */
    uint32_t diverged;            /* replicas of a key that disagree */
    uint32_t definite_observed;   /* a definitely failed write observed */
    uint32_t resurrected;         /* a deleted version alive at the end */
    uint32_t vv_regressed;        /* a stored vector went backwards */
    uint32_t ack_underreplicated; /* ok with fewer than w durable copies */
    uint32_t epoch_reused;        /* a fresh store got an old epoch */
    uint32_t final_read_failed;   /* the converging read could not run */
    uint32_t misplaced;  /* a key not on exactly the final ring's N owners */
    uint32_t unsettled;  /* membership changes did not finish */
    uint32_t sim_errors; /* the simulator itself failed (ENOMEM..) */
    uint32_t failures;
};

/* Fills c with the defaults: 5 nodes, n=3 r=2 w=2, 4 clients, 20000 ms,
 * swarm faults, seed 1, no trace, no report. */
void sim_config_default(struct sim_config *c);

/* Runs one seed. Fills *res (always) and returns 0 when every checker
 * passed, 1 when some failed (res says which, c->report says why), or a
 * negative error when the configuration is invalid (-EINVAL). */
int sim_run(const struct sim_config *c, struct sim_result *res);

/* "auto", "on", "off" <-> enum; parse returns -1 if unknown. */
const char *sim_membership_name(enum sim_membership m);
int sim_membership_parse(const char *s);

/* "none", "light", "heavy", "swarm" <-> enum; parse returns -1 if unknown. */
const char *sim_faults_name(enum sim_faults f);
int sim_faults_parse(const char *s);

#endif
