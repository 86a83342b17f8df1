/*
 * test_client.c - the C client (client/client.h) against a scripted fake
 * node, and the text helpers (client/client_util.h).
 *
 * Each client test starts a fake server thread on a loopback listener bound
 * to port 0. The thread accepts one connection and runs a script: read
 * requests with the real codec (wire_decode_req), answer with
 * wire_encode_resp or with raw bytes, then close. The thread never calls
 * Criterion: it records its first failed check in fake.fail, which the test
 * asserts empty after joining. No sleeps: a script that must outlive the
 * client (the timeout test) blocks reading until the client closes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "client/client.h"
#include "client/client_util.h"

#define FAKE_MAX_REQS 8

struct fake;
typedef void (*fake_script)(struct fake *f);

struct fake {
    int lfd;
    int fd;
    uint16_t port;
    pthread_t th;
    fake_script script;
    char fail[256];
    msgpack_zone zone;
    uint8_t *frames[FAKE_MAX_REQS];
    struct wire_req reqs[FAKE_MAX_REQS];
    int nreqs;
};

#define FCHECK(f, cond)                                                        \
    do {                                                                       \
        if (!(cond)) {                                                         \
            if ((f)->fail[0] == 0)                                             \
                snprintf((f)->fail, sizeof((f)->fail), "line %d: %s",          \
                         __LINE__, #cond);                                     \
            return;                                                            \
        }                                                                      \
    } while (0)

static bool fake_read_all(int fd, void *p, size_t n)
{
    uint8_t *b = p;
    while (n > 0) {
        ssize_t r = read(fd, b, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        b += r;
        n -= (size_t)r;
    }
    return true;
}

static bool fake_write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        b += w;
        n -= (size_t)w;
    }
    return true;
}

/* Reads and decodes the next request into f->reqs[f->nreqs++]; NULL on
 * EOF or a bad request. */
static const struct wire_req *fake_read_req(struct fake *f)
{
    uint8_t hdr[WIRE_HDR_LEN];
    uint32_t len;
    if (f->nreqs == FAKE_MAX_REQS || !fake_read_all(f->fd, hdr, sizeof(hdr)) ||
        wire_frame_len(hdr, WIRE_DEFAULT_MAX_FRAME, &len) != 0)
        return NULL;
    uint8_t *body = malloc(len);
    if (body == NULL)
        return NULL;
    f->frames[f->nreqs] = body;
    if (!fake_read_all(f->fd, body, len))
        return NULL;
    struct wire_limits lim = {WIRE_DEFAULT_MAX_FRAME, WIRE_DEFAULT_MAX_KEY,
                              WIRE_DEFAULT_MAX_VALUE};
    const char *why;
    struct wire_req *q = &f->reqs[f->nreqs];
    if (wire_decode_req(body, len, &lim, &f->zone, q, &why) != 0)
        return NULL;
    f->nreqs++;
    return q;
}

static bool fake_send(struct fake *f, const struct wire_resp *r)
{
    struct wire_buf b;
    wire_buf_init(&b);
    bool ok =
        wire_encode_resp(&b, r) == 0 && fake_write_all(f->fd, b.data, b.len);
    wire_buf_free(&b);
    return ok;
}

/* Blocks until the client closes its end. */
static void fake_wait_eof(struct fake *f)
{
    uint8_t b[256];
    while (read(f->fd, b, sizeof(b)) > 0)
        ;
}

static bool key_is(const struct wire_req *q, const char *k)
{
    return q->key_len == strlen(k) && memcmp(q->key, k, q->key_len) == 0;
}

static void *fake_main(void *arg)
{
    struct fake *f = arg;
    f->fd = accept(f->lfd, NULL, NULL);
    if (f->fd < 0) {
        snprintf(f->fail, sizeof(f->fail), "accept: %s", strerror(errno));
        return NULL;
    }
    f->script(f);
    close(f->fd);
    return NULL;
}

static void fake_start(struct fake *f, fake_script script)
{
    memset(f, 0, sizeof(*f));
    f->script = script;
    cr_assert(msgpack_zone_init(&f->zone, 4096));
    f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(f->lfd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(f->lfd, 4), 0);
    socklen_t sl = sizeof(sa);
    cr_assert_eq(getsockname(f->lfd, (struct sockaddr *)&sa, &sl), 0);
    f->port = ntohs(sa.sin_port);
    cr_assert_eq(pthread_create(&f->th, NULL, fake_main, f), 0);
}

static void fake_join(struct fake *f)
{
    cr_assert_eq(pthread_join(f->th, NULL), 0);
    close(f->lfd);
    for (int i = 0; i < FAKE_MAX_REQS; i++)
        free(f->frames[i]);
    msgpack_zone_destroy(&f->zone);
    cr_expect_str_empty(f->fail, "fake server: %s", f->fail);
}

