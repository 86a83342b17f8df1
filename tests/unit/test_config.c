/*
 * test_config.c - node options (node/config.h): defaults, the file syntax,
 * the command line, value parsing, validation, and the generated example
 * file and docs table staying in step with the option table.
 *
 * RINGKV_UPDATE_DOCS=1 makes the two "matches the table" tests rewrite
 * ringkv.conf and the table in docs/config.md instead of failing.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "node/config.h"
#include "node/log.h"
#include "node/storage.h"
#include "proto/errors.h"
#include "proto/wire.h"

#ifndef RINGKV_SOURCE_DIR
#define RINGKV_SOURCE_DIR "."
#endif

TestSuite(config, .timeout = 10);

/* ---- helpers ------------------------------------------------------------ */

/* Writes text to a new temporary file; returns its malloc'd path. */
static char *write_tmp(const char *text)
{
    char *path = strdup("/tmp/ringkv-test-config-XXXXXX");
    cr_assert_not_null(path);
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    size_t n = strlen(text);
    cr_assert_eq(write(fd, text, n), (ssize_t)n);
    close(fd);
    return path;
}

struct loaded {
    struct config c;
    int rc;
    char err[512];
};

/* Defaults, then the file holding text. */
static void load_text(struct loaded *l, const char *text)
{
    memset(l, 0, sizeof(*l));
    cr_assert_eq(config_defaults(&l->c), 0);
    char *path = write_tmp(text);
    l->rc = config_load_file(&l->c, path, l->err, sizeof(l->err));
    unlink(path);
    free(path);
}

/* config_dump()'s output, malloc'd. */
static char *dump_text(const struct config *c)
{
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    cr_assert_not_null(m);
    config_dump(c, m);
    fclose(m);
    return text;
}

/* Replaces the temporary path in an error message with "F". */
static const char *strip_path(const char *err)
{
    const char *colon = strchr(err, ':');
    return colon != NULL ? colon : err;
}

static void expect_same(const struct config *a, const struct config *b)
{
    size_t n;
    const struct config_option *opts = config_options(&n);
    for (size_t i = 0; i < n; i++) {
        char x[512], y[512];
        config_format(a, &opts[i], x, sizeof(x));
        config_format(b, &opts[i], y, sizeof(y));
        cr_expect_str_eq(x, y, "option %s: %s vs %s", opts[i].name, x, y);
    }
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    cr_assert_not_null(m);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        fwrite(chunk, 1, n, m);
    fclose(f);
    fclose(m);
    return buf;
}

typedef void (*print_fn)(FILE *f);

static char *capture(print_fn fn)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    cr_assert_not_null(m);
    fn(m);
    fclose(m);
    return buf;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

static bool update_docs(void)
{
    const char *e = getenv("RINGKV_UPDATE_DOCS");
    return e != NULL && strcmp(e, "1") == 0;
}

/* ---- defaults ----------------------------------------------------------- */

Test(config, defaults_are_the_documented_values)
{
    struct config c;
    cr_assert_eq(config_defaults(&c), 0);
    cr_expect_str_eq(c.node_id, "node1");
    cr_expect_str_eq(c.data_dir, "./data");
    cr_expect_str_eq(c.listen, "127.0.0.1");
    cr_expect_eq(c.port, 7001);
    cr_expect_eq(c.resp_port, 7101);
    cr_expect_eq(c.fsync, CONFIG_FSYNC_ALWAYS);
    cr_expect_eq(c.fsync_interval, 100);
    cr_expect_eq(c.map_size, 1ull << 30);
    cr_expect_eq(c.partitions, 64);
    cr_expect_eq(c.max_frame, 8u << 20);
    cr_expect_eq(c.max_key, 500);
    cr_expect_str_eq(c.peers, "");
    cr_expect_eq(c.n, 3);
    cr_expect_eq(c.r, 2);
    cr_expect_eq(c.w, 2);
    cr_expect_eq(c.conflict, CONFIG_CONFLICT_SIBLINGS);
    cr_expect_eq(c.request_timeout, 5000);
    cr_expect_eq(c.max_value, 4u << 20);
    cr_expect_eq(c.max_clients, 10000);
    cr_expect_eq(c.idle_timeout, 300000);
    cr_expect_eq(c.log_level, CONFIG_LOG_INFO);
    cr_expect_str_eq(c.log_file, "");
    char err[256] = "";
    cr_expect_eq(config_validate(&c, err, sizeof(err)), 0, "%s", err);
    config_free(&c);
}

Test(config, default_limits_agree_with_the_wire_codec)
{
    struct config c;
    cr_assert_eq(config_defaults(&c), 0);
    cr_expect_eq(c.max_frame, WIRE_DEFAULT_MAX_FRAME);
    cr_expect_eq(c.max_key, WIRE_DEFAULT_MAX_KEY);
    cr_expect_eq(c.max_value, WIRE_DEFAULT_MAX_VALUE);
    config_free(&c);
}

Test(config, enum_constants_equal_storage_and_log_constants)
{
    cr_expect_eq((int)CONFIG_FSYNC_ALWAYS, (int)STORAGE_FSYNC_ALWAYS);
    cr_expect_eq((int)CONFIG_FSYNC_INTERVAL, (int)STORAGE_FSYNC_INTERVAL);
    cr_expect_eq((int)CONFIG_FSYNC_NEVER, (int)STORAGE_FSYNC_NEVER);
    cr_expect_eq((int)CONFIG_LOG_DEBUG, (int)LOG_DEBUG);
    cr_expect_eq((int)CONFIG_LOG_INFO, (int)LOG_INFO);
    cr_expect_eq((int)CONFIG_LOG_WARN, (int)LOG_WARN);
    cr_expect_eq((int)CONFIG_LOG_ERROR, (int)LOG_ERROR);
}

