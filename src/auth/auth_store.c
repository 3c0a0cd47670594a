/* auth_store: see auth_store.h. */
#include "auth/auth_store.h"

#include "util/rand.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

void auth_store_default_path(char *out, size_t outlen)
{
    const char *f = getenv("WARD_KEYS_FILE");
    if (f && *f) {
        snprintf(out, outlen, "%s", f);
        return;
    }
    const char *home = getenv("WARD_HOME");
    snprintf(out, outlen, "%s/%s", home && *home ? home : AUTH_STORE_DEFAULT_DIR, AUTH_STORE_FILE_NAME);
}

static int name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > AUTH_MAX_NAME_BYTES)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f || c == '"' || c == '\\')
            return 0;
    }
    return 1;
}

int auth_store_validate(json_t *doc, char *err, size_t errlen)
{
    if (!json_is_object(doc)) {
        snprintf(err, errlen, "not a JSON object");
        return -1;
    }
    json_t *v = json_object_get(doc, "version");
    if (!json_is_integer(v) || json_integer_value(v) != AUTH_STORE_VERSION) {
        snprintf(err, errlen, "unsupported or missing \"version\" (want %d)", AUTH_STORE_VERSION);
        return -1;
    }
    uint8_t salt[AUTH_HMAC_KEY_LEN];
    if (auth_unhex(json_string_value(json_object_get(doc, "salt")), salt, sizeof salt) != 0) {
        snprintf(err, errlen, "\"salt\" must be %d hex digits", 2 * AUTH_HMAC_KEY_LEN);
        return -1;
    }
    auth_wipe(salt, sizeof salt);
    json_t *keys = json_object_get(doc, "keys");
    if (!json_is_array(keys) || json_array_size(keys) > AUTH_MAX_KEYS) {
        snprintf(err, errlen, "\"keys\" must be an array of at most %d entries", AUTH_MAX_KEYS);
        return -1;
    }
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k) {
        uint8_t d[AUTH_DIGEST_LEN];
        const char *name = json_string_value(json_object_get(k, "name"));
        if (!json_is_object(k) || !name || !name_ok(name)) {
            snprintf(err, errlen, "keys[%zu]: missing or invalid \"name\"", i);
            return -1;
        }
        if (auth_unhex(json_string_value(json_object_get(k, "hash")), d, sizeof d) != 0) {
            snprintf(err, errlen, "keys[%zu]: \"hash\" must be %d hex digits", i, 2 * AUTH_DIGEST_LEN);
            return -1;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(name, json_string_value(json_object_get(json_array_get(keys, j), "name"))) == 0) {
                snprintf(err, errlen, "keys[%zu]: duplicate name", i);
                return -1;
            }
        json_t *e = json_object_get(k, "expires");
        if (e && !json_is_null(e) && (!json_is_integer(e) || json_integer_value(e) < 0)) {
            snprintf(err, errlen, "keys[%zu]: \"expires\" must be a Unix time", i);
            return -1;
        }
        json_t *r = json_object_get(k, "rpm");
        if (r && !json_is_null(r) &&
            (!json_is_integer(r) || json_integer_value(r) < 0 || json_integer_value(r) > AUTH_STORE_MAX_RPM)) {
            snprintf(err, errlen, "keys[%zu]: \"rpm\" must be 0..%d", i, AUTH_STORE_MAX_RPM);
            return -1;
        }
        json_t *m = json_object_get(k, "models");
        if (m && !json_is_null(m)) {
            if (!json_is_array(m) || json_array_size(m) > AUTH_MAX_MODELS) {
                snprintf(err, errlen, "keys[%zu]: \"models\" must be an array of at most %d ids", i,
                         AUTH_MAX_MODELS);
                return -1;
            }
            size_t j;
            json_t *mm;
            json_array_foreach(m, j, mm) {
                const char *s = json_string_value(mm);
                if (!s || !*s || strlen(s) > AUTH_MAX_MODEL_BYTES) {
                    snprintf(err, errlen, "keys[%zu]: invalid model id", i);
                    return -1;
                }
            }
        }
    }
    return 0;
}

static json_t *new_store(char *err, size_t errlen)
{
    uint8_t salt[AUTH_HMAC_KEY_LEN];
    char hex[2 * AUTH_HMAC_KEY_LEN + 1];
    if (rand_bytes(salt, sizeof salt) != 0) {
        snprintf(err, errlen, "no randomness available");
        return NULL;
    }
    auth_hex(salt, sizeof salt, hex);
    auth_wipe(salt, sizeof salt);
    json_t *doc = json_pack("{s:i,s:s,s:[]}", "version", AUTH_STORE_VERSION, "salt", hex, "keys");
    auth_wipe(hex, sizeof hex);
    if (!doc)
        snprintf(err, errlen, "out of memory");
    return doc;
}