static struct rkc *connect_to(const struct fake *f)
{
    struct rkc *c = NULL;
    int rc = rkc_connect(&c, "127.0.0.1", f->port, 5000);
    cr_assert_eq(rc, 0, "connect: %s", rk_err_msg(rc));
    cr_assert_not_null(c);
    return c;
}

TestSuite(client, .timeout = 10);

/* ---- simple calls -------------------------------------------------------- */

static void script_get_siblings(struct fake *f)
{
    const struct wire_req *q = fake_read_req(f);
    FCHECK(f, q != NULL);
    FCHECK(f, q->op == WIRE_OP_GET && key_is(q, "k"));
    FCHECK(f, q->r == 0 && q->w == 0);
    struct wire_value vals[2] = {{(const uint8_t *)"a", 1},
                                 {(const uint8_t *)"b\0c", 3}};
    struct wire_resp r = {.id = q->id,
                          .op = WIRE_OP_GET,
                          .values = vals,
                          .nvalues = 2,
                          .ctx = (const uint8_t *)"\x01\x02",
                          .ctx_len = 2};
    FCHECK(f, fake_send(f, &r));
}

Test(client, get_returns_every_sibling_and_the_context)
{
    struct fake f;
    fake_start(&f, script_get_siblings);
    struct rkc *c = connect_to(&f);
    struct rkc_result res;
    cr_assert_eq(rkc_get(c, "k", 1, &res), 0);
    cr_assert_eq(res.err, 0);
    cr_assert_eq(res.nvalues, 2);
    cr_assert_eq(res.values[0].len, 1);
    cr_assert_eq(memcmp(res.values[0].data, "a", 2), 0); /* NUL after */
    cr_assert_eq(res.values[1].len, 3);
    cr_assert_eq(memcmp(res.values[1].data, "b\0c", 3), 0);
    cr_assert_eq(res.ctx_len, 2);
    cr_assert_eq(memcmp(res.ctx, "\x01\x02", 2), 0);
    cr_assert_str_empty(res.message);
    rkc_result_free(&res);
    cr_assert_null(res.values);
    rkc_result_free(&res); /* freeing twice is harmless */
    rkc_close(c);
    fake_join(&f);
}

static void script_not_found(struct fake *f)
{
    const struct wire_req *q = fake_read_req(f);
    FCHECK(f, q != NULL);
    struct wire_resp r = {.id = q->id, .op = WIRE_OP_GET};
    FCHECK(f, fake_send(f, &r));
    q = fake_read_req(f);
    FCHECK(f, q != NULL);
    struct wire_resp nf = {
        .id = q->id, .op = WIRE_OP_GET, .err = RK_ENOT_FOUND, .definite = true};
    FCHECK(f, fake_send(f, &nf));
}

Test(client, get_of_a_missing_key_is_ok_with_no_values)
{
    struct fake f;
    fake_start(&f, script_not_found);
    struct rkc *c = connect_to(&f);
    struct rkc_result res;
    cr_assert_eq(rkc_get(c, "nope", 4, &res), 0);
    cr_assert_eq(res.nvalues, 0);
    cr_assert_null(res.values);
    rkc_result_free(&res);
    /* A not_found error answer means the same thing. */
    cr_assert_eq(rkc_get(c, "nope", 4, &res), 0);
    cr_assert_eq(res.err, 0);
    cr_assert_eq(res.nvalues, 0);
    rkc_result_free(&res);
    rkc_close(c);
    fake_join(&f);
}

static void script_put(struct fake *f)
{
    const struct wire_req *q = fake_read_req(f);
    FCHECK(f, q != NULL);
    FCHECK(f, q->op == WIRE_OP_PUT && key_is(q, "k"));
    FCHECK(f, q->value_len == 4 && memcmp(q->value, "v\0\xffz", 4) == 0);
    FCHECK(f, q->ctx_len == 3 && memcmp(q->ctx, "old", 3) == 0);
    FCHECK(f, q->r == 2 && q->w == 3);
    struct wire_resp r = {.id = q->id,
                          .op = WIRE_OP_PUT,
                          .ctx = (const uint8_t *)"new!",
                          .ctx_len = 4};
    FCHECK(f, fake_send(f, &r));
    q = fake_read_req(f);
    FCHECK(f, q != NULL);
    FCHECK(f, q->op == WIRE_OP_DEL && key_is(q, "k") && q->ctx_len == 0);
    struct wire_resp d = {.id = q->id, .op = WIRE_OP_DEL};
    FCHECK(f, fake_send(f, &d));
    q = fake_read_req(f);
    FCHECK(f, q != NULL && q->op == WIRE_OP_PING);
    struct wire_resp p = {.id = q->id, .op = WIRE_OP_PING};
    FCHECK(f, fake_send(f, &p));
}

