/* auth: see auth.h. */
#include "auth/auth.h"

#include "auth/auth_fetch.h"
#include "auth/auth_ratelimit.h"
#include "auth/auth_store.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/rand.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOGGER "ward.service.auth"

const char *const auth_default_public_paths[5] = {
    "/health", "/v2/health/live", "/v2/health/ready", "/version", "/metrics",
};

/* A loaded JWKS, shared by the snapshots that use it: a URL's keys outlive
 * reloads of the other sources (and failed fetches) without a refetch. */
typedef struct jwks_ref {
    atomic_int refs;
    auth_jwks *jwks;
} jwks_ref;

/* One immutable generation of every identity source. */
typedef struct snapshot {
    atomic_int refs;
    auth_keyset *keys;
    jwks_ref *jr;
    const auth_jwks *jwks;          /* jr->jwks, or NULL */
} snapshot;

struct auth {
    auth_params p;
    char *strings;                  /* one block holding copies of p's strings */
    char challenge[AUTH_MAX_REALM_BYTES + 32];
    const char *public_paths[AUTH_MAX_PUBLIC_PATHS + 5];
    size_t n_public;
    uint8_t process_key[AUTH_HMAC_KEY_LEN]; /* domain of Secret-dir and env keys */
    int have_env_key;
    uint8_t env_digest[AUTH_DIGEST_LEN];

    pthread_mutex_t snap_mu;        /* guards `snap` pointer swaps only */
    snapshot *snap;
    pthread_mutex_t reload_mu;      /* one reload at a time */
    char (*fingerprints)[AUTH_FINGERPRINT_MAX]; /* per key dir, then keys file, then JWKS */
    size_t n_fp;

    auth_ratelimit *rl;
    pthread_t thread;
    int thread_started;
    int stop_pipe[2];
    int inotify_fd;
    int jwks_is_url;
    _Atomic uint64_t jwks_due_ms;   /* clock_mono_ms() of the next URL fetch; 0 = now */
};

/* ---- metrics (process-wide: one authorizer per server) ---- */

const double auth_metrics_bounds[10] = {1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 1e-3, 1e-2, 0};
const char *const auth_metrics_responses[4] = {"OK", "UNAUTHENTICATED", "PERMISSION_DENIED",
                                               "RESOURCE_EXHAUSTED"};
static atomic_ullong g_decisions[4];
static atomic_ullong g_buckets[10];
static atomic_ullong g_sum_ns;

static int response_index(auth_code c)
{
    switch (c) {
    case AUTH_CODE_OK: return 0;
    case AUTH_CODE_UNAUTHENTICATED: return 1;
    case AUTH_CODE_PERMISSION_DENIED: return 2;
    default: return 3;
    }
}

static void metrics_observe(const auth_decision *d)
{
    atomic_fetch_add(&g_decisions[response_index(d->code)], 1);
    double s = (double)d->duration_ns / 1e9;
    int b = 9;
    for (int i = 0; i < 9; i++)
        if (s <= auth_metrics_bounds[i]) {
            b = i;
            break;
        }
    atomic_fetch_add(&g_buckets[b], 1); /* stored per bucket; made cumulative when read */
    atomic_fetch_add(&g_sum_ns, d->duration_ns);
}

void auth_metrics_get(const auth *a, auth_metrics *out)
{
    (void)a;
    memset(out, 0, sizeof *out);
    for (int i = 0; i < 4; i++)
        out->decisions[i] = atomic_load(&g_decisions[i]);
    uint64_t cum = 0;
    for (int i = 0; i < 10; i++) {
        cum += atomic_load(&g_buckets[i]);
        out->buckets[i] = cum;
    }
    out->count = cum;
    out->sum_s = (double)atomic_load(&g_sum_ns) / 1e9;
}

