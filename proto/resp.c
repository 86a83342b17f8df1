/*
 * resp.c - RESP2 command parser and reply encoders (see resp.h).
 *
 * Design: the parser keeps no state between calls. Each call walks the
 * command at the start of the buffer from scratch:
 *
 *   multibulk:  *<argc>\r\n  then argc times  $<len>\r\n<len bytes>\r\n
 *   inline:     word [ ' ' | '\t' word ]... \n        (\r before \n dropped)
 *
 * and returns either the bytes the whole command occupies, 0 when it has not
 * all arrived, or an error. Bulk payloads are skipped by their declared
 * length, never scanned, so re-parsing after each read costs only the
 * headers.
 *
 * Invariants:
 *   - Every length or count is compared with its limit as soon as its
 *     header line is complete (a header never has more than RESP_MAX_DIGITS
 *     digits, so waiting for its CRLF costs nothing), before its payload
 *     arrives; no length exceeds RESP_MAX_LEN, so no arithmetic overflows.
 *   - A multibulk command refused for a limit reports where its rest lies,
 *     so the server can answer the error and discard the rest (resp_skip)
 *     instead of hanging up on a client that only sent too much.
 *   - Every prefix of a valid command returns 0: no byte is judged before it
 *     is present.
 *   - Nothing is read outside buf[0..len); argv[i] is written only for
 *     i < lim->max_args.
 *   - Encoders reserve their whole output first, so on -ENOMEM the buffer is
 *     unchanged.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "proto/errors.h"
#include "proto/resp.h"

/* Digits allowed in a count or length (leading zeros included): enough for
 * any uint32_t, small enough that a header line stays tiny. */
#define RESP_MAX_DIGITS 20
/* No length or count may exceed this (and so no arithmetic overflows). */
#define RESP_MAX_LEN (1ull << 60)

static int reply_fail(const char **why, int err, const char *msg)
{
    if (why != NULL)
        *why = msg;
    return err;
}

/*
 * Reads "<digits>\r\n" starting at buf[*pos] (just after the '*' or '$').
 * Returns 1 with *val set and *pos past the CRLF, 0 when more bytes are
 * needed, or an error: RK_EPROTO for anything that is not a non-negative
 * decimal number followed by CRLF, RK_ETOO_LARGE for a number too large to
 * mean anything (over 2^60: no command is that long). Limits are the
 * caller's, once the whole header is there.
 */
static int read_len(const uint8_t *buf, size_t len, size_t *pos, uint64_t *val,
                    const char **why)
{
    size_t i = *pos;
    uint64_t v = 0;
    unsigned ndigits = 0;

    for (;; i++) {
        if (i >= len)
            return 0;
        uint8_t c = buf[i];
        if (c >= '0' && c <= '9') {
            if (++ndigits > RESP_MAX_DIGITS)
                return reply_fail(why, RK_EPROTO, "length has too many digits");
            v = v * 10 + (uint64_t)(c - '0');
            if (v > RESP_MAX_LEN)
                return reply_fail(why, RK_ETOO_LARGE, "length too large");
            continue;
        }
        if (c == '-')
            return reply_fail(why, RK_EPROTO, "negative length");
        if (c != '\r' || ndigits == 0)
            return reply_fail(why, RK_EPROTO, "invalid length");
        break;
    }
    /* buf[i] == '\r' */
    if (i + 1 >= len)
        return 0;
    if (buf[i + 1] != '\n')
        return reply_fail(why, RK_EPROTO, "expected \\r\\n after length");
    *pos = i + 2;
    *val = v;
    return 1;
}

/* Refuses a multibulk command whose rest can be skipped from pos on. */
static int refuse_input(struct resp_cmd *cmd, size_t pos, uint64_t bytes,
                        uint64_t args, uint64_t too_big, const char **why,
                        const char *msg)
{
    cmd->skip_from = pos;
    cmd->skip.bytes = bytes;
    cmd->skip.args = args;
    cmd->too_big = too_big;
    return reply_fail(why, RK_ETOO_LARGE, msg);
}

