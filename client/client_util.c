/*
 * client_util.c - base64, UTF-8 validation and JSON string escaping for the
 * client tools (see client_util.h).
 *
 * Design: everything appends to a struct wire_buf so the CLI builds a whole
 * JSON document in memory and writes it once. The decoder is strict (only
 * canonical padded base64) so a mistyped context is rejected with a reason
 * instead of turning into different bytes that the server would also
 * reject, less clearly.
 *
 * Invariants: functions that fail with -ENOMEM leave the buffer's length as
 * it was before the call.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_util.h"

static const char rkc_b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* ---- base64 -------------------------------------------------------------- */

size_t rkc_b64_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

static void b64_write(char *dst, const uint8_t *p, size_t n)
{
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *dst++ = rkc_b64_alphabet[v >> 18];
        *dst++ = rkc_b64_alphabet[(v >> 12) & 63];
        *dst++ = rkc_b64_alphabet[(v >> 6) & 63];
        *dst++ = rkc_b64_alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        *dst++ = rkc_b64_alphabet[v >> 18];
        *dst++ = rkc_b64_alphabet[(v >> 12) & 63];
        *dst++ = '=';
        *dst++ = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        *dst++ = rkc_b64_alphabet[v >> 18];
        *dst++ = rkc_b64_alphabet[(v >> 12) & 63];
        *dst++ = rkc_b64_alphabet[(v >> 6) & 63];
        *dst++ = '=';
    }
}

int rkc_b64_append(struct wire_buf *b, const void *p, size_t n)
{
    if (n > (SIZE_MAX - 2) / 4 * 3)
        return -ENOMEM;
    size_t len = rkc_b64_len(n);
    if (len == 0)
        return 0;
    int rc = wire_buf_reserve(b, len);
    if (rc != 0)
        return rc;
    b64_write((char *)b->data + b->len, p, n);
    b->len += len;
    return 0;
}

char *rkc_b64_encode(const void *p, size_t n)
{
    if (n > (SIZE_MAX - 3) / 4 * 3)
        return NULL;
    char *s = malloc(rkc_b64_len(n) + 1);
    if (s == NULL)
        return NULL;
    b64_write(s, p, n);
    s[rkc_b64_len(n)] = 0;
    return s;
}

/* 0..63, or -EINVAL for a character outside the alphabet. */
static int b64_val(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+')
        return 62;
    if (ch == '/')
        return 63;
    return -EINVAL;
}

int rkc_b64_decode(const char *s, size_t n, uint8_t **out, size_t *out_len,
                   const char **why)
{
    const char *w = NULL;
    uint8_t *buf = NULL;
    *out = NULL;
    *out_len = 0;
    if (n % 4 != 0) {
        w = "length is not a multiple of 4";
        goto bad;
    }
    size_t pad = 0;
    if (n > 0 && s[n - 1] == '=')
        pad = n > 1 && s[n - 2] == '=' ? 2 : 1;
    buf = malloc(n / 4 * 3 + 1);
    if (buf == NULL)
        return -ENOMEM;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        bool last = i + 4 == n;
        size_t chars = last ? 4 - pad : 4;
        uint32_t v = 0;
        for (size_t k = 0; k < 4; k++) {
            unsigned char ch = (unsigned char)s[i + k];
            int d = 0;
            if (k < chars) {
                d = b64_val(ch);
                if (d < 0) {
                    w = ch == '=' ? "padding '=' before the end"
                                  : "character outside the base64 alphabet";
                    goto bad;
                }
            }
            v = v << 6 | (uint32_t)d;
        }
        if ((pad == 1 && last && (v & 0xff) != 0) ||
            (pad == 2 && last && (v & 0xffff) != 0)) {
            w = "non-zero bits in the padding";
            goto bad;
        }
        buf[o++] = (uint8_t)(v >> 16);
        if (chars > 2)
            buf[o++] = (uint8_t)(v >> 8);
        if (chars > 3)
            buf[o++] = (uint8_t)v;
    }
    *out = buf;
    *out_len = o;
    return 0;

bad:
    free(buf);
    if (why != NULL)
        *why = w;
    return -EINVAL;
}

/* ---- UTF-8 --------------------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence at p[0..n), or 0 if none. */
static size_t utf8_seq(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    if (c < 0x80)
        return 1;
    size_t len;
    uint8_t lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        else if (c == 0xed)
            hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90; /* overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* above U+10FFFF */
    } else {
        return 0;
    }
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    }
    return len;
}

bool rkc_utf8_valid(const void *p, size_t n)
{
    const uint8_t *s = p;
    size_t i = 0;
    while (i < n) {
        size_t l = utf8_seq(s + i, n - i);
        if (l == 0)
            return false;
        i += l;
    }
    return true;
}

/* ---- JSON ---------------------------------------------------------------- */

static int json_str(struct wire_buf *b, const uint8_t *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (wire_buf_append(b, "\"", 1) != 0)
        return -ENOMEM;
    size_t i = 0;
    while (i < n) {
        size_t l = utf8_seq(s + i, n - i);
        char esc[7];
        const void *out = esc;
        size_t olen = 2;
        esc[0] = '\\';
        if (l == 0) {
            out = "\xef\xbf\xbd"; /* U+FFFD */
            olen = 3;
            l = 1;
        } else if (l > 1) {
            out = s + i;
            olen = l;
        } else if (s[i] == '"' || s[i] == '\\') {
            esc[1] = (char)s[i];
        } else if (s[i] == '\n') {
            esc[1] = 'n';
        } else if (s[i] == '\r') {
            esc[1] = 'r';
        } else if (s[i] == '\t') {
            esc[1] = 't';
        } else if (s[i] == '\b') {
            esc[1] = 'b';
        } else if (s[i] == '\f') {
            esc[1] = 'f';
        } else if (s[i] < 0x20) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[s[i] >> 4];
            esc[5] = hex[s[i] & 15];
            olen = 6;
        } else {
            out = s + i;
            olen = 1;
        }
        if (wire_buf_append(b, out, olen) != 0)
            return -ENOMEM;
        i += l;
    }
    return wire_buf_append(b, "\"", 1);
}

int rkc_json_append_str(struct wire_buf *b, const void *p, size_t n)
{
    size_t before = b->len;
    int rc = json_str(b, p, n);
    if (rc != 0)
        b->len = before;
    return rc;
}

int rkc_json_append_bytes(struct wire_buf *b, const void *p, size_t n)
{
    if (rkc_utf8_valid(p, n))
        return rkc_json_append_str(b, p, n);
    size_t before = b->len;
    int rc = wire_buf_append(b, "{\"base64\":\"", 11);
    if (rc == 0)
        rc = rkc_b64_append(b, p, n);
    if (rc == 0)
        rc = wire_buf_append(b, "\"}", 2);
    if (rc != 0)
        b->len = before;
    return rc;
}
