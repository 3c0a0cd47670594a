/* Unit tests for auth_jwt: JWKS parsing and JWT verification with keys made
 * by OpenSSL at test time (EC P-256 and RSA-2048), including the attacks:
 * alg none, HS256 with the public key, tampered payload, wrong key/kid,
 * expired, not yet valid, wrong iss/aud, malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "auth/auth_jwt.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOW 1720473958

static EVP_PKEY *g_ec, *g_rsa, *g_ec_other;
static char g_jwks[8192];

static void b64u(const unsigned char *in, size_t n, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
        out[o++] = a[v >> 18 & 63];
        out[o++] = a[v >> 12 & 63];
        if (i + 1 < n)
            out[o++] = a[v >> 6 & 63];
        if (i + 2 < n)
            out[o++] = a[v & 63];
    }
    out[o] = '\0';
}

static void bn_b64u(const BIGNUM *bn, size_t pad, char *out)
{
    unsigned char buf[600];
    int n = pad ? BN_bn2binpad(bn, buf, (int)pad) : BN_bn2bin(bn, buf);
    b64u(buf, (size_t)n, out);
}

static int setup(void **state)
{
    (void)state;
    g_ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    g_ec_other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    g_rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    if (!g_ec || !g_rsa || !g_ec_other)
        return -1;
    BIGNUM *x = NULL, *y = NULL, *n = NULL, *e = NULL;
    EVP_PKEY_get_bn_param(g_ec, OSSL_PKEY_PARAM_EC_PUB_X, &x);
    EVP_PKEY_get_bn_param(g_ec, OSSL_PKEY_PARAM_EC_PUB_Y, &y);
    EVP_PKEY_get_bn_param(g_rsa, OSSL_PKEY_PARAM_RSA_N, &n);
    EVP_PKEY_get_bn_param(g_rsa, OSSL_PKEY_PARAM_RSA_E, &e);
    char xs[64], ys[64], ns[600], es[16];
    bn_b64u(x, 32, xs);
    bn_b64u(y, 32, ys);
    bn_b64u(n, 0, ns);
    bn_b64u(e, 0, es);
    snprintf(g_jwks, sizeof g_jwks,
             "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"ec1\",\"use\":\"sig\",\"x\":\"%s\",\"y\":\"%s\"},"
             "{\"kty\":\"RSA\",\"kid\":\"rsa1\",\"alg\":\"RS256\",\"n\":\"%s\",\"e\":\"%s\"},"
             "{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}]}",
             xs, ys, ns, es);
    BN_free(x);
    BN_free(y);
    BN_free(n);
    BN_free(e);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(g_ec);
    EVP_PKEY_free(g_ec_other);
    EVP_PKEY_free(g_rsa);
    return 0;
}

/* Builds header.payload.signature; alg "ES256"/"RS256" signs with key,
 * anything else leaves an empty signature. */
static void make_jwt(const char *header, const char *payload, EVP_PKEY *key, int es, char *out, size_t outlen)
{
    char h[1024], p[2048];
    b64u((const unsigned char *)header, strlen(header), h);
    b64u((const unsigned char *)payload, strlen(payload), p);
    snprintf(out, outlen, "%s.%s", h, p);
    unsigned char sig[600], raw[64];
    size_t slen = sizeof sig;
    char s64[900] = "";
    if (key) {
        EVP_MD_CTX *c = EVP_MD_CTX_new();
        assert_int_equal(EVP_DigestSignInit_ex(c, NULL, "SHA256", NULL, NULL, key, NULL), 1);
        assert_int_equal(EVP_DigestSign(c, sig, &slen, (const unsigned char *)out, strlen(out)), 1);
        EVP_MD_CTX_free(c);
        if (es) {
            const unsigned char *q = sig;
            ECDSA_SIG *e = d2i_ECDSA_SIG(NULL, &q, (long)slen);
            BN_bn2binpad(ECDSA_SIG_get0_r(e), raw, 32);
            BN_bn2binpad(ECDSA_SIG_get0_s(e), raw + 32, 32);
            ECDSA_SIG_free(e);
            b64u(raw, 64, s64);
        } else {
            b64u(sig, slen, s64);
        }
    }
    size_t l = strlen(out);
    snprintf(out + l, outlen - l, ".%s", s64);
}

static const char *ISS[] = {"https://kubernetes.default.svc"};
static const char *AUD[] = {"ward"};

