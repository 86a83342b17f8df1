/*
 * client.c - the blocking ringkv client (see client.h): one TCP connection,
 * requests encoded with the shared wire codec, responses read as frames and
 * decoded as untrusted input.
 *
 *   rkc_send --encode--> out buffer --rkc_flush: send()--> node
 *   node --recv()--> in buffer --wire_split_next (<= RKC_MAX_RESPONSE)
 *        --wire_decode_resp--> id checked against the pending set
 *        --copied--> struct rkc_result (one allocation, owned by the caller)
 *
 * Design: the socket stays non-blocking and every wait is a poll() bounded by
 * the call's deadline (monotonic clock), so one mechanism gives connect, send
 * and receive timeouts. Simple calls are pipelining with a depth of one,
 * allowed only when nothing else is outstanding; a response is delivered
 * only if its id is pending, so a response can never be handed to the wrong
 * request. Results are copied out of the frame, so they outlive the buffers.
 *
 * Invariants:
 *  - broken != 0 <=> fd == -1 after a failure; once broken, no more I/O.
 *  - pending[0..npending) are distinct non-zero ids: requests queued or sent
 *    and not yet answered.
 *  - out holds whole encoded frames not yet written (a prefix may have been
 *    written when a flush failed, but the connection is then broken).
 *  - in holds bytes received and not yet consumed, starting at a frame
 *    boundary.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "client/client.h"

#define RKC_READ_CHUNK (64u << 10)
#define RKC_KEEP_IN_CAP                                                        \
    (1u << 20) /* free a drained input buffer above this                       \
                */

struct rkc {
    int fd;
    int timeout_ms;
    int broken;
    uint8_t r, w;
    uint64_t next_id;
    uint64_t *pending;
    size_t npending, cap_pending;
    struct wire_buf out;
    struct wire_buf in;
    msgpack_zone zone;
};

/* ---- results ------------------------------------------------------------ */

void rkc_result_free(struct rkc_result *res)
{
    if (res == NULL)
        return;
    free(res->mem_);
    memset(res, 0, sizeof(*res));
}

static void set_msg(struct rkc_result *res, const char *msg)
{
    snprintf(res->message, sizeof(res->message), "%s", msg);
}

/* A result carrying a local error (nothing allocated). */
static int fail_with(struct rkc_result *res, int err, bool definite)
{
    if (res == NULL)
        return err;
    memset(res, 0, sizeof(*res));
    res->err = err;
    res->definite = definite;
    set_msg(res, rk_err_msg(err));
    return err;
}

static size_t align_up(size_t n)
{
    const size_t a = sizeof(max_align_t);
    return (n + a - 1) / a * a;
}

/* Copies a NUL-terminated string to *p and advances it. */
static const char *copy_str(uint8_t **p, const char *s)
{
    size_t n = strlen(s) + 1;
    memcpy(*p, s, n);
    const char *out = (const char *)*p;
    *p += n;
    return out;
}

/* Copies a decoded response into res: arrays first (values, stats, members,
 * pref, each aligned), then the bytes, all in one allocation. Sizes are
 * bounded by the frame (<= RKC_MAX_RESPONSE) plus the codec's element maxima
 * (values, stats, members <= 256, q <= 65536, nval <= 16), so the sum cannot
 * overflow. */
