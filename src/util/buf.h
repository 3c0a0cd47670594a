/* buf: a growable byte buffer with a hard size limit, always NUL-terminated.
 *
 * Appends never fail loudly: on overflow of the limit or out of memory the
 * buffer goes into a sticky error state (buf_error() says which) and further
 * appends are ignored, so a builder can append freely and check once at the
 * end. The caller owns the buffer: buf_free() releases it, buf_take() hands
 * the bytes over (free() them). A zeroed buf is a valid empty buffer with
 * no limit beyond SIZE_MAX / 2.
 */
#ifndef WARD_BUF_H
#define WARD_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef enum { BUF_OK = 0, BUF_ENOMEM = 1, BUF_ETOOBIG = 2 } buf_status;

typedef struct {
    char *p;        /* NULL until the first append; NUL-terminated after it */
    size_t len;
    size_t cap;
    size_t max;     /* most bytes the buffer may hold (excluding the NUL); 0 = SIZE_MAX / 2 */
    buf_status err;
} buf;

/* max: the limit in bytes (0 = SIZE_MAX / 2). */
void buf_init(buf *b, size_t max);
void buf_free(buf *b);
void buf_reset(buf *b);               /* len = 0, error cleared, memory kept */

void buf_put(buf *b, const void *s, size_t n);
void buf_puts(buf *b, const char *s);
void buf_putc(buf *b, char c);
void buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

buf_status buf_error(const buf *b);
/* The bytes ("" when empty); valid until the next append or free. */
const char *buf_str(const buf *b);
/* Hands over the bytes (NUL-terminated, never NULL unless out of memory) and
 * leaves b empty. *len gets the length when len is not NULL. */
char *buf_take(buf *b, size_t *len);

#endif
