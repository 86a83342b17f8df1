/*
 * core.h - a node's request handling, behind the environment seam.
 *
 * The transports (node/server.c for the native protocol and RESP; the
 * simulator's clients) hand decoded requests to core_request() with a reply
 * callback. The core versions writes (quorum/dvv.h), reads and commits
 * through struct env (node/env.h), and calls the reply callback exactly once
 * per request: synchronously for what it can answer at once (errors, local
 * reads), later for what waits on a commit (and, with replication, on
 * replicas). The coordinator of the replication issue slots in here, between
 * "request arrived" and "local storage".
 *
 *   transport --core_request--> core --env.store_submit--> storage worker
 *       ^                        |                             | apply():
 *       +------reply_fn----------+<------op.done (loop)--------+ dvv_update
 */
#ifndef RINGKV_CORE_H
#define RINGKV_CORE_H

#include <stdbool.h>
#include <stdint.h>

#include "node/env.h"
#include "proto/wire.h"

enum core_conflict {
    CORE_CONFLICT_SIBLINGS = 0, /* keep concurrent writes as siblings */
    CORE_CONFLICT_LWW,          /* keep the greatest HLC timestamp */
    CORE_CONFLICT_MAX
};

struct ring;

struct core_member {
    char id[72];
    char addr[280]; /* host:port of its native listener */
};

struct core_opts {
    uint64_t actor;        /* this node's storage epoch (dvv.h actor) */
    uint32_t partitions;   /* Q, a power of two */
    uint32_t max_siblings; /* a write leaving more live values fails */
    enum core_conflict conflict;
    uint64_t max_drift_ms; /* lww: reject timestamps further ahead */
    /* replication; ring == NULL means a cluster of this node alone */
    const struct ring *ring;           /* borrowed; members by ring index */
    const struct core_member *members; /* ring_members(ring) entries */
    uint32_t self;                     /* this node's ring index */
    uint8_t n, r, w;                   /* defaults; capped at members */
    uint64_t timeout_ms;               /* replica wait before failing */
    uint64_t incarnation; /* random per process start; 0: env random64 */
    uint64_t max_record;  /* largest encoded record stored; 0 = no limit */
    /* PEER_AUTH_CTX_KEY_LEN bytes (node/peer_auth.h), copied: contexts
     * handed out are tagged with it and contexts received must carry a
     * valid tag for their key. NULL: contexts are untagged (a node alone,
     * which has no cluster secret). */
    const uint8_t *ctx_key;
    /* Benchmarking switches (docs/design.md, "Choosing N, R and W"); zero
     * is the production behaviour. exact_fanout: a put goes to exactly w
     * replicas and a get asks exactly r, chosen uniformly at random among
     * the reachable ones (a put is coordinated by one of them: forwarded
     * when this node is not chosen). no_read_repair: a get never sends
     * repair writes. */
    bool exact_fanout;
    bool no_read_repair;
};

#define CORE_DEFAULT_MAX_SIBLINGS 64

/* Request flags. */
#define CORE_F_OVERWRITE                                                       \
    0x1u /* ignore ctx: supersede every version stored                         \
            (RESP SET / DEL: no siblings pile up) */

struct core_req {
    enum wire_op op; /* GET, PUT or DEL */
    const uint8_t *key;
    uint32_t key_len;
    const uint8_t *value;
    uint32_t value_len;
    const uint8_t *ctx; /* NULL: empty context */
    uint32_t ctx_len;
    uint8_t r, w; /* 0 = default */
    unsigned flags;
    bool local;         /* get: this node's copy only */
    bool forwarded;     /* put/del from a peer: coordinate, never forward */
    const uint8_t *rec; /* rput: the record to merge */
    uint32_t rec_len;
    uint64_t ts;       /* rput: newest timestamp in rec */
    uint32_t fwd_from; /* fput/fdel: forwarder, incarnation, sequence */
    uint64_t fwd_inc, fwd_seq;
};

/* Maps a decoded peer or client request onto a core request (pointers
 * borrowed from w). Every transport uses this one mapping. */
void core_req_from_wire(const struct wire_req *w, struct core_req *out);

struct core_reply;

/* Maps a core reply to request (id, op) onto the wire response, the other
 * half of that mapping. vals (WIRE_MAX_VALUES entries) holds a get's
 * values; a get with more siblings than one response carries becomes a
 * definite RK_ESIBLING_LIMIT error. Pointers borrow from rep and vals. */
void core_reply_to_wire(const struct core_reply *rep, uint64_t id,
                        enum wire_op op, struct wire_value *vals,
                        struct wire_resp *out);

struct core_value {
    const uint8_t *data;
    uint32_t len;
    uint64_t ts;    /* HLC timestamp of the write */
    uint64_t actor; /* who coordinated it */
};