Test(config, every_table_default_parses_and_is_in_range)
{
    size_t n;
    const struct config_option *opts = config_options(&n);
    cr_assert_gt(n, 0);
    struct config c;
    cr_assert_eq(config_defaults(&c), 0);
    for (size_t i = 0; i < n; i++) {
        char err[256] = "";
        cr_expect_eq(
            config_set(&c, opts[i].name, opts[i].def, err, sizeof(err)), 0,
            "%s", err);
        cr_expect_not_null(opts[i].help);
        cr_expect_eq(opts[i].type == CONFIG_ENUM, opts[i].words != NULL);
    }
    config_free(&c);
}

Test(config, free_is_idempotent_and_defaults_refill_a_freed_config)
{
    struct config c;
    memset(&c, 0, sizeof(c));
    config_free(&c);
    config_free(NULL);
    cr_assert_eq(config_defaults(&c), 0);
    config_free(&c);
    cr_expect_null(c.node_id);
    config_free(&c);
    cr_assert_eq(config_defaults(&c), 0);
    cr_expect_str_eq(c.node_id, "node1");
    config_free(&c);
}

/* ---- the file ----------------------------------------------------------- */

Test(config, file_with_comments_blank_lines_and_quotes_is_read)
{
    struct loaded l;
    load_text(&l, "# a comment\n"
                  "\n"
                  "   \t\n"
                  "  # an indented comment\n"
                  "node_id = n2\n"
                  "port=7005\n"
                  "\tresp_port\t=\t0   # RESP off\n"
                  "data_dir = \"/var/lib/ring kv # not a comment\"\n"
                  "log_file = \"a \\\"quoted\\\" \\\\ name\"   # comment\n"
                  "listen = a#b\n"
                  "fsync = INTERVAL\r\n"
                  "fsync_interval = 2s\n"
                  "map_size = 2 GiB\n"
                  "max-clients = 5\n"
                  "partitions = 8");
    cr_assert_eq(l.rc, 0, "%s", l.err);
    cr_expect_str_eq(l.c.node_id, "n2");
    cr_expect_eq(l.c.port, 7005);
    cr_expect_eq(l.c.resp_port, 0);
    cr_expect_str_eq(l.c.data_dir, "/var/lib/ring kv # not a comment");
    cr_expect_str_eq(l.c.log_file, "a \"quoted\" \\ name");
    cr_expect_str_eq(l.c.listen, "a#b");
    cr_expect_eq(l.c.fsync, CONFIG_FSYNC_INTERVAL);
    cr_expect_eq(l.c.fsync_interval, 2000);
    cr_expect_eq(l.c.map_size, 2ull << 30);
    cr_expect_eq(l.c.max_clients, 5);
    cr_expect_eq(l.c.partitions, 8, "last line without a newline is read");
    cr_expect_eq(l.c.max_frame, 8u << 20, "options not mentioned keep theirs");
    config_free(&l.c);
}

Test(config, empty_values_and_repeated_keys_in_a_file)
{
    struct loaded l;
    load_text(&l, "log_file = x\n"
                  "log_file =\n"
                  "node_id = a\n"
                  "node_id = b\n"
                  "data_dir = \"\"\n");
    cr_assert_eq(l.rc, 0, "%s", l.err);
    cr_expect_str_eq(l.c.log_file, "");
    cr_expect_str_eq(l.c.node_id, "b", "the last line wins");
    cr_expect_str_eq(l.c.data_dir, "");
    config_free(&l.c);

    load_text(&l, "port =\n");
    cr_expect_eq(l.rc, RK_ECONFIG);
    cr_expect_str_eq(strip_path(l.err), ":1: port: \"\" is not a number");
    config_free(&l.c);
}

static void expect_file_error(const char *text, const char *want)
{
    struct loaded l;
    load_text(&l, text);
    cr_expect_eq(l.rc, RK_ECONFIG, "text \"%s\": rc %d", text, l.rc);
    cr_expect_str_eq(strip_path(l.err), want);
    cr_expect(strncmp(l.err, "/tmp/ringkv-test-config-", 24) == 0,
              "message starts with the path: %s", l.err);
    config_free(&l.c);
}

Test(config, file_errors_name_the_line)
{
    expect_file_error("# ok\n\nbogus = 1\n", ":3: unknown option \"bogus\"");
    expect_file_error("port 7001\n", ":1: expected \"option = value\"");
    expect_file_error("\n\nport\n", ":3: expected \"option = value\"");
    expect_file_error("= 5\n", ":1: missing option name before '='");
    expect_file_error("port = 70000\n",
                      ":1: port: 70000 is outside the range 1..65535");
    expect_file_error("port = 7001 7002\n",
                      ":1: port: \"7001 7002\" is not a number");
    expect_file_error("node_id = \"abc\n", ":1: unterminated quoted value");
    expect_file_error("node_id = \"abc\" x\n",
                      ":1: unexpected text after quoted value");
    expect_file_error("node_id = \"a\\nb\"\n",
                      ":1: unknown escape in quoted value (use \\\" or \\\\)");
    expect_file_error("fsync = sometimes\n",
                      ":1: fsync: \"sometimes\" is not one of always, "
                      "interval, never");
}

