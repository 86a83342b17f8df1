/*
 * storage_open.c - opening a data dir and checking what is in it: the data
 * dir lock, the LMDB environment, meta (format, node id, partitions,
 * epoch) and the clean-shutdown marker. The commit engine the open store
 * then runs is in storage.c, and its top comment describes both.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lmdb.h>

#include "node/log.h"
#include "node/storage.h"
#include "node/storage_internal.h"
#include "proto/errors.h"

#define STORAGE_FORMAT    1
#define STORAGE_MAX_DBS   4
#define STORAGE_MAX_PARTS 65536u

static int open_err(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int open_err(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;

    if (err != NULL && errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static uint64_t get_be(const uint8_t *p, int n)
{
    uint64_t v = 0;

    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* ---- open --------------------------------------------------------------- */

/* Maps an LMDB error met while opening an existing file. */
static int open_rc(int rc)
{
    if (rc > 0)
        return -rc;
    switch (rc) {
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH:
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INCOMPATIBLE:
    case MDB_BAD_DBI:
        return RK_ECORRUPT;
    default:
        return RK_ESTORAGE;
    }
}

static int check_opts(const struct storage_opts *o, char *err, size_t errlen)
{
    if (o->dir == NULL || o->dir[0] == '\0')
        return open_err(err, errlen, RK_ECONFIG, "storage: no data dir");
    if ((unsigned)o->fsync >= STORAGE_FSYNC_MAX)
        return open_err(err, errlen, RK_ECONFIG,
                        "storage: unknown fsync policy %d", (int)o->fsync);
    if (o->fsync == STORAGE_FSYNC_INTERVAL && o->fsync_interval_ms < 1)
        return open_err(err, errlen, RK_ECONFIG,
                        "storage: fsync interval must be >= 1 ms");
    if (o->partitions < 1 || o->partitions > STORAGE_MAX_PARTS)
        return open_err(err, errlen, RK_ECONFIG,
                        "storage: partitions must be 1..%u, got %u",
                        STORAGE_MAX_PARTS, o->partitions);
    if (o->node_id == NULL || o->node_id[0] == '\0')
        return open_err(err, errlen, RK_ECONFIG, "storage: no node id");
    if (o->new_epoch == 0)
        return open_err(err, errlen, RK_ECONFIG,
                        "storage: new_epoch must be nonzero");
    return 0;
}

static int meta_get(MDB_txn *txn, MDB_dbi dbi, const char *name, MDB_val *v)
{
    MDB_val k = {strlen(name), (void *)name};

    return mdb_get(txn, dbi, &k, v);
}

static int meta_put(MDB_txn *txn, MDB_dbi dbi, const char *name,
                    const void *data, size_t len)
{
    MDB_val k = {strlen(name), (void *)name};
    MDB_val v = {len, (void *)data};

    return mdb_put(txn, dbi, &k, &v, 0);
}

/* A new store: creates both databases and writes meta in txn. */
static int create_meta(struct storage *s, MDB_txn *txn,
                       const struct storage_opts *o, char *err, size_t errlen)
{
    uint8_t fmt[4], parts[4], epoch[8];
    int rc;

    storage__put_be(fmt, STORAGE_FORMAT, 4);
    storage__put_be(parts, o->partitions, 4);
    storage__put_be(epoch, o->new_epoch, 8);
    rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->meta);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "data", MDB_CREATE, &s->data);
    if (rc == 0)
        rc = meta_put(txn, s->meta, "format", fmt, sizeof(fmt));
    if (rc == 0)
        rc = meta_put(txn, s->meta, "node_id", o->node_id, strlen(o->node_id));
    if (rc == 0)
        rc = meta_put(txn, s->meta, "partitions", parts, sizeof(parts));
    if (rc == 0)
        rc = meta_put(txn, s->meta, "epoch", epoch, sizeof(epoch));
    if (rc != 0)
        return open_err(err, errlen, rc > 0 ? -rc : RK_ESTORAGE,
                        "storage: cannot create the store in %s: %s", o->dir,
                        mdb_strerror(rc));
    return 0;
}

