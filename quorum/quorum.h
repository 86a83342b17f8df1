/*
 * quorum.h - the request state machines of a coordinator: count replica
 * replies, decide success or failure exactly once, and (for reads) merge
 * what the replicas hold and say which of them need read repair.
 *
 * Pure: no I/O, no clock. The node feeds events (a reply arrived, the
 * timeout fired) and acts on the decisions; the unit tests feed scripted
 * replies, drops, timeouts and late replies.
 *
 *   put:  PENDING --acks >= w--> OK
 *            |-----fails > n - w (w can no longer be reached)--> FAILED
 *            `-----timeout--> FAILED (indefinite: some replicas may hold it)
 *   get:  PENDING --oks >= r--> OK (answer = merge of the oks so far)
 *            |-----fails > n - r--> FAILED
 *            `-----timeout--> FAILED
 *         and, decided or not, keeps merging late replies until every
 *         replica answered or the timeout: quorum_get_repairs() then names
 *         the replicas whose copy differs from the final merge.
 *
 * Replicas are numbered 0..n-1 (their place in the preference list). A
 * second reply from one replica is ignored (duplicated messages).
 */
#ifndef RINGKV_QUORUM_H
#define RINGKV_QUORUM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "quorum/dvv.h"

#define QUORUM_MAX_N 16

enum quorum_state { QUORUM_PENDING = 0, QUORUM_OK, QUORUM_FAILED, QUORUM_MAX };

/* Checks a requested quorum: 0 if 1 <= q <= n <= QUORUM_MAX_N, else
 * RK_EBAD_QUORUM. */
int quorum_check(unsigned n, unsigned q);

struct quorum_put {
    uint8_t n, w;
    uint8_t acks, fails;
    uint32_t replied; /* bit i: replica i answered */
    enum quorum_state state;
    bool timed_out; /* the timeout decided (FAILED), not the replies */
};

/* Returns 0 or RK_EBAD_QUORUM (w outside 1..n). */
int quorum_put_init(struct quorum_put *q, unsigned n, unsigned w);

/* Replica i acknowledged (ok) or failed. Returns true when this event
 * decided the outcome (q->state just left PENDING); false otherwise,
 * including for duplicates, out-of-range replicas and events after the
 * decision. */
bool quorum_put_reply(struct quorum_put *q, unsigned replica, bool ok);

/* The timeout fired. Returns true when this decided the outcome (FAILED). */
bool quorum_put_timeout(struct quorum_put *q);

struct quorum_get {
    uint8_t n, r;
    uint8_t oks, fails;
    uint32_t replied; /* bit i: replica i answered (ok or not) */
    uint32_t ok_mask; /* bit i: replica i answered with a version (or none) */
    uint32_t lww_dropped;
    bool lww;
    bool finished; /* every replica answered or the timeout fired */
    enum quorum_state state;
    bool timed_out; /* the timeout decided (FAILED), not the replies */
    int err;        /* first merge error (a corrupt reply), 0 if none */
    struct dvv merged;
    struct dvv copies[QUORUM_MAX_N]; /* what each ok replica held */
    struct dvv_arena arena;
};

/* Returns 0 or RK_EBAD_QUORUM. lww: merge with last-write-wins (dvv_lww)
 * after every sync. Free with quorum_get_free(). */
int quorum_get_init(struct quorum_get *q, unsigned n, unsigned r, bool lww);
void quorum_get_free(struct quorum_get *q);

/* Replica i answered: rec[0..len) is its encoded record, or rec == NULL
 * when it has nothing for the key; ok == false means it failed (rec is
 * ignored). The bytes are copied. A record that does not decode counts as a
 * failure. Returns true when this reply decided the outcome. */
bool quorum_get_reply(struct quorum_get *q, unsigned replica, bool ok,
                      const uint8_t *rec, size_t len);

/* The timeout fired: stops the request (finished). Returns true when this
 * decided the outcome (FAILED). */
bool quorum_get_timeout(struct quorum_get *q);

/* Every replica answered or the timeout fired: late replies are over. */
static inline bool quorum_get_finished(const struct quorum_get *q)
{
    return q->finished;
}

/* Replicas that answered ok but hold something other than the merge
 * (an older version, or nothing while the merge has something). Meaningful
 * once finished; a bit mask over 0..n-1. */
uint32_t quorum_get_repairs(const struct quorum_get *q);

#endif
