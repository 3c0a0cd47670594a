/* http_tls: see http_tls.h. */
#include "server/http_tls.h"

#include "util/clock.h"
#include "util/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>

/* TLS 1.2 suites: forward-secret AEADs only (TLS 1.3 suites are all modern). */
#define HTTP_TLS12_CIPHERS                                                                                     \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"               \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

struct http_tls {
    pthread_mutex_t mu;
    SSL_CTX *ctx;
    char *cert, *key;
    struct timespec cert_mtime, key_mtime;
    uint64_t last_check_ms;
    atomic_ulong reloads;
};

static void tls_err(char *err, size_t errlen, const char *what, const char *path)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "";
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    if (err && errlen)
        snprintf(err, errlen, "%s '%s'%s%s", what, path, buf[0] ? ": " : "", buf);
}

static SSL_CTX *make_ctx(const char *cert, const char *key, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        tls_err(err, errlen, "cannot create TLS context for", cert);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (SSL_CTX_set_cipher_list(ctx, HTTP_TLS12_CIPHERS) != 1) {
        tls_err(err, errlen, "cannot set TLS ciphers for", cert);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        tls_err(err, errlen, "cannot load TLS certificate", cert);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        /* the path is named, never the key material */
        tls_err(err, errlen, "cannot load TLS key", key);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        tls_err(err, errlen, "TLS key does not match certificate", cert);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static int file_mtime(const char *path, struct timespec *ts)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return -1;
    *ts = st.st_mtim;
    return 0;
}

static int ts_eq(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

http_tls *http_tls_new(const char *cert_path, const char *key_path, char *err, size_t errlen)
{
    http_tls *t = calloc(1, sizeof *t);
    if (!t) {
        if (err && errlen)
            snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&t->mu, NULL);
    atomic_init(&t->reloads, 0);
    t->cert = strdup(cert_path);
    t->key = strdup(key_path);
    if (!t->cert || !t->key) {
        if (err && errlen)
            snprintf(err, errlen, "out of memory");
        http_tls_free(t);
        return NULL;
    }
    file_mtime(t->cert, &t->cert_mtime);
    file_mtime(t->key, &t->key_mtime);
    t->ctx = make_ctx(t->cert, t->key, err, errlen);
    if (!t->ctx) {
        http_tls_free(t);
        return NULL;
    }
    t->last_check_ms = clock_mono_ms();
    return t;
}

void http_tls_free(http_tls *t)
{
    if (!t)
        return;
    SSL_CTX_free(t->ctx);
    free(t->cert);
    free(t->key);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

unsigned long http_tls_reloads(const http_tls *t) { return atomic_load(&t->reloads); }

/* Called with t->mu held. A failed reload keeps serving the old pair: a
 * half-written rotation must not take the server down. */
static void maybe_reload(http_tls *t)
{
    uint64_t now = clock_mono_ms();
    if (now - t->last_check_ms < HTTP_TLS_RELOAD_CHECK_MS)
        return;
    t->last_check_ms = now;
    struct timespec cm, km;
    if (file_mtime(t->cert, &cm) != 0 || file_mtime(t->key, &km) != 0)
        return;
    if (ts_eq(&cm, &t->cert_mtime) && ts_eq(&km, &t->key_mtime))
        return;
    char err[512];
    SSL_CTX *nc = make_ctx(t->cert, t->key, err, sizeof err);
    if (!nc) {
        log_pack(LOG_WARN, "ward.tls", "certificate reload failed; keeping the previous one", "{s:s}", "error",
                 err);
        return; /* mtimes not recorded: retried on the next check */
    }
    SSL_CTX_free(t->ctx); /* live connections hold their own reference */
    t->ctx = nc;
    t->cert_mtime = cm;
    t->key_mtime = km;
    atomic_fetch_add(&t->reloads, 1);
    log_pack(LOG_INFO, "ward.tls", "certificate reloaded", "{s:s}", "cert", t->cert);
}

SSL *http_tls_conn_new(http_tls *t, int fd)
{
    pthread_mutex_lock(&t->mu);
    maybe_reload(t);
    SSL *ssl = SSL_new(t->ctx);
    pthread_mutex_unlock(&t->mu);
    if (!ssl)
        return NULL;
    if (SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_accept_state(ssl);
    return ssl;
}

void http_tls_conn_free(SSL *ssl)
{
    if (!ssl)
        return;
    /* best effort close_notify; the socket is non-blocking so this never waits */
    if (SSL_is_init_finished(ssl))
        SSL_shutdown(ssl);
    SSL_free(ssl);
    ERR_clear_error();
}

static int map(SSL *ssl, int r)
{
    int e = SSL_get_error(ssl, r);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        return HTTP_TLS_AGAIN;
    case SSL_ERROR_WANT_WRITE:
        return HTTP_TLS_AGAIN_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        return HTTP_TLS_EOF;
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return HTTP_TLS_AGAIN;
        return HTTP_TLS_ERROR;
    default:
        ERR_clear_error();
        return HTTP_TLS_ERROR;
    }
}

int http_tls_handshake(SSL *ssl)
{
    ERR_clear_error();
    int r = SSL_do_handshake(ssl);
    return r == 1 ? HTTP_TLS_OK : map(ssl, r);
}

int http_tls_read(SSL *ssl, void *buf, size_t n, ssize_t *done)
{
    size_t got = 0;
    ERR_clear_error();
    int r = SSL_read_ex(ssl, buf, n, &got);
    if (r == 1) {
        *done = (ssize_t)got;
        return HTTP_TLS_OK;
    }
    *done = 0;
    return map(ssl, r);
}

int http_tls_write(SSL *ssl, const void *buf, size_t n, ssize_t *done)
{
    size_t put = 0;
    ERR_clear_error();
    int r = SSL_write_ex(ssl, buf, n, &put);
    if (r == 1) {
        *done = (ssize_t)put;
        return HTTP_TLS_OK;
    }
    *done = 0;
    int m = map(ssl, r);
    return m == HTTP_TLS_AGAIN_WRITE ? HTTP_TLS_AGAIN : m;
}

int http_tls_pending(SSL *ssl) { return SSL_pending(ssl) > 0; }
