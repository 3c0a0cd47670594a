/* buf: see buf.h. */
#include "util/buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUF_MIN_CAP 64

void buf_init(buf *b, size_t max)
{
    memset(b, 0, sizeof *b);
    b->max = max ? max : SIZE_MAX / 2;
}

void buf_free(buf *b)
{
    free(b->p);
    size_t max = b->max;
    memset(b, 0, sizeof *b);
    b->max = max;
}

void buf_reset(buf *b)
{
    b->len = 0;
    b->err = BUF_OK;
    if (b->p)
        b->p[0] = '\0';
}

/* Makes room for n more bytes plus the NUL; sets the error state on failure. */
static int reserve(buf *b, size_t n)
{
    if (b->err)
        return -1;
    size_t max = b->max ? b->max : SIZE_MAX / 2;
    if (n > max - b->len) { /* len <= max always, so no underflow */
        b->err = BUF_ETOOBIG;
        return -1;
    }
    size_t need = b->len + n + 1; /* <= max + 1 <= SIZE_MAX / 2 + 1 */
    if (need <= b->cap)
        return 0;
    size_t c = b->cap ? b->cap : BUF_MIN_CAP;
    while (c < need)
        c *= 2; /* c < 2 * need <= SIZE_MAX */
    char *q = realloc(b->p, c);
    if (!q) {
        b->err = BUF_ENOMEM;
        return -1;
    }
    b->p = q;
    b->cap = c;
    return 0;
}

void buf_put(buf *b, const void *s, size_t n)
{
    if (reserve(b, n) != 0)
        return;
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void buf_puts(buf *b, const char *s) { buf_put(b, s, strlen(s)); }

void buf_putc(buf *b, char c) { buf_put(b, &c, 1); }

void buf_vprintf(buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0 || reserve(b, (size_t)n) != 0)
        return;
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void buf_printf(buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(b, fmt, ap);
    va_end(ap);
}

buf_status buf_error(const buf *b) { return b->err; }

const char *buf_str(const buf *b) { return b->p ? b->p : ""; }

char *buf_take(buf *b, size_t *len)
{
    char *p = b->p;
    if (!p)
        p = calloc(1, 1);
    if (len)
        *len = p ? b->len : 0;
    size_t max = b->max;
    memset(b, 0, sizeof *b);
    b->max = max;
    return p;
}
