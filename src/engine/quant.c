/* quant: scalar reference block (de)quantization. See quant.h. */
#include "engine/quant.h"

#include "engine/gguf.h"

#include <math.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ward's quant code assumes a little-endian host"
#endif

_Static_assert(sizeof(quant_block_q4_0) == 18, "q4_0 layout");
_Static_assert(sizeof(quant_block_q4_1) == 20, "q4_1 layout");
_Static_assert(sizeof(quant_block_q5_0) == 22, "q5_0 layout");
_Static_assert(sizeof(quant_block_q8_0) == 34, "q8_0 layout");
_Static_assert(sizeof(quant_block_q4_k) == 144, "q4_k layout");
_Static_assert(sizeof(quant_block_q5_k) == 176, "q5_k layout");
_Static_assert(sizeof(quant_block_q6_k) == 210, "q6_k layout");

/* ---------------------------------------------------------------- fp16/bf16 */

static uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float quant_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ffu;
    if (e == 0) {
        if (m == 0)
            return u2f(sign);
        /* subnormal m * 2^-24: normalize so the implicit bit is bit 10 */
        uint32_t s = 0;
        while (!(m & 0x400u)) {
            m <<= 1;
            s++;
        }
        return u2f(sign | ((113u - s) << 23) | ((m & 0x3ffu) << 13));
    }
    if (e == 31)
        return u2f(sign | 0x7f800000u | (m << 13));
    return u2f(sign | ((e + 112u) << 23) | (m << 13));
}

uint16_t quant_f32_to_f16(float f)
{
    uint32_t x = f2u(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) {
        if (ax > 0x7f800000u) /* NaN: keep it a (quiet) NaN */
            return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
        return (uint16_t)(sign | 0x7c00u);
    }
    if (ax >= 0x477ff000u) /* >= 65520 rounds to infinity */
        return (uint16_t)(sign | 0x7c00u);
    if (ax < 0x38800000u) { /* below 2^-14: f16 subnormal or zero */
        if (ax <= 0x33000000u) /* <= 2^-25: rounds (ties-to-even) to zero */
            return sign;
        uint32_t m = (ax & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126u - (ax >> 23); /* 14..24 */
        uint32_t h = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1)))
            h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = (ax - 0x38000000u) >> 13, rem = ax & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1)))
        h++; /* a carry into the exponent is the correct result */
    return (uint16_t)(sign | h);
}

float quant_bf16_to_f32(uint16_t h)
{
    return u2f((uint32_t)h << 16);
}