Test(config, file_error_leaves_the_failing_option_unchanged)
{
    struct loaded l;
    load_text(&l, "port = 7100\nport = nope\n");
    cr_expect_eq(l.rc, RK_ECONFIG);
    cr_expect_eq(l.c.port, 7100);
    config_free(&l.c);
    load_text(&l, "node_id = \"x\n");
    cr_expect_eq(l.rc, RK_ECONFIG);
    cr_expect_str_eq(l.c.node_id, "node1");
    config_free(&l.c);
}

Test(config, nul_byte_in_a_file_is_an_error)
{
    char path[] = "/tmp/ringkv-test-config-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "port = 7\0 1\n", 12), 12);
    close(fd);
    struct config c;
    cr_assert_eq(config_defaults(&c), 0);
    char err[256];
    cr_expect_eq(config_load_file(&c, path, err, sizeof(err)), RK_ECONFIG);
    cr_expect_str_eq(strip_path(err), ":1: NUL byte in line");
    unlink(path);
    config_free(&c);
}

Test(config, unreadable_file_is_an_errno_with_the_path)
{
    struct config c;
    cr_assert_eq(config_defaults(&c), 0);
    char err[256];
    cr_expect_eq(
        config_load_file(&c, "/nonexistent/ringkv.conf", err, sizeof(err)),
        -ENOENT);
    cr_expect_str_eq(err, "/nonexistent/ringkv.conf: No such file or "
                          "directory");
    cr_expect_eq(config_load_file(&c, "/tmp", err, sizeof(err)), -EISDIR);
    cr_expect(strncmp(err, "/tmp: ", 6) == 0, "%s", err);
    /* A NULL error buffer is allowed. */
    cr_expect_eq(config_load_file(&c, "/nonexistent", NULL, 0), -ENOENT);
    config_free(&c);
}

/* ---- the command line --------------------------------------------------- */

static int parse_args(struct config *c, char *err, size_t errlen, ...)
{
    char *argv[32];
    int argc = 0;
    argv[argc++] = "ringkv";
    va_list ap;
    va_start(ap, errlen);
    char *a;
    while ((a = va_arg(ap, char *)) != NULL && argc < 31)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    return config_parse_args(c, argc, argv, err, errlen);
}

Test(config, args_accept_both_flag_forms_and_dashes_or_underscores)
{
    struct config c;
    cr_assert_eq(config_defaults(&c), 0);
    char err[256] = "";
    int rc = parse_args(&c, err, sizeof(err), "--fsync", "never", "--data-dir",
                        "D", "--max_value=1MiB", "--idle-timeout=0",
                        "--node-id", "x=y", NULL);
    cr_assert_eq(rc, 0, "%s", err);
    cr_expect_eq(c.fsync, CONFIG_FSYNC_NEVER);
    cr_expect_str_eq(c.data_dir, "D");
    cr_expect_eq(c.max_value, 1u << 20);
    cr_expect_eq(c.idle_timeout, 0);
    cr_expect_str_eq(c.node_id, "x=y");
    cr_expect_eq(parse_args(&c, err, sizeof(err), NULL), 0);
    config_free(&c);
}

Test(config, config_file_applies_where_it_appears_on_the_command_line)
{
    char *path = write_tmp("port = 7200\nnode_id = from-file\n"
                           "resp_port = 7300\n");
    struct config c;
    cr_assert_eq(config_defaults(&c), 0);
    char err[256] = "";
    int rc = parse_args(&c, err, sizeof(err), "--port", "1", "--node-id",
                        "early", "--config", path, "--node-id", "late",
                        "--log-level=debug", NULL);
    cr_assert_eq(rc, 0, "%s", err);
    cr_expect_eq(c.port, 7200, "the file overrides earlier flags");
    cr_expect_str_eq(c.node_id, "late", "later flags override the file");
    cr_expect_eq(c.resp_port, 7300);
    cr_expect_eq(c.log_level, CONFIG_LOG_DEBUG);

    char flag[600];
    snprintf(flag, sizeof(flag), "--config=%s", path);
    rc = parse_args(&c, err, sizeof(err), "--port", "2", flag, NULL);
    cr_assert_eq(rc, 0, "%s", err);
    cr_expect_eq(c.port, 7200);
    unlink(path);
    free(path);
    config_free(&c);
}

Test(config, config_file_errors_pass_through_the_command_line)
{
    char *path = write_tmp("port = 7200\nwat = 1\n");
    struct config c;
    cr_assert_eq(config_defaults(&c), 0);
    char err[512] = "";
    cr_expect_eq(parse_args(&c, err, sizeof(err), "--config", path, NULL),
                 RK_ECONFIG);
    cr_expect_str_eq(strip_path(err), ":2: unknown option \"wat\"");
    cr_expect_eq(
        parse_args(&c, err, sizeof(err), "--config", "/nonexistent", NULL),
        -ENOENT);
    unlink(path);
    free(path);
    config_free(&c);
}

Test(config, help_and_print_config_are_reported_to_the_caller)
{
    struct config c;
    cr_assert_eq(config_defaults(&c), 0);
    char err[256];
    cr_expect_eq(parse_args(&c, err, sizeof(err), "--help", NULL), CONFIG_HELP);
    cr_expect_eq(
        parse_args(&c, err, sizeof(err), "--port", "9", "-h", "--bogus", NULL),
        CONFIG_HELP);
    cr_expect_eq(parse_args(&c, err, sizeof(err), "--print-config", "--port",
                            "7777", NULL),
                 CONFIG_PRINT);
    cr_expect_eq(c.port, 7777, "flags after --print-config still apply");
    cr_expect_eq(
        parse_args(&c, err, sizeof(err), "--print-config", "--port", "x", NULL),
        RK_ECONFIG);
    config_free(&c);
}

