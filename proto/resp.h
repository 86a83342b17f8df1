/*
 * resp.h - the Redis protocol (RESP2): a parser for client commands and
 * encoders for replies. Pure: no I/O; the server in node/ feeds it bytes.
 *
 * Commands arrive as multibulk (*<n>\r\n then n times $<len>\r\n<bytes>\r\n)
 * or inline (words separated by spaces, ending in \n or \r\n, as typed in
 * telnet). The parser is stateless: it parses one command from the start of
 * the buffer each time, skipping bulk payloads by their length, so calling
 * it again after more bytes arrive costs only the headers. Arguments borrow
 * from the buffer.
 *
 * Limits are checked as soon as a header line is complete, before waiting
 * for the bytes it announces, so a client cannot make the server buffer
 * more than max_bulk + headers for one argument or max_inline for an inline
 * command. A multibulk command refused for a limit (an argument over
 * max_bulk, more than max_args arguments) can be discarded without
 * buffering it (resp_skip), so the client gets its error and the
 * connection stays usable.
 */
#ifndef RINGKV_RESP_H
#define RINGKV_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/wire.h"

struct resp_limits {
    uint32_t max_args;   /* arguments per command (argv capacity) */
    uint32_t max_bulk;   /* bytes per argument */
    uint32_t max_inline; /* bytes of an inline command line */
};

struct resp_arg {
    const uint8_t *p;
    uint32_t len;
};

/* Where the rest of a refused multibulk command lies: after resp_parse()
 * returned RK_ETOO_LARGE with skip_from > 0, the command's remaining bytes
 * are skip_bytes of the current argument's payload (and its CRLF) starting
 * at buf[skip_from], then skip_args more "$<len>\r\n<payload>\r\n"
 * arguments (an element that is itself an array "*<n>\r\n" stands for its
 * n elements). too_big is the size that broke the limit (an argument's
 * length, or the argument count). */
struct resp_skip {
    uint64_t args;
    uint64_t bytes;
};

struct resp_cmd {
    uint32_t argc;
    struct resp_arg *argv; /* caller-provided, lim->max_args entries */
    size_t skip_from;      /* RK_ETOO_LARGE: see struct resp_skip */
    struct resp_skip skip;
    uint64_t too_big;
};

/* Parses one command from buf[0..len).
 * Returns  > 0  bytes consumed; cmd->argc >= 1 and argv filled
 *          0    incomplete: call again with more bytes
 *          < 0  RK_EPROTO (not RESP) or RK_ETOO_LARGE (a limit), with *why
 *               set to a static message. When cmd->skip_from > 0 (a
 *               multibulk argument or count over its limit: RK_ETOO_LARGE;
 *               an array nested in a command: RK_EPROTO) the command can
 *               be discarded with resp_skip() from buf + cmd->skip_from and
 *               the stream goes on; otherwise it cannot be resynchronised
 *               and the connection should get the error and be closed.
 * An empty inline line or a "*0" multibulk is consumed and skipped: the
 * return is > 0 with cmd->argc == 0. */
int resp_parse(const uint8_t *buf, size_t len, const struct resp_limits *lim,
               struct resp_cmd *cmd, const char **why);

/* Discards the rest of a refused command from buf[0..len), continuing
 * the state st (initially cmd->skip from resp_parse()). Sets *consumed to
 * the bytes discarded. Returns 0 (done when st->args == 0 and
 * st->bytes == 0; otherwise more bytes are needed, and what was not
 * consumed is the start of an argument header, at most 24 bytes)
 * or RK_EPROTO when an argument header is malformed. Payload terminators
 * are not checked while skipping. */
int resp_skip(const uint8_t *buf, size_t len, struct resp_skip *st,
              size_t *consumed, const char **why);

/* Whether an argument equals a NUL-terminated ASCII word, ignoring case. */
bool resp_arg_is(const struct resp_arg *a, const char *word);

/* Reply encoders: append to b; return 0 or -ENOMEM. */
int resp_simple(struct wire_buf *b, const char *s);  /* +s\r\n */
int resp_error(struct wire_buf *b, const char *msg); /* -msg\r\n; CR/LF in
                                                       msg become spaces */
int resp_int(struct wire_buf *b, int64_t v);         /* :v\r\n */
int resp_bulk(struct wire_buf *b, const void *p, size_t n); /* $n\r\n..\r\n */
int resp_null(struct wire_buf *b);                          /* $-1\r\n */
int resp_array(struct wire_buf *b, int64_t n); /* *n\r\n, -1 = null */

#endif
