/*
 * test_resp.c - the RESP2 parser and reply encoders (proto/resp.h).
 *
 * Parser cases: multibulk and inline commands, pipelining, every prefix of a
 * valid command being "incomplete", limits refused at the header, malformed
 * lengths and terminators. Encoders: exact bytes.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "proto/errors.h"
#include "proto/resp.h"

TestSuite(resp, .timeout = 10);

#define MAX_ARGS 16

static const struct resp_limits lim = {
    .max_args = MAX_ARGS,
    .max_bulk = 512u << 20,
    .max_inline = 64,
};

struct parsed {
    int rc;
    const char *why;
    struct resp_arg argv[MAX_ARGS];
    struct resp_cmd cmd;
};

static void parse_lim(struct parsed *p, const char *s, size_t n,
                      const struct resp_limits *l)
{
    memset(p, 0, sizeof(*p));
    p->cmd.argv = p->argv;
    p->rc = resp_parse((const uint8_t *)s, n, l, &p->cmd, &p->why);
}

static void parse(struct parsed *p, const char *s)
{
    parse_lim(p, s, strlen(s), &lim);
}

static void expect_arg(const struct parsed *p, uint32_t i, const char *want)
{
    cr_assert_lt(i, p->cmd.argc);
    cr_assert_eq(p->argv[i].len, strlen(want), "arg %u length %u, want %zu", i,
                 p->argv[i].len, strlen(want));
    cr_assert(memcmp(p->argv[i].p, want, strlen(want)) == 0,
              "arg %u is \"%.*s\", want \"%s\"", i, (int)p->argv[i].len,
              (const char *)p->argv[i].p, want);
}

static void expect_error(const char *s, int err)
{
    struct parsed p;
    parse(&p, s);
    cr_assert_eq(p.rc, err, "input \"%s\": rc %d, want %d", s, p.rc, err);
    cr_assert_not_null(p.why);
}

/* ---- multibulk -------------------------------------------------------- */

Test(resp, multibulk_set_is_parsed_with_its_arguments)
{
    const char *s = "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n";
    struct parsed p;
    parse(&p, s);
    cr_assert_eq(p.rc, (int)strlen(s));
    cr_assert_eq(p.cmd.argc, 3);
    expect_arg(&p, 0, "SET");
    expect_arg(&p, 1, "key");
    expect_arg(&p, 2, "value");
}

Test(resp, multibulk_arguments_borrow_from_the_buffer)
{
    const char *s = "*1\r\n$4\r\nPING\r\n";
    struct parsed p;
    parse(&p, s);
    cr_assert_eq(p.rc, (int)strlen(s));
    cr_assert_eq((const char *)p.argv[0].p, s + 8);
}

Test(resp, multibulk_payload_may_hold_crlf_and_nul)
{
    const char s[] = "*2\r\n$3\r\nGET\r\n$4\r\na\r\0b\r\n";
    struct parsed p;
    parse_lim(&p, s, sizeof(s) - 1, &lim);
    cr_assert_eq(p.rc, (int)sizeof(s) - 1);
    cr_assert_eq(p.cmd.argc, 2);
    cr_assert_eq(p.argv[1].len, 4);
    cr_assert(memcmp(p.argv[1].p, "a\r\0b", 4) == 0);
}

Test(resp, multibulk_empty_argument_is_allowed)
{
    const char *s = "*2\r\n$3\r\nGET\r\n$0\r\n\r\n";
    struct parsed p;
    parse(&p, s);
    cr_assert_eq(p.rc, (int)strlen(s));
    cr_assert_eq(p.cmd.argc, 2);
    cr_assert_eq(p.argv[1].len, 0);
}

Test(resp, multibulk_zero_count_is_consumed_with_no_arguments)
{
    struct parsed p;
    parse(&p, "*0\r\n*1\r\n$4\r\nPING\r\n");
    cr_assert_eq(p.rc, 4);
    cr_assert_eq(p.cmd.argc, 0);
}

Test(resp, multibulk_leading_zeros_are_accepted)
{
    struct parsed p;
    parse(&p, "*01\r\n$04\r\nPING\r\n");
    cr_assert_eq(p.rc, 16);
    expect_arg(&p, 0, "PING");
}

