/* Unit tests for auth: key set, Secret-dir reading, key store, rate limiter,
 * and the decision policy (statuses, reasons, public paths, credentials). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "auth/auth.h"
#include "auth/auth_crypto.h"
#include "auth/auth_keys.h"
#include "auth/auth_ratelimit.h"
#include "auth/auth_secret.h"
#include "auth/auth_store.h"
#include "util/log.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_tmp[256];

static void write_file(const char *dir, const char *name, const char *content)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
}

static int setup_tmp(void **state)
{
    (void)state;
    snprintf(g_tmp, sizeof g_tmp, "/tmp/ward-test-auth-XXXXXX");
    assert_non_null(mkdtemp(g_tmp));
    return 0;
}

static int teardown_tmp(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- crypto helpers ---- */

static void test_key_generate(void **state)
{
    (void)state;
    char a[AUTH_KEY_TEXT_MAX], b[AUTH_KEY_TEXT_MAX];
    assert_int_equal(auth_key_generate(a), 0);
    assert_int_equal(auth_key_generate(b), 0);
    assert_int_equal(strlen(a), 5 + 43);
    assert_memory_equal(a, "ward_", 5);
    assert_string_not_equal(a, b);
    for (size_t i = 5; i < strlen(a); i++)
        assert_true((a[i] >= '0' && a[i] <= '9') || (a[i] >= 'a' && a[i] <= 'z') || (a[i] >= 'A' && a[i] <= 'Z'));
}

static void test_hmac_known_vector(void **state)
{
    (void)state;
    /* RFC 4231 test case 2 uses a 4-byte key; ours are 32 bytes, so check
     * against a vector computed with `openssl dgst -sha256 -mac HMAC`. */
    uint8_t key[32];
    memset(key, 0x0b, sizeof key);
    uint8_t out[32];
    char hex[65];
    assert_int_equal(auth_hmac(key, "Hi There", 8, out), 0);
    auth_hex(out, 32, hex);
    assert_string_equal(hex, "198a607eb44bfbc69903a0f1cf2bbdc5ba0aa3f3d9ae3c1c7a3b1696a0b68cf7");
    uint8_t back[32];
    assert_int_equal(auth_unhex(hex, back, 32), 0);
    assert_true(auth_digest_eq(out, back));
    back[31] ^= 1;
    assert_false(auth_digest_eq(out, back));
    assert_int_equal(auth_unhex("zz", back, 1), -1);
    assert_int_equal(auth_unhex("abc", back, 2), -1);
}

/* ---- key set ---- */

static void test_keyset_lookup(void **state)
{
    (void)state;
    auth_keyset *ks = auth_keyset_new();
    uint8_t dk[32];
    memset(dk, 7, sizeof dk);
    int d = auth_keyset_add_domain(ks, dk);
    assert_int_equal(d, 0);
    char err[128];
    const char *models[] = {"llama3"};
    auth_identity alice = {.name = "alice", .models = models, .n_models = 1, .rpm = 5, .source = "secret"};
    auth_identity bob = {.name = "bob", .source = "secret"};
    auth_identity mallory = {.name = "mallory", .source = "secret"};
    assert_int_equal(auth_keyset_add_key(ks, d, "key-a", 5, &alice, err, sizeof err), 0);
    assert_int_equal(auth_keyset_add_key(ks, d, "key-b", 5, &bob, err, sizeof err), 0);
    /* A duplicate key cannot take over an identity: first one wins. */
    assert_int_equal(auth_keyset_add_key(ks, d, "key-a", 5, &mallory, err, sizeof err), 0);
    for (int i = 0; i < 200; i++) {
        char k[32];
        snprintf(k, sizeof k, "filler-%d", i);
        auth_identity f = {.name = "filler"};
        assert_int_equal(auth_keyset_add_key(ks, d, k, strlen(k), &f, err, sizeof err), 0);
    }
    assert_int_equal(auth_keyset_seal(ks), 0);
    assert_int_equal(auth_keyset_count(ks), 202);
    const auth_identity *id = auth_keyset_lookup(ks, "key-a", 5);
    assert_non_null(id);
    assert_string_equal(id->name, "alice");
    assert_int_equal(id->rpm, 5);
    assert_true(auth_identity_allows_model(id, "llama3"));
    assert_false(auth_identity_allows_model(id, "other"));
    id = auth_keyset_lookup(ks, "key-b", 5);
    assert_non_null(id);
    assert_true(auth_identity_allows_model(id, "anything"));
    assert_null(auth_keyset_lookup(ks, "key-c", 5));
    assert_null(auth_keyset_lookup(ks, "key-a", 4)); /* a prefix is not the key */
    assert_null(auth_keyset_lookup(ks, "", 0));
    assert_non_null(auth_keyset_lookup(ks, "filler-199", 10));
    /* Bad identity names are refused. */
    auth_keyset *ks2 = auth_keyset_new();
    d = auth_keyset_add_domain(ks2, dk);
    auth_identity bad = {.name = "a\nb"};
    assert_int_equal(auth_keyset_add_key(ks2, d, "k", 1, &bad, err, sizeof err), -1);
    auth_keyset_free(ks2);
    auth_keyset_free(ks);
}

