/*
 * gossip_msg.h - the gossip message codec (gossip_msg.c). Used by gossip.c
 * and by the fuzz target; the node never needs it (it moves opaque bytes).
 *
 * A message is one msgpack array (docs/protocol.md, "Gossip messages"):
 *
 *   [1, type, cluster, from_id, from_addr, from_inc, seq,
 *    target_addr, origin_addr, state_version, state_hash,
 *    [[id, addr, state, incarnation], ...], blob]
 *
 * Strings are str, blob is bin (empty unless type is STATE), the rest are
 * unsigned integers. Bounds: the whole message <= GOSSIP_MSG_MAX bytes, at
 * most GOSSIP_MAX_MEMBERS updates, ids/addrs/cluster within their maxima,
 * no NUL inside a string, blob <= GOSSIP_STATE_MAX. Decode rejects more.
 */
#ifndef RINGKV_GOSSIP_MSG_H
#define RINGKV_GOSSIP_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "gossip/gossip.h"

#define GOSSIP_MSG_VERSION 1

enum gossip_msg_type {
    GOSSIP_MSG_PING = 1,   /* probe; origin_addr set when relayed */
    GOSSIP_MSG_ACK,        /* answer to PING(seq); relayed to origin */
    GOSSIP_MSG_PING_REQ,   /* please probe target_addr for me (seq) */
    GOSSIP_MSG_SYNC,       /* push-pull: my whole table, send yours */
    GOSSIP_MSG_SYNC_REPLY, /* push-pull answer: my whole table */
    GOSSIP_MSG_STATE_REQ,  /* send me your cluster state blob */
    GOSSIP_MSG_STATE,      /* the blob */
    GOSSIP_MSG_TYPE_MAX_   /* sentinel */
};

struct gossip_update {
    char id[GOSSIP_ID_MAX + 1];
    char addr[GOSSIP_ADDR_MAX + 1];
    uint8_t state; /* enum gossip_state */
    uint64_t incarnation;
};

/* A decoded message. Owns upd and blob after gossip_msg_decode(); release
 * with gossip_msg_free(). For encoding the caller fills it and keeps
 * ownership of what upd and blob point to. */
struct gossip_msg {
    uint8_t type; /* enum gossip_msg_type */
    char cluster[GOSSIP_CLUSTER_MAX + 1];
    char from_id[GOSSIP_ID_MAX + 1];
    char from_addr[GOSSIP_ADDR_MAX + 1];
    uint64_t from_inc;
    uint64_t seq;
    char target_addr[GOSSIP_ADDR_MAX + 1]; /* PING_REQ */
    char origin_addr[GOSSIP_ADDR_MAX + 1]; /* relayed PING / ACK */
    uint64_t state_version, state_hash;
    uint32_t nupd;
    struct gossip_update *upd;
    uint8_t *blob;
    size_t blob_len;
};

/* Encodes m into a malloc'd buffer (*out, *len; the caller frees it).
 * Returns 0, -ENOMEM, or RK_ETOO_LARGE when it would exceed a bound. */
int gossip_msg_encode(const struct gossip_msg *m, uint8_t **out, size_t *len);

/* Decodes buf[0..len) into *m (zeroed first). Returns 0 (free *m with
 * gossip_msg_free), RK_ETOO_LARGE (over a size or count bound), RK_EPROTO
 * (anything else malformed; *why names it, static) or -ENOMEM. On error
 * *m holds nothing to free. */
int gossip_msg_decode(const uint8_t *buf, size_t len, struct gossip_msg *m,
                      const char **why);

/* Frees what decode allocated; m is zeroed. NULL is a no-op. */
void gossip_msg_free(struct gossip_msg *m);

/* FNV-1a 64 of the blob: the state hash carried in messages. */
uint64_t gossip_msg_hash(const uint8_t *p, size_t n);

#endif
