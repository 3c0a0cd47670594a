/* http_parser: strict HTTP/1.x request parser. See http_parser.h. */
#include "server/http_parser.h"

#include <string.h>

/* Longest method name we implement ("OPTIONS"): a longer token is known to be
 * unimplemented before its end arrives, so garbage is refused at once. */
#define HP_MAX_METHOD_LEN 7

static const struct {
    const char *name;
    size_t len;
    hp_method id;
} methods[] = {
    {"GET", 3, HP_METHOD_GET},         {"HEAD", 4, HP_METHOD_HEAD},
    {"POST", 4, HP_METHOD_POST},       {"PUT", 3, HP_METHOD_PUT},
    {"DELETE", 6, HP_METHOD_DELETE},   {"OPTIONS", 7, HP_METHOD_OPTIONS},
    {"PATCH", 5, HP_METHOD_PATCH},
};

enum {
    CK_SIZE = 0,  /* hex digits of a chunk size */
    CK_EXT,       /* chunk extensions up to CR */
    CK_SIZE_LF,   /* LF after a chunk-size line */
    CK_DATA,      /* chunk data */
    CK_DATA_CR,   /* CR after chunk data */
    CK_DATA_LF,   /* LF after chunk data */
    CK_TRAILER,   /* inside a trailer line (or at the start of one) */
    CK_TRAILER_LF,/* LF after a trailer line */
    CK_END_LF,    /* LF of the final empty line */
    CK_DONE,
};

/* ---- character classes ---- */

static int is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* field-value bytes: HTAB, SP, VCHAR, obs-text. */
static int is_value_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static unsigned hex_val(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return c - 'A' + 10;
}

/* RFC 3986 pchar minus '%' (checked separately) plus '/' and '?'. */
static int is_target_char(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != 0 && strchr("-._~!$&'()*+,;=:@/?", c) != NULL;
}

/* Host: reg-name / IP-literal and port characters. */
static int is_host_char(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != 0 && strchr("-._~!$&'()*+,;=:[]%", c) != NULL;
}

static int ieq(const char *a, size_t n, const char *lit)
{
    size_t m = strlen(lit);
    if (n != m)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)lit[i];
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x - 'A' + 'a');
        if (x != y)
            return 0;
    }
    return 1;
}

static int fail(hp_parser *p, int status, const char *reason)
{
    p->status = status;
    p->reason = reason;
    return HP_ERROR;
}

int hp_method_lookup(const char *m, size_t n, hp_method *id)
{
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        if (methods[i].len == n && memcmp(methods[i].name, m, n) == 0) {
            *id = methods[i].id;
            return 1;
        }
    }
    return 0;
}

void hp_init(hp_parser *p, const hp_limits *lim)
{
    memset(p, 0, sizeof *p);
    p->lim = *lim;
}

/* Checks the method at buf[s..e) where e may be the end of the data so far
 * (complete = 0). Returns HP_DONE once a complete valid method is seen,
 * HP_NEED_MORE, or HP_ERROR. *sp receives the offset of the SP after it. */
static int check_method(hp_parser *p, const char *buf, size_t s, size_t e, int complete, size_t *sp)
{
    size_t i = s;
    while (i < e && buf[i] != ' ') {
        if (!complete && (buf[i] == '\r' || buf[i] == '\n'))
            return HP_NEED_MORE; /* the line's scan decides; checked in full at its end */
        if (!is_tchar((unsigned char)buf[i]))
            return fail(p, 400, "invalid character in method");
        i++;
        /* decided at the same byte however the input was split */
        if (i - s > HP_MAX_METHOD_LEN)
            return fail(p, 501, "method not implemented");
    }
    size_t n = i - s;
    if (i == e && !complete)
        return HP_NEED_MORE;
    if (n == 0)
        return fail(p, 400, "empty method");
    if (i == e)
        return fail(p, 400, "malformed request line");
    hp_method id;
    if (!hp_method_lookup(buf + s, n, &id))
        return fail(p, 501, "method not implemented");
    *sp = i;
    return HP_DONE;
}

