/*
 * storage.c - the node's durable store: one LMDB environment, reads on the
 * loop thread, writes group-committed once per loop iteration. This file is
 * the commit engine, reads and close; opening and validating a data dir
 * (lock, meta, epoch, clean-shutdown marker) is in storage_open.c, and what
 * both use (struct storage) is in storage_internal.h.
 *
 *   loop thread                            worker thread
 *   storage_submit(op) --staged-->
 *   check handle (once per iteration):
 *     fsync always:   --pending-->         take the whole queue; write
 *                     (mutex+cond)         txns of <= 4096 ops / 64 MiB:
 *                                          get, apply, put/del; commit
 *                                          (synced by LMDB)
 *     async_cb: done(op) <--completed--    uv_async_send
 *     interval/never: the same txns on the loop thread (no fsync: the
 *                     commit only writes to the page cache or, for never,
 *                     the mapping), done(op) at once; the worker only
 *                     syncs (interval: every fsync_interval; both: at close)
 *
 * Design. A data dir holds DIR/LOCK (our flock, held for the store's life so
 * a second process - or a second storage_open in this one, since flock is
 * per open file description - gets RK_ELOCKED), and LMDB's data.mdb and
 * lock.mdb. The flock is taken before LMDB touches anything, which also
 * protects LMDB's per-process fcntl locks from a second environment on the
 * same files in this process. Named databases: "data" (u16 big-endian
 * partition | user key -> opaque record) and "meta" ("format" u32 = 1,
 * "node_id" bytes, "partitions" u32, "epoch" u64, "running" u8 while a
 * process has the store open; integers big-endian).
 *
 * Clean-shutdown marker. Open writes "running" = the fsync policy and syncs
 * it before any op; a clean close deletes it after the final sync. Found at
 * open, it means the last run stopped without closing; if that run was not
 * fsync always, its acknowledged commits may be lost (LMDB rolls back to the
 * last synced one), so the store takes a new epoch (storage_open.c's
 * mark_running(), docs/design.md "Safe actors").
 *
 * Existing versus new. A store is new iff DIR/data.mdb does not exist; the
 * first write transaction then creates both databases and writes meta, and
 * if anything fails before that commit the fresh data.mdb is removed again.
 * An existing data.mdb that LMDB rejects, that is shorter than its meta page
 * says (reading it would SIGBUS), that is empty, or that lacks valid meta is
 * RK_ECORRUPT: we never start empty over existing bytes.
 *
 * fsync. "always" opens the environment without MDB_NOSYNC, so
 * mdb_txn_commit() itself syncs the data pages and then the meta page: the
 * commit is durable and crash-ordered before the batch's done callbacks run.
 * An explicit mdb_env_sync() after a MDB_NOSYNC commit would sync once but
 * lose that ordering (LMDB documents that a crash can then corrupt the file),
 * so the built-in durable commit is the safer choice for the same cost.
 * "interval" and "never" open with MDB_NOSYNC; "never" also with
 * MDB_WRITEMAP: commits write straight into the shared mapping instead of
 * pwrite()-ing every dirty page (the profile showed pwrite at 18% of a
 * node's CPU), and the file is sized to map_size up front (sparse). The
 * price, acceptable only where nothing is promised: a full disk raises
 * SIGBUS on a write into a hole instead of failing the commit. "interval"
 * keeps pwrite, so a full disk is a failed commit (fatal, below). The worker
 * syncs when dirty and fsync_interval_ms has passed (it waits on the condvar
 * with that timeout), and before it exits at close (both policies).
 *
 * Faults. MDB_MAP_FULL: the txn is aborted, the map doubles (up to
 * max_db_size; with fsync always the worker takes rlock so no loop-thread
 * read is on the map while it is replaced) and the same ops are retried; at
 * max_db_size, the ops before the one that hit it commit and that op fails
 * alone (RK_ESTORAGE, definite). MDB_TXN_FULL likewise splits. A growth
 * that fails below max_db_size (mmap, ftruncate) is fatal: LMDB unmapped
 * the old map first, so map_lost keeps everything off the environment; the
 * aborted txn wrote nothing, so its ops and all later ones fail definite
 * and on_fatal stops the node. A failed
 * commit (write or fsync), a failed interval sync, or an LMDB panic is
 * fatal: the commit's ops get RK_ESTORAGE marked indefinite (LMDB may have
 * written the meta page), every later op is refused, the marker is left
 * set, and on_fatal tells the owner, which stops the node: after a failed
 * fsync the kernel may have dropped dirty pages, so carrying on could turn
 * into silent loss. Failures are logged with mdb_strerror, at most once
 * per 10 s (the rest are counted in the next line).
 *
 * Reads. One read-only transaction (MDB_NOTLS, so it is not tied to a
 * thread's reader slot) is renewed for each storage_get/storage_scan and
 * reset afterwards, so it never pins old pages between reads. Reads nested
 * inside a read callback share the outer snapshot (rdepth).
 *
 * Invariants.
 *  - pending/completed/closing/stats/commit_gen/synced_gen are guarded by
 *    mu; last_sync is the worker's; staged/draining/rtxn/rdepth/closed are
 *    the loop thread's. Only one thread ever writes: the worker (always) or
 *    the loop (interval, never).
 *  - Ops are applied in submission order: staging is FIFO and each batch is
 *    applied in order, in consecutive transactions.
 *  - A transaction commits entirely or not at all; its ops are retried (the
 *    apply runs again) after the map grew or the range was split. An LMDB
 *    error fails the ops it touched with no result; an apply error only
 *    fails its own op.
 *  - qops/qbytes count ops from storage_submit to their done call (loop
 *    thread); submit refuses beyond max_queue/max_queue_bytes.
 *  - Every op accepted by storage_submit gets exactly one done call: from the
 *    check handle (inline commits), the async callback, or synchronously
 *    inside storage_close. After close,
 *    the async callback does nothing and only the close callback frees s.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lmdb.h>

#include "node/log.h"
#include "node/storage.h"
#include "node/storage_internal.h"
#include "proto/errors.h"

void storage__put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

/* Writes the prefixed key into buf (STORAGE_PREFIX_LEN + len bytes). */
static void make_key(uint8_t *buf, uint32_t partition, const uint8_t *key,
                     uint32_t len, MDB_val *out)
{
    storage__put_be(buf, partition, STORAGE_PREFIX_LEN);
    if (len > 0)
        memcpy(buf + STORAGE_PREFIX_LEN, key, len);
    out->mv_data = buf;
    out->mv_size = STORAGE_PREFIX_LEN + (size_t)len;
}

