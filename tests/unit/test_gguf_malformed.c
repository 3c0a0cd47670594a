/* Malformed GGUF input: every case must give its specific error, no crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/gguf.h"

/* ---- a little byte builder for hand-made files ---- */
typedef struct {
    uint8_t *p;
    size_t len, cap;
} bb;

static void put(bb *b, const void *v, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->len, v, n);
    b->len += n;
}
static void u8(bb *b, uint8_t v) { put(b, &v, 1); }
static void u32(bb *b, uint32_t v) { put(b, &v, 4); }
static void u64(bb *b, uint64_t v) { put(b, &v, 8); }
static void str(bb *b, const char *s) { u64(b, strlen(s)); put(b, s, strlen(s)); }
static void pad(bb *b, size_t a) { while (b->len % a) u8(b, 0); }

static void header(bb *b, uint32_t version, uint64_t nt, uint64_t nkv)
{
    put(b, "GGUF", 4);
    u32(b, version);
    u64(b, nt);
    u64(b, nkv);
}

/* tensor info: 1-D or 2-D */
static void tinfo(bb *b, const char *name, uint32_t nd, uint64_t ne0, uint64_t ne1, uint32_t type, uint64_t off)
{
    str(b, name);
    u32(b, nd);
    u64(b, ne0);
    if (nd > 1)
        u64(b, ne1);
    u32(b, type);
    u64(b, off);
}

/* Expects failure whose message contains want. */
static void expect_err(const bb *b, const char *want)
{
    char err[256] = "";
    gguf_file *f = gguf_open_buffer(b->p, b->len, err, sizeof err);
    if (f || !strstr(err, want))
        fail_msg("want error containing '%s', got %s '%s'", want, f ? "success" : "error", err);
    gguf_close(f);
}

static void expect_ok(const bb *b)
{
    char err[256] = "";
    gguf_file *f = gguf_open_buffer(b->p, b->len, err, sizeof err);
    if (!f)
        fail_msg("unexpected error: %s", err);
    gguf_close(f);
}

/* A valid file with one F32 tensor [4], ready for corruption. */
static void one_tensor(bb *b, uint32_t type, uint64_t ne0, uint64_t off, size_t data_bytes)
{
    header(b, 3, 1, 0);
    tinfo(b, "t", 1, ne0, 1, type, off);
    pad(b, 32);
    for (size_t i = 0; i < data_bytes; i++)
        u8(b, 0);
}

static void test_baseline_ok(void **s)
{
    (void)s;
    bb b = {0};
    one_tensor(&b, GGML_T_F32, 4, 0, 16);
    expect_ok(&b);
    free(b.p);
}

static void test_truncated_every_offset(void **s)
{
    (void)s;
    gguf_writer *w = gguf_writer_new();
    assert_int_equal(gguf_set_str(w, "general.architecture", "llama"), 0);
    assert_int_equal(gguf_set_u32(w, "a.u32", 7), 0);
    const char *toks[] = {"<s>", "hello", ""};
    assert_int_equal(gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, 3), 0);
    float sc[3] = {0, -1, -2};
    assert_int_equal(gguf_set_arr_f32(w, "tokenizer.ggml.scores", sc, 3), 0);
    assert_int_equal(gguf_set_bool(w, "b", 1), 0);
    float data[64] = {0};
    uint64_t ne[2] = {32, 2};
    assert_int_equal(gguf_add_tensor(w, "w", GGML_T_F32, 2, ne, data), 0);
    uint64_t ne1 = 32;
    uint8_t q[34] = {0};
    assert_int_equal(gguf_add_tensor(w, "q", GGML_T_Q8_0, 1, &ne1, q), 0);
    void *buf;
    size_t len;
    char err[256];
    assert_int_equal(gguf_writer_write_buffer(w, &buf, &len, err, sizeof err), 0);
    gguf_writer_free(w);
    gguf_file *f = gguf_open_buffer(buf, len, err, sizeof err);
    assert_non_null(f);
    const gguf_tensor *t = gguf_find_tensor(f, "q");
    size_t end = (size_t)(t->offset + t->n_bytes); /* after this only padding */
    gguf_close(f);
    for (size_t cut = 0; cut < len; cut++) {
        /* a fresh heap copy of exactly cut bytes, so ASan sees any overread */
        uint8_t *c = malloc(cut ? cut : 1);
        memcpy(c, buf, cut);
        err[0] = 0;
        f = gguf_open_buffer(c, cut, err, sizeof err);
        if (cut < end) {
            if (f)
                fail_msg("truncation at %zu accepted", cut);
            assert_true(strncmp(err, "gguf: ", 6) == 0);
        } else {
            assert_non_null(f);
        }
        gguf_close(f);
        free(c);
    }
    free(buf);
}

