/*
 * wire.h - ringkv's native wire codec: framing, structural pre-validation,
 * and encode/decode of requests and responses. Shared by the node (server
 * side) and the client library; docs/protocol.md is the normative spec.
 *
 *   frame := u32 big-endian length L | L bytes holding exactly one msgpack
 *            value (a map with string keys, see docs/protocol.md)
 *
 * Untrusted bytes never reach msgpack-c before wire_prevalidate() has walked
 * them: msgpack-c 4.0 reserves memory for a container's *declared* count, so
 * a 5-byte header could make it allocate half a gigabyte. The pre-validator
 * checks that every declared count and length fits in the bytes that remain
 * and bounds the nesting depth, without allocating.
 *
 * Decoded requests and responses borrow: their pointers point into the frame
 * bytes (and, for arrays, into the caller's msgpack_zone), so they live as
 * long as both do.
 */
#ifndef RINGKV_WIRE_H
#define RINGKV_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "proto/errors.h"

#define WIRE_HDR_LEN    4
#define WIRE_MAX_DEPTH  8   /* our messages nest at most 4 deep */
#define WIRE_MAX_VALUES 256 /* values in one get response */
#define WIRE_MAX_STATS  256 /* entries in one stats response */
#define WIRE_MAX_MSG    512 /* bytes of an error message kept */

/* ---- growable output buffer ------------------------------------------ */

struct wire_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
};

/* Zero-initialised is a valid empty buffer; wire_buf_init() sets that. */
void wire_buf_init(struct wire_buf *b);
/* Frees the storage; the buffer is empty and reusable afterwards. */
void wire_buf_free(struct wire_buf *b);
/* Ensures room for extra more bytes. Returns 0 or -ENOMEM (b unchanged). */
int wire_buf_reserve(struct wire_buf *b, size_t extra);
/* Appends n bytes. Returns 0 or -ENOMEM. */
int wire_buf_append(struct wire_buf *b, const void *p, size_t n);
/* Drops the first n bytes (n <= len), keeping the rest. */
void wire_buf_consume(struct wire_buf *b, size_t n);

/* A msgpack_packer that appends to b (msgpack_packer_init with a write
 * callback). Packing fails (returns -1) only when memory runs out. */
void wire_packer_init(msgpack_packer *pk, struct wire_buf *b);

/* Frames: wire_frame_begin() reserves the 4-byte header and returns its
 * offset; pack one msgpack value; wire_frame_end() writes the length.
 * Returns 0 or -ENOMEM. */
int wire_frame_begin(struct wire_buf *b, size_t *start);
void wire_frame_end(struct wire_buf *b, size_t start);

/* ---- framing and pre-validation --------------------------------------- */

/* Reads the body length from a 4-byte header into *len. Returns 0;
 * RK_ETOO_LARGE when it exceeds max_frame (*len says by how much, so the
 * frame can be skipped); RK_EBAD_REQUEST when it is 0. */
int wire_frame_len(const uint8_t hdr[WIRE_HDR_LEN], uint32_t max_frame,
                   uint32_t *len);

/* Walks p[0..n) without allocating and checks that it holds exactly one
 * msgpack value: every str/bin/ext length and every array/map count fits in
 * the bytes that remain (each element needs at least one byte), nesting is
 * at most max_depth (<= 64) deep, no reserved byte (0xc1) appears, and
 * nothing trails the value. Returns 0, or RK_EBAD_REQUEST with *why set to a
 * static string naming the problem. */
int wire_prevalidate(const uint8_t *p, size_t n, unsigned max_depth,
                     const char **why);

/* Bytes of a frame body that wire_peek_id() needs at most. */
#define WIRE_PEEK_LEN 17

/* Reads the id of a message whose body starts at p (n bytes of it, maybe
 * not all) without decoding the rest: ringkv's encoders write "id" as the
 * first key. Returns 0 with *id set, or RK_EBAD_REQUEST when the first
 * bytes are not a map whose first entry is "id": <uint>. */
int wire_peek_id(const uint8_t *p, size_t n, uint64_t *id);

/* Skipping a frame whose header announced len body bytes, over max_frame,
 * with avail of them buffered at body: returns -EAGAIN until WIRE_PEEK_LEN
 * bytes (or the whole frame) are buffered; then 0 with *take the bytes to
 * consume now, *rest those to discard as they arrive, and *id the frame's
 * id (wire_peek_id), or 0 when it cannot be read. */
int wire_skip_begin(const uint8_t *body, size_t avail, uint32_t len,
                    size_t *take, uint64_t *rest, uint64_t *id);

/* ---- frame splitting --------------------------------------------------- */

/* What wire_split_next() found at the cursor. */
enum wire_split {
    WIRE_SPLIT_MORE = 0, /* no whole frame yet: f->need bytes from *off */
    WIRE_SPLIT_FRAME,    /* f->body, f->len: one whole frame */
    WIRE_SPLIT_SKIPPED,  /* an oversized frame (f->len, id f->id) skipped */
    WIRE_SPLIT_BAD       /* f->err: the stream cannot be framed any more */
};

