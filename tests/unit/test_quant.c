/* quant: block decoding from hand-built blocks, quantize->dequantize error
 * bounds, fp16/bf16 conversion edge cases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/gguf.h"
#include "engine/quant.h"

#define H_ONE 0x3c00   /* 1.0 */
#define H_HALF 0x3800  /* 0.5 */
#define H_QUART 0x3400 /* 0.25 */
#define H_MONE 0xbc00  /* -1.0 */

static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }

static void test_row_bytes(void **s)
{
    (void)s;
    assert_int_equal(quant_row_bytes(GGML_T_F32, 3), 12);
    assert_int_equal(quant_row_bytes(GGML_T_Q4_0, 64), 36);
    assert_int_equal(quant_row_bytes(GGML_T_Q8_0, 32), 34);
    assert_int_equal(quant_row_bytes(GGML_T_Q4_K, 512), 288);
    assert_int_equal(quant_row_bytes(GGML_T_Q6_K, 256), 210);
    assert_int_equal(quant_row_bytes(GGML_T_Q4_0, 48), 0);    /* not a block multiple */
    assert_int_equal(quant_row_bytes(GGML_T_Q4_K, 32), 0);
    assert_int_equal(quant_row_bytes(GGML_T_F32, 0), 0);
    assert_int_equal(quant_row_bytes(77, 32), 0);             /* unknown type */
    assert_int_equal(quant_row_bytes(GGML_T_F32, SIZE_MAX / 2), 0); /* overflow */
    assert_true(quant_can_dequantize(GGML_T_Q5_K));
    assert_false(quant_can_dequantize(GGML_T_Q2_K));
    assert_true(quant_can_quantize(GGML_T_Q6_K));
    assert_false(quant_can_quantize(GGML_T_Q8_K));
    float y[256];
    uint8_t blk[256] = {0};
    assert_int_equal(quant_dequantize_row(GGML_T_Q2_K, blk, y, 256), -1);
    assert_int_equal(quant_dequantize_row(GGML_T_Q8_0, blk, y, 31), -1);
    assert_int_equal(quant_quantize_row(GGML_T_Q4_0, y, blk, 0), -1);
}

static void test_decode_legacy(void **s)
{
    (void)s;
    uint8_t b[34] = {0};
    float y[32];
    /* Q4_0: d = 0.5; qs[0] = 0x1F -> y[0] = (15-8)*0.5, y[16] = (1-8)*0.5 */
    put16(b, H_HALF);
    memset(b + 2, 0x88, 16); /* every other value 0 */
    b[2] = 0x1F;
    assert_int_equal(quant_dequantize_row(GGML_T_Q4_0, b, y, 32), 0);
    assert_true(y[0] == 3.5f);
    assert_true(y[16] == -3.5f);
    assert_true(y[1] == 0.0f && y[31] == 0.0f);

    /* Q4_1: d = 0.5, m = -1; qs[0] = 0x30 -> y[0] = -1, y[16] = 0.5 */
    memset(b, 0, sizeof b);
    put16(b, H_HALF);
    put16(b + 2, H_MONE);
    b[4] = 0x30;
    assert_int_equal(quant_dequantize_row(GGML_T_Q4_1, b, y, 32), 0);
    assert_true(y[0] == -1.0f);
    assert_true(y[16] == 0.5f);
    assert_true(y[1] == -1.0f);

    /* Q5_0: d = 1; qh bit 0 set, qs[0] = 0x0F -> y[0] = 31-16, y[16] = 0-16;
     * qh bit 17 set, qs[1] = 0x20 -> y[17] = (2|16)-16 */
    memset(b, 0, sizeof b);
    put16(b, H_ONE);
    uint32_t qh = 1u | (1u << 17);
    memcpy(b + 2, &qh, 4);
    b[6] = 0x0F;
    b[7] = 0x20;
    assert_int_equal(quant_dequantize_row(GGML_T_Q5_0, b, y, 32), 0);
    assert_true(y[0] == 15.0f);
    assert_true(y[16] == -16.0f);
    assert_true(y[17] == 2.0f);
    assert_true(y[1] == -16.0f);

    /* Q8_0: d = 0.25; qs[3] = -8 -> -2 */
    memset(b, 0, sizeof b);
    put16(b, H_QUART);
    b[2 + 3] = (uint8_t)(int8_t)-8;
    b[2 + 31] = 127;
    assert_int_equal(quant_dequantize_row(GGML_T_Q8_0, b, y, 32), 0);
    assert_true(y[3] == -2.0f);
    assert_true(y[31] == 31.75f);
    assert_true(y[0] == 0.0f);
}

