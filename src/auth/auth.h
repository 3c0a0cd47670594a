/* auth: ward's built-in request authorization (Authorino's behaviour, in
 * process).
 *
 * auth_decide() runs with only the request line and headers (the HTTP
 * server's on_headers hook, before any body byte is read) and answers:
 *   public path                -> allowed, not logged
 *   no credential              -> 401 UNAUTHENTICATED "credential not found"
 *   credential matches nothing -> 401 UNAUTHENTICATED "the API Key provided is
 *                                 invalid" (JWT-shaped: the verification error)
 *   identity may not use model -> 403 PERMISSION_DENIED "Unauthorized"
 *   over its rate limit        -> 429 RESOURCE_EXHAUSTED (+ Retry-After)
 *   else                       -> 200 OK with the identity's name
 * and writes one decision line (logger "ward.service.auth", Authorino's
 * production format) plus metrics.
 *
 * Credentials: `Authorization: Bearer <token>` (scheme case-insensitive),
 * optionally a custom header and a query parameter (both off by default: a
 * query string ends up in proxies' access logs).
 *
 * Identities come from: Kubernetes-Secret-style directories (one key each),
 * the local key store file, the WARD_API_KEY environment variable (read once,
 * then wiped from the process environment), and JWTs verified against a JWKS
 * file or URL (fetched every AUTH_JWKS_REFRESH_S; a failed fetch keeps the
 * keys already loaded). A watcher thread reloads all of them when they change (inotify, with
 * a poll every AUTH_POLL_MS as fallback) and publishes a new immutable
 * snapshot; decisions in flight keep the snapshot they started with
 * (refcount), so reloads never block or disturb requests.
 *
 * Threading: auth_decide() and the helpers that take a const auth* are
 * thread-safe. auth_new/start/free are called by one thread.
 */
#ifndef WARD_AUTH_H
#define WARD_AUTH_H

#include "auth/auth_jwt.h"
#include "auth/auth_keys.h"
#include "auth/auth_secret.h"

#include <stddef.h>
#include <stdint.h>

#define AUTH_DEFAULT_REALM "ward"
#define AUTH_MAX_PUBLIC_PATHS 64
#define AUTH_MAX_KEY_DIRS 64           /* mounted Secrets; each is one inotify watch */
#define AUTH_MAX_JWT_VALUES 16         /* --jwt-issuer / --jwt-audience values */
#define AUTH_MAX_CREDENTIAL_BYTES AUTH_JWT_MAX_TOKEN_BYTES /* longer credentials are rejected unread */
#define AUTH_MAX_REALM_BYTES 128
#define AUTH_POLL_MS 250               /* fallback poll; keeps rotation well under 1 s without inotify */
#define AUTH_ENV_KEY "WARD_API_KEY"
#define AUTH_JWKS_REFRESH_S 300        /* JWKS URL refetch period; issuers publish new keys well ahead */
#define AUTH_JWKS_RETRY_S 10           /* after a failed fetch: recover soon, but don't hammer the issuer */

/* The paths left open by default (those RHOAI's mesh excludes and probes use). */
extern const char *const auth_default_public_paths[5];

typedef enum { AUTH_DENY_BODY_OPENAI = 0, AUTH_DENY_BODY_EMPTY = 1 } auth_deny_body;

typedef struct auth_params {
    const char *realm;                                  /* WWW-Authenticate realm, default "ward" */
    /* Extra public paths, added to the defaults. "/x" matches exactly; "/x/" followed
     * by a star matches "/x/" and below (never a path with "..", "%", "//" or "\"). */
    const char *public_paths[AUTH_MAX_PUBLIC_PATHS];
    size_t n_public_paths;
    int no_default_public_paths;                        /* drop the defaults */
    const char *header_name;                            /* custom credential header; NULL = off */
    const char *query_param;                            /* credential query parameter; NULL = off */
    auth_deny_body deny_body;
    const char *key_dirs[AUTH_MAX_KEY_DIRS];            /* --api-keys-dir */
    size_t n_key_dirs;
    const char *key_file_names[AUTH_MAX_KEY_FILE_NAMES]; /* entry names; default api_key, token */
    size_t n_key_file_names;
    const char *keys_file;                              /* local key store; NULL = none */
    const char *jwks_file;                              /* JWKS file or http(s):// URL; NULL = no JWTs */
    const char *jwks_ca_file;                           /* CA bundle for an https JWKS URL; NULL = system */
    const char *jwks_token_file;                        /* bearer token sent to the JWKS URL; NULL = none */
    const char *issuers[AUTH_MAX_JWT_VALUES];
    size_t n_issuers;
    const char *audiences[AUTH_MAX_JWT_VALUES];
    size_t n_audiences;
    int default_rpm;                                    /* per identity when it sets none; 0 = off */
    const char *served_model;                           /* checked against identities' models lists */
    int use_env_key;                                    /* read WARD_API_KEY; default 1 */
    int poll_ms;                                        /* default AUTH_POLL_MS */
} auth_params;