Test(client, put_sends_value_context_and_quorum_and_returns_the_new_context)
{
    struct fake f;
    fake_start(&f, script_put);
    struct rkc *c = connect_to(&f);
    rkc_set_quorum(c, 2, 3);
    struct rkc_result res;
    cr_assert_eq(rkc_put(c, "k", 1, "v\0\xffz", 4, "old", 3, &res), 0);
    cr_assert_eq(res.ctx_len, 4);
    cr_assert_eq(memcmp(res.ctx, "new!", 4), 0);
    rkc_result_free(&res);
    rkc_set_quorum(c, 0, 0);
    cr_assert_eq(rkc_del(c, "k", 1, NULL, 0, &res), 0);
    rkc_result_free(&res);
    cr_assert_eq(rkc_ping(c), 0);
    rkc_close(c);
    fake_join(&f);
}

static void script_errors(struct fake *f)
{
    const struct wire_req *q = fake_read_req(f);
    FCHECK(f, q != NULL);
    struct wire_resp r = {.id = q->id,
                          .op = WIRE_OP_PUT,
                          .err = RK_EUNAVAILABLE,
                          .definite = true,
                          .msg = "1 of 3 replicas reachable, w=2"};
    FCHECK(f, fake_send(f, &r));
    q = fake_read_req(f);
    FCHECK(f, q != NULL);
    struct wire_resp t = {
        .id = q->id, .op = WIRE_OP_PUT, .err = RK_ETIMEOUT, .definite = false};
    FCHECK(f, fake_send(f, &t));
}

Test(client, server_errors_keep_their_message_and_definite_flag)
{
    struct fake f;
    fake_start(&f, script_errors);
    struct rkc *c = connect_to(&f);
    struct rkc_result res;
    cr_assert_eq(rkc_put(c, "k", 1, "v", 1, NULL, 0, &res), RK_EUNAVAILABLE);
    cr_assert_eq(res.err, RK_EUNAVAILABLE);
    cr_assert(res.definite);
    cr_assert_str_eq(res.message, "1 of 3 replicas reachable, w=2");
    rkc_result_free(&res);
    /* An answered error leaves the connection usable. */
    cr_assert_eq(rkc_broken(c), 0);
    cr_assert_eq(rkc_put(c, "k", 1, "v", 1, NULL, 0, &res), RK_ETIMEOUT);
    cr_assert_not(res.definite);
    cr_assert_str_eq(res.message, rk_err_msg(RK_ETIMEOUT));
    rkc_result_free(&res);
    rkc_close(c);
    fake_join(&f);
}

static void script_stats(struct fake *f)
{
    const struct wire_req *q = fake_read_req(f);
    FCHECK(f, q != NULL && q->op == WIRE_OP_STATS);
    struct wire_stat st[2] = {{"puts", NULL, 42}, {"version", "0.1", 0}};
    struct wire_resp r = {
        .id = q->id, .op = WIRE_OP_STATS, .stats = st, .nstats = 2};
    FCHECK(f, fake_send(f, &r));
}

Test(client, stats_returns_name_value_pairs_in_order)
{
    struct fake f;
    fake_start(&f, script_stats);
    struct rkc *c = connect_to(&f);
    struct rkc_result res;
    cr_assert_eq(rkc_stats(c, &res), 0);
    cr_assert_eq(res.nstats, 2);
    cr_assert_str_eq(res.stats[0].name, "puts");
    cr_assert_null(res.stats[0].sval);
    cr_assert_eq(res.stats[0].ival, 42);
    cr_assert_str_eq(res.stats[1].name, "version");
    cr_assert_str_eq(res.stats[1].sval, "0.1");
    rkc_close(c); /* the result outlives the connection */
    cr_assert_str_eq(res.stats[1].name, "version");
    rkc_result_free(&res);
    fake_join(&f);
}

static void script_big_value(struct fake *f)
{
    const struct wire_req *q = fake_read_req(f);
    FCHECK(f, q != NULL);
    size_t n = 3u << 20;
    uint8_t *big = malloc(n);
    FCHECK(f, big != NULL);
    for (size_t i = 0; i < n; i++)
        big[i] = (uint8_t)(i * 7);
    struct wire_value v = {big, (uint32_t)n};
    struct wire_resp r = {
        .id = q->id, .op = WIRE_OP_GET, .values = &v, .nvalues = 1};
    bool ok = fake_send(f, &r);
    free(big);
    FCHECK(f, ok);
}

Test(client, a_value_larger_than_one_read_arrives_whole)
{
    struct fake f;
    fake_start(&f, script_big_value);
    struct rkc *c = connect_to(&f);
    struct rkc_result res;
    cr_assert_eq(rkc_get(c, "big", 3, &res), 0);
    cr_assert_eq(res.nvalues, 1);
    cr_assert_eq(res.values[0].len, 3u << 20);
    bool same = true;
    for (size_t i = 0; i < res.values[0].len; i++)
        same = same && res.values[0].data[i] == (uint8_t)(i * 7);
    cr_assert(same);
    rkc_result_free(&res);
    rkc_close(c);
    fake_join(&f);
}

/* ---- replication: local reads, acks, members, ring ---------------------- */

