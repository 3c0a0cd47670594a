/* kern_q8_avx512: the integer path (kern.h "Q8 activations") on AVX-512
 * with VNNI: one vpdpbusd multiplies 64 unsigned weight bytes by 64 signed
 * activation bytes and adds groups of 4 into 16 int32 lanes.
 *
 * Layout. Two 32-element blocks travel together in one 64-byte register,
 * ordered so that a Q4_0 pair unpacks with one shift and one mask:
 *     bytes  0..15: block 0, elements  0..15    bytes 32..47: block 0, 16..31
 *     bytes 16..31: block 1, elements  0..15    bytes 48..63: block 1, 16..31
 * A quantized activation row is nbp = nb rounded up to even blocks of int8
 * in that order, then nbp float scales, padded to 64 bytes (a pad block is
 * all zero and has scale 0).
 *
 * vpdpbusd wants one unsigned operand, so every weight type is read as
 * unsigned u = w + o (Q4_0: the nibble, o = 8; Q5_0: the 5-bit value,
 * o = 16; Q8_0: w ^ 0x80, o = 128) and each lane's accumulator starts at
 * -o * (sum of its 4 activations), computed once per token and pair with a
 * vpdpbusd of its own. The integer results are exact; per (row, token) the
 * float work is, for every pair in order, acc = fma(float(I), dw * dx, acc),
 * then a fixed reduction: the same sequence whatever the tile shape. */
#if defined(__x86_64__)

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "engine/gguf.h"
#include "engine/kern.h"
#include "engine/kern_x86.h"

#define Q8T __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))
#define Q8I static Q8T inline __attribute__((always_inline))

#define Q8_ROW_ALIGN 64
#define Q8_TOK_BLOCK 32 /* tokens per pass over a row tile: their rows of x stay in L2 (32 x 5632 x 1.1 B) */
#define Q8_PREFETCH 1024 /* bytes ahead in each weight row (as kern_simd.h) */
#define Q8_RMAX 8       /* rows per tile with one token (decode) */
#define Q8_CMAX 4       /* tokens per tile */

static size_t nb_pad(size_t n) { return (n / KERN_Q8_BLOCK + 1) / 2 * 2; }

size_t kern_q8_row_bytes_avx512(size_t n)
{
    const size_t nbp = nb_pad(n);
    return (nbp * (KERN_Q8_BLOCK + sizeof(float)) + Q8_ROW_ALIGN - 1) / Q8_ROW_ALIGN * Q8_ROW_ALIGN;
}

/* Same arithmetic as kern_q8_quantize_block (max is exact, x * id rounds
 * once, cvtps2dq rounds to nearest even like nearbyintf). */
Q8T void kern_q8_quantize_avx512(const float *x, size_t n, void *dst)
{
    const size_t nb = n / KERN_Q8_BLOCK, nbp = nb_pad(n);
    uint8_t *q = dst;
    float *d = (float *)(void *)(q + nbp * KERN_Q8_BLOCK);
    const __m512 sign = _mm512_set1_ps(-0.0f), hi = _mm512_set1_ps(127.0f), lo = _mm512_set1_ps(-127.0f);
    for (size_t b = 0; b < nb; b++) {
        const __m512 a0 = _mm512_loadu_ps(x + b * 32), a1 = _mm512_loadu_ps(x + b * 32 + 16);
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_andnot_ps(sign, a0), _mm512_andnot_ps(sign, a1)));
        const __m512 id = _mm512_set1_ps(amax > 0 ? 127.0f / amax : 0.0f);
        const __m512 v0 = _mm512_max_ps(_mm512_min_ps(_mm512_mul_ps(a0, id), hi), lo);
        const __m512 v1 = _mm512_max_ps(_mm512_min_ps(_mm512_mul_ps(a1, id), hi), lo);
        uint8_t *p = q + (b / 2) * 64 + (b % 2) * 16;
        _mm_storeu_si128((__m128i *)p, _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(v0)));
        _mm_storeu_si128((__m128i *)(p + 32), _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(v1)));
        d[b] = amax / 127.0f;
    }
    if (nb != nbp) { /* pad block: zeros, scale 0 */
        uint8_t *p = q + (nb / 2) * 64 + 16;
        memset(p, 0, 16);
        memset(p + 32, 0, 16);
        d[nb] = 0;
    }
}

