/* auth_jwt: see auth_jwt.h. */
#include "auth/auth_jwt.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef enum { KT_RSA, KT_EC } key_type;

typedef struct jwk {
    key_type type;
    char kid[AUTH_JWT_MAX_KID_BYTES + 1];
    int has_kid;
    EVP_PKEY *pkey;
} jwk;

struct auth_jwks {
    jwk keys[AUTH_JWKS_MAX_KEYS];
    size_t n;
};

static int b64url_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* Decodes unpadded base64url; returns length or -1 (bad char, bad length, too big). */
static long b64url_decode(const char *in, size_t len, unsigned char *out, size_t cap)
{
    if (len % 4 == 1)
        return -1;
    size_t need = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
    if (need > cap)
        return -1;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_val((unsigned char)in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    return (long)o;
}

static void jwk_clear(jwk *k)
{
    EVP_PKEY_free(k->pkey);
    k->pkey = NULL;
}

void auth_jwks_free(auth_jwks *j)
{
    if (!j)
        return;
    for (size_t i = 0; i < j->n; i++)
        jwk_clear(&j->keys[i]);
    free(j);
}

size_t auth_jwks_count(const auth_jwks *j) { return j ? j->n : 0; }

static BIGNUM *b64_bn(const char *s, size_t maxbytes)
{
    if (!s)
        return NULL;
    unsigned char buf[1100];
    size_t len = strlen(s);
    if (maxbytes > sizeof buf)
        maxbytes = sizeof buf;
    long n = b64url_decode(s, len, buf, maxbytes);
    if (n <= 0)
        return NULL;
    return BN_bin2bn(buf, (int)n, NULL);
}

static EVP_PKEY *from_params(const char *type, OSSL_PARAM_BLD *bld)
{
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (params && ctx && EVP_PKEY_fromdata_init(ctx) == 1)
        if (EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
            pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

static EVP_PKEY *rsa_key(json_t *k)
{
    BIGNUM *n = b64_bn(json_string_value(json_object_get(k, "n")), AUTH_JWT_MAX_RSA_BITS / 8 + 1);
    BIGNUM *e = b64_bn(json_string_value(json_object_get(k, "e")), 8);
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (n && e && bld && BN_num_bits(n) >= AUTH_JWT_MIN_RSA_BITS && BN_num_bits(n) <= AUTH_JWT_MAX_RSA_BITS &&
        !BN_is_zero(e) && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) == 1 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) == 1)
        pkey = from_params("RSA", bld);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return pkey;
}

static EVP_PKEY *ec_key(json_t *k)
{
    const char *crv = json_string_value(json_object_get(k, "crv"));
    const char *xs = json_string_value(json_object_get(k, "x"));
    const char *ys = json_string_value(json_object_get(k, "y"));
    if (!crv || strcmp(crv, "P-256") != 0 || !xs || !ys)
        return NULL;
    unsigned char pt[65];
    pt[0] = 0x04; /* uncompressed point */
    if (b64url_decode(xs, strlen(xs), pt + 1, 32) != 32 || b64url_decode(ys, strlen(ys), pt + 33, 32) != 32)
        return NULL;
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    /* fromdata decodes the point and rejects one that is not on the curve. */
    if (bld && OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) == 1 &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof pt) == 1)
        pkey = from_params("EC", bld);
    OSSL_PARAM_BLD_free(bld);
    return pkey;
}

