/*
 * test_wire.c - unit tests for the native wire codec (proto/wire.h): buffer
 * and framing helpers, the structural pre-validator (every msgpack format
 * accepted, every prefix and every lying header rejected), request and
 * response round trips for every op, pinned encodings, and a table of
 * hand-written request bytes with the result each must decode to.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "proto/wire.h"

TestSuite(wire, .timeout = 10);

/* Parses hex digits (spaces ignored) into out; returns the byte count. */
static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    int hi = -1;
    for (; *s; s++) {
        int v;
        if (*s >= '0' && *s <= '9')
            v = *s - '0';
        else if (*s >= 'a' && *s <= 'f')
            v = *s - 'a' + 10;
        else if (*s >= 'A' && *s <= 'F')
            v = *s - 'A' + 10;
        else
            continue;
        if (hi < 0) {
            hi = v;
            continue;
        }
        cr_assert_lt(n, cap, "hex string too long for buffer");
        out[n++] = (uint8_t)(hi << 4 | v);
        hi = -1;
    }
    cr_assert_eq(hi, -1, "odd number of hex digits in %s", s);
    return n;
}

static int prevalidate_hex(const char *hex, unsigned depth)
{
    uint8_t buf[256];
    size_t n = unhex(hex, buf, sizeof(buf));
    const char *why = NULL;
    int rc = wire_prevalidate(buf, n, depth, &why);
    if (rc != 0)
        cr_assert_not_null(why, "no reason given for rejecting %s", hex);
    return rc;
}

/* ---- buffer and framing ------------------------------------------------ */

Test(wire, buffer_appends_and_consumes_in_order)
{
    struct wire_buf b;
    wire_buf_init(&b);
    cr_assert_eq(wire_buf_append(&b, "hello", 5), 0);
    cr_assert_eq(wire_buf_append(&b, " world", 6), 0);
    cr_assert_eq(wire_buf_append(&b, NULL, 0), 0);
    cr_assert_eq(b.len, 11);
    wire_buf_consume(&b, 6);
    cr_assert_eq(b.len, 5);
    cr_assert_eq(memcmp(b.data, "world", 5), 0);
    wire_buf_consume(&b, 5);
    cr_assert_eq(b.len, 0);
    wire_buf_free(&b);
    cr_assert_null(b.data);
    cr_assert_eq(b.cap, 0);
}

Test(wire, buffer_grows_past_many_appends)
{
    struct wire_buf b;
    wire_buf_init(&b);
    for (int i = 0; i < 10000; i++) {
        uint8_t c = (uint8_t)i;
        cr_assert_eq(wire_buf_append(&b, &c, 1), 0);
    }
    cr_assert_eq(b.len, 10000);
    for (int i = 0; i < 10000; i++)
        cr_assert_eq(b.data[i], (uint8_t)i);
    wire_buf_free(&b);
}

Test(wire, buffer_reserve_refuses_an_impossible_size)
{
    struct wire_buf b;
    wire_buf_init(&b);
    cr_assert_eq(wire_buf_append(&b, "x", 1), 0);
    cr_assert_eq(wire_buf_reserve(&b, SIZE_MAX), -ENOMEM);
    cr_assert_eq(b.len, 1);
    cr_assert_eq(b.data[0], 'x');
    wire_buf_free(&b);
}

Test(wire, frame_end_writes_the_big_endian_body_length)
{
    struct wire_buf b;
    size_t start;
    msgpack_packer pk;
    wire_buf_init(&b);
    cr_assert_eq(wire_buf_append(&b, "ab", 2), 0);
    cr_assert_eq(wire_frame_begin(&b, &start), 0);
    cr_assert_eq(start, 2);
    wire_packer_init(&pk, &b);
    cr_assert_eq(msgpack_pack_bin_with_body(&pk, "0123456789", 10), 0);
    wire_frame_end(&b, start);
    cr_assert_eq(b.len, 2 + 4 + 12);
    const uint8_t want[] = {0, 0, 0, 12, 0xc4, 10, '0'};
    cr_assert_eq(memcmp(b.data + 2, want, sizeof(want)), 0);
    uint32_t len = 0;
    cr_assert_eq(wire_frame_len(b.data + 2, 100, &len), 0);
    cr_assert_eq(len, 12);
    wire_buf_free(&b);
}

Test(wire, frame_len_rejects_zero_and_oversized_lengths)
{
    const uint8_t zero[4] = {0, 0, 0, 0};
    const uint8_t big[4] = {0x00, 0x80, 0x00, 0x01};
    const uint8_t max[4] = {0x00, 0x80, 0x00, 0x00};
    const uint8_t huge[4] = {0xff, 0xff, 0xff, 0xff};
    uint32_t len = 7;
    cr_assert_eq(wire_frame_len(zero, WIRE_DEFAULT_MAX_FRAME, &len),
                 RK_EBAD_REQUEST);
    cr_assert_eq(wire_frame_len(big, WIRE_DEFAULT_MAX_FRAME, &len),
                 RK_ETOO_LARGE);
    cr_assert_eq(wire_frame_len(huge, WIRE_DEFAULT_MAX_FRAME, &len),
                 RK_ETOO_LARGE);
    cr_assert_eq(len, UINT32_MAX, "an oversized length is reported (skip)");
    cr_assert_eq(wire_frame_len(max, WIRE_DEFAULT_MAX_FRAME, &len), 0);
    cr_assert_eq(len, WIRE_DEFAULT_MAX_FRAME);
}

/* ---- pre-validation ---------------------------------------------------- */

/* One value of every msgpack format. */
static const char *const valid_values[] = {
    "00",
    "7f",
    "e0",
    "ff",
    "c0",
    "c2",
    "c3", /* */
    "cc ff",
    "cd ffff",
    "ce ffffffff",
    "cf ffffffffffffffff", /* uint */
    "d0 80",
    "d1 8000",
    "d2 80000000",
    "d3 8000000000000000", /* int */
    "ca 3f800000",
    "cb 3ff0000000000000", /* float */
    "a0",
    "a3 616263", /* fixstr */
    "bf 00010203040506070809 00010203040506070809 00010203040506070809 00",
    "d9 00",
    "d9 03 616263",
    "da 0003 616263",
    "db 00000003 616263",
    "c4 00",
    "c4 02 0102",
    "c5 0002 0102",
    "c6 00000002 0102", /* bin */
    "d4 01 aa",
    "d5 01 aabb",
    "d6 01 aabbccdd", /* fixext */
    "d7 ff 0001020304050607",
    "d8 01 000102030405060708090a0b0c0d0e0f",
    "c7 00 01",
    "c7 02 01 aabb",
    "c8 0002 01 aabb",     /* ext */
    "c9 00000002 01 aabb", /* */
    "90",
    "93 01 02 03",
    "dc 0000",
    "dc 0002 01 02",     /* array */
    "dd 00000002 01 02", /* */
    "80",
    "81 01 02",
    "de 0001 01 02",
    "df 00000001 01 02",                  /* map */
    "82 a161 91 80 a162 c0",              /* nested */
    "92 92 c4 01 aa 90 81 a0 dc 0001 c3", /* */
};

