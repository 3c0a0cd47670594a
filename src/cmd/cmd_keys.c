/* ward keys: manage the local API key store (see auth/auth_store.h).
 *
 *   ward keys create NAME [--models a,b] [--expires 90d] [--rpm N] [--keys-file FILE]
 *   ward keys list [--json] [--keys-file FILE]
 *   ward keys revoke NAME [--keys-file FILE]
 *   ward keys rotate NAME [--keys-file FILE]
 *
 * create and rotate print the new key alone on the first line of stdout, once;
 * the store keeps only its salted hash. Everything else goes to stderr.
 */
#include "cmd/cmd.h"

#include "auth/auth_store.h"
#include "util/clock.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *f)
{
    char def[PATH_MAX];
    auth_store_default_path(def, sizeof def);
    fprintf(f,
            "usage: ward keys create NAME [--models a,b] [--expires 90d] [--rpm N] [--keys-file FILE]\n"
            "       ward keys list [--json] [--keys-file FILE]\n"
            "       ward keys revoke NAME [--keys-file FILE]\n"
            "       ward keys rotate NAME [--keys-file FILE]\n"
            "\n"
            "Manages the local API key store used by 'ward serve --keys-file FILE'.\n"
            "create/rotate print the new key alone on the first line of stdout, once;\n"
            "the store keeps only a salted hash (HMAC-SHA256), in a 0600 file written\n"
            "atomically. A running server reloads the file within a second.\n"
            "\n"
            "  --keys-file FILE  store path (default: $WARD_KEYS_FILE, else\n"
            "                    $WARD_HOME/keys.json, else ./.ward/keys.json; now %s)\n"
            "  --models a,b      model ids the key may use (default: all)\n"
            "  --expires D       lifetime: 90d, 12h, 30m, 45s (default: never)\n"
            "  --rpm N           requests per minute for this key (default: server's --auth-rpm)\n"
            "  --json            list as JSON (no hashes)\n",
            def);
}

