/*
 * member.h - live membership: gossip (gossip/), the versioned ring state
 * (ring/ring_state.h) and the data moves of a membership change, glued to
 * the env (node/env.h) and the core (node/core.h).
 *
 * What it does, once per tick (gossip_tick_ms):
 *   - runs gossip: probes, suspicion, dissemination; sends its messages as
 *     peer "gossip" ops over the authenticated peer links (env peer_add /
 *     peer_request) and takes the ones that arrive (member_gossip_in);
 *   - keeps the core's view current: which ring reads use, which ring
 *     writes also go to while a change is pending, which member is on
 *     which peer slot, and which members gossip declared dead (the core
 *     does not wait on those: a request with fewer than W or R live
 *     replicas fails at once, definite unavailable);
 *   - on the claimant (the live member of the ring with the lowest id):
 *     starts a change when live members are not in the ring (joins), or
 *     when a member asked to leave or an operator asked to remove a dead
 *     one; marks transfers done as their sources report them; re-sources
 *     transfers whose source died. Every change is a new ring state
 *     version, spread by gossip; the greater version wins everywhere;
 *   - on a transfer's source: streams the partition to its destination
 *     (scan in key order, batches of replica merges, throttled), then
 *     reports it done to the claimant. A crash of either side restarts
 *     that partition's copy from its first key (merges are idempotent);
 *   - after a flip: drops the partitions this node no longer replicates
 *     (after MEMBER_DROP_DELAY_MS, re-checked against the state then);
 *   - a leaving node exits (on_left) once the flip without it is done.
 *
 *   client --admin join/leave/remove--> any node --admin (peer)--> claimant
 *   claimant: ring_state_change -> gossip_set_state -> everyone's view
 *   source:   scan k --rput batch--> dest ... --admin xfer_done--> claimant
 *   claimant: last transfer done -> flip -> gossip -> sources drop k
 *
 * Bootstrap: a saved state (the node persists every state it adopts via
 * save_state) wins; else a static member list (--peers) gives the same
 * version-1 ring on every node; else a node without seeds founds a
 * one-member ring; else it joins: no ring until the claimant adds it
 * (requests meanwhile fail unavailable: "not in a ring yet").
 */
#ifndef RINGKV_MEMBER_H
#define RINGKV_MEMBER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node/env.h"

struct core;
struct member;

struct member_opts {
    const char *cluster;
    const char *self_id;
    const char *self_addr;    /* advertised "host:port" of the native port */
    const char *const *seeds; /* "host:port" */
    uint32_t nseeds;
    const char *const *static_ids; /* --peers: the founding members */
    uint32_t nstatic;
    uint32_t partitions;
    uint32_t nval;
    uint64_t incarnation; /* 0: from env random64 */
    uint32_t probe_interval_ms, probe_timeout_ms, suspicion_mult;
    uint32_t transfer_batch; /* records per batch (in flight at once) */
    uint32_t transfer_rate;  /* records per second per transfer, 0 = max */
    const uint8_t *saved;    /* a state saved by an earlier run, or NULL */
    size_t saved_len;
    /* Called with every state this node adopts (persist it). */
    void (*save_state)(void *arg, const uint8_t *buf, size_t len);
    /* Called once a leave completed: the node should stop. */
    void (*on_left)(void *arg);
    void *cb_arg;
    /* TEST ONLY (the simulator's --break-transfer): a transfer's source
     * reports every partition copied without sending a record, so a
     * membership change loses data. Never set in production. */
    bool test_skip_copy;
};

struct member_stats {
    /* gossip's member table as this node sees it */
    uint64_t alive, suspect, dead, left;
    /* the ring state */
    uint64_t ring_members;      /* members of the ring reads use */
    uint64_t ring_pending;      /* 1 while a change is pending */
    uint64_t transfers;         /* copies in the pending change's plan */
    uint64_t transfers_done;    /* ... done */
    uint64_t transfers_blocked; /* ... without a live source */
    /* gossip counters (gossip.h) */
    uint64_t gossip_sent, gossip_received, gossip_refused_cluster,
        gossip_refused_sender, gossip_malformed, gossip_dropped, suspicions,
        refuted, deaths;
    uint64_t ring_version;
    uint64_t changes_started; /* claimant: changes begun */
    uint64_t transfers_sent;  /* partitions this node finished sending */
    uint64_t transfer_keys;   /* records sent by transfers */
    uint64_t transfer_bytes;
    uint64_t transfer_errors; /* batches that failed (retried) */
    uint64_t partitions_dropped;
    uint64_t keys_dropped;
    uint64_t states_refused; /* gossiped states that did not decode */
    uint64_t gossip_refused; /* gossip messages refused (any reason) */
};

/* Creates the membership service and starts its timer. Returns 0 with *out
 * set, or an error (a bad saved state: RK_ECORRUPT with err set). */
int member_create(struct member **out, struct env *env, struct core *core,
                  const struct member_opts *o, char *err, size_t errlen);

/* Stops the timer and gossip (a leave in progress is abandoned). Run the
 * loop afterwards so pending peer callbacks finish, then member_destroy. */
void member_close(struct member *m);
void member_destroy(struct member *m);

/* A gossip payload from the authenticated peer from_id. Returns 0 or the
 * refusal (counted). */
int member_gossip_in(struct member *m, const char *from_id, const uint8_t *buf,
                     size_t len);

/* A peer link came up or went down (peers_on_link). */
void member_link(struct member *m, uint32_t slot, const char *id, bool up);

/* An admin command (docs/protocol.md "admin"): cmd with arg (may be ""),
 * part for xfer_done; from_peer when it came over an authenticated peer
 * link (only peers may send leave_req, remove_req and xfer_done: others get
 * RK_EFORBIDDEN). *out is a malloc'd NUL-terminated answer (human text, or
 * JSON when json) that the caller frees; on error it holds the message
 * (or is NULL when memory ran out). Returns 0 or an error. */
int member_admin(struct member *m, const char *cmd, const char *arg,
                 uint32_t part, bool json, bool from_peer, char **out);

void member_get_stats(const struct member *m, struct member_stats *st);

#endif
