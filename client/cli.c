/*
 * cli.c - ringkv-cli: one command against one node, through the C client
 * (client.h). Usage, output formats and exit codes are in docs/cli.md.
 *
 *   argv --parse--> struct cli (options anywhere, "--" ends them)
 *        --rkc_connect--> one simple call --> stdout (raw or JSON), exit code
 *
 * Design: values are bytes, never C strings: a value read with --file keeps
 * its NUL bytes, plain `get` writes the raw bytes, and JSON shows bytes that
 * are not UTF-8 as {"base64":...}. JSON documents are built in memory and
 * written once, so a failure never leaves half a document on stdout.
 *
 * members and ring print the cluster as the connected node sees it; ring's
 * JSON names members by index into its "members" array, like the wire.
 *
 * Exit codes: 0 success, 1 key not found (get only), 2 any error (usage,
 * connection, server error), with the message on stderr (or, with --json,
 * an {"error":...} document on stdout).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "client/client.h"
#include "client/client_util.h"

#define CLI_EXIT_OK        0
#define CLI_EXIT_NOT_FOUND 1
#define CLI_EXIT_ERROR     2
#define CLI_RUN            (-1) /* cli_parse: no exit yet, run the command */

/* Longer than the node's default request_timeout (5 s), so that when a
 * quorum is slow the node's own, more precise error arrives first. */
#define CLI_DEFAULT_TIMEOUT_MS 10000
/* The largest value put accepts by default: the node's default max_value.
 * --max-value raises it for nodes configured higher. */
#define CLI_DEFAULT_MAX_VALUE WIRE_DEFAULT_MAX_VALUE
#define CLI_MAX_POS           4

struct cli {
    const char *host;
    uint16_t port;
    bool json;
    bool verbose;
    bool local; /* get --local */
    uint8_t r, w;
    int timeout_ms;
    unsigned long max_value; /* put: bytes */
    const char *file;        /* put --file; "-" = stdin */
    const char *context;     /* base64, put and del */
    const char *pos[CLI_MAX_POS];
    int npos;
};

static const char cli_usage[] =
    "usage: ringkv-cli [options] COMMAND\n"
    "commands:\n"
    "  put KEY VALUE            store VALUE under KEY\n"
    "  put KEY --file F         store the bytes of file F (- = stdin)\n"
    "  get KEY                  print every value of KEY, one per line\n"
    "  get --local KEY          the same, from the connected node's copy only\n"
    "  del KEY                  delete KEY\n"
    "  ping                     check that the node answers\n"
    "  stats                    print the node's counters\n"
    "  members                  the cluster members as this node sees them:\n"
    "                           id, address, state (alive, suspect, dead,\n"
    "                           left), incarnation, last heard, ring role\n"
    "  transfers                partition moves of a membership change\n"
    "  join SEED                join the cluster SEED (host:port) is in\n"
    "  leave                    hand this node's data over, then stop it\n"
    "  remove NODE              take a dead node out of the ring\n"
    "  ring                     each partition's preference list\n"
    "options (before or after the command; -- ends them):\n"
    "  -h, --host HOST          node address (default 127.0.0.1)\n"
    "  -p, --port PORT          native protocol port (default 7001)\n"
    "  --r R, --w W             read / write quorum (default: the node's)\n"
    "  --timeout MS             per-request timeout, 0 = none (default "
    "10000:\n"
    "                           longer than the node's request_timeout, 5 s\n"
    "                           by default, so the node's own error arrives)\n"
    "  --max-value BYTES        put: the largest value sent (default 4194304,\n"
    "                           the node's default max_value)\n"
    "  --context BASE64         causal context for put / del (from get)\n"
    "  --local                  get: no coordination, this node's versions only\n"
    "  --json                   machine-readable output\n"
    "  -v, --verbose            also print the context on stderr\n"
    "  --help                   this text\n"
    "exit status: 0 ok, 1 not found (get), 2 error\n";

static int cli_usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "ringkv-cli: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\ntry 'ringkv-cli --help'\n");
    return CLI_EXIT_ERROR;
}