size_t auth_metrics_render(const auth *a, char *buf, size_t buflen)
{
    auth_metrics m;
    auth_metrics_get(a, &m);
    size_t off = 0;
    /* With buf NULL this only measures: a 1-byte scratch keeps snprintf's
     * destination non-null (gcc -O3 warns on a null one even with size 0). */
    char scratch[1];
    if (!buf)
        buflen = 0;
#define OUT(...)                                                                                   \
    do {                                                                                           \
        int w_ = snprintf(off < buflen ? buf + off : scratch, off < buflen ? buflen - off : 0,     \
                          __VA_ARGS__);                                                            \
        if (w_ > 0)                                                                                \
            off += (size_t)w_;                                                                     \
    } while (0)
    OUT("# HELP ward:auth_decisions_total Authorization decisions by gRPC-style response.\n"
        "# TYPE ward:auth_decisions_total counter\n");
    for (int i = 0; i < 4; i++)
        OUT("ward:auth_decisions_total{response=\"%s\"} %llu\n", auth_metrics_responses[i],
            (unsigned long long)m.decisions[i]);
    OUT("# HELP ward:auth_duration_seconds Time to authorize a request (protected paths).\n"
        "# TYPE ward:auth_duration_seconds histogram\n");
    for (int i = 0; i < 9; i++)
        OUT("ward:auth_duration_seconds_bucket{le=\"%g\"} %llu\n", auth_metrics_bounds[i],
            (unsigned long long)m.buckets[i]);
    OUT("ward:auth_duration_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)m.count);
    OUT("ward:auth_duration_seconds_sum %.9f\n", m.sum_s);
    OUT("ward:auth_duration_seconds_count %llu\n", (unsigned long long)m.count);
#undef OUT
    return off;
}

/* ---- params ---- */

void auth_default_params(auth_params *p)
{
    memset(p, 0, sizeof *p);
    p->realm = AUTH_DEFAULT_REALM;
    p->use_env_key = 1;
    p->poll_ms = AUTH_POLL_MS;
}

/* Copies every string of p into one block so callers may free theirs. */
static int copy_params(auth *a, const auth_params *p, char *err, size_t errlen)
{
    a->p = *p;
    const char **slots[2 + AUTH_MAX_PUBLIC_PATHS + AUTH_MAX_KEY_DIRS + AUTH_MAX_KEY_FILE_NAMES + 6 +
                       2 * AUTH_MAX_JWT_VALUES];
    size_t n = 0;
    const char **singles[] = {&a->p.realm, &a->p.header_name, &a->p.query_param, &a->p.keys_file,
                              &a->p.jwks_file, &a->p.served_model, &a->p.jwks_ca_file,
                              &a->p.jwks_token_file};
    for (size_t i = 0; i < sizeof singles / sizeof singles[0]; i++)
        slots[n++] = singles[i];
    for (size_t i = 0; i < a->p.n_public_paths; i++)
        slots[n++] = &a->p.public_paths[i];
    for (size_t i = 0; i < a->p.n_key_dirs; i++)
        slots[n++] = &a->p.key_dirs[i];
    for (size_t i = 0; i < a->p.n_key_file_names; i++)
        slots[n++] = &a->p.key_file_names[i];
    for (size_t i = 0; i < a->p.n_issuers; i++)
        slots[n++] = &a->p.issuers[i];
    for (size_t i = 0; i < a->p.n_audiences; i++)
        slots[n++] = &a->p.audiences[i];
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        if (*slots[i])
            total += strlen(*slots[i]) + 1; /* bounded by argv sizes: no overflow */
    a->strings = malloc(total + 1);
    if (!a->strings) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    char *w = a->strings;
    for (size_t i = 0; i < n; i++) {
        if (!*slots[i])
            continue;
        size_t l = strlen(*slots[i]) + 1;
        memcpy(w, *slots[i], l);
        *slots[i] = w;
        w += l;
    }
    return 0;
}

static int header_name_ok(const char *s)
{
    if (!*s || strlen(s) > 64)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '-' ||
              *s == '_'))
            return 0;
    return 1;
}

static int is_url(const char *s)
{
    return s && (strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0);
}

