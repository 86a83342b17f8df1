/*
 * test_bench.c - ringkv-bench end to end against one real node (and a
 * redis-server when one is installed): a few hundred operations in closed
 * and open loop, native and RESP, each reporting exactly the operations
 * asked for and zero errors; staleness mode on one node (always
 * consistent); the closed-form calculator; setup failures exit 2. Counts
 * and error totals only: no timing is asserted.
 */
#include "tests/integration/itest.h"

TestSuite(bench, .timeout = 180, .fini = itest_cleanup);

#define BENCH RINGKV_BIN_DIR "/ringkv-bench"

/* Runs ringkv-bench with args against port, --json; the JSON in out. */
static void run_json(char *out, size_t cap, int port, const char *args)
{
    int rc =
        itest_sh(out, cap, BENCH " --nodes 127.0.0.1:%d --json --keys 50 %s",
                 port, args);
    cr_assert_eq(rc, 0, "ringkv-bench %s exited %d: %s", args, rc, out);
}

static void assert_clean(const char *out, int total)
{
    char want[64];
    snprintf(want, sizeof(want), "\"total\":%d,", total);
    cr_assert(strstr(out, want) != NULL, "want %s in %s", want, out);
    cr_assert(strstr(out, "\"definite\":0,\"indefinite\":0,"
                          "\"unfinished\":0,") != NULL,
              "errors in %s", out);
}

Test(bench, closed_and_open_loop_native_and_resp_report_every_op)
{
    struct itest_node *n = itest_start("--fsync", "never", NULL);
    char out[8192];
    /* fill the keys first so the reads find them */
    run_json(out, sizeof(out), n->port,
             "--ops 200 --read-ratio 0 --connections 2 --pipeline 4");
    assert_clean(out, 200);
    cr_assert(strstr(out, "\"get\":{\"count\":0,") != NULL, "%s", out);
    cr_assert(strstr(out, "\"put\":{\"count\":200,") != NULL, "%s", out);

    run_json(out, sizeof(out), n->port,
             "--ops 300 --workload a --connections 3 --pipeline 8 "
             "--threads 2");
    assert_clean(out, 300);
    run_json(out, sizeof(out), n->port,
             "--ops 300 --workload f --dist zipf --connections 2");
    assert_clean(out, 300);
    cr_assert(strstr(out, "\"loop\":\"closed\"") != NULL, "%s", out);

    run_json(out, sizeof(out), n->port,
             "--ops 300 --rate 3000 --workload b --connections 2 "
             "--pipeline 4");
    assert_clean(out, 300);
    cr_assert(strstr(out, "\"loop\":\"open\"") != NULL, "%s", out);

    run_json(out, sizeof(out), n->resp_port,
             "--resp --ops 300 --workload a --connections 2 --pipeline 16");
    assert_clean(out, 300);
    cr_assert(strstr(out, "\"protocol\":\"resp\"") != NULL, "%s", out);
    run_json(out, sizeof(out), n->resp_port,
             "--resp --ops 300 --rate 3000 --workload f --connections 2");
    assert_clean(out, 300);
}

Test(bench, the_human_summary_names_every_column_and_the_errors)
{
    struct itest_node *n = itest_start("--fsync", "never", NULL);
    char out[8192];
    int rc =
        itest_sh(out, sizeof(out),
                 BENCH " --nodes 127.0.0.1:%d --ops 100 --keys 20", n->port);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "p50 us") != NULL && strstr(out, "p99.9 us") &&
                  strstr(out, "max us") != NULL,
              "%s", out);
    cr_assert(strstr(out, "errors: definite 0, indefinite 0") != NULL, "%s",
              out);
}

