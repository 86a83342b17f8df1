/*
 * peer_auth.h - the peer handshake's cryptography: nonces and the HMAC
 * proofs that both ends of a peer link hold the cluster secret
 * (docs/protocol.md "Peer handshake", docs/design.md "Threat model").
 *
 * A proof is HMAC-SHA256 keyed with the secret over a role label, both
 * nonces, the cluster name and both node ids, each length-prefixed so no
 * two different inputs give the same message. The label differs for the
 * two directions, so a proof seen in one direction cannot be replayed in
 * the other; fresh nonces from both sides keep proofs from being replayed
 * across connections. libsodium supplies the HMAC, the random bytes and
 * the constant-time comparison: no hand-written crypto.
 */
#ifndef RINGKV_PEER_AUTH_H
#define RINGKV_PEER_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PEER_AUTH_NONCE_LEN 32
#define PEER_AUTH_MAC_LEN   32
/* Longest cluster secret, in bytes (the shortest is CONFIG_MIN_SECRET). */
#define PEER_AUTH_MAX_SECRET 4096

/* Which side a proof speaks for. */
enum peer_auth_role {
    PEER_AUTH_ACCEPTOR, /* the node that accepted the connection */
    PEER_AUTH_DIALER,   /* the node that dialed it */
    PEER_AUTH_ROLE_MAX
};

/* What one proof covers. Strings are pointer + length, not terminated. */
struct peer_auth_input {
    const uint8_t *secret;
    size_t secret_len;
    const uint8_t *acceptor_nonce, *dialer_nonce; /* PEER_AUTH_NONCE_LEN */
    const uint8_t *cluster;
    size_t cluster_len;
    const uint8_t *acceptor_id, *dialer_id;
    size_t acceptor_id_len, dialer_id_len;
};

/* Initialises libsodium. Returns 0, or -EIO when it cannot (no entropy).
 * Call once before anything below; calling again is harmless. */
int peer_auth_init(void);

/* Fills out with unpredictable bytes. */
void peer_auth_nonce(uint8_t out[PEER_AUTH_NONCE_LEN]);

/* The proof of role over in. */
void peer_auth_mac(uint8_t out[PEER_AUTH_MAC_LEN], enum peer_auth_role role,
                   const struct peer_auth_input *in);

/* True when the received proof (len bytes) equals the expected one, in
 * constant time. A wrong length is false. */
bool peer_auth_check(const uint8_t expected[PEER_AUTH_MAC_LEN],
                     const uint8_t *got, size_t len);

/* Causal contexts handed to clients are tagged so that a client can only
 * send back a context the cluster issued for that key (docs/design.md,
 * "Threat model"): tag = HMAC-SHA256(context key, key || context), cut to
 * PEER_AUTH_CTX_TAG_LEN bytes and appended to the context. The context key
 * is derived from the cluster secret, so every node checks every other
 * node's tags. */
#define PEER_AUTH_CTX_KEY_LEN 32
#define PEER_AUTH_CTX_TAG_LEN 16

/* The context key of a cluster secret. */
void peer_auth_ctx_key(uint8_t out[PEER_AUTH_CTX_KEY_LEN],
                       const uint8_t *secret, size_t secret_len);

/* The tag of context ctx (ctx_len bytes, untagged) for key. */
void peer_auth_ctx_tag(uint8_t out[PEER_AUTH_CTX_TAG_LEN],
                       const uint8_t ctx_key[PEER_AUTH_CTX_KEY_LEN],
                       const uint8_t *key, size_t key_len, const uint8_t *ctx,
                       size_t ctx_len);

/* True when tag (PEER_AUTH_CTX_TAG_LEN bytes) is ctx's tag for key,
 * compared in constant time. */
bool peer_auth_ctx_check(const uint8_t ctx_key[PEER_AUTH_CTX_KEY_LEN],
                         const uint8_t *key, size_t key_len, const uint8_t *ctx,
                         size_t ctx_len, const uint8_t *tag);

/* Reads a secret file into buf (cap bytes), dropping one trailing newline
 * ("\n" or "\r\n"). Returns its length, or an error with err set:
 * -errno (cannot read), RK_ECONFIG (shorter than CONFIG_MIN_SECRET or not
 * shorter than cap). *loose is set when group or others
 * may read the file. */
int peer_auth_read_secret(const char *path, uint8_t *buf, size_t cap,
                          bool *loose, char *err, size_t errlen);

#endif
