/*
 * ring_test_util.h - helpers shared by test_ring.c and test_ring_state.c:
 * the member ids "n1", "n2", ... and a Criterion check that two rings are
 * identical. Included by test files only.
 */
#ifndef RINGKV_RING_TEST_UTIL_H
#define RINGKV_RING_TEST_UTIL_H

#include "ring/ring.h"

#include <criterion/criterion.h>
#include <stdio.h>

#define MAXN 300

static char names[MAXN][16];
static const char *ids[MAXN];

/* ids[i] = "n<i+1>": sorted order differs from list order (n10 < n2), so
 * joins land in the middle of the sorted member array. */
static inline void make_ids(void)
{
    int i;

    for (i = 0; i < MAXN; i++) {
        snprintf(names[i], sizeof(names[i]), "n%d", i + 1);
        ids[i] = names[i];
    }
}

/* Same Q, same ids and same owner of every partition. */
static inline void assert_same(const struct ring *a, const struct ring *b)
{
    uint32_t i;

    cr_assert_eq(ring_q(a), ring_q(b));
    cr_assert_eq(ring_members(a), ring_members(b));
    for (i = 0; i < ring_members(a); i++)
        cr_assert_str_eq(ring_member(a, i), ring_member(b, i));
    for (i = 0; i < ring_q(a); i++)
        cr_assert_eq(ring_owner(a, i), ring_owner(b, i), "partition %u", i);
}

#endif
