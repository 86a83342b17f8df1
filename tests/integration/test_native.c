/*
 * test_native.c - a real ringkv process over the native protocol: put, get,
 * delete, contexts and siblings, pipelining, stats, clean shutdown.
 */
#include <inttypes.h>

#include "quorum/dvv.h"
#include "tests/integration/itest.h"

TestSuite(native, .timeout = 120, .fini = itest_cleanup);

static struct rkc *connect_to(const struct itest_node *n)
{
    struct rkc *c = NULL;
    cr_assert_eq(rkc_connect(&c, "127.0.0.1", (uint16_t)n->port, 10000), 0);
    return c;
}

Test(native, put_then_get_returns_the_value_and_delete_removes_it)
{
    struct itest_node *n = itest_start(NULL);
    struct rkc *c = connect_to(n);
    struct rkc_result r = {0};

    cr_assert_eq(rkc_get(c, "k", 1, &r), 0);
    cr_assert_eq(r.nvalues, 0, "a fresh node has no key");
    rkc_result_free(&r);

    cr_assert_eq(rkc_put(c, "k", 1, "hello", 5, NULL, 0, &r), 0);
    cr_assert_gt(r.ctx_len, 0, "a put returns the new context");
    rkc_result_free(&r);

    cr_assert_eq(rkc_get(c, "k", 1, &r), 0);
    cr_assert_eq(r.nvalues, 1);
    cr_assert_eq(r.values[0].len, 5);
    cr_assert_eq(memcmp(r.values[0].data, "hello", 5), 0);
    uint8_t ctx[256];
    size_t ctx_len = r.ctx_len;
    cr_assert_leq(ctx_len, sizeof(ctx));
    memcpy(ctx, r.ctx, ctx_len);
    rkc_result_free(&r);

    cr_assert_eq(rkc_del(c, "k", 1, ctx, ctx_len, &r), 0);
    rkc_result_free(&r);
    cr_assert_eq(rkc_get(c, "k", 1, &r), 0);
    cr_assert_eq(r.nvalues, 0, "deleted key reads as not found");
    rkc_result_free(&r);
    rkc_close(c);
}

Test(native, binary_keys_and_values_round_trip)
{
    struct itest_node *n = itest_start(NULL);
    struct rkc *c = connect_to(n);
    struct rkc_result r = {0};
    uint8_t key[3] = {0, 0xff, 0x0a};
    uint8_t val[256];
    for (int i = 0; i < 256; i++)
        val[i] = (uint8_t)i;

    cr_assert_eq(rkc_put(c, key, 3, val, sizeof(val), NULL, 0, &r), 0);
    rkc_result_free(&r);
    cr_assert_eq(rkc_get(c, key, 3, &r), 0);
    cr_assert_eq(r.nvalues, 1);
    cr_assert_eq(r.values[0].len, sizeof(val));
    cr_assert_eq(memcmp(r.values[0].data, val, sizeof(val)), 0);
    rkc_result_free(&r);
    rkc_close(c);
}

Test(native,
     puts_without_context_become_siblings_and_a_put_with_context_collapses_them)
{
    struct itest_node *n = itest_start(NULL);
    struct rkc *c = connect_to(n);
    struct rkc_result r = {0};

    cr_assert_eq(rkc_put(c, "s", 1, "one", 3, NULL, 0, &r), 0);
    rkc_result_free(&r);
    cr_assert_eq(rkc_put(c, "s", 1, "two", 3, NULL, 0, &r), 0);
    rkc_result_free(&r);
    cr_assert_eq(rkc_get(c, "s", 1, &r), 0);
    cr_assert_eq(r.nvalues, 2, "two blind writes are concurrent siblings");
    uint8_t ctx[256];
    size_t ctx_len = r.ctx_len;
    memcpy(ctx, r.ctx, ctx_len);
    rkc_result_free(&r);

    cr_assert_eq(rkc_put(c, "s", 1, "merged", 6, ctx, ctx_len, &r), 0);
    rkc_result_free(&r);
    cr_assert_eq(rkc_get(c, "s", 1, &r), 0);
    cr_assert_eq(r.nvalues, 1, "a write with the read context supersedes");
    cr_assert_eq(memcmp(r.values[0].data, "merged", 6), 0);
    rkc_result_free(&r);
    rkc_close(c);
}

Test(native, a_malformed_context_is_a_definite_error)
{
    struct itest_node *n = itest_start(NULL);
    struct rkc *c = connect_to(n);
    struct rkc_result r = {0};

    cr_assert_eq(rkc_put(c, "k", 1, "v", 1, "\xc1junk", 5, &r),
                 RK_EBAD_CONTEXT);
    cr_assert(r.definite);
    rkc_result_free(&r);
    cr_assert_eq(rkc_get(c, "k", 1, &r), 0);
    cr_assert_eq(r.nvalues, 0, "the refused write was not applied");
    rkc_result_free(&r);
    rkc_close(c);
}

