/*
 * test_bench_opts.c - ringkv-bench's command line (client/bench.h): the
 * defaults, every option parsed, and bad values refused with a message
 * naming the option and what is allowed.
 */
#include <errno.h>
#include <string.h>

#include <criterion/criterion.h>

#include "client/bench.h"

TestSuite(bench_opts, .timeout = 10);

static int parse(struct bench_opts *o, char *err, size_t errlen, ...)
{
    char *argv[64] = {"ringkv-bench"};
    int argc = 1;
    va_list ap;
    va_start(ap, errlen);
    for (char *a = va_arg(ap, char *); a != NULL; a = va_arg(ap, char *))
        argv[argc++] = a;
    va_end(ap);
    err[0] = '\0';
    return bench_opts_parse(o, argc, argv, err, errlen);
}

#define OK(...)                                                                \
    do {                                                                       \
        char e_[300];                                                          \
        cr_assert_eq(parse(&o, e_, sizeof(e_), __VA_ARGS__, NULL), 0, "%s",    \
                     e_);                                                      \
    } while (0)

#define BAD(msg, ...)                                                          \
    do {                                                                       \
        char e_[300];                                                          \
        cr_assert_eq(parse(&o, e_, sizeof(e_), __VA_ARGS__, NULL), -EINVAL);   \
        cr_assert(strstr(e_, msg) != NULL, "message '%s' lacks '%s'", e_,      \
                  msg);                                                        \
    } while (0)

Test(bench_opts, defaults)
{
    struct bench_opts o;
    char err[300];
    cr_assert_eq(parse(&o, err, sizeof(err), NULL), 0);
    cr_assert_eq(o.nnodes, 1);
    cr_assert_str_eq(o.nodes[0].host, "127.0.0.1");
    cr_assert_eq(o.nodes[0].port, 7379);
    cr_assert_eq(o.connections, 4);
    cr_assert_eq(o.pipeline, 1);
    cr_assert_eq(o.threads, 1);
    cr_assert_eq(o.ops, 0);
    cr_assert_eq(o.dist, BENCH_DIST_UNIFORM);
    cr_assert_eq(o.read_ratio, 0.5);
    cr_assert_eq(o.rate, 0);
    cr_assert_eq(o.ndelays, 7);
    cr_assert_eq(o.delays_ms[6], 100);
}

Test(bench_opts, every_option_is_parsed)
{
    struct bench_opts o;
    OK("--nodes", "a:1,[::1]:2,host.example:65535", "--connections", "8",
       "--pipeline", "16", "--threads", "2", "--ops", "1000", "--warmup", "0.5",
       "--keys", "50", "--dist", "zipf:0.8", "--value-size", "10", "--workload",
       "f", "--r", "2", "--w", "3", "--rate", "2500.5", "--json", "--seed",
       "99", "--delays", "0,3,7.5");
    cr_assert_eq(o.nnodes, 3);
    cr_assert_str_eq(o.nodes[1].host, "[::1]");
    cr_assert_eq(o.nodes[2].port, 65535);
    cr_assert_eq(o.connections, 8);
    cr_assert_eq(o.pipeline, 16);
    cr_assert_eq(o.threads, 2);
    cr_assert_eq(o.ops, 1000);
    cr_assert_eq(o.warmup_s, 0.5);
    cr_assert_eq(o.keys, 50);
    cr_assert_eq(o.dist, BENCH_DIST_ZIPF);
    cr_assert_eq(o.theta, 0.8);
    cr_assert_eq(o.value_size, 10);
    cr_assert(o.rmw);
    cr_assert_eq(o.read_ratio, 0.5);
    cr_assert_eq(o.r, 2);
    cr_assert_eq(o.w, 3);
    cr_assert_eq(o.rate, 2500.5);
    cr_assert(o.json);
    cr_assert_eq(o.seed, 99);
    cr_assert_eq(o.ndelays, 3);
    cr_assert_eq(o.delays_ms[2], 7.5);
    OK("--dist", "zipf");
    cr_assert_eq(o.theta, 0.99);
    OK("--workload", "b");
    cr_assert_eq(o.read_ratio, 0.95);
    OK("--workload", "c");
    cr_assert_eq(o.read_ratio, 1.0);
    OK("--read-ratio", "0.25");
    cr_assert_eq(o.read_ratio, 0.25);
    cr_assert(!o.rmw);
    OK("--ops", "5", "--duration", "3");
    cr_assert_eq(o.ops, 0);
    cr_assert_eq(o.duration_s, 3);
    OK("--resp", "--nodes", "h:6379");
    cr_assert(o.resp);
    OK("--staleness", "--value-size", "12");
    cr_assert(o.staleness);
    OK("--help");
    cr_assert(o.help);
}