static void expect_args_error(const char *want, ...)
{
    char *argv[16];
    int argc = 0;
    argv[argc++] = "ringkv";
    va_list ap;
    va_start(ap, want);
    char *a;
    while ((a = va_arg(ap, char *)) != NULL && argc < 15)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    struct config c;
    cr_assert_eq(config_defaults(&c), 0);
    char err[256] = "";
    cr_expect_eq(config_parse_args(&c, argc, argv, err, sizeof(err)),
                 RK_ECONFIG);
    cr_expect_str_eq(err, want);
    config_free(&c);
}

Test(config, bad_command_lines_are_config_errors_with_a_message)
{
    expect_args_error("unknown option \"--bogus\" (see --help)", "--bogus", "1",
                      NULL);
    expect_args_error("--port needs a value", "--port", NULL);
    expect_args_error("unexpected argument \"stray\" (see --help)", "stray",
                      NULL);
    expect_args_error("unexpected argument \"-p\" (see --help)", "-p", "1",
                      NULL);
    expect_args_error("unexpected argument \"--\" (see --help)", "--", NULL);
    expect_args_error("--port: \"x\" is not a number", "--port", "x", NULL);
    expect_args_error("--data-dir: control character in value", "--data-dir",
                      "a\nb", NULL);
    expect_args_error("--max-frame: 2GiB is outside the range 1KiB..1GiB",
                      "--max-frame=2GiB", NULL);
}

/* ---- single values ------------------------------------------------------ */

Test(config, sizes_accept_binary_units_in_any_case)
{
    static const struct {
        const char *in;
        uint64_t want;
    } ok[] = {
        {"0", 0},
        {"1024", 1024},
        {"7b", 7},
        {"1k", 1024},
        {"1K", 1024},
        {"1kb", 1024},
        {"1KiB", 1024},
        {"3 MiB", 3ull << 20},
        {"2m", 2ull << 20},
        {"1MB", 1ull << 20},
        {"1g", 1ull << 30},
        {"1GiB", 1ull << 30},
        {"1gb", 1ull << 30},
        {"2t", 2ull << 40},
        {"2TiB", 2ull << 40},
        {"16777215TiB", 16777215ull << 40},
        {"18446744073709551615", UINT64_MAX},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        uint64_t v = 42;
        cr_expect_eq(config_parse_size(ok[i].in, &v), 0, "%s", ok[i].in);
        cr_expect_eq(v, ok[i].want, "%s", ok[i].in);
    }
    static const char *const bad[] = {
        "",
        " 1",
        "k",
        "1x",
        "1.5g",
        "-1",
        "+1",
        "1 k b",
        "1kk",
        "1gib2",
        "0x10",
        "16777216TiB",
        "18446744073709551616",
        "99999999999999999999999999k",
        "1\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t v = 42;
        cr_expect_eq(config_parse_size(bad[i], &v), RK_ECONFIG, "\"%s\"",
                     bad[i]);
        cr_expect_eq(v, 42, "\"%s\" left *out alone", bad[i]);
    }
}

Test(config, size_errors_say_why)
{
    struct config c;
    cr_assert_eq(config_defaults(&c), 0);
    char err[256];
    cr_expect_eq(config_set(&c, "map_size", "16777216TiB", err, sizeof(err)),
                 RK_ECONFIG);
    cr_expect_str_eq(err, "map_size: \"16777216TiB\" is too large (range "
                          "1MiB..64TiB)");
    cr_expect_eq(config_set(&c, "map_size", "1XB", err, sizeof(err)),
                 RK_ECONFIG);
    cr_expect_str_eq(err, "map_size: \"1XB\" has an unknown unit (use b, k, "
                          "m, g, t, KiB, MiB, GiB, TiB)");
    cr_expect_eq(config_set(&c, "map_size", "65TiB", err, sizeof(err)),
                 RK_ECONFIG);
    cr_expect_str_eq(err, "map_size: 65TiB is outside the range "
                          "1MiB..64TiB");
    cr_expect_eq(config_set(&c, "map_size", "64TiB", err, sizeof(err)), 0);
    cr_expect_eq(c.map_size, 64ull << 40);
    config_free(&c);
}

Test(config, durations_default_to_milliseconds_and_take_units)
{
    static const struct {
        const char *in;
        uint64_t want;
    } ok[] = {
        {"0", 0},        {"250", 250},
        {"500ms", 500},  {"2s", 2000},
        {"2 S", 2000},   {"1m", 60000},
        {"1min", 60000}, {"1h", 3600000},
        {"10MS", 10},    {"18446744073709551615ms", UINT64_MAX},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        uint64_t v = 42;
        cr_expect_eq(config_parse_duration(ok[i].in, &v), 0, "%s", ok[i].in);
        cr_expect_eq(v, ok[i].want, "%s", ok[i].in);
    }
    static const char *const bad[] = {
        "",
        "s",
        "1d",
        "1.5s",
        "-1s",
        "1 s s",
        "1sec",
        "5124095576030432h",
        "18446744073709551616",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t v = 42;
        cr_expect_eq(config_parse_duration(bad[i], &v), RK_ECONFIG, "\"%s\"",
                     bad[i]);
        cr_expect_eq(v, 42);
    }
    struct config c;
    cr_assert_eq(config_defaults(&c), 0);
    char err[256];
    cr_expect_eq(config_set(&c, "fsync_interval", "0", err, sizeof(err)),
                 RK_ECONFIG);
    cr_expect_str_eq(err, "fsync_interval: 0 is outside the range 1ms..1h");
    cr_expect_eq(config_set(&c, "idle_timeout", "0", err, sizeof(err)), 0);
    cr_expect_eq(c.idle_timeout, 0);
    cr_expect_eq(config_set(&c, "idle_timeout", "2h", err, sizeof(err)), 0);
    cr_expect_eq(c.idle_timeout, 7200000);
    config_free(&c);
}