auth_jwks *auth_jwks_parse(const char *json, size_t len, char *err, size_t errlen)
{
    if (len > AUTH_JWKS_MAX_BYTES) {
        snprintf(err, errlen, "JWKS larger than %d bytes", AUTH_JWKS_MAX_BYTES);
        return NULL;
    }
    json_error_t je;
    json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!doc) {
        snprintf(err, errlen, "JWKS: invalid JSON at line %d column %d", je.line, je.column);
        return NULL;
    }
    json_t *keys = json_object_get(doc, "keys");
    if (!json_is_array(keys)) {
        json_decref(doc);
        snprintf(err, errlen, "JWKS: no \"keys\" array");
        return NULL;
    }
    if (json_array_size(keys) > AUTH_JWKS_MAX_KEYS) {
        json_decref(doc);
        snprintf(err, errlen, "JWKS: more than %d keys", AUTH_JWKS_MAX_KEYS);
        return NULL;
    }
    auth_jwks *j = calloc(1, sizeof *j);
    if (!j) {
        json_decref(doc);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k) {
        const char *kty = json_string_value(json_object_get(k, "kty"));
        const char *use = json_string_value(json_object_get(k, "use"));
        const char *alg = json_string_value(json_object_get(k, "alg"));
        const char *kid = json_string_value(json_object_get(k, "kid"));
        if (!kty || (use && strcmp(use, "sig") != 0))
            continue;
        if (kid && strlen(kid) > AUTH_JWT_MAX_KID_BYTES)
            continue;
        jwk *dst = &j->keys[j->n];
        if (strcmp(kty, "RSA") == 0 && (!alg || strcmp(alg, "RS256") == 0)) {
            dst->type = KT_RSA;
            dst->pkey = rsa_key(k);
        } else if (strcmp(kty, "EC") == 0 && (!alg || strcmp(alg, "ES256") == 0)) {
            dst->type = KT_EC;
            dst->pkey = ec_key(k);
        }
        if (!dst->pkey)
            continue;
        dst->has_kid = kid != NULL;
        if (kid)
            snprintf(dst->kid, sizeof dst->kid, "%s", kid);
        j->n++;
    }
    json_decref(doc);
    if (j->n == 0) {
        auth_jwks_free(j);
        snprintf(err, errlen, "JWKS: no usable RS256/ES256 signing key");
        return NULL;
    }
    return j;
}

auth_jwks *auth_jwks_load_file(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > AUTH_JWKS_MAX_BYTES) {
        close(fd);
        snprintf(err, errlen, "%s: not a regular file or larger than %d bytes", path, AUTH_JWKS_MAX_BYTES);
        return NULL;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t n = 0;
    while (buf && n < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (!buf) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    char why[160];
    auth_jwks *j = auth_jwks_parse(buf, n, why, sizeof why);
    free(buf);
    if (!j)
        snprintf(err, errlen, "%s: %s", path, why);
    return j;
}

int auth_jwt_looks_like(const char *tok, size_t len)
{
    int dots = 0;
    for (size_t i = 0; i < len; i++) {
        if (tok[i] == '.')
            dots++;
        else if (b64url_val((unsigned char)tok[i]) < 0)
            return 0;
    }
    return dots == 2;
}

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        snprintf(reason, reason_len, __VA_ARGS__);                                                 \
        goto out;                                                                                  \
    } while (0)

static int verify_sig(const jwk *k, const char *input, size_t in_len, const unsigned char *sig,
                      size_t sig_len)
{
    unsigned char der[80];
    const unsigned char *s = sig;
    size_t slen = sig_len;
    if (k->type == KT_EC) {
        /* JOSE carries r||s (32 bytes each); OpenSSL wants DER. */
        if (sig_len != 64)
            return 0;
        ECDSA_SIG *es = ECDSA_SIG_new();
        BIGNUM *r = BN_bin2bn(sig, 32, NULL), *ss = BN_bin2bn(sig + 32, 32, NULL);
        if (!es || !r || !ss || ECDSA_SIG_set0(es, r, ss) != 1) {
            ECDSA_SIG_free(es);
            BN_free(r);
            BN_free(ss);
            return 0;
        }
        unsigned char *p = der;
        int dl = i2d_ECDSA_SIG(es, NULL);
        if (dl <= 0 || (size_t)dl > sizeof der) {
            ECDSA_SIG_free(es);
            return 0;
        }
        dl = i2d_ECDSA_SIG(es, &p);
        ECDSA_SIG_free(es);
        s = der;
        slen = (size_t)dl;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestVerifyInit_ex(ctx, NULL, "SHA256", NULL, NULL, k->pkey, NULL) == 1 &&
             EVP_DigestVerify(ctx, s, slen, (const unsigned char *)input, in_len) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

static int in_list(const char *v, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v, list[i]) == 0)
            return 1;
    return 0;
}