static void script_get_local(struct fake *f)
{
    const struct wire_req *q = fake_read_req(f);
    FCHECK(f, q != NULL);
    FCHECK(f, q->op == WIRE_OP_GET && key_is(q, "k") && q->local);
    FCHECK(f, q->r == 2);
    struct wire_value v = {(const uint8_t *)"mine", 4};
    struct wire_resp r = {
        .id = q->id, .op = WIRE_OP_GET, .values = &v, .nvalues = 1};
    FCHECK(f, fake_send(f, &r));
    q = fake_read_req(f);
    FCHECK(f, q != NULL);
    FCHECK(f, q->op == WIRE_OP_GET && key_is(q, "k") && !q->local);
    FCHECK(f, q->r == 2);
    struct wire_resp nf = {
        .id = q->id, .op = WIRE_OP_GET, .err = RK_ENOT_FOUND, .definite = true};
    FCHECK(f, fake_send(f, &nf));
    q = fake_read_req(f);
    FCHECK(f, q != NULL && q->op == WIRE_OP_GET && q->local);
    struct wire_resp nf2 = {
        .id = q->id, .op = WIRE_OP_GET, .err = RK_ENOT_FOUND, .definite = true};
    FCHECK(f, fake_send(f, &nf2));
}

Test(client, get_local_sends_local_and_the_read_quorum_and_plain_get_does_not)
{
    struct fake f;
    fake_start(&f, script_get_local);
    struct rkc *c = connect_to(&f);
    rkc_set_quorum(c, 2, 0);
    struct rkc_result res;
    cr_assert_eq(rkc_get_local(c, "k", 1, &res), 0);
    cr_assert_eq(res.nvalues, 1);
    cr_assert_eq(memcmp(res.values[0].data, "mine", 5), 0);
    rkc_result_free(&res);
    cr_assert_eq(rkc_get(c, "k", 1, &res), 0);
    cr_assert_eq(res.nvalues, 0);
    rkc_result_free(&res);
    /* Not found on this node alone is not found, too. */
    cr_assert_eq(rkc_get_local(c, "k", 1, &res), 0);
    cr_assert_eq(res.err, 0);
    cr_assert_eq(res.nvalues, 0);
    rkc_result_free(&res);
    cr_assert_eq(rkc_get_local(c, "", 0, &res), -EINVAL);
    rkc_result_free(&res);
    rkc_close(c);
    fake_join(&f);
}

static void script_write_acks(struct fake *f)
{
    const struct wire_req *q = fake_read_req(f);
    FCHECK(f, q != NULL && q->op == WIRE_OP_PUT && q->w == 3);
    struct wire_resp r = {.id = q->id,
                          .op = WIRE_OP_PUT,
                          .err = RK_ETIMEOUT,
                          .definite = false,
                          .msg = "2 of 3 replicas acknowledged, w is 3 (timed "
                                 "out); the write may have been applied",
                          .acks = 2};
    FCHECK(f, fake_send(f, &r));
    q = fake_read_req(f);
    FCHECK(f, q != NULL && q->op == WIRE_OP_DEL && q->w == 3);
    struct wire_resp d = {.id = q->id,
                          .op = WIRE_OP_DEL,
                          .err = RK_EUNAVAILABLE,
                          .definite = false,
                          .acks = 1};
    FCHECK(f, fake_send(f, &d));
    q = fake_read_req(f);
    FCHECK(f, q != NULL && q->op == WIRE_OP_PUT);
    struct wire_resp ok = {.id = q->id,
                           .op = WIRE_OP_PUT,
                           .ctx = (const uint8_t *)"c",
                           .ctx_len = 1};
    FCHECK(f, fake_send(f, &ok));
}

Test(client, a_failed_write_reports_how_many_replicas_acknowledged)
{
    struct fake f;
    fake_start(&f, script_write_acks);
    struct rkc *c = connect_to(&f);
    rkc_set_quorum(c, 0, 3);
    struct rkc_result res;
    cr_assert_eq(rkc_put(c, "k", 1, "v", 1, NULL, 0, &res), RK_ETIMEOUT);
    cr_assert_eq(res.acks, 2);
    cr_assert_not(res.definite);
    cr_assert_str_eq(res.message, "2 of 3 replicas acknowledged, w is 3 "
                                  "(timed out); the write may have been "
                                  "applied");
    rkc_result_free(&res);
    cr_assert_eq(res.acks, 0);
    cr_assert_eq(rkc_del(c, "k", 1, NULL, 0, &res), RK_EUNAVAILABLE);
    cr_assert_eq(res.acks, 1);
    cr_assert_str_eq(res.message, rk_err_msg(RK_EUNAVAILABLE));
    rkc_result_free(&res);
    cr_assert_eq(rkc_put(c, "k", 1, "v", 1, NULL, 0, &res), 0);
    cr_assert_eq(res.acks, 0);
    cr_assert_eq(res.ctx_len, 1);
    rkc_result_free(&res);
    cr_assert_eq(rkc_broken(c), 0);
    rkc_close(c);
    fake_join(&f);
}