uint16_t quant_f32_to_bf16(float f)
{
    uint32_t x = f2u(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x40u);
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

/* ---------------------------------------------------------------- helpers */

static float ld16(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return quant_f16_to_f32(h);
}

static void st16(uint8_t *p, float v)
{
    uint16_t h = quant_f32_to_f16(v);
    memcpy(p, &h, 2);
}

/* float -> int clamped to [lo, hi] without undefined behaviour on NaN/inf
 * (a NaN becomes lo). The value is truncated toward zero. */
static int clamp_trunc(float v, int lo, int hi)
{
    if (!(v >= (float)lo))
        return lo;
    if (v >= (float)hi)
        return hi;
    return (int)v;
}

/* Round half away from zero (C's roundf), clamped as above. */
static int clamp_round(float v, int lo, int hi)
{
    if (!(v >= (float)lo))
        return lo;
    if (v >= (float)hi)
        return hi;
    return (int)roundf(v);
}

/* ---------------------------------------------------------------- geometry */

int quant_can_dequantize(uint32_t type)
{
    switch (type) {
    case GGML_T_F32: case GGML_T_F16: case GGML_T_BF16: case GGML_T_Q4_0: case GGML_T_Q4_1:
    case GGML_T_Q5_0: case GGML_T_Q8_0: case GGML_T_Q4_K: case GGML_T_Q5_K: case GGML_T_Q6_K:
        return 1;
    default:
        return 0;
    }
}

int quant_can_quantize(uint32_t type)
{
    return quant_can_dequantize(type);
}

size_t quant_row_bytes(uint32_t type, size_t n)
{
    size_t be, bb;
    if (n == 0 || ggml_type_block(type, &be, &bb) != 0 || n % be != 0)
        return 0;
    if (n / be > SIZE_MAX / bb)
        return 0;
    return n / be * bb;
}

/* ---------------------------------------------------------------- dequantize */

static void dq_q4_0(const uint8_t *b, float *y)
{
    float d = ld16(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < 16; j++) {
        y[j] = (float)((qs[j] & 0xF) - 8) * d;
        y[j + 16] = (float)((qs[j] >> 4) - 8) * d;
    }
}

static void dq_q4_1(const uint8_t *b, float *y)
{
    float d = ld16(b), m = ld16(b + 2);
    const uint8_t *qs = b + 4;
    for (int j = 0; j < 16; j++) {
        y[j] = (float)(qs[j] & 0xF) * d + m;
        y[j + 16] = (float)(qs[j] >> 4) * d + m;
    }
}

static void dq_q5_0(const uint8_t *b, float *y)
{
    float d = ld16(b);
    uint32_t h;
    memcpy(&h, b + 2, 4);
    const uint8_t *qs = b + 6;
    for (int j = 0; j < 16; j++) {
        int x0 = (int)((qs[j] & 0xF) | (((h >> j) & 1u) << 4)) - 16;
        int x1 = (int)((qs[j] >> 4) | (((h >> (j + 16)) & 1u) << 4)) - 16;
        y[j] = (float)x0 * d;
        y[j + 16] = (float)x1 * d;
    }
}

static void dq_q8_0(const uint8_t *b, float *y)
{
    float d = ld16(b);
    for (int j = 0; j < 32; j++)
        y[j] = (float)(int8_t)b[2 + j] * d;
}

/* 6-bit scale and min j (0..7) of a Q4_K/Q5_K block. */
static void scale_min_k4(int j, const uint8_t *q, int *sc, int *m)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* Q4_K (qh == NULL) and Q5_K share everything but the fifth bit. */
static void dq_k45(const uint8_t *scales, const uint8_t *qh, const uint8_t *qs, float d, float dmin, float *y)
{
    for (int c = 0; c < 4; c++) {
        int sc1, m1, sc2, m2;
        scale_min_k4(2 * c, scales, &sc1, &m1);
        scale_min_k4(2 * c + 1, scales, &sc2, &m2);
        float d1 = d * (float)sc1, mm1 = dmin * (float)m1, d2 = d * (float)sc2, mm2 = dmin * (float)m2;
        const uint8_t *q = qs + 32 * c;
        for (int l = 0; l < 32; l++) {
            int lo = q[l] & 0xF, hi = q[l] >> 4;
            if (qh) {
                lo += (qh[l] & (1u << (2 * c))) ? 16 : 0;
                hi += (qh[l] & (2u << (2 * c))) ? 16 : 0;
            }
            y[64 * c + l] = d1 * (float)lo - mm1;
            y[64 * c + 32 + l] = d2 * (float)hi - mm2;
        }
    }
}

static void dq_q4_k(const uint8_t *b, float *y)
{
    dq_k45(b + 4, NULL, b + 16, ld16(b), ld16(b + 2), y);
}

static void dq_q5_k(const uint8_t *b, float *y)
{
    dq_k45(b + 4, b + 16, b + 48, ld16(b), ld16(b + 2), y);
}

static void dq_q6_k(const uint8_t *b, float *y)
{
    float d = ld16(b + 208);
    for (int n = 0; n < 2; n++) {
        const uint8_t *ql = b + 64 * n, *qh = b + 128 + 32 * n;
        const int8_t *sc = (const int8_t *)(b + 192 + 8 * n);
        float *o = y + 128 * n;
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = (int)((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
            int q2 = (int)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            int q3 = (int)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            int q4 = (int)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            o[l] = d * (float)sc[is] * (float)q1;
            o[l + 32] = d * (float)sc[is + 2] * (float)q2;
            o[l + 64] = d * (float)sc[is + 4] * (float)q3;
            o[l + 96] = d * (float)sc[is + 6] * (float)q4;
        }
    }
}

int quant_dequantize_row(uint32_t type, const void *src, float *dst, size_t n)
{
    size_t be, bb;
    if (!quant_can_dequantize(type) || quant_row_bytes(type, n) == 0 || !src || !dst)
        return -1;
    ggml_type_block(type, &be, &bb);
    const uint8_t *s = src;
    if (type == GGML_T_F32) {
        memcpy(dst, src, n * sizeof(float));
        return 0;
    }
    if (type == GGML_T_F16 || type == GGML_T_BF16) {
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = type == GGML_T_F16 ? quant_f16_to_f32(h) : quant_bf16_to_f32(h);
        }
        return 0;
    }
    void (*fn)(const uint8_t *, float *) = NULL;
    switch (type) {
    case GGML_T_Q4_0: fn = dq_q4_0; break;
    case GGML_T_Q4_1: fn = dq_q4_1; break;
    case GGML_T_Q5_0: fn = dq_q5_0; break;
    case GGML_T_Q8_0: fn = dq_q8_0; break;
    case GGML_T_Q4_K: fn = dq_q4_k; break;
    case GGML_T_Q5_K: fn = dq_q5_k; break;
    case GGML_T_Q6_K: fn = dq_q6_k; break;
    default: return -1;
    }
    for (size_t i = 0; i < n / be; i++)
        fn(s + i * bb, dst + i * be);
    return 0;
}

/* ---------------------------------------------------------------- quantize
 * Intermediate products are kept in separate statements so that a compiler
 * allowed to contract a*b+c into an FMA cannot change the rounding: the
 * Python writer (tools/gguf_writer.py) reproduces Q8_0 and Q4_0 bit for bit. */

/* Value of largest magnitude, keeping its sign (first one on ties). */
static float signed_absmax(const float *x, int n, float *amax_out)
{
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        float a = fabsf(x[j]);
        if (amax < a) {
            amax = a;
            max = x[j];
        }
    }
    if (amax_out)
        *amax_out = amax;
    return max;
}

