/*
 * fuzz_gossip.c - libFuzzer target for the gossip message decoder and for
 * gossip_recv() behind it.
 *
 * A message that decodes must re-encode and decode to the same fields (a
 * fixed point). Every input is also handed to a member table that already
 * knows two members, with and without an authenticated sender, and its
 * replies are drained and must decode. The decoder may only refuse with
 * RK_EPROTO or RK_ETOO_LARGE; any other outcome aborts.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gossip/gossip.h"
#include "gossip/gossip_msg.h"
#include "proto/errors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same(const struct gossip_msg *a, const struct gossip_msg *b)
{
    if (a->type != b->type || strcmp(a->cluster, b->cluster) != 0 ||
        strcmp(a->from_id, b->from_id) != 0 ||
        strcmp(a->from_addr, b->from_addr) != 0 || a->from_inc != b->from_inc ||
        a->seq != b->seq || strcmp(a->target_addr, b->target_addr) != 0 ||
        strcmp(a->origin_addr, b->origin_addr) != 0 ||
        a->state_version != b->state_version ||
        a->state_hash != b->state_hash || a->nupd != b->nupd ||
        a->blob_len != b->blob_len)
        return false;
    for (uint32_t i = 0; i < a->nupd; i++)
        if (strcmp(a->upd[i].id, b->upd[i].id) != 0 ||
            strcmp(a->upd[i].addr, b->upd[i].addr) != 0 ||
            a->upd[i].state != b->upd[i].state ||
            a->upd[i].incarnation != b->upd[i].incarnation)
            return false;
    return a->blob_len == 0 || memcmp(a->blob, b->blob, a->blob_len) == 0;
}

static void drain(struct gossip *g)
{
    char addr[GOSSIP_ADDR_MAX + 1];
    uint8_t *buf;
    size_t len;
    struct gossip_event ev;
    struct gossip_msg m;
    while (gossip_next_msg(g, addr, &buf, &len) == 0) {
        if (gossip_msg_decode(buf, len, &m, NULL) != 0)
            abort(); /* what we send must decode */
        gossip_msg_free(&m);
    }
    while (gossip_next_event(g, &ev) == 0)
        ;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gossip_msg m, m2;
    const char *why = NULL;
    int rc = gossip_msg_decode(data, size, &m, &why);
    if (rc == 0) {
        uint8_t *buf;
        size_t len;
        if (gossip_msg_encode(&m, &buf, &len) != 0)
            abort();
        if (gossip_msg_decode(buf, len, &m2, NULL) != 0 || !same(&m, &m2))
            abort();
        gossip_msg_free(&m2);
        free(buf);
        gossip_msg_free(&m);
    } else if (rc != RK_EPROTO && rc != RK_ETOO_LARGE) {
        abort();
    } else if (why == NULL) {
        abort(); /* every refusal names its reason */
    }

    struct gossip_conf c = gossip_conf_defaults();
    c.cluster = "c";
    c.self_id = "a";
    c.self_addr = "a:1";
    struct gossip *g;
    if (gossip_create(&g, &c, 0) != 0)
        abort();
    static const uint8_t seed_state[] = "ring";
    (void)gossip_set_state(g, 1, seed_state, 4);
    (void)gossip_add_seed(g, "b:1");
    drain(g);
    (void)gossip_recv(g, 100, NULL, data, size);
    (void)gossip_recv(g, 200, "b", data, size);
    gossip_tick(g, 5000);
    gossip_tick(g, 10000);
    drain(g);
    gossip_destroy(g);
    return 0;
}