static void test_parse_models(void **state)
{
    (void)state;
    char buf[] = " a, b ,,c\n d \n";
    const char *m[AUTH_MAX_MODELS];
    char err[64];
    assert_int_equal(auth_parse_models(buf, m, err, sizeof err), 4);
    assert_string_equal(m[0], "a");
    assert_string_equal(m[1], "b");
    assert_string_equal(m[2], "c");
    assert_string_equal(m[3], "d");
}

/* ---- Secret dirs ---- */

static void test_secret_plain_dir(void **state)
{
    (void)state;
    char dir[300];
    snprintf(dir, sizeof dir, "%s/plain", g_tmp);
    mkdir(dir, 0700);
    write_file(dir, "token", "s3cret-token\n");
    write_file(dir, "models", "llama3, mistral\n");
    auth_secret *s = malloc(sizeof *s);
    char err[256];
    assert_int_equal(auth_secret_read(dir, NULL, 0, s, err, sizeof err), 0);
    assert_int_equal(s->key_len, 12);
    assert_memory_equal(s->key, "s3cret-token", 12);
    assert_string_equal(s->name, "plain"); /* default: directory name */
    assert_int_equal(s->n_models, 2);
    assert_string_equal(s->models[1], "mistral");
    auth_secret_clear(s);
    assert_int_equal(s->key_len, 0);
    assert_int_equal(s->key[0], 0);

    /* api_key wins over token; name entry used. */
    write_file(dir, "api_key", "other-key\r\n");
    write_file(dir, "name", "team-a\n");
    assert_int_equal(auth_secret_read(dir, NULL, 0, s, err, sizeof err), 0);
    assert_memory_equal(s->key, "other-key", 9);
    assert_int_equal(s->key_len, 9);
    assert_string_equal(s->name, "team-a");

    /* Configured entry name. */
    const char *names[] = {"my-key"};
    assert_int_equal(auth_secret_read(dir, names, 1, s, err, sizeof err), -1);
    assert_non_null(strstr(err, dir));
    write_file(dir, "my-key", "mine");
    assert_int_equal(auth_secret_read(dir, names, 1, s, err, sizeof err), 0);
    assert_int_equal(s->key_len, 4);
    free(s);
}