static int parse_multibulk(const uint8_t *buf, size_t len,
                           const struct resp_limits *lim, struct resp_cmd *cmd,
                           const char **why)
{
    size_t pos = 1; /* past '*' */
    uint64_t argc;
    int rc = read_len(buf, len, &pos, &argc, why);
    if (rc <= 0)
        return rc;
    if (argc > lim->max_args)
        return refuse_input(cmd, pos, 0, argc, argc, why, "too many arguments");

    for (uint64_t i = 0; i < argc; i++) {
        if (pos >= len)
            return 0;
        if (buf[pos] == '*') {
            /* An array inside a command: not a command, but its extent is
             * known, so the stream can go on past it. */
            cmd->skip_from = pos;
            cmd->skip = (struct resp_skip){.args = argc - i, .bytes = 0};
            return reply_fail(why, RK_EPROTO, "expected '$', got '*'");
        }
        if (buf[pos] != '$')
            return reply_fail(why, RK_EPROTO, "expected '$' before argument");
        pos++;
        uint64_t n;
        rc = read_len(buf, len, &pos, &n, why);
        if (rc <= 0)
            return rc;
        if (n > lim->max_bulk)
            return refuse_input(cmd, pos, n + 2, argc - i - 1, n, why,
                                "argument too long");
        /* The payload and its CRLF: judge the terminator bytes present. */
        if (len - pos <= n)
            return 0;
        size_t end = pos + (size_t)n;
        if (buf[end] != '\r')
            return reply_fail(why, RK_EPROTO,
                              "argument not followed by \\r\\n");
        if (end + 1 >= len)
            return 0;
        if (buf[end + 1] != '\n')
            return reply_fail(why, RK_EPROTO,
                              "argument not followed by \\r\\n");
        cmd->argv[i].p = buf + pos;
        cmd->argv[i].len = (uint32_t)n;
        pos = end + 2;
    }
    cmd->argc = (uint32_t)argc;
    if (pos > INT32_MAX)
        return reply_fail(why, RK_ETOO_LARGE, "command too long");
    return (int)pos;
}

int resp_skip(const uint8_t *buf, size_t len, struct resp_skip *st,
              size_t *consumed, const char **why)
{
    size_t pos = 0;

    for (;;) {
        if (st->bytes > 0) {
            size_t take = len - pos;
            if (take > st->bytes)
                take = (size_t)st->bytes;
            pos += take;
            st->bytes -= take;
            if (st->bytes > 0)
                break; /* every byte consumed */
            continue;
        }
        if (st->args == 0 || pos >= len)
            break;
        if (buf[pos] != '$' && buf[pos] != '*') {
            *consumed = pos;
            return reply_fail(why, RK_EPROTO, "expected '$' before argument");
        }
        size_t hdr = pos + 1;
        uint64_t n;
        int rc = read_len(buf, len, &hdr, &n, why);
        if (rc < 0) {
            *consumed = pos;
            return rc;
        }
        if (rc == 0)
            break; /* the header is not all here: keep its bytes */
        if (buf[pos] == '*') {
            /* A nested array: its elements take its place. */
            if (n > RESP_MAX_LEN - st->args) {
                *consumed = pos;
                return reply_fail(why, RK_EPROTO, "array too large");
            }
            st->args = st->args - 1 + n;
        } else {
            st->bytes = n + 2;
            st->args--;
        }
        pos = hdr;
    }
    *consumed = pos;
    return 0;
}

static bool is_blank(uint8_t c)
{
    return c == ' ' || c == '\t';
}

static int parse_inline(const uint8_t *buf, size_t len,
                        const struct resp_limits *lim, struct resp_cmd *cmd,
                        const char **why)
{
    /* A line of max_inline bytes may be followed by "\r\n": look no further
     * than that for the '\n'. */
    size_t scan = len;
    if ((uint64_t)lim->max_inline + 2 < scan)
        scan = (size_t)lim->max_inline + 2;
    const uint8_t *nl = memchr(buf, '\n', scan);
    if (nl == NULL) {
        if (len >= (uint64_t)lim->max_inline + 2)
            return reply_fail(why, RK_ETOO_LARGE, "inline command too long");
        return 0;
    }
    size_t consumed = (size_t)(nl - buf) + 1;
    size_t end = (size_t)(nl - buf);
    if (end > 0 && buf[end - 1] == '\r')
        end--;
    if (end > lim->max_inline)
        return reply_fail(why, RK_ETOO_LARGE, "inline command too long");
    if (consumed > INT32_MAX)
        return reply_fail(why, RK_ETOO_LARGE, "inline command too long");

    uint32_t argc = 0;
    size_t i = 0;
    while (i < end) {
        while (i < end && is_blank(buf[i]))
            i++;
        if (i == end)
            break;
        size_t start = i;
        while (i < end && !is_blank(buf[i]))
            i++;
        if (argc >= lim->max_args)
            return reply_fail(why, RK_ETOO_LARGE, "too many arguments");
        cmd->argv[argc].p = buf + start;
        cmd->argv[argc].len = (uint32_t)(i - start);
        argc++;
    }
    cmd->argc = argc;
    return (int)consumed;
}

