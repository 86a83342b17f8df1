/*
 * itest.h - helpers for integration tests that run the real `ringkv`
 * binary: start a node on free ports in its own temp data dir, wait until
 * it serves, signal it, run a shell command and capture its output.
 *
 * Cleanup even on failure: every node is spawned with PR_SET_PDEATHSIG, so
 * it dies with the test process whatever happens to it, and each test's
 * .fini (itest_cleanup) kills what is left and removes the temp dirs.
 * Waiting is polling with a deadline, never a fixed sleep, and no test
 * asserts on timing.
 */
#ifndef RINGKV_ITEST_H
#define RINGKV_ITEST_H

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/client.h"

#define ITEST_MAX_NODES 8
/* The cluster secret itest_cluster() gives every node. */
#define ITEST_SECRET   "itest-cluster-secret-0123456789"
#define ITEST_MAX_ARGS 32

struct itest_node {
    pid_t pid;
    int port, resp_port;
    char id[16];
    char peers[512];
    char portarg[16];
    char dir[256];  /* temp dir holding data/ and log */
    char data[300]; /* data dir */
    char log[300];
    const char *extra[ITEST_MAX_ARGS];
    int nextra;
};

static struct itest_node itest_nodes[ITEST_MAX_NODES];
static int itest_nnodes;

