/*
 * test_cli.c - ringkv-cli's error messages, as a user sees them on stderr:
 * an unknown host, values and keys over a limit (the CLI's own and the
 * node's, each naming the limit and the size), and an indefinite write
 * that says "indefinite" once and carries the node's own timeout message
 * (the CLI waits longer than the node's request_timeout by default).
 */
#include "tests/integration/itest.h"

TestSuite(cli, .timeout = 120, .fini = itest_cleanup);

#define CLI RINGKV_BIN_DIR "/ringkv-cli"

static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

Test(cli, an_unknown_host_says_it_cannot_be_resolved)
{
    char out[1024];
    int rc = itest_sh(out, sizeof(out),
                      CLI " -h nosuchhost.invalid ping 2>&1; echo \"rc=$?\"");
    cr_assert_eq(rc, 0);
    cr_assert(strstr(out, "cannot resolve host 'nosuchhost.invalid'") != NULL,
              "%s", out);
    cr_assert(strstr(out, "rc=2") != NULL, "%s", out);
}

Test(cli, a_value_over_the_clis_max_value_names_the_limit_and_the_size)
{
    char dir[] = "/tmp/ringkv-cli-XXXXXX";
    char out[1024];
    cr_assert(mkdtemp(dir) != NULL);
    /* No node needed: the CLI refuses before connecting. 4 MiB is the
     * node's default max_value. */
    itest_sh(out, sizeof(out),
             "head -c 5000000 /dev/zero >%s/big && " CLI
             " -p 1 put k --file %s/big 2>&1",
             dir, dir);
    itest_sh(NULL, 0, "rm -rf %s", dir);
    cr_assert(strstr(out, "value of 5000000 bytes exceeds max_value "
                          "(4194304 bytes") != NULL,
              "%s", out);
}

Test(cli, the_nodes_too_large_errors_name_the_limit_and_the_size)
{
    struct itest_node *n = itest_start("--max-value", "100", NULL);
    char out[2048];
    itest_sh(out, sizeof(out),
             CLI " -p %d --max-value 1000 put k "
                 "\"$(head -c 200 /dev/zero | tr '\\0' v)\" 2>&1",
             n->port);
    cr_assert(strstr(out, "too_large: value of 200 bytes exceeds max_value "
                          "(100 bytes)") != NULL,
              "%s", out);
    itest_sh(out, sizeof(out),
             CLI " -p %d put \"$(head -c 600 /dev/zero | tr '\\0' k)\" v 2>&1",
             n->port);
    cr_assert(strstr(out, "too_large: key of 600 bytes exceeds max_key "
                          "(500 bytes)") != NULL,
              "%s", out);
}

Test(cli, an_indefinite_write_shows_the_nodes_timeout_and_says_so_once)
{
    /* The node's default request_timeout (5 s) and the CLI's default
     * --timeout: the node's own message must arrive first. */
    struct itest_node *n = itest_cluster(3, "--fsync", "never", NULL);
    cr_assert_eq(kill(itest_nodes[2].pid, SIGSTOP), 0);
    char out[2048];
    itest_sh(out, sizeof(out), CLI " -p %d --w 3 put k v 2>&1", n->port);
    kill(itest_nodes[2].pid, SIGCONT);
    cr_assert(strstr(out, "timeout: ") != NULL, "%s", out);
    cr_assert_eq(count_of(out, "may have been applied"), 1, "%s", out);
    cr_assert_eq(count_of(out, "indefinite"), 1, "%s", out);
    cr_assert(strstr(out, "system:") == NULL, "%s", out);
}
