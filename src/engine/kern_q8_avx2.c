/* kern_q8_avx2: the integer path (kern.h "Q8 activations") on AVX2, one
 * 32-element block per 256-bit register, in element order (the layout of
 * the scalar reference: nb blocks of int8, then nb float scales, padded to
 * 64 bytes).
 *
 * pmaddubsw multiplies unsigned by signed bytes and adds pairs into int16
 * (saturating, so operands are kept where no pair can overflow), pmaddwd
 * by ones adds those pairs into int32 lanes of 4 elements. Q4_0 and Q5_0
 * are read as unsigned u = w + o (o = 8, 16) with o * (sum of the lane's 4
 * activations) subtracted: at most 31 * 127 * 2 per int16 pair. Q8_0 uses
 * |w| times x with w's sign (at most 128 * 127 * 2). The integers are
 * exact; per (row, token) the float work is, for every block in order,
 * acc = fma(float(I), dw * dx, acc), then a fixed reduction. Also used at
 * the AVX-512 level on CPUs without VNNI (kern.c). */
#if defined(__x86_64__)

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "engine/gguf.h"
#include "engine/kern.h"
#include "engine/kern_x86.h"

#define Q8T __attribute__((target("avx2,fma,f16c")))
#define Q8I static Q8T inline __attribute__((always_inline))

#define Q8_TOK_BLOCK 32 /* tokens per pass over a row tile (their x rows stay in L2) */
#define Q8_PREFETCH 1024
#define Q8_RMAX 4 /* 16 ymm registers: 4 rows x 2 tokens of accumulators + operands */
#define Q8_CMAX 2

size_t kern_q8_row_bytes_avx2(size_t n) { return kern_q8_row_bytes(n); } /* the scalar layout */

/* Same arithmetic as kern_q8_quantize_block. */
Q8T void kern_q8_quantize_avx2(const float *x, size_t n, void *dst)
{
    const size_t nb = n / KERN_Q8_BLOCK;
    int8_t *q = dst;
    float *d = (float *)(void *)(q + nb * KERN_Q8_BLOCK);
    const __m256 sign = _mm256_set1_ps(-0.0f), hi = _mm256_set1_ps(127.0f), lo = _mm256_set1_ps(-127.0f);
    for (size_t b = 0; b < nb; b++) {
        __m256 a[4];
        __m256 m = _mm256_setzero_ps();
        for (int j = 0; j < 4; j++) {
            a[j] = _mm256_loadu_ps(x + b * 32 + 8 * (size_t)j);
            m = _mm256_max_ps(m, _mm256_andnot_ps(sign, a[j]));
        }
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4);
        const __m256 id = _mm256_set1_ps(amax > 0 ? 127.0f / amax : 0.0f);
        __m256i v[4];
        for (int j = 0; j < 4; j++)
            v[j] = _mm256_cvtps_epi32(_mm256_max_ps(_mm256_min_ps(_mm256_mul_ps(a[j], id), hi), lo));
        /* packs interleave 128-bit lanes; the permute puts elements back in order */
        const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
        _mm256_storeu_si256((__m256i *)(q + b * 32),
                            _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
        d[b] = amax / 127.0f;
    }
}


Q8I __m256i nibbles(__m128i qs)
{
    const __m256i z = _mm256_inserti128_si256(_mm256_castsi128_si256(qs), _mm_srli_epi16(qs, 4), 1);
    return _mm256_and_si256(z, _mm256_set1_epi8(15));
}

/* Byte j = 0xFF where bit j of h is set. */
Q8I __m256i bits_to_bytes(uint32_t h)
{
    const __m256i sh = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3,
                                        3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    const __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)h), sh);
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
}

Q8I size_t type_bytes(const int type) { return type == GGML_T_Q4_0 ? 18 : type == GGML_T_Q5_0 ? 22 : 34; }


