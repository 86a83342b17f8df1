/*
 * test_storage_faults.c - storage faults in a running node (issue 9,
 * findings 4 and 5): a failed fsync or commit stops the node with a clear
 * log line and exit status 1, and the write caught in it is answered as
 * indefinite; an unclean stop under fsync interval gives the node a new
 * epoch (actor) at the next start, a clean one or fsync always keeps it; a
 * map that cannot grow (ftruncate or mmap fails) stops the node too, and the
 * write that needed the room fails definite.
 *
 * Faults come from tests/fault/fault_shim.c, preloaded into the node only
 * (LD_PRELOAD is set for the spawn and unset right after): while a flag
 * file exists, fsync/fdatasync/msync (or writes to *.mdb, or ftruncate and
 * mmap of *.mdb) fail.
 */
#include "tests/integration/itest.h"

static char g_flagdir[64];
static char g_flag[96];

static void faults_cleanup(void)
{
    itest_cleanup();
    if (g_flag[0] != '\0')
        unlink(g_flag);
    if (g_flagdir[0] != '\0')
        rmdir(g_flagdir);
}

TestSuite(storage_faults, .timeout = 120, .fini = faults_cleanup);

/* Starts a node with the fault shim preloaded; flag_env names the flag
 * (RINGKV_FAULT_FILE, RINGKV_FAULT_WRITE_FILE or RINGKV_FAULT_MAP_FILE),
 * not yet created. small_map: a 1 MiB map that may grow to 16 MiB. */
static struct itest_node *
start_faulty_map(const char *flag_env, const char *fsync_policy, bool small_map)
{
    strcpy(g_flagdir, "/tmp/ringkv-fault-XXXXXX");
    cr_assert_not_null(mkdtemp(g_flagdir));
    snprintf(g_flag, sizeof(g_flag), "%s/on", g_flagdir);
    const char *asan = getenv("ASAN_OPTIONS");
    char *saved = asan != NULL ? strdup(asan) : NULL;
    char opts[512];
    snprintf(opts, sizeof(opts), "%s%sverify_asan_link_order=0",
             asan != NULL ? asan : "", asan != NULL ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
    setenv("LD_PRELOAD", RINGKV_FAULT_SHIM, 1);
    setenv(flag_env, g_flag, 1);
    struct itest_node *n =
        small_map
            ? itest_start("--fsync", fsync_policy, "--fsync-interval", "20ms",
                          "--map-size", "1MiB", "--max-db-size", "16MiB", NULL)
            : itest_start("--fsync", fsync_policy, "--fsync-interval", "20ms",
                          NULL);
    unsetenv("LD_PRELOAD");
    unsetenv(flag_env);
    if (saved != NULL)
        setenv("ASAN_OPTIONS", saved, 1);
    else
        unsetenv("ASAN_OPTIONS");
    free(saved);
    return n;
}

static struct itest_node *start_faulty(const char *flag_env,
                                       const char *fsync_policy)
{
    return start_faulty_map(flag_env, fsync_policy, false);
}

static void fault_on(void)
{
    FILE *f = fopen(g_flag, "w");
    cr_assert_not_null(f);
    fclose(f);
}

static void fault_off(void)
{
    unlink(g_flag);
}

/* Waits (up to 30 s) for the node to exit on its own; its wait status. */
static int wait_exit(struct itest_node *n)
{
    uint64_t deadline = itest_now_ms() + 30000;
    int st = 0;
    for (;;) {
        pid_t p = waitpid(n->pid, &st, WNOHANG);
        if (p == n->pid)
            break;
        cr_assert(itest_now_ms() < deadline,
                  "the node did not stop after the storage fault (see %s)",
                  n->log);
        itest_nap();
    }
    n->pid = 0;
    return st;
}

static bool log_has(const struct itest_node *n, const char *what)
{
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "grep -qF -- '%s' '%s'", what, n->log);
    return itest_sh(NULL, 0, "%s", cmd) == 0;
}

static void put_ok(struct rkc *c, const char *k)
{
    struct rkc_result r = {0};
    cr_assert_eq(rkc_put(c, k, strlen(k), k, strlen(k), NULL, 0, &r), 0);
    cr_assert_eq(r.err, 0, "put %s: %s", k, r.message);
    rkc_result_free(&r);
}

static bool has_key(struct rkc *c, const char *k)
{
    struct rkc_result r = {0};
    cr_assert_eq(rkc_get(c, k, strlen(k), &r), 0);
    cr_assert_eq(r.err, 0, "get %s: %s", k, r.message);
    bool found = r.nvalues == 1;
    rkc_result_free(&r);
    return found;
}

