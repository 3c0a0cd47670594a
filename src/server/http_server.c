/* http_server: epoll event loops implementing http.h.
 *
 * Model: params.threads loops, each with its own SO_REUSEPORT listening socket,
 * epoll set, eventfd (posts and stop) and connections; nothing is shared between
 * loops except the connection counter and the stop flag. Epoll is level
 * triggered: a connection is only asked for the events its state can use
 * (no EPOLLIN while a request is being handled or its response is unsent), which
 * gives pipelining one request at a time and back-pressure for free.
 *
 * Ownership: a connection owns its buffers and its current exchange (one
 * reference). hold() adds references; an exchange is freed at zero. Connections
 * are never freed inside a callback: closing one moves it to the loop's
 * graveyard, emptied at the end of each loop iteration, so a pointer taken at
 * the start of a callback stays valid until the callback returns.
 */
#include "server/http.h"
#include "server/http_parser.h"
#include "server/http_tls.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/rand.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

/* Events fetched per epoll_wait; more are simply picked up next round. */
#define HTTP_EPOLL_BATCH 256
/* First allocation of a connection's input buffer: a typical request head fits. */
#define HTTP_IN_INITIAL 4096
/* Raw-but-undecoded bytes a chunked body may need beyond the decoded body:
 * covers a chunk-size line with extensions, the trailers and one read. */
#define HTTP_CHUNK_SLACK (16 * 1024)
/* Buffers above these sizes are released when a connection goes idle, so that
 * thousands of idle keep-alive connections stay cheap. */
#define HTTP_IN_KEEP 4096
#define HTTP_OUT_KEEP (16 * 1024)
/* Response head space: status line + our headers + the handler's headers. */
#define HTTP_MAX_RESPONSE_HEADER_BYTES (8 * 1024)
/* x-request-id accepted from clients: 1..128 chars of [A-Za-z0-9._-]. */
#define HTTP_MAX_REQUEST_ID 128
/* Identity shown in the access log (truncated beyond). */
#define HTTP_MAX_LOG_IDENTITY 128
/* Timer sweep granularity bounds: fine enough for small test timeouts, coarse
 * enough to cost nothing with thousands of connections. */
#define HTTP_SWEEP_MIN_MS 10
#define HTTP_SWEEP_MAX_MS 1000
/* Sanity bounds on params (a typo must not ask for absurd resources). */
#define HTTP_MAX_THREADS 256
#define HTTP_MAX_HEADERS_LIMIT 10000
/* Bytes read per read(2) call when the buffer has more room. */
#define HTTP_READ_CHUNK (64 * 1024)

enum { EV_LISTEN = 1, EV_EVENT, EV_CONN };

enum conn_state {
    ST_HEAD = 0,   /* reading a request head (possibly idle, nothing read yet) */
    ST_BODY,       /* reading a Content-Length body */
    ST_CHUNKED,    /* reading a chunked body */
    ST_HANDLING,   /* on_request called; waiting for the response to end */
    ST_DONE,       /* response ended; waiting for its bytes to be sent */
};

typedef struct loop loop;
typedef struct conn conn;

struct http_exchange {
    atomic_int refs;
    atomic_int closed;         /* client gone; writes dropped */
    loop *lp;
    conn *c;                   /* NULL once detached (finished or closed) */
    http_request req;
    http_header *hdrs;
    char *path;                /* NUL-terminated copy when a query follows the path */
    char *orphan_in;           /* the connection's input buffer, kept alive for req */
    char request_id[HTTP_MAX_REQUEST_ID + 1];
    char remote[64];
    char identity[HTTP_MAX_LOG_IDENTITY + 1];
    char *rh;                  /* extra response headers "Name: value\r\n"... */
    size_t rh_len, rh_cap;
    int head_only;             /* HEAD request: no body bytes */
    int responded;             /* respond/stream_begin done */
    int streaming;
    int finished;
    int status;
    uint64_t start_ns;
    uint64_t body_bytes;
    void (*on_close)(void *);
    void *on_close_arg;
    void *user;
};

struct conn {
    int kind;                  /* EV_CONN; first member (epoll tag) */
    loop *lp;
    int fd;
    SSL *ssl;
    int tls_handshaken;
    int tls_want_write;        /* SSL_read needs the socket writable */
    conn *prev, *next;         /* loop's live list, or graveyard */
    enum conn_state state;
    int closing;
    int eof;                   /* peer closed its writing half */
    int close_after;           /* close once the output is sent */
    int keep_alive;
    int in_process;
    uint32_t ev_mask;          /* current epoll interest */
    char *in;
    size_t in_len, in_cap;
    char *out;
    size_t out_off, out_len, out_cap;
    hp_parser hp;
    hp_head head;
    size_t body_raw_len;       /* chunked: raw bytes after the head */
    size_t consumed;           /* bytes of the current request in `in` */
    uint64_t deadline_ms;      /* 0 = none */
    uint64_t requests;
    int dispatched;            /* on_request called for the current exchange */
    http_exchange *ex;
    char remote[64];
};

/* An on_close callback waiting to run (see conn_detach). */
typedef struct closing_cb {
    struct closing_cb *next;
    http_exchange *ex; /* held until the callback has run */
    void (*fn)(void *);
    void *arg;
} closing_cb;

typedef struct post {
    struct post *next;
    http_exchange *ex;
    void (*fn)(http_exchange *, void *);
    void *arg;
} post;

struct loop {
    int listen_kind;           /* EV_LISTEN tag */
    int event_kind;            /* EV_EVENT tag */
    http_server *srv;
    int idx;
    int epfd, lfd, efd;
    pthread_t th;
    int started;
    conn *live;
    conn *grave;
    size_t n_live;
    pthread_mutex_t mu;
    post *q_head, *q_tail;
    int q_dead;                /* loop exited: posts refused */
    int mu_ok;                 /* mu initialised */
    int draining;
    uint64_t drain_deadline;
    http_header *scratch;      /* max_headers entries: the parser's output, copied per exchange */
    closing_cb *closes;        /* on_close callbacks to run at the end of the iteration */
    uint64_t next_sweep;
};

struct http_server {
    http_params p;
    char *host;
    char *tls_cert, *tls_key;
    http_handler h;
    int port;
    int nloops;
    loop *loops;
    atomic_int stop_flag;
    atomic_int n_conns;
    http_tls *tls;
    int sweep_ms;
};

/* ---------------------------------------------------------------- helpers */