Test(wire, prevalidate_accepts_every_msgpack_format)
{
    for (size_t i = 0; i < sizeof(valid_values) / sizeof(*valid_values); i++)
        cr_assert_eq(prevalidate_hex(valid_values[i], WIRE_MAX_DEPTH), 0,
                     "rejected %s", valid_values[i]);
}

Test(wire, prevalidate_rejects_every_proper_prefix_of_a_valid_value)
{
    for (size_t i = 0; i < sizeof(valid_values) / sizeof(*valid_values); i++) {
        uint8_t buf[256];
        size_t n = unhex(valid_values[i], buf, sizeof(buf));
        for (size_t k = 0; k < n; k++) {
            const char *why = NULL;
            cr_assert_eq(wire_prevalidate(buf, k, WIRE_MAX_DEPTH, &why),
                         RK_EBAD_REQUEST, "accepted %zu bytes of %s", k,
                         valid_values[i]);
            cr_assert_not_null(why);
        }
    }
}

Test(wire, prevalidate_rejects_trailing_bytes)
{
    for (size_t i = 0; i < sizeof(valid_values) / sizeof(*valid_values); i++) {
        uint8_t buf[256];
        size_t n = unhex(valid_values[i], buf, sizeof(buf) - 1);
        buf[n] = 0x00;
        const char *why = NULL;
        cr_assert_eq(wire_prevalidate(buf, n + 1, WIRE_MAX_DEPTH, &why),
                     RK_EBAD_REQUEST, "accepted %s followed by 00",
                     valid_values[i]);
        cr_assert_str_eq(why, "trailing bytes after the value");
    }
}

Test(wire, prevalidate_rejects_lengths_and_counts_over_the_remaining_bytes)
{
    static const char *const lies[] = {
        "db ffffffff",      "c6 ffffffff",       "dd ffffffff",
        "df ffffffff",      "db ffffffff 00",    "c6 ffffffff 0102",
        "dd ffffffff 00",   "df ffffffff 00 00", "c9 ffffffff 01",
        "da 0004 616263",   "c5 0003 0102",      "dc 0003 01 02",
        "de 0002 01 02 03", "82 01 02 03", /* a map of 2 needs 4 elements */
        "92 c4 03 010203", /* first element fits, the second is missing */
        "93 01 a5 6162",   /* str claims 5 bytes, 2 present */
    };
    for (size_t i = 0; i < sizeof(lies) / sizeof(*lies); i++)
        cr_assert_eq(prevalidate_hex(lies[i], WIRE_MAX_DEPTH), RK_EBAD_REQUEST,
                     "accepted %s", lies[i]);
}

Test(wire, prevalidate_rejects_an_array32_header_claiming_four_billion)
{
    /* The frame that would make msgpack-c reserve tens of gigabytes. */
    const uint8_t frame[5] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    const char *why = NULL;
    cr_assert_eq(wire_prevalidate(frame, sizeof(frame), WIRE_MAX_DEPTH, &why),
                 RK_EBAD_REQUEST);
    cr_assert_str_eq(why, "declared count exceeds the remaining bytes");
}

Test(wire, prevalidate_rejects_the_reserved_byte_c1)
{
    cr_assert_eq(prevalidate_hex("c1", 8), RK_EBAD_REQUEST);
    cr_assert_eq(prevalidate_hex("91 c1", 8), RK_EBAD_REQUEST);
    cr_assert_eq(prevalidate_hex("82 a161 01 c1 00", 8), RK_EBAD_REQUEST);
}

Test(wire, prevalidate_rejects_empty_input)
{
    const char *why = NULL;
    cr_assert_eq(wire_prevalidate((const uint8_t *)"", 0, 8, &why),
                 RK_EBAD_REQUEST);
    cr_assert_not_null(why);
}

Test(wire, prevalidate_rejects_a_nesting_bomb_of_ten_thousand_arrays)
{
    enum { N = 10000 };
    uint8_t *p = malloc(N + 1);
    cr_assert_not_null(p);
    memset(p, 0x91, N);
    p[N] = 0x00;
    const char *why = NULL;
    cr_assert_eq(wire_prevalidate(p, N, WIRE_MAX_DEPTH, &why), RK_EBAD_REQUEST);
    cr_assert_eq(wire_prevalidate(p, N + 1, WIRE_MAX_DEPTH, &why),
                 RK_EBAD_REQUEST);
    cr_assert_str_eq(why, "nesting too deep");
    /* Even the largest allowed depth does not accept it. */
    cr_assert_eq(wire_prevalidate(p, N + 1, 1000, &why), RK_EBAD_REQUEST);
    free(p);
}

Test(wire, prevalidate_allows_exactly_max_depth_nested_containers)
{
    uint8_t p[16];
    const char *why;
    /* depth containers: depth-1 one-element arrays around an empty one */
    for (unsigned depth = 1; depth <= 9; depth++) {
        memset(p, 0x91, depth - 1);
        p[depth - 1] = 0x80;
        cr_assert_eq(wire_prevalidate(p, depth, 8, &why),
                     depth <= 8 ? 0 : RK_EBAD_REQUEST, "depth %u", depth);
    }
    cr_assert_eq(prevalidate_hex("2a", 0), 0);
    cr_assert_eq(prevalidate_hex("90", 0), RK_EBAD_REQUEST);
}

/* ---- requests ---------------------------------------------------------- */

static const struct wire_limits test_limits = {
    WIRE_DEFAULT_MAX_FRAME, WIRE_DEFAULT_MAX_KEY, WIRE_DEFAULT_MAX_VALUE};

/* Encodes req, checks the frame header, decodes the body into *out. */
static int req_round_trip(const struct wire_req *req, struct wire_buf *b,
                          msgpack_zone *zone, const struct wire_limits *lim,
                          struct wire_req *out)
{
    uint32_t len = 0;
    const char *why = NULL;
    wire_buf_init(b);
    cr_assert_eq(wire_encode_req(b, req), 0);
    cr_assert_eq(wire_frame_len(b->data, UINT32_MAX, &len), 0);
    cr_assert_eq(len, b->len - WIRE_HDR_LEN);
    return wire_decode_req(b->data + WIRE_HDR_LEN, len, lim, zone, out, &why);
}

static void assert_bytes_eq(const uint8_t *a, uint32_t alen, const uint8_t *b,
                            uint32_t blen)
{
    cr_assert_eq(alen, blen);
    if (alen > 0)
        cr_assert_eq(memcmp(a, b, alen), 0);
}

