/* auth_fetch: a small, strict HTTP/1.1 GET client for fetching a JWKS from
 * an issuer (http:// or https:// with OpenSSL 3).
 *
 * One request per call, `Connection: close`, no redirects, no compression,
 * no proxies. TLS verifies the peer certificate (SSL_VERIFY_PEER) and the
 * host name or IP address against it, with CAs from opts->ca_file or the
 * system's default paths. An optional bearer token (a Kubernetes
 * ServiceAccount token file) is sent as `Authorization: Bearer`; it is read
 * per call (the kubelet rotates it) and never appears in err.
 *
 * Everything the peer sends is untrusted: the response is parsed strictly and
 * bounded (AUTH_FETCH_MAX_HEADER, AUTH_FETCH_MAX_BODY), and the whole request
 * (connect, TLS handshake, send, receive) is bounded by the timeout. Name
 * resolution (getaddrinfo) is blocking and outside that bound; in-cluster
 * resolvers answer or fail fast.
 *
 * Error messages are one line and never contain the token or response bytes
 * (only the status code of a non-200 answer).
 * Thread-safe: no shared state (OpenSSL 3 initialises itself).
 */
#ifndef WARD_AUTH_FETCH_H
#define WARD_AUTH_FETCH_H

#include <stddef.h>

#define AUTH_FETCH_MAX_BODY (1024 * 1024)   /* a JWKS is a few KiB; anything larger is not one */
#define AUTH_FETCH_MAX_HEADER (16 * 1024)   /* status line + headers; real issuers send < 2 KiB */
#define AUTH_FETCH_TIMEOUT_MS 5000          /* whole request; reloads must not stall for long */
#define AUTH_FETCH_MAX_URL 2048             /* longer URLs are not issuer endpoints */
#define AUTH_FETCH_MAX_HOST 253             /* DNS name limit (RFC 1035) */
#define AUTH_FETCH_MAX_TOKEN 16384          /* bearer token file; ServiceAccount tokens are ~1-2 KiB */
#define AUTH_FETCH_MAX_CHUNK_LINE 1024      /* one chunk-size line, extensions included */
/* Raw bytes accepted on the wire: headers, body and chunk framing overhead. */
#define AUTH_FETCH_MAX_RAW (AUTH_FETCH_MAX_HEADER + AUTH_FETCH_MAX_BODY + 64 * 1024)

typedef struct auth_fetch_opts {
    const char *ca_file;      /* PEM CA bundle for https; NULL = system default paths */
    const char *bearer_file;  /* token file sent as Authorization: Bearer; NULL = none */
    int timeout_ms;           /* whole request; <= 0 = AUTH_FETCH_TIMEOUT_MS */
} auth_fetch_opts;

void auth_fetch_default_opts(auth_fetch_opts *o);

/* A parsed URL. path includes the query string. */
typedef struct auth_fetch_url_parts {
    int tls;                            /* 1 for https */
    int is_ip6;                         /* host was a [bracketed] IPv6 literal */
    int port;                           /* explicit or the scheme's default */
    int default_port;                   /* port was not given */
    char host[AUTH_FETCH_MAX_HOST + 1]; /* without brackets */
    char path[AUTH_FETCH_MAX_URL + 1];  /* starts with '/' */
} auth_fetch_url_parts;

/* Parses url strictly: http or https (lower case), host name or IPv4 or
 * [IPv6], optional port 1-65535, optional path (default "/"). Rejects
 * userinfo, fragments, whitespace, control and non-ASCII bytes.
 * 0 or -1 with a message (which does not echo the URL). */
int auth_fetch_parse_url(const char *url, auth_fetch_url_parts *u, char *err, size_t errlen);

/* Copies url without its query string and fragment into out (for logs). */
void auth_fetch_redact_url(const char *url, char *out, size_t outlen);

/* Results of auth_fetch_parse_response. */
#define AUTH_FETCH_DONE 0
#define AUTH_FETCH_ERROR (-1)
#define AUTH_FETCH_NEED_MORE 1

/* Parses the raw response bytes received so far. eof: the peer closed the
 * connection (no more bytes will come). On AUTH_FETCH_DONE *body is a new
 * NUL-terminated buffer (free() it) of *len bytes; NEED_MORE means call
 * again with more bytes; ERROR sets err. Status 200 is required. */
int auth_fetch_parse_response(const char *buf, size_t n, int eof, char **body, size_t *len, char *err,
                              size_t errlen);

/* GETs url. On success returns 0 and *body (NUL-terminated, caller frees)
 * and *len; else -1 and a one-line message. o may be NULL (defaults). */
int auth_fetch_url(const char *url, const auth_fetch_opts *o, char **body, size_t *len, char *err, size_t errlen);

#endif