static const struct wire_member fake_members[3] = {
    {"n1", "10.0.0.1:7001", true, false},
    {"node-two", "[::1]:7002", false, false},
    {"n3", "10.0.0.3:7001", true, true},
};

static void script_members(struct fake *f)
{
    const struct wire_req *q = fake_read_req(f);
    FCHECK(f, q != NULL && q->op == WIRE_OP_MEMBERS);
    struct wire_resp r = {.id = q->id,
                          .op = WIRE_OP_MEMBERS,
                          .members = fake_members,
                          .nmembers = 3};
    FCHECK(f, fake_send(f, &r));
}

Test(client, members_are_copied_into_the_result_and_outlive_the_connection)
{
    struct fake f;
    fake_start(&f, script_members);
    struct rkc *c = connect_to(&f);
    struct rkc_result res;
    cr_assert_eq(rkc_members(c, &res), 0);
    rkc_close(c);
    fake_join(&f); /* the frame and the fake's zone are gone */
    cr_assert_eq(res.nmembers, 3);
    for (size_t i = 0; i < 3; i++) {
        cr_assert_str_eq(res.members[i].id, fake_members[i].id);
        cr_assert_str_eq(res.members[i].addr, fake_members[i].addr);
        cr_assert_neq(res.members[i].id, fake_members[i].id); /* a copy */
        cr_assert_eq(res.members[i].up, fake_members[i].up);
        cr_assert_eq(res.members[i].self, fake_members[i].self);
    }
    cr_assert_eq(res.q, 0);
    cr_assert_null(res.pref);
    cr_assert_eq(res.nvalues, 0);
    rkc_result_free(&res);
    cr_assert_null(res.members);
    cr_assert_eq(res.nmembers, 0);
}

/* Four partitions over three members, n = 3; partition 3 has one padded
 * slot. */
static const uint16_t fake_pref[4 * 3] = {
    0, 1, 2, 1, 2, 0, 2, 0, 1, 0, 2, WIRE_NO_MEMBER,
};

static void script_ring(struct fake *f)
{
    const struct wire_req *q = fake_read_req(f);
    FCHECK(f, q != NULL && q->op == WIRE_OP_RING);
    struct wire_resp r = {.id = q->id,
                          .op = WIRE_OP_RING,
                          .members = fake_members,
                          .nmembers = 3,
                          .q = 4,
                          .nval = 3,
                          .pref = fake_pref};
    FCHECK(f, fake_send(f, &r));
    q = fake_read_req(f);
    FCHECK(f, q != NULL && q->op == WIRE_OP_RING);
    struct wire_resp e = {.id = q->id,
                          .op = WIRE_OP_RING,
                          .err = RK_EUNAVAILABLE,
                          .definite = true,
                          .msg = "no ring yet"};
    FCHECK(f, fake_send(f, &e));
}

Test(client, ring_returns_members_and_every_preference_list_row_major)
{
    struct fake f;
    fake_start(&f, script_ring);
    struct rkc *c = connect_to(&f);
    struct rkc_result res;
    cr_assert_eq(rkc_ring(c, &res), 0);
    cr_assert_eq(res.q, 4);
    cr_assert_eq(res.nval, 3);
    cr_assert_eq(res.nmembers, 3);
    cr_assert_str_eq(res.members[1].id, "node-two");
    cr_assert_str_eq(res.members[2].addr, "10.0.0.3:7001");
    cr_assert(res.members[2].self);
    cr_assert_not_null(res.pref);
    cr_assert_eq(memcmp(res.pref, fake_pref, sizeof(fake_pref)), 0);
    cr_assert_eq(res.pref[3 * 3 + 2], RKC_NO_MEMBER);
    cr_assert_eq(res.pref[1 * 3 + 0], 1);
    cr_assert_eq((uintptr_t)res.pref % _Alignof(uint16_t), 0);
    rkc_result_free(&res);
    /* An error answer carries no ring. */
    cr_assert_eq(rkc_ring(c, &res), RK_EUNAVAILABLE);
    cr_assert_eq(res.q, 0);
    cr_assert_null(res.pref);
    cr_assert_null(res.members);
    cr_assert_str_eq(res.message, "no ring yet");
    rkc_result_free(&res);
    rkc_close(c);
    fake_join(&f);
}

/* ---- pipelining ---------------------------------------------------------- */

static void script_reverse(struct fake *f)
{
    const struct wire_req *q[3];
    for (int i = 0; i < 3; i++) {
        q[i] = fake_read_req(f);
        FCHECK(f, q[i] != NULL && q[i]->op == WIRE_OP_GET);
    }
    for (int i = 2; i >= 0; i--) {
        struct wire_value v = {q[i]->key, q[i]->key_len};
        struct wire_resp r = {
            .id = q[i]->id, .op = WIRE_OP_GET, .values = &v, .nvalues = 1};
        FCHECK(f, fake_send(f, &r));
    }
}