/* Parses a decimal number in [lo, hi]. */
static bool cli_num(const char *s, unsigned long lo, unsigned long hi,
                    unsigned long *out)
{
    if (s == NULL || *s < '0' || *s > '9')
        return false;
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || *end != 0 || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* Parses argv into o. Returns CLI_RUN when the command is to run, else the
 * exit status (--help, a usage error). */
static int cli_parse(struct cli *o, int argc, char **argv)
{
    bool opts_done = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (opts_done || a[0] != '-' || a[1] == 0) {
            if (o->npos == CLI_MAX_POS)
                return cli_usage_error("too many arguments at '%s'", a);
            o->pos[o->npos++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            opts_done = true;
            continue;
        }
        if (strcmp(a, "--help") == 0) {
            fputs(cli_usage, stdout);
            return CLI_EXIT_OK;
        }
        if (strcmp(a, "--json") == 0) {
            o->json = true;
            continue;
        }
        if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            o->verbose = true;
            continue;
        }
        if (strcmp(a, "--local") == 0) {
            o->local = true;
            continue;
        }
        /* Options with an argument: "--name value" or "--name=value". */
        static const char *const names[] = {
            "-h",  "--host",    "-p",     "--port",    "--r",
            "--w", "--timeout", "--file", "--context", "--max-value"};
        const char *val = NULL;
        size_t which = sizeof(names) / sizeof(names[0]);
        for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
            size_t nl = strlen(names[k]);
            if (strncmp(a, names[k], nl) != 0)
                continue;
            if (a[nl] == 0) {
                if (i + 1 >= argc)
                    return cli_usage_error("option %s needs a value", a);
                val = argv[++i];
            } else if (a[nl] == '=' && a[1] == '-') {
                val = a + nl + 1;
            } else {
                continue;
            }
            which = k;
            break;
        }
        unsigned long v;
        switch (which) {
        case 0:
        case 1:
            o->host = val;
            break;
        case 2:
        case 3:
            if (!cli_num(val, 1, 65535, &v))
                return cli_usage_error("bad port '%s' (1..65535)", val);
            o->port = (uint16_t)v;
            break;
        case 4:
        case 5:
            if (!cli_num(val, 0, 255, &v))
                return cli_usage_error("bad quorum '%s' (0..255)", val);
            if (which == 4)
                o->r = (uint8_t)v;
            else
                o->w = (uint8_t)v;
            break;
        case 6:
            if (!cli_num(val, 0, 86400000, &v))
                return cli_usage_error("bad timeout '%s' (milliseconds)", val);
            o->timeout_ms = (int)v;
            break;
        case 7:
            o->file = val;
            break;
        case 8:
            o->context = val;
            break;
        case 9:
            if (!cli_num(val, 1, 1ul << 30, &v))
                return cli_usage_error(
                    "bad max-value '%s' (1..1073741824 bytes)", val);
            o->max_value = v;
            break;
        default:
            return cli_usage_error("unknown option '%s'", a);
        }
    }
    return CLI_RUN;
}

/* Writes b to stdout; false (with a message) when that fails. */
static bool cli_write(const void *p, size_t n)
{
    if ((n > 0 && fwrite(p, 1, n, stdout) != n) || fflush(stdout) != 0) {
        fprintf(stderr, "ringkv-cli: writing the output failed: %s\n",
                strerror(errno));
        return false;
    }
    return true;
}

static int cli_oom(void)
{
    fprintf(stderr, "ringkv-cli: out of memory\n");
    return CLI_EXIT_ERROR;
}

/* err's code for messages and JSON; "resolve" for a host that does not
 * resolve (a client-side error with no wire code). */
static const char *cli_err_code(int err)
{
    return err == RKC_ERESOLVE ? "resolve" : rk_err_code(err);
}

/* Reports err with its message (NULL: the default one), prefixed by what
 * (may be NULL); the definite note, and in JSON the acks count, only for
 * writes. Returns the exit code. */
