/* auth_serve: see auth_serve.h. */
#include "auth/auth_serve.h"

#include "util/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void auth_serve_default_cfg(auth_serve_cfg *c)
{
    memset(c, 0, sizeof *c);
    auth_default_params(&c->params);
}

#define PUSH(arr, n, max, flag)                                                                    \
    do {                                                                                           \
        if ((n) >= (max)) {                                                                        \
            fprintf(stderr, "ward serve: too many %s (limit %d)\n", flag, (int)(max));             \
            return -1;                                                                             \
        }                                                                                          \
        (arr)[(n)++] = val;                                                                        \
    } while (0)

int auth_serve_option(auth_serve_cfg *c, const char *name, const char *val)
{
    auth_params *p = &c->params;
    if (strcmp(name, "--auth") == 0) {
        if (strcmp(val, "on") == 0)
            c->off = 0;
        else if (strcmp(val, "off") == 0)
            c->off = 1;
        else {
            fprintf(stderr, "ward serve: --auth expects on or off, got '%s'\n", val);
            return -1;
        }
    } else if (strcmp(name, "--api-keys-dir") == 0) {
        PUSH(p->key_dirs, p->n_key_dirs, AUTH_MAX_KEY_DIRS, "--api-keys-dir");
    } else if (strcmp(name, "--api-key-file-name") == 0) {
        PUSH(p->key_file_names, p->n_key_file_names, AUTH_MAX_KEY_FILE_NAMES, "--api-key-file-name");
    } else if (strcmp(name, "--keys-file") == 0) {
        p->keys_file = val;
    } else if (strcmp(name, "--jwt-jwks") == 0) {
        p->jwks_file = val;
    } else if (strcmp(name, "--jwt-jwks-ca") == 0) {
        p->jwks_ca_file = val;
    } else if (strcmp(name, "--jwt-jwks-token-file") == 0) {
        p->jwks_token_file = val;
    } else if (strcmp(name, "--jwt-issuer") == 0) {
        PUSH(p->issuers, p->n_issuers, AUTH_MAX_JWT_VALUES, "--jwt-issuer");
    } else if (strcmp(name, "--jwt-audience") == 0) {
        PUSH(p->audiences, p->n_audiences, AUTH_MAX_JWT_VALUES, "--jwt-audience");
    } else if (strcmp(name, "--auth-realm") == 0) {
        p->realm = val;
    } else if (strcmp(name, "--public-path") == 0) {
        PUSH(p->public_paths, p->n_public_paths, AUTH_MAX_PUBLIC_PATHS, "--public-path");
    } else if (strcmp(name, "--auth-header") == 0) {
        p->header_name = val;
    } else if (strcmp(name, "--auth-query-param") == 0) {
        p->query_param = val;
    } else if (strcmp(name, "--auth-deny-body") == 0) {
        if (strcmp(val, "openai") == 0)
            p->deny_body = AUTH_DENY_BODY_OPENAI;
        else if (strcmp(val, "empty") == 0)
            p->deny_body = AUTH_DENY_BODY_EMPTY;
        else {
            fprintf(stderr, "ward serve: --auth-deny-body expects openai or empty, got '%s'\n", val);
            return -1;
        }
    } else if (strcmp(name, "--auth-rpm") == 0) {
        char *end;
        errno = 0;
        long v = strtol(val, &end, 10);
        if (!*val || *end || errno || v < 0 || v > 1000000) {
            fprintf(stderr, "ward serve: --auth-rpm expects an integer from 0 to 1000000, got '%s'\n", val);
            return -1;
        }
        p->default_rpm = (int)v;
    } else {
        return 0;
    }
    return 1;
}

