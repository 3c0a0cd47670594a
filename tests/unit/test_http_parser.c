/* Unit tests for the strict HTTP/1.x parser (src/server/http_parser.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "server/http_parser.h"

#define T_MAX_HEADER_BYTES 1024
#define T_MAX_HEADERS 10
#define T_MAX_BODY 1000

static const hp_limits LIM = {T_MAX_HEADER_BYTES, T_MAX_HEADERS, T_MAX_BODY};

typedef struct {
    int r;
    int status;
    hp_head head;
    http_header hdrs[T_MAX_HEADERS];
    char buf[8192];
} result;

/* Parses s in one go. The input is copied into a heap block of exactly its
 * size, so that ASan catches any read past the end. */
static int parse_all(const char *s, size_t n, result *out)
{
    hp_parser p;
    hp_init(&p, &LIM);
    char *b = malloc(n ? n : 1);
    assert_non_null(b);
    memcpy(b, s, n);
    out->r = hp_parse_head(&p, b, n, &out->head, out->hdrs, T_MAX_HEADERS);
    out->status = p.status;
    if (n < sizeof out->buf) {
        memcpy(out->buf, b, n);
        /* re-aim pointers into out->buf so they outlive b */
        if (out->r == HP_DONE) {
            ptrdiff_t d = out->buf - b;
            out->head.method += d;
            out->head.target += d;
            uintptr_t q = (uintptr_t)out->head.query, lo = (uintptr_t)b;
            if (q >= lo && q < lo + n) /* "" when no query is a static string */
                out->head.query += d;
            for (size_t i = 0; i < out->head.n_headers; i++) {
                out->hdrs[i].name += d;
                out->hdrs[i].value += d;
            }
        }
    }
    free(b);
    return out->r;
}

static int parse_str(const char *s, result *out) { return parse_all(s, strlen(s), out); }

/* Feeds s one byte at a time (same buffer growing): the result must match. */
static int parse_bytewise(const char *s, int *status)
{
    size_t n = strlen(s);
    char *b = malloc(n + 1);
    assert_non_null(b);
    memcpy(b, s, n);
    hp_parser p;
    hp_init(&p, &LIM);
    hp_head h;
    http_header hdrs[T_MAX_HEADERS];
    int r = HP_NEED_MORE;
    for (size_t len = 1; len <= n && r == HP_NEED_MORE; len++)
        r = hp_parse_head(&p, b, len, &h, hdrs, T_MAX_HEADERS);
    *status = p.status;
    free(b);
    return r;
}

static void expect_error(const char *s, int status)
{
    result res;
    int r = parse_str(s, &res);
    if (r != HP_ERROR || res.status != status)
        fail_msg("input %s: got r=%d status=%d, want error %d", s, r, res.status, status);
    int st;
    r = parse_bytewise(s, &st);
    if (r != HP_ERROR || st != status)
        fail_msg("bytewise %s: got r=%d status=%d, want error %d", s, r, st, status);
}

static void test_simple_get(void **state)
{
    (void)state;
    result r;
    const char *req = "GET /v1/models?x=1 HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: t \r\n\r\n";
    assert_int_equal(parse_str(req, &r), HP_DONE);
    assert_string_equal(r.head.method, "GET");
    assert_int_equal(r.head.method_id, HP_METHOD_GET);
    assert_string_equal(r.head.target, "/v1/models?x=1");
    assert_int_equal(r.head.path_len, strlen("/v1/models"));
    assert_string_equal(r.head.query, "x=1");
    assert_int_equal(r.head.minor_version, 1);
    assert_int_equal(r.head.n_headers, 2);
    assert_string_equal(r.hdrs[0].name, "Host");
    assert_string_equal(r.hdrs[0].value, "localhost:8080");
    assert_string_equal(r.hdrs[1].value, "t"); /* trailing OWS trimmed */
    assert_int_equal(r.hdrs[1].value_len, 1);
    assert_int_equal(r.head.head_len, strlen(req));
    assert_int_equal(r.head.body_kind, HP_BODY_NONE);
    assert_int_equal(r.head.keep_alive, 1);
    int st;
    assert_int_equal(parse_bytewise(req, &st), HP_DONE);
}

