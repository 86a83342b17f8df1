/*
 * test_storage.c - the LMDB store: round trips, group commit order and
 * atomicity, open-time refusals (lock, corruption, config), fsync policies,
 * shutdown with queued ops, and partition scans.
 *
 * Each test works in its own mkdtemp dir under /tmp, removed at the end.
 * Waiting is uv_run(UV_RUN_ONCE) until the done callbacks fired; to force
 * a known batch, a "gate" op blocks the worker inside its apply until the
 * test has queued the ops that must form the next batch.
 */
#define _GNU_SOURCE /* nftw */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <lmdb.h>
#include <uv.h>

#include "node/storage.h"
#include "proto/errors.h"

TestSuite(storage, .timeout = 10);

/* ---- fixture ------------------------------------------------------------ */

static char g_tmp[64];
static char g_dir[128];
static char g_err[512];
static uv_loop_t g_loop;
static int g_done;

static void setup(void)
{
    strcpy(g_tmp, "/tmp/ringkv-storage-XXXXXX");
    cr_assert_not_null(mkdtemp(g_tmp));
    snprintf(g_dir, sizeof(g_dir), "%s/db", g_tmp);
    cr_assert_eq(uv_loop_init(&g_loop), 0);
    g_done = 0;
}

static int rm_one(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void teardown(void)
{
    nftw(g_tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static struct storage_opts opts(enum storage_fsync fsync)
{
    struct storage_opts o = {
        .dir = g_dir,
        .fsync = fsync,
        .fsync_interval_ms = 1,
        .map_size = 64u << 20,
        .partitions = 16,
        .node_id = "n1",
        .new_epoch = 42,
    };
    return o;
}

static struct storage *open_ok(const struct storage_opts *o,
                               struct storage_info *info)
{
    struct storage *s = NULL;
    struct storage_info tmp;
    int rc =
        storage_open(&s, &g_loop, o, info ? info : &tmp, g_err, sizeof(g_err));

    cr_assert_eq(rc, 0, "storage_open: %d %s", rc, g_err);
    cr_assert_not_null(s);
    return s;
}

/* storage_close, then the loop must run dry and close cleanly. */
static void close_ok(struct storage *s)
{
    storage_close(s);
    cr_assert_eq(uv_run(&g_loop, UV_RUN_DEFAULT), 0);
    cr_assert_eq(uv_loop_close(&g_loop), 0);
    cr_assert_eq(uv_loop_init(&g_loop), 0);
}

static void run_until(int n)
{
    while (g_done < n)
        uv_run(&g_loop, UV_RUN_ONCE);
}

/* ---- ops ---------------------------------------------------------------- */

struct top {
    struct storage_op op;
    char key[600];
    const char *val; /* put / append */
    size_t val_len;
    uv_sem_t *entered; /* gate: posted on entering apply */
    uv_sem_t *gate;    /* gate: waited on in apply */
    int status;
    bool indefinite;
    char result[128];
    size_t result_len;
    bool done;
};

static uint8_t *dup_bytes(const void *p, size_t n)
{
    uint8_t *b = malloc(n > 0 ? n : 1);

    cr_assert_not_null(b);
    if (n > 0)
        memcpy(b, p, n);
    return b;
}

static int apply_put(struct storage_op *op, const uint8_t *old, size_t old_len,
                     uint8_t **out, size_t *out_len)
{
    struct top *t = op->arg;

    (void)old;
    (void)old_len;
    if (t->gate != NULL) {
        uv_sem_post(t->entered);
        uv_sem_wait(t->gate);
    }
    *out = dup_bytes(t->val, t->val_len);
    *out_len = t->val_len;
    return STORAGE_APPLY_PUT;
}

static int apply_del(struct storage_op *op, const uint8_t *old, size_t old_len,
                     uint8_t **out, size_t *out_len)
{
    (void)op;
    (void)old;
    (void)old_len;
    (void)out;
    (void)out_len;
    return STORAGE_APPLY_DELETE;
}

static int apply_fail(struct storage_op *op, const uint8_t *old, size_t old_len,
                      uint8_t **out, size_t *out_len)
{
    (void)op;
    (void)old;
    (void)old_len;
    (void)out;
    (void)out_len;
    return RK_EBAD_REQUEST;
}

/* old is a decimal counter (absent = 0); stores and reports old + 1. */
static int apply_incr(struct storage_op *op, const uint8_t *old, size_t old_len,
                      uint8_t **out, size_t *out_len)
{
    char buf[32];
    unsigned long v = 0;

    (void)op;
    if (old != NULL) {
        cr_assert_lt(old_len, sizeof(buf));
        memcpy(buf, old, old_len);
        buf[old_len] = '\0';
        v = strtoul(buf, NULL, 10);
    }
    *out_len = (size_t)snprintf(buf, sizeof(buf), "%lu", v + 1);
    *out = dup_bytes(buf, *out_len);
    return STORAGE_APPLY_PUT;
}

/* Appends t->val to the old value. */
static int apply_append(struct storage_op *op, const uint8_t *old,
                        size_t old_len, uint8_t **out, size_t *out_len)
{
    struct top *t = op->arg;
    uint8_t *b = malloc(old_len + t->val_len);

    cr_assert_not_null(b);
    if (old_len > 0)
        memcpy(b, old, old_len);
    memcpy(b + old_len, t->val, t->val_len);
    *out = b;
    *out_len = old_len + t->val_len;
    return STORAGE_APPLY_PUT;
}

static void on_done(struct storage_op *op)
{
    struct top *t = op->arg;

    t->done = true;
    t->status = op->status;
    t->indefinite = op->indefinite;
    t->result_len = op->result_len;
    if (op->result != NULL && op->result_len < sizeof(t->result))
        memcpy(t->result, op->result, op->result_len);
    g_done++;
}

static void submit(struct storage *s, struct top *t, uint32_t partition,
                   const char *key, storage_apply_fn apply, const char *val)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->key, sizeof(t->key), "%.599s", key);
    t->val = val;
    t->val_len = val ? strlen(val) : 0;
    t->op.partition = partition;
    t->op.key = (const uint8_t *)t->key;
    t->op.key_len = (uint32_t)strlen(t->key);
    t->op.apply = apply;
    t->op.done = on_done;
    t->op.arg = t;
    cr_assert_eq(storage_submit(s, &t->op), 0);
}

/* Submits a put that holds the worker inside its apply until gate_open(). */
struct gate {
    uv_sem_t entered, gate;
    struct top t;
};

static void gate_close(struct storage *s, struct gate *g, const char *key)
{
    cr_assert_eq(uv_sem_init(&g->entered, 0), 0);
    cr_assert_eq(uv_sem_init(&g->gate, 0), 0);
    memset(&g->t, 0, sizeof(g->t));
    snprintf(g->t.key, sizeof(g->t.key), "%s", key);
    g->t.val = "gate";
    g->t.val_len = 4;
    g->t.entered = &g->entered;
    g->t.gate = &g->gate;
    g->t.op.partition = 0;
    g->t.op.key = (const uint8_t *)g->t.key;
    g->t.op.key_len = (uint32_t)strlen(key);
    g->t.op.apply = apply_put;
    g->t.op.done = on_done;
    g->t.op.arg = &g->t;
    cr_assert_eq(storage_submit(s, &g->t.op), 0);
    /* Submitted ops reach the worker once per loop iteration. */
    uv_run(&g_loop, UV_RUN_NOWAIT);
    uv_sem_wait(&g->entered); /* the worker has taken the queue */
}

static void gate_open(struct gate *g)
{
    uv_sem_post(&g->gate);
}

static void gate_destroy(struct gate *g)
{
    uv_sem_destroy(&g->entered);
    uv_sem_destroy(&g->gate);
}

/* ---- reads -------------------------------------------------------------- */

struct rbuf {
    bool found;
    char data[256];
    size_t len;
};

static int read_cb(void *arg, const uint8_t *val, size_t len)
{
    struct rbuf *r = arg;

    r->found = val != NULL;
    r->len = len;
    if (val != NULL && len < sizeof(r->data)) {
        memcpy(r->data, val, len);
        r->data[len] = '\0';
    }
    return 0;
}

static struct rbuf get(struct storage *s, uint32_t partition, const char *key)
{
    struct rbuf r;

    memset(&r, 0, sizeof(r));
    cr_assert_eq(storage_get(s, partition, (const uint8_t *)key,
                             (uint32_t)strlen(key), read_cb, &r),
                 0);
    return r;
}

static void write_file(const char *name, const void *data, size_t len)
{
    char path[256];
    int fd;

    mkdir(g_dir, 0700);
    snprintf(path, sizeof(path), "%s/%s", g_dir, name);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    if (len > 0)
        cr_assert_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
}

/* ---- tests -------------------------------------------------------------- */

Test(storage, put_get_delete_round_trip, .init = setup, .fini = teardown)
{
    struct storage_info info;
    struct storage_opts o = opts(STORAGE_FSYNC_NEVER);
    struct storage *s;
    struct storage_stats st;
    struct top a, d, d2;
    struct rbuf r;

    s = open_ok(&o, &info);
    cr_assert(info.created);
    cr_assert_eq(info.epoch, 42);

    r = get(s, 3, "k");
    cr_assert_not(r.found);

    submit(s, &a, 3, "k", apply_put, "hello");
    run_until(1);
    cr_assert_eq(a.status, 0);
    cr_assert_eq(a.result_len, 5);
    cr_assert_str_eq(a.result, "hello");
    r = get(s, 3, "k");
    cr_assert(r.found);
    cr_assert_str_eq(r.data, "hello");
    storage_get_stats(s, &st);
    cr_assert_eq(st.keys, 1);
    cr_assert_eq(st.ops, 1);
    cr_assert_eq(st.commits, 1);

    submit(s, &d, 3, "k", apply_del, NULL);
    submit(s, &d2, 3, "absent", apply_del, NULL);
    run_until(3);
    cr_assert_eq(d.status, 0);
    cr_assert_eq(d2.status, 0, "deleting an absent key is not an error");
    r = get(s, 3, "k");
    cr_assert_not(r.found);
    storage_get_stats(s, &st);
    cr_assert_eq(st.keys, 0);
    close_ok(s);
}

Test(storage, apply_sees_previous_value_so_1000_increments_count_1000,
     .init = setup, .fini = teardown)
{
    struct storage_opts o = opts(STORAGE_FSYNC_NEVER);
    struct storage *s = open_ok(&o, NULL);
    static struct top t[1000];
    struct rbuf r;

    for (int i = 0; i < 1000; i++)
        submit(s, &t[i], 1, "counter", apply_incr, NULL);
    run_until(1000);
    for (int i = 0; i < 1000; i++) {
        char want[16];

        snprintf(want, sizeof(want), "%d", i + 1);
        cr_assert_eq(t[i].status, 0);
        cr_assert_str_eq(t[i].result, want, "op %d saw a stale value", i);
    }
    r = get(s, 1, "counter");
    cr_assert_str_eq(r.data, "1000");
    close_ok(s);
}

Test(storage, ops_in_one_batch_apply_in_submission_order, .init = setup,
     .fini = teardown)
{
    struct storage_opts o = opts(STORAGE_FSYNC_ALWAYS);
    struct storage *s = open_ok(&o, NULL);
    static const char letters[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWX";
    static char vals[50][2];
    static struct top t[50];
    struct storage_stats st;
    struct gate g;
    struct rbuf r;

    gate_close(s, &g, "gate");
    for (int i = 0; i < 50; i++) {
        vals[i][0] = letters[i];
        submit(s, &t[i], 2, "k", apply_append, vals[i]);
    }
    gate_open(&g);
    run_until(51);
    for (int i = 0; i < 50; i++) {
        cr_assert_eq(t[i].status, 0);
        cr_assert_eq(t[i].result_len, (size_t)i + 1);
        cr_assert_eq(memcmp(t[i].result, letters, (size_t)i + 1), 0);
    }
    r = get(s, 2, "k");
    cr_assert_str_eq(r.data, letters);
    storage_get_stats(s, &st);
    cr_assert_eq(st.commits, 2, "the 50 ops were one group commit");
    cr_assert_eq(st.max_batch, 50);
    cr_assert_eq(st.ops, 51);
    gate_destroy(&g);
    close_ok(s);
}

/* fsync always batches on the worker (a gate op holds it so the rest form
 * one batch); interval and never commit on the loop, and everything
 * submitted before the loop runs is one batch by construction. */
static void failing_apply_case(enum storage_fsync policy)
{
    struct storage_opts o = opts(policy);
    struct storage *s = open_ok(&o, NULL);
    bool worker = policy == STORAGE_FSYNC_ALWAYS;
    struct top a, b, c;
    struct storage_stats st;
    struct gate g;

    if (worker)
        gate_close(s, &g, "gate");
    submit(s, &a, 0, "a", apply_put, "A");
    submit(s, &b, 0, "b", apply_fail, NULL);
    submit(s, &c, 0, "c", apply_put, "C");
    if (worker)
        gate_open(&g);
    run_until(worker ? 4 : 3);
    cr_assert_eq(a.status, 0);
    cr_assert_eq(b.status, RK_EBAD_REQUEST);
    cr_assert_eq(c.status, 0);
    cr_assert(get(s, 0, "a").found);
    cr_assert_not(get(s, 0, "b").found);
    cr_assert(get(s, 0, "c").found);
    storage_get_stats(s, &st);
    cr_assert_eq(st.commits, worker ? 2 : 1);
    cr_assert_eq(st.failures, 0);
    if (worker)
        gate_destroy(&g);
    close_ok(s);
}

Test(storage, failing_apply_fails_only_its_op, .init = setup, .fini = teardown)
{
    failing_apply_case(STORAGE_FSYNC_ALWAYS);
}

Test(storage, failing_apply_fails_only_its_op_in_a_loop_commit, .init = setup,
     .fini = teardown)
{
    failing_apply_case(STORAGE_FSYNC_NEVER);
}

/* Issue 9 finding 5: MDB_MAP_FULL used to fail the whole group commit.
 * With max_db_size = map_size (no room to grow), a, big and c share one
 * batch: big does not fit and fails alone, definite; a and c commit. With
 * room (grow), the map doubles until big fits and all three commit. */
static void map_full_case(enum storage_fsync policy, bool grow)
{
    struct storage_opts o = opts(policy);
    struct storage *s;
    bool worker = policy == STORAGE_FSYNC_ALWAYS;
    struct top a, big, c, after, first;
    struct storage_stats st;
    struct gate g;
    char *huge;

    g_done = 0;
    o.map_size = 1u << 20;
    o.max_db_size = grow ? 16u << 20 : 0;
    s = open_ok(&o, NULL);
    huge = malloc(4u << 20);
    cr_assert_not_null(huge);
    memset(huge, 'x', (4u << 20) - 1);
    huge[(4u << 20) - 1] = '\0';

    if (worker) {
        gate_close(s, &g, "gate");
    } else {
        submit(s, &first, 0, "gate", apply_put, "gate");
        run_until(1);
        cr_assert_eq(first.status, 0);
    }
    submit(s, &a, 0, "a", apply_put, "A");
    submit(s, &big, 0, "big", apply_put, huge);
    submit(s, &c, 0, "c", apply_put, "C");
    if (worker)
        gate_open(&g);
    run_until(4);
    if (worker)
        cr_assert_eq(g.t.status, 0);
    cr_assert_eq(a.status, 0, "an op that fits commits");
    cr_assert_eq(c.status, 0, "an op that fits commits");
    cr_assert(get(s, 0, "gate").found);
    cr_assert(get(s, 0, "a").found);
    cr_assert(get(s, 0, "c").found);
    storage_get_stats(s, &st);
    if (grow) {
        cr_assert_eq(big.status, 0, "the map grew until it fit");
        cr_assert_eq(get(s, 0, "big").len, (4u << 20) - 1);
        cr_assert_geq(st.map_grows, 1);
        cr_assert_gt(st.map_size, 1u << 20);
        cr_assert_leq(st.map_size, 16u << 20);
        cr_assert_eq(st.map_full, 0);
    } else {
        cr_assert_eq(big.status, RK_ESTORAGE, "it alone does not fit");
        cr_assert_not(big.indefinite, "nothing was written: definite");
        cr_assert_eq(big.result_len, 0, "a failed op reports no result");
        cr_assert_not(get(s, 0, "big").found);
        cr_assert_eq(st.map_grows, 0);
        cr_assert_eq(st.map_full, 1);
        cr_assert_eq(st.failures, 1);
    }

    submit(s, &after, 0, "after", apply_put, "ok");
    run_until(5);
    cr_assert_eq(after.status, 0, "the store still works after MAP_FULL");
    cr_assert(get(s, 0, "after").found);
    free(huge);
    if (worker)
        gate_destroy(&g);
    close_ok(s);
}

Test(storage, map_full_fails_only_the_op_that_does_not_fit, .init = setup,
     .fini = teardown)
{
    map_full_case(STORAGE_FSYNC_ALWAYS, false);
}

Test(storage, map_full_fails_only_the_op_that_does_not_fit_in_a_loop_commit,
     .init = setup, .fini = teardown)
{
    map_full_case(STORAGE_FSYNC_NEVER, false);
    map_full_case(STORAGE_FSYNC_INTERVAL, false);
}

Test(storage, map_grows_up_to_max_db_size_when_full, .init = setup,
     .fini = teardown)
{
    map_full_case(STORAGE_FSYNC_ALWAYS, true);
}

Test(storage, map_grows_up_to_max_db_size_in_a_loop_commit, .init = setup,
     .fini = teardown)
{
    map_full_case(STORAGE_FSYNC_NEVER, true);
}

Test(storage, reopen_keeps_data_and_epoch_and_reports_not_created,
     .init = setup, .fini = teardown)
{
    struct storage_opts o = opts(STORAGE_FSYNC_NEVER);
    struct storage_info info;
    struct storage *s = open_ok(&o, &info);
    struct top a;
    struct rbuf r;

    cr_assert(info.created);
    submit(s, &a, 5, "k", apply_put, "v1");
    run_until(1);
    close_ok(s);

    o.new_epoch = 99;
    s = open_ok(&o, &info);
    cr_assert_not(info.created);
    cr_assert_eq(info.epoch, 42, "the stored epoch wins over new_epoch");
    r = get(s, 5, "k");
    cr_assert(r.found);
    cr_assert_str_eq(r.data, "v1");
    close_ok(s);
}

Test(storage, second_open_of_an_open_dir_is_locked, .init = setup,
     .fini = teardown)
{
    struct storage_opts o = opts(STORAGE_FSYNC_NEVER);
    struct storage *s = open_ok(&o, NULL);
    struct storage *s2 = NULL;
    struct storage_info info;

    cr_assert_eq(storage_open(&s2, &g_loop, &o, &info, g_err, sizeof(g_err)),
                 RK_ELOCKED);
    cr_assert_null(s2);
    cr_assert_not_null(strstr(g_err, g_dir), "message names the dir: %s",
                       g_err);
    close_ok(s);

    s = open_ok(&o, NULL); /* close released the lock */
    close_ok(s);
}

Test(storage, garbage_data_mdb_is_corrupt, .init = setup, .fini = teardown)
{
    struct storage_opts o = opts(STORAGE_FSYNC_NEVER);
    struct storage *s = NULL;
    static uint8_t junk[16384];
    static const size_t sizes[] = {0, 100, sizeof(junk)};

    memset(junk, 0xab, sizeof(junk));
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        write_file("data.mdb", junk, sizes[i]);
        cr_assert_eq(storage_open(&s, &g_loop, &o, NULL, g_err, sizeof(g_err)),
                     RK_ECORRUPT, "%zu garbage bytes", sizes[i]);
        cr_assert_null(s);
        cr_assert_not_null(strstr(g_err, "data.mdb"), "%s", g_err);
    }
}

Test(storage, truncated_data_mdb_is_corrupt, .init = setup, .fini = teardown)
{
    struct storage_opts o = opts(STORAGE_FSYNC_NEVER);
    struct storage *s = open_ok(&o, NULL);
    static struct top t[200];
    static char keys[200][16];
    static char val[1024];
    char path[256];
    struct stat st;

    memset(val, 'v', sizeof(val) - 1);
    for (int i = 0; i < 200; i++) {
        snprintf(keys[i], sizeof(keys[i]), "k%d", i);
        submit(s, &t[i], 0, keys[i], apply_put, val);
    }
    run_until(200);
    close_ok(s);

    snprintf(path, sizeof(path), "%s/data.mdb", g_dir);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_gt(st.st_size, 65536);
    /* 200 values of 1 KiB need far more than 64 KiB of pages. (With fsync
     * never the file is sized to map_size, so halving it would not cut.) */
    cr_assert_eq(truncate(path, 65536), 0);
    s = NULL;
    cr_assert_eq(storage_open(&s, &g_loop, &o, NULL, g_err, sizeof(g_err)),
                 RK_ECORRUPT);
    /* Either our size check or LMDB's page check (with MDB_WRITEMAP, used
     * for fsync never, LMDB grows the file to map_size before we look)
     * names the problem. */
    cr_assert(strstr(g_err, "truncated") || strstr(g_err, "CORRUPTED"), "%s",
              g_err);
}

/* Writes an LMDB file the way another program might: no ringkv meta. */
static void write_foreign_lmdb(bool with_dbs)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val k = {1, "x"}, v = {1, "y"};

    mkdir(g_dir, 0700);
    cr_assert_eq(mdb_env_create(&env), 0);
    cr_assert_eq(mdb_env_set_maxdbs(env, 4), 0);
    cr_assert_eq(mdb_env_open(env, g_dir, 0, 0600), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    if (with_dbs) {
        cr_assert_eq(mdb_dbi_open(txn, "meta", MDB_CREATE, &dbi), 0);
        cr_assert_eq(mdb_dbi_open(txn, "data", MDB_CREATE, &dbi), 0);
    } else {
        cr_assert_eq(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
    }
    cr_assert_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

Test(storage, data_mdb_without_meta_is_corrupt, .init = setup, .fini = teardown)
{
    struct storage_opts o = opts(STORAGE_FSYNC_NEVER);
    struct storage *s = NULL;

    write_foreign_lmdb(false);
    cr_assert_eq(storage_open(&s, &g_loop, &o, NULL, g_err, sizeof(g_err)),
                 RK_ECORRUPT);
    cr_assert_null(s);
    cr_assert_not_null(strstr(g_err, "not a ringkv store"), "%s", g_err);
}

Test(storage, meta_database_without_format_is_corrupt, .init = setup,
     .fini = teardown)
{
    struct storage_opts o = opts(STORAGE_FSYNC_NEVER);
    struct storage *s = NULL;

    write_foreign_lmdb(true);
    cr_assert_eq(storage_open(&s, &g_loop, &o, NULL, g_err, sizeof(g_err)),
                 RK_ECORRUPT);
    cr_assert_not_null(strstr(g_err, "meta"), "%s", g_err);
}

Test(storage, partition_count_mismatch_is_a_config_error, .init = setup,
     .fini = teardown)
{
    struct storage_opts o = opts(STORAGE_FSYNC_NEVER);
    struct storage *s = open_ok(&o, NULL);

    close_ok(s);
    o.partitions = 32;
    s = NULL;
    cr_assert_eq(storage_open(&s, &g_loop, &o, NULL, g_err, sizeof(g_err)),
                 RK_ECONFIG);
    cr_assert_null(s);
    cr_assert_not_null(strstr(g_err, "16"), "%s", g_err);
    cr_assert_not_null(strstr(g_err, "32"), "%s", g_err);

    /* The refused open released everything: the right config still opens. */
    o.partitions = 16;
    s = open_ok(&o, NULL);
    close_ok(s);
}

Test(storage, node_id_mismatch_is_a_config_error, .init = setup,
     .fini = teardown)
{
    struct storage_opts o = opts(STORAGE_FSYNC_NEVER);
    struct storage *s = open_ok(&o, NULL);

    close_ok(s);
    o.node_id = "other-node";
    s = NULL;
    cr_assert_eq(storage_open(&s, &g_loop, &o, NULL, g_err, sizeof(g_err)),
                 RK_ECONFIG);
    cr_assert_not_null(strstr(g_err, "\"n1\""), "%s", g_err);
    cr_assert_not_null(strstr(g_err, "other-node"), "%s", g_err);
}

Test(storage, dir_that_cannot_be_created_is_an_errno, .init = setup,
     .fini = teardown)
{
    struct storage_opts o = opts(STORAGE_FSYNC_NEVER);
    struct storage *s = NULL;
    char file[128], dir[192];

    snprintf(file, sizeof(file), "%s/file", g_tmp);
    snprintf(dir, sizeof(dir), "%s/db", file);
    close(open(file, O_WRONLY | O_CREAT, 0600));
    o.dir = dir;
    cr_assert_eq(storage_open(&s, &g_loop, &o, NULL, g_err, sizeof(g_err)),
                 -ENOTDIR);
    cr_assert_not_null(strstr(g_err, dir), "%s", g_err);
}

static bool g_synced;

static void stop_when_synced(uv_timer_t *t)
{
    struct storage *s = t->data;
    struct storage_stats st;

    storage_get_stats(s, &st);
    if (st.syncs > 0) {
        uv_timer_stop(t);
        g_synced = true;
    }
}

Test(storage, every_fsync_policy_acks_and_persists, .init = setup,
     .fini = teardown)
{
    for (int p = 0; p < STORAGE_FSYNC_MAX; p++) {
        struct storage_opts o = opts((enum storage_fsync)p);
        struct storage *s;
        struct top a;
        char val[32];

        snprintf(g_dir, sizeof(g_dir), "%s/db%d", g_tmp, p);
        snprintf(val, sizeof(val), "policy%d", p);
        g_done = 0;
        s = open_ok(&o, NULL);
        submit(s, &a, 7, "k", apply_put, val);
        run_until(1);
        cr_assert_eq(a.status, 0, "policy %d", p);
        if (p == STORAGE_FSYNC_INTERVAL) {
            uv_timer_t t;

            /* The worker syncs within the interval; poll until it has. */
            cr_assert_eq(uv_timer_init(&g_loop, &t), 0);
            t.data = s;
            cr_assert_eq(uv_timer_start(&t, stop_when_synced, 1, 1), 0);
            g_synced = false;
            while (!g_synced)
                uv_run(&g_loop, UV_RUN_ONCE);
            uv_close((uv_handle_t *)&t, NULL);
        }
        close_ok(s);
        s = open_ok(&o, NULL);
        cr_assert_str_eq(get(s, 7, "k").data, val, "policy %d", p);
        close_ok(s);
    }
}

Test(storage, same_key_in_two_partitions_is_two_records, .init = setup,
     .fini = teardown)
{
    struct storage_opts o = opts(STORAGE_FSYNC_NEVER);
    struct storage *s = open_ok(&o, NULL);
    struct top a, b, d;
    struct storage_stats st;

    submit(s, &a, 1, "same", apply_put, "in-1");
    submit(s, &b, 2, "same", apply_put, "in-2");
    run_until(2);
    cr_assert_str_eq(get(s, 1, "same").data, "in-1");
    cr_assert_str_eq(get(s, 2, "same").data, "in-2");
    cr_assert_not(get(s, 3, "same").found);
    storage_get_stats(s, &st);
    cr_assert_eq(st.keys, 2);

    submit(s, &d, 1, "same", apply_del, NULL);
    run_until(3);
    cr_assert_not(get(s, 1, "same").found);
    cr_assert_str_eq(get(s, 2, "same").data, "in-2");
    close_ok(s);
}

static struct storage *g_s;
static int g_resubmit_rc;
static struct top g_late;

static void on_done_then_submit(struct storage_op *op)
{
    on_done(op);
    memset(&g_late, 0, sizeof(g_late));
    g_late.op.key = (const uint8_t *)"late";
    g_late.op.key_len = 4;
    g_late.op.apply = apply_del;
    g_late.op.done = on_done;
    g_late.op.arg = &g_late;
    g_resubmit_rc = storage_submit(g_s, &g_late.op);
}

Test(storage, close_with_ops_queued_runs_all_their_done_callbacks,
     .init = setup, .fini = teardown)
{
    struct storage_opts o = opts(STORAGE_FSYNC_INTERVAL);
    static struct top t[100];
    static char keys[100][16];
    struct storage *s = open_ok(&o, NULL);

    g_s = s;
    for (int i = 0; i < 100; i++) {
        snprintf(keys[i], sizeof(keys[i]), "k%03d", i);
        submit(s, &t[i], 4, keys[i], apply_put, keys[i]);
    }
    t[99].op.done = on_done_then_submit;
    storage_close(s); /* without running the loop first */
    cr_assert_eq(g_done, 100, "every queued op was answered by close");
    for (int i = 0; i < 100; i++)
        cr_assert_eq(t[i].status, 0);
    cr_assert_eq(g_resubmit_rc, RK_ESHUTTING_DOWN);
    cr_assert_not(g_late.done);
    cr_assert_eq(uv_run(&g_loop, UV_RUN_DEFAULT), 0);
    cr_assert_eq(uv_loop_close(&g_loop), 0);
    cr_assert_eq(uv_loop_init(&g_loop), 0);

    s = open_ok(&o, NULL);
    for (int i = 0; i < 100; i++)
        cr_assert_str_eq(get(s, 4, keys[i]).data, keys[i]);
    close_ok(s);
}

static void on_done_then_close(struct storage_op *op)
{
    on_done(op);
    storage_close(g_s);
}

Test(storage, close_from_a_done_callback_in_a_loop_commit_answers_the_rest,
     .init = setup, .fini = teardown)
{
    struct storage_opts o = opts(STORAGE_FSYNC_NEVER);
    struct storage *s = open_ok(&o, NULL);
    static struct top t[21];

    g_s = s;
    for (int i = 0; i < 21; i++)
        submit(s, &t[i], 0, "k", apply_incr, NULL);
    t[0].op.done = on_done_then_close; /* the first closes the store */
    cr_assert_eq(uv_run(&g_loop, UV_RUN_DEFAULT), 0);
    cr_assert_eq(g_done, 21);
    for (int i = 0; i < 21; i++)
        cr_assert_eq(t[i].status, 0);
    cr_assert_eq(uv_loop_close(&g_loop), 0);
}

Test(storage, close_from_a_done_callback_answers_the_rest_first, .init = setup,
     .fini = teardown)
{
    struct storage_opts o = opts(STORAGE_FSYNC_ALWAYS);
    struct storage *s = open_ok(&o, NULL);
    static struct top t[20];
    struct gate g;

    g_s = s;
    gate_close(s, &g, "gate");
    for (int i = 0; i < 20; i++)
        submit(s, &t[i], 0, "k", apply_incr, NULL);
    g.t.op.done = on_done_then_close; /* runs first, before t[] is done */
    gate_open(&g);
    cr_assert_eq(uv_run(&g_loop, UV_RUN_DEFAULT), 0);
    cr_assert_eq(g_done, 21);
    for (int i = 0; i < 20; i++)
        cr_assert_eq(t[i].status, 0);
    cr_assert_eq(uv_loop_close(&g_loop), 0);
    gate_destroy(&g);
}

Test(storage, keys_longer_than_the_limit_are_refused_per_op, .init = setup,
     .fini = teardown)
{
    struct storage_opts o = opts(STORAGE_FSYNC_NEVER);
    struct storage *s = open_ok(&o, NULL);
    char max[STORAGE_MAX_KEY_LEN + 1], over[STORAGE_MAX_KEY_LEN + 2];
    struct top a, b, bad_part;

    memset(max, 'm', sizeof(max) - 1);
    max[sizeof(max) - 1] = '\0';
    memset(over, 'o', sizeof(over) - 1);
    over[sizeof(over) - 1] = '\0';
    submit(s, &a, 0, max, apply_put, "fits");
    submit(s, &b, 0, over, apply_put, "too long");
    submit(s, &bad_part, 16, "k", apply_put, "no such partition");
    run_until(3);
    cr_assert_eq(a.status, 0);
    cr_assert_eq(b.status, RK_ETOO_LARGE);
    cr_assert_eq(bad_part.status, RK_EINTERNAL);
    cr_assert_str_eq(get(s, 0, max).data, "fits");
    cr_assert_not(get(s, 0, over).found);
    cr_assert_eq(
        storage_get(s, 16, (const uint8_t *)"k", 1, read_cb, &(struct rbuf){0}),
        RK_EINTERNAL);
    close_ok(s);
}

/* ---- scans -------------------------------------------------------------- */

struct scan_acc {
    struct storage *s;
    char seen[16][32];
    int n;
    int stop_after;
    int nested_found;
};

static int scan_cb(void *arg, const uint8_t *key, uint32_t key_len,
                   const uint8_t *val, size_t len)
{
    struct scan_acc *acc = arg;
    struct rbuf r;

    cr_assert_lt(acc->n, 16);
    snprintf(acc->seen[acc->n], sizeof(acc->seen[0]), "%.*s=%.*s", (int)key_len,
             (const char *)key, (int)len, (const char *)val);
    acc->n++;
    /* A read inside the scan shares its snapshot. */
    memset(&r, 0, sizeof(r));
    cr_assert_eq(
        storage_get(acc->s, 65535, (const uint8_t *)"q", 1, read_cb, &r), 0);
    acc->nested_found += r.found;
    if (acc->stop_after > 0 && acc->n == acc->stop_after)
        return 7;
    return 0;
}

Test(storage, scan_walks_one_partition_in_key_order, .init = setup,
     .fini = teardown)
{
    struct storage_opts o = opts(STORAGE_FSYNC_NEVER);
    struct storage *s;
    static const struct {
        uint32_t part;
        const char *key, *val;
    } recs[] = {
        {1, "b", "2"},        {1, "a", "1"},     {1, "c", "3"},
        {1, "aa", "4"},       {2, "a", "other"}, {0, "z", "zero"},
        {65535, "q", "last"},
    };
    static struct top t[7];
    struct scan_acc acc;

    o.partitions = 65536;
    s = open_ok(&o, NULL);
    for (int i = 0; i < 7; i++)
        submit(s, &t[i], recs[i].part, recs[i].key, apply_put, recs[i].val);
    run_until(7);

    memset(&acc, 0, sizeof(acc));
    acc.s = s;
    cr_assert_eq(storage_scan(s, 1, scan_cb, &acc), 0);
    cr_assert_eq(acc.n, 4);
    cr_assert_str_eq(acc.seen[0], "a=1");
    cr_assert_str_eq(acc.seen[1], "aa=4");
    cr_assert_str_eq(acc.seen[2], "b=2");
    cr_assert_str_eq(acc.seen[3], "c=3");
    cr_assert_eq(acc.nested_found, 4);

    memset(&acc, 0, sizeof(acc));
    acc.s = s;
    cr_assert_eq(storage_scan(s, 65535, scan_cb, &acc), 0);
    cr_assert_eq(acc.n, 1);
    cr_assert_str_eq(acc.seen[0], "q=last");

    memset(&acc, 0, sizeof(acc));
    acc.s = s;
    cr_assert_eq(storage_scan(s, 0, scan_cb, &acc), 0);
    cr_assert_eq(acc.n, 1);
    cr_assert_str_eq(acc.seen[0], "z=zero");

    memset(&acc, 0, sizeof(acc));
    acc.s = s;
    cr_assert_eq(storage_scan(s, 3, scan_cb, &acc), 0);
    cr_assert_eq(acc.n, 0, "an empty partition yields nothing");

    memset(&acc, 0, sizeof(acc));
    acc.s = s;
    acc.stop_after = 2;
    cr_assert_eq(storage_scan(s, 1, scan_cb, &acc), 7);
    cr_assert_eq(acc.n, 2, "a nonzero return stops the scan");

    /* The read snapshot was released: a later write is visible. */
    submit(s, &t[0], 1, "d", apply_put, "5");
    run_until(8);
    memset(&acc, 0, sizeof(acc));
    acc.s = s;
    cr_assert_eq(storage_scan(s, 1, scan_cb, &acc), 0);
    cr_assert_eq(acc.n, 5);
    cr_assert_str_eq(acc.seen[4], "d=5");
    close_ok(s);
}

/* ---- safe actors: the clean-shutdown marker ------------------------------ */

static int g_child_done;

static void child_done(struct storage_op *op)
{
    (void)op;
    g_child_done = 1;
}

static int child_put(struct storage_op *op, const uint8_t *old, size_t old_len,
                     uint8_t **out, size_t *out_len)
{
    (void)op;
    (void)old;
    (void)old_len;
    *out = malloc(1);
    if (*out == NULL)
        return -ENOMEM;
    **out = 'v';
    *out_len = 1;
    return STORAGE_APPLY_PUT;
}

/* A child process opens the store with policy, commits one write and exits
 * without closing it: what a kill -9 or a crash leaves behind. */
static void crash_after_a_write(enum storage_fsync policy)
{
    pid_t pid = fork();
    int st = 0;

    cr_assert_geq(pid, 0);
    if (pid == 0) {
        uv_loop_t loop;
        struct storage *s;
        struct storage_opts o = opts(policy);
        struct storage_op op = {.key = (const uint8_t *)"k",
                                .key_len = 1,
                                .apply = child_put,
                                .done = child_done};
        if (uv_loop_init(&loop) != 0 ||
            storage_open(&s, &loop, &o, NULL, NULL, 0) != 0 ||
            storage_submit(s, &op) != 0)
            _exit(2);
        while (!g_child_done)
            uv_run(&loop, UV_RUN_ONCE);
        _exit(op.status == 0 ? 0 : 3);
    }
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
}

/* Issue 9 finding 4: after an unclean stop under fsync interval or never,
 * LMDB may have lost commits whose dots were acknowledged and replicated;
 * the node must not mint them again, so the store gets a new epoch. */
static void unclean_stop_case(enum storage_fsync crashed, bool renew)
{
    struct storage_opts o = opts(crashed);
    struct storage_info info;
    struct storage *s;

    s = open_ok(&o, &info); /* created with epoch 42 */
    cr_assert_eq(info.epoch, 42);
    close_ok(s);
    crash_after_a_write(crashed);

    o.new_epoch = 77;
    s = open_ok(&o, &info);
    cr_assert(info.unclean, "the marker of the crashed run is found");
    cr_assert_eq(info.epoch_renewed, renew);
    cr_assert_eq(info.epoch, renew ? 77 : 42);
    if (renew)
        cr_assert_eq(info.old_epoch, 42);
    cr_assert(get(s, 0, "k").found, "the data itself is kept");
    close_ok(s);

    /* The new epoch is stored, and a clean stop keeps it. */
    o.new_epoch = 99;
    s = open_ok(&o, &info);
    cr_assert_not(info.unclean);
    cr_assert_not(info.epoch_renewed);
    cr_assert_eq(info.epoch, renew ? 77 : 42);
    close_ok(s);
}

Test(storage, unclean_stop_under_fsync_interval_draws_a_new_epoch,
     .init = setup, .fini = teardown)
{
    unclean_stop_case(STORAGE_FSYNC_INTERVAL, true);
}

Test(storage, unclean_stop_under_fsync_never_draws_a_new_epoch, .init = setup,
     .fini = teardown)
{
    unclean_stop_case(STORAGE_FSYNC_NEVER, true);
}

Test(storage, unclean_stop_under_fsync_always_keeps_the_epoch, .init = setup,
     .fini = teardown)
{
    unclean_stop_case(STORAGE_FSYNC_ALWAYS, false);
}

Test(storage, clean_stop_keeps_the_epoch_under_every_policy, .init = setup,
     .fini = teardown)
{
    struct storage_info info;
    struct storage *s;
    struct top t;

    for (int p = 0; p < STORAGE_FSYNC_MAX; p++) {
        struct storage_opts o = opts((enum storage_fsync)p);
        o.new_epoch = 100 + (uint64_t)p;
        g_done = 0;
        s = open_ok(&o, &info);
        submit(s, &t, 0, "k", apply_put, "v");
        run_until(1);
        cr_assert_eq(t.status, 0);
        close_ok(s);
        s = open_ok(&o, &info);
        cr_assert_not(info.unclean, "policy %d", p);
        cr_assert_not(info.epoch_renewed, "policy %d", p);
        cr_assert_eq(info.epoch, 100, "the epoch of the store's creation");
        close_ok(s);
    }
}

Test(storage, the_last_runs_policy_decides_not_the_next_ones, .init = setup,
     .fini = teardown)
{
    struct storage_opts o = opts(STORAGE_FSYNC_ALWAYS);
    struct storage_info info;
    struct storage *s;

    s = open_ok(&o, &info);
    close_ok(s);
    crash_after_a_write(STORAGE_FSYNC_NEVER);
    o.new_epoch = 5; /* restarted with fsync always after a never run */
    s = open_ok(&o, &info);
    cr_assert(info.epoch_renewed);
    cr_assert_eq(info.epoch, 5);
    close_ok(s);
}

/* ---- bounds ------------------------------------------------------------ */

/* Finding 6 (storage part): the queue is bounded in ops and in the bytes
 * the callers hold; a submit over either is refused and counted. */
Test(storage, a_full_queue_refuses_submits_and_counts_them, .init = setup,
     .fini = teardown)
{
    struct storage_opts o = opts(STORAGE_FSYNC_NEVER);
    struct storage_stats st;
    struct storage *s;
    struct top t[4];

    o.max_queue = 2;
    o.max_queue_bytes = 1000;
    s = open_ok(&o, NULL);
    submit(s, &t[0], 0, "a", apply_put, "A");
    submit(s, &t[1], 0, "b", apply_put, "B");
    memset(&t[2], 0, sizeof(t[2]));
    t[2].op = t[0].op;
    t[2].op.arg = &t[2];
    cr_assert_eq(storage_submit(s, &t[2].op), RK_EOVERLOADED, "third op");
    storage_get_stats(s, &st);
    cr_assert_eq(st.queued, 2);
    cr_assert_eq(st.queue_refused, 1);
    run_until(2);

    /* Bytes: one op holding more than the budget is refused. */
    memset(&t[3], 0, sizeof(t[3]));
    t[3].op = t[0].op;
    t[3].op.arg = &t[3];
    t[3].op.size = 1001;
    cr_assert_eq(storage_submit(s, &t[3].op), RK_EOVERLOADED, "too many bytes");
    t[3].op.size = 1000;
    cr_assert_eq(storage_submit(s, &t[3].op), 0, "within the budget");
    run_until(3);
    storage_get_stats(s, &st);
    cr_assert_eq(st.queued, 0);
    cr_assert_eq(st.queued_bytes, 0);
    cr_assert_eq(st.queue_refused, 2);
    close_ok(s);
}

/* Finding 5: a long queue is committed in bounded transactions, never as
 * one (MDB_TXN_FULL risk), and every op is still applied in order. */
Test(storage, a_long_queue_is_committed_in_bounded_transactions, .init = setup,
     .fini = teardown)
{
    enum { N = 9000 };
    struct storage_opts o = opts(STORAGE_FSYNC_ALWAYS);
    struct storage_stats st;
    struct storage *s;
    struct top *t = calloc(N, sizeof(*t));
    struct gate g;
    char key[32];

    cr_assert_not_null(t);
    s = open_ok(&o, NULL);
    gate_close(s, &g, "gate");
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "k%d", i % 100);
        submit(s, &t[i], 0, key, apply_incr, NULL);
    }
    uv_run(&g_loop, UV_RUN_NOWAIT); /* all N reach the worker's queue */
    gate_open(&g);
    run_until(N + 1);
    for (int i = 0; i < N; i++)
        cr_assert_eq(t[i].status, 0);
    cr_assert_str_eq(get(s, 0, "k7").data, "90", "every increment applied");
    storage_get_stats(s, &st);
    cr_assert_leq(st.max_batch, 4096, "max_batch %llu",
                  (unsigned long long)st.max_batch);
    cr_assert_geq(st.commits, 1 + (N + 4095) / 4096);
    gate_destroy(&g);
    free(t);
    close_ok(s);
}
