/* auth_fetch: see auth_fetch.h. */
#include "auth/auth_fetch.h"

#include "util/clock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

void auth_fetch_default_opts(auth_fetch_opts *o)
{
    memset(o, 0, sizeof *o);
    o->timeout_ms = AUTH_FETCH_TIMEOUT_MS;
}

/* ---- URL ---- */

static int is_host_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

int auth_fetch_parse_url(const char *url, auth_fetch_url_parts *u, char *err, size_t errlen)
{
    memset(u, 0, sizeof *u);
    if (!url) {
        snprintf(err, errlen, "URL missing");
        return -1;
    }
    size_t n = strlen(url);
    if (n > AUTH_FETCH_MAX_URL) {
        snprintf(err, errlen, "URL longer than %d bytes", AUTH_FETCH_MAX_URL);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c <= 0x20 || c >= 0x7f) {
            snprintf(err, errlen, "URL contains whitespace, a control or a non-ASCII byte");
            return -1;
        }
        if (c == '#') {
            snprintf(err, errlen, "URL must not have a fragment");
            return -1;
        }
    }
    const char *p;
    if (strncmp(url, "https://", 8) == 0) {
        u->tls = 1;
        p = url + 8;
    } else if (strncmp(url, "http://", 7) == 0) {
        p = url + 7;
    } else {
        snprintf(err, errlen, "URL scheme must be http:// or https://");
        return -1;
    }
    const char *auth_end = p + strcspn(p, "/?");
    if (memchr(p, '@', (size_t)(auth_end - p))) {
        snprintf(err, errlen, "URL must not contain user information");
        return -1;
    }
    const char *host_end;
    const char *after;
    if (*p == '[') {
        const char *close = memchr(p, ']', (size_t)(auth_end - p));
        if (!close) {
            snprintf(err, errlen, "URL has an unterminated [IPv6] host");
            return -1;
        }
        size_t hl = (size_t)(close - p - 1);
        if (hl == 0 || hl > AUTH_FETCH_MAX_HOST) {
            snprintf(err, errlen, "URL has an invalid [IPv6] host");
            return -1;
        }
        memcpy(u->host, p + 1, hl);
        u->host[hl] = 0;
        struct in6_addr a6;
        if (inet_pton(AF_INET6, u->host, &a6) != 1) {
            snprintf(err, errlen, "URL has an invalid [IPv6] host");
            return -1;
        }
        u->is_ip6 = 1;
        host_end = close + 1;
    } else {
        host_end = p;
        while (host_end < auth_end && *host_end != ':')
            host_end++;
        size_t hl = (size_t)(host_end - p);
        if (hl == 0) {
            snprintf(err, errlen, "URL has no host");
            return -1;
        }
        if (hl > AUTH_FETCH_MAX_HOST) {
            snprintf(err, errlen, "URL host longer than %d bytes", AUTH_FETCH_MAX_HOST);
            return -1;
        }
        for (size_t i = 0; i < hl; i++)
            if (!is_host_char((unsigned char)p[i])) {
                snprintf(err, errlen, "URL host has an invalid character");
                return -1;
            }
        int bad = p[0] == '.' || p[0] == '-';
        for (size_t i = 0; i + 1 < hl; i++)
            bad |= p[i] == '.' && p[i + 1] == '.';
        if (bad) {
            snprintf(err, errlen, "URL host is not a valid name");
            return -1;
        }
        memcpy(u->host, p, hl);
        u->host[hl] = 0;
    }
    after = host_end;
    if (after < auth_end && *after == ':') {
        const char *d = after + 1;
        if (d == auth_end || auth_end - d > 5) {
            snprintf(err, errlen, "URL port must be 1-65535");
            return -1;
        }
        long port = 0;
        for (; d < auth_end; d++) {
            if (*d < '0' || *d > '9') {
                snprintf(err, errlen, "URL port must be 1-65535");
                return -1;
            }
            port = port * 10 + (*d - '0');
        }
        if (port < 1 || port > 65535) {
            snprintf(err, errlen, "URL port must be 1-65535");
            return -1;
        }
        u->port = (int)port;
    } else if (after != auth_end) {
        snprintf(err, errlen, "URL has unexpected bytes after the host");
        return -1;
    } else {
        u->port = u->tls ? 443 : 80;
        u->default_port = 1;
    }
    if (*auth_end == 0)
        snprintf(u->path, sizeof u->path, "/");
    else if (*auth_end == '?')
        snprintf(u->path, sizeof u->path, "/%s", auth_end); /* fits: path <= url length */
    else
        snprintf(u->path, sizeof u->path, "%s", auth_end);
    return 0;
}