Test(wire, every_request_op_survives_a_round_trip)
{
    static const uint8_t ctx[] = {1, 2, 3, 0, 255};
    const struct wire_req reqs[] = {
        {.id = 1,
         .op = WIRE_OP_GET,
         .key = (const uint8_t *)"k",
         .key_len = 1,
         .r = 2},
        {.id = 2,
         .op = WIRE_OP_PUT,
         .key = (const uint8_t *)"key",
         .key_len = 3,
         .value = (const uint8_t *)"value",
         .value_len = 5,
         .ctx = ctx,
         .ctx_len = sizeof(ctx),
         .w = 3},
        {.id = 3,
         .op = WIRE_OP_PUT,
         .key = (const uint8_t *)"key",
         .key_len = 3,
         .value = (const uint8_t *)"",
         .value_len = 0},
        {.id = 4,
         .op = WIRE_OP_DEL,
         .key = (const uint8_t *)"gone",
         .key_len = 4,
         .ctx = ctx,
         .ctx_len = 2,
         .r = 1,
         .w = 255},
        {.id = 5, .op = WIRE_OP_PING},
        {.id = UINT64_MAX, .op = WIRE_OP_STATS},
    };
    for (size_t i = 0; i < sizeof(reqs) / sizeof(*reqs); i++) {
        struct wire_buf b;
        msgpack_zone zone;
        struct wire_req out;
        const struct wire_req *in = &reqs[i];
        msgpack_zone_init(&zone, 1024);
        cr_assert_eq(req_round_trip(in, &b, &zone, &test_limits, &out), 0,
                     "op %s", wire_op_name(in->op));
        cr_assert_eq(out.id, in->id);
        cr_assert_eq(out.op, in->op);
        assert_bytes_eq(out.key, out.key_len, in->key, in->key_len);
        assert_bytes_eq(out.value, out.value_len, in->value, in->value_len);
        assert_bytes_eq(out.ctx, out.ctx_len, in->ctx, in->ctx_len);
        cr_assert_eq(out.ctx == NULL, in->ctx == NULL);
        cr_assert_eq(out.r, in->r);
        cr_assert_eq(out.w, in->w);
        /* Borrowed pointers point into the frame. */
        if (out.key_len > 0)
            cr_assert(out.key > b.data && out.key < b.data + b.len);
        msgpack_zone_destroy(&zone);
        wire_buf_free(&b);
    }
}

Test(wire, put_request_encoding_is_pinned)
{
    /* The worked example of docs/protocol.md. */
    const struct wire_req req = {.id = 42,
                                 .op = WIRE_OP_PUT,
                                 .key = (const uint8_t *)"k1",
                                 .key_len = 2,
                                 .value = (const uint8_t *)"v1",
                                 .value_len = 2,
                                 .ctx = (const uint8_t *)"\x01\x02",
                                 .ctx_len = 2,
                                 .w = 2};
    uint8_t want[64];
    size_t n = unhex("00000029"
                     "86 a2 6964 2a a2 6f70 a3 707574"
                     "a3 6b6579 c4 02 6b31 a5 76616c7565 c4 02 7631"
                     "a3 637478 c4 02 0102 a1 77 02",
                     want, sizeof(want));
    struct wire_buf b;
    wire_buf_init(&b);
    cr_assert_eq(wire_encode_req(&b, &req), 0);
    cr_assert_eq(b.len, n);
    cr_assert_eq(memcmp(b.data, want, n), 0);
    wire_buf_free(&b);
}

Test(wire, encoders_append_after_existing_frames)
{
    const struct wire_req ping = {.id = 9, .op = WIRE_OP_PING};
    struct wire_buf b;
    uint32_t len;
    wire_buf_init(&b);
    cr_assert_eq(wire_encode_req(&b, &ping), 0);
    size_t first = b.len;
    cr_assert_eq(wire_encode_req(&b, &ping), 0);
    cr_assert_eq(b.len, 2 * first);
    cr_assert_eq(memcmp(b.data, b.data + first, first), 0);
    cr_assert_eq(wire_frame_len(b.data + first, 1000, &len), 0);
    cr_assert_eq(len, first - WIRE_HDR_LEN);
    wire_buf_free(&b);
}

Test(wire, decode_req_reports_a_key_over_the_limit_with_its_id)
{
    const struct wire_limits lim = {1000, 4, 8};
    const struct wire_req req = {.id = 77,
                                 .op = WIRE_OP_GET,
                                 .key = (const uint8_t *)"12345",
                                 .key_len = 5};
    struct wire_buf b;
    msgpack_zone zone;
    struct wire_req out;
    msgpack_zone_init(&zone, 1024);
    cr_assert_eq(req_round_trip(&req, &b, &zone, &lim, &out), RK_ETOO_LARGE);
    cr_assert_eq(out.id, 77);
    wire_buf_free(&b);

    const struct wire_req ok = {.id = 78,
                                .op = WIRE_OP_GET,
                                .key = (const uint8_t *)"1234",
                                .key_len = 4};
    cr_assert_eq(req_round_trip(&ok, &b, &zone, &lim, &out), 0);
    wire_buf_free(&b);
    msgpack_zone_destroy(&zone);
}

Test(wire, decode_req_reports_a_value_over_the_limit_with_its_id)
{
    const struct wire_limits lim = {1000, 4, 8};
    const struct wire_req req = {.id = 88,
                                 .op = WIRE_OP_PUT,
                                 .key = (const uint8_t *)"k",
                                 .key_len = 1,
                                 .value = (const uint8_t *)"123456789",
                                 .value_len = 9};
    struct wire_buf b;
    msgpack_zone zone;
    struct wire_req out;
    msgpack_zone_init(&zone, 1024);
    cr_assert_eq(req_round_trip(&req, &b, &zone, &lim, &out), RK_ETOO_LARGE);
    cr_assert_eq(out.id, 88);
    wire_buf_free(&b);

    struct wire_req ok = req;
    ok.value_len = 8;
    cr_assert_eq(req_round_trip(&ok, &b, &zone, &lim, &out), 0);
    cr_assert_eq(out.value_len, 8);
    wire_buf_free(&b);
    msgpack_zone_destroy(&zone);
}

/* Hand-written request bodies and what each must decode to. */
struct req_case {
    const char *what;
    const char *hex;
    int rc;
    uint64_t id;
    enum wire_op op;
};

#define ID       "a2 6964"
#define OP       "a2 6f70"
#define KEY      "a3 6b6579"
#define VALUE    "a5 76616c7565"
#define CTX      "a3 637478"
#define GET      "a3 676574"
#define PUT      "a3 707574"
#define DEL      "a3 64656c"
#define PING     "a4 70696e67"
#define STATS    "a5 7374617473"
#define BAD      RK_EBAD_REQUEST
#define KEY_K    KEY "a1 6b"
#define VALUE_V  VALUE "a1 76"
#define GET_HEAD ID "02" OP GET KEY_K