/* What a request produced. Everything it points to lives only during the
 * reply callback: copy what you keep. */
struct core_reply {
    int err;         /* 0 or RK_E* / -errno */
    bool definite;   /* err: true when nothing was applied */
    const char *msg; /* err: detail, or NULL for the default message */
    const struct core_value *values; /* get: live siblings, none = absent */
    uint32_t nvalues;
    const uint8_t *ctx; /* get/put/del: context covering the result */
    uint32_t ctx_len;
    bool existed;       /* put/del: the key had live values before */
    const uint8_t *rec; /* rget: the stored record, NULL if none; put:
                           the record written (internal) */
    uint32_t rec_len;
    uint32_t acks; /* put/del errors: replicas that acknowledged */
};

typedef void (*core_reply_fn)(void *arg, const struct core_reply *rep);

struct core_stats {
    uint64_t gets, puts, dels;
    uint64_t not_found;
    uint64_t errors;         /* replies with err != 0 */
    uint64_t sibling_limit;  /* writes refused by max_siblings */
    uint64_t lww_discarded;  /* values dropped by last-write-wins */
    uint64_t writes_pending; /* waiting on a commit now */
    uint64_t max_siblings_seen;
    uint64_t coordinating; /* requests waiting on replicas now */
    uint64_t forwarded;    /* puts/dels sent to a replica to coordinate */
    uint64_t replica_puts, replica_gets; /* served for other coordinators */
    uint64_t timeouts;     /* requests failed by request_timeout */
    uint64_t unavailable;  /* refused: too few replicas reachable */
    uint64_t read_repairs; /* repair writes sent (and local) */
    uint64_t read_repair_failures;
    uint64_t clock_skew_rejected; /* lww: replicated writes from the future */
    uint64_t duplicate_forwards;  /* fput/fdel copies refused */
    uint64_t record_too_large;    /* writes/merges refused by max_record */
    uint64_t own_actor_refused;   /* merges claiming our unissued dots */
};

struct core;

/* Returns a core bound to env (borrowed: it must outlive the core), or NULL
 * when memory runs out. */
struct core *core_create(struct env *env, const struct core_opts *o);

/* Frees the core. Every request must have been answered (storage closed,
 * so every done callback ran). NULL is a no-op. */
void core_destroy(struct core *c);

/* From now on requests are answered with RK_ESHUTTING_DOWN (definite). */
void core_shutdown(struct core *c);

/* Handles req. fn(arg, reply) runs exactly once, possibly before this
 * returns. req and what it points to are borrowed for this call only. */
void core_request(struct core *c, const struct core_req *req, core_reply_fn fn,
                  void *arg);

void core_get_stats(const struct core *c, struct core_stats *st);

/* The member table with each member's reachability as this node sees it.
 * Fills up to cap entries (pointers into the core's own strings); returns
 * the number of members. */
uint32_t core_members(struct core *c, struct wire_member *out, uint32_t cap);

#define CORE_NO_MEMBER   UINT32_MAX /* a ring member without a peer slot */
#define CORE_MAX_MEMBERS 1024       /* env member numbers (peer slots) */

/* The placement the core uses (node/member.c keeps it current). Reads go
 * to cur's preference list; while a membership change is pending, writes
 * go to cur's and next's and need w acks in each. cur_slot[i] (next_slot)
 * is the env member number of ring member i, CORE_NO_MEMBER when none is
 * known yet (counted as down). members (by cur index) names them for the
 * members and ring ops; NULL: ids from the ring, no addresses. Rings are
 * borrowed until the next core_set_view() or core_destroy(); the arrays
 * are copied. cur NULL: this node is in no ring yet, and every request
 * fails unavailable (definite). */
struct core_view {
    const struct ring *cur, *next;
    const uint32_t *cur_slot, *next_slot;
    const struct core_member *members;
    uint32_t self; /* this node's member number */
    uint32_t nval; /* the cluster's N (the ring state's); 0: keep core_opts.n */
};

void core_set_view(struct core *c, const struct core_view *v);

/* From now on this node versions writes as actor (a new storage epoch). */
void core_set_actor(struct core *c, uint64_t actor);

/* down(arg, member): membership knows member is dead or gone; the core
 * counts it unreachable without waiting on it. NULL: links alone decide. */
typedef bool (*core_down_fn)(void *arg, uint32_t member);
void core_set_liveness(struct core *c, core_down_fn down, void *arg);

/* The effective replication factor (n capped at the number of members). */
uint32_t core_nval(const struct core *c);

/* Writes partition p's preference list (core_nval() member indices) to
 * out[p * core_nval() ...] for every partition. */
void core_ring_pref(const struct core *c, uint16_t *out);

#endif
