/* kern_avx2: the kernels of kern_simd.h on 8-lane AVX2 vectors with FMA and
 * F16C, selected by kern.c when cpu.c found them (and no AVX-512). */
#if defined(__x86_64__)

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "engine/kern_x86.h"

#define KS_TARGET __attribute__((target("avx2,fma,f16c")))
#define KS(name) name##_avx2
#define KS_V 8
#define KS_LEVEL CPU_LEVEL_AVX2

typedef __m256 vf;

#define KS_INL static KS_TARGET inline __attribute__((always_inline))

KS_INL vf VZERO(void) { return _mm256_setzero_ps(); }
KS_INL vf VSET1(float a) { return _mm256_set1_ps(a); }
KS_INL vf VLD(const float *p) { return _mm256_loadu_ps(p); }
KS_INL __m256i ks_mask(size_t n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
KS_INL vf VLDN(const float *p, size_t n) { return _mm256_maskload_ps(p, ks_mask(n)); }
KS_INL void VST(float *p, vf v) { _mm256_storeu_ps(p, v); }
KS_INL void VSTN(float *p, vf v, size_t n) { _mm256_maskstore_ps(p, ks_mask(n), v); }
KS_INL vf VFMA(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
KS_INL float VHSUM(vf v) { return kx_hsum256(v); }
KS_INL vf VADD(vf a, vf b) { return _mm256_add_ps(a, b); }
KS_INL vf VMAX(vf a, vf b) { return _mm256_max_ps(a, b); }
KS_INL vf VMIN(vf a, vf b) { return _mm256_min_ps(a, b); }
KS_INL vf VDIV(vf a, vf b) { return _mm256_div_ps(a, b); }
KS_INL vf VROUND(vf a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
/* p * 2^k for integral k in [-126, 127] (VROUND of t log2 e, t >= -87): the exponent field */
KS_INL vf VSCALE2(vf p, vf k)
{
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}


KS_INL __m128i ks_ld16n(const void *p, size_t n)
{
    uint16_t tmp[8] = {0};
    memcpy(tmp, p, n * 2);
    return _mm_loadu_si128((const __m128i *)tmp);
}
KS_INL vf VLD_F16(const void *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
KS_INL vf VLDN_F16(const void *p, size_t n) { return _mm256_cvtph_ps(ks_ld16n(p, n)); }
KS_INL vf ks_bf16(__m128i h) { return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)); }
KS_INL vf VLD_BF16(const void *p) { return ks_bf16(_mm_loadu_si128((const __m128i *)p)); }
KS_INL vf VLDN_BF16(const void *p, size_t n) { return ks_bf16(ks_ld16n(p, n)); }

/* Integer lanes for the K-quant unpacking. */
typedef __m256i vi;
KS_INL vi VU8(const uint8_t *p) { return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p)); }
KS_INL vi VISET1(int a) { return _mm256_set1_epi32(a); }
KS_INL vi VIAND(vi a, vi b) { return _mm256_and_si256(a, b); }
KS_INL vi VIOR(vi a, vi b) { return _mm256_or_si256(a, b); }
KS_INL vi VISUB(vi a, vi b) { return _mm256_sub_epi32(a, b); }
KS_INL vi VISRL(vi a, int n) { return _mm256_srl_epi32(a, _mm_cvtsi32_si128(n)); }
KS_INL vi VISLL(vi a, int n) { return _mm256_sll_epi32(a, _mm_cvtsi32_si128(n)); }
KS_INL vf VI2F(vi a) { return _mm256_cvtepi32_ps(a); }
KS_INL vf VMUL(vf a, vf b) { return _mm256_mul_ps(a, b); }
KS_INL vf VSUB(vf a, vf b) { return _mm256_sub_ps(a, b); }


KS_INL __m256i ks_u8x8(const uint8_t *p) { return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p)); }

/* Q8_0: f16 d; i8 qs[32]. y = qs * d. */
KS_INL void deq_q8_0(const uint8_t *b, vf out[4])
{
    const vf d = _mm256_set1_ps(kx_f16(b));
    for (int j = 0; j < 4; j++)
        out[j] = _mm256_mul_ps(
            _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(b + 2 + 8 * j)))), d);
}

/* Nibbles of qs[0..16) as 4 x 8 int32: elements 0-7, 8-15 (low nibbles),
 * 16-23, 24-31 (high nibbles). */
KS_INL void ks_nibbles(const uint8_t *qs, __m256i q[4])
{
    const __m256i a = ks_u8x8(qs), b = ks_u8x8(qs + 8), m = _mm256_set1_epi32(15);
    q[0] = _mm256_and_si256(a, m);
    q[1] = _mm256_and_si256(b, m);
    q[2] = _mm256_srli_epi32(a, 4);
    q[3] = _mm256_srli_epi32(b, 4);
}

KS_INL void deq_q4_0(const uint8_t *b, vf out[4])
{
    const vf d = _mm256_set1_ps(kx_f16(b));
    __m256i q[4];
    ks_nibbles(b + 2, q);
    for (int j = 0; j < 4; j++)
        out[j] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(q[j], _mm256_set1_epi32(8))), d);
}

KS_INL void deq_q4_1(const uint8_t *b, vf out[4])
{
    const vf d = _mm256_set1_ps(kx_f16(b)), m = _mm256_set1_ps(kx_f16(b + 2));
    __m256i q[4];
    ks_nibbles(b + 4, q);
    for (int j = 0; j < 4; j++)
        out[j] = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(q[j]), d), m);
}

KS_INL void deq_q5_0(const uint8_t *b, vf out[4])
{
    const vf d = _mm256_set1_ps(kx_f16(b));
    uint32_t h;
    memcpy(&h, b + 2, 4);
    __m256i q[4];
    ks_nibbles(b + 6, q);
    const __m256i hv = _mm256_set1_epi32((int)h), one = _mm256_set1_epi32(1);
    for (int j = 0; j < 4; j++) {
        /* bit (8j + lane) of qh is the 5th bit of element 8j + lane */
        const __m256i sh = _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(8 * j));
        const __m256i bit = _mm256_and_si256(_mm256_srlv_epi32(hv, sh), one);
        const __m256i q5 = _mm256_or_si256(q[j], _mm256_slli_epi32(bit, 4));
        out[j] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(q5, _mm256_set1_epi32(16))), d);
    }
}

#include "engine/kern_simd.h"

#else
typedef int kern_avx2_unused;
#endif
