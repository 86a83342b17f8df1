/*
 * wire_msg.c - encode and decode of ringkv's native requests and responses
 * (docs/protocol.md is the spec; wire.c holds framing and pre-validation).
 *
 *   client                               node
 *     | -- {id, op, key, value, ctx, r, w} -->|   wire_encode_req/decode_req
 *     | <-- {id, ok, [code, msg, definite]  --|   wire_encode_resp/decode_resp
 *     |      [values, ctx] [stats]}           |
 *
 * Design: decoding is pre-validate, one msgpack_unpack() into the caller's
 * zone, then a single pass over the top-level map that only records which
 * object holds each known key (unknown keys are skipped for forward
 * compatibility; duplicate known keys and non-string keys are rejected so a
 * message cannot mean two things). Fields are then checked in a fixed order:
 * id first, so every later error can still be answered by id. Strings and
 * bins borrow from the frame bytes; the few NUL-terminated strings of a
 * response (msg, stat names and values) are copied into the zone.
 *
 * Encoders write keys in a fixed order and never leave a partial frame: on
 * failure the buffer is cut back to its length before the call.
 *
 * Invariants: a decoded request has key_len in 1..max_key for get/put/del,
 * value only for put, ctx only for put/del and only when non-empty, r and w
 * 0 (absent) or 1..255. A decoded response has nvalues <= WIRE_MAX_VALUES and
 * nstats <= WIRE_MAX_STATS.
 */
#include <errno.h>
#include <string.h>

#include "proto/wire.h"

static const char *const wire_op_names[WIRE_OP_MAX] = {
    [WIRE_OP_NONE] = "?",        [WIRE_OP_GET] = "get",
    [WIRE_OP_PUT] = "put",       [WIRE_OP_DEL] = "del",
    [WIRE_OP_PING] = "ping",     [WIRE_OP_STATS] = "stats",
    [WIRE_OP_RPUT] = "rput",     [WIRE_OP_RGET] = "rget",
    [WIRE_OP_FPUT] = "fput",     [WIRE_OP_FDEL] = "fdel",
    [WIRE_OP_RING] = "ring",     [WIRE_OP_MEMBERS] = "members",
    [WIRE_OP_HELLO] = "hello",   [WIRE_OP_AUTH] = "auth",
    [WIRE_OP_GOSSIP] = "gossip", [WIRE_OP_ADMIN] = "admin",
};

const char *wire_op_name(enum wire_op op)
{
    if ((int)op <= WIRE_OP_NONE || op >= WIRE_OP_MAX)
        return "?";
    return wire_op_names[op];
}

static bool op_has_key(enum wire_op op)
{
    return op == WIRE_OP_GET || op == WIRE_OP_PUT || op == WIRE_OP_DEL ||
           op == WIRE_OP_RPUT || op == WIRE_OP_RGET || op == WIRE_OP_FPUT ||
           op == WIRE_OP_FDEL;
}

static bool op_has_ctx(enum wire_op op)
{
    return op == WIRE_OP_PUT || op == WIRE_OP_DEL || op == WIRE_OP_FPUT ||
           op == WIRE_OP_FDEL;
}

static bool op_has_value(enum wire_op op)
{
    return op == WIRE_OP_PUT || op == WIRE_OP_FPUT;
}

static bool op_is_fwd(enum wire_op op)
{
    return op == WIRE_OP_FPUT || op == WIRE_OP_FDEL;
}

/* ---- decoding helpers -------------------------------------------------- */

/* One known key of a message map: its name and where its value was found. */
struct wire_field {
    const char *name;
    const msgpack_object *val;
};

static bool str_eq(const msgpack_object *o, const char *s)
{
    size_t l = strlen(s);
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == l &&
           memcmp(o->via.str.ptr, s, l) == 0;
}

/* Unpacks p[0..n) (pre-validated first) into zone. Returns 0, or an error
 * with *why set. */
static int unpack_frame(const uint8_t *p, size_t n, msgpack_zone *zone,
                        msgpack_object *obj, const char **why)
{
    int rc = wire_prevalidate(p, n, WIRE_MAX_DEPTH, why);
    if (rc != 0)
        return rc;
    size_t off = 0;
    msgpack_unpack_return ur =
        msgpack_unpack((const char *)p, n, &off, zone, obj);
    if (ur == MSGPACK_UNPACK_NOMEM_ERROR) {
        *why = "out of memory";
        return -ENOMEM;
    }
    if (ur != MSGPACK_UNPACK_SUCCESS || off != n) {
        *why = "msgpack rejected the value";
        return RK_EBAD_REQUEST;
    }
    if (obj->type != MSGPACK_OBJECT_MAP) {
        *why = "message is not a map";
        return RK_EBAD_REQUEST;
    }
    return 0;
}

/* Records the value of each known key of map in fields[0..nf). Returns 0, or
 * RK_EBAD_REQUEST for a non-string key or a repeated known key; the fields
 * seen before that are still recorded. */
static int collect(const msgpack_object *map, struct wire_field *fields,
                   size_t nf, const char **why)
{
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (kv->key.type != MSGPACK_OBJECT_STR) {
            *why = "map key is not a string";
            return RK_EBAD_REQUEST;
        }
        for (size_t f = 0; f < nf; f++) {
            if (!str_eq(&kv->key, fields[f].name))
                continue;
            if (fields[f].val != NULL) {
                *why = "duplicate key";
                return RK_EBAD_REQUEST;
            }
            fields[f].val = &kv->val;
            break;
        }
    }
    return 0;
}

static bool is_bytes(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_BIN || o->type == MSGPACK_OBJECT_STR;
}

