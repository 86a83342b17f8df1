/*
 * errors.h - ringkv's error codes, shared by the node, the wire codec and the
 * client.
 *
 * Convention (STYLE.md): functions return int, 0 is success, negative is
 * failure. System errors are -errno (equal to libuv's UV_E* on Unix, so they
 * pass through unchanged). Project errors live in their own range below
 * RK_ERR_BASE so they never collide with an errno.
 *
 * Each project error has a stable wire name (the "code" string of an error
 * response, see docs/protocol.md) and a default message. The table is the one
 * source of both.
 */
#ifndef RINGKV_ERRORS_H
#define RINGKV_ERRORS_H

#include <stddef.h>

#define RK_ERR_BASE (-30000)

/* X(NAME, wire code, message) */
#define RK_ERR_MAP(X)                                                          \
    X(NOT_FOUND, "not_found", "key not found")                                 \
    X(BAD_REQUEST, "bad_request", "malformed request")                         \
    X(UNKNOWN_OP, "unknown_op", "unknown operation")                           \
    X(TOO_LARGE, "too_large",                                                  \
      "frame, key or value exceeds a configured limit")                        \
    X(BAD_CONTEXT, "bad_context", "causal context is malformed")               \
    X(BAD_QUORUM, "bad_quorum", "r or w outside 1..n")                         \
    X(SIBLING_LIMIT, "sibling_limit",                                          \
      "too many siblings: read the key and write back with its context")       \
    X(UNAVAILABLE, "unavailable", "not enough replicas reachable")             \
    X(CLOCK_SKEW, "clock_skew",                                                \
      "a timestamp is too far ahead of this node's clock")                     \
    X(TIMEOUT, "timeout", "request timed out before the quorum answered")      \
    X(OVERLOADED, "overloaded", "server is overloaded")                        \
    X(SHUTTING_DOWN, "shutting_down", "node is shutting down")                 \
    X(STORAGE, "storage", "storage engine error")                              \
    X(CORRUPT, "corrupt", "stored data is corrupt")                            \
    X(LOCKED, "locked", "data directory is in use by another process")         \
    X(CONFIG, "config", "invalid configuration")                               \
    X(PROTO, "protocol", "peer violated the protocol")                         \
    X(FORBIDDEN, "forbidden",                                                  \
      "replica operation from an unauthenticated connection")                  \
    X(INTERNAL, "internal", "internal error")

enum rk_err {
    RK_ERR_FIRST_ = RK_ERR_BASE,
#define RK_ERR_ENUM_(name, code, msg) RK_E##name,
    RK_ERR_MAP(RK_ERR_ENUM_)
#undef RK_ERR_ENUM_
        RK_ERR_LAST_
};

/* The wire code for err ("not_found", ...). For -errno values: "system".
 * Never NULL; the string is static. */
const char *rk_err_code(int err);

/* A human-readable message for err: the table's message for project errors,
 * strerror() for -errno. Never NULL; static or thread-local storage. */
const char *rk_err_msg(int err);

/* The project error whose wire code is code[0..len), or RK_EINTERNAL when
 * unknown (a newer server may send codes an older client does not know). */
int rk_err_from_code(const char *code, size_t len);

#endif