void auth_fetch_redact_url(const char *url, char *out, size_t outlen)
{
    if (!outlen)
        return;
    size_t n = strcspn(url, "?#");
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, url, n);
    out[n] = 0;
}

/* ---- response ---- */

static const char *find_crlfcrlf(const char *b, size_t n)
{
    for (size_t i = 0; i + 3 < n; i++)
        if (b[i] == '\r' && b[i + 1] == '\n' && b[i + 2] == '\r' && b[i + 3] == '\n')
            return b + i;
    return NULL;
}

static int is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("!#$%&'*+-.^_`|~", c);
}

typedef enum { BODY_CLOSE, BODY_LENGTH, BODY_CHUNKED } body_kind;

/* Trims optional whitespace around a header value [*v, *v + *vl). */
static void trim_ows(const char **v, size_t *vl)
{
    while (*vl && (**v == ' ' || **v == '\t')) {
        (*v)++;
        (*vl)--;
    }
    while (*vl && ((*v)[*vl - 1] == ' ' || (*v)[*vl - 1] == '\t'))
        (*vl)--;
}

static int parse_headers(const char *b, size_t hlen, body_kind *kind, size_t *clen, char *err, size_t errlen)
{
    /* Status line: HTTP/1.x SP 3DIGIT [SP reason] CRLF */
    if (hlen < 12 || memcmp(b, "HTTP/1.", 7) != 0 || (b[7] != '0' && b[7] != '1') || b[8] != ' ' ||
        b[9] < '0' || b[9] > '9' || b[10] < '0' || b[10] > '9' || b[11] < '0' || b[11] > '9' ||
        (hlen > 12 && b[12] != ' ' && b[12] != '\r')) {
        snprintf(err, errlen, "not an HTTP/1.x response");
        return -1;
    }
    int status = (b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0');
    if (status != 200) {
        snprintf(err, errlen, "HTTP status %d (want 200)", status);
        return -1;
    }
    const char *line = memchr(b, '\n', hlen);
    if (!line || line == b || line[-1] != '\r') {
        snprintf(err, errlen, "malformed status line");
        return -1;
    }
    line++;
    const char *end = b + hlen; /* points at the final CRLF CRLF's second CRLF */
    int have_len = 0, chunked = 0;
    size_t len_val = 0;
    while (line < end) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        if (!nl || nl == line || nl[-1] != '\r') {
            snprintf(err, errlen, "malformed header line");
            return -1;
        }
        const char *le = nl - 1; /* at '\r' */
        if (*line == ' ' || *line == '\t') {
            snprintf(err, errlen, "folded header lines are not accepted");
            return -1;
        }
        const char *colon = memchr(line, ':', (size_t)(le - line));
        if (!colon || colon == line) {
            snprintf(err, errlen, "malformed header line");
            return -1;
        }
        for (const char *c = line; c < colon; c++)
            if (!is_tchar((unsigned char)*c)) {
                snprintf(err, errlen, "invalid header name");
                return -1;
            }
        const char *v = colon + 1;
        size_t vl = (size_t)(le - v);
        for (size_t i = 0; i < vl; i++) {
            unsigned char c = (unsigned char)v[i];
            if ((c < 0x20 && c != '\t') || c == 0x7f) {
                snprintf(err, errlen, "invalid header value");
                return -1;
            }
        }
        trim_ows(&v, &vl);
        size_t nl_name = (size_t)(colon - line);
        if (nl_name == 14 && strncasecmp(line, "content-length", 14) == 0) {
            if (vl == 0 || vl > 10) {
                snprintf(err, errlen, "invalid Content-Length");
                return -1;
            }
            size_t x = 0;
            for (size_t i = 0; i < vl; i++) {
                if (v[i] < '0' || v[i] > '9') {
                    snprintf(err, errlen, "invalid Content-Length");
                    return -1;
                }
                x = x * 10 + (size_t)(v[i] - '0'); /* <= 10 digits: fits size_t on 64-bit; checked below */
            }
            if (have_len && x != len_val) {
                snprintf(err, errlen, "conflicting Content-Length headers");
                return -1;
            }
            have_len = 1;
            len_val = x;
        } else if (nl_name == 17 && strncasecmp(line, "transfer-encoding", 17) == 0) {
            if (vl != 7 || strncasecmp(v, "chunked", 7) != 0 || chunked) {
                snprintf(err, errlen, "unsupported Transfer-Encoding");
                return -1;
            }
            chunked = 1;
        } else if (nl_name == 16 && strncasecmp(line, "content-encoding", 16) == 0) {
            if (!(vl == 8 && strncasecmp(v, "identity", 8) == 0)) {
                snprintf(err, errlen, "unsupported Content-Encoding");
                return -1;
            }
        }
        line = nl + 1;
    }
    if (chunked && have_len) {
        snprintf(err, errlen, "both Content-Length and Transfer-Encoding");
        return -1;
    }
    if (have_len && len_val > AUTH_FETCH_MAX_BODY) {
        snprintf(err, errlen, "response body larger than %d bytes", AUTH_FETCH_MAX_BODY);
        return -1;
    }
    *kind = chunked ? BODY_CHUNKED : have_len ? BODY_LENGTH : BODY_CLOSE;
    *clen = len_val;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int dup_body(const char *src, size_t n, char **body, size_t *len, char *err, size_t errlen)
{
    char *b = malloc(n + 1); /* n <= AUTH_FETCH_MAX_BODY: no overflow */
    if (!b) {
        snprintf(err, errlen, "out of memory");
        return AUTH_FETCH_ERROR;
    }
    if (n)
        memcpy(b, src, n);
    b[n] = 0;
    *body = b;
    *len = n;
    return AUTH_FETCH_DONE;
}

/* Walks the chunked body in p[0..n). Two passes: the first (out == NULL)
 * validates and measures, the second copies. */
static int parse_chunked(const char *p, size_t n, int eof, char *out, size_t *total, char *err, size_t errlen)
{
    size_t pos = 0, sum = 0;
    for (;;) {
        /* chunk-size [; ext] CRLF */
        size_t ls = pos;
        while (pos < n && p[pos] != '\n') {
            if (pos - ls >= AUTH_FETCH_MAX_CHUNK_LINE) {
                snprintf(err, errlen, "chunk size line too long");
                return AUTH_FETCH_ERROR;
            }
            pos++;
        }
        if (pos >= n)
            goto more;
        if (pos == ls || p[pos - 1] != '\r') {
            snprintf(err, errlen, "malformed chunk size line");
            return AUTH_FETCH_ERROR;
        }
        size_t size = 0, i = ls;
        int digits = 0;
        for (; i < pos - 1 && hexval(p[i]) >= 0; i++) {
            if (++digits > 8) { /* 8 hex digits > AUTH_FETCH_MAX_BODY already */
                snprintf(err, errlen, "chunk size too large");
                return AUTH_FETCH_ERROR;
            }
            size = size * 16 + (size_t)hexval(p[i]);
        }
        if (!digits || (i < pos - 1 && p[i] != ';' && p[i] != ' ' && p[i] != '\t')) {
            snprintf(err, errlen, "malformed chunk size line");
            return AUTH_FETCH_ERROR;
        }
        for (; i < pos - 1; i++) {
            unsigned char c = (unsigned char)p[i];
            if ((c < 0x20 && c != '\t') || c == 0x7f) {
                snprintf(err, errlen, "malformed chunk extension");
                return AUTH_FETCH_ERROR;
            }
        }
        pos++;
        if (size == 0)
            break;
        if (size > AUTH_FETCH_MAX_BODY - sum) {
            snprintf(err, errlen, "response body larger than %d bytes", AUTH_FETCH_MAX_BODY);
            return AUTH_FETCH_ERROR;
        }
        if (n - pos < size + 2)
            goto more;
        if (p[pos + size] != '\r' || p[pos + size + 1] != '\n') {
            snprintf(err, errlen, "chunk data not followed by CRLF");
            return AUTH_FETCH_ERROR;
        }
        if (out)
            memcpy(out + sum, p + pos, size);
        sum += size;
        pos += size + 2;
    }
    /* trailer fields, then an empty line; bounded like the headers */
    for (;;) {
        size_t ls = pos;
        while (pos < n && p[pos] != '\n')
            pos++;
        if (pos >= n) {
            if (n - ls > AUTH_FETCH_MAX_HEADER) {
                snprintf(err, errlen, "response trailers too large");
                return AUTH_FETCH_ERROR;
            }
            goto more;
        }
        if (pos == ls || p[pos - 1] != '\r') {
            snprintf(err, errlen, "malformed chunked trailer");
            return AUTH_FETCH_ERROR;
        }
        if (pos - ls == 1)
            break;
        pos++;
    }
    *total = sum;
    return AUTH_FETCH_DONE;
more:
    if (eof) {
        snprintf(err, errlen, "connection closed before the end of the chunked body");
        return AUTH_FETCH_ERROR;
    }
    return AUTH_FETCH_NEED_MORE;
}

int auth_fetch_parse_response(const char *buf, size_t n, int eof, char **body, size_t *len, char *err,
                              size_t errlen)
{
    *body = NULL;
    *len = 0;
    size_t scan = n < AUTH_FETCH_MAX_HEADER ? n : AUTH_FETCH_MAX_HEADER;
    const char *hend = find_crlfcrlf(buf, scan);
    if (!hend) {
        if (n >= AUTH_FETCH_MAX_HEADER) {
            snprintf(err, errlen, "response headers larger than %d bytes", AUTH_FETCH_MAX_HEADER);
            return AUTH_FETCH_ERROR;
        }
        if (eof) {
            snprintf(err, errlen, n ? "connection closed inside the response headers" : "empty response");
            return AUTH_FETCH_ERROR;
        }
        return AUTH_FETCH_NEED_MORE;
    }
    body_kind kind;
    size_t clen;
    if (parse_headers(buf, (size_t)(hend - buf) + 2, &kind, &clen, err, errlen) != 0)
        return AUTH_FETCH_ERROR;
    const char *b = hend + 4;
    size_t avail = n - (size_t)(b - buf);
    switch (kind) {
    case BODY_LENGTH:
        if (avail < clen) {
            if (eof) {
                snprintf(err, errlen, "connection closed before the end of the body");
                return AUTH_FETCH_ERROR;
            }
            return AUTH_FETCH_NEED_MORE;
        }
        return dup_body(b, clen, body, len, err, errlen);
    case BODY_CLOSE:
        if (avail > AUTH_FETCH_MAX_BODY) {
            snprintf(err, errlen, "response body larger than %d bytes", AUTH_FETCH_MAX_BODY);
            return AUTH_FETCH_ERROR;
        }
        if (!eof)
            return AUTH_FETCH_NEED_MORE;
        return dup_body(b, avail, body, len, err, errlen);
    case BODY_CHUNKED: {
        size_t total = 0;
        int rc = parse_chunked(b, avail, eof, NULL, &total, err, errlen);
        if (rc != AUTH_FETCH_DONE)
            return rc;
        char *out = malloc(total + 1);
        if (!out) {
            snprintf(err, errlen, "out of memory");
            return AUTH_FETCH_ERROR;
        }
        parse_chunked(b, avail, eof, out, &total, err, errlen);
        out[total] = 0;
        *body = out;
        *len = total;
        return AUTH_FETCH_DONE;
    }
    }
    snprintf(err, errlen, "internal error");
    return AUTH_FETCH_ERROR;
}

/* ---- transport ---- */

typedef struct conn {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    uint64_t deadline_ms; /* clock_mono_ms() */
} conn;

static int remaining_ms(const conn *c)
{
    uint64_t now = clock_mono_ms();
    if (now >= c->deadline_ms)
        return 0;
    uint64_t left = c->deadline_ms - now;
    return left > INT32_MAX ? INT32_MAX : (int)left;
}

/* Waits for fd to become readable/writable before the deadline. 0 or -1. */
static int wait_fd(const conn *c, short events)
{
    for (;;) {
        int left = remaining_ms(c);
        if (left <= 0)
            return -1;
        struct pollfd pfd = {.fd = c->fd, .events = events};
        int r = poll(&pfd, 1, left);
        if (r > 0)
            return 0;
        if (r == 0)
            return -1;
        if (errno != EINTR)
            return -1;
    }
}

static int connect_one(conn *c, const struct addrinfo *ai, char *err, size_t errlen)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    c->fd = fd;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (errno != EINPROGRESS) {
            snprintf(err, errlen, "connect: %s", strerror(errno));
            goto fail;
        }
        if (wait_fd(c, POLLOUT) != 0) {
            snprintf(err, errlen, "connect: timed out");
            goto fail;
        }
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr != 0) {
            snprintf(err, errlen, "connect: %s", strerror(soerr ? soerr : errno));
            goto fail;
        }
    }
    return 0;