static const struct req_case req_cases[] = {
    {"ping", "82" ID "01" OP PING, 0, 1, WIRE_OP_PING},
    {"stats", "82" OP STATS ID "cd 1234", 0, 0x1234, WIRE_OP_STATS},
    {"map16 header", "de 0002" ID "01" OP PING, 0, 1, WIRE_OP_PING},
    {"id as positive int8", "82" ID "d0 05" OP PING, 0, 5, WIRE_OP_PING},
    {"largest id", "82" ID "cf ffffffffffffffff" OP PING, 0, UINT64_MAX,
     WIRE_OP_PING},
    {"get with str key", "83" GET_HEAD, 0, 2, WIRE_OP_GET},
    {"get with bin key", "83" ID "02" OP GET KEY "c4 01 6b", 0, 2, WIRE_OP_GET},
    {"get with r", "84" GET_HEAD "a1 72 03", 0, 2, WIRE_OP_GET},
    {"put", "84" ID "03" OP PUT KEY_K VALUE_V, 0, 3, WIRE_OP_PUT},
    {"put with empty value", "84" ID "03" OP PUT KEY_K VALUE "c4 00", 0, 3,
     WIRE_OP_PUT},
    {"put with ctx", "85" ID "03" OP PUT KEY_K VALUE_V CTX "c4 01 00", 0, 3,
     WIRE_OP_PUT},
    {"del", "83" ID "04" OP DEL KEY_K, 0, 4, WIRE_OP_DEL},
    {"unknown keys are ignored",
     "84" ID "02" OP PING "a3 666f6f 91 80"
     "a3 626172 c0",
     0, 2, WIRE_OP_PING},
    {"fields in any order", "83" KEY_K OP GET ID "07", 0, 7, WIRE_OP_GET},

    {"not a map", "92 01 02", BAD, 0, 0},
    {"empty map", "80", BAD, 0, 0},
    {"missing id", "81" OP PING, BAD, 0, 0},
    {"negative id", "82" ID "ff" OP PING, BAD, 0, 0},
    {"string id", "82" ID "a1 31" OP PING, BAD, 0, 0},
    {"float id", "82" ID "cb 3ff0000000000000" OP PING, BAD, 0, 0},
    {"missing op", "81" ID "09", BAD, 9, 0},
    {"bin op", "82" ID "05" OP "c4 03 676574", BAD, 5, 0},
    {"nil op", "82" ID "05" OP "c0", BAD, 5, 0},
    {"unknown op", "82" ID "07" OP "a4 66726f62", RK_EUNKNOWN_OP, 7, 0},
    {"op with a trailing NUL", "82" ID "07" OP "a4 67657400", RK_EUNKNOWN_OP, 7,
     0},
    {"get without key", "82" ID "02" OP GET, BAD, 2, 0},
    {"integer key", "83" ID "02" OP GET KEY "05", BAD, 2, 0},
    {"array key", "83" ID "02" OP GET KEY "91 01", BAD, 2, 0},
    {"empty key", "83" ID "02" OP GET KEY "c4 00", BAD, 2, 0},
    {"empty str key", "83" ID "02" OP GET KEY "a0", BAD, 2, 0},
    {"ping with integer key", "83" ID "01" OP PING KEY "05", BAD, 1, 0},
    {"put without value", "83" ID "03" OP PUT KEY_K, BAD, 3, 0},
    {"integer value", "84" ID "03" OP PUT KEY_K VALUE "01", BAD, 3, 0},
    {"str ctx", "85" ID "03" OP PUT KEY_K VALUE_V CTX "a1 78", BAD, 3, 0},
    {"r zero", "84" GET_HEAD "a1 72 00", BAD, 2, 0},
    {"r 256", "84" GET_HEAD "a1 72 cd 0100", BAD, 2, 0},
    {"negative w", "84" GET_HEAD "a1 77 ff", BAD, 2, 0},
    {"bool w", "84" GET_HEAD "a1 77 c3", BAD, 2, 0},
    {"integer map key", "83" ID "02" OP PING "01 02", BAD, 2, 0},
    {"duplicate key", "83" ID "02" OP PING OP GET, BAD, 2, 0},
    {"duplicate id", "83" ID "02" OP PING ID "03", BAD, 2, 0},
    {"trailing byte", "82" ID "01" OP PING "00", BAD, 0, 0},
    {"truncated", "82" ID "01" OP "a4 7069", BAD, 0, 0},
    {"reserved byte", "82" ID "01" OP "c1", BAD, 0, 0},
};

Test(wire, decode_req_handles_a_table_of_hand_written_requests)
{
    for (size_t i = 0; i < sizeof(req_cases) / sizeof(*req_cases); i++) {
        const struct req_case *c = &req_cases[i];
        uint8_t buf[256];
        size_t n = unhex(c->hex, buf, sizeof(buf));
        msgpack_zone zone;
        struct wire_req out;
        const char *why = NULL;
        msgpack_zone_init(&zone, 1024);
        int rc = wire_decode_req(buf, n, &test_limits, &zone, &out, &why);
        cr_assert_eq(rc, c->rc, "%s: rc %d, want %d (%s)", c->what, rc, c->rc,
                     why ? why : "-");
        cr_assert_eq(out.id, c->id, "%s: id %llu", c->what,
                     (unsigned long long)out.id);
        if (rc == 0)
            cr_assert_eq(out.op, c->op, "%s: op", c->what);
        else
            cr_assert_not_null(why, "%s: no reason", c->what);
        msgpack_zone_destroy(&zone);
    }
}

Test(wire, decode_req_fills_only_the_fields_its_op_uses)
{
    uint8_t buf[128];
    size_t n = unhex("86" ID "01" OP PING KEY_K VALUE_V CTX "c4 01 09"
                     "a1 77 02",
                     buf, sizeof(buf));
    msgpack_zone zone;
    struct wire_req out;
    const char *why;
    msgpack_zone_init(&zone, 1024);
    cr_assert_eq(wire_decode_req(buf, n, NULL, &zone, &out, &why), 0);
    cr_assert_eq(out.op, WIRE_OP_PING);
    cr_assert_null(out.key);
    cr_assert_null(out.value);
    cr_assert_null(out.ctx);
    cr_assert_eq(out.w, 2);
    msgpack_zone_destroy(&zone);
}

Test(wire, decode_req_treats_an_empty_ctx_as_none)
{
    uint8_t buf[128];
    size_t n = unhex("84" ID "04" OP DEL KEY_K CTX "c4 00", buf, sizeof(buf));
    msgpack_zone zone;
    struct wire_req out;
    const char *why;
    msgpack_zone_init(&zone, 1024);
    cr_assert_eq(wire_decode_req(buf, n, NULL, &zone, &out, &why), 0);
    cr_assert_null(out.ctx);
    cr_assert_eq(out.ctx_len, 0);
    msgpack_zone_destroy(&zone);
}

Test(wire, decode_req_rejects_a_frame_of_lying_headers_without_unpacking)
{
    const uint8_t frame[] = {0x81, 0xa2, 'i',  'd', 0xdd,
                             0xff, 0xff, 0xff, 0xff};
    msgpack_zone zone;
    struct wire_req out;
    const char *why = NULL;
    msgpack_zone_init(&zone, 1024);
    cr_assert_eq(wire_decode_req(frame, sizeof(frame), NULL, &zone, &out, &why),
                 RK_EBAD_REQUEST);
    cr_assert_str_eq(why, "declared count exceeds the remaining bytes");
    msgpack_zone_destroy(&zone);
}

