/*
 * storage_op.h - the storage types the node's logic uses through the env
 * (node/env.h): a read callback and a write op with its apply and done
 * callbacks. No libuv, no LMDB: node/storage.c implements them on LMDB,
 * the simulator (tests/sim/) in memory; node/storage.h has the rest.
 */
#ifndef RINGKV_STORAGE_OP_H
#define RINGKV_STORAGE_OP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- reads (loop thread) ------------------------------------------------ */

/* Called with the stored value, or val == NULL (len 0) when the key is
 * absent. val is valid only during the call. The callback's return value is
 * returned by storage_get. */
typedef int (*storage_read_fn)(void *arg, const uint8_t *val, size_t len);

/* ---- scans (loop thread) ------------------------------------------------ */

/* Called for each record of the partition, in key order (memcmp of the user
 * keys, shorter first on a tie). key and val are valid only during the call.
 * A nonzero return stops the scan and is returned by storage_scan. */
typedef int (*storage_scan_fn)(void *arg, const uint8_t *key, uint32_t key_len,
                               const uint8_t *val, size_t len);

/* ---- writes (submitted on the loop thread, applied on the worker) ------- */

struct storage_op;

/* The longest user key storage accepts: LMDB's 511-byte key limit minus the
 * 2-byte partition prefix. Longer keys are never stored (storage_get reports
 * them absent; a write fails with RK_ETOO_LARGE). */
#define STORAGE_MAX_KEY_LEN 509

/* Worker thread, inside the write transaction. old is the current value
 * (NULL, 0 when absent). Returns:
 *   STORAGE_APPLY_PUT     store *out (out_len bytes, malloc'd by apply;
 *                         storage takes ownership)
 *   STORAGE_APPLY_DELETE  remove the key
 *   STORAGE_APPLY_NOOP    leave it as it is (*out may still be set, and is
 *                         then reported as the op's result)
 *   < 0                   fail this op (op->status); others still commit */
typedef int (*storage_apply_fn)(struct storage_op *op, const uint8_t *old,
                                size_t old_len, uint8_t **out, size_t *out_len);
#define STORAGE_APPLY_PUT    0
#define STORAGE_APPLY_DELETE 1
#define STORAGE_APPLY_NOOP   2

/* Loop thread, after the op's commit satisfied the fsync policy (or it
 * failed). op->status and op->result are set. op->result is freed by
 * storage when done returns; copy what you keep. done may free op. */
typedef void (*storage_done_fn)(struct storage_op *op);

struct storage_op {
    /* set by the caller; key must stay valid until done */
    uint32_t partition;
    const uint8_t *key;
    uint32_t key_len;
    storage_apply_fn apply;
    storage_done_fn done;
    void *arg;
    size_t size; /* bytes the caller holds for op, counted against
                    max_queue_bytes until done */
    /* results, valid in done */
    int status;      /* 0, the apply error, or RK_ESTORAGE (not applied
                        unless indefinite; the op did not fit in the map
                        at max_db_size, or in one transaction, or LMDB
                        failed); also RK_ETOO_LARGE (key_len > STORAGE_MAX_KEY_LEN)
                        or RK_EINTERNAL (partition >= the store's count),
                        both without calling apply */
    uint8_t *result; /* the bytes apply produced (NULL if none) */
    size_t result_len;
    bool indefinite; /* RK_ESTORAGE from a failed commit: the write may be
                        on disk (otherwise an error means not applied) */
    const char *msg; /* static text for an RK_ESTORAGE, or NULL */
    /* private to storage */
    struct storage_op *next_;
};

#endif