static void test_decode_q4_k_q5_k(void **s)
{
    (void)s;
    uint8_t b[176] = {0};
    float y[256];
    /* Q4_K: d = 1, dmin = 0.5. sub-block 0: sc 2, m 4; sub-block 4: sc 33, m 17
     * (6-bit values split: low 4 bits in scales[8], high 2 bits in the top of
     * scales[0] and scales[4]). */
    put16(b, H_ONE);
    put16(b + 2, H_HALF);
    uint8_t *sc = b + 4;
    sc[0] = 2 | (2 << 6);  /* sc0 = 2; sc4 high bits = 2 */
    sc[4] = 4 | (1 << 6);  /* m0 = 4;  m4 high bits = 1 */
    sc[8] = 1 | (1 << 4);  /* sc4 low = 1, m4 low = 1 -> sc4 = 33, m4 = 17 */
    uint8_t *qs = b + 16;
    qs[0] = 0x35;  /* y[0] uses low nibble 5 (sub-block 0), y[32] high nibble 3 (sub-block 1) */
    qs[64] = 0x07; /* chunk 2: y[128] low nibble 7 (sub-block 4) */
    assert_int_equal(quant_dequantize_row(GGML_T_Q4_K, b, y, 256), 0);
    assert_true(y[0] == 1.0f * 2 * 5 - 0.5f * 4);      /* 8 */
    assert_true(y[1] == -2.0f);                         /* q = 0 */
    assert_true(y[32] == 0.0f);                         /* sc1 = m1 = 0 */
    assert_true(y[128] == 33.0f * 7 - 0.5f * 17);       /* 222.5 */

    /* Q5_K: d = 1, dmin = 0; sc0 = sc1 = 1; qs[0] = 0x21, qh[0] = 3:
     * y[0] = 1 + 16, y[32] = 2 + 16; qh[1] bit 4 (chunk 2, low) -> y[129] gets +16 */
    memset(b, 0, sizeof b);
    put16(b, H_ONE);
    b[4 + 0] = 1;
    b[4 + 1] = 1;
    b[4 + 8] = 1; /* sc4 = 1 */
    b[16 + 0] = 3;
    b[16 + 1] = 1 << 4;
    b[48 + 0] = 0x21;
    b[48 + 64 + 1] = 0x02;
    assert_int_equal(quant_dequantize_row(GGML_T_Q5_K, b, y, 256), 0);
    assert_true(y[0] == 17.0f);
    assert_true(y[32] == 18.0f);
    assert_true(y[129] == 18.0f);
    assert_true(y[1] == 0.0f);
}

static void test_decode_q6_k(void **s)
{
    (void)s;
    uint8_t b[210] = {0};
    float y[256];
    /* d = 0.5 at the end; scales[0] = 3, [2] = -2, [4] = 1.
     * ql[0] = 0x21, qh[0] = 0b00000110:
     *   q1 = (1 | (2 << 4)) - 32 = 1    -> y[0]  = 0.5*3*1
     *   q2 = (ql[32]&15 | ((qh>>2)&3)<<4) - 32 = 16 - 32 -> y[32] = 0.5*-2*-16
     *   q3 = (2 | 0) - 32 = -30          -> y[64] = 0.5*1*-30 */
    put16(b + 208, H_HALF);
    int8_t *sc = (int8_t *)(b + 192);
    sc[0] = 3;
    sc[2] = -2;
    sc[4] = 1;
    b[0] = 0x21;
    b[128] = 0x06;
    assert_int_equal(quant_dequantize_row(GGML_T_Q6_K, b, y, 256), 0);
    assert_true(y[0] == 1.5f);
    assert_true(y[32] == 16.0f);
    assert_true(y[64] == -15.0f);
    assert_true(y[1] == 0.5f * 3 * -32);
    assert_true(y[200] == 0.0f); /* second half, scale 0 */
}

static double rel_rmse(const float *x, const float *y, size_t n)
{
    double se = 0, sx = 0;
    for (size_t i = 0; i < n; i++) {
        se += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
        sx += (double)x[i] * x[i];
    }
    return sqrt(se / sx);
}

#define NQ 2048