static int fill_result(struct rkc_result *res, const struct wire_resp *wr)
{
    memset(res, 0, sizeof(*res));
    size_t npref = wr->pref != NULL ? (size_t)wr->q * wr->nval : 0;
    size_t a_vals = align_up(wr->nvalues * sizeof(struct rkc_value));
    size_t a_stats = align_up(wr->nstats * sizeof(struct rkc_stat));
    size_t a_members = align_up(wr->nmembers * sizeof(struct rkc_member));
    size_t a_pref = align_up(npref * sizeof(uint16_t));
    size_t arrays = a_vals + a_stats + a_members + a_pref;
    size_t bytes = wr->ctx_len;
    for (uint32_t i = 0; i < wr->nvalues; i++)
        bytes += (size_t)wr->values[i].len + 1;
    for (uint32_t i = 0; i < wr->nstats; i++) {
        bytes += strlen(wr->stats[i].name) + 1;
        if (wr->stats[i].sval != NULL)
            bytes += strlen(wr->stats[i].sval) + 1;
    }
    for (uint32_t i = 0; i < wr->nmembers; i++)
        bytes += strlen(wr->members[i].id) + strlen(wr->members[i].addr) + 2;
    if (wr->text != NULL)
        bytes += strlen(wr->text) + 1;
    /* +1: never malloc(0), never offset a NULL pointer */
    res->mem_ = malloc(arrays + bytes + 1);
    if (res->mem_ == NULL)
        return -ENOMEM;
    char *base = res->mem_;
    struct rkc_value *vals = (void *)base;
    struct rkc_stat *stats = (void *)(base + a_vals);
    struct rkc_member *members = (void *)(base + a_vals + a_stats);
    uint16_t *pref = (void *)(base + a_vals + a_stats + a_members);
    uint8_t *p = (uint8_t *)base + arrays;

    for (uint32_t i = 0; i < wr->nvalues; i++) {
        if (wr->values[i].len > 0)
            memcpy(p, wr->values[i].data, wr->values[i].len);
        p[wr->values[i].len] = 0;
        vals[i].data = p;
        vals[i].len = wr->values[i].len;
        p += (size_t)wr->values[i].len + 1;
    }
    for (uint32_t i = 0; i < wr->nstats; i++) {
        stats[i].name = copy_str(&p, wr->stats[i].name);
        stats[i].sval = NULL;
        stats[i].ival = wr->stats[i].ival;
        if (wr->stats[i].sval != NULL)
            stats[i].sval = copy_str(&p, wr->stats[i].sval);
    }
    for (uint32_t i = 0; i < wr->nmembers; i++) {
        members[i].id = copy_str(&p, wr->members[i].id);
        members[i].addr = copy_str(&p, wr->members[i].addr);
        members[i].up = wr->members[i].up;
        members[i].self = wr->members[i].self;
    }
    if (npref > 0) {
        memcpy(pref, wr->pref, npref * sizeof(uint16_t));
        res->pref = pref;
        res->q = wr->q;
        res->nval = wr->nval;
    }
    if (wr->text != NULL)
        res->text = copy_str(&p, wr->text);
    if (wr->ctx_len > 0) {
        memcpy(p, wr->ctx, wr->ctx_len);
        res->ctx = p;
        res->ctx_len = wr->ctx_len;
    }
    res->values = wr->nvalues ? vals : NULL;
    res->nvalues = wr->nvalues;
    res->stats = wr->nstats ? stats : NULL;
    res->nstats = wr->nstats;
    res->members = wr->nmembers ? members : NULL;
    res->nmembers = wr->nmembers;
    res->acks = wr->err != 0 ? wr->acks : 0;
    res->err = wr->err;
    res->definite = wr->err != 0 && wr->definite;
    if (wr->err != 0)
        set_msg(res, wr->msg != NULL ? wr->msg : rk_err_msg(wr->err));
    return 0;
}

/* ---- time and waiting ---------------------------------------------------- */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* -1 = no deadline. */
static int64_t deadline_ms(int timeout_ms)
{
    return timeout_ms > 0 ? mono_ms() + timeout_ms : -1;
}

/* Waits until fd is ready for events or the deadline passes. Returns 0
 * (ready, or an error/hangup the next I/O call will report), -ETIMEDOUT, or
 * -errno. */
