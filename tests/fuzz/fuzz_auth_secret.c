/* libFuzzer target: the contents of a mounted Secret's entries. The input is
 * split at the first NUL: the first part is a key file (auth_key_normalize),
 * the rest a "models" file (auth_parse_models). Both must accept or refuse
 * with a message, never read or write out of bounds. */
#include "auth/auth_keys.h"
#include "auth/auth_secret.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t klen = nul ? (size_t)(nul - data) : size;
    size_t mlen = nul ? size - klen - 1 : 0;
    if (klen > AUTH_MAX_KEY_BYTES || mlen > AUTH_SECRET_MAX_FILE_BYTES)
        return 0; /* the reader refuses larger files before parsing */
    char err[256];
    char *key = malloc(klen + 1);
    char *models = malloc(mlen + 1);
    if (!key || !models) {
        free(key);
        free(models);
        return 0;
    }
    memcpy(key, data, klen);
    key[klen] = '\0';
    long n = auth_key_normalize(key, klen, err, sizeof err);
    if (n >= 0 && ((size_t)n > klen || key[n] != '\0'))
        abort(); /* the normalized key must be a NUL-terminated prefix */
    if (mlen)
        memcpy(models, nul + 1, mlen);
    models[mlen] = '\0';
    const char *out[AUTH_MAX_MODELS];
    int m = auth_parse_models(models, out, err, sizeof err);
    for (int i = 0; i < m; i++)
        if (!out[i] || !out[i][0] || out[i] < models || out[i] > models + mlen)
            abort(); /* each model id is a non-empty string inside the buffer */
    free(key);
    free(models);
    return 0;
}