Test(native, pipelined_requests_are_all_answered_and_matched_by_id)
{
    enum { N = 400 };
    struct itest_node *n = itest_start("--fsync", "never", NULL);
    struct rkc *c = connect_to(n);
    struct rkc_result r = {0};
    char keys[N][16];
    uint64_t put_ids[N], get_ids[N];
    int seen_put[N] = {0}, seen_get[N] = {0};

    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof(keys[i]), "p%d", i);
        struct wire_req q = {.op = WIRE_OP_PUT,
                             .key = (const uint8_t *)keys[i],
                             .key_len = (uint32_t)strlen(keys[i]),
                             .value = (const uint8_t *)keys[i],
                             .value_len = (uint32_t)strlen(keys[i])};
        cr_assert_eq(rkc_send(c, &q, &put_ids[i]), 0);
    }
    for (int got = 0; got < N; got++) {
        uint64_t id;
        cr_assert_eq(rkc_recv(c, &r, &id), 0);
        cr_assert_eq(r.err, 0);
        for (int i = 0; i < N; i++)
            if (put_ids[i] == id)
                seen_put[i]++;
        rkc_result_free(&r);
    }
    for (int i = 0; i < N; i++) {
        cr_assert_eq(seen_put[i], 1, "put %d answered once", i);
        struct wire_req q = {.op = WIRE_OP_GET,
                             .key = (const uint8_t *)keys[i],
                             .key_len = (uint32_t)strlen(keys[i])};
        cr_assert_eq(rkc_send(c, &q, &get_ids[i]), 0);
    }
    for (int got = 0; got < N; got++) {
        uint64_t id;
        cr_assert_eq(rkc_recv(c, &r, &id), 0);
        int i;
        for (i = 0; i < N && get_ids[i] != id; i++)
            ;
        cr_assert_lt(i, N, "response id %llu matches a request",
                     (unsigned long long)id);
        seen_get[i]++;
        cr_assert_eq(r.nvalues, 1);
        cr_assert_eq(r.values[0].len, strlen(keys[i]));
        cr_assert_eq(memcmp(r.values[0].data, keys[i], strlen(keys[i])), 0);
        rkc_result_free(&r);
    }
    for (int i = 0; i < N; i++)
        cr_assert_eq(seen_get[i], 1);
    rkc_close(c);
}

static int64_t stat_of(const struct rkc_result *r, const char *name)
{
    for (size_t i = 0; i < r->nstats; i++)
        if (strcmp(r->stats[i].name, name) == 0)
            return r->stats[i].ival;
    return -1;
}

Test(native, stats_count_requests)
{
    struct itest_node *n = itest_start(NULL);
    struct rkc *c = connect_to(n);
    struct rkc_result r = {0};

    for (int i = 0; i < 3; i++) {
        cr_assert_eq(rkc_put(c, "a", 1, "b", 1, NULL, 0, &r), 0);
        rkc_result_free(&r);
    }
    cr_assert_eq(rkc_get(c, "zz", 2, &r), 0);
    rkc_result_free(&r);
    cr_assert_eq(rkc_stats(c, &r), 0);
    cr_assert_eq(stat_of(&r, "puts"), 3);
    cr_assert_eq(stat_of(&r, "gets"), 1);
    cr_assert_eq(stat_of(&r, "not_found"), 1);
    cr_assert_eq(stat_of(&r, "siblings_max_seen"), 3,
                 "three blind puts leave three siblings");
    rkc_result_free(&r);
    rkc_close(c);
}

Test(native, sigterm_stops_cleanly_and_data_survives_a_restart)
{
    struct itest_node *n = itest_start(NULL);
    struct rkc *c = connect_to(n);
    struct rkc_result r = {0};

    cr_assert_eq(rkc_put(c, "durable", 7, "yes", 3, NULL, 0, &r), 0);
    rkc_result_free(&r);
    rkc_close(c);
    int st = itest_signal(n, SIGTERM);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "clean exit (uv_loop_close returned 0), status %d", st);

    itest_restart(n);
    c = connect_to(n);
    cr_assert_eq(rkc_get(c, "durable", 7, &r), 0);
    cr_assert_eq(r.nvalues, 1);
    cr_assert_eq(memcmp(r.values[0].data, "yes", 3), 0);
    rkc_result_free(&r);
    rkc_close(c);
}

Test(native, a_second_node_on_the_same_data_dir_refuses_to_start)
{
    struct itest_node *n = itest_start(NULL);
    char out[4096];
    int port = itest_pick_ports();
    int rc = itest_sh(out, sizeof(out),
                      "%s/ringkv --data-dir %s --port %d --resp-port %d 2>&1",
                      RINGKV_BIN_DIR, n->data, port, port + 1);
    cr_assert_neq(rc, 0, "second start must fail");
    cr_assert(strstr(out, "in use") != NULL, "clear message, got: %s", out);
    cr_assert(itest_ping(n), "the first node keeps serving");
}