fail:
    close(fd);
    c->fd = -1;
    return -1;
}

static int tcp_connect(conn *c, const auth_fetch_url_parts *u, char *err, size_t errlen)
{
    char port[8];
    snprintf(port, sizeof port, "%d", u->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    if (u->is_ip6)
        hints.ai_flags = AI_NUMERICHOST;
    struct addrinfo *res = NULL;
    int gr = getaddrinfo(u->host, port, &hints, &res);
    if (gr != 0) {
        snprintf(err, errlen, "cannot resolve host: %s", gai_strerror(gr));
        return -1;
    }
    int rc = -1;
    for (struct addrinfo *ai = res; ai && rc != 0; ai = ai->ai_next) {
        if (remaining_ms(c) <= 0) {
            snprintf(err, errlen, "connect: timed out");
            break;
        }
        rc = connect_one(c, ai, err, errlen);
    }
    freeaddrinfo(res);
    return rc;
}

static void ssl_error(const char *what, char *err, size_t errlen)
{
    unsigned long e = ERR_get_error();
    char buf[256];
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    else
        snprintf(buf, sizeof buf, "unknown error");
    ERR_clear_error();
    snprintf(err, errlen, "%s: %s", what, buf);
}

static int tls_start(conn *c, const auth_fetch_url_parts *u, const char *ca_file, char *err, size_t errlen)
{
    ERR_clear_error();
    c->ctx = SSL_CTX_new(TLS_client_method());
    if (!c->ctx) {
        ssl_error("TLS", err, errlen);
        return -1;
    }
    SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    int ok = ca_file ? SSL_CTX_load_verify_locations(c->ctx, ca_file, NULL)
                     : SSL_CTX_set_default_verify_paths(c->ctx);
    if (ok != 1) {
        ssl_error(ca_file ? "cannot load the CA file" : "cannot load the system CAs", err, errlen);
        return -1;
    }
    c->ssl = SSL_new(c->ctx);
    if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) {
        ssl_error("TLS", err, errlen);
        return -1;
    }
    struct in_addr a4;
    int is_ip = u->is_ip6 || inet_pton(AF_INET, u->host, &a4) == 1;
    if (is_ip) {
        /* An IP literal is matched against iPAddress SANs; no SNI for it (RFC 6066). */
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), u->host) != 1) {
            ssl_error("TLS", err, errlen);
            return -1;
        }
    } else if (SSL_set1_host(c->ssl, u->host) != 1 || SSL_set_tlsext_host_name(c->ssl, u->host) != 1) {
        ssl_error("TLS", err, errlen);
        return -1;
    }
    for (;;) {
        int r = SSL_connect(c->ssl);
        if (r == 1)
            break;
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            if (wait_fd(c, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT) != 0) {
                snprintf(err, errlen, "TLS handshake: timed out");
                return -1;
            }
            continue;
        }
        long vr = SSL_get_verify_result(c->ssl);
        if (vr != X509_V_OK) {
            ERR_clear_error();
            snprintf(err, errlen, "TLS certificate verification failed: %s", X509_verify_cert_error_string(vr));
        } else {
            ssl_error("TLS handshake failed", err, errlen);
        }
        return -1;
    }
    return 0;
}