/* Pointer and length of a bin or str object (both borrow from the frame). */
static void get_bytes(const msgpack_object *o, const uint8_t **p, uint32_t *len)
{
    if (o->type == MSGPACK_OBJECT_BIN) {
        *p = (const uint8_t *)o->via.bin.ptr;
        *len = o->via.bin.size;
    } else {
        *p = (const uint8_t *)o->via.str.ptr;
        *len = o->via.str.size;
    }
}

/* A NUL-terminated copy of at most max bytes of str object o, in zone. */
static const char *zstr(msgpack_zone *zone, const msgpack_object *o, size_t max)
{
    size_t l = o->via.str.size < max ? o->via.str.size : max;
    char *s = msgpack_zone_malloc_no_align(zone, l + 1);
    if (s == NULL)
        return NULL;
    if (l > 0)
        memcpy(s, o->via.str.ptr, l);
    s[l] = '\0';
    return s;
}

/* ---- requests ---------------------------------------------------------- */

enum {
    WIRE_RQ_ID,
    WIRE_RQ_OP,
    WIRE_RQ_KEY,
    WIRE_RQ_VALUE,
    WIRE_RQ_CTX,
    WIRE_RQ_R,
    WIRE_RQ_W,
    WIRE_RQ_REC,
    WIRE_RQ_TS,
    WIRE_RQ_FLAGS,
    WIRE_RQ_LOCAL,
    WIRE_RQ_FROM,
    WIRE_RQ_INC,
    WIRE_RQ_SEQ,
    WIRE_RQ_CLUSTER, /* the four handshake fields, in decode_hello's */
    WIRE_RQ_NODE,    /* order */
    WIRE_RQ_NONCE,
    WIRE_RQ_MAC,
    WIRE_RQ_DATA,
    WIRE_RQ_CMD,
    WIRE_RQ_ARG,
    WIRE_RQ_PART,
    WIRE_RQ_JSON,
    WIRE_RQ_N
};

/* The handshake fields f[0..4) (cluster, node, nonce, mac) into h. The
 * strings must be str, nonce and mac bin, each at most 255 bytes. */
static int decode_hello(const struct wire_field *f, struct wire_hello *h,
                        const char **why)
{
    const msgpack_object *o;
    for (int i = 0; i < 4; i++) {
        if ((o = f[i].val) == NULL)
            continue;
        bool str = i < 2;
        if (o->type != (str ? MSGPACK_OBJECT_STR : MSGPACK_OBJECT_BIN) ||
            (str ? o->via.str.size : o->via.bin.size) > 255) {
            *why = "cluster and node must be str, nonce and mac bin, each at "
                   "most 255 bytes";
            return RK_EBAD_REQUEST;
        }
    }
    if ((o = f[0].val) != NULL) {
        h->cluster = (const uint8_t *)o->via.str.ptr;
        h->cluster_len = o->via.str.size;
    }
    if ((o = f[1].val) != NULL) {
        h->node = (const uint8_t *)o->via.str.ptr;
        h->node_len = o->via.str.size;
    }
    if ((o = f[2].val) != NULL) {
        h->nonce = (const uint8_t *)o->via.bin.ptr;
        h->nonce_len = o->via.bin.size;
    }
    if ((o = f[3].val) != NULL) {
        h->mac = (const uint8_t *)o->via.bin.ptr;
        h->mac_len = o->via.bin.size;
    }
    return 0;
}

static int pack_key(msgpack_packer *pk, const char *k);

static size_t hello_count(const struct wire_hello *h)
{
    return (size_t)(h->cluster != NULL) + (h->node != NULL) +
           (h->nonce != NULL) + (h->mac != NULL);
}

/* Packs the handshake fields that are present. */
static int pack_hello(msgpack_packer *pk, const struct wire_hello *h)
{
    int rc = 0;
    if (h->cluster != NULL) {
        rc |= pack_key(pk, "cluster");
        rc |= msgpack_pack_str_with_body(pk, h->cluster, h->cluster_len);
    }
    if (h->node != NULL) {
        rc |= pack_key(pk, "node");
        rc |= msgpack_pack_str_with_body(pk, h->node, h->node_len);
    }
    if (h->nonce != NULL) {
        rc |= pack_key(pk, "nonce");
        rc |= msgpack_pack_bin_with_body(pk, h->nonce, h->nonce_len);
    }
    if (h->mac != NULL) {
        rc |= pack_key(pk, "mac");
        rc |= msgpack_pack_bin_with_body(pk, h->mac, h->mac_len);
    }
    return rc;
}

static int pack_quorum(const msgpack_object *o, uint8_t *q, const char **why)
{
    if (o == NULL)
        return 0;
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 < 1 ||
        o->via.u64 > 255) {
        *why = "r and w must be unsigned integers 1..255";
        return RK_EBAD_REQUEST;
    }
    *q = (uint8_t)o->via.u64;
    return 0;
}

/* A gossip request's "data": bin, required, bounded by WIRE_MAX_GOSSIP
 * and max_frame. */
static int decode_gossip(const msgpack_object *data,
                         const struct wire_limits *lim, struct wire_req *out,
                         const char **why)
{
    if (data == NULL) {
        *why = "missing data";
        return RK_EBAD_REQUEST;
    }
    if (data->type != MSGPACK_OBJECT_BIN) {
        *why = "data must be bin";
        return RK_EBAD_REQUEST;
    }
    if (data->via.bin.size > WIRE_MAX_GOSSIP ||
        data->via.bin.size > lim->max_frame) {
        *why = "gossip data too long";
        return RK_ETOO_LARGE;
    }
    out->data = data->via.bin.size ? (const uint8_t *)data->via.bin.ptr : NULL;
    out->data_len = data->via.bin.size;
    return 0;
}

