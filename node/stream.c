/*
 * stream.c - the framed stream shared by client connections and peer links
 * (see stream.h).
 *
 * Design: the stream owns bytes, not policy. It splits frames with proto/'s
 * wire_split_next() (the client library uses the same splitter on a
 * blocking socket), and writes with a double buffer: out collects what the
 * owner appends while wbuf is being written by the one uv_write in flight;
 * when that write ends the buffers swap at the next flush.
 *
 * Invariants: writing implies wbuf.len > 0 until the write callback; off <=
 * in.len; a frame handed out by stream_next() lies in in[0..off).
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#include "node/stream.h"

void stream_init(struct stream *st, uv_stream_t *h, stream_written_fn written,
                 void *data)
{
    *st = (struct stream){.h = h, .written = written, .data = data};
}

void stream_free(struct stream *st)
{
    wire_buf_free(&st->in);
    wire_buf_free(&st->out);
    wire_buf_free(&st->wbuf);
}

void stream_reset(struct stream *st)
{
    st->in.len = 0;
    st->out.len = 0;
    st->wbuf.len = 0;
    st->off = 0;
    st->skip = 0;
    st->writing = false;
    st->reading = false;
}

size_t stream_mem(const struct stream *st)
{
    return st->in.cap + st->out.cap + st->wbuf.cap;
}

size_t stream_queued(const struct stream *st)
{
    return st->out.len + st->wbuf.len;
}

static void trim_buf(struct wire_buf *b)
{
    if (b->len == 0 && b->cap > STREAM_KEEP_BUF)
        wire_buf_free(b);
}

void stream_trim(struct stream *st)
{
    trim_buf(&st->in);
    trim_buf(&st->out);
    trim_buf(&st->wbuf);
}

/* ---- reading ------------------------------------------------------------ */

void stream_read_buf(struct stream *st, uv_buf_t *buf)
{
    if (wire_buf_reserve(&st->in, STREAM_READ_CHUNK) != 0) {
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    buf->base = (char *)st->in.data + st->in.len;
    buf->len = st->in.cap - st->in.len;
}

void stream_received(struct stream *st, size_t nread)
{
    assert(st->in.len + nread <= st->in.cap);
    st->in.len += nread;
}

int stream_read_start(struct stream *st, uv_alloc_cb alloc, uv_read_cb cb)
{
    if (st->reading)
        return 0;
    int rc = uv_read_start(st->h, alloc, cb);
    if (rc == 0)
        st->reading = true;
    return rc;
}

void stream_read_stop(struct stream *st)
{
    if (!st->reading)
        return;
    uv_read_stop(st->h);
    st->reading = false;
}

int stream_next(struct stream *st, uint32_t max_frame, bool skip_large,
                struct wire_frame *f)
{
    int k = wire_split_next(st->in.data, st->in.len, &st->off, max_frame,
                            skip_large, &st->skip, f);
    /* A frame to keep whose body is not all here: make room for the whole
     * frame in one go. */
    if (k == WIRE_SPLIT_MORE && f->need > WIRE_HDR_LEN &&
        !(skip_large && f->len > max_frame) &&
        wire_buf_reserve(&st->in, f->need) != 0)
        return -ENOMEM;
    return k;
}

void stream_consume(struct stream *st)
{
    wire_buf_consume(&st->in, st->off);
    st->off = 0;
}

/* ---- writing ------------------------------------------------------------ */

void stream_mark_dirty(struct stream **list, struct stream *st)
{
    if (st->dirty)
        return;
    st->dirty = true;
    st->dirty_next = *list;
    *list = st;
}

struct stream *stream_take_dirty(struct stream **list)
{
    struct stream *st = *list;
    if (st != NULL) {
        *list = st->dirty_next;
        st->dirty = false;
    }
    return st;
}

static void write_cb(uv_write_t *req, int status)
{
    struct stream *st = req->data;
    st->writing = false;
    st->wbuf.len = 0;
    st->written(st, status);
}

/* uv_buf_t lengths are unsigned int: a buffer is handed to libuv in
 * pieces of at most STREAM_CHUNK bytes, whatever its size. */
#define STREAM_CHUNK ((size_t)1 << 30)

static uv_buf_t write_piece(const struct wire_buf *b, size_t off)
{
    size_t k = b->len - off < STREAM_CHUNK ? b->len - off : STREAM_CHUNK;
    return uv_buf_init((char *)b->data + off, (unsigned)k);
}

int stream_flush(struct stream *st)
{
    assert(!st->writing);
    if (st->out.len == 0)
        return 0;
    uv_buf_t b = write_piece(&st->out, 0);
    int n = uv_try_write(st->h, &b, 1);
    if (n > 0)
        wire_buf_consume(&st->out, (size_t)n);
    else if (n < 0 && n != UV_EAGAIN)
        return n;
    if (st->out.len == 0)
        return 0;
    struct wire_buf t = st->wbuf; /* empty: no write in flight */
    st->wbuf = st->out;
    st->out = t;
    size_t nb = (st->wbuf.len + STREAM_CHUNK - 1) / STREAM_CHUNK;
    uv_buf_t *bufs = &b;
    if (nb > 1 && (bufs = malloc(nb * sizeof(*bufs))) == NULL) {
        st->wbuf.len = 0;
        return UV_ENOMEM;
    }
    for (size_t i = 0; i < nb; i++)
        bufs[i] = write_piece(&st->wbuf, i * STREAM_CHUNK);
    st->wreq.data = st;
    /* uv_write copies the array of pieces, not the bytes. */
    int rc = uv_write(&st->wreq, st->h, bufs, (unsigned)nb, write_cb);
    if (bufs != &b)
        free(bufs);
    if (rc != 0) {
        st->wbuf.len = 0;
        return rc;
    }
    st->writing = true;
    return 1;
}
