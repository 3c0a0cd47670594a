/* auth_keys: an immutable set of API-key identities, looked up by digest.
 *
 * A set is built once (new, add_domain, add..., seal) and then only read, so
 * any number of threads may call auth_keyset_lookup() concurrently on a
 * sealed set. Replacing the set on rotation is the owner's job (auth.c swaps
 * a refcounted snapshot).
 *
 * The set never holds a plaintext key. Each entry stores
 * HMAC-SHA256(domain key, key) where the domain key is either a per-process
 * random key (keys read from Secret dirs and the environment) or the key
 * store's salt (the store holds only that HMAC). A lookup hashes the
 * presented credential once per domain and compares digests in constant time.
 */
#ifndef WARD_AUTH_KEYS_H
#define WARD_AUTH_KEYS_H

#include "auth/auth_crypto.h"

#include <stddef.h>
#include <stdint.h>

#define AUTH_MAX_KEYS 100000        /* identities per set; far above any deployment, bounds memory */
#define AUTH_MAX_DOMAINS 8          /* process key + key store salt, with room to spare */
#define AUTH_MAX_MODELS 64          /* models one identity may be limited to */
#define AUTH_MAX_NAME_BYTES 128     /* identity names appear in logs and metrics */
#define AUTH_MAX_MODEL_BYTES 256    /* one model id */

/* What a key resolves to. All strings are owned by the set and live as long as it. */
typedef struct auth_identity {
    const char *name;           /* shown in logs/metrics; never the key */
    const char *const *models;  /* allow-list of model ids; NULL when every model is allowed */
    size_t n_models;
    int rpm;                    /* requests per minute; 0 = the server default */
    int64_t expires;            /* Unix seconds; 0 = never */
    const char *source;         /* "secret", "store", "env": where the key came from */
} auth_identity;

typedef struct auth_keyset auth_keyset;

auth_keyset *auth_keyset_new(void);
void auth_keyset_free(auth_keyset *ks);

/* Registers an HMAC domain key; returns its index (>= 0) or -1 when full. */
int auth_keyset_add_domain(auth_keyset *ks, const uint8_t key[AUTH_HMAC_KEY_LEN]);

/* Adds an identity whose digest under `domain` is `digest`. The identity's
 * strings are copied. Returns 0, 1 if that digest is already present (the
 * first one wins, so a duplicated key cannot change an identity), or -1 with
 * a message (limits, bad strings, out of memory). */
int auth_keyset_add_digest(auth_keyset *ks, int domain, const uint8_t digest[AUTH_DIGEST_LEN],
                           const auth_identity *id, char *err, size_t errlen);

/* Hashes `key` under `domain` and adds it (same returns as add_digest). The
 * caller still owns and wipes the plaintext. */
int auth_keyset_add_key(auth_keyset *ks, int domain, const char *key, size_t key_len,
                        const auth_identity *id, char *err, size_t errlen);

/* Builds the lookup table; after this the set is read-only. Returns 0 or -1. */
int auth_keyset_seal(auth_keyset *ks);

size_t auth_keyset_count(const auth_keyset *ks);

/* The identity for a presented credential, or NULL. Thread-safe on a sealed
 * set. Does not check expiry (the caller has the clock). */
const auth_identity *auth_keyset_lookup(const auth_keyset *ks, const char *cred, size_t len);

/* Parses a comma-separated model list ("a,b , c") into the identity's
 * models; used for Secret `models` entries and `--models`. Returns the count,
 * or -1 with a message. out must have AUTH_MAX_MODELS slots; the strings are
 * pointers into buf, which is modified in place. */
int auth_parse_models(char *buf, const char **out, char *err, size_t errlen);

/* True if the identity may use `model` (NULL/empty model: allowed). */
int auth_identity_allows_model(const auth_identity *id, const char *model);

#endif
