/*
 * fuzz_wire.c - libFuzzer target for the native wire codec (proto/wire.h).
 *
 * Input: 4 bytes read as a frame header, then a frame body. The body goes
 * through wire_prevalidate, wire_decode_req and wire_decode_resp; whatever
 * decodes is encoded again and must decode to the same fields (abort()
 * otherwise). Also checked: whatever the pre-validator accepts, msgpack-c
 * must unpack completely (the pre-validator may be stricter, never looser).
 *
 * The whole input also goes through the frame splitter (wire_split_next),
 * all at once and a few bytes at a time: both must find the same frames,
 * skipped frames and errors.
 *
 * The zone is cleared after every decode so memory stays flat across runs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz_wire: check failed: %s (line %d)\n", #cond,  \
                    __LINE__);                                                 \
            abort();                                                           \
        }                                                                      \
    } while (0)

static bool fuzz_bytes_eq(const uint8_t *a, uint32_t alen, const uint8_t *b,
                          uint32_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* Strips the 4-byte header off the single frame in b; checks its length. */
static const uint8_t *fuzz_body(const struct wire_buf *b, size_t *n)
{
    uint32_t len = 0;
    FUZZ_CHECK(b->len > WIRE_HDR_LEN);
    FUZZ_CHECK(wire_frame_len(b->data, UINT32_MAX, &len) == 0);
    FUZZ_CHECK(len == b->len - WIRE_HDR_LEN);
    *n = len;
    return b->data + WIRE_HDR_LEN;
}

static void fuzz_req_again(const struct wire_req *a,
                           const struct wire_limits *lim)
{
    struct wire_buf b;
    msgpack_zone zone;
    struct wire_req r;
    const char *why = NULL;
    size_t n;

    wire_buf_init(&b);
    msgpack_zone_init(&zone, 1024);
    FUZZ_CHECK(wire_encode_req(&b, a) == 0);
    const uint8_t *body = fuzz_body(&b, &n);
    FUZZ_CHECK(wire_decode_req(body, n, lim, &zone, &r, &why) == 0);
    FUZZ_CHECK(r.id == a->id);
    FUZZ_CHECK(r.op == a->op);
    FUZZ_CHECK(fuzz_bytes_eq(r.key, r.key_len, a->key, a->key_len));
    FUZZ_CHECK(fuzz_bytes_eq(r.value, r.value_len, a->value, a->value_len));
    FUZZ_CHECK(fuzz_bytes_eq(r.ctx, r.ctx_len, a->ctx, a->ctx_len));
    FUZZ_CHECK((r.ctx == NULL) == (a->ctx == NULL));
    FUZZ_CHECK(r.r == a->r && r.w == a->w);
    const struct wire_hello *h = &r.hello, *g = &a->hello;
    FUZZ_CHECK(
        fuzz_bytes_eq(h->cluster, h->cluster_len, g->cluster, g->cluster_len));
    FUZZ_CHECK(fuzz_bytes_eq(h->node, h->node_len, g->node, g->node_len));
    FUZZ_CHECK(fuzz_bytes_eq(h->nonce, h->nonce_len, g->nonce, g->nonce_len));
    FUZZ_CHECK(fuzz_bytes_eq(h->mac, h->mac_len, g->mac, g->mac_len));
    FUZZ_CHECK(fuzz_bytes_eq(r.data, r.data_len, a->data, a->data_len));
    if (a->op == WIRE_OP_ADMIN) {
        FUZZ_CHECK(strcmp(r.cmd, a->cmd) == 0);
        FUZZ_CHECK(strcmp(r.arg, a->arg) == 0);
        FUZZ_CHECK(r.part == a->part && r.json == a->json);
    }
    /* Our encoder writes the id first: a skipped frame is answerable. */
    uint64_t id = 0;
    FUZZ_CHECK(wire_peek_id(body, n, &id) == 0 && id == a->id);
    msgpack_zone_destroy(&zone);
    wire_buf_free(&b);
}

static void fuzz_resp_again(const struct wire_resp *decoded)
{
    struct wire_resp a = *decoded;
    struct wire_buf b;
    msgpack_zone zone;
    struct wire_resp r;
    const char *why = NULL;
    size_t n;

    /* Responses do not carry their op; pick the one whose payload holds
     * what was decoded. */
    if (a.nstats > 0 && a.nvalues > 0)
        return;
    a.op = a.nstats > 0    ? WIRE_OP_STATS
           : a.nvalues > 0 ? WIRE_OP_GET
                           : WIRE_OP_PUT;
    wire_buf_init(&b);
    msgpack_zone_init(&zone, 1024);
    FUZZ_CHECK(wire_encode_resp(&b, &a) == 0);
    const uint8_t *body = fuzz_body(&b, &n);
    FUZZ_CHECK(wire_decode_resp(body, n, &zone, &r, &why) == 0);
    FUZZ_CHECK(r.id == a.id);
    FUZZ_CHECK(r.err == a.err);
    if (a.err != 0) {
        FUZZ_CHECK(r.definite == a.definite);
        FUZZ_CHECK(r.msg != NULL);
        FUZZ_CHECK(strcmp(r.msg, a.msg ? a.msg : rk_err_msg(a.err)) == 0);
        goto done;
    }
    FUZZ_CHECK(r.nvalues == a.nvalues);
    for (uint32_t i = 0; i < a.nvalues; i++)
        FUZZ_CHECK(fuzz_bytes_eq(r.values[i].data, r.values[i].len,
                                 a.values[i].data, a.values[i].len));
    if (a.op != WIRE_OP_STATS) /* a stats response carries no ctx */
        FUZZ_CHECK(fuzz_bytes_eq(r.ctx, r.ctx_len, a.ctx, a.ctx_len));
    FUZZ_CHECK(r.nstats == a.nstats);
    for (uint32_t i = 0; i < a.nstats; i++) {
        FUZZ_CHECK(strcmp(r.stats[i].name, a.stats[i].name) == 0);
        FUZZ_CHECK((r.stats[i].sval == NULL) == (a.stats[i].sval == NULL));
        if (a.stats[i].sval != NULL)
            FUZZ_CHECK(strcmp(r.stats[i].sval, a.stats[i].sval) == 0);
        else
            FUZZ_CHECK(r.stats[i].ival == a.stats[i].ival);
    }
done:
    msgpack_zone_destroy(&zone);
    wire_buf_free(&b);
}