struct wire_frame {
    const uint8_t *body; /* WIRE_SPLIT_FRAME: borrowed from the buffer */
    uint32_t len;        /* the header's length (all but MORE) */
    uint64_t id;         /* WIRE_SPLIT_SKIPPED: the frame's id, or 0 */
    int err;             /* WIRE_SPLIT_BAD: RK_ETOO_LARGE, RK_EBAD_REQUEST */
    size_t need;         /* WIRE_SPLIT_MORE: bytes wanted from *off */
};

/* The one frame splitter of node and client. Looks at buf[*off..n): first
 * discards what *skip says is left of a skipped frame, then finds the next
 * frame and advances *off past it (or past what of a skipped frame is
 * buffered). A frame over max_frame is skipped (wire_skip_begin: *skip
 * gets the bytes still to come) when skip_large, else it is BAD; BAD and
 * MORE leave *off at the frame's header. Never allocates; the caller
 * consumes buf[0..*off) when done. */
enum wire_split wire_split_next(const uint8_t *buf, size_t n, size_t *off,
                                uint32_t max_frame, bool skip_large,
                                uint64_t *skip, struct wire_frame *f);

/* ---- messages ---------------------------------------------------------- */

enum wire_op {
    WIRE_OP_NONE = 0,
    WIRE_OP_GET,   /* "get"   */
    WIRE_OP_PUT,   /* "put"   */
    WIRE_OP_DEL,   /* "del"   */
    WIRE_OP_PING,  /* "ping"  */
    WIRE_OP_STATS, /* "stats" */
    /* replication: node to node */
    WIRE_OP_RPUT, /* "rput": store (merge) a replica's record */
    WIRE_OP_RGET, /* "rget": read a replica's record */
    WIRE_OP_FPUT, /* "fput": a put forwarded to a replica to coordinate */
    WIRE_OP_FDEL, /* "fdel": a del forwarded likewise */
    /* cluster introspection */
    WIRE_OP_RING,    /* "ring": partitions -> preference lists */
    WIRE_OP_MEMBERS, /* "members": the member table */
    /* the peer handshake (docs/protocol.md): node to node, first */
    WIRE_OP_HELLO, /* "hello": cluster name, node id, nonce */
    WIRE_OP_AUTH,  /* "auth": the dialer's proof */
    /* membership: node to node, one-way (answered with a plain ok) */
    WIRE_OP_GOSSIP, /* "gossip": one opaque payload for the member layer */
    /* membership administration: clients (join, leave, remove, members,
     * transfers) and peers (leave_req, remove_req, xfer_done) */
    WIRE_OP_ADMIN, /* "admin": cmd, arg, part, json -> text */
    WIRE_OP_MAX
};

/* The wire name of op ("get", ...), or "?" for an invalid op. */
const char *wire_op_name(enum wire_op op);

struct wire_limits {
    uint32_t max_frame; /* body bytes */
    uint32_t max_key;   /* bytes; keys are 1..max_key long */
    uint32_t max_value; /* bytes */
};

/* Sizes used when no configuration says otherwise. */
#define WIRE_DEFAULT_MAX_FRAME (8u << 20)
#define WIRE_DEFAULT_MAX_KEY   500u
#define WIRE_DEFAULT_MAX_VALUE (4u << 20)

/* The largest gossip payload ("data" of a gossip request): 1.5 MiB, the
 * member layer's largest message (gossip/gossip.h GOSSIP_MSG_MAX: a 1 MiB
 * cluster state plus 512 KiB for the member table; keep the two equal).
 * A payload is also refused when it exceeds the limits' max_frame. */
#define WIRE_MAX_GOSSIP ((1u << 20) + (512u << 10))

#define WIRE_MAX_ADMIN_CMD 32  /* bytes of an admin command name */
#define WIRE_MAX_ADMIN_ARG 300 /* bytes of its argument */

/* The peer handshake's fields (hello and auth requests, the hello
 * response); each NULL when absent. Strings are not NUL-terminated. */
struct wire_hello {
    const uint8_t *cluster; /* str: the cluster name */
    uint32_t cluster_len;
    const uint8_t *node; /* str: the sender's node id */
    uint32_t node_len;
    const uint8_t *nonce; /* bin: the sender's nonce */
    uint32_t nonce_len;
    const uint8_t *mac; /* bin: the sender's proof */
    uint32_t mac_len;
};