Test(config, uints_are_plain_digits_with_overflow_detected)
{
    uint64_t v = 42;
    cr_expect_eq(config_parse_uint("0", &v), 0);
    cr_expect_eq(v, 0);
    cr_expect_eq(config_parse_uint("007", &v), 0);
    cr_expect_eq(v, 7);
    cr_expect_eq(config_parse_uint("18446744073709551615", &v), 0);
    cr_expect_eq(v, UINT64_MAX);
    static const char *const bad[] = {"",
                                      " 1",
                                      "1 ",
                                      "1k",
                                      "-1",
                                      "+1",
                                      "1e3",
                                      "0x1",
                                      "18446744073709551616",
                                      "99999999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = 42;
        cr_expect_eq(config_parse_uint(bad[i], &v), RK_ECONFIG, "\"%s\"",
                     bad[i]);
        cr_expect_eq(v, 42);
    }

    struct config c;
    cr_assert_eq(config_defaults(&c), 0);
    char err[256];
    cr_expect_eq(config_set(&c, "port", "0", err, sizeof(err)), RK_ECONFIG);
    cr_expect_str_eq(err, "port: 0 is outside the range 1..65535");
    cr_expect_eq(config_set(&c, "port", "65536", err, sizeof(err)), RK_ECONFIG);
    cr_expect_eq(
        config_set(&c, "port", "99999999999999999999", err, sizeof(err)),
        RK_ECONFIG);
    cr_expect_str_eq(err, "port: \"99999999999999999999\" is too large "
                          "(range 1..65535)");
    cr_expect_eq(config_set(&c, "port", "65535", err, sizeof(err)), 0);
    cr_expect_eq(c.port, 65535);
    cr_expect_eq(config_set(&c, "partitions", "65536", err, sizeof(err)), 0);
    cr_expect_eq(c.partitions, 65536);
    cr_expect_eq(config_set(&c, "partitions", "65537", err, sizeof(err)),
                 RK_ECONFIG);
    config_free(&c);
}

Test(config, bools_take_the_usual_words)
{
    static const char *const yes[] = {"yes", "YES", "true", "True", "on", "1"};
    static const char *const no[] = {"no", "No", "false", "FALSE", "off", "0"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        bool b = false;
        cr_expect_eq(config_parse_bool(yes[i], &b), 0, "%s", yes[i]);
        cr_expect(b, "%s", yes[i]);
        b = true;
        cr_expect_eq(config_parse_bool(no[i], &b), 0, "%s", no[i]);
        cr_expect_not(b, "%s", no[i]);
    }
    static const char *const bad[] = {"", "y", "2", "yes ", "enable", "01"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        bool b = true;
        cr_expect_eq(config_parse_bool(bad[i], &b), RK_ECONFIG, "\"%s\"",
                     bad[i]);
        cr_expect(b);
    }
}

Test(config, enums_take_their_words_in_any_case_only)
{
    struct config c;
    cr_assert_eq(config_defaults(&c), 0);
    char err[256];
    cr_expect_eq(config_set(&c, "log_level", "WARN", err, sizeof(err)), 0);
    cr_expect_eq(c.log_level, CONFIG_LOG_WARN);
    cr_expect_eq(config_set(&c, "log-level", "error", err, sizeof(err)), 0);
    cr_expect_eq(c.log_level, CONFIG_LOG_ERROR);
    cr_expect_eq(config_set(&c, "log_level", "verbose", err, sizeof(err)),
                 RK_ECONFIG);
    cr_expect_str_eq(err, "log_level: \"verbose\" is not one of debug, info, "
                          "warn, error");
    cr_expect_eq(config_set(&c, "log_level", "", err, sizeof(err)), RK_ECONFIG);
    cr_expect_eq(config_set(&c, "log_level", "info ", err, sizeof(err)),
                 RK_ECONFIG);
    cr_expect_eq(c.log_level, CONFIG_LOG_ERROR, "unchanged on error");
    cr_expect_eq(config_set(&c, "nope", "1", err, sizeof(err)), RK_ECONFIG);
    cr_expect_str_eq(err, "unknown option \"nope\"");
    config_free(&c);
}

Test(config, find_treats_dashes_and_underscores_alike)
{
    cr_expect_not_null(config_find("data_dir"));
    cr_expect_eq(config_find("data-dir"), config_find("data_dir"));
    cr_expect_null(config_find("data"));
    cr_expect_null(config_find("data_dir_"));
    cr_expect_null(config_find("DATA_DIR"));
    cr_expect_null(config_find(""));
}

/* ---- validation --------------------------------------------------------- */