static int wait_io(int fd, short events, int64_t deadline)
{
    for (;;) {
        int ms = -1;
        if (deadline >= 0) {
            int64_t left = deadline - mono_ms();
            if (left <= 0)
                return -ETIMEDOUT;
            ms = left > INT32_MAX ? INT32_MAX : (int)left;
        }
        struct pollfd pfd = {.fd = fd, .events = events};
        int n = poll(&pfd, 1, ms);
        if (n > 0)
            return 0;
        if (n == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

/* ---- connection state ---------------------------------------------------- */

static int break_conn(struct rkc *c, int err)
{
    if (c->broken == 0) {
        c->broken = err;
        if (c->fd >= 0)
            close(c->fd);
        c->fd = -1;
        wire_buf_free(&c->out);
        wire_buf_free(&c->in);
        c->npending = 0;
    }
    return err;
}

static bool is_pending(const struct rkc *c, uint64_t id, size_t *at)
{
    for (size_t i = 0; i < c->npending; i++) {
        if (c->pending[i] == id) {
            if (at != NULL)
                *at = i;
            return true;
        }
    }
    return false;
}

/* Removes pending[at], keeping the order (responses mostly arrive in order,
 * so the search above usually stops at the front). */
static void unpend(struct rkc *c, size_t at)
{
    memmove(&c->pending[at], &c->pending[at + 1],
            (c->npending - at - 1) * sizeof(c->pending[0]));
    c->npending--;
}

static int pend(struct rkc *c, uint64_t id)
{
    if (c->npending == c->cap_pending) {
        size_t cap = c->cap_pending ? c->cap_pending * 2 : 16;
        uint64_t *p = realloc(c->pending, cap * sizeof(*p));
        if (p == NULL)
            return -ENOMEM;
        c->pending = p;
        c->cap_pending = cap;
    }
    c->pending[c->npending++] = id;
    return 0;
}

/* Writes all of out. *written counts the bytes sent by this call. */
static int flush_out(struct rkc *c, int64_t deadline, size_t *written)
{
    size_t off = 0;
    int rc = 0;
    while (off < c->out.len) {
        ssize_t n =
            send(c->fd, c->out.data + off, c->out.len - off, MSG_NOSIGNAL);
        if (n >= 0) {
            off += (size_t)n;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            rc = -errno;
            break;
        }
        rc = wait_io(c->fd, POLLOUT, deadline);
        if (rc != 0)
            break;
    }
    if (written != NULL)
        *written = off;
    if (rc != 0)
        return break_conn(c, rc);
    c->out.len = 0;
    return 0;
}

/* Reads until in holds one whole frame; *body_len is its body length. */
static int read_frame(struct rkc *c, int64_t deadline, uint32_t *body_len)
{
    for (;;) {
        struct wire_frame f;
        size_t off = 0;
        uint64_t skip = 0; /* the client skips nothing: a bad frame breaks */
        switch (wire_split_next(c->in.data, c->in.len, &off, RKC_MAX_RESPONSE,
                                false, &skip, &f)) {
        case WIRE_SPLIT_FRAME:
            *body_len = f.len;
            return 0;
        case WIRE_SPLIT_MORE:
            break;
        default:
            return break_conn(c, RK_EPROTO);
        }
        size_t want = f.need - c->in.len;
        if (want < RKC_READ_CHUNK)
            want = RKC_READ_CHUNK;
        if (wire_buf_reserve(&c->in, want) != 0)
            return break_conn(c, -ENOMEM);
        ssize_t n =
            recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len, 0);
        if (n > 0) {
            c->in.len += (size_t)n;
            continue;
        }
        if (n == 0)
            return break_conn(c, -ECONNRESET);
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return break_conn(c, -errno);
        int rc = wait_io(c->fd, POLLIN, deadline);
        if (rc != 0)
            return break_conn(c, rc);
    }
}

/* Receives the next response to a pending request into res. Returns 0 with
 * *id set, or a breaking error with res holding it. */
static int recv_reply(struct rkc *c, int64_t deadline, struct rkc_result *res,
                      uint64_t *id)
{
    uint32_t len = 0;
    int rc = read_frame(c, deadline, &len);
    if (rc != 0) {
        fail_with(res, rc, false);
        if (rc == RK_EPROTO)
            set_msg(res, "response frame length is 0 or too large");
        return rc;
    }

    struct wire_resp wr;
    const char *why = NULL;
    size_t at = 0;
    char smsg[RKC_MAX_MSG + 1] = "";
    int drc =
        wire_decode_resp(c->in.data + WIRE_HDR_LEN, len, &c->zone, &wr, &why);
    if (drc != 0 || wr.err > 0) {
        rc = RK_EPROTO;
        snprintf(smsg, sizeof(smsg), "undecodable response: %s",
                 drc != 0 && why != NULL ? why : "bad error code");
    } else if (wr.id == 0) {
        /* Not an answer to a request: the server's verdict on the whole
         * connection (it closes next), or nonsense. */
        rc = wr.err != 0 ? wr.err : RK_EPROTO;
        if (wr.err != 0 && wr.msg != NULL)
            snprintf(smsg, sizeof(smsg), "%s", wr.msg);
    } else if (!is_pending(c, wr.id, &at)) {
        rc = RK_EPROTO;
        snprintf(smsg, sizeof(smsg), "response to id %llu, never asked",
                 (unsigned long long)wr.id);
    } else {
        rc = fill_result(res, &wr);
        if (rc == 0) {
            unpend(c, at);
            *id = wr.id;
        }
    }
    msgpack_zone_clear(&c->zone);
    if (rc != 0) {
        break_conn(c, rc);
        fail_with(res, rc, false);
        if (smsg[0] != 0)
            set_msg(res, smsg);
        return rc;
    }
    wire_buf_consume(&c->in, WIRE_HDR_LEN + (size_t)len);
    if (c->in.len == 0 && c->in.cap > RKC_KEEP_IN_CAP)
        wire_buf_free(&c->in);
    return 0;
}

/* ---- connecting ---------------------------------------------------------- */

static int connect_one(const struct addrinfo *ai, int64_t deadline, int *fd_out)
{
    int fd =
        socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
               ai->ai_protocol);
    if (fd < 0)
        return -errno;
    int rc = 0;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (errno != EINPROGRESS && errno != EINTR) {
            rc = -errno;
            goto out;
        }
        rc = wait_io(fd, POLLOUT, deadline);
        if (rc != 0)
            goto out;
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0) {
            rc = -errno;
            goto out;
        }
        if (soerr != 0) {
            rc = -soerr;
            goto out;
        }
    }
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
        rc = -errno;