/* An admin request's fields f[0..4) (cmd, arg, part, json). */
static int decode_admin(const struct wire_field *f, msgpack_zone *zone,
                        struct wire_req *out, const char **why)
{
    const msgpack_object *cmd = f[0].val, *arg = f[1].val;
    const msgpack_object *part = f[2].val, *json = f[3].val;
    if (cmd == NULL || cmd->type != MSGPACK_OBJECT_STR ||
        cmd->via.str.size == 0 || cmd->via.str.size > WIRE_MAX_ADMIN_CMD) {
        *why = "admin needs cmd: a string of 1..32 bytes";
        return RK_EBAD_REQUEST;
    }
    if (arg != NULL && (arg->type != MSGPACK_OBJECT_STR ||
                        arg->via.str.size > WIRE_MAX_ADMIN_ARG)) {
        *why = "arg must be a string of at most 300 bytes";
        return RK_EBAD_REQUEST;
    }
    if (part != NULL && (part->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
                         part->via.u64 > 65535)) {
        *why = "part must be an unsigned integer below 65536";
        return RK_EBAD_REQUEST;
    }
    if (json != NULL && json->type != MSGPACK_OBJECT_BOOLEAN) {
        *why = "json must be a boolean";
        return RK_EBAD_REQUEST;
    }
    /* They become C strings: an embedded NUL would cut them short. */
    if (memchr(cmd->via.str.ptr, 0, cmd->via.str.size) != NULL ||
        (arg != NULL && memchr(arg->via.str.ptr, 0, arg->via.str.size))) {
        *why = "cmd and arg must not contain NUL bytes";
        return RK_EBAD_REQUEST;
    }
    out->cmd = zstr(zone, cmd, WIRE_MAX_ADMIN_CMD);
    out->arg = arg != NULL ? zstr(zone, arg, WIRE_MAX_ADMIN_ARG) : "";
    if (out->cmd == NULL || out->arg == NULL) {
        *why = "out of memory";
        return -ENOMEM;
    }
    out->part = part != NULL ? (uint32_t)part->via.u64 : 0;
    out->json = json != NULL && json->via.boolean;
    return 0;
}