/* Sets key = value (and key2 = value2 unless key2 is NULL). */
static void expect_invalid2(const char *key, const char *value,
                            const char *key2, const char *value2,
                            const char *want)
{
    struct config c;
    cr_assert_eq(config_defaults(&c), 0);
    char err[256] = "";
    cr_assert_eq(config_set(&c, key, value, err, sizeof(err)), 0, "%s", err);
    if (key2 != NULL)
        cr_assert_eq(config_set(&c, key2, value2, err, sizeof(err)), 0, "%s",
                     err);
    cr_expect_eq(config_validate(&c, err, sizeof(err)), RK_ECONFIG, "%s = %s",
                 key, value);
    cr_expect_str_eq(err, want);
    config_free(&c);
}

static void expect_invalid(const char *key, const char *value, const char *want)
{
    expect_invalid2(key, value, NULL, NULL, want);
}

Test(config, validate_checks_what_single_values_cannot)
{
    expect_invalid("partitions", "48",
                   "partitions (48) must be a power of "
                   "two");
    expect_invalid("resp_port", "7001", "port and resp_port are both 7001");
    expect_invalid2("n", "2", "w", "3",
                    "r (2) and w (3) must not exceed n (2)");
    expect_invalid("peers", "node2@h:1",
                   "peers does not list this node (node_id node1)");
    expect_invalid("peers", "node1@127.0.0.1:7001,node1@h:2",
                   "peers: node1 is listed twice");
    expect_invalid("peers", "node1@127.0.0.1:7002",
                   "peers lists node1 at port 7002 but port is 7001");
    expect_invalid("peers", "node1@127.0.0.1",
                   "peers: \"node1@127.0.0.1\" has no :port");
    expect_invalid("peers", "node1:7001",
                   "peers: \"node1:7001\" is not id@host:port");
    expect_invalid("max_value", "9MiB",
                   "max_value (9437184) exceeds max_frame (8388608)");
    expect_invalid("max_frame", "2MiB",
                   "max_value (4194304) exceeds max_frame (2097152)");
    expect_invalid("node_id", "", "node_id must be 1..64 bytes long");
    expect_invalid("node_id", "a b",
                   "node_id \"a b\" may hold only "
                   "printable ASCII without spaces");
    expect_invalid("node_id",
                   "12345678901234567890123456789012345678901234567890"
                   "123456789012345",
                   "node_id must be 1..64 bytes long");
    expect_invalid("data_dir", "", "data_dir must not be empty");
    expect_invalid("listen", "", "listen must not be empty");
    expect_invalid("max_db_size", "512MiB",
                   "map_size (1073741824) exceeds max_db_size (536870912)");
}

