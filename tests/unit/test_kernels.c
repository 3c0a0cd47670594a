/* kernels: every SIMD level (scalar, AVX2, AVX-512 as the CPU allows, forced
 * through cpu_set_level) against the scalar references on random data and
 * odd sizes; the determinism promise of kern.h (fused decode kernel ==
 * dequantized panel + GEMM == plain dot, bit for bit); ops_matmul batch and
 * thread invariance; the thread pool's once-per-share guarantee. */
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
#include "engine/ops.h"
#include "engine/quant.h"

#define MAX_N 1024    /* longest row tested */
#define MAX_ROWS 13   /* > 3 GEMM tiles of 4 rows, with a ragged edge */
#define MAX_TOK 14    /* > 2 GEMM tiles of 6 tokens, with a ragged edge */

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static float frand(void) /* uniform in [-1, 1) */
{
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return (float)((double)(g_rng >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
}
static void fill(float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        v[i] = frand();
}

static const uint32_t FUSED_TYPES[] = {GGML_T_F16, GGML_T_BF16, GGML_T_Q8_0, GGML_T_Q4_0, GGML_T_Q4_1, GGML_T_Q5_0};
static const uint32_t ALL_TYPES[] = {GGML_T_F32, GGML_T_F16, GGML_T_BF16, GGML_T_Q8_0, GGML_T_Q4_0,
                                     GGML_T_Q4_1, GGML_T_Q5_0, GGML_T_Q4_K, GGML_T_Q5_K, GGML_T_Q6_K};
#define N_FUSED (sizeof FUSED_TYPES / sizeof FUSED_TYPES[0])
#define N_ALL (sizeof ALL_TYPES / sizeof ALL_TYPES[0])

static size_t block_of(uint32_t t)
{
    return t == GGML_T_F32 || t == GGML_T_F16 || t == GGML_T_BF16 ? 1
           : t == GGML_T_Q4_K || t == GGML_T_Q5_K || t == GGML_T_Q6_K ? 256 : 32;
}

/* Quantized weights: nr rows of n random floats in type t. Caller frees. */
static uint8_t *make_weights(uint32_t t, int nr, size_t n, size_t *row_bytes)
{
    *row_bytes = quant_row_bytes(t, n);
    assert_true(*row_bytes > 0);
    uint8_t *w = malloc(*row_bytes * (size_t)nr);
    float *src = malloc(n * sizeof *src);
    assert_non_null(w);
    assert_non_null(src);
    for (int r = 0; r < nr; r++) {
        fill(src, n);
        if (t == GGML_T_F32)
            memcpy(w + (size_t)r * *row_bytes, src, n * sizeof(float));
        else
            assert_int_equal(quant_quantize_row(t, src, w + (size_t)r * *row_bytes, n), 0);
    }
    free(src);
    return w;
}

static double ref_dot(const float *a, const float *b, size_t n, double *mag)
{
    double s = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        s += (double)a[i] * b[i];
        m += fabs((double)a[i] * b[i]);
    }
    *mag = m;
    return s;
}

static int n_levels_tested;

/* ---- cpu ---- */

static void test_cpu_levels(void **s)
{
    (void)s;
    const cpu_level det = cpu_detected_level();
    const cpu_features *f = cpu_get_features();
    if (det >= CPU_LEVEL_AVX2)
        assert_true(f->avx2 && f->fma && f->f16c);
    if (det >= CPU_LEVEL_AVX512)
        assert_true(f->avx512f && f->avx512bw && f->avx512vl && f->avx512dq);
    assert_non_null(cpu_features_string());
    for (int l = 0; l < CPU_LEVEL_COUNT; l++) {
        cpu_level parsed;
        assert_int_equal(cpu_level_parse(cpu_level_name((cpu_level)l), &parsed), 0);
        assert_int_equal(parsed, l);
        if (l <= (int)det) {
            assert_int_equal(cpu_set_level((cpu_level)l), 0);
            assert_int_equal(cpu_get_level(), l);
            assert_int_equal(kern_get()->level, l);
            assert_non_null(kern_for_level((cpu_level)l));
        } else {
            assert_int_equal(cpu_set_level((cpu_level)l), -1); /* would fault */
            assert_null(kern_for_level((cpu_level)l));
        }
    }
    cpu_level dummy;
    assert_int_equal(cpu_level_parse("avx1024", &dummy), -1);
    assert_int_equal(cpu_level_parse(NULL, &dummy), -1);
    assert_string_equal(cpu_level_name((cpu_level)9), "?");
    assert_int_equal(cpu_set_level((cpu_level)-1), -1);
    assert_int_equal(cpu_set_level(det), 0);
}

/* ---- per-level kernel checks ---- */

static void check_dot_axpy(const kern_ops *k)
{
    static const size_t sizes[] = {1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 257, MAX_N};
    float *a = malloc(MAX_N * sizeof *a), *b = malloc(MAX_N * sizeof *b);
    float *y1 = malloc(MAX_N * sizeof *y1), *y2 = malloc(MAX_N * sizeof *y2);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        fill(a, n);
        fill(b, n);
        double mag, want = ref_dot(a, b, n, &mag);
        float got = k->dot_f32(a, b, n);
        if (!(fabs(got - want) <= 1e-6 * mag + 1e-30)) {
            printf("level %s dot n=%zu: %.9g vs %.9g\n", cpu_level_name(k->level), n, got, want);
            fail();
        }
        fill(y1, n);
        memcpy(y2, y1, n * sizeof *y1);
        const float alpha = frand();
        k->axpy_f32(alpha, a, y1, n);
        for (size_t j = 0; j < n; j++) {
            double want_y = (double)y2[j] + (double)alpha * a[j];
            assert_true(fabs(y1[j] - want_y) <= 2e-7 * (fabs(want_y) + 1.0));
        }
    }
    free(a), free(b), free(y1), free(y2);
    /* attention rows: the same bits as dot_f32 / axpy_f32 position by
     * position, for head sizes in and out of the register fast path */
    static const size_t heads[] = {8, 16, 48, 64, 80, 128, 256};
    enum { NK = 7, LD_PAD = 24 };
    for (size_t i = 0; i < sizeof heads / sizeof heads[0]; i++) {
        const size_t n = heads[i], ld = n + LD_PAD;
        float q[256], kv[NK * (256 + LD_PAD)], w[NK], out1[NK], out2[NK], ya[256], yb[256];
        fill(q, n);
        fill(kv, NK * ld);
        fill(w, NK);
        fill(ya, n);
        memcpy(yb, ya, n * sizeof *ya);
        k->dot_rows(q, kv, ld, NK, n, 0.125f, out1);
        for (int j = 0; j < NK; j++)
            out2[j] = k->dot_f32(q, kv + (size_t)j * ld, n) * 0.125f;
        assert_memory_equal(out1, out2, sizeof out1);
        k->axpy_rows(w, kv, ld, NK, n, ya);
        for (int j = 0; j < NK; j++)
            k->axpy_f32(w[j], kv + (size_t)j * ld, yb, n);
        assert_memory_equal(ya, yb, n * sizeof *ya);
    }
    /* softmax: within 1e-6 relative of a double softmax (plus the rounding
     * of x - max), also with scores
     * spread far below the maximum (underflow to ~0) and ragged lengths */
    static const size_t sm_n[] = {1, 2, 15, 16, 17, 100, 1000};
    static const float spread[] = {1.0f, 30.0f, 200.0f};
    for (size_t i = 0; i < sizeof sm_n / sizeof sm_n[0]; i++)
        for (size_t sp = 0; sp < sizeof spread / sizeof spread[0]; sp++) {
            const size_t n = sm_n[i];
            float v[1000];
            double want[1000], mx = -1e300, sum = 0;
            for (size_t j = 0; j < n; j++) {
                v[j] = frand() * spread[sp];
                if (v[j] > mx)
                    mx = v[j];
            }
            for (size_t j = 0; j < n; j++)
                sum += want[j] = exp((double)v[j] - mx);
            k->softmax(v, n);
            double tot = 0;
            for (size_t j = 0; j < n; j++) {
                want[j] /= sum;
                tot += v[j];
                /* the float difference x - max carries up to half an ulp of |x - max| */
                const double t = fabs(log(want[j] * sum));
                if (!(fabs(v[j] - want[j]) <= (1e-6 + 1.2e-7 * t) * want[j] + 1e-37)) {
                    printf("level %s softmax n=%zu spread %g [%zu]: %.9g vs %.9g\n", cpu_level_name(k->level), n,
                           (double)spread[sp], j, (double)v[j], want[j]);
                    fail();
                }
            }
            assert_true(fabs(tot - 1.0) < 1e-5);
        }
    /* silu_mul: within 1e-6 relative of double g / (1 + e^-g) * u, over
     * ragged lengths and gates from -120 (e^-g past the cap) to 120; a
     * stretch computed as two calls gives the same bits as one */
    static const size_t sl_n[] = {1, 15, 16, 17, 33, 1000};
    for (size_t i = 0; i < sizeof sl_n / sizeof sl_n[0]; i++) {
        const size_t n = sl_n[i];
        float g[1000], u[1000], g2[1000];
        for (size_t j = 0; j < n; j++) {
            g[j] = (j % 7 == 3) ? 120.0f * frand() : 8.0f * frand();
            u[j] = frand();
        }
        memcpy(g2, g, n * sizeof *g);
        double want[1000];
        for (size_t j = 0; j < n; j++)
            want[j] = (double)g[j] / (1.0 + exp(-(double)g[j])) * u[j];
        k->silu_mul(g, u, n);
        for (size_t j = 0; j < n; j++)
            if (!(fabs(g[j] - want[j]) <= 1e-6 * fabs(want[j]) + 1e-35)) {
                printf("level %s silu_mul n=%zu [%zu]: %.9g vs %.9g\n", cpu_level_name(k->level), n, j,
                       (double)g[j], want[j]);
                fail();
            }
        k->silu_mul(g2, u, n / 2);
        k->silu_mul(g2 + n / 2, u + n / 2, n - n / 2);
        assert_memory_equal(g, g2, n * sizeof *g);
    }
}