Test(resp, every_prefix_of_a_multibulk_command_is_incomplete)
{
    const char *s = "*3\r\n$3\r\nSET\r\n$10\r\nkey\r\n12345\r\n$0\r\n\r\n";
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++) {
        struct parsed p;
        parse_lim(&p, s, i, &lim);
        cr_assert_eq(p.rc, 0, "prefix of %zu bytes: rc %d (%s)", i, p.rc,
                     p.why ? p.why : "");
    }
    struct parsed p;
    parse_lim(&p, s, n, &lim);
    cr_assert_eq(p.rc, (int)n);
    expect_arg(&p, 1, "key\r\n12345");
}

Test(resp, every_prefix_of_an_inline_command_is_incomplete)
{
    const char *s = "SET  key\tvalue\r\n";
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++) {
        struct parsed p;
        parse_lim(&p, s, i, &lim);
        cr_assert_eq(p.rc, 0, "prefix of %zu bytes: rc %d", i, p.rc);
    }
}

Test(resp, pipelined_commands_are_parsed_one_after_another)
{
    const char *s = "*2\r\n$3\r\nGET\r\n$1\r\na\r\n"
                    "PING\r\n"
                    "\r\n"
                    "*0\r\n"
                    "*3\r\n$3\r\nSET\r\n$1\r\nb\r\n$2\r\nxy\r\n"
                    "echo hi\n"
                    "*1\r\n$4\r\nPI"; /* incomplete tail */
    const char *want[][3] = {{"GET", "a", NULL}, {"PING", NULL, NULL},
                             {NULL, NULL, NULL}, {NULL, NULL, NULL},
                             {"SET", "b", "xy"}, {"echo", "hi", NULL}};
    size_t n = strlen(s), off = 0;
    for (size_t k = 0; k < sizeof(want) / sizeof(want[0]); k++) {
        struct parsed p;
        parse_lim(&p, s + off, n - off, &lim);
        cr_assert_gt(p.rc, 0, "command %zu: rc %d", k, p.rc);
        uint32_t argc = 0;
        while (argc < 3 && want[k][argc] != NULL)
            argc++;
        cr_assert_eq(p.cmd.argc, argc, "command %zu", k);
        for (uint32_t i = 0; i < argc; i++)
            expect_arg(&p, i, want[k][i]);
        off += (size_t)p.rc;
    }
    struct parsed p;
    parse_lim(&p, s + off, n - off, &lim);
    cr_assert_eq(p.rc, 0);
    cr_assert_eq(n - off, 10);
}

/* ---- inline ------------------------------------------------------------ */

Test(resp, inline_ping_with_crlf_is_one_argument)
{
    struct parsed p;
    parse(&p, "PING\r\n");
    cr_assert_eq(p.rc, 6);
    cr_assert_eq(p.cmd.argc, 1);
    expect_arg(&p, 0, "PING");
}

Test(resp, inline_words_split_on_spaces_and_tabs_with_bare_lf)
{
    struct parsed p;
    parse(&p, "  set\tk   \"v\"  \n");
    cr_assert_eq(p.rc, 16);
    cr_assert_eq(p.cmd.argc, 3);
    expect_arg(&p, 0, "set");
    expect_arg(&p, 1, "k");
    expect_arg(&p, 2, "\"v\""); /* no quoting: quotes are bytes */
}

Test(resp, empty_inline_lines_are_consumed_with_no_arguments)
{
    struct parsed p;
    parse(&p, "\r\nPING\r\n");
    cr_assert_eq(p.rc, 2);
    cr_assert_eq(p.cmd.argc, 0);
    parse(&p, "\n");
    cr_assert_eq(p.rc, 1);
    cr_assert_eq(p.cmd.argc, 0);
    parse(&p, " \t \r\n");
    cr_assert_eq(p.rc, 5);
    cr_assert_eq(p.cmd.argc, 0);
}

Test(resp, inline_line_of_exactly_max_inline_bytes_is_accepted)
{
    char s[128];
    memset(s, 'a', 64);
    memcpy(s + 64, "\r\n", 3);
    struct parsed p;
    parse(&p, s);
    cr_assert_eq(p.rc, 66);
    cr_assert_eq(p.argv[0].len, 64);
    s[64] = '\n';
    parse_lim(&p, s, 65, &lim);
    cr_assert_eq(p.rc, 65);
    /* Without the newline yet, max_inline + 1 bytes may still be "a..a\r". */
    s[64] = '\r';
    parse_lim(&p, s, 65, &lim);
    cr_assert_eq(p.rc, 0);
}

