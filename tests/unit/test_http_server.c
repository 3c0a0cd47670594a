/* Unit tests for http_server (src/server/http_server.c) run in-process: a
 * test handler on a server thread, blocking loopback clients in the test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "server/http.h"
#include "util/log.h"

#define T_IO_TIMEOUT_MS 5000

typedef struct {
    http_server *srv;
    pthread_t th;
    int run_rc;
    atomic_int closed_calls;   /* on_close callbacks seen */
    atomic_int held;           /* exchanges parked by /hold */
    http_exchange *parked;
} fixture;

static fixture F;

/* ---- the test handler ---- */

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void on_closed(void *arg)
{
    (void)arg;
    atomic_fetch_add(&F.closed_calls, 1);
}

static void respond_later(http_exchange *ex, void *arg)
{
    (void)arg;
    if (!http_exchange_closed(ex))
        http_exchange_respond(ex, 200, "text/plain", "later", 5);
    http_exchange_release(ex);
}

static void *worker(void *arg)
{
    http_exchange *ex = arg;
    sleep_ms(100);
    if (http_exchange_post(ex, respond_later, NULL) != 0)
        http_exchange_release(ex);
    return NULL;
}

static int on_headers(http_exchange *ex, const http_request *req, void *ud)
{
    (void)ud;
    if (strcmp(req->path, "/deny") == 0) {
        http_exchange_add_header(ex, "WWW-Authenticate", "Bearer realm=\"t\"");
        http_exchange_respond(ex, 401, "text/plain", "no", 2);
        return 1;
    }
    return 0;
}

static void on_request(http_exchange *ex, const http_request *req, void *ud)
{
    (void)ud;
    if (strcmp(req->path, "/echo") == 0) {
        char h[64];
        snprintf(h, sizeof h, "%zu", req->body_len);
        http_exchange_add_header(ex, "X-Body-Len", h);
        http_exchange_respond(ex, 200, "application/octet-stream", req->body, req->body_len);
    } else if (strcmp(req->path, "/async") == 0) {
        http_exchange_hold(ex);
        pthread_t t;
        if (pthread_create(&t, NULL, worker, ex) == 0)
            pthread_detach(t);
        else
            http_exchange_release(ex);
    } else if (strcmp(req->path, "/stream") == 0) {
        http_exchange_stream_begin(ex, 200, "text/event-stream");
        http_exchange_stream_write(ex, "data: 1\n\n", 9);
        http_exchange_stream_write(ex, "data: 2\n\n", 9);
        http_exchange_stream_write(ex, "", 0);
        http_exchange_stream_write(ex, "data: [DONE]\n\n", 14);
        http_exchange_stream_end(ex);
    } else if (strcmp(req->path, "/hold") == 0) {
        /* never answered: the client's disconnect must cancel it */
        http_exchange_on_close(ex, on_closed, NULL);
        atomic_fetch_add(&F.held, 1);
    } else if (strcmp(req->path, "/flood") == 0) {
        http_exchange_on_close(ex, on_closed, NULL);
        static char blob[65536];
        memset(blob, 'x', sizeof blob);
        http_exchange_stream_begin(ex, 200, "text/plain");
        for (int i = 0; i < 2000; i++)
            if (http_exchange_stream_write(ex, blob, sizeof blob) != 0)
                break;
    } else if (strcmp(req->path, "/query") == 0) {
        char b[256];
        int n = snprintf(b, sizeof b, "%s|%s|%s|%s", req->method, req->path, req->query, req->target);
        http_exchange_respond(ex, 200, "text/plain", b, (size_t)n);
    } else {
        http_exchange_respond(ex, 404, "text/plain", "nf", 2);
    }
}

static void *server_main(void *arg)
{
    fixture *f = arg;
    f->run_rc = http_server_run(f->srv);
    return NULL;
}

static void start(http_params *p)
{
    memset(&F, 0, sizeof F);
    http_handler h = {on_headers, on_request, NULL};
    char err[256];
    p->host = "127.0.0.1";
    p->port = 0;
    F.srv = http_server_new(p, &h, err, sizeof err);
    if (!F.srv)
        fail_msg("http_server_new: %s", err);
    assert_int_equal(pthread_create(&F.th, NULL, server_main, &F), 0);
}