/* Lanes (dw0 x4, dw1 x4, dw0 x4, dw1 x4) from two f16 scales. */
Q8I __m512 pair_scales(const uint8_t *b0, const uint8_t *b1)
{
    uint16_t h0, h1;
    memcpy(&h0, b0, 2);
    memcpy(&h1, b1, 2);
    const __m128 f = _mm_cvtph_ps(_mm_cvtsi32_si128((int)((uint32_t)h0 | (uint32_t)h1 << 16)));
    const __m512i idx = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1);
    return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(f));
}

/* Weight pair (b0, b1: consecutive blocks, or a block and a zero block) as
 * 64 unsigned bytes in the pair layout, and its scale lanes. */
Q8I __m512i unpack_q4_0(const uint8_t *b0, const uint8_t *b1)
{
    const __m256i a = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(b0 + 2))),
                                              _mm_loadu_si128((const __m128i *)(b1 + 2)), 1);
    const __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(a), _mm256_srli_epi16(a, 4), 1);
    return _mm512_and_si512(z, _mm512_set1_epi8(15));
}

Q8I __m512i unpack_q5_0(const uint8_t *b0, const uint8_t *b1)
{
    const __m256i a = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(b0 + 6))),
                                              _mm_loadu_si128((const __m128i *)(b1 + 6)), 1);
    const __m512i z = _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(a), _mm256_srli_epi16(a, 4), 1),
                                       _mm512_set1_epi8(15));
    uint32_t h0, h1;
    memcpy(&h0, b0 + 2, 4);
    memcpy(&h1, b1 + 2, 4);
    /* bit j of qh is element j's fifth bit; bytes in pair order */
    const __mmask64 m = (uint64_t)(h0 & 0xffffu) | (uint64_t)(h1 & 0xffffu) << 16 | (uint64_t)(h0 >> 16) << 32 |
                        (uint64_t)(h1 >> 16) << 48;
    return _mm512_mask_add_epi8(z, m, z, _mm512_set1_epi8(16));
}

Q8I __m512i unpack_q8_0(const uint8_t *b0, const uint8_t *b1)
{
    const __m256i l = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(b0 + 2))),
                                              _mm_loadu_si128((const __m128i *)(b1 + 2)), 1);
    const __m256i h = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(b0 + 18))),
                                              _mm_loadu_si128((const __m128i *)(b1 + 18)), 1);
    return _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(l), h, 1), _mm512_set1_epi8((char)0x80));
}

Q8I __m512i unpack(const int type, const uint8_t *b0, const uint8_t *b1)
{
    return type == GGML_T_Q4_0 ? unpack_q4_0(b0, b1) : type == GGML_T_Q5_0 ? unpack_q5_0(b0, b1) : unpack_q8_0(b0, b1);
}

Q8I int type_offset(const int type) { return type == GGML_T_Q4_0 ? 8 : type == GGML_T_Q5_0 ? 16 : 128; }
Q8I size_t type_bytes(const int type) { return type == GGML_T_Q4_0 ? 18 : type == GGML_T_Q5_0 ? 22 : 34; }


