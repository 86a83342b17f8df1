/*
 * gossip.h - cluster membership: member table, failure detector, and the
 * dissemination of membership changes and of one opaque, versioned
 * "cluster state" blob (the node puts its ring there).
 *
 * Design: SWIM (Das, Gupta, Motivala 2002) with memberlist's precedence
 * rules and push-pull sync. Each probe period a member probes ONE other
 * member, taken from a shuffled round-robin list (so every member is probed
 * within n periods, and the list is reshuffled when exhausted):
 *
 *     A                      B                     C (k of them)
 *     |--PING(seq)---------->|                     |
 *     |<-------------ACK(seq)|   acked: done       |
 *     |  no ACK within probe_timeout:              |
 *     |--PING_REQ(seq, target=B)------------------>|
 *     |                      |<------PING(seq, origin=A)
 *     |                      |--ACK(seq, origin=A)->|
 *     |<----------------------------ACK(seq, origin=A) (relayed)
 *     |  still no ACK at the end of the period: B is SUSPECT at B's
 *     |  incarnation; unrefuted for the suspicion timeout: B is DEAD
 *
 *   B hearing "B suspect/dead at incarnation i" (i >= its own) refutes:
 *   it raises its incarnation to i+1 and spreads "B alive at i+1".
 *
 * Dissemination: every PING, ACK and PING_REQ piggy-backs up to
 * GOSSIP_PIGGY_MAX member updates (id, addr, state, incarnation); each
 * update is sent retransmit_mult * ceil(log2(n+1)) times in all, fewest
 * sent first. Every sync_interval_ms a member exchanges its whole table
 * with one random live member (push-pull: SYNC, answered by SYNC_REPLY);
 * a node joins the same way through a seed address (gossip_add_seed), then
 * pulls from a random member once a period for GOSSIP_JOIN_SYNCS periods,
 * restarted whenever a pull taught it new members (a cluster starting all
 * at once converges in O(log n) periods instead of waiting for the
 * bandwidth-bound piggy-back of n joins or for sync_interval_ms).
 *
 * Lifeguard-style refinements taken (cheap ones): a message from a member
 * we hold SUSPECT/DEAD re-queues that verdict so the member hears it and
 * refutes (the "buddy system"); a transport's "unreachable" hint probes the
 * member next or starts the indirect probe at once, never kills it. Not
 * done: local health multipliers and suspicion timeouts that shrink with
 * independent confirmations.
 *
 * Precedence (any member, any order of arrival; the table converges):
 *   higher incarnation wins; at equal incarnation LEFT > DEAD > SUSPECT >
 *   ALIVE; only the member itself raises its incarnation (to refute).
 *   LEFT is final for that incarnation. An update about an unknown member
 *   is taken only when it says ALIVE or SUSPECT (so reaped members do not
 *   come back from a late message); DEAD and LEFT members stay listed for
 *   reap_ms and are then forgotten.
 *
 * Cluster state: gossip_set_state() sets the local blob (version, bytes).
 * Every message carries the sender's (state_version, state_hash); a member
 * that sees a greater pair (version first, then hash) asks that sender for
 * the blob (STATE_REQ -> STATE) and takes it if it is still greater and its
 * bytes hash to the claimed hash. The greater pair wins everywhere.
 *
 * Detection bound (documented knobs, all in struct gossip_conf):
 *   suspicion timeout S = suspicion_mult * probe_interval_ms
 *                         * max(1, ceil(log10(n + 1)))
 *   a member that stops answering is SUSPECT somewhere after at most
 *   P probe periods (expected about 1.6 periods with n members probing in
 *   shuffled round-robin, at most n), DEAD there S later, and DEAD on every
 *   member after dissemination D ~ retransmit_mult * ceil(log2(n+1)) periods:
 *       T_dead <= P * probe_interval_ms + probe_timeout_ms + S + D.
 *   tests/unit/test_gossip.c checks it with P = 4, D = ceil(log2 n) + 2
 *   periods (the bound printed by the test). Defaults (1 s period, 400 ms
 *   timeout, mult 4, n = 32): S = 8 s, T_dead <= 4 + 0.4 + 8 + 7 = 19.4 s.
 *
 * Tuning: probe_interval_ms trades detection time against probe traffic
 *   (one ping/ack per member per period); probe_timeout_ms must exceed the
 *   network's round trip (and is < the interval); indirect_probes (k) makes
 *   a lossy link less likely to cause a false suspicion (each of the k
 *   paths must fail); suspicion_mult is the refutation window in periods
 *   (raise it on lossy networks, lower it for faster detection);
 *   retransmit_mult sets how reliably one update reaches everyone;
 *   sync_interval_ms bounds how long a missed update can stay missed
 *   (each sync round also syncs with one DEAD member, so the sides of a
 *   healed partition that declared each other dead meet again);
 *   reap_ms how long DEAD/LEFT members stay listed.
 *
 * Purity: no I/O, no clock, no libc randomness: time is the now_ms argument
 * of every call (any monotonic millisecond clock), randomness comes from a
 * xoshiro256** generator seeded from gossip_conf.seed, so a run is a
 * function of its inputs. Not thread-safe: one struct gossip per thread.
 *
 * Errors: 0 (or a count) is success, negative is failure:
 *   -EINVAL       a NULL argument, an id/addr/cluster empty or too long
 *   -ENOMEM       allocation failed (the call had no effect)
 *   -ENOENT       gossip_remove: no such member
 *   -EBUSY        gossip_remove: the member is not DEAD (or is self)
 *   -EAGAIN       gossip_next_msg / gossip_next_event: queue empty
 *   RK_EPROTO     gossip_recv: malformed message (counted in stats)
 *   RK_ETOO_LARGE gossip_recv: over GOSSIP_MSG_MAX or a bound (counted);
 *                 gossip_set_state: over GOSSIP_STATE_MAX
 *   RK_ECONFIG    gossip_recv: other cluster name (counted);
 *                 gossip_create: invalid configuration
 *   RK_EFORBIDDEN gossip_recv: claimed sender differs from the transport's
 *                 authenticated id, or is our own id (counted)
 *   -ESTALE       gossip_set_state: (version, hash) not greater than now
 */