Test(resp, inline_line_longer_than_max_inline_is_too_large)
{
    char s[128];
    memset(s, 'a', sizeof(s));
    struct parsed p;
    /* No newline yet, but already longer than any allowed line. */
    parse_lim(&p, s, 66, &lim);
    cr_assert_eq(p.rc, RK_ETOO_LARGE);
    cr_assert_not_null(p.why);
    memcpy(s + 65, "\r\n", 2);
    parse_lim(&p, s, 67, &lim);
    cr_assert_eq(p.rc, RK_ETOO_LARGE);
    s[65] = '\n';
    parse_lim(&p, s, 66, &lim);
    cr_assert_eq(p.rc, RK_ETOO_LARGE);
}

Test(resp, inline_with_more_words_than_max_args_is_too_large)
{
    struct resp_limits l = lim;
    l.max_args = 2;
    struct parsed p;
    const char *s = "a b c\n";
    parse_lim(&p, s, strlen(s), &l);
    cr_assert_eq(p.rc, RK_ETOO_LARGE);
    s = "a b\n";
    parse_lim(&p, s, strlen(s), &l);
    cr_assert_eq(p.rc, 4);
    cr_assert_eq(p.cmd.argc, 2);
}

/* ---- limits ------------------------------------------------------------ */

Test(resp, huge_bulk_header_is_too_large_once_its_line_is_complete)
{
    struct parsed p;
    parse(&p, "*2\r\n$3\r\nGET\r\n$2000000000");
    cr_assert_eq(p.rc, 0, "a header line is tiny: wait for its CRLF");
    expect_error("*2\r\n$3\r\nGET\r\n$2000000000\r\n", RK_ETOO_LARGE);
    expect_error("*1\r\n$99999999999999999999999999\r\n", RK_ETOO_LARGE);
}

Test(resp, bulk_of_exactly_max_bulk_is_awaited)
{
    struct resp_limits l = lim;
    l.max_bulk = 5;
    struct parsed p;
    const char *s = "*1\r\n$5\r\nab";
    parse_lim(&p, s, strlen(s), &l);
    cr_assert_eq(p.rc, 0);
    s = "*1\r\n$6\r\n";
    parse_lim(&p, s, strlen(s), &l);
    cr_assert_eq(p.rc, RK_ETOO_LARGE);
}

Test(resp, count_above_max_args_is_too_large_at_the_header)
{
    struct parsed p;
    parse(&p, "*17");
    cr_assert_eq(p.rc, 0);
    expect_error("*17\r\n", RK_ETOO_LARGE);
    expect_error("*1000000\r\n", RK_ETOO_LARGE);
    parse(&p, "*16\r\n");
    cr_assert_eq(p.rc, 0);
}

/* Discards a refused command fed in pieces of step bytes; returns the
 * offset where the skip ended (the next command), or -1. */
static long skip_in_pieces(const char *s, size_t n, const struct parsed *p,
                           size_t step)
{
    struct resp_skip st = p->cmd.skip;
    size_t off = p->cmd.skip_from, avail = off;
    while (avail < n || st.args > 0 || st.bytes > 0) {
        avail = avail + step > n ? n : avail + step;
        size_t used = 0;
        const char *why = NULL;
        if (resp_skip((const uint8_t *)s + off, avail - off, &st, &used,
                      &why) != 0)
            return -1;
        off += used;
        if (st.args == 0 && st.bytes == 0)
            return (long)off;
        if (avail == n)
            return -2; /* ran out of input while still skipping */
    }
    return (long)off;
}

Test(resp, oversized_argument_reports_how_to_skip_the_rest)
{
    struct resp_limits l = lim;
    l.max_bulk = 4;
    const char *s = "*3\r\n$3\r\nSET\r\n$10\r\n0123456789\r\n$2\r\nab\r\n"
                    "*1\r\n$4\r\nPING\r\n";
    size_t n = strlen(s);
    struct parsed p;
    parse_lim(&p, s, n, &l);
    cr_assert_eq(p.rc, RK_ETOO_LARGE);
    cr_assert_eq(p.cmd.too_big, 10);
    cr_assert_eq(p.cmd.skip_from, strlen("*3\r\n$3\r\nSET\r\n$10\r\n"));
    cr_assert_eq(p.cmd.skip.bytes, 12);
    cr_assert_eq(p.cmd.skip.args, 1);
    size_t next = strlen(s) - strlen("*1\r\n$4\r\nPING\r\n");
    for (size_t step = 1; step <= n; step++)
        cr_assert_eq(skip_in_pieces(s, n, &p, step), (long)next, "step %zu",
                     step);
    parse_lim(&p, s + next, n - next, &l);
    cr_assert_gt(p.rc, 0);
    expect_arg(&p, 0, "PING");
}

