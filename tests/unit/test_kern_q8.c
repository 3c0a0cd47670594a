/* kern_q8: the integer path (kern.h "Q8 activations") and the packed
 * weights of kern_pack.c, at every level the CPU has, against a double
 * reference built from the documented numerics: activations rounded by
 * kern_q8_quantize_block, exact integer block dots, dw * dx scales.
 *   - random weights and activations, ragged rows, odd block counts, token
 *     counts across every tile and token-block boundary;
 *   - edge blocks: Q8_0 weights of -128, Q5_0 with every fifth bit, zero
 *     activation blocks, one huge activation, ties in the rounding;
 *   - batch invariance: a token's outputs are the same bits alone, in any
 *     batch, and in any row sub-range;
 *   - packing: shape checks, and ops_matmul on a packed weight equal to the
 *     packed kernel in any batch and thread count. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cpu.h"
#include "engine/gguf.h"
#include "engine/kern.h"
#include "engine/model.h"
#include "engine/ops.h"
#include "engine/quant.h"

#define MAX_ROWS 48
#define MAX_N 512  /* 16 blocks; 2 Q4_K super-blocks */
#define MAX_TOK 41 /* > the 32-token blocks, > 5 tiles of 8 */
#define REL_TOL 1e-5

static const uint32_t TYPES[] = {GGML_T_Q8_0, GGML_T_Q4_0, GGML_T_Q5_0};
#define N_TYPES (sizeof TYPES / sizeof TYPES[0])