/* Splits data[0..size) as a stream (max_frame 64, oversized frames
 * skipped) into at most cap events, seeing step more bytes at a time (step
 * 0: all at once). Returns the number of events; each is kind, length, id
 * and the body's offset. */
#define FUZZ_SPLIT_MAX 64
static size_t fuzz_split(const uint8_t *data, size_t size, size_t step,
                         uint64_t ev[][4])
{
    size_t off = 0, n = step == 0 ? size : 0, k = 0;
    uint64_t skip = 0;
    struct wire_frame f;
    for (;;) {
        enum wire_split r = wire_split_next(data, n, &off, 64, true, &skip, &f);
        FUZZ_CHECK(off <= n);
        if (r == WIRE_SPLIT_MORE) {
            FUZZ_CHECK(f.need > n - off || skip > 0 || f.len > 64);
            if (n == size)
                return k;
            n = n + step < size ? n + step : size;
            continue;
        }
        if (k == FUZZ_SPLIT_MAX)
            return k;
        ev[k][0] = (uint64_t)r;
        ev[k][1] = f.len;
        ev[k][2] = r == WIRE_SPLIT_SKIPPED ? f.id : 0;
        ev[k][3] = r == WIRE_SPLIT_FRAME ? (uint64_t)(f.body - data) : 0;
        k++;
        if (r == WIRE_SPLIT_BAD)
            return k;
        FUZZ_CHECK(r == WIRE_SPLIT_SKIPPED || f.len <= 64);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static msgpack_zone zone;
    static bool zone_ready;
    /* Small key and value limits so too_large paths are reachable. */
    static const struct wire_limits lim = {1u << 20, 16, 64};
    const char *why = NULL;
    uint32_t len;

    if (!zone_ready) {
        msgpack_zone_init(&zone, 4096);
        zone_ready = true;
    }
    /* The frame splitter finds the same frames, skips and errors whether
     * the bytes arrive at once or a few at a time. */
    uint64_t ev_all[FUZZ_SPLIT_MAX][4], ev_step[FUZZ_SPLIT_MAX][4];
    size_t nev = fuzz_split(data, size, 0, ev_all);
    FUZZ_CHECK(fuzz_split(data, size, 1 + (size > 0 ? data[0] % 23 : 0),
                          ev_step) == nev);
    FUZZ_CHECK(nev == 0 ||
               memcmp(ev_all, ev_step, nev * sizeof(ev_all[0])) == 0);

    if (size < WIRE_HDR_LEN)
        return 0;
    int rc = wire_frame_len(data, lim.max_frame, &len);
    FUZZ_CHECK(rc == 0 || rc == RK_EBAD_REQUEST || rc == RK_ETOO_LARGE);
    if (rc == 0)
        FUZZ_CHECK(len > 0 && len <= lim.max_frame);

    const uint8_t *p = data + WIRE_HDR_LEN;
    size_t n = size - WIRE_HDR_LEN;
    rc = wire_prevalidate(p, n, WIRE_MAX_DEPTH, &why);
    FUZZ_CHECK(rc == 0 || (rc == RK_EBAD_REQUEST && why != NULL));
    if (rc == 0) {
        size_t off = 0;
        msgpack_object obj;
        FUZZ_CHECK(msgpack_unpack((const char *)p, n, &off, &zone, &obj) ==
                   MSGPACK_UNPACK_SUCCESS);
        FUZZ_CHECK(off == n);
        msgpack_zone_clear(&zone);
    }

    struct wire_req req;
    rc = wire_decode_req(p, n, &lim, &zone, &req, &why);
    FUZZ_CHECK(rc == 0 || rc == RK_EBAD_REQUEST || rc == RK_EUNKNOWN_OP ||
               rc == RK_ETOO_LARGE);
    if (rc == 0)
        fuzz_req_again(&req, &lim);
    msgpack_zone_clear(&zone);

    struct wire_resp resp;
    rc = wire_decode_resp(p, n, &zone, &resp, &why);
    FUZZ_CHECK(rc == 0 || rc == RK_EBAD_REQUEST);
    if (rc == 0) {
        FUZZ_CHECK(resp.nvalues <= WIRE_MAX_VALUES);
        FUZZ_CHECK(resp.nstats <= WIRE_MAX_STATS);
        FUZZ_CHECK(resp.msg == NULL || strlen(resp.msg) <= WIRE_MAX_MSG);
        fuzz_resp_again(&resp);
    }
    msgpack_zone_clear(&zone);
    return 0;
}