static void test_bad_magic(void **s)
{
    (void)s;
    bb b = {0};
    one_tensor(&b, GGML_T_F32, 4, 0, 16);
    b.p[0] = 'X';
    expect_err(&b, "bad magic");
    b.len = 2;
    expect_err(&b, "bad magic");
    free(b.p);
}

static void test_versions(void **s)
{
    (void)s;
    uint32_t bad[] = {0, 1, 4, 0xffffffffu};
    for (size_t i = 0; i < 4; i++) {
        bb b = {0};
        header(&b, bad[i], 0, 0);
        expect_err(&b, "unsupported version");
        free(b.p);
    }
    bb b = {0};
    header(&b, 0x03000000u, 0, 0);
    expect_err(&b, "big-endian");
    free(b.p);
    bb v2 = {0};
    header(&v2, 2, 0, 0);
    expect_ok(&v2);
    free(v2.p);
}

static void test_huge_counts(void **s)
{
    (void)s;
    bb b = {0};
    header(&b, 3, 1ull << 40, 0);
    expect_err(&b, "tensor count 1099511627776 exceeds");
    free(b.p);
    b = (bb){0};
    header(&b, 3, 0, UINT64_MAX);
    expect_err(&b, "kv count 18446744073709551615 exceeds");
    free(b.p);
    b = (bb){0};
    header(&b, 3, 1000, 1000); /* within limits but no bytes for them */
    expect_err(&b, "cannot fit");
    free(b.p);
}

static void test_huge_strings(void **s)
{
    (void)s;
    bb b = {0};
    header(&b, 3, 0, 1);
    u64(&b, 1ull << 62); /* key length */
    put(&b, "abcdefgh", 8);
    expect_err(&b, "key at offset 24 has length 4611686018427387904, over the limit");
    free(b.p);

    b = (bb){0};
    header(&b, 3, 0, 1);
    str(&b, "k");
    u32(&b, GGUF_T_STRING);
    u64(&b, GGUF_MAX_STRING + 1ull);
    put(&b, "xxxxxxxxxxxxxxxx", 16);
    expect_err(&b, "string value at offset 37 has length 1048577, over the limit");
    free(b.p);

    b = (bb){0};
    header(&b, 3, 0, 1);
    str(&b, "k");
    u32(&b, GGUF_T_STRING);
    u64(&b, 100); /* within the limit, past the end */
    put(&b, "xx", 2);
    expect_err(&b, "only 2 bytes are left");
    free(b.p);
}

static void test_huge_arrays(void **s)
{
    (void)s;
    bb b = {0};
    header(&b, 3, 0, 1);
    str(&b, "arr");
    u32(&b, GGUF_T_ARRAY);
    u32(&b, GGUF_T_UINT32);
    u64(&b, 1ull << 40);
    u64(&b, 0);
    expect_err(&b, "array count 1099511627776 at offset");
    free(b.p);

    b = (bb){0};
    header(&b, 3, 0, 1);
    str(&b, "arr");
    u32(&b, GGUF_T_ARRAY);
    u32(&b, GGUF_T_STRING);
    u64(&b, 1000000); /* 1M strings need >= 8 MB */
    u64(&b, 0);
    expect_err(&b, "array of 1000000 STRING");
    free(b.p);

    b = (bb){0};
    header(&b, 3, 0, 1);
    str(&b, "arr");
    u32(&b, GGUF_T_ARRAY);
    u32(&b, GGUF_T_UINT64);
    u64(&b, 3);
    u64(&b, 1);
    u64(&b, 2);
    expect_err(&b, "needs more than the 16 bytes left");
    free(b.p);
}

