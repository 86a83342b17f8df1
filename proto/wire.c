/*
 * wire.c - the byte layer of ringkv's native protocol: the growable output
 * buffer, the msgpack packer that appends to it, length-prefixed framing,
 * and the structural pre-validator that stands in front of msgpack-c.
 * Message encode/decode lives in wire_msg.c.
 *
 *   frame := u32 big-endian L | L bytes = exactly one msgpack value
 *
 *   bytes --wire_frame_len--> L checked against max_frame before buffering
 *         --wire_prevalidate--> structure fits the bytes present
 *         --msgpack_unpack--> objects in a zone (wire_msg.c)
 *
 * Design: the pre-validator is a single forward pass with an explicit stack
 * of "elements still owed" per open container (on the C stack, at most 64
 * entries), so it never allocates and never recurses. It keeps the sum of
 * all owed elements and requires, at every header, that the payload (or the
 * new container's element count) plus every element still owed by the
 * enclosing containers fits in the bytes after the header: each element
 * needs at least one byte. Hence, once it accepts, the total of all declared
 * container counts is below n, and msgpack-c's allocation is linear in n.
 *
 * Invariants: owed == sum(stack[0..depth)); every stack entry is > 0 while
 * on the stack, so owed >= depth; depth <= max_depth <= WIRE_PV_MAX_DEPTH.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proto/wire.h"

#define WIRE_PV_MAX_DEPTH 64

/* ---- growable output buffer ------------------------------------------ */

