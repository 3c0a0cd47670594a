/* auth_crypto: see auth_crypto.h. */
#include "auth/auth_crypto.h"

#include "util/rand.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <pthread.h>
#include <string.h>

/* The HMAC implementation is fetched once: fetching per call costs more than
 * the MAC itself on short keys. */
static EVP_MAC *g_mac;
static pthread_once_t g_mac_once = PTHREAD_ONCE_INIT;

static void mac_init(void) { g_mac = EVP_MAC_fetch(NULL, "HMAC", NULL); }

int auth_hmac(const uint8_t key[AUTH_HMAC_KEY_LEN], const void *msg, size_t len,
              uint8_t out[AUTH_DIGEST_LEN])
{
    pthread_once(&g_mac_once, mac_init);
    if (!g_mac)
        return -1;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(g_mac);
    if (!ctx)
        return -1;
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    size_t outlen = 0;
    int ok = EVP_MAC_init(ctx, key, AUTH_HMAC_KEY_LEN, params) == 1 &&
             EVP_MAC_update(ctx, msg, len) == 1 &&
             EVP_MAC_final(ctx, out, &outlen, AUTH_DIGEST_LEN) == 1 && outlen == AUTH_DIGEST_LEN;
    EVP_MAC_CTX_free(ctx);
    return ok ? 0 : -1;
}

int auth_digest_eq(const uint8_t a[AUTH_DIGEST_LEN], const uint8_t b[AUTH_DIGEST_LEN])
{
    return CRYPTO_memcmp(a, b, AUTH_DIGEST_LEN) == 0;
}

void auth_hex(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int auth_unhex(const char *hex, uint8_t *out, size_t n)
{
    if (!hex || strlen(hex) != 2 * n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

int auth_key_generate(char out[AUTH_KEY_TEXT_MAX])
{
    static const char alphabet[] =
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    uint8_t num[AUTH_KEY_RANDOM_BYTES];
    if (rand_bytes(num, sizeof num) != 0)
        return -1;
    /* Base62 by repeated division of the big-endian number: 43 digits always
     * (62^43 > 2^256), so every key has the same length. */
    const size_t plen = sizeof(AUTH_KEY_PREFIX) - 1;
    memcpy(out, AUTH_KEY_PREFIX, plen);
    for (int d = 42; d >= 0; d--) {
        unsigned rem = 0;
        for (size_t i = 0; i < sizeof num; i++) {
            unsigned cur = rem * 256u + num[i];
            num[i] = (uint8_t)(cur / 62u);
            rem = cur % 62u;
        }
        out[plen + (size_t)d] = alphabet[rem];
    }
    out[plen + 43] = '\0';
    auth_wipe(num, sizeof num);
    return 0;
}

void auth_wipe(void *p, size_t n)
{
    if (p && n)
        OPENSSL_cleanse(p, n);
}
