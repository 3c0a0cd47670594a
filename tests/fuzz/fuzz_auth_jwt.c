/* libFuzzer target: JWT parsing/verification and JWKS parsing.
 * Input: first byte selects the mode; 0-127: the rest is a JWT checked
 * against a fixed JWKS (RSA + EC); 128-255: the rest is a JWKS document. */
#include "auth/auth_jwt.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static const char JWKS[] =
    "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"ec1\","
    "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\",\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"},"
    "{\"kty\":\"RSA\",\"kid\":\"rsa1\",\"e\":\"AQAB\",\"n\":\"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4"
    "cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4"
    "QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQF"
    "h6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw\"}]}";

static auth_jwks *g_jwks;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_jwks) {
        char err[256];
        g_jwks = auth_jwks_parse(JWKS, strlen(JWKS), err, sizeof err);
    }
    if (size < 1)
        return 0;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    char err[256];
    if (data[0] < 128) {
        const char *iss[] = {"https://kubernetes.default.svc"};
        const char *aud[] = {"ward"};
        auth_jwt_policy p = {iss, 1, aud, 1, 1720473958, AUTH_JWT_SKEW_S};
        char sub[AUTH_JWT_MAX_SUB_BYTES + 1];
        (void)auth_jwt_looks_like(s, n);
        (void)auth_jwt_verify(g_jwks, s, n, &p, sub, sizeof sub, err, sizeof err);
    } else {
        auth_jwks *j = auth_jwks_parse(s, n, err, sizeof err);
        auth_jwks_free(j);
    }
    return 0;
}
