/*
 * stream.h - one framed, length-prefixed byte stream over a libuv handle:
 * the read buffer and frame split, the write queue with its double buffer,
 * and what back-pressure needs to know (bytes held, bytes queued, reading
 * or not). The server's native connections (server.c) and the peer
 * transport (peer.c) each embed one; policies (when to pause, what a bad
 * frame means, counters) stay with the owner.
 *
 *   uv read --stream_read_buf--> in --stream_next (wire_split_next)--> frames
 *   owner appends to out --stream_flush: uv_try_write, then one uv_write of
 *   the rest at a time (out and wbuf swap)--> socket --written callback
 */
#ifndef RINGKV_STREAM_H
#define RINGKV_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "proto/wire.h"

/* Bytes the read buffer grows by before each read. */
#define STREAM_READ_CHUNK (64 * 1024)
/* An empty buffer larger than this is freed by stream_trim(), so a burst
 * does not leave every idle stream holding its peak. */
#define STREAM_KEEP_BUF (256 * 1024)

struct stream;

/* Called when a write started by stream_flush() ended (status < 0: it
 * failed or was cancelled); wbuf is empty and writing is false by then. */
typedef void (*stream_written_fn)(struct stream *st, int status);

struct stream {
    uv_stream_t *h; /* the connected handle (borrowed) */
    void *data;     /* the owner's */
    stream_written_fn written;
    struct wire_buf in;   /* received, not yet consumed */
    struct wire_buf out;  /* queued for the next write */
    struct wire_buf wbuf; /* the write in flight */
    uv_write_t wreq;
    size_t off;    /* in[0..off) is split off, consumed by stream_consume */
    uint64_t skip; /* bytes left of an oversized frame to discard */
    bool writing;  /* a uv_write is in flight */
    bool reading;  /* uv_read_start active */
    bool dirty;    /* on a flush list */
    struct stream *dirty_next;
};

/* Empty stream over h; no I/O starts. */
void stream_init(struct stream *st, uv_stream_t *h, stream_written_fn written,
                 void *data);
/* Frees the buffers (not the handle). */
void stream_free(struct stream *st);
/* Forgets all buffered input and output (the connection is gone). */
void stream_reset(struct stream *st);

/* Buffer capacity held (what the owner charges to its memory budget). */
size_t stream_mem(const struct stream *st);
/* Output bytes not yet written: queued plus in flight. */
size_t stream_queued(const struct stream *st);
/* Frees empty buffers above STREAM_KEEP_BUF. */
void stream_trim(struct stream *st);

/* For the owner's uv_alloc_cb: room for STREAM_READ_CHUNK more bytes at the
 * end of in, or a null buffer (libuv then reports UV_ENOBUFS). */
void stream_read_buf(struct stream *st, uv_buf_t *buf);
/* For the owner's uv_read_cb: nread > 0 bytes arrived in that room. */
void stream_received(struct stream *st, size_t nread);
/* Starts (0 or a libuv error) and stops reading; both idempotent. */
int stream_read_start(struct stream *st, uv_alloc_cb alloc, uv_read_cb cb);
void stream_read_stop(struct stream *st);

/* The next frame of in after the split cursor (wire_split_next with the
 * stream's skip state). When a frame is announced but not whole, in grows
 * to hold it in one go: -ENOMEM when it cannot. Frames borrow from in until
 * stream_consume(). */
int stream_next(struct stream *st, uint32_t max_frame, bool skip_large,
                struct wire_frame *f);
/* Drops what stream_next() split off. */
void stream_consume(struct stream *st);

/* Flush lists: owners put a stream with new output on their list and
 * flush the list from a uv_check handle, so replies made in one loop
 * iteration leave in one write. stream_mark_dirty() puts st on *list
 * unless it is on one already; stream_take_dirty() takes the first off, or
 * returns NULL. */
void stream_mark_dirty(struct stream **list, struct stream *st);
struct stream *stream_take_dirty(struct stream **list);

/* Writes out: what the socket takes now, the rest by one uv_write (which
 * then calls written). Call only when !writing. Returns 0 when nothing is
 * left to write, 1 when a write is in flight, or a libuv error (the owner
 * closes the connection). */
int stream_flush(struct stream *st);

#endif