static void test_secret_bad_files(void **state)
{
    (void)state;
    char dir[300];
    auth_secret *s = malloc(sizeof *s);
    char err[256];
    snprintf(dir, sizeof dir, "%s/bad", g_tmp);
    mkdir(dir, 0700);
    write_file(dir, "token", "\n");
    assert_int_equal(auth_secret_read(dir, NULL, 0, s, err, sizeof err), -1);
    assert_non_null(strstr(err, "empty"));
    write_file(dir, "token", "has space-inside-SECRETVALUE");
    assert_int_equal(auth_secret_read(dir, NULL, 0, s, err, sizeof err), -1);
    assert_null(strstr(err, "SECRETVALUE")); /* never the content */
    assert_non_null(strstr(err, "whitespace"));
    /* Oversized key file. */
    char *big = malloc(AUTH_MAX_KEY_BYTES + 10);
    memset(big, 'k', AUTH_MAX_KEY_BYTES + 9);
    big[AUTH_MAX_KEY_BYTES + 9] = '\0';
    write_file(dir, "token", big);
    free(big);
    assert_int_equal(auth_secret_read(dir, NULL, 0, s, err, sizeof err), -1);
    assert_non_null(strstr(err, "too large"));
    /* Missing dir. */
    assert_int_equal(auth_secret_read("/nonexistent/ward", NULL, 0, s, err, sizeof err), -1);
    char fp[AUTH_FINGERPRINT_MAX];
    auth_secret_fingerprint("/nonexistent/ward", NULL, 0, fp, sizeof fp);
    assert_string_equal(fp, "absent");
    free(s);
}

/* The kubelet's layout: ..data -> ..<ts>, entries are symlinks into ..data. */
static void kubelet_write(const char *dir, const char *ts, const char *key)
{
    char p[600], q[600];
    snprintf(p, sizeof p, "%s/%s", dir, ts);
    mkdir(p, 0755);
    write_file(p, "token", key);
    snprintf(p, sizeof p, "%s/..data_tmp", dir);
    unlink(p);
    assert_int_equal(symlink(ts, p), 0);
    snprintf(q, sizeof q, "%s/..data", dir);
    assert_int_equal(rename(p, q), 0);
    snprintf(p, sizeof p, "%s/token", dir);
    if (access(p, F_OK) != 0)
        assert_int_equal(symlink("..data/token", p), 0);
}

static void test_secret_kubelet_layout(void **state)
{
    (void)state;
    char dir[300];
    snprintf(dir, sizeof dir, "%s/kube", g_tmp);
    mkdir(dir, 0700);
    kubelet_write(dir, "..2024_07_08_21_25_58.111", "first-key");
    auth_secret *s = malloc(sizeof *s);
    char err[256], fp1[AUTH_FINGERPRINT_MAX], fp2[AUTH_FINGERPRINT_MAX];
    assert_int_equal(auth_secret_read(dir, NULL, 0, s, err, sizeof err), 0);
    assert_memory_equal(s->key, "first-key", 9);
    auth_secret_fingerprint(dir, NULL, 0, fp1, sizeof fp1);
    kubelet_write(dir, "..2024_07_08_21_30_00.222", "second-key");
    auth_secret_fingerprint(dir, NULL, 0, fp2, sizeof fp2);
    assert_string_not_equal(fp1, fp2);
    assert_int_equal(auth_secret_read(dir, NULL, 0, s, err, sizeof err), 0);
    assert_int_equal(s->key_len, 10);
    assert_memory_equal(s->key, "second-key", 10);
    free(s);
}

/* ---- key store ---- */

