/* kern_avx512: the kernels of kern_simd.h on 16-lane AVX-512 vectors. Built
 * with per-function target attributes, so the rest of the program needs no
 * AVX-512 flags and runs on any x86-64; kern.c only calls these after cpu.c
 * found AVX-512 F/BW/VL/DQ. */
#if defined(__x86_64__)

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "engine/kern_x86.h"

#define KS_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))
#define KS(name) name##_avx512
#define KS_V 16
#define KS_LEVEL CPU_LEVEL_AVX512

typedef __m512 vf;

#define KS_INL static KS_TARGET inline __attribute__((always_inline))

KS_INL vf VZERO(void) { return _mm512_setzero_ps(); }
KS_INL vf VSET1(float a) { return _mm512_set1_ps(a); }
KS_INL vf VLD(const float *p) { return _mm512_loadu_ps(p); }
KS_INL __mmask16 ks_mask(size_t n) { return (__mmask16)((1u << n) - 1u); }
KS_INL vf VLDN(const float *p, size_t n) { return _mm512_maskz_loadu_ps(ks_mask(n), p); }
KS_INL void VST(float *p, vf v) { _mm512_storeu_ps(p, v); }
KS_INL void VSTN(float *p, vf v, size_t n) { _mm512_mask_storeu_ps(p, ks_mask(n), v); }
KS_INL vf VFMA(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
KS_INL float VHSUM(vf v) { return kx_hsum512(v); }
KS_INL vf VADD(vf a, vf b) { return _mm512_add_ps(a, b); }
KS_INL vf VMAX(vf a, vf b) { return _mm512_max_ps(a, b); }
KS_INL vf VMIN(vf a, vf b) { return _mm512_min_ps(a, b); }
KS_INL vf VDIV(vf a, vf b) { return _mm512_div_ps(a, b); }
KS_INL vf VROUND(vf a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
KS_INL vf VSCALE2(vf p, vf k) { return _mm512_scalef_ps(p, k); } /* p * 2^k */


KS_INL vf VLD_F16(const void *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }
KS_INL vf VLDN_F16(const void *p, size_t n) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(ks_mask(n), p)); }
KS_INL vf VLD_BF16(const void *p)
{
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}
KS_INL vf VLDN_BF16(const void *p, size_t n)
{
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(ks_mask(n), p)), 16));
}

/* Integer lanes for the K-quant unpacking. */
typedef __m512i vi;
KS_INL vi VU8(const uint8_t *p) { return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p)); }
KS_INL vi VISET1(int a) { return _mm512_set1_epi32(a); }
KS_INL vi VIAND(vi a, vi b) { return _mm512_and_si512(a, b); }
KS_INL vi VIOR(vi a, vi b) { return _mm512_or_si512(a, b); }
KS_INL vi VISUB(vi a, vi b) { return _mm512_sub_epi32(a, b); }
KS_INL vi VISRL(vi a, int n) { return _mm512_srl_epi32(a, _mm_cvtsi32_si128(n)); }
KS_INL vi VISLL(vi a, int n) { return _mm512_sll_epi32(a, _mm_cvtsi32_si128(n)); }
KS_INL vf VI2F(vi a) { return _mm512_cvtepi32_ps(a); }
KS_INL vf VMUL(vf a, vf b) { return _mm512_mul_ps(a, b); }
KS_INL vf VSUB(vf a, vf b) { return _mm512_sub_ps(a, b); }


/* Q8_0: f16 d; i8 qs[32]. y = qs * d. */
KS_INL void deq_q8_0(const uint8_t *b, vf out[2])
{
    const vf d = _mm512_set1_ps(kx_f16(b));
    out[0] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 2)))), d);
    out[1] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 18)))), d);
}

/* Q4_0: f16 d; u8 qs[16]. y[j] = (lo(qs[j]) - 8) d, y[j+16] = (hi(qs[j]) - 8) d.
 * The 16 possible values form a table; nibbles index it (vpermps). */
KS_INL void deq_q4_0(const uint8_t *b, vf out[2])
{
    const vf tab = _mm512_mul_ps(_mm512_setr_ps(-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7),
                                 _mm512_set1_ps(kx_f16(b)));
    const __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(b + 2)));
    out[0] = _mm512_permutexvar_ps(_mm512_and_si512(q, _mm512_set1_epi32(15)), tab);
    out[1] = _mm512_permutexvar_ps(_mm512_srli_epi32(q, 4), tab);
}

/* Q4_1: f16 d, m; u8 qs[16]. y = q d + m (multiply, then add: as quant.c). */
KS_INL void deq_q4_1(const uint8_t *b, vf out[2])
{
    const vf tab = _mm512_add_ps(_mm512_mul_ps(_mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                               _mm512_set1_ps(kx_f16(b))),
                                 _mm512_set1_ps(kx_f16(b + 2)));
    const __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(b + 4)));
    out[0] = _mm512_permutexvar_ps(_mm512_and_si512(q, _mm512_set1_epi32(15)), tab);
    out[1] = _mm512_permutexvar_ps(_mm512_srli_epi32(q, 4), tab);
}

/* Q5_0: f16 d; u8 qh[4]; u8 qs[16]. 5-bit q = nibble | bit j of qh << 4,
 * y = (q - 16) d: a 32-entry table (two registers, vpermt2ps). */
KS_INL void deq_q5_0(const uint8_t *b, vf out[2])
{
    const vf d = _mm512_set1_ps(kx_f16(b));
    const vf lo = _mm512_mul_ps(_mm512_setr_ps(-16, -15, -14, -13, -12, -11, -10, -9, -8, -7, -6, -5, -4, -3, -2, -1), d);
    const vf hi = _mm512_mul_ps(_mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), d);
    uint32_t h;
    memcpy(&h, b + 2, 4);
    const __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(b + 6)));
    const __m512i sixteen = _mm512_set1_epi32(16);
    __m512i i0 = _mm512_and_si512(q, _mm512_set1_epi32(15));
    __m512i i1 = _mm512_srli_epi32(q, 4);
    i0 = _mm512_mask_or_epi32(i0, (__mmask16)(h & 0xffffu), i0, sixteen);
    i1 = _mm512_mask_or_epi32(i1, (__mmask16)(h >> 16), i1, sixteen);
    out[0] = _mm512_permutex2var_ps(lo, i0, hi);
    out[1] = _mm512_permutex2var_ps(lo, i1, hi);
}

#include "engine/kern_simd.h"

#else
/* Not x86-64: nothing to build (kern.c uses the scalar kernels). */
typedef int kern_avx512_unused;
#endif