int wire_decode_req(const uint8_t *p, size_t n, const struct wire_limits *lim,
                    msgpack_zone *zone, struct wire_req *out, const char **why)
{
    static const struct wire_limits defaults = {
        WIRE_DEFAULT_MAX_FRAME, WIRE_DEFAULT_MAX_KEY, WIRE_DEFAULT_MAX_VALUE};
    struct wire_field f[WIRE_RQ_N] = {
        [WIRE_RQ_ID] = {"id", NULL},
        [WIRE_RQ_OP] = {"op", NULL},
        [WIRE_RQ_KEY] = {"key", NULL},
        [WIRE_RQ_VALUE] = {"value", NULL},
        [WIRE_RQ_CTX] = {"ctx", NULL},
        [WIRE_RQ_R] = {"r", NULL},
        [WIRE_RQ_W] = {"w", NULL},
        [WIRE_RQ_REC] = {"rec", NULL},
        [WIRE_RQ_TS] = {"ts", NULL},
        [WIRE_RQ_FLAGS] = {"flags", NULL},
        [WIRE_RQ_LOCAL] = {"local", NULL},
        [WIRE_RQ_FROM] = {"from", NULL},
        [WIRE_RQ_INC] = {"inc", NULL},
        [WIRE_RQ_SEQ] = {"seq", NULL},
        [WIRE_RQ_CLUSTER] = {"cluster", NULL},
        [WIRE_RQ_NODE] = {"node", NULL},
        [WIRE_RQ_NONCE] = {"nonce", NULL},
        [WIRE_RQ_MAC] = {"mac", NULL},
        [WIRE_RQ_DATA] = {"data", NULL},
        [WIRE_RQ_CMD] = {"cmd", NULL},
        [WIRE_RQ_ARG] = {"arg", NULL},
        [WIRE_RQ_PART] = {"part", NULL},
        [WIRE_RQ_JSON] = {"json", NULL},
    };
    const char *dummy;
    msgpack_object obj;

    if (why == NULL)
        why = &dummy;
    if (lim == NULL)
        lim = &defaults;
    memset(out, 0, sizeof(*out));
    int rc = unpack_frame(p, n, zone, &obj, why);
    if (rc != 0)
        return rc;
    rc = collect(&obj, f, WIRE_RQ_N, why);
    /* The id is taken even when the map is otherwise bad, so the error can
     * be answered by id. */
    const msgpack_object *id = f[WIRE_RQ_ID].val;
    if (id != NULL && id->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        out->id = id->via.u64;
    if (rc != 0)
        return rc;
    if (id == NULL) {
        *why = "missing id";
        return RK_EBAD_REQUEST;
    }
    if (id->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        *why = "id must be an unsigned integer";
        return RK_EBAD_REQUEST;
    }

    const msgpack_object *op = f[WIRE_RQ_OP].val;
    if (op == NULL) {
        *why = "missing op";
        return RK_EBAD_REQUEST;
    }
    if (op->type != MSGPACK_OBJECT_STR) {
        *why = "op must be a string";
        return RK_EBAD_REQUEST;
    }
    for (int i = WIRE_OP_NONE + 1; i < WIRE_OP_MAX; i++) {
        if (str_eq(op, wire_op_names[i])) {
            out->op = (enum wire_op)i;
            break;
        }
    }
    if (out->op == WIRE_OP_NONE) {
        *why = "unknown op";
        return RK_EUNKNOWN_OP;
    }

    const msgpack_object *key = f[WIRE_RQ_KEY].val;
    const msgpack_object *value = f[WIRE_RQ_VALUE].val;
    const msgpack_object *ctx = f[WIRE_RQ_CTX].val;
    if (key != NULL && !is_bytes(key)) {
        *why = "key must be bin or str";
        return RK_EBAD_REQUEST;
    }
    if (value != NULL && !is_bytes(value)) {
        *why = "value must be bin or str";
        return RK_EBAD_REQUEST;
    }
    if (ctx != NULL && ctx->type != MSGPACK_OBJECT_BIN) {
        *why = "ctx must be bin";
        return RK_EBAD_REQUEST;
    }
    rc = pack_quorum(f[WIRE_RQ_R].val, &out->r, why);
    if (rc == 0)
        rc = pack_quorum(f[WIRE_RQ_W].val, &out->w, why);
    if (rc != 0)
        return rc;
    const msgpack_object *rec = f[WIRE_RQ_REC].val;
    const msgpack_object *ts = f[WIRE_RQ_TS].val;
    const msgpack_object *flags = f[WIRE_RQ_FLAGS].val;
    const msgpack_object *local = f[WIRE_RQ_LOCAL].val;
    if (rec != NULL && rec->type != MSGPACK_OBJECT_BIN) {
        *why = "rec must be bin";
        return RK_EBAD_REQUEST;
    }
    if (ts != NULL && ts->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        *why = "ts must be an unsigned integer";
        return RK_EBAD_REQUEST;
    }
    if (flags != NULL && (flags->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
                          flags->via.u64 > UINT32_MAX)) {
        *why = "flags must be an unsigned 32-bit integer";
        return RK_EBAD_REQUEST;
    }
    if (local != NULL && local->type != MSGPACK_OBJECT_BOOLEAN) {
        *why = "local must be a boolean";
        return RK_EBAD_REQUEST;
    }
    if (out->op == WIRE_OP_RPUT) {
        if (rec == NULL) {
            *why = "missing rec";
            return RK_EBAD_REQUEST;
        }
        out->rec = (const uint8_t *)rec->via.bin.ptr;
        out->rec_len = rec->via.bin.size;
        if (out->rec_len > lim->max_frame) {
            *why = "rec too long";
            return RK_ETOO_LARGE;
        }
        out->ts = ts ? ts->via.u64 : 0;
    }
    if (op_is_fwd(out->op) && flags != NULL)
        out->flags = (uint32_t)flags->via.u64;
    const msgpack_object *from = f[WIRE_RQ_FROM].val;
    const msgpack_object *inc = f[WIRE_RQ_INC].val;
    const msgpack_object *seq = f[WIRE_RQ_SEQ].val;
    if ((from != NULL && (from->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
                          from->via.u64 > UINT32_MAX)) ||
        (inc != NULL && inc->type != MSGPACK_OBJECT_POSITIVE_INTEGER) ||
        (seq != NULL && seq->type != MSGPACK_OBJECT_POSITIVE_INTEGER)) {
        *why = "from, inc and seq must be unsigned integers";
        return RK_EBAD_REQUEST;
    }
    if (op_is_fwd(out->op) && seq != NULL) {
        out->seq = seq->via.u64;
        out->inc = inc ? inc->via.u64 : 0;
        out->from = from ? (uint32_t)from->via.u64 : 0;
    }
    if (out->op == WIRE_OP_GET && local != NULL)
        out->local = local->via.boolean;
    if ((out->op == WIRE_OP_HELLO || out->op == WIRE_OP_AUTH) &&
        (rc = decode_hello(&f[WIRE_RQ_CLUSTER], &out->hello, why)) != 0)
        return rc;
    if (out->op == WIRE_OP_GOSSIP &&
        (rc = decode_gossip(f[WIRE_RQ_DATA].val, lim, out, why)) != 0)
        return rc;
    if (out->op == WIRE_OP_ADMIN &&
        (rc = decode_admin(&f[WIRE_RQ_CMD], zone, out, why)) != 0)
        return rc;

    if (op_has_key(out->op)) {
        if (key == NULL) {
            *why = "missing key";
            return RK_EBAD_REQUEST;
        }
        get_bytes(key, &out->key, &out->key_len);
        if (out->key_len == 0) {
            *why = "empty key";
            return RK_EBAD_REQUEST;
        }
        if (out->key_len > lim->max_key) {
            *why = "key too long";
            return RK_ETOO_LARGE;
        }
    }
    if (op_has_value(out->op)) {
        if (value == NULL) {
            *why = "missing value";
            return RK_EBAD_REQUEST;
        }
        get_bytes(value, &out->value, &out->value_len);
        if (out->value_len > lim->max_value) {
            *why = "value too long";
            return RK_ETOO_LARGE;
        }
    }
    if (op_has_ctx(out->op) && ctx != NULL && ctx->via.bin.size > 0) {
        out->ctx = (const uint8_t *)ctx->via.bin.ptr;
        out->ctx_len = ctx->via.bin.size;
    }
    *why = NULL;
    return 0;
}

static int pack_key(msgpack_packer *pk, const char *k)
{
    return msgpack_pack_str_with_body(pk, k, strlen(k));
}

int wire_encode_req(struct wire_buf *b, const struct wire_req *req)
{
    size_t start;
    msgpack_packer pk;
    bool has_key = op_has_key(req->op);
    bool has_value = op_has_value(req->op);
    bool has_ctx = op_has_ctx(req->op) && req->ctx != NULL;
    bool has_rec = req->op == WIRE_OP_RPUT;
    bool has_flags = op_is_fwd(req->op) && req->flags != 0;
    bool has_local = req->op == WIRE_OP_GET && req->local;
    bool has_seq = op_is_fwd(req->op) && req->seq != 0;
    bool has_data = req->op == WIRE_OP_GOSSIP;
    bool has_admin = req->op == WIRE_OP_ADMIN;
    size_t nf = 2 + has_key + has_value + has_ctx + (req->r != 0) +
                (req->w != 0) + 2 * has_rec + has_flags + has_local +
                3 * has_seq + hello_count(&req->hello) + has_data +
                4 * has_admin;

    int rc = wire_frame_begin(b, &start);
    if (rc != 0)
        return rc;
    wire_packer_init(&pk, b);
    rc |= msgpack_pack_map(&pk, nf);
    rc |= pack_key(&pk, "id");
    rc |= msgpack_pack_uint64(&pk, req->id);
    rc |= pack_key(&pk, "op");
    rc |= pack_key(&pk, wire_op_name(req->op));
    if (has_key) {
        rc |= pack_key(&pk, "key");
        rc |= msgpack_pack_bin_with_body(&pk, req->key, req->key_len);
    }
    if (has_value) {
        rc |= pack_key(&pk, "value");
        rc |= msgpack_pack_bin_with_body(&pk, req->value, req->value_len);
    }
    if (has_ctx) {
        rc |= pack_key(&pk, "ctx");
        rc |= msgpack_pack_bin_with_body(&pk, req->ctx, req->ctx_len);
    }
    if (req->r != 0) {
        rc |= pack_key(&pk, "r");
        rc |= msgpack_pack_uint8(&pk, req->r);
    }
    if (req->w != 0) {
        rc |= pack_key(&pk, "w");
        rc |= msgpack_pack_uint8(&pk, req->w);
    }
    if (has_rec) {
        rc |= pack_key(&pk, "rec");
        rc |= msgpack_pack_bin_with_body(&pk, req->rec, req->rec_len);
        rc |= pack_key(&pk, "ts");
        rc |= msgpack_pack_uint64(&pk, req->ts);
    }
    if (has_flags) {
        rc |= pack_key(&pk, "flags");
        rc |= msgpack_pack_uint32(&pk, req->flags);
    }
    if (has_local) {
        rc |= pack_key(&pk, "local");
        rc |= msgpack_pack_true(&pk);
    }
    if (has_seq) {
        rc |= pack_key(&pk, "from");
        rc |= msgpack_pack_uint32(&pk, req->from);
        rc |= pack_key(&pk, "inc");
        rc |= msgpack_pack_uint64(&pk, req->inc);
        rc |= pack_key(&pk, "seq");
        rc |= msgpack_pack_uint64(&pk, req->seq);
    }
    rc |= pack_hello(&pk, &req->hello);
    if (has_data) {
        rc |= pack_key(&pk, "data");
        rc |= msgpack_pack_bin_with_body(&pk, req->data, req->data_len);
    }
    if (has_admin) {
        const char *cmd = req->cmd ? req->cmd : "";
        const char *arg = req->arg ? req->arg : "";
        rc |= pack_key(&pk, "cmd");
        rc |= msgpack_pack_str_with_body(&pk, cmd,
                                         strnlen(cmd, WIRE_MAX_ADMIN_CMD));
        rc |= pack_key(&pk, "arg");
        rc |= msgpack_pack_str_with_body(&pk, arg,
                                         strnlen(arg, WIRE_MAX_ADMIN_ARG));
        rc |= pack_key(&pk, "part");
        rc |= msgpack_pack_uint32(&pk, req->part);
        rc |= pack_key(&pk, "json");
        rc |= req->json ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
    }
    if (rc != 0) {
        b->len = start;
        return -ENOMEM;
    }
    wire_frame_end(b, start);
    return 0;
}

/* ---- responses --------------------------------------------------------- */

enum {
    WIRE_RS_ID,
    WIRE_RS_OK,
    WIRE_RS_CODE,
    WIRE_RS_MSG,
    WIRE_RS_DEFINITE,
    WIRE_RS_VALUES,
    WIRE_RS_CTX,
    WIRE_RS_STATS,
    WIRE_RS_REC,
    WIRE_RS_MEMBERS,
    WIRE_RS_Q,
    WIRE_RS_NVAL,
    WIRE_RS_PREF,
    WIRE_RS_ACKS,
    WIRE_RS_EXISTED,
    WIRE_RS_CLUSTER, /* the handshake fields, in decode_hello's order */
    WIRE_RS_NODE,
    WIRE_RS_NONCE,
    WIRE_RS_MAC,
    WIRE_RS_TEXT,
    WIRE_RS_N
};

int wire_encode_resp(struct wire_buf *b, const struct wire_resp *resp)
{
    size_t start;
    msgpack_packer pk;
    bool is_err = resp->err != 0;
    bool has_values = !is_err && resp->op == WIRE_OP_GET;
    bool has_ctx = !is_err && (resp->op == WIRE_OP_GET ||
                               (op_has_ctx(resp->op) && resp->ctx));
    bool has_stats = !is_err && resp->op == WIRE_OP_STATS;
    bool has_rec = !is_err && resp->op == WIRE_OP_RGET && resp->rec != NULL;
    bool has_members =
        !is_err && (resp->op == WIRE_OP_MEMBERS || resp->op == WIRE_OP_RING);
    bool has_ring = !is_err && resp->op == WIRE_OP_RING;
    bool has_acks = resp->acks != 0;
    bool has_existed = !is_err && resp->existed;
    bool has_text = !is_err && resp->op == WIRE_OP_ADMIN;
    size_t nf = 2 + (is_err ? 3 : 0) + has_values + has_ctx + has_stats +
                has_rec + has_members + 3 * has_ring + has_acks + has_existed +
                hello_count(&resp->hello) + has_text;

    int rc = wire_frame_begin(b, &start);
    if (rc != 0)
        return rc;
    wire_packer_init(&pk, b);
    rc |= msgpack_pack_map(&pk, nf);
    rc |= pack_key(&pk, "id");
    rc |= msgpack_pack_uint64(&pk, resp->id);
    rc |= pack_key(&pk, "ok");
    rc |= is_err ? msgpack_pack_false(&pk) : msgpack_pack_true(&pk);
    if (is_err) {
        const char *msg = resp->msg ? resp->msg : rk_err_msg(resp->err);
        rc |= pack_key(&pk, "code");
        rc |= pack_key(&pk, rk_err_code(resp->err));
        rc |= pack_key(&pk, "msg");
        rc |= msgpack_pack_str_with_body(&pk, msg, strnlen(msg, WIRE_MAX_MSG));
        rc |= pack_key(&pk, "definite");
        rc |= resp->definite ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
    }
    if (has_values) {
        rc |= pack_key(&pk, "values");
        rc |= msgpack_pack_array(&pk, resp->nvalues);
        for (uint32_t i = 0; i < resp->nvalues; i++)
            rc |= msgpack_pack_bin_with_body(&pk, resp->values[i].data,
                                             resp->values[i].len);
    }
    if (has_ctx) {
        rc |= pack_key(&pk, "ctx");
        rc |= msgpack_pack_bin_with_body(&pk, resp->ctx,
                                         resp->ctx ? resp->ctx_len : 0);
    }
    if (has_rec) {
        rc |= pack_key(&pk, "rec");
        rc |= msgpack_pack_bin_with_body(&pk, resp->rec, resp->rec_len);
    }
    if (has_members) {
        rc |= pack_key(&pk, "members");
        rc |= msgpack_pack_array(&pk, resp->nmembers);
        for (uint32_t i = 0; i < resp->nmembers; i++) {
            const struct wire_member *m = &resp->members[i];
            rc |= msgpack_pack_array(&pk, 4);
            rc |= pack_key(&pk, m->id);
            rc |= pack_key(&pk, m->addr);
            rc |= m->up ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
            rc |= m->self ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
        }
    }
    if (has_ring) {
        rc |= pack_key(&pk, "q");
        rc |= msgpack_pack_uint32(&pk, resp->q);
        rc |= pack_key(&pk, "nval");
        rc |= msgpack_pack_uint32(&pk, resp->nval);
        rc |= pack_key(&pk, "pref");
        rc |= msgpack_pack_array(&pk, resp->q);
        for (uint32_t p = 0; p < resp->q; p++) {
            rc |= msgpack_pack_array(&pk, resp->nval);
            for (uint32_t j = 0; j < resp->nval; j++)
                rc |= msgpack_pack_uint16(&pk, resp->pref[p * resp->nval + j]);
        }
    }
    if (has_acks) {
        rc |= pack_key(&pk, "acks");
        rc |= msgpack_pack_uint32(&pk, resp->acks);
    }
    if (has_existed) {
        rc |= pack_key(&pk, "existed");
        rc |= msgpack_pack_true(&pk);
    }
    if (has_stats) {
        rc |= pack_key(&pk, "stats");
        rc |= msgpack_pack_map(&pk, resp->nstats);
        for (uint32_t i = 0; i < resp->nstats; i++) {
            const struct wire_stat *st = &resp->stats[i];
            rc |= pack_key(&pk, st->name);
            if (st->sval != NULL)
                rc |= pack_key(&pk, st->sval);
            else
                rc |= msgpack_pack_int64(&pk, st->ival);
        }
    }
    rc |= pack_hello(&pk, &resp->hello);
    if (has_text) {
        const char *t = resp->text ? resp->text : "";
        rc |= pack_key(&pk, "text");
        rc |= msgpack_pack_str_with_body(&pk, t, strlen(t));
    }
    if (rc != 0) {
        b->len = start;
        return -ENOMEM;
    }
    wire_frame_end(b, start);
    return 0;
}

static int decode_values(const msgpack_object *o, msgpack_zone *zone,
                         struct wire_resp *out, const char **why)
{
    if (o->type != MSGPACK_OBJECT_ARRAY) {
        *why = "values must be an array";
        return RK_EBAD_REQUEST;
    }
    uint32_t nv = o->via.array.size;
    if (nv > WIRE_MAX_VALUES) {
        *why = "too many values";
        return RK_EBAD_REQUEST;
    }
    if (nv == 0)
        return 0;
    struct wire_value *v = msgpack_zone_malloc(zone, nv * sizeof(*v));
    if (v == NULL) {
        *why = "out of memory";
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < nv; i++) {
        const msgpack_object *e = &o->via.array.ptr[i];
        if (e->type != MSGPACK_OBJECT_BIN) {
            *why = "each value must be bin";
            return RK_EBAD_REQUEST;
        }
        v[i].data = (const uint8_t *)e->via.bin.ptr;
        v[i].len = e->via.bin.size;
    }
    out->values = v;
    out->nvalues = nv;
    return 0;
}

static int decode_stats(const msgpack_object *o, msgpack_zone *zone,
                        struct wire_resp *out, const char **why)
{
    if (o->type != MSGPACK_OBJECT_MAP) {
        *why = "stats must be a map";
        return RK_EBAD_REQUEST;
    }
    uint32_t ns = o->via.map.size;
    if (ns > WIRE_MAX_STATS) {
        *why = "too many stats";
        return RK_EBAD_REQUEST;
    }
    if (ns == 0)
        return 0;
    struct wire_stat *s = msgpack_zone_malloc(zone, ns * sizeof(*s));
    if (s == NULL) {
        *why = "out of memory";
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < ns; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        s[i].sval = NULL;
        s[i].ival = 0;
        if (kv->key.type != MSGPACK_OBJECT_STR) {
            *why = "stat names must be strings";
            return RK_EBAD_REQUEST;
        }
        switch (kv->val.type) {
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
            if (kv->val.via.u64 > INT64_MAX) {
                *why = "stat value out of range";
                return RK_EBAD_REQUEST;
            }
            s[i].ival = (int64_t)kv->val.via.u64;
            break;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
            s[i].ival = kv->val.via.i64;
            break;
        case MSGPACK_OBJECT_STR:
            s[i].sval = zstr(zone, &kv->val, UINT32_MAX);
            if (s[i].sval == NULL) {
                *why = "out of memory";
                return -ENOMEM;
            }
            break;
        default:
            *why = "stat values must be integers or strings";
            return RK_EBAD_REQUEST;
        }
        s[i].name = zstr(zone, &kv->key, UINT32_MAX);
        if (s[i].name == NULL) {
            *why = "out of memory";
            return -ENOMEM;
        }
    }
    out->stats = s;
    out->nstats = ns;
    return 0;
}

static bool is_uint(const msgpack_object *o, uint64_t max)
{
    return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= max;
}

static int decode_members(const msgpack_object *o, msgpack_zone *zone,
                          struct wire_resp *out, const char **why)
{
    if (o->type != MSGPACK_OBJECT_ARRAY ||
        o->via.array.size > WIRE_MAX_MEMBERS) {
        *why = "members must be an array of at most 256 entries";
        return RK_EBAD_REQUEST;
    }
    uint32_t nm = o->via.array.size;
    if (nm == 0)
        return 0;
    struct wire_member *m = msgpack_zone_malloc(zone, nm * sizeof(*m));
    if (m == NULL) {
        *why = "out of memory";
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < nm; i++) {
        const msgpack_object *e = &o->via.array.ptr[i];
        if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 4 ||
            e->via.array.ptr[0].type != MSGPACK_OBJECT_STR ||
            e->via.array.ptr[1].type != MSGPACK_OBJECT_STR ||
            e->via.array.ptr[2].type != MSGPACK_OBJECT_BOOLEAN ||
            e->via.array.ptr[3].type != MSGPACK_OBJECT_BOOLEAN) {
            *why = "a member is [id, addr, up, self]";
            return RK_EBAD_REQUEST;
        }
        m[i].id = zstr(zone, &e->via.array.ptr[0], 255);
        m[i].addr = zstr(zone, &e->via.array.ptr[1], 255);
        if (m[i].id == NULL || m[i].addr == NULL) {
            *why = "out of memory";
            return -ENOMEM;
        }
        m[i].up = e->via.array.ptr[2].via.boolean;
        m[i].self = e->via.array.ptr[3].via.boolean;
    }
    out->members = m;
    out->nmembers = nm;
    return 0;
}

