/*
 * fuzz_conn.c - libFuzzer target for one client connection of a running
 * node: the real server (node/server.c framing, dispatch, back-pressure,
 * reply queues; node/server_resp.c and proto/resp.c for RESP), the real core
 * and LMDB storage, on a libuv loop, fed an arbitrary byte stream split at
 * fuzzer-chosen points.
 *
 * Input:
 *
 *   byte 0     bit 0: protocol (0 native, 1 RESP)
 *              bits 1-2: server profile (see fuzz_profiles: roomy, peer,
 *                        tight node budgets, max_clients 0)
 *              bits 3-5: s, chunks are 1 .. 4^s bytes long
 *   bytes 1-2  seed of the chunk lengths (xorshift)
 *   bytes 3..  the stream the client sends
 *
 * One node (single member, n = r = w = 1, fsync never, a temp data dir)
 * lives for the whole run, with one server per profile on its loop. Each
 * input is one connection: a socketpair whose server end is handed to the
 * server with server_adopt() (the test hook in node/server.h), so no ports
 * and no TIME_WAIT. The client writes each chunk, then runs the loop and
 * reads replies until the node is quiet (nothing in flight, nothing
 * unsent, nothing unread on a connection being read). Socket buffers are
 * small, so partial writes and paused reading happen.
 *
 * The peer profile's server has a cluster secret (FUZZ_SECRET). A native
 * connection to it first does the real handshake (hello, auth: node/
 * peer_auth.c), so the stream is fuzzed as an authenticated peer's:
 * replica ops (rput, rget, fput, fdel) run, and an oversized frame is
 * skipped and answered instead of ending the stream. The other servers
 * have no secret and refuse any hello or auth.
 *
 * Checked on every input, besides ASan/UBSan/LSan:
 *   - every reply is well formed: RESP2 values (nesting bounded), or
 *     native frames that wire_decode_resp() accepts;
 *   - the replies are exactly those owed for the bytes sent, counted
 *     from the stream as a whole (fuzz_native_owed, fuzz_resp_owed): so
 *     however the stream is split, no request is lost, answered twice or
 *     answered after the server said it hangs up, and no reply is cut
 *     short;
 *   - the node goes quiet within a bounded number of loop turns (a stuck
 *     connection is a finding), and after the client closes, the server
 *     holds no connection, no request and no byte (server_get_load);
 *   - at exit, the node shuts down and uv_loop_close() returns 0.
 *
 * The store persists across inputs (keys written by one input may be read
 * by a later one), so a crash that needs earlier state may not replay from
 * its input alone; none of the checks depend on stored data.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "node/core.h"
#include "node/env_uv.h"
#include "node/log.h"
#include "node/peer_auth.h"
#include "node/server.h"
#include "node/storage.h"
#include "proto/resp.h"
#include "proto/wire.h"
#include "ring/ring.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_CHUNKS     64     /* then the rest goes in one write */
#define FUZZ_MAX_SPINS      200000 /* loop turns to go quiet, else a hang */
#define FUZZ_SOCKBUF        4096   /* SO_SNDBUF of both ends */
#define FUZZ_MAX_FRAME      4096
#define FUZZ_MAX_KEY        64
#define FUZZ_MAX_VALUE      1024
#define FUZZ_RESP_ARGS      1024 /* SERVER_RESP_ARGS, node/server_internal.h */
#define FUZZ_NPROFILES      4
#define FUZZ_PROFILE_PEER   1
#define FUZZ_PROFILE_REFUSE 3
#define FUZZ_CLUSTER        "fuzz"
#define FUZZ_SECRET         "fuzz-cluster-secret-0123456789"

static const struct server_opts fuzz_profiles[FUZZ_NPROFILES] = {
    /* roomy: every request admitted, per-connection back-pressure */
    {.max_clients = 16,
     .conn_max_inflight = 4,
     .conn_max_buffer = 2048,
     .max_inflight = 1024,
     .max_buffer = 64u << 20},
    /* peer: roomy, with a cluster secret; the harness authenticates */
    {.max_clients = 16,
     .conn_max_inflight = 4,
     .conn_max_buffer = 2048,
     .max_inflight = 1024,
     .max_buffer = 64u << 20,
     .secret = (const uint8_t *)FUZZ_SECRET,
     .secret_len = sizeof(FUZZ_SECRET) - 1},
    /* tight node budgets: overloaded refusals */
    {.max_clients = 16,
     .conn_max_inflight = 8,
     .conn_max_buffer = 1024,
     .max_inflight = 2,
     .max_buffer = 80u << 10},
    /* every connection refused */
    {.max_clients = 0,
     .conn_max_inflight = 4,
     .conn_max_buffer = 2048,
     .max_inflight = 1024,
     .max_buffer = 64u << 20},
};