struct wire_req {
    uint64_t id;
    enum wire_op op;
    const uint8_t *key; /* get, put, del */
    uint32_t key_len;
    const uint8_t *value; /* put */
    uint32_t value_len;
    const uint8_t *ctx; /* put, del: opaque causal context; NULL if none */
    uint32_t ctx_len;
    uint8_t r, w;       /* requested quorum; 0 = the node's default */
    const uint8_t *rec; /* rput: an encoded record (quorum/dvv.h) */
    uint32_t rec_len;
    uint64_t ts;    /* rput: the newest write timestamp in rec (HLC) */
    uint32_t flags; /* fput, fdel: WIRE_F_* */
    bool local;     /* get: this node's copy only, no coordination */
    /* fput, fdel: who forwarded it (member index), that process's random
     * incarnation and its sequence number for forwards; seq 0 = absent.
     * The coordinating replica applies each (from, inc, seq) at most once. */
    uint32_t from;
    uint64_t inc, seq;
    struct wire_hello hello; /* hello, auth */
    /* gossip: the payload (bin, 0..min(WIRE_MAX_GOSSIP, max_frame)
     * bytes), opaque to the codec; NULL when empty */
    const uint8_t *data;
    uint32_t data_len;
    /* admin: command (str, 1..WIRE_MAX_ADMIN_CMD bytes, required), its
     * argument (str, 0..WIRE_MAX_ADMIN_ARG bytes), a partition (uint,
     * < 65536) and whether the answer should be JSON. Decoded strings are
     * NUL-terminated copies in the zone; cmd and arg are NULL when absent
     * on encode. */
    const char *cmd;
    const char *arg;
    uint32_t part;
    bool json;
};

#define WIRE_F_OVERWRITE 0x1u /* supersede every stored version (RESP) */

#define WIRE_MAX_MEMBERS 256 /* entries of a members / ring response */
#define WIRE_MAX_PREF    16  /* preference list length in a ring response */
#define WIRE_NO_MEMBER   0xffffu

/* Decodes one request body (already framed). Pre-validates, unpacks into
 * zone (the caller clears or destroys it when done with *out), then checks
 * every field: "id" (uint, required), "op" (known string), "key" (bin or
 * str, 1..max_key bytes, required for get/put/del), "value" (bin or str,
 * <= max_value, required for put), "ctx" (bin), "r"/"w" (uint 1..255),
 * "data" (gossip: bin, required, at most WIRE_MAX_GOSSIP and max_frame
 * bytes, else RK_ETOO_LARGE).
 * Unknown keys are ignored (forward compatibility).
 *
 * Returns 0; or an error with *why set to a static string:
 *   RK_EBAD_REQUEST  structure or field types wrong
 *   RK_EUNKNOWN_OP   op string not known (out->id is valid)
 *   RK_ETOO_LARGE    key or value over the limit (out->id is valid)
 * out->id is 0 when the id itself could not be read. */
int wire_decode_req(const uint8_t *p, size_t n, const struct wire_limits *lim,
                    msgpack_zone *zone, struct wire_req *out, const char **why);

/* Appends one framed request. Returns 0 or -ENOMEM. */
int wire_encode_req(struct wire_buf *b, const struct wire_req *req);

struct wire_value {
    const uint8_t *data;
    uint32_t len;
};

struct wire_stat {
    const char *name; /* NUL-terminated */
    const char *sval; /* string value, or NULL for the integer ival */
    int64_t ival;
};

struct wire_member {
    const char *id;   /* NUL-terminated */
    const char *addr; /* "host:port", NUL-terminated */
    bool up;          /* the answering node has a live connection to it */
    bool self;        /* it is the answering node */
};

struct wire_resp {
    uint64_t id;
    enum wire_op op; /* which payload fields are meaningful (not on wire) */
    int err;         /* 0 = ok, else an RK_E* / -errno code */
    bool definite;   /* err: true when nothing was applied */
    const char *msg; /* err: message (NUL-terminated), NULL = default */
    /* get: live values (siblings); empty means not found */
    const struct wire_value *values;
    uint32_t nvalues;
    /* get, put, del: causal context covering what was read / written */
    const uint8_t *ctx;
    uint32_t ctx_len;
    /* stats */
    const struct wire_stat *stats;
    uint32_t nstats;
    /* rget: the replica's record; NULL when it has none */
    const uint8_t *rec;
    uint32_t rec_len;
    /* members, ring: the member table */
    const struct wire_member *members;
    uint32_t nmembers;
    /* ring: q partitions, each with nval member indices (into members;
     * WIRE_NO_MEMBER pads lists shorter than nval), row-major */
    uint32_t q;
    uint32_t nval;
    const uint16_t *pref;
    /* put, del, fput, fdel: the write reached fewer than w replicas */
    uint32_t acks;
    /* put, del, fput, fdel: the key had a live value before the write */
    bool existed;
    /* hello: the acceptor's node id, nonce and proof */
    struct wire_hello hello;
    /* admin: the answer (NUL-terminated; human text or JSON) */
    const char *text;
};

/* Appends one framed response. Returns 0 or -ENOMEM. */
int wire_encode_resp(struct wire_buf *b, const struct wire_resp *resp);

/* Decodes one response body (client side; the server is untrusted too).
 * Responses do not name their op, so every field present is decoded and
 * out->op is WIRE_OP_NONE. Arrays (values, stats) and strings are allocated
 * in zone or borrowed from p. Returns 0 or RK_EBAD_REQUEST with *why set. */
int wire_decode_resp(const uint8_t *p, size_t n, msgpack_zone *zone,
                     struct wire_resp *out, const char **why);

#endif