#ifndef RINGKV_GOSSIP_H
#define RINGKV_GOSSIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GOSSIP_ID_MAX      64   /* bytes in a member id, without the NUL */
#define GOSSIP_ADDR_MAX    272  /* "host:port" / "[v6]:port", no NUL */
#define GOSSIP_CLUSTER_MAX 64   /* bytes of a cluster name, no NUL */
#define GOSSIP_MAX_MEMBERS 1024 /* table size, also updates per message */
#define GOSSIP_PIGGY_MAX   8    /* updates piggy-backed on a ping/ack */
#define GOSSIP_STATE_MAX   (1u << 20) /* bytes of the cluster state blob */
#define GOSSIP_MSG_MAX     (GOSSIP_STATE_MAX + (512u << 10)) /* one message */
#define GOSSIP_OUTQ_MAX    4096 /* queued outgoing messages */
#define GOSSIP_EVQ_MAX     4096 /* queued events */
#define GOSSIP_SEEDS_MAX   16
#define GOSSIP_JOIN_SYNCS  4 /* push-pulls, one per period, after a join */

enum gossip_state {
    GOSSIP_ALIVE = 0,
    GOSSIP_SUSPECT,
    GOSSIP_DEAD,
    GOSSIP_LEFT,
    GOSSIP_STATE_MAX_ /* sentinel */
};

/* "alive", "suspect", "dead", "left"; "?" outside the enum. Static. */
const char *gossip_state_name(enum gossip_state s);

/* Configuration. Strings are copied by gossip_create(). */
struct gossip_conf {
    const char *cluster;        /* cluster name, 1..GOSSIP_CLUSTER_MAX bytes */
    const char *self_id;        /* 1..GOSSIP_ID_MAX bytes */
    const char *self_addr;      /* 1..GOSSIP_ADDR_MAX bytes, "host:port" */
    uint64_t incarnation;       /* start incarnation: persist it, or use time */
    uint64_t seed;              /* PRNG seed (shuffles, random peers) */
    uint32_t probe_interval_ms; /* one probe per period (default 1000) */
    uint32_t probe_timeout_ms;  /* direct ack wait before ping-req (400) */
    uint32_t indirect_probes;   /* k members asked to ping-req (3) */
    uint32_t suspicion_mult;    /* S = mult * interval * scale(n) (4) */
    uint32_t retransmit_mult;   /* sends = mult * ceil(log2(n+1)) (3) */
    uint32_t sync_interval_ms;  /* push-pull period (30000) */
    uint32_t reap_ms;           /* forget DEAD/LEFT after this (3600000) */
};

/* The defaults above; the three strings are NULL and must be set. */
struct gossip_conf gossip_conf_defaults(void);

struct gossip;

/* Creates a member table holding only self (ALIVE at c->incarnation).
 * Returns 0 with *out set (free with gossip_destroy), -EINVAL, -ENOMEM or
 * RK_ECONFIG (an interval or timeout of 0, probe_timeout >= interval). */
int gossip_create(struct gossip **out, const struct gossip_conf *c,
                  uint64_t now_ms);
/* Frees everything, including queued messages. NULL is a no-op. */
void gossip_destroy(struct gossip *g);

/* Remembers addr (copied) as a seed and queues a SYNC to it now; while no
 * other live member is known, the seeds are retried in turn every probe
 * period. Returns 0, -EINVAL, or RK_ETOO_LARGE (GOSSIP_SEEDS_MAX seeds). */
int gossip_add_seed(struct gossip *g, const char *addr);

/* Runs the timers: probe timeouts, ping-reqs, suspicion timeouts, reaping,
 * new probes, push-pull syncs. Call at least every probe_timeout_ms / 2. */
void gossip_tick(struct gossip *g, uint64_t now_ms);

/* Handles one message. auth_from_id is the sender id the transport has
 * authenticated (NULL when it knows none); a message claiming another
 * sender, or our own id, is refused. Replies are queued. Returns 0 or an
 * error from the list above; every refusal is counted in the stats. */