static void test_store_round_trip(void **state)
{
    (void)state;
    char path[300], err[256];
    snprintf(path, sizeof path, "%s/store/keys.json", g_tmp);
    int lock = auth_store_lock(path, err, sizeof err);
    assert_true(lock >= 0);
    json_t *doc = auth_store_load(path, 1, err, sizeof err);
    assert_non_null(doc);
    char key1[AUTH_KEY_TEXT_MAX], key2[AUTH_KEY_TEXT_MAX];
    const char *models[] = {"llama3"};
    auth_store_opts o = {.models = models, .n_models = 1, .rpm = 7};
    assert_int_equal(auth_store_create(doc, "alice", &o, 1000, key1, err, sizeof err), 0);
    assert_int_equal(auth_store_create(doc, "alice", NULL, 1000, key2, err, sizeof err), -1);
    auth_store_opts exp = {.expires = 2000};
    assert_int_equal(auth_store_create(doc, "bob", &exp, 1000, key2, err, sizeof err), 0);
    assert_int_equal(auth_store_create(doc, "bad name", NULL, 1000, key2 + 0, err, sizeof err), -1);
    assert_int_equal(auth_store_save(doc, path, err, sizeof err), 0);
    json_decref(doc);
    auth_store_unlock(lock);

    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* The file never contains a key. */
    FILE *f = fopen(path, "r");
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    assert_null(strstr(buf, key1));
    assert_null(strstr(buf, key2));
    assert_null(strstr(buf, key1 + 5));

    doc = auth_store_load(path, 0, err, sizeof err);
    assert_non_null(doc);
    auth_keyset *ks = auth_keyset_new();
    assert_int_equal(auth_store_to_keyset(doc, ks, 1500, err, sizeof err), 2);
    assert_int_equal(auth_keyset_seal(ks), 0);
    const auth_identity *id = auth_keyset_lookup(ks, key1, strlen(key1));
    assert_non_null(id);
    assert_string_equal(id->name, "alice");
    assert_int_equal(id->rpm, 7);
    assert_false(auth_identity_allows_model(id, "x"));
    id = auth_keyset_lookup(ks, key2, strlen(key2));
    assert_non_null(id);
    assert_int_equal(id->expires, 2000);
    auth_keyset_free(ks);
    /* Expired keys are not loaded. */
    ks = auth_keyset_new();
    assert_int_equal(auth_store_to_keyset(doc, ks, 2500, err, sizeof err), 1);
    auth_keyset_free(ks);

    /* Rotate: the old key stops matching, the new one matches. */
    char key3[AUTH_KEY_TEXT_MAX];
    assert_int_equal(auth_store_rotate(doc, "alice", 3000, key3, err, sizeof err), 0);
    ks = auth_keyset_new();
    auth_store_to_keyset(doc, ks, 1500, err, sizeof err);
    auth_keyset_seal(ks);
    assert_null(auth_keyset_lookup(ks, key1, strlen(key1)));
    assert_non_null(auth_keyset_lookup(ks, key3, strlen(key3)));
    auth_keyset_free(ks);
    assert_int_equal(auth_store_revoke(doc, "alice", err, sizeof err), 0);
    assert_int_equal(auth_store_revoke(doc, "alice", err, sizeof err), -1);
    json_decref(doc);
}

static void test_store_corrupt(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "{",
        "[]",
        "{\"version\":2,\"salt\":\"00\",\"keys\":[]}",
        "{\"version\":1,\"salt\":\"zz\",\"keys\":[]}",
        "{\"version\":1,\"salt\":\"0000000000000000000000000000000000000000000000000000000000000000\",\"keys\":{}}",
        "{\"version\":1,\"salt\":\"0000000000000000000000000000000000000000000000000000000000000000\","
        "\"keys\":[{\"name\":\"a\",\"hash\":\"12\"}]}",
        "{\"version\":1,\"salt\":\"0000000000000000000000000000000000000000000000000000000000000000\","
        "\"keys\":[{\"name\":\"a\",\"hash\":\"0000000000000000000000000000000000000000000000000000000000000000\","
        "\"rpm\":-1}]}",
        "{\"version\":1,\"version\":1}",
    };
    char path[300], err[256];
    snprintf(path, sizeof path, "%s/corrupt.json", g_tmp);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        FILE *f = fopen(path, "w");
        fputs(bad[i], f);
        fclose(f);
        json_t *doc = auth_store_load(path, 0, err, sizeof err);
        assert_null(doc);
        assert_non_null(strstr(err, path));
    }
    assert_null(auth_store_load("/nonexistent/keys.json", 0, err, sizeof err));
}