static uint64_t g_rng = 0x243f6a8885a308d3ull;
static float frand(void)
{
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return (float)((double)(g_rng >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
}

static uint8_t *make_weights(uint32_t t, int nr, size_t n, size_t *rb)
{
    *rb = quant_row_bytes(t, n);
    uint8_t *w = malloc(*rb * (size_t)nr);
    float *src = malloc(n * sizeof *src);
    assert_non_null(w);
    assert_non_null(src);
    for (int r = 0; r < nr; r++) {
        for (size_t i = 0; i < n; i++)
            src[i] = frand() * (float)(1 + r % 3);
        assert_int_equal(quant_quantize_row(t, src, w + (size_t)r * *rb, n), 0);
    }
    free(src);
    return w;
}

/* The documented value of one output, in double, and the sum of the
 * magnitudes of its terms (the scale of rounding differences). */
#define REF_MAX_N 4352 /* the panel test's longest row */
static double ref_out(uint32_t t, const uint8_t *row, const float *x, size_t n, double *mag)
{
    float deq[REF_MAX_N];
    assert_true(n <= REF_MAX_N);
    assert_int_equal(quant_dequantize_row(t, row, deq, n), 0);
    double s = 0, m = 0;
    for (size_t b = 0; b < n / KERN_Q8_BLOCK; b++) {
        int8_t q[KERN_Q8_BLOCK];
        float dx;
        kern_q8_quantize_block(x + b * KERN_Q8_BLOCK, q, &dx);
        for (int j = 0; j < KERN_Q8_BLOCK; j++) {
            const double v = (double)deq[b * KERN_Q8_BLOCK + (size_t)j] * q[j] * dx;
            s += v;
            m += fabs(v);
        }
    }
    *mag = m;
    return s;
}

typedef struct {
    size_t (*row_bytes)(size_t n);
    void (*quantize)(const float *x, size_t n, void *dst);
    int (*gemm)(uint32_t type, const void *w, size_t rb, int nr, size_t n, const void *xq, size_t ldxq, int nt,
                float *y, size_t ldy);
    int packed;
} path;

/* Checks one path on (w, x): values against the reference, then batch and
 * row-range invariance. w is row-major or packed as the path wants; rows
 * holds the row-major copy for the reference. */
static void check_path(const path *p, uint32_t t, const uint8_t *w, const uint8_t *rows, size_t rb, int nr,
                       size_t n, const float *x, int nt)
{
    const size_t ldxq = p->row_bytes(n);
    assert_int_equal(ldxq % 64, 0);
    uint8_t *xq = aligned_alloc(64, ldxq * (size_t)nt);
    float *y = malloc(sizeof *y * (size_t)nt * (size_t)nr), *y1 = malloc(sizeof *y1 * (size_t)nr);
    assert_non_null(xq);
    assert_non_null(y);
    assert_non_null(y1);
    for (int k = 0; k < nt; k++)
        p->quantize(x + (size_t)k * n, n, xq + (size_t)k * ldxq);
    assert_int_equal(p->gemm(t, w, rb, nr, n, xq, ldxq, nt, y, (size_t)nr), 0);
    for (int k = 0; k < nt; k++) {
        for (int r = 0; r < nr; r++) {
            double mag, want = ref_out(t, rows + (size_t)r * rb, x + (size_t)k * n, n, &mag);
            if (!(fabs(y[(size_t)k * nr + r] - want) <= REL_TOL * mag + 1e-30)) {
                fprintf(stderr, "type %u n %zu row %d tok %d: got %.9g want %.9g (mag %.3g)%s\n", t, n, r, k,
                        (double)y[(size_t)k * nr + r], want, mag, p->packed ? " packed" : "");
                fail();
            }
        }
        /* alone: the same bits */
        assert_int_equal(p->gemm(t, w, rb, nr, n, xq + (size_t)k * ldxq, ldxq, 1, y1, (size_t)nr), 0);
        assert_memory_equal(y1, y + (size_t)k * nr, sizeof *y1 * (size_t)nr);
    }
    /* a row sub-range (a whole panel for packed weights) */
    const int step = p->packed ? kern_pack_panel_rows(t, n) : 3;
    const size_t skip = p->packed ? (size_t)step / KERN_PACK_ROWS * kern_pack_group_bytes(t, n, rb) : (size_t)step * rb;
    if (nr > step) {
        assert_int_equal(p->gemm(t, w + skip, rb, nr - step, n, xq, ldxq, 1, y1, (size_t)nr), 0);
        assert_memory_equal(y1, y + step, sizeof *y1 * (size_t)(nr - step));
    }
    free(xq), free(y), free(y1);
}

static int n_levels;

static void test_q8_each_level(void **s)
{
    (void)s;
    static const size_t NS[] = {32, 96, 256, MAX_N};
    static const int NTS[] = {1, 2, 3, 5, 8, 9, MAX_TOK};
    float *x = malloc(sizeof *x * MAX_N * MAX_TOK);
    assert_non_null(x);
    for (size_t i = 0; i < (size_t)MAX_N * MAX_TOK; i++)
        x[i] = frand() * (i % 7 == 0 ? 8.0f : 1.0f);
    for (int l = 0; l <= (int)cpu_detected_level(); l++) {
        const kern_ops *k = kern_for_level((cpu_level)l);
        assert_non_null(k);
        const path p = {k->q8_row_bytes, k->q8_quantize, k->q8_gemm, 0};
        for (size_t ti = 0; ti < N_TYPES; ti++) {
            assert_true(kern_has_q8(k, TYPES[ti]));
            for (size_t ni = 0; ni < sizeof NS / sizeof NS[0]; ni++) {
                size_t rb;
                uint8_t *w = make_weights(TYPES[ti], 13, NS[ni], &rb);
                for (size_t ki = 0; ki < sizeof NTS / sizeof NTS[0]; ki++)
                    check_path(&p, TYPES[ti], w, w, rb, 13, NS[ni], x, NTS[ki]);
                free(w);
            }
        }
        /* types without an integer kernel say so */
        assert_false(kern_has_q8(k, GGML_T_F16));
        assert_false(kern_has_q8(k, GGML_T_Q4_K));
        uint8_t dummy[64] = {0};
        float y;
        assert_int_equal(k->q8_gemm(GGML_T_Q4_K, dummy, 0, 1, 256, dummy, 64, 1, &y, 1), -1);
        assert_int_equal(k->q8_gemm(GGML_T_Q4_0, dummy, 18, 1, 33, dummy, 64, 1, &y, 1), -1);
        n_levels++;
    }
    printf("integer path checked at %d level(s)\n", n_levels);
    free(x);
}

/* Blocks at the edges of the integer ranges, written byte by byte. */
static void test_q8_edge_blocks(void **s)
{
    (void)s;
    const size_t n = 64;
    float x[3][64];
    for (int j = 0; j < 64; j++) {
        x[0][j] = j < 32 ? 0.0f : (float)(j - 48); /* a zero block, then integers (ties at x.5 after scaling?) */
        x[1][j] = j == 5 ? 1e30f : 1e-3f * (float)j; /* one huge value: the rest round to 0 */
        x[2][j] = (j % 2 ? -1.0f : 1.0f) * (127.0f / 2 + (float)(j % 4)); /* ties: 63.5 -> 64 (even) */
    }
    uint8_t q8[2][68], q5[2][44], q4[2][36];
    const uint16_t one = quant_f32_to_f16(0.5f);
    for (int r = 0; r < 2; r++) {
        for (int b = 0; b < 2; b++) {
            memcpy(q8[r] + 34 * b, &one, 2);
            memcpy(q5[r] + 22 * b, &one, 2);
            memcpy(q4[r] + 18 * b, &one, 2);
            for (int j = 0; j < 32; j++)
                q8[r][34 * b + 2 + j] = (uint8_t)(r == 0 ? 0x80 : (j % 2 ? 0x7f : 0x81)); /* -128; 127/-127 */
            const uint32_t qh = r == 0 ? 0xffffffffu : 0x5a5a5a5au;
            memcpy(q5[r] + 22 * b + 2, &qh, 4);
            for (int j = 0; j < 16; j++) {
                q5[r][22 * b + 6 + j] = (uint8_t)(r == 0 ? 0xff : (uint8_t)(j * 17));
                q4[r][18 * b + 2 + j] = (uint8_t)(r == 0 ? 0xff : r == 1 ? (uint8_t)(j * 17) : 0);
            }
        }
    }
    const struct { uint32_t t; const uint8_t *w; size_t rb; } cases[] = {
        {GGML_T_Q8_0, &q8[0][0], 68}, {GGML_T_Q5_0, &q5[0][0], 44}, {GGML_T_Q4_0, &q4[0][0], 36}};
    for (int l = 0; l <= (int)cpu_detected_level(); l++) {
        const kern_ops *k = kern_for_level((cpu_level)l);
        const path p = {k->q8_row_bytes, k->q8_quantize, k->q8_gemm, 0};
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
            check_path(&p, cases[c].t, cases[c].w, cases[c].w, cases[c].rb, 2, n, &x[0][0], 3);
    }
    /* the reference rounding itself: ties to even, zero blocks, clamping */
    int8_t q[32];
    float dx, t[32];
    for (int j = 0; j < 32; j++)
        t[j] = j == 0 ? 127.0f : (float)j + 0.5f;
    kern_q8_quantize_block(t, q, &dx);
    assert_true(dx == 1.0f);
    assert_int_equal(q[0], 127);
    assert_int_equal(q[1], 2);  /* 1.5 -> 2 */
    assert_int_equal(q[2], 2);  /* 2.5 -> 2 */
    assert_int_equal(q[3], 4);  /* 3.5 -> 4 */
    memset(t, 0, sizeof t);
    kern_q8_quantize_block(t, q, &dx);
    assert_true(dx == 0.0f);
    for (int j = 0; j < 32; j++)
        assert_int_equal(q[j], 0);
}

static void test_pack(void **s)
{
    (void)s;
    if (!kern_pack_supported(GGML_T_Q4_0, 64, 16)) {
        printf("packed weights: this CPU has no AVX-512 VNNI, nothing to check\n");
        assert_false(kern_pack_usable(kern_get(), GGML_T_Q4_0));
        return;
    }
    assert_false(kern_pack_supported(GGML_T_Q4_0, 64, 24)); /* not whole groups */
    assert_false(kern_pack_supported(GGML_T_Q4_0, 48, 16)); /* not whole blocks */
    assert_true(kern_pack_supported(GGML_T_Q5_0, 64, 16));
    assert_false(kern_pack_supported(GGML_T_BF16, 64, 16));
    assert_false(kern_pack_supported(GGML_T_F16, 64, 8));
    assert_true(kern_pack_supported(GGML_T_Q8_0, 64, 16));
    assert_true(kern_pack_supported(GGML_T_Q4_K, 256, 16));
    assert_false(kern_pack_supported(GGML_T_Q4_K, 128, 16)); /* not whole super-blocks */
    assert_true(kern_pack_supported(GGML_T_Q6_K, 512, 32));
    assert_true(kern_pack_supported(GGML_T_Q5_K, 256, 16));
    assert_true(kern_pack_supported(GGML_T_Q4_1, 256, 16));
    static const size_t NS[] = {32, 96, 352, 256, MAX_N};
    static const int NTS[] = {1, 4, 7, 8, 9, 17, MAX_TOK};
    float *x = malloc(sizeof *x * MAX_N * MAX_TOK);
    assert_non_null(x);
    for (size_t i = 0; i < (size_t)MAX_N * MAX_TOK; i++)
        x[i] = frand();
    const path p = {kern_pack_x_bytes, kern_pack_quantize, kern_pack_gemm, 1};
    const uint32_t types[] = {GGML_T_Q4_0, GGML_T_Q8_0, GGML_T_Q4_1, GGML_T_Q5_0, GGML_T_Q4_K, GGML_T_Q5_K, GGML_T_Q6_K};
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
        for (size_t ni = 0; ni < sizeof NS / sizeof NS[0]; ni++) {
            if (types[ti] >= GGML_T_Q4_K && NS[ni] % 256 != 0) /* K-quants: whole super-blocks */
                continue;
            size_t rb;
            uint8_t *w = make_weights(types[ti], MAX_ROWS, NS[ni], &rb);
            const size_t gb = kern_pack_group_bytes(types[ti], NS[ni], rb);
            assert_true(gb >= KERN_PACK_ROWS * rb);
            uint8_t *pk = malloc(gb * (MAX_ROWS / KERN_PACK_ROWS));
            assert_non_null(pk);
            kern_pack(types[ti], w, rb, NS[ni], MAX_ROWS, pk);
            assert_memory_not_equal(pk, w, rb * MAX_ROWS); /* it did move bytes */
            for (size_t ki = 0; ki < sizeof NTS / sizeof NTS[0]; ki++)
                check_path(&p, types[ti], pk, w, rb, MAX_ROWS, NS[ni], x, NTS[ki]);
            float y;
            assert_int_equal(kern_pack_gemm(types[ti], pk, rb, 8, NS[ni], pk, 64, 1, &y, 1), -1); /* part of a group */
            free(pk), free(w);
        }
    /* Q8_0 blocks in pairs (kern_pack.c): heads 0 and 1, tails 0 and 1
     * (64-byte aligned), then the odd last block's head and tail. */
    size_t rb;
    uint8_t *w = make_weights(GGML_T_Q8_0, KERN_PACK_ROWS, 96, &rb), *pk = malloc(KERN_PACK_ROWS * rb);
    assert_non_null(pk);
    kern_pack(GGML_T_Q8_0, w, rb, 96, KERN_PACK_ROWS, pk);
    const uint8_t *row1 = w + rb; /* row 1 of the group: 2 bytes into each head, 4 into each 64-byte chunk */
    assert_memory_equal(pk + 2, row1, 2);             /* block 0's d */
    assert_memory_equal(pk + 32 + 2, row1 + 34, 2);   /* block 1's d */
    assert_memory_equal(pk + 64 + 4, row1 + 2, 4);    /* block 0's first quants */
    assert_memory_equal(pk + 576 + 4, row1 + 36, 4);  /* block 1's */
    assert_memory_equal(pk + 1088 + 2, row1 + 68, 2); /* block 2: d */
    assert_memory_equal(pk + 1120 + 4, row1 + 70, 4); /*          quants */
    free(pk), free(w);
    /* Q4_0 by super-blocks (n 256): a zero first line, block j's scales in
     * halves (rows 0..7 at 64 + 16j, 8..15 at 192 + 16j), then per pair of
     * blocks 8 chunks of 4 bytes per row, nibbles of the two blocks. */
    w = make_weights(GGML_T_Q4_0, KERN_PACK_ROWS, 256, &rb);
    assert_int_equal(kern_pack_group_bytes(GGML_T_Q4_0, 256, rb), 2368);
    pk = malloc(2368);
    assert_non_null(pk);
    kern_pack(GGML_T_Q4_0, w, rb, 256, KERN_PACK_ROWS, pk);
    static const uint8_t zero[64];
    assert_memory_equal(pk, zero, 64);
    assert_memory_equal(pk + 64 + 2, w + rb, 2);                         /* row 1, block 0: d */
    assert_memory_equal(pk + 192 + 16 * 3 + 2, w + 9 * rb + 3 * 18, 2); /* row 9, block 3 */
    const uint8_t *b2 = w + rb + 2 * 18 + 2, *b3 = b2 + 18; /* row 1's nibbles of blocks 2 and 3 */
    assert_int_equal(pk[320 + 512 + 4 * 64 + 4 + 1], (b2[1] >> 4) | (b3[1] >> 4) << 4); /* element 17 */
    assert_int_equal(pk[320 + 512 + 0 * 64 + 4 + 2], (b2[2] & 15) | (b3[2] & 15) << 4); /* element 2 */
    free(pk), free(w);
    free(x);
}

/* ops_matmul on a packed weight: every batch size and thread count gives
 * the packed kernel's bits; at a level that cannot use packing, the
 * row-major data is used (and stays within rounding of the packed result). */
static void test_matmul_packed(void **s)
{
    (void)s;
    if (!kern_pack_supported(GGML_T_Q4_0, 256, MAX_ROWS)) {
        printf("packed matmul: skipped (no AVX-512 VNNI)\n");
        return;
    }
    enum { N = 256, TOK = 21 };
    char err[128];
    ops_pool *p1 = ops_pool_new(1, OPS_MATMUL_ROWS * N, err, sizeof err), *p3 = ops_pool_new(3, OPS_MATMUL_ROWS * N, err, sizeof err);
    assert_non_null(p1);
    assert_non_null(p3);
    ops_pool_set_par_min(p3, 0); /* threaded even for these small matrices */
    float *x = malloc(sizeof *x * N * TOK), *ya = malloc(sizeof *ya * MAX_ROWS * TOK);
    float *yb = malloc(sizeof *yb * MAX_ROWS * TOK), *y1 = malloc(sizeof *y1 * MAX_ROWS);
    float *bias = malloc(sizeof *bias * MAX_ROWS);
    for (size_t i = 0; i < (size_t)N * TOK; i++)
        x[i] = frand();
    for (int r = 0; r < MAX_ROWS; r++)
        bias[r] = frand();
    const cpu_level det = cpu_detected_level();
    for (int ti = 0; ti < 2; ti++) {
        const uint32_t t = ti ? GGML_T_Q8_0 : GGML_T_Q4_0;
        size_t rb;
        uint8_t *w = make_weights(t, MAX_ROWS, N, &rb);
        uint8_t *pk = malloc(kern_pack_group_bytes(t, N, rb) * (MAX_ROWS / KERN_PACK_ROWS));
        assert_non_null(pk);
        kern_pack(t, w, rb, N, MAX_ROWS, pk);
        model_weight mw = {.data = w, .type = t, .ne0 = N, .ne1 = MAX_ROWS, .row_bytes = rb, .name = "w", .packed = pk};
        assert_int_equal(cpu_set_level(det), 0);
        ops_matmul(p3, &mw, bias, x, TOK, ya);
        ops_matmul(p1, &mw, bias, x, TOK, yb);
        assert_memory_equal(ya, yb, sizeof *ya * MAX_ROWS * TOK);
        for (int k = 0; k < TOK; k++) {
            ops_matmul(p3, &mw, bias, x + (size_t)k * N, 1, y1);
            assert_memory_equal(y1, ya + (size_t)k * MAX_ROWS, sizeof *y1 * MAX_ROWS);
        }
        /* the same through the unpacked kernels (another level, or none) */
        assert_int_equal(cpu_set_level(CPU_LEVEL_AVX2), 0);
        ops_matmul(p3, &mw, bias, x, TOK, yb);
        for (size_t i = 0; i < (size_t)MAX_ROWS * TOK; i++) {
            double mag;
            const int r = (int)(i % MAX_ROWS), k = (int)(i / MAX_ROWS);
            (void)ref_out(t, w + (size_t)r * rb, x + (size_t)k * N, N, &mag);
            assert_true(fabs((double)ya[i] - yb[i]) <= 2 * REL_TOL * mag);
        }
        free(pk), free(w);
    }
    assert_int_equal(cpu_set_level(det), 0);
    free(x), free(ya), free(yb), free(y1), free(bias);
    ops_pool_free(p1);
    ops_pool_free(p3);
}

/* Panels (kern.h): long rows of the 4-to-6-bit types, 6 groups (a panel
 * of 4 and a last one of 2), rows with a short last slice; values, batch
 * invariance, a call from the second panel, the byte order, and ops_matmul
 * at 1 and 3 threads. */
static void test_pack_panels(void **s)
{
    (void)s;
    if (!kern_pack_supported(GGML_T_Q4_0, 4096, 16)) {
        printf("packed panels: skipped (no AVX-512 VNNI)\n");
        return;
    }
    assert_int_equal(kern_pack_panel_rows(GGML_T_Q4_0, 4096), 64);
    assert_int_equal(kern_pack_panel_rows(GGML_T_Q6_K, 4352), 64);
    assert_int_equal(kern_pack_panel_rows(GGML_T_Q4_0, 4064), KERN_PACK_ROWS); /* short rows: no panels */
    assert_int_equal(kern_pack_panel_rows(GGML_T_Q8_0, 4096), KERN_PACK_ROWS);
    assert_int_equal(kern_pack_panel_rows(GGML_T_F16, 8192), KERN_PACK_ROWS);
    enum { NR = 96, TOK = 9 };
    static const size_t NS[] = {4096, 4352, 4192}; /* 4192: a last slice of 3 blocks (an unpaired one) */
    const uint32_t types[] = {GGML_T_Q4_0, GGML_T_Q4_1, GGML_T_Q5_0, GGML_T_Q4_K, GGML_T_Q5_K, GGML_T_Q6_K};
    float *x = malloc(sizeof *x * REF_MAX_N * TOK);
    assert_non_null(x);
    for (size_t i = 0; i < (size_t)REF_MAX_N * TOK; i++)
        x[i] = frand();
    const path p = {kern_pack_x_bytes, kern_pack_quantize, kern_pack_gemm, 1};
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
        for (size_t ni = 0; ni < sizeof NS / sizeof NS[0]; ni++) {
            if (types[ti] >= GGML_T_Q4_K && NS[ni] % 256 != 0)
                continue;
            size_t rb;
            uint8_t *w = make_weights(types[ti], NR, NS[ni], &rb);
            const size_t gb = kern_pack_group_bytes(types[ti], NS[ni], rb);
            uint8_t *pk = malloc(gb * (NR / KERN_PACK_ROWS));
            assert_non_null(pk);
            kern_pack(types[ti], w, rb, NS[ni], NR, pk);
            check_path(&p, types[ti], pk, w, rb, NR, NS[ni], x, 1);
            check_path(&p, types[ti], pk, w, rb, NR, NS[ni], x, TOK);
            free(pk), free(w);
        }
    /* Q4_0, n 4096: each group alone packs as one plain group (no panel);
     * in the matrix, slice 0 holds groups 0..3's first 32 blocks in turn. */
    size_t rb;
    uint8_t *w = make_weights(GGML_T_Q4_0, NR, 4096, &rb);
    const size_t gb = kern_pack_group_bytes(GGML_T_Q4_0, 4096, rb), piece = gb / 4; /* 4 slices of 1024 */
    uint8_t *pk = malloc(gb * (NR / KERN_PACK_ROWS)), *one = malloc(gb);
    assert_non_null(pk);
    assert_non_null(one);
    kern_pack(GGML_T_Q4_0, w, rb, 4096, NR, pk);
    for (size_t g = 0; g < 4; g++) {
        kern_pack(GGML_T_Q4_0, w + g * KERN_PACK_ROWS * rb, rb, 4096, KERN_PACK_ROWS, one);
        assert_memory_equal(pk + g * piece, one, piece);                   /* slice 0 */
        assert_memory_equal(pk + 4 * piece + g * piece, one + piece, piece); /* slice 1 */
    }
    /* ops_matmul: panels split among 3 threads give the kernel's bits */
    char err[128];
    ops_pool *p1 = ops_pool_new(1, OPS_MATMUL_ROWS * 4096, err, sizeof err),
             *p3 = ops_pool_new(3, OPS_MATMUL_ROWS * 4096, err, sizeof err);
    assert_non_null(p1);
    assert_non_null(p3);
    ops_pool_set_par_min(p3, 0);
    float *ya = malloc(sizeof *ya * NR * TOK), *yb = malloc(sizeof *yb * NR * TOK);
    assert_non_null(ya);
    assert_non_null(yb);
    model_weight mw = {.data = w, .type = GGML_T_Q4_0, .ne0 = 4096, .ne1 = NR, .row_bytes = rb, .name = "w", .packed = pk};
    for (int nt = 1; nt <= TOK; nt += TOK - 1) {
        ops_matmul(p3, &mw, NULL, x, nt, ya);
        ops_matmul(p1, &mw, NULL, x, nt, yb);
        assert_memory_equal(ya, yb, sizeof *ya * NR * (size_t)nt);
    }
    ops_pool_free(p1);
    ops_pool_free(p3);
    free(ya), free(yb), free(pk), free(one), free(w), free(x);
}

/* Packed F16: values within f32 rounding of a double dot, the same bits in
 * any batch, any thread count (ops_matmul) and row group range. */
static void test_pack_f16(void **s)
{
    (void)s;
    if (!kern_pack_supported(GGML_T_F16, 16, 16)) {
        printf("packed F16: skipped (no AVX-512)\n");
        return;
    }
    enum { N = 333, TOK = 19 }; /* odd n: the last k has no pair */
    size_t rb;
    float *src = malloc(sizeof *src * N), *x = malloc(sizeof *x * N * TOK);
    float *ya = malloc(sizeof *ya * MAX_ROWS * TOK), *yb = malloc(sizeof *yb * MAX_ROWS * TOK);
    float *y1 = malloc(sizeof *y1 * MAX_ROWS), *deq = malloc(sizeof *deq * N);
    rb = quant_row_bytes(GGML_T_F16, N);
    uint8_t *w = malloc(rb * MAX_ROWS), *pk = malloc(rb * MAX_ROWS);
    for (int r = 0; r < MAX_ROWS; r++) {
        for (int i = 0; i < N; i++)
            src[i] = frand();
        assert_int_equal(quant_quantize_row(GGML_T_F16, src, w + (size_t)r * rb, N), 0);
    }
    for (size_t i = 0; i < (size_t)N * TOK; i++)
        x[i] = frand();
    kern_pack(GGML_T_F16, w, rb, N, MAX_ROWS, pk);
    assert_int_equal(kern_pack_gemm_f16(pk, rb, MAX_ROWS, N, x, N, TOK, ya, MAX_ROWS), 0);
    for (int k = 0; k < TOK; k++) {
        for (int r = 0; r < MAX_ROWS; r++) {
            assert_int_equal(quant_dequantize_row(GGML_T_F16, w + (size_t)r * rb, deq, N), 0);
            double want = 0, mag = 0;
            for (int i = 0; i < N; i++) {
                want += (double)deq[i] * x[(size_t)k * N + (size_t)i];
                mag += fabs((double)deq[i] * x[(size_t)k * N + (size_t)i]);
            }
            assert_true(fabs(ya[(size_t)k * MAX_ROWS + r] - want) <= REL_TOL * mag);
        }
        assert_int_equal(kern_pack_gemm_f16(pk, rb, MAX_ROWS, N, x + (size_t)k * N, N, 1, y1, MAX_ROWS), 0);
        assert_memory_equal(y1, ya + (size_t)k * MAX_ROWS, sizeof *y1 * MAX_ROWS);
    }
    assert_int_equal(kern_pack_gemm_f16(pk + 16 * rb, rb, MAX_ROWS - 16, N, x, N, 1, y1, MAX_ROWS), 0);
    assert_memory_equal(y1, ya + 16, sizeof *y1 * (MAX_ROWS - 16));
    assert_int_equal(kern_pack_gemm_f16(pk, rb, 8, N, x, N, 1, y1, MAX_ROWS), -1);
    /* through ops_matmul: 1 and 3 threads, whole batch and one token */
    char err[128];
    ops_pool *p1 = ops_pool_new(1, OPS_MATMUL_ROWS * N, err, sizeof err), *p3 = ops_pool_new(3, OPS_MATMUL_ROWS * N, err, sizeof err);
    assert_non_null(p1);
    assert_non_null(p3);
    ops_pool_set_par_min(p3, 0); /* threaded even for these small matrices */
    model_weight mw = {.data = w, .type = GGML_T_F16, .ne0 = N, .ne1 = MAX_ROWS, .row_bytes = rb, .name = "w", .packed = pk};
    ops_matmul(p3, &mw, NULL, x, TOK, yb);
    assert_memory_equal(ya, yb, sizeof *ya * MAX_ROWS * TOK);
    ops_matmul(p1, &mw, NULL, x + N, 1, y1);
    assert_memory_equal(y1, ya + MAX_ROWS, sizeof *y1 * MAX_ROWS);
    ops_pool_free(p1);
    ops_pool_free(p3);
    free(src), free(x), free(ya), free(yb), free(y1), free(deq), free(w), free(pk);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_q8_each_level),
        cmocka_unit_test(test_q8_edge_blocks),
        cmocka_unit_test(test_pack),
        cmocka_unit_test(test_matmul_packed),
        cmocka_unit_test(test_pack_f16),
        cmocka_unit_test(test_pack_panels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