Test(wire, op_names_match_the_wire)
{
    cr_assert_str_eq(wire_op_name(WIRE_OP_GET), "get");
    cr_assert_str_eq(wire_op_name(WIRE_OP_PUT), "put");
    cr_assert_str_eq(wire_op_name(WIRE_OP_DEL), "del");
    cr_assert_str_eq(wire_op_name(WIRE_OP_PING), "ping");
    cr_assert_str_eq(wire_op_name(WIRE_OP_STATS), "stats");
    cr_assert_str_eq(wire_op_name(WIRE_OP_NONE), "?");
    cr_assert_str_eq(wire_op_name(WIRE_OP_MAX), "?");
    cr_assert_str_eq(wire_op_name((enum wire_op) - 1), "?");
}

Test(wire, handshake_fields_round_trip_in_hello_auth_and_the_answer)
{
    uint8_t nonce[32], mac[32];
    memset(nonce, 0xab, sizeof(nonce));
    memset(mac, 0xcd, sizeof(mac));
    struct wire_req in = {.id = 5,
                          .op = WIRE_OP_HELLO,
                          .hello = {.cluster = (const uint8_t *)"ringkv",
                                    .cluster_len = 6,
                                    .node = (const uint8_t *)"n2",
                                    .node_len = 2,
                                    .nonce = nonce,
                                    .nonce_len = sizeof(nonce)}};
    struct wire_req out;
    struct wire_buf b;
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    cr_assert_eq(req_round_trip(&in, &b, &zone, NULL, &out), 0);
    cr_assert_eq(out.op, WIRE_OP_HELLO);
    assert_bytes_eq(out.hello.cluster, out.hello.cluster_len, in.hello.cluster,
                    6);
    assert_bytes_eq(out.hello.node, out.hello.node_len, in.hello.node, 2);
    assert_bytes_eq(out.hello.nonce, out.hello.nonce_len, nonce, 32);
    cr_assert_null(out.hello.mac);
    uint64_t id = 0;
    cr_assert_eq(wire_peek_id(b.data + WIRE_HDR_LEN, WIRE_PEEK_LEN, &id), 0);
    cr_assert_eq(id, 5);
    wire_buf_free(&b);

    struct wire_resp rin = {.id = 1ull << 40,
                            .op = WIRE_OP_HELLO,
                            .hello = {.node = (const uint8_t *)"n1",
                                      .node_len = 2,
                                      .nonce = nonce,
                                      .nonce_len = 32,
                                      .mac = mac,
                                      .mac_len = 32}};
    struct wire_resp rout;
    wire_buf_init(&b);
    cr_assert_eq(wire_encode_resp(&b, &rin), 0);
    cr_assert_eq(wire_peek_id(b.data + WIRE_HDR_LEN, WIRE_PEEK_LEN, &id), 0);
    cr_assert_eq(id, 1ull << 40);
    cr_assert_eq(wire_decode_resp(b.data + WIRE_HDR_LEN, b.len - WIRE_HDR_LEN,
                                  &zone, &rout, NULL),
                 0);
    assert_bytes_eq(rout.hello.mac, rout.hello.mac_len, mac, 32);
    assert_bytes_eq(rout.hello.node, rout.hello.node_len, rin.hello.node, 2);
    wire_buf_free(&b);
    msgpack_zone_destroy(&zone);
}

Test(wire, peek_id_refuses_what_does_not_start_with_an_id)
{
    const uint8_t not_map[] = {0x91, 0xa2, 'i', 'd', 0x01};
    const uint8_t other_key[] = {0x81, 0xa2, 'o', 'p', 0x01};
    const uint8_t cut[] = {0x81, 0xa2, 'i', 'd', 0xcf, 0, 0};
    uint64_t id = 0;
    cr_assert_eq(wire_peek_id(not_map, sizeof(not_map), &id), RK_EBAD_REQUEST);
    cr_assert_eq(wire_peek_id(other_key, sizeof(other_key), &id),
                 RK_EBAD_REQUEST);
    cr_assert_eq(wire_peek_id(cut, sizeof(cut), &id), RK_EBAD_REQUEST);
    cr_assert_eq(wire_peek_id(cut, 0, &id), RK_EBAD_REQUEST);
}

/* ---- frame splitting --------------------------------------------------- */

Test(wire, split_hands_out_whole_frames_and_waits_for_the_rest)
{
    /* two frames: "\x01" and "\x02\x03", then a header announcing 5 */
    const uint8_t in[] = {0, 0, 0, 1, 1, 0, 0, 0, 2, 2, 3, 0, 0, 0, 5, 9};
    struct wire_frame f;
    size_t off = 0;
    uint64_t skip = 0;
    cr_assert_eq(wire_split_next(in, 2, &off, 100, false, &skip, &f),
                 WIRE_SPLIT_MORE);
    cr_assert_eq(f.need, WIRE_HDR_LEN);
    cr_assert_eq(off, 0);
    cr_assert_eq(wire_split_next(in, sizeof(in), &off, 100, false, &skip, &f),
                 WIRE_SPLIT_FRAME);
    cr_assert_eq(f.len, 1);
    cr_assert_eq(f.body, in + 4);
    cr_assert_eq(wire_split_next(in, sizeof(in), &off, 100, false, &skip, &f),
                 WIRE_SPLIT_FRAME);
    cr_assert_eq(f.len, 2);
    cr_assert_eq(f.body[1], 3);
    cr_assert_eq(off, 11);
    cr_assert_eq(wire_split_next(in, sizeof(in), &off, 100, false, &skip, &f),
                 WIRE_SPLIT_MORE);
    cr_assert_eq(f.need, WIRE_HDR_LEN + 5);
    cr_assert_eq(off, 11, "a partial frame is not split off");
}

Test(wire, split_refuses_empty_and_oversized_frames_unless_skipping)
{
    const uint8_t empty[] = {0, 0, 0, 0};
    const uint8_t big[] = {0, 0, 0, 200, 1};
    struct wire_frame f;
    size_t off = 0;
    uint64_t skip = 0;
    cr_assert_eq(wire_split_next(empty, 4, &off, 100, true, &skip, &f),
                 WIRE_SPLIT_BAD);
    cr_assert_eq(f.err, RK_EBAD_REQUEST);
    cr_assert_eq(wire_split_next(big, 5, &off, 100, false, &skip, &f),
                 WIRE_SPLIT_BAD);
    cr_assert_eq(f.err, RK_ETOO_LARGE);
    cr_assert_eq(f.len, 200);
    cr_assert_eq(off, 0);
}

