/* auth_jwt: verification of JWT bearer tokens (Kubernetes ServiceAccount
 * tokens, OIDC ID/access tokens) against a JWKS, with OpenSSL 3.
 *
 * Accepted: compact JWS with alg RS256 (RSA >= 2048 bits) or ES256 (P-256).
 * Rejected: "none", HS* (a public key must never be usable as an HMAC
 * secret), every other alg, a "crit" header, unknown kid, bad signature.
 * Claims, checked only after the signature: exp required (now <= exp + skew),
 * nbf if present (now >= nbf - skew), iss in the configured issuers (when
 * any), aud (string or array) containing a configured audience (when any),
 * sub required: it is the identity.
 *
 * Error strings are fixed texts (plus the expiry time), safe to send in
 * X-Ext-Auth-Reason and to log: they never contain token bytes.
 * A JWKS is immutable after loading; verify() is thread-safe.
 */
#ifndef WARD_AUTH_JWT_H
#define WARD_AUTH_JWT_H

#include <stddef.h>
#include <stdint.h>

#define AUTH_JWT_MAX_TOKEN_BYTES 8192      /* ServiceAccount tokens are ~1-2 KiB; OIDC rarely above 4 */
#define AUTH_JWT_MAX_HEADER_BYTES 1024     /* decoded JOSE header */
#define AUTH_JWT_MAX_SIG_BYTES 1024        /* RSA-8192 signature */
#define AUTH_JWKS_MAX_BYTES (256 * 1024)   /* a JWKS file; real ones are a few KiB */
#define AUTH_JWKS_MAX_KEYS 32              /* keys in one JWKS (rotation keeps 2-3) */
#define AUTH_JWT_SKEW_S 30                 /* clock skew allowed on exp/nbf */
#define AUTH_JWT_MAX_SUB_BYTES 255         /* identity name from sub */
#define AUTH_JWT_MAX_KID_BYTES 256
#define AUTH_JWT_MIN_RSA_BITS 2048
#define AUTH_JWT_MAX_RSA_BITS 8192         /* bounds verification cost per request */

typedef struct auth_jwks auth_jwks;

/* Parses a JWKS document ({"keys":[...]}); unusable entries (other kty,
 * use != sig, alg other than RS256/ES256, weak RSA) are skipped. Fails if no
 * usable key remains. */
auth_jwks *auth_jwks_parse(const char *json, size_t len, char *err, size_t errlen);
auth_jwks *auth_jwks_load_file(const char *path, char *err, size_t errlen);
void auth_jwks_free(auth_jwks *j);
size_t auth_jwks_count(const auth_jwks *j);

typedef struct auth_jwt_policy {
    const char *const *issuers;     /* accepted iss values; none = not checked */
    size_t n_issuers;
    const char *const *audiences;   /* accepted aud values; none = not checked */
    size_t n_audiences;
    int64_t now;                    /* Unix seconds */
    int skew_s;                     /* normally AUTH_JWT_SKEW_S */
} auth_jwt_policy;

/* True if the credential has the shape of a JWT (three base64url parts). */
int auth_jwt_looks_like(const char *tok, size_t len);

/* Verifies tok. On success returns 0 and copies sub into sub_out; else -1
 * with a reason ("invalid signature", "oidc: token is expired (Token
 * Expiry: 2024-07-08T21:25:58Z)", ...). */
int auth_jwt_verify(const auth_jwks *jwks, const char *tok, size_t len, const auth_jwt_policy *p,
                    char *sub_out, size_t sub_len, char *reason, size_t reason_len);

#endif