static void test_nested_and_unknown_types(void **s)
{
    (void)s;
    bb b = {0};
    header(&b, 3, 0, 1);
    str(&b, "nest");
    u32(&b, GGUF_T_ARRAY);
    u32(&b, GGUF_T_ARRAY);
    u64(&b, 0);
    expect_err(&b, "key 'nest' is a nested array");
    free(b.p);

    b = (bb){0};
    header(&b, 3, 0, 1);
    str(&b, "k");
    u32(&b, 13);
    u64(&b, 0);
    expect_err(&b, "key 'k' has unknown value type 13");
    free(b.p);

    b = (bb){0};
    header(&b, 3, 0, 1);
    str(&b, "k");
    u32(&b, GGUF_T_ARRAY);
    u32(&b, 99);
    u64(&b, 0);
    expect_err(&b, "unknown array element type 99");
    free(b.p);

    b = (bb){0};
    header(&b, 3, 0, 1);
    str(&b, "k");
    u32(&b, GGUF_T_BOOL);
    u8(&b, 2);
    expect_err(&b, "bool value 2");
    free(b.p);
}

static void test_bad_keys(void **s)
{
    (void)s;
    bb b = {0};
    header(&b, 3, 0, 2);
    str(&b, "same.key");
    u32(&b, GGUF_T_UINT8);
    u8(&b, 1);
    str(&b, "same.key");
    u32(&b, GGUF_T_UINT8);
    u8(&b, 2);
    expect_err(&b, "duplicate key 'same.key'");
    free(b.p);

    b = (bb){0};
    header(&b, 3, 0, 1);
    u64(&b, 3);
    put(&b, "a\0b", 3);
    u32(&b, GGUF_T_UINT8);
    u8(&b, 1);
    expect_err(&b, "contains a NUL byte");
    free(b.p);

    b = (bb){0};
    header(&b, 3, 0, 1);
    str(&b, "");
    u32(&b, GGUF_T_UINT8);
    u8(&b, 1);
    u8(&b, 0); /* room for the minimal KV size check */
    expect_err(&b, "empty key at offset 24");
    free(b.p);

    /* control characters in a key are not echoed into the message */
    b = (bb){0};
    header(&b, 3, 0, 2);
    str(&b, "x\n{\"level\":\"fake\"}");
    u32(&b, GGUF_T_UINT8);
    u8(&b, 1);
    str(&b, "x\n{\"level\":\"fake\"}");
    u32(&b, GGUF_T_UINT8);
    u8(&b, 1);
    char err[256];
    assert_null(gguf_open_buffer(b.p, b.len, err, sizeof err));
    assert_null(strchr(err, '\n'));
    assert_non_null(strstr(err, "duplicate key 'x?"));
    free(b.p);
}

static void test_bad_dims(void **s)
{
    (void)s;
    bb b = {0};
    header(&b, 3, 1, 0);
    str(&b, "t");
    u32(&b, 5);
    for (int i = 0; i < 5; i++)
        u64(&b, 1);
    u32(&b, 0);
    u64(&b, 0);
    pad(&b, 32);
    u32(&b, 0);
    expect_err(&b, "tensor 't' has n_dims 5");
    free(b.p);

    b = (bb){0};
    header(&b, 3, 1, 0);
    tinfo(&b, "t", 2, 4, 0, GGML_T_F32, 0);
    pad(&b, 32);
    expect_err(&b, "dimension 1 is zero");
    free(b.p);

    b = (bb){0};
    header(&b, 3, 1, 0);
    tinfo(&b, "t", 2, 1ull << 32, 1ull << 32, GGML_T_F32, 0);
    pad(&b, 32);
    expect_err(&b, "dimensions overflow");
    free(b.p);

    b = (bb){0}; /* elements fit in int64 but F32 bytes would not */
    header(&b, 3, 1, 0);
    tinfo(&b, "t", 2, 1ull << 31, 1ull << 31, GGML_T_F32, 0);
    pad(&b, 32);
    expect_err(&b, "byte size overflows");
    free(b.p);
}

