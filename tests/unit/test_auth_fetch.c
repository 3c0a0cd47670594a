/* Unit tests for auth_fetch: strict URL parsing, strict bounded response
 * parsing (Content-Length, chunked, close-delimited, incremental input,
 * malformed and oversized input) and the client against a loopback server
 * thread (body, Authorization header from the token file, non-200, refused
 * connection, timeout). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "auth/auth_fetch.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void test_url_good(void **state)
{
    (void)state;
    auth_fetch_url_parts u;
    char err[256];
    assert_int_equal(auth_fetch_parse_url("https://issuer.example.com/openid/v1/jwks", &u, err, sizeof err), 0);
    assert_int_equal(u.tls, 1);
    assert_int_equal(u.port, 443);
    assert_int_equal(u.default_port, 1);
    assert_string_equal(u.host, "issuer.example.com");
    assert_string_equal(u.path, "/openid/v1/jwks");

    assert_int_equal(auth_fetch_parse_url("http://127.0.0.1:8080", &u, err, sizeof err), 0);
    assert_int_equal(u.tls, 0);
    assert_int_equal(u.port, 8080);
    assert_int_equal(u.default_port, 0);
    assert_string_equal(u.host, "127.0.0.1");
    assert_string_equal(u.path, "/");

    assert_int_equal(auth_fetch_parse_url("https://[::1]:6443/keys?x=1&y=2", &u, err, sizeof err), 0);
    assert_int_equal(u.is_ip6, 1);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 6443);
    assert_string_equal(u.path, "/keys?x=1&y=2");

    assert_int_equal(auth_fetch_parse_url("http://kubernetes.default.svc?a=b", &u, err, sizeof err), 0);
    assert_string_equal(u.path, "/?a=b");
    assert_int_equal(u.port, 80);
}

static void test_url_bad(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "ftp://host/",
        "HTTPS://host/",
        "https://",
        "https:///path",
        "https://user:pw@host/",
        "https://user@host/",
        "https://host /x",
        "https://host/a b",
        "https://host/a\r\nX-Evil: 1",
        "https://host/\n",
        "https://host:0/",
        "https://host:65536/",
        "https://host:/",
        "https://host:12a/",
        "https://host:123456/",
        "https://[::1/",
        "https://[]/",
        "https://[not-ipv6]/",
        "https://[::1]x/",
        "https://ho_st/",
        "https://.host/",
        "https://a..b/",
        "https://host/#frag",
        "https://h\xc3\xa9st/",
        "https://host\t/",
    };
    char err[256];
    auth_fetch_url_parts u;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        if (auth_fetch_parse_url(bad[i], &u, err, sizeof err) != -1)
            fail_msg("accepted bad URL #%zu", i);
        assert_true(err[0] != 0);
        assert_null(strchr(err, '\n'));
    }
    /* The message never echoes the URL (it may carry a secret in the query). */
    assert_int_equal(auth_fetch_parse_url("https://u:secretpw@host/", &u, err, sizeof err), -1);
    assert_null(strstr(err, "secretpw"));
    /* Too long */
    char *longu = malloc(AUTH_FETCH_MAX_URL + 16);
    strcpy(longu, "https://h/");
    memset(longu + 10, 'a', AUTH_FETCH_MAX_URL);
    longu[AUTH_FETCH_MAX_URL + 10] = 0;
    assert_int_equal(auth_fetch_parse_url(longu, &u, err, sizeof err), -1);
    free(longu);
    char host[AUTH_FETCH_MAX_HOST + 32] = "https://";
    memset(host + 8, 'a', AUTH_FETCH_MAX_HOST + 1);
    host[AUTH_FETCH_MAX_HOST + 9] = 0;
    assert_int_equal(auth_fetch_parse_url(host, &u, err, sizeof err), -1);
}

static void test_redact(void **state)
{
    (void)state;
    char out[64];
    auth_fetch_redact_url("https://h/keys?token=abc", out, sizeof out);
    assert_string_equal(out, "https://h/keys");
    auth_fetch_redact_url("https://h/keys", out, sizeof out);
    assert_string_equal(out, "https://h/keys");
    auth_fetch_redact_url("https://h/keys?x", out, 5);
    assert_string_equal(out, "http");
}