out:
    if (rc != 0)
        close(fd);
    else
        *fd_out = fd;
    return rc;
}

/* Every getaddrinfo failure but running out of memory means the name did
 * not resolve (no such name, no DNS answer, no resolver configured). */
static int gai_err(int e)
{
    return e == EAI_MEMORY ? -ENOMEM : RKC_ERESOLVE;
}

int rkc_connect(struct rkc **out, const char *host, uint16_t port,
                int timeout_ms)
{
    if (out == NULL)
        return -EINVAL;
    *out = NULL;
    if (host == NULL || port == 0)
        return -EINVAL;

    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%u", (unsigned)port);
    struct addrinfo hints = {0};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    struct addrinfo *ais = NULL;
    int e = getaddrinfo(host, portstr, &hints, &ais);
    if (e != 0)
        return gai_err(e);

    int64_t deadline = deadline_ms(timeout_ms);
    int fd = -1;
    int rc = -EHOSTUNREACH;
    for (const struct addrinfo *ai = ais; ai != NULL; ai = ai->ai_next) {
        rc = connect_one(ai, deadline, &fd);
        if (rc == 0 || rc == -ETIMEDOUT)
            break;
    }
    freeaddrinfo(ais);
    if (rc != 0)
        return rc;

    struct rkc *c = calloc(1, sizeof(*c));
    if (c == NULL || !msgpack_zone_init(&c->zone, 4096)) {
        free(c);
        close(fd);
        return -ENOMEM;
    }
    c->fd = fd;
    c->timeout_ms = timeout_ms;
    c->next_id = 1;
    wire_buf_init(&c->out);
    wire_buf_init(&c->in);
    *out = c;
    return 0;
}