static int validate(const auth_params *p, char *err, size_t errlen)
{
    if (is_url(p->jwks_file)) {
        auth_fetch_url_parts *u = malloc(sizeof *u);
        char uerr[160];
        int bad = !u || auth_fetch_parse_url(p->jwks_file, u, uerr, sizeof uerr) != 0;
        if (bad)
            snprintf(err, errlen, "--jwt-jwks: %s", u ? uerr : "out of memory");
        else if (p->jwks_token_file && !u->tls)
            snprintf(err, errlen, "--jwt-jwks-token-file: the token is only sent over https://");
        free(u);
        if (bad || (p->jwks_token_file && !strncmp(p->jwks_file, "http://", 7)))
            return -1;
    } else if (p->jwks_ca_file || p->jwks_token_file) {
        snprintf(err, errlen, "%s: needs an https:// URL in --jwt-jwks",
                 p->jwks_ca_file ? "--jwt-jwks-ca" : "--jwt-jwks-token-file");
        return -1;
    }
    if (!p->realm || !*p->realm || strlen(p->realm) > AUTH_MAX_REALM_BYTES || strpbrk(p->realm, "\"\\\r\n")) {
        snprintf(err, errlen, "--auth-realm: 1-%d characters, no quotes, backslashes or newlines",
                 AUTH_MAX_REALM_BYTES);
        return -1;
    }
    for (size_t i = 0; i < p->n_public_paths; i++)
        if (!p->public_paths[i] || p->public_paths[i][0] != '/' || strpbrk(p->public_paths[i], "? \t")) {
            snprintf(err, errlen, "--public-path: must start with '/' and have no query or spaces");
            return -1;
        }
    if (p->header_name && !header_name_ok(p->header_name)) {
        snprintf(err, errlen, "--auth-header: not a valid header name");
        return -1;
    }
    if (p->query_param && (!*p->query_param || strpbrk(p->query_param, "&=#? "))) {
        snprintf(err, errlen, "--auth-query-param: not a valid parameter name");
        return -1;
    }
    if (p->default_rpm < 0) {
        snprintf(err, errlen, "--auth-rpm: must be >= 0");
        return -1;
    }
    for (size_t i = 0; i < p->n_key_file_names; i++)
        if (!p->key_file_names[i] || !*p->key_file_names[i] || strchr(p->key_file_names[i], '/') ||
            p->key_file_names[i][0] == '.') {
            snprintf(err, errlen, "--api-key-file-name: a plain file name (no '/', not starting with '.')");
            return -1;
        }
    return 0;
}

/* ---- snapshots ---- */

static void jwks_ref_unref(jwks_ref *r)
{
    if (r && atomic_fetch_sub(&r->refs, 1) == 1) {
        auth_jwks_free(r->jwks);
        free(r);
    }
}

/* Wraps j (taking it); NULL j or no memory gives NULL (j freed). */
static jwks_ref *jwks_ref_new(auth_jwks *j)
{
    if (!j)
        return NULL;
    jwks_ref *r = malloc(sizeof *r);
    if (!r) {
        auth_jwks_free(j);
        return NULL;
    }
    atomic_init(&r->refs, 1);
    r->jwks = j;
    return r;
}

static void snapshot_unref(snapshot *s)
{
    if (s && atomic_fetch_sub(&s->refs, 1) == 1) {
        auth_keyset_free(s->keys);
        jwks_ref_unref(s->jr);
        free(s);
    }
}

static snapshot *snapshot_get(auth *a)
{
    pthread_mutex_lock(&a->snap_mu);
    snapshot *s = a->snap;
    if (s)
        atomic_fetch_add(&s->refs, 1);
    pthread_mutex_unlock(&a->snap_mu);
    return s;
}

static void snapshot_publish(auth *a, snapshot *s)
{
    pthread_mutex_lock(&a->snap_mu);
    snapshot *old = a->snap;
    a->snap = s;
    pthread_mutex_unlock(&a->snap_mu);
    snapshot_unref(old);
}

static const char *const *key_names(const auth *a, size_t *n)
{
    *n = a->p.n_key_file_names;
    return a->p.n_key_file_names ? a->p.key_file_names : auth_secret_default_key_files;
}