Test(config, peers_need_a_cluster_secret_and_max_record_fits_a_frame)
{
    expect_invalid("peers", "node1@127.0.0.1:7001,node2@h:2",
                   "peers are configured but no cluster secret: make one "
                   "with `head -c 32 /dev/urandom | base64 > secret && "
                   "chmod 600 secret` and set cluster_secret_file = secret "
                   "on every node");
    expect_invalid("cluster_secret", "short",
                   "cluster_secret must be at least 16 bytes; make one with: "
                   "head -c 32 /dev/urandom | base64");
    expect_invalid2("cluster_secret", "0123456789abcdef", "cluster_secret_file",
                    "/x",
                    "set cluster_secret or cluster_secret_file, not both");
    expect_invalid("cluster_name", "",
                   "cluster_name must be 1..255 bytes long");
    expect_invalid("max_record", "8MiB",
                   "max_record (8388608) must leave 640 bytes of max_frame "
                   "(8388608) for the frame envelope: at most 8387968");

    /* Setting only max_frame and max_value stays valid: max_record
     * follows max_frame. A secret makes peers valid. */
    struct config c;
    char err[256] = "";
    cr_assert_eq(config_defaults(&c), 0);
    cr_assert_eq(config_set(&c, "max_frame", "64KiB", err, sizeof(err)), 0);
    cr_assert_eq(config_set(&c, "max_value", "40KiB", err, sizeof(err)), 0);
    cr_assert_eq(config_set(&c, "peers", "node1@127.0.0.1:7001,node2@h:2", err,
                            sizeof(err)),
                 0);
    cr_assert_eq(config_set(&c, "cluster_secret_file", "/s", err, sizeof(err)),
                 0);
    cr_expect_eq(config_validate(&c, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(config_max_record(&c), 64 * 1024 - 640);
    cr_assert_eq(config_set(&c, "max_record", "1000", err, sizeof(err)), 0);
    cr_expect_eq(config_max_record(&c), 1000);
    config_free(&c);
}

Test(config, validate_accepts_edge_values)
{
    struct config c;
    cr_assert_eq(config_defaults(&c), 0);
    char err[256] = "";
    cr_assert_eq(config_set(&c, "partitions", "1", err, sizeof(err)), 0);
    cr_assert_eq(config_set(&c, "resp_port", "0", err, sizeof(err)), 0);
    cr_assert_eq(config_set(&c, "max_value", "8MiB", err, sizeof(err)), 0);
    cr_expect_eq(config_validate(&c, err, sizeof(err)), 0, "%s", err);
    config_free(&c);
}

Test(config, validate_rechecks_ranges_of_values_set_by_code)
{
    struct config c;
    cr_assert_eq(config_defaults(&c), 0);
    char err[256] = "";
    c.port = 0;
    cr_expect_eq(config_validate(&c, err, sizeof(err)), RK_ECONFIG);
    cr_expect_str_eq(err, "port: 0 is outside the range 1..65535");
    c.port = 7001;
    c.partitions = 0;
    cr_expect_eq(config_validate(&c, err, sizeof(err)), RK_ECONFIG);
    c.partitions = 64;
    c.fsync = (enum config_fsync)7;
    cr_expect_eq(config_validate(&c, err, sizeof(err)), RK_ECONFIG);
    cr_expect_str_eq(err, "fsync: invalid value 7");
    config_free(&c);
}

Test(config, peers_lists_every_member_with_this_node_found_by_id)
{
    struct config c;
    struct config_member m[4];
    uint32_t n = 0, self = 9;
    char err[256] = "";
    cr_assert_eq(config_defaults(&c), 0);
    cr_assert_eq(config_set(&c, "peers",
                            " a@10.0.0.1:7001, node1@127.0.0.1:7001 ,"
                            "c@[::1]:9",
                            err, sizeof(err)),
                 0, "%s", err);
    cr_assert_eq(config_members(&c, m, 4, &n, &self, err, sizeof(err)), 0, "%s",
                 err);
    cr_assert_eq(n, 3);
    cr_assert_eq(self, 1);
    cr_expect_str_eq(m[0].id, "a");
    cr_expect_str_eq(m[0].host, "10.0.0.1");
    cr_expect_eq(m[0].port, 7001);
    cr_expect_str_eq(m[2].host, "::1");
    cr_expect_eq(m[2].port, 9);
    config_free(&c);

    /* No peers: a cluster of this node alone. */
    cr_assert_eq(config_defaults(&c), 0);
    cr_assert_eq(config_members(&c, m, 4, &n, &self, err, sizeof(err)), 0);
    cr_assert_eq(n, 1);
    cr_expect_str_eq(m[0].id, "node1");
    cr_expect_eq(m[0].port, 7001);
    config_free(&c);
}

/* ---- printing ----------------------------------------------------------- */

Test(config, dump_reads_back_as_the_same_configuration)
{
    struct config c;
    cr_assert_eq(config_defaults(&c), 0);
    char err[256] = "";
    const char *set[][2] = {
        {"node_id", "n#1"},      {"data_dir", "/a b/\"c\"\\d #e"},
        {"listen", "::1"},       {"log_file", ""},
        {"fsync", "interval"},   {"fsync_interval", "1500"},
        {"map_size", "1536MiB"}, {"max_key", "300"},
        {"idle_timeout", "90s"}, {"log_level", "debug"},
    };
    for (size_t i = 0; i < sizeof(set) / sizeof(set[0]); i++)
        cr_assert_eq(config_set(&c, set[i][0], set[i][1], err, sizeof(err)), 0,
                     "%s", err);

    char *text = dump_text(&c);
    cr_expect(strstr(text, "fsync_interval = 1500ms\n") != NULL, "%s", text);
    cr_expect(strstr(text, "map_size = 1536MiB\n") != NULL, "%s", text);
    cr_expect(strstr(text, "idle_timeout = 90s\n") != NULL, "%s", text);
    cr_expect(strstr(text, "log_file = \"\"\n") != NULL, "%s", text);
    cr_expect(strstr(text, "data_dir = \"/a b/\\\"c\\\"\\\\d #e\"\n") != NULL,
              "%s", text);

    struct loaded l;
    load_text(&l, text);
    cr_assert_eq(l.rc, 0, "%s\n%s", l.err, text);
    expect_same(&c, &l.c);
    cr_expect_str_eq(l.c.data_dir, "/a b/\"c\"\\d #e");
    free(text);
    config_free(&l.c);
    config_free(&c);
}

Test(config, print_config_never_shows_the_cluster_secret)
{
    static const char secret[] = "s3cret-s3cret-s3cret-1234567890abcdef";
    struct config c;
    char err[256] = "";
    cr_assert_eq(config_defaults(&c), 0);
    cr_assert_eq(config_set(&c, "cluster_secret", secret, err, sizeof(err)), 0,
                 "%s", err);

    char *text = dump_text(&c);
    cr_expect(strstr(text, secret) == NULL, "the secret is printed:\n%s", text);
    cr_expect(
        strstr(text, "# cluster_secret = (set, 37 bytes; not printed)\n") !=
            NULL,
        "%s", text);
    /* A file saved from the dump has no secret, rather than a placeholder
     * taken for one. */
    struct loaded l;
    load_text(&l, text);
    cr_assert_eq(l.rc, 0, "%s\n%s", l.err, text);
    cr_expect_str_eq(l.c.cluster_secret, "");
    config_free(&l.c);
    free(text);

    /* Nor do the errors about a secret quote it. */
    static const char bad[] = "short-secret\x01";
    cr_expect_neq(config_set(&c, "cluster_secret", bad, err, sizeof(err)), 0);
    cr_expect(strstr(err, "short-secret") == NULL, "%s", err);
    cr_assert_eq(
        config_set(&c, "cluster_secret", "short-secret", err, sizeof(err)), 0);
    cr_expect_neq(config_validate(&c, err, sizeof(err)), 0);
    cr_expect(strstr(err, "short-secret") == NULL, "%s", err);
    char *argv[] = {"ringkv", "-cluster-secret=short-secret", NULL};
    cr_expect_eq(config_parse_args(&c, 2, argv, err, sizeof(err)), RK_ECONFIG);
    cr_expect_str_eq(
        err, "unexpected argument \"-cluster-secret=...\" (see --help)");
    config_free(&c);
}

Test(config, format_reports_the_needed_length_when_truncated)
{
    struct config c;
    cr_assert_eq(config_defaults(&c), 0);
    const struct config_option *opt = config_find("listen");
    char buf[4];
    cr_expect_eq(config_format(&c, opt, buf, sizeof(buf)), 9);
    cr_expect_str_eq(buf, "127");
    char err[64];
    cr_assert_eq(config_set(&c, "node_id", "a b", err, sizeof(err)), 0);
    cr_expect_eq(config_format(&c, config_find("node_id"), buf, sizeof(buf)),
                 5);
    cr_expect_str_eq(buf, "\"a ");
    config_free(&c);
}

Test(config, help_lists_every_option_as_a_flag)
{
    char *help = capture(config_print_help);
    size_t n;
    const struct config_option *opts = config_options(&n);
    for (size_t i = 0; i < n; i++) {
        char flag[80];
        snprintf(flag, sizeof(flag), "  --%s ", opts[i].name);
        for (char *p = flag + 4; *p != '\0'; p++)
            *p = *p == '_' ? '-' : *p;
        cr_expect(strstr(help, flag) != NULL, "help lacks \"%s\"", flag);
    }
    cr_expect(strstr(help, "--config FILE") != NULL);
    cr_expect(strstr(help, "--print-config") != NULL);
    for (char *line = help; *line != '\0';) {
        size_t w = strcspn(line, "\n");
        cr_expect_leq(w, 80, "help line too long: %.*s", (int)w, line);
        line += w + (line[w] == '\n');
    }
    free(help);
}

Test(config, example_file_matches_the_table)
{
    const char *path = RINGKV_SOURCE_DIR "/ringkv.conf";
    char *want = capture(config_print_example);
    if (update_docs())
        write_file(path, want);
    char *have = slurp(path);
    cr_assert_not_null(have, "cannot read %s", path);
    cr_expect_str_eq(have, want,
                     "ringkv.conf is out of date; regenerate it with "
                     "RINGKV_UPDATE_DOCS=1 test_config");
    free(have);
    free(want);
}

Test(config, example_file_parses_to_exactly_the_defaults)
{
    struct config def, file;
    cr_assert_eq(config_defaults(&def), 0);
    cr_assert_eq(config_defaults(&file), 0);
    /* Start the file's config far from the defaults, so every option must
     * be set by the file. */
    char err[512] = "";
    size_t n;
    const struct config_option *opts = config_options(&n);
    static const char *const other[] = {"x", "3", "7m", "never", "no"};
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < sizeof(other) / sizeof(other[0]); k++) {
            if (config_set(&file, opts[i].name, other[k], NULL, 0) == 0)
                break;
        }
    }
    cr_assert_eq(config_load_file(&file, RINGKV_SOURCE_DIR "/ringkv.conf", err,
                                  sizeof(err)),
                 0, "%s", err);
    expect_same(&def, &file);
    config_free(&def);
    config_free(&file);
}