static const struct wire_limits fuzz_lim = {.max_frame = FUZZ_MAX_FRAME,
                                            .max_key = FUZZ_MAX_KEY,
                                            .max_value = FUZZ_MAX_VALUE};

static struct {
    uv_loop_t loop;
    char dir[64];
    struct storage *store;
    struct env env;
    struct ring *ring;
    struct core_member self;
    struct core *core;
    struct server *srv[FUZZ_NPROFILES];
    msgpack_zone zone; /* the oracle's decoding (fuzz_native_owed) */
} g;

static void fuzz_fail(const char *what)
{
    fprintf(stderr, "fuzz_conn: %s\n", what);
    abort();
}

static void fuzz_check(bool cond, const char *what)
{
    if (!cond)
        fuzz_fail(what);
}

/* ---- the node ------------------------------------------------------------
 */

static void fuzz_rmdir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[512];

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

static void fuzz_teardown(void)
{
    for (int i = 0; i < FUZZ_NPROFILES; i++)
        server_stop(g.srv[i]);
    core_shutdown(g.core);
    storage_close(g.store);
    uv_run(&g.loop, UV_RUN_DEFAULT);
    for (int i = 0; i < FUZZ_NPROFILES; i++)
        server_destroy(g.srv[i]);
    core_destroy(g.core);
    ring_destroy(g.ring);
    msgpack_zone_destroy(&g.zone);
    if (uv_loop_close(&g.loop) != 0)
        fuzz_fail("uv_loop_close failed: a handle is still open");
}

/* ASan's quarantine keeps freed memory unused for a while; each input
 * allocates fresh read buffers and reply slots, so the default (256 MiB)
 * makes every input fault in new pages. 16 MiB still spans many inputs. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "quarantine_size_mb=16";
}

/* libFuzzer parses its flags after this returns: unless the command line
 * says otherwise, run with -entropic=0. Each input touches tens of
 * thousands of features (a whole node runs), and entropic scheduling's
 * bookkeeping then costs more than the input itself (about 2x execs/s). */
static void fuzz_default_flags(int *argc, char ***argv)
{
    static char *args[256];
    static char flag[] = "-entropic=0";

    if (*argc < 1 || *argc >= (int)(sizeof(args) / sizeof(args[0])) - 1)
        return;
    for (int i = 1; i < *argc; i++)
        if (strncmp((*argv)[i], "-entropic=", 10) == 0)
            return;
    memcpy(args, *argv, (size_t)*argc * sizeof(args[0]));
    args[*argc] = flag;
    args[*argc + 1] = NULL;
    *argc += 1;
    *argv = args;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct storage_info info;
    char err[256];

    fuzz_default_flags(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    log_min_level = LOG_ERROR;
    msgpack_zone_init(&g.zone, 4096);
    fuzz_check(peer_auth_init() == 0, "peer_auth_init failed");
    uv_loop_init(&g.loop);
    snprintf(g.dir, sizeof(g.dir), "/tmp/fuzz_conn.XXXXXX");
    fuzz_check(mkdtemp(g.dir) != NULL, "mkdtemp failed");
    struct storage_opts so = {.dir = g.dir,
                              .fsync = STORAGE_FSYNC_NEVER,
                              .fsync_interval_ms = 1000,
                              .map_size = 1ull << 30,
                              .partitions = 64,
                              .node_id = "fuzz",
                              .new_epoch = 0x5eed};
    if (storage_open(&g.store, &g.loop, &so, &info, err, sizeof(err)) != 0)
        fuzz_fail(err);
    /* The open files live on unlinked: nothing is left behind, even when
     * a finding aborts the run. */
    fuzz_rmdir(g.dir);
    env_uv_init(&g.env, &g.loop, g.store, NULL);
    /* A ring of one member, as node/main.c builds for a lone node. */
    const char *ids[1] = {"fuzz"};
    fuzz_check(ring_build(&g.ring, 64, ids, 1) == 0, "ring_build failed");
    snprintf(g.self.id, sizeof(g.self.id), "fuzz");
    snprintf(g.self.addr, sizeof(g.self.addr), "127.0.0.1:1");
    struct core_opts co = {.actor = info.epoch,
                           .partitions = 64,
                           .max_siblings = 8,
                           .conflict = CORE_CONFLICT_SIBLINGS,
                           .max_drift_ms = 60000,
                           .ring = g.ring,
                           .members = &g.self,
                           .self = 0,
                           .n = 1,
                           .r = 1,
                           .w = 1,
                           .timeout_ms = 5000,
                           .incarnation = 1};
    g.core = core_create(&g.env, &co);
    fuzz_check(g.core != NULL, "core_create failed");
    for (int i = 0; i < FUZZ_NPROFILES; i++) {
        struct server_opts o = fuzz_profiles[i];
        o.listen = "127.0.0.1";
        o.port = 0; /* an ephemeral port nobody connects to */
        o.lim = fuzz_lim;
        o.node_id = "fuzz";
        o.cluster = FUZZ_CLUSTER;
        o.epoch = info.epoch;
        o.partitions = 64;
        if (server_start(&g.srv[i], &g.loop, g.core, g.store, &o, err,
                         sizeof(err)) != 0)
            fuzz_fail(err);
    }
    atexit(fuzz_teardown);
    return 0;
}

/* ---- the client ----------------------------------------------------------
 */

struct fuzz_client {
    int fd;
    bool resp;
    bool eof; /* the server closed (EOF or reset) */
    struct wire_buf in;
    uint64_t replies;
    msgpack_zone zone;
    int last_err;                          /* of the last native reply */
    uint8_t hs_nonce[PEER_AUTH_NONCE_LEN]; /* from a hello reply */
    bool hs_nonce_got;
};

static bool fuzz_line(const uint8_t *p, size_t n, size_t *end)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (p[i] == '\r' && p[i + 1] == '\n') {
            *end = i;
            return true;
        }
        fuzz_check(p[i] != '\r' && p[i] != '\n', "bare CR or LF in a reply");
    }
    return false;
}

