/* kern: SIMD matrix kernels for the CPU engine, dispatched at run time on the
 * ISA level from cpu.h (scalar, AVX2+FMA+F16C, AVX-512).
 *
 * Numerics. Activations stay f32 for every weight type: a weight is first
 * turned into f32 exactly as quant.h's reference dequantizer does, then
 * multiplied with fused multiply-adds. (Quantizing activations to int8, as
 * llama.cpp does, moves logits by ~2% of their range on the engine's
 * conformance models, 25x its 1e-3 tolerance; f32 keeps results within
 * rounding of the reference.)
 *
 * Determinism (batch invariance). At one level, the value computed for an
 * output (row r, token t) is a fixed function of W[r] and x[t] alone: every
 * path (fused decode kernel, dequantized panel + tiled GEMM, 1 or many rows
 * or tokens, any thread) performs the same operations in the same order on
 * the same values: one V-lane accumulator (V = 16 for AVX-512, 8 for AVX2)
 * takes acc = fma(w[k..k+V), x[k..k+V), acc) for k = 0, V, 2V, ..., a masked
 * tail, then a fixed reduction tree. So a sequence's logits do not depend on
 * what else is in its batch. Different levels give (slightly) different bits.
 *
 * Memory: nothing here allocates; all buffers are the caller's. Pointers are
 * only used during the call. Weight rows may be unaligned (GGUF mapping).
 */
#ifndef WARD_KERN_H
#define WARD_KERN_H

#include <stddef.h>
#include <stdint.h>

#include "engine/cpu.h"

/* Tokens a fused (dequantize-in-register) kernel serves per pass over the
 * weights; more tokens go through a dequantized panel + tiled GEMM. 4 keeps
 * 4 rows x 4 tokens of accumulators in registers with room for the weights. */
#define KERN_FUSED_MAX_TOK 4

typedef struct {
    cpu_level level;
    /* Canonical dot product of two f32 vectors. */
    float (*dot_f32)(const float *a, const float *b, size_t n);
    /* y[i] += a * x[i]. */
    void (*axpy_f32)(float a, const float *x, float *y, size_t n);
    /* Tiled GEMM on f32: y[t * ldy + r] = dot(w + r * ldw, x + t * ldx, n)
     * for r < nr, t < nt (the canonical dot, bit for bit). */
    void (*gemm_f32)(int nr, int nt, size_t n, const float *w, size_t ldw, const float *x, size_t ldx,
                     float *y, size_t ldy);
    /* Dequantizes nr rows (row r at src + r * row_bytes, n elements each) to
     * dst + r * n. Returns 0, or -1 if this level has no kernel for the type
     * (use quant_dequantize_row then). Values equal the reference's except
     * where the reference compiler contracted a*b+c into an fma. SIMD
     * levels handle F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q4_K, Q5_K, Q6_K. */
    int (*dequant_rows)(uint32_t type, const void *src, size_t row_bytes, int nr, size_t n, float *dst);
    /* Fused: y[t * ldy + r] = dot(dequant(W[r]), x + t * ldx, n) for r < nr,
     * t < nt <= KERN_FUSED_MAX_TOK, bit-identical to dequant_rows followed by
     * gemm_f32. Returns 0, or -1 if the type has no fused kernel here. */
    int (*gemv)(uint32_t type, const void *w, size_t row_bytes, int nr, size_t n, const float *x, size_t ldx,
                int nt, float *y, size_t ldy);
} kern_ops;

/* Kernels for the current level (cpu_get_level()). Never NULL; static. */
const kern_ops *kern_get(void);
/* Kernels for a given level, or NULL if the CPU (or this build) lacks it. */
const kern_ops *kern_for_level(cpu_level level);

/* 1 if the type's dequantization has a SIMD kernel at this level (so the
 * fused decode path applies), else 0. */
int kern_has_fused(const kern_ops *k, uint32_t type);

/* Level tables, defined in kern_avx2.c / kern_avx512.c on x86-64 builds. */
extern const kern_ops kern_ops_scalar;
#if defined(__x86_64__)
extern const kern_ops kern_ops_avx2;
extern const kern_ops kern_ops_avx512;
#endif

#endif
