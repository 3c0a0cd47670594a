/* api_router: see api_router.h. */
#include "api/api_router.h"

#include "cmd/cmd.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Longest "GET, HEAD, POST, ..." Allow value: every known method once. */
#define API_ALLOW_MAX 64

typedef struct {
    char *method;
    char *path;
    api_handler_fn fn;
    void *ud;
} route;

struct api_router {
    route routes[API_MAX_ROUTES];
    size_t n;
    api_pre_hook_fn hook;
    void *hook_ud;
    atomic_int ready;
};

/* Routing runs in on_headers (for 404/405 before the body) and again in
 * on_request (cheap exact matching), so that the exchange's user slot stays
 * free for the pre-hook (e.g. the authorized identity). */

static const route *find(const api_router *r, const char *method, const char *path, int *path_known)
{
    *path_known = 0;
    int head = strcmp(method, "HEAD") == 0;
    const route *get = NULL;
    for (size_t i = 0; i < r->n; i++) {
        const route *rt = &r->routes[i];
        if (strcmp(rt->path, path) != 0)
            continue;
        *path_known = 1;
        if (strcmp(rt->method, method) == 0)
            return rt;
        if (head && strcmp(rt->method, "GET") == 0)
            get = rt;
    }
    return get;
}

static void allow_list(const api_router *r, const char *path, char *out, size_t outlen)
{
    size_t len = 0;
    out[0] = '\0';
    int has_get = 0, has_head = 0;
    for (size_t i = 0; i < r->n; i++) {
        const route *rt = &r->routes[i];
        if (strcmp(rt->path, path) != 0)
            continue;
        has_get |= strcmp(rt->method, "GET") == 0;
        has_head |= strcmp(rt->method, "HEAD") == 0;
        size_t m = strlen(rt->method);
        if (len + m + 3 > outlen)
            break;
        if (len) {
            memcpy(out + len, ", ", 2);
            len += 2;
        }
        memcpy(out + len, rt->method, m + 1);
        len += m;
    }
    if (has_get && !has_head && len + 7 < outlen) {
        memcpy(out + len, ", HEAD", 7);
    }
}

int api_send_error(http_exchange *ex, int status, const char *type, const char *code, const char *message,
                   const char *param)
{
    json_t *err = json_object();
    json_t *o = json_object();
    if (!err || !o) {
        json_decref(err);
        json_decref(o);
        return http_exchange_respond(ex, 500, "application/json", NULL, 0);
    }
    /* json_string rejects invalid UTF-8: fall back rather than lose the error */
    json_t *m = json_string(message ? message : "");
    json_object_set_new(err, "message", m ? m : json_string("invalid message"));
    json_object_set_new(err, "type", json_string(type ? type : "invalid_request_error"));
    json_t *p = param ? json_string(param) : NULL;
    json_object_set_new(err, "param", p ? p : json_null());
    json_t *c = code ? json_string(code) : NULL;
    json_object_set_new(err, "code", c ? c : json_null());
    json_object_set_new(o, "error", err);
    return api_send_json(ex, status, o);
}

int api_send_json(http_exchange *ex, int status, json_t *body)
{
    static const char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\","
                              "\"param\":null,\"code\":null}}";
    if (!body)
        return http_exchange_respond(ex, 500, "application/json", oom, sizeof oom - 1);
    char *s = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(body);
    if (!s)
        return api_send_json(ex, status, NULL);
    int r = http_exchange_respond(ex, status, "application/json", s, strlen(s));
    free(s);
    return r;
}

/* ---- built-in endpoints ---- */

static void h_health(http_exchange *ex, const http_request *req, void *ud)
{
    api_router *r = ud;
    if (api_router_ready(r))
        api_send_json(ex, 200, json_pack("{s:s}", "status", "ok"));
    else
        api_send_json(ex, 503, json_pack("{s:s}", "status", "loading"));
}

static void h_live(http_exchange *ex, const http_request *req, void *ud)
{
    api_send_json(ex, 200, json_pack("{s:b}", "live", 1));
}

static void h_ready(http_exchange *ex, const http_request *req, void *ud)
{
    api_router *r = ud;
    int ok = api_router_ready(r);
    api_send_json(ex, ok ? 200 : 503, json_pack("{s:b}", "ready", ok));
}

static void h_version(http_exchange *ex, const http_request *req, void *ud)
{
    api_send_json(ex, 200, json_pack("{s:s}", "version", WARD_VERSION));
}

/* ---- http_handler glue ---- */

static int on_headers(http_exchange *ex, const http_request *req, void *ud)
{
    api_router *r = ud;
    if (r->hook && r->hook(ex, req, r->hook_ud))
        return 1;
    int known;
    const route *rt = find(r, req->method, req->path, &known);
    if (rt)
        return 0;
    if (!known) {
        api_send_error(ex, 404, "NotFoundError", "not_found", "Not Found", NULL);
        return 1;
    }
    char allow[API_ALLOW_MAX * 2];
    allow_list(r, req->path, allow, sizeof allow);
    http_exchange_add_header(ex, "Allow", allow);
    api_send_error(ex, 405, "MethodNotAllowed", "method_not_allowed", "Method Not Allowed", NULL);
    return 1;
}

static void on_request(http_exchange *ex, const http_request *req, void *ud)
{
    api_router *r = ud;
    int known;
    const route *rt = find(r, req->method, req->path, &known);
    if (!rt) { /* on_headers already checked; keep a defined answer anyway */
        api_send_error(ex, 404, "NotFoundError", "not_found", "Not Found", NULL);
        return;
    }
    rt->fn(ex, req, rt->ud);
}

api_router *api_router_new(void)
{
    api_router *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    atomic_init(&r->ready, 0);
    if (api_router_add(r, "GET", "/health", h_health, r) || api_router_add(r, "GET", "/v2/health/live", h_live, r) ||
        api_router_add(r, "GET", "/v2/health/ready", h_ready, r) ||
        api_router_add(r, "GET", "/version", h_version, r)) {
        api_router_free(r);
        return NULL;
    }
    return r;
}

void api_router_free(api_router *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++) {
        free(r->routes[i].method);
        free(r->routes[i].path);
    }
    free(r);
}

int api_router_add(api_router *r, const char *method, const char *path, api_handler_fn fn, void *ud)
{
    if (!r || !method || !path || !fn || path[0] != '/' || !*method || r->n >= API_MAX_ROUTES)
        return -1;
    int known;
    const route *dup = find(r, method, path, &known);
    if (dup && strcmp(dup->method, method) == 0)
        return -1;
    route *rt = &r->routes[r->n];
    rt->method = strdup(method);
    rt->path = strdup(path);
    if (!rt->method || !rt->path) {
        free(rt->method);
        free(rt->path);
        return -1;
    }
    rt->fn = fn;
    rt->ud = ud;
    r->n++;
    return 0;
}

void api_router_set_pre_hook(api_router *r, api_pre_hook_fn fn, void *ud)
{
    r->hook = fn;
    r->hook_ud = ud;
}

void api_router_set_ready(api_router *r, int ready) { atomic_store(&r->ready, ready ? 1 : 0); }
int api_router_ready(const api_router *r) { return atomic_load(&r->ready); }

void api_router_handler(api_router *r, http_handler *h)
{
    h->on_headers = on_headers;
    h->on_request = on_request;
    h->ud = r;
}