static int cli_error(const struct cli *o, int err, const char *message,
                     bool definite, bool is_write, uint32_t acks,
                     const char *what)
{
    if (message == NULL || message[0] == 0)
        message = rk_err_msg(err);
    if (o->json) {
        struct wire_buf b;
        wire_buf_init(&b);
        int rc = wire_buf_append(&b, "{\"error\":{\"code\":", 17);
        if (rc == 0)
            rc = rkc_json_append_str(&b, cli_err_code(err),
                                     strlen(cli_err_code(err)));
        if (rc == 0)
            rc = wire_buf_append(&b, ",\"message\":", 11);
        if (rc == 0 && what != NULL) {
            char full[RKC_MAX_MSG + 256];
            snprintf(full, sizeof(full), "%s: %s", what, message);
            rc = rkc_json_append_str(&b, full, strlen(full));
        } else if (rc == 0) {
            rc = rkc_json_append_str(&b, message, strlen(message));
        }
        char tail[64];
        if (is_write)
            snprintf(tail, sizeof(tail), ",\"definite\":%s,\"acks\":%lu}}\n",
                     definite ? "true" : "false", (unsigned long)acks);
        else
            snprintf(tail, sizeof(tail), ",\"definite\":%s}}\n",
                     definite ? "true" : "false");
        if (rc == 0)
            rc = wire_buf_append(&b, tail, strlen(tail));
        if (rc == 0)
            cli_write(b.data, b.len);
        wire_buf_free(&b);
        if (rc != 0)
            return cli_oom();
        return CLI_EXIT_ERROR;
    }
    fprintf(stderr, "ringkv-cli: %s%s%s: %s", what ? what : "",
            what ? ": " : "", cli_err_code(err), message);
    /* Node messages for indefinite writes often say so already. */
    if (is_write && definite)
        fputs(" (definite)", stderr);
    else if (is_write && strstr(message, "may have been applied") != NULL)
        fputs(" (indefinite)", stderr);
    else if (is_write)
        fputs(" (indefinite: the write may have been applied)", stderr);
    fputc('\n', stderr);
    return CLI_EXIT_ERROR;
}

static int cli_result_error(const struct cli *o, const struct rkc_result *res,
                            bool is_write)
{
    return cli_error(o, res->err, res->message, res->definite, is_write,
                     res->acks, NULL);
}

/* Says that value (from what) of len bytes, or more when at_least, exceeds
 * the CLI's max_value. */
static void cli_too_large(const char *what, size_t len, unsigned long max,
                          bool at_least)
{
    fprintf(stderr,
            "ringkv-cli: %s: value of %s%zu bytes exceeds max_value (%lu "
            "bytes; --max-value raises it for a node configured higher)\n",
            what, at_least ? "at least " : "", len, max);
}

/* Reads all of path ("-" = stdin) into b, at most max_value bytes. */
static int cli_read_file(const char *path, struct wire_buf *b,
                         unsigned long max_value)
{
    bool is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "ringkv-cli: cannot open %s: %s\n", path,
                strerror(errno));
        return CLI_EXIT_ERROR;
    }
    int rc = CLI_EXIT_OK;
    for (;;) {
        if (wire_buf_reserve(b, 64 << 10) != 0) {
            rc = cli_oom();
            break;
        }
        size_t n = fread(b->data + b->len, 1, b->cap - b->len, f);
        b->len += n;
        if (b->len > max_value) {
            /* A regular file's size is known; a pipe's only in part. */
            struct stat st;
            bool known = fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode);
            cli_too_large(path, known ? (size_t)st.st_size : b->len, max_value,
                          !known);
            rc = CLI_EXIT_ERROR;
            break;
        }
        if (n == 0) {
            if (ferror(f)) {
                fprintf(stderr, "ringkv-cli: reading %s failed: %s\n", path,
                        strerror(errno));
                rc = CLI_EXIT_ERROR;
            }
            break;
        }
    }
    if (!is_stdin)
        fclose(f);
    return rc;
}

/* Appends ,"context":"<base64>" to b. */
static int cli_json_ctx(struct wire_buf *b, const struct rkc_result *res)
{
    int rc = wire_buf_append(b, "\"context\":\"", 11);
    if (rc == 0)
        rc = rkc_b64_append(b, res->ctx, res->ctx_len);
    if (rc == 0)
        rc = wire_buf_append(b, "\"", 1);
    return rc;
}

static void cli_verbose_ctx(const struct cli *o, const struct rkc_result *res)
{
    if (!o->verbose || o->json)
        return;
    char *s = rkc_b64_encode(res->ctx, res->ctx_len);
    if (s != NULL)
        fprintf(stderr, "context: %s\n", s);
    free(s);
}