static int64_t fuzz_int(const uint8_t *p, size_t n)
{
    int64_t v = 0;
    bool neg = n > 0 && p[0] == '-';
    fuzz_check(n > (size_t)neg && n <= 20, "bad integer in a reply");
    for (size_t i = neg; i < n; i++) {
        fuzz_check(p[i] >= '0' && p[i] <= '9', "bad integer in a reply");
        v = v * 10 + (p[i] - '0');
    }
    return neg ? -v : v;
}

/* Length of the complete RESP2 value at p, 0 if incomplete. Aborts on
 * anything a Redis client would reject. */
static size_t fuzz_resp_value(const uint8_t *p, size_t n, int depth)
{
    size_t end;

    fuzz_check(depth < 8, "reply nests too deep");
    if (n == 0 || !fuzz_line(p, n, &end))
        return 0;
    switch (p[0]) {
    case '+':
    case '-':
        return end + 2;
    case ':':
        fuzz_int(p + 1, end - 1);
        return end + 2;
    case '$': {
        int64_t len = fuzz_int(p + 1, end - 1);
        fuzz_check(len >= -1, "negative bulk length");
        if (len == -1)
            return end + 2;
        if (n - end - 2 < (uint64_t)len + 2)
            return 0;
        fuzz_check(p[end + 2 + len] == '\r' && p[end + 3 + len] == '\n',
                   "bulk not terminated by CRLF");
        return end + 2 + (size_t)len + 2;
    }
    case '*': {
        int64_t cnt = fuzz_int(p + 1, end - 1);
        size_t off = end + 2;
        fuzz_check(cnt >= -1, "negative array length");
        for (int64_t i = 0; i < cnt; i++) {
            size_t m = fuzz_resp_value(p + off, n - off, depth + 1);
            if (m == 0)
                return 0;
            off += m;
        }
        return off;
    }
    default:
        fuzz_fail("reply of an unknown RESP type");
        return 0;
    }
}