static void test_bad_types_and_blocks(void **s)
{
    (void)s;
    bb b = {0};
    one_tensor(&b, 99, 4, 0, 16);
    expect_err(&b, "unknown tensor type 99");
    free(b.p);
    b = (bb){0};
    one_tensor(&b, 4, 4, 0, 16); /* a removed ggml id */
    expect_err(&b, "unknown tensor type 4");
    free(b.p);
    b = (bb){0};
    one_tensor(&b, GGML_T_Q8_0, 33, 0, 68);
    expect_err(&b, "row length 33 is not a multiple of the Q8_0 block size 32");
    free(b.p);
    b = (bb){0};
    one_tensor(&b, GGML_T_Q4_K, 32, 0, 144);
    expect_err(&b, "not a multiple of the Q4_K block size 256");
    free(b.p);
}

static void test_bad_offsets(void **s)
{
    (void)s;
    bb b = {0};
    one_tensor(&b, GGML_T_F32, 4, 4, 64);
    expect_err(&b, "tensor 't' data offset 4 is not a multiple of the alignment 32");
    free(b.p);

    b = (bb){0};
    one_tensor(&b, GGML_T_F32, 4, 0, 15); /* one byte short */
    char want[128];
    snprintf(want, sizeof want, "tensor 't' data [offset %zu, 16 bytes] exceeds file size %zu", b.len - 15, b.len);
    expect_err(&b, want);
    free(b.p);

    b = (bb){0};
    one_tensor(&b, GGML_T_F32, 4, UINT64_MAX - 31, 16);
    expect_err(&b, "exceeds file size");
    free(b.p);

    b = (bb){0};
    header(&b, 3, 2, 0);
    tinfo(&b, "a", 1, 16, 1, GGML_T_F32, 0);  /* 64 bytes at 0 */
    tinfo(&b, "b", 1, 8, 1, GGML_T_F32, 32);  /* 32 bytes at 32: inside a */
    pad(&b, 32);
    for (int i = 0; i < 96; i++)
        u8(&b, 0);
    expect_err(&b, "tensors 'a' and 'b' overlap");
    free(b.p);

    b = (bb){0};
    header(&b, 3, 2, 0);
    tinfo(&b, "a", 1, 4, 1, GGML_T_F32, 0);
    tinfo(&b, "a", 1, 4, 1, GGML_T_F32, 32);
    pad(&b, 32);
    for (int i = 0; i < 64; i++)
        u8(&b, 0);
    expect_err(&b, "duplicate tensor name 'a'");
    free(b.p);

    b = (bb){0};
    header(&b, 3, 1, 0);
    tinfo(&b, "this_name_is_way_too_long_for_ggml_because_it_has_more_than_64_bytes", 1, 4, 1, 0, 0);
    pad(&b, 32);
    expect_err(&b, "tensor name 'this_name_is_way_too_long");
    free(b.p);
}

static void alignment_file(bb *b, uint32_t vtype, uint64_t value)
{
    header(b, 3, 1, 1);
    str(b, "general.alignment");
    u32(b, vtype);
    if (vtype == GGUF_T_UINT64)
        u64(b, value);
    else
        u32(b, (uint32_t)value);
    tinfo(b, "t", 1, 4, 1, GGML_T_F32, 0);
    pad(b, 8);
    for (int i = 0; i < 16; i++)
        u8(b, 0);
}

