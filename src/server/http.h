/* http: ward's HTTP/1.x server (epoll, non-blocking, strict parser).
 *
 * Threading: the server runs one or more event loops (params.threads), each on
 * its own thread with its own connections (SO_REUSEPORT). Handlers are called on
 * the loop thread that owns the connection. Every http_exchange_* function
 * that writes a response must be called on that loop thread, except
 * http_exchange_post(), http_exchange_hold() and http_exchange_release(),
 * which are thread-safe. Work done elsewhere (the engine) hands results back
 * with http_exchange_post().
 *
 * Lifecycle of one request ("exchange"):
 *   1. headers parsed -> handler.on_headers(ex, req). Authorization happens
 *      here, before any body byte is read. If on_headers responded (e.g. 401),
 *      the body is never read: the connection is closed after the response
 *      when a body was announced, else kept alive.
 *   2. body complete  -> handler.on_request(ex, req). The handler responds now
 *      or later (after http_exchange_hold + post from another thread).
 *   3. response finished (http_exchange_respond or http_exchange_stream_end)
 *      -> the access log line is written and the next request may be read.
 * If the client goes away first, the on_close callback set with
 * http_exchange_on_close() runs on the loop thread (cancellation); later
 * writes are ignored and return -1.
 */
#ifndef WARD_HTTP_H
#define WARD_HTTP_H

#include <stddef.h>
#include <stdint.h>

/* Defaults of the hard limits; every one is overridable (flags of `ward serve`). */
#define HTTP_MAX_HEADER_BYTES (16 * 1024)    /* request line + headers; 431 past it. Matches common proxies (nginx 8-16k) */
#define HTTP_MAX_BODY_BYTES (1024 * 1024)    /* 413 past it; a 128k-token prompt as JSON fits */
#define HTTP_MAX_HEADERS 100                 /* 431 past it; browsers send ~20 */
#define HTTP_HEADER_TIMEOUT_MS 10000         /* whole head must arrive within 10 s (slowloris) */
#define HTTP_BODY_TIMEOUT_MS 30000           /* no body progress for 30 s closes the connection */
#define HTTP_IDLE_TIMEOUT_MS 60000           /* idle keep-alive connection closed after 60 s */
#define HTTP_MAX_CONNECTIONS 4096            /* per server; past it new connections get 503 and close */
#define HTTP_SHUTDOWN_GRACE_MS 10000         /* in-flight requests get this long after SIGTERM */
#define HTTP_MAX_OUTPUT_BYTES (8 * 1024 * 1024) /* unsent bytes per connection before a slow reader is dropped */

typedef struct http_params {
    const char *host;            /* default "127.0.0.1" */
    int port;                    /* default 8080; 0 picks a free port (see http_server_port) */
    int threads;                 /* event loops; default 1 */
    size_t max_header_bytes;
    size_t max_body_bytes;
    int max_headers;
    int header_timeout_ms;
    int body_timeout_ms;
    int idle_timeout_ms;
    int max_connections;
    int shutdown_grace_ms;
    size_t max_output_bytes;
    const char *tls_cert;        /* PEM paths; both set = HTTPS (re-read when the files change) */
    const char *tls_key;
} http_params;

void http_default_params(http_params *p);

typedef struct http_header {
    const char *name;  size_t name_len;   /* NUL-terminated, as sent (case preserved) */
    const char *value; size_t value_len;  /* NUL-terminated, surrounding whitespace trimmed */
} http_header;

typedef struct http_request {
    const char *method;          /* "GET", "POST", ... */
    const char *target;          /* raw request-target */
    const char *path;            /* target up to '?', not decoded */
    const char *query;           /* after '?', "" when none */
    int minor_version;           /* HTTP/1.<minor>: 0 or 1 */
    const http_header *headers;
    size_t n_headers;
    const char *body;            /* NULL/0 in on_headers; complete in on_request */
    size_t body_len;
    const char *request_id;      /* x-request-id if sane, else a fresh UUIDv4 */
    const char *remote_addr;     /* "ip:port" */
} http_request;

/* Case-insensitive header lookup; first match, NUL-terminated, or NULL. */
const char *http_request_header(const http_request *r, const char *name);

typedef struct http_exchange http_exchange;
typedef struct http_server http_server;

typedef struct http_handler {
    /* Returns nonzero if it has responded (request done, body not read). */
    int (*on_headers)(http_exchange *ex, const http_request *req, void *ud);
    /* Must eventually lead to a response, unless the client goes away. */
    void (*on_request)(http_exchange *ex, const http_request *req, void *ud);
    void *ud;
} http_handler;

http_server *http_server_new(const http_params *p, const http_handler *h, char *err, size_t errlen);
/* Runs the loops until http_server_stop(); returns 0 after a graceful drain. */
int http_server_run(http_server *s);
/* Async-signal-safe: stop accepting, finish in-flight requests (grace period), return from run. */
void http_server_stop(http_server *s);
void http_server_free(http_server *s);
int http_server_port(const http_server *s);   /* the bound port */

/* ---- the exchange (loop thread unless noted) ---- */
const http_request *http_exchange_request(const http_exchange *ex); /* valid until finished */
/* Adds a response header (before respond/stream_begin). Values must not contain CR/LF. */
int http_exchange_add_header(http_exchange *ex, const char *name, const char *value);
/* Complete response with Content-Length. body may be NULL when len is 0. */
int http_exchange_respond(http_exchange *ex, int status, const char *content_type,
                          const char *body, size_t len);
/* Chunked (HTTP/1.1) or close-delimited (HTTP/1.0) streaming response. */
int http_exchange_stream_begin(http_exchange *ex, int status, const char *content_type);
int http_exchange_stream_write(http_exchange *ex, const char *data, size_t len);
int http_exchange_stream_end(http_exchange *ex);
/* True once the client has gone away (writes are then dropped). */
int http_exchange_closed(const http_exchange *ex);
/* fn(arg) runs on the loop thread when the client disconnects before the response ends:
 * at the end of that loop iteration, never inside an http_exchange_* call (so the
 * handler may hold its own locks while it writes). */
void http_exchange_on_close(http_exchange *ex, void (*fn)(void *arg), void *arg);
/* Per-exchange slot for the handler (e.g. the authorized identity). */
void http_exchange_set_user(http_exchange *ex, void *p);
void *http_exchange_user(const http_exchange *ex);
/* Extra access-log fields; identity name shown in the access log ("" = none). */
void http_exchange_set_log_identity(http_exchange *ex, const char *name);

/* Thread-safe. hold() keeps ex valid (memory, not the connection) until release(). */
void http_exchange_hold(http_exchange *ex);
void http_exchange_release(http_exchange *ex);
/* Thread-safe: runs fn(ex, arg) on ex's loop thread. The caller must hold ex. 0 or -1 (shutting down). */
int http_exchange_post(http_exchange *ex, void (*fn)(http_exchange *ex, void *arg), void *arg);

/* Reason phrase for a status code ("Not Found"). */
const char *http_status_text(int status);

#endif
