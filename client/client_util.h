/*
 * client_util.h - text helpers for the client tools: base64 (RFC 4648,
 * standard alphabet, with padding), UTF-8 validation and JSON string
 * output. Pure functions, no I/O. Used by ringkv-cli to show binary values
 * and contexts; output goes into a struct wire_buf (proto/wire.h).
 */
#ifndef RINGKV_CLIENT_UTIL_H
#define RINGKV_CLIENT_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/wire.h"

/* Length of the base64 text for n bytes, without the NUL. */
size_t rkc_b64_len(size_t n);

/* Appends the base64 of p[0..n) to b (no NUL). Returns 0 or -ENOMEM (b
 * unchanged). */
int rkc_b64_append(struct wire_buf *b, const void *p, size_t n);

/* The base64 of p[0..n) as a NUL-terminated string the caller frees, or
 * NULL when memory runs out. */
char *rkc_b64_encode(const void *p, size_t n);

/*
 * Decodes s[0..n), which must be canonical padded base64: length a multiple
 * of 4, only the standard alphabet, '=' only as the last one or two
 * characters, unused bits of the last character zero. No whitespace.
 *
 * On success returns 0, *out is a malloc'd buffer the caller frees (never
 * NULL, even for empty input) and *out_len its length. On failure *out is
 * NULL and it returns -EINVAL with *why (if why is not NULL) naming the
 * problem in a static string, or -ENOMEM.
 */
int rkc_b64_decode(const char *s, size_t n, uint8_t **out, size_t *out_len,
                   const char **why);

/* True when p[0..n) is well-formed UTF-8: no overlong forms, no surrogates,
 * nothing above U+10FFFF, no truncated sequence. */
bool rkc_utf8_valid(const void *p, size_t n);

/* Appends p[0..n) as a quoted JSON string: '"' and '\\' escaped, control
 * characters as \n, \t, ... or \u00XX, other bytes as they are; invalid
 * UTF-8 bytes become U+FFFD each. Returns 0 or -ENOMEM. */
int rkc_json_append_str(struct wire_buf *b, const void *p, size_t n);

/* Appends p[0..n) losslessly: a JSON string when it is valid UTF-8, else
 * {"base64":"..."}. Returns 0 or -ENOMEM. */
int rkc_json_append_bytes(struct wire_buf *b, const void *p, size_t n);

#endif