static void q_q8_0(const float *x, uint8_t *b)
{
    float amax;
    signed_absmax(x, 32, &amax);
    float d = amax / 127.0f;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    st16(b, d);
    for (int j = 0; j < 32; j++) {
        float v = x[j] * id;
        b[2 + j] = (uint8_t)(int8_t)clamp_round(v, -127, 127);
    }
}

static void q_q4_0(const float *x, uint8_t *b)
{
    float max = signed_absmax(x, 32, NULL);
    float d = max / -8.0f;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    st16(b, d);
    for (int j = 0; j < 16; j++) {
        float v0 = x[j] * id, v1 = x[j + 16] * id;
        v0 += 8.5f;
        v1 += 8.5f;
        int q0 = clamp_trunc(v0, 0, 15), q1 = clamp_trunc(v1, 0, 15);
        b[2 + j] = (uint8_t)(q0 | (q1 << 4));
    }
}

static void q_q4_1(const float *x, uint8_t *b)
{
    float mn = x[0], mx = x[0];
    for (int j = 1; j < 32; j++) {
        mn = x[j] < mn ? x[j] : mn;
        mx = x[j] > mx ? x[j] : mx;
    }
    float d = (mx - mn) / 15.0f;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    st16(b, d);
    st16(b + 2, mn);
    for (int j = 0; j < 16; j++) {
        float v0 = x[j] - mn, v1 = x[j + 16] - mn;
        v0 *= id;
        v1 *= id;
        v0 += 0.5f;
        v1 += 0.5f;
        int q0 = clamp_trunc(v0, 0, 15), q1 = clamp_trunc(v1, 0, 15);
        b[4 + j] = (uint8_t)(q0 | (q1 << 4));
    }
}