static inline uint64_t itest_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static inline void itest_nap(void)
{
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

/* True when nothing listens on 127.0.0.1:port (we can bind it). */
static inline int itest_port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int one = 1, ok;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

/* Two free ports p and p+1 in 20000..31999, random per process: below
 * Linux's ephemeral range (32768..60999 by default), so an outgoing
 * connection of another test or node cannot take a port between our check
 * and the node's bind. */
static inline int itest_pick_ports(void)
{
    static unsigned seed;
    if (seed == 0)
        seed = (unsigned)getpid() ^ (unsigned)itest_now_ms();
    for (int tries = 0; tries < 1000; tries++) {
        int p = 20000 + (int)(rand_r(&seed) % 6000) * 2;
        if (itest_port_free(p) && itest_port_free(p + 1))
            return p;
    }
    cr_assert_fail("no free ports");
    return -1;
}

/* Starts (or restarts, keeping its dir) node i. */
static inline void itest_spawn(struct itest_node *n)
{
    char port[16], rport[16];
    const char *argv[ITEST_MAX_ARGS + 16];
    int k = 0;

    snprintf(port, sizeof(port), "%d", n->port);
    snprintf(rport, sizeof(rport), "%d", n->resp_port);
    argv[k++] = RINGKV_BIN_DIR "/ringkv";
    argv[k++] = "--data-dir";
    argv[k++] = n->data;
    argv[k++] = "--port";
    argv[k++] = port;
    argv[k++] = "--resp-port";
    argv[k++] = rport;
    argv[k++] = "--log-file";
    argv[k++] = n->log;
    argv[k++] = "--log-level";
    argv[k++] = "debug";
    for (int i = 0; i < n->nextra; i++)
        argv[k++] = n->extra[i];
    argv[k] = NULL;

    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    n->pid = pid;
}

/* True when the node answers a native ping. */
static inline int itest_ping(const struct itest_node *n)
{
    struct rkc *c;
    int ok;
    if (rkc_connect(&c, "127.0.0.1", (uint16_t)n->port, 500) != 0)
        return 0;
    ok = rkc_ping(c) == 0;
    rkc_close(c);
    return ok;
}

/* Waits until n serves; fails the test if it exits or takes > 20 s. */
static inline void itest_wait_up(struct itest_node *n)
{
    uint64_t deadline = itest_now_ms() + 20000;
    while (!itest_ping(n)) {
        int st;
        if (waitpid(n->pid, &st, WNOHANG) == n->pid) {
            n->pid = 0;
            cr_assert_fail("ringkv exited during start-up (see %s)", n->log);
        }
        cr_assert(itest_now_ms() < deadline, "ringkv did not start");
        itest_nap();
    }
}

/* A new node slot with a fresh temp dir (data/ and log in it) and free
 * ports; nothing started. */
static inline struct itest_node *itest_new_node(void)
{
    cr_assert(itest_nnodes < ITEST_MAX_NODES);
    struct itest_node *n = &itest_nodes[itest_nnodes++];
    char dir[sizeof(n->dir)] = "/tmp/ringkv-itest-XXXXXX";

    memset(n, 0, sizeof(*n));
    cr_assert(mkdtemp(dir) != NULL);
    memcpy(n->dir, dir, sizeof(dir));
    snprintf(n->data, sizeof(n->data), "%s/data", dir);
    snprintf(n->log, sizeof(n->log), "%s/log", dir);
    n->port = itest_pick_ports();
    n->resp_port = n->port + 1;
    return n;
}

/* Appends first and the rest of ap (NULL-terminated) to n's arguments. */
static inline void itest_add_args(struct itest_node *n, const char *first,
                                  va_list ap)
{
    for (const char *a = first; a != NULL; a = va_arg(ap, const char *)) {
        cr_assert(n->nextra < ITEST_MAX_ARGS);
        n->extra[n->nextra++] = a;
    }
}

/* Creates a node with a fresh temp dir and the given extra arguments
 * (NULL-terminated), starts it and waits until it serves. */
static inline struct itest_node *itest_start(const char *first, ...)
{
    struct itest_node *n = itest_new_node();
    va_list ap;

    va_start(ap, first);
    itest_add_args(n, first, ap);
    va_end(ap);
    itest_spawn(n);
    itest_wait_up(n);
    return n;
}

/* Sends sig and waits for the process to exit. Returns its wait status. */
static inline int itest_signal(struct itest_node *n, int sig)
{
    int st = 0;
    if (n->pid <= 0)
        return 0;
    kill(n->pid, sig);
    waitpid(n->pid, &st, 0);
    n->pid = 0;
    return st;
}

static inline void itest_restart(struct itest_node *n)
{
    itest_spawn(n);
    itest_wait_up(n);
}

/* A raw TCP connection to 127.0.0.1:port with a 10 s receive timeout. */
static inline int itest_raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* Runs a shell command, returns its exit status; its stdout (up to cap-1
 * bytes) is stored NUL-terminated in out when out != NULL. */
static inline int itest_sh(char *out, size_t cap, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    FILE *p = popen(cmd, "r");
    cr_assert(p != NULL);
    size_t n = 0;
    if (out != NULL) {
        size_t r;
        while (n + 1 < cap && (r = fread(out + n, 1, cap - 1 - n, p)) > 0)
            n += r;
        out[n] = '\0';
    } else {
        char sink[4096];
        while (fread(sink, 1, sizeof(sink), p) > 0)
            ;
    }
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* k free ports in a row (2k ports: native p+2i, RESP p+2i+1). */
static inline int itest_pick_range(int k)
{
    for (int tries = 0; tries < 1000; tries++) {
        int p = itest_pick_ports();
        int ok = 1;
        if (p + 2 * k >= 32768)
            continue;
        for (int i = 2; i < 2 * k && ok; i++)
            ok = itest_port_free(p + i);
        if (ok)
            return p;
    }
    cr_assert_fail("no free port range");
    return -1;
}

/* The member table as node n sees it; returns how many members are up, or
 * -1 when it does not answer. */
static inline int itest_members_up(const struct itest_node *n)
{
    struct rkc *c;
    struct rkc_result r = {0};
    int up = 0;
    if (rkc_connect(&c, "127.0.0.1", (uint16_t)n->port, 1000) != 0)
        return -1;
    if (rkc_members(c, &r) != 0) {
        rkc_result_free(&r);
        rkc_close(c);
        return -1;
    }
    for (size_t i = 0; i < r.nmembers; i++)
        up += r.members[i].up;
    rkc_result_free(&r);
    rkc_close(c);
    return up;
}

/* Waits until node n sees `want` members up. */
static inline void itest_wait_members(const struct itest_node *n, int want)
{
    uint64_t deadline = itest_now_ms() + 20000;
    while (itest_members_up(n) != want) {
        cr_assert(itest_now_ms() < deadline, "%s does not see %d members up",
                  n->id, want);
        itest_nap();
    }
}

/* Starts k nodes (n1..nk) as one cluster; the NULL-terminated extra
 * arguments go to every node. Returns the first; they are itest_nodes[0..k). */
static inline struct itest_node *itest_cluster(int k, const char *first, ...)
{
    cr_assert(itest_nnodes == 0 && k <= ITEST_MAX_NODES);
    int base = itest_pick_range(k);
    char peers[512] = "";
    size_t len = 0;
    va_list ap;

    for (int i = 0; i < k; i++)
        len += (size_t)snprintf(peers + len, sizeof(peers) - len,
                                "%sn%d@127.0.0.1:%d", i ? "," : "", i + 1,
                                base + 2 * i);
    for (int i = 0; i < k; i++) {
        struct itest_node *n = &itest_nodes[itest_nnodes++];
        char dir[sizeof(n->dir)] = "/tmp/ringkv-itest-XXXXXX";
        memset(n, 0, sizeof(*n));
        cr_assert(mkdtemp(dir) != NULL);
        memcpy(n->dir, dir, sizeof(dir));
        snprintf(n->data, sizeof(n->data), "%s/data", dir);
        snprintf(n->log, sizeof(n->log), "%s/log", dir);
        snprintf(n->id, sizeof(n->id), "n%d", i + 1);
        memcpy(n->peers, peers, sizeof(peers));
        n->port = base + 2 * i;
        n->resp_port = n->port + 1;
        n->extra[n->nextra++] = "--node-id";
        n->extra[n->nextra++] = n->id;
        n->extra[n->nextra++] = "--peers";
        n->extra[n->nextra++] = n->peers;
        n->extra[n->nextra++] = "--cluster-secret";
        n->extra[n->nextra++] = ITEST_SECRET;
        va_start(ap, first);
        for (const char *a = first; a != NULL; a = va_arg(ap, const char *)) {
            cr_assert(n->nextra < ITEST_MAX_ARGS);
            n->extra[n->nextra++] = a;
        }
        va_end(ap);
        itest_spawn(n);
    }
    for (int i = 0; i < k; i++)
        itest_wait_up(&itest_nodes[i]);
    for (int i = 0; i < k; i++)
        itest_wait_members(&itest_nodes[i], k);
    return &itest_nodes[0];
}

/* Starts node `id` with a fresh temp dir, the given cluster secret, and
 * --seeds pointing at seed's native port (seed NULL: no seeds, so the node
 * founds a one-member ring); the NULL-terminated extra arguments follow.
 * Waits until it serves (not until it is in the ring). */
static inline struct itest_node *itest_seeded(const char *id,
                                              const struct itest_node *seed,
                                              const char *secret,
                                              const char *first, ...)
{
    struct itest_node *n = itest_new_node();
    va_list ap;

    snprintf(n->id, sizeof(n->id), "%s", id);
    n->extra[n->nextra++] = "--node-id";
    n->extra[n->nextra++] = n->id;
    n->extra[n->nextra++] = "--cluster-secret";
    n->extra[n->nextra++] = secret;
    if (seed != NULL) {
        snprintf(n->peers, sizeof(n->peers), "127.0.0.1:%d", seed->port);
        n->extra[n->nextra++] = "--seeds";
        n->extra[n->nextra++] = n->peers;
    }
    va_start(ap, first);
    itest_add_args(n, first, ap);
    va_end(ap);
    itest_spawn(n);
    itest_wait_up(n);
    return n;
}

/* The integer stat `name` of node n (fails the test when it has none). */
static inline int64_t itest_stat(const struct itest_node *n, const char *name)
{
    struct rkc *c;
    struct rkc_result r = {0};
    int64_t v = -1;
    cr_assert_eq(rkc_connect(&c, "127.0.0.1", (uint16_t)n->port, 5000), 0);
    cr_assert_eq(rkc_stats(c, &r), 0);
    for (uint32_t i = 0; i < r.nstats; i++)
        if (strcmp(r.stats[i].name, name) == 0 && r.stats[i].sval == NULL)
            v = r.stats[i].ival;
    rkc_result_free(&r);
    rkc_close(c);
    cr_assert_neq(v, -1, "no stat %s", name);
    return v;
}

/* A client connection to node n with default quorums r and w (0: the
 * node's). */
static inline struct rkc *itest_conn(const struct itest_node *n, uint8_t r,
                                     uint8_t w)
{
    struct rkc *c = NULL;
    cr_assert_eq(rkc_connect(&c, "127.0.0.1", (uint16_t)n->port, 20000), 0);
    rkc_set_quorum(c, r, w);
    return c;
}

/* Live values of key in node n's own storage (get --local). */
static inline size_t itest_local_values(const struct itest_node *n,
                                        const char *key)
{
    struct rkc *c = itest_conn(n, 0, 0);
    struct rkc_result r = {0};
    cr_assert_eq(rkc_get_local(c, key, strlen(key), &r), 0);
    size_t nv = r.nvalues;
    rkc_result_free(&r);
    rkc_close(c);
    return nv;
}

/* Puts key = val (no context); fails the test on an error. */
static inline void itest_put_ok(struct rkc *c, const char *key, const char *val)
{
    struct rkc_result r = {0};
    int rc = rkc_put(c, key, strlen(key), val, strlen(val), NULL, 0, &r);
    cr_assert_eq(rc, 0, "put %s: %s", key, r.message);
    rkc_result_free(&r);
}

/* Gets key; fails the test unless it has exactly the one value val. */
static inline void itest_get_is(struct rkc *c, const char *key, const char *val)
{
    struct rkc_result r = {0};
    int rc = rkc_get(c, key, strlen(key), &r);
    cr_assert_eq(rc, 0, "get %s: %s", key, r.message);
    cr_assert_eq(r.nvalues, 1, "get %s: %zu values", key, r.nvalues);
    cr_assert_eq(r.values[0].len, strlen(val));
    cr_assert_eq(memcmp(r.values[0].data, val, strlen(val)), 0);
    rkc_result_free(&r);
}

/* .fini of every integration test: kill nodes, remove their dirs. */
static inline void itest_cleanup(void)
{
    for (int i = 0; i < itest_nnodes; i++) {
        struct itest_node *n = &itest_nodes[i];
        if (n->pid > 0)
            itest_signal(n, SIGKILL);
        if (n->dir[0] != '\0') {
            char cmd[300];
            snprintf(cmd, sizeof(cmd), "rm -rf '%s'", n->dir);
            if (system(cmd) != 0)
                fprintf(stderr, "could not remove %s\n", n->dir);
        }
    }
    itest_nnodes = 0;
}

#endif