json_t *auth_store_load(const char *path, int create_if_missing, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT && create_if_missing)
            return new_store(err, errlen);
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > AUTH_STORE_MAX_BYTES) {
        close(fd);
        snprintf(err, errlen, "%s: not a regular file or larger than %d bytes", path, AUTH_STORE_MAX_BYTES);
        return NULL;
    }
    size_t cap = (size_t)st.st_size + 1, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        close(fd);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (;;) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n == cap)
            break; /* grew while reading: the parse will fail or see a prefix */
    }
    close(fd);
    json_error_t je;
    /* Parse errors report position only: jansson's text may quote content. */
    json_t *doc = json_loadb(buf, n, JSON_REJECT_DUPLICATES, &je);
    free(buf);
    if (!doc) {
        snprintf(err, errlen, "%s: invalid JSON at line %d column %d", path, je.line, je.column);
        return NULL;
    }
    char why[160];
    if (auth_store_validate(doc, why, sizeof why) != 0) {
        json_decref(doc);
        snprintf(err, errlen, "%s: %s", path, why);
        return NULL;
    }
    return doc;
}

static json_t *find_key(json_t *doc, const char *name, size_t *idx)
{
    size_t i;
    json_t *k;
    json_array_foreach(json_object_get(doc, "keys"), i, k) {
        if (strcmp(json_string_value(json_object_get(k, "name")), name) == 0) {
            if (idx)
                *idx = i;
            return k;
        }
    }
    return NULL;
}

/* Makes a key and its hash under the store's salt. */
static int make_key(json_t *doc, char key_out[AUTH_KEY_TEXT_MAX], char hash_hex[2 * AUTH_DIGEST_LEN + 1],
                    char *err, size_t errlen)
{
    uint8_t salt[AUTH_HMAC_KEY_LEN], d[AUTH_DIGEST_LEN];
    if (auth_unhex(json_string_value(json_object_get(doc, "salt")), salt, sizeof salt) != 0 ||
        auth_key_generate(key_out) != 0 || auth_hmac(salt, key_out, strlen(key_out), d) != 0) {
        auth_wipe(salt, sizeof salt);
        auth_wipe(key_out, AUTH_KEY_TEXT_MAX);
        snprintf(err, errlen, "could not generate a key");
        return -1;
    }
    auth_hex(d, sizeof d, hash_hex);
    auth_wipe(salt, sizeof salt);
    return 0;
}

int auth_store_create(json_t *doc, const char *name, const auth_store_opts *o, int64_t now,
                      char key_out[AUTH_KEY_TEXT_MAX], char *err, size_t errlen)
{
    if (!name_ok(name)) {
        snprintf(err, errlen, "invalid key name (1-%d printable characters, no spaces or quotes)",
                 AUTH_MAX_NAME_BYTES);
        return -1;
    }
    if (find_key(doc, name, NULL)) {
        snprintf(err, errlen, "a key named '%s' exists (revoke or rotate it)", name);
        return -1;
    }
    if (json_array_size(json_object_get(doc, "keys")) >= AUTH_MAX_KEYS) {
        snprintf(err, errlen, "the store is full (%d keys)", AUTH_MAX_KEYS);
        return -1;
    }
    char hash[2 * AUTH_DIGEST_LEN + 1];
    if (make_key(doc, key_out, hash, err, errlen) != 0)
        return -1;
    char id[9];
    memcpy(id, hash, 8);
    id[8] = '\0';
    json_t *k = json_pack("{s:s,s:s,s:s,s:I}", "name", name, "id", id, "hash", hash, "created", (json_int_t)now);
    if (k && o && o->expires)
        json_object_set_new(k, "expires", json_integer(o->expires));
    if (k && o && o->models) {
        json_t *m = json_array();
        for (size_t i = 0; m && i < o->n_models; i++)
            json_array_append_new(m, json_string(o->models[i]));
        json_object_set_new(k, "models", m);
    }
    if (k && o && o->rpm)
        json_object_set_new(k, "rpm", json_integer(o->rpm));
    if (!k || json_array_append_new(json_object_get(doc, "keys"), k) != 0) {
        auth_wipe(key_out, AUTH_KEY_TEXT_MAX);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    char why[160];
    if (auth_store_validate(doc, why, sizeof why) != 0) {
        size_t idx = 0;
        find_key(doc, name, &idx);
        json_array_remove(json_object_get(doc, "keys"), idx);
        auth_wipe(key_out, AUTH_KEY_TEXT_MAX);
        snprintf(err, errlen, "%s", why);
        return -1;
    }
    return 0;
}

int auth_store_revoke(json_t *doc, const char *name, char *err, size_t errlen)
{
    size_t idx;
    if (!find_key(doc, name, &idx)) {
        snprintf(err, errlen, "no key named '%s'", name);
        return -1;
    }
    json_array_remove(json_object_get(doc, "keys"), idx);
    return 0;
}

int auth_store_rotate(json_t *doc, const char *name, int64_t now,
                      char key_out[AUTH_KEY_TEXT_MAX], char *err, size_t errlen)
{
    json_t *k = find_key(doc, name, NULL);
    if (!k) {
        snprintf(err, errlen, "no key named '%s'", name);
        return -1;
    }
    char hash[2 * AUTH_DIGEST_LEN + 1];
    if (make_key(doc, key_out, hash, err, errlen) != 0)
        return -1;
    char id[9];
    memcpy(id, hash, 8);
    id[8] = '\0';
    json_object_set_new(k, "hash", json_string(hash));
    json_object_set_new(k, "id", json_string(id));
    json_object_set_new(k, "created", json_integer(now));
    return 0;
}

static int parent_dir(const char *path, char *out, size_t outlen)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(out, outlen, ".");
        return 0;
    }
    size_t n = (size_t)(slash - path);
    if (n == 0)
        n = 1; /* "/keys.json" */
    if (n >= outlen)
        return -1;
    memcpy(out, path, n);
    out[n] = '\0';
    return 0;
}