/* Counts and checks the complete replies in cl->in, keeping the rest. */
static void fuzz_parse_replies(struct fuzz_client *cl)
{
    size_t off = 0;

    for (;;) {
        const uint8_t *p = cl->in.data + off;
        size_t n = cl->in.len - off, m;
        if (cl->resp) {
            if ((m = fuzz_resp_value(p, n, 0)) == 0)
                break;
        } else {
            struct wire_resp r;
            const char *why = NULL;
            uint32_t len;
            if (n < WIRE_HDR_LEN)
                break;
            fuzz_check(wire_frame_len(p, 64u << 20, &len) == 0,
                       "reply frame empty or huge");
            if (n - WIRE_HDR_LEN < len)
                break;
            msgpack_zone_clear(&cl->zone);
            if (wire_decode_resp(p + WIRE_HDR_LEN, len, &cl->zone, &r, &why) !=
                0)
                fuzz_fail(why ? why : "reply does not decode");
            m = WIRE_HDR_LEN + len;
            cl->last_err = r.err;
            if (r.err == 0 && r.hello.nonce != NULL &&
                r.hello.nonce_len == PEER_AUTH_NONCE_LEN) {
                memcpy(cl->hs_nonce, r.hello.nonce, PEER_AUTH_NONCE_LEN);
                cl->hs_nonce_got = true;
            }
        }
        cl->replies++;
        off += m;
    }
    wire_buf_consume(&cl->in, off);
}

/* Reads what the server sent. Returns the number of bytes read. */
static size_t fuzz_drain(struct fuzz_client *cl)
{
    size_t got = 0;

    while (!cl->eof) {
        if (wire_buf_reserve(&cl->in, 16384) != 0)
            fuzz_fail("out of memory");
        ssize_t n =
            read(cl->fd, cl->in.data + cl->in.len, cl->in.cap - cl->in.len);
        if (n > 0) {
            cl->in.len += (size_t)n;
            got += (size_t)n;
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            cl->eof = true;
        } else if (errno == EAGAIN) {
            break;
        }
    }
    if (got > 0)
        fuzz_parse_replies(cl);
    return got;
}

/* Runs the loop until the node is quiet: nothing in flight, nothing
 * unsent, nothing read by the client this turn, and nothing waiting in
 * the socket while the server reads it. Each of these is visible after a
 * NOWAIT turn (a write in flight keeps its bytes in unsent; a staged
 * storage op keeps its request in flight), so one quiet turn suffices. */
static void fuzz_settle(struct fuzz_client *cl, struct server *srv)
{
    for (int i = 0; i < FUZZ_MAX_SPINS; i++) {
        struct server_load ld;
        int outq = 0;
        uv_run(&g.loop, UV_RUN_NOWAIT);
        size_t got = fuzz_drain(cl);
        server_get_load(srv, &ld);
        /* Bytes the server has not read yet (AF_UNIX: the send queue
         * holds what the peer has not consumed). */
        if (!cl->eof && ioctl(cl->fd, SIOCOUTQ, &outq) != 0)
            outq = 0;
        if (got == 0 && ld.inflight == 0 && ld.unsent == 0 &&
            (outq == 0 || ld.reading == 0))
            return;
    }
    fuzz_fail("the node did not go quiet (a connection is stuck)");
}

/* Writes p[0..n), running the loop while the socket is full. Returns the
 * bytes written (fewer once the server has closed). */
static size_t fuzz_send(struct fuzz_client *cl, const uint8_t *p, size_t n)
{
    size_t done = 0;
    int spins = 0;

    while (done < n && !cl->eof) {
        ssize_t w = write(cl->fd, p + done, n - done);
        if (w > 0) {
            done += (size_t)w;
            spins = 0;
        } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            uv_run(&g.loop, UV_RUN_NOWAIT);
            fuzz_drain(cl);
            fuzz_check(++spins < FUZZ_MAX_SPINS,
                       "the server stopped reading (a connection is stuck)");
        } else {
            break; /* EPIPE, ECONNRESET: the server hung up */
        }
    }
    return done;
}

/* The replies a RESP server owes for the bytes p[0..n) it was sent, by the
 * rules of node/server_resp.c: one per command with a name (known or not,
 * run or refused), one per oversized or nested command (whose rest is
 * skipped), one for the error that ends a stream it cannot parse; none for
 * an empty command; nothing after that error or after QUIT outside a
 * MULTI. Every reply before a close is flushed first, so the count is
 * exact. */