static void test_incomplete(void **state)
{
    (void)state;
    result r;
    assert_int_equal(parse_str("", &r), HP_NEED_MORE);
    assert_int_equal(parse_str("GET / HTTP/1.1\r\nHost: a\r\n", &r), HP_NEED_MORE);
    assert_int_equal(parse_str("GET / HTTP/1.1\r\nHost: a\r\n\r", &r), HP_NEED_MORE);
    assert_int_equal(parse_str("GE", &r), HP_NEED_MORE);
    assert_int_equal(parse_str("\r", &r), HP_NEED_MORE);
}

static void test_versions(void **state)
{
    (void)state;
    result r;
    assert_int_equal(parse_str("GET / HTTP/1.0\r\n\r\n", &r), HP_DONE); /* 1.0 needs no Host */
    assert_int_equal(r.head.minor_version, 0);
    assert_int_equal(r.head.keep_alive, 0);
    assert_int_equal(parse_str("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &r), HP_DONE);
    assert_int_equal(r.head.keep_alive, 1);
    assert_int_equal(parse_str("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n", &r), HP_DONE);
    assert_int_equal(r.head.keep_alive, 0);
    expect_error("GET / HTTP/2.0\r\n\r\n", 505);
    expect_error("GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505);
    expect_error("GET / HTTP/0.9\r\n\r\n", 505);
    expect_error("GET / HTTP/1.10\r\nHost: a\r\n\r\n", 505);
    expect_error("GET /\r\n\r\n", 400);                /* HTTP/0.9 simple request */
    expect_error("GET / http/1.1\r\nHost: a\r\n\r\n", 400);
    expect_error("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400);
    expect_error("GET / HTTP/1.x\r\nHost: a\r\n\r\n", 400);
    expect_error("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 501); /* h2 preface: PRI is not ours */
}

static void test_methods(void **state)
{
    (void)state;
    result r;
    const char *ok[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"};
    for (size_t i = 0; i < 7; i++) {
        char b[128];
        snprintf(b, sizeof b, "%s / HTTP/1.1\r\nHost: a\r\n\r\n", ok[i]);
        assert_int_equal(parse_str(b, &r), HP_DONE);
        assert_string_equal(r.head.method, ok[i]);
    }
    expect_error("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", 501);
    expect_error("TRACE / HTTP/1.1\r\nHost: a\r\n\r\n", 501);
    expect_error("get / HTTP/1.1\r\nHost: a\r\n\r\n", 501); /* methods are case-sensitive */
    expect_error("PROPFINDX / HTTP/1.1\r\n\r\n", 501);
    expect_error("G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    expect_error(" GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    expect_error("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    /* garbage (a TLS ClientHello) is refused before any CRLF arrives */
    assert_int_equal(parse_all("\x16\x03\x01\x02\x00\x01", 6, &r), HP_ERROR);
    assert_int_equal(r.status, 400);
    assert_int_equal(parse_str("VERYLONGMETHOD", &r), HP_ERROR);
    assert_int_equal(r.status, 501);
}

static void test_targets(void **state)
{
    (void)state;
    result r;
    assert_int_equal(parse_str("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", &r), HP_DONE);
    assert_string_equal(r.head.target, "*");
    assert_int_equal(parse_str("GET /a%20b;c=d/@:!$&'()*+,= HTTP/1.1\r\nHost: a\r\n\r\n", &r), HP_DONE);
    expect_error("GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    expect_error("GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    expect_error("GET a:80 HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    expect_error("GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    expect_error("GET /a%2 HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    expect_error("GET /a%zz HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    expect_error("GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    expect_error("GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    expect_error("GET /a\"b HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    expect_error("GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", 400);
}

static void test_line_endings(void **state)
{
    (void)state;
    result r;
    expect_error("GET / HTTP/1.1\nHost: a\r\n\r\n", 400);
    expect_error("GET / HTTP/1.1\r\nHost: a\n\r\n", 400);
    expect_error("GET / HTTP/1.1\r\nHost: a\r\n\n", 400);
    expect_error("GET / HTTP/1.1\rHost: a\r\n\r\n", 400);
    expect_error("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400);
    assert_int_equal(parse_all("GET / HTTP/1.1\r\nHost: a\0\r\n\r\n", 28, &r), HP_ERROR);
    assert_int_equal(r.status, 400);
    assert_int_equal(parse_all("GET /\0 HTTP/1.1\r\n\r\n", 19, &r), HP_ERROR);
    assert_int_equal(r.status, 400);
    /* leading empty lines: up to HP_MAX_LEADING_EMPTY_LINES tolerated */
    assert_int_equal(parse_str("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", &r), HP_DONE);
    assert_string_equal(r.head.method, "GET");
    expect_error("\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
}

static void test_header_syntax(void **state)
{
    (void)state;
    result r;
    expect_error("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400);
    expect_error("GET / HTTP/1.1\r\nHost: a\r\n\tfolded\r\n\r\n", 400);
    expect_error("GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400);
    expect_error("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400);
    expect_error("GET / HTTP/1.1\r\nHo st: a\r\n\r\n", 400);
    expect_error("GET / HTTP/1.1\r\n: a\r\nHost: a\r\n\r\n", 400);
    expect_error("GET / HTTP/1.1\r\nHost a\r\n\r\n", 400);
    expect_error("GET / HTTP/1.1\r\nX(y): 1\r\nHost: a\r\n\r\n", 400);
    expect_error("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", 400);
    expect_error("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n", 400);
    /* obs-text and empty values are fine */
    assert_int_equal(parse_str("GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\nY:\r\n\r\n", &r), HP_DONE);
    assert_string_equal(r.hdrs[2].name, "Y");
    assert_string_equal(r.hdrs[2].value, "");
}

static void test_host(void **state)
{
    (void)state;
    result r;
    expect_error("GET / HTTP/1.1\r\n\r\n", 400);
    expect_error("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
    expect_error("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400);
    expect_error("GET / HTTP/1.1\r\nHost:\r\n\r\n", 400);
    expect_error("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400);
    assert_int_equal(parse_str("GET / HTTP/1.1\r\nhOsT: [::1]:80\r\n\r\n", &r), HP_DONE);
}

static void test_limits(void **state)
{
    (void)state;
    result r;
    /* exactly at the limit passes, one more byte fails with 431 */
    char big[T_MAX_HEADER_BYTES + 64];
    const char *pre = "GET / HTTP/1.1\r\nHost: a\r\nX: ";
    size_t fixed = strlen(pre) + 4; /* value + "\r\n\r\n" */
    memset(big, 0, sizeof big);
    strcpy(big, pre);
    memset(big + strlen(pre), 'v', T_MAX_HEADER_BYTES - fixed);
    strcat(big, "\r\n\r\n");
    assert_int_equal(strlen(big), T_MAX_HEADER_BYTES);
    assert_int_equal(parse_str(big, &r), HP_DONE);
    memset(big, 0, sizeof big);
    strcpy(big, pre);
    memset(big + strlen(pre), 'v', T_MAX_HEADER_BYTES - fixed + 1);
    strcat(big, "\r\n\r\n");
    expect_error(big, 431);
    /* an endless head with no CRLF at all */
    memset(big, 'a', sizeof big - 1);
    memcpy(big, "GET /", 5);
    big[sizeof big - 1] = '\0';
    expect_error(big, 431);

    /* header count */
    char many[2048] = "GET / HTTP/1.1\r\nHost: a\r\n";
    for (int i = 1; i < T_MAX_HEADERS; i++)
        strcat(many, "X: 1\r\n");
    char ok[2100];
    snprintf(ok, sizeof ok, "%s\r\n", many);
    assert_int_equal(parse_str(ok, &r), HP_DONE);
    assert_int_equal(r.head.n_headers, T_MAX_HEADERS);
    strcat(many, "Y: 2\r\n\r\n");
    expect_error(many, 431);
}

static void test_framing(void **state)
{
    (void)state;
    result r;
    assert_int_equal(parse_str("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n", &r), HP_DONE);
    assert_int_equal(r.head.body_kind, HP_BODY_LENGTH);
    assert_int_equal(r.head.content_length, 12);
    assert_int_equal(parse_str("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", &r), HP_DONE);
    assert_int_equal(r.head.body_kind, HP_BODY_NONE);
    assert_int_equal(parse_str("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n", &r),
                     HP_DONE);
    assert_int_equal(parse_str("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n", &r), HP_DONE);
    assert_int_equal(r.head.body_kind, HP_BODY_CHUNKED);
    assert_int_equal(parse_str("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n", &r), HP_DONE);

    expect_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n", 413);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", 400);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 400);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", 400);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n", 400);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", 400);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551615\r\n\r\n", 413);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n", 400);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                 400);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", 501);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 501);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked,\r\n\r\n", 400);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,\r\n\r\n", 400);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n", 400);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", 400);
    expect_error("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
}

static void test_expect(void **state)
{
    (void)state;
    result r;
    assert_int_equal(parse_str("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n", &r),
                     HP_DONE);
    assert_int_equal(r.head.expect_continue, 1);
    assert_int_equal(parse_str("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n", &r), HP_DONE);
    assert_int_equal(r.head.expect_continue, 0);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", 417);
}

/* ---- chunked bodies ---- */

static int decode(const char *raw, size_t n, char *out, size_t *out_len, size_t *consumed, int *status)
{
    hp_parser p;
    hp_init(&p, &LIM);
    char *b = malloc(n ? n : 1);
    assert_non_null(b);
    memcpy(b, raw, n);
    int r = hp_chunked_decode(&p, b, n, out_len, consumed);
    *status = p.status;
    if (r == HP_DONE)
        memcpy(out, b, *out_len);
    free(b);
    return r;
}

/* Byte-at-a-time with a compaction between calls, as the server does. */
static int decode_bytewise(const char *raw, size_t n, char *out, size_t *out_len, int *status)
{
    hp_parser p;
    hp_init(&p, &LIM);
    char *b = malloc(n + 1);
    assert_non_null(b);
    size_t have = 0, consumed = 0;
    int r = HP_NEED_MORE;
    for (size_t i = 0; i < n && r == HP_NEED_MORE; i++) {
        b[have++] = raw[i];
        r = hp_chunked_decode(&p, b, have, out_len, &consumed);
        if (r == HP_NEED_MORE)
            have = hp_chunked_compact(&p, b, have);
    }
    *status = p.status;
    if (r == HP_DONE)
        memcpy(out, b, *out_len);
    free(b);
    return r;
}

static void expect_chunked(const char *raw, const char *want)
{
    char out[2048];
    size_t ol = 0, used = 0;
    int st = 0;
    size_t n = strlen(raw);
    int r = decode(raw, n, out, &ol, &used, &st);
    if (r != HP_DONE)
        fail_msg("chunked %s: r=%d status=%d", raw, r, st);
    assert_int_equal(ol, strlen(want));
    assert_memory_equal(out, want, ol);
    assert_int_equal(used, n);
    r = decode_bytewise(raw, n, out, &ol, &st);
    if (r != HP_DONE)
        fail_msg("chunked bytewise %s: r=%d status=%d", raw, r, st);
    assert_int_equal(ol, strlen(want));
    assert_memory_equal(out, want, ol);
}

static void expect_chunked_error(const char *raw, int status)
{
    char out[2048];
    size_t ol = 0, used = 0;
    int st = 0;
    int r = decode(raw, strlen(raw), out, &ol, &used, &st);
    if (r != HP_ERROR || st != status)
        fail_msg("chunked %s: r=%d status=%d, want %d", raw, r, st, status);
    r = decode_bytewise(raw, strlen(raw), out, &ol, &st);
    if (r != HP_ERROR || st != status)
        fail_msg("chunked bytewise %s: r=%d status=%d, want %d", raw, r, st, status);
}

static void test_chunked_ok(void **state)
{
    (void)state;
    expect_chunked("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world");
    expect_chunked("A\r\n0123456789\r\n0\r\n\r\n", "0123456789");
    expect_chunked("a;name=val\r\n0123456789\r\n000\r\n\r\n", "0123456789");
    expect_chunked("3 ;x\r\nabc\r\n0\r\nX-Trailer: yes\r\nY: z\r\n\r\n", "abc");
    expect_chunked("0\r\n\r\n", "");
    expect_chunked("0000000000000003\r\nabc\r\n0\r\n\r\n", "abc");

    /* bytes after the body are left for the next request */
    char out[64];
    size_t ol, used;
    int st;
    const char *raw = "1\r\nx\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
    assert_int_equal(decode(raw, strlen(raw), out, &ol, &used, &st), HP_DONE);
    assert_int_equal(used, strlen("1\r\nx\r\n0\r\n\r\n"));
    assert_int_equal(ol, 1);

    /* incomplete */
    hp_parser p;
    hp_init(&p, &LIM);
    char b[] = "5\r\nhel";
    assert_int_equal(hp_chunked_decode(&p, b, strlen(b), &ol, &used), HP_NEED_MORE);
}

static void test_chunked_errors(void **state)
{
    (void)state;
    expect_chunked_error("\r\n", 400);
    expect_chunked_error("g\r\n", 400);
    expect_chunked_error("-1\r\n", 400);
    expect_chunked_error("+1\r\nx\r\n0\r\n\r\n", 400);
    expect_chunked_error("0x5\r\nhello\r\n0\r\n\r\n", 400);
    expect_chunked_error("5\nhello\r\n0\r\n\r\n", 400);
    expect_chunked_error("5\r\nhelloX\r\n0\r\n\r\n", 400);
    expect_chunked_error("5\r\nhello\n0\r\n\r\n", 400);
    expect_chunked_error("5\r\nhello\r\n0\r\n\n", 400);
    expect_chunked_error("5\r\nhello\r\n0\r\nX: y\n\r\n", 400);
    expect_chunked_error("5\r\nhello\r\n0\r\n folded\r\n\r\n", 400);
    expect_chunked_error("5\r\nhello\r\n0\r\nbad trailer\r\n\r\n", 400);
    expect_chunked_error("00000000000000001\r\nx\r\n0\r\n\r\n", 400);   /* > 16 digits */
    expect_chunked_error("FFFFFFFFFFFFFFFF\r\n", 413);                  /* 2^64-1: over the limit, no overflow */
    expect_chunked_error("3E9\r\n", 413);                               /* 1001 > 1000 */
    expect_chunked_error("1;\x01\r\nx\r\n0\r\n\r\n", 400);
    char ext[600] = "1;";
    memset(ext + 2, 'e', HP_MAX_CHUNK_EXT_BYTES + 1);
    strcat(ext, "\r\nx\r\n0\r\n\r\n");
    expect_chunked_error(ext, 400);
    /* accumulated chunks over the body limit */
    char many[4096] = "";
    for (int i = 0; i < 3; i++)
        strcat(many, "190\r\n"), memset(many + strlen(many), 'x', 400), strcat(many, "\r\n");
    strcat(many, "0\r\n\r\n");
    expect_chunked_error(many, 413);
    /* trailer section bounded */
    char *tr = malloc(HP_MAX_TRAILER_BYTES + 256);
    assert_non_null(tr);
    strcpy(tr, "0\r\nX: ");
    size_t k = strlen(tr);
    memset(tr + k, 'a', HP_MAX_TRAILER_BYTES);
    strcpy(tr + k + HP_MAX_TRAILER_BYTES, "\r\n\r\n");
    expect_chunked_error(tr, 431);
    free(tr);
    char trs[2048] = "0\r\n";
    for (int i = 0; i <= HP_MAX_TRAILERS; i++)
        strcat(trs, "T: 1\r\n");
    strcat(trs, "\r\n");
    expect_chunked_error(trs, 431);
}

static void test_method_lookup(void **state)
{
    (void)state;
    hp_method m;
    assert_true(hp_method_lookup("PATCH", 5, &m));
    assert_int_equal(m, HP_METHOD_PATCH);
    assert_false(hp_method_lookup("PATC", 4, &m));
    assert_false(hp_method_lookup("GETX", 4, &m));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_get),  cmocka_unit_test(test_incomplete),   cmocka_unit_test(test_versions),
        cmocka_unit_test(test_methods),     cmocka_unit_test(test_targets),      cmocka_unit_test(test_line_endings),
        cmocka_unit_test(test_header_syntax), cmocka_unit_test(test_host),       cmocka_unit_test(test_limits),
        cmocka_unit_test(test_framing),     cmocka_unit_test(test_expect),       cmocka_unit_test(test_chunked_ok),
        cmocka_unit_test(test_chunked_errors), cmocka_unit_test(test_method_lookup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