Test(client, pipelined_responses_are_matched_by_id_when_out_of_order)
{
    struct fake f;
    fake_start(&f, script_reverse);
    struct rkc *c = connect_to(&f);
    const char *keys[3] = {"k0", "k1", "k2"};
    uint64_t ids[3];
    for (int i = 0; i < 3; i++) {
        struct wire_req q = {.op = WIRE_OP_GET,
                             .key = (const uint8_t *)keys[i],
                             .key_len = 2,
                             .id = i == 1 ? 100 : 0};
        cr_assert_eq(rkc_send(c, &q, &ids[i]), 0);
    }
    cr_assert_eq(ids[1], 100);
    cr_assert_neq(ids[0], ids[2]);
    cr_assert_eq(rkc_outstanding(c), 3);

    /* An outstanding id cannot be reused; simple calls must wait. */
    struct wire_req dup = {.op = WIRE_OP_GET,
                           .key = (const uint8_t *)"x",
                           .key_len = 1,
                           .id = 100};
    cr_assert_eq(rkc_send(c, &dup, NULL), -EINVAL);
    struct rkc_result res;
    cr_assert_eq(rkc_get(c, "x", 1, &res), -EBUSY);
    cr_assert(res.definite);
    rkc_result_free(&res);
    cr_assert_eq(rkc_flush(c), 0);

    bool seen[3] = {false, false, false};
    for (int n = 0; n < 3; n++) {
        uint64_t id = 0;
        cr_assert_eq(rkc_recv(c, &res, &id), 0);
        int i = id == ids[0] ? 0 : id == ids[1] ? 1 : id == ids[2] ? 2 : -1;
        cr_assert_geq(i, 0, "unexpected id %llu", (unsigned long long)id);
        cr_assert_not(seen[i]);
        seen[i] = true;
        cr_assert_eq(res.nvalues, 1);
        cr_assert_eq(res.values[0].len, 2);
        cr_assert_eq(memcmp(res.values[0].data, keys[i], 2), 0);
        if (n == 0)
            cr_assert_eq(i, 2); /* the server answered the last one first */
        rkc_result_free(&res);
    }
    cr_assert_eq(rkc_outstanding(c), 0);
    uint64_t id = 7;
    cr_assert_eq(rkc_recv(c, &res, &id), -EINVAL);
    cr_assert_eq(id, 0);
    rkc_result_free(&res);
    cr_assert_eq(rkc_broken(c), 0);
    rkc_close(c);
    fake_join(&f);
}

/* ---- untrusted responses and broken connections ------------------------- */

static void script_garbage(struct fake *f)
{
    FCHECK(f, fake_read_req(f) != NULL);
    static const uint8_t bad[] = {0, 0, 0, 1, 0xc1}; /* reserved byte */
    FCHECK(f, fake_write_all(f->fd, bad, sizeof(bad)));
    fake_wait_eof(f);
}

Test(client, an_undecodable_response_is_eproto_and_breaks_the_connection)
{
    struct fake f;
    fake_start(&f, script_garbage);
    struct rkc *c = connect_to(&f);
    struct rkc_result res;
    cr_assert_eq(rkc_get(c, "k", 1, &res), RK_EPROTO);
    cr_assert_eq(res.err, RK_EPROTO);
    cr_assert_str_neq(res.message, "");
    rkc_result_free(&res);
    cr_assert_eq(rkc_broken(c), RK_EPROTO);
    cr_assert_eq(rkc_ping(c), -ENOTCONN);
    cr_assert_eq(rkc_get(c, "k", 1, &res), -ENOTCONN);
    rkc_result_free(&res);
    rkc_close(c);
    fake_join(&f);
}

static void script_oversized(struct fake *f)
{
    FCHECK(f, fake_read_req(f) != NULL);
    static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 0x80};
    FCHECK(f, fake_write_all(f->fd, huge, sizeof(huge)));
    fake_wait_eof(f);
}

Test(client, an_oversized_response_length_is_eproto_before_buffering)
{
    struct fake f;
    fake_start(&f, script_oversized);
    struct rkc *c = connect_to(&f);
    struct rkc_result res;
    cr_assert_eq(rkc_put(c, "k", 1, "v", 1, NULL, 0, &res), RK_EPROTO);
    cr_assert_not(res.definite); /* the put was sent: outcome unknown */
    rkc_result_free(&res);
    cr_assert_eq(rkc_broken(c), RK_EPROTO);
    rkc_close(c);
    fake_join(&f);
}

static void script_zero_length(struct fake *f)
{
    FCHECK(f, fake_read_req(f) != NULL);
    static const uint8_t zero[] = {0, 0, 0, 0};
    FCHECK(f, fake_write_all(f->fd, zero, sizeof(zero)));
    fake_wait_eof(f);
}

Test(client, a_zero_length_response_frame_is_eproto)
{
    struct fake f;
    fake_start(&f, script_zero_length);
    struct rkc *c = connect_to(&f);
    cr_assert_eq(rkc_ping(c), RK_EPROTO);
    rkc_close(c);
    fake_join(&f);
}