static void test_parse_duration(void **state)
{
    (void)state;
    int64_t v;
    assert_int_equal(auth_parse_duration("90d", &v), 0);
    assert_int_equal(v, 90 * 86400);
    assert_int_equal(auth_parse_duration("12h", &v), 0);
    assert_int_equal(v, 12 * 3600);
    assert_int_equal(auth_parse_duration("30", &v), 0);
    assert_int_equal(v, 30 * 86400);
    assert_int_equal(auth_parse_duration("5x", &v), -1);
    assert_int_equal(auth_parse_duration("-1d", &v), -1);
    assert_int_equal(auth_parse_duration("99999999999999999999d", &v), -1);
}

/* ---- rate limiter ---- */

static void test_ratelimit(void **state)
{
    (void)state;
    auth_ratelimit *rl = auth_ratelimit_new();
    int ra = 0;
    uint64_t t = 1000000000ull;
    for (int i = 0; i < 3; i++)
        assert_int_equal(auth_ratelimit_take(rl, "a", 3, t, &ra), 1);
    assert_int_equal(auth_ratelimit_take(rl, "a", 3, t, &ra), 0);
    assert_int_equal(ra, 20); /* 3/min: one token every 20 s */
    assert_int_equal(auth_ratelimit_take(rl, "b", 3, t, &ra), 1); /* independent bucket */
    t += 19ull * 1000000000ull;
    assert_int_equal(auth_ratelimit_take(rl, "a", 3, t, &ra), 0);
    assert_int_equal(ra, 1);
    t += 1ull * 1000000000ull;
    assert_int_equal(auth_ratelimit_take(rl, "a", 3, t, &ra), 1);
    assert_int_equal(auth_ratelimit_take(rl, "a", 0, t, &ra), 1); /* 0 = unlimited */
    assert_int_equal(auth_ratelimit_size(rl), 2);
    auth_ratelimit_free(rl);
}

/* ---- policy ---- */

typedef struct hdrs {
    const char *names[4];
    const char *values[4];
} hdrs;

static const char *hdr_get(void *ctx, const char *name)
{
    hdrs *h = ctx;
    for (int i = 0; i < 4 && h->names[i]; i++)
        if (strcasecmp(h->names[i], name) == 0)
            return h->values[i];
    return NULL;
}

static int decide(auth *a, const char *path, const char *query, hdrs *h, auth_decision *d, uint64_t mono)
{
    auth_request r = {.method = "POST", .path = path, .query = query, .request_id = "rid",
                      .header = hdr_get, .header_ctx = h};
    return auth_decide_at(a, &r, 1700000000, mono, d);
}

