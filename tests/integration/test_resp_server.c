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

/* Reads into buf until it ends with end or the 10 s receive timeout. */
static size_t read_until(int fd, char *buf, size_t cap, const char *end)
{
    size_t got = 0, m = strlen(end);
    while (got < cap - 1) {
        ssize_t r = read(fd, buf + got, cap - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
        buf[got] = '\0';
        if (got >= m && strcmp(buf + got - m, end) == 0)
            break;
    }
    buf[got] = '\0';
    return got;
}

/* Sends cmd and expects one reply line starting with want *before* sending
 * anything else (a reply that waits for more input times out here), then
 * PING and exactly +PONG: the connection still works. */
static void expect_then_pong(int fd, const char *cmd, size_t len,
                             const char *want)
{
    static const char ping[] = "*1\r\n$4\r\nPING\r\n";
    char buf[1024];

    cr_assert_eq(write(fd, cmd, len), (ssize_t)len);
    size_t got = read_until(fd, buf, sizeof(buf), "\r\n");
    cr_assert(strncmp(buf, want, strlen(want)) == 0,
              "after %.40s: want \"%s...\", got \"%s\"", cmd, want, buf);
    cr_assert(strstr(buf, "\r\n") == buf + got - 2,
              "after %.40s: one reply line, got \"%s\"", cmd, buf);
    cr_assert_eq(write(fd, ping, strlen(ping)), (ssize_t)strlen(ping));
    read_until(fd, buf, sizeof(buf), "\r\n");
    cr_assert_str_eq(buf, "+PONG\r\n", "after %.40s", cmd);
}

static void expect_then_pong_s(int fd, const char *cmd, const char *want)
{
    expect_then_pong(fd, cmd, strlen(cmd), want);
}

/* Every RESP error branch answers at once and leaves the connection
 * usable (finding 1 of the first-hour issue: SET EX and an oversized SET
 * answered only when the next command came). */
Test(resp_server, every_error_reply_arrives_at_once_and_the_connection_goes_on)
{
    struct itest_node *n = itest_start("--max-value", "1000", NULL);
    int fd = itest_raw_connect(n->resp_port);
    static const struct {
        const char *cmd, *want;
    } cases[] = {
        {"GET\r\n", "-ERR wrong number of arguments for 'get' command"},
        {"SET k\r\n", "-ERR wrong number of arguments for 'set' command"},
        {"ECHO a b\r\n", "-ERR wrong number of arguments for 'echo'"},
        {"PING a b\r\n", "-ERR wrong number of arguments for 'ping'"},
        {"MGET\r\n", "-ERR wrong number of arguments for 'mget'"},
        {"NOSUCH a\r\n", "-ERR unknown or unsupported command 'NOSUCH'"},
        {"SET k v EX 10\r\n", "-ERR SET option EX is not supported"},
        {"SET k v PX 10\r\n", "-ERR SET option PX is not supported"},
        {"SET k v EXAT 10\r\n", "-ERR SET option EXAT is not supported"},
        {"SET k v PXAT 10\r\n", "-ERR SET option PXAT is not supported"},
        {"SET k v NX\r\n", "-ERR SET option NX is not supported"},
        {"SET k v XX\r\n", "-ERR SET option XX is not supported"},
        {"SET k v GET\r\n", "-ERR SET option GET is not supported"},
        {"SET k v NX XX\r\n", "-ERR syntax error"},
        {"SET k v BOGUS\r\n", "-ERR syntax error"},
        {"SET k v EX\r\n", "-ERR syntax error"},
        {"SET k v EX 1 PX 1\r\n", "-ERR syntax error"},
        {"SET k v KEEPTTL EX 1\r\n", "-ERR syntax error"},
        {"SET k v EX ten\r\n", "-ERR value is not an integer or out of range"},
        {"SET k v EX 0\r\n", "-ERR invalid expire time in 'set' command"},
        {"SET k v KEEPTTL\r\n", "+OK"},
        {"SELECT x\r\n", "-ERR value is not an integer or out of range"},
        {"SELECT 1\r\n", "-ERR DB index is out of range"},
        {"SELECT 0\r\n", "+OK"},
        {"HELLO 3\r\n", "-NOPROTO"},
        {"HELLO x\r\n", "-ERR Protocol version is not an integer"},
        {"HELLO 2 BOGUS\r\n", "-ERR Syntax error in HELLO option 'BOGUS'"},
        {"AUTH pw\r\n", "-ERR AUTH <password> called without any password"},
        {"CLIENT NOSUCH\r\n", "-ERR unknown subcommand 'NOSUCH'"},
        {"CLIENT SETNAME\r\n", "-ERR wrong number of arguments for 'client|"},
        {"CLIENT SETNAME a\001b\r\n", "-ERR Client names cannot contain"},
        {"CONFIG SET a b\r\n", "-ERR CONFIG SET is not supported"},
        {"COMMAND NOSUCH\r\n", "-ERR unknown subcommand 'NOSUCH'"},
        {"EXEC\r\n", "-ERR EXEC without MULTI"},
        {"WATCH k\r\n", "-ERR WATCH is not supported"},
        {"*2\r\n$3\r\nGET\r\n$0\r\n\r\n", "-ERR key of 0 bytes"},
        {"*3\r\n$4\r\nMGET\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n",
         "-ERR Protocol error: expected '$', got '*'"},
        {"*1\r\n*1\r\n*0\r\n", "-ERR Protocol error: expected '$', got '*'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_then_pong_s(fd, cases[i].cmd, cases[i].want);

    /* A refused MULTI: nothing up to EXEC runs, then all is as before. */
    static const char multi[] = "MULTI\r\nSET k inmulti\r\nPING\r\nEXEC\r\n"
                                "GET k\r\n";
    static const char *const want[] = {"-ERR MULTI is not supported",
                                       "-ERR not run: this connection is in",
                                       "-ERR not run: this connection is in",
                                       "-EXECABORT",
                                       "$1",
                                       "v"};
    char buf[2048];
    cr_assert_eq(write(fd, multi, strlen(multi)), (ssize_t)strlen(multi));
    read_until(fd, buf, sizeof(buf), "\r\nv\r\n");
    char *line = buf;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        char *eol = strstr(line, "\r\n");
        cr_assert(eol != NULL && strncmp(line, want[i], strlen(want[i])) == 0,
                  "MULTI reply %zu: want %s, got %s", i, want[i], buf);
        line = eol + 2;
    }
    expect_then_pong_s(fd, "WATCH k\r\n", "-ERR WATCH is not supported");

    /* Sizes: a key over max_key (500), a value over max_value (1000) but
     * within what the parser takes, an argument over both (discarded as
     * it streams in), and more arguments than a command may have. */
    static char big[4096 + 64];
    char key[600], val[1001];
    memset(key, 'k', sizeof(key));
    memset(val, 'v', sizeof(val));
    int len = snprintf(big, sizeof(big), "*2\r\n$3\r\nGET\r\n$%zu\r\n%.*s\r\n",
                       sizeof(key), (int)sizeof(key), key);
    expect_then_pong(fd, big, (size_t)len, "-ERR key of 600 bytes");
    len = snprintf(big, sizeof(big),
                   "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%zu\r\n%.*s\r\n",
                   sizeof(val), (int)sizeof(val), val);
    expect_then_pong(fd, big, (size_t)len, "-ERR argument of 1001 bytes");
    /* A value over max_value that is still within max_key (the parser's
     * bound is the larger of the two). */
    struct itest_node *small = itest_start("--max-value", "400", NULL);
    int fd2 = itest_raw_connect(small->resp_port);
    len = snprintf(big, sizeof(big),
                   "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$450\r\n%.*s\r\n", 450, val);
    expect_then_pong(fd2, big, (size_t)len,
                     "-ERR value of 450 bytes exceeds max_value (400 bytes)");
    close(fd2);
    len = snprintf(big, sizeof(big), "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4000\r\n");
    memset(big + len, 'x', 4000);
    memcpy(big + len + 4000, "\r\n", 2);
    expect_then_pong(fd, big, (size_t)len + 4002,
                     "-ERR argument of 4000 bytes is larger than any key");
    static char many[2000 * 8 + 32];
    len = snprintf(many, sizeof(many), "*2000\r\n$6\r\nEXISTS\r\n");
    for (int i = 1; i < 2000; i++)
        len += snprintf(many + len, sizeof(many) - (size_t)len, "$1\r\nk\r\n");
    expect_then_pong(fd, many, (size_t)len,
                     "-ERR command of 2000 arguments exceeds the limit");
    close(fd);

    /* Every argument within its limit, the whole command over max_frame:
     * answered, discarded as it streams in, and the connection goes on. */
    struct itest_node *framed =
        itest_start("--max-frame", "64KiB", "--max-value", "1000", NULL);
    int fd3 = itest_raw_connect(framed->resp_port);
    size_t cap = 1000 * 920 + 64;
    char *huge = malloc(cap);
    cr_assert_not_null(huge);
    size_t hl = (size_t)snprintf(huge, cap, "*1000\r\n$6\r\nEXISTS\r\n");
    for (int i = 1; i < 1000; i++) {
        hl += (size_t)snprintf(huge + hl, cap - hl, "$900\r\n");
        memset(huge + hl, 'a', 900);
        memcpy(huge + hl + 900, "\r\n", 2);
        hl += 902;
    }
    expect_then_pong(fd3, huge, hl,
                     "-ERR command too large: over max_frame (65536 bytes)");
    free(huge);
    close(fd3);
}

/* What real clients send when they connect: HELLO, CLIENT SETNAME/
 * SETINFO/GETNAME/ID, COMMAND COUNT/DOCS/INFO. */
Test(resp_server, connection_setup_commands_answer_as_redis_does)
{
    struct itest_node *n = itest_start(NULL);
    char out[4096];

    cr_assert_eq(cli(n, out, sizeof(out), "HELLO 2 SETNAME app"), 0);
    cr_assert(strstr(out, "server\nredis\nversion\n") == out, "got %s", out);
    cr_assert(strstr(out, "proto\n2\nid\n") != NULL, "got %s", out);
    cr_assert_eq(cli(n, out, sizeof(out), "HELLO 2 AUTH default pw"), 0);
    cr_assert(strstr(out, "proto\n2\n") != NULL, "got %s", out);
    cr_assert_eq(itest_sh(out, sizeof(out),
                          "printf 'CLIENT SETNAME app\\r\\nCLIENT GETNAME\\r\\n"
                          "CLIENT SETINFO LIB-NAME x\\r\\nCLIENT ID\\r\\n' | "
                          "redis-cli -p %d",
                          n->resp_port),
                 0);
    cr_assert(strncmp(out, "OK\napp\nOK\n", 10) == 0, "got %s", out);
    cr_assert_eq(cli(n, out, sizeof(out), "COMMAND COUNT"), 0);
    cr_assert_gt(atoi(out), 10, "got %s", out);
    cr_assert_eq(cli(n, out, sizeof(out), "COMMAND INFO get nosuch"), 0);
    cr_assert(strncmp(out, "get\n2\nreadonly\n1\n1\n1\n", 21) == 0, "got %s",
              out);
    cr_assert_eq(cli(n, out, sizeof(out), "COMMAND DOCS"), 0);
}