static void script_wrong_id(struct fake *f)
{
    const struct wire_req *q = fake_read_req(f);
    FCHECK(f, q != NULL);
    struct wire_resp r = {.id = q->id + 1, .op = WIRE_OP_GET};
    FCHECK(f, fake_send(f, &r));
    fake_wait_eof(f);
}

Test(client, a_response_to_an_id_never_asked_is_eproto)
{
    struct fake f;
    fake_start(&f, script_wrong_id);
    struct rkc *c = connect_to(&f);
    struct rkc_result res;
    cr_assert_eq(rkc_get(c, "k", 1, &res), RK_EPROTO);
    rkc_result_free(&res);
    cr_assert_eq(rkc_broken(c), RK_EPROTO);
    rkc_close(c);
    fake_join(&f);
}

static void script_goodbye(struct fake *f)
{
    FCHECK(f, fake_read_req(f) != NULL);
    struct wire_resp r = {.id = 0,
                          .op = WIRE_OP_NONE,
                          .err = RK_ESHUTTING_DOWN,
                          .msg = "node is draining"};
    FCHECK(f, fake_send(f, &r));
}

Test(client, a_connection_level_error_is_returned_and_breaks_the_connection)
{
    struct fake f;
    fake_start(&f, script_goodbye);
    struct rkc *c = connect_to(&f);
    struct rkc_result res;
    cr_assert_eq(rkc_put(c, "k", 1, "v", 1, NULL, 0, &res), RK_ESHUTTING_DOWN);
    cr_assert_str_eq(res.message, "node is draining");
    cr_assert_not(res.definite);
    rkc_result_free(&res);
    cr_assert_eq(rkc_broken(c), RK_ESHUTTING_DOWN);
    rkc_close(c);
    fake_join(&f);
}

static void script_hang_up(struct fake *f)
{
    FCHECK(f, fake_read_req(f) != NULL);
}

Test(client, the_server_closing_the_connection_is_a_negative_errno)
{
    struct fake f;
    fake_start(&f, script_hang_up);
    struct rkc *c = connect_to(&f);
    struct rkc_result res;
    int rc = rkc_put(c, "k", 1, "v", 1, NULL, 0, &res);
    cr_assert(rc == -ECONNRESET || rc == -EPIPE, "rc = %d", rc);
    cr_assert_eq(res.err, rc);
    cr_assert_not(res.definite);
    rkc_result_free(&res);
    cr_assert_eq(rkc_broken(c), rc);
    rkc_close(c);
    fake_join(&f);
}

static void script_silent(struct fake *f)
{
    FCHECK(f, fake_read_req(f) != NULL);
    fake_wait_eof(f); /* never answers; ends when the client closes */
}

Test(client, an_unanswered_request_times_out_and_breaks_the_connection)
{
    struct fake f;
    fake_start(&f, script_silent);
    struct rkc *c = connect_to(&f);
    rkc_set_timeout(c, 50);
    struct rkc_result res;
    cr_assert_eq(rkc_get(c, "k", 1, &res), -ETIMEDOUT);
    cr_assert_eq(res.err, -ETIMEDOUT);
    rkc_result_free(&res);
    cr_assert_eq(rkc_broken(c), -ETIMEDOUT);
    rkc_close(c);
    fake_join(&f);
}

Test(client, connecting_to_a_closed_port_is_a_negative_errno)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t sl = sizeof(sa);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    close(fd); /* bound, never listened: the port refuses */
    struct rkc *c = (struct rkc *)&sa;
    int rc = rkc_connect(&c, "127.0.0.1", ntohs(sa.sin_port), 1000);
    cr_assert_eq(rc, -ECONNREFUSED, "rc = %d", rc);
    cr_assert_null(c);
    cr_assert_eq(rkc_connect(&c, NULL, 1, 1000), -EINVAL);
    rkc_close(NULL);
}

Test(client, bad_arguments_are_einval_without_io)
{
    struct fake f;
    fake_start(&f, fake_wait_eof);
    struct rkc *c = connect_to(&f);
    struct rkc_result res;
    cr_assert_eq(rkc_get(c, "", 0, &res), -EINVAL);
    cr_assert(res.definite);
    rkc_result_free(&res);
    cr_assert_eq(rkc_put(c, "k", 1, NULL, 3, NULL, 0, &res), -EINVAL);
    rkc_result_free(&res);
    struct wire_req q = {.op = WIRE_OP_MAX};
    cr_assert_eq(rkc_send(c, &q, NULL), -EINVAL);
    cr_assert_eq(rkc_broken(c), 0);
    rkc_close(c); /* the fake reads EOF instead of a request */
    fake_join(&f);
}

/* ---- base64, UTF-8, JSON ------------------------------------------------- */

TestSuite(client_util, .timeout = 10);

