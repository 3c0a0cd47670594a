/* util/buf: appends, formatting, the size limit and the sticky error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

static void test_append_and_take(void **state)
{
    (void)state;
    buf b;
    buf_init(&b, 0);
    assert_string_equal(buf_str(&b), "");
    buf_puts(&b, "data: ");
    buf_printf(&b, "{\"n\":%d}", 42);
    buf_putc(&b, '\n');
    buf_put(&b, "\0x", 2); /* embedded NUL is kept */
    assert_int_equal(b.len, 6 + 8 + 1 + 2);
    assert_memory_equal(b.p, "data: {\"n\":42}\n\0x", b.len);
    assert_int_equal(buf_error(&b), BUF_OK);
    size_t n;
    char *p = buf_take(&b, &n);
    assert_int_equal(n, 17);
    assert_int_equal(p[n], '\0');
    assert_null(b.p);
    assert_int_equal(b.len, 0);
    free(p);
    buf_free(&b);
}

static void test_growth(void **state)
{
    (void)state;
    buf b;
    buf_init(&b, 0);
    for (int i = 0; i < 10000; i++)
        buf_printf(&b, "%04d", i % 10000);
    assert_int_equal(b.len, 40000);
    assert_memory_equal(b.p + 4 * 1234, "1234", 4);
    buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(buf_str(&b), "");
    buf_free(&b);
}

static void test_limit_is_sticky(void **state)
{
    (void)state;
    buf b;
    buf_init(&b, 10);
    buf_puts(&b, "0123456789");
    assert_int_equal(buf_error(&b), BUF_OK);
    buf_putc(&b, 'x');
    assert_int_equal(buf_error(&b), BUF_ETOOBIG);
    assert_int_equal(b.len, 10);
    buf_reset(&b);
    buf_puts(&b, "ab");
    buf_printf(&b, "%s", "0123456789"); /* 12 > 10 */
    assert_int_equal(buf_error(&b), BUF_ETOOBIG);
    buf_puts(&b, "c"); /* ignored once in error */
    assert_string_equal(buf_str(&b), "ab");
    buf_free(&b);
}

static void test_take_empty(void **state)
{
    (void)state;
    buf b;
    buf_init(&b, 0);
    size_t n = 99;
    char *p = buf_take(&b, &n);
    assert_non_null(p);
    assert_int_equal(n, 0);
    assert_string_equal(p, "");
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_and_take),
        cmocka_unit_test(test_growth),
        cmocka_unit_test(test_limit_is_sticky),
        cmocka_unit_test(test_take_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