/* Parses s (whole, eof as given) and returns the result code. */
static int parse(const char *s, size_t n, int eof, char **body, size_t *len, char *err, size_t errlen)
{
    return auth_fetch_parse_response(s, n, eof, body, len, err, errlen);
}

#define PARSE(s, eof) parse((s), sizeof(s) - 1, (eof), &body, &len, err, sizeof err)

static void test_response_good(void **state)
{
    (void)state;
    char *body;
    size_t len;
    char err[256];
    assert_int_equal(PARSE("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 0), AUTH_FETCH_DONE);
    assert_int_equal(len, 5);
    assert_string_equal(body, "hello");
    free(body);
    /* Extra bytes after a Content-Length body are ignored (we close). */
    assert_int_equal(PARSE("HTTP/1.0 200 OK\r\ncontent-length:  2 \r\n\r\nhixx", 1), AUTH_FETCH_DONE);
    assert_string_equal(body, "hi");
    free(body);
    assert_int_equal(PARSE("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-Trailer: y\r\n\r\n", 0),
                     AUTH_FETCH_DONE);
    assert_int_equal(len, 13);
    assert_string_equal(body, "abc0123456789");
    free(body);
    assert_int_equal(PARSE("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"keys\":[]}", 1),
                     AUTH_FETCH_DONE);
    assert_string_equal(body, "{\"keys\":[]}");
    free(body);
    assert_int_equal(PARSE("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", 0), AUTH_FETCH_DONE);
    assert_int_equal(len, 0);
    assert_string_equal(body, "");
    free(body);
}

static void test_response_incremental(void **state)
{
    (void)state;
    char *body;
    size_t len;
    char err[256];
    const char *full[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"keys\":[]}",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"key\r\n6\r\ns\":[]}\r\n0\r\n\r\n",
    };
    for (size_t k = 0; k < 2; k++) {
        size_t n = strlen(full[k]);
        for (size_t i = 0; i < n; i++)
            if (parse(full[k], i, 0, &body, &len, err, sizeof err) != AUTH_FETCH_NEED_MORE)
                fail_msg("case %zu: prefix %zu not NEED_MORE", k, i);
        assert_int_equal(parse(full[k], n, 0, &body, &len, err, sizeof err), AUTH_FETCH_DONE);
        assert_string_equal(body, "{\"keys\":[]}");
        free(body);
        /* Any proper prefix at EOF is a truncation error. */
        for (size_t i = 0; i < n; i++)
            if (parse(full[k], i, 1, &body, &len, err, sizeof err) != AUTH_FETCH_ERROR)
                fail_msg("case %zu: truncated prefix %zu accepted", k, i);
    }
    /* close-delimited waits for EOF */
    assert_int_equal(PARSE("HTTP/1.1 200 OK\r\n\r\nabc", 0), AUTH_FETCH_NEED_MORE);
}

static void expect_error(const char *s, const char *want)
{
    char *body = (char *)1;
    size_t len;
    char err[256] = "";
    int rc = auth_fetch_parse_response(s, strlen(s), 1, &body, &len, err, sizeof err);
    if (rc != AUTH_FETCH_ERROR)
        fail_msg("accepted: %.60s", s);
    assert_null(body);
    if (!strstr(err, want))
        fail_msg("error '%s' lacks '%s'", err, want);
}

static void test_response_bad(void **state)
{
    (void)state;
    expect_error("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", "HTTP status 404");
    expect_error("HTTP/1.1 301 Moved\r\nLocation: http://x/\r\n\r\n", "HTTP status 301");
    expect_error("HTTP/1.1 500 Oops secret\r\n\r\n", "HTTP status 500");
    expect_error("HTTP/2 200 OK\r\n\r\n", "not an HTTP/1.x response");
    expect_error("HTTP/1.1 20 OK\r\n\r\n", "not an HTTP/1.x response");
    expect_error("HTTP/1.1 200OK\r\n\r\n", "not an HTTP/1.x response");
    expect_error("garbage\r\n\r\n", "not an HTTP/1.x response");
    expect_error("", "empty response");
    expect_error("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n", "closed inside the response headers");
    expect_error("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "before the end of the body");
    expect_error("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "invalid Content-Length");
    expect_error("HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", "invalid Content-Length");
    expect_error("HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n", "invalid Content-Length");
    expect_error("HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n", "larger than");
    expect_error("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", "conflicting");
    expect_error("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                 "both Content-Length");
    expect_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "Transfer-Encoding");
    expect_error("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\nxx", "Content-Encoding");
    expect_error("HTTP/1.1 200 OK\r\n Folded: x\r\n\r\n", "folded");
    expect_error("HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", "invalid header name");
    expect_error("HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", "malformed header line");
    expect_error("HTTP/1.1 200 OK\nX: y\r\n\r\n", "malformed");
    expect_error("HTTP/1.1 200 OK\r\nX: a\x01" "b\r\n\r\n", "invalid header value");
    expect_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "malformed chunk size");
    expect_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n", "not followed by CRLF");
    expect_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n123456789\r\n", "chunk size too large");
    expect_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFF\r\n", "larger than");
    expect_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", "before the end of the chunked");
    expect_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n", "malformed chunk size");

    /* Oversized headers and bodies are refused before they are buffered whole. */
    size_t big = AUTH_FETCH_MAX_HEADER + 64;
    char *h = malloc(big + 1);
    memcpy(h, "HTTP/1.1 200 OK\r\nX: ", 20);
    memset(h + 20, 'a', big - 20);
    h[big] = 0;
    char *body;
    size_t len;
    char err[256];
    assert_int_equal(auth_fetch_parse_response(h, big, 0, &body, &len, err, sizeof err), AUTH_FETCH_ERROR);
    assert_non_null(strstr(err, "headers larger"));
    free(h);
    size_t bn = AUTH_FETCH_MAX_BODY + 64;
    char *b = malloc(bn);
    memcpy(b, "HTTP/1.1 200 OK\r\n\r\n", 19);
    memset(b + 19, 'x', bn - 19);
    assert_int_equal(auth_fetch_parse_response(b, bn, 0, &body, &len, err, sizeof err), AUTH_FETCH_ERROR);
    assert_non_null(strstr(err, "body larger"));
    free(b);
    /* Chunk line too long */
    size_t cn = 60 + AUTH_FETCH_MAX_CHUNK_LINE;
    char *c = malloc(cn);
    memcpy(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;", 49);
    memset(c + 49, 'e', cn - 49);
    assert_int_equal(auth_fetch_parse_response(c, cn, 0, &body, &len, err, sizeof err), AUTH_FETCH_ERROR);
    assert_non_null(strstr(err, "too long"));
    free(c);
}

/* ---- client against a loopback server thread ---- */

typedef struct srv {
    int lfd;
    int port;
    const char *reply;      /* sent after the request headers arrive; NULL = never answer */
    int reply_first;        /* send the reply without reading (a plain server facing TLS) */
    char request[4096];     /* what the client sent */
} srv;

static void *srv_main(void *arg)
{
    srv *s = arg;
    int fd = accept(s->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    size_t n = 0;
    while (!s->reply_first && n < sizeof s->request - 1 && !strstr(s->request, "\r\n\r\n")) {
        ssize_t r = recv(fd, s->request + n, sizeof s->request - 1 - n, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
        s->request[n] = 0;
    }
    if (s->reply) {
        ssize_t w = send(fd, s->reply, strlen(s->reply), MSG_NOSIGNAL);
        (void)w;
    } else {
        char c;
        ssize_t r = recv(fd, &c, 1, 0); /* until the client gives up */
        (void)r;
    }
    close(fd);
    return NULL;
}

static int srv_listen(srv *s)
{
    memset(s->request, 0, sizeof s->request);
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(s->lfd, 4) != 0 ||
        getsockname(s->lfd, (struct sockaddr *)&a, &al) != 0)
        return -1;
    s->port = ntohs(a.sin_port);
    return 0;
}

static void test_client(void **state)
{
    (void)state;
    char tokpath[] = "/tmp/ward-fetch-tokXXXXXX";
    int tfd = mkstemp(tokpath);
    assert_true(tfd >= 0);
    const char *tok = "sa-token-0123456789abcdef";
    assert_int_equal(write(tfd, tok, strlen(tok)), (ssize_t)strlen(tok));
    assert_int_equal(write(tfd, "\n", 1), 1);
    close(tfd);

    srv s = {.reply = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"k\"\r\n4\r\n:[]}\r\n0\r\n\r\n"};
    assert_int_equal(srv_listen(&s), 0);
    pthread_t th;
    pthread_create(&th, NULL, srv_main, &s);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/jwks?x=1", s.port);
    auth_fetch_opts o;
    auth_fetch_default_opts(&o);
    o.bearer_file = tokpath; /* the module itself allows http; auth.c only sends it over https */
    char *body = NULL;
    size_t len = 0;
    char err[256] = "";
    int rc = auth_fetch_url(url, &o, &body, &len, err, sizeof err);
    pthread_join(th, NULL);
    close(s.lfd);
    if (rc != 0)
        fail_msg("fetch failed: %s", err);
    assert_string_equal(body, "{\"k\":[]}");
    assert_int_equal(len, 8);
    free(body);
    assert_non_null(strstr(s.request, "GET /jwks?x=1 HTTP/1.1\r\n"));
    char host[64];
    snprintf(host, sizeof host, "\r\nHost: 127.0.0.1:%d\r\n", s.port);
    assert_non_null(strstr(s.request, host));
    assert_non_null(strstr(s.request, "\r\nConnection: close\r\n"));
    assert_non_null(strstr(s.request, "\r\nAuthorization: Bearer sa-token-0123456789abcdef\r\n"));

    /* Non-200: the status is named, the body is not echoed. */
    srv s2 = {.reply = "HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\n\r\nsecret"};
    assert_int_equal(srv_listen(&s2), 0);
    pthread_create(&th, NULL, srv_main, &s2);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", s2.port);
    assert_int_equal(auth_fetch_url(url, NULL, &body, &len, err, sizeof err), -1);
    pthread_join(th, NULL);
    close(s2.lfd);
    assert_null(body);
    assert_string_equal(err, "HTTP status 403 (want 200)");
    assert_null(strstr(s2.request, "Authorization"));

    /* A server that never answers: the timeout bounds the request. */
    srv s3 = {.reply = NULL};
    assert_int_equal(srv_listen(&s3), 0);
    pthread_create(&th, NULL, srv_main, &s3);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", s3.port);
    o.bearer_file = NULL;
    o.timeout_ms = 300;
    assert_int_equal(auth_fetch_url(url, &o, &body, &len, err, sizeof err), -1);
    pthread_join(th, NULL);
    close(s3.lfd);
    assert_non_null(strstr(err, "timed out"));

    /* Refused: nothing listens on the port we just closed. */
    assert_int_equal(auth_fetch_url(url, &o, &body, &len, err, sizeof err), -1);
    assert_non_null(strstr(err, "connect"));

    /* Token file problems never show the token. */
    o.bearer_file = "/nonexistent/token";
    assert_int_equal(auth_fetch_url(url, &o, &body, &len, err, sizeof err), -1);
    assert_non_null(strstr(err, "bearer token file"));
    FILE *f = fopen(tokpath, "w");
    fputs("two words", f);
    fclose(f);
    o.bearer_file = tokpath;
    assert_int_equal(auth_fetch_url(url, &o, &body, &len, err, sizeof err), -1);
    assert_non_null(strstr(err, "bearer token file"));
    assert_null(strstr(err, "words"));
    unlink(tokpath);

    /* https to a plain server fails the handshake, with verification on. */
    srv s4 = {.reply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", .reply_first = 1};
    assert_int_equal(srv_listen(&s4), 0);
    pthread_create(&th, NULL, srv_main, &s4);
    snprintf(url, sizeof url, "https://127.0.0.1:%d/", s4.port);
    o.bearer_file = NULL;
    o.timeout_ms = 2000;
    assert_int_equal(auth_fetch_url(url, &o, &body, &len, err, sizeof err), -1);
    pthread_join(th, NULL);
    close(s4.lfd);
    assert_non_null(strstr(err, "TLS"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_good),     cmocka_unit_test(test_url_bad),
        cmocka_unit_test(test_redact),       cmocka_unit_test(test_response_good),
        cmocka_unit_test(test_response_incremental), cmocka_unit_test(test_response_bad),
        cmocka_unit_test(test_client),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
