/*
 * bench_resp.c - the RESP2 reply decoder of ringkv-bench --resp (bench.h):
 * the replies SET and GET get, from ringkv's RESP port or a redis-server.
 *
 *   +<line>\r\n | -<line>\r\n | :<int>\r\n | $<len>\r\n<len bytes>\r\n
 *   | $-1\r\n | *-1\r\n
 *
 * The server is untrusted: a header line is at most BENCH_RESP_MAX_LINE
 * bytes, lengths are parsed with overflow checks and bounded by max_bulk
 * before waiting for the payload, and the payload must end in CRLF.
 */
#include <errno.h>
#include <string.h>

#include "client/bench.h"
#include "proto/errors.h"

#define BENCH_RESP_MAX_LINE 4096

/* Finds CRLF in buf[0..n): its offset, or -1 when not (yet) there. */
static long find_crlf(const uint8_t *buf, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++)
        if (buf[i] == '\r' && buf[i + 1] == '\n')
            return (long)i;
    return -1;
}

/* Parses a decimal integer line p[0..len). Returns 0 or RK_EPROTO. */
static int parse_int(const uint8_t *p, size_t len, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (len > 0 && p[0] == '-') {
        neg = true;
        i = 1;
    }
    if (i == len || len - i > 18)
        return RK_EPROTO;
    int64_t v = 0;
    for (; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return RK_EPROTO;
        v = v * 10 + (p[i] - '0');
    }
    *out = neg ? -v : v;
    return 0;
}

int bench_resp_reply(const uint8_t *buf, size_t n, size_t max_bulk,
                     struct bench_resp_reply *out)
{
    if (n == 0)
        return 0;
    size_t scan = n < BENCH_RESP_MAX_LINE ? n : BENCH_RESP_MAX_LINE;
    long eol = find_crlf(buf, scan);
    if (eol < 0)
        return n >= BENCH_RESP_MAX_LINE ? RK_EPROTO : 0;
    if (eol == 0)
        return RK_EPROTO; /* no type byte */
    const uint8_t *line = buf + 1;
    size_t llen = (size_t)eol - 1;
    size_t hdr = (size_t)eol + 2;
    int64_t v = 0;
    memset(out, 0, sizeof(*out));
    switch (buf[0]) {
    case '+':
    case '-':
        out->type = buf[0] == '+' ? BENCH_RESP_SIMPLE : BENCH_RESP_ERROR;
        out->p = line;
        out->len = llen;
        return (int)hdr;
    case ':':
        if (parse_int(line, llen, &v) != 0)
            return RK_EPROTO;
        out->type = BENCH_RESP_INT;
        out->ival = v;
        return (int)hdr;
    case '*':
        if (parse_int(line, llen, &v) != 0 || v != -1)
            return RK_EPROTO;
        out->type = BENCH_RESP_NIL;
        return (int)hdr;
    case '$':
        if (parse_int(line, llen, &v) != 0 || v < -1 ||
            (uint64_t)(v < 0 ? 0 : v) > max_bulk ||
            (uint64_t)(v < 0 ? 0 : v) > (uint64_t)(BENCH_MAX_VALUE * 2))
            return RK_EPROTO;
        if (v == -1) {
            out->type = BENCH_RESP_NIL;
            return (int)hdr;
        }
        if (n < hdr + (size_t)v + 2)
            return 0;
        if (buf[hdr + (size_t)v] != '\r' || buf[hdr + (size_t)v + 1] != '\n')
            return RK_EPROTO;
        out->type = BENCH_RESP_BULK;
        out->p = buf + hdr;
        out->len = (size_t)v;
        return (int)(hdr + (size_t)v + 2);
    default:
        return RK_EPROTO;
    }
}