/* GEMM: within rounding of a double reference, and every output bit-equal
 * to the level's own dot (the determinism promise). */
static void check_gemm(const kern_ops *k)
{
    static const size_t sizes[] = {1, 5, 16, 37, 128, 203};
    float *w = malloc(MAX_ROWS * MAX_N * sizeof *w), *x = malloc(MAX_TOK * MAX_N * sizeof *x);
    float *y = malloc(MAX_TOK * MAX_ROWS * sizeof *y);
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        const size_t n = sizes[si];
        fill(w, MAX_ROWS * n);
        fill(x, MAX_TOK * n);
        for (int nr = 1; nr <= MAX_ROWS; nr += 3)
            for (int nt = 1; nt <= MAX_TOK; nt += (nt < 7 ? 1 : 4)) {
                memset(y, 0xff, MAX_TOK * MAX_ROWS * sizeof *y);
                k->gemm_f32(nr, nt, n, w, n, x, n, y, MAX_ROWS);
                for (int t = 0; t < nt; t++)
                    for (int r = 0; r < nr; r++) {
                        float got = y[t * MAX_ROWS + r];
                        float dot = k->dot_f32(w + (size_t)r * n, x + (size_t)t * n, n);
                        double mag, want = ref_dot(w + (size_t)r * n, x + (size_t)t * n, n, &mag);
                        assert_memory_equal(&got, &dot, sizeof got);
                        assert_true(fabs(got - want) <= 1e-6 * mag + 1e-30);
                    }
            }
    }
    free(w), free(x), free(y);
}