Test(resp, too_many_arguments_are_skipped_whole)
{
    struct resp_limits l = lim;
    l.max_args = 2;
    const char *s = "*3\r\n$1\r\na\r\n$0\r\n\r\n$1\r\nc\r\n+";
    size_t n = strlen(s);
    struct parsed p;
    parse_lim(&p, s, n, &l);
    cr_assert_eq(p.rc, RK_ETOO_LARGE);
    cr_assert_eq(p.cmd.too_big, 3);
    cr_assert_eq(p.cmd.skip.args, 3);
    cr_assert_eq(p.cmd.skip.bytes, 0);
    for (size_t step = 1; step <= n; step++)
        cr_assert_eq(skip_in_pieces(s, n, &p, step), (long)n - 1, "step %zu",
                     step);
}

Test(resp, nested_array_is_a_protocol_error_that_can_be_skipped)
{
    const char *s = "*3\r\n$4\r\nMGET\r\n*2\r\n$1\r\na\r\n*1\r\n$1\r\nb"
                    "\r\n$1\r\nc\r\n+";
    size_t n = strlen(s);
    struct parsed p;
    parse(&p, s);
    cr_assert_eq(p.rc, RK_EPROTO);
    cr_assert_eq(p.cmd.skip_from, strlen("*3\r\n$4\r\nMGET\r\n"));
    cr_assert_eq(p.cmd.skip.args, 2);
    for (size_t step = 1; step <= n; step++)
        cr_assert_eq(skip_in_pieces(s, n, &p, step), (long)n - 1, "step %zu",
                     step);
}

Test(resp, skip_refuses_a_malformed_argument_header)
{
    struct resp_skip st = {.args = 1, .bytes = 0};
    size_t used = 99;
    const char *why = NULL;
    cr_assert_eq(resp_skip((const uint8_t *)"x", 1, &st, &used, &why),
                 RK_EPROTO);
    cr_assert_eq(used, 0);
    st = (struct resp_skip){.args = 1, .bytes = 0};
    cr_assert_eq(resp_skip((const uint8_t *)"$-1\r\n", 5, &st, &used, &why),
                 RK_EPROTO);
}

/* ---- malformed --------------------------------------------------------- */

Test(resp, negative_lengths_are_protocol_errors)
{
    expect_error("*-1\r\n", RK_EPROTO);
    expect_error("*-", RK_EPROTO);
    expect_error("*1\r\n$-1\r\n", RK_EPROTO);
    expect_error("*1\r\n$-", RK_EPROTO);
}

Test(resp, non_numeric_or_empty_lengths_are_protocol_errors)
{
    expect_error("*x\r\n", RK_EPROTO);
    expect_error("*\r\n", RK_EPROTO);
    expect_error("*1 \r\n", RK_EPROTO);
    expect_error("*+1\r\n", RK_EPROTO);
    expect_error("*1\r\n$\r\n", RK_EPROTO);
    expect_error("*1\r\n$3x\r\nfoo\r\n", RK_EPROTO);
    expect_error("*1\r\n$ 3\r\nfoo\r\n", RK_EPROTO);
    expect_error("*1\n$3\r\nfoo\r\n", RK_EPROTO);
    expect_error("*1\rx", RK_EPROTO);
    expect_error("*000000000000000000001\r\n", RK_EPROTO);
}

Test(resp, argument_without_dollar_is_a_protocol_error)
{
    expect_error("*1\r\n+OK\r\n", RK_EPROTO);
    expect_error("*2\r\n$1\r\na\r\nb\r\n", RK_EPROTO);
}

