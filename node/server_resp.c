/*
 * server_resp.c - the RESP (Redis protocol) commands of the client server.
 *
 * One table holds every command: name, arity in Redis's convention (n > 0:
 * exactly n words with the name; n < 0: at least -n), flags and key
 * positions (for COMMAND INFO), and its handler. The dispatcher checks the
 * arity, so handlers see well-formed argument counts.
 *
 * Replies in order. Redis answers a connection's commands in order and a
 * read sees the same connection's earlier writes. Writes here finish
 * asynchronously, so each command gets a slot in a FIFO and slots are
 * emitted in order as they complete; a read command is not started while
 * the connection has writes in flight (parsing pauses until they finish):
 *
 *   command --> slot (READY: reply already built | waiting on the core)
 *   core reply --> fills its slot --> drain: emit the done slots at the head
 *
 * Invariant: every command that is consumed from the input gets exactly one
 * reply (a slot), and drain_slots() runs after every command, so a reply
 * that is ready never waits for more input. If a slot cannot be allocated,
 * the connection is closed: a reply skipped would shift every later one.
 *
 * Too large: a multibulk command over a limit (an argument over max_value,
 * more than SERVER_RESP_ARGS arguments) is answered with an error and its
 * remaining bytes are discarded as they arrive (resp_skip), so the client
 * reads its error and the connection stays usable; only a stream that
 * cannot be parsed any more is closed.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/log.h"
#include "node/server_internal.h"

/* Bytes of an oversized command discarded at most before the connection
 * is closed instead. */
#define RESP_SKIP_MAX (1ull << 30)
#define RESP_VERSION  "7.0.0" /* the Redis version we answer as */

enum resp_slot_kind {
    SLOT_READY,  /* data holds the whole reply */
    SLOT_GET,    /* bulk or null */
    SLOT_SIBS,   /* array of every live value */
    SLOT_EXISTS, /* adds 1 to the count per key found */
    SLOT_DEL,    /* adds 1 per key that existed */
    SLOT_SET,    /* +OK */
    SLOT_MGET    /* one bulk or null per key, in key order */
};

struct resp_slot;

/* One key of an MGET: the core's reply lands in its own part, so the
 * array keeps key order whatever order replies come in. */
struct resp_part {
    struct resp_slot *sl;
    struct wire_buf data;
};

struct resp_slot {
    struct resp_slot *next;
    struct conn *conn;
    enum resp_slot_kind kind;
    bool is_write;
    bool definite;    /* err: nothing was applied */
    uint32_t waiting; /* core replies still due */
    int64_t count;
    int err; /* first error among the replies */
    char errmsg[160];
    struct wire_buf data;
    struct resp_part *parts; /* MGET */
    uint32_t nparts;
    size_t counted;   /* bytes counted in conn->slot_bytes */
    size_t req_bytes; /* counted in conn->req_bytes while waiting */
};

static struct resp_slot *slot_new(struct conn *c, enum resp_slot_kind k)
{
    struct resp_slot *sl = calloc(1, sizeof(*sl));
    if (sl == NULL) {
        LOG_ERROR("out of memory for a RESP reply; closing the connection");
        server__conn_close(c);
        return NULL;
    }
    sl->conn = c;
    sl->kind = k;
    if (c->tail)
        c->tail->next = sl;
    else
        c->head = sl;
    c->tail = sl;
    return sl;
}

static size_t slot_size(const struct resp_slot *sl)
{
    size_t n = sizeof(*sl) + sl->data.cap + sl->nparts * sizeof(*sl->parts);
    for (uint32_t i = 0; i < sl->nparts; i++)
        n += sl->parts[i].data.cap;
    return n;
}

/* The slot's data changed: recount it in its connection's slot bytes. A
 * reply past the connection's reply cap is dropped for an overloaded
 * error (definite: reads only hold data, they apply nothing). */
static void slot_grew(struct conn *c, struct resp_slot *sl)
{
    size_t now = slot_size(sl);
    if (now > server__reply_cap(c->srv) && sl->err == 0) {
        c->srv->replies_too_large++;
        sl->err = RK_EOVERLOADED;
        sl->definite = true;
        snprintf(sl->errmsg, sizeof(sl->errmsg),
                 "reply of more than %zu bytes exceeds conn_max_buffer",
                 server__reply_cap(c->srv));
        wire_buf_free(&sl->data);
        for (uint32_t i = 0; i < sl->nparts; i++)
            wire_buf_free(&sl->parts[i].data);
        now = slot_size(sl);
    }
    c->slot_bytes = c->slot_bytes - sl->counted + now;
    sl->counted = now;
}

static void slot_free(struct conn *c, struct resp_slot *sl)
{
    c->slot_bytes -= sl->counted;
    for (uint32_t i = 0; i < sl->nparts; i++)
        wire_buf_free(&sl->parts[i].data);
    free(sl->parts);
    wire_buf_free(&sl->data);
    free(sl);
}