static void fmt_time(int64_t t, char *out, size_t n)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (t <= 0 || !gmtime_r(&tt, &tm))
        snprintf(out, n, "never");
    else
        strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int list_keys(json_t *doc, int as_json)
{
    json_t *keys = json_object_get(doc, "keys");
    if (as_json) {
        json_t *out = json_array();
        size_t i;
        json_t *k;
        json_array_foreach(keys, i, k) {
            json_t *c = json_deep_copy(k);
            json_object_del(c, "hash"); /* not secret, but useless to a reader */
            json_array_append_new(out, c);
        }
        char *s = json_dumps(out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(out);
        if (!s)
            return 1;
        printf("%s\n", s);
        free(s);
        return 0;
    }
    printf("%-24s %-8s %-20s %-20s %-6s %s\n", "NAME", "ID", "CREATED", "EXPIRES", "RPM", "MODELS");
    size_t i;
    json_t *k;
    int64_t now = clock_unix_s();
    json_array_foreach(keys, i, k) {
        char created[32], expires[40];
        fmt_time(json_integer_value(json_object_get(k, "created")), created, sizeof created);
        int64_t exp = json_integer_value(json_object_get(k, "expires"));
        fmt_time(exp, expires, sizeof expires);
        if (exp && exp <= now)
            strncat(expires, "*", sizeof expires - strlen(expires) - 1);
        char models[512] = "*";
        json_t *m = json_object_get(k, "models");
        if (json_is_array(m)) {
            models[0] = '\0';
            size_t j;
            json_t *mm;
            json_array_foreach(m, j, mm) {
                if (j)
                    strncat(models, ",", sizeof models - strlen(models) - 1);
                strncat(models, json_string_value(mm), sizeof models - strlen(models) - 1);
            }
        }
        json_int_t rpm = json_integer_value(json_object_get(k, "rpm"));
        char rpms[24] = "-";
        if (rpm)
            snprintf(rpms, sizeof rpms, "%lld", (long long)rpm);
        printf("%-24s %-8s %-20s %-20s %-6s %s\n", json_string_value(json_object_get(k, "name")),
               json_string_value(json_object_get(k, "id")) ? json_string_value(json_object_get(k, "id")) : "-",
               created, expires, rpms, models);
    }
    return 0;
}

int cmd_keys(int argc, char **argv)
{
    if (cmd_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    if (argc < 2) {
        fprintf(stderr, "ward keys: missing sub-command (create, list, revoke, rotate; see --help)\n");
        return 2;
    }
    const char *sub = argv[1];
    const char *name = NULL, *file = NULL, *models_arg = NULL, *expires_arg = NULL, *rpm_arg = NULL;
    int as_json = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char **dst = NULL;
        if (strcmp(a, "--keys-file") == 0)
            dst = &file;
        else if (strcmp(a, "--models") == 0)
            dst = &models_arg;
        else if (strcmp(a, "--expires") == 0)
            dst = &expires_arg;
        else if (strcmp(a, "--rpm") == 0)
            dst = &rpm_arg;
        else if (strcmp(a, "--json") == 0) {
            as_json = 1;
            continue;
        } else if (a[0] == '-') {
            fprintf(stderr, "ward keys: unknown option '%s'\n", a);
            return 2;
        } else if (!name) {
            name = a;
            continue;
        } else {
            fprintf(stderr, "ward keys: unexpected argument '%s'\n", a);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "ward keys: %s needs a value\n", a);
            return 2;
        }
        *dst = argv[++i]; /* later flags override earlier ones */
    }
    int is_create = strcmp(sub, "create") == 0, is_list = strcmp(sub, "list") == 0;
    int is_revoke = strcmp(sub, "revoke") == 0, is_rotate = strcmp(sub, "rotate") == 0;
    if (!is_create && !is_list && !is_revoke && !is_rotate) {
        fprintf(stderr, "ward keys: unknown sub-command '%s' (create, list, revoke, rotate)\n", sub);
        return 2;
    }
    if (is_list ? name != NULL : name == NULL) {
        fprintf(stderr, is_list ? "ward keys list: takes no NAME\n" : "ward keys %s: NAME is required\n", sub);
        return 2;
    }
    if (!is_create && (models_arg || expires_arg || rpm_arg)) {
        fprintf(stderr, "ward keys %s: --models, --expires and --rpm apply to create only\n", sub);
        return 2;
    }
    auth_store_opts opts = {0};
    char models_buf[4096];
    const char *models[AUTH_MAX_MODELS];
    char err[512];
    if (models_arg) {
        if (strlen(models_arg) >= sizeof models_buf) {
            fprintf(stderr, "ward keys: --models too long\n");
            return 2;
        }
        strcpy(models_buf, models_arg);
        int n = auth_parse_models(models_buf, models, err, sizeof err);
        if (n <= 0) {
            fprintf(stderr, "ward keys: --models: %s\n", n < 0 ? err : "empty list");
            return 2;
        }
        opts.models = models;
        opts.n_models = (size_t)n;
    }
    int64_t now = clock_unix_s();
    if (expires_arg) {
        int64_t d;
        if (auth_parse_duration(expires_arg, &d) != 0) {
            fprintf(stderr, "ward keys: --expires: want a duration such as 90d, 12h, 30m or 45s\n");
            return 2;
        }
        opts.expires = now + d;
    }
    if (rpm_arg) {
        char *end;
        long v = strtol(rpm_arg, &end, 10);
        if (*end || end == rpm_arg || v < 1 || v > AUTH_STORE_MAX_RPM) {
            fprintf(stderr, "ward keys: --rpm: want an integer 1..%d\n", AUTH_STORE_MAX_RPM);
            return 2;
        }
        opts.rpm = (int)v;
    }
    char path[PATH_MAX];
    if (file)
        snprintf(path, sizeof path, "%s", file);
    else
        auth_store_default_path(path, sizeof path);

    if (is_list) {
        json_t *doc = auth_store_load(path, 1, err, sizeof err);
        if (!doc) {
            fprintf(stderr, "ward keys: %s\n", err);
            return 1;
        }
        int rc = list_keys(doc, as_json);
        json_decref(doc);
        return rc;
    }

    int lock = auth_store_lock(path, err, sizeof err);
    if (lock < 0) {
        fprintf(stderr, "ward keys: %s\n", err);
        return 1;
    }
    int rc = 1;
    char key[AUTH_KEY_TEXT_MAX] = "";
    json_t *doc = auth_store_load(path, is_create, err, sizeof err);
    if (!doc) {
        fprintf(stderr, "ward keys: %s\n", err);
        goto out;
    }
    int r = is_create ? auth_store_create(doc, name, &opts, now, key, err, sizeof err)
            : is_rotate ? auth_store_rotate(doc, name, now, key, err, sizeof err)
                        : auth_store_revoke(doc, name, err, sizeof err);
    if (r != 0) {
        fprintf(stderr, "ward keys %s: %s\n", sub, err);
        goto out;
    }
    if (auth_store_save(doc, path, err, sizeof err) != 0) {
        fprintf(stderr, "ward keys: %s\n", err);
        goto out;
    }
    if (is_revoke) {
        fprintf(stderr, "revoked key '%s' in %s\n", name, path);
    } else {
        /* The only place a key is ever shown: first line of stdout, alone. */
        printf("%s\n", key);
        fflush(stdout);
        fprintf(stderr, "%s key '%s' in %s; it is shown only once, store it now\n",
                is_create ? "created" : "rotated", name, path);
    }
    rc = 0;
out:
    auth_wipe(key, sizeof key);
    json_decref(doc);
    auth_store_unlock(lock);
    return rc;
}
