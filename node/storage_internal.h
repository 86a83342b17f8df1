/*
 * storage_internal.h - what storage_open.c (open and validation) and
 * storage.c (the commit engine, reads, close) share: the store itself and
 * the functions one defines and the other calls. Private to those files.
 */
#ifndef RINGKV_STORAGE_INTERNAL_H
#define RINGKV_STORAGE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <lmdb.h>
#include <uv.h>

#include "node/storage.h"

#define STORAGE_PREFIX_LEN 2

struct storage {
    uv_loop_t *loop;
    MDB_env *env;
    MDB_dbi data;
    MDB_dbi meta;
    int lock_fd;
    enum storage_fsync fsync;
    uint64_t interval_ns;
    uint32_t partitions;

    /* loop thread */
    MDB_txn *rtxn; /* reset between reads */
    int rdepth;    /* reads in progress (nested reads share the snapshot) */
    struct storage_op *draining;
    bool closed;
    /* ops submitted this loop iteration, handed to the worker in one go by
     * the check handle (one lock and one wake-up per iteration, not per op) */
    struct storage_op *staged, *staged_tail;
    uint64_t qops, qbytes; /* accepted, not yet done (staged, queued, or
                              being applied) and the bytes they hold */
    uint64_t max_queue, max_queue_bytes;
    uint64_t queue_refused;
    bool fatal_reported;
    void (*on_fatal)(void *arg, const char *msg);
    void *fatal_arg;
    struct storage_op *inline_done; /* a loop commit's ops still to answer */
    uv_check_t stage;
    uv_idle_t kick; /* active while ops are staged: poll must not block */
    int handles;    /* uv handles still to close */

    /* the writer (the worker with fsync always, else the loop thread) */
    uint64_t map_size;    /* the map's size now */
    uint64_t max_db_size; /* the most it may grow to */
    uint64_t log_last;    /* when a failed commit was last logged */
    uint64_t log_skipped; /* failures not logged since */
    /* keeps the map still while it is used by the thread that does not
     * write: the loop's reads (fsync always) or the worker's syncs
     * (interval, never); the writer takes it to grow the map */
    uv_mutex_t rlock;

    /* worker thread */
    uv_thread_t worker;
    uint64_t last_sync;
    /* commits not yet synced: commit_gen counts commits (under mu), a sync
     * records the generation it covered (synced_gen, under mu) */
    uint64_t commit_gen, synced_gen;

    /* under mu */
    uv_mutex_t mu;
    uv_cond_t cv;
    struct storage_op *pending, *pending_tail;
    struct storage_op *completed, *completed_tail;
    bool closing;
    bool stop;
    bool fatal; /* the store failed: refuse everything, never mark clean */
    char fatal_msg[256];
    /* Under rlock: a failed growth left the environment without a usable
     * map (mdb_env_set_mapsize unmaps the old one first), so nothing may
     * touch it again: no read, sync or mdb_env_close. */
    bool map_lost;
    struct storage_stats st; /* queued is live; keys is filled on demand */

    uv_async_t async;
};

/* storage.c */

/* Writes the low n bytes of v big-endian into p. */
void storage__put_be(uint8_t *p, uint64_t v, int n);
/* Stops and joins the worker (nothing may be queued). */
void storage__stop_worker(struct storage *s);
/* The worker thread, and the loop-thread handles' callbacks storage_open
 * starts. */
void storage__worker(void *arg);
void storage__async_cb(uv_async_t *h);
void storage__stage_cb(uv_check_t *h);
void storage__kick_cb(uv_idle_t *h);

/* storage_open.c */

/* Clears the clean-shutdown marker after the final sync of a clean close
 * (loop thread, the worker stopped). */
void storage__mark_clean(struct storage *s);

#endif