static void test_roundtrip_error_bounds(void **s)
{
    (void)s;
    static float x[NQ], y[NQ];
    static uint8_t buf[NQ * 4];
    uint32_t r = 42;
    for (int i = 0; i < NQ; i++) { /* roughly normal values, varying scale per 64 */
        float acc = 0;
        for (int k = 0; k < 4; k++) {
            r = r * 1664525u + 1013904223u;
            acc += (float)(r >> 8) / 16777216.0f - 0.5f;
        }
        x[i] = acc * (float)(1 + (i / 64) % 5);
    }
    struct { uint32_t type; double max_rel_rmse; } cases[] = {
        {GGML_T_F32, 0.0},     {GGML_T_F16, 0.001},  {GGML_T_BF16, 0.005}, {GGML_T_Q8_0, 0.01},
        {GGML_T_Q6_K, 0.03},   {GGML_T_Q5_0, 0.06},  {GGML_T_Q5_K, 0.06},  {GGML_T_Q4_0, 0.12},
        {GGML_T_Q4_1, 0.12},   {GGML_T_Q4_K, 0.12},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        assert_int_equal(quant_quantize_row(cases[c].type, x, buf, NQ), 0);
        assert_int_equal(quant_dequantize_row(cases[c].type, buf, y, NQ), 0);
        double e = rel_rmse(x, y, NQ);
        if (e > cases[c].max_rel_rmse)
            fail_msg("%s: relative RMSE %.5f > %.5f", ggml_type_name(cases[c].type), e, cases[c].max_rel_rmse);
    }
    /* Q8_0: every element within one step (d = amax/127) of the input */
    assert_int_equal(quant_quantize_row(GGML_T_Q8_0, x, buf, NQ), 0);
    assert_int_equal(quant_dequantize_row(GGML_T_Q8_0, buf, y, NQ), 0);
    for (int b = 0; b < NQ / 32; b++) {
        float amax = 0;
        for (int j = 0; j < 32; j++)
            amax = fmaxf(amax, fabsf(x[32 * b + j]));
        for (int j = 0; j < 32; j++)
            assert_true(fabsf(y[32 * b + j] - x[32 * b + j]) <= amax / 127.0f * 0.51f + amax * 1e-3f);
    }
}

static void test_exact_and_degenerate(void **s)
{
    (void)s;
    float x[256], y[256];
    uint8_t buf[1024];
    /* integers -127..127 with amax 127: Q8_0 is exact (d = 1) */
    for (int i = 0; i < 32; i++)
        x[i] = (float)(i * 8 - 127);
    x[31] = 127;
    assert_int_equal(quant_quantize_row(GGML_T_Q8_0, x, buf, 32), 0);
    assert_int_equal(quant_dequantize_row(GGML_T_Q8_0, buf, y, 32), 0);
    assert_memory_equal(x, y, 32 * sizeof(float));

    /* all zeros stay zeros for every type */
    uint32_t types[] = {GGML_T_F16, GGML_T_BF16, GGML_T_Q8_0, GGML_T_Q4_0, GGML_T_Q4_1,
                        GGML_T_Q5_0, GGML_T_Q4_K, GGML_T_Q5_K, GGML_T_Q6_K};
    memset(x, 0, sizeof x);
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        assert_int_equal(quant_quantize_row(types[t], x, buf, 256), 0);
        assert_int_equal(quant_dequantize_row(types[t], buf, y, 256), 0);
        for (int i = 0; i < 256; i++)
            assert_true(y[i] == 0.0f);
    }
    /* NaN and inf inputs give defined output (no UB under UBSan) */
    for (int i = 0; i < 256; i++)
        x[i] = (i % 3 == 0) ? NAN : (i % 3 == 1) ? INFINITY : -1e30f;
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        assert_int_equal(quant_quantize_row(types[t], x, buf, 256), 0);
        assert_int_equal(quant_dequantize_row(types[t], buf, y, 256), 0);
    }
    /* constant positive row with Q4_K: min term zero, value reproduced closely */
    for (int i = 0; i < 256; i++)
        x[i] = 3.0f;
    assert_int_equal(quant_quantize_row(GGML_T_Q4_K, x, buf, 256), 0);
    assert_int_equal(quant_dequantize_row(GGML_T_Q4_K, buf, y, 256), 0);
    for (int i = 0; i < 256; i++)
        assert_true(fabsf(y[i] - 3.0f) < 0.05f);
}

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float fbits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_f16(void **s)
{
    (void)s;
    assert_true(quant_f16_to_f32(0x3c00) == 1.0f);
    assert_true(quant_f16_to_f32(0xc000) == -2.0f);
    assert_true(quant_f16_to_f32(0x7bff) == 65504.0f);
    assert_true(isinf(quant_f16_to_f32(0x7c00)) && quant_f16_to_f32(0x7c00) > 0);
    assert_true(isinf(quant_f16_to_f32(0xfc00)) && quant_f16_to_f32(0xfc00) < 0);
    assert_true(isnan(quant_f16_to_f32(0x7e00)));
    assert_true(isnan(quant_f16_to_f32(0xfc01)));
    assert_true(quant_f16_to_f32(0x0001) == ldexpf(1.0f, -24)); /* smallest subnormal */
    assert_true(quant_f16_to_f32(0x03ff) == ldexpf(1023.0f, -24));
    assert_true(quant_f16_to_f32(0x0400) == ldexpf(1.0f, -14));
    assert_int_equal(bits(quant_f16_to_f32(0x8000)), 0x80000000u); /* -0 */

    assert_int_equal(quant_f32_to_f16(1.0f), 0x3c00);
    assert_int_equal(quant_f32_to_f16(-0.0f), 0x8000);
    assert_int_equal(quant_f32_to_f16(65504.0f), 0x7bff);
    assert_int_equal(quant_f32_to_f16(65519.99f), 0x7bff);
    assert_int_equal(quant_f32_to_f16(65520.0f), 0x7c00); /* rounds to inf */
    assert_int_equal(quant_f32_to_f16(1e9f), 0x7c00);
    assert_int_equal(quant_f32_to_f16(-INFINITY), 0xfc00);
    uint16_t hn = quant_f32_to_f16(NAN);
    assert_true((hn & 0x7c00) == 0x7c00 && (hn & 0x3ff) != 0);
    assert_int_equal(quant_f32_to_f16(ldexpf(1.0f, -24)), 0x0001);
    assert_int_equal(quant_f32_to_f16(ldexpf(1.0f, -25)), 0x0000);        /* tie -> even (0) */
    assert_int_equal(quant_f32_to_f16(ldexpf(1.5f, -25)), 0x0001);
    assert_int_equal(quant_f32_to_f16(ldexpf(3.0f, -25)), 0x0002);        /* 1.5 ulp tie -> even */
    assert_int_equal(quant_f32_to_f16(ldexpf(1.0f, -26)), 0x0000);
    assert_int_equal(quant_f32_to_f16(1.0f + ldexpf(1.0f, -11)), 0x3c00); /* tie -> even */
    assert_int_equal(quant_f32_to_f16(1.0f + ldexpf(3.0f, -11)), 0x3c02); /* tie -> even (up) */
    assert_int_equal(quant_f32_to_f16(ldexpf(1023.5f, -24)), 0x0400);     /* rounds up into normals */

    /* every non-NaN half survives f16 -> f32 -> f16 exactly */
    for (uint32_t h = 0; h < 65536; h++) {
        float f = quant_f16_to_f32((uint16_t)h);
        if (isnan(f))
            assert_true(isnan(quant_f16_to_f32(quant_f32_to_f16(f))));
        else if (quant_f32_to_f16(f) != h)
            fail_msg("f16 0x%04x did not round-trip", h);
    }
}