Test(bench, staleness_on_one_node_is_always_consistent)
{
    struct itest_node *n = itest_start("--fsync", "never", NULL);
    char out[8192];
    run_json(out, sizeof(out), n->port,
             "--staleness --ops 60 --connections 2 --pipeline 8 "
             "--delays 0,1,5 --value-size 16");
    cr_assert(strstr(out, "\"definite\":0,\"indefinite\":0,") != NULL, "%s",
              out);
    /* 60 writes, each read back at three delays, all the latest version */
    cr_assert(strstr(out, "{\"t_ms\":0,\"reads\":60,\"p_consistent\":1.0") !=
                  NULL,
              "%s", out);
    cr_assert(strstr(out, "{\"t_ms\":5,\"reads\":60,\"p_consistent\":1.0") !=
                  NULL,
              "%s", out);
    cr_assert(strstr(out, "\"ryw_violations\":0,\"monotonic_violations\":0,"
                          "\"undecodable\":0,\"dropped\":0") != NULL,
              "%s", out);
}

Test(bench, the_closed_form_calculator_prints_the_probability)
{
    char out[256];
    cr_assert_eq(itest_sh(out, sizeof(out), BENCH " --pbs-closed-form 3 1 1"),
                 0);
    cr_assert_str_eq(out, "0.333333\n");
    cr_assert_eq(itest_sh(out, sizeof(out), BENCH " --pbs-closed-form 3 1 1 2"),
                 0);
    cr_assert_str_eq(out, "0.555556\n");
}

Test(bench, setup_failures_exit_2_with_a_message)
{
    char out[8192];
    int port = itest_pick_ports(); /* nothing listens there */
    int rc = itest_sh(out, sizeof(out),
                      BENCH " --nodes 127.0.0.1:%d --ops 10 2>&1", port);
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert(strstr(out, "cannot connect to 127.0.0.1:") != NULL, "%s", out);
    rc = itest_sh(out, sizeof(out), BENCH " --pipeline 0 2>&1");
    cr_assert_eq(rc, 2, "%s", out);
    cr_assert(strstr(out, "--pipeline: '0' is not an integer in 1..4096") !=
                  NULL,
              "%s", out);
    rc = itest_sh(out, sizeof(out), BENCH " --help");
    cr_assert_eq(rc, 0);
    cr_assert(strstr(out, "--staleness") != NULL, "%s", out);
}

/* ---- against redis-server ------------------------------------------------ */

static pid_t redis_pid;

static void redis_stop(void)
{
    if (redis_pid > 0) {
        kill(redis_pid, SIGKILL);
        waitpid(redis_pid, NULL, 0);
        redis_pid = 0;
    }
    itest_cleanup();
}

Test(bench, runs_against_a_plain_redis_server, .fini = redis_stop)
{
    if (itest_sh(NULL, 0, "command -v redis-server >/dev/null") != 0)
        cr_skip_test("redis-server is not installed (scripts/deps.sh "
                     "--bench installs it)");
    int port = itest_pick_ports();
    char portarg[16];
    snprintf(portarg, sizeof(portarg), "%d", port);
    redis_pid = fork();
    cr_assert(redis_pid >= 0);
    if (redis_pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        execlp("redis-server", "redis-server", "--port", portarg, "--bind",
               "127.0.0.1", "--save", "", "--appendonly", "no", NULL);
        _exit(127);
    }
    uint64_t deadline = itest_now_ms() + 20000;
    while (itest_port_free(port)) {
        cr_assert(itest_now_ms() < deadline, "redis-server did not start");
        itest_nap();
    }
    char out[8192];
    /* listening is not yet serving: retry the first run briefly */
    int rc = 1;
    while (rc != 0 && itest_now_ms() < deadline) {
        rc = itest_sh(out, sizeof(out),
                      BENCH " --resp --nodes 127.0.0.1:%d --json --keys 50 "
                            "--ops 300 --read-ratio 0 --pipeline 4",
                      port);
        if (rc != 0)
            itest_nap();
    }
    cr_assert_eq(rc, 0, "%s", out);
    assert_clean(out, 300);
    run_json(out, sizeof(out), port,
             "--resp --ops 300 --workload b --connections 2 --pipeline 16");
    assert_clean(out, 300);
    cr_assert(strstr(out, "\"not_found\":0") != NULL, "%s", out);
    run_json(out, sizeof(out), port, "--resp --ops 300 --rate 3000");
    assert_clean(out, 300);
}