void auth_default_params(auth_params *p);

typedef struct auth auth;

/* Validates params, loads every source once (errors in one source are logged
 * and leave the others working) and returns the authorizer. Does not start
 * the watcher. NULL with a message on invalid params. Strings in p are copied. */
auth *auth_new(const auth_params *p, char *err, size_t errlen);
/* Starts the reload watcher thread. 0 or -1. */
int auth_start(auth *a, char *err, size_t errlen);
/* Stops the watcher and frees everything (in-flight decisions must be done). */
void auth_free(auth *a);

/* Re-reads every source now (the watcher does this on change). 0 or -1. */
int auth_reload(auth *a);
/* Keys in the current snapshot (tests, startup log). */
size_t auth_key_count(auth *a);
/* True if at least one identity source is configured. */
int auth_has_sources(const auth *a);

typedef enum {
    AUTH_CODE_OK = 0,
    AUTH_CODE_PERMISSION_DENIED = 7,
    AUTH_CODE_RESOURCE_EXHAUSTED = 8,
    AUTH_CODE_UNAUTHENTICATED = 16,
} auth_code;

typedef struct auth_request {
    const char *method;
    const char *path;        /* before '?', not decoded */
    const char *query;       /* after '?', may be NULL */
    const char *request_id;  /* for the decision log */
    const char *remote;      /* "ip:port", debug log only; may be NULL */
    /* Case-insensitive header lookup: first value or NULL. */
    const char *(*header)(void *ctx, const char *name);
    void *header_ctx;
} auth_request;

typedef struct auth_decision {
    int status;                  /* 200, 401, 403, 429 */
    auth_code code;
    const char *response;        /* "OK", "UNAUTHENTICATED", ... */
    int is_public;               /* allowed because the path is public */
    char reason[192];            /* X-Ext-Auth-Reason on denials; never credential bytes */
    char identity[AUTH_JWT_MAX_SUB_BYTES + 1]; /* set when authenticated */
    int retry_after_s;           /* 429 only */
    uint64_t duration_ns;
} auth_decision;

/* Decides, logs and counts. Returns 1 if the request may proceed. */
int auth_decide(auth *a, const auth_request *r, auth_decision *d);

/* Same, without the log line and metrics, with a fixed clock: the pure
 * policy (tests, benchmarks). now_unix/now_mono_ns: the clocks to use. */
int auth_decide_at(auth *a, const auth_request *r, int64_t now_unix, uint64_t now_mono_ns,
                   auth_decision *d);

/* The WWW-Authenticate value: `Bearer realm="<realm>"`. */
const char *auth_challenge(const auth *a);
/* Denial body for d into buf (OpenAI error shape, or empty by config).
 * Returns its length (0 for the empty body). */
size_t auth_deny_body_text(const auth *a, const auth_decision *d, char *buf, size_t buflen);

/* Decision counters, for /metrics. */
typedef struct auth_metrics {
    uint64_t decisions[4];       /* OK, UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_EXHAUSTED */
    uint64_t buckets[10];        /* cumulative counts for auth_metrics_bounds */
    uint64_t count;
    double sum_s;
} auth_metrics;
extern const double auth_metrics_bounds[10]; /* seconds; last is +Inf */
extern const char *const auth_metrics_responses[4];

/* Copies the counters of a (or the process-wide totals when a is NULL). */
void auth_metrics_get(const auth *a, auth_metrics *out);
/* Appends the Prometheus text (HELP/TYPE lines, `ward:auth_decisions_total`
 * and `ward:auth_duration_seconds`) to buf; returns bytes written (or the size
 * needed if buflen is too small, snprintf-style). */
size_t auth_metrics_render(const auth *a, char *buf, size_t buflen);

#endif