static void q_q5_0(const float *x, uint8_t *b)
{
    float max = signed_absmax(x, 32, NULL);
    float d = max / -16.0f;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    st16(b, d);
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        float v0 = x[j] * id, v1 = x[j + 16] * id;
        v0 += 16.5f;
        v1 += 16.5f;
        int q0 = clamp_trunc(v0, 0, 31), q1 = clamp_trunc(v1, 0, 31);
        b[6 + j] = (uint8_t)((q0 & 0xF) | ((q1 & 0xF) << 4));
        qh |= (uint32_t)((q0 >> 4) & 1) << j;
        qh |= (uint32_t)((q1 >> 4) & 1) << (j + 16);
    }
    memcpy(b + 2, &qh, 4);
}

/* Q4_K / Q5_K: each of the 8 sub-blocks of 32 gets an affine map
 * x ~ d*sc*q - dmin*m with q in [0, nmax]; sc and m are 6-bit multiples of
 * the super-block's fp16 d and dmin. Round-to-nearest throughout. */
static void q_k45(const float *x, uint8_t *scales_out, uint8_t *qh, uint8_t *qs, uint8_t *dd, int nmax)
{
    float scale[8], minv[8], maxscale = 0.0f, maxmin = 0.0f;
    for (int j = 0; j < 8; j++) {
        const float *xs = x + 32 * j;
        float mn = xs[0], mx = xs[0];
        for (int l = 1; l < 32; l++) {
            mn = xs[l] < mn ? xs[l] : mn;
            mx = xs[l] > mx ? xs[l] : mx;
        }
        if (!(mn < 0.0f)) /* the min term only subtracts (m >= 0); NaN -> 0 */
            mn = 0.0f;
        scale[j] = (mx - mn) / (float)nmax;
        minv[j] = -mn;
        if (scale[j] > maxscale)
            maxscale = scale[j];
        if (minv[j] > maxmin)
            maxmin = minv[j];
    }
    float d = maxscale / 63.0f, dmin = maxmin / 63.0f;
    st16(dd, d);
    st16(dd + 2, dmin);
    d = ld16(dd); /* quantize against the stored (rounded) values */
    dmin = ld16(dd + 2);
    int sc[8], m[8];
    for (int j = 0; j < 8; j++) {
        sc[j] = d > 0.0f ? clamp_round(scale[j] / d, 0, 63) : 0;
        m[j] = dmin > 0.0f ? clamp_round(minv[j] / dmin, 0, 63) : 0;
    }
    memset(scales_out, 0, QUANT_K_SCALE_BYTES);
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            scales_out[j] |= (uint8_t)sc[j];
            scales_out[j + 4] |= (uint8_t)m[j];
        } else {
            scales_out[j + 4] = (uint8_t)((sc[j] & 0xF) | ((m[j] & 0xF) << 4));
            scales_out[j - 4] |= (uint8_t)((sc[j] >> 4) << 6);
            scales_out[j] |= (uint8_t)((m[j] >> 4) << 6);
        }
    }
    uint8_t q[QUANT_QK_K];
    for (int j = 0; j < 8; j++) {
        float ds = d * (float)sc[j], dm = dmin * (float)m[j];
        float ids = ds > 0.0f ? 1.0f / ds : 0.0f;
        for (int l = 0; l < 32; l++) {
            float v = x[32 * j + l] + dm;
            v *= ids;
            q[32 * j + l] = (uint8_t)clamp_round(v, 0, nmax);
        }
    }
    if (qh)
        memset(qh, 0, QUANT_QK_K / 8);
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            int lo = q[64 * c + l], hi = q[64 * c + 32 + l];
            qs[32 * c + l] = (uint8_t)((lo & 0xF) | ((hi & 0xF) << 4));
            if (qh)
                qh[l] |= (uint8_t)((((lo >> 4) & 1) << (2 * c)) | (((hi >> 4) & 1) << (2 * c + 1)));
        }
}

