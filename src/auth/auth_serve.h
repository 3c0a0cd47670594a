/* auth_serve: glue between `ward serve` and the authorizer: the command-line
 * flags, their help text, and the router pre-hook that answers denials.
 *
 * Flags (all take a value; later ones override earlier, repeatable ones add):
 *   --auth on|off               off = no authorization at all (explicit opt-out)
 *   --api-keys-dir DIR          mounted Secret with one key (repeatable)
 *   --api-key-file-name NAME    key entry name in those dirs (repeatable;
 *                               default api_key, then token)
 *   --keys-file FILE            local key store (ward keys)
 *   --jwt-jwks FILE             JWKS for JWT bearer tokens
 *   --jwt-issuer ISS, --jwt-audience AUD   (repeatable)
 *   --auth-realm REALM          WWW-Authenticate realm (default ward)
 *   --public-path PATH          adds a public path ("/x" or "/x/" + star)
 *   --auth-header NAME          also read the key from this header
 *   --auth-query-param NAME     also read the key from this query parameter
 *   --auth-deny-body openai|empty
 *   --auth-rpm N                default requests/minute per identity (0 = off)
 * Keys never go on the command line: WARD_API_KEY in the environment is read
 * once and wiped.
 *
 * With --auth on (the default) and no identity source at all, the server
 * still starts and denies every protected path (fail closed), logging how to
 * add a key.
 */
#ifndef WARD_AUTH_SERVE_H
#define WARD_AUTH_SERVE_H

#include "auth/auth.h"
#include "server/http.h"

#include <stdio.h>

typedef struct auth_serve_cfg {
    auth_params params;
    int off;             /* --auth off */
} auth_serve_cfg;

void auth_serve_default_cfg(auth_serve_cfg *c);

/* Handles one flag. Returns 1 if it was an auth flag and was applied, 0 if
 * it is not an auth flag, -1 after printing one line for a bad value. val
 * must outlive the cfg (argv does). */
int auth_serve_option(auth_serve_cfg *c, const char *name, const char *val);

/* Prints the auth part of `ward serve --help`. */
void auth_serve_usage(FILE *f);

/* Creates and starts the authorizer (NULL when --auth off, or on error with
 * *failed set and the reason logged). served_model: the model name checked
 * against identities' model lists. */
auth *auth_serve_start(const auth_serve_cfg *c, const char *served_model, int *failed);

/* The api_router pre-hook: ud is the auth*. Returns 1 if it responded. */
int auth_serve_hook(http_exchange *ex, const http_request *req, void *ud);

#endif
