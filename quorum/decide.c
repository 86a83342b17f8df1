/*
 * decide.c - replica planning and outcome classification (see decide.h).
 */
#include <stdio.h>

#include "proto/errors.h"
#include "quorum/decide.h"

void decide_plan(const uint32_t *replicas, uint32_t n, uint32_t self,
                 const bool *up, struct decide_plan *out)
{
    *out = (struct decide_plan){.target = DECIDE_NO_TARGET};
    for (uint32_t i = 0; i < n; i++) {
        bool u = replicas[i] == self || up[i];
        out->up += u;
        if (u && out->target == DECIDE_NO_TARGET)
            out->target = replicas[i];
        if (replicas[i] == self && !out->mine) {
            out->mine = true;
            out->self_i = i;
        }
    }
}

/* A number in 0..m-1 from 64 random bits (m <= QUORUM_MAX_N: the modulo
 * bias is below 2^-59). */
static uint32_t below(decide_rand_fn rnd, void *arg, uint32_t m)
{
    return (uint32_t)(rnd(arg) % m);
}

int decide_pick(const bool *up, uint32_t n, uint32_t k, uint32_t force,
                decide_rand_fn rnd, void *arg, uint32_t *out)
{
    bool forced = force < n;
    uint32_t left = 0; /* candidates not yet looked at */
    uint32_t need, got = 0;

    if (k == 0 || k > n)
        return RK_EBAD_QUORUM;
    for (uint32_t i = 0; i < n; i++)
        left += up[i] && i != force;
    need = k - (forced ? 1 : 0);
    if (left < need)
        return RK_EUNAVAILABLE;
    /* Selection sampling (Knuth's Algorithm S): each candidate is taken
     * with probability need / left, which makes every subset of the
     * candidates of size need equally likely and keeps preference order. */
    for (uint32_t i = 0; i < n; i++) {
        if (i == force) {
            out[got++] = i;
            continue;
        }
        if (!up[i])
            continue;
        if (need > 0 && below(rnd, arg, left) < need) {
            out[got++] = i;
            need--;
        }
        left--;
    }
    return (int)got;
}

void decide_put_failed(const struct quorum_put *q, char *buf, size_t cap,
                       struct decide_outcome *out)
{
    snprintf(buf, cap,
             "%u of %u replicas acknowledged, w is %u%s; the write may have "
             "been applied",
             (unsigned)q->acks, (unsigned)q->n, (unsigned)q->w,
             q->timed_out ? " (timed out)" : "");
    *out = (struct decide_outcome){.err = q->timed_out ? RK_ETIMEOUT
                                                       : RK_EUNAVAILABLE,
                                   .definite = false,
                                   .msg = buf,
                                   .acks = q->acks};
}

void decide_get_failed(const struct quorum_get *q, struct decide_outcome *out)
{
    *out = (struct decide_outcome){
        .err = q->timed_out ? RK_ETIMEOUT : RK_EUNAVAILABLE,
        .definite = true,
        .msg = q->timed_out ? "fewer than r replicas answered in time"
                            : "fewer than r replicas answered"};
}

bool decide_fwd_reply(int err, const struct wire_resp *resp,
                      struct decide_outcome *out)
{
    if (err == RK_ETOO_LARGE) {
        /* Its reply was over max_frame and skipped: it was answered. */
        *out = (struct decide_outcome){
            .err = RK_ETOO_LARGE,
            .definite = false,
            .msg = "the coordinating replica's reply was over max_frame; "
                   "the write may have been applied"};
        return false;
    }
    if (err != 0) {
        *out = (struct decide_outcome){
            .err = err == RK_ETIMEOUT ? RK_ETIMEOUT : RK_EUNAVAILABLE,
            .definite = false,
            .msg = "lost the coordinating replica; the write may have been "
                   "applied"};
        return false;
    }
    if (resp->err != 0) {
        *out = (struct decide_outcome){.err = resp->err,
                                       .definite = resp->definite,
                                       .msg = resp->msg,
                                       .acks = resp->acks};
        return false;
    }
    return true;
}
