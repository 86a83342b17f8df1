/*
 * gossip_msg.c - encode and decode gossip messages (layout in gossip_msg.h).
 *
 * Design: the encoder packs one fixed-length msgpack array with the project
 * packer (proto/wire.h). The decoder checks the length bound, runs the
 * allocation-free structural pre-validator (wire_prevalidate: every count
 * fits the bytes present, depth <= 4) before msgpack-c sees the bytes, then
 * unpacks into a private zone and copies each field into the fixed-size
 * fields of struct gossip_msg, type- and bound-checking each. Strings are
 * pointer + length in msgpack; they are copied NUL-terminated and refused
 * when they contain a NUL.
 *
 * Invariants: a decoded message has 1 <= type < GOSSIP_MSG_TYPE_MAX_, every
 * update's state < GOSSIP_STATE_MAX_, a non-empty id, from_id and cluster.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "gossip/gossip_msg.h"
#include "proto/errors.h"
#include "proto/wire.h"

#define NFIELDS   13
#define MSG_DEPTH 4

uint64_t gossip_msg_hash(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static int pack_str(msgpack_packer *pk, const char *s, size_t max)
{
    size_t l = strnlen(s, max + 1);
    if (l > max)
        return RK_ETOO_LARGE;
    if (msgpack_pack_str(pk, l) != 0 || msgpack_pack_str_body(pk, s, l) != 0)
        return -ENOMEM;
    return 0;
}

static int pack_u64(msgpack_packer *pk, uint64_t v)
{
    return msgpack_pack_uint64(pk, v) != 0 ? -ENOMEM : 0;
}

static int encode_body(msgpack_packer *pk, const struct gossip_msg *m)
{
    int rc;
    if (m->nupd > GOSSIP_MAX_MEMBERS || m->blob_len > GOSSIP_STATE_MAX)
        return RK_ETOO_LARGE;
    if (msgpack_pack_array(pk, NFIELDS) != 0)
        return -ENOMEM;
    if ((rc = pack_u64(pk, GOSSIP_MSG_VERSION)) != 0 ||
        (rc = pack_u64(pk, m->type)) != 0 ||
        (rc = pack_str(pk, m->cluster, GOSSIP_CLUSTER_MAX)) != 0 ||
        (rc = pack_str(pk, m->from_id, GOSSIP_ID_MAX)) != 0 ||
        (rc = pack_str(pk, m->from_addr, GOSSIP_ADDR_MAX)) != 0 ||
        (rc = pack_u64(pk, m->from_inc)) != 0 ||
        (rc = pack_u64(pk, m->seq)) != 0 ||
        (rc = pack_str(pk, m->target_addr, GOSSIP_ADDR_MAX)) != 0 ||
        (rc = pack_str(pk, m->origin_addr, GOSSIP_ADDR_MAX)) != 0 ||
        (rc = pack_u64(pk, m->state_version)) != 0 ||
        (rc = pack_u64(pk, m->state_hash)) != 0)
        return rc;
    if (msgpack_pack_array(pk, m->nupd) != 0)
        return -ENOMEM;
    for (uint32_t i = 0; i < m->nupd; i++) {
        const struct gossip_update *u = &m->upd[i];
        if (msgpack_pack_array(pk, 4) != 0)
            return -ENOMEM;
        if ((rc = pack_str(pk, u->id, GOSSIP_ID_MAX)) != 0 ||
            (rc = pack_str(pk, u->addr, GOSSIP_ADDR_MAX)) != 0 ||
            (rc = pack_u64(pk, u->state)) != 0 ||
            (rc = pack_u64(pk, u->incarnation)) != 0)
            return rc;
    }
    if (msgpack_pack_bin(pk, m->blob_len) != 0 ||
        msgpack_pack_bin_body(pk, m->blob, m->blob_len) != 0)
        return -ENOMEM;
    return 0;
}

int gossip_msg_encode(const struct gossip_msg *m, uint8_t **out, size_t *len)
{
    struct wire_buf b;
    msgpack_packer pk;
    wire_buf_init(&b);
    wire_packer_init(&pk, &b);
    int rc = encode_body(&pk, m);
    if (rc == 0 && b.len > GOSSIP_MSG_MAX)
        rc = RK_ETOO_LARGE;
    if (rc != 0) {
        wire_buf_free(&b);
        return rc;
    }
    *out = b.data;
    *len = b.len;
    return 0;
}

/* Copies a str object into dst[0..max] NUL-terminated. */
static int get_str(const msgpack_object *o, char *dst, size_t max,
                   bool nonempty, const char **why, const char *what)
{
    if (o->type != MSGPACK_OBJECT_STR) {
        *why = what;
        return RK_EPROTO;
    }
    size_t l = o->via.str.size;
    if (l > max) {
        *why = what;
        return RK_ETOO_LARGE;
    }
    if ((nonempty && l == 0) || memchr(o->via.str.ptr, 0, l) != NULL) {
        *why = what;
        return RK_EPROTO;
    }
    memcpy(dst, o->via.str.ptr, l);
    dst[l] = '\0';
    return 0;
}

static int get_u64(const msgpack_object *o, uint64_t *v, const char **why,
                   const char *what)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        *why = what;
        return RK_EPROTO;
    }
    *v = o->via.u64;
    return 0;
}