/* Stops and joins the worker (nothing may be queued). */
void storage__stop_worker(struct storage *s)
{
    uv_mutex_lock(&s->mu);
    s->stop = true;
    uv_cond_signal(&s->cv);
    uv_mutex_unlock(&s->mu);
    uv_thread_join(&s->worker);
}

/* ---- worker ------------------------------------------------------------- */

/* Ops are applied in write transactions of at most this many ops and bytes
 * (the values they store): a long queue never becomes one transaction that
 * LMDB refuses (MDB_TXN_FULL) or that holds every dirty page at once. */
#define STORAGE_TXN_MAX_OPS   4096u
#define STORAGE_TXN_MAX_BYTES (64u << 20)
/* Failed commits are logged once per this many nanoseconds at most. */
#define STORAGE_LOG_EVERY_NS (10 * UINT64_C(1000000000))

static const char msg_full[] =
    "the database is full (max_db_size); nothing was written";
static const char msg_txn_full[] =
    "the write is too large for one storage transaction; nothing was written";
static const char msg_failed[] = "storage failed; the node is stopping";
static const char msg_maybe[] =
    "storage failed while committing; the write may be on disk";

/* True for the LMDB and system errors after which the environment cannot be
 * trusted: the node must stop (storage_opts.on_fatal). */
static bool fatal_rc(int rc)
{
    return rc == MDB_PANIC || rc == EIO || rc == MDB_CORRUPTED ||
           rc == MDB_PAGE_NOTFOUND;
}

/* Logs a failed commit with its cause, at most once per
 * STORAGE_LOG_EVERY_NS; the lines in between are counted. Writer thread. */
static void note_failure(struct storage *s, const char *what, int rc)
{
    uint64_t now = uv_hrtime();

    if (s->log_last != 0 && now - s->log_last < STORAGE_LOG_EVERY_NS) {
        s->log_skipped++;
        return;
    }
    if (s->log_skipped > 0)
        LOG_ERROR("storage: %s: %s (and %llu failures not logged since the "
                  "last line)",
                  what, mdb_strerror(rc), (unsigned long long)s->log_skipped);
    else
        LOG_ERROR("storage: %s: %s", what, mdb_strerror(rc));
    s->log_last = now;
    s->log_skipped = 0;
}

/* Marks the store failed (writer thread): every later op is refused, the
 * marker of a clean shutdown is never written, and on_fatal runs on the
 * loop thread. */