static int conn_write(conn *c, const char *p, size_t n, char *err, size_t errlen)
{
    while (n) {
        if (c->ssl) {
            size_t w = 0;
            int r = SSL_write_ex(c->ssl, p, n, &w);
            if (r == 1) {
                p += w;
                n -= w;
                continue;
            }
            int e = SSL_get_error(c->ssl, r);
            if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) &&
                wait_fd(c, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT) == 0)
                continue;
            ssl_error("TLS write", err, errlen);
            return -1;
        }
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && wait_fd(c, POLLOUT) == 0)
            continue;
        snprintf(err, errlen, "send: %s", w < 0 && errno != EAGAIN ? strerror(errno) : "timed out");
        return -1;
    }
    return 0;
}

/* Reads up to cap bytes. >0 bytes, 0 at EOF, -1 on error/timeout. */
static ssize_t conn_read(conn *c, char *p, size_t cap, char *err, size_t errlen)
{
    for (;;) {
        if (c->ssl) {
            size_t got = 0;
            int r = SSL_read_ex(c->ssl, p, cap, &got);
            if (r == 1)
                return (ssize_t)got;
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_ZERO_RETURN)
                return 0;
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                if (wait_fd(c, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT) != 0) {
                    snprintf(err, errlen, "read: timed out");
                    return -1;
                }
                continue;
            }
            /* A close without close_notify: treat as EOF; the parser
             * rejects a truncated Content-Length or chunked body. */
            if (e == SSL_ERROR_SSL && ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
                ERR_clear_error();
                return 0;
            }
            ssl_error("TLS read", err, errlen);
            return -1;
        }
        ssize_t r = recv(c->fd, p, cap, 0);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (wait_fd(c, POLLIN) != 0) {
                snprintf(err, errlen, "read: timed out");
                return -1;
            }
            continue;
        }
        snprintf(err, errlen, "read: %s", strerror(errno));
        return -1;
    }
}

