/* Unit tests for the incremental stop-string matcher. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/openai_stop.h"

/* Feeds pieces in order; collects emitted text in out; returns the match index. */
static int run(oai_stop *s, const char *const *pieces, size_t n, char *out, size_t cap)
{
    size_t used = 0;
    int m = -1;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const char *o;
        size_t ol;
        int rc = oai_stop_feed(s, pieces[i], strlen(pieces[i]), &o, &ol);
        assert_true(rc >= -1);
        assert_true(used + ol < cap);
        memcpy(out + used, o, ol);
        used += ol;
        out[used] = '\0';
        if (rc >= 0) {
            m = rc;
            break;
        }
    }
    if (m < 0) {
        const char *o;
        size_t ol;
        oai_stop_flush(s, &o, &ol);
        memcpy(out + used, o, ol);
        used += ol;
        out[used] = '\0';
    }
    return m;
}

static void test_no_stops_passthrough(void **state)
{
    (void)state;
    oai_stop *s = oai_stop_new(NULL, 0, 0);
    const char *o;
    size_t ol;
    assert_int_equal(oai_stop_feed(s, "hello", 5, &o, &ol), -1);
    assert_int_equal(ol, 5);
    assert_memory_equal(o, "hello", 5);
    oai_stop_free(s);
}

static void test_span_boundary_excluded(void **state)
{
    (void)state;
    const char *stops[] = {"STOP"};
    oai_stop *s = oai_stop_new(stops, 1, 0);
    const char *o;
    size_t ol;
    /* "ab S" -> "ab " emitted, "S" held back (could start STOP) */
    assert_int_equal(oai_stop_feed(s, "ab S", 4, &o, &ol), -1);
    assert_int_equal(ol, 3);
    assert_memory_equal(o, "ab ", 3);
    assert_int_equal(oai_stop_feed(s, "TO", 2, &o, &ol), -1);
    assert_int_equal(ol, 0); /* "STO" still held */
    assert_int_equal(oai_stop_feed(s, "Pxyz", 4, &o, &ol), 0);
    assert_int_equal(ol, 0); /* nothing before the stop, text after it dropped */
    assert_int_equal(oai_stop_matched(s), 0);
    /* later feeds emit nothing */
    assert_int_equal(oai_stop_feed(s, "more", 4, &o, &ol), 0);
    assert_int_equal(ol, 0);
    oai_stop_free(s);
}

static void test_false_start_released(void **state)
{
    (void)state;
    const char *stops[] = {"STOP"};
    oai_stop *s = oai_stop_new(stops, 1, 0);
    const char *o;
    size_t ol;
    assert_int_equal(oai_stop_feed(s, "ST", 2, &o, &ol), -1);
    assert_int_equal(ol, 0);
    assert_int_equal(oai_stop_feed(s, "AR", 2, &o, &ol), -1);
    assert_int_equal(ol, 4);
    assert_memory_equal(o, "STAR", 4);
    oai_stop_free(s);
}

static void test_include_stop_str(void **state)
{
    (void)state;
    const char *stops[] = {"\n\n", "END"};
    char out[128];
    oai_stop *s = oai_stop_new(stops, 2, 1);
    const char *pieces[] = {"Hello", " E", "N", "D tail"};
    assert_int_equal(run(s, pieces, 4, out, sizeof out), 1);
    assert_string_equal(out, "Hello END");
    oai_stop_free(s);

    s = oai_stop_new(stops, 2, 0);
    assert_int_equal(run(s, pieces, 4, out, sizeof out), 1);
    assert_string_equal(out, "Hello ");
    oai_stop_free(s);
}

static void test_earliest_match_wins(void **state)
{
    (void)state;
    const char *stops[] = {"world", "lo w"};
    char out[128];
    oai_stop *s = oai_stop_new(stops, 2, 0);
    const char *pieces[] = {"hello world"};
    assert_int_equal(run(s, pieces, 1, out, sizeof out), 1);
    assert_string_equal(out, "hel");
    oai_stop_free(s);
}

static void test_flush_releases_tail(void **state)
{
    (void)state;
    const char *stops[] = {"</s>"};
    char out[128];
    oai_stop *s = oai_stop_new(stops, 1, 0);
    const char *pieces[] = {"a <", "/"};
    assert_int_equal(run(s, pieces, 2, out, sizeof out), -1);
    assert_string_equal(out, "a </");
    oai_stop_free(s);
}

static void test_utf8_stop(void **state)
{
    (void)state;
    const char *stops[] = {"\xC3\xA9t\xC3\xA9"}; /* "été" */
    char out[128];
    oai_stop *s = oai_stop_new(stops, 1, 0);
    const char *pieces[] = {"l'\xC3\xA9", "t\xC3", "\xA9 fin"};
    assert_int_equal(run(s, pieces, 3, out, sizeof out), 0);
    assert_string_equal(out, "l'");
    oai_stop_free(s);
}

/* Brute-force cross-check: byte-by-byte feeding gives the same result as a
 * single feed, for many random strings over a small alphabet. */
static void test_random_equivalence(void **state)
{
    (void)state;
    const char *stops[] = {"aba", "bb", "cab"};
    unsigned seed = 12345;
    for (int iter = 0; iter < 500; iter++) {
        char text[32];
        size_t n = 1 + (seed % 30);
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            text[i] = "abc"[(seed >> 16) % 3];
        }
        text[n] = '\0';
        char out1[64], out2[64];
        oai_stop *s1 = oai_stop_new(stops, 3, 0);
        const char *one[] = {text};
        int m1 = run(s1, one, 1, out1, sizeof out1);
        oai_stop_free(s1);
        const char *bytes[32];
        char single[32][2];
        for (size_t i = 0; i < n; i++) {
            single[i][0] = text[i];
            single[i][1] = '\0';
            bytes[i] = single[i];
        }
        oai_stop *s2 = oai_stop_new(stops, 3, 0);
        int m2 = run(s2, bytes, n, out2, sizeof out2);
        oai_stop_free(s2);
        /* the same prefix is emitted; the index may differ only if two stops end at once */
        assert_string_equal(out1, out2);
        assert_int_equal(m1 >= 0, m2 >= 0);
        /* the emitted text never contains a stop string */
        for (size_t k = 0; k < 3; k++)
            assert_null(strstr(out1, stops[k]));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_stops_passthrough), cmocka_unit_test(test_span_boundary_excluded),
        cmocka_unit_test(test_false_start_released), cmocka_unit_test(test_include_stop_str),
        cmocka_unit_test(test_earliest_match_wins),  cmocka_unit_test(test_flush_releases_tail),
        cmocka_unit_test(test_utf8_stop),            cmocka_unit_test(test_random_equivalence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