static void set_fatal(struct storage *s, const char *what, int rc)
{
    uv_mutex_lock(&s->mu);
    if (!s->fatal) {
        s->fatal = true;
        snprintf(s->fatal_msg, sizeof(s->fatal_msg), "storage: %s: %s", what,
                 mdb_strerror(rc));
    }
    uv_mutex_unlock(&s->mu);
    LOG_ERROR("storage: %s: %s; the store cannot be trusted, the node stops",
              what, mdb_strerror(rc));
}

/* Writer thread, no write transaction open: doubles the map, up to
 * max_db_size. Returns 0 when it grew, -EAGAIN when it may not grow now
 * (at max_db_size, or a read of the loop thread is on the map), or
 * RK_ESTORAGE with *err set to the LMDB error of a failed growth. rlock keeps
 * the other thread off the map while it is replaced: the loop's reads with
 * fsync always, the worker's syncs (mdb_env_sync reads the meta page in the
 * map) otherwise.
 *
 * A failed growth is fatal for the caller: mdb_env_set_mapsize unmaps the
 * old map before it sizes the file (MDB_WRITEMAP) and maps the new one, and
 * on failure leaves no map (a failed mmap) or a pointer to the unmapped one
 * (a failed ftruncate). The old map cannot be brought back through LMDB's
 * API (a second mdb_env_set_mapsize reads the meta page through that
 * pointer, or only records the size), so map_lost keeps every later read,
 * sync and mdb_env_close off the environment. */
static int grow_map(struct storage *s, int *err)
{
    uint64_t want = s->map_size * 2;
    int rc;

    if (s->map_size >= s->max_db_size)
        return -EAGAIN;
    if (want > s->max_db_size || want < s->map_size)
        want = s->max_db_size;
    if (s->fsync != STORAGE_FSYNC_ALWAYS && s->rdepth > 0)
        return -EAGAIN; /* a read of this (the loop) thread is on the map */
    uv_mutex_lock(&s->rlock);
    rc = mdb_env_set_mapsize(s->env, (size_t)want);
    if (rc != 0)
        s->map_lost = true;
    uv_mutex_unlock(&s->rlock);
    if (rc != 0) {
        LOG_ERROR("storage: cannot grow the map from %llu to %llu bytes: %s; "
                  "the old map is gone, the store is not touched again",
                  (unsigned long long)s->map_size, (unsigned long long)want,
                  mdb_strerror(rc));
        *err = rc;
        return RK_ESTORAGE;
    }
    LOG_INFO("storage: the database map grew from %llu to %llu bytes "
             "(max_db_size %llu)",
             (unsigned long long)s->map_size, (unsigned long long)want,
             (unsigned long long)s->max_db_size);
    s->map_size = want;
    uv_mutex_lock(&s->mu);
    s->st.map_grows++;
    s->st.map_size = want;
    uv_mutex_unlock(&s->mu);
    return 0;
}

/* Clears what an earlier attempt left in ops [from, to). */
static void reset_ops(struct storage_op *from, struct storage_op *to)
{
    for (struct storage_op *op = from; op != to; op = op->next_) {
        free(op->result);
        op->result = NULL;
        op->result_len = 0;
        op->status = 0;
        op->indefinite = false;
        op->msg = NULL;
    }
}

/* Fails ops [from, to) (not applied, or maybe applied when indefinite). */
static void fail_ops(struct storage_op *from, struct storage_op *to,
                     bool indefinite, const char *msg)
{
    for (struct storage_op *op = from; op != to; op = op->next_) {
        free(op->result);
        op->result = NULL;
        op->result_len = 0;
        op->status = RK_ESTORAGE;
        op->indefinite = indefinite;
        op->msg = msg;
    }
}

/* One write transaction over ops from..(limit excluded, NULL: the end),
 * at most STORAGE_TXN_MAX_OPS/BYTES of them. On success returns 0, *end is
 * the first op not included and *applied counts the ops applied. On an
 * LMDB error returns it with nothing committed; *hit is the op whose
 * put/delete/get failed, or NULL when the begin or the commit failed
 * (*end is then the end of the attempted range). */
static int run_txn(struct storage *s, struct storage_op *from,
                   struct storage_op *limit, struct storage_op **end,
                   struct storage_op **hit, int *applied)
{
    static uint8_t empty;
    uint8_t kbuf[STORAGE_PREFIX_LEN + STORAGE_MAX_KEY_LEN];
    struct storage_op *op;
    MDB_txn *txn;
    MDB_val k, v;
    uint64_t bytes = 0;
    uint32_t n = 0;
    int rc, how;