static void test_bf16(void **s)
{
    (void)s;
    assert_int_equal(quant_f32_to_bf16(1.0f), 0x3f80);
    assert_true(quant_bf16_to_f32(0x3f80) == 1.0f);
    assert_int_equal(quant_f32_to_bf16(fbits(0x3f808000u)), 0x3f80); /* tie -> even */
    assert_int_equal(quant_f32_to_bf16(fbits(0x3f818000u)), 0x3f82); /* tie -> even (up) */
    assert_int_equal(quant_f32_to_bf16(fbits(0x3f808001u)), 0x3f81);
    assert_int_equal(quant_f32_to_bf16(INFINITY), 0x7f80);
    assert_int_equal(quant_f32_to_bf16(fbits(0x7f7fffffu)), 0x7f80); /* FLT_MAX rounds to inf */
    uint16_t n = quant_f32_to_bf16(fbits(0x7f800001u));               /* NaN with low payload */
    assert_true((n & 0x7f80) == 0x7f80 && (n & 0x7f) != 0);
    assert_int_equal(quant_f32_to_bf16(fbits(0x00000001u)), 0x0000);  /* tiny subnormal */
    assert_int_equal(quant_f32_to_bf16(-0.0f), 0x8000);
    for (uint32_t h = 0; h < 65536; h++) {
        float f = quant_bf16_to_f32((uint16_t)h);
        if (!isnan(f) && quant_f32_to_bf16(f) != h)
            fail_msg("bf16 0x%04x did not round-trip", h);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_row_bytes),       cmocka_unit_test(test_decode_legacy),
        cmocka_unit_test(test_decode_q4_k_q5_k), cmocka_unit_test(test_decode_q6_k),
        cmocka_unit_test(test_roundtrip_error_bounds), cmocka_unit_test(test_exact_and_degenerate),
        cmocka_unit_test(test_f16),             cmocka_unit_test(test_bf16),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