static void conn_close(conn *c)
{
    if (c->ssl)
        SSL_free(c->ssl);
    if (c->ctx)
        SSL_CTX_free(c->ctx);
    if (c->fd >= 0)
        close(c->fd);
    c->ssl = NULL;
    c->ctx = NULL;
    c->fd = -1;
}

/* Reads the token file into tok (NUL-terminated, trailing whitespace cut).
 * The message never contains the file's bytes. */
static int read_token(const char *path, char *tok, size_t cap, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        snprintf(err, errlen, "bearer token file: %s", strerror(errno));
        return -1;
    }
    size_t n = 0;
    for (;;) {
        if (n == cap - 1) {
            char extra;
            ssize_t r = read(fd, &extra, 1);
            if (r != 0) {
                close(fd);
                snprintf(err, errlen, "bearer token file larger than %d bytes", AUTH_FETCH_MAX_TOKEN);
                return -1;
            }
            break;
        }
        ssize_t r = read(fd, tok + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "bearer token file: %s", strerror(errno));
            close(fd);
            return -1;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    while (n && (tok[n - 1] == '\n' || tok[n - 1] == '\r' || tok[n - 1] == ' ' || tok[n - 1] == '\t'))
        n--;
    tok[n] = 0;
    if (n == 0) {
        snprintf(err, errlen, "bearer token file is empty");
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)tok[i] <= 0x20 || (unsigned char)tok[i] >= 0x7f) {
            OPENSSL_cleanse(tok, n);
            snprintf(err, errlen, "bearer token file has whitespace or non-printable bytes inside the token");
            return -1;
        }
    return 0;
}