static void file_fingerprint(const char *path, char *out, size_t outlen)
{
    struct stat st;
    if (stat(path, &st) != 0)
        snprintf(out, outlen, "absent");
    else
        snprintf(out, outlen, "%llu:%lld:%lld.%09ld", (unsigned long long)st.st_ino, (long long)st.st_size,
                 (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
}

/* Computes all fingerprints; returns 1 if any differs from the stored ones
 * (and stores the new ones). */
static int fingerprints_changed(auth *a)
{
    int changed = 0;
    char fp[AUTH_FINGERPRINT_MAX];
    size_t nk;
    const char *const *names = key_names(a, &nk);
    for (size_t i = 0; i < a->n_fp; i++) {
        if (i < a->p.n_key_dirs)
            auth_secret_fingerprint(a->p.key_dirs[i], names, nk, fp, sizeof fp);
        else if (i == a->p.n_key_dirs && a->p.keys_file)
            file_fingerprint(a->p.keys_file, fp, sizeof fp);
        else if (a->jwks_is_url)
            snprintf(fp, sizeof fp, "url"); /* refetched on a timer: see jwks_url_due() */
        else
            file_fingerprint(a->p.jwks_file, fp, sizeof fp);
        if (strcmp(fp, a->fingerprints[i]) != 0) {
            memcpy(a->fingerprints[i], fp, sizeof fp);
            changed = 1;
        }
    }
    return changed;
}

static int jwks_url_due(auth *a)
{
    return a->jwks_is_url && clock_mono_ms() >= atomic_load(&a->jwks_due_ms);
}

/* The JWKS for a new snapshot, from a URL: fetched when due, else (and when
 * the fetch fails) the one the current snapshot holds. Under reload_mu. */
static jwks_ref *jwks_from_url(auth *a)
{
    snapshot *cur = snapshot_get(a);
    jwks_ref *prev = cur ? cur->jr : NULL;
    if (prev)
        atomic_fetch_add(&prev->refs, 1);
    snapshot_unref(cur);
    if (!jwks_url_due(a))
        return prev;
    char err[512], shown[AUTH_FETCH_MAX_URL + 1];
    auth_fetch_redact_url(a->p.jwks_file, shown, sizeof shown);
    auth_fetch_opts o;
    auth_fetch_default_opts(&o);
    o.ca_file = a->p.jwks_ca_file;
    o.bearer_file = a->p.jwks_token_file;
    char *body = NULL;
    size_t len = 0;
    auth_jwks *j = NULL;
    if (auth_fetch_url(a->p.jwks_file, &o, &body, &len, err, sizeof err) == 0)
        j = auth_jwks_parse(body, len, err, sizeof err);
    free(body);
    if (!j) {
        atomic_store(&a->jwks_due_ms, clock_mono_ms() + AUTH_JWKS_RETRY_S * 1000ull);
        log_pack(LOG_WARN, LOGGER, prev ? "JWKS fetch failed, keeping the keys loaded before" : "JWKS not loaded",
                 "{s:s,s:s,s:i}", "url", shown, "error", err, "retry_s", AUTH_JWKS_RETRY_S);
        return prev;
    }
    atomic_store(&a->jwks_due_ms, clock_mono_ms() + AUTH_JWKS_REFRESH_S * 1000ull);
    jwks_ref *r = jwks_ref_new(j);
    if (!r) {
        log_msgf(LOG_ERROR, LOGGER, "JWKS not loaded: out of memory");
        return prev;
    }
    jwks_ref_unref(prev);
    return r;
}

int auth_reload(auth *a)
{
    pthread_mutex_lock(&a->reload_mu);
    fingerprints_changed(a); /* record what this reload reads */
    snapshot *s = calloc(1, sizeof *s);
    auth_keyset *ks = auth_keyset_new();
    auth_secret *sec = malloc(sizeof *sec);
    int dom = ks ? auth_keyset_add_domain(ks, a->process_key) : -1;
    if (!s || !ks || !sec || dom < 0) {
        free(s);
        auth_keyset_free(ks);
        free(sec);
        pthread_mutex_unlock(&a->reload_mu);
        log_msgf(LOG_ERROR, LOGGER, "key reload failed: out of memory");
        return -1;
    }
    char err[512];
    int64_t now = clock_unix_s();
    if (a->have_env_key) {
        auth_identity id = {.name = "env", .source = "env"};
        auth_keyset_add_digest(ks, dom, a->env_digest, &id, err, sizeof err);
    }
    size_t nk;
    const char *const *names = key_names(a, &nk);
    size_t loaded_dirs = 0;
    for (size_t i = 0; i < a->p.n_key_dirs; i++) {
        const char *dir = a->p.key_dirs[i];
        if (auth_secret_read(dir, names, nk, sec, err, sizeof err) != 0) {
            /* Path and reason only: auth_secret never puts content in err. */
            log_pack(LOG_WARN, LOGGER, "api key secret not loaded", "{s:s,s:s}", "path", dir, "error", err);
            continue;
        }
        auth_identity id = {.name = sec->name, .source = "secret"};
        if (sec->n_models >= 0) {
            id.models = sec->models;
            id.n_models = (size_t)sec->n_models;
        }
        int rc = auth_keyset_add_key(ks, dom, sec->key, sec->key_len, &id, err, sizeof err);
        auth_secret_clear(sec);
        if (rc < 0)
            log_pack(LOG_WARN, LOGGER, "api key secret not loaded", "{s:s,s:s}", "path", dir, "error", err);
        else if (rc == 1)
            log_pack(LOG_WARN, LOGGER, "api key secret duplicates another key", "{s:s}", "path", dir);
        else
            loaded_dirs++;
    }
    free(sec);
    int store_keys = 0;
    if (a->p.keys_file) {
        json_t *doc = auth_store_load(a->p.keys_file, 0, err, sizeof err);
        if (!doc)
            log_pack(LOG_WARN, LOGGER, "key store not loaded", "{s:s,s:s}", "path", a->p.keys_file, "error", err);
        else if ((store_keys = auth_store_to_keyset(doc, ks, now, err, sizeof err)) < 0)
            log_pack(LOG_WARN, LOGGER, "key store not loaded", "{s:s,s:s}", "path", a->p.keys_file, "error", err);
        json_decref(doc);
    }
    if (a->jwks_is_url) {
        s->jr = jwks_from_url(a);
    } else if (a->p.jwks_file) {
        auth_jwks *j = auth_jwks_load_file(a->p.jwks_file, err, sizeof err);
        if (!j)
            log_pack(LOG_WARN, LOGGER, "JWKS not loaded", "{s:s,s:s}", "path", a->p.jwks_file, "error", err);
        s->jr = jwks_ref_new(j);
    }
    s->jwks = s->jr ? s->jr->jwks : NULL;
    if (auth_keyset_seal(ks) != 0) {
        auth_keyset_free(ks);
        jwks_ref_unref(s->jr);
        free(s);
        pthread_mutex_unlock(&a->reload_mu);
        log_msgf(LOG_ERROR, LOGGER, "key reload failed: out of memory");
        return -1;
    }
    s->keys = ks;
    atomic_init(&s->refs, 1);
    snapshot_publish(a, s);
    log_pack(LOG_INFO, LOGGER, "identities loaded", "{s:I,s:I,s:I,s:I}", "keys", (json_int_t)auth_keyset_count(ks),
             "secret_dirs", (json_int_t)loaded_dirs, "store_keys", (json_int_t)(store_keys > 0 ? store_keys : 0),
             "jwks_keys", (json_int_t)auth_jwks_count(s->jwks));
    pthread_mutex_unlock(&a->reload_mu);
    return 0;
}

size_t auth_key_count(auth *a)
{
    snapshot *s = snapshot_get(a);
    size_t n = s ? auth_keyset_count(s->keys) : 0;
    snapshot_unref(s);
    return n;
}

int auth_has_sources(const auth *a)
{
    return a->have_env_key || a->p.n_key_dirs || a->p.keys_file || a->p.jwks_file;
}

/* Reads WARD_API_KEY once, keeps only its digest, and wipes the value from
 * the environment block (which /proc/<pid>/environ shows). */
static int take_env_key(auth *a, char *err, size_t errlen)
{
    char *v = getenv(AUTH_ENV_KEY);
    if (!v)
        return 0;
    size_t len = strlen(v);
    char buf[AUTH_MAX_KEY_BYTES + 1];
    int rc = 0;
    if (len > AUTH_MAX_KEY_BYTES) {
        snprintf(err, errlen, "%s: longer than %d bytes", AUTH_ENV_KEY, AUTH_MAX_KEY_BYTES);
        rc = -1;
    } else {
        memcpy(buf, v, len + 1);
        char why[96];
        long kl = auth_key_normalize(buf, len, why, sizeof why);
        if (kl < 0) {
            snprintf(err, errlen, "%s: key %s", AUTH_ENV_KEY, why);
            rc = -1;
        } else if (auth_hmac(a->process_key, buf, (size_t)kl, a->env_digest) != 0) {
            snprintf(err, errlen, "%s: HMAC failed", AUTH_ENV_KEY);
            rc = -1;
        } else {
            a->have_env_key = 1;
        }
        auth_wipe(buf, sizeof buf);
    }
    auth_wipe(v, len);
    unsetenv(AUTH_ENV_KEY);
    return rc;
}

auth *auth_new(const auth_params *p, char *err, size_t errlen)
{
    if (validate(p, err, errlen) != 0)
        return NULL;
    auth *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    a->stop_pipe[0] = a->stop_pipe[1] = a->inotify_fd = -1;
    pthread_mutex_init(&a->snap_mu, NULL);
    pthread_mutex_init(&a->reload_mu, NULL);
    if (copy_params(a, p, err, errlen) != 0) {
        auth_free(a);
        return NULL;
    }
    if (a->p.poll_ms <= 0)
        a->p.poll_ms = AUTH_POLL_MS;
    snprintf(a->challenge, sizeof a->challenge, "Bearer realm=\"%s\"", a->p.realm);
    if (!a->p.no_default_public_paths)
        for (size_t i = 0; i < 5; i++)
            a->public_paths[a->n_public++] = auth_default_public_paths[i];
    for (size_t i = 0; i < a->p.n_public_paths; i++)
        a->public_paths[a->n_public++] = a->p.public_paths[i];
    a->rl = auth_ratelimit_new();
    if (!a->rl || rand_bytes(a->process_key, sizeof a->process_key) != 0) {
        snprintf(err, errlen, "cannot initialise (memory or randomness)");
        auth_free(a);
        return NULL;
    }
    if (a->p.use_env_key && take_env_key(a, err, errlen) != 0) {
        auth_free(a);
        return NULL;
    }
    a->jwks_is_url = is_url(a->p.jwks_file);
    atomic_init(&a->jwks_due_ms, 0);
    a->n_fp = a->p.n_key_dirs + (a->p.keys_file ? 1 : 0) + (a->p.jwks_file ? 1 : 0);
    a->fingerprints = calloc(a->n_fp ? a->n_fp : 1, sizeof *a->fingerprints);
    if (!a->fingerprints || auth_reload(a) != 0) {
        snprintf(err, errlen, "cannot load identities (out of memory)");
        auth_free(a);
        return NULL;
    }
    return a;
}

/* ---- watcher ---- */

static void add_watches(auth *a)
{
    const uint32_t dir_mask = IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_DELETE_SELF |
                              IN_MOVE_SELF | IN_CLOSE_WRITE | IN_ATTRIB | IN_ONLYDIR;
    for (size_t i = 0; i < a->p.n_key_dirs; i++)
        inotify_add_watch(a->inotify_fd, a->p.key_dirs[i], dir_mask); /* absent dir: poll finds it later */
    const char *files[2] = {a->p.keys_file, a->jwks_is_url ? NULL : a->p.jwks_file};
    for (int i = 0; i < 2; i++) {
        if (!files[i])
            continue;
        /* Watch the parent: atomic replacement (rename over) changes the inode. */
        char dir[PATH_MAX];
        const char *slash = strrchr(files[i], '/');
        if (!slash)
            snprintf(dir, sizeof dir, ".");
        else
            snprintf(dir, sizeof dir, "%.*s", (int)(slash == files[i] ? 1 : slash - files[i]), files[i]);
        inotify_add_watch(a->inotify_fd, dir, dir_mask);
    }
}

static void *watch_main(void *arg)
{
    auth *a = arg;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        struct pollfd pfd[2] = {{.fd = a->stop_pipe[0], .events = POLLIN},
                                {.fd = a->inotify_fd, .events = POLLIN}};
        int n = poll(pfd, a->inotify_fd >= 0 ? 2 : 1, a->p.poll_ms);
        if (n < 0 && errno != EINTR)
            break;
        if (pfd[0].revents)
            break;
        if (a->inotify_fd >= 0 && (pfd[1].revents & POLLIN))
            while (read(a->inotify_fd, buf, sizeof buf) > 0) {
                /* Events only wake us; the fingerprints decide (this also
                 * covers IN_Q_OVERFLOW and dropped watches). */
            }
        int changed = fingerprints_changed(a);
        if (changed && a->inotify_fd >= 0)
            add_watches(a); /* a Secret dir may have (re)appeared */
        if (changed || jwks_url_due(a))
            auth_reload(a);
    }
    return NULL;
}

int auth_start(auth *a, char *err, size_t errlen)
{
    if (a->thread_started || a->n_fp == 0)
        return 0; /* nothing can change: no watcher needed */
    if (pipe2(a->stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return -1;
    }
    a->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (a->inotify_fd < 0)
        log_pack(LOG_WARN, LOGGER, "inotify unavailable, polling for key changes", "{s:i}", "poll_ms", a->p.poll_ms);
    else
        add_watches(a);
    if (pthread_create(&a->thread, NULL, watch_main, a) != 0) {
        snprintf(err, errlen, "cannot start the key watcher thread");
        return -1;
    }
    a->thread_started = 1;
    return 0;
}

void auth_free(auth *a)
{
    if (!a)
        return;
    if (a->thread_started) {
        ssize_t w = write(a->stop_pipe[1], "x", 1);
        (void)w;
        pthread_join(a->thread, NULL);
    }
    if (a->stop_pipe[0] >= 0) {
        close(a->stop_pipe[0]);
        close(a->stop_pipe[1]);
    }
    if (a->inotify_fd >= 0)
        close(a->inotify_fd);
    snapshot_unref(a->snap);
    auth_ratelimit_free(a->rl);
    free(a->fingerprints);
    free(a->strings);
    auth_wipe(a->process_key, sizeof a->process_key);
    auth_wipe(a->env_digest, sizeof a->env_digest);
    pthread_mutex_destroy(&a->snap_mu);
    pthread_mutex_destroy(&a->reload_mu);
    free(a);
}

/* ---- decisions ---- */

static int path_is_public(const auth *a, const char *path)
{
    for (size_t i = 0; i < a->n_public; i++) {
        const char *pp = a->public_paths[i];
        size_t l = strlen(pp);
        if (l >= 2 && pp[l - 1] == '*' && pp[l - 2] == '/') {
            /* Prefix rule: refuse anything a router might normalise elsewhere. */
            if (strncmp(path, pp, l - 1) == 0 && !strstr(path, "..") && !strchr(path, '%') &&
                !strstr(path, "//") && !strchr(path, '\\'))
                return 1;
        } else if (strcmp(path, pp) == 0) {
            return 1;
        }
    }
    return 0;
}

static int hexv(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Finds name=value in a query string and percent-decodes value into out.
 * Returns length, 0 if absent, -1 if malformed or too long. */
static long query_credential(const char *q, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    while (q && *q) {
        const char *amp = strchr(q, '&');
        size_t seg = amp ? (size_t)(amp - q) : strlen(q);
        if (seg > nl && strncmp(q, name, nl) == 0 && q[nl] == '=') {
            size_t o = 0;
            for (size_t i = nl + 1; i < seg; i++) {
                char c = q[i];
                if (c == '%') {
                    if (i + 2 >= seg)
                        return -1;
                    int h = hexv(q[i + 1]), l = hexv(q[i + 2]);
                    if (h < 0 || l < 0)
                        return -1;
                    c = (char)(h << 4 | l);
                    i += 2;
                }
                if (o >= cap)
                    return -1;
                out[o++] = c;
            }
            return (long)o;
        }
        q = amp ? amp + 1 : NULL;
    }
    return 0;
}

static void deny(auth_decision *d, int status, auth_code code, const char *response, const char *reason)
{
    d->status = status;
    d->code = code;
    d->response = response;
    if (reason != d->reason)
        snprintf(d->reason, sizeof d->reason, "%s", reason);
}

static const char *REASON_NOT_FOUND = "credential not found";
static const char *REASON_INVALID = "the API Key provided is invalid";

int auth_decide_at(auth *a, const auth_request *r, int64_t now_unix, uint64_t now_mono_ns,
                   auth_decision *d)
{
    memset(d, 0, sizeof *d);
    d->status = 200;
    d->code = AUTH_CODE_OK;
    d->response = "OK";
    if (r->path && path_is_public(a, r->path)) {
        d->is_public = 1;
        return 1;
    }

    /* 1. Find the credential. */
    const char *cred = NULL;
    size_t cred_len = 0;
    char qbuf[AUTH_MAX_CREDENTIAL_BYTES];
    int too_long = 0, from_query = 0;
    const char *h = r->header ? r->header(r->header_ctx, "authorization") : NULL;
    if (h && strncasecmp(h, "bearer", 6) == 0 && (h[6] == ' ' || h[6] == '\t')) {
        const char *t = h + 7;
        while (*t == ' ' || *t == '\t')
            t++;
        size_t tl = strlen(t);
        while (tl > 0 && (t[tl - 1] == ' ' || t[tl - 1] == '\t'))
            tl--;
        if (tl > 0) {
            cred = t;
            cred_len = tl;
        }
    }
    if (!cred && a->p.header_name) {
        const char *c = r->header ? r->header(r->header_ctx, a->p.header_name) : NULL;
        if (c && *c) {
            cred = c;
            cred_len = strlen(c);
        }
    }
    if (!cred && a->p.query_param && r->query) {
        long ql = query_credential(r->query, a->p.query_param, qbuf, sizeof qbuf);
        if (ql < 0)
            too_long = 1; /* malformed or oversized: invalid, not "not found" */
        else if (ql > 0) {
            cred = qbuf;
            cred_len = (size_t)ql;
            from_query = 1;
        }
    }
    if (cred && cred_len > AUTH_MAX_CREDENTIAL_BYTES)
        too_long = 1;
    if (!cred && !too_long) {
        deny(d, 401, AUTH_CODE_UNAUTHENTICATED, "UNAUTHENTICATED", REASON_NOT_FOUND);
        return 0;
    }
    if (too_long) {
        deny(d, 401, AUTH_CODE_UNAUTHENTICATED, "UNAUTHENTICATED", REASON_INVALID);
        if (from_query)
            auth_wipe(qbuf, sizeof qbuf);
        return 0;
    }

    /* 2. Resolve the identity. */
    snapshot *s = snapshot_get(a);
    const auth_identity *id = s ? auth_keyset_lookup(s->keys, cred, cred_len) : NULL;
    int rpm = a->p.default_rpm;
    char rl_key[AUTH_RL_MAX_KEY_BYTES];
    int allowed = 0;
    if (id) {
        if (id->expires && now_unix >= id->expires) {
            deny(d, 401, AUTH_CODE_UNAUTHENTICATED, "UNAUTHENTICATED", "the API Key provided has expired");
            goto done;
        }
        snprintf(d->identity, sizeof d->identity, "%s", id->name);
        if (!auth_identity_allows_model(id, a->p.served_model)) {
            deny(d, 403, AUTH_CODE_PERMISSION_DENIED, "PERMISSION_DENIED", "Unauthorized");
            goto done;
        }
        if (id->rpm > 0)
            rpm = id->rpm;
        snprintf(rl_key, sizeof rl_key, "key:%s", id->name);
    } else if (s && s->jwks && auth_jwt_looks_like(cred, cred_len)) {
        auth_jwt_policy pol = {
            .issuers = a->p.issuers, .n_issuers = a->p.n_issuers,
            .audiences = a->p.audiences, .n_audiences = a->p.n_audiences,
            .now = now_unix, .skew_s = AUTH_JWT_SKEW_S,
        };
        if (auth_jwt_verify(s->jwks, cred, cred_len, &pol, d->identity, sizeof d->identity, d->reason,
                            sizeof d->reason) != 0) {
            d->identity[0] = '\0';
            deny(d, 401, AUTH_CODE_UNAUTHENTICATED, "UNAUTHENTICATED", d->reason);
            goto done;
        }
        snprintf(rl_key, sizeof rl_key, "jwt:%.*s", (int)sizeof rl_key - 5, d->identity);
    } else {
        deny(d, 401, AUTH_CODE_UNAUTHENTICATED, "UNAUTHENTICATED", REASON_INVALID);
        goto done;
    }

    /* 3. Rate limit. */
    if (rpm > 0 && !auth_ratelimit_take(a->rl, rl_key, rpm, now_mono_ns, &d->retry_after_s)) {
        deny(d, 429, AUTH_CODE_RESOURCE_EXHAUSTED, "RESOURCE_EXHAUSTED", "rate limit exceeded");
        goto done;
    }
    allowed = 1;
done:
    snapshot_unref(s);
    if (from_query)
        auth_wipe(qbuf, sizeof qbuf);
    return allowed;
}

int auth_decide(auth *a, const auth_request *r, auth_decision *d)
{
    uint64_t t0 = clock_mono_ns();
    if (log_enabled(LOG_DEBUG) && !(r->path && path_is_public(a, r->path)))
        /* Method and path only: header values and the query string (which
         * may hold a credential) never reach the log. */
        log_pack(LOG_DEBUG, LOGGER, "incoming authorization request", "{s:s,s:s,s:s,s:s}", "request id",
                 r->request_id ? r->request_id : "", "method", r->method ? r->method : "", "path",
                 r->path ? r->path : "", "source", r->remote ? r->remote : "");
    int ok = auth_decide_at(a, r, clock_unix_s(), t0, d);
    if (d->is_public)
        return 1;
    d->duration_ns = clock_mono_ns() - t0;
    metrics_observe(d);
    const char *rid = r->request_id ? r->request_id : "";
    if (ok)
        log_pack(LOG_INFO, LOGGER, "outgoing authorization response", "{s:s,s:b,s:s,s:s}", "request id", rid,
                 "authorized", 1, "response", "OK", "identity", d->identity);
    else
        log_pack(LOG_INFO, LOGGER, "outgoing authorization response", "{s:s,s:b,s:s,s:{s:i,s:s}}", "request id",
                 rid, "authorized", 0, "response", d->response, "object", "code", (int)d->code, "message",
                 d->reason);
    return ok;
}

const char *auth_challenge(const auth *a) { return a->challenge; }

size_t auth_deny_body_text(const auth *a, const auth_decision *d, char *buf, size_t buflen)
{
    if (a->p.deny_body == AUTH_DENY_BODY_EMPTY || d->status == 200) {
        if (buflen)
            buf[0] = '\0';
        return 0;
    }
    const char *type = "invalid_request_error", *code = "invalid_api_key";
    if (d->status == 403)
        code = "permission_denied";
    else if (d->status == 429) {
        type = "rate_limit_error";
        code = "rate_limit_exceeded";
    }
    json_t *o = json_pack("{s:{s:s,s:s,s:n,s:s}}", "error", "message", d->reason, "type", type, "param", "code",
                          code);
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    size_t n = 0;
    if (s) {
        n = strlen(s);
        if (n >= buflen)
            n = buflen ? buflen - 1 : 0;
        memcpy(buf, s, n);
        free(s);
    }
    if (buflen)
        buf[n] = '\0';
    return n;
}