Test(bench_opts, bad_numbers_are_refused_with_the_range)
{
    struct bench_opts o;
    BAD("--pipeline: '0' is not an integer in 1..4096", "--pipeline", "0");
    BAD("--connections: 'abc' is not an integer", "--connections", "abc");
    BAD("--connections: '-3'", "--connections", "-3");
    BAD("--threads: '65'", "--threads", "65");
    BAD("--keys: '0'", "--keys", "0");
    BAD("--value-size: '4194305'", "--value-size", "4194305");
    BAD("--read-ratio: '1.5' is not a number in 0..1", "--read-ratio", "1.5");
    BAD("--r: '0' is not an integer in 1..255", "--r", "0");
    BAD("--w: '256'", "--w", "256");
    BAD("--rate: '0'", "--rate", "0");
    BAD("--rate: 'nan'", "--rate", "nan");
    BAD("--duration: '1s'", "--duration", "1s");
    BAD("--ops: ''", "--ops", "");
    BAD("--seed: 'x'", "--seed", "x");
    BAD("--delays: 'x' is not a number of ms", "--delays", "0,x");
}

Test(bench_opts, bad_words_are_refused_with_the_choices)
{
    struct bench_opts o;
    BAD("--dist: 'pareto' is not uniform or zipf[:theta]", "--dist", "pareto");
    BAD("--dist: zipf theta '1.5' must be a number in (0, 1)", "--dist",
        "zipf:1.5");
    BAD("zipf theta '0'", "--dist", "zipf:0");
    BAD("--workload: 'z' is not a, b, c or f", "--workload", "z");
    BAD("--nodes: 'localhost' is not host:port", "--nodes", "localhost");
    BAD("--nodes: port '70000' is not a number in 1..65535", "--nodes",
        "h:70000");
    BAD("--nodes: 'h:' has no valid port", "--nodes", "h:");
    BAD("unknown option '--bogus'", "--bogus", "1");
    BAD("unknown option '--bogus'", "--bogus");
    BAD("--pipeline needs a value", "--pipeline");
    BAD("unexpected argument 'get'", "get");
}

Test(bench_opts, combinations_that_cannot_work_are_refused)
{
    struct bench_opts o;
    BAD("--r and --w need the native protocol", "--resp", "--r", "2");
    BAD("--staleness needs the native protocol", "--resp", "--staleness");
    BAD("--value-size must be at least 12", "--staleness", "--value-size", "4");
    BAD("--rate does not apply to --staleness", "--staleness", "--rate", "10");
    BAD("--threads 5 is more than --connections 2", "--threads", "5",
        "--connections", "2");
    BAD("--keys 2 is fewer than --connections 4", "--staleness", "--keys", "2");
}

Test(bench_opts, the_pbs_calculator_takes_n_r_w_and_k)
{
    struct bench_opts o;
    OK("--pbs-closed-form", "3", "1", "2");
    cr_assert(o.pbs);
    cr_assert_eq(o.pbs_n, 3);
    cr_assert_eq(o.pbs_r, 1);
    cr_assert_eq(o.pbs_w, 2);
    cr_assert_eq(o.pbs_k, 1);
    OK("--pbs-closed-form", "5", "2", "2", "4");
    cr_assert_eq(o.pbs_k, 4);
    BAD("--pbs-closed-form takes N R W [k]", "--pbs-closed-form", "3", "1");
    BAD("R and W must be at most N", "--pbs-closed-form", "3", "4", "1");
    BAD("--pbs-closed-form: k '0'", "--pbs-closed-form", "3", "1", "1", "0");
    BAD("--pbs-closed-form: N 'x'", "--pbs-closed-form", "x", "1", "1");
}