    *hit = NULL;
    *end = from;
    *applied = 0;
    rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0)
        return rc;
    for (op = from; op != limit && op != NULL; op = op->next_) {
        uint8_t *res = NULL;
        size_t res_len = 0;

        if (n >= STORAGE_TXN_MAX_OPS || bytes >= STORAGE_TXN_MAX_BYTES)
            break;
        n++;
        free(op->result); /* an earlier attempt's, when retried */
        op->result = NULL;
        op->result_len = 0;
        if (op->partition >= s->partitions) {
            op->status = RK_EINTERNAL;
            continue;
        }
        if (op->key_len > STORAGE_MAX_KEY_LEN) {
            op->status = RK_ETOO_LARGE;
            continue;
        }
        make_key(kbuf, op->partition, op->key, op->key_len, &k);
        rc = mdb_get(txn, s->data, &k, &v);
        if (rc == MDB_NOTFOUND) {
            v.mv_data = NULL;
            v.mv_size = 0;
        } else if (rc != 0) {
            goto abort;
        }
        how = op->apply(op, v.mv_data, v.mv_size, &res, &res_len);
        op->result = res;
        op->result_len = res_len;
        if (how < 0) {
            op->status = how;
            continue;
        }
        op->status = 0;
        switch (how) {
        case STORAGE_APPLY_PUT:
            v.mv_data = res != NULL ? res : &empty;
            v.mv_size = res_len;
            bytes += res_len;
            rc = mdb_put(txn, s->data, &k, &v, 0);
            if (rc != 0)
                goto abort;
            break;
        case STORAGE_APPLY_DELETE:
            rc = mdb_del(txn, s->data, &k, NULL);
            if (rc != 0 && rc != MDB_NOTFOUND)
                goto abort;
            break;
        case STORAGE_APPLY_NOOP:
            break;
        default:
            op->status = RK_EINTERNAL;
            continue;
        }
        (*applied)++;
    }
    *end = op;
    return mdb_txn_commit(txn);

abort:
    *hit = op;
    *end = op->next_;
    mdb_txn_abort(txn);
    return rc;
}

/* The op halfway through [from, to) (from itself for one op). */
static struct storage_op *half_batch(struct storage_op *from,
                                     struct storage_op *to)
{
    struct storage_op *mid = from, *op = from;

    for (int i = 0; op != to && op != NULL; op = op->next_, i++)
        if (i % 2 == 1)
            mid = mid->next_;
    return mid;
}

/* Records a committed transaction (under mu): stats, and the commit
 * generation the interval syncer watches. */
static void account_batch(struct storage *s, int applied, uint64_t n)
{
    s->st.commits++;
    s->st.ops += (uint64_t)applied;
    if (n > s->st.max_batch)
        s->st.max_batch = n;
    if (s->fsync != STORAGE_FSYNC_ALWAYS)
        s->commit_gen++;
}

static uint64_t count_ops(struct storage_op *from, struct storage_op *to)
{
    uint64_t n = 0;

    for (; from != to; from = from->next_)
        n++;
    return n;
}

/* Writer thread: applies batch, in order, in bounded transactions. An op
 * that does not fit in the map even at max_db_size, or in one transaction,
 * fails alone (definite); the others commit. An LMDB error before a commit
 * fails the ops it touched (definite: nothing of them was written); a
 * failed commit, or a fatal error (fatal_rc), fails its ops as
 * indefinite (the commit may have reached the disk), marks the store failed
 * and fails every op after it (definite). */