static uint64_t fuzz_resp_owed(const uint8_t *p, size_t n)
{
    static struct resp_arg argv[FUZZ_RESP_ARGS];
    const struct resp_limits lim = {.max_args = FUZZ_RESP_ARGS,
                                    .max_bulk = FUZZ_MAX_VALUE > FUZZ_MAX_KEY
                                                    ? FUZZ_MAX_VALUE
                                                    : FUZZ_MAX_KEY,
                                    .max_inline = 64 * 1024};
    struct resp_skip st = {0, 0};
    bool multi = false;
    uint64_t k = 0;

    for (size_t off = 0; off < n;) {
        const char *why = NULL;
        if (st.args > 0 || st.bytes > 0) {
            size_t used = 0;
            if (resp_skip(p + off, n - off, &st, &used, &why) != 0)
                return k + 1;
            off += used;
            if (st.args > 0 || st.bytes > 0)
                break;
            continue;
        }
        struct resp_cmd cmd = {.argv = argv};
        int rc = resp_parse(p + off, n - off, &lim, &cmd, &why);
        if (rc < 0 && cmd.skip_from > 0) {
            k++;
            st = cmd.skip;
            off += cmd.skip_from;
            continue;
        }
        if (rc <= 0)
            return rc < 0 ? k + 1 : k;
        off += (size_t)rc;
        if (cmd.argc == 0)
            continue;
        k++;
        if (resp_arg_is(&argv[0], "MULTI") && cmd.argc == 1)
            multi = true;
        else if ((resp_arg_is(&argv[0], "EXEC") ||
                  resp_arg_is(&argv[0], "DISCARD")) &&
                 cmd.argc == 1)
            multi = false;
        else if (resp_arg_is(&argv[0], "QUIT") && !multi)
            return k;
    }
    return k;
}

/* The same for the native protocol: one reply per complete frame, and one
 * for a header the server cannot frame (it then hangs up). A frame that
 * decodes as hello or auth is a peer handshake, refused with one error
 * before hanging up (native_hs_refuse in node/server.c: no secret, or
 * repeated on an authenticated peer): nothing after it is answered. On a
 * peer connection (peer), a frame over max_frame is skipped once its first
 * WIRE_PEEK_LEN bytes (or all of it) are in, and answered when they hold
 * an id (native_process, native_skipped); the rest of it is discarded. */
static uint64_t fuzz_native_owed(const uint8_t *p, size_t n, bool peer)
{
    uint64_t k = 0;

    for (size_t off = 0; n - off >= WIRE_HDR_LEN;) {
        uint32_t len;
        struct wire_req req;
        const char *why = NULL;
        int rc = wire_frame_len(p + off, FUZZ_MAX_FRAME, &len);
        size_t avail = n - off - WIRE_HDR_LEN;
        if (rc == RK_ETOO_LARGE && peer) {
            size_t take;
            uint64_t rest, id;
            if (wire_skip_begin(p + off + WIRE_HDR_LEN, avail, len, &take,
                                &rest, &id) != 0)
                break;
            k += id != 0; /* no id to answer: only logged and counted */
            if (avail <= len)
                break;
            off += WIRE_HDR_LEN + len;
            continue;
        }
        if (rc != 0)
            return k + 1;
        if (n - off - WIRE_HDR_LEN < len)
            break;
        msgpack_zone_clear(&g.zone);
        int err = wire_decode_req(p + off + WIRE_HDR_LEN, len, &fuzz_lim,
                                  &g.zone, &req, &why);
        off += WIRE_HDR_LEN + len;
        k++;
        if (err == 0 && (req.op == WIRE_OP_HELLO || req.op == WIRE_OP_AUTH))
            return k;
    }
    return k;
}

/* Sends one request frame and runs the node until it answered. */
static void fuzz_call(struct fuzz_client *cl, struct server *srv,
                      const struct wire_req *req)
{
    struct wire_buf b;
    wire_buf_init(&b);
    fuzz_check(wire_encode_req(&b, req) == 0, "cannot encode a request");
    fuzz_check(fuzz_send(cl, b.data, b.len) == b.len, "handshake not sent");
    wire_buf_free(&b);
    fuzz_settle(cl, srv);
}

/* The dialer's side of the peer handshake (docs/protocol.md), with the
 * peer profile's secret: afterwards the connection is an authenticated
 * peer's. The handshake's replies are not counted. */
