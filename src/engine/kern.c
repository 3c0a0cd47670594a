/* kern: scalar reference kernels and the run-time choice of kernel level.
 * See kern.h. */
#include "engine/kern.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

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

static void dot_rows_scalar(const float *q, const float *k, size_t ldk, int nk, size_t n, float scale, float *out)
{
    for (int j = 0; j < nk; j++)
        out[j] = dot_scalar(q, k + (size_t)j * ldk, n) * scale;
}

static void axpy_rows_scalar(const float *w, const float *v, size_t ldv, int nv, size_t n, float *y)
{
    for (int j = 0; j < nv; j++)
        axpy_scalar(w[j], v + (size_t)j * ldv, y, n);
}

static void silu_mul_scalar(float *g, const float *u, size_t n)
{
    for (size_t i = 0; i < n; i++)
        g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

static void softmax_scalar(float *x, size_t n)
{
    float mx = x[0];
    for (size_t i = 1; i < n; i++)
        if (x[i] > mx)
            mx = x[i];
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    const float inv = (float)(1.0 / sum);
    for (size_t i = 0; i < n; i++)
        x[i] *= inv;
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

/* ---- integer path: the scalar reference ----
 * Layout of a quantized row (shared with the AVX2 level): nb blocks of 32
 * int8 in element order, then nb float scales, padded to 64 bytes. */

#define KERN_Q8_ROW_ALIGN 64

void kern_q8_quantize_block(const float *x, int8_t *q, float *dx)
{
    float amax = 0;
    for (int j = 0; j < KERN_Q8_BLOCK; j++) {
        const float a = fabsf(x[j]);
        if (a > amax)
            amax = a;
    }
    const float id = amax > 0 ? 127.0f / amax : 0.0f;
    for (int j = 0; j < KERN_Q8_BLOCK; j++) {
        const float v = x[j] * id; /* |v| <= 127 up to rounding */
        q[j] = (int8_t)(v >= 127.0f ? 127 : v <= -127.0f ? -127 : v == v ? (int)nearbyintf(v) : 0);
    }
    *dx = amax / 127.0f;
}

size_t kern_q8_row_bytes(size_t n)
{
    const size_t nb = n / KERN_Q8_BLOCK;
    return (nb * (KERN_Q8_BLOCK + sizeof(float)) + KERN_Q8_ROW_ALIGN - 1) / KERN_Q8_ROW_ALIGN * KERN_Q8_ROW_ALIGN;
}

static void q8_quantize_scalar(const float *x, size_t n, void *dst)
{
    const size_t nb = n / KERN_Q8_BLOCK;
    int8_t *q = dst;
    float *d = (float *)(void *)(q + nb * KERN_Q8_BLOCK);
    for (size_t b = 0; b < nb; b++)
        kern_q8_quantize_block(x + b * KERN_Q8_BLOCK, q + b * KERN_Q8_BLOCK, &d[b]);
}

/* One weight block as integers w[32] and its scale. Block sizes: Q8_0 34,
 * Q4_0 18, Q5_0 22 bytes (quant.h). */
static void q8_weight_block(uint32_t type, const uint8_t *b, int w[KERN_Q8_BLOCK], float *dw)
{
    uint16_t h;
    memcpy(&h, b, 2);
    *dw = quant_f16_to_f32(h);
    if (type == GGML_T_Q8_0) {
        for (int j = 0; j < 32; j++)
            w[j] = (int8_t)b[2 + j];
    } else if (type == GGML_T_Q4_0) {
        for (int j = 0; j < 16; j++) {
            w[j] = (b[2 + j] & 15) - 8;
            w[j + 16] = (b[2 + j] >> 4) - 8;
        }
    } else { /* Q5_0 */
        uint32_t qh;
        memcpy(&qh, b + 2, 4);
        for (int j = 0; j < 16; j++) {
            w[j] = ((b[6 + j] & 15) | (int)((qh >> j) & 1) << 4) - 16;
            w[j + 16] = ((b[6 + j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4) - 16;
        }
    }
}

static size_t q8_block_bytes(uint32_t type)
{
    return type == GGML_T_Q8_0 ? 34 : type == GGML_T_Q4_0 ? 18 : type == GGML_T_Q5_0 ? 22 : 0;
}

static int q8_gemm_scalar(uint32_t type, const void *w, size_t rb, int nr, size_t n, const void *xq, size_t ldxq,
                          int nt, float *y, size_t ldy)
{
    const size_t bb = q8_block_bytes(type), nb = n / KERN_Q8_BLOCK;
    if (bb == 0 || n % KERN_Q8_BLOCK != 0)
        return -1;
    for (int t = 0; t < nt; t++) {
        const int8_t *q = (const int8_t *)xq + (size_t)t * ldxq;
        const float *d = (const float *)(const void *)(q + nb * KERN_Q8_BLOCK);
        for (int r = 0; r < nr; r++) {
            const uint8_t *row = (const uint8_t *)w + (size_t)r * rb;
            float acc = 0;
            for (size_t b = 0; b < nb; b++) {
                int wi[KERN_Q8_BLOCK];
                float dw;
                q8_weight_block(type, row + b * bb, wi, &dw);
                int32_t dot = 0;
                for (int j = 0; j < KERN_Q8_BLOCK; j++)
                    dot += wi[j] * q[b * KERN_Q8_BLOCK + (size_t)j];
                acc += dw * d[b] * (float)dot;
            }
            y[(size_t)t * ldy + r] = acc;
        }
    }
    return 0;
}

const kern_ops kern_ops_scalar = {
    .level = CPU_LEVEL_SCALAR,
    .dot_f32 = dot_scalar,
    .axpy_f32 = axpy_scalar,
    .dot_rows = dot_rows_scalar,
    .axpy_rows = axpy_rows_scalar,
    .softmax = softmax_scalar,
    .silu_mul = silu_mul_scalar,
    .gemm_f32 = gemm_scalar,
    .dequant_rows = dequant_rows_scalar,
    .gemv = gemv_none,
    .q8_row_bytes = kern_q8_row_bytes,
    .q8_quantize = q8_quantize_scalar,
    .q8_gemm = q8_gemm_scalar,
};

#if defined(__x86_64__)
/* AVX-512 without VNNI (Skylake-X): the AVX-512 table with AVX2's integer
 * path (pmaddubsw works on any AVX2 CPU). */
static kern_ops g_avx512_novnni;
static pthread_once_t g_novnni_once = PTHREAD_ONCE_INIT;

static void make_novnni(void)
{
    g_avx512_novnni = kern_ops_avx512;
    g_avx512_novnni.q8_row_bytes = kern_q8_row_bytes_avx2;
    g_avx512_novnni.q8_quantize = kern_q8_quantize_avx2;
    g_avx512_novnni.q8_gemm = kern_q8_gemm_avx2;
}

static const kern_ops *avx512_table(void)
{
    if (cpu_get_features()->avx512_vnni)
        return &kern_ops_avx512;
    pthread_once(&g_novnni_once, make_novnni);
    return &g_avx512_novnni;
}
#endif

const kern_ops *kern_for_level(cpu_level level)
{
    if (level > cpu_detected_level())
        return NULL;
    switch (level) {
    case CPU_LEVEL_SCALAR: return &kern_ops_scalar;
#if defined(__x86_64__)
    case CPU_LEVEL_AVX2: return &kern_ops_avx2;
    case CPU_LEVEL_AVX512: return avx512_table();
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

int kern_has_q8(const kern_ops *k, uint32_t type)
{
    (void)k; /* every level has the integer path */
    return type == GGML_T_Q8_0 || type == GGML_T_Q4_0 || type == GGML_T_Q5_0;
}
