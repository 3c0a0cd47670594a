/* libFuzzer target: key store documents, credential/query parsing and the
 * decision policy. First byte selects: 0-127 the rest is a key store file;
 * 128-255 the rest is an Authorization header value and a query string
 * (split at the first NUL) given to auth_decide_at. */
#include "auth/auth.h"
#include "auth/auth_store.h"
#include "util/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static auth *g_auth;
static char g_path[64];

static const char *hdr(void *ctx, const char *name)
{
    return strcasecmp(name, "authorization") == 0 ? (const char *)ctx : NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_auth) {
        log_set_level(LOG_ERROR);
        snprintf(g_path, sizeof g_path, "/tmp/ward-fuzz-store-%d.json", (int)getpid());
        auth_params p;
        auth_default_params(&p);
        p.query_param = "key";
        p.header_name = "x-key";
        p.default_rpm = 1000;
        p.use_env_key = 0;
        char err[256];
        g_auth = auth_new(&p, err, sizeof err);
    }
    if (size < 1 || size > 65536)
        return 0;
    char err[256];
    if (data[0] < 128) {
        FILE *f = fopen(g_path, "wb");
        if (!f)
            return 0;
        fwrite(data + 1, 1, size - 1, f);
        fclose(f);
        json_t *doc = auth_store_load(g_path, 0, err, sizeof err);
        if (doc) {
            auth_keyset *ks = auth_keyset_new();
            if (auth_store_to_keyset(doc, ks, 1720473958, err, sizeof err) >= 0 && auth_keyset_seal(ks) == 0)
                (void)auth_keyset_lookup(ks, "ward_x", 6);
            auth_keyset_free(ks);
            json_decref(doc);
        }
        unlink(g_path);
        return 0;
    }
    char *buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = '\0';
    size_t hl = strlen(buf);
    const char *query = hl + 1 < size ? buf + hl + 1 : "";
    auth_request r = {.method = "POST", .path = "/v1/completions", .query = query, .request_id = "fuzz",
                      .header = hdr, .header_ctx = buf};
    auth_decision d;
    if (g_auth)
        (void)auth_decide_at(g_auth, &r, 1720473958, 1, &d);
    free(buf);
    return 0;
}