Test(wire, split_skips_an_oversized_frame_across_reads_with_its_id)
{
    /* a 40-byte frame {"id": 7, ...} over max_frame 30, then a frame "\x05" */
    uint8_t in[4 + 40 + 5] = {0, 0, 0, 40, 0x81, 0xa2, 'i', 'd', 7};
    memcpy(in + 44, (const uint8_t[]){0, 0, 0, 1, 5}, 5);
    struct wire_frame f;
    size_t off = 0;
    uint64_t skip = 0;
    /* the id is not buffered yet: wait */
    cr_assert_eq(wire_split_next(in, 10, &off, 30, true, &skip, &f),
                 WIRE_SPLIT_MORE);
    cr_assert_eq(off, 0);
    /* 20 of its 40 body bytes are here: skip them, 20 remain */
    cr_assert_eq(wire_split_next(in, 24, &off, 30, true, &skip, &f),
                 WIRE_SPLIT_SKIPPED);
    cr_assert_eq(f.len, 40);
    cr_assert_eq(f.id, 7);
    cr_assert_eq(off, 24);
    cr_assert_eq(skip, 20);
    /* the rest arrives with the next frame: discarded, then the frame */
    cr_assert_eq(wire_split_next(in, sizeof(in), &off, 30, true, &skip, &f),
                 WIRE_SPLIT_FRAME);
    cr_assert_eq(skip, 0);
    cr_assert_eq(f.len, 1);
    cr_assert_eq(f.body[0], 5);
    cr_assert_eq(off, sizeof(in));
}

/* ---- responses --------------------------------------------------------- */

static void resp_round_trip(const struct wire_resp *in, struct wire_buf *b,
                            msgpack_zone *zone, struct wire_resp *out)
{
    uint32_t len = 0;
    const char *why = NULL;
    wire_buf_init(b);
    cr_assert_eq(wire_encode_resp(b, in), 0);
    cr_assert_eq(wire_frame_len(b->data, UINT32_MAX, &len), 0);
    cr_assert_eq(len, b->len - WIRE_HDR_LEN);
    int rc = wire_decode_resp(b->data + WIRE_HDR_LEN, len, zone, out, &why);
    cr_assert_eq(rc, 0, "decode_resp: %s", why ? why : "-");
    cr_assert_eq(out->id, in->id);
    cr_assert_eq(out->op, WIRE_OP_NONE);
}

Test(wire, get_response_round_trips_siblings_and_context)
{
    const struct wire_value vals[] = {{(const uint8_t *)"one", 3},
                                      {(const uint8_t *)"", 0},
                                      {(const uint8_t *)"th\0ree", 6}};
    const struct wire_resp in = {.id = 10,
                                 .op = WIRE_OP_GET,
                                 .values = vals,
                                 .nvalues = 3,
                                 .ctx = (const uint8_t *)"\xaa\xbb",
                                 .ctx_len = 2};
    struct wire_buf b;
    msgpack_zone zone;
    struct wire_resp out;
    msgpack_zone_init(&zone, 1024);
    resp_round_trip(&in, &b, &zone, &out);
    cr_assert_eq(out.err, 0);
    cr_assert_eq(out.nvalues, 3);
    for (uint32_t i = 0; i < 3; i++)
        assert_bytes_eq(out.values[i].data, out.values[i].len, vals[i].data,
                        vals[i].len);
    assert_bytes_eq(out.ctx, out.ctx_len, in.ctx, in.ctx_len);
    wire_buf_free(&b);
    msgpack_zone_destroy(&zone);
}

Test(wire, get_response_for_a_missing_key_has_no_values)
{
    const struct wire_resp in = {.id = 11, .op = WIRE_OP_GET};
    struct wire_buf b;
    msgpack_zone zone;
    struct wire_resp out;
    msgpack_zone_init(&zone, 1024);
    resp_round_trip(&in, &b, &zone, &out);
    cr_assert_eq(out.err, 0);
    cr_assert_eq(out.nvalues, 0);
    cr_assert_null(out.ctx);
    /* Both fields are on the wire: {id, ok, values: [], ctx: bin ""} */
    uint8_t want[64];
    size_t n = unhex("84 a2 6964 0b a2 6f6b c3 a6 76616c756573 90"
                     "a3 637478 c4 00",
                     want, sizeof(want));
    cr_assert_eq(b.len - WIRE_HDR_LEN, n);
    cr_assert_eq(memcmp(b.data + WIRE_HDR_LEN, want, n), 0);
    wire_buf_free(&b);
    msgpack_zone_destroy(&zone);
}

Test(wire, put_and_del_responses_carry_ctx_only_when_given)
{
    const enum wire_op ops[] = {WIRE_OP_PUT, WIRE_OP_DEL};
    for (size_t i = 0; i < 2; i++) {
        struct wire_resp in = {.id = 12, .op = ops[i]};
        struct wire_buf b;
        msgpack_zone zone;
        struct wire_resp out;
        msgpack_zone_init(&zone, 1024);
        resp_round_trip(&in, &b, &zone, &out);
        cr_assert_eq(out.err, 0);
        cr_assert_null(out.ctx);
        cr_assert_eq(b.data[WIRE_HDR_LEN], 0x82);
        wire_buf_free(&b);

        in.ctx = (const uint8_t *)"\x01\x02\x03";
        in.ctx_len = 3;
        resp_round_trip(&in, &b, &zone, &out);
        cr_assert_eq(b.data[WIRE_HDR_LEN], 0x83);
        assert_bytes_eq(out.ctx, out.ctx_len, in.ctx, in.ctx_len);
        wire_buf_free(&b);
        msgpack_zone_destroy(&zone);
    }
}

Test(wire, put_response_encoding_is_pinned)
{
    /* The response of the worked example in docs/protocol.md. */
    const struct wire_resp in = {.id = 42,
                                 .op = WIRE_OP_PUT,
                                 .ctx = (const uint8_t *)"\x01\x02\x03",
                                 .ctx_len = 3};
    uint8_t want[64];
    size_t n = unhex("00000012 83 a2 6964 2a a2 6f6b c3 a3 637478 c4 03 010203",
                     want, sizeof(want));
    struct wire_buf b;
    wire_buf_init(&b);
    cr_assert_eq(wire_encode_resp(&b, &in), 0);
    cr_assert_eq(b.len, n);
    cr_assert_eq(memcmp(b.data, want, n), 0);
    wire_buf_free(&b);
}

Test(wire, ping_response_is_just_id_and_ok)
{
    const struct wire_resp in = {.id = 13, .op = WIRE_OP_PING};
    struct wire_buf b;
    msgpack_zone zone;
    struct wire_resp out;
    msgpack_zone_init(&zone, 1024);
    resp_round_trip(&in, &b, &zone, &out);
    cr_assert_eq(out.err, 0);
    cr_assert_eq(b.len, WIRE_HDR_LEN + 9);
    wire_buf_free(&b);
    msgpack_zone_destroy(&zone);
}

Test(wire, stats_response_round_trips_integers_and_strings)
{
    const struct wire_stat st[] = {
        {"requests", NULL, 12345}, {"skew", NULL, -7},
        {"max", NULL, INT64_MAX},  {"min", NULL, INT64_MIN},
        {"version", "0.1.0", 0},
    };
    const struct wire_resp in = {
        .id = 14, .op = WIRE_OP_STATS, .stats = st, .nstats = 5};
    struct wire_buf b;
    msgpack_zone zone;
    struct wire_resp out;
    msgpack_zone_init(&zone, 1024);
    resp_round_trip(&in, &b, &zone, &out);
    cr_assert_eq(out.nstats, 5);
    for (uint32_t i = 0; i < 5; i++) {
        cr_assert_str_eq(out.stats[i].name, st[i].name);
        if (st[i].sval) {
            cr_assert_str_eq(out.stats[i].sval, st[i].sval);
        } else {
            cr_assert_null(out.stats[i].sval);
            cr_assert_eq(out.stats[i].ival, st[i].ival);
        }
    }
    wire_buf_free(&b);
    msgpack_zone_destroy(&zone);
}