Test(client_util, base64_matches_the_rfc_4648_vectors)
{
    static const char *const in[] = {"",     "f",     "fo",    "foo",
                                     "foob", "fooba", "foobar"};
    static const char *const out[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                      "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        char *s = rkc_b64_encode(in[i], strlen(in[i]));
        cr_assert_str_eq(s, out[i]);
        cr_assert_eq(rkc_b64_len(strlen(in[i])), strlen(out[i]));
        free(s);
        uint8_t *d;
        size_t n;
        cr_assert_eq(rkc_b64_decode(out[i], strlen(out[i]), &d, &n, NULL), 0);
        cr_assert_eq(n, strlen(in[i]));
        cr_assert_eq(memcmp(d, in[i], n), 0);
        free(d);
    }
}

Test(client_util, base64_round_trips_every_byte_value)
{
    uint8_t buf[259];
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)(255 - i);
    for (size_t n = 0; n <= sizeof(buf); n += 1) {
        struct wire_buf b;
        wire_buf_init(&b);
        cr_assert_eq(rkc_b64_append(&b, buf, n), 0);
        uint8_t *d;
        size_t dn;
        cr_assert_eq(rkc_b64_decode((const char *)b.data, b.len, &d, &dn, NULL),
                     0);
        cr_assert_eq(dn, n);
        cr_assert_eq(memcmp(d, buf, n), 0);
        free(d);
        wire_buf_free(&b);
    }
}

Test(client_util, base64_decoding_rejects_garbage_with_a_reason)
{
    static const char *const bad[] = {"Zg=",  "Zg=a",     "Zh==",
                                      "Z!==", "====",     "Zm9v\n",
                                      "Zm9",  "Zg==Zg==", "Zm8-"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t *d = (uint8_t *)"x";
        size_t n = 9;
        const char *why = NULL;
        cr_assert_eq(rkc_b64_decode(bad[i], strlen(bad[i]), &d, &n, &why),
                     -EINVAL, "accepted '%s'", bad[i]);
        cr_assert_null(d);
        cr_assert_not_null(why);
    }
}

Test(client_util, utf8_validation_rejects_overlongs_surrogates_and_truncation)
{
    cr_assert(rkc_utf8_valid("", 0));
    cr_assert(rkc_utf8_valid("h\xc3\xa9llo", 6));
    cr_assert(rkc_utf8_valid("\xe2\x82\xac", 3));
    cr_assert(rkc_utf8_valid("\xf0\x9f\x98\x80", 4));
    cr_assert(rkc_utf8_valid("\xf4\x8f\xbf\xbf", 4)); /* U+10FFFF */
    cr_assert(rkc_utf8_valid("a\0b", 3));
    cr_assert_not(rkc_utf8_valid("\xc0\xaf", 2));
    cr_assert_not(rkc_utf8_valid("\xe0\x80\xaf", 3));
    cr_assert_not(rkc_utf8_valid("\xed\xa0\x80", 3));
    cr_assert_not(rkc_utf8_valid("\xf4\x90\x80\x80", 4));
    cr_assert_not(rkc_utf8_valid("\xe2\x82", 2));
    cr_assert_not(rkc_utf8_valid("\xff", 1));
    cr_assert_not(rkc_utf8_valid("\x80", 1));
    cr_assert_not(rkc_utf8_valid("\xe2\x28\xa1", 3));
}

static char *json_of(int (*fn)(struct wire_buf *, const void *, size_t),
                     const void *p, size_t n)
{
    struct wire_buf b;
    wire_buf_init(&b);
    cr_assert_eq(fn(&b, p, n), 0);
    cr_assert_eq(wire_buf_append(&b, "", 1), 0);
    return (char *)b.data;
}

Test(client_util, json_strings_escape_quotes_backslashes_and_controls)
{
    char *s = json_of(rkc_json_append_str, "a\"b\\c\n\t\x01\x7f\xc3\xa9", 11);
    cr_assert_str_eq(s, "\"a\\\"b\\\\c\\n\\t\\u0001\x7f\xc3\xa9\"");
    free(s);
    s = json_of(rkc_json_append_str, "x\0y", 3);
    cr_assert_str_eq(s, "\"x\\u0000y\"");
    free(s);
    s = json_of(rkc_json_append_str, "a\xff", 2);
    cr_assert_str_eq(s, "\"a\xef\xbf\xbd\"");
    free(s);
    s = json_of(rkc_json_append_str, "", 0);
    cr_assert_str_eq(s, "\"\"");
    free(s);
}

Test(client_util, json_bytes_are_a_string_when_utf8_and_base64_otherwise)
{
    char *s = json_of(rkc_json_append_bytes, "caf\xc3\xa9", 5);
    cr_assert_str_eq(s, "\"caf\xc3\xa9\"");
    free(s);
    s = json_of(rkc_json_append_bytes, "\xff\x00\x01", 3);
    cr_assert_str_eq(s, "{\"base64\":\"/wAB\"}");
    free(s);
}