static void test_policy(void **state)
{
    (void)state;
    char dir[300], dir2[300], err[256];
    snprintf(dir, sizeof dir, "%s/pol1", g_tmp);
    snprintf(dir2, sizeof dir2, "%s/pol2", g_tmp);
    mkdir(dir, 0700);
    mkdir(dir2, 0700);
    write_file(dir, "token", "good-key");
    write_file(dir, "name", "svc-a");
    write_file(dir2, "api_key", "other-key");
    write_file(dir2, "models", "not-this-one");
    auth_params p;
    auth_default_params(&p);
    p.key_dirs[p.n_key_dirs++] = dir;
    p.key_dirs[p.n_key_dirs++] = dir2;
    p.served_model = "llama3";
    p.header_name = "X-Api-Key";
    p.query_param = "key";
    p.public_paths[p.n_public_paths++] = "/docs/*";
    p.realm = "kubernetes-user";
    auth *a = auth_new(&p, err, sizeof err);
    assert_non_null(a);
    assert_int_equal(auth_key_count(a), 2);
    assert_string_equal(auth_challenge(a), "Bearer realm=\"kubernetes-user\"");
    auth_decision d;
    hdrs none = {{0}, {0}};

    assert_int_equal(decide(a, "/v1/completions", "", &none, &d, 1), 0);
    assert_int_equal(d.status, 401);
    assert_int_equal(d.code, 16);
    assert_string_equal(d.response, "UNAUTHENTICATED");
    assert_string_equal(d.reason, "credential not found");

    hdrs good = {{"Authorization"}, {"Bearer good-key"}};
    assert_int_equal(decide(a, "/v1/completions", "", &good, &d, 1), 1);
    assert_int_equal(d.status, 200);
    assert_string_equal(d.identity, "svc-a");
    hdrs lower = {{"authorization"}, {"bEaReR   good-key  "}};
    assert_int_equal(decide(a, "/v1/completions", "", &lower, &d, 1), 1);

    hdrs bad = {{"Authorization"}, {"Bearer wrong"}};
    assert_int_equal(decide(a, "/v1/completions", "", &bad, &d, 1), 0);
    assert_int_equal(d.status, 401);
    assert_string_equal(d.reason, "the API Key provided is invalid");

    hdrs basic = {{"Authorization"}, {"Basic Z29vZC1rZXk="}};
    assert_int_equal(decide(a, "/v1/completions", "", &basic, &d, 1), 0);
    assert_string_equal(d.reason, "credential not found");
    hdrs empty = {{"Authorization"}, {"Bearer "}};
    assert_int_equal(decide(a, "/v1/completions", "", &empty, &d, 1), 0);
    assert_string_equal(d.reason, "credential not found");

    /* Model not allowed for this identity: 403. */
    hdrs other = {{"Authorization"}, {"Bearer other-key"}};
    assert_int_equal(decide(a, "/v1/completions", "", &other, &d, 1), 0);
    assert_int_equal(d.status, 403);
    assert_int_equal(d.code, 7);
    assert_string_equal(d.reason, "Unauthorized");

    /* Custom header and query parameter. */
    hdrs custom = {{"x-api-key"}, {"good-key"}};
    assert_int_equal(decide(a, "/v1/models", "", &custom, &d, 1), 1);
    assert_int_equal(decide(a, "/v1/models", "a=1&key=good%2Dkey", &none, &d, 1), 1);
    assert_int_equal(decide(a, "/v1/models", "key=good%2", &none, &d, 1), 0);
    assert_string_equal(d.reason, "the API Key provided is invalid");
    assert_int_equal(decide(a, "/v1/models", "keyx=good-key", &none, &d, 1), 0);
    assert_string_equal(d.reason, "credential not found");

    /* Public paths: exact defaults, prefix rule, no traversal through them. */
    assert_int_equal(decide(a, "/health", "", &none, &d, 1), 1);
    assert_true(d.is_public);
    assert_int_equal(decide(a, "/v2/health/ready", "", &none, &d, 1), 1);
    assert_int_equal(decide(a, "/health/", "", &none, &d, 1), 0);
    assert_int_equal(decide(a, "/healthz", "", &none, &d, 1), 0);
    assert_int_equal(decide(a, "/docs/index.html", "", &none, &d, 1), 1);
    assert_int_equal(decide(a, "/docs/../v1/completions", "", &none, &d, 1), 0);
    assert_int_equal(decide(a, "/docs/%2e%2e/v1/completions", "", &none, &d, 1), 0);

    /* Oversized credential: rejected unread. */
    char *huge = malloc(AUTH_MAX_CREDENTIAL_BYTES + 20);
    strcpy(huge, "Bearer ");
    memset(huge + 7, 'A', AUTH_MAX_CREDENTIAL_BYTES + 5);
    huge[AUTH_MAX_CREDENTIAL_BYTES + 12] = '\0';
    hdrs big = {{"Authorization"}, {huge}};
    assert_int_equal(decide(a, "/v1/completions", "", &big, &d, 1), 0);
    assert_int_equal(d.status, 401);
    free(huge);

    /* Denial bodies. */
    char body[512];
    decide(a, "/v1/completions", "", &none, &d, 1);
    size_t n = auth_deny_body_text(a, &d, body, sizeof body);
    assert_true(n > 0);
    assert_string_equal(body, "{\"error\":{\"message\":\"credential not found\",\"type\":\"invalid_request_error\","
                              "\"param\":null,\"code\":\"invalid_api_key\"}}");

    /* Rotation via reload: new key works, old fails. */
    write_file(dir, "token", "rotated-key");
    assert_int_equal(auth_reload(a), 0);
    assert_int_equal(decide(a, "/v1/completions", "", &good, &d, 1), 0);
    hdrs rot = {{"Authorization"}, {"Bearer rotated-key"}};
    assert_int_equal(decide(a, "/v1/completions", "", &rot, &d, 1), 1);
    /* A vanished Secret revokes its key; the other keeps working. */
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(auth_reload(a), 0);
    assert_int_equal(decide(a, "/v1/completions", "", &rot, &d, 1), 0);
    assert_int_equal(decide(a, "/v1/completions", "", &other, &d, 1), 0);
    assert_int_equal(d.status, 403);
    auth_free(a);
}

