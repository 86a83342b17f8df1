/*
 * test_resp_server.c - the RESP listener with real Redis tools (redis-cli,
 * redis-benchmark) and a raw socket for pipelining and garbage.
 */
#include "tests/integration/itest.h"

TestSuite(resp_server, .timeout = 180, .fini = itest_cleanup);

static int cli(const struct itest_node *n, char *out, size_t cap,
               const char *args)
{
    return itest_sh(out, cap, "redis-cli -p %d %s 2>&1", n->resp_port, args);
}

/* Reads until want bytes arrived or the peer closed; returns bytes read. */
static size_t raw_read(int fd, char *buf, size_t want)
{
    size_t n = 0;
    while (n < want) {
        ssize_t r = read(fd, buf + n, want - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    return n;
}

Test(resp_server, redis_cli_set_get_del_exists_mget)
{
    struct itest_node *n = itest_start(NULL);
    char out[4096];

    cr_assert_eq(cli(n, out, sizeof(out), "PING"), 0);
    cr_assert_str_eq(out, "PONG\n");
    cr_assert_eq(cli(n, out, sizeof(out), "SET foo bar"), 0);
    cr_assert_str_eq(out, "OK\n");
    cr_assert_eq(cli(n, out, sizeof(out), "GET foo"), 0);
    cr_assert_str_eq(out, "bar\n");
    cr_assert_eq(cli(n, out, sizeof(out), "SET foo2 baz"), 0);
    cr_assert_eq(cli(n, out, sizeof(out), "MGET foo nope foo2"), 0);
    cr_assert_str_eq(out, "bar\n\nbaz\n");
    cr_assert_eq(cli(n, out, sizeof(out), "EXISTS foo nope foo2"), 0);
    cr_assert_str_eq(out, "2\n");
    cr_assert_eq(cli(n, out, sizeof(out), "DEL foo nope"), 0);
    cr_assert_str_eq(out, "1\n");
    cr_assert_eq(cli(n, out, sizeof(out), "GET foo"), 0);
    cr_assert_str_eq(out, "\n", "deleted key is nil");
    cr_assert_eq(cli(n, out, sizeof(out), "ECHO hi"), 0);
    cr_assert_str_eq(out, "hi\n");
    cr_assert_eq(cli(n, out, sizeof(out), "SELECT 0"), 0);
    cr_assert_str_eq(out, "OK\n");
    cr_assert_eq(cli(n, out, sizeof(out), "SELECT 3"), 0);
    cr_assert(strstr(out, "ERR") != NULL);
    cr_assert_eq(cli(n, out, sizeof(out), "INFO"), 0);
    cr_assert(strstr(out, "redis_version:") != NULL);
    cr_assert(strstr(out, "puts:") != NULL);
    cr_assert_eq(cli(n, out, sizeof(out), "NOSUCHCMD a"), 0);
    cr_assert(strstr(out, "ERR unknown") != NULL, "got %s", out);
}

Test(resp_server, repeated_sets_leave_one_value_not_siblings)
{
    struct itest_node *n = itest_start(NULL);
    char out[256];
    for (int i = 0; i < 5; i++) {
        char cmd[64];
        snprintf(cmd, sizeof(cmd), "SET same v%d", i);
        cr_assert_eq(cli(n, out, sizeof(out), cmd), 0);
    }
    cr_assert_eq(cli(n, out, sizeof(out), "SIBLINGS same"), 0);
    cr_assert_str_eq(out, "v4\n", "one value, the last one");
    struct rkc *c;
    struct rkc_result r = {0};
    cr_assert_eq(rkc_connect(&c, "127.0.0.1", (uint16_t)n->port, 5000), 0);
    cr_assert_eq(rkc_get(c, "same", 4, &r), 0);
    cr_assert_eq(r.nvalues, 1);
    rkc_result_free(&r);
    rkc_close(c);
}

Test(resp_server, get_on_siblings_picks_the_latest_and_siblings_lists_all)
{
    struct itest_node *n = itest_start(NULL);
    struct rkc *c;
    struct rkc_result r = {0};
    char out[256];

    cr_assert_eq(rkc_connect(&c, "127.0.0.1", (uint16_t)n->port, 5000), 0);
    cr_assert_eq(rkc_put(c, "k", 1, "first", 5, NULL, 0, &r), 0);
    rkc_result_free(&r);
    cr_assert_eq(rkc_put(c, "k", 1, "second", 6, NULL, 0, &r), 0);
    rkc_result_free(&r);
    rkc_close(c);
    cr_assert_eq(cli(n, out, sizeof(out), "GET k"), 0);
    cr_assert_str_eq(out, "second\n");
    cr_assert_eq(cli(n, out, sizeof(out), "SIBLINGS k"), 0);
    cr_assert(strstr(out, "first") && strstr(out, "second"), "got %s", out);
}

Test(resp_server, pipelined_commands_answer_in_order_and_reads_see_writes)
{
    struct itest_node *n = itest_start("--fsync", "never", NULL);
    int fd = itest_raw_connect(n->resp_port);
    char req[64 * 1024], resp[64 * 1024];
    size_t len = 0;

    for (int i = 0; i < 200; i++) {
        len +=
            (size_t)snprintf(req + len, sizeof(req) - len,
                             "*3\r\n$3\r\nSET\r\n$5\r\nkey%02d\r\n$4\r\nv%03d"
                             "\r\n*2\r\n$3\r\nGET\r\n$5\r\nkey%02d\r\n",
                             i % 100, i, i % 100);
    }
    cr_assert_eq(write(fd, req, len), (ssize_t)len);
    /* Each pair answers "+OK\r\n$4\r\nvNNN\r\n" = 15 bytes. */
    size_t got = raw_read(fd, resp, 200 * 15);
    cr_assert_eq(got, 200 * 15, "got %zu bytes: %.200s", got, resp);
    for (int i = 0; i < 200; i++) {
        char want[32];
        snprintf(want, sizeof(want), "+OK\r\n$4\r\nv%03d\r\n", i);
        cr_assert_eq(memcmp(resp + i * 15, want, 15), 0,
                     "reply %d in order and reading its own write", i);
    }
    close(fd);
}

Test(resp_server, garbage_gets_a_protocol_error_and_others_keep_working)
{
    struct itest_node *n = itest_start(NULL);
    int bad = itest_raw_connect(n->resp_port);
    char buf[512];
    const char *junk = "*2\r\n$-7\r\nxx\r\n";

    cr_assert_eq(write(bad, junk, strlen(junk)), (ssize_t)strlen(junk));
    size_t got = raw_read(bad, buf, sizeof(buf) - 1);
    cr_assert(got > 0 && strncmp(buf, "-ERR Protocol error", 19) == 0, "got %s",
              buf);
    close(bad);

    /* An absurd bulk length is refused before anything is buffered. */
    bad = itest_raw_connect(n->resp_port);
    junk = "*1\r\n$2000000000\r\n";
    cr_assert_eq(write(bad, junk, strlen(junk)), (ssize_t)strlen(junk));
    got = raw_read(bad, buf, sizeof(buf) - 1);
    cr_assert(got > 0 && buf[0] == '-', "got %s", buf);
    close(bad);

    char out[64];
    cr_assert_eq(cli(n, out, sizeof(out), "PING"), 0);
    cr_assert_str_eq(out, "PONG\n");
}

Test(resp_server, redis_benchmark_runs_without_errors)
{
    struct itest_node *n = itest_start("--fsync", "never", NULL);
    char out[16384];
    int rc = itest_sh(out, sizeof(out),
                      "redis-benchmark -p %d -t set,get -n 3000 -c 8 -r 500 "
                      "-d 100 -q 2>&1",
                      n->resp_port);
    cr_assert_eq(rc, 0, "redis-benchmark failed: %s", out);
    cr_assert(strstr(out, "SET:") != NULL && strstr(out, "GET:") != NULL,
              "got %s", out);
    cr_assert(strstr(out, "rror") == NULL, "errors reported: %s", out);
    rc = itest_sh(out, sizeof(out),
                  "redis-benchmark -p %d -t set,get -n 3000 -c 4 -P 16 -q 2>&1",
                  n->resp_port);
    cr_assert_eq(rc, 0, "pipelined redis-benchmark failed: %s", out);
    cr_assert(strstr(out, "rror") == NULL, "errors reported: %s", out);
}

Test(resp_server, quit_closes_after_answering)
{
    struct itest_node *n = itest_start(NULL);
    int fd = itest_raw_connect(n->resp_port);
    char buf[64];
    const char *q = "PING\r\nQUIT\r\nPING\r\n";
    cr_assert_eq(write(fd, q, strlen(q)), (ssize_t)strlen(q));
    size_t got = raw_read(fd, buf, sizeof(buf) - 1);
    cr_assert_str_eq(buf, "+PONG\r\n+OK\r\n", "got %zu: %s", got, buf);
    close(fd);
}

/* Regression (review): a client that pipelines and never reads its replies
 * must not keep the node from shutting down. */
Test(resp_server, sigterm_is_not_held_up_by_a_client_that_does_not_read)
{
    struct itest_node *n = itest_start(NULL);
    int fd = itest_raw_connect(n->resp_port);
    static char req[20000 * 14];
    size_t len = 0;
    for (int i = 0; i < 20000; i++)
        len += (size_t)snprintf(req + len, sizeof(req) - len,
                                "*1\r\n$4\r\nINFO\r\n");
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    size_t sent = 0;
    uint64_t until = itest_now_ms() + 3000;
    while (sent < len && itest_now_ms() < until) {
        ssize_t w = write(fd, req + sent, len - sent);
        if (w > 0)
            sent += (size_t)w;
        else
            itest_nap();
    }
    int st = itest_signal(n, SIGTERM); /* waits for the exit */
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
    close(fd);
}

/* Regression (review): 1024 arguments of max_value each could be buffered
 * for one command; a whole command must fit in max_frame. */
Test(resp_server, a_command_larger_than_max_frame_is_refused)
{
    struct itest_node *n =
        itest_start("--max-frame", "65536", "--max-value", "60000", NULL);
    int fd = itest_raw_connect(n->resp_port);
    static char big[60000];
    char hdr[32], buf[256];
    memset(big, 'x', sizeof(big));
    const char *head = "*10\r\n$4\r\nMGET\r\n";
    cr_assert_eq(write(fd, head, strlen(head)), (ssize_t)strlen(head));
    for (int i = 0; i < 9; i++) {
        int h = snprintf(hdr, sizeof(hdr), "$%zu\r\n", sizeof(big));
        if (write(fd, hdr, (size_t)h) != h ||
            write(fd, big, sizeof(big)) != (ssize_t)sizeof(big) ||
            write(fd, "\r\n", 2) != 2)
            break; /* the server may already have hung up */
    }
    size_t got = 0;
    ssize_t r;
    while (got < sizeof(buf) - 1 &&
           (r = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
        got += (size_t)r;
    buf[got] = '\0';
    cr_assert(strstr(buf, "max_frame") != NULL, "got %s", buf);
    close(fd);
    char out[64];
    cr_assert_eq(
        itest_sh(out, sizeof(out), "redis-cli -p %d PING", n->resp_port), 0);
    cr_assert_str_eq(out, "PONG\n");
}