static void check_dequant_and_fused(const kern_ops *k)
{
    static const size_t sizes[] = {32, 64, 96, 256, 37 /* half types only */};
    float *ref = malloc(MAX_ROWS * MAX_N * sizeof *ref), *panel = malloc(MAX_ROWS * MAX_N * sizeof *panel);
    float *x = malloc(MAX_TOK * MAX_N * sizeof *x);
    float *y1 = malloc(MAX_TOK * MAX_ROWS * sizeof *y1), *y2 = malloc(MAX_TOK * MAX_ROWS * sizeof *y2);
    for (size_t ti = 0; ti < N_FUSED; ti++) {
        const uint32_t t = FUSED_TYPES[ti];
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            const size_t n = sizes[si];
            if (n % block_of(t))
                continue;
            size_t rb;
            uint8_t *w = make_weights(t, MAX_ROWS, n, &rb);
            for (int r = 0; r < MAX_ROWS; r++)
                assert_int_equal(quant_dequantize_row(t, w + (size_t)r * rb, ref + (size_t)r * n, n), 0);
            if (k->level == CPU_LEVEL_SCALAR) {
                assert_false(kern_has_fused(k, t));
                assert_int_equal(k->gemv(t, w, rb, 1, n, x, n, 1, y1, 1), -1);
                free(w);
                continue;
            }
            assert_true(kern_has_fused(k, t));
            /* dequantization: the reference values (up to an fma the
             * reference's compiler may have contracted) */
            assert_int_equal(k->dequant_rows(t, w, rb, MAX_ROWS, n, panel), 0);
            for (size_t i = 0; i < MAX_ROWS * n; i++)
                assert_true(fabsf(panel[i] - ref[i]) <= 1e-6f * fabsf(ref[i]) + 1e-30f);
            /* fused == panel + GEMM, bit for bit, any rows x tokens */
            fill(x, MAX_TOK * n);
            for (int nr = 1; nr <= MAX_ROWS; nr++)
                for (int nt = 1; nt <= KERN_FUSED_MAX_TOK; nt++) {
                    assert_int_equal(k->gemv(t, w, rb, nr, n, x, n, nt, y1, MAX_ROWS), 0);
                    k->gemm_f32(nr, nt, n, panel, n, x, n, y2, MAX_ROWS);
                    for (int tk = 0; tk < nt; tk++)
                        for (int r = 0; r < nr; r++) {
                            float a = y1[tk * MAX_ROWS + r], b = y2[tk * MAX_ROWS + r];
                            if (memcmp(&a, &b, sizeof a) != 0) {
                                printf("level %s type %u n=%zu nr=%d nt=%d r=%d t=%d: %.9g vs %.9g\n",
                                       cpu_level_name(k->level), t, n, nr, nt, r, tk, a, b);
                                fail();
                            }
                        }
                }
            assert_int_equal(k->gemv(t, w, rb, 1, n, x, n, KERN_FUSED_MAX_TOK + 1, y1, 1), -1);
            free(w);
        }
    }
    /* K-quants: no fused kernel (callers fall back to the panel), but a
     * vectorized dequantization with the reference's values */
    static const uint32_t kq[] = {GGML_T_Q4_K, GGML_T_Q5_K, GGML_T_Q6_K};
    for (size_t i = 0; i < 3; i++) {
        size_t rb;
        const size_t n = 512;
        uint8_t *w = make_weights(kq[i], 3, n, &rb);
        assert_false(kern_has_fused(k, kq[i]));
        assert_int_equal(k->gemv(kq[i], w, rb, 1, n, x, n, 1, y1, 1), -1);
        assert_int_equal(k->dequant_rows(kq[i], w, rb, 3, n, panel), 0);
        float amax = 0;
        for (int r = 0; r < 3; r++)
            assert_int_equal(quant_dequantize_row(kq[i], w + (size_t)r * rb, ref + (size_t)r * n, n), 0);
        for (size_t j = 0; j < 3 * n; j++)
            amax = fmaxf(amax, fabsf(ref[j]));
        for (size_t j = 0; j < 3 * n; j++)
            assert_true(fabsf(panel[j] - ref[j]) <= 1e-6f * amax);
        if (k->level != CPU_LEVEL_SCALAR)
            assert_int_equal(k->dequant_rows(kq[i], w, rb, 1, 255, panel), -1); /* not whole blocks */
        free(w);
    }
    free(ref), free(panel), free(x), free(y1), free(y2);
}