static int get_update(const msgpack_object *o, struct gossip_update *u,
                      const char **why)
{
    uint64_t st;
    int rc;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 4) {
        *why = "update is not a 4-element array";
        return RK_EPROTO;
    }
    const msgpack_object *f = o->via.array.ptr;
    if ((rc = get_str(&f[0], u->id, GOSSIP_ID_MAX, true, why,
                      "bad update id")) != 0 ||
        (rc = get_str(&f[1], u->addr, GOSSIP_ADDR_MAX, true, why,
                      "bad update addr")) != 0 ||
        (rc = get_u64(&f[2], &st, why, "bad update state")) != 0 ||
        (rc = get_u64(&f[3], &u->incarnation, why, "bad incarnation")) != 0)
        return rc;
    if (st >= GOSSIP_STATE_MAX_) {
        *why = "unknown member state";
        return RK_EPROTO;
    }
    u->state = (uint8_t)st;
    return 0;
}

static int decode_fields(const msgpack_object *root, struct gossip_msg *m,
                         const char **why)
{
    uint64_t ver, type;
    int rc;
    if (root->type != MSGPACK_OBJECT_ARRAY || root->via.array.size != NFIELDS) {
        *why = "message is not a 13-element array";
        return RK_EPROTO;
    }
    const msgpack_object *f = root->via.array.ptr;
    if ((rc = get_u64(&f[0], &ver, why, "bad version")) != 0)
        return rc;
    if (ver != GOSSIP_MSG_VERSION) {
        *why = "unknown message version";
        return RK_EPROTO;
    }
    if ((rc = get_u64(&f[1], &type, why, "bad type")) != 0)
        return rc;
    if (type < GOSSIP_MSG_PING || type >= GOSSIP_MSG_TYPE_MAX_) {
        *why = "unknown message type";
        return RK_EPROTO;
    }
    m->type = (uint8_t)type;
    if ((rc = get_str(&f[2], m->cluster, GOSSIP_CLUSTER_MAX, true, why,
                      "bad cluster name")) != 0 ||
        (rc = get_str(&f[3], m->from_id, GOSSIP_ID_MAX, true, why,
                      "bad sender id")) != 0 ||
        (rc = get_str(&f[4], m->from_addr, GOSSIP_ADDR_MAX, true, why,
                      "bad sender addr")) != 0 ||
        (rc = get_u64(&f[5], &m->from_inc, why, "bad sender incarnation")) !=
            0 ||
        (rc = get_u64(&f[6], &m->seq, why, "bad seq")) != 0 ||
        (rc = get_str(&f[7], m->target_addr, GOSSIP_ADDR_MAX, false, why,
                      "bad target addr")) != 0 ||
        (rc = get_str(&f[8], m->origin_addr, GOSSIP_ADDR_MAX, false, why,
                      "bad origin addr")) != 0 ||
        (rc = get_u64(&f[9], &m->state_version, why, "bad state version")) !=
            0 ||
        (rc = get_u64(&f[10], &m->state_hash, why, "bad state hash")) != 0)
        return rc;

    const msgpack_object *ua = &f[11];
    if (ua->type != MSGPACK_OBJECT_ARRAY) {
        *why = "updates are not an array";
        return RK_EPROTO;
    }
    if (ua->via.array.size > GOSSIP_MAX_MEMBERS) {
        *why = "too many updates";
        return RK_ETOO_LARGE;
    }
    const msgpack_object *bo = &f[12];
    if (bo->type != MSGPACK_OBJECT_BIN) {
        *why = "blob is not bin";
        return RK_EPROTO;
    }
    if (bo->via.bin.size > GOSSIP_STATE_MAX) {
        *why = "state blob too large";
        return RK_ETOO_LARGE;
    }
    if (ua->via.array.size > 0) {
        m->upd = calloc(ua->via.array.size, sizeof(*m->upd));
        if (m->upd == NULL)
            return -ENOMEM;
    }
    for (uint32_t i = 0; i < ua->via.array.size; i++) {
        if ((rc = get_update(&ua->via.array.ptr[i], &m->upd[i], why)) != 0)
            return rc;
        m->nupd = i + 1;
    }
    if (bo->via.bin.size > 0) {
        m->blob = malloc(bo->via.bin.size);
        if (m->blob == NULL)
            return -ENOMEM;
        memcpy(m->blob, bo->via.bin.ptr, bo->via.bin.size);
        m->blob_len = bo->via.bin.size;
    }
    return 0;
}

int gossip_msg_decode(const uint8_t *buf, size_t len, struct gossip_msg *m,
                      const char **why)
{
    static const char *unused;
    if (why == NULL)
        why = &unused;
    memset(m, 0, sizeof(*m));
    if (buf == NULL || len == 0) {
        *why = "empty message";
        return RK_EPROTO;
    }
    if (len > GOSSIP_MSG_MAX) {
        *why = "message too large";
        return RK_ETOO_LARGE;
    }
    if (wire_prevalidate(buf, len, MSG_DEPTH, why) != 0)
        return RK_EPROTO;

    msgpack_zone zone;
    msgpack_object root;
    size_t off = 0;
    if (!msgpack_zone_init(&zone, 1024))
        return -ENOMEM;
    int rc;
    msgpack_unpack_return ur =
        msgpack_unpack((const char *)buf, len, &off, &zone, &root);
    if (ur == MSGPACK_UNPACK_NOMEM_ERROR) {
        *why = "out of memory";
        rc = -ENOMEM;
    } else if (ur != MSGPACK_UNPACK_SUCCESS || off != len) {
        *why = "msgpack rejected the value";
        rc = RK_EPROTO;
    } else {
        rc = decode_fields(&root, m, why);
    }
    msgpack_zone_destroy(&zone);
    if (rc != 0)
        gossip_msg_free(m);
    return rc;
}

void gossip_msg_free(struct gossip_msg *m)
{
    if (m == NULL)
        return;
    free(m->upd);
    free(m->blob);
    memset(m, 0, sizeof(*m));
}