/* An existing store: opens both databases, validates meta against o. */
static int check_meta(struct storage *s, MDB_txn *txn,
                      const struct storage_opts *o, uint64_t *epoch, char *err,
                      size_t errlen)
{
    MDB_val v;
    uint64_t fmt, parts;
    size_t id_len = strlen(o->node_id);
    int rc;

    rc = mdb_dbi_open(txn, "meta", 0, &s->meta);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "data", 0, &s->data);
    if (rc == MDB_NOTFOUND)
        return open_err(err, errlen, RK_ECORRUPT,
                        "storage: %s/data.mdb is not a ringkv store (no "
                        "meta or data database); refusing to start empty",
                        o->dir);
    if (rc != 0)
        return open_err(err, errlen, open_rc(rc),
                        "storage: cannot read %s/data.mdb: %s", o->dir,
                        mdb_strerror(rc));

    rc = meta_get(txn, s->meta, "format", &v);
    if (rc == 0 && v.mv_size != 4)
        rc = MDB_CORRUPTED;
    if (rc != 0)
        goto bad_meta;
    fmt = get_be(v.mv_data, 4);
    if (fmt != STORAGE_FORMAT)
        return open_err(err, errlen, RK_ECORRUPT,
                        "storage: %s has format %llu, this build reads %d",
                        o->dir, (unsigned long long)fmt, STORAGE_FORMAT);

    rc = meta_get(txn, s->meta, "partitions", &v);
    if (rc == 0 && v.mv_size != 4)
        rc = MDB_CORRUPTED;
    if (rc != 0)
        goto bad_meta;
    parts = get_be(v.mv_data, 4);

    rc = meta_get(txn, s->meta, "epoch", &v);
    if (rc == 0 && v.mv_size != 8)
        rc = MDB_CORRUPTED;
    if (rc != 0)
        goto bad_meta;
    *epoch = get_be(v.mv_data, 8);
    if (*epoch == 0) {
        rc = MDB_CORRUPTED;
        goto bad_meta;
    }

    rc = meta_get(txn, s->meta, "node_id", &v);
    if (rc == 0 && v.mv_size == 0)
        rc = MDB_CORRUPTED;
    if (rc != 0)
        goto bad_meta;
    if (v.mv_size != id_len || memcmp(v.mv_data, o->node_id, id_len) != 0)
        return open_err(err, errlen, RK_ECONFIG,
                        "storage: %s belongs to node \"%.*s\", configured "
                        "node id is \"%s\"",
                        o->dir, (int)(v.mv_size > 256 ? 256 : v.mv_size),
                        (const char *)v.mv_data, o->node_id);
    if (parts != o->partitions)
        return open_err(err, errlen, RK_ECONFIG,
                        "storage: %s was created with %llu partitions, "
                        "configured %u",
                        o->dir, (unsigned long long)parts, o->partitions);
    return 0;

bad_meta:
    if (rc == MDB_NOTFOUND || rc == MDB_CORRUPTED)
        return open_err(err, errlen, RK_ECORRUPT,
                        "storage: %s/data.mdb has missing or invalid meta "
                        "(%s); refusing to start",
                        o->dir, mdb_strerror(rc));
    return open_err(err, errlen, open_rc(rc),
                    "storage: cannot read meta in %s: %s", o->dir,
                    mdb_strerror(rc));
}

/* The clean-shutdown marker: meta "running" holds the fsync policy of the
 * process that has the store open, and is deleted by a clean close (after
 * the final sync). Found at open, it says the last process stopped without
 * closing (kill -9, crash, power loss). If that process did not sync every
 * commit (interval, never), the disk may hold an older state than the
 * writes it acknowledged and replicated: its actor's counters may have gone
 * back, and minting with them again would give a known dot to a new value
 * (docs/design.md, "Safe actors"). So the store gets a new epoch (*epoch,
 * o->new_epoch; the old one in *old_epoch) and the node a new actor. Then
 * the marker is set for this process, in txn. */
