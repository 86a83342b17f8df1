/*
 * ring_claim.c - who owns which partition: the from-scratch deal and the
 * claim that turns a previous ownership into a balanced one for a new member
 * set.
 *
 * Goals, in priority order:
 *   1. balance: every member owns floor(Q/n) or ceil(Q/n) partitions;
 *   2. minimal movement: a partition changes owner only if balance needs it;
 *   3. diversity: any W = min(RING_TARGET_N, n, Q) consecutive partitions
 *      have distinct owners, so a preference list of up to W nodes is the
 *      next partitions' owners and replica load stays even. Best effort:
 *      it cannot always hold (n = 3 with 3 not dividing Q, and after a
 *      removal when holding it would need extra moves).
 *
 * Deal (from scratch). With Q = k*n + r, the first r sorted members own
 * k+1 partitions and the others k. The ring is k+1 rounds, each listing the
 * members in sorted order; every member of index >= r sits out exactly one
 * round, and those n-r omissions are spread evenly over the rounds:
 *
 *   Q=8, n=3 (k=2, r=2; member 2 sits out round 1)
 *   partition: 0 1 2 | 3 4 | 5 6 7
 *   owner:     0 1 2 | 0 1 | 0 1 2
 *
 * A full round keeps same owners n apart; a round with few omissions keeps
 * them nearly n apart, so diversity holds wherever the counts permit it.
 *
 * Claim (rebuild). Input: owner[] with RING__ORPHAN for partitions whose
 * owner left. Targets go to current holdings (ceil to the largest holders),
 * so only members above target give and only members below target take:
 * moved = orphans + sum of surpluses, the least any balanced result can
 * move. Orphans are placed first, each on the taker that keeps it farthest
 * from its own other partitions (distance score, see score()). Then each
 * taker, in index order, walks the ring at a stride of Q/deficit and takes
 * the first partition at or after each stride point that belongs to a
 * member above target and keeps it at full distance; passes with a lowered
 * distance requirement finish whatever the strict walk could not take.
 * Every choice is a pure function of owner[] and member order, so every
 * node computes the same ring.
 */
#include "ring/ring_internal.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint32_t window(const struct ring *r)
{
    uint32_t w = RING_TARGET_N;

    if (r->n < w)
        w = r->n;
    if (r->q < w)
        w = r->q;
    return w;
}

void ring__deal(struct ring *r)
{
    uint64_t k = r->q / r->n, rem = r->q % r->n;
    uint64_t rounds = rem == 0 ? k : k + 1;
    uint64_t skip = rem == 0 ? 0 : r->n - rem; /* omissions to spread */
    uint32_t p = 0;
    uint64_t j;
    uint32_t m;

    for (j = 0; j < rounds; j++) {
        /* Omission i (member rem + i) falls in round floor(i*rounds/skip):
         * round j sits out omissions [ceil(j*skip/rounds),
         * ceil((j+1)*skip/rounds)). */
        uint64_t lo = rem + (j * skip + rounds - 1) / rounds;
        uint64_t hi = rem + ((j + 1) * skip + rounds - 1) / rounds;

        for (m = 0; m < r->n; m++) {
            if (m >= lo && m < hi)
                continue;
            assert(p < r->q);
            r->owner[p++] = (uint16_t)m;
        }
    }
    assert(p == r->q);
}

/* Owners within w-1 partitions of p (either side) and their distance. */
struct nbrs {
    uint32_t count;
    uint16_t owner[2 * (RING_TARGET_N - 1)];
    uint16_t dist[2 * (RING_TARGET_N - 1)];
};

static void neighbours(const struct ring *r, uint32_t p, uint32_t w,
                       struct nbrs *nb)
{
    uint32_t mask = r->q - 1, d;

    nb->count = 0;
    for (d = 1; d < w; d++) {
        uint16_t a = r->owner[(p + d) & mask];
        uint16_t b = r->owner[(p - d) & mask];

        if (a != RING__ORPHAN) {
            nb->owner[nb->count] = a;
            nb->dist[nb->count++] = (uint16_t)d;
        }
        if (b != RING__ORPHAN) {
            nb->owner[nb->count] = b;
            nb->dist[nb->count++] = (uint16_t)d;
        }
    }
}

/* How far m's nearest other partition would be from p, capped at w: w means
 * m owning p breaks no window of w consecutive partitions. */