/* "ERR <code>: <detail> (<definite or not>)" for a failed core request. */
static void emit_error(struct conn *c, const struct resp_slot *sl)
{
    char msg[256];
    const char *why = "";
    if (sl->is_write && sl->definite)
        why = " (definite: nothing was applied)";
    else if (sl->is_write && strstr(sl->errmsg, "may have been applied"))
        why = " (indefinite)"; /* the node's message says so already */
    else if (sl->is_write)
        why = " (indefinite: the write may have been applied)";
    snprintf(msg, sizeof(msg), "ERR %s: %s%s", rk_err_code(sl->err),
             sl->errmsg[0] ? sl->errmsg : rk_err_msg(sl->err), why);
    resp_error(&c->st.out, msg);
}

/* Emits every completed slot at the head of the FIFO, in order. */
static void drain_slots(struct conn *c)
{
    while (c->head != NULL && c->head->waiting == 0) {
        struct resp_slot *sl = c->head;
        c->head = sl->next;
        if (c->head == NULL)
            c->tail = NULL;
        if (!c->closed) {
            if (sl->err != 0) {
                emit_error(c, sl);
            } else if (sl->kind == SLOT_EXISTS || sl->kind == SLOT_DEL) {
                resp_int(&c->st.out, sl->count);
            } else if (sl->kind == SLOT_SET) {
                resp_simple(&c->st.out, "OK");
            } else if (sl->kind == SLOT_MGET) {
                resp_array(&c->st.out, sl->nparts);
                for (uint32_t i = 0; i < sl->nparts; i++)
                    wire_buf_append(&c->st.out, sl->parts[i].data.data,
                                    sl->parts[i].data.len);
            } else {
                wire_buf_append(&c->st.out, sl->data.data, sl->data.len);
            }
            server__conn_dirty(c);
        }
        slot_free(c, sl);
    }
}