Test(native, a_corrupt_data_dir_stops_the_node_with_a_clear_error)
{
    char dir[] = "/tmp/ringkv-itest-corrupt-XXXXXX";
    char out[4096];
    cr_assert(mkdtemp(dir) != NULL);
    int rc = itest_sh(NULL, 0,
                      "mkdir -p %s/data && head -c 65536 /dev/urandom > "
                      "%s/data/data.mdb",
                      dir, dir);
    cr_assert_eq(rc, 0);
    int port = itest_pick_ports();
    rc = itest_sh(out, sizeof(out),
                  "%s/ringkv --data-dir %s/data --port %d --resp-port %d 2>&1",
                  RINGKV_BIN_DIR, dir, port, port + 1);
    cr_assert_neq(rc, 0, "must not start over a corrupt store");
    cr_assert(strstr(out, "corrupt") != NULL || strstr(out, "not a") != NULL,
              "clear message, got: %s", out);
    itest_sh(NULL, 0, "rm -rf %s", dir);
}

Test(native, bad_options_are_refused_with_a_message)
{
    char out[4096];
    int rc = itest_sh(out, sizeof(out), "%s/ringkv --fsync sometimes 2>&1",
                      RINGKV_BIN_DIR);
    cr_assert_eq(rc, 2);
    cr_assert(strstr(out, "fsync") != NULL, "got: %s", out);
    rc = itest_sh(out, sizeof(out), "%s/ringkv --no-such-option 1 2>&1",
                  RINGKV_BIN_DIR);
    cr_assert_eq(rc, 2);
    /* Regression (review): an unparsable listen address crashed in
     * uv_close on a handle never initialised. */
    char dir[] = "/tmp/ringkv-itest-listen-XXXXXX";
    cr_assert(mkdtemp(dir) != NULL);
    int port = itest_pick_ports();
    rc = itest_sh(out, sizeof(out),
                  "%s/ringkv --data-dir %s/d --listen localhost --port %d "
                  "--resp-port %d 2>&1",
                  RINGKV_BIN_DIR, dir, port, port + 1);
    cr_assert_eq(rc, 1, "a clean failure, not a crash: %d %s", rc, out);
    cr_assert(strstr(out, "listen address") != NULL, "got: %s", out);
    itest_sh(NULL, 0, "rm -rf %s", dir);
}

/* A node alone has no cluster secret, so its contexts are untagged; the
 * coordinator still refuses a context that claims more of its own dots
 * than it has issued for the key (it mints every one of them): a counter
 * near INT64_MAX would otherwise make every later write of the key fail
 * with bad_context, and a smaller one would make later writes vanish. */
Test(native, a_context_claiming_unissued_dots_of_the_node_is_refused)
{
    struct itest_node *n = itest_start(NULL);
    struct rkc *c = connect_to(n);
    struct rkc_result r = {0};
    struct dvv_arena a;
    struct dvv_vv vv;
    uint8_t *enc = NULL;
    size_t enc_len = 0;

    cr_assert_eq(rkc_put(c, "k", 1, "v1", 2, NULL, 0, &r), 0);
    rkc_result_free(&r);
    cr_assert_eq(rkc_get(c, "k", 1, &r), 0);
    dvv_arena_init(&a);
    cr_assert_eq(dvv_vv_decode(r.ctx, r.ctx_len, &a, &vv), 0);
    cr_assert_eq(vv.n, 1);
    rkc_result_free(&r);
    static const uint64_t claims[] = {2, 1000, INT64_MAX - 1};
    for (size_t i = 0; i < sizeof(claims) / sizeof(claims[0]); i++) {
        vv.e[0].counter = claims[i];
        cr_assert_eq(dvv_vv_encode(&vv, &enc, &enc_len), 0);
        cr_assert_eq(rkc_put(c, "k", 1, "forged", 6, enc, enc_len, &r),
                     RK_EBAD_CONTEXT, "claim %" PRIu64 ": %s", claims[i],
                     r.message);
        cr_assert(r.definite);
        rkc_result_free(&r);
        free(enc);
    }
    dvv_arena_free(&a);
    /* The key is as it was, and the next writes are read back. */
    cr_assert_eq(rkc_put(c, "k", 1, "v2", 2, NULL, 0, &r), 0);
    rkc_result_free(&r);
    cr_assert_eq(rkc_get(c, "k", 1, &r), 0);
    cr_assert_eq(r.nvalues, 2, "v1 and v2, blind writes: siblings");
    rkc_result_free(&r);
    rkc_close(c);
}