int resp_parse(const uint8_t *buf, size_t len, const struct resp_limits *lim,
               struct resp_cmd *cmd, const char **why)
{
    cmd->argc = 0;
    cmd->skip_from = 0;
    cmd->skip = (struct resp_skip){0, 0};
    cmd->too_big = 0;
    if (len == 0)
        return 0;
    if (buf[0] == '*')
        return parse_multibulk(buf, len, lim, cmd, why);
    return parse_inline(buf, len, lim, cmd, why);
}

bool resp_arg_is(const struct resp_arg *a, const char *word)
{
    size_t n = strlen(word);
    if (a->len != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        uint8_t x = a->p[i];
        uint8_t y = (uint8_t)word[i];
        if (x >= 'A' && x <= 'Z')
            x = (uint8_t)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z')
            y = (uint8_t)(y - 'A' + 'a');
        if (x != y)
            return false;
    }
    return true;
}

/* ---- encoders ----------------------------------------------------------- */

/* Appends prefix, s with CR and LF replaced by spaces, and CRLF. */
static int parse_line(struct wire_buf *b, char prefix, const char *s)
{
    size_t n = strlen(s);
    if (wire_buf_reserve(b, n + 3) != 0)
        return -ENOMEM;
    uint8_t *out = b->data + b->len;
    out[0] = (uint8_t)prefix;
    for (size_t i = 0; i < n; i++)
        out[1 + i] = (s[i] == '\r' || s[i] == '\n') ? ' ' : (uint8_t)s[i];
    out[n + 1] = '\r';
    out[n + 2] = '\n';
    b->len += n + 3;
    return 0;
}

/* Appends prefix, v in decimal, CRLF. */
static int parse_number(struct wire_buf *b, char prefix, int64_t v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof(tmp), "%c%" PRId64 "\r\n", prefix, v);
    assert(n > 0 && (size_t)n < sizeof(tmp));
    if (wire_buf_append(b, tmp, (size_t)n) != 0)
        return -ENOMEM;
    return 0;
}

int resp_simple(struct wire_buf *b, const char *s)
{
    return parse_line(b, '+', s);
}

int resp_error(struct wire_buf *b, const char *msg)
{
    return parse_line(b, '-', msg);
}

int resp_int(struct wire_buf *b, int64_t v)
{
    return parse_number(b, ':', v);
}

int resp_bulk(struct wire_buf *b, const void *p, size_t n)
{
    char hdr[32];
    int h = snprintf(hdr, sizeof(hdr), "$%zu\r\n", n);
    assert(h > 0 && (size_t)h < sizeof(hdr));
    if (n > SIZE_MAX - (size_t)h - 2)
        return -ENOMEM;
    if (wire_buf_reserve(b, (size_t)h + n + 2) != 0)
        return -ENOMEM;
    memcpy(b->data + b->len, hdr, (size_t)h);
    b->len += (size_t)h;
    if (n > 0) {
        memcpy(b->data + b->len, p, n);
        b->len += n;
    }
    memcpy(b->data + b->len, "\r\n", 2);
    b->len += 2;
    return 0;
}

int resp_null(struct wire_buf *b)
{
    if (wire_buf_append(b, "$-1\r\n", 5) != 0)
        return -ENOMEM;
    return 0;
}

int resp_array(struct wire_buf *b, int64_t n)
{
    assert(n >= -1);
    return parse_number(b, '*', n);
}