int auth_store_save(json_t *doc, const char *path, char *err, size_t errlen)
{
    char tmp[PATH_MAX], dir[PATH_MAX];
    if (parent_dir(path, dir, sizeof dir) != 0 ||
        snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof tmp) {
        snprintf(err, errlen, "%s: path too long", path);
        return -1;
    }
    char *s = json_dumps(doc, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int fd = mkstemp(tmp); /* mode 0600 */
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot create a temporary file: %s", dir, strerror(errno));
        free(s);
        return -1;
    }
    size_t n = strlen(s), off = 0;
    int ok = fchmod(fd, 0600) == 0;
    while (ok && off < n) {
        ssize_t w = write(fd, s + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        ok = w > 0;
        if (ok)
            off += (size_t)w;
    }
    ok = ok && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    int e = errno;
    free(s);
    if (close(fd) != 0)
        ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        if (ok)
            e = errno;
        unlink(tmp);
        snprintf(err, errlen, "%s: cannot write: %s", path, strerror(e));
        return -1;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd); /* make the rename durable */
        close(dfd);
    }
    return 0;
}

int auth_store_lock(const char *path, char *err, size_t errlen)
{
    char dir[PATH_MAX], lock[PATH_MAX];
    if (parent_dir(path, dir, sizeof dir) != 0 ||
        snprintf(lock, sizeof lock, "%s.lock", path) >= (int)sizeof lock) {
        snprintf(err, errlen, "%s: path too long", path);
        return -1;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s: cannot create directory: %s", dir, strerror(errno));
        return -1;
    }
    int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", lock, strerror(errno));
        return -1;
    }
    while (flock(fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            snprintf(err, errlen, "%s: cannot lock: %s", lock, strerror(errno));
            close(fd);
            return -1;
        }
    }
    return fd;
}

void auth_store_unlock(int fd)
{
    if (fd >= 0)
        close(fd); /* releases the flock */
}

int auth_store_to_keyset(json_t *doc, auth_keyset *ks, int64_t now, char *err, size_t errlen)
{
    uint8_t salt[AUTH_HMAC_KEY_LEN];
    if (auth_unhex(json_string_value(json_object_get(doc, "salt")), salt, sizeof salt) != 0) {
        snprintf(err, errlen, "invalid salt");
        return -1;
    }
    int dom = auth_keyset_add_domain(ks, salt);
    auth_wipe(salt, sizeof salt);
    if (dom < 0) {
        snprintf(err, errlen, "too many key domains");
        return -1;
    }
    int added = 0;
    size_t i;
    json_t *k;
    json_array_foreach(json_object_get(doc, "keys"), i, k) {
        json_int_t exp = json_integer_value(json_object_get(k, "expires"));
        if (exp && exp <= now)
            continue;
        uint8_t d[AUTH_DIGEST_LEN];
        auth_unhex(json_string_value(json_object_get(k, "hash")), d, sizeof d);
        const char *models[AUTH_MAX_MODELS];
        json_t *m = json_object_get(k, "models");
        auth_identity id = {
            .name = json_string_value(json_object_get(k, "name")),
            .rpm = (int)json_integer_value(json_object_get(k, "rpm")),
            .expires = exp,
            .source = "store",
        };
        if (json_is_array(m)) {
            size_t j;
            json_t *mm;
            json_array_foreach(m, j, mm) models[j] = json_string_value(mm);
            id.models = models;
            id.n_models = json_array_size(m);
        }
        if (auth_keyset_add_digest(ks, dom, d, &id, err, errlen) < 0)
            return -1;
        added++;
    }
    return added;
}

int auth_parse_duration(const char *s, int64_t *out)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || v <= 0)
        return -1;
    int64_t mul;
    if (*end == '\0' || strcmp(end, "d") == 0)
        mul = 86400;
    else if (strcmp(end, "h") == 0)
        mul = 3600;
    else if (strcmp(end, "m") == 0)
        mul = 60;
    else if (strcmp(end, "s") == 0)
        mul = 1;
    else
        return -1;
    if (v > INT64_MAX / mul / 2) /* keep now + duration from overflowing */
        return -1;
    *out = v * mul;
    return 0;
}