static void fuzz_handshake(struct fuzz_client *cl, struct server *srv)
{
    uint8_t nonce[PEER_AUTH_NONCE_LEN], mac[PEER_AUTH_MAC_LEN];
    static const char self[] = "fuzz-dialer";

    peer_auth_nonce(nonce);
    struct wire_req hello = {.id = 1,
                             .op = WIRE_OP_HELLO,
                             .hello = {.cluster = (const uint8_t *)FUZZ_CLUSTER,
                                       .cluster_len = sizeof(FUZZ_CLUSTER) - 1,
                                       .node = (const uint8_t *)self,
                                       .node_len = sizeof(self) - 1,
                                       .nonce = nonce,
                                       .nonce_len = sizeof(nonce)}};
    fuzz_call(cl, srv, &hello);
    fuzz_check(cl->replies == 1 && cl->hs_nonce_got && cl->last_err == 0,
               "the peer server refused hello");
    struct peer_auth_input in = {
        .secret = (const uint8_t *)FUZZ_SECRET,
        .secret_len = sizeof(FUZZ_SECRET) - 1,
        .acceptor_nonce = cl->hs_nonce,
        .dialer_nonce = nonce,
        .cluster = (const uint8_t *)FUZZ_CLUSTER,
        .cluster_len = sizeof(FUZZ_CLUSTER) - 1,
        .acceptor_id = (const uint8_t *)"fuzz",
        .acceptor_id_len = 4,
        .dialer_id = (const uint8_t *)self,
        .dialer_id_len = sizeof(self) - 1,
    };
    peer_auth_mac(mac, PEER_AUTH_DIALER, &in);
    struct wire_req auth = {.id = 2,
                            .op = WIRE_OP_AUTH,
                            .hello = {.mac = mac, .mac_len = sizeof(mac)}};
    fuzz_call(cl, srv, &auth);
    fuzz_check(cl->replies == 2 && cl->last_err == 0,
               "the peer server refused auth");
    cl->replies = 0;
}

static uint64_t fuzz_xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_client cl = {.fd = -1};
    struct server_load ld;
    int sv[2], buf = FUZZ_SOCKBUF;

    if (size < 3)
        return 0;
    cl.resp = data[0] & 1;
    unsigned profile = (data[0] >> 1) & 3;
    struct server *srv = g.srv[profile];
    unsigned scale = (data[0] >> 3) & 7;
    uint64_t seed = 0x9e3779b97f4a7c15ull ^ data[1] ^ ((uint64_t)data[2] << 8);
    const uint8_t *p = data + 3;
    size_t n = size - 3, sent = 0;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                   sv) != 0)
        fuzz_fail("socketpair failed");
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
    if (server_adopt(srv, sv[0], cl.resp) != 0)
        fuzz_fail("server_adopt failed");
    cl.fd = sv[1];
    wire_buf_init(&cl.in);
    msgpack_zone_init(&cl.zone, 4096);

    fuzz_settle(&cl, srv); /* accepted (or refused) */
    bool peer = profile == FUZZ_PROFILE_PEER && !cl.resp;
    if (peer)
        fuzz_handshake(&cl, srv);
    for (int k = 0; sent < n && !cl.eof; k++) {
        size_t len = n - sent;
        if (k < FUZZ_MAX_CHUNKS) {
            size_t c = 1 + (size_t)(fuzz_xorshift(&seed) % (1u << (2 * scale)));
            len = c < len ? c : len;
        }
        size_t w = fuzz_send(&cl, p + sent, len);
        sent += w;
        fuzz_settle(&cl, srv);
        if (w < len)
            break;
    }
    fuzz_drain(&cl);

    /* Exactly the replies owed: one error for a refused connection.
     * Beyond max_frame + 64 KiB, whether an incomplete RESP command is cut
     * off depends on how reads split the stream: only a bound then. */
    uint64_t owed = profile == FUZZ_PROFILE_REFUSE ? 1
                    : cl.resp                      ? fuzz_resp_owed(p, sent)
                              : fuzz_native_owed(p, sent, peer);
    if (cl.resp && sent > FUZZ_MAX_FRAME + 65536)
        fuzz_check(cl.replies <= owed + 1, "more replies than commands");
    else
        fuzz_check(cl.replies == owed, "replies differ from requests sent");
    fuzz_check(cl.in.len == 0, "a reply was cut short");

    /* Hang up; the server must give back everything. */
    close(cl.fd);
    for (int i = 0;; i++) {
        uv_run(&g.loop, UV_RUN_NOWAIT);
        server_get_load(srv, &ld);
        if (ld.connections == 0 && ld.inflight == 0 && ld.bytes == 0)
            break;
        fuzz_check(i < FUZZ_MAX_SPINS,
                   "the server holds a closed connection's resources");
    }
    wire_buf_free(&cl.in);
    msgpack_zone_destroy(&cl.zone);
    return 0;
}