void rkc_close(struct rkc *c)
{
    if (c == NULL)
        return;
    if (c->fd >= 0)
        close(c->fd);
    wire_buf_free(&c->out);
    wire_buf_free(&c->in);
    msgpack_zone_destroy(&c->zone);
    free(c->pending);
    free(c);
}

void rkc_set_timeout(struct rkc *c, int timeout_ms)
{
    c->timeout_ms = timeout_ms;
}

void rkc_set_quorum(struct rkc *c, uint8_t r, uint8_t w)
{
    c->r = r;
    c->w = w;
}

int rkc_broken(const struct rkc *c)
{
    return c->broken;
}

size_t rkc_outstanding(const struct rkc *c)
{
    return c->npending;
}

/* ---- pipelining ---------------------------------------------------------- */

int rkc_send(struct rkc *c, const struct wire_req *req, uint64_t *id)
{
    if (c == NULL || req == NULL || req->op <= WIRE_OP_NONE ||
        req->op >= WIRE_OP_MAX)
        return -EINVAL;
    if (c->broken != 0)
        return -ENOTCONN;
    struct wire_req q = *req;
    bool keyed =
        q.op == WIRE_OP_GET || q.op == WIRE_OP_PUT || q.op == WIRE_OP_DEL;
    if ((keyed && (q.key == NULL || q.key_len == 0)) ||
        (q.value == NULL && q.value_len > 0) ||
        (q.ctx == NULL && q.ctx_len > 0))
        return -EINVAL;
    if (q.op == WIRE_OP_PUT && q.value == NULL)
        q.value = (const uint8_t *)"";
    if (q.id == 0) {
        do {
            q.id = c->next_id++;
        } while (q.id == 0 || is_pending(c, q.id, NULL));
    } else if (is_pending(c, q.id, NULL)) {
        return -EINVAL;
    }
    if (q.r == 0)
        q.r = c->r;
    if (q.w == 0)
        q.w = c->w;

    size_t before = c->out.len;
    int rc = pend(c, q.id);
    if (rc != 0)
        return rc;
    rc = wire_encode_req(&c->out, &q);
    if (rc != 0) {
        c->out.len = before;
        c->npending--;
        return rc;
    }
    if (id != NULL)
        *id = q.id;
    return 0;
}

int rkc_flush(struct rkc *c)
{
    if (c == NULL)
        return -EINVAL;
    if (c->broken != 0)
        return -ENOTCONN;
    return flush_out(c, deadline_ms(c->timeout_ms), NULL);
}

int rkc_recv(struct rkc *c, struct rkc_result *res, uint64_t *id)
{
    uint64_t got = 0;
    if (id != NULL)
        *id = 0;
    if (c == NULL || res == NULL)
        return fail_with(res, -EINVAL, true);
    if (c->broken != 0)
        return fail_with(res, -ENOTCONN, false);
    if (c->npending == 0)
        return fail_with(res, -EINVAL, true);
    int64_t deadline = deadline_ms(c->timeout_ms);
    int rc = flush_out(c, deadline, NULL);
    if (rc != 0)
        return fail_with(res, rc, false);
    rc = recv_reply(c, deadline, res, &got);
    if (rc == 0 && id != NULL)
        *id = got;
    return rc;
}

/* ---- simple calls -------------------------------------------------------- */

static int call_op(struct rkc *c, const struct wire_req *req,
                   struct rkc_result *res)
{
    if (c == NULL || res == NULL)
        return fail_with(res, -EINVAL, true);
    if (c->broken != 0)
        return fail_with(res, -ENOTCONN, true);
    if (c->npending != 0)
        return fail_with(res, -EBUSY, true);
    int64_t deadline = deadline_ms(c->timeout_ms);
    uint64_t id;
    int rc = rkc_send(c, req, &id);
    if (rc != 0)
        return fail_with(res, rc, true);
    size_t written = 0;
    rc = flush_out(c, deadline, &written);
    if (rc != 0)
        return fail_with(res, rc, written == 0);
    uint64_t got;
    rc = recv_reply(c, deadline, res, &got);
    if (rc != 0)
        return rc;
    return res->err;
}