Test(wire, error_response_round_trips_code_message_and_definiteness)
{
    const struct wire_resp in = {
        .id = 15, .op = WIRE_OP_PUT, .err = RK_ETIMEOUT, .definite = false};
    struct wire_buf b;
    msgpack_zone zone;
    struct wire_resp out;
    msgpack_zone_init(&zone, 1024);
    resp_round_trip(&in, &b, &zone, &out);
    cr_assert_eq(out.err, RK_ETIMEOUT);
    cr_assert_eq(out.definite, false);
    cr_assert_str_eq(out.msg, rk_err_msg(RK_ETIMEOUT));
    cr_assert_eq(out.nvalues, 0);
    cr_assert_null(out.ctx);
    wire_buf_free(&b);

    const struct wire_resp bad = {.id = 0,
                                  .op = WIRE_OP_GET,
                                  .err = RK_EBAD_REQUEST,
                                  .definite = true,
                                  .msg = "key must be bin or str"};
    resp_round_trip(&bad, &b, &zone, &out);
    cr_assert_eq(out.err, RK_EBAD_REQUEST);
    cr_assert_eq(out.definite, true);
    cr_assert_str_eq(out.msg, "key must be bin or str");
    wire_buf_free(&b);
    msgpack_zone_destroy(&zone);
}

Test(wire, error_messages_are_cut_to_the_maximum)
{
    char msg[WIRE_MAX_MSG * 2 + 1];
    memset(msg, 'm', sizeof(msg) - 1);
    msg[sizeof(msg) - 1] = '\0';
    const struct wire_resp in = {
        .id = 16, .err = RK_EINTERNAL, .definite = false, .msg = msg};
    struct wire_buf b;
    msgpack_zone zone;
    struct wire_resp out;
    msgpack_zone_init(&zone, 1024);
    resp_round_trip(&in, &b, &zone, &out);
    cr_assert_eq(strlen(out.msg), WIRE_MAX_MSG);
    wire_buf_free(&b);
    msgpack_zone_destroy(&zone);
}

Test(wire, system_errors_travel_as_code_system)
{
    const struct wire_resp in = {.id = 17, .err = -ENOSPC};
    struct wire_buf b;
    msgpack_zone zone;
    struct wire_resp out;
    msgpack_zone_init(&zone, 1024);
    resp_round_trip(&in, &b, &zone, &out);
    /* "system" is not a project code: clients see RK_EINTERNAL. */
    cr_assert_eq(out.err, RK_EINTERNAL);
    cr_assert_str_eq(out.msg, rk_err_msg(-ENOSPC));
    wire_buf_free(&b);
    msgpack_zone_destroy(&zone);
}

Test(wire, decode_resp_rejects_malformed_responses)
{
    static const char *const bad[] = {
        "81 a2 6f6b c3",                            /* no id */
        "81" ID "01",                               /* no ok */
        "82" ID "01 a2 6f6b 01",                    /* ok not bool */
        "82" ID "ff a2 6f6b c3",                    /* negative id */
        "82" ID "01 a2 6f6b c2",                    /* error without code */
        "83" ID "01 a2 6f6b c2 a4 636f6465 01",     /* code not str */
        "83" ID "01 a2 6f6b c3 a6 76616c756573 01", /* values not array */
        "83" ID "01 a2 6f6b c3 a6 76616c756573 91 a1 78",  /* str value */
        "83" ID "01 a2 6f6b c3 a3 637478 a1 78",           /* ctx str */
        "83" ID "01 a2 6f6b c3 a5 7374617473 90",          /* stats not map */
        "83" ID "01 a2 6f6b c3 a5 7374617473 81 01 01",    /* int name */
        "83" ID "01 a2 6f6b c3 a5 7374617473 81 a1 78 c3", /* bool stat */
        "83" ID "01 a2 6f6b c3 a5 7374617473 81 a1 78 cf ffffffffffffffff",
        "83" ID "01 a2 6f6b c3 a2 6f6b c3", /* duplicate ok */
        "92 01 02",                         /* not a map */
        "82" ID "01 a2 6f6b",               /* truncated */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        uint8_t buf[128];
        size_t n = unhex(bad[i], buf, sizeof(buf));
        msgpack_zone zone;
        struct wire_resp out;
        const char *why = NULL;
        msgpack_zone_init(&zone, 1024);
        cr_assert_eq(wire_decode_resp(buf, n, &zone, &out, &why),
                     RK_EBAD_REQUEST, "accepted %s", bad[i]);
        cr_assert_not_null(why);
        msgpack_zone_destroy(&zone);
    }
}

Test(wire, decode_resp_rejects_more_than_the_maximum_values)
{
    struct wire_value vals[WIRE_MAX_VALUES + 1];
    for (size_t i = 0; i < WIRE_MAX_VALUES + 1; i++) {
        vals[i].data = (const uint8_t *)"v";
        vals[i].len = 1;
    }
    struct wire_resp in = {
        .id = 1, .op = WIRE_OP_GET, .values = vals, .nvalues = WIRE_MAX_VALUES};
    struct wire_buf b;
    msgpack_zone zone;
    struct wire_resp out;
    const char *why;
    msgpack_zone_init(&zone, 1024);
    resp_round_trip(&in, &b, &zone, &out);
    cr_assert_eq(out.nvalues, WIRE_MAX_VALUES);
    wire_buf_free(&b);

    in.nvalues = WIRE_MAX_VALUES + 1;
    wire_buf_init(&b);
    cr_assert_eq(wire_encode_resp(&b, &in), 0);
    cr_assert_eq(wire_decode_resp(b.data + WIRE_HDR_LEN, b.len - WIRE_HDR_LEN,
                                  &zone, &out, &why),
                 RK_EBAD_REQUEST);
    wire_buf_free(&b);
    msgpack_zone_destroy(&zone);
}

Test(wire, decode_resp_ignores_unknown_keys_and_error_fields_on_success)
{
    uint8_t buf[128];
    size_t n = unhex("84" ID "05 a2 6f6b c3 a3 6e6577 92 01 02"
                     "a4 636f6465 a7 74696d656f7574",
                     buf, sizeof(buf));
    msgpack_zone zone;
    struct wire_resp out;
    const char *why;
    msgpack_zone_init(&zone, 1024);
    cr_assert_eq(wire_decode_resp(buf, n, &zone, &out, &why), 0);
    cr_assert_eq(out.id, 5);
    cr_assert_eq(out.err, 0);
    msgpack_zone_destroy(&zone);
}

