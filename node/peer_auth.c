/*
 * peer_auth.c - nonces, HMAC-SHA256 proofs and secret files for the peer
 * handshake (see peer_auth.h).
 *
 *   proof = HMAC-SHA256(secret, label | len|acceptor_nonce | len|dialer_nonce
 *                               | len|cluster | len|acceptor_id
 *                               | len|dialer_id)
 *   label = "ringkv-peer-acceptor-v1" or "ringkv-peer-dialer-v1"
 *   len   = 4-byte big-endian length of the field that follows
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "node/config.h"
#include "node/peer_auth.h"
#include "proto/errors.h"

int peer_auth_init(void)
{
    return sodium_init() < 0 ? -EIO : 0;
}

void peer_auth_nonce(uint8_t out[PEER_AUTH_NONCE_LEN])
{
    randombytes_buf(out, PEER_AUTH_NONCE_LEN);
}

static void auth_field(crypto_auth_hmacsha256_state *st, const uint8_t *p,
                       size_t n)
{
    uint8_t len[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8),
                      (uint8_t)n};
    crypto_auth_hmacsha256_update(st, len, sizeof(len));
    if (n > 0)
        crypto_auth_hmacsha256_update(st, p, n);
}

void peer_auth_mac(uint8_t out[PEER_AUTH_MAC_LEN], enum peer_auth_role role,
                   const struct peer_auth_input *in)
{
    static const char *const labels[PEER_AUTH_ROLE_MAX] = {
        [PEER_AUTH_ACCEPTOR] = "ringkv-peer-acceptor-v1",
        [PEER_AUTH_DIALER] = "ringkv-peer-dialer-v1",
    };
    crypto_auth_hmacsha256_state st;
    const char *label = labels[role];

    crypto_auth_hmacsha256_init(&st, in->secret, in->secret_len);
    auth_field(&st, (const uint8_t *)label, strlen(label));
    auth_field(&st, in->acceptor_nonce, PEER_AUTH_NONCE_LEN);
    auth_field(&st, in->dialer_nonce, PEER_AUTH_NONCE_LEN);
    auth_field(&st, in->cluster, in->cluster_len);
    auth_field(&st, in->acceptor_id, in->acceptor_id_len);
    auth_field(&st, in->dialer_id, in->dialer_id_len);
    crypto_auth_hmacsha256_final(&st, out);
    sodium_memzero(&st, sizeof(st));
}

bool peer_auth_check(const uint8_t expected[PEER_AUTH_MAC_LEN],
                     const uint8_t *got, size_t len)
{
    return len == PEER_AUTH_MAC_LEN && got != NULL &&
           crypto_verify_32(expected, got) == 0;
}

void peer_auth_ctx_key(uint8_t out[PEER_AUTH_CTX_KEY_LEN],
                       const uint8_t *secret, size_t secret_len)
{
    static const char label[] = "ringkv-context-key-v1";
    crypto_auth_hmacsha256_state st;

    crypto_auth_hmacsha256_init(&st, secret, secret_len);
    auth_field(&st, (const uint8_t *)label, sizeof(label) - 1);
    crypto_auth_hmacsha256_final(&st, out);
    sodium_memzero(&st, sizeof(st));
}

void peer_auth_ctx_tag(uint8_t out[PEER_AUTH_CTX_TAG_LEN],
                       const uint8_t ctx_key[PEER_AUTH_CTX_KEY_LEN],
                       const uint8_t *key, size_t key_len, const uint8_t *ctx,
                       size_t ctx_len)
{
    crypto_auth_hmacsha256_state st;
    uint8_t mac[crypto_auth_hmacsha256_BYTES];

    crypto_auth_hmacsha256_init(&st, ctx_key, PEER_AUTH_CTX_KEY_LEN);
    auth_field(&st, key, key_len);
    auth_field(&st, ctx, ctx_len);
    crypto_auth_hmacsha256_final(&st, mac);
    memcpy(out, mac, PEER_AUTH_CTX_TAG_LEN);
    sodium_memzero(&st, sizeof(st));
}

bool peer_auth_ctx_check(const uint8_t ctx_key[PEER_AUTH_CTX_KEY_LEN],
                         const uint8_t *key, size_t key_len, const uint8_t *ctx,
                         size_t ctx_len, const uint8_t *tag)
{
    uint8_t want[PEER_AUTH_CTX_TAG_LEN];
    peer_auth_ctx_tag(want, ctx_key, key, key_len, ctx, ctx_len);
    return crypto_verify_16(want, tag) == 0;
}

int peer_auth_read_secret(const char *path, uint8_t *buf, size_t cap,
                          bool *loose, char *err, size_t errlen)
{
    struct stat sb;
    size_t n = 0;
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot read cluster_secret_file %s: %s", path,
                 strerror(errno));
        return rc;
    }
    *loose = fstat(fd, &sb) == 0 && (sb.st_mode & 077) != 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = -errno;
            snprintf(err, errlen, "cannot read cluster_secret_file %s: %s",
                     path, strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n == cap) {
            rc = RK_ECONFIG;
            snprintf(err, errlen,
                     "cluster_secret_file %s is longer than %zu bytes", path,
                     cap);
            goto out;
        }
    }
    if (n > 0 && buf[n - 1] == '\n')
        n--;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    if (n < CONFIG_MIN_SECRET) {
        rc = RK_ECONFIG;
        snprintf(err, errlen,
                 "cluster_secret_file %s holds %zu bytes, fewer than %d; make "
                 "one with: head -c 32 /dev/urandom | base64 > %s",
                 path, n, CONFIG_MIN_SECRET, path);
        goto out;
    }
    rc = (int)n;
out:
    close(fd);
    return rc;
}