static int cli_get(const struct cli *o, struct rkc *c, const char *key)
{
    struct rkc_result res;
    struct wire_buf b;
    wire_buf_init(&b);
    int code = CLI_EXIT_OK;
    int grc = o->local ? rkc_get_local(c, key, strlen(key), &res)
                       : rkc_get(c, key, strlen(key), &res);
    if (grc != 0) {
        code = cli_result_error(o, &res, false);
        goto out;
    }
    if (res.nvalues == 0)
        code = CLI_EXIT_NOT_FOUND;
    if (o->json) {
        int rc = wire_buf_append(&b, "{\"key\":", 7);
        if (rc == 0)
            rc = rkc_json_append_bytes(&b, key, strlen(key));
        if (rc == 0)
            rc = wire_buf_append(&b, ",\"values\":[", 11);
        for (size_t i = 0; rc == 0 && i < res.nvalues; i++) {
            if (i > 0)
                rc = wire_buf_append(&b, ",", 1);
            if (rc == 0)
                rc = rkc_json_append_bytes(&b, res.values[i].data,
                                           res.values[i].len);
        }
        if (rc == 0)
            rc = wire_buf_append(&b, "],", 2);
        if (rc == 0)
            rc = cli_json_ctx(&b, &res);
        if (rc == 0)
            rc = wire_buf_append(&b, "}\n", 2);
        if (rc != 0) {
            code = cli_oom();
            goto out;
        }
    } else {
        for (size_t i = 0; i < res.nvalues; i++) {
            if (wire_buf_append(&b, res.values[i].data, res.values[i].len) !=
                    0 ||
                wire_buf_append(&b, "\n", 1) != 0) {
                code = cli_oom();
                goto out;
            }
        }
        if (res.nvalues == 0)
            fprintf(stderr, "ringkv-cli: %s: not found\n", key);
        cli_verbose_ctx(o, &res);
    }
    if (!cli_write(b.data, b.len))
        code = CLI_EXIT_ERROR;
out:
    wire_buf_free(&b);
    rkc_result_free(&res);
    return code;
}

/* put and del: value is NULL for del; ctx is the decoded --context. */
static int cli_write_op(const struct cli *o, struct rkc *c, const char *key,
                        const struct wire_buf *value, const uint8_t *ctx,
                        size_t ctx_len)
{
    struct rkc_result res;
    int code = CLI_EXIT_OK;
    int rc;
    if (value != NULL)
        rc = rkc_put(c, key, strlen(key), value->data, value->len, ctx, ctx_len,
                     &res);
    else
        rc = rkc_del(c, key, strlen(key), ctx, ctx_len, &res);
    if (rc != 0) {
        code = cli_result_error(o, &res, true);
        goto out;
    }
    if (o->json) {
        struct wire_buf b;
        wire_buf_init(&b);
        rc = wire_buf_append(&b, "{\"ok\":true,", 11);
        if (rc == 0)
            rc = cli_json_ctx(&b, &res);
        if (rc == 0)
            rc = wire_buf_append(&b, "}\n", 2);
        if (rc != 0)
            code = cli_oom();
        else if (!cli_write(b.data, b.len))
            code = CLI_EXIT_ERROR;
        wire_buf_free(&b);
    } else {
        if (!cli_write("OK\n", 3))
            code = CLI_EXIT_ERROR;
        cli_verbose_ctx(o, &res);
    }
out:
    rkc_result_free(&res);
    return code;
}

static int cli_ping(const struct cli *o, struct rkc *c)
{
    int rc = rkc_ping(c);
    if (rc != 0)
        return cli_error(o, rc, NULL, false, false, 0, NULL);
    const char *out = o->json ? "{\"ok\":true}\n" : "PONG\n";
    return cli_write(out, strlen(out)) ? CLI_EXIT_OK : CLI_EXIT_ERROR;
}