Test(resp, bulk_not_ending_in_crlf_is_a_protocol_error)
{
    expect_error("*1\r\n$3\r\nfooX", RK_EPROTO);
    expect_error("*1\r\n$3\r\nfoo\rX", RK_EPROTO);
    expect_error("*1\r\n$3\r\nfoo\n\r", RK_EPROTO);
    expect_error("*1\r\n$3\r\nfoobar\r\n", RK_EPROTO);
}

Test(resp, arg_is_compares_case_insensitively_and_by_length)
{
    struct resp_arg a = {(const uint8_t *)"GeTx", 3};
    cr_assert(resp_arg_is(&a, "get"));
    cr_assert(resp_arg_is(&a, "GET"));
    cr_assert_not(resp_arg_is(&a, "getx"));
    cr_assert_not(resp_arg_is(&a, "ge"));
    cr_assert_not(resp_arg_is(&a, "set"));
    struct resp_arg e = {(const uint8_t *)"", 0};
    cr_assert(resp_arg_is(&e, ""));
}

/* ---- encoders ---------------------------------------------------------- */

static void expect_bytes(const struct wire_buf *b, const char *want, size_t n)
{
    cr_assert_eq(b->len, n, "got %zu bytes \"%.*s\", want %zu", b->len,
                 (int)b->len, (const char *)b->data, n);
    cr_assert(memcmp(b->data, want, n) == 0, "got \"%.*s\", want \"%.*s\"",
              (int)b->len, (const char *)b->data, (int)n, want);
}

#define EXPECT(b, lit) expect_bytes((b), (lit), sizeof(lit) - 1)

Test(resp, encoders_write_exact_bytes)
{
    struct wire_buf b;
    wire_buf_init(&b);
    cr_assert_eq(resp_simple(&b, "OK"), 0);
    EXPECT(&b, "+OK\r\n");
    cr_assert_eq(resp_error(&b, "ERR bad"), 0);
    EXPECT(&b, "+OK\r\n-ERR bad\r\n");
    wire_buf_free(&b);

    wire_buf_init(&b);
    cr_assert_eq(resp_int(&b, 0), 0);
    cr_assert_eq(resp_int(&b, -42), 0);
    cr_assert_eq(resp_int(&b, INT64_MAX), 0);
    cr_assert_eq(resp_int(&b, INT64_MIN), 0);
    EXPECT(&b, ":0\r\n:-42\r\n:9223372036854775807\r\n"
               ":-9223372036854775808\r\n");
    wire_buf_free(&b);

    wire_buf_init(&b);
    cr_assert_eq(resp_bulk(&b, "a\r\0b", 4), 0);
    cr_assert_eq(resp_bulk(&b, NULL, 0), 0);
    cr_assert_eq(resp_null(&b), 0);
    EXPECT(&b, "$4\r\na\r\0b\r\n$0\r\n\r\n$-1\r\n");
    wire_buf_free(&b);

    wire_buf_init(&b);
    cr_assert_eq(resp_array(&b, 2), 0);
    cr_assert_eq(resp_array(&b, 0), 0);
    cr_assert_eq(resp_array(&b, -1), 0);
    EXPECT(&b, "*2\r\n*0\r\n*-1\r\n");
    wire_buf_free(&b);
}

Test(resp, error_and_simple_replies_replace_cr_and_lf_with_spaces)
{
    struct wire_buf b;
    wire_buf_init(&b);
    cr_assert_eq(resp_error(&b, "ERR a\r\nb\nc"), 0);
    cr_assert_eq(resp_simple(&b, "x\ry"), 0);
    cr_assert_eq(resp_error(&b, ""), 0);
    EXPECT(&b, "-ERR a  b c\r\n+x y\r\n-\r\n");
    wire_buf_free(&b);
}

Test(resp, encoded_command_round_trips_through_the_parser)
{
    struct wire_buf b;
    wire_buf_init(&b);
    cr_assert_eq(resp_array(&b, 3), 0);
    cr_assert_eq(resp_bulk(&b, "SET", 3), 0);
    cr_assert_eq(resp_bulk(&b, "k", 1), 0);
    cr_assert_eq(resp_bulk(&b, "v\r\n", 3), 0);
    struct parsed p;
    parse_lim(&p, (const char *)b.data, b.len, &lim);
    cr_assert_eq(p.rc, (int)b.len);
    cr_assert_eq(p.cmd.argc, 3);
    expect_arg(&p, 2, "v\r\n");
    wire_buf_free(&b);
}