/* R rows x C tokens. w: first row's first block; x: first token's row. */
Q8I void tile(const int TYPE, const int R, const int C, size_t nb, const uint8_t *w, size_t rb, const uint8_t *xq,
              size_t ldxq, float *y, size_t ldy)
{
    const size_t bb = type_bytes(TYPE), nbp = (nb + 1) / 2 * 2;
    const __m512i ov = _mm512_set1_epi8((char)type_offset(TYPE));
    const __m512i sidx = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1);
    __m512 acc[Q8_RMAX][Q8_CMAX];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++)
            acc[r][c] = _mm512_setzero_ps();
    uint8_t tail[Q8_RMAX][2 * 34]; /* last block of an odd count + a zero block */
    for (size_t p = 0; p < nbp / 2; p++) {
        const int full = 2 * p + 1 < nb;
        __m512i xv[Q8_CMAX], iv[Q8_CMAX];
        __m512 sx[Q8_CMAX];
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            const uint8_t *xr = xq + (size_t)c * ldxq;
            xv[c] = _mm512_loadu_si512(xr + p * 64);
            double d2;
            memcpy(&d2, xr + nbp * 32 + p * 8, 8);
            sx[c] = _mm512_permutexvar_ps(sidx, _mm512_castps128_ps512(_mm_castpd_ps(_mm_set_sd(d2))));
            iv[c] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), ov, xv[c]));
        }
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            const uint8_t *b0 = w + (size_t)r * rb + 2 * p * bb, *b1 = b0 + bb;
            if (!full) {
                memcpy(tail[r], b0, bb);
                memset(tail[r] + bb, 0, bb);
                b0 = tail[r];
                b1 = tail[r] + bb;
            } else {
                /* the same bytes of the next tile's row: rows are contiguous,
                 * so this streams the chunk in address order (the rows are
                 * too short for the hardware prefetcher to ramp up) */
                _mm_prefetch((const char *)b0 + (size_t)R * rb, _MM_HINT_T0);
                if (2 * bb > 64) /* Q8_0: a pair is more than one line */
                    _mm_prefetch((const char *)b0 + (size_t)R * rb + 64, _MM_HINT_T0);
            }
            const __m512i u = unpack(TYPE, b0, b1);
            const __m512 sw = pair_scales(b0, b1);
#pragma GCC unroll 4
            for (int c = 0; c < C; c++) {
                const __m512i dot = _mm512_dpbusd_epi32(iv[c], u, xv[c]);
                acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(sw, sx[c]), acc[r][c]);
            }
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++)
            y[(size_t)c * ldy + r] = kx_hsum512(acc[r][c]);
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
            Q8_CASE(T_, 8, 1); Q8_CASE(T_, 7, 1); Q8_CASE(T_, 6, 1); Q8_CASE(T_, 5, 1);                      \
            Q8_CASE(T_, 4, 1); Q8_CASE(T_, 3, 1); Q8_CASE(T_, 2, 1); Q8_CASE(T_, 1, 1);                      \
            Q8_CASE(T_, 4, 2); Q8_CASE(T_, 3, 2); Q8_CASE(T_, 2, 2); Q8_CASE(T_, 1, 2);                      \
            Q8_CASE(T_, 4, 3); Q8_CASE(T_, 3, 3); Q8_CASE(T_, 2, 3); Q8_CASE(T_, 1, 3);                      \
            Q8_CASE(T_, 4, 4); Q8_CASE(T_, 3, 4); Q8_CASE(T_, 2, 4); Q8_CASE(T_, 1, 4);                      \
        default:                                                                                             \
            break;                                                                                           \
        }                                                                                                    \
    }

Q8_ANY(q4_0, GGML_T_Q4_0)
Q8_ANY(q5_0, GGML_T_Q5_0)
Q8_ANY(q8_0, GGML_T_Q8_0)

Q8T int kern_q8_gemm_avx512(uint32_t type, const void *w, size_t rb, int nr, size_t n, const void *xq, size_t ldxq,
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
    /* One token (decode): 8 rows per pass, 8 weight streams in flight.
     * Several: 4 rows x up to 4 tokens, tokens in blocks that stay in L2
     * while the row tile (in L1) meets each of them. */
    if (nt == 1) {
        for (int r0 = 0; r0 < nr; r0 += Q8_RMAX) {
            const int R = nr - r0 < Q8_RMAX ? nr - r0 : Q8_RMAX;
            fn(R, 1, nb, wb + (size_t)r0 * rb, rb, xb, ldxq, y + r0, ldy);
        }
        return 0;
    }
    for (int t0 = 0; t0 < nt; t0 += Q8_TOK_BLOCK) {
        const int tn = nt - t0 < Q8_TOK_BLOCK ? nt - t0 : Q8_TOK_BLOCK;
        for (int r0 = 0; r0 < nr; r0 += 4) {
            const int R = nr - r0 < 4 ? nr - r0 : 4;
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
typedef int kern_q8_avx512_unused;
#endif