static void apply_batch(struct storage *s, struct storage_op *batch)
{
    struct storage_op *from = batch, *limit = NULL, *end, *hit;
    /* After a MAP_FULL/TXN_FULL that growing did not cure: the ops before
     * the one that hit it (PREFIX), then that op in a txn of its own. */
    enum { WHOLE, PREFIX, ALONE } stage = WHOLE;
    int applied, rc;

    while (from != NULL) {
        bool fatal;

        uv_mutex_lock(&s->mu);
        fatal = s->fatal;
        uv_mutex_unlock(&s->mu);
        if (fatal) {
            fail_ops(from, NULL, false, msg_failed);
            return;
        }
        rc = run_txn(s, from, limit, &end, &hit, &applied);
        if (rc == 0) {
            uv_mutex_lock(&s->mu);
            account_batch(s, applied, count_ops(from, end));
            uv_mutex_unlock(&s->mu);
            from = end;
            if (stage == PREFIX && end == limit && end != NULL) {
                stage = ALONE;
                limit = end->next_;
            } else {
                stage = WHOLE;
                limit = NULL;
            }
            continue;
        }
        if (rc == MDB_MAP_FULL || rc == MDB_TXN_FULL) {
            bool alone = hit == from || (hit == NULL && from->next_ == end);
            reset_ops(from, end);
            int gerr = 0;
            int grown = rc == MDB_MAP_FULL ? grow_map(s, &gerr) : -EAGAIN;
            if (grown == 0)
                continue; /* retry the same ops in the larger map */
            if (grown != -EAGAIN) {
                /* The map could not be replaced: the aborted txn wrote
                 * nothing, so these ops and all after them fail definite
                 * (at the top of the loop), and the node stops. */
                uv_mutex_lock(&s->mu);
                s->st.failures++;
                uv_mutex_unlock(&s->mu);
                set_fatal(s, "cannot grow the map", gerr);
                continue;
            }
            if (alone) {
                /* This op alone does not fit: it fails, the rest goes on. */
                fail_ops(from, from->next_, false,
                         rc == MDB_MAP_FULL ? msg_full : msg_txn_full);
                uv_mutex_lock(&s->mu);
                if (rc == MDB_MAP_FULL)
                    s->st.map_full++;
                s->st.failures++;
                uv_mutex_unlock(&s->mu);
                note_failure(s, "a write does not fit", rc);
                from = from->next_;
                stage = WHOLE;
                limit = NULL;
            } else {
                /* Commit what fit before it (or half the range when the
                 * commit itself ran out), then try the rest. */
                limit = hit != NULL ? hit : half_batch(from, end);
                stage = PREFIX;
            }
            continue;
        }
        uv_mutex_lock(&s->mu);
        s->st.failures++;
        uv_mutex_unlock(&s->mu);
        if (hit == NULL && end == from) {
            /* No transaction: nothing was written. */
            fail_ops(from, NULL, false, NULL);
            if (fatal_rc(rc))
                set_fatal(s, "cannot begin a write transaction", rc);
            else
                note_failure(s, "cannot begin a write transaction", rc);
            return;
        }
        if (hit == NULL) {
            /* The commit failed (a write or an fsync): LMDB may have
             * written the meta page, so these ops may be on disk, and
             * what the disk holds is unknown. */
            fail_ops(from, end, true, msg_maybe);
            set_fatal(s, "commit failed", rc);
            from = end;
            continue;
        }
        /* A get, put or delete failed: the transaction was aborted and
         * none of the ops it touched was written. */
        fail_ops(from, end, false, NULL);
        if (fatal_rc(rc))
            set_fatal(s, "write transaction failed", rc);
        else
            note_failure(s, "write transaction failed", rc);
        from = end;
        stage = WHOLE;
        limit = NULL;
    }
}

/* True when commits happened since the last successful sync (under mu). */
static bool mark_dirty(const struct storage *s)
{
    return s->commit_gen != s->synced_gen;
}

/* Worker: forces the dirty pages of MDB_NOSYNC commits to disk. A failure
 * is fatal (set_fatal). Called without mu. */
static void sync_env(struct storage *s)
{
    uv_mutex_lock(&s->mu);
    uint64_t gen = s->commit_gen;
    uv_mutex_unlock(&s->mu);
    uv_mutex_lock(&s->rlock); /* the loop may be growing the map */
    if (s->map_lost) {        /* already fatal; nothing to sync through */
        uv_mutex_unlock(&s->rlock);
        s->last_sync = uv_hrtime(); /* not due again for an interval */
        return;
    }
    int rc = mdb_env_sync(s->env, 1);
    uv_mutex_unlock(&s->rlock);

    s->last_sync = uv_hrtime();
    uv_mutex_lock(&s->mu);
    if (rc == 0) {
        s->synced_gen = gen; /* commits after gen stay dirty */
        s->st.syncs++;
    } else {
        s->st.failures++;
    }
    uv_mutex_unlock(&s->mu);
    if (rc != 0) {
        /* Acknowledged commits may not be on disk, and after a failed
         * fsync the kernel may have dropped the dirty pages: retrying
         * could "succeed" over lost data. Stop instead. */
        set_fatal(s, "fsync failed", rc);
        uv_async_send(&s->async);
    }
}

/* Under mu. */
static bool sync_due(struct storage *s, uint64_t now)
{
    return s->fsync == STORAGE_FSYNC_INTERVAL && mark_dirty(s) &&
           now - s->last_sync >= s->interval_ns;
}

