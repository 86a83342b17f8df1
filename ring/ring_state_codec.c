/*
 * ring_state_codec.c - the msgpack encoding of a struct ring_state, the
 * blob gossip carries between nodes.
 *
 *   {"fmt": 1, "version": u64, "nval": N, "q": Q,
 *    "cur":  [[id, ...], [owner index, ...]],
 *    "next": nil | [[id, ...], [owner index, ...]],
 *    "gone": [] | [0 stays | 1 leaving | 2 removed, one per member of cur],
 *    "xfers": [[partition, dest index in next, src index in cur | nil], ...],
 *    "done": bin, bit i (byte i/8, bit i%8) = transfer i done}
 *
 * Design: the map keys come in exactly this order and no other key is
 * allowed, ids are sorted (ring order), so one state has one encoding and
 * every node that holds the same state sends the same bytes. A newer
 * format changes "fmt" and is refused here.
 *
 * Decoding is untrusted input: the size is bounded, wire_prevalidate()
 * checks every count against the bytes present before msgpack-c allocates,
 * and then every invariant of ring_state.h is checked: the version's epoch
 * odd iff a change is pending, Q a power of two,
 * ids 1..RING_ID_MAX bytes, strictly ascending, owners in range, next
 * with the same Q and exactly cur minus the gone members plus new ones, the
 * plan equal to the one ring__plan() computes (sources aside, each in
 * pref_cur and not removed), and a bitmap of exactly the plan's length.
 * Anything else is RK_EPROTO with a reason; decode never asserts on input.
 */
#include "proto/errors.h"
#include "proto/wire.h"
#include "ring/ring_internal.h"
#include "ring/ring_state.h"

#include <errno.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

static const char *const keys[] = {"fmt",  "version", "nval",  "q",   "cur",
                                   "next", "gone",    "xfers", "done"};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

/* ---- encode ------------------------------------------------------------- */

static int pack_key(msgpack_packer *pk, const char *k)
{
    size_t l = strlen(k);

    return msgpack_pack_str(pk, l) | msgpack_pack_str_body(pk, k, l);
}

static int pack_ring(msgpack_packer *pk, const struct ring *r)
{
    uint32_t i, n = ring_members(r), q = ring_q(r);
    int rc = msgpack_pack_array(pk, 2) | msgpack_pack_array(pk, n);

    for (i = 0; i < n; i++) {
        const char *id = ring_member(r, i);
        size_t l = strlen(id);

        rc |= msgpack_pack_str(pk, l) | msgpack_pack_str_body(pk, id, l);
    }
    rc |= msgpack_pack_array(pk, q);
    for (i = 0; i < q; i++)
        rc |= msgpack_pack_uint32(pk, ring_owner(r, i));
    return rc;
}

int ring_state_encode(const struct ring_state *s, uint8_t **buf, size_t *len)
{
    struct wire_buf b;
    msgpack_packer pk;
    uint32_t i, ngone = s != NULL && s->next != NULL ? ring_members(s->cur) : 0;
    size_t nbytes;
    uint8_t *bits;
    int rc;

    if (s == NULL || buf == NULL || len == NULL)
        return -EINVAL;
    nbytes = ((size_t)s->nxfer + 7) / 8;
    bits = calloc(nbytes > 0 ? nbytes : 1, 1);
    if (bits == NULL)
        return -ENOMEM;
    for (i = 0; i < s->nxfer; i++) {
        if (s->xfer[i].done)
            bits[i / 8] |= (uint8_t)(1u << (i % 8));
    }
    wire_buf_init(&b);
    wire_packer_init(&pk, &b);
    rc = msgpack_pack_map(&pk, NKEYS);
    rc |= pack_key(&pk, "fmt") | msgpack_pack_uint32(&pk, RING_STATE_FORMAT);
    rc |= pack_key(&pk, "version") | msgpack_pack_uint64(&pk, s->version);
    rc |= pack_key(&pk, "nval") | msgpack_pack_uint32(&pk, s->nval);
    rc |= pack_key(&pk, "q") | msgpack_pack_uint32(&pk, ring_q(s->cur));
    rc |= pack_key(&pk, "cur") | pack_ring(&pk, s->cur);
    rc |= pack_key(&pk, "next");
    rc |= s->next != NULL ? pack_ring(&pk, s->next) : msgpack_pack_nil(&pk);
    rc |= pack_key(&pk, "gone") | msgpack_pack_array(&pk, ngone);
    for (i = 0; i < ngone; i++)
        rc |= msgpack_pack_uint32(&pk, s->gone[i]);
    rc |= pack_key(&pk, "xfers") | msgpack_pack_array(&pk, s->nxfer);
    for (i = 0; i < s->nxfer; i++) {
        const struct ring__xfer *x = &s->xfer[i];

        rc |= msgpack_pack_array(&pk, 3) | msgpack_pack_uint32(&pk, x->part);
        rc |= msgpack_pack_uint32(&pk, x->dest);
        rc |= x->src == RING_NONE ? msgpack_pack_nil(&pk)
                                  : msgpack_pack_uint32(&pk, x->src);
    }
    rc |= pack_key(&pk, "done") | msgpack_pack_bin(&pk, nbytes) |
          msgpack_pack_bin_body(&pk, bits, nbytes);
    free(bits);
    if (rc != 0) {
        wire_buf_free(&b);
        return -ENOMEM;
    }
    *buf = b.data;
    *len = b.len;
    return 0;
}

