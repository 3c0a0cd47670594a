/* http_tls: OpenSSL 3 server contexts for http_server (TLS 1.2+), with the
 * certificate and key re-read when their files change.
 *
 * One http_tls per server, shared by every loop (the context swap is guarded by
 * a mutex). Each connection gets an SSL object bound to a non-blocking socket;
 * the read/write/handshake wrappers map OpenSSL's results onto the codes below
 * so that the event loop can wait for the right readiness. */
#ifndef WARD_HTTP_TLS_H
#define WARD_HTTP_TLS_H

#include <stddef.h>
#include <sys/types.h>

#include <openssl/ssl.h>

/* How often, at most, the certificate files are checked for changes (on accept). */
#define HTTP_TLS_RELOAD_CHECK_MS 1000

#define HTTP_TLS_OK 0
#define HTTP_TLS_AGAIN 1        /* wait until the socket is readable */
#define HTTP_TLS_AGAIN_WRITE 2  /* wait until the socket is writable */
#define HTTP_TLS_EOF 3          /* orderly close by the peer */
#define HTTP_TLS_ERROR (-1)

typedef struct http_tls http_tls;

/* Loads cert (PEM chain) and key (PEM). NULL with a message in err on failure. */
http_tls *http_tls_new(const char *cert_path, const char *key_path, char *err, size_t errlen);
void http_tls_free(http_tls *t);

/* New server-side SSL on fd, using the newest context (reloading the files if
 * they changed, checked at most every HTTP_TLS_RELOAD_CHECK_MS). Thread-safe.
 * NULL on failure. Free with http_tls_conn_free (does not close fd). */
SSL *http_tls_conn_new(http_tls *t, int fd);
void http_tls_conn_free(SSL *ssl);

int http_tls_handshake(SSL *ssl);
/* Reads/writes at most n bytes; *done gets the count on HTTP_TLS_OK. */
int http_tls_read(SSL *ssl, void *buf, size_t n, ssize_t *done);
int http_tls_write(SSL *ssl, const void *buf, size_t n, ssize_t *done);
/* True if decrypted bytes are buffered inside OpenSSL (epoll cannot see them). */
int http_tls_pending(SSL *ssl);

/* Number of successful reloads so far (for tests and logs). */
unsigned long http_tls_reloads(const http_tls *t);

#endif