static int check_sizes(size_t klen, size_t vlen, size_t ctxlen)
{
    if (klen == 0 || klen > UINT32_MAX || vlen > UINT32_MAX ||
        ctxlen > UINT32_MAX)
        return -EINVAL;
    return 0;
}

static int get_op(struct rkc *c, const void *key, size_t klen, bool local,
                  struct rkc_result *res)
{
    if (key == NULL || check_sizes(klen, 0, 0) != 0)
        return fail_with(res, -EINVAL, true);
    struct wire_req req = {.op = WIRE_OP_GET,
                           .key = key,
                           .key_len = (uint32_t)klen,
                           .local = local};
    int rc = call_op(c, &req, res);
    if (rc == RK_ENOT_FOUND) {
        rkc_result_free(res);
        rc = 0;
    }
    return rc;
}

int rkc_get(struct rkc *c, const void *key, size_t klen, struct rkc_result *res)
{
    return get_op(c, key, klen, false, res);
}

int rkc_get_local(struct rkc *c, const void *key, size_t klen,
                  struct rkc_result *res)
{
    return get_op(c, key, klen, true, res);
}

int rkc_put(struct rkc *c, const void *key, size_t klen, const void *value,
            size_t vlen, const void *ctx, size_t ctxlen, struct rkc_result *res)
{
    if (key == NULL || (value == NULL && vlen > 0) ||
        (ctx == NULL && ctxlen > 0) || check_sizes(klen, vlen, ctxlen) != 0)
        return fail_with(res, -EINVAL, true);
    struct wire_req req = {.op = WIRE_OP_PUT,
                           .key = key,
                           .key_len = (uint32_t)klen,
                           .value = value,
                           .value_len = (uint32_t)vlen,
                           .ctx = ctxlen ? ctx : NULL,
                           .ctx_len = (uint32_t)ctxlen};
    return call_op(c, &req, res);
}

int rkc_del(struct rkc *c, const void *key, size_t klen, const void *ctx,
            size_t ctxlen, struct rkc_result *res)
{
    if (key == NULL || (ctx == NULL && ctxlen > 0) ||
        check_sizes(klen, 0, ctxlen) != 0)
        return fail_with(res, -EINVAL, true);
    struct wire_req req = {.op = WIRE_OP_DEL,
                           .key = key,
                           .key_len = (uint32_t)klen,
                           .ctx = ctxlen ? ctx : NULL,
                           .ctx_len = (uint32_t)ctxlen};
    return call_op(c, &req, res);
}

int rkc_ping(struct rkc *c)
{
    struct rkc_result res;
    struct wire_req req = {.op = WIRE_OP_PING};
    int rc = call_op(c, &req, &res);
    rkc_result_free(&res);
    return rc;
}

int rkc_stats(struct rkc *c, struct rkc_result *res)
{
    struct wire_req req = {.op = WIRE_OP_STATS};
    return call_op(c, &req, res);
}

int rkc_members(struct rkc *c, struct rkc_result *res)
{
    struct wire_req req = {.op = WIRE_OP_MEMBERS};
    return call_op(c, &req, res);
}

int rkc_admin(struct rkc *c, const char *cmd, const char *arg, bool json,
              struct rkc_result *res)
{
    struct wire_req req = {
        .op = WIRE_OP_ADMIN, .cmd = cmd, .arg = arg ? arg : "", .json = json};
    return call_op(c, &req, res);
}

int rkc_ring(struct rkc *c, struct rkc_result *res)
{
    struct wire_req req = {.op = WIRE_OP_RING};
    return call_op(c, &req, res);
}