/* rec, members, q/nval/pref and acks. */
static int decode_cluster(const struct wire_field *f, msgpack_zone *zone,
                          struct wire_resp *out, const char **why)
{
    const msgpack_object *rec = f[WIRE_RS_REC].val;
    const msgpack_object *q = f[WIRE_RS_Q].val;
    const msgpack_object *nval = f[WIRE_RS_NVAL].val;
    const msgpack_object *pref = f[WIRE_RS_PREF].val;
    const msgpack_object *acks = f[WIRE_RS_ACKS].val;
    const msgpack_object *existed = f[WIRE_RS_EXISTED].val;
    int rc;

    if (existed != NULL) {
        if (existed->type != MSGPACK_OBJECT_BOOLEAN) {
            *why = "existed must be a boolean";
            return RK_EBAD_REQUEST;
        }
        out->existed = existed->via.boolean;
    }
    if (rec != NULL) {
        if (rec->type != MSGPACK_OBJECT_BIN) {
            *why = "rec must be bin";
            return RK_EBAD_REQUEST;
        }
        out->rec = (const uint8_t *)rec->via.bin.ptr;
        out->rec_len = rec->via.bin.size;
    }
    if (acks != NULL) {
        if (!is_uint(acks, UINT32_MAX)) {
            *why = "acks must be an unsigned integer";
            return RK_EBAD_REQUEST;
        }
        out->acks = (uint32_t)acks->via.u64;
    }
    if (f[WIRE_RS_MEMBERS].val != NULL &&
        (rc = decode_members(f[WIRE_RS_MEMBERS].val, zone, out, why)))
        return rc;
    if (q == NULL && nval == NULL && pref == NULL)
        return 0;
    if (q == NULL || nval == NULL || pref == NULL || !is_uint(q, 65536) ||
        !is_uint(nval, WIRE_MAX_PREF) || pref->type != MSGPACK_OBJECT_ARRAY ||
        pref->via.array.size != q->via.u64) {
        *why = "ring needs q, nval and q preference lists";
        return RK_EBAD_REQUEST;
    }
    out->q = (uint32_t)q->via.u64;
    out->nval = (uint32_t)nval->via.u64;
    if (out->q == 0 || out->nval == 0)
        return 0;
    uint16_t *pl =
        msgpack_zone_malloc(zone, (size_t)out->q * out->nval * sizeof(*pl));
    if (pl == NULL) {
        *why = "out of memory";
        return -ENOMEM;
    }
    for (uint32_t p = 0; p < out->q; p++) {
        const msgpack_object *row = &pref->via.array.ptr[p];
        if (row->type != MSGPACK_OBJECT_ARRAY ||
            row->via.array.size != out->nval) {
            *why = "each preference list has nval entries";
            return RK_EBAD_REQUEST;
        }
        for (uint32_t j = 0; j < out->nval; j++) {
            const msgpack_object *e = &row->via.array.ptr[j];
            if (!is_uint(e, WIRE_NO_MEMBER) ||
                (e->via.u64 != WIRE_NO_MEMBER && e->via.u64 >= out->nmembers)) {
                *why = "preference list entry is not a member index";
                return RK_EBAD_REQUEST;
            }
            pl[p * out->nval + j] = (uint16_t)e->via.u64;
        }
    }
    out->pref = pl;
    return 0;
}

