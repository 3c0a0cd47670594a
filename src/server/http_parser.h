/* http_parser: strict, incremental, allocation-free HTTP/1.x request parser.
 *
 * The parser never allocates. It reads the caller's buffer and, once a request
 * head is complete, writes NUL terminators into it (over the SP/CR/':' bytes
 * that end each element) so that the method, target and header names/values
 * are C strings pointing into that buffer. The pointers stay valid as long as
 * the caller keeps those bytes in place.
 *
 * Use:
 *   hp_parser p; hp_init(&p, &limits);
 *   loop: append received bytes to buf; r = hp_parse_head(&p, buf, len, &head, hdrs, cap);
 *         HP_NEED_MORE -> read more (call again with the same buf, longer len);
 *         HP_ERROR     -> send p.status (400/413/417/431/501/505) and close;
 *         HP_DONE      -> head.head_len bytes form the head; the body follows.
 *   chunked body: hp_chunked_decode() on the bytes after the head, in place.
 *
 * Decisions (documented in docs/http-server.md):
 *   - method: a token outside GET HEAD POST PUT DELETE OPTIONS PATCH -> 501
 *     (RFC 9110 15.6.2: the server does not implement it); a non-token -> 400.
 *     405 is the router's answer for a known method on a path without it.
 *   - target: origin-form ("/...") only, or "*" with OPTIONS; absolute-form,
 *     authority-form, fragments, controls, spaces and non-ASCII -> 400.
 *   - version: HTTP/1.0 and HTTP/1.1; any other well-formed HTTP/x.y -> 505;
 *     anything else (HTTP/0.9 has none) -> 400.
 *   - CRLF is required: bare LF, bare CR, NUL and obs-fold -> 400.
 *   - framing: CL+TE, differing CLs, non-digit or overflowing CL, several TE
 *     headers, TE in HTTP/1.0 -> 400; TE other than exactly "chunked" -> 501
 *     (a list of unknown codings) or 400 (malformed list); CL > max body -> 413.
 *   - HTTP/1.1 without Host, or several Host headers -> 400.
 *   - Expect other than "100-continue" -> 417.
 */
#ifndef WARD_HTTP_PARSER_H
#define WARD_HTTP_PARSER_H

#include <stddef.h>
#include <stdint.h>

#include "server/http.h"

/* Return values of hp_parse_head / hp_chunked_decode. */
#define HP_NEED_MORE 0
#define HP_DONE 1
#define HP_ERROR (-1)

/* Leading empty lines tolerated before a request line (RFC 9112 2.2 asks for
 * at least one; some clients send a CRLF after a POST body). */
#define HP_MAX_LEADING_EMPTY_LINES 2
/* Hex digits in a chunk size, leading zeros included: 16 is a full 64-bit value;
 * the size is also checked against the body limit before use. */
#define HP_MAX_CHUNK_SIZE_DIGITS 16
/* Bytes of chunk extensions on one chunk line; nothing uses extensions, so a
 * small bound stops them being used to stream unbounded data. */
#define HP_MAX_CHUNK_EXT_BYTES 256
/* Bytes of the trailer section after the last chunk (discarded). */
#define HP_MAX_TRAILER_BYTES 4096
/* Header fields in the trailer section. */
#define HP_MAX_TRAILERS 32

typedef enum {
    HP_METHOD_GET = 0,
    HP_METHOD_HEAD,
    HP_METHOD_POST,
    HP_METHOD_PUT,
    HP_METHOD_DELETE,
    HP_METHOD_OPTIONS,
    HP_METHOD_PATCH,
} hp_method;

typedef enum {
    HP_BODY_NONE = 0,   /* no body (no CL/TE, or CL: 0) */
    HP_BODY_LENGTH,     /* content_length bytes follow the head */
    HP_BODY_CHUNKED,    /* Transfer-Encoding: chunked */
} hp_body_kind;

typedef struct hp_limits {
    size_t max_header_bytes; /* request line + headers + final CRLF; 431 past it */
    size_t max_headers;      /* header fields; 431 past it (the caller's array must hold this many) */
    size_t max_body_bytes;   /* decoded body bytes; 413 past it */
} hp_limits;

/* A parsed request head; every pointer points into the caller's buffer. */
typedef struct hp_head {
    const char *method;      /* NUL-terminated */
    hp_method method_id;
    const char *target;      /* NUL-terminated raw request-target */
    size_t target_len;
    size_t path_len;         /* target[0..path_len) is the path (before '?') */
    const char *query;       /* after '?', NUL-terminated ("" when none) */
    int minor_version;       /* 0 or 1 */
    size_t n_headers;
    size_t head_len;         /* bytes of the head, final CRLF included */
    hp_body_kind body_kind;
    uint64_t content_length; /* HP_BODY_LENGTH only */
    int keep_alive;          /* 1.1 unless "Connection: close"; 1.0 only with "keep-alive" */
    int expect_continue;     /* "Expect: 100-continue" */
} hp_head;

/* Parser state. Zeroed and configured by hp_init; no resources to free. */
typedef struct hp_parser {
    hp_limits lim;
    int status;              /* HTTP status to answer with after HP_ERROR */
    const char *reason;      /* short static description of the error (safe to log) */
    /* head scan state */
    size_t scanned;          /* bytes of the head already checked */
    size_t line_start;       /* offset of the line being scanned */
    size_t req_line_start;   /* offset of the request line (after leading CRLFs) */
    int req_line_done;
    size_t n_lines;          /* header lines seen */
    int empty_lines;         /* leading empty lines skipped */
    /* chunked decode state */
    int ck_state;
    uint64_t ck_remaining;   /* data bytes left in the current chunk */
    size_t ck_digits;
    size_t ck_ext;
    size_t ck_trailer_bytes;
    size_t ck_trailers;
    size_t ck_line_start;    /* offset (in raw) of the current trailer line */
    size_t in;               /* raw body bytes consumed */
    size_t out;              /* decoded body bytes written */
} hp_parser;

/* Prepares p for a new request with the given limits. */
void hp_init(hp_parser *p, const hp_limits *lim);

/* Parses the request head in buf[0..len). buf must be the same buffer, holding
 * the same leading bytes, on every call for one request (len may grow).
 * hdrs must have room for lim.max_headers entries; on HP_DONE, hdrs[0..n_headers)
 * are filled, and buf[0..head_len) has been modified (NUL terminators).
 * Returns HP_NEED_MORE, HP_DONE or HP_ERROR (then p->status, p->reason). */
int hp_parse_head(hp_parser *p, char *buf, size_t len, hp_head *head,
                  http_header *hdrs, size_t hdrs_cap);

/* Decodes a chunked body in place. body[0..len) holds the raw bytes received
 * after the head so far (same buffer and leading bytes on every call; len may
 * grow). Decoded data is compacted to body[0..*decoded_len). Returns HP_DONE
 * when the last chunk and trailers are complete: *consumed is then the count of
 * raw bytes that formed the body (anything after it is the next request, still
 * at body[*consumed..len)). Returns HP_NEED_MORE or HP_ERROR (p->status). */
int hp_chunked_decode(hp_parser *p, char *body, size_t len, size_t *decoded_len, size_t *consumed);

/* Reclaims the raw bytes already decoded: moves body[p->in..len) down to
 * body[p->out..) and returns the new raw length. Call between hp_chunked_decode
 * calls to keep the buffer near the decoded size; decoded data is untouched. */
size_t hp_chunked_compact(hp_parser *p, char *body, size_t len);

/* True if the request line's method is one of the known tokens; sets *id. */
int hp_method_lookup(const char *m, size_t n, hp_method *id);

#endif