void storage__worker(void *arg)
{
    struct storage *s = arg;
    struct storage_op *batch, *tail;
    uint64_t now;

    uv_mutex_lock(&s->mu);
    for (;;) {
        while (s->pending == NULL && !s->stop) {
            if (s->fsync == STORAGE_FSYNC_INTERVAL && mark_dirty(s)) {
                now = uv_hrtime();
                if (sync_due(s, now)) {
                    uv_mutex_unlock(&s->mu);
                    sync_env(s);
                    uv_mutex_lock(&s->mu);
                    continue;
                }
                (void)uv_cond_timedwait(&s->cv, &s->mu,
                                        s->last_sync + s->interval_ns - now);
            } else {
                uv_cond_wait(&s->cv, &s->mu);
            }
        }
        if (s->pending == NULL)
            break;
        batch = s->pending;
        tail = s->pending_tail;
        s->pending = s->pending_tail = NULL;
        uv_mutex_unlock(&s->mu);

        apply_batch(s, batch);

        uv_mutex_lock(&s->mu);
        if (s->completed_tail != NULL)
            s->completed_tail->next_ = batch;
        else
            s->completed = batch;
        s->completed_tail = tail;
        uv_mutex_unlock(&s->mu);
        uv_async_send(&s->async);
        uv_mutex_lock(&s->mu);
    }
    bool dirty = mark_dirty(s);
    uv_mutex_unlock(&s->mu);
    if (dirty)
        sync_env(s);
}

/* ---- completion (loop thread) ------------------------------------------- */

static void finish_batch(struct storage *s, struct storage_op *op)
{
    uint8_t *res = op->result; /* done may free or resubmit op */

    s->qops--;
    s->qbytes -= op->size;
    op->done(op);
    free(res);
}

/* Runs done for completed ops. Re-entrant: a done callback may call
 * storage_close, which drains the rest and sets closed. */
static void drain_queue(struct storage *s)
{
    struct storage_op *op;

    while (!s->closed) {
        if (s->draining == NULL) {
            uv_mutex_lock(&s->mu);
            s->draining = s->completed;
            s->completed = s->completed_tail = NULL;
            uv_mutex_unlock(&s->mu);
            if (s->draining == NULL)
                return;
        }
        op = s->draining;
        s->draining = op->next_;
        op->next_ = NULL;
        finish_batch(s, op);
    }
}

/* Loop thread: once the store failed, tells the owner (once). */
static void report_fatal(struct storage *s)
{
    char msg[sizeof(s->fatal_msg)];
    bool fatal;

    if (s->closing || s->fatal_reported)
        return;
    uv_mutex_lock(&s->mu);
    fatal = s->fatal;
    memcpy(msg, s->fatal_msg, sizeof(msg));
    uv_mutex_unlock(&s->mu);
    if (!fatal)
        return;
    s->fatal_reported = true;
    if (s->on_fatal != NULL)
        s->on_fatal(s->fatal_arg, msg); /* may call storage_close */
}

void storage__async_cb(uv_async_t *h)
{
    struct storage *s = h->data;
    struct storage_op *op;

    /* Only what is completed now: a busy worker cannot starve the loop. */
    if (s->closed)
        return;
    if (s->draining == NULL) {
        uv_mutex_lock(&s->mu);
        s->draining = s->completed;
        s->completed = s->completed_tail = NULL;
        uv_mutex_unlock(&s->mu);
    }
    while (!s->closed && s->draining != NULL) {
        op = s->draining;
        s->draining = op->next_;
        op->next_ = NULL;
        finish_batch(s, op);
    }
    if (!s->closed)
        report_fatal(s);
}

static void closed_cb(uv_handle_t *h)
{
    struct storage *s = h->data;
    if (--s->handles == 0)
        free(s);
}

static void finish_batch(struct storage *s, struct storage_op *op);

static void finish_inline(struct storage *s)
{
    while (s->inline_done != NULL) {
        struct storage_op *op = s->inline_done;
        s->inline_done = op->next_;
        op->next_ = NULL;
        finish_batch(s, op);
    }
}

/* Loop thread: this iteration's ops. With fsync always they go to the
 * worker, which commits and syncs off the loop. With interval or never a
 * commit never waits for the disk (MDB_NOSYNC: it writes to the page cache,
 * or for never into the mapping), so the loop commits the batch itself and
 * answers at once: no thread hand-off, no wake-ups, no context switches
 * (the profile showed those as the top cost once pwrite was gone). The
 * worker then only syncs (interval) and does the final sync at close. */
