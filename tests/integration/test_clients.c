/*
 * test_clients.c - the client matrix: real Redis clients, with their
 * default options, against a 3-node cluster's RESP port.
 *
 *   redis-cli        (redis-tools)     binary and 1 MiB values, errors
 *   redis-py 4.3     (python3-redis)   tests/clients/redis_py.py
 *   ioredis 6        (npm)             tests/clients/ioredis.js
 *
 * Each script checks: connect with defaults, SET/GET/MGET/DEL, binary
 * values, a pipeline of 100, a 1 MiB value, errors surfacing as exceptions
 * (and, with two of three nodes down, "unavailable" as an exception, never
 * a value). redis-benchmark runs in test_resp_server.c. ioredis is skipped,
 * saying why, when scripts/test.sh could not install it (npm unreachable).
 */
#include "tests/integration/itest.h"

TestSuite(clients, .timeout = 240, .fini = itest_cleanup);

static void run_matrix(const char *cmd_fmt)
{
    struct itest_node *n = itest_cluster(3, "--fsync", "never", NULL);
    static char out[16384];
    int rc = itest_sh(out, sizeof(out), cmd_fmt, RINGKV_SOURCE_DIR,
                      n->resp_port, "up");
    cr_assert_eq(rc, 0, "healthy cluster: exit %d\n%s", rc, out);
    cr_log_info("%s", out);
    itest_signal(&itest_nodes[1], SIGKILL);
    itest_signal(&itest_nodes[2], SIGKILL);
    rc = itest_sh(out, sizeof(out), cmd_fmt, RINGKV_SOURCE_DIR, n->resp_port,
                  "down");
    cr_assert_eq(rc, 0, "two nodes down: exit %d\n%s", rc, out);
    cr_log_info("%s", out);
}

Test(clients, redis_py)
{
    if (access("/usr/lib/python3/dist-packages/redis/__init__.py", R_OK) != 0)
        cr_assert_fail("python3-redis is not installed: run scripts/deps.sh");
    run_matrix("/usr/bin/python3 %s/tests/clients/redis_py.py %d %s 2>&1");
}

Test(clients, ioredis)
{
    char path[512];
    snprintf(path, sizeof(path),
             "%s/tests/clients/node_modules/ioredis/package.json",
             RINGKV_SOURCE_DIR);
    if (access(path, R_OK) != 0)
        cr_skip_test("ioredis is not installed (npm registry unreachable when "
                     "scripts/test.sh ran `npm ci --prefix tests/clients`)");
    run_matrix("node %s/tests/clients/ioredis.js %d %s 2>&1");
}

Test(clients, redis_cli_binary_and_large_values)
{
    struct itest_node *n = itest_cluster(3, "--fsync", "never", NULL);
    char dir[] = "/tmp/ringkv-cli-XXXXXX";
    char out[4096];
    cr_assert(mkdtemp(dir) != NULL);
    /* Every byte value, and 1 MiB, round-trip byte for byte. */
    int rc = itest_sh(
        out, sizeof(out),
        "cd %s && head -c 1048576 /dev/urandom >big && "
        "printf '\\000\\001\\r\\n\\377 binary' >bin && "
        "redis-cli -p %d -x SET big <big >/dev/null && "
        "redis-cli -p %d -x SET bin <bin >/dev/null && "
        "redis-cli -p %d --raw GET big | head -c 1048576 | cmp - big && "
        "redis-cli -p %d --raw GET bin | head -c 12 | cmp - bin && echo same",
        dir, n->resp_port, n->resp_port, n->resp_port, n->resp_port);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_str_eq(out, "same\n");
    /* Beyond every limit: an error message, not a broken pipe. */
    rc = itest_sh(out, sizeof(out),
                  "cd %s && head -c 20000000 /dev/zero >huge && "
                  "redis-cli -p %d -x SET huge <huge 2>&1",
                  dir, n->resp_port);
    cr_assert(strstr(out, "ERR argument of 20000000 bytes") != NULL,
              "exit %d: %s", rc, out);
    itest_sh(NULL, 0, "rm -rf %s", dir);
}
