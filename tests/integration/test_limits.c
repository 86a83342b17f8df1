/*
 * test_limits.c - the node's memory and connection bounds, held as numbers
 * on a real process: replies queued behind a waiting write, floods of
 * malformed frames on both protocols, thousands of idle connections, and a
 * slowloris. Each run is bounded in operations; nothing asserts on time
 * (a deadline only stops a wait that would otherwise never end).
 *
 * RSS is read from /proc/PID/status. The nodes run under ASan, whose
 * quarantine keeps freed memory resident: it is set small (ASAN_OPTIONS)
 * so that RSS follows what the node holds.
 */
#include <inttypes.h>
#include <poll.h>

#include "tests/integration/itest.h"

static void limits_init(void)
{
    setenv("ASAN_OPTIONS", "quarantine_size_mb=16:malloc_context_size=5", 1);
}

TestSuite(limits, .timeout = 240, .init = limits_init, .fini = itest_cleanup);

static void itest_signal_nowait(struct itest_node *n, int sig)
{
    cr_assert(n->pid > 0);
    kill(n->pid, sig);
}

/* Reads exactly want bytes (or until EOF / the receive timeout). */
static size_t raw_read_exact(int fd, char *buf, size_t want)
{
    size_t got = 0;
    while (got < want) {
        ssize_t r = read(fd, buf + got, want - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    long kib = -1;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    cr_assert(f != NULL);
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

/* Writes what it can of buf without blocking until all is written or
 * nothing moved for quiet_ms. Returns the bytes written. */
static size_t write_until_stuck(int fd, const char *buf, size_t len,
                                int quiet_ms)
{
    size_t sent = 0;
    uint64_t last = itest_now_ms();
    while (sent < len && itest_now_ms() - last < (uint64_t)quiet_ms) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (poll(&p, 1, 50) <= 0)
            continue;
        ssize_t w = send(fd, buf + sent, len - sent, MSG_DONTWAIT);
        if (w > 0) {
            sent += (size_t)w;
            last = itest_now_ms();
        }
    }
    return sent;
}

/* Finding 3: one SET waits on a stopped replica; 300 x 1 MiB ECHO queue
 * their ready replies behind it. Reading pauses at conn_max_buffer, so the
 * node's RSS stays bounded; once the replica resumes every reply arrives,
 * in order. (Before: RSS grew by ~300 MiB.) */
Test(limits, replies_queued_behind_a_waiting_write_are_bounded)
{
    struct itest_node *n =
        itest_cluster(3, "--w", "3", "--conn-max-buffer", "4MiB",
                      "--request-timeout", "60s", "--fsync", "never", NULL);
    int fd = itest_raw_connect(n->resp_port);
    const size_t mib = 1 << 20, count = 300;
    char hdr[64];
    int h = snprintf(hdr, sizeof(hdr), "*2\r\n$4\r\nECHO\r\n$%zu\r\n", mib);
    size_t one = (size_t)h + mib + 2;
    char *flood = malloc(one * count);
    cr_assert(flood != NULL);
    for (size_t i = 0; i < count; i++) {
        char *p = flood + i * one;
        memcpy(p, hdr, (size_t)h);
        memset(p + h, 'e', mib);
        memcpy(p + h + mib, "\r\n", 2);
    }
    long before = rss_kib(n->pid);

    itest_signal_nowait(&itest_nodes[2], SIGSTOP);
    const char *set = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n";
    cr_assert_eq(write(fd, set, strlen(set)), (ssize_t)strlen(set));
    size_t sent = write_until_stuck(fd, flood, one * count, 1500);
    long during = rss_kib(n->pid);
    cr_log_info("RSS before %ld KiB, with %zu MiB of ECHO pushed behind a "
                "waiting SET: %ld KiB (+%ld KiB); paused_buffer %" PRId64,
                before, sent >> 20, during, during - before,
                itest_stat(n, "paused_buffer"));
    cr_assert_lt(sent, one * count, "the node kept reading everything");
    cr_assert_lt(during - before, 64 * 1024,
                 "RSS grew by %ld KiB with replies queued", during - before);
    cr_assert_gt(itest_stat(n, "paused_buffer"), 0);

    /* Resume the replica: the SET answers, then every ECHO, in order. */
    itest_signal_nowait(&itest_nodes[2], SIGCONT);
    char *reply = malloc(one);
    cr_assert(reply != NULL);
    cr_assert_eq(raw_read_exact(fd, reply, 5), 5);
    cr_assert(memcmp(reply, "+OK\r\n", 5) == 0);
    size_t total_sent = sent;
    for (size_t i = 0; i < count; i++) {
        while (total_sent < one * count) { /* what the socket takes now */
            ssize_t w = send(fd, flood + total_sent, one * count - total_sent,
                             MSG_DONTWAIT);
            if (w <= 0)
                break;
            total_sent += (size_t)w;
        }
        size_t want =
            (size_t)snprintf(hdr, sizeof(hdr), "$%zu\r\n", mib) + mib + 2;
        cr_assert_eq(raw_read_exact(fd, reply, want), want, "reply %zu", i);
        cr_assert(memcmp(reply, hdr, strlen(hdr)) == 0, "reply %zu", i);
    }
    free(reply);
    free(flood);
    close(fd);
}

/* Finding 6: a node-wide bound on requests in flight. 4 connections
 * pipeline 4 SETs each while a replica is stopped (w = 3: each SET waits);
 * with max_inflight 8, 8 wait and the other 8 are refused at once with a
 * definite overloaded error, counted. When the replica resumes every
 * waiting SET succeeds, and no refused one was applied. */
Test(limits, requests_beyond_max_inflight_are_refused_as_overloaded)
{
    struct itest_node *n =
        itest_cluster(3, "--w", "3", "--max-inflight", "8", "--request-timeout",
                      "60s", "--fsync", "never", NULL);
    enum { CONNS = 4, EACH = 4 };
    int fds[CONNS];
    char cmd[128], line[256];

    itest_signal_nowait(&itest_nodes[2], SIGSTOP);
    for (int i = 0; i < CONNS; i++) {
        fds[i] = itest_raw_connect(n->resp_port);
        for (int j = 0; j < EACH; j++) {
            int len =
                snprintf(cmd, sizeof(cmd),
                         "*3\r\n$3\r\nSET\r\n$3\r\nk%d%d\r\n$1\r\nv\r\n", i, j);
            cr_assert_eq(write(fds[i], cmd, (size_t)len), len);
        }
    }
    /* Every SET was read and admitted or refused before the replica
     * resumes: 16 decisions, none of which waits on it. */
    uint64_t deadline = itest_now_ms() + 30000;
    while (itest_stat(n, "client_inflight") +
                   itest_stat(n, "overloaded_inflight") <
               CONNS * EACH &&
           itest_now_ms() < deadline)
        itest_nap();
    int64_t refused = itest_stat(n, "overloaded_inflight");
    cr_assert_eq(refused, CONNS * EACH - 8, "overloaded_inflight %" PRId64,
                 refused);
    cr_assert_eq(itest_stat(n, "client_inflight"), 8);
    itest_signal_nowait(&itest_nodes[2], SIGCONT);

    int ok = 0, overloaded = 0;
    bool applied[CONNS][EACH];
    for (int i = 0; i < CONNS; i++) {
        FILE *f = fdopen(fds[i], "r");
        cr_assert(f != NULL);
        for (int j = 0; j < EACH; j++) {
            cr_assert(fgets(line, sizeof(line), f) != NULL, "reply %d/%d", i,
                      j);
            applied[i][j] = strcmp(line, "+OK\r\n") == 0;
            if (applied[i][j])
                ok++;
            else if (strncmp(line, "-ERR overloaded", 15) == 0 &&
                     strstr(line, "(definite") != NULL)
                overloaded++;
            else
                cr_assert_fail("reply %d/%d: %s", i, j, line);
        }
        fclose(f);
    }
    cr_assert_eq(ok, 8);
    cr_assert_eq(overloaded, CONNS * EACH - 8);
    /* What succeeded is there on every replica; what was refused is not. */
    int fd = itest_raw_connect(n->resp_port);
    FILE *f = fdopen(fd, "r");
    for (int i = 0; i < CONNS; i++)
        for (int j = 0; j < EACH; j++) {
            int len = snprintf(cmd, sizeof(cmd),
                               "*2\r\n$3\r\nGET\r\n$3\r\nk%d%d\r\n", i, j);
            cr_assert_eq(write(fd, cmd, (size_t)len), len);
            cr_assert(fgets(line, sizeof(line), f) != NULL);
            if (applied[i][j]) {
                cr_assert_str_eq(line, "$1\r\n", "k%d%d", i, j);
                cr_assert(fgets(line, sizeof(line), f) != NULL);
            } else {
                cr_assert_str_eq(line, "$-1\r\n", "k%d%d", i, j);
            }
        }
    fclose(f);
}

/* Finding 6 and the flood bound: 40 connections send malformed input on
 * both protocols for a fixed number of frames each while a legitimate
 * client writes and reads back 500 keys. Every legitimate request is
 * served, every bad frame is answered, and RSS stays bounded. */
Test(limits, floods_of_malformed_frames_leave_memory_bounded)
{
    struct itest_node *n = itest_start("--fsync", "never", NULL);
    enum { CONNS = 40, FRAMES = 500 };
    int fds[CONNS];
    long before = rss_kib(n->pid);

    /* Native: a frame whose body is a msgpack string, not a map; RESP:
     * an unknown command, a nested array, and an oversized argument. */
    static const char native_bad[] = "\x00\x00\x00\x04\xa3"
                                     "abc";
    static char resp_bad[256 + (5 << 20)];
    size_t rlen = (size_t)snprintf(resp_bad, sizeof(resp_bad),
                                   "NOSUCH a b\r\n*2\r\n$4\r\nMGET\r\n*1\r\n"
                                   "$1\r\nx\r\n*2\r\n$4\r\nECHO\r\n$%d\r\n",
                                   5 << 20);
    memset(resp_bad + rlen, 'x', 5 << 20);
    rlen += 5 << 20;
    memcpy(resp_bad + rlen, "\r\n", 2);
    rlen += 2;

    for (int i = 0; i < CONNS; i++)
        fds[i] = itest_raw_connect(i % 2 ? n->resp_port : n->port);
    struct rkc *c;
    cr_assert_eq(rkc_connect(&c, "127.0.0.1", (uint16_t)n->port, 10000), 0);
    int served = 0;
    for (int round = 0; round < FRAMES; round++) {
        for (int i = 0; i < CONNS; i++) {
            if (i % 2 == 0) {
                cr_assert_eq(write(fds[i], native_bad, 8), 8);
            } else if (round % 50 == 0) {
                cr_assert_eq(write_until_stuck(fds[i], resp_bad, rlen, 5000),
                             rlen);
            }
        }
        /* Drain the error replies so the flood is limited by the node,
         * not by our unread socket buffers. */
        for (int i = 0; i < CONNS; i++) {
            char sink[65536];
            while (recv(fds[i], sink, sizeof(sink), MSG_DONTWAIT) > 0)
                ;
        }
        char key[32], val[32];
        snprintf(key, sizeof(key), "legit%d", round);
        snprintf(val, sizeof(val), "value%d", round);
        struct rkc_result r = {0};
        cr_assert_eq(
            rkc_put(c, key, strlen(key), val, strlen(val), NULL, 0, &r), 0,
            "legit put %d", round);
        rkc_result_free(&r);
        cr_assert_eq(rkc_get(c, key, strlen(key), &r), 0);
        cr_assert_eq(r.nvalues, 1);
        cr_assert(r.values[0].len == strlen(val) &&
                  memcmp(r.values[0].data, val, strlen(val)) == 0);
        rkc_result_free(&r);
        served++;
    }
    rkc_close(c);
    long after = rss_kib(n->pid);
    int64_t bad = itest_stat(n, "bad_frames"),
            resp = itest_stat(n, "resp_errors");
    cr_log_info("flood: %d conns x %d frames, bad_frames %" PRId64
                ", resp_errors %" PRId64 "; RSS %ld -> %ld KiB (+%ld); legit "
                "puts+gets served %d/%d",
                CONNS, FRAMES, bad, resp, before, after, after - before, served,
                FRAMES);
    cr_assert_geq(bad, CONNS / 2 * FRAMES);
    cr_assert_geq(resp, CONNS / 2 * (FRAMES / 50) * 3);
    cr_assert_lt(after - before, 96 * 1024, "RSS grew by %ld KiB",
                 after - before);
    for (int i = 0; i < CONNS; i++)
        close(fds[i]);
}

/* 5,000 idle connections are accepted and each is still served. */
Test(limits, five_thousand_idle_connections_are_accepted)
{
    struct itest_node *n = itest_start(NULL);
    enum { CONNS = 5000 };
    static int fds[CONNS];
    for (int i = 0; i < CONNS; i++)
        fds[i] = itest_raw_connect(n->resp_port);
    int64_t open = itest_stat(n, "connections");
    cr_assert_geq(open, CONNS, "connections %" PRId64, open);
    /* The last and the first are answered. */
    char buf[16];
    int ends[2] = {fds[CONNS - 1], fds[0]};
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(write(ends[i], "PING\r\n", 6), 6);
        cr_assert_eq(raw_read_exact(ends[i], buf, 7), 7);
        cr_assert(memcmp(buf, "+PONG\r\n", 7) == 0);
    }
    cr_log_info("%d idle connections open, RSS %ld KiB", CONNS,
                rss_kib(n->pid));
    for (int i = 0; i < CONNS; i++)
        close(fds[i]);
}

/* A slowloris sends a byte a second and never completes a request: it is
 * closed once idle_timeout passes without a whole request, on both
 * protocols. (Before: every byte counted as activity; it stayed forever.) */
Test(limits, a_slowloris_is_closed_after_idle_timeout)
{
    struct itest_node *n = itest_start("--idle-timeout", "2s", NULL);
    int fds[2] = {itest_raw_connect(n->resp_port), itest_raw_connect(n->port)};
    /* A header announcing a large argument or frame, then one byte at a
     * time: no request ever completes. */
    const char *head[2] = {"*1\r\n$1000000\r\n", "\x00\x10\x00\x00"};
    size_t hlen[2] = {strlen(head[0]), 4};
    bool closed[2] = {false, false};
    for (int i = 0; i < 2; i++)
        cr_assert_eq(write(fds[i], head[i], hlen[i]), (ssize_t)hlen[i]);
    /* 60 drips of 0.5 s: far longer than the timeout, if it never fired. */
    for (int b = 0; b < 60 && !(closed[0] && closed[1]); b++) {
        for (int i = 0; i < 2; i++) {
            if (closed[i])
                continue;
            char sink[64];
            ssize_t r = recv(fds[i], sink, sizeof(sink), MSG_DONTWAIT);
            if (r == 0 || (r < 0 && errno != EAGAIN) ||
                send(fds[i], "x", 1, MSG_NOSIGNAL) != 1)
                closed[i] = true;
        }
        struct timespec ts = {0, 500 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    cr_assert(closed[0], "RESP slowloris still open after 30 s");
    cr_assert(closed[1], "native slowloris still open after 30 s");
    cr_assert_geq(itest_stat(n, "idle_closed"), 2);
    close(fds[0]);
    close(fds[1]);
}