static void test_policy_ratelimit_and_env(void **state)
{
    (void)state;
    char err[256];
    setenv("WARD_API_KEY", "env-key-value\n", 1);
    auth_params p;
    auth_default_params(&p);
    p.default_rpm = 2;
    p.deny_body = AUTH_DENY_BODY_EMPTY;
    auth *a = auth_new(&p, err, sizeof err);
    assert_non_null(a);
    assert_null(getenv("WARD_API_KEY")); /* taken and wiped */
    assert_true(auth_has_sources(a));
    hdrs h = {{"Authorization"}, {"Bearer env-key-value"}};
    auth_decision d;
    assert_int_equal(decide(a, "/v1/models", "", &h, &d, 1000), 1);
    assert_string_equal(d.identity, "env");
    assert_int_equal(decide(a, "/v1/models", "", &h, &d, 1000), 1);
    assert_int_equal(decide(a, "/v1/models", "", &h, &d, 1000), 0);
    assert_int_equal(d.status, 429);
    assert_int_equal(d.code, 8);
    assert_string_equal(d.response, "RESOURCE_EXHAUSTED");
    assert_int_equal(d.retry_after_s, 30);
    char body[64] = "x";
    assert_int_equal(auth_deny_body_text(a, &d, body, sizeof body), 0);
    assert_string_equal(body, "");
    auth_free(a);

    /* Invalid params are refused with a message. */
    auth_default_params(&p);
    p.realm = "bad\"realm";
    assert_null(auth_new(&p, err, sizeof err));
    auth_default_params(&p);
    p.header_name = "bad header";
    assert_null(auth_new(&p, err, sizeof err));
}

static void test_metrics_render(void **state)
{
    (void)state;
    char buf[4096];
    size_t n = auth_metrics_render(NULL, buf, sizeof buf);
    assert_true(n > 0 && n < sizeof buf);
    assert_non_null(strstr(buf, "# TYPE ward:auth_decisions_total counter\n"));
    assert_non_null(strstr(buf, "ward:auth_decisions_total{response=\"UNAUTHENTICATED\"} "));
    assert_non_null(strstr(buf, "ward:auth_duration_seconds_bucket{le=\"+Inf\"} "));
    assert_true(auth_metrics_render(NULL, buf, 10) == n); /* reports the size needed */
}

int main(void)
{
    log_set_level(LOG_ERROR); /* keep test output quiet; warnings are asserted via return codes */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_generate),
        cmocka_unit_test(test_hmac_known_vector),
        cmocka_unit_test(test_keyset_lookup),
        cmocka_unit_test(test_parse_models),
        cmocka_unit_test(test_secret_plain_dir),
        cmocka_unit_test(test_secret_bad_files),
        cmocka_unit_test(test_secret_kubelet_layout),
        cmocka_unit_test(test_store_round_trip),
        cmocka_unit_test(test_store_corrupt),
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_ratelimit),
        cmocka_unit_test(test_policy),
        cmocka_unit_test(test_policy_ratelimit_and_env),
        cmocka_unit_test(test_metrics_render),
    };
    return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
