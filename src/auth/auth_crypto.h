/* auth_crypto: the small cryptographic helpers every auth module shares.
 *
 * Keys are never kept or compared as plaintext: a presented credential is
 * turned into an HMAC-SHA256 digest under a "domain" key (a per-process random
 * key for Secret-dir keys, the store's salt for key-store keys), the plaintext
 * copy is wiped, and digests are compared with CRYPTO_memcmp.
 */
#ifndef WARD_AUTH_CRYPTO_H
#define WARD_AUTH_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define AUTH_DIGEST_LEN 32            /* SHA-256 output */
#define AUTH_HMAC_KEY_LEN 32          /* 256-bit domain keys and salts */
#define AUTH_KEY_PREFIX "ward_"       /* recognisable in leak scanners and logs reviews */
#define AUTH_KEY_RANDOM_BYTES 32      /* 256 bits of entropy per generated key */
/* prefix + base62 of 256 bits (43 digits) + NUL */
#define AUTH_KEY_TEXT_MAX (sizeof(AUTH_KEY_PREFIX) - 1 + 43 + 1)

/* HMAC-SHA256(key, msg) into out. Returns 0, or -1 if OpenSSL failed. */
int auth_hmac(const uint8_t key[AUTH_HMAC_KEY_LEN], const void *msg, size_t len,
              uint8_t out[AUTH_DIGEST_LEN]);

/* Constant-time equality of two digests (1 equal, 0 not). */
int auth_digest_eq(const uint8_t a[AUTH_DIGEST_LEN], const uint8_t b[AUTH_DIGEST_LEN]);

/* Lower-case hex of n bytes into out (2n+1 bytes). */
void auth_hex(const uint8_t *in, size_t n, char *out);
/* Parses exactly 2n hex digits into out. Returns 0 or -1. */
int auth_unhex(const char *hex, uint8_t *out, size_t n);

/* Generates a new API key "ward_<43 base62 digits>" into out (AUTH_KEY_TEXT_MAX
 * bytes). The caller wipes it (auth_wipe) as soon as it has been shown. */
int auth_key_generate(char out[AUTH_KEY_TEXT_MAX]);

/* Wipes n bytes so the compiler cannot elide it (OPENSSL_cleanse). */
void auth_wipe(void *p, size_t n);

#endif