static void test_kernels_each_level(void **s)
{
    (void)s;
    const cpu_level det = cpu_detected_level();
    for (int l = 0; l <= (int)det; l++) {
        const kern_ops *k = kern_for_level((cpu_level)l);
        assert_non_null(k);
        assert_int_equal(k->level, l);
        check_dot_axpy(k);
        check_gemm(k);
        check_dequant_and_fused(k);
        n_levels_tested++;
    }
    printf("kernel levels tested: %d (detected %s; %s)\n", n_levels_tested, cpu_level_name(det),
           cpu_features_string());
    assert_true(n_levels_tested >= 1);
}

/* ---- ops_matmul: batch and thread invariance, every type, every level ---- */

#define MM_N 256   /* a multiple of every block size */
#define MM_OUT 37  /* ragged against chunks and tiles */
#define MM_TOK 11  /* > KERN_FUSED_MAX_TOK: takes the GEMM path */

static void test_matmul_invariance(void **s)
{
    (void)s;
    char err[128];
    ops_pool *p1 = ops_pool_new(1, OPS_MATMUL_ROWS * MM_N, err, sizeof err);
    ops_pool *p2 = ops_pool_new(3, OPS_MATMUL_ROWS * MM_N, err, sizeof err);
    assert_non_null(p1);
    assert_non_null(p2);
    ops_pool_set_par_min(p2, 0); /* threaded even for these small matrices */
    float *x = malloc(MM_TOK * MM_N * sizeof *x), *bias = malloc(MM_OUT * sizeof *bias);
    float *yb = malloc(MM_TOK * MM_OUT * sizeof *yb), *y1 = malloc(MM_OUT * sizeof *y1);
    float *yt = malloc(MM_TOK * MM_OUT * sizeof *yt), *deq = malloc(MM_N * sizeof *deq);
    float *xr = malloc(MM_N * sizeof *xr);
    fill(x, MM_TOK * MM_N);
    fill(bias, MM_OUT);
    const cpu_level det = cpu_detected_level();
    for (int l = 0; l <= (int)det; l++) {
        assert_int_equal(cpu_set_level((cpu_level)l), 0);
        for (size_t ti = 0; ti < N_ALL; ti++) {
            size_t rb;
            uint8_t *data = make_weights(ALL_TYPES[ti], MM_OUT, MM_N, &rb);
            model_weight w = {.data = data, .type = ALL_TYPES[ti], .ne0 = MM_N, .ne1 = MM_OUT, .row_bytes = rb,
                              .name = "w"};
            /* the whole batch at once (GEMM path), 3 threads */
            ops_matmul(p2, &w, bias, x, MM_TOK, yb);
            /* the same batch on one thread */
            ops_matmul(p1, &w, bias, x, MM_TOK, yt);
            assert_memory_equal(yb, yt, MM_TOK * MM_OUT * sizeof *yb);
            for (int t = 0; t < MM_TOK; t++) {
                /* each token alone (fused decode path where the type has
                 * one); the prefetch plan is a hint: declaring this matrix
                 * (even tokens) or none (odd) changes no bit */
                ops_pool_prefetch_matmul(p2, t % 2 ? NULL : &w, 1);
                ops_matmul(p2, &w, bias, x + (size_t)t * MM_N, 1, y1);
                assert_memory_equal(y1, yb + (size_t)t * MM_OUT, MM_OUT * sizeof *y1);
                /* and against the dequantized weights in double (on the
                 * integer path: with the activations rounded as it does) */
                const float *xt = x + (size_t)t * MM_N;
                if (kern_has_q8(kern_get(), w.type)) {
                    for (size_t b = 0; b < MM_N / KERN_Q8_BLOCK; b++) {
                        int8_t q[KERN_Q8_BLOCK];
                        float dx;
                        kern_q8_quantize_block(xt + b * KERN_Q8_BLOCK, q, &dx);
                        for (int j = 0; j < KERN_Q8_BLOCK; j++)
                            xr[b * KERN_Q8_BLOCK + (size_t)j] = (float)q[j] * dx;
                    }
                    xt = xr;
                }
                for (int r = 0; r < MM_OUT; r++) {
                    assert_int_equal(ops_dequant_row(w.type, data + (size_t)r * rb, deq, MM_N), 0);
                    double mag, want = ref_dot(deq, xt, MM_N, &mag) + bias[r];
                    assert_true(fabs(y1[r] - want) <= 1e-5 * (mag + fabs(bias[r])));
                }
            }
            /* a few tokens together (fused path with several tokens) */
            ops_matmul(p2, &w, NULL, x, 3, yt);
            for (int t = 0; t < 3; t++)
                for (int r = 0; r < MM_OUT; r++) {
                    float a = yt[t * MM_OUT + r], b = yb[t * MM_OUT + r] - bias[r];
                    assert_true(fabsf(a - b) <= 1e-6f * (fabsf(bias[r]) + 1.0f));
                }
            free(data);
        }
    }
    assert_int_equal(cpu_set_level(det), 0);
    free(x), free(bias), free(yb), free(y1), free(yt), free(deq), free(xr);
    ops_pool_free(p1);
    ops_pool_free(p2);
}