void wire_buf_init(struct wire_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void wire_buf_free(struct wire_buf *b)
{
    free(b->data);
    wire_buf_init(b);
}

int wire_buf_reserve(struct wire_buf *b, size_t extra)
{
    if (extra <= b->cap - b->len)
        return 0;
    if (extra > SIZE_MAX - b->len)
        return -ENOMEM;
    size_t want = b->len + extra;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < want) {
        if (cap > SIZE_MAX / 2) {
            cap = want;
            break;
        }
        cap *= 2;
    }
    uint8_t *p = realloc(b->data, cap);
    if (p == NULL)
        return -ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int wire_buf_append(struct wire_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    int rc = wire_buf_reserve(b, n);
    if (rc != 0)
        return rc;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void wire_buf_consume(struct wire_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

static int packer_write(void *data, const char *buf, size_t len)
{
    return wire_buf_append(data, buf, len) == 0 ? 0 : -1;
}

void wire_packer_init(msgpack_packer *pk, struct wire_buf *b)
{
    msgpack_packer_init(pk, b, packer_write);
}

/* ---- framing ----------------------------------------------------------- */

int wire_frame_begin(struct wire_buf *b, size_t *start)
{
    static const uint8_t zero[WIRE_HDR_LEN];
    size_t at = b->len;
    int rc = wire_buf_append(b, zero, sizeof(zero));
    if (rc != 0)
        return rc;
    *start = at;
    return 0;
}

void wire_frame_end(struct wire_buf *b, size_t start)
{
    size_t body = b->len - start - WIRE_HDR_LEN;
    uint8_t *h = b->data + start;
    h[0] = (uint8_t)(body >> 24);
    h[1] = (uint8_t)(body >> 16);
    h[2] = (uint8_t)(body >> 8);
    h[3] = (uint8_t)body;
}

int wire_frame_len(const uint8_t hdr[WIRE_HDR_LEN], uint32_t max_frame,
                   uint32_t *len)
{
    uint32_t l = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
                 (uint32_t)hdr[2] << 8 | (uint32_t)hdr[3];
    *len = l;
    if (l == 0)
        return RK_EBAD_REQUEST;
    return l > max_frame ? RK_ETOO_LARGE : 0;
}

/* ---- pre-validation ---------------------------------------------------- */

static uint64_t read_be(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

enum wire_pv_kind {
    WIRE_PV_SCALAR, /* hdr bytes, then len payload bytes */
    WIRE_PV_ARRAY,  /* hdr bytes, then len elements */
    WIRE_PV_MAP     /* hdr bytes, then len key/value pairs */
};

/* Decodes the header at p[0..avail): its size, kind and the payload length
 * or element count. Returns 0, or RK_EBAD_REQUEST with *why set. */
static int pv_header(const uint8_t *p, size_t avail, size_t *hdr,
                     enum wire_pv_kind *kind, uint64_t *len, const char **why)
{
    uint8_t c = p[0];
    unsigned lenbytes = 0; /* big-endian length field after the tag */
    size_t extra = 0;      /* fixed bytes after the length field */

    *kind = WIRE_PV_SCALAR;
    *len = 0;
    if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
        *hdr = 1;
        return 0;
    }
    if (c <= 0x8f || (c >= 0x90 && c <= 0x9f)) {
        *kind = c <= 0x8f ? WIRE_PV_MAP : WIRE_PV_ARRAY;
        *len = c & 0x0f;
        *hdr = 1;
        return 0;
    }
    if (c >= 0xa0 && c <= 0xbf) {
        *len = c & 0x1f;
        *hdr = 1;
        return 0;
    }
    switch (c) {
    case 0xc1:
        *why = "reserved byte 0xc1";
        return RK_EBAD_REQUEST;
    case 0xc4: /* bin 8/16/32 */
    case 0xc5:
    case 0xc6:
        lenbytes = 1u << (c - 0xc4);
        break;
    case 0xc7: /* ext 8/16/32: length, then the type byte */
    case 0xc8:
    case 0xc9:
        lenbytes = 1u << (c - 0xc7);
        extra = 1;
        break;
    case 0xca: /* float32, float64 */
        *len = 4;
        break;
    case 0xcb:
        *len = 8;
        break;
    case 0xcc: /* uint 8/16/32/64 */
    case 0xcd:
    case 0xce:
    case 0xcf:
        *len = 1u << (c - 0xcc);
        break;
    case 0xd0: /* int 8/16/32/64 */
    case 0xd1:
    case 0xd2:
    case 0xd3:
        *len = 1u << (c - 0xd0);
        break;
    case 0xd4: /* fixext 1/2/4/8/16: type byte, then the data */
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
        extra = 1;
        *len = 1u << (c - 0xd4);
        break;
    case 0xd9: /* str 8/16/32 */
    case 0xda:
    case 0xdb:
        lenbytes = 1u << (c - 0xd9);
        break;
    case 0xdc: /* array 16/32 */
    case 0xdd:
        *kind = WIRE_PV_ARRAY;
        lenbytes = c == 0xdc ? 2 : 4;
        break;
    default: /* 0xde, 0xdf: map 16/32 */
        *kind = WIRE_PV_MAP;
        lenbytes = c == 0xde ? 2 : 4;
        break;
    }
    *hdr = 1 + lenbytes + extra;
    if (avail < *hdr) {
        *why = "truncated header";
        return RK_EBAD_REQUEST;
    }
    if (lenbytes > 0)
        *len = read_be(p + 1, lenbytes);
    return 0;
}

int wire_prevalidate(const uint8_t *p, size_t n, unsigned max_depth,
                     const char **why)
{
    uint64_t stack[WIRE_PV_MAX_DEPTH]; /* elements still owed per container */
    unsigned depth = 0;
    uint64_t owed = 0; /* sum of stack[0..depth) */
    size_t pos = 0;
    const char *dummy;

    if (why == NULL)
        why = &dummy;
    if (max_depth > WIRE_PV_MAX_DEPTH)
        max_depth = WIRE_PV_MAX_DEPTH;
    if (p == NULL || n == 0) {
        *why = "empty input";
        return RK_EBAD_REQUEST;
    }
    for (;;) {
        size_t hdr;
        enum wire_pv_kind kind;
        uint64_t len;

        if (pos >= n) {
            *why = "truncated value";
            return RK_EBAD_REQUEST;
        }
        int rc = pv_header(p + pos, n - pos, &hdr, &kind, &len, why);
        if (rc != 0)
            return rc;
        pos += hdr;
        /* Bytes after the header must hold this item's payload or
         * elements, plus one byte for each element owed by the enclosing
         * containers beyond the one each is now filling (the innermost with
         * this item, the others with the next container in). */
        uint64_t rest = n - pos;
        uint64_t others = owed - depth;
        uint64_t need = kind == WIRE_PV_MAP ? 2 * len : len;
        if (need > rest) {
            *why = kind == WIRE_PV_SCALAR
                       ? "declared length exceeds the remaining bytes"
                       : "declared count exceeds the remaining bytes";
            return RK_EBAD_REQUEST;
        }
        if (others > rest - need) {
            *why = "truncated value";
            return RK_EBAD_REQUEST;
        }
        if (kind != WIRE_PV_SCALAR) {
            if (depth >= max_depth) {
                *why = "nesting too deep";
                return RK_EBAD_REQUEST;
            }
            if (need > 0) {
                stack[depth++] = need;
                owed += need;
                continue;
            }
        } else {
            pos += (size_t)len;
        }
        /* One item complete: pay it to the innermost container; a
         * container whose last element arrived is itself complete. */
        while (depth > 0) {
            owed--;
            if (--stack[depth - 1] > 0)
                break;
            depth--;
        }
        if (depth == 0)
            break;
    }
    if (pos != n) {
        *why = "trailing bytes after the value";
        return RK_EBAD_REQUEST;
    }
    return 0;
}

int wire_peek_id(const uint8_t *p, size_t n, uint64_t *id)
{
    size_t i;
    if (n < 1)
        return RK_EBAD_REQUEST;
    if ((p[0] & 0xf0) == 0x80)
        i = 1; /* fixmap */
    else if (p[0] == 0xde)
        i = 3; /* map 16 */
    else if (p[0] == 0xdf)
        i = 5; /* map 32 */
    else
        return RK_EBAD_REQUEST;
    if (n < i + 4 || p[i] != 0xa2 || p[i + 1] != 'i' || p[i + 2] != 'd')
        return RK_EBAD_REQUEST;
    i += 3;
    unsigned w;
    if (p[i] <= 0x7f) {
        *id = p[i];
        return 0;
    }
    switch (p[i]) {
    case 0xcc:
        w = 1;
        break;
    case 0xcd:
        w = 2;
        break;
    case 0xce:
        w = 4;
        break;
    case 0xcf:
        w = 8;
        break;
    default:
        return RK_EBAD_REQUEST;
    }
    if (n < i + 1 + w)
        return RK_EBAD_REQUEST;
    uint64_t v = 0;
    for (unsigned k = 1; k <= w; k++)
        v = v << 8 | p[i + k];
    *id = v;
    return 0;
}

int wire_skip_begin(const uint8_t *body, size_t avail, uint32_t len,
                    size_t *take, uint64_t *rest, uint64_t *id)
{
    if (avail < WIRE_PEEK_LEN && avail < len)
        return -EAGAIN;
    if (wire_peek_id(body, avail, id) != 0)
        *id = 0;
    *take = avail < len ? avail : len;
    *rest = len - *take;
    return 0;
}

enum wire_split wire_split_next(const uint8_t *buf, size_t n, size_t *off,
                                uint32_t max_frame, bool skip_large,
                                uint64_t *skip, struct wire_frame *f)
{
    size_t at = *off;
    if (*skip > 0) {
        size_t d = *skip < n - at ? (size_t)*skip : n - at;
        *skip -= d;
        at += d;
        *off = at;
    }
    if (n - at < WIRE_HDR_LEN) {
        f->need = WIRE_HDR_LEN;
        return WIRE_SPLIT_MORE;
    }
    size_t avail = n - at - WIRE_HDR_LEN;
    int rc = wire_frame_len(buf + at, max_frame, &f->len);
    if (rc == RK_ETOO_LARGE && skip_large) {
        size_t take;
        if (wire_skip_begin(buf + at + WIRE_HDR_LEN, avail, f->len, &take, skip,
                            &f->id) != 0) {
            f->need = WIRE_HDR_LEN + WIRE_PEEK_LEN;
            return WIRE_SPLIT_MORE; /* wait for the bytes that hold its id */
        }
        *off = at + WIRE_HDR_LEN + take;
        return WIRE_SPLIT_SKIPPED;
    }
    if (rc != 0) {
        f->err = rc;
        return WIRE_SPLIT_BAD;
    }
    if (avail < f->len) {
        f->need = WIRE_HDR_LEN + (size_t)f->len;
        return WIRE_SPLIT_MORE;
    }
    f->body = buf + at + WIRE_HDR_LEN;
    *off = at + WIRE_HDR_LEN + f->len;
    return WIRE_SPLIT_FRAME;
}
