/*
 * storage.h - a node's durable store: one LMDB environment per data dir.
 *
 * Layout. Database "data": key = u16 big-endian partition | user key, so
 * one partition is one contiguous range (handoff and anti-entropy scan
 * ranges). Value = an encoded record (quorum/dvv.h) that storage treats as
 * opaque bytes. Database "meta": format version, node id, partition count
 * and the storage epoch.
 *
 * Threads. Reads run on the caller's (loop) thread in a reused read-only
 * transaction. Writes submitted during one loop iteration form one batch
 * (group commit), applied in submission order in write transactions of at
 * most 4096 ops / 64 MiB (an op that does not fit even in a grown map
 * fails alone):
 * with fsync always on a worker thread (the commit syncs), reported back on
 * the loop through a uv_async_t; with interval or never on the loop thread
 * itself (MDB_WRITEMAP | MDB_NOSYNC commits do no I/O), with the worker
 * syncing every interval. An op's done callback runs only after its commit
 * satisfies the fsync policy:
 *   always    commit is synced before done runs (ack after fsync)
 *   interval  done runs after commit; a sync happens every interval ms
 *   never     done runs after commit; the OS writes back when it likes
 *
 * The apply callback runs inside the write transaction (worker or loop)
 * and sees the key's current value, so read-modify-write (version merge) is
 * atomic with respect to every other write. It must be thread-safe: pure
 * functions of its inputs (quorum/ is). It may run more than once for one
 * op (the transaction is retried after the map grew, or split); each run
 * sees the same old value and must start afresh (a result from an earlier
 * run is freed by storage).
 *
 * Faults. A failed fsync or commit, or an LMDB panic, makes the store
 * refuse every later op and calls on_fatal: the node must stop rather than
 * serve on a store whose disk state is unknown. The ops of the failed
 * commit get RK_ESTORAGE with indefinite set (they may be on disk).
 *
 * One process at a time: storage_open() takes an exclusive flock() on
 * DIR/LOCK and fails with RK_ELOCKED when another process holds it.
 */
#ifndef RINGKV_STORAGE_H
#define RINGKV_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "node/storage_op.h"

enum storage_fsync {
    STORAGE_FSYNC_ALWAYS = 0,
    STORAGE_FSYNC_INTERVAL,
    STORAGE_FSYNC_NEVER,
    STORAGE_FSYNC_MAX
};

struct storage_opts {
    const char *dir;            /* created (mode 0700) if missing */
    enum storage_fsync fsync;   /* see above */
    uint32_t fsync_interval_ms; /* for STORAGE_FSYNC_INTERVAL, >= 1 */
    uint64_t map_size;          /* initial LMDB map size in bytes */
    uint64_t max_db_size;       /* the map doubles when full, up to this
                                   (below map_size: map_size) */
    uint32_t partitions;        /* Q; stored at creation, must match later */
    const char *node_id;        /* stored at creation, must match later */
    uint64_t new_epoch;         /* stored as the epoch if the store is new
                                   or was not closed cleanly under fsync
                                   interval/never; nonzero, drawn at random
                                   by the caller */
    uint64_t max_queue;         /* ops accepted and not yet done; 0 = no cap */
    uint64_t max_queue_bytes;   /* their storage_op.size; 0 = no cap */
    /* Loop thread, at most once: the store failed (a failed fsync or
     * commit, an LMDB panic) and refuses every write from now on. The
     * owner should stop (storage_close may be called from here). */
    void (*on_fatal)(void *arg, const char *msg);
    void *fatal_arg;
};

struct storage_info {
    uint64_t epoch;     /* the store's epoch (new_epoch if created/renewed) */
    bool created;       /* the store was empty and has just been created */
    bool unclean;       /* the last process did not close the store */
    bool epoch_renewed; /* ... and did not sync every commit: the epoch is
                           new_epoch, old_epoch was the previous one */
    uint64_t old_epoch;
};

struct storage;