/* Validates a complete request line buf[s..e) (e = offset of its CR). */
static int check_request_line(hp_parser *p, const char *buf, size_t s, size_t e)
{
    size_t sp1;
    int r = check_method(p, buf, s, e, 1, &sp1);
    if (r != HP_DONE)
        return r;
    size_t t = sp1 + 1;
    if (t >= e || buf[t] == ' ')
        return fail(p, 400, "malformed request line");
    size_t i = t;
    while (i < e && buf[i] != ' ')
        i++;
    if (i == e)
        return fail(p, 400, "missing HTTP version"); /* HTTP/0.9 simple request */
    size_t tlen = i - t;
    if (buf[t] == '*') {
        if (tlen != 1 || (sp1 - s) != 7 || memcmp(buf + s, "OPTIONS", 7) != 0)
            return fail(p, 400, "asterisk-form only with OPTIONS");
    } else if (buf[t] != '/') {
        return fail(p, 400, "request target must be origin-form");
    } else {
        for (size_t k = t; k < i; k++) {
            unsigned char c = (unsigned char)buf[k];
            if (c == '%') {
                if (k + 2 >= i || !is_hex((unsigned char)buf[k + 1]) || !is_hex((unsigned char)buf[k + 2]))
                    return fail(p, 400, "bad percent-encoding in target");
                k += 2;
            } else if (!is_target_char(c)) {
                return fail(p, 400, "invalid character in target");
            }
        }
    }
    size_t v = i + 1;
    size_t vlen = e - v;
    const char *ver = buf + v;
    if (vlen == 8 && memcmp(ver, "HTTP/", 5) == 0 && ver[5] >= '0' && ver[5] <= '9' && ver[6] == '.' &&
        ver[7] >= '0' && ver[7] <= '9') {
        if (ver[5] != '1' || (ver[7] != '0' && ver[7] != '1'))
            return fail(p, 505, "HTTP version not supported");
        return HP_DONE;
    }
    if (vlen > 5 && memcmp(ver, "HTTP/", 5) == 0) {
        /* HTTP/2 or HTTP/1.10: well-formed enough to be a version we lack */
        int ok = 1;
        for (size_t k = 5; k < vlen; k++)
            if (!((ver[k] >= '0' && ver[k] <= '9') || ver[k] == '.'))
                ok = 0;
        if (ok)
            return fail(p, 505, "HTTP version not supported");
    }
    return fail(p, 400, "malformed HTTP version");
}

/* Validates one header line buf[s..e) (no CRLF). */
static int check_field_line(hp_parser *p, const char *buf, size_t s, size_t e)
{
    unsigned char c0 = (unsigned char)buf[s];
    if (c0 == ' ' || c0 == '\t')
        return fail(p, 400, "obsolete line folding");
    size_t i = s;
    while (i < e && buf[i] != ':') {
        if (!is_tchar((unsigned char)buf[i]))
            return fail(p, 400, "invalid header name");
        i++;
    }
    if (i == e || i == s)
        return fail(p, 400, "invalid header line");
    for (i++; i < e; i++)
        if (!is_value_char((unsigned char)buf[i]))
            return fail(p, 400, "invalid character in header value");
    return HP_DONE;
}

/* Parses a comma-separated Connection value. */
static void parse_connection(const char *v, size_t n, int *close_, int *keep)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
            i++;
        if (ieq(v + s, i - s, "close"))
            *close_ = 1;
        else if (ieq(v + s, i - s, "keep-alive"))
            *keep = 1;
    }
}

/* Transfer-Encoding: 0 = exactly chunked, else an error status (400/501). */
static int parse_te(const char *v, size_t n)
{
    if (ieq(v, n, "chunked"))
        return 0;
    /* Split the list. Empty elements or bad bytes are malformed (400), and so
     * is chunked anywhere but last, or twice (RFC 9112 6.1). A well-formed
     * list of codings ending in chunked ("gzip, chunked") or without it is
     * valid HTTP that we do not implement (501). */
    size_t i = 0;
    int chunked_seen = 0;
    while (i <= n) {
        size_t s = i;
        while (i < n && v[i] != ',')
            i++;
        size_t a = s, b = i;
        while (a < b && (v[a] == ' ' || v[a] == '\t'))
            a++;
        while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
            b--;
        if (a == b)
            return 400;
        size_t k = a;
        while (k < b && is_tchar((unsigned char)v[k]))
            k++;
        if (k == a)
            return 400;
        if (k < b && v[k] != ';' && v[k] != ' ' && v[k] != '\t')
            return 400;
        if (chunked_seen)
            return 400; /* something after chunked */
        if (ieq(v + a, k - a, "chunked"))
            chunked_seen = 1;
        i++;
    }
    return 501;
}