static void q_q4_k(const float *x, uint8_t *b)
{
    q_k45(x, b + 4, NULL, b + 16, b, 15);
}

static void q_q5_k(const float *x, uint8_t *b)
{
    q_k45(x, b + 4, b + 16, b + 48, b, 31);
}

/* Q6_K: 16 sub-blocks of 16 with signed 8-bit scales of an fp16 d, values
 * q in [-32, 31] (the largest magnitude maps to -32, as in ggml). */
static void q_q6_k(const float *x, uint8_t *b)
{
    float scale[16], max_scale = 0.0f, max_abs = 0.0f;
    for (int j = 0; j < 16; j++) {
        float mx = signed_absmax(x + 16 * j, 16, NULL);
        scale[j] = mx / -32.0f;
        float a = fabsf(scale[j]);
        if (a > max_abs) {
            max_abs = a;
            max_scale = scale[j];
        }
    }
    uint8_t *ql = b, *qh = b + 128, *scb = b + 192;
    float d = max_scale / -128.0f;
    st16(b + 208, d);
    d = ld16(b + 208);
    int sc[16];
    for (int j = 0; j < 16; j++) {
        sc[j] = d != 0.0f ? clamp_round(scale[j] / d, -128, 127) : 0;
        scb[j] = (uint8_t)(int8_t)sc[j];
    }
    uint8_t L[QUANT_QK_K];
    for (int j = 0; j < 16; j++) {
        float ds = d * (float)sc[j];
        float ids = ds != 0.0f ? 1.0f / ds : 0.0f;
        for (int l = 0; l < 16; l++) {
            float v = x[16 * j + l] * ids;
            L[16 * j + l] = (uint8_t)(clamp_round(v, -32, 31) + 32);
        }
    }
    memset(qh, 0, 64);
    for (int n = 0; n < 2; n++) {
        uint8_t *l8 = ql + 64 * n, *h8 = qh + 32 * n;
        const uint8_t *Ln = L + 128 * n;
        for (int l = 0; l < 32; l++) {
            int q1 = Ln[l], q2 = Ln[l + 32], q3 = Ln[l + 64], q4 = Ln[l + 96];
            l8[l] = (uint8_t)((q1 & 0xF) | ((q3 & 0xF) << 4));
            l8[l + 32] = (uint8_t)((q2 & 0xF) | ((q4 & 0xF) << 4));
            h8[l] = (uint8_t)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
        }
    }
}

int quant_quantize_row(uint32_t type, const float *src, void *dst, size_t n)
{
    size_t be, bb;
    if (!quant_can_quantize(type) || quant_row_bytes(type, n) == 0 || !src || !dst)
        return -1;
    ggml_type_block(type, &be, &bb);
    uint8_t *d = dst;
    if (type == GGML_T_F32) {
        memcpy(dst, src, n * sizeof(float));
        return 0;
    }
    if (type == GGML_T_F16 || type == GGML_T_BF16) {
        for (size_t i = 0; i < n; i++) {
            uint16_t h = type == GGML_T_F16 ? quant_f32_to_f16(src[i]) : quant_f32_to_bf16(src[i]);
            memcpy(d + 2 * i, &h, 2);
        }
        return 0;
    }
    void (*fn)(const float *, uint8_t *) = NULL;
    switch (type) {
    case GGML_T_Q4_0: fn = q_q4_0; break;
    case GGML_T_Q4_1: fn = q_q4_1; break;
    case GGML_T_Q5_0: fn = q_q5_0; break;
    case GGML_T_Q8_0: fn = q_q8_0; break;
    case GGML_T_Q4_K: fn = q_q4_k; break;
    case GGML_T_Q5_K: fn = q_q5_k; break;
    case GGML_T_Q6_K: fn = q_q6_k; break;
    default: return -1;
    }
    for (size_t i = 0; i < n / be; i++)
        fn(src + i * be, d + i * bb);
    return 0;
}