/* A ready reply: the error msg (printf-style), counted. */
static void reply_fail(struct conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void reply_fail(struct conn *c, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    struct resp_slot *sl = slot_new(c, SLOT_READY);
    c->srv->resp_errors++;
    if (sl == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    resp_error(&sl->data, msg);
}

static void reply_ok(struct conn *c, const char *simple)
{
    struct resp_slot *sl = slot_new(c, SLOT_READY);
    if (sl)
        resp_simple(&sl->data, simple);
}

/* At most 32 bytes of an argument, for messages. */
#define ARG_FMT  "%.*s"
#define ARG_P(a) (int)((a)->len > 32 ? 32 : (a)->len), (const char *)(a)->p

/* ---- core requests ------------------------------------------------------
 */

/* The documented rule for a plain GET on a key with siblings: the value
 * with the greatest HLC timestamp, ties broken by the greater actor. */
static const struct core_value *pick_value(const struct core_reply *rep)
{
    const struct core_value *best = NULL;
    for (uint32_t i = 0; i < rep->nvalues; i++) {
        const struct core_value *v = &rep->values[i];
        if (best == NULL || v->ts > best->ts ||
            (v->ts == best->ts && v->actor > best->actor))
            best = v;
    }
    return best;
}

static void put_value(struct wire_buf *b, const struct core_reply *rep)
{
    const struct core_value *v = pick_value(rep);
    if (v)
        resp_bulk(b, v->data, v->len);
    else
        resp_null(b);
}

/* One thing the slot waited for is done; the last one completes it. */
static void slot_settle(struct conn *c, struct resp_slot *sl)
{
    if (--sl->waiting > 0)
        return;
    if (sl->is_write)
        c->writes_inflight--;
    c->req_bytes -= sl->req_bytes;
    sl->req_bytes = 0;
}

/* One core reply done: the slot may be complete now. */
static void on_core_done(struct conn *c, struct resp_slot *sl)
{
    c->inflight--;
    c->srv->inflight--;
    slot_grew(c, sl);
    slot_settle(c, sl);
    drain_slots(c);
    server__conn_account(c);
    if (!c->closed)
        server__conn_resume(c);
    server__conn_unref(c);
}

static void note_error(struct resp_slot *sl, const struct core_reply *rep)
{
    if (sl->err != 0)
        return;
    sl->err = rep->err;
    sl->definite = rep->definite;
    snprintf(sl->errmsg, sizeof(sl->errmsg), "%s", rep->msg ? rep->msg : "");
}

static void on_core_reply(void *arg, const struct core_reply *rep)
{
    struct resp_slot *sl = arg;

    if (rep->err != 0) {
        note_error(sl, rep);
    } else {
        switch (sl->kind) {
        case SLOT_GET:
            put_value(&sl->data, rep);
            break;
        case SLOT_SIBS:
            resp_array(&sl->data, rep->nvalues);
            for (uint32_t i = 0; i < rep->nvalues; i++)
                resp_bulk(&sl->data, rep->values[i].data, rep->values[i].len);
            break;
        case SLOT_EXISTS:
            sl->count += rep->nvalues > 0;
            break;
        case SLOT_DEL:
            sl->count += rep->existed;
            break;
        default:
            break;
        }
    }
    on_core_done(sl->conn, sl);
}

static void part_reply(void *arg, const struct core_reply *rep)
{
    struct resp_part *pt = arg;
    struct resp_slot *sl = pt->sl;

    if (rep->err != 0)
        note_error(sl, rep);
    else
        put_value(&pt->data, rep);
    on_core_done(sl->conn, sl);
}

/* Submits one core request for slot sl; fn(arg) gets its reply. */
static void run_core(struct conn *c, struct resp_slot *sl, enum wire_op op,
                     const struct resp_arg *key, const struct resp_arg *val,
                     core_reply_fn fn, void *arg)
{
    struct core_req cr = {.op = op,
                          .key = key->p,
                          .key_len = key->len,
                          .flags = CORE_F_OVERWRITE};
    if (val) {
        cr.value = val->p;
        cr.value_len = val->len;
    }
    size_t bytes = 64 + key->len + (val ? val->len : 0);
    sl->waiting++;
    sl->req_bytes += bytes;
    c->req_bytes += bytes;
    c->inflight++;
    c->srv->inflight++;
    c->refs++;
    core_request(c->srv->core, &cr, fn, arg);
}

/* Keys a[first..n): each within max_key, else an error reply. */
static bool keys_ok(struct conn *c, const struct resp_arg *a, uint32_t first,
                    uint32_t n)
{
    uint32_t max = c->srv->o.lim.max_key;
    for (uint32_t i = first; i < n; i++) {
        if (a[i].len == 0 || a[i].len > max) {
            reply_fail(c,
                       "ERR key of %" PRIu32 " bytes is empty or exceeds "
                       "max_key (%" PRIu32 " bytes)",
                       a[i].len, max);
            return false;
        }
    }
    return true;
}

/* Parses a[i] as a decimal int64 (Redis's string2ll rules: optional '-',
 * no '+', no spaces, no leading zeros except "0"). */
static bool arg_int(const struct resp_arg *a, int64_t *out)
{
    const uint8_t *p = a->p;
    uint32_t n = a->len, i = 0;
    bool neg = false;
    uint64_t v = 0;

    if (n == 0 || n > 20)
        return false;
    if (p[0] == '-') {
        neg = true;
        i = 1;
        if (n == 1)
            return false;
    }
    if (p[i] == '0' && n > i + 1)
        return false;
    for (; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        uint64_t d = (uint64_t)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (neg ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX)
        return false;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

/* ---- commands -----------------------------------------------------------
 */

typedef void (*resp_cmd_fn)(struct conn *c, const struct resp_arg *a,
                            uint32_t n);

enum {
    CMD_READ = 1 << 0,  /* waits for the connection's writes */
    CMD_WRITE = 1 << 1, /* stores data */
};

struct resp_cmd_def {
    const char *name;
    int arity;
    unsigned flags;
    int first_key, last_key, step; /* COMMAND INFO; 0 = no keys */
    resp_cmd_fn run;
};

static void cmd_ping(struct conn *c, const struct resp_arg *a, uint32_t n)
{
    struct resp_slot *sl;
    if (n > 2) {
        reply_fail(c, "ERR wrong number of arguments for 'ping' command");
        return;
    }
    if ((sl = slot_new(c, SLOT_READY)) == NULL)
        return;
    if (n == 2)
        resp_bulk(&sl->data, a[1].p, a[1].len);
    else
        resp_simple(&sl->data, "PONG");
}

static void cmd_echo(struct conn *c, const struct resp_arg *a, uint32_t n)
{
    struct resp_slot *sl = slot_new(c, SLOT_READY);
    if (sl)
        resp_bulk(&sl->data, a[1].p, a[1].len);
}

static void cmd_get(struct conn *c, const struct resp_arg *a, uint32_t n)
{
    struct resp_slot *sl;
    bool sibs = resp_arg_is(&a[0], "SIBLINGS");
    if (!keys_ok(c, a, 1, 2))
        return;
    if ((sl = slot_new(c, sibs ? SLOT_SIBS : SLOT_GET)))
        run_core(c, sl, WIRE_OP_GET, &a[1], NULL, on_core_reply, sl);
}

/*
 * SET key value [NX | XX] [GET] [EX s | PX ms | EXAT ts | PXAT ts | KEEPTTL]
 *
 * The grammar is checked as Redis does (syntax errors first); then options
 * ringkv cannot honour are refused by name. KEEPTTL is accepted: no key has
 * a time to live, so keeping it is keeping nothing.
 */
static void cmd_set(struct conn *c, const struct resp_arg *a, uint32_t n)
{
    struct server *s = c->srv;
    const struct resp_arg *expiry = NULL, *cond = NULL, *get = NULL;
    bool keepttl = false;
    struct resp_slot *sl;

    for (uint32_t i = 3; i < n; i++) {
        const struct resp_arg *o = &a[i];
        if (resp_arg_is(o, "NX") || resp_arg_is(o, "XX")) {
            if (cond != NULL)
                goto syntax;
            cond = o;
        } else if (resp_arg_is(o, "GET")) {
            get = o;
        } else if (resp_arg_is(o, "KEEPTTL")) {
            if (expiry != NULL)
                goto syntax;
            keepttl = true;
        } else if (resp_arg_is(o, "EX") || resp_arg_is(o, "PX") ||
                   resp_arg_is(o, "EXAT") || resp_arg_is(o, "PXAT")) {
            int64_t t;
            if (expiry != NULL || keepttl || i + 1 >= n)
                goto syntax;
            if (!arg_int(&a[i + 1], &t)) {
                reply_fail(c, "ERR value is not an integer or out of range");
                return;
            }
            if (t <= 0) {
                reply_fail(c, "ERR invalid expire time in 'set' command");
                return;
            }
            expiry = o;
            i++;
        } else {
            goto syntax;
        }
    }
    if (expiry != NULL) {
        reply_fail(c,
                   "ERR SET option " ARG_FMT " is not supported: ringkv has "
                   "no key expiry (see README, Redis compatibility)",
                   ARG_P(expiry));
        return;
    }
    if (cond != NULL || get != NULL) {
        const struct resp_arg *o = cond ? cond : get;
        reply_fail(c,
                   "ERR SET option " ARG_FMT " is not supported: a "
                   "leaderless store cannot read and write a key atomically "
                   "(see README, Redis compatibility)",
                   ARG_P(o));
        return;
    }
    if (!keys_ok(c, a, 1, 2))
        return;
    if (a[2].len > s->o.lim.max_value) {
        reply_fail(c,
                   "ERR value of %" PRIu32 " bytes exceeds max_value (%" PRIu32
                   " bytes)",
                   a[2].len, s->o.lim.max_value);
        return;
    }
    if ((sl = slot_new(c, SLOT_SET))) {
        sl->is_write = true;
        c->writes_inflight++;
        /* A synchronous answer drains (and frees) the slot itself. */
        run_core(c, sl, WIRE_OP_PUT, &a[1], &a[2], on_core_reply, sl);
    }
    return;
syntax:
    reply_fail(c, "ERR syntax error");
}

/* DEL / UNLINK and EXISTS: one integer for all the keys. */
static void cmd_del_exists(struct conn *c, const struct resp_arg *a, uint32_t n)
{
    bool del = !resp_arg_is(&a[0], "EXISTS");
    struct resp_slot *sl;

    if (!keys_ok(c, a, 1, n))
        return;
    if ((sl = slot_new(c, del ? SLOT_DEL : SLOT_EXISTS)) == NULL)
        return;
    /* Hold the slot open until every key was submitted. */
    sl->waiting = 1;
    if (del) {
        sl->is_write = true;
        c->writes_inflight++;
    }
    for (uint32_t i = 1; i < n; i++)
        run_core(c, sl, del ? WIRE_OP_DEL : WIRE_OP_GET, &a[i], NULL,
                 on_core_reply, sl);
    slot_settle(c, sl);
}

/* MGET: all keys' values, or one error for the whole command (as Redis
 * does: a client never finds an error where it expects a value). */
static void cmd_mget(struct conn *c, const struct resp_arg *a, uint32_t n)
{
    struct resp_slot *sl;

    if (!keys_ok(c, a, 1, n))
        return;
    if ((sl = slot_new(c, SLOT_MGET)) == NULL)
        return;
    sl->parts = calloc(n - 1, sizeof(*sl->parts));
    if (sl->parts == NULL) {
        sl->err = -ENOMEM;
        sl->definite = true;
        return;
    }
    sl->nparts = n - 1;
    sl->waiting = 1;
    for (uint32_t i = 1; i < n; i++) {
        sl->parts[i - 1].sl = sl;
        run_core(c, sl, WIRE_OP_GET, &a[i], NULL, part_reply,
                 &sl->parts[i - 1]);
    }
    slot_settle(c, sl);
}

static void info_text(struct conn *c, struct wire_buf *b);

static void cmd_info(struct conn *c, const struct resp_arg *a, uint32_t n)
{
    struct resp_slot *sl = slot_new(c, SLOT_READY);
    if (sl)
        info_text(c, &sl->data);
}

static void cmd_quit(struct conn *c, const struct resp_arg *a, uint32_t n)
{
    reply_ok(c, "OK");
    drain_slots(c);
    server__conn_close_after_flush(c);
}

static void cmd_select(struct conn *c, const struct resp_arg *a, uint32_t n)
{
    int64_t db;
    if (!arg_int(&a[1], &db))
        reply_fail(c, "ERR value is not an integer or out of range");
    else if (db != 0)
        reply_fail(c, "ERR DB index is out of range");
    else
        reply_ok(c, "OK");
}

static void cmd_auth(struct conn *c, const struct resp_arg *a, uint32_t n)
{
    if (n > 3) {
        reply_fail(c, "ERR syntax error");
        return;
    }
    /* As Redis answers when the default user has no password. */
    reply_fail(c, "ERR AUTH <password> called without any password "
                  "configured for the default user. Are you sure your "
                  "configuration is correct?");
}

static bool is_valid_client_name(struct conn *c, const struct resp_arg *nm)
{
    for (uint32_t i = 0; i < nm->len; i++) {
        if (nm->p[i] <= ' ' || nm->p[i] > '~') {
            reply_fail(c, "ERR Client names cannot contain spaces, newlines "
                          "or special characters.");
            return false;
        }
    }
    if (nm->len > SERVER_CLIENT_NAME_MAX) {
        reply_fail(c, "ERR client name longer than %d bytes",
                   SERVER_CLIENT_NAME_MAX);
        return false;
    }
    return true;
}

static void set_name(struct conn *c, const struct resp_arg *nm)
{
    memcpy(c->name, nm->p, nm->len);
    c->name[nm->len] = '\0';
}

/* One CLIENT LIST / CLIENT INFO line. */
static void format_client_line(const struct conn *c, char *line, size_t cap)
{
    uint64_t now = uv_now(c->srv->loop);
    snprintf(line, cap,
             "id=%" PRIu64 " name=%s idle=%" PRIu64 " resp=2 cmd=%s\n", c->id,
             c->name, (now - c->last_active) / 1000,
             c->resp ? "resp" : "native");
}

static void cmd_client(struct conn *c, const struct resp_arg *a, uint32_t n)
{
    const struct resp_arg *sub = &a[1];
    struct resp_slot *sl;
    char line[256];

    if (resp_arg_is(sub, "ID") && n == 2) {
        if ((sl = slot_new(c, SLOT_READY)))
            resp_int(&sl->data, (int64_t)c->id);
    } else if (resp_arg_is(sub, "SETNAME") && n == 3) {
        if (!is_valid_client_name(c, &a[2]))
            return;
        set_name(c, &a[2]);
        reply_ok(c, "OK");
    } else if (resp_arg_is(sub, "GETNAME") && n == 2) {
        if ((sl = slot_new(c, SLOT_READY)) == NULL)
            return;
        if (c->name[0])
            resp_bulk(&sl->data, c->name, strlen(c->name));
        else
            resp_null(&sl->data);
    } else if (resp_arg_is(sub, "SETINFO") && n == 4) {
        /* LIB-NAME / LIB-VER: accepted, not kept. */
        if (!resp_arg_is(&a[2], "LIB-NAME") && !resp_arg_is(&a[2], "LIB-VER"))
            reply_fail(c, "ERR Unrecognized option '" ARG_FMT "'",
                       ARG_P(&a[2]));
        else
            reply_ok(c, "OK");
    } else if (resp_arg_is(sub, "INFO") && n == 2) {
        format_client_line(c, line, sizeof(line));
        if ((sl = slot_new(c, SLOT_READY)))
            resp_bulk(&sl->data, line, strlen(line));
    } else if (resp_arg_is(sub, "LIST") && n == 2) {
        struct wire_buf t;
        if ((sl = slot_new(c, SLOT_READY)) == NULL)
            return;
        wire_buf_init(&t);
        for (struct conn *o = c->srv->conns; o != NULL; o = o->next) {
            if (!o->resp)
                continue;
            format_client_line(o, line, sizeof(line));
            wire_buf_append(&t, line, strlen(line));
        }
        resp_bulk(&sl->data, t.data, t.len);
        wire_buf_free(&t);
    } else if (resp_arg_is(sub, "SETNAME") || resp_arg_is(sub, "GETNAME") ||
               resp_arg_is(sub, "ID") || resp_arg_is(sub, "INFO") ||
               resp_arg_is(sub, "LIST") || resp_arg_is(sub, "SETINFO")) {
        reply_fail(
            c, "ERR wrong number of arguments for 'client|" ARG_FMT "' command",
            ARG_P(sub));
    } else {
        reply_fail(c,
                   "ERR unknown subcommand '" ARG_FMT
                   "'. ringkv supports CLIENT ID, SETNAME, GETNAME, SETINFO, "
                   "INFO and LIST.",
                   ARG_P(sub));
    }
}

/*
 * HELLO [protover [AUTH username password] [SETNAME name]]
 *
 * ringkv speaks RESP2 only. HELLO / HELLO 2 answer like Redis 6+ does
 * (the server's properties as a flat array); HELLO 3 gets -NOPROTO, the
 * error clients take as "fall back to RESP2".
 */
static void cmd_hello(struct conn *c, const struct resp_arg *a, uint32_t n)
{
    const struct resp_arg *name = NULL;
    struct resp_slot *sl;
    int64_t ver = 2;

    if (n >= 2) {
        if (!arg_int(&a[1], &ver)) {
            reply_fail(c, "ERR Protocol version is not an integer or out of "
                          "range");
            return;
        }
        if (ver != 2) {
            reply_fail(c, "NOPROTO sorry, this protocol version is not "
                          "supported");
            return;
        }
    }
    for (uint32_t i = 2; i < n; i++) {
        if (resp_arg_is(&a[i], "AUTH") && i + 2 < n) {
            i += 2; /* no password is configured: any is accepted */
        } else if (resp_arg_is(&a[i], "SETNAME") && i + 1 < n) {
            name = &a[++i];
        } else {
            reply_fail(c, "ERR Syntax error in HELLO option '" ARG_FMT "'",
                       ARG_P(&a[i]));
            return;
        }
    }
    if (name != NULL) {
        if (!is_valid_client_name(c, name))
            return;
        set_name(c, name);
    }
    if ((sl = slot_new(c, SLOT_READY)) == NULL)
        return;
    resp_array(&sl->data, 14);
    resp_bulk(&sl->data, "server", 6);
    resp_bulk(&sl->data, "redis", 5);
    resp_bulk(&sl->data, "version", 7);
    resp_bulk(&sl->data, RESP_VERSION, strlen(RESP_VERSION));
    resp_bulk(&sl->data, "proto", 5);
    resp_int(&sl->data, 2);
    resp_bulk(&sl->data, "id", 2);
    resp_int(&sl->data, (int64_t)c->id);
    resp_bulk(&sl->data, "mode", 4);
    resp_bulk(&sl->data, "standalone", 10);
    resp_bulk(&sl->data, "role", 4);
    resp_bulk(&sl->data, "master", 6);
    resp_bulk(&sl->data, "modules", 7);
    resp_array(&sl->data, 0);
}

static void cmd_config(struct conn *c, const struct resp_arg *a, uint32_t n)
{
    struct resp_slot *sl;
    if (!resp_arg_is(&a[1], "GET") || n != 3) {
        reply_fail(c,
                   "ERR CONFIG " ARG_FMT " is not supported: ringkv is "
                   "configured by its config file and flags (docs/config.md)",
                   ARG_P(&a[1]));
        return;
    }
    /* redis-benchmark reads "save" and "appendonly" at start. */
    if ((sl = slot_new(c, SLOT_READY)) == NULL)
        return;
    if (resp_arg_is(&a[2], "save") || resp_arg_is(&a[2], "appendonly")) {
        resp_array(&sl->data, 2);
        resp_bulk(&sl->data, a[2].p, a[2].len);
        if (resp_arg_is(&a[2], "save"))
            resp_bulk(&sl->data, "", 0);
        else
            resp_bulk(&sl->data, "no", 2);
    } else {
        resp_array(&sl->data, 0);
    }
}

/*
 * MULTI / EXEC / DISCARD. A leaderless store has no transactions, so MULTI
 * is refused. The connection still remembers it was asked, and refuses
 * every command until EXEC or DISCARD, so no part of a transaction a client
 * pipelined after its MULTI ever runs (the client sees EXECABORT, as from
 * a Redis transaction whose commands failed to queue).
 */
static void cmd_multi(struct conn *c, const struct resp_arg *a, uint32_t n)
{
    if (c->in_multi) {
        reply_fail(c, "ERR MULTI calls can not be nested");
        return;
    }
    c->in_multi = true;
    reply_fail(c, "ERR MULTI is not supported: ringkv has no transactions "
                  "(commands up to EXEC or DISCARD are refused; use a "
                  "pipeline without MULTI)");
}

static void cmd_exec(struct conn *c, const struct resp_arg *a, uint32_t n)
{
    bool discard = resp_arg_is(&a[0], "DISCARD");
    if (!c->in_multi) {
        reply_fail(c, "ERR %s without MULTI", discard ? "DISCARD" : "EXEC");
        return;
    }
    c->in_multi = false;
    if (discard)
        reply_ok(c, "OK");
    else
        reply_fail(c, "EXECABORT Transaction discarded: ringkv does not "
                      "support MULTI");
}

static void cmd_watch(struct conn *c, const struct resp_arg *a, uint32_t n)
{
    reply_fail(c,
               "ERR " ARG_FMT " is not supported: ringkv has no "
               "transactions",
               ARG_P(&a[0]));
}

static void cmd_command(struct conn *c, const struct resp_arg *a, uint32_t n);

static const struct resp_cmd_def resp_cmds[] = {
    {"PING", -1, 0, 0, 0, 0, cmd_ping},
    {"ECHO", 2, 0, 0, 0, 0, cmd_echo},
    {"GET", 2, CMD_READ, 1, 1, 1, cmd_get},
    {"SIBLINGS", 2, CMD_READ, 1, 1, 1, cmd_get},
    {"SET", -3, CMD_WRITE, 1, 1, 1, cmd_set},
    {"DEL", -2, CMD_WRITE, 1, -1, 1, cmd_del_exists},
    {"UNLINK", -2, CMD_WRITE, 1, -1, 1, cmd_del_exists},
    {"EXISTS", -2, CMD_READ, 1, -1, 1, cmd_del_exists},
    {"MGET", -2, CMD_READ, 1, -1, 1, cmd_mget},
    {"INFO", -1, 0, 0, 0, 0, cmd_info},
    {"QUIT", -1, 0, 0, 0, 0, cmd_quit},
    {"SELECT", 2, 0, 0, 0, 0, cmd_select},
    {"AUTH", -2, 0, 0, 0, 0, cmd_auth},
    {"HELLO", -1, 0, 0, 0, 0, cmd_hello},
    {"CLIENT", -2, 0, 0, 0, 0, cmd_client},
    {"CONFIG", -2, 0, 0, 0, 0, cmd_config},
    {"COMMAND", -1, 0, 0, 0, 0, cmd_command},
    {"MULTI", 1, 0, 0, 0, 0, cmd_multi},
    {"EXEC", 1, 0, 0, 0, 0, cmd_exec},
    {"DISCARD", 1, 0, 0, 0, 0, cmd_exec},
    {"WATCH", -2, 0, 1, -1, 1, cmd_watch},
    {"UNWATCH", 1, 0, 0, 0, 0, cmd_watch},
};

#define RESP_NCMDS (sizeof(resp_cmds) / sizeof(resp_cmds[0]))

static const struct resp_cmd_def *lookup_command(const struct resp_arg *name)
{
    for (size_t i = 0; i < RESP_NCMDS; i++)
        if (resp_arg_is(name, resp_cmds[i].name))
            return &resp_cmds[i];
    return NULL;
}

/* One COMMAND INFO entry, in Redis's RESP2 layout. */
static void command_info(struct wire_buf *b, const struct resp_cmd_def *d)
{
    char lower[16];
    size_t i;
    for (i = 0; d->name[i] && i < sizeof(lower) - 1; i++)
        lower[i] = (char)(d->name[i] | 0x20);
    lower[i] = '\0';
    resp_array(b, 6);
    resp_bulk(b, lower, i);
    resp_int(b, d->arity);
    resp_array(b, d->flags ? 1 : 0);
    if (d->flags & CMD_WRITE)
        resp_simple(b, "write");
    else if (d->flags & CMD_READ)
        resp_simple(b, "readonly");
    resp_int(b, d->first_key);
    resp_int(b, d->last_key);
    resp_int(b, d->step);
}

static void cmd_command(struct conn *c, const struct resp_arg *a, uint32_t n)
{
    struct resp_slot *sl;
    if (n >= 2 && resp_arg_is(&a[1], "COUNT") && n == 2) {
        if ((sl = slot_new(c, SLOT_READY)))
            resp_int(&sl->data, (int64_t)RESP_NCMDS);
    } else if (n >= 2 && resp_arg_is(&a[1], "DOCS")) {
        /* No docs: redis-cli then works without hints. */
        if ((sl = slot_new(c, SLOT_READY)))
            resp_array(&sl->data, 0);
    } else if (n >= 2 && resp_arg_is(&a[1], "INFO")) {
        if ((sl = slot_new(c, SLOT_READY)) == NULL)
            return;
        resp_array(&sl->data, n - 2);
        for (uint32_t i = 2; i < n; i++) {
            const struct resp_cmd_def *d = lookup_command(&a[i]);
            if (d)
                command_info(&sl->data, d);
            else
                resp_array(&sl->data, -1);
        }
    } else if (n == 1) {
        if ((sl = slot_new(c, SLOT_READY)) == NULL)
            return;
        resp_array(&sl->data, RESP_NCMDS);
        for (size_t i = 0; i < RESP_NCMDS; i++)
            command_info(&sl->data, &resp_cmds[i]);
    } else {
        reply_fail(c,
                   "ERR unknown subcommand '" ARG_FMT
                   "'. ringkv supports COMMAND, COMMAND COUNT, DOCS and INFO.",
                   ARG_P(&a[1]));
    }
}

/* Runs one command. Returns false when the command must wait (a read
 * behind this connection's writes): it is then parsed again later.
 * Otherwise the command has its reply slot. */
static bool run_command(struct conn *c, const struct resp_cmd *cmd)
{
    const struct resp_arg *a = cmd->argv;
    uint32_t n = cmd->argc;
    const struct resp_cmd_def *d = lookup_command(&a[0]);

    if (d == NULL) {
        c->srv->commands++;
        reply_fail(c, "ERR unknown or unsupported command '" ARG_FMT "'",
                   ARG_P(&a[0]));
        return true;
    }
    if ((d->flags & CMD_READ) && c->writes_inflight > 0)
        return false;
    c->srv->commands++;
    if (d->flags & (CMD_READ | CMD_WRITE)) {
        const char *why = NULL;
        if (server__admit(c, &why) != 0) {
            reply_fail(c, "ERR overloaded: %s (definite: nothing was applied)",
                       why);
            return true;
        }
    }
    if (c->in_multi && d->run != cmd_exec && d->run != cmd_multi) {
        reply_fail(c, "ERR not run: this connection is in a MULTI that ringkv "
                      "refused; EXEC or DISCARD ends it");
        return true;
    }
    if ((d->arity > 0 && n != (uint32_t)d->arity) ||
        (d->arity < 0 && n < (uint32_t)-d->arity)) {
        char lower[16];
        size_t i;
        for (i = 0; d->name[i] && i < sizeof(lower) - 1; i++)
            lower[i] = (char)(d->name[i] | 0x20);
        lower[i] = '\0';
        reply_fail(c, "ERR wrong number of arguments for '%s' command", lower);
        return true;
    }
    d->run(c, a, n);
    if (c->tail != NULL && !c->closed)
        slot_grew(c, c->tail);
    return true;
}

/* A multibulk command over a limit: answer, then discard the rest. */
static void refuse_oversized(struct conn *c, const struct resp_cmd *cmd)
{
    struct server *s = c->srv;
    s->resp_oversized++;
    if (cmd->skip.bytes > 0) {
        reply_fail(c,
                   "ERR argument of %" PRIu64 " bytes is larger than any key "
                   "or value allowed (max_value %" PRIu32 ", max_key %" PRIu32
                   " bytes)",
                   cmd->too_big, s->o.lim.max_value, s->o.lim.max_key);
    } else {
        reply_fail(c,
                   "ERR command of %" PRIu64 " arguments exceeds the limit "
                   "of %d",
                   cmd->too_big, SERVER_RESP_ARGS);
    }
}

/* Discards what an oversized command still has in c->st.in[*off..). Returns
 * false when the connection was closed. */
static bool on_skipping(struct conn *c, size_t *off)
{
    struct resp_skip st = {c->skip_args, c->skip_bytes};
    const char *why = NULL;
    size_t used = 0;
    int rc =
        resp_skip(c->st.in.data + *off, c->st.in.len - *off, &st, &used, &why);

    *off += used;
    c->skipped += used;
    c->skip_args = st.args;
    c->skip_bytes = st.bytes;
    if (rc != 0 || c->skipped > RESP_SKIP_MAX) {
        reply_fail(c, "ERR Protocol error: %s",
                   rc != 0 ? why : "oversized command too long to discard");
        drain_slots(c);
        server__conn_close_after_flush(c);
        return false;
    }
    return true;
}

void server__resp_process(struct conn *c)
{
    struct server *s = c->srv;
    struct resp_limits lim = {.max_args = SERVER_RESP_ARGS,
                              .max_bulk = s->o.lim.max_value > s->o.lim.max_key
                                              ? s->o.lim.max_value
                                              : s->o.lim.max_key,
                              .max_inline = 64 * 1024};
    size_t off = 0;

    while (!c->closing && c->st.reading && off < c->st.in.len) {
        if (c->skip_args > 0 || c->skip_bytes > 0) {
            c->last_active = uv_now(s->loop); /* the stream moves on */
            if (!on_skipping(c, &off))
                break;
            if (c->skip_args > 0 || c->skip_bytes > 0)
                break; /* the rest has not arrived yet */
            continue;
        }
        struct resp_cmd cmd = {.argv = s->argv};
        const char *why = NULL;
        int n = resp_parse(c->st.in.data + off, c->st.in.len - off, &lim, &cmd,
                           &why);
        if (n < 0 && cmd.skip_from > 0) {
            /* Refused, but the stream goes on past the command. */
            if (n == RK_ETOO_LARGE)
                refuse_oversized(c, &cmd);
            else
                reply_fail(c, "ERR Protocol error: %s", why);
            c->skip_args = cmd.skip.args;
            c->skip_bytes = cmd.skip.bytes;
            c->skipped = 0;
            drain_slots(c);
            off += cmd.skip_from;
            continue;
        }
        if (n == 0 && c->st.in.len - off > (size_t)s->o.lim.max_frame + 65536) {
            /* Each argument is within max_bulk, but a whole command must
             * fit in max_frame too: memory per connection stays bounded.
             * The command is one array (inline ones stop at max_inline):
             * answer it and discard the array as it streams past. */
            s->resp_oversized++;
            reply_fail(
                c, "ERR command too large: over max_frame (%" PRIu32 " bytes)",
                s->o.lim.max_frame);
            drain_slots(c);
            c->skip_args = 1;
            c->skip_bytes = 0;
            c->skipped = 0;
            continue;
        }
        if (n == 0)
            break;
        if (n < 0) {
            reply_fail(c, "ERR Protocol error: %s", why ? why : rk_err_msg(n));
            drain_slots(c);
            server__conn_close_after_flush(c);
            break;
        }
        c->last_active = uv_now(s->loop); /* a whole command arrived */
        if (cmd.argc > 0 && !run_command(c, &cmd)) {
            /* A read waits for this connection's writes; they resume us. */
            server__conn_pause(c);
            break;
        }
        drain_slots(c);
        off += (size_t)n;
        if (server__conn_should_pause(c))
            server__conn_pause(c);
    }
    wire_buf_consume(&c->st.in, off);
}

/* ---- INFO ----------------------------------------------------------------
 */

static void info_text(struct conn *c, struct wire_buf *b)
{
    struct wire_stat st[SERVER_NSTATS];
    uint32_t n = server__collect(c->srv, st);
    struct wire_buf t;
    char line[256];

    wire_buf_init(&t);
    snprintf(line, sizeof(line),
             "# Server\r\nredis_version:" RESP_VERSION "\r\n"
             "ringkv_version:0.1.0\r\nredis_mode:standalone\r\n"
             "tcp_port:%u\r\n# Clients\r\nconnected_clients:%" PRIu64 "\r\n"
             "# Persistence\r\nloading:0\r\n# Replication\r\nrole:master\r\n"
             "# Ringkv\r\n",
             (unsigned)c->srv->o.resp_port, c->srv->nconns);
    wire_buf_append(&t, line, strlen(line));
    for (uint32_t i = 0; i < n; i++) {
        if (st[i].sval)
            snprintf(line, sizeof(line), "%s:%s\r\n", st[i].name, st[i].sval);
        else
            snprintf(line, sizeof(line), "%s:%" PRId64 "\r\n", st[i].name,
                     st[i].ival);
        wire_buf_append(&t, line, strlen(line));
    }
    resp_bulk(b, t.data, t.len);
    wire_buf_free(&t);
}