/* Opens (or creates) the store in o->dir on loop. Errors (with a one-line
 * explanation in err[0..errlen)):
 *   RK_ELOCKED   another process has the data dir open
 *   RK_ECORRUPT  files exist but are not a valid ringkv store (bad LMDB
 *                file, missing or unreadable meta); never starts empty over
 *                existing data
 *   RK_ECONFIG   partitions or node_id differ from the ones stored
 *   -errno       the directory cannot be created or read
 * On success *out is owned by the caller until storage_close(). */
int storage_open(struct storage **out, uv_loop_t *loop,
                 const struct storage_opts *o, struct storage_info *info,
                 char *err, size_t errlen);

/* Finishes every queued op (their done callbacks run before this returns),
 * syncs, stops the worker and closes the environment. The uv handle is
 * closed and the memory freed once the loop runs again. NULL is a no-op.
 * May be called from a done callback (the remaining ops are answered before
 * it returns); never twice, nor from a done that storage_close itself runs. */
void storage_close(struct storage *s);

/* ---- reads (loop thread) ------------------------------------------------ */

/* Looks key up in partition and calls fn once. Returns fn's result, or
 * RK_ESTORAGE when LMDB fails or RK_EINTERNAL for a partition >= the
 * store's count (fn is then not called). */
int storage_get(struct storage *s, uint32_t partition, const uint8_t *key,
                uint32_t key_len, storage_read_fn fn, void *arg);

/* ---- writes (submitted on the loop thread, applied on the worker) ------- */

/* Queues op. Returns 0, or (done is then not called) RK_ESHUTTING_DOWN
 * after storage_close() began, RK_ESTORAGE once the store failed, or
 * RK_EOVERLOADED when max_queue ops or max_queue_bytes are waiting
 * (counted in queue_refused). */
int storage_submit(struct storage *s, struct storage_op *op);

struct storage_stats {
    uint64_t commits;       /* write transactions committed */
    uint64_t ops;           /* ops applied */
    uint64_t syncs;         /* explicit fsyncs */
    uint64_t max_batch;     /* most ops in one commit */
    uint64_t failures;      /* failed transactions, syncs and ops that did
                               not fit */
    uint64_t queued;        /* ops accepted and not yet done */
    uint64_t queued_bytes;  /* their sizes */
    uint64_t queue_refused; /* submits refused: queue full */
    uint64_t map_grows;     /* times the map grew */
    uint64_t map_full;      /* ops refused: no room at max_db_size */
    uint64_t map_size;      /* the map's size now */
    uint64_t keys;          /* entries in "data" */
};

/* Loop thread. Copies the counters; keys is read from the current
 * snapshot (0 if LMDB fails). */
void storage_get_stats(struct storage *s, struct storage_stats *st);

/* ---- scans (loop thread) ------------------------------------------------ */

/* Stores epoch (nonzero) as the store's epoch and syncs, so the node can
 * take a new actor at run time (after it dropped partitions: it no longer
 * holds every dot its old actor issued; docs/design.md "Safe actors").
 * Loop thread; may wait for a commit in progress. Returns 0, -EINVAL or
 * RK_ESTORAGE. */
int storage_renew_epoch(struct storage *s, uint64_t epoch);

/* storage_scan_fn: node/storage_op.h */

/* Walks one partition's range in one read snapshot (writes committed during
 * the scan are not seen). fn may call storage_get/storage_scan (they share
 * the snapshot) and storage_submit. Returns 0 after the last record, fn's
 * nonzero result, RK_EINTERNAL for a partition >= the store's count, or
 * RK_ESTORAGE when LMDB fails. Runs on the loop thread: a large partition
 * blocks the loop for the whole walk. */
int storage_scan(struct storage *s, uint32_t partition, storage_scan_fn fn,
                 void *arg);

/* The same, starting strictly after user key after[0..after_len) (after
 * NULL: from the start), so a long partition can be walked in batches,
 * each in its own snapshot (fn returns nonzero after a batch). */
int storage_scan_from(struct storage *s, uint32_t partition,
                      const uint8_t *after, uint32_t after_len,
                      storage_scan_fn fn, void *arg);

#endif