static int mark_running(struct storage *s, MDB_txn *txn,
                        const struct storage_opts *o, uint64_t *epoch,
                        uint64_t *old_epoch, bool *unclean, bool *renewed,
                        char *err, size_t errlen)
{
    uint8_t mark = (uint8_t)o->fsync, be[8];
    MDB_val v;
    int rc = meta_get(txn, s->meta, "running", &v);

    if (rc == 0) {
        *unclean = true;
        /* An unreadable marker is taken as the unsafe case. */
        if (v.mv_size != 1 ||
            ((const uint8_t *)v.mv_data)[0] != STORAGE_FSYNC_ALWAYS) {
            *old_epoch = *epoch;
            *epoch = o->new_epoch;
            *renewed = true;
            storage__put_be(be, *epoch, 8);
            rc = meta_put(txn, s->meta, "epoch", be, sizeof(be));
        }
    } else if (rc == MDB_NOTFOUND) {
        rc = 0;
    }
    if (rc == 0)
        rc = meta_put(txn, s->meta, "running", &mark, 1);
    if (rc != 0)
        return open_err(err, errlen, rc > 0 ? -rc : RK_ESTORAGE,
                        "storage: cannot write meta in %s: %s", o->dir,
                        mdb_strerror(rc));
    return 0;
}

/* Clears the marker after the final sync of a clean close (loop thread, the
 * worker stopped). A failure only costs a new epoch at the next start. */
void storage__mark_clean(struct storage *s)
{
    MDB_txn *txn;
    MDB_val k = {strlen("running"), (void *)"running"};
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);

    if (rc == 0) {
        rc = mdb_del(txn, s->meta, &k, NULL);
        if (rc == 0 || rc == MDB_NOTFOUND)
            rc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
    }
    if (rc == 0 && s->fsync != STORAGE_FSYNC_ALWAYS)
        rc = mdb_env_sync(s->env, 1);
    if (rc != 0)
        LOG_WARN("storage: cannot mark the store closed cleanly: %s; the "
                 "next start draws a new epoch",
                 mdb_strerror(rc));
}

int storage_renew_epoch(struct storage *s, uint64_t epoch)
{
    MDB_txn *txn;
    uint8_t be[8];
    if (epoch == 0)
        return -EINVAL;
    storage__put_be(be, epoch, 8);
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc == 0) {
        rc = meta_put(txn, s->meta, "epoch", be, sizeof(be));
        if (rc == 0)
            rc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
    }
    if (rc == 0)
        rc = mdb_env_sync(s->env, 1);
    if (rc != 0) {
        LOG_ERROR("storage: cannot store a new epoch: %s", mdb_strerror(rc));
        return RK_ESTORAGE;
    }
    return 0;
}

/* Refuses a data.mdb that is shorter than its meta page says. */
static int check_size(MDB_env *env, const char *path, char *err, size_t errlen)
{
    MDB_envinfo info;
    MDB_stat ms;
    struct stat st;
    uint64_t need;

    if (stat(path, &st) != 0)
        return open_err(err, errlen, -errno, "storage: cannot stat %s: %s",
                        path, strerror(errno));
    if (mdb_env_info(env, &info) != 0 || mdb_env_stat(env, &ms) != 0)
        return open_err(err, errlen, RK_ECORRUPT,
                        "storage: cannot read the header of %s", path);
    need = ((uint64_t)info.me_last_pgno + 1) * ms.ms_psize;
    if ((uint64_t)st.st_size < need)
        return open_err(err, errlen, RK_ECORRUPT,
                        "storage: %s is truncated (%lld bytes, its header "
                        "needs %llu)",
                        path, (long long)st.st_size, (unsigned long long)need);
    return 0;
}

