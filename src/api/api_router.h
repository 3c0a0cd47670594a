/* api_router: maps (method, exact path) to handlers, answers 404/405, and
 * provides the JSON response helpers every API module uses.
 *
 * Wiring (see cmd_serve.c):
 *   api_router *r = api_router_new();
 *   api_router_add(r, "POST", "/v1/completions", my_fn, my_ud);   // others
 *   api_router_set_pre_hook(r, auth_hook, auth_ud);               // auth
 *   http_handler h; api_router_handler(r, &h);
 *   http_server_new(&params, &h, ...);
 *
 * Flow per request: on_headers -> pre-hook (every request, before routing and
 * before the body is read; nonzero = it responded) -> route lookup: unknown
 * path 404, known path without this method 405 with Allow -> on_request ->
 * the route's handler with the complete body.
 *
 * Built-in routes: GET /health, /v2/health/live, /v2/health/ready, /version.
 * HEAD is accepted wherever GET is (the server drops the body).
 *
 * Threading: routes and the hook are set up before the server runs; the ready
 * flag may be flipped from any thread at any time.
 */
#ifndef WARD_API_ROUTER_H
#define WARD_API_ROUTER_H

#include <jansson.h>

#include "server/http.h"

/* Routes a router can hold; a fixed table keeps lookup simple and bounded. */
#define API_MAX_ROUTES 64

typedef struct api_router api_router;

/* Called on the loop thread with the complete request. It must lead to a
 * response (now, or later through http_exchange_hold/post). */
typedef void (*api_handler_fn)(http_exchange *ex, const http_request *req, void *ud);

/* Called for every request after its head is parsed, before routing and before
 * any body byte is read. Returns nonzero if it has responded (e.g. 401). */
typedef int (*api_pre_hook_fn)(http_exchange *ex, const http_request *req, void *ud);

api_router *api_router_new(void);
void api_router_free(api_router *r);

/* Adds a route for an exact path (no query). method is "GET", "POST", ...
 * Returns 0, or -1 if the table is full, the pair exists, or an argument is bad.
 * The strings are copied. */
int api_router_add(api_router *r, const char *method, const char *path, api_handler_fn fn, void *ud);

void api_router_set_pre_hook(api_router *r, api_pre_hook_fn fn, void *ud);

/* Ready flag behind /health and /v2/health/ready; starts at 0 (loading). */
void api_router_set_ready(api_router *r, int ready);
int api_router_ready(const api_router *r);

/* Fills h so that http_server drives this router (h->ud = r). */
void api_router_handler(api_router *r, http_handler *h);

/* Sends {"error":{"message":...,"type":...,"param":<param or null>,"code":<code or null>}}
 * with the given status. Returns http_exchange_respond's result. */
int api_send_error(http_exchange *ex, int status, const char *type, const char *code, const char *message,
                   const char *param);

/* Sends body (reference stolen, may be NULL -> 500) as application/json. */
int api_send_json(http_exchange *ex, int status, json_t *body);

#endif