static void hand_over(struct storage *s)
{
    struct storage_op *batch = s->staged, *tail = s->staged_tail;

    if (batch == NULL)
        return;
    s->staged = s->staged_tail = NULL;
    if (s->fsync == STORAGE_FSYNC_ALWAYS) {
        uv_mutex_lock(&s->mu);
        if (s->pending_tail != NULL)
            s->pending_tail->next_ = batch;
        else
            s->pending = batch;
        s->pending_tail = tail;
        uv_cond_signal(&s->cv);
        uv_mutex_unlock(&s->mu);
        return;
    }
    apply_batch(s, batch);
    uv_mutex_lock(&s->mu);
    if (s->fsync == STORAGE_FSYNC_INTERVAL)
        uv_cond_signal(&s->cv); /* the syncer starts its interval */
    uv_mutex_unlock(&s->mu);
    /* Answered from a field, not a local: a done callback may call
     * storage_close(), which answers the rest before it returns. */
    s->inline_done = batch;
    finish_inline(s);
    report_fatal(s);
}

void storage__stage_cb(uv_check_t *h)
{
    struct storage *s = h->data;
    if (s->staged == NULL) {
        uv_idle_stop(&s->kick);
        return;
    }
    /* The kick stays on for one more iteration: replies queued by the done
     * callbacks above get flushed without waiting for another event. */
    hand_over(s);
}

/* An active idle handle makes this iteration's poll non-blocking, so the
 * check handle runs soon even when the op was submitted before the poll
 * (from a timer, say) and nothing else would wake the loop. */
void storage__kick_cb(uv_idle_t *h)
{
    (void)h;
}

/* An environment whose map was lost (storage_close); a root for LSan. */
static MDB_env *volatile lost_env;

void storage_close(struct storage *s)
{
    if (s == NULL)
        return;
    uv_mutex_lock(&s->mu);
    assert(!s->closing); /* closed twice, or from a done run by close */
    s->closing = true;   /* from now on storage_submit refuses */
    uv_mutex_unlock(&s->mu);
    /* What was accepted before still commits and is answered. */
    finish_inline(s);
    while (s->staged != NULL)
        hand_over(s);

    storage__stop_worker(s); /* it finishes the queue and syncs first */
    drain_queue(s);
    s->closed = true;
    uv_mutex_lock(&s->mu);
    bool clean = !s->fatal && !mark_dirty(s);
    uv_mutex_unlock(&s->mu);
    if (clean)
        storage__mark_clean(s);

    if (s->rtxn != NULL)
        mdb_txn_abort(s->rtxn);
    if (s->map_lost) {
        /* mdb_env_close would munmap a stale pointer. Kept reachable, so
         * leak checkers do not report it: the process is about to exit. */
        lost_env = s->env;
        LOG_ERROR("storage: the map was lost; the environment is left open "
                  "(the process exits)");
    } else {
        mdb_env_close(s->env);
    }
    close(s->lock_fd); /* releases the flock */
    uv_cond_destroy(&s->cv);
    uv_mutex_destroy(&s->mu);
    uv_mutex_destroy(&s->rlock);
    uv_close((uv_handle_t *)&s->async, closed_cb);
    uv_close((uv_handle_t *)&s->stage, closed_cb);
    uv_close((uv_handle_t *)&s->kick, closed_cb);
}

/* ---- public ops --------------------------------------------------------- */

int storage_submit(struct storage *s, struct storage_op *op)
{
    op->next_ = NULL;
    op->status = 0;
    op->result = NULL;
    op->result_len = 0;
    /* closing is written only by storage_close(), on this thread. */
    if (s->closing)
        return RK_ESHUTTING_DOWN;
    uv_mutex_lock(&s->mu);
    bool fatal = s->fatal;
    uv_mutex_unlock(&s->mu);
    if (fatal)
        return RK_ESTORAGE;
    if (s->qops >= s->max_queue || s->qbytes + op->size > s->max_queue_bytes) {
        s->queue_refused++;
        return RK_EOVERLOADED;
    }
    s->qops++;
    s->qbytes += op->size;
    if (s->staged_tail != NULL) {
        s->staged_tail->next_ = op;
    } else {
        s->staged = op;
        uv_idle_start(&s->kick, storage__kick_cb);
    }
    s->staged_tail = op;
    return 0;
}

