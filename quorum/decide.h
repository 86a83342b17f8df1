/*
 * decide.h - the coordinator's decisions around the quorum state machines:
 * which replicas to use (and whether this node coordinates or forwards),
 * and how a decided request is reported to the client (which error,
 * definite or not, which message).
 *
 * Pure: the node (node/core.c) asks the env which members are up, calls
 * these, and sends what they decide. The unit tests (tests/unit/
 * test_decide.c) script the inputs.
 *
 * Outcomes. An error is *definite* when nothing was applied anywhere. A put
 * fails definitely before its local commit (bad quorum, too few replicas
 * up); once the local commit succeeded, failing to reach w is indefinite
 * (read repair may still spread the value). A put or get whose quorum
 * became impossible because replicas answered with errors failed early:
 * RK_EUNAVAILABLE; only one the timer decided is RK_ETIMEOUT.
 */
#ifndef RINGKV_DECIDE_H
#define RINGKV_DECIDE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/wire.h"
#include "quorum/quorum.h"

#define DECIDE_NO_TARGET UINT32_MAX

/* What this node does with a key whose replicas are replicas[0..n). */
struct decide_plan {
    uint32_t up;     /* replicas believed reachable (self always is) */
    bool mine;       /* self is one of them: coordinate here */
    uint32_t self_i; /* self's position (0 when !mine) */
    uint32_t target; /* a forward goes to this member: the first one up,
                        or DECIDE_NO_TARGET */
};

/* up[i]: replica i is believed reachable (ignored for self). */
void decide_plan(const uint32_t *replicas, uint32_t n, uint32_t self,
                 const bool *up, struct decide_plan *out);

/* A source of 64 random bits (the node passes its env's random64), so the
 * choice below stays pure and the simulator deterministic. */
typedef uint64_t (*decide_rand_fn)(void *arg);

/* Replica fanout "exact" (docs/design.md, "Choosing N, R and W"): chooses
 * k of the n replicas whose up[i] is true, uniformly at random among all
 * such subsets that contain replica `force` (an index below n whose up
 * flag is ignored; DECIDE_NO_TARGET: no replica is forced). Writes the
 * chosen indices in preference order to out[0..k) (out has room for n) and
 * returns k; returns RK_EUNAVAILABLE (out untouched) when fewer than k
 * replicas are up, RK_EBAD_QUORUM when k is 0 or over n. Draws at most n
 * numbers from rnd(arg). With force = a uniformly chosen replica the
 * result is uniform over all k-subsets, which is what the PBS closed form
 * 1 - (C(n-w, r) / C(n, r))^k assumes. */
int decide_pick(const bool *up, uint32_t n, uint32_t k, uint32_t force,
                decide_rand_fn rnd, void *arg, uint32_t *out);

/* An error reply: err != 0. msg is static or points into the caller's
 * buffer. */
struct decide_outcome {
    int err;
    bool definite;
    const char *msg;
    uint32_t acks;
};

/* How a put whose quorum state is FAILED is reported; the local commit
 * succeeded (so it is indefinite). msg is formatted into buf[0..cap). */
void decide_put_failed(const struct quorum_put *q, char *buf, size_t cap,
                       struct decide_outcome *out);

/* How a get whose quorum state is FAILED is reported (always definite). */
void decide_get_failed(const struct quorum_get *q, struct decide_outcome *out);

/* A forwarded write's answer from the coordinating replica: transport err
 * (resp NULL) or resp. Returns false (and fills out) for a failure, true
 * when resp is a success the client gets as it is. */
bool decide_fwd_reply(int err, const struct wire_resp *resp,
                      struct decide_outcome *out);

#endif