static void stop(void)
{
    http_server_stop(F.srv);
    pthread_join(F.th, NULL);
    assert_int_equal(F.run_rc, 0);
    http_server_free(F.srv);
    F.srv = NULL;
}

static int setup_default(void **state)
{
    (void)state;
    http_params p;
    http_default_params(&p);
    p.max_body_bytes = 4096;
    start(&p);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (F.srv)
        stop();
    return 0;
}

/* ---- a blocking client ---- */

static int dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)http_server_port(F.srv))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static void send_all(int fd, const char *s, size_t n)
{
    while (n) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        assert_true(w > 0);
        s += w;
        n -= (size_t)w;
    }
}

/* Reads until the peer closes, `until` appears (if given), or the timeout. */
static size_t recv_until(int fd, char *buf, size_t cap, const char *until)
{
    size_t n = 0;
    buf[0] = '\0';
    while (n + 1 < cap) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, T_IO_TIMEOUT_MS) <= 0)
            break;
        ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
        buf[n] = '\0';
        if (until && strstr(buf, until))
            break;
    }
    return n;
}

/* Whether the peer has closed (recv returns 0) within the timeout. */
static int peer_closed(int fd)
{
    char b[4096];
    for (;;) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, T_IO_TIMEOUT_MS) <= 0)
            return 0;
        ssize_t r = recv(fd, b, sizeof b, 0);
        if (r <= 0)
            return 1;
    }
}

static char *roundtrip(const char *req, char *buf, size_t cap)
{
    int fd = dial();
    send_all(fd, req, strlen(req));
    recv_until(fd, buf, cap, NULL);
    close(fd);
    return buf;
}

/* ---- tests ---- */