void auth_serve_usage(FILE *f)
{
    fprintf(f,
            "\nauthorization (every path except the public ones needs a credential):\n"
            "  --auth on|off            off disables authorization entirely (default on)\n"
            "  --api-keys-dir DIR       mounted Secret holding one key; watched, rotation is live\n"
            "                           (repeatable)\n"
            "  --api-key-file-name NAME key entry in those dirs (repeatable; default api_key, token)\n"
            "  --keys-file FILE         local key store made by 'ward keys' (reloaded on change)\n"
            "  --jwt-jwks FILE|URL      JWKS verifying RS256/ES256 JWT bearer tokens: a file\n"
            "                           (reloaded on change) or an http(s):// URL (fetched every\n"
            "                           %ds; a failed fetch keeps the keys loaded before)\n"
            "  --jwt-jwks-ca FILE       CA bundle (PEM) verifying an https JWKS URL (default: system)\n"
            "  --jwt-jwks-token-file FILE  bearer token sent to an https JWKS URL, re-read on\n"
            "                           each fetch (e.g. a ServiceAccount token)\n"
            "  --jwt-issuer ISS         accepted iss (repeatable; default any)\n"
            "  --jwt-audience AUD       accepted aud (repeatable; default any)\n"
            "  --auth-realm REALM       WWW-Authenticate realm (default %s)\n"
            "  --public-path PATH       add a public path: exact, or a prefix ending in '/*'\n"
            "                           (defaults /health /v2/health/live /v2/health/ready\n"
            "                           /version /metrics stay public)\n"
            "  --auth-header NAME       also accept the key in header NAME (default off)\n"
            "  --auth-query-param NAME  also accept the key in query parameter NAME (default off;\n"
            "                           URLs end up in proxy logs)\n"
            "  --auth-deny-body MODE    openai (OpenAI error JSON, default) or empty (Authorino)\n"
            "  --auth-rpm N             requests per minute per identity without its own limit\n"
            "                           (default 0 = unlimited)\n"
            "  environment WARD_API_KEY one more key (read once at start, then wiped)\n",
            AUTH_JWKS_REFRESH_S, AUTH_DEFAULT_REALM);
}

auth *auth_serve_start(const auth_serve_cfg *c, const char *served_model, int *failed)
{
    *failed = 0;
    if (c->off) {
        log_pack(LOG_WARN, "ward.service.auth", "authorization is off (--auth off): every path is open", NULL);
        return NULL;
    }
    auth_params p = c->params;
    p.served_model = served_model;
    char err[512];
    auth *a = auth_new(&p, err, sizeof err);
    if (!a || auth_start(a, err, sizeof err) != 0) {
        log_pack(LOG_ERROR, "ward.service.auth", "cannot start authorization", "{s:s}", "error", err);
        auth_free(a);
        *failed = 1;
        return NULL;
    }
    if (!auth_has_sources(a))
        log_pack(LOG_WARN, "ward.service.auth",
                 "no identity source configured: every protected path answers 401 (add --api-keys-dir, "
                 "--keys-file, --jwt-jwks or WARD_API_KEY, or pass --auth off)",
                 NULL);
    return a;
}

static const char *req_header(void *ctx, const char *name)
{
    return http_request_header((const http_request *)ctx, name);
}

int auth_serve_hook(http_exchange *ex, const http_request *req, void *ud)
{
    auth *a = ud;
    if (!a)
        return 0;
    auth_request r = {
        .method = req->method, .path = req->path, .query = req->query, .request_id = req->request_id,
        .remote = req->remote_addr, .header = req_header, .header_ctx = (void *)req,
    };
    auth_decision d;
    /* Counting happens in auth_decide; GET /metrics appends auth_metrics_render(). */
    if (auth_decide(a, &r, &d)) {
        if (d.identity[0])
            http_exchange_set_log_identity(ex, d.identity);
        return 0;
    }
    if (d.status == 401)
        http_exchange_add_header(ex, "WWW-Authenticate", auth_challenge(a));
    http_exchange_add_header(ex, "X-Ext-Auth-Reason", d.reason);
    if (d.status == 429) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", d.retry_after_s);
        http_exchange_add_header(ex, "Retry-After", ra);
    }
    char body[512];
    size_t n = auth_deny_body_text(a, &d, body, sizeof body);
    http_exchange_respond(ex, d.status, n ? "application/json" : NULL, n ? body : NULL, n);
    return 1;
}