int wire_decode_resp(const uint8_t *p, size_t n, msgpack_zone *zone,
                     struct wire_resp *out, const char **why)
{
    struct wire_field f[WIRE_RS_N] = {
        [WIRE_RS_ID] = {"id", NULL},
        [WIRE_RS_OK] = {"ok", NULL},
        [WIRE_RS_CODE] = {"code", NULL},
        [WIRE_RS_MSG] = {"msg", NULL},
        [WIRE_RS_DEFINITE] = {"definite", NULL},
        [WIRE_RS_VALUES] = {"values", NULL},
        [WIRE_RS_CTX] = {"ctx", NULL},
        [WIRE_RS_STATS] = {"stats", NULL},
        [WIRE_RS_REC] = {"rec", NULL},
        [WIRE_RS_MEMBERS] = {"members", NULL},
        [WIRE_RS_Q] = {"q", NULL},
        [WIRE_RS_NVAL] = {"nval", NULL},
        [WIRE_RS_PREF] = {"pref", NULL},
        [WIRE_RS_ACKS] = {"acks", NULL},
        [WIRE_RS_EXISTED] = {"existed", NULL},
        [WIRE_RS_CLUSTER] = {"cluster", NULL},
        [WIRE_RS_NODE] = {"node", NULL},
        [WIRE_RS_NONCE] = {"nonce", NULL},
        [WIRE_RS_MAC] = {"mac", NULL},
        [WIRE_RS_TEXT] = {"text", NULL},
    };
    const char *dummy;
    msgpack_object obj;