static void test_echo_content_length(void **state)
{
    (void)state;
    char b[8192];
    roundtrip("POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 11\r\n\r\nhello world", b,
              sizeof b);
    assert_non_null(strstr(b, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(b, "\r\nServer: ward\r\n"));
    assert_non_null(strstr(b, "\r\nContent-Length: 11\r\n"));
    assert_non_null(strstr(b, "\r\nConnection: close\r\n"));
    assert_non_null(strstr(b, "\r\nX-Body-Len: 11\r\n"));
    assert_non_null(strstr(b, "\r\nx-request-id: "));
    assert_non_null(strstr(b, "\r\n\r\nhello world"));
}

static void test_echo_chunked(void **state)
{
    (void)state;
    char b[8192];
    roundtrip("POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
              "5\r\nhello\r\n1;e=x\r\n \r\n5\r\nworld\r\n0\r\nT: 1\r\n\r\n",
              b, sizeof b);
    assert_non_null(strstr(b, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(b, "\r\nX-Body-Len: 11\r\n"));
    assert_non_null(strstr(b, "\r\n\r\nhello world"));
}

static void test_chunked_split_reads(void **state)
{
    (void)state;
    /* the same body, sent a few bytes at a time */
    const char *req = "POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    int fd = dial();
    for (size_t i = 0; req[i]; i += 3) {
        size_t n = strlen(req + i) < 3 ? strlen(req + i) : 3;
        send_all(fd, req + i, n);
        sleep_ms(1);
    }
    char b[4096];
    recv_until(fd, b, sizeof b, NULL);
    close(fd);
    assert_non_null(strstr(b, "\r\n\r\nhello world"));
}

static void test_body_too_large(void **state)
{
    (void)state;
    char b[4096];
    roundtrip("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n", b, sizeof b);
    assert_non_null(strstr(b, "HTTP/1.1 413 "));
    assert_non_null(strstr(b, "Connection: close"));
    char big[6000];
    int n = snprintf(big, sizeof big, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 5; i++)
        n += snprintf(big + n, sizeof big - (size_t)n, "3E8\r\n%01000d\r\n", 0);
    roundtrip(big, b, sizeof b);
    assert_non_null(strstr(b, "HTTP/1.1 413 "));
}

static void test_expect_continue(void **state)
{
    (void)state;
    int fd = dial();
    const char *h = "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n";
    send_all(fd, h, strlen(h));
    char b[4096];
    recv_until(fd, b, sizeof b, "\r\n\r\n");
    assert_string_equal(b, "HTTP/1.1 100 Continue\r\n\r\n");
    send_all(fd, "ping", 4);
    recv_until(fd, b, sizeof b, "ping");
    assert_non_null(strstr(b, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(b, "\r\n\r\nping"));
    close(fd);
}

static void test_pipelining(void **state)
{
    (void)state;
    char b[8192];
    roundtrip("GET /query?a=1 HTTP/1.1\r\nHost: t\r\n\r\n"
              "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
              "HEAD /query HTTP/1.1\r\nHost: t\r\n\r\n"
              "GET /query HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
              b, sizeof b);
    const char *p1 = strstr(b, "GET|/query|a=1|/query?a=1");
    const char *p2 = strstr(b, "\r\n\r\nabc");
    const char *p3 = strstr(b, "GET|/query||/query");
    assert_non_null(p1);
    assert_non_null(p2);
    assert_non_null(p3);
    assert_true(p1 < p2 && p2 < p3);
    assert_null(strstr(b, "HEAD|")); /* HEAD: headers only */
    int count = 0;
    for (const char *q = b; (q = strstr(q, "HTTP/1.1 200 OK")); q++)
        count++;
    assert_int_equal(count, 4);
}

static void test_async_post(void **state)
{
    (void)state;
    char b[4096];
    roundtrip("GET /async HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", b, sizeof b);
    assert_non_null(strstr(b, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(b, "\r\n\r\nlater"));
}

static void test_stream_chunked(void **state)
{
    (void)state;
    char b[4096];
    roundtrip("GET /stream HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", b, sizeof b);
    assert_non_null(strstr(b, "\r\nTransfer-Encoding: chunked\r\n"));
    assert_null(strstr(b, "Content-Length"));
    assert_non_null(strstr(b, "\r\n\r\n9\r\ndata: 1\n\n\r\n9\r\ndata: 2\n\n\r\ne\r\ndata: [DONE]\n\n\r\n0\r\n\r\n"));
    /* HTTP/1.0: no chunked coding, the close ends the body */
    roundtrip("GET /stream HTTP/1.0\r\n\r\n", b, sizeof b);
    assert_null(strstr(b, "chunked"));
    assert_non_null(strstr(b, "\r\n\r\ndata: 1\n\ndata: 2\n\ndata: [DONE]\n\n"));
    /* HEAD: headers only */
    roundtrip("HEAD /stream HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", b, sizeof b);
    assert_non_null(strstr(b, "HTTP/1.1 200 OK"));
    assert_null(strstr(b, "data:"));
}

static void test_request_id(void **state)
{
    (void)state;
    char b[4096];
    roundtrip("GET /query HTTP/1.1\r\nHost: t\r\nX-Request-Id: abc.DEF_09-z\r\nConnection: close\r\n\r\n", b,
              sizeof b);
    assert_non_null(strstr(b, "\r\nx-request-id: abc.DEF_09-z\r\n"));
    roundtrip("GET /query HTTP/1.1\r\nHost: t\r\nX-Request-Id: bad id!\r\nConnection: close\r\n\r\n", b, sizeof b);
    const char *id = strstr(b, "\r\nx-request-id: ");
    assert_non_null(id);
    id += strlen("\r\nx-request-id: ");
    assert_int_equal(strcspn(id, "\r"), 36);
    assert_int_equal(id[14], '4'); /* UUID version 4 */
}

static void test_deny_in_on_headers(void **state)
{
    (void)state;
    /* a body was announced but never read: answered, then the connection closes */
    int fd = dial();
    const char *h = "POST /deny HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n";
    send_all(fd, h, strlen(h));
    char b[4096];
    recv_until(fd, b, sizeof b, "no");
    assert_non_null(strstr(b, "HTTP/1.1 401 Unauthorized\r\n"));
    assert_non_null(strstr(b, "\r\nWWW-Authenticate: Bearer realm=\"t\"\r\n"));
    assert_non_null(strstr(b, "Connection: close"));
    assert_true(peer_closed(fd));
    close(fd);
    /* without a body the connection stays usable */
    fd = dial();
    const char *two = "GET /deny HTTP/1.1\r\nHost: t\r\n\r\nGET /query HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    send_all(fd, two, strlen(two));
    recv_until(fd, b, sizeof b, NULL);
    assert_non_null(strstr(b, "401"));
    assert_non_null(strstr(b, "GET|/query"));
    close(fd);
}

static void test_cancel_on_close(void **state)
{
    (void)state;
    int fd = dial();
    const char *h = "GET /hold HTTP/1.1\r\nHost: t\r\n\r\n";
    send_all(fd, h, strlen(h));
    for (int i = 0; i < 500 && atomic_load(&F.held) == 0; i++)
        sleep_ms(2);
    assert_int_equal(atomic_load(&F.held), 1);
    close(fd);
    for (int i = 0; i < 500 && atomic_load(&F.closed_calls) == 0; i++)
        sleep_ms(2);
    assert_int_equal(atomic_load(&F.closed_calls), 1);
}

static void test_slow_reader_dropped(void **state)
{
    (void)state;
    /* the client never reads: pending output passes the cap and the server drops it */
    int fd = dial();
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    const char *h = "GET /flood HTTP/1.1\r\nHost: t\r\n\r\n";
    send_all(fd, h, strlen(h));
    for (int i = 0; i < 1000 && atomic_load(&F.closed_calls) == 0; i++)
        sleep_ms(5);
    assert_int_equal(atomic_load(&F.closed_calls), 1);
    close(fd);
}

static void test_graceful_drain(void **state)
{
    (void)state;
    /* an in-flight async request finishes after stop(); idle connections close */
    int idle = dial();
    int fd = dial();
    const char *h = "GET /async HTTP/1.1\r\nHost: t\r\n\r\n";
    send_all(fd, h, strlen(h));
    sleep_ms(20);
    http_server_stop(F.srv);
    char b[4096];
    recv_until(fd, b, sizeof b, "later");
    assert_non_null(strstr(b, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(b, "Connection: close"));
    assert_non_null(strstr(b, "later"));
    assert_true(peer_closed(idle));
    pthread_join(F.th, NULL);
    assert_int_equal(F.run_rc, 0);
    http_server_free(F.srv);
    F.srv = NULL;
    close(fd);
    close(idle);
}

static void test_max_connections(void **state)
{
    (void)state;
    stop();
    http_params p;
    http_default_params(&p);
    p.max_connections = 2;
    start(&p);
    int a = dial(), b2 = dial();
    sleep_ms(50);
    int c = dial();
    char b[4096];
    recv_until(c, b, sizeof b, NULL);
    assert_non_null(strstr(b, "HTTP/1.1 503 "));
    close(c);
    close(a);
    close(b2);
}

static void test_params_rejected(void **state)
{
    (void)state;
    http_params p;
    http_default_params(&p);
    p.threads = 0;
    http_handler h = {on_headers, on_request, NULL};
    char err[128] = "";
    assert_null(http_server_new(&p, &h, err, sizeof err));
    assert_true(err[0] != '\0');
    http_default_params(&p);
    p.tls_cert = "/nonexistent.pem";
    assert_null(http_server_new(&p, &h, err, sizeof err));
    http_default_params(&p);
    p.port = 0;
    p.tls_cert = "/nonexistent-cert.pem";
    p.tls_key = "/nonexistent-key.pem";
    assert_null(http_server_new(&p, &h, err, sizeof err));
    assert_non_null(strstr(err, "nonexistent-cert.pem"));
    assert_string_equal(http_status_text(431), "Request Header Fields Too Large");
}

int main(void)
{
    log_set_level(LOG_ERROR); /* keep the test output to cmocka's */
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup_default, teardown)
    const struct CMUnitTest tests[] = {
        T(test_echo_content_length), T(test_echo_chunked),    T(test_chunked_split_reads),
        T(test_body_too_large),      T(test_expect_continue), T(test_pipelining),
        T(test_async_post),          T(test_stream_chunked),  T(test_request_id),
        T(test_deny_in_on_headers),  T(test_cancel_on_close), T(test_slow_reader_dropped),
        T(test_graceful_drain),      T(test_max_connections), cmocka_unit_test(test_params_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
