/* auth_secret: see auth_secret.h. */
#include "auth/auth_secret.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *const auth_secret_default_key_files[2] = {"api_key", "token"};

/* Reads a whole regular file relative to base into buf (cap bytes + NUL).
 * Returns length, -2 if absent, -1 on other errors (errno set). */
static long read_small(int base, const char *name, char *buf, size_t cap)
{
    int fd = openat(base, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return errno == ENOENT ? -2 : -1;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        errno = EINVAL;
        return -1;
    }
    if ((unsigned long long)st.st_size > cap) {
        close(fd);
        errno = EFBIG;
        return -1;
    }
    size_t n = 0;
    while (n < cap) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    /* The file grew past the cap while we read: refuse rather than truncate. */
    char extra;
    if (n == cap && read(fd, &extra, 1) == 1) {
        close(fd);
        errno = EFBIG;
        return -1;
    }
    close(fd);
    buf[n] = '\0';
    return (long)n;
}

long auth_key_normalize(char *key, size_t len, char *err, size_t errlen)
{
    while (len > 0 && (key[len - 1] == '\n' || key[len - 1] == '\r' || key[len - 1] == ' ' ||
                       key[len - 1] == '\t'))
        key[--len] = '\0';
    if (len == 0) {
        snprintf(err, errlen, "empty");
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c <= 0x20 || c == 0x7f) {
            snprintf(err, errlen, "contains whitespace or control characters");
            return -1;
        }
    }
    return (long)len;
}

static int read_once(int dirfd, const char *dir, const char *const *key_files, size_t nk,
                     auth_secret *out, char *err, size_t errlen)
{
    long n = -2;
    const char *used = NULL;
    for (size_t i = 0; i < nk && n == -2; i++) {
        n = read_small(dirfd, key_files[i], out->key, AUTH_MAX_KEY_BYTES);
        used = key_files[i];
    }
    if (n == -2) {
        snprintf(err, errlen, "%s: no key entry (looked for %s%s%s)", dir, key_files[0],
                 nk > 1 ? " and others" : "", "");
        errno = ENOENT;
        return -1;
    }
    if (n < 0) {
        int e = errno;
        snprintf(err, errlen, "%s/%s: %s", dir, used,
                 e == EFBIG ? "too large for a key" : strerror(e));
        errno = e == ENOENT ? EAGAIN : e;
        return -1;
    }
    char why[96];
    long kl = auth_key_normalize(out->key, (size_t)n, why, sizeof why);
    if (kl < 0) {
        snprintf(err, errlen, "%s/%s: key %s", dir, used, why);
        errno = EINVAL;
        return -1;
    }
    out->key_len = (size_t)kl;

    char namebuf[AUTH_MAX_NAME_BYTES + 2];
    long nl = read_small(dirfd, "name", namebuf, AUTH_MAX_NAME_BYTES + 1);
    if (nl >= 0) {
        while (nl > 0 && (namebuf[nl - 1] == '\n' || namebuf[nl - 1] == '\r' || namebuf[nl - 1] == ' '))
            namebuf[--nl] = '\0';
        if (nl == 0 || nl > AUTH_MAX_NAME_BYTES) {
            snprintf(err, errlen, "%s/name: empty or longer than %d bytes", dir, AUTH_MAX_NAME_BYTES);
            errno = EINVAL;
            return -1;
        }
        memcpy(out->name, namebuf, (size_t)nl + 1);
    } else if (nl == -1) {
        snprintf(err, errlen, "%s/name: %s", dir, errno == EFBIG ? "too large" : strerror(errno));
        return -1;
    }

    long ml = read_small(dirfd, "models", out->models_buf, AUTH_SECRET_MAX_FILE_BYTES);
    if (ml >= 0) {
        int nm = auth_parse_models(out->models_buf, out->models, why, sizeof why);
        if (nm < 0) {
            snprintf(err, errlen, "%s/models: %s", dir, why);
            errno = EINVAL;
            return -1;
        }
        out->n_models = nm;
    } else if (ml == -1) {
        snprintf(err, errlen, "%s/models: %s", dir, errno == EFBIG ? "too large" : strerror(errno));
        return -1;
    }
    return 0;
}

int auth_secret_read(const char *dir, const char *const *key_files, size_t n_key_files,
                     auth_secret *out, char *err, size_t errlen)
{
    if (!key_files || n_key_files == 0) {
        key_files = auth_secret_default_key_files;
        n_key_files = 2;
    }
    memset(out->name, 0, sizeof out->name);
    out->key_len = 0;
    out->n_models = -1;
    const char *base = strrchr(dir, '/');
    base = base && base[1] ? base + 1 : dir;
    snprintf(out->name, sizeof out->name, "%s", base);

    for (int attempt = 0; attempt < AUTH_SECRET_RETRIES; attempt++) {
        int top = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (top < 0) {
            snprintf(err, errlen, "%s: %s", dir, strerror(errno));
            return -1;
        }
        /* Resolve ..data once so every entry comes from the same version. */
        int data = openat(top, "..data", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int use = data >= 0 ? data : top;
        int rc = read_once(use, dir, key_files, n_key_files, out, err, errlen);
        int e = errno;
        if (data >= 0)
            close(data);
        close(top);
        if (rc == 0)
            return 0;
        auth_secret_clear(out);
        /* ENOENT/EAGAIN inside an old ..data target: the kubelet removed it
         * while we read; the next open sees the new one. */
        if (!(data >= 0 && (e == EAGAIN || e == ENOENT)))
            return -1;
    }
    return -1;
}

void auth_secret_clear(auth_secret *s)
{
    auth_wipe(s->key, sizeof s->key);
    s->key_len = 0;
}

void auth_secret_fingerprint(const char *dir, const char *const *key_files, size_t n_key_files,
                             char *out, size_t outlen)
{
    if (!key_files || n_key_files == 0) {
        key_files = auth_secret_default_key_files;
        n_key_files = 2;
    }
    struct stat st;
    if (stat(dir, &st) != 0) {
        snprintf(out, outlen, "absent");
        return;
    }
    size_t off = 0;
    char path[PATH_MAX];
    char target[256] = "";
    snprintf(path, sizeof path, "%s/..data", dir);
    ssize_t tl = readlink(path, target, sizeof target - 1);
    target[tl > 0 ? tl : 0] = '\0';
    int w = snprintf(out, outlen, "%llu|%s", (unsigned long long)st.st_ino, target);
    off = w > 0 && (size_t)w < outlen ? (size_t)w : outlen - 1;
    const char *extra[] = {"name", "models"};
    for (size_t i = 0; i < n_key_files + 2 && off + 1 < outlen; i++) {
        const char *f = i < n_key_files ? key_files[i] : extra[i - n_key_files];
        snprintf(path, sizeof path, "%s/%s", dir, f);
        struct stat fs;
        if (stat(path, &fs) != 0)
            w = snprintf(out + off, outlen - off, "|-");
        else
            w = snprintf(out + off, outlen - off, "|%llu:%lld:%lld.%09ld:%o",
                         (unsigned long long)fs.st_ino, (long long)fs.st_size,
                         (long long)fs.st_mtim.tv_sec, fs.st_mtim.tv_nsec, (unsigned)fs.st_mode);
        if (w < 0)
            break;
        off += (size_t)w;
        if (off >= outlen) {
            off = outlen - 1;
            break;
        }
    }
}