static int fetch(const auth_fetch_url_parts *u, const auth_fetch_opts *o, char **body, size_t *len, char *err,
                 size_t errlen)
{
    /* The request: fixed lines, the host and path (validated: no CR/LF) and
     * the token (validated: printable, no spaces). */
    size_t reqcap = AUTH_FETCH_MAX_URL + AUTH_FETCH_MAX_HOST + AUTH_FETCH_MAX_TOKEN + 256;
    char *req = malloc(reqcap);
    char *tok = o->bearer_file ? malloc(AUTH_FETCH_MAX_TOKEN + 1) : NULL;
    char *raw = NULL;
    int rc = -1;
    conn c = {.fd = -1, .deadline_ms = clock_mono_ms() + (uint64_t)(o->timeout_ms > 0 ? o->timeout_ms
                                                                                    : AUTH_FETCH_TIMEOUT_MS)};
    if (!req || (o->bearer_file && !tok)) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (tok && read_token(o->bearer_file, tok, AUTH_FETCH_MAX_TOKEN + 1, err, errlen) != 0)
        goto out;
    char hostport[AUTH_FETCH_MAX_HOST + 16];
    if (u->default_port)
        snprintf(hostport, sizeof hostport, u->is_ip6 ? "[%s]" : "%s", u->host);
    else
        snprintf(hostport, sizeof hostport, u->is_ip6 ? "[%s]:%d" : "%s:%d", u->host, u->port);
    int rl = snprintf(req, reqcap,
                      "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: ward\r\nAccept: application/json\r\n"
                      "Connection: close\r\n%s%s%s\r\n",
                      u->path, hostport, tok ? "Authorization: Bearer " : "", tok ? tok : "", tok ? "\r\n" : "");
    if (rl < 0 || (size_t)rl >= reqcap) {
        snprintf(err, errlen, "request too large");
        goto out;
    }
    if (tcp_connect(&c, u, err, errlen) != 0)
        goto out;
    if (u->tls && tls_start(&c, u, o->ca_file, err, errlen) != 0)
        goto out;
    if (conn_write(&c, req, (size_t)rl, err, errlen) != 0)
        goto out;
    size_t cap = 16 * 1024, n = 0;
    raw = malloc(cap);
    if (!raw) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (;;) {
        if (n == cap) {
            if (cap >= AUTH_FETCH_MAX_RAW) {
                snprintf(err, errlen, "response larger than %d bytes", AUTH_FETCH_MAX_RAW);
                goto out;
            }
            size_t ncap = cap * 2 > AUTH_FETCH_MAX_RAW ? AUTH_FETCH_MAX_RAW : cap * 2;
            char *nr = realloc(raw, ncap);
            if (!nr) {
                snprintf(err, errlen, "out of memory");
                goto out;
            }
            raw = nr;
            cap = ncap;
        }
        ssize_t r = conn_read(&c, raw + n, cap - n, err, errlen);
        if (r < 0)
            goto out;
        n += (size_t)r;
        int pr = auth_fetch_parse_response(raw, n, r == 0, body, len, err, errlen);
        if (pr == AUTH_FETCH_DONE) {
            rc = 0;
            break;
        }
        if (pr == AUTH_FETCH_ERROR)
            goto out;
    }
out:
    conn_close(&c);
    if (req) {
        OPENSSL_cleanse(req, reqcap);
        free(req);
    }
    if (tok) {
        OPENSSL_cleanse(tok, AUTH_FETCH_MAX_TOKEN + 1);
        free(tok);
    }
    free(raw);
    return rc;
}

int auth_fetch_url(const char *url, const auth_fetch_opts *o, char **body, size_t *len, char *err, size_t errlen)
{
    *body = NULL;
    *len = 0;
    auth_fetch_opts def;
    if (!o) {
        auth_fetch_default_opts(&def);
        o = &def;
    }
    auth_fetch_url_parts *u = malloc(sizeof *u);
    if (!u) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (auth_fetch_parse_url(url, u, err, errlen) != 0) {
        free(u);
        return -1;
    }
    /* TLS writes go through write(2), which raises SIGPIPE on a reset
     * connection; block it on this thread and drop one we caused. */
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    sigset_t pending;
    sigpending(&pending);
    int was_pending = sigismember(&pending, SIGPIPE);
    int rc = fetch(u, o, body, len, err, errlen);
    if (!was_pending) {
        sigpending(&pending);
        if (sigismember(&pending, SIGPIPE)) {
            struct timespec zero = {0, 0};
            sigtimedwait(&pipe_set, NULL, &zero);
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    free(u);
    return rc;
}