/* ---- decode ------------------------------------------------------------- */

/* Fails the decode with reason w (a static string). */
#define BAD(w)                                                                 \
    do {                                                                       \
        *why = (w);                                                            \
        return RK_EPROTO;                                                      \
    } while (0)

static bool get_uint(const msgpack_object *o, uint64_t max, uint64_t *out)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > max)
        return false;
    *out = o->via.u64;
    return true;
}

static bool is_array(const msgpack_object *o, uint32_t *n)
{
    if (o->type != MSGPACK_OBJECT_ARRAY)
        return false;
    *n = o->via.array.size;
    return true;
}

/* Decodes [[id, ...], [owner, ...]] into a new ring of q partitions. */
static int get_ring(const msgpack_object *o, uint32_t q, struct ring **out,
                    const char **why)
{
    char ids[RING_MAX_NODES][RING_ID_MAX + 1];
    const char *idp[RING_MAX_NODES];
    const msgpack_object *a, *io, *oo;
    uint32_t n, i, nq;
    uint32_t *owners;
    uint64_t v;
    int rc;

    if (!is_array(o, &n) || n != 2)
        BAD("a ring is not [ids, owners]");
    a = o->via.array.ptr;
    io = &a[0];
    oo = &a[1];
    if (!is_array(io, &n) || n < 1 || n > RING_MAX_NODES)
        BAD("a ring's ids are not an array of 1..RING_MAX_NODES");
    for (i = 0; i < n; i++) {
        const msgpack_object *e = &io->via.array.ptr[i];
        uint32_t l;

        if (e->type != MSGPACK_OBJECT_STR)
            BAD("a member id is not a string");
        l = e->via.str.size;
        if (l < 1 || l > RING_ID_MAX)
            BAD("a member id is not 1..RING_ID_MAX bytes");
        if (memchr(e->via.str.ptr, '\0', l) != NULL)
            BAD("a member id holds a NUL byte");
        memcpy(ids[i], e->via.str.ptr, l);
        ids[i][l] = '\0';
        idp[i] = ids[i];
        if (i > 0 && strcmp(ids[i - 1], ids[i]) >= 0)
            BAD("member ids are not unique and ascending");
    }
    if (!is_array(oo, &nq) || nq != q)
        BAD("a ring's owner list is not Q long");
    owners = malloc((size_t)q * sizeof(*owners));
    if (owners == NULL)
        return -ENOMEM;
    for (i = 0; i < q; i++) {
        if (!get_uint(&oo->via.array.ptr[i], n - 1, &v)) {
            free(owners);
            BAD("an owner index is out of range");
        }
        owners[i] = (uint32_t)v;
    }
    rc = ring_build_owned(out, q, idp, n, owners);
    free(owners);
    if (rc == RK_ECONFIG)
        BAD("a ring is invalid");
    return rc;
}