Test(wire, gossip_carries_one_bounded_payload)
{
    static uint8_t big[WIRE_MAX_GOSSIP + 1];
    struct wire_buf b;
    msgpack_zone zone;
    struct wire_req out;
    struct wire_limits small = test_limits;

    msgpack_zone_init(&zone, 1024);
    cr_assert_str_eq(wire_op_name(WIRE_OP_GOSSIP), "gossip");
    struct wire_req g = {.id = 9,
                         .op = WIRE_OP_GOSSIP,
                         .data = (const uint8_t *)"members",
                         .data_len = 7};
    cr_assert_eq(req_round_trip(&g, &b, &zone, &test_limits, &out), 0);
    cr_assert_eq(out.op, WIRE_OP_GOSSIP);
    cr_assert_eq(out.id, 9);
    assert_bytes_eq(out.data, out.data_len, g.data, g.data_len);
    wire_buf_free(&b);

    /* An empty payload is a payload. */
    g.data = NULL;
    g.data_len = 0;
    cr_assert_eq(req_round_trip(&g, &b, &zone, &test_limits, &out), 0);
    cr_assert_eq(out.data_len, 0);
    cr_assert_null(out.data);
    wire_buf_free(&b);

    /* Over WIRE_MAX_GOSSIP, or over max_frame: too_large, id kept. */
    g.data = big;
    g.data_len = WIRE_MAX_GOSSIP + 1;
    cr_assert_eq(req_round_trip(&g, &b, &zone, &test_limits, &out),
                 RK_ETOO_LARGE);
    cr_assert_eq(out.id, 9);
    wire_buf_free(&b);
    g.data_len = WIRE_MAX_GOSSIP;
    cr_assert_eq(req_round_trip(&g, &b, &zone, &test_limits, &out), 0);
    wire_buf_free(&b);
    small.max_frame = 100;
    g.data_len = 101;
    cr_assert_eq(req_round_trip(&g, &b, &zone, &small, &out), RK_ETOO_LARGE);
    wire_buf_free(&b);
    msgpack_zone_destroy(&zone);
}

Test(wire, gossip_without_bin_data_is_a_bad_request)
{
    msgpack_zone zone;
    struct wire_req out;
    const char *why = NULL;
    uint8_t body[64];
    /* {"id": 3, "op": "gossip"} and {"id": 3, "op": "gossip", "data": "x"} */
    size_t n = unhex("82a2696403a26f70a6676f73736970", body, sizeof(body));
    msgpack_zone_init(&zone, 1024);
    cr_assert_eq(wire_decode_req(body, n, &test_limits, &zone, &out, &why),
                 RK_EBAD_REQUEST);
    cr_assert_str_eq(why, "missing data");
    n = unhex("83a2696403a26f70a6676f73736970a464617461a178", body,
              sizeof(body));
    cr_assert_eq(wire_decode_req(body, n, &test_limits, &zone, &out, &why),
                 RK_EBAD_REQUEST);
    cr_assert_str_eq(why, "data must be bin");
    cr_assert_eq(out.id, 3);
    msgpack_zone_destroy(&zone);
}

Test(wire, admin_round_trips_its_fields_and_text)
{
    struct wire_buf b;
    msgpack_zone zone;
    struct wire_req out;
    msgpack_zone_init(&zone, 1024);
    cr_assert_str_eq(wire_op_name(WIRE_OP_ADMIN), "admin");
    struct wire_req a = {.id = 4,
                         .op = WIRE_OP_ADMIN,
                         .cmd = "xfer_done",
                         .arg = "node3",
                         .part = 65535,
                         .json = true};
    cr_assert_eq(req_round_trip(&a, &b, &zone, &test_limits, &out), 0);
    cr_assert_eq(out.op, WIRE_OP_ADMIN);
    cr_assert_str_eq(out.cmd, "xfer_done");
    cr_assert_str_eq(out.arg, "node3");
    cr_assert_eq(out.part, 65535);
    cr_assert(out.json);
    wire_buf_free(&b);

    /* The answer's text, through the response codec. */
    struct wire_resp r = {
        .id = 4, .op = WIRE_OP_ADMIN, .text = "{\"members\":[]}\n"};
    struct wire_resp rd;
    const char *why = NULL;
    wire_buf_init(&b);
    cr_assert_eq(wire_encode_resp(&b, &r), 0);
    cr_assert_eq(wire_decode_resp(b.data + WIRE_HDR_LEN, b.len - WIRE_HDR_LEN,
                                  &zone, &rd, &why),
                 0);
    cr_assert_str_eq(rd.text, "{\"members\":[]}\n");
    wire_buf_free(&b);
    msgpack_zone_destroy(&zone);
}

Test(wire, admin_fields_are_checked)
{
    msgpack_zone zone;
    struct wire_req out;
    const char *why = NULL;
    uint8_t body[512];
    msgpack_zone_init(&zone, 1024);
    /* {"id": 5, "op": "admin"}: no cmd */
    size_t n = unhex("82a2696405a26f70a561646d696e", body, sizeof(body));
    cr_assert_eq(wire_decode_req(body, n, &test_limits, &zone, &out, &why),
                 RK_EBAD_REQUEST);
    cr_assert_eq(out.id, 5);
    /* cmd of 33 bytes */
    n = unhex(
        "83a2696405a26f70a561646d696ea3636d64d921"
        "616161616161616161616161616161616161616161616161616161616161616161",
        body, sizeof(body));
    cr_assert_eq(wire_decode_req(body, n, &test_limits, &zone, &out, &why),
                 RK_EBAD_REQUEST);
    /* part 65536 */
    n = unhex("84a2696405a26f70a561646d696ea3636d64a46c697374a470617274ce000100"
              "00",
              body, sizeof(body));
    cr_assert_eq(wire_decode_req(body, n, &test_limits, &zone, &out, &why),
                 RK_EBAD_REQUEST);
    cr_assert_str_eq(why, "part must be an unsigned integer below 65536");
    /* json that is not a boolean */
    n = unhex("84a2696405a26f70a561646d696ea3636d64a46c697374a46a736f6e01",
              body, sizeof(body));
    cr_assert_eq(wire_decode_req(body, n, &test_limits, &zone, &out, &why),
                 RK_EBAD_REQUEST);
    cr_assert_str_eq(why, "json must be a boolean");
    /* a cmd with NUL bytes (found by fuzz_wire: it re-encoded shorter) */
    n = unhex("83a2696405a26f70a561646d696ea3636d64a6000000357665", body,
              sizeof(body));
    cr_assert_eq(wire_decode_req(body, n, &test_limits, &zone, &out, &why),
                 RK_EBAD_REQUEST);
    cr_assert_str_eq(why, "cmd and arg must not contain NUL bytes");
    /* an arg over 300 bytes */
    uint8_t big[400];
    size_t k =
        unhex("84a2696405a26f70a561646d696ea3636d64a46c697374a3617267da012d",
              big, sizeof(big));
    memset(big + k, 'x', 301);
    cr_assert_eq(wire_decode_req(big, k + 301, &test_limits, &zone, &out, &why),
                 RK_EBAD_REQUEST);
    cr_assert_str_eq(why, "arg must be a string of at most 300 bytes");
    msgpack_zone_destroy(&zone);
}