Q8I void tile(const int TYPE, const int R, const int C, size_t nb, const uint8_t *w, size_t rb, const uint8_t *xq,
              size_t ldxq, float *y, size_t ldy)
{
    const size_t bb = type_bytes(TYPE);
    const __m256i ones = _mm256_set1_epi16(1);
    const __m256i ov = _mm256_set1_epi8(TYPE == GGML_T_Q4_0 ? 8 : 16);
    __m256 acc[Q8_RMAX][Q8_CMAX];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int c = 0; c < C; c++)
            acc[r][c] = _mm256_setzero_ps();
    for (size_t b = 0; b < nb; b++) {
        __m256i xv[Q8_CMAX], off[Q8_CMAX];
        float dx[Q8_CMAX];
#pragma GCC unroll 2
        for (int c = 0; c < C; c++) {
            const uint8_t *xr = xq + (size_t)c * ldxq;
            xv[c] = _mm256_loadu_si256((const __m256i *)(xr + b * 32));
            memcpy(&dx[c], xr + nb * 32 + b * 4, 4);
            if (TYPE != GGML_T_Q8_0)
                off[c] = _mm256_madd_epi16(_mm256_maddubs_epi16(ov, xv[c]), ones);
        }
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const uint8_t *wb = w + (size_t)r * rb + b * bb;
            _mm_prefetch((const char *)wb + Q8_PREFETCH, _MM_HINT_T0);
            const float dw = kx_f16(wb);
            __m256i u;
            if (TYPE == GGML_T_Q4_0) {
                u = nibbles(_mm_loadu_si128((const __m128i *)(wb + 2)));
            } else if (TYPE == GGML_T_Q5_0) {
                uint32_t h;
                memcpy(&h, wb + 2, 4);
                u = _mm256_or_si256(nibbles(_mm_loadu_si128((const __m128i *)(wb + 6))),
                                    _mm256_and_si256(bits_to_bytes(h), _mm256_set1_epi8(16)));
            } else {
                u = _mm256_loadu_si256((const __m256i *)(wb + 2)); /* signed weights */
            }
            const __m256i ua = TYPE == GGML_T_Q8_0 ? _mm256_sign_epi8(u, u) : u; /* |w| */
#pragma GCC unroll 2
            for (int c = 0; c < C; c++) {
                __m256i dot;
                if (TYPE == GGML_T_Q8_0)
                    dot = _mm256_madd_epi16(_mm256_maddubs_epi16(ua, _mm256_sign_epi8(xv[c], u)), ones);
                else
                    dot = _mm256_sub_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(u, xv[c]), ones), off[c]);
                acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(dw * dx[c]), acc[r][c]);
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int c = 0; c < C; c++)
            y[(size_t)c * ldy + r] = kx_hsum256(acc[r][c]);
}

#define Q8_CASE(T_, R_, C_)                                                                                  \
    case (R_) * 8 + (C_):                                                                                    \
        tile(T_, R_, C_, nb, w, rb, xq, ldxq, y, ldy);                                                       \
        break
#define Q8_ANY(name, T_)                                                                                     \
    static Q8T void tile_##name(int R, int C, size_t nb, const uint8_t *w, size_t rb, const uint8_t *xq,     \
                                size_t ldxq, float *y, size_t ldy)                                           \
    {                                                                                                        \
        switch (R * 8 + C) {                                                                                 \
            Q8_CASE(T_, 4, 1); Q8_CASE(T_, 3, 1); Q8_CASE(T_, 2, 1); Q8_CASE(T_, 1, 1);                      \
            Q8_CASE(T_, 4, 2); Q8_CASE(T_, 3, 2); Q8_CASE(T_, 2, 2); Q8_CASE(T_, 1, 2);                      \
        default:                                                                                             \
            break;                                                                                           \
        }                                                                                                    \
    }

Q8_ANY(q4_0, GGML_T_Q4_0)
Q8_ANY(q5_0, GGML_T_Q5_0)
Q8_ANY(q8_0, GGML_T_Q8_0)

Q8T int kern_q8_gemm_avx2(uint32_t type, const void *w, size_t rb, int nr, size_t n, const void *xq, size_t ldxq,
                          int nt, float *y, size_t ldy)
{
    void (*fn)(int, int, size_t, const uint8_t *, size_t, const uint8_t *, size_t, float *, size_t);
    switch (type) {
    case GGML_T_Q4_0: fn = tile_q4_0; break;
    case GGML_T_Q5_0: fn = tile_q5_0; break;
    case GGML_T_Q8_0: fn = tile_q8_0; break;
    default: return -1;
    }
    if (n % KERN_Q8_BLOCK != 0)
        return -1;
    const size_t nb = n / KERN_Q8_BLOCK;
    const uint8_t *wb = w, *xb = xq;
    for (int t0 = 0; t0 < nt; t0 += Q8_TOK_BLOCK) {
        const int tn = nt - t0 < Q8_TOK_BLOCK ? nt - t0 : Q8_TOK_BLOCK;
        for (int r0 = 0; r0 < nr; r0 += Q8_RMAX) {
            const int R = nr - r0 < Q8_RMAX ? nr - r0 : Q8_RMAX;
            for (int c0 = 0; c0 < tn; c0 += Q8_CMAX) {
                const int C = tn - c0 < Q8_CMAX ? tn - c0 : Q8_CMAX;
                fn(R, C, nb, wb + (size_t)r0 * rb, rb, xb + (size_t)(t0 + c0) * ldxq, ldxq,
                   y + (size_t)(t0 + c0) * ldy + r0, ldy);
            }
        }
    }
    return 0;
}

#else
typedef int kern_q8_avx2_unused;
#endif