/* Checks gone[] against cur and next: a member is gone iff it is not in
 * next. */
static int get_gone(const msgpack_object *o, struct ring_state *s,
                    const char **why)
{
    uint32_t n, i, ncur = ring_members(s->cur);
    uint64_t v;

    if (!is_array(o, &n))
        BAD("gone is not an array");
    if (s->next == NULL) {
        if (n != 0)
            BAD("gone is not empty while nothing is pending");
        return 0;
    }
    if (n != ncur)
        BAD("gone does not have one entry per member of cur");
    s->gone = calloc(ncur, 1);
    if (s->gone == NULL)
        return -ENOMEM;
    for (i = 0; i < n; i++) {
        bool in_next = ring_member_index(s->next, ring_member(s->cur, i)) >= 0;

        if (!get_uint(&o->via.array.ptr[i], RING__GONE_MAX - 1, &v))
            BAD("a gone entry is not 0, 1 or 2");
        if ((v == RING__STAYS) != in_next)
            BAD("gone disagrees with next's members");
        s->gone[i] = (uint8_t)v;
    }
    return 0;
}

/* Checks the plan against the one ring__plan() computes (already in s) and
 * takes the sources and done bits from the encoding. */
static int get_plan(const msgpack_object *xo, const msgpack_object *bo,
                    struct ring_state *s, const char **why)
{
    uint32_t n, i, m;
    uint64_t part, dest, src;

    if (!is_array(xo, &n))
        BAD("xfers is not an array");
    if (n != s->nxfer)
        BAD("xfers is not the plan of cur -> next");
    if (bo->type != MSGPACK_OBJECT_BIN || bo->via.bin.size != (n + 7) / 8)
        BAD("done is not a bitmap as long as the plan");
    for (i = 0; i < n; i++) {
        const msgpack_object *e = &xo->via.array.ptr[i];
        struct ring__xfer *x = &s->xfer[i];
        const uint8_t *bits = (const uint8_t *)bo->via.bin.ptr;

        if (!is_array(e, &m) || m != 3)
            BAD("a transfer is not [partition, dest, src]");
        if (!get_uint(&e->via.array.ptr[0], UINT32_MAX, &part) ||
            !get_uint(&e->via.array.ptr[1], UINT32_MAX, &dest) ||
            part != x->part || dest != x->dest)
            BAD("xfers is not the plan of cur -> next");
        if (e->via.array.ptr[2].type == MSGPACK_OBJECT_NIL) {
            x->src = RING_NONE;
        } else if (!get_uint(&e->via.array.ptr[2], RING_MAX_NODES - 1, &src) ||
                   !ring__src_valid(s, x->part, (uint32_t)src)) {
            BAD("a transfer's source is not a live old replica");
        } else {
            x->src = (uint32_t)src;
        }
        x->done = (bits[i / 8] >> (i % 8)) & 1;
        s->ndone += x->done;
    }
    if (n % 8 != 0 && (((const uint8_t *)bo->via.bin.ptr)[n / 8] >> (n % 8)))
        BAD("done has bits set beyond the plan");
    if (n > 0 && s->ndone == n)
        BAD("every transfer is done but the state did not flip");
    return 0;
}

/* next must be what ring_state_change() builds: ring_rebuild(cur, the
 * members of next). */
static int check_next(const struct ring_state *s, const char **why)
{
    const char *ids[RING_MAX_NODES];
    uint32_t i, n = ring_members(s->next);
    struct ring *r = NULL;
    bool same = true;
    int rc;

    for (i = 0; i < n; i++)
        ids[i] = ring_member(s->next, i);
    rc = ring_rebuild(&r, s->cur, ids, n);
    if (rc != 0)
        return rc;
    for (i = 0; i < ring_q(r); i++)
        same &= ring_owner(r, i) == ring_owner(s->next, i);
    ring_destroy(r);
    if (!same)
        BAD("next is not the rebuild of cur for its members");
    return 0;
}