static void epoch_of(struct itest_node *n, char *out, size_t cap)
{
    struct rkc *c;
    struct rkc_result r = {0};
    cr_assert_eq(rkc_connect(&c, "127.0.0.1", (uint16_t)n->port, 20000), 0);
    cr_assert_eq(rkc_stats(c, &r), 0);
    out[0] = '\0';
    for (size_t i = 0; i < r.nstats; i++)
        if (strcmp(r.stats[i].name, "epoch") == 0 && r.stats[i].sval != NULL)
            snprintf(out, cap, "%s", r.stats[i].sval);
    cr_assert_neq(out[0], '\0', "stats has the epoch");
    rkc_result_free(&r);
    rkc_close(c);
}

/* Writes "before", switches the fault on, writes "during" and expects the
 * node to stop with status 1 and log_line in its log. With indefinite, the
 * "during" write must fail as indefinite (its commit failed); otherwise it
 * may be acknowledged (the fault hits the later sync). Then restarts the
 * node without the fault and checks "before" is there. */
static void fault_stops_node(struct itest_node *n, bool indefinite,
                             const char *log_line)
{
    struct rkc *c;
    struct rkc_result r = {0};

    cr_assert_eq(rkc_connect(&c, "127.0.0.1", (uint16_t)n->port, 20000), 0);
    put_ok(c, "before");
    fault_on();
    int rc = rkc_put(c, "during", 6, "v", 1, NULL, 0, &r);
    if (indefinite) {
        cr_assert(rc != 0 || r.err != 0,
                  "a write whose commit failed is not ok");
        cr_assert_not(r.definite,
                      "its data may be on disk: indefinite, never definite "
                      "(%s)",
                      r.message);
    }
    rkc_result_free(&r);
    rkc_close(c);
    int st = wait_exit(n);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1,
              "the node exits with status 1 (status %d)", st);
    cr_assert(log_has(n, log_line), "'%s' is logged (%s)", log_line, n->log);
    cr_assert(log_has(n, "stopping the node"));
    fault_off();

    itest_restart(n); /* without the shim */
    cr_assert_eq(rkc_connect(&c, "127.0.0.1", (uint16_t)n->port, 20000), 0);
    cr_assert(has_key(c, "before"));
    rkc_close(c);
}

Test(storage_faults, failed_fsync_under_fsync_always_is_indefinite_and_stops)
{
    struct itest_node *n = start_faulty("RINGKV_FAULT_FILE", "always");
    char e1[64], e2[64];

    epoch_of(n, e1, sizeof(e1));
    fault_stops_node(n, true, "commit failed");
    epoch_of(n, e2, sizeof(e2));
    cr_assert_str_eq(e1, e2, "every commit was synced: the epoch is kept");
    cr_assert(log_has(n, "not closed cleanly"));
}

Test(storage_faults, failed_fsync_under_fsync_interval_stops_the_node)
{
    struct itest_node *n = start_faulty("RINGKV_FAULT_FILE", "interval");
    char e1[64], e2[64];

    epoch_of(n, e1, sizeof(e1));
    /* "during" is acknowledged before its sync; the sync then fails. */
    fault_stops_node(n, false, "fsync failed");
    epoch_of(n, e2, sizeof(e2));
    cr_assert_str_neq(e1, e2, "unsynced commits may be lost: new epoch");
    cr_assert(log_has(n, "new epoch"));
}

Test(storage_faults, failed_commit_write_is_indefinite_and_stops_the_node)
{
    struct itest_node *n = start_faulty("RINGKV_FAULT_WRITE_FILE", "interval");
    fault_stops_node(n, true, "commit failed");
}

/* Finding 4 end to end: kill -9 under fsync interval gives a new epoch,
 * SIGTERM keeps it; under fsync always kill -9 keeps it too. */
static void restart_epochs(const char *policy, bool kill9_renews)
{
    struct itest_node *n = itest_start("--fsync", policy, NULL);
    struct rkc *c;
    char e1[64], e2[64], e3[64];

    epoch_of(n, e1, sizeof(e1));
    cr_assert_eq(rkc_connect(&c, "127.0.0.1", (uint16_t)n->port, 20000), 0);
    put_ok(c, "k");
    rkc_close(c);
    int st = itest_signal(n, SIGTERM);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    itest_restart(n);
    epoch_of(n, e2, sizeof(e2));
    cr_assert_str_eq(e1, e2, "a clean stop keeps the epoch");

    cr_assert_eq(rkc_connect(&c, "127.0.0.1", (uint16_t)n->port, 20000), 0);
    put_ok(c, "k2");
    rkc_close(c);
    itest_signal(n, SIGKILL);
    itest_restart(n);
    epoch_of(n, e3, sizeof(e3));
    if (kill9_renews)
        cr_assert_str_neq(e2, e3, "kill -9 under fsync %s: new epoch", policy);
    else
        cr_assert_str_eq(e2, e3, "kill -9 under fsync %s: epoch kept", policy);
}