static int read_begin(struct storage *s)
{
    if (s->rdepth == 0) {
        if (s->fsync == STORAGE_FSYNC_ALWAYS)
            uv_mutex_lock(&s->rlock); /* the worker may be growing the map */
        if (s->map_lost || mdb_txn_renew(s->rtxn) != 0) {
            if (s->fsync == STORAGE_FSYNC_ALWAYS)
                uv_mutex_unlock(&s->rlock);
            return RK_ESTORAGE;
        }
    }
    s->rdepth++;
    return 0;
}

static void read_end(struct storage *s)
{
    if (--s->rdepth == 0) {
        mdb_txn_reset(s->rtxn);
        if (s->fsync == STORAGE_FSYNC_ALWAYS)
            uv_mutex_unlock(&s->rlock);
    }
}

int storage_get(struct storage *s, uint32_t partition, const uint8_t *key,
                uint32_t key_len, storage_read_fn fn, void *arg)
{
    uint8_t kbuf[STORAGE_PREFIX_LEN + STORAGE_MAX_KEY_LEN];
    MDB_val k, v;
    int rc;

    if (partition >= s->partitions)
        return RK_EINTERNAL;
    if (key_len > STORAGE_MAX_KEY_LEN)
        return fn(arg, NULL, 0); /* never stored */
    make_key(kbuf, partition, key, key_len, &k);
    rc = read_begin(s);
    if (rc != 0)
        return rc;
    rc = mdb_get(s->rtxn, s->data, &k, &v);
    if (rc == 0)
        rc = fn(arg, v.mv_data, v.mv_size);
    else if (rc == MDB_NOTFOUND)
        rc = fn(arg, NULL, 0);
    else
        rc = RK_ESTORAGE;
    read_end(s);
    return rc;
}

int storage_scan(struct storage *s, uint32_t partition, storage_scan_fn fn,
                 void *arg)
{
    return storage_scan_from(s, partition, NULL, 0, fn, arg);
}

int storage_scan_from(struct storage *s, uint32_t partition,
                      const uint8_t *after, uint32_t after_len,
                      storage_scan_fn fn, void *arg)
{
    uint8_t prefix[STORAGE_PREFIX_LEN];
    uint8_t start[STORAGE_PREFIX_LEN + STORAGE_MAX_KEY_LEN];
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc;

    if (partition >= s->partitions || after_len > STORAGE_MAX_KEY_LEN)
        return RK_EINTERNAL;
    rc = read_begin(s);
    if (rc != 0)
        return rc;
    if (mdb_cursor_open(s->rtxn, s->data, &cur) != 0) {
        rc = RK_ESTORAGE;
        goto out;
    }
    storage__put_be(prefix, partition, STORAGE_PREFIX_LEN);
    memcpy(start, prefix, STORAGE_PREFIX_LEN);
    if (after != NULL)
        memcpy(start + STORAGE_PREFIX_LEN, after, after_len);
    k.mv_data = start;
    k.mv_size = STORAGE_PREFIX_LEN + (after != NULL ? after_len : 0);
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    /* Strictly after: skip the start key itself. */
    if (rc == 0 && after != NULL &&
        k.mv_size == STORAGE_PREFIX_LEN + (size_t)after_len &&
        memcmp(k.mv_data, start, k.mv_size) == 0)
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    while (rc == 0) {
        const uint8_t *kp = k.mv_data;

        if (k.mv_size < STORAGE_PREFIX_LEN ||
            memcmp(kp, prefix, STORAGE_PREFIX_LEN) != 0)
            break;
        rc = fn(arg, kp + STORAGE_PREFIX_LEN,
                (uint32_t)(k.mv_size - STORAGE_PREFIX_LEN), v.mv_data,
                v.mv_size);
        if (rc != 0)
            goto out;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    rc = (rc == 0 || rc == MDB_NOTFOUND) ? 0 : RK_ESTORAGE;
out:
    if (cur != NULL)
        mdb_cursor_close(cur);
    read_end(s);
    return rc;
}

void storage_get_stats(struct storage *s, struct storage_stats *st)
{
    MDB_stat ms;

    uv_mutex_lock(&s->mu);
    *st = s->st;
    uv_mutex_unlock(&s->mu);
    st->queued = s->qops;
    st->queued_bytes = s->qbytes;
    st->queue_refused = s->queue_refused;
    st->keys = 0;
    if (read_begin(s) == 0) {
        if (mdb_stat(s->rtxn, s->data, &ms) == 0)
            st->keys = ms.ms_entries;
        read_end(s);
    }
}