static int cli_stats(const struct cli *o, struct rkc *c)
{
    struct rkc_result res;
    struct wire_buf b;
    wire_buf_init(&b);
    int code = CLI_EXIT_OK;
    if (rkc_stats(c, &res) != 0) {
        code = cli_result_error(o, &res, false);
        goto out;
    }
    int rc = o->json ? wire_buf_append(&b, "{\"stats\":{", 10) : 0;
    for (size_t i = 0; rc == 0 && i < res.nstats; i++) {
        const struct rkc_stat *s = &res.stats[i];
        char num[32];
        snprintf(num, sizeof(num), "%lld", (long long)s->ival);
        if (o->json) {
            if (i > 0)
                rc = wire_buf_append(&b, ",", 1);
            if (rc == 0)
                rc = rkc_json_append_str(&b, s->name, strlen(s->name));
            if (rc == 0)
                rc = wire_buf_append(&b, ":", 1);
            if (rc == 0 && s->sval != NULL)
                rc = rkc_json_append_str(&b, s->sval, strlen(s->sval));
            else if (rc == 0)
                rc = wire_buf_append(&b, num, strlen(num));
        } else {
            const char *v = s->sval != NULL ? s->sval : num;
            rc = wire_buf_append(&b, s->name, strlen(s->name));
            if (rc == 0)
                rc = wire_buf_append(&b, " ", 1);
            if (rc == 0)
                rc = wire_buf_append(&b, v, strlen(v));
            if (rc == 0)
                rc = wire_buf_append(&b, "\n", 1);
        }
    }
    if (rc == 0 && o->json)
        rc = wire_buf_append(&b, "}}\n", 3);
    if (rc != 0)
        code = cli_oom();
    else if (!cli_write(b.data, b.len))
        code = CLI_EXIT_ERROR;
out:
    wire_buf_free(&b);
    rkc_result_free(&res);
    return code;
}

/* Appends s, then pad spaces up to width w (no padding when s is longer). */
static int cli_append_col(struct wire_buf *b, const char *s, size_t w)
{
    size_t n = strlen(s);
    int rc = wire_buf_append(b, s, n);
    for (; rc == 0 && n < w; n++)
        rc = wire_buf_append(b, " ", 1);
    return rc;
}

static int cli_members(const struct cli *o, struct rkc *c);

/* members, transfers, join, leave, remove: the node's own text (or JSON).
 * A node without membership (no cluster secret) answers members with the
 * older member table, printed by cli_members. */
static int cli_admin(const struct cli *o, struct rkc *c, const char *cmd,
                     const char *arg)
{
    struct rkc_result res;
    int rc = rkc_admin(c, cmd, arg, o->json, &res);
    if (rc == RK_EUNKNOWN_OP && strcmp(cmd, "members") == 0) {
        rkc_result_free(&res);
        return cli_members(o, c);
    }
    if (rc != 0) {
        int code = cli_error(o, rc, res.message, res.definite, false, 0, NULL);
        rkc_result_free(&res);
        return code;
    }
    fputs(res.text ? res.text : "", stdout);
    rkc_result_free(&res);
    return CLI_EXIT_OK;
}

/* members: an aligned table (header, then one row per member; "*" marks the
 * node answering), or {"members":[{"id":..,"addr":..,"up":..,"self":..}]}. */
static int cli_members(const struct cli *o, struct rkc *c)
{
    struct rkc_result res;
    struct wire_buf b;
    wire_buf_init(&b);
    int code = CLI_EXIT_OK;
    if (rkc_members(c, &res) != 0) {
        code = cli_result_error(o, &res, false);
        goto out;
    }
    int rc = 0;
    if (o->json) {
        rc = wire_buf_append(&b, "{\"members\":[", 12);
        for (size_t i = 0; rc == 0 && i < res.nmembers; i++) {
            const struct rkc_member *m = &res.members[i];
            char flags[48];
            snprintf(flags, sizeof(flags), ",\"up\":%s,\"self\":%s}",
                     m->up ? "true" : "false", m->self ? "true" : "false");
            if (i > 0)
                rc = wire_buf_append(&b, ",", 1);
            if (rc == 0)
                rc = wire_buf_append(&b, "{\"id\":", 6);
            if (rc == 0)
                rc = rkc_json_append_str(&b, m->id, strlen(m->id));
            if (rc == 0)
                rc = wire_buf_append(&b, ",\"addr\":", 8);
            if (rc == 0)
                rc = rkc_json_append_str(&b, m->addr, strlen(m->addr));
            if (rc == 0)
                rc = wire_buf_append(&b, flags, strlen(flags));
        }
        if (rc == 0)
            rc = wire_buf_append(&b, "]}\n", 3);
    } else {
        size_t wid = strlen("ID"), waddr = strlen("ADDR");
        for (size_t i = 0; i < res.nmembers; i++) {
            size_t n = strlen(res.members[i].id);
            wid = n > wid ? n : wid;
            n = strlen(res.members[i].addr);
            waddr = n > waddr ? n : waddr;
        }
        rc = cli_append_col(&b, "ID", wid + 2);
        if (rc == 0)
            rc = cli_append_col(&b, "ADDR", waddr + 2);
        if (rc == 0)
            rc = wire_buf_append(&b, "STATE\n", 6);
        for (size_t i = 0; rc == 0 && i < res.nmembers; i++) {
            const struct rkc_member *m = &res.members[i];
            rc = cli_append_col(&b, m->id, wid + 2);
            if (rc == 0)
                rc = cli_append_col(&b, m->addr, waddr + 2);
            const char *state = m->up ? "up" : "down";
            if (rc == 0 && m->self) /* no trailing blanks on other rows */
                rc = cli_append_col(&b, state, 6);
            else if (rc == 0)
                rc = wire_buf_append(&b, state, strlen(state));
            if (rc == 0)
                rc = wire_buf_append(&b, m->self ? "*\n" : "\n",
                                     m->self ? 2 : 1);
        }
    }
    if (rc != 0)
        code = cli_oom();
    else if (!cli_write(b.data, b.len))
        code = CLI_EXIT_ERROR;
out:
    wire_buf_free(&b);
    rkc_result_free(&res);
    return code;
}

