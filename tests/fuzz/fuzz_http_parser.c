/* libFuzzer target for the HTTP/1.x request parser: the input is fed as a
 * request head (whole, then split at a point taken from the first byte), and
 * whatever follows a complete head is decoded as a chunked body. Invariants
 * checked: results agree between whole and split feeding, parsed pointers lie
 * inside the buffer, the decoded body never exceeds the limit. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/http_parser.h"

#define FUZZ_MAX_HEADER_BYTES 2048
#define FUZZ_MAX_HEADERS 16
#define FUZZ_MAX_BODY 4096

static int run(const uint8_t *data, size_t size, size_t split, hp_head *h, int *status, size_t *n_hdrs)
{
    static const hp_limits lim = {FUZZ_MAX_HEADER_BYTES, FUZZ_MAX_HEADERS, FUZZ_MAX_BODY};
    char *buf = malloc(size ? size : 1);
    if (!buf)
        return -2;
    memcpy(buf, data, size);
    hp_parser p;
    hp_init(&p, &lim);
    http_header hdrs[FUZZ_MAX_HEADERS];
    int r = HP_NEED_MORE;
    if (split && split < size)
        r = hp_parse_head(&p, buf, split, h, hdrs, FUZZ_MAX_HEADERS);
    if (r == HP_NEED_MORE)
        r = hp_parse_head(&p, buf, size, h, hdrs, FUZZ_MAX_HEADERS);
    *status = p.status;
    *n_hdrs = 0;
    if (r == HP_DONE) {
        *n_hdrs = h->n_headers;
        if (h->head_len > size || h->head_len > FUZZ_MAX_HEADER_BYTES || h->n_headers > FUZZ_MAX_HEADERS)
            abort();
        for (size_t i = 0; i < h->n_headers; i++) {
            uintptr_t lo = (uintptr_t)buf, hi = lo + h->head_len;
            uintptr_t a = (uintptr_t)hdrs[i].name, b = (uintptr_t)hdrs[i].value;
            if (a < lo || a >= hi || b < lo || b >= hi || strlen(hdrs[i].name) != hdrs[i].name_len ||
                strlen(hdrs[i].value) != hdrs[i].value_len)
                abort();
        }
        if (h->body_kind == HP_BODY_CHUNKED) {
            size_t dec = 0, used = 0;
            size_t blen = size - h->head_len;
            char *body = buf + h->head_len;
            int cr = hp_chunked_decode(&p, body, blen, &dec, &used);
            if (cr == HP_NEED_MORE)
                blen = hp_chunked_compact(&p, body, blen);
            if (dec > FUZZ_MAX_BODY || used > size - h->head_len || blen > size - h->head_len)
                abort();
        } else if (h->body_kind == HP_BODY_LENGTH && h->content_length > FUZZ_MAX_BODY) {
            abort();
        }
    }
    free(buf);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hp_head h1, h2;
    int s1 = 0, s2 = 0;
    size_t n1, n2;
    int r1 = run(data, size, 0, &h1, &s1, &n1);
    size_t split = size ? (size_t)data[0] % (size + 1) : 0;
    int r2 = run(data, size, split, &h2, &s2, &n2);
    if (r1 == -2 || r2 == -2)
        return 0;
    if (r1 != r2 || (r1 == HP_ERROR && s1 != s2) || n1 != n2)
        abort();
    if (r1 == HP_DONE && (h1.head_len != h2.head_len || h1.body_kind != h2.body_kind))
        abort();
    return 0;
}