Test(config, docs_reference_table_matches_the_table)
{
    const char *path = RINGKV_SOURCE_DIR "/docs/config.md";
    static const char begin[] = "<!-- options:begin -->\n";
    static const char end[] = "<!-- options:end -->\n";
    char *table = capture(config_print_markdown);
    char *doc = slurp(path);
    cr_assert_not_null(doc, "cannot read %s", path);
    char *b = strstr(doc, begin);
    char *e = b != NULL ? strstr(b, end) : NULL;
    cr_assert(b != NULL && e != NULL, "%s lacks the option table markers",
              path);
    b += sizeof(begin) - 1;
    if (update_docs()) {
        FILE *f = fopen(path, "wb");
        cr_assert_not_null(f);
        fwrite(doc, 1, (size_t)(b - doc), f);
        fputs(table, f);
        fputs(e, f);
        fclose(f);
    } else {
        size_t len = (size_t)(e - b);
        cr_expect(len == strlen(table) && memcmp(b, table, len) == 0,
                  "the table in docs/config.md is out of date; regenerate "
                  "it with RINGKV_UPDATE_DOCS=1 test_config\nwant:\n%s",
                  table);
    }
    free(doc);
    free(table);
}

Test(config, seeds_and_join_make_one_list_of_host_ports)
{
    struct config c;
    char seeds[CONFIG_MAX_SEEDS][CONFIG_ADDR_MAX + 1];
    uint32_t n = 0;
    char err[256] = "";
    cr_assert_eq(config_defaults(&c), 0);
    cr_assert_eq(
        config_set(&c, "seeds", " 10.0.0.1:7001,, [::1]:9 ,", err, sizeof(err)),
        0, "%s", err);
    cr_assert_eq(config_set(&c, "join", "h:1", err, sizeof(err)), 0);
    cr_assert_eq(
        config_seeds(&c, seeds, CONFIG_MAX_SEEDS, &n, err, sizeof(err)), 0,
        "%s", err);
    cr_assert_eq(n, 3);
    cr_expect_str_eq(seeds[0], "10.0.0.1:7001");
    cr_expect_str_eq(seeds[1], "[::1]:9");
    cr_expect_str_eq(seeds[2], "h:1");

    cr_assert_eq(config_set(&c, "seeds", "a:1,b:70000", err, sizeof(err)), 0);
    cr_assert_eq(config_seeds(&c, NULL, 0, &n, err, sizeof(err)), RK_ECONFIG);
    cr_expect_str_eq(err, "seeds: bad port in \"b:70000\"");
    cr_assert_eq(config_set(&c, "seeds", "nohost", err, sizeof(err)), 0);
    cr_assert_eq(config_seeds(&c, NULL, 0, &n, err, sizeof(err)), RK_ECONFIG);
    cr_expect_str_eq(err, "seeds: \"nohost\" is not host:port");
    config_free(&c);
}
