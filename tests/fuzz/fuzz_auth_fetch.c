/* libFuzzer target: the JWKS fetch client's HTTP response parser and URL
 * parser. Input: first byte selects the mode; 0-63: the rest is a URL;
 * otherwise the rest is a response, parsed whole at EOF and, split at a
 * point taken from the mode byte, first without EOF (as the client does
 * after each read). */
#include "auth/auth_fetch.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    char err[256];
    if (data[0] < 64) {
        char *url = malloc(n + 1);
        if (!url)
            return 0;
        memcpy(url, s, n);
        url[n] = 0;
        auth_fetch_url_parts u;
        if (auth_fetch_parse_url(url, &u, err, sizeof err) == 0 && (u.path[0] != '/' || !u.host[0]))
            abort();
        free(url);
        return 0;
    }
    char *body = NULL;
    size_t len = 0;
    size_t cut = n ? (size_t)data[0] * n / 256 : 0;
    int rc = auth_fetch_parse_response(s, cut, 0, &body, &len, err, sizeof err);
    if (rc == AUTH_FETCH_DONE) {
        if (len > AUTH_FETCH_MAX_BODY || body[len] != 0)
            abort();
        free(body);
    }
    rc = auth_fetch_parse_response(s, n, 1, &body, &len, err, sizeof err);
    if (rc == AUTH_FETCH_NEED_MORE)
        abort(); /* at EOF there is no more */
    if (rc == AUTH_FETCH_DONE) {
        if (len > AUTH_FETCH_MAX_BODY || body[len] != 0)
            abort();
        free(body);
    }
    return 0;
}
