/* kern_x86: small x86-64 helpers shared by the kernel files (kern_avx2.c,
 * kern_avx512.c, kern_q8_avx2.c, kern_q8_avx512.c, kern_pack.c), so that the
 * fixed reduction trees and the scale loads are written once. Each carries
 * the smallest target it needs; every caller's target includes it, so they
 * inline. Include after <immintrin.h>, on x86-64 only. */
#ifndef WARD_KERN_X86_H
#define WARD_KERN_X86_H

#include <stdint.h>
#include <string.h>

#define KX_INL static inline __attribute__((always_inline))

/* Sum of 8 lanes, fixed tree: halves, then pairs of pairs, then pairs. */
KX_INL __attribute__((target("avx2"))) float kx_hsum256(__m256 v)
{
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    q = _mm_add_ss(q, _mm_movehdup_ps(q));
    return _mm_cvtss_f32(q);
}

/* Sum of 16 lanes: halves, then the 8-lane tree above. */
KX_INL __attribute__((target("avx512f,avx512dq,avx2"))) float kx_hsum512(__m512 v)
{
    return kx_hsum256(_mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1)));
}

/* The f16 at p (unaligned, little-endian) as f32. */
KX_INL __attribute__((target("f16c"))) float kx_f16(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

#endif
