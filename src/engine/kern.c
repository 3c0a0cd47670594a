/* kern: scalar reference kernels and the run-time choice of kernel level.
 * See kern.h. */
#include "engine/kern.h"

#include "engine/gguf.h"
#include "engine/quant.h"

/* The scalar dot keeps 8 partial sums (one vector register's worth for the
 * compiler, and better rounding than one long running sum). */
#define KERN_SCALAR_LANES 8

static float dot_scalar(const float *a, const float *b, size_t n)
{
    float acc[KERN_SCALAR_LANES] = {0};
    size_t i = 0;
    for (; i + KERN_SCALAR_LANES <= n; i += KERN_SCALAR_LANES)
        for (int k = 0; k < KERN_SCALAR_LANES; k++)
            acc[k] += a[i + k] * b[i + k];
    float s = 0;
    for (; i < n; i++)
        s += a[i] * b[i];
    return s + ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

static void axpy_scalar(float a, const float *x, float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] += a * x[i];
}

static void gemm_scalar(int nr, int nt, size_t n, const float *w, size_t ldw, const float *x, size_t ldx,
                        float *y, size_t ldy)
{
    for (int t = 0; t < nt; t++)
        for (int r = 0; r < nr; r++)
            y[(size_t)t * ldy + r] = dot_scalar(w + (size_t)r * ldw, x + (size_t)t * ldx, n);
}

static int dequant_rows_scalar(uint32_t type, const void *src, size_t row_bytes, int nr, size_t n, float *dst)
{
    for (int r = 0; r < nr; r++)
        if (quant_dequantize_row(type, (const char *)src + (size_t)r * row_bytes, dst + (size_t)r * n, n) != 0)
            return -1;
    return 0;
}

static int gemv_none(uint32_t type, const void *w, size_t row_bytes, int nr, size_t n, const float *x, size_t ldx,
                     int nt, float *y, size_t ldy)
{
    (void)type, (void)w, (void)row_bytes, (void)nr, (void)n, (void)x, (void)ldx, (void)nt, (void)y, (void)ldy;
    return -1;
}

const kern_ops kern_ops_scalar = {
    .level = CPU_LEVEL_SCALAR,
    .dot_f32 = dot_scalar,
    .axpy_f32 = axpy_scalar,
    .gemm_f32 = gemm_scalar,
    .dequant_rows = dequant_rows_scalar,
    .gemv = gemv_none,
};

const kern_ops *kern_for_level(cpu_level level)
{
    if (level > cpu_detected_level())
        return NULL;
    switch (level) {
    case CPU_LEVEL_SCALAR: return &kern_ops_scalar;
#if defined(__x86_64__)
    case CPU_LEVEL_AVX2: return &kern_ops_avx2;
    case CPU_LEVEL_AVX512: return &kern_ops_avx512;
#endif
    default: return NULL;
    }
}

const kern_ops *kern_get(void)
{
    const kern_ops *k = kern_for_level(cpu_get_level());
    return k ? k : &kern_ops_scalar;
}

int kern_has_fused(const kern_ops *k, uint32_t type)
{
    if (k->level == CPU_LEVEL_SCALAR)
        return 0;
    switch (type) {
    case GGML_T_F16: case GGML_T_BF16: case GGML_T_Q8_0: case GGML_T_Q4_0: case GGML_T_Q4_1: case GGML_T_Q5_0:
        return 1;
    default:
        return 0;
    }
}