int storage_open(struct storage **out, uv_loop_t *loop,
                 const struct storage_opts *o, struct storage_info *info,
                 char *err, size_t errlen)
{
    struct storage *s;
    char path[4096];
    struct stat st;
    bool existing = false, have_mu = false, have_cv = false;
    bool have_worker = false;
    uint64_t epoch = o->new_epoch, old_epoch = 0;
    bool unclean = false, renewed = false;
    MDB_txn *txn = NULL;
    unsigned flags;
    int rc;

    *out = NULL;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    rc = check_opts(o, err, errlen);
    if (rc != 0)
        return rc;
    if (strlen(o->dir) + sizeof("/data.mdb") > sizeof(path))
        return open_err(err, errlen, -ENAMETOOLONG,
                        "storage: data dir path is too long");

    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return open_err(err, errlen, -ENOMEM, "storage: out of memory");
    s->loop = loop;
    s->lock_fd = -1;
    s->fsync = o->fsync;
    s->interval_ns = (uint64_t)o->fsync_interval_ms * 1000000u;
    s->partitions = o->partitions;
    s->max_db_size =
        o->max_db_size > o->map_size ? o->max_db_size : o->map_size;
    s->max_queue = o->max_queue > 0 ? o->max_queue : UINT64_MAX;
    s->max_queue_bytes =
        o->max_queue_bytes > 0 ? o->max_queue_bytes : UINT64_MAX;
    s->on_fatal = o->on_fatal;
    s->fatal_arg = o->fatal_arg;

    if (mkdir(o->dir, 0700) != 0 && errno != EEXIST) {
        rc = open_err(err, errlen, -errno,
                      "storage: cannot create data dir %s: %s", o->dir,
                      strerror(errno));
        goto fail;
    }
    snprintf(path, sizeof(path), "%s/LOCK", o->dir);
    s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lock_fd < 0) {
        rc = open_err(err, errlen, -errno, "storage: cannot open %s: %s", path,
                      strerror(errno));
        goto fail;
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            rc = open_err(err, errlen, RK_ELOCKED,
                          "storage: data dir %s is in use by another "
                          "process (or another store in this one)",
                          o->dir);
        else
            rc = open_err(err, errlen, -errno, "storage: cannot lock %s: %s",
                          path, strerror(errno));
        goto fail;
    }

    snprintf(path, sizeof(path), "%s/data.mdb", o->dir);
    if (stat(path, &st) == 0) {
        existing = true;
        if (st.st_size == 0) {
            rc = open_err(err, errlen, RK_ECORRUPT,
                          "storage: %s is empty; not a ringkv store, "
                          "refusing to start",
                          path);
            goto fail;
        }
    } else if (errno != ENOENT) {
        rc = open_err(err, errlen, -errno, "storage: cannot stat %s: %s", path,
                      strerror(errno));
        goto fail;
    }

    rc = mdb_env_create(&s->env);
    if (rc != 0) {
        s->env = NULL;
        rc = open_err(err, errlen, rc > 0 ? -rc : RK_ESTORAGE,
                      "storage: mdb_env_create: %s", mdb_strerror(rc));
        goto fail;
    }
    rc = mdb_env_set_maxdbs(s->env, STORAGE_MAX_DBS);
    if (rc == 0 && o->map_size > 0)
        rc = mdb_env_set_mapsize(s->env, (size_t)o->map_size);
    if (rc != 0) {
        rc = open_err(err, errlen, rc > 0 ? -rc : RK_ESTORAGE,
                      "storage: cannot configure LMDB: %s", mdb_strerror(rc));
        goto fail;
    }
    if (mdb_env_get_maxkeysize(s->env) <
        STORAGE_MAX_KEY_LEN + STORAGE_PREFIX_LEN) {
        rc = open_err(err, errlen, RK_ESTORAGE,
                      "storage: LMDB max key size %d is below %d",
                      mdb_env_get_maxkeysize(s->env),
                      STORAGE_MAX_KEY_LEN + STORAGE_PREFIX_LEN);
        goto fail;
    }
    flags = MDB_NOTLS;
    if (o->fsync != STORAGE_FSYNC_ALWAYS)
        flags |= MDB_NOSYNC;
    /* WRITEMAP only where durability is not promised anyway: writing into
     * a hole of the sparse map on a full disk raises SIGBUS instead of
     * failing the commit. */
    if (o->fsync == STORAGE_FSYNC_NEVER)
        flags |= MDB_WRITEMAP;
    rc = mdb_env_open(s->env, o->dir, flags, 0600);
    if (rc != 0) {
        rc = open_err(err, errlen, open_rc(rc), "storage: cannot open %s: %s%s",
                      path, mdb_strerror(rc),
                      open_rc(rc) == RK_ECORRUPT
                          ? " (not a valid LMDB file; refusing to start)"
                          : "");
        goto fail;
    }
    if (existing) {
        rc = check_size(s->env, path, err, errlen);
        if (rc != 0)
            goto fail;
    }

    rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0) {
        txn = NULL;
        rc = open_err(err, errlen, open_rc(rc),
                      "storage: cannot begin a transaction in %s: %s", o->dir,
                      mdb_strerror(rc));
        goto fail;
    }
    if (existing)
        rc = check_meta(s, txn, o, &epoch, err, errlen);
    else
        rc = create_meta(s, txn, o, err, errlen);
    if (rc == 0)
        rc = mark_running(s, txn, o, &epoch, &old_epoch, &unclean, &renewed,
                          err, errlen);
    if (rc != 0)
        goto fail;
    rc = mdb_txn_commit(txn);
    txn = NULL;
    /* The marker must be on disk before any write it vouches for. */
    if (rc == 0 && o->fsync != STORAGE_FSYNC_ALWAYS)
        rc = mdb_env_sync(s->env, 1);
    if (rc != 0) {
        rc = open_err(err, errlen, rc > 0 ? -rc : RK_ESTORAGE,
                      "storage: cannot commit in %s: %s", o->dir,
                      mdb_strerror(rc));
        goto fail;
    }
    MDB_envinfo ei;
    s->map_size = mdb_env_info(s->env, &ei) == 0 ? ei.me_mapsize : o->map_size;
    if (s->max_db_size < s->map_size)
        s->max_db_size = s->map_size; /* the file is already larger */
    s->st.map_size = s->map_size;

    rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->rtxn);
    if (rc != 0) {
        s->rtxn = NULL;
        rc = open_err(err, errlen, rc > 0 ? -rc : RK_ESTORAGE,
                      "storage: cannot begin a read transaction: %s",
                      mdb_strerror(rc));
        goto fail;
    }
    mdb_txn_reset(s->rtxn);

    rc = uv_mutex_init(&s->mu);
    if (rc != 0)
        goto fail_uv;
    rc = uv_mutex_init(&s->rlock);
    if (rc != 0) {
        uv_mutex_destroy(&s->mu);
        goto fail_uv;
    }
    have_mu = true;
    rc = uv_cond_init(&s->cv);
    if (rc != 0)
        goto fail_uv;
    have_cv = true;
    s->last_sync = uv_hrtime();
    rc = uv_thread_create(&s->worker, storage__worker, s);
    if (rc != 0)
        goto fail_uv;
    have_worker = true;
    /* Last, so that no failure path has a handle to close. */
    rc = uv_async_init(loop, &s->async, storage__async_cb);
    if (rc != 0)
        goto fail_uv;
    s->async.data = s;
    uv_check_init(loop, &s->stage);
    s->stage.data = s;
    uv_check_start(&s->stage, storage__stage_cb);
    uv_idle_init(loop, &s->kick);
    s->kick.data = s;
    s->handles = 3;

    if (info != NULL) {
        info->epoch = epoch;
        info->created = !existing;
        info->unclean = unclean;
        info->epoch_renewed = renewed;
        info->old_epoch = old_epoch;
    }
    *out = s;
    return 0;

fail_uv:
    rc = open_err(err, errlen, rc, "storage: %s", uv_strerror(rc));
fail:
    if (have_worker)
        storage__stop_worker(s);
    if (have_cv)
        uv_cond_destroy(&s->cv);
    if (have_mu) {
        uv_mutex_destroy(&s->mu);
        uv_mutex_destroy(&s->rlock);
    }
    if (txn != NULL)
        mdb_txn_abort(txn);
    if (s->rtxn != NULL)
        mdb_txn_abort(s->rtxn);
    if (s->env != NULL) {
        mdb_env_close(s->env);
        /* A store we just created holds nothing yet: remove it so the
         * next start does not take it for a damaged one. */
        if (!existing) {
            snprintf(path, sizeof(path), "%s/data.mdb", o->dir);
            (void)unlink(path);
            snprintf(path, sizeof(path), "%s/lock.mdb", o->dir);
            (void)unlink(path);
        }
    }
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    free(s);
    return rc;
}
