/*
 * fuzz_resp.c - libFuzzer target for the RESP command parser (proto/resp.h).
 *
 * Parses commands one after another from the input, as the server does with
 * a connection's read buffer, until the parser reports an error or an
 * incomplete command. Checks the contract on every result: the consumed
 * count stays inside the input, argc stays within max_args, every argument
 * lies inside the bytes just consumed and respects max_bulk. Each argument is
 * then re-encoded with the reply encoders and the encoded command is parsed
 * back, which must reproduce it exactly (same argc, same bytes).
 *
 * Limits are small so that the "too large" paths are reachable.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/errors.h"
#include "proto/resp.h"

#define FUZZ_MAX_ARGS 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_check(int cond)
{
    if (!cond)
        abort();
}

/* Encodes cmd as a multibulk request, parses it back, compares. */
static void fuzz_round_trip(const struct resp_cmd *cmd,
                            const struct resp_limits *in_lim)
{
    /* Inline arguments may be up to max_inline long. */
    struct resp_limits l = *in_lim;
    if (l.max_bulk < l.max_inline)
        l.max_bulk = l.max_inline;
    const struct resp_limits *lim = &l;

    struct wire_buf b;
    wire_buf_init(&b);
    fuzz_check(resp_array(&b, cmd->argc) == 0);
    for (uint32_t i = 0; i < cmd->argc; i++)
        fuzz_check(resp_bulk(&b, cmd->argv[i].p, cmd->argv[i].len) == 0);

    struct resp_arg argv[FUZZ_MAX_ARGS];
    struct resp_cmd back = {.argc = 0, .argv = argv};
    const char *why = NULL;
    int rc = resp_parse(b.data, b.len, lim, &back, &why);
    fuzz_check(rc >= 0 && (size_t)rc == b.len);
    fuzz_check(back.argc == cmd->argc);
    for (uint32_t i = 0; i < back.argc; i++) {
        fuzz_check(back.argv[i].len == cmd->argv[i].len);
        fuzz_check(back.argv[i].len == 0 ||
                   memcmp(back.argv[i].p, cmd->argv[i].p, back.argv[i].len) ==
                       0);
    }
    wire_buf_free(&b);
}

/* The other encoders, fed from the argument bytes. */
static void fuzz_encoders(const struct resp_cmd *cmd)
{
    struct wire_buf b;
    wire_buf_init(&b);
    for (uint32_t i = 0; i < cmd->argc; i++) {
        const struct resp_arg *a = &cmd->argv[i];
        char text[64];
        size_t n = a->len < sizeof(text) - 1 ? a->len : sizeof(text) - 1;
        if (n > 0)
            memcpy(text, a->p, n);
        text[n] = '\0';
        size_t before = b.len;
        fuzz_check(resp_error(&b, text) == 0);
        fuzz_check(resp_simple(&b, text) == 0);
        /* No CR or LF may reach the output except the terminators. */
        for (size_t k = before; k < b.len; k++) {
            if (b.data[k] == '\n')
                fuzz_check(k > 0 && b.data[k - 1] == '\r');
            if (b.data[k] == '\r')
                fuzz_check(k + 1 < b.len && b.data[k + 1] == '\n');
        }
        int64_t v = 0;
        memcpy(&v, text, n < sizeof(v) ? n : sizeof(v));
        fuzz_check(resp_int(&b, v) == 0);
        fuzz_check(resp_null(&b) == 0);
        fuzz_check(resp_array(&b, v < -1 ? -1 : v) == 0);
        fuzz_check(resp_arg_is(a, text) ==
                   (n == a->len && !memchr(text, 0, n)));
    }
    wire_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct resp_limits lim = {
        .max_args = FUZZ_MAX_ARGS,
        .max_bulk = 64,
        .max_inline = 128,
    };
    struct resp_arg argv[FUZZ_MAX_ARGS];
    size_t off = 0;

    while (off < size) {
        struct resp_cmd cmd = {.argc = 0, .argv = argv};
        const char *why = NULL;
        int rc = resp_parse(data + off, size - off, &lim, &cmd, &why);
        if (rc < 0) {
            fuzz_check(rc == RK_EPROTO || rc == RK_ETOO_LARGE);
            fuzz_check(why != NULL);
            if (cmd.skip_from == 0)
                break;
            /* Skippable: discard the rest in two pieces, as a server fed
             * by two reads would, and go on with what follows. */
            fuzz_check(cmd.skip_from <= size - off);
            off += cmd.skip_from;
            struct resp_skip st = cmd.skip;
            size_t half = (size - off) / 2, used = 0, used2 = 0;
            if (resp_skip(data + off, half, &st, &used, &why) != 0)
                break;
            fuzz_check(used <= half);
            /* Not done: all consumed but an incomplete header line. */
            if (st.args > 0 || st.bytes > 0)
                fuzz_check(half - used <= 24);
            if (resp_skip(data + off + used, size - off - used, &st, &used2,
                          &why) != 0)
                break;
            fuzz_check(used2 <= size - off - used);
            off += used + used2;
            if (st.args > 0 || st.bytes > 0)
                break; /* the input ended inside the refused command */
            continue;
        }
        if (rc == 0)
            break;
        fuzz_check((size_t)rc <= size - off);
        fuzz_check(cmd.argc <= lim.max_args);
        for (uint32_t i = 0; i < cmd.argc; i++) {
            fuzz_check(cmd.argv[i].len <= lim.max_bulk || data[off] != '*');
            fuzz_check(cmd.argv[i].p >= data + off);
            fuzz_check(cmd.argv[i].p + cmd.argv[i].len <= data + off + rc);
        }
        fuzz_round_trip(&cmd, &lim);
        fuzz_encoders(&cmd);
        off += (size_t)rc;
    }
    return 0;
}