    if (why == NULL)
        why = &dummy;
    memset(out, 0, sizeof(*out));
    int rc = unpack_frame(p, n, zone, &obj, why);
    if (rc == 0)
        rc = collect(&obj, f, WIRE_RS_N, why);
    if (rc != 0)
        return rc;

    const msgpack_object *id = f[WIRE_RS_ID].val;
    const msgpack_object *ok = f[WIRE_RS_OK].val;
    const msgpack_object *code = f[WIRE_RS_CODE].val;
    const msgpack_object *msg = f[WIRE_RS_MSG].val;
    const msgpack_object *definite = f[WIRE_RS_DEFINITE].val;
    const msgpack_object *ctx = f[WIRE_RS_CTX].val;
    if (id == NULL || id->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        *why = "id must be present and an unsigned integer";
        return RK_EBAD_REQUEST;
    }
    out->id = id->via.u64;
    if (ok == NULL || ok->type != MSGPACK_OBJECT_BOOLEAN) {
        *why = "ok must be present and a boolean";
        return RK_EBAD_REQUEST;
    }
    if ((code != NULL && code->type != MSGPACK_OBJECT_STR) ||
        (msg != NULL && msg->type != MSGPACK_OBJECT_STR)) {
        *why = "code and msg must be strings";
        return RK_EBAD_REQUEST;
    }
    if (definite != NULL && definite->type != MSGPACK_OBJECT_BOOLEAN) {
        *why = "definite must be a boolean";
        return RK_EBAD_REQUEST;
    }
    if (ctx != NULL && ctx->type != MSGPACK_OBJECT_BIN) {
        *why = "ctx must be bin";
        return RK_EBAD_REQUEST;
    }
    if (!ok->via.boolean) {
        if (code == NULL) {
            *why = "error response without code";
            return RK_EBAD_REQUEST;
        }
        out->err = rk_err_from_code(code->via.str.ptr, code->via.str.size);
        out->definite = definite != NULL && definite->via.boolean;
        if (msg != NULL) {
            out->msg = zstr(zone, msg, WIRE_MAX_MSG);
            if (out->msg == NULL) {
                *why = "out of memory";
                return -ENOMEM;
            }
        }
    }
    if (f[WIRE_RS_VALUES].val != NULL) {
        rc = decode_values(f[WIRE_RS_VALUES].val, zone, out, why);
        if (rc != 0)
            return rc;
    }
    if (f[WIRE_RS_STATS].val != NULL) {
        rc = decode_stats(f[WIRE_RS_STATS].val, zone, out, why);
        if (rc != 0)
            return rc;
    }
    if (ctx != NULL && ctx->via.bin.size > 0) {
        out->ctx = (const uint8_t *)ctx->via.bin.ptr;
        out->ctx_len = ctx->via.bin.size;
    }
    rc = decode_cluster(f, zone, out, why);
    if (rc == 0)
        rc = decode_hello(&f[WIRE_RS_CLUSTER], &out->hello, why);
    if (rc != 0)
        return rc;
    const msgpack_object *text = f[WIRE_RS_TEXT].val;
    if (text != NULL) {
        if (text->type != MSGPACK_OBJECT_STR) {
            *why = "text must be a string";
            return RK_EBAD_REQUEST;
        }
        out->text = zstr(zone, text, text->via.str.size);
        if (out->text == NULL) {
            *why = "out of memory";
            return -ENOMEM;
        }
    }
    *why = NULL;
    return 0;
}