/* ring: "P: id id id" per partition, or {"q":..,"n":..,"members":[ids],
 * "partitions":[[i,j,k],...]} with indices into members. Padding entries
 * (RKC_NO_MEMBER) are left out, so a list may be shorter than n. */
static int cli_ring(const struct cli *o, struct rkc *c)
{
    struct rkc_result res;
    struct wire_buf b;
    wire_buf_init(&b);
    int code = CLI_EXIT_OK;
    if (rkc_ring(c, &res) != 0) {
        code = cli_result_error(o, &res, false);
        goto out;
    }
    char num[64];
    int rc = 0;
    if (o->json) {
        snprintf(num, sizeof(num), "{\"q\":%zu,\"n\":%zu,\"members\":[", res.q,
                 res.nval);
        rc = wire_buf_append(&b, num, strlen(num));
        for (size_t i = 0; rc == 0 && i < res.nmembers; i++) {
            if (i > 0)
                rc = wire_buf_append(&b, ",", 1);
            if (rc == 0)
                rc = rkc_json_append_str(&b, res.members[i].id,
                                         strlen(res.members[i].id));
        }
        if (rc == 0)
            rc = wire_buf_append(&b, "],\"partitions\":[", 16);
    }
    for (size_t p = 0; rc == 0 && p < res.q; p++) {
        int n = o->json ? snprintf(num, sizeof(num), "%s[", p > 0 ? "," : "")
                        : snprintf(num, sizeof(num), "%zu:", p);
        rc = wire_buf_append(&b, num, (size_t)n);
        bool first = true;
        for (size_t j = 0; rc == 0 && j < res.nval; j++) {
            uint16_t m = res.pref[p * res.nval + j];
            if (m >= res.nmembers) /* RKC_NO_MEMBER padding */
                continue;
            if (o->json) {
                n = snprintf(num, sizeof(num), "%s%u", first ? "" : ",",
                             (unsigned)m);
                rc = wire_buf_append(&b, num, (size_t)n);
            } else {
                rc = wire_buf_append(&b, " ", 1);
                if (rc == 0)
                    rc = wire_buf_append(&b, res.members[m].id,
                                         strlen(res.members[m].id));
            }
            first = false;
        }
        if (rc == 0)
            rc = wire_buf_append(&b, o->json ? "]" : "\n", 1);
    }
    if (rc == 0 && o->json)
        rc = wire_buf_append(&b, "]}\n", 3);
    if (rc != 0)
        code = cli_oom();
    else if (!cli_write(b.data, b.len))
        code = CLI_EXIT_ERROR;
out:
    wire_buf_free(&b);
    rkc_result_free(&res);
    return code;
}