Test(storage_faults, kill_9_under_fsync_interval_draws_a_new_epoch)
{
    restart_epochs("interval", true);
}

Test(storage_faults, kill_9_under_fsync_always_keeps_the_epoch)
{
    restart_epochs("always", false);
}

/* n bytes of 'b', malloc'd: a value too large for a 1 MiB map. */
static char *big_value(size_t n)
{
    char *v = malloc(n);
    cr_assert_not_null(v);
    memset(v, 'b', n);
    return v;
}

/* Finding 5 end to end: a write too large for the database at max_db_size
 * fails alone and definite ("the database is full"), small writes around
 * it succeed; with room to grow, the map grows and the same write fits. */
static void big_write(const char *max_db, bool fits)
{
    struct itest_node *n =
        itest_start("--map-size", "1MiB", "--max-db-size", max_db, NULL);
    struct rkc *c;
    struct rkc_result r = {0};
    size_t big = 3u << 20;
    char *v = big_value(big);

    cr_assert_eq(rkc_connect(&c, "127.0.0.1", (uint16_t)n->port, 20000), 0);
    put_ok(c, "small1");
    int rc = rkc_put(c, "big", 3, v, big, NULL, 0, &r);
    cr_assert_eq(rc, r.err);
    if (fits) {
        cr_assert_eq(r.err, 0, "%s", r.message);
    } else {
        cr_assert_neq(r.err, 0, "3 MiB do not fit in 1 MiB");
        cr_assert(r.definite, "nothing was written: definite (%s)", r.message);
        cr_assert(strstr(r.message, "full") != NULL, "%s", r.message);
    }
    rkc_result_free(&r);
    put_ok(c, "small2");
    cr_assert(has_key(c, "small1") && has_key(c, "small2"));
    cr_assert_eq(has_key(c, "big"), fits);
    rkc_close(c);
    free(v);
    cr_assert_eq(itest_stat(n, "storage_map_full"), fits ? 0 : 1);
    if (fits)
        cr_assert_geq(itest_stat(n, "storage_map_grows"), 1);
    int st = itest_signal(n, SIGTERM);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
}

Test(storage_faults, a_write_that_does_not_fit_fails_alone_and_definite)
{
    big_write("1MiB", false);
}

Test(storage_faults, a_full_map_grows_up_to_max_db_size)
{
    big_write("16MiB", true);
}

/* A map that cannot grow: mdb_env_set_mapsize unmaps the old map first, so
 * carrying on would crash at the next transaction. The node stops with a
 * clear line instead; the write that needed the room fails definite
 * (nothing of its transaction was committed); what was there survives. */
static void map_cannot_grow(const char *fsync_policy)
{
    struct itest_node *n =
        start_faulty_map("RINGKV_FAULT_MAP_FILE", fsync_policy, true);
    struct rkc *c;
    struct rkc_result r = {0};
    size_t big = 3u << 20;
    char *v = big_value(big);

    cr_assert_eq(rkc_connect(&c, "127.0.0.1", (uint16_t)n->port, 20000), 0);
    put_ok(c, "before");
    fault_on();
    int rc = rkc_put(c, "big", 3, v, big, NULL, 0, &r);
    free(v);
    cr_assert(rc != 0 || r.err != 0, "a write that needed a larger map");
    if (rc == 0 || rc == r.err)
        cr_assert(r.definite, "nothing was committed: definite (%s)",
                  r.message);
    rkc_result_free(&r);
    rkc_close(c);
    int st = wait_exit(n);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1,
              "the node exits with status 1, it does not crash (status %d)",
              st);
    cr_assert(log_has(n, "cannot grow the map"), "see %s", n->log);
    cr_assert(log_has(n, "stopping the node"));
    fault_off();

    itest_restart(n); /* without the shim */
    cr_assert_eq(rkc_connect(&c, "127.0.0.1", (uint16_t)n->port, 20000), 0);
    cr_assert(has_key(c, "before"));
    cr_assert_not(has_key(c, "big"));
    rkc_close(c);
}

Test(storage_faults, a_failed_mmap_while_growing_stops_the_node)
{
    map_cannot_grow("interval"); /* mmap fails */
}

Test(storage_faults, a_failed_ftruncate_while_growing_stops_the_node)
{
    map_cannot_grow("never"); /* MDB_WRITEMAP: ftruncate fails first */
}