static int verify(const auth_jwks *j, const char *tok, char *reason)
{
    auth_jwt_policy p = {ISS, 1, AUD, 1, NOW, AUTH_JWT_SKEW_S};
    char sub[256];
    return auth_jwt_verify(j, tok, strlen(tok), &p, sub, sizeof sub, reason, 192);
}

static void test_jwks_parse(void **state)
{
    (void)state;
    char err[256];
    auth_jwks *j = auth_jwks_parse(g_jwks, strlen(g_jwks), err, sizeof err);
    assert_non_null(j);
    assert_int_equal(auth_jwks_count(j), 2); /* the oct (HMAC) key is skipped */
    auth_jwks_free(j);
    const char *bad[] = {
        "", "{", "{\"keys\":{}}", "{\"keys\":[]}",
        "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":\"AAAA\"}]}",
        /* a point that is not on the curve */
        "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\",\"y\":\"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}]}",
        /* RSA-512: too weak */
        "{\"keys\":[{\"kty\":\"RSA\",\"e\":\"AQAB\",\"n\":\"gAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAwOQ\"}]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_null(auth_jwks_parse(bad[i], strlen(bad[i]), err, sizeof err));
    /* Too many keys. */
    char *many = malloc(64 * 40 + 32);
    strcpy(many, "{\"keys\":[");
    for (int i = 0; i < AUTH_JWKS_MAX_KEYS + 1; i++)
        strcat(many, i ? ",{\"kty\":\"x\"}" : "{\"kty\":\"x\"}");
    strcat(many, "]}");
    assert_null(auth_jwks_parse(many, strlen(many), err, sizeof err));
    assert_non_null(strstr(err, "more than"));
    free(many);
}

static void test_jwt_verify(void **state)
{
    (void)state;
    char err[256], tok[4096], reason[192];
    auth_jwks *j = auth_jwks_parse(g_jwks, strlen(g_jwks), err, sizeof err);
    assert_non_null(j);
    const char *good = "{\"iss\":\"https://kubernetes.default.svc\",\"aud\":[\"x\",\"ward\"],"
                       "\"sub\":\"system:serviceaccount:demo:sa\",\"exp\":1720477558,\"nbf\":1720473900}";
    make_jwt("{\"alg\":\"ES256\",\"kid\":\"ec1\"}", good, g_ec, 1, tok, sizeof tok);
    assert_true(auth_jwt_looks_like(tok, strlen(tok)));
    auth_jwt_policy p = {ISS, 1, AUD, 1, NOW, AUTH_JWT_SKEW_S};
    char sub[256];
    assert_int_equal(auth_jwt_verify(j, tok, strlen(tok), &p, sub, sizeof sub, reason, sizeof reason), 0);
    assert_string_equal(sub, "system:serviceaccount:demo:sa");
    make_jwt("{\"alg\":\"RS256\"}", good, g_rsa, 0, tok, sizeof tok); /* no kid: tries matching kty */
    assert_int_equal(verify(j, tok, reason), 0);

    /* Tampered payload: signature of another payload. */
    char forged[4096];
    make_jwt("{\"alg\":\"ES256\",\"kid\":\"ec1\"}", good, g_ec, 1, tok, sizeof tok);
    char other[4096];
    make_jwt("{\"alg\":\"ES256\",\"kid\":\"ec1\"}",
             "{\"iss\":\"https://kubernetes.default.svc\",\"aud\":\"ward\",\"sub\":\"admin\",\"exp\":1720477558}",
             g_ec, 1, other, sizeof other);
    const char *d1 = strchr(tok, '.'), *d2o = strrchr(other, '.'), *d2t = strrchr(tok, '.');
    snprintf(forged, sizeof forged, "%.*s%.*s%s", (int)(d1 - tok), tok, (int)(d2o - strchr(other, '.')),
             strchr(other, '.'), d2t);
    assert_int_equal(verify(j, forged, reason), -1);
    assert_string_equal(reason, "invalid token signature");

    make_jwt("{\"alg\":\"ES256\",\"kid\":\"ec1\"}", good, g_ec_other, 1, tok, sizeof tok);
    assert_int_equal(verify(j, tok, reason), -1);
    assert_string_equal(reason, "invalid token signature");
    make_jwt("{\"alg\":\"ES256\",\"kid\":\"nope\"}", good, g_ec, 1, tok, sizeof tok);
    assert_int_equal(verify(j, tok, reason), -1);
    assert_string_equal(reason, "no signing key matches the token's key id");
    make_jwt("{\"alg\":\"none\"}", good, NULL, 0, tok, sizeof tok);
    assert_int_equal(verify(j, tok, reason), -1);
    assert_string_equal(reason, "unsupported token algorithm");
    make_jwt("{\"alg\":\"HS256\"}", good, NULL, 0, tok, sizeof tok);
    assert_int_equal(verify(j, tok, reason), -1);
    assert_string_equal(reason, "unsupported token algorithm");
    make_jwt("{\"alg\":\"ES256\",\"crit\":[\"x\"]}", good, g_ec, 1, tok, sizeof tok);
    assert_int_equal(verify(j, tok, reason), -1);

    /* Claims. */
    make_jwt("{\"alg\":\"ES256\"}", "{\"aud\":\"ward\",\"iss\":\"https://kubernetes.default.svc\",\"sub\":\"a\",\"exp\":1720470000}",
             g_ec, 1, tok, sizeof tok);
    assert_int_equal(verify(j, tok, reason), -1);
    assert_string_equal(reason, "oidc: token is expired (Token Expiry: 2024-07-08T20:20:00Z)");
    make_jwt("{\"alg\":\"ES256\"}", "{\"aud\":\"ward\",\"iss\":\"https://kubernetes.default.svc\",\"sub\":\"a\",\"exp\":1720473940}",
             g_ec, 1, tok, sizeof tok);
    assert_int_equal(verify(j, tok, reason), 0); /* 18 s late: within the skew */
    make_jwt("{\"alg\":\"ES256\"}", "{\"aud\":\"ward\",\"iss\":\"https://kubernetes.default.svc\",\"sub\":\"a\",\"exp\":1720477558,\"nbf\":1720474958}",
             g_ec, 1, tok, sizeof tok);
    assert_int_equal(verify(j, tok, reason), -1);
    assert_string_equal(reason, "token is not valid yet");
    make_jwt("{\"alg\":\"ES256\"}", "{\"aud\":\"other\",\"iss\":\"https://kubernetes.default.svc\",\"sub\":\"a\",\"exp\":1720477558}",
             g_ec, 1, tok, sizeof tok);
    assert_int_equal(verify(j, tok, reason), -1);
    assert_string_equal(reason, "token audience not accepted");
    make_jwt("{\"alg\":\"ES256\"}", "{\"aud\":\"ward\",\"iss\":\"kubernetes/serviceaccount\",\"sub\":\"a\",\"exp\":1720477558}",
             g_ec, 1, tok, sizeof tok);
    assert_int_equal(verify(j, tok, reason), -1);
    assert_string_equal(reason, "token issued by an untrusted issuer");
    make_jwt("{\"alg\":\"ES256\"}", "{\"aud\":\"ward\",\"iss\":\"https://kubernetes.default.svc\",\"sub\":\"a\"}",
             g_ec, 1, tok, sizeof tok);
    assert_int_equal(verify(j, tok, reason), -1);
    assert_string_equal(reason, "token has no expiry");
    make_jwt("{\"alg\":\"ES256\"}", "{\"aud\":\"ward\",\"iss\":\"https://kubernetes.default.svc\",\"exp\":1720477558}",
             g_ec, 1, tok, sizeof tok);
    assert_int_equal(verify(j, tok, reason), -1);
    assert_string_equal(reason, "token has no valid subject");
    make_jwt("{\"alg\":\"ES256\"}", "{\"sub\":\"a\",\"sub\":\"b\",\"exp\":1720477558}", g_ec, 1, tok, sizeof tok);
    assert_int_equal(verify(j, tok, reason), -1); /* duplicate claims are refused */

    /* Malformed. */
    const char *junk[] = {"", "a", "a.b", "a.b.c.d", "....", "eyJ.eyJ.", "!!!.eyJ.AAAA", "e30.e30.AAAA"};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
        assert_int_equal(verify(j, junk[i], reason), -1);
    char *huge = malloc(AUTH_JWT_MAX_TOKEN_BYTES + 2);
    memset(huge, 'a', AUTH_JWT_MAX_TOKEN_BYTES + 1);
    huge[AUTH_JWT_MAX_TOKEN_BYTES + 1] = '\0';
    assert_int_equal(verify(j, huge, reason), -1);
    assert_string_equal(reason, "token too long");
    free(huge);
    auth_jwks_free(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jwks_parse),
        cmocka_unit_test(test_jwt_verify),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