int main(int argc, char **argv)
{
    struct cli o = {.host = "127.0.0.1",
                    .port = RKC_DEFAULT_PORT,
                    .timeout_ms = CLI_DEFAULT_TIMEOUT_MS,
                    .max_value = CLI_DEFAULT_MAX_VALUE};
    int code = cli_parse(&o, argc, argv);
    if (code != CLI_RUN)
        return code;
    if (o.npos == 0) {
        fputs(cli_usage, stderr);
        return CLI_EXIT_ERROR;
    }

    const char *cmd = o.pos[0];
    int want; /* positional arguments after the command */
    bool is_put = strcmp(cmd, "put") == 0;
    if (is_put)
        want = o.file != NULL ? 1 : 2;
    else if (strcmp(cmd, "get") == 0 || strcmp(cmd, "del") == 0)
        want = 1;
    else if (strcmp(cmd, "ping") == 0 || strcmp(cmd, "stats") == 0 ||
             strcmp(cmd, "members") == 0 || strcmp(cmd, "ring") == 0 ||
             strcmp(cmd, "transfers") == 0 || strcmp(cmd, "leave") == 0)
        want = 0;
    else if (strcmp(cmd, "join") == 0 || strcmp(cmd, "remove") == 0)
        want = 1;
    else
        return cli_usage_error("unknown command '%s'", cmd);
    if (o.npos - 1 != want)
        return cli_usage_error("wrong number of arguments for '%s'", cmd);
    if (o.file != NULL && !is_put)
        return cli_usage_error("%s", "--file is only for put");
    if (o.local && strcmp(cmd, "get") != 0)
        return cli_usage_error("%s", "--local is only for get");
    if (o.context != NULL && !is_put && strcmp(cmd, "del") != 0)
        return cli_usage_error("%s", "--context is only for put and del");
    bool is_admin = strcmp(cmd, "transfers") == 0 ||
                    strcmp(cmd, "leave") == 0 || strcmp(cmd, "join") == 0 ||
                    strcmp(cmd, "remove") == 0;
    if (want > 0 && o.pos[1][0] == 0)
        return cli_usage_error("%s", is_admin ? "the argument must not be empty"
                                              : "the key must not be empty");

    struct wire_buf value;
    wire_buf_init(&value);
    uint8_t *ctx = NULL;
    size_t ctx_len = 0;
    if (o.context != NULL) {
        const char *why = "";
        int rc =
            rkc_b64_decode(o.context, strlen(o.context), &ctx, &ctx_len, &why);
        if (rc == -ENOMEM)
            return cli_oom();
        if (rc != 0) {
            fprintf(stderr, "ringkv-cli: --context is not valid base64: %s\n",
                    why);
            return CLI_EXIT_ERROR;
        }
    }
    if (is_put && o.file != NULL) {
        code = cli_read_file(o.file, &value, o.max_value);
        if (code != CLI_EXIT_OK)
            goto out;
    } else if (is_put && strlen(o.pos[2]) > o.max_value) {
        cli_too_large(o.pos[1], strlen(o.pos[2]), o.max_value, false);
        code = CLI_EXIT_ERROR;
        goto out;
    } else if (is_put &&
               wire_buf_append(&value, o.pos[2], strlen(o.pos[2])) != 0) {
        code = cli_oom();
        goto out;
    }

    struct rkc *c = NULL;
    int rc = rkc_connect(&c, o.host, o.port, o.timeout_ms);
    if (rc == RKC_ERESOLVE) {
        char what[300];
        snprintf(what, sizeof(what), "cannot resolve host '%s'", o.host);
        if (o.json) {
            code = cli_error(&o, rc, what, true, false, 0, NULL);
        } else {
            fprintf(stderr, "ringkv-cli: %s\n", what);
            code = CLI_EXIT_ERROR;
        }
        goto out;
    }
    if (rc != 0) {
        char what[300];
        snprintf(what, sizeof(what), "cannot connect to %s:%u", o.host,
                 (unsigned)o.port);
        code = cli_error(&o, rc, NULL, true, false, 0, what);
        goto out;
    }
    rkc_set_quorum(c, o.r, o.w);
    if (is_put)
        code = cli_write_op(&o, c, o.pos[1], &value, ctx, ctx_len);
    else if (strcmp(cmd, "del") == 0)
        code = cli_write_op(&o, c, o.pos[1], NULL, ctx, ctx_len);
    else if (strcmp(cmd, "get") == 0)
        code = cli_get(&o, c, o.pos[1]);
    else if (strcmp(cmd, "ping") == 0)
        code = cli_ping(&o, c);
    else if (is_admin || strcmp(cmd, "members") == 0)
        code = cli_admin(&o, c, cmd, want > 0 ? o.pos[1] : "");
    else if (strcmp(cmd, "ring") == 0)
        code = cli_ring(&o, c);
    else
        code = cli_stats(&o, c);
    rkc_close(c);
out:
    free(ctx);
    wire_buf_free(&value);
    return code;
}
