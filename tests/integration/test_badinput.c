/*
 * test_badinput.c - hostile bytes on the native port: every case gets a
 * clear error (or, when the stream cannot be framed, an error and a
 * disconnect) and other clients keep being served.
 */
#include "tests/integration/itest.h"

TestSuite(badinput, .timeout = 120, .fini = itest_cleanup);

static void send_all(int fd, const void *p, size_t n)
{
    cr_assert_eq(write(fd, p, n), (ssize_t)n);
}

static void send_frame(int fd, const void *body, size_t n)
{
    uint8_t hdr[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8),
                      (uint8_t)n};
    send_all(fd, hdr, 4);
    send_all(fd, body, n);
}

static int read_full(int fd, uint8_t *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

/* Reads one response frame; returns its error code (0 = ok) and id. */
static int read_resp(int fd, uint64_t *id)
{
    uint8_t hdr[4], body[65536];
    uint32_t len;
    msgpack_zone zone;
    struct wire_resp r;
    const char *why = NULL;

    cr_assert_eq(read_full(fd, hdr, 4), 0, "expected a response");
    cr_assert_eq(wire_frame_len(hdr, sizeof(body), &len), 0);
    cr_assert_eq(read_full(fd, body, len), 0);
    msgpack_zone_init(&zone, 1024);
    cr_assert_eq(wire_decode_resp(body, len, &zone, &r, &why), 0, "%s", why);
    msgpack_zone_destroy(&zone);
    *id = r.id;
    return r.err;
}

/* True when the server closed fd: EOF or a reset, not the receive
 * timeout. */
static int closed_by_peer(int fd)
{
    uint8_t b;
    ssize_t r = read(fd, &b, 1);
    return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

static void pack_map_req(struct wire_buf *b, int id_is_string, uint64_t id,
                         const char *op, size_t keylen)
{
    msgpack_packer pk;
    wire_packer_init(&pk, b);
    msgpack_pack_map(&pk, keylen ? 3 : 2);
    msgpack_pack_str_with_body(&pk, "id", 2);
    if (id_is_string)
        msgpack_pack_str_with_body(&pk, "x", 1);
    else
        msgpack_pack_uint64(&pk, id);
    msgpack_pack_str_with_body(&pk, "op", 2);
    msgpack_pack_str_with_body(&pk, op, strlen(op));
    if (keylen) {
        char *key = malloc(keylen);
        memset(key, 'k', keylen);
        msgpack_pack_str_with_body(&pk, "key", 3);
        msgpack_pack_bin_with_body(&pk, key, keylen);
        free(key);
    }
}

static void assert_still_serving(const struct itest_node *n)
{
    cr_assert(itest_ping(n), "other clients keep being served");
}

Test(badinput, oversized_frame_gets_an_error_then_a_disconnect)
{
    struct itest_node *n =
        itest_start("--max-frame", "65536", "--max-value", "60000", NULL);
    int fd = itest_raw_connect(n->port);
    uint64_t id = 99;
    const uint8_t hdr[4] = {0xff, 0xff, 0xff, 0xff};

    send_all(fd, hdr, 4);
    cr_assert_eq(read_resp(fd, &id), RK_ETOO_LARGE);
    cr_assert_eq(id, 0);
    cr_assert(closed_by_peer(fd));
    close(fd);
    assert_still_serving(n);
}

Test(badinput, declared_counts_beyond_the_bytes_present_are_refused)
{
    struct itest_node *n = itest_start(NULL);
    int fd = itest_raw_connect(n->port);
    uint64_t id;
    const uint8_t array32[5] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    const uint8_t map32[5] = {0xdf, 0xff, 0xff, 0xff, 0xff};
    const uint8_t bin32[5] = {0xc6, 0x7f, 0xff, 0xff, 0xff};

    send_frame(fd, array32, 5);
    cr_assert_eq(read_resp(fd, &id), RK_EBAD_REQUEST);
    send_frame(fd, map32, 5);
    cr_assert_eq(read_resp(fd, &id), RK_EBAD_REQUEST);
    send_frame(fd, bin32, 5);
    cr_assert_eq(read_resp(fd, &id), RK_EBAD_REQUEST);

    /* The connection is still usable: a valid ping works on it. */
    struct wire_buf b;
    wire_buf_init(&b);
    pack_map_req(&b, 0, 77, "ping", 0);
    send_frame(fd, b.data, b.len);
    cr_assert_eq(read_resp(fd, &id), 0);
    cr_assert_eq(id, 77);
    wire_buf_free(&b);
    close(fd);
    assert_still_serving(n);
}

Test(badinput, a_nesting_bomb_is_refused)
{
    struct itest_node *n = itest_start(NULL);
    int fd = itest_raw_connect(n->port);
    uint64_t id;
    uint8_t bomb[20001];

    memset(bomb, 0x91, sizeof(bomb) - 1); /* [[[[...]]]] */
    bomb[sizeof(bomb) - 1] = 0x00;
    send_frame(fd, bomb, sizeof(bomb));
    cr_assert_eq(read_resp(fd, &id), RK_EBAD_REQUEST);
    close(fd);
    assert_still_serving(n);
}

Test(badinput, wrong_types_unknown_ops_and_oversized_keys_get_errors_by_id)
{
    struct itest_node *n =
        itest_start("--max-key", "100", "--max-value", "1000", NULL);
    int fd = itest_raw_connect(n->port);
    struct wire_buf b;
    uint64_t id;

    wire_buf_init(&b);
    pack_map_req(&b, 1, 0, "get", 1); /* id is a string */
    send_frame(fd, b.data, b.len);
    cr_assert_eq(read_resp(fd, &id), RK_EBAD_REQUEST);
    cr_assert_eq(id, 0);

    b.len = 0;
    pack_map_req(&b, 0, 6, "frobnicate", 0);
    send_frame(fd, b.data, b.len);
    cr_assert_eq(read_resp(fd, &id), RK_EUNKNOWN_OP);
    cr_assert_eq(id, 6);

    b.len = 0;
    pack_map_req(&b, 0, 7, "get", 101);
    send_frame(fd, b.data, b.len);
    cr_assert_eq(read_resp(fd, &id), RK_ETOO_LARGE);
    cr_assert_eq(id, 7);

    b.len = 0;
    pack_map_req(&b, 0, 8, "get", 0); /* get without a key */
    send_frame(fd, b.data, b.len);
    cr_assert_eq(read_resp(fd, &id), RK_EBAD_REQUEST);
    cr_assert_eq(id, 8);

    b.len = 0;
    struct wire_req put = {.id = 9,
                           .op = WIRE_OP_PUT,
                           .key = (const uint8_t *)"k",
                           .key_len = 1,
                           .value = (const uint8_t *)malloc(1001),
                           .value_len = 1001};
    memset((void *)put.value, 'v', 1001);
    cr_assert_eq(wire_encode_req(&b, &put), 0);
    free((void *)put.value);
    send_all(fd, b.data, b.len);
    cr_assert_eq(read_resp(fd, &id), RK_ETOO_LARGE);
    cr_assert_eq(id, 9);

    /* Not a map at all. */
    const uint8_t num = 0x05;
    send_frame(fd, &num, 1);
    cr_assert_eq(read_resp(fd, &id), RK_EBAD_REQUEST);

    wire_buf_free(&b);
    close(fd);
    assert_still_serving(n);
}

Test(badinput, connections_beyond_max_clients_are_refused_politely)
{
    struct itest_node *n = itest_start("--max-clients", "2", NULL);
    int a = itest_raw_connect(n->port), b = itest_raw_connect(n->port);
    struct wire_buf w;
    uint64_t id;

    /* Make sure both are accepted before the third arrives. */
    wire_buf_init(&w);
    pack_map_req(&w, 0, 1, "ping", 0);
    send_frame(a, w.data, w.len);
    cr_assert_eq(read_resp(a, &id), 0);
    send_frame(b, w.data, w.len);
    cr_assert_eq(read_resp(b, &id), 0);

    int c = itest_raw_connect(n->port);
    cr_assert_eq(read_resp(c, &id), RK_EOVERLOADED);
    cr_assert(closed_by_peer(c));
    close(c);
    close(a);
    close(b);
    wire_buf_free(&w);
}

Test(badinput, idle_connections_are_closed_after_idle_timeout)
{
    struct itest_node *n = itest_start("--idle-timeout", "1s", NULL);
    int fd = itest_raw_connect(n->port);
    /* The server closes it within a few seconds (SO_RCVTIMEO is 10 s). */
    cr_assert(closed_by_peer(fd));
    close(fd);
    assert_still_serving(n);
}