int gossip_recv(struct gossip *g, uint64_t now_ms, const char *auth_from_id,
                const uint8_t *buf, size_t len);

/* Transport hint: a connection to addr was refused or reset. If addr's
 * member is being probed, the indirect probe starts now; otherwise the
 * member is probed next. Never marks anything SUSPECT or DEAD by itself. */
void gossip_unreachable(struct gossip *g, uint64_t now_ms, const char *addr);

/* Leaves: self becomes LEFT at incarnation + 1, which is spread with the
 * next messages (keep calling gossip_tick and draining for a few periods
 * before stopping). Probing stops; pings are still answered. Returns 0. */
int gossip_leave(struct gossip *g, uint64_t now_ms);

/* Declares a DEAD member LEFT (same incarnation, spread like any update).
 * Returns 0, -ENOENT, or -EBUSY when it is ALIVE/SUSPECT or is self. */
int gossip_remove(struct gossip *g, const char *id, uint64_t now_ms);

/* Output: the next message to send, to addr (NUL-terminated copy). *buf
 * and *len stay valid until the next gossip_next_msg or gossip_destroy
 * call: gossip owns them. Returns 0, or -EAGAIN when nothing is queued.
 * The queue holds GOSSIP_OUTQ_MAX messages; more are dropped and counted
 * (gossip is loss-tolerant). */
int gossip_next_msg(struct gossip *g, char addr[GOSSIP_ADDR_MAX + 1],
                    uint8_t **buf, size_t *len);

enum gossip_event_type {
    GOSSIP_EV_MEMBER_JOINED, /* a member was added (any state) */
    GOSSIP_EV_MEMBER_STATE,  /* old -> new state (also for self) */
    GOSSIP_EV_MEMBER_GONE,   /* a DEAD/LEFT member was reaped */
    GOSSIP_EV_STATE_CHANGED, /* the cluster state blob changed */
};

struct gossip_event {
    enum gossip_event_type type;
    char id[GOSSIP_ID_MAX + 1];
    char addr[GOSSIP_ADDR_MAX + 1];
    enum gossip_state old_state, new_state;
    uint64_t incarnation;
    uint64_t state_version; /* STATE_CHANGED: the new version */
};

/* Pops the next event into *ev. Returns 0 or -EAGAIN. GOSSIP_EVQ_MAX
 * events are kept; more are dropped and counted. */
int gossip_next_event(struct gossip *g, struct gossip_event *ev);

struct gossip_member {
    char id[GOSSIP_ID_MAX + 1];
    char addr[GOSSIP_ADDR_MAX + 1];
    enum gossip_state state;
    uint64_t incarnation;
    uint64_t since_heard_ms; /* since last heard from, directly or via a
                                relayed ack or a newer incarnation */
    bool self;
};

/* Copies up to cap members (self first, then in table order) into out.
 * Returns the number of members in the table (may exceed cap). */
int gossip_members(const struct gossip *g, uint64_t now_ms,
                   struct gossip_member *out, int cap);

/* Sets the local cluster state (bytes copied) if (version, hash) is greater
 * than the current one. Returns 0, -EINVAL, -ENOMEM, RK_ETOO_LARGE, or
 * -ESTALE when it is not greater (nothing changes). */
int gossip_set_state(struct gossip *g, uint64_t version, const uint8_t *bytes,
                     size_t len);

/* Forgets the local cluster state (version 0, none), so any state a peer
 * has is taken: for a node that gives up the cluster it founded alone to
 * join another one. */
void gossip_clear_state(struct gossip *g);

/* The current cluster state: *bytes is owned by gossip and valid until the
 * next call into g that may change it (recv, set_state, destroy). Version 0
 * with len 0 means none yet. */
void gossip_get_state(const struct gossip *g, uint64_t *version,
                      const uint8_t **bytes, size_t *len);

struct gossip_stats {
    uint64_t msgs_sent;       /* queued for sending */
    uint64_t msgs_received;   /* accepted by gossip_recv */
    uint64_t refused_cluster; /* other cluster name */
    uint64_t refused_sender;  /* claimed sender != authenticated / self */
    uint64_t malformed;       /* undecodable or over a bound */
    uint64_t out_dropped;     /* queue full, or not encodable */
    uint64_t events_dropped;  /* event queue full */
    uint64_t members_refused; /* table full (GOSSIP_MAX_MEMBERS) */
    uint64_t probes;          /* direct probes started */
    uint64_t indirect_probes; /* PING_REQs sent */
    uint64_t suspicions;      /* members this node marked SUSPECT */
    uint64_t refuted;         /* times self raised its incarnation */
    uint64_t deaths;          /* members this node declared DEAD */
    uint64_t syncs;           /* push-pull exchanges started */
    uint64_t state_syncs;     /* cluster state blobs taken from peers */
    uint64_t state_refused;   /* blobs whose hash did not match */
};

void gossip_stats(const struct gossip *g, struct gossip_stats *out);

/* Suspicion timeout in ms for the current member count (the formula above). */
uint64_t gossip_suspicion_timeout_ms(const struct gossip *g);

#endif