/* Second pass over a complete, syntactically valid head: NUL-terminates the
 * elements, fills hdrs and head, and applies the framing rules. */
static int finish_head(hp_parser *p, char *buf, size_t head_len, hp_head *h, http_header *hdrs)
{
    memset(h, 0, sizeof *h);
    h->head_len = head_len;
    size_t s = p->req_line_start;
    char *sp1 = memchr(buf + s, ' ', head_len - s);
    char *sp2 = memchr(sp1 + 1, ' ', (size_t)(buf + head_len - (sp1 + 1)));
    char *cr = memchr(sp2 + 1, '\r', (size_t)(buf + head_len - (sp2 + 1)));
    *sp1 = '\0';
    *sp2 = '\0';
    h->method = buf + s;
    hp_method_lookup(h->method, (size_t)(sp1 - h->method), &h->method_id);
    h->target = sp1 + 1;
    h->target_len = (size_t)(sp2 - h->target);
    const char *q = memchr(h->target, '?', h->target_len);
    h->path_len = q ? (size_t)(q - h->target) : h->target_len;
    h->query = q ? q + 1 : "";
    h->minor_version = sp2[8] - '0';
    *cr = '\0';

    int n_host = 0, n_te = 0, have_cl = 0, conn_close = 0, conn_keep = 0;
    int te_status = 0;
    uint64_t cl = 0;
    size_t nh = 0;
    size_t ls = (size_t)(cr - buf) + 2;
    while (ls + 2 <= head_len) {
        char *lcr = memchr(buf + ls, '\r', head_len - ls);
        if (lcr == buf + ls)
            break; /* the empty line */
        char *colon = memchr(buf + ls, ':', (size_t)(lcr - (buf + ls)));
        char *vs = colon + 1, *ve = lcr;
        while (vs < ve && (*vs == ' ' || *vs == '\t'))
            vs++;
        while (ve > vs && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        *colon = '\0';
        *ve = '\0';
        http_header *hd = &hdrs[nh++];
        hd->name = buf + ls;
        hd->name_len = (size_t)(colon - (buf + ls));
        hd->value = vs;
        hd->value_len = (size_t)(ve - vs);
        ls = (size_t)(lcr - buf) + 2;

        const char *nm = hd->name, *v = hd->value;
        size_t nn = hd->name_len, vn = hd->value_len;
        if (ieq(nm, nn, "content-length")) {
            if (vn == 0)
                return fail(p, 400, "empty Content-Length");
            uint64_t x = 0;
            for (size_t k = 0; k < vn; k++) {
                if (v[k] < '0' || v[k] > '9')
                    return fail(p, 400, "invalid Content-Length");
                unsigned d = (unsigned)(v[k] - '0');
                if (x > (UINT64_MAX - d) / 10)
                    return fail(p, 400, "Content-Length overflows");
                x = x * 10 + d;
            }
            if (have_cl && x != cl)
                return fail(p, 400, "conflicting Content-Length headers");
            have_cl = 1;
            cl = x;
        } else if (ieq(nm, nn, "transfer-encoding")) {
            n_te++;
            te_status = parse_te(v, vn);
        } else if (ieq(nm, nn, "host")) {
            n_host++;
            if (vn == 0)
                return fail(p, 400, "empty Host");
            for (size_t k = 0; k < vn; k++)
                if (!is_host_char((unsigned char)v[k]))
                    return fail(p, 400, "invalid Host");
        } else if (ieq(nm, nn, "connection")) {
            parse_connection(v, vn, &conn_close, &conn_keep);
        } else if (ieq(nm, nn, "expect")) {
            if (!ieq(v, vn, "100-continue"))
                return fail(p, 417, "unsupported expectation");
            /* RFC 9110 10.1.1: ignore 100-continue from HTTP/1.0 clients */
            h->expect_continue = h->minor_version == 1;
        }
    }
    h->n_headers = nh;

    if (n_host > 1)
        return fail(p, 400, "several Host headers");
    if (h->minor_version == 1 && n_host == 0)
        return fail(p, 400, "missing Host header");
    if (n_te > 0 && have_cl)
        return fail(p, 400, "both Content-Length and Transfer-Encoding");
    if (n_te > 1)
        return fail(p, 400, "several Transfer-Encoding headers");
    if (n_te == 1) {
        if (h->minor_version == 0)
            return fail(p, 400, "Transfer-Encoding in HTTP/1.0");
        if (te_status == 501)
            return fail(p, 501, "transfer coding not implemented");
        if (te_status)
            return fail(p, 400, "invalid Transfer-Encoding");
        h->body_kind = HP_BODY_CHUNKED;
    } else if (have_cl) {
        if (cl > p->lim.max_body_bytes)
            return fail(p, 413, "body too large");
        h->content_length = cl;
        h->body_kind = cl ? HP_BODY_LENGTH : HP_BODY_NONE;
    }
    if (h->minor_version == 1)
        h->keep_alive = !conn_close;
    else
        h->keep_alive = conn_keep && !conn_close;
    return HP_DONE;
}

int hp_parse_head(hp_parser *p, char *buf, size_t len, hp_head *head, http_header *hdrs, size_t hdrs_cap)
{
    size_t max = p->lim.max_header_bytes;
    size_t max_headers = p->lim.max_headers < hdrs_cap ? p->lim.max_headers : hdrs_cap;
    /* The method is checked first, as soon as its bytes arrive, so garbage (a
     * TLS handshake on the plain port has no CRLF) is refused at once, and the
     * verdict does not depend on how the bytes were split into reads. */
    if (!p->req_line_done && len > p->line_start) {
        size_t sp;
        if (check_method(p, buf, p->line_start, len, 0, &sp) == HP_ERROR)
            return HP_ERROR;
    }
    size_t i = p->scanned;
    while (i < len) {
        if (i >= max)
            return fail(p, 431, "request header too large");
        unsigned char c = (unsigned char)buf[i];
        if (c == '\0')
            return fail(p, 400, "NUL in request head");
        if (c == '\n')
            return fail(p, 400, "bare LF in request head");
        if (c != '\r') {
            i++;
            continue;
        }
        if (i + 1 >= len)
            break; /* wait for the LF */
        if (buf[i + 1] != '\n')
            return fail(p, 400, "bare CR in request head");
        if (i + 1 >= max)
            return fail(p, 431, "request header too large");
        size_t ls = p->line_start, le = i;
        p->line_start = i + 2;
        i += 2;
        if (!p->req_line_done) {
            if (le == ls) {
                if (++p->empty_lines > HP_MAX_LEADING_EMPTY_LINES)
                    return fail(p, 400, "too many empty lines before request");
                p->req_line_start = p->line_start;
                size_t sp;
                if (check_method(p, buf, p->line_start, len, 0, &sp) == HP_ERROR)
                    return HP_ERROR;
                continue;
            }
            int r = check_request_line(p, buf, ls, le);
            if (r != HP_DONE)
                return r;
            p->req_line_done = 1;
            continue;
        }
        if (le == ls) {
            p->scanned = i;
            return finish_head(p, buf, i, head, hdrs) == HP_DONE ? HP_DONE : HP_ERROR;
        }
        if (++p->n_lines > max_headers)
            return fail(p, 431, "too many headers");
        int r = check_field_line(p, buf, ls, le);
        if (r != HP_DONE)
            return r;
    }
    p->scanned = i;
    return HP_NEED_MORE;
}

/* Validates one trailer line (reusing the header-field rules). */
static int check_trailer(hp_parser *p, const char *buf, size_t s, size_t e)
{
    if (++p->ck_trailers > HP_MAX_TRAILERS)
        return fail(p, 431, "too many trailers");
    return check_field_line(p, buf, s, e);
}

int hp_chunked_decode(hp_parser *p, char *body, size_t len, size_t *decoded_len, size_t *consumed)
{
    size_t in = p->in, out = p->out;
    int r = HP_NEED_MORE;
    while (in < len && p->ck_state != CK_DONE) {
        unsigned char c = (unsigned char)body[in];
        switch (p->ck_state) {
        case CK_SIZE:
            if (is_hex(c)) {
                if (++p->ck_digits > HP_MAX_CHUNK_SIZE_DIGITS) {
                    r = fail(p, 400, "chunk size too long");
                    goto done;
                }
                p->ck_remaining = (p->ck_remaining << 4) | hex_val(c);
                in++;
                break;
            }
            if (p->ck_digits == 0) {
                r = fail(p, 400, "invalid chunk size");
                goto done;
            }
            if (c == ';' || c == ' ' || c == '\t') {
                p->ck_state = CK_EXT;
                p->ck_ext = 0;
                break;
            }
            if (c != '\r') {
                r = fail(p, 400, "invalid chunk size");
                goto done;
            }
            /* out <= max_body_bytes always holds, so the subtraction is safe */
            if (p->ck_remaining > p->lim.max_body_bytes - out) {
                r = fail(p, 413, "body too large");
                goto done;
            }
            p->ck_state = CK_SIZE_LF;
            in++;
            break;
        case CK_EXT:
            if (c == '\r') {
                p->ck_state = CK_SIZE; /* handled there: size check, then LF */
                break;
            }
            if (!(c == '\t' || (c >= 0x20 && c != 0x7f)) || ++p->ck_ext > HP_MAX_CHUNK_EXT_BYTES) {
                r = fail(p, 400, "invalid chunk extension");
                goto done;
            }
            in++;
            break;
        case CK_SIZE_LF:
            if (c != '\n') {
                r = fail(p, 400, "missing LF after chunk size");
                goto done;
            }
            in++;
            p->ck_digits = 0;
            if (p->ck_remaining == 0) {
                p->ck_state = CK_TRAILER;
                p->ck_line_start = in;
            } else {
                p->ck_state = CK_DATA;
            }
            break;
        case CK_DATA: {
            size_t avail = len - in;
            size_t n = p->ck_remaining < avail ? (size_t)p->ck_remaining : avail;
            if (out != in)
                memmove(body + out, body + in, n);
            out += n;
            in += n;
            p->ck_remaining -= n;
            if (p->ck_remaining == 0)
                p->ck_state = CK_DATA_CR;
            break;
        }
        case CK_DATA_CR:
            if (c != '\r') {
                r = fail(p, 400, "missing CRLF after chunk data");
                goto done;
            }
            p->ck_state = CK_DATA_LF;
            in++;
            break;
        case CK_DATA_LF:
            if (c != '\n') {
                r = fail(p, 400, "missing CRLF after chunk data");
                goto done;
            }
            p->ck_state = CK_SIZE;
            in++;
            break;
        case CK_TRAILER:
            if (++p->ck_trailer_bytes > HP_MAX_TRAILER_BYTES) {
                r = fail(p, 431, "trailers too large");
                goto done;
            }
            if (c == '\r') {
                if (in == p->ck_line_start) {
                    p->ck_state = CK_END_LF;
                } else {
                    if (check_trailer(p, body, p->ck_line_start, in) != HP_DONE) {
                        r = HP_ERROR;
                        goto done;
                    }
                    p->ck_state = CK_TRAILER_LF;
                }
            } else if (c == '\n' || c == '\0') {
                r = fail(p, 400, "bare LF or NUL in trailers");
                goto done;
            }
            in++;
            break;
        case CK_TRAILER_LF:
        case CK_END_LF:
            if (c != '\n') {
                r = fail(p, 400, "bare CR in trailers");
                goto done;
            }
            if (++p->ck_trailer_bytes > HP_MAX_TRAILER_BYTES) {
                r = fail(p, 431, "trailers too large");
                goto done;
            }
            in++;
            if (p->ck_state == CK_END_LF) {
                p->ck_state = CK_DONE;
            } else {
                p->ck_state = CK_TRAILER;
                p->ck_line_start = in;
            }
            break;
        default:
            r = fail(p, 500, "chunked decoder state");
            goto done;
        }
    }
    if (p->ck_state == CK_DONE)
        r = HP_DONE;
done:
    p->in = in;
    p->out = out;
    *decoded_len = out;
    *consumed = in;
    return r;
}

size_t hp_chunked_compact(hp_parser *p, char *body, size_t len)
{
    /* A trailer line in progress is still read from the raw bytes: keep it. */
    size_t src = p->in;
    if (p->ck_state >= CK_TRAILER && p->ck_line_start < src)
        src = p->ck_line_start;
    if (src <= p->out || p->in > len)
        return len;
    size_t gap = src - p->out;
    memmove(body + p->out, body + src, len - src);
    p->in -= gap;
    if (p->ck_state >= CK_TRAILER)
        p->ck_line_start -= gap;
    return len - gap;
}
