/* GGUF writer -> reader round trips, getter conversions, alignment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/gguf.h"
#include "engine/quant.h"

static gguf_file *open_writer(gguf_writer *w, void **buf)
{
    size_t len;
    char err[256];
    if (gguf_writer_write_buffer(w, buf, &len, err, sizeof err))
        fail_msg("write: %s", err);
    gguf_file *f = gguf_open_buffer(*buf, len, err, sizeof err);
    if (!f)
        fail_msg("open: %s", err);
    return f;
}

static void test_writer_kv_roundtrip(void **s)
{
    (void)s;
    gguf_writer *w = gguf_writer_new();
    assert_int_equal(gguf_set_u32(w, "k.u32", 4000000000u), 0);
    assert_int_equal(gguf_set_i32(w, "k.i32", -7), 0);
    assert_int_equal(gguf_set_u64(w, "k.u64", 1ull << 40), 0);
    assert_int_equal(gguf_set_f32(w, "k.f32", 1e-5f), 0);
    assert_int_equal(gguf_set_bool(w, "k.bool", 1), 0);
    assert_int_equal(gguf_set_str(w, "k.str", "héllo"), 0);
    const char *sv[] = {"a", "", "long string value"};
    assert_int_equal(gguf_set_arr_str(w, "k.astr", sv, 3), 0);
    float fv[3] = {0.5f, -2.0f, 3.25f};
    assert_int_equal(gguf_set_arr_f32(w, "k.af32", fv, 3), 0);
    int32_t iv[4] = {-1, 0, 1, 2147483647};
    assert_int_equal(gguf_set_arr_i32(w, "k.ai32", iv, 4), 0);
    assert_int_equal(gguf_set_arr_i32(w, "k.empty", NULL, 0), 0);
    assert_int_equal(gguf_set_u32(w, "k.replaced", 1), 0);
    assert_int_equal(gguf_set_str(w, "k.replaced", "now a string"), 0); /* replaces */
    assert_int_equal(gguf_set_u32(w, "", 1), -1);                       /* bad key */

    void *buf;
    gguf_file *f = open_writer(w, &buf);
    assert_int_equal(gguf_version(f), 3);
    assert_int_equal(gguf_n_kv(f), 11);
    assert_int_equal(gguf_n_tensors(f), 0);

    uint32_t u32;
    uint64_t u64;
    int64_t i64;
    float f32;
    int b;
    gguf_str st;
    assert_int_equal(gguf_get_u32(f, "k.u32", &u32), 0);
    assert_int_equal(u32, 4000000000u);
    assert_int_equal(gguf_get_i64(f, "k.i32", &i64), 0);
    assert_int_equal(i64, -7);
    assert_int_equal(gguf_get_u32(f, "k.i32", &u32), -1); /* negative */
    assert_int_equal(gguf_get_u64(f, "k.u64", &u64), 0);
    assert_true(u64 == 1ull << 40);
    assert_int_equal(gguf_get_u32(f, "k.u64", &u32), -1); /* does not fit */
    assert_int_equal(gguf_get_f32(f, "k.f32", &f32), 0);
    assert_true(f32 == 1e-5f);
    assert_int_equal(gguf_get_u32(f, "k.f32", &u32), -1); /* float is not an int */
    assert_int_equal(gguf_get_bool(f, "k.bool", &b), 0);
    assert_int_equal(b, 1);
    assert_int_equal(gguf_get_u32(f, "k.bool", &u32), -1);
    assert_int_equal(gguf_get_str(f, "k.str", &st), 0);
    assert_int_equal(st.len, strlen("héllo"));
    assert_memory_equal(st.ptr, "héllo", st.len);
    assert_int_equal(gguf_get_str(f, "k.replaced", &st), 0);
    assert_int_equal(st.len, 12);
    assert_int_equal(gguf_get_u32(f, "absent", &u32), -1);
    assert_int_equal(gguf_find_key(f, "absent"), -1);

    gguf_vtype et;
    uint64_t n;
    assert_int_equal(gguf_get_arr(f, "k.astr", &et, &n), 0);
    assert_int_equal(et, GGUF_T_STRING);
    assert_int_equal(n, 3);
    for (uint64_t i = 0; i < 3; i++) {
        assert_int_equal(gguf_arr_str(f, "k.astr", i, &st), 0);
        assert_int_equal(st.len, strlen(sv[i]));
        assert_memory_equal(st.ptr, sv[i], st.len);
    }
    assert_int_equal(gguf_arr_str(f, "k.astr", 3, &st), -1); /* bounds */
    assert_int_equal(gguf_arr_f32(f, "k.astr", 0, &f32), -1); /* wrong type */
    for (uint64_t i = 0; i < 3; i++) {
        assert_int_equal(gguf_arr_f32(f, "k.af32", i, &f32), 0);
        assert_true(f32 == fv[i]);
    }
    for (uint64_t i = 0; i < 4; i++) {
        assert_int_equal(gguf_arr_i64(f, "k.ai32", i, &i64), 0);
        assert_int_equal(i64, iv[i]);
    }
    const void *raw;
    assert_int_equal(gguf_arr_data(f, "k.af32", &et, &n, &raw), 0);
    assert_int_equal(et, GGUF_T_FLOAT32);
    assert_memory_equal(raw, fv, sizeof fv);
    assert_int_equal(gguf_arr_data(f, "k.astr", &et, &n, &raw), -1);
    assert_int_equal(gguf_get_arr(f, "k.empty", &et, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(gguf_arr_i64(f, "k.empty", 0, &i64), -1);

    /* key order is insertion order; index access agrees with find */
    assert_string_equal(gguf_key_name(f, 0), "k.u32");
    assert_int_equal(gguf_kv_type(f, 0), GGUF_T_UINT32);
    for (size_t i = 0; i < gguf_n_kv(f); i++)
        assert_int_equal(gguf_find_key(f, gguf_key_name(f, (int64_t)i)), (int64_t)i);
    assert_null(gguf_key_name(f, -1));
    assert_null(gguf_key_name(f, 99));

    gguf_close(f);
    free(buf);
    gguf_writer_free(w);
}

/* Hand-built KVs of the types the writer has no setter for. */
static void test_all_value_types_and_widths(void **s)
{
    (void)s;
    uint8_t b[512];
    size_t n = 0;
#define PUT(v) (memcpy(b + n, &(v), sizeof(v)), n += sizeof(v))
#define KEY(k) do { uint64_t l_ = strlen(k); PUT(l_); memcpy(b + n, k, l_); n += l_; } while (0)
#define KV(k, t, ctype, v) do { KEY(k); uint32_t t_ = t; PUT(t_); ctype v_ = v; PUT(v_); } while (0)
    memcpy(b, "GGUF", 4);
    n = 4;
    uint32_t ver = 3;
    uint64_t nt = 0, nkv = 11;
    PUT(ver);
    PUT(nt);
    PUT(nkv);
    KV("u8", GGUF_T_UINT8, uint8_t, 200);
    KV("i8", GGUF_T_INT8, int8_t, -5);
    KV("u16", GGUF_T_UINT16, uint16_t, 60000);
    KV("i16", GGUF_T_INT16, int16_t, -30000);
    KV("i32", GGUF_T_INT32, int32_t, 123);
    KV("u64big", GGUF_T_UINT64, uint64_t, UINT64_MAX);
    KV("i64", GGUF_T_INT64, int64_t, -(1ll << 40));
    KV("f64", GGUF_T_FLOAT64, double, 0.25);
    KEY("au64");
    uint32_t at = GGUF_T_ARRAY, et = GGUF_T_UINT64;
    uint64_t cnt = 2, e0 = 5, e1 = UINT64_MAX;
    PUT(at);
    PUT(et);
    PUT(cnt);
    PUT(e0);
    PUT(e1);
    KEY("ai8");
    et = GGUF_T_INT8;
    cnt = 2;
    int8_t i8a[2] = {-1, 7};
    PUT(at);
    PUT(et);
    PUT(cnt);
    PUT(i8a);
    KEY("af64");
    et = GGUF_T_FLOAT64;
    cnt = 1;
    double d0 = -1.5;
    PUT(at);
    PUT(et);
    PUT(cnt);
    PUT(d0);
#undef KV
#undef KEY
#undef PUT
    char err[256];
    gguf_file *f = gguf_open_buffer(b, n, err, sizeof err);
    if (!f)
        fail_msg("%s", err);
    uint32_t u32;
    uint64_t u64;
    int64_t i64;
    float f32;
    assert_int_equal(gguf_get_u32(f, "u8", &u32), 0);
    assert_int_equal(u32, 200);
    assert_int_equal(gguf_get_i64(f, "i8", &i64), 0);
    assert_int_equal(i64, -5);
    assert_int_equal(gguf_get_u64(f, "i8", &u64), -1);
    assert_int_equal(gguf_get_u32(f, "u16", &u32), 0);
    assert_int_equal(u32, 60000);
    assert_int_equal(gguf_get_i64(f, "i16", &i64), 0);
    assert_int_equal(i64, -30000);
    assert_int_equal(gguf_get_u32(f, "i32", &u32), 0); /* non-negative i32 as u32 */
    assert_int_equal(u32, 123);
    assert_int_equal(gguf_get_u64(f, "u64big", &u64), 0);
    assert_true(u64 == UINT64_MAX);
    assert_int_equal(gguf_get_i64(f, "u64big", &i64), -1); /* > INT64_MAX */
    assert_int_equal(gguf_get_i64(f, "i64", &i64), 0);
    assert_true(i64 == -(1ll << 40));
    assert_int_equal(gguf_get_f32(f, "f64", &f32), 0);
    assert_true(f32 == 0.25f);
    assert_int_equal(gguf_arr_i64(f, "au64", 0, &i64), 0);
    assert_int_equal(i64, 5);
    assert_int_equal(gguf_arr_i64(f, "au64", 1, &i64), -1); /* does not fit */
    assert_int_equal(gguf_arr_i64(f, "ai8", 0, &i64), 0);
    assert_int_equal(i64, -1);
    assert_int_equal(gguf_arr_i64(f, "ai8", 1, &i64), 0);
    assert_int_equal(i64, 7);
    assert_int_equal(gguf_arr_f32(f, "af64", 0, &f32), 0);
    assert_true(f32 == -1.5f);
    assert_int_equal(gguf_kv_type(f, gguf_find_key(f, "f64")), GGUF_T_FLOAT64);

    /* gguf_copy_kv reproduces every type byte for byte */
    gguf_writer *w = gguf_writer_new();
    for (size_t i = 0; i < gguf_n_kv(f); i++)
        assert_int_equal(gguf_copy_kv(w, f, (int64_t)i), 0);
    assert_int_equal(gguf_copy_kv(w, f, 99), -1);
    void *buf;
    size_t len;
    assert_int_equal(gguf_writer_write_buffer(w, &buf, &len, err, sizeof err), 0);
    assert_true(len >= n);
    assert_memory_equal(buf, b, n); /* same header and KVs; then padding */
    free(buf);
    gguf_writer_free(w);
    gguf_close(f);

    /* version 2 is accepted too */
    b[4] = 2;
    f = gguf_open_buffer(b, n, err, sizeof err);
    assert_non_null(f);
    assert_int_equal(gguf_version(f), 2);
    gguf_close(f);
}

static void test_tensors_roundtrip(void **s)
{
    (void)s;
    gguf_writer *w = gguf_writer_new();
    float a[3 * 64];
    for (int i = 0; i < 3 * 64; i++)
        a[i] = (float)i * 0.5f - 7.0f;
    uint64_t ne_a[2] = {64, 3};
    assert_int_equal(gguf_add_tensor(w, "blk.0.attn_q.weight", GGML_T_F32, 2, ne_a, a), 0);
    uint8_t q8[2 * 34];
    assert_int_equal(quant_quantize_row(GGML_T_Q8_0, a, q8, 64), 0);
    uint64_t ne_q[1] = {64};
    assert_int_equal(gguf_add_tensor(w, "q8", GGML_T_Q8_0, 1, ne_q, q8), 0);
    uint64_t ne_bad[1] = {33};
    assert_int_equal(gguf_add_tensor(w, "bad", GGML_T_Q8_0, 1, ne_bad, q8), -1); /* not a block multiple */
    uint64_t ne4[4] = {2, 1, 1, 3};
    float small[6] = {1, 2, 3, 4, 5, 6};
    assert_int_equal(gguf_add_tensor(w, "four_d", GGML_T_F32, 4, ne4, small), 0);
    char longname[80];
    memset(longname, 'x', sizeof longname - 1);
    longname[79] = 0;
    assert_int_equal(gguf_add_tensor(w, longname, GGML_T_F32, 1, ne_q, a), -1);

    void *buf;
    gguf_file *f = open_writer(w, &buf);
    assert_int_equal(gguf_n_tensors(f), 3);
    assert_int_equal(gguf_alignment(f), GGUF_DEFAULT_ALIGNMENT);
    const gguf_tensor *t = gguf_find_tensor(f, "blk.0.attn_q.weight");
    assert_non_null(t);
    assert_int_equal(t->type, GGML_T_F32);
    assert_int_equal(t->n_dims, 2);
    assert_int_equal(t->ne[0], 64);
    assert_int_equal(t->ne[1], 3);
    assert_int_equal(t->ne[2], 1);
    assert_int_equal(t->n_elems, 192);
    assert_int_equal(t->n_bytes, 192 * 4);
    assert_memory_equal(t->data, a, sizeof a);
    assert_int_equal(t->offset % 32, 0);
    assert_true((const uint8_t *)t->data == (const uint8_t *)buf + t->offset);
    t = gguf_find_tensor(f, "q8");
    assert_non_null(t);
    assert_int_equal(t->n_bytes, 68);
    assert_memory_equal(t->data, q8, 68);
    assert_int_equal(t->offset % 32, 0);
    t = gguf_find_tensor(f, "four_d");
    assert_int_equal(t->n_dims, 4);
    assert_int_equal(t->ne[3], 3);
    assert_int_equal(t->n_elems, 6);
    assert_null(gguf_find_tensor(f, "absent"));
    assert_ptr_equal(gguf_tensor_at(f, 0), gguf_find_tensor(f, "blk.0.attn_q.weight"));
    assert_null(gguf_tensor_at(f, 3));
    gguf_close(f);
    free(buf);
    gguf_writer_free(w);
}

static void test_alignment_kv(void **s)
{
    (void)s;
    gguf_writer *w = gguf_writer_new();
    assert_int_equal(gguf_set_u32(w, "general.alignment", 64), 0);
    float a[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    uint64_t ne = 8;
    assert_int_equal(gguf_add_tensor(w, "a", GGML_T_F32, 1, &ne, a), 0);
    assert_int_equal(gguf_add_tensor(w, "b", GGML_T_F32, 1, &ne, a), 0);
    void *buf;
    gguf_file *f = open_writer(w, &buf);
    assert_int_equal(gguf_alignment(f), 64);
    const gguf_tensor *ta = gguf_find_tensor(f, "a"), *tb = gguf_find_tensor(f, "b");
    assert_int_equal(ta->offset % 64, 0);
    assert_int_equal(tb->offset % 64, 0);
    assert_int_equal(tb->offset - ta->offset, 64); /* 32 bytes padded to 64 */
    gguf_close(f);
    free(buf);

    /* a bad alignment value or duplicate tensor names fail at write time */
    char err[256];
    size_t len;
    assert_int_equal(gguf_set_u32(w, "general.alignment", 48), 0);
    assert_int_equal(gguf_writer_write_buffer(w, &buf, &len, err, sizeof err), -1);
    assert_non_null(strstr(err, "general.alignment"));
    assert_int_equal(gguf_set_u32(w, "general.alignment", 32), 0);
    assert_int_equal(gguf_add_tensor(w, "a", GGML_T_F32, 1, &ne, a), 0);
    assert_int_equal(gguf_writer_write_buffer(w, &buf, &len, err, sizeof err), -1);
    assert_non_null(strstr(err, "duplicate tensor name 'a'"));
    gguf_writer_free(w);
}

static int fill_ramp(void *ctx, void *dst, size_t n, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    int *calls = ctx;
    (*calls)++;
    for (size_t i = 0; i < n; i++)
        ((uint8_t *)dst)[i] = (uint8_t)i;
    return 0;
}

static int fill_fail(void *ctx, void *dst, size_t n, char *err, size_t errlen)
{
    (void)ctx;
    (void)dst;
    (void)n;
    snprintf(err, errlen, "fill refused");
    return -1;
}

static void test_file_write_and_fill(void **s)
{
    (void)s;
    char dir[] = "/tmp/ward_gguf_testXXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/m.gguf", dir);

    gguf_writer *w = gguf_writer_new();
    int calls = 0;
    uint64_t ne[2] = {32, 2};
    assert_int_equal(gguf_set_str(w, "general.architecture", "llama"), 0);
    assert_int_equal(gguf_add_tensor_fn(w, "ramp", GGML_T_Q8_0, 2, ne, fill_ramp, &calls), 0);
    char err[256];
    assert_int_equal(gguf_writer_write(w, path, err, sizeof err), 0);
    assert_int_equal(calls, 1);
    gguf_writer_free(w);

    gguf_file *f = gguf_open(path, err, sizeof err);
    assert_non_null(f);
    const gguf_tensor *t = gguf_find_tensor(f, "ramp");
    assert_int_equal(t->n_bytes, 68);
    for (size_t i = 0; i < 68; i++)
        assert_int_equal(((const uint8_t *)t->data)[i], (uint8_t)i);
    gguf_str st;
    assert_int_equal(gguf_get_str(f, "general.architecture", &st), 0);
    assert_memory_equal(st.ptr, "llama", 5);
    gguf_close(f);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0644);

    /* a failing fill aborts the write and leaves the old file untouched */
    w = gguf_writer_new();
    assert_int_equal(gguf_add_tensor_fn(w, "x", GGML_T_F32, 2, ne, fill_fail, NULL), 0);
    assert_int_equal(gguf_writer_write(w, path, err, sizeof err), -1);
    assert_string_equal(err, "fill refused");
    gguf_writer_free(w);
    f = gguf_open(path, err, sizeof err);
    assert_non_null(f);
    assert_non_null(gguf_find_tensor(f, "ramp"));
    gguf_close(f);

    /* unwritable destination: clear error */
    w = gguf_writer_new();
    assert_int_equal(gguf_writer_write(w, "/nonexistent/dir/x.gguf", err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot create"));
    gguf_writer_free(w);

    unlink(path);
    assert_int_equal(rmdir(dir), 0); /* no temporary files left behind */
}

static void test_type_table(void **s)
{
    (void)s;
    size_t be, bb;
    assert_int_equal(ggml_type_block(GGML_T_Q4_K, &be, &bb), 0);
    assert_int_equal(be, 256);
    assert_int_equal(bb, 144);
    assert_int_equal(ggml_type_block(GGML_T_Q6_K, &be, &bb), 0);
    assert_int_equal(bb, 210);
    assert_int_equal(ggml_type_block(GGML_T_BF16, &be, &bb), 0);
    assert_int_equal(bb, 2);
    assert_int_equal(ggml_type_block(4, &be, &bb), -1);
    assert_string_equal(ggml_type_name(GGML_T_Q5_K), "Q5_K");
    assert_string_equal(ggml_type_name(1000), "unknown");
    assert_string_equal(gguf_vtype_name(GGUF_T_FLOAT64), "FLOAT64");
    assert_int_equal(gguf_vtype_size(GGUF_T_STRING), 0);
    assert_int_equal(gguf_vtype_size(GGUF_T_INT16), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writer_kv_roundtrip), cmocka_unit_test(test_all_value_types_and_widths),
        cmocka_unit_test(test_tensors_roundtrip),   cmocka_unit_test(test_alignment_kv),
        cmocka_unit_test(test_file_write_and_fill), cmocka_unit_test(test_type_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