static void test_bad_alignment(void **s)
{
    (void)s;
    uint64_t bad[] = {0, 3, 4, 24, 1u << 20};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bb b = {0};
        alignment_file(&b, GGUF_T_UINT32, bad[i]);
        expect_err(&b, "is not a power of two in [8, 65536]");
        free(b.p);
    }
    bb b = {0};
    alignment_file(&b, GGUF_T_UINT64, 32);
    expect_err(&b, "general.alignment has type UINT64 (must be UINT32)");
    free(b.p);
    b = (bb){0};
    alignment_file(&b, GGUF_T_UINT32, 8);
    expect_ok(&b);
    free(b.p);
}

/* Deterministic random corruption of a valid file: never a crash (run under
 * ASan/UBSan), either accepted or a "gguf: " error. */
static void test_random_flips(void **s)
{
    (void)s;
    gguf_writer *w = gguf_writer_new();
    const char *toks[] = {"a", "bb", "ccc"};
    int32_t ty[3] = {1, 2, 3};
    gguf_set_arr_str(w, "tokens", toks, 3);
    gguf_set_arr_i32(w, "types", ty, 3);
    gguf_set_u32(w, "n", 3);
    float d[32] = {1};
    uint64_t ne[2] = {16, 2};
    gguf_add_tensor(w, "w0", GGML_T_F32, 2, ne, d);
    gguf_add_tensor(w, "w1", GGML_T_F16, 1, ne, d);
    void *buf;
    size_t len;
    char err[256];
    assert_int_equal(gguf_writer_write_buffer(w, &buf, &len, err, sizeof err), 0);
    gguf_writer_free(w);
    uint8_t *c = malloc(len);
    uint32_t x = 12345;
    for (int it = 0; it < 3000; it++) {
        memcpy(c, buf, len);
        for (int k = 0; k < 1 + it % 4; k++) {
            x = x * 1103515245u + 12345u;
            size_t pos = (x >> 8) % len;
            x = x * 1103515245u + 12345u;
            c[pos] = (uint8_t)(x >> 16);
        }
        err[0] = 0;
        gguf_file *f = gguf_open_buffer(c, len, err, sizeof err);
        if (f) {
            for (size_t i = 0; i < gguf_n_kv(f); i++)
                assert_non_null(gguf_key_name(f, (int64_t)i));
            for (size_t i = 0; i < gguf_n_tensors(f); i++) {
                const gguf_tensor *t = gguf_tensor_at(f, i);
                assert_true(t->offset + t->n_bytes <= len);
            }
            gguf_close(f);
        } else {
            assert_true(strncmp(err, "gguf: ", 6) == 0);
        }
    }
    free(c);
    free(buf);
}

static void test_open_errors(void **s)
{
    (void)s;
    char err[256];
    assert_null(gguf_open("/nonexistent/ward/x.gguf", err, sizeof err));
    assert_non_null(strstr(err, "cannot open '/nonexistent/ward/x.gguf'"));
    assert_null(gguf_open("/", err, sizeof err));
    assert_non_null(strstr(err, "not a regular file"));
    char path[] = "/tmp/ward_gguf_emptyXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_null(gguf_open(path, err, sizeof err));
    assert_non_null(strstr(err, "is empty"));
    unlink(path);
    assert_null(gguf_open_buffer(NULL, 0, err, sizeof err));
    assert_non_null(strstr(err, "bad magic"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_baseline_ok),    cmocka_unit_test(test_truncated_every_offset),
        cmocka_unit_test(test_bad_magic),      cmocka_unit_test(test_versions),
        cmocka_unit_test(test_huge_counts),    cmocka_unit_test(test_huge_strings),
        cmocka_unit_test(test_huge_arrays),    cmocka_unit_test(test_nested_and_unknown_types),
        cmocka_unit_test(test_bad_keys),       cmocka_unit_test(test_bad_dims),
        cmocka_unit_test(test_bad_types_and_blocks), cmocka_unit_test(test_bad_offsets),
        cmocka_unit_test(test_bad_alignment),  cmocka_unit_test(test_random_flips),
        cmocka_unit_test(test_open_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