int auth_jwt_verify(const auth_jwks *jwks, const char *tok, size_t len, const auth_jwt_policy *p,
                    char *sub_out, size_t sub_len, char *reason, size_t reason_len)
{
    int rc = -1;
    json_t *hdr = NULL, *claims = NULL;
    unsigned char *payload = NULL;
    if (len > AUTH_JWT_MAX_TOKEN_BYTES)
        FAIL("token too long");
    const char *d1 = memchr(tok, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok)) : NULL;
    if (!d1 || !d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok)))
        FAIL("malformed token");
    unsigned char hbuf[AUTH_JWT_MAX_HEADER_BYTES];
    long hl = b64url_decode(tok, (size_t)(d1 - tok), hbuf, sizeof hbuf);
    if (hl <= 0)
        FAIL("malformed token header");
    json_error_t je;
    hdr = json_loadb((const char *)hbuf, (size_t)hl, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(hdr))
        FAIL("malformed token header");
    const char *alg = json_string_value(json_object_get(hdr, "alg"));
    key_type want;
    if (alg && strcmp(alg, "RS256") == 0)
        want = KT_RSA;
    else if (alg && strcmp(alg, "ES256") == 0)
        want = KT_EC;
    else
        FAIL("unsupported token algorithm");
    if (json_object_get(hdr, "crit"))
        FAIL("unsupported critical token header");
    json_t *kidv = json_object_get(hdr, "kid");
    if (kidv && !json_is_string(kidv))
        FAIL("malformed token header");
    const char *kid = json_string_value(kidv);

    unsigned char sig[AUTH_JWT_MAX_SIG_BYTES];
    const char *sp = d2 + 1;
    long sl = b64url_decode(sp, len - (size_t)(sp - tok), sig, sizeof sig);
    if (sl <= 0)
        FAIL("malformed token signature");
    if (!jwks)
        FAIL("no JWT signing keys loaded");
    int matched = 0, verified = 0;
    for (size_t i = 0; i < jwks->n && !verified; i++) {
        const jwk *k = &jwks->keys[i];
        if (k->type != want || (kid && k->has_kid && strcmp(kid, k->kid) != 0))
            continue;
        matched = 1;
        verified = verify_sig(k, tok, (size_t)(d2 - tok), sig, (size_t)sl);
    }
    if (!matched)
        FAIL("no signing key matches the token's key id");
    if (!verified)
        FAIL("invalid token signature");

    size_t plen64 = (size_t)(d2 - d1 - 1);
    payload = malloc(plen64 / 4 * 3 + 3);
    long pl = payload ? b64url_decode(d1 + 1, plen64, payload, plen64 / 4 * 3 + 3) : -1;
    if (pl <= 0)
        FAIL("malformed token payload");
    claims = json_loadb((const char *)payload, (size_t)pl, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(claims))
        FAIL("malformed token payload");

    json_t *exp = json_object_get(claims, "exp");
    if (!json_is_number(exp))
        FAIL("token has no expiry");
    double expv = json_number_value(exp);
    if ((double)p->now > expv + p->skew_s) {
        char ts[40] = "?";
        time_t t = (time_t)expv;
        struct tm tm;
        if (expv > 0 && expv < 253402300800.0 && gmtime_r(&t, &tm))
            strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
        FAIL("oidc: token is expired (Token Expiry: %s)", ts);
    }
    json_t *nbf = json_object_get(claims, "nbf");
    if (nbf && (!json_is_number(nbf) || (double)p->now + p->skew_s < json_number_value(nbf)))
        FAIL("token is not valid yet");
    if (p->n_issuers) {
        const char *iss = json_string_value(json_object_get(claims, "iss"));
        if (!iss || !in_list(iss, p->issuers, p->n_issuers))
            FAIL("token issued by an untrusted issuer");
    }
    if (p->n_audiences) {
        json_t *aud = json_object_get(claims, "aud");
        int ok = 0;
        if (json_is_string(aud))
            ok = in_list(json_string_value(aud), p->audiences, p->n_audiences);
        else if (json_is_array(aud)) {
            size_t i;
            json_t *a;
            json_array_foreach(aud, i, a) if (json_is_string(a) && in_list(json_string_value(a), p->audiences,
                                                                            p->n_audiences)) ok = 1;
        }
        if (!ok)
            FAIL("token audience not accepted");
    }
    const char *sub = json_string_value(json_object_get(claims, "sub"));
    if (!sub || !*sub || strlen(sub) > AUTH_JWT_MAX_SUB_BYTES || strlen(sub) >= sub_len)
        FAIL("token has no valid subject");
    for (const char *c = sub; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            FAIL("token has no valid subject");
    memcpy(sub_out, sub, strlen(sub) + 1);
    rc = 0;
out:
    json_decref(hdr);
    json_decref(claims);
    free(payload);
    return rc;
}