/* ---- thread pool ---- */

#define POOL_RUNS 3000 /* enough back-to-back tasks to hit the take-over race */
#define POOL_THREADS_MAX 4

typedef struct {
    int calls[POOL_THREADS_MAX];
    int nth_seen[POOL_THREADS_MAX];
} pool_ctx;

static void count_task(void *arg, int ith, int nth)
{
    pool_ctx *c = arg;
    c->calls[ith]++; /* each ith runs on exactly one thread per task: no race */
    c->nth_seen[ith] = nth;
}

static void test_pool_once_per_share(void **s)
{
    (void)s;
    char err[128];
    for (int nth = 1; nth <= POOL_THREADS_MAX; nth++) {
        ops_pool *p = ops_pool_new(nth, 16, err, sizeof err);
        assert_non_null(p);
        assert_int_equal(ops_pool_n_threads(p), nth);
        assert_non_null(ops_pool_scratch(p, nth - 1));
        for (int run = 0; run < POOL_RUNS; run++) {
            pool_ctx c = {{0}, {0}};
            ops_pool_run(p, count_task, &c);
            for (int i = 0; i < nth; i++) {
                assert_int_equal(c.calls[i], 1);
                assert_int_equal(c.nth_seen[i], nth);
            }
        }
        ops_pool_free(p);
    }
    assert_null(ops_pool_new(0, 16, err, sizeof err));
    assert_null(ops_pool_new(2, 0, err, sizeof err));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cpu_levels),
        cmocka_unit_test(test_kernels_each_level),
        cmocka_unit_test(test_matmul_invariance),
        cmocka_unit_test(test_pool_once_per_share),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