static int decode_map(const msgpack_object *root, struct ring_state *s,
                      const char **why)
{
    const msgpack_object *f[NKEYS];
    uint64_t v, q;
    uint32_t i;
    int rc;

    if (root->type != MSGPACK_OBJECT_MAP || root->via.map.size != NKEYS)
        BAD("not a map of the format-1 keys");
    for (i = 0; i < NKEYS; i++) {
        const msgpack_object *k = &root->via.map.ptr[i].key;
        size_t l = strlen(keys[i]);

        if (k->type != MSGPACK_OBJECT_STR || k->via.str.size != l ||
            memcmp(k->via.str.ptr, keys[i], l) != 0)
            BAD("keys are not the format-1 keys in order");
        f[i] = &root->via.map.ptr[i].val;
    }
    if (!get_uint(f[0], UINT32_MAX, &v) || v != RING_STATE_FORMAT)
        BAD("unknown format (fmt)");
    if (!get_uint(f[1], UINT64_MAX, &s->version) || s->version == 0)
        BAD("version is not a positive integer");
    if (RING_STATE_EPOCH(s->version) > RING_STATE_EPOCH_MAX ||
        RING_STATE_STEP(s->version) > RING_STATE_STEP_MAX)
        BAD("version's epoch or step is out of range");
    if (!get_uint(f[2], RING_STATE_NVAL_MAX, &v) || v == 0)
        BAD("nval is outside 1..RING_STATE_NVAL_MAX");
    s->nval = (uint32_t)v;
    if (!get_uint(f[3], RING_Q_MAX, &q) || !ring_q_valid((uint32_t)q))
        BAD("q is not a power of two in 1..RING_Q_MAX");
    rc = get_ring(f[4], (uint32_t)q, &s->cur, why);
    if (rc == 0 && f[5]->type != MSGPACK_OBJECT_NIL)
        rc = get_ring(f[5], (uint32_t)q, &s->next, why);
    if (rc == 0 && (s->next != NULL) != (RING_STATE_EPOCH(s->version) % 2))
        BAD("pending and the version's epoch parity disagree");
    if (rc == 0 && s->next != NULL)
        rc = check_next(s, why);
    if (rc == 0)
        rc = get_gone(f[6], s, why);
    if (rc != 0 || s->next == NULL) {
        if (rc == 0 &&
            (f[7]->type != MSGPACK_OBJECT_ARRAY || f[7]->via.array.size != 0 ||
             f[8]->type != MSGPACK_OBJECT_BIN || f[8]->via.bin.size != 0))
            BAD("a plan is present while nothing is pending");
        return rc;
    }
    rc = ring__plan(s, NULL, 0);
    if (rc != 0)
        return rc;
    if (s->nxfer == 0)
        BAD("a change with an empty plan did not flip");
    return get_plan(f[7], f[8], s, why);
}

int ring_state_decode(const uint8_t *p, size_t n, struct ring_state **out,
                      const char **why)
{
    const char *dummy;
    struct ring_state *s;
    msgpack_zone zone;
    msgpack_object root;
    size_t off = 0;
    msgpack_unpack_return ur;
    int rc;

    if (why == NULL)
        why = &dummy;
    if (p == NULL || out == NULL)
        return -EINVAL;
    if (n > RING_STATE_MAX_BYTES)
        BAD("larger than RING_STATE_MAX_BYTES");
    rc = wire_prevalidate(p, n, 4, why);
    if (rc != 0)
        return RK_EPROTO;
    if (!msgpack_zone_init(&zone, 4096))
        return -ENOMEM;
    ur = msgpack_unpack((const char *)p, n, &off, &zone, &root);
    if (ur == MSGPACK_UNPACK_NOMEM_ERROR) {
        msgpack_zone_destroy(&zone);
        return -ENOMEM;
    }
    if (ur != MSGPACK_UNPACK_SUCCESS || off != n) {
        msgpack_zone_destroy(&zone);
        BAD("msgpack rejected the value");
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        msgpack_zone_destroy(&zone);
        return -ENOMEM;
    }
    rc = decode_map(&root, s, why);
    msgpack_zone_destroy(&zone);
    if (rc != 0) {
        ring_state_destroy(s);
        return rc;
    }
    *out = s;
    return 0;
}