void http_default_params(http_params *p)
{
    memset(p, 0, sizeof *p);
    p->host = "127.0.0.1";
    p->port = 8080;
    p->threads = 1;
    p->max_header_bytes = HTTP_MAX_HEADER_BYTES;
    p->max_body_bytes = HTTP_MAX_BODY_BYTES;
    p->max_headers = HTTP_MAX_HEADERS;
    p->header_timeout_ms = HTTP_HEADER_TIMEOUT_MS;
    p->body_timeout_ms = HTTP_BODY_TIMEOUT_MS;
    p->idle_timeout_ms = HTTP_IDLE_TIMEOUT_MS;
    p->max_connections = HTTP_MAX_CONNECTIONS;
    p->shutdown_grace_ms = HTTP_SHUTDOWN_GRACE_MS;
    p->max_output_bytes = HTTP_MAX_OUTPUT_BYTES;
}

const char *http_status_text(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

const char *http_request_header(const http_request *r, const char *name)
{
    if (!r || !name)
        return NULL;
    for (size_t i = 0; i < r->n_headers; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

/* "<what>: <strerror(errno)>" into err. */
static void errf(char *err, size_t errlen, const char *what)
{
    if (err && errlen)
        snprintf(err, errlen, "%s: %s", what, strerror(errno));
}

static int request_id_sane(const char *s)
{
    if (!s)
        return 0;
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (n >= HTTP_MAX_REQUEST_ID)
            return 0;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-'))
            return 0;
    }
    return n > 0;
}

static void set_interest(conn *c, uint32_t mask)
{
    if (c->closing || mask == c->ev_mask)
        return;
    struct epoll_event ev = {.events = mask, .data.ptr = c};
    if (epoll_ctl(c->lp->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->ev_mask = mask;
}

/* The events a connection needs in its current state. */
static void update_interest(conn *c)
{
    uint32_t m = 0;
    int pending = c->out_len > c->out_off;
    if (!c->eof)
        m |= EPOLLRDHUP;
    if (pending || c->tls_want_write)
        m |= EPOLLOUT;
    if (!c->eof && !c->close_after && (c->state == ST_HEAD || c->state == ST_BODY || c->state == ST_CHUNKED) &&
        !pending)
        m |= EPOLLIN;
    if (c->ssl && !c->tls_handshaken && !c->eof)
        m |= EPOLLIN;
    set_interest(c, m);
}

/* ----------------------------------------------------------- exchanges */

static void ex_free(http_exchange *ex)
{
    free(ex->hdrs);
    free(ex->path);
    free(ex->orphan_in);
    free(ex->rh);
    free(ex);
}

void http_exchange_hold(http_exchange *ex)
{
    atomic_fetch_add(&ex->refs, 1);
}

void http_exchange_release(http_exchange *ex)
{
    if (ex && atomic_fetch_sub(&ex->refs, 1) == 1)
        ex_free(ex);
}

const http_request *http_exchange_request(const http_exchange *ex) { return &ex->req; }
int http_exchange_closed(const http_exchange *ex) { return atomic_load(&ex->closed); }
void http_exchange_set_user(http_exchange *ex, void *p) { ex->user = p; }
void *http_exchange_user(const http_exchange *ex) { return ex->user; }

void http_exchange_on_close(http_exchange *ex, void (*fn)(void *arg), void *arg)
{
    ex->on_close = fn;
    ex->on_close_arg = arg;
}

void http_exchange_set_log_identity(http_exchange *ex, const char *name)
{
    snprintf(ex->identity, sizeof ex->identity, "%s", name ? name : "");
}

int http_exchange_add_header(http_exchange *ex, const char *name, const char *value)
{
    if (!ex->c || ex->responded || !name || !value || !*name)
        return -1;
    for (const char *q = name; *q; q++) {
        unsigned char ch = (unsigned char)*q;
        if (ch <= 0x20 || ch >= 0x7f || ch == ':')
            return -1;
    }
    for (const char *q = value; *q; q++)
        if (*q == '\r' || *q == '\n')
            return -1;
    size_t nn = strlen(name), vn = strlen(value);
    if (nn > HTTP_MAX_RESPONSE_HEADER_BYTES || vn > HTTP_MAX_RESPONSE_HEADER_BYTES)
        return -1;
    size_t need = nn + vn + 4;
    if (ex->rh_len + need > HTTP_MAX_RESPONSE_HEADER_BYTES)
        return -1;
    if (ex->rh_len + need > ex->rh_cap) {
        size_t cap = ex->rh_cap ? ex->rh_cap * 2 : 256;
        while (cap < ex->rh_len + need)
            cap *= 2;
        char *nb = realloc(ex->rh, cap);
        if (!nb)
            return -1;
        ex->rh = nb;
        ex->rh_cap = cap;
    }
    char *d = ex->rh + ex->rh_len;
    memcpy(d, name, nn);
    memcpy(d + nn, ": ", 2);
    memcpy(d + nn + 2, value, vn);
    memcpy(d + nn + 2 + vn, "\r\n", 2);
    ex->rh_len += need;
    return 0;
}

/* --------------------------------------------------------- connections */

static void conn_close(conn *c);
static void conn_process(conn *c);
static void conn_flush(conn *c);
static void conn_readable(conn *c);

static int out_reserve(conn *c, size_t n)
{
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (n > SIZE_MAX - c->out_len)
        return -1;
    if (c->out_len + n <= c->out_cap)
        return 0;
    if (c->out_off > 0) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
        if (c->out_len + n <= c->out_cap)
            return 0;
    }
    size_t cap = c->out_cap ? c->out_cap : 4096;
    while (cap < c->out_len + n) {
        if (cap > SIZE_MAX / 2)
            return -1;
        cap *= 2;
    }
    char *nb = realloc(c->out, cap);
    if (!nb)
        return -1;
    c->out = nb;
    c->out_cap = cap;
    return 0;
}

static int out_append(conn *c, const void *data, size_t n)
{
    if (out_reserve(c, n) != 0)
        return -1;
    memcpy(c->out + c->out_len, data, n);
    c->out_len += n;
    return 0;
}

/* Writes the status line and the headers common to every response. */
static int write_head(conn *c, http_exchange *ex, int status, const char *content_type, const char *framing)
{
    char h[1024];
    int keep = c->keep_alive && !c->close_after && !atomic_load(&c->lp->srv->stop_flag);
    /* answered before its announced body was read: that body would be taken
     * for the next request, so this connection ends with the response */
    if (c->state == ST_HEAD && c->head.body_kind != HP_BODY_NONE)
        keep = 0;
    const char *conn_hdr = "";
    if (!keep)
        conn_hdr = "Connection: close\r\n";
    else if (c->head.minor_version == 0)
        conn_hdr = "Connection: keep-alive\r\n";
    int n = snprintf(h, sizeof h, "HTTP/1.1 %d %s\r\nServer: ward\r\nx-request-id: %s\r\n%s%s%s%s%s", status,
                     http_status_text(status), ex ? ex->request_id : "-", conn_hdr,
                     content_type ? "Content-Type: " : "", content_type ? content_type : "",
                     content_type ? "\r\n" : "", framing);
    if (n < 0 || (size_t)n >= sizeof h)
        return -1;
    if (!keep)
        c->keep_alive = 0;
    if (out_append(c, h, (size_t)n) != 0)
        return -1;
    if (ex && ex->rh_len && out_append(c, ex->rh, ex->rh_len) != 0)
        return -1;
    return out_append(c, "\r\n", 2);
}

static void access_log(http_exchange *ex)
{
    if (!log_enabled(LOG_INFO))
        return;
    double ms = (double)(clock_mono_ns() - ex->start_ns) / 1e6;
    if (ex->identity[0])
        log_pack(LOG_INFO, "ward.http", "request", "{s:s,s:s,s:s,s:i,s:f,s:I,s:s}", "request id", ex->request_id,
                 "method", ex->req.method, "path", ex->req.path, "status", ex->status, "duration_ms", ms, "bytes",
                 (json_int_t)ex->body_bytes, "identity", ex->identity);
    else
        log_pack(LOG_INFO, "ward.http", "request", "{s:s,s:s,s:s,s:i,s:f,s:I}", "request id", ex->request_id,
                 "method", ex->req.method, "path", ex->req.path, "status", ex->status, "duration_ms", ms, "bytes",
                 (json_int_t)ex->body_bytes);
}

/* Marks the exchange finished: logs it and lets the connection move on. */
static void ex_finish(http_exchange *ex)
{
    conn *c = ex->c;
    ex->finished = 1;
    access_log(ex);
    if (!c)
        return;
    c->state = ST_DONE;
    conn_flush(c);
    if (!c->in_process && !c->closing) {
        conn_process(c);
        /* TLS may hold decrypted bytes of the next request that epoll cannot see */
        if (!c->closing && c->ssl && c->state == ST_HEAD && http_tls_pending(c->ssl))
            conn_readable(c);
    }
}

int http_exchange_respond(http_exchange *ex, int status, const char *content_type, const char *body, size_t len)
{
    conn *c = ex->c;
    if (!c || ex->responded || atomic_load(&ex->closed))
        return -1;
    if (status < 200 || status > 999)
        status = 500;
    ex->responded = 1;
    ex->status = status;
    char framing[64];
    int nobody = status == 204 || status == 304;
    if (nobody)
        framing[0] = '\0';
    else
        snprintf(framing, sizeof framing, "Content-Length: %zu\r\n", len);
    if (write_head(c, ex, status, nobody ? NULL : content_type, framing) != 0) {
        conn_close(c);
        return -1;
    }
    if (!ex->head_only && !nobody && len) {
        if (out_append(c, body, len) != 0) {
            conn_close(c);
            return -1;
        }
        ex->body_bytes = len;
    }
    ex_finish(ex);
    return 0;
}

int http_exchange_stream_begin(http_exchange *ex, int status, const char *content_type)
{
    conn *c = ex->c;
    if (!c || ex->responded || atomic_load(&ex->closed))
        return -1;
    ex->responded = 1;
    ex->streaming = 1;
    ex->status = status;
    const char *framing = "Transfer-Encoding: chunked\r\n";
    if (c->head.minor_version == 0) {
        /* HTTP/1.0 has no chunked coding: the end of the body is the close. */
        c->keep_alive = 0;
        framing = "";
    }
    if (ex->head_only)
        framing = "";
    if (write_head(c, ex, status, content_type, framing) != 0) {
        conn_close(c);
        return -1;
    }
    conn_flush(c);
    return ex->c ? 0 : -1;
}

int http_exchange_stream_write(http_exchange *ex, const char *data, size_t len)
{
    conn *c = ex->c;
    if (!c || !ex->streaming || ex->finished || atomic_load(&ex->closed))
        return -1;
    if (len == 0 || ex->head_only)
        return 0;
    if (c->out_len - c->out_off > c->lp->srv->p.max_output_bytes) {
        log_pack(LOG_WARN, "ward.http", "slow client dropped", "{s:s,s:I}", "request id", ex->request_id,
                 "pending_bytes", (json_int_t)(c->out_len - c->out_off));
        conn_close(c);
        return -1;
    }
    int r = 0;
    if (c->head.minor_version == 0) {
        r = out_append(c, data, len);
    } else {
        char sz[32];
        int n = snprintf(sz, sizeof sz, "%zx\r\n", len);
        r = out_append(c, sz, (size_t)n) || out_append(c, data, len) || out_append(c, "\r\n", 2);
    }
    if (r) {
        conn_close(c);
        return -1;
    }
    ex->body_bytes += len;
    conn_flush(c);
    return ex->c ? 0 : -1;
}

int http_exchange_stream_end(http_exchange *ex)
{
    conn *c = ex->c;
    if (!c || !ex->streaming || ex->finished || atomic_load(&ex->closed))
        return -1;
    if (c->head.minor_version == 1 && !ex->head_only && out_append(c, "0\r\n\r\n", 5) != 0) {
        conn_close(c);
        return -1;
    }
    ex_finish(ex);
    return 0;
}

/* A response for a request the parser refused (no exchange); closes after. */
static void send_error(conn *c, int status, const char *reason)
{
    char id[37];
    if (rand_uuid4(id) != 0)
        snprintf(id, sizeof id, "-");
    char body[256];
    int bn = snprintf(body, sizeof body,
                      "{\"error\":{\"message\":\"%s\",\"type\":\"invalid_request_error\",\"param\":null,\"code\":%d}}",
                      reason, status);
    if (bn < 0 || (size_t)bn >= sizeof body)
        bn = 0;
    char h[512];
    int n = snprintf(h, sizeof h,
                     "HTTP/1.1 %d %s\r\nServer: ward\r\nx-request-id: %s\r\nConnection: close\r\n"
                     "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n",
                     status, http_status_text(status), id, bn);
    c->keep_alive = 0;
    c->close_after = 1;
    if (n > 0 && (size_t)n < sizeof h && out_append(c, h, (size_t)n) == 0)
        out_append(c, body, (size_t)bn);
    log_pack(LOG_INFO, "ward.http", "request", "{s:s,s:s,s:s,s:i,s:f,s:I,s:s}", "request id", id, "method", "-",
             "path", "-", "status", status, "duration_ms", 0.0, "bytes", (json_int_t)bn, "error", reason);
    conn_flush(c);
}

static void conn_unlink(conn **list, conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        *list = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

static void conn_push(conn **list, conn *c)
{
    c->prev = NULL;
    c->next = *list;
    if (*list)
        (*list)->prev = c;
    *list = c;
}

/* Detaches the current exchange from the connection. If it is unfinished the
 * client went away: mark it closed and run its on_close callback. */
static void conn_detach(conn *c, int gone)
{
    http_exchange *ex = c->ex;
    if (!ex)
        return;
    c->ex = NULL;
    ex->c = NULL;
    if (gone && !ex->finished) {
        atomic_store(&ex->closed, 1);
        /* the request points into the input buffer: hand it to the exchange
         * so that holders (and pointers kept from on_headers) stay valid */
        ex->orphan_in = c->in;
        c->in = NULL;
        c->in_cap = c->in_len = 0;
        if (!ex->status)
            ex->status = 499; /* client closed request (nginx's convention) */
        if (ex->on_close) {
            /* Run later, never inside the handler call (a failing
             * stream_write, say) that noticed the disconnect: the handler
             * may hold its own locks there. */
            void (*fn)(void *) = ex->on_close;
            ex->on_close = NULL;
            closing_cb *cb = malloc(sizeof *cb);
            if (cb) {
                http_exchange_hold(ex);
                cb->ex = ex;
                cb->fn = fn;
                cb->arg = ex->on_close_arg;
                cb->next = c->lp->closes;
                c->lp->closes = cb;
            } else {
                fn(ex->on_close_arg); /* out of memory: better late locks than a leak */
            }
        }
        access_log(ex);
    }
    http_exchange_release(ex);
}

static void conn_close(conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    loop *lp = c->lp;
    epoll_ctl(lp->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    conn_detach(c, 1);
    if (c->ssl) {
        http_tls_conn_free(c->ssl);
        c->ssl = NULL;
    }
    close(c->fd);
    c->fd = -1;
    conn_unlink(&lp->live, c);
    lp->n_live--;
    atomic_fetch_sub(&lp->srv->n_conns, 1);
    conn_push(&lp->grave, c);
}

static void conn_free(conn *c)
{
    free(c->in);
    free(c->out);
    free(c);
}

/* Sends pending output; closes on error or when close_after and all is sent. */
static void conn_flush(conn *c)
{
    while (!c->closing && c->out_off < c->out_len) {
        size_t n = c->out_len - c->out_off;
        ssize_t w;
        if (c->ssl) {
            int tr = http_tls_write(c->ssl, c->out + c->out_off, n, &w);
            if (tr == HTTP_TLS_AGAIN)
                break;
            if (tr != HTTP_TLS_OK) {
                conn_close(c);
                return;
            }
        } else {
            w = send(c->fd, c->out + c->out_off, n, MSG_NOSIGNAL);
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    break;
                conn_close(c);
                return;
            }
        }
        c->out_off += (size_t)w;
        if (c->state == ST_DONE || c->state == ST_HANDLING)
            c->deadline_ms = 0; /* progress: the write-stall clock restarts below */
    }
    if (c->closing)
        return;
    if (c->out_off == c->out_len) {
        c->out_off = c->out_len = 0;
        if (c->close_after && c->state != ST_HANDLING) {
            conn_close(c);
            return;
        }
    }
    /* Inside conn_process the interest set is updated once at its end: a
     * response written synchronously (health, 401) then costs no epoll_ctl. */
    if (!c->in_process)
        update_interest(c);
}

/* Records which request pointers point into the input buffer, as offsets,
 * so that they can be re-aimed after the buffer moves (realloc). */
typedef struct {
    const char **slot;
    size_t off;
} in_ref;

static size_t collect_refs(conn *c, in_ref *refs)
{
    size_t n = 0;
    http_exchange *ex = c->ex;
    if (!ex || !c->in)
        return 0;
    uintptr_t lo = (uintptr_t)c->in, hi = lo + c->in_len;
    const char **slots[4] = {&ex->req.method, &ex->req.target, &ex->req.path, &ex->req.query};
    for (size_t i = 0; i < 4; i++) {
        uintptr_t v = (uintptr_t)*slots[i];
        if (v >= lo && v < hi)
            refs[n++] = (in_ref){slots[i], (size_t)(v - lo)};
    }
    for (size_t i = 0; i < ex->req.n_headers; i++) {
        const char **hs[2] = {&ex->hdrs[i].name, &ex->hdrs[i].value};
        for (size_t k = 0; k < 2; k++) {
            uintptr_t v = (uintptr_t)*hs[k];
            if (v >= lo && v < hi)
                refs[n++] = (in_ref){hs[k], (size_t)(v - lo)};
        }
    }
    return n;
}

/* Grows the input buffer to at least want bytes (the caller bounds want).
 * Request pointers already handed to the handler are moved along. */
static int in_reserve(conn *c, size_t want)
{
    if (want <= c->in_cap)
        return 0;
    size_t cap = c->in_cap ? c->in_cap : HTTP_IN_INITIAL;
    while (cap < want)
        cap = cap > SIZE_MAX / 2 ? want : cap * 2;
    in_ref *refs = NULL;
    size_t nrefs = 0;
    if (c->ex) {
        size_t max = 4 + 2 * c->ex->req.n_headers;
        refs = malloc(sizeof *refs * max);
        if (!refs)
            return -1;
        nrefs = collect_refs(c, refs);
    }
    char *nb = realloc(c->in, cap);
    if (!nb) {
        free(refs);
        return -1;
    }
    for (size_t i = 0; i < nrefs; i++)
        *refs[i].slot = nb + refs[i].off;
    free(refs);
    c->in = nb;
    c->in_cap = cap;
    return 0;
}

/* The most input the current state may hold. */
static size_t in_limit(conn *c)
{
    const http_params *p = &c->lp->srv->p;
    switch (c->state) {
    case ST_HEAD:
        return p->max_header_bytes + 1; /* one past the limit shows it was exceeded */
    case ST_BODY:
        return c->head.head_len + (size_t)c->head.content_length;
    case ST_CHUNKED:
        return c->head.head_len + p->max_body_bytes + HTTP_CHUNK_SLACK;
    default:
        return c->in_len;
    }
}

static void set_deadline(conn *c, int ms)
{
    c->deadline_ms = ms > 0 ? clock_mono_ms() + (uint64_t)ms : 0;
}

/* Builds the exchange for a parsed head and runs on_headers. */
static void start_exchange(conn *c)
{
    http_exchange *ex = calloc(1, sizeof *ex);
    http_header *hdrs = ex ? malloc(sizeof *hdrs * (c->head.n_headers ? c->head.n_headers : 1)) : NULL;
    if (!ex || !hdrs) {
        free(ex);
        free(hdrs);
        send_error(c, 503, "out of memory");
        return;
    }
    atomic_init(&ex->refs, 1);
    atomic_init(&ex->closed, 0);
    ex->lp = c->lp;
    ex->c = c;
    ex->hdrs = hdrs;
    ex->start_ns = clock_mono_ns();
    c->ex = ex;
    memcpy(hdrs, c->lp->scratch, sizeof *hdrs * c->head.n_headers);
    ex->req.headers = hdrs;
    ex->req.n_headers = c->head.n_headers;
    const hp_head *h = &c->head;
    http_request *r = &ex->req;
    r->method = h->method;
    r->target = h->target;
    if (h->path_len == h->target_len) {
        r->path = h->target;
    } else {
        ex->path = strndup(h->target, h->path_len);
        r->path = ex->path ? ex->path : "/";
    }
    r->query = h->query;
    r->minor_version = h->minor_version;
    r->remote_addr = ex->remote;
    snprintf(ex->remote, sizeof ex->remote, "%s", c->remote);
    ex->head_only = h->method_id == HP_METHOD_HEAD;
    const char *rid = http_request_header(r, "x-request-id");
    if (request_id_sane(rid))
        snprintf(ex->request_id, sizeof ex->request_id, "%s", rid);
    else if (rand_uuid4(ex->request_id) != 0)
        snprintf(ex->request_id, sizeof ex->request_id, "-");
    r->request_id = ex->request_id;
}

/* Calls on_request once the body is complete. */
static void dispatch(conn *c)
{
    http_server *s = c->lp->srv;
    http_exchange *ex = c->ex;
    c->state = ST_HANDLING;
    c->deadline_ms = 0;
    c->dispatched = 1;
    http_exchange_hold(ex);
    if (s->h.on_request)
        s->h.on_request(ex, &ex->req, s->h.ud);
    else
        http_exchange_respond(ex, 404, "text/plain", "not found\n", 10);
    http_exchange_release(ex);
}

/* Parses as much of the input as the state allows and dispatches requests. */
static void conn_process(conn *c)
{
    http_server *s = c->lp->srv;
    c->in_process = 1;
    while (!c->closing) {
        if (c->state == ST_HEAD) {
            if (c->in_len == 0)
                break;
            size_t cap = (size_t)s->p.max_headers;
            int r = hp_parse_head(&c->hp, c->in, c->in_len, &c->head, c->lp->scratch, cap);
            if (r == HP_NEED_MORE)
                break;
            if (r == HP_ERROR) {
                send_error(c, c->hp.status, c->hp.reason);
                break;
            }
            c->keep_alive = c->head.keep_alive;
            c->requests++;
            c->dispatched = 0;
            start_exchange(c);
            http_exchange *ex = c->ex;
            if (!ex)
                break;
            c->consumed = c->head.head_len;
            http_exchange_hold(ex); /* on_headers may close the connection */
            int responded = s->h.on_headers ? s->h.on_headers(ex, &ex->req, s->h.ud) : 0;
            if (responded || ex->responded || c->closing) {
                if (!ex->finished && !c->closing && !atomic_load(&ex->closed)) {
                    /* nonzero without a response: answer for the handler */
                    static const char nr[] = "{\"error\":{\"message\":\"no response\",\"type\":\"server_error\","
                                             "\"param\":null,\"code\":null}}";
                    http_exchange_respond(ex, 500, "application/json", nr, sizeof nr - 1);
                }
                if (c->head.body_kind != HP_BODY_NONE && !c->closing) {
                    /* the unread body would be parsed as the next request */
                    c->keep_alive = 0;
                    c->close_after = 1;
                    if (c->out_off == c->out_len)
                        conn_close(c);
                }
                http_exchange_release(ex);
                continue;
            }
            http_exchange_release(ex);
            if (c->head.body_kind == HP_BODY_NONE) {
                dispatch(c);
            } else {
                c->state = c->head.body_kind == HP_BODY_LENGTH ? ST_BODY : ST_CHUNKED;
                c->body_raw_len = c->in_len - c->head.head_len;
                if (c->head.body_kind == HP_BODY_LENGTH && in_reserve(c, in_limit(c)) != 0) {
                    send_error(c, 503, "out of memory");
                    break;
                }
                if (c->head.expect_continue && c->in_len == c->head.head_len) {
                    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
                    out_append(c, cont, sizeof cont - 1);
                    conn_flush(c);
                }
                set_deadline(c, s->p.body_timeout_ms);
                continue;
            }
        } else if (c->state == ST_BODY) {
            size_t need = c->head.head_len + (size_t)c->head.content_length;
            if (c->in_len < need)
                break;
            c->ex->req.body = c->in + c->head.head_len;
            c->ex->req.body_len = (size_t)c->head.content_length;
            c->consumed = need;
            dispatch(c);
        } else if (c->state == ST_CHUNKED) {
            char *body = c->in + c->head.head_len;
            size_t raw = c->in_len - c->head.head_len, dec = 0, used = 0;
            int r = hp_chunked_decode(&c->hp, body, raw, &dec, &used);
            if (r == HP_ERROR) {
                send_error(c, c->hp.status, c->hp.reason);
                break;
            }
            if (r == HP_NEED_MORE) {
                size_t nraw = hp_chunked_compact(&c->hp, body, raw);
                c->in_len = c->head.head_len + nraw;
                break;
            }
            c->ex->req.body = body;
            c->ex->req.body_len = dec;
            c->consumed = c->head.head_len + used;
            dispatch(c);
        } else if (c->state == ST_HANDLING) {
            break; /* the handler responds later (posted from another thread) */
        } else { /* ST_DONE */
            if (c->out_off < c->out_len)
                break;
            /* response sent: drop the request's bytes and move to the next one */
            conn_detach(c, 0);
            if (!c->keep_alive || c->close_after) {
                conn_close(c);
                break;
            }
            if (c->consumed < c->in_len)
                memmove(c->in, c->in + c->consumed, c->in_len - c->consumed);
            c->in_len -= c->consumed;
            c->consumed = 0;
            c->state = ST_HEAD;
            memset(&c->head, 0, sizeof c->head);
            hp_limits lim = c->hp.lim;
            hp_init(&c->hp, &lim);
            if (atomic_load(&s->stop_flag) && c->in_len == 0) {
                conn_close(c);
                break;
            }
            if (c->in_len == 0) {
                set_deadline(c, s->p.idle_timeout_ms);
                if (c->in_cap > HTTP_IN_KEEP) {
                    free(c->in);
                    c->in = NULL;
                    c->in_cap = 0;
                }
                if (c->out_cap > HTTP_OUT_KEEP) {
                    free(c->out);
                    c->out = NULL;
                    c->out_cap = 0;
                }
            } else {
                set_deadline(c, s->p.header_timeout_ms);
            }
        }
    }
    c->in_process = 0;
    if (!c->closing)
        update_interest(c);
}

/* Reads what the socket has (bounded by the state's limit), then processes. */
static void conn_readable(conn *c)
{
    http_server *s = c->lp->srv;
    if (c->ssl && !c->tls_handshaken) {
        int r = http_tls_handshake(c->ssl);
        if (r == HTTP_TLS_AGAIN_WRITE) {
            c->tls_want_write = 1;
            update_interest(c);
            return;
        }
        c->tls_want_write = 0;
        if (r == HTTP_TLS_AGAIN) {
            update_interest(c);
            return;
        }
        if (r != HTTP_TLS_OK) {
            conn_close(c);
            return;
        }
        c->tls_handshaken = 1;
    }
    for (;;) {
        if (c->state != ST_HEAD && c->state != ST_BODY && c->state != ST_CHUNKED)
            break;
        if (c->out_off < c->out_len)
            break;
        size_t lim = in_limit(c);
        if (c->in_len >= lim) {
            if (c->state == ST_CHUNKED) {
                send_error(c, 413, "body too large");
                return;
            }
            break;
        }
        size_t want = c->in_len + HTTP_READ_CHUNK < lim ? c->in_len + HTTP_READ_CHUNK : lim;
        if (c->in_len == c->in_cap && in_reserve(c, want) != 0) {
            send_error(c, 503, "out of memory");
            return;
        }
        size_t room = c->in_cap - c->in_len;
        if (room > lim - c->in_len)
            room = lim - c->in_len;
        ssize_t n;
        if (c->ssl) {
            int tr = http_tls_read(c->ssl, c->in + c->in_len, room, &n);
            if (tr == HTTP_TLS_AGAIN_WRITE) {
                c->tls_want_write = 1;
                break;
            }
            c->tls_want_write = 0;
            if (tr == HTTP_TLS_AGAIN)
                break;
            if (tr == HTTP_TLS_EOF) {
                c->eof = 1;
                break;
            }
            if (tr != HTTP_TLS_OK) {
                conn_close(c);
                return;
            }
        } else {
            n = recv(c->fd, c->in + c->in_len, room, 0);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    break;
                conn_close(c);
                return;
            }
            if (n == 0) {
                c->eof = 1;
                break;
            }
        }
        if (c->state == ST_HEAD && c->in_len == 0 && c->requests > 0)
            set_deadline(c, s->p.header_timeout_ms); /* a kept-alive head's clock starts with its first byte */
        c->in_len += (size_t)n;
        if (c->state == ST_BODY || c->state == ST_CHUNKED)
            set_deadline(c, s->p.body_timeout_ms);
        conn_process(c);
        if (c->closing)
            return;
        /* A short plain read drained the socket: the next recv would only say
         * EAGAIN. Level-triggered epoll reports whatever arrives later. */
        if (!c->ssl && (size_t)n < room)
            break;
    }
    if (c->eof) {
        /* Client half-closed: unanswerable now, except what is already queued. */
        if (c->state == ST_HANDLING) {
            conn_close(c);
            return;
        }
        c->close_after = 1;
        c->keep_alive = 0;
        if (c->state == ST_DONE || c->out_off < c->out_len)
            conn_flush(c);
        else
            conn_close(c);
        return;
    }
    update_interest(c);
}

static void conn_event(conn *c, uint32_t ev)
{
    if (ev & EPOLLERR) {
        conn_close(c);
        return;
    }
    if (ev & EPOLLOUT) {
        if (c->tls_want_write) {
            c->tls_want_write = 0;
            conn_readable(c);
            if (c->closing)
                return;
        }
        conn_flush(c);
        if (c->closing)
            return;
        if (c->state == ST_DONE && c->out_off == c->out_len && !c->in_process)
            conn_process(c);
        if (c->closing)
            return;
    }
    int reading = !c->eof && (c->ev_mask & EPOLLIN);
    if ((ev & EPOLLIN) && reading) {
        conn_readable(c); /* reads to EOF and handles it */
        return;
    }
    if (ev & EPOLLHUP) {
        conn_close(c); /* both directions gone: nothing can be sent */
        return;
    }
    if (ev & EPOLLRDHUP) {
        /* peer finished sending while we were not reading: a client gone
         * mid-request (cancellation) unless a response is still going out */
        if (c->state == ST_HANDLING || (c->state != ST_DONE && c->out_off == c->out_len)) {
            conn_close(c);
            return;
        }
        c->eof = 1;
        c->close_after = 1;
        update_interest(c);
    }
}

/* --------------------------------------------------------------- loops */

static void loop_accept(loop *lp)
{
    http_server *s = lp->srv;
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(lp->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE)
                log_pack(LOG_WARN, "ward.http", "accept failed: out of file descriptors", NULL);
            return;
        }
        if (atomic_fetch_add(&s->n_conns, 1) >= s->p.max_connections) {
            atomic_fetch_sub(&s->n_conns, 1);
            static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nServer: ward\r\nConnection: close\r\n"
                                       "Content-Type: application/json\r\nContent-Length: 97\r\n\r\n"
                                       "{\"error\":{\"message\":\"too many connections\",\"type\":\"server_error\","
                                       "\"param\":null,\"code\":503}}";
            ssize_t w = send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL);
            (void)w;
            close(fd);
            continue;
        }
        conn *c = calloc(1, sizeof *c);
        if (!c) {
            atomic_fetch_sub(&s->n_conns, 1);
            close(fd);
            continue;
        }
        c->kind = EV_CONN;
        c->lp = lp;
        c->fd = fd;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        char host[INET6_ADDRSTRLEN] = "?";
        int port = 0;
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
            port = ntohs(a->sin_port);
            snprintf(c->remote, sizeof c->remote, "%s:%d", host, port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
            port = ntohs(a->sin6_port);
            snprintf(c->remote, sizeof c->remote, "[%s]:%d", host, port);
        }
        hp_limits lim = {s->p.max_header_bytes, (size_t)s->p.max_headers, s->p.max_body_bytes};
        hp_init(&c->hp, &lim);
        if (s->tls) {
            c->ssl = http_tls_conn_new(s->tls, fd);
            if (!c->ssl) {
                atomic_fetch_sub(&s->n_conns, 1);
                close(fd);
                free(c);
                continue;
            }
        }
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
        if (epoll_ctl(lp->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            atomic_fetch_sub(&s->n_conns, 1);
            if (c->ssl)
                http_tls_conn_free(c->ssl);
            close(fd);
            free(c);
            continue;
        }
        c->ev_mask = ev.events;
        conn_push(&lp->live, c);
        lp->n_live++;
        set_deadline(c, s->p.header_timeout_ms);
    }
}

/* Runs the deferred on_close callbacks (oldest first) and frees dead connections. */
static void loop_reap(loop *lp)
{
    while (lp->closes) {
        closing_cb *list = lp->closes, *rev = NULL;
        lp->closes = NULL;
        while (list) { /* reverse to run in the order of the disconnects */
            closing_cb *nx = list->next;
            list->next = rev;
            rev = list;
            list = nx;
        }
        while (rev) {
            closing_cb *nx = rev->next;
            rev->fn(rev->arg);
            http_exchange_release(rev->ex);
            free(rev);
            rev = nx;
        }
    }
    while (lp->grave) {
        conn *c = lp->grave;
        conn_unlink(&lp->grave, c);
        conn_free(c);
    }
}

static void loop_run_posts(loop *lp)
{
    pthread_mutex_lock(&lp->mu);
    post *q = lp->q_head;
    lp->q_head = lp->q_tail = NULL;
    pthread_mutex_unlock(&lp->mu);
    while (q) {
        post *nx = q->next;
        q->fn(q->ex, q->arg);
        free(q);
        q = nx;
    }
}

static void loop_sweep(loop *lp, uint64_t now)
{
    http_server *s = lp->srv;
    conn *c = lp->live;
    while (c) {
        conn *nx = c->next;
        int pending = c->out_off < c->out_len;
        if (c->closing) {
            /* nothing */
        } else if (c->state == ST_HANDLING || c->state == ST_DONE || pending) {
            /* only a write stall is timed here: the handler may take its time */
            if (!pending)
                c->deadline_ms = 0;
            else if (!c->deadline_ms)
                c->deadline_ms = now + (uint64_t)s->p.body_timeout_ms;
            else if (now >= c->deadline_ms)
                conn_close(c);
        } else if (c->deadline_ms && now >= c->deadline_ms) {
            if (c->state == ST_HEAD && c->in_len > 0) {
                log_pack(LOG_INFO, "ward.http", "header timeout", "{s:s}", "remote", c->remote);
                c->deadline_ms = 0;
                send_error(c, 408, "request header timeout");
            } else if (c->state == ST_BODY || c->state == ST_CHUNKED) {
                log_pack(LOG_INFO, "ward.http", "body timeout", "{s:s}", "remote", c->remote);
                c->deadline_ms = 0;
                send_error(c, 408, "request body timeout");
            } else {
                conn_close(c); /* idle keep-alive, or a fresh connection that sent nothing */
            }
        }
        c = nx;
    }
}

static void loop_begin_drain(loop *lp)
{
    http_server *s = lp->srv;
    lp->draining = 1;
    lp->drain_deadline = clock_mono_ms() + (uint64_t)(s->p.shutdown_grace_ms > 0 ? s->p.shutdown_grace_ms : 0);
    if (lp->lfd >= 0) {
        epoll_ctl(lp->epfd, EPOLL_CTL_DEL, lp->lfd, NULL);
        close(lp->lfd);
        lp->lfd = -1;
    }
    conn *c = lp->live;
    while (c) {
        conn *nx = c->next;
        if (c->state == ST_HEAD && c->out_off == c->out_len)
            conn_close(c); /* idle, or a head not complete: not in flight */
        else
            c->keep_alive = 0;
        c = nx;
    }
}

static void *loop_main(void *arg)
{
    loop *lp = arg;
    http_server *s = lp->srv;
    struct epoll_event evs[HTTP_EPOLL_BATCH];
    for (;;) {
        if (atomic_load(&s->stop_flag) && !lp->draining)
            loop_begin_drain(lp);
        if (lp->draining) {
            if (!lp->live)
                break;
            if (clock_mono_ms() >= lp->drain_deadline) {
                log_pack(LOG_WARN, "ward.http", "grace period over; closing connections", "{s:I}", "connections",
                         (json_int_t)lp->n_live);
                while (lp->live)
                    conn_close(lp->live);
                break;
            }
        }
        int timeout = lp->live ? s->sweep_ms : -1;
        if (lp->draining)
            timeout = s->sweep_ms;
        int n = epoll_wait(lp->epfd, evs, HTTP_EPOLL_BATCH, timeout);
        if (n < 0 && errno != EINTR) {
            log_pack(LOG_ERROR, "ward.http", "epoll_wait failed", "{s:s}", "error", strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            int kind = *(int *)evs[i].data.ptr;
            if (kind == EV_LISTEN) {
                if (!lp->draining)
                    loop_accept(lp);
            } else if (kind == EV_EVENT) {
                uint64_t v;
                ssize_t r = read(lp->efd, &v, sizeof v);
                (void)r;
                loop_run_posts(lp);
            } else {
                conn *c = evs[i].data.ptr;
                if (!c->closing)
                    conn_event(c, evs[i].events);
            }
        }
        uint64_t now = clock_mono_ms();
        if (now >= lp->next_sweep) {
            loop_sweep(lp, now);
            lp->next_sweep = now + (uint64_t)s->sweep_ms;
        }
        loop_reap(lp);
    }
    loop_reap(lp);
    /* Refuse new posts, then run the ones queued: their exchanges are closed,
     * so the callbacks see that and release what they hold. */
    pthread_mutex_lock(&lp->mu);
    lp->q_dead = 1;
    pthread_mutex_unlock(&lp->mu);
    loop_run_posts(lp);
    return NULL;
}

int http_exchange_post(http_exchange *ex, void (*fn)(http_exchange *ex, void *arg), void *arg)
{
    loop *lp = ex->lp;
    post *p = malloc(sizeof *p);
    if (!p)
        return -1;
    p->next = NULL;
    p->ex = ex;
    p->fn = fn;
    p->arg = arg;
    pthread_mutex_lock(&lp->mu);
    if (lp->q_dead) {
        pthread_mutex_unlock(&lp->mu);
        free(p);
        return -1;
    }
    if (lp->q_tail)
        lp->q_tail->next = p;
    else
        lp->q_head = p;
    lp->q_tail = p;
    pthread_mutex_unlock(&lp->mu);
    uint64_t one = 1;
    ssize_t w = write(lp->efd, &one, sizeof one);
    (void)w;
    return 0;
}

/* ------------------------------------------------------------- server */

static int open_listener(http_server *s, int port, char *err, size_t errlen)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    int gr = getaddrinfo(s->host, ps, &hints, &res);
    if (gr != 0) {
        if (err && errlen)
            snprintf(err, errlen, "cannot resolve host '%s': %s", s->host, gai_strerror(gr));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0 && err && errlen)
        snprintf(err, errlen, "cannot listen on %s port %d: %s", s->host, port, strerror(errno));
    return fd;
}

http_server *http_server_new(const http_params *p, const http_handler *h, char *err, size_t errlen)
{
    if (!p || !h) {
        if (err && errlen)
            snprintf(err, errlen, "missing parameters");
        return NULL;
    }
    if (p->threads < 1 || p->threads > HTTP_MAX_THREADS || p->max_headers < 1 || p->max_headers > HTTP_MAX_HEADERS_LIMIT || p->max_header_bytes < 64 ||
        p->max_connections < 1 || p->port < 0 || p->port > 65535 || p->max_output_bytes < 1024 ||
        p->max_body_bytes > (SIZE_MAX / 4) || p->max_header_bytes > (SIZE_MAX / 4) ||
        p->header_timeout_ms < 1 || p->idle_timeout_ms < 1 || p->body_timeout_ms < 1 || p->shutdown_grace_ms < 0) {
        if (err && errlen)
            snprintf(err, errlen, "invalid server parameters");
        return NULL;
    }
    if ((p->tls_cert == NULL) != (p->tls_key == NULL)) {
        if (err && errlen)
            snprintf(err, errlen, "TLS needs both a certificate and a key");
        return NULL;
    }
    http_server *s = calloc(1, sizeof *s);
    if (!s)
        goto oom;
    s->p = *p;
    s->h = *h;
    s->host = strdup(p->host ? p->host : "127.0.0.1");
    if (!s->host)
        goto oom;
    s->p.host = s->host;
    if (p->tls_cert) {
        s->tls_cert = strdup(p->tls_cert);
        s->tls_key = strdup(p->tls_key);
        if (!s->tls_cert || !s->tls_key)
            goto oom;
        s->p.tls_cert = s->tls_cert;
        s->p.tls_key = s->tls_key;
        s->tls = http_tls_new(s->tls_cert, s->tls_key, err, errlen);
        if (!s->tls)
            goto fail;
    }
    int mn = p->header_timeout_ms;
    if (p->idle_timeout_ms < mn)
        mn = p->idle_timeout_ms;
    if (p->body_timeout_ms < mn)
        mn = p->body_timeout_ms;
    s->sweep_ms = mn / 4;
    if (s->sweep_ms < HTTP_SWEEP_MIN_MS)
        s->sweep_ms = HTTP_SWEEP_MIN_MS;
    if (s->sweep_ms > HTTP_SWEEP_MAX_MS)
        s->sweep_ms = HTTP_SWEEP_MAX_MS;
    atomic_init(&s->stop_flag, 0);
    atomic_init(&s->n_conns, 0);
    s->nloops = p->threads;
    s->loops = calloc((size_t)s->nloops, sizeof *s->loops);
    if (!s->loops)
        goto oom;
    for (int i = 0; i < s->nloops; i++) {
        loop *lp = &s->loops[i];
        lp->listen_kind = EV_LISTEN;
        lp->event_kind = EV_EVENT;
        lp->srv = s;
        lp->idx = i;
        lp->epfd = lp->lfd = lp->efd = -1;
        pthread_mutex_init(&lp->mu, NULL);
        lp->mu_ok = 1;
        lp->scratch = calloc((size_t)p->max_headers, sizeof *lp->scratch);
        if (!lp->scratch)
            goto oom;
    }
    for (int i = 0; i < s->nloops; i++) {
        loop *lp = &s->loops[i];
        lp->lfd = open_listener(s, i == 0 ? p->port : s->port, err, errlen);
        if (lp->lfd < 0)
            goto fail;
        if (i == 0) {
            struct sockaddr_storage ss;
            socklen_t sl = sizeof ss;
            getsockname(lp->lfd, (struct sockaddr *)&ss, &sl);
            s->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                               : ntohs(((struct sockaddr_in *)&ss)->sin_port);
        }
        lp->epfd = epoll_create1(EPOLL_CLOEXEC);
        lp->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (lp->epfd < 0 || lp->efd < 0) {
            errf(err, errlen, "epoll/eventfd");
            goto fail;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &lp->listen_kind};
        struct epoll_event ev2 = {.events = EPOLLIN, .data.ptr = &lp->event_kind};
        if (epoll_ctl(lp->epfd, EPOLL_CTL_ADD, lp->lfd, &ev) != 0 ||
            epoll_ctl(lp->epfd, EPOLL_CTL_ADD, lp->efd, &ev2) != 0) {
            errf(err, errlen, "epoll_ctl");
            goto fail;
        }
    }
    return s;
oom:
    if (err && errlen)
        snprintf(err, errlen, "out of memory");
fail:
    http_server_free(s);
    return NULL;
}

int http_server_port(const http_server *s) { return s->port; }

int http_server_run(http_server *s)
{
    for (int i = 1; i < s->nloops; i++) {
        if (pthread_create(&s->loops[i].th, NULL, loop_main, &s->loops[i]) != 0) {
            log_pack(LOG_ERROR, "ward.http", "cannot start event loop thread", NULL);
            http_server_stop(s);
            break;
        }
        s->loops[i].started = 1;
    }
    loop_main(&s->loops[0]);
    http_server_stop(s); /* loop 0 ended (stop or failure): end the others too */
    for (int i = 1; i < s->nloops; i++)
        if (s->loops[i].started) {
            pthread_join(s->loops[i].th, NULL);
            s->loops[i].started = 0;
        }
    return 0;
}

void http_server_stop(http_server *s)
{
    if (!s)
        return;
    atomic_store(&s->stop_flag, 1);
    uint64_t one = 1;
    for (int i = 0; i < s->nloops; i++) {
        if (s->loops[i].efd >= 0) {
            ssize_t w = write(s->loops[i].efd, &one, sizeof one);
            (void)w;
        }
    }
}

void http_server_free(http_server *s)
{
    if (!s)
        return;
    for (int i = 0; s->loops && i < s->nloops; i++) {
        loop *lp = &s->loops[i];
        while (lp->live)
            conn_close(lp->live);
        loop_reap(lp);
        post *q = lp->q_head;
        while (q) {
            post *nx = q->next;
            free(q);
            q = nx;
        }
        if (lp->lfd >= 0)
            close(lp->lfd);
        if (lp->efd >= 0)
            close(lp->efd);
        if (lp->epfd >= 0)
            close(lp->epfd);
        if (lp->mu_ok)
            pthread_mutex_destroy(&lp->mu);
        free(lp->scratch);
    }
    free(s->loops);
    http_tls_free(s->tls);
    free(s->host);
    free(s->tls_cert);
    free(s->tls_key);
    free(s);
}
