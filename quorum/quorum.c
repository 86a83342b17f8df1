/*
 * quorum.c - coordinator state machines (see quorum.h).
 *
 * Invariant: state leaves PENDING at most once, and the function whose
 * event caused it is the only one that returns true, so the node answers
 * the client exactly once whatever order replies, duplicates and the
 * timeout come in.
 */
#include <string.h>

#include "proto/errors.h"
#include "quorum/quorum.h"

int quorum_check(unsigned n, unsigned q)
{
    if (n < 1 || n > QUORUM_MAX_N || q < 1 || q > n)
        return RK_EBAD_QUORUM;
    return 0;
}

int quorum_put_init(struct quorum_put *q, unsigned n, unsigned w)
{
    int err = quorum_check(n, w);
    if (err != 0)
        return err;
    memset(q, 0, sizeof(*q));
    q->n = (uint8_t)n;
    q->w = (uint8_t)w;
    return 0;
}

bool quorum_put_reply(struct quorum_put *q, unsigned replica, bool ok)
{
    if (replica >= q->n || (q->replied & (1u << replica)))
        return false;
    q->replied |= 1u << replica;
    if (ok)
        q->acks++;
    else
        q->fails++;
    if (q->state != QUORUM_PENDING)
        return false;
    if (q->acks >= q->w) {
        q->state = QUORUM_OK;
        return true;
    }
    if (q->fails > q->n - q->w) {
        q->state = QUORUM_FAILED;
        return true;
    }
    return false;
}

bool quorum_put_timeout(struct quorum_put *q)
{
    if (q->state != QUORUM_PENDING)
        return false;
    q->state = QUORUM_FAILED;
    q->timed_out = true;
    return true;
}

int quorum_get_init(struct quorum_get *q, unsigned n, unsigned r, bool lww)
{
    int err = quorum_check(n, r);
    if (err != 0)
        return err;
    memset(q, 0, sizeof(*q));
    q->n = (uint8_t)n;
    q->r = (uint8_t)r;
    q->lww = lww;
    dvv_arena_init(&q->arena);
    return 0;
}

void quorum_get_free(struct quorum_get *q)
{
    dvv_arena_free(&q->arena);
    memset(q, 0, sizeof(*q));
}

static void get_check_finished(struct quorum_get *q)
{
    if (q->replied == (1u << q->n) - 1)
        q->finished = true;
}

/* Merges replica i's copy into the running merge. */
static int get_merge(struct quorum_get *q, unsigned i, const uint8_t *rec,
                     size_t len)
{
    struct dvv d = {0}, m;
    int err;

    if (rec != NULL) {
        uint8_t *copy = dvv_arena_alloc(&q->arena, len ? len : 1);
        if (copy == NULL)
            return -12; /* -ENOMEM */
        memcpy(copy, rec, len);
        if ((err = dvv_decode(copy, len, &q->arena, &d)) != 0)
            return err;
    }
    q->copies[i] = d;
    if ((err = dvv_sync(&q->merged, &d, &q->arena, &m)) != 0)
        return err;
    q->lww_dropped += dvv_resolve(&m, q->lww);
    q->merged = m;
    return 0;
}

bool quorum_get_reply(struct quorum_get *q, unsigned replica, bool ok,
                      const uint8_t *rec, size_t len)
{
    if (replica >= q->n || (q->replied & (1u << replica)) || q->finished)
        return false;
    q->replied |= 1u << replica;
    if (ok) {
        int err = get_merge(q, replica, rec, len);
        if (err != 0) {
            ok = false;
            if (q->err == 0)
                q->err = err;
        }
    }
    if (ok) {
        q->oks++;
        q->ok_mask |= 1u << replica;
    } else {
        q->fails++;
    }
    get_check_finished(q);
    if (q->state != QUORUM_PENDING)
        return false;
    if (q->oks >= q->r) {
        q->state = QUORUM_OK;
        return true;
    }
    if (q->fails > q->n - q->r) {
        q->state = QUORUM_FAILED;
        return true;
    }
    return false;
}

bool quorum_get_timeout(struct quorum_get *q)
{
    q->finished = true;
    if (q->state != QUORUM_PENDING)
        return false;
    q->state = QUORUM_FAILED;
    q->timed_out = true;
    return true;
}

uint32_t quorum_get_repairs(const struct quorum_get *q)
{
    uint32_t mask = 0;
    if (dvv_count(&q->merged) == 0 && q->merged.n == 0)
        return 0;
    for (unsigned i = 0; i < q->n; i++) {
        if (!(q->ok_mask & (1u << i)))
            continue;
        if (!dvv_equal(&q->copies[i], &q->merged))
            mask |= 1u << i;
    }
    return mask;
}