static uint32_t score(const struct nbrs *nb, uint32_t m, uint32_t w)
{
    uint32_t s = w, i;

    for (i = 0; i < nb->count; i++) {
        if (nb->owner[i] == m && nb->dist[i] < s)
            s = nb->dist[i];
    }
    return s;
}

struct claim {
    uint32_t w;        /* diversity window */
    uint32_t *need;    /* [n] partitions a member must still take */
    uint32_t *surplus; /* [n] partitions a member must still give */
};

/* Sets need[] and surplus[] from owner[]; held is [n] scratch. Targets are
 * floor(Q/n) or ceil(Q/n); the ceil goes to the Q mod n largest holders
 * (ties: lower index), which is what makes the movement minimal. */
static void targets(const struct ring *r, struct claim *c, uint32_t *held)
{
    uint32_t base = r->q / r->n, extra = r->q % r->n;
    uint32_t p, i, j;

    memset(held, 0, r->n * sizeof(*held));
    for (p = 0; p < r->q; p++) {
        if (r->owner[p] != RING__ORPHAN)
            held[r->owner[p]]++;
    }
    for (i = 0; i < r->n; i++) {
        uint32_t rank = 0, t;

        for (j = 0; j < r->n; j++) {
            if (held[j] > held[i] || (held[j] == held[i] && j < i))
                rank++;
        }
        t = base + (rank < extra ? 1 : 0);
        c->need[i] = held[i] < t ? t - held[i] : 0;
        c->surplus[i] = held[i] > t ? held[i] - t : 0;
    }
}

/* Gives every orphan to the taker (need > 0) that scores best there, then
 * the larger need, then the lower index. The takers' total need is at least
 * the number of orphans left, so one always exists. */
static void place_orphans(struct ring *r, struct claim *c)
{
    struct nbrs nb;
    uint32_t p, m;

    for (p = 0; p < r->q; p++) {
        uint32_t best = RING_NONE, best_s = 0;

        if (r->owner[p] != RING__ORPHAN)
            continue;
        neighbours(r, p, c->w, &nb);
        for (m = 0; m < r->n; m++) {
            uint32_t s;

            if (c->need[m] == 0)
                continue;
            s = score(&nb, m, c->w);
            if (best == RING_NONE || s > best_s ||
                (s == best_s && c->need[m] > c->need[best])) {
                best = m;
                best_s = s;
            }
        }
        assert(best != RING_NONE);
        r->owner[p] = (uint16_t)best;
        c->need[best]--;
    }
}

/* Moves p to m if its owner must give and m would sit at least min_s away
 * from its own other partitions. Returns whether it did. */
static bool try_take(struct ring *r, struct claim *c, uint32_t m, uint32_t p,
                     uint32_t min_s)
{
    uint16_t o = r->owner[p];
    struct nbrs nb;

    if (o == m || c->surplus[o] == 0)
        return false;
    neighbours(r, p, c->w, &nb);
    if (score(&nb, m, c->w) < min_s)
        return false;
    r->owner[p] = (uint16_t)m;
    c->surplus[o]--;
    c->need[m]--;
    return true;
}

/* Member m takes need[m] partitions from members above target: first a
 * strided walk at full distance, so its partitions spread round the ring,
 * then plain walks accepting ever closer placements. The givers' total
 * surplus equals the takers' total need, so the last pass (distance >= 1,
 * i.e. anything) always completes. */
static void take_for(struct ring *r, struct claim *c, uint32_t m)
{
    uint64_t k = c->need[m], j, cur = 0;
    uint32_t p, s;

    for (j = 0; j < k && cur < r->q; j++) {
        uint64_t at = j * r->q / k;

        if (cur < at)
            cur = at;
        while (cur < r->q && !try_take(r, c, m, (uint32_t)cur, c->w))
            cur++;
        cur++;
    }
    for (s = c->w; s >= 1 && c->need[m] > 0; s--) {
        for (p = 0; p < r->q && c->need[m] > 0; p++)
            try_take(r, c, m, p, s);
    }
    assert(c->need[m] == 0);
}

int ring__claim(struct ring *r)
{
    struct claim c;
    uint32_t *mem, m;

    mem = calloc(3 * (size_t)r->n, sizeof(*mem));
    if (mem == NULL)
        return -ENOMEM;
    c.w = window(r);
    c.need = mem;
    c.surplus = mem + r->n;
    targets(r, &c, mem + 2 * (size_t)r->n);
    place_orphans(r, &c);
    for (m = 0; m < r->n; m++) {
        if (c.need[m] > 0)
            take_for(r, &c, m);
    }
    free(mem);
    return 0;
}
