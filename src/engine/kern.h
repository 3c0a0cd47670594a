/* kern: SIMD matrix kernels for the CPU engine, dispatched at run time on the
 * ISA level from cpu.h (scalar, AVX2+FMA+F16C, AVX-512).
 *
 * Numerics. Two families of paths. On the f32 path (F32, BF16, and F16,
 * Q4_1 or the K-quants when not packed) a weight is turned into f32 exactly
 * as quant.h's reference dequantizer does, then multiplied with fused
 * multiply-adds: results are within rounding of an f32 reference. On the
 * integer path ("Q8 activations" below) the activations are rounded to
 * 8 bits first, as llama.cpp does: ~4x the arithmetic rate, and logits
 * that move by ~2% of their range on random models (tests compare them with
 * a reference that rounds the same way).
 *
 * Determinism (batch invariance). At one level, the value computed for an
 * output (row r, token t) is a fixed function of W[r] and x[t] alone: every
 * path of a matrix (fused decode kernel, dequantized panel + tiled GEMM, 1
 * or many rows or tokens, any thread) performs the same operations in the
 * same order on the same values. On the f32 path: one V-lane accumulator (V = 16 for AVX-512, 8 for AVX2)
 * takes acc = fma(w[k..k+V), x[k..k+V), acc) for k = 0, V, 2V, ..., a masked
 * tail, then a fixed reduction tree. So a sequence's logits do not depend on
 * what else is in its batch. Different levels give (slightly) different bits.
 *
 * Q8 activations (the integer path). For weight types whose blocks hold
 * 32 small integers and one scale (Q8_0, Q4_0, Q5_0; and Q4_1, Q4_K, Q5_K,
 * Q6_K through the packed kernels below, with their mins and sub-block
 * scales applied per 32 or 16 elements), activations are
 * quantized per block of KERN_Q8_BLOCK: amax = max |x|, dx = amax / 127,
 * q = round-to-nearest-even(x * (127 / amax)) (all 0 when amax = 0), the
 * same bits at every level. A (row, token) output is then
 *     sum over blocks b of (dw_b * dx_b) * I_b,  I_b = sum_j w_j * q_j
 * with w_j the block's integer weights (Q8_0: q; Q4_0: nibble - 8; Q5_0:
 * 5-bit value - 16; Q4_1: nibble, plus m_b * dx_b * S_b with S_b the sum of
 * the block's q). I_b is exact (integer dot products: VNNI vpdpbusd at
 * the AVX-512 level, pmaddubsw at AVX2); only the float accumulation order
 * is level-specific, and at one level it is one fixed sequence per output,
 * for decode and prompt alike (batch invariance holds as below). This is
 * what llama.cpp does too: ~4x the arithmetic rate of f32 and 1/4 of the
 * activation traffic; the cost is the activation rounding (logits move by
 * ~1% of their range on random models; greedy tokens stay within a small
 * logit gap of an exact reference, which is what the conformance test
 * checks for quantized weights). F16/BF16/F32 and the other types keep f32
 * activations.
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
    /* Attention rows: out[j] = dot_f32(q, k + j * ldk, n) * scale for j < nk,
     * and y[i] += sum over j < nv of w[j] * v[j * ldv + i] applied in j order
     * (the same bits as axpy_f32 called for each j): the head's q and the
     * running sum stay in registers across positions. */
    void (*dot_rows)(const float *q, const float *k, size_t ldk, int nk, size_t n, float scale, float *out);
    void (*axpy_rows)(const float *w, const float *v, size_t ldv, int nv, size_t n, float *y);
    /* In-place softmax of n >= 1 values (attention scores). SIMD levels use
     * a degree-6 polynomial exp (within ~2 ulp of expf) and float sums. */
    void (*softmax)(float *x, size_t n);
    /* g[i] = silu(g[i]) * u[i] = g[i] / (1 + exp(-g[i])) * u[i] (the SwiGLU
     * feed-forward's gate), with the exp above at SIMD levels; exp(-g) is
     * capped at exp(88) (beyond, the product is below 1e-36 of g). */
    void (*silu_mul)(float *g, const float *u, size_t n);
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

    /* ---- integer path (see "Q8 activations" above) ----
     * Bytes of one activation row of n elements (n % KERN_Q8_BLOCK == 0) in
     * this level's quantized layout; a multiple of 64. */
    size_t (*q8_row_bytes)(size_t n);
    /* Quantizes x[0..n) into dst (q8_row_bytes(n) bytes, 64-byte aligned). */
    void (*q8_quantize)(const float *x, size_t n, void *dst);
    /* y[t * ldy + r] = dot(W[r], X[t]) for r < nr, t < nt, where X[t] is the
     * quantized row at xq + t * ldxq. Any nt; the value of (r, t) does not
     * depend on nr, nt or the tile it falls in. Returns 0, or -1 if the type
     * has no integer kernel (kern_has_q8()). */
    int (*q8_gemm)(uint32_t type, const void *w, size_t row_bytes, int nr, size_t n, const void *xq, size_t ldxq,
                   int nt, float *y, size_t ldy);
} kern_ops;

/* Elements per activation block of the integer path. */
#define KERN_Q8_BLOCK 32

/* Kernels for the current level (cpu_get_level()). Never NULL; static. */
const kern_ops *kern_get(void);
/* Kernels for a given level, or NULL if the CPU (or this build) lacks it. */
const kern_ops *kern_for_level(cpu_level level);

/* 1 if the type's dequantization has a SIMD kernel at this level (so the
 * fused decode path applies), else 0. */
int kern_has_fused(const kern_ops *k, uint32_t type);

/* 1 if the type has an integer (Q8-activation) kernel at this level, else 0. */
int kern_has_q8(const kern_ops *k, uint32_t type);

/* ---- Packed weights (AVX-512; VNNI for the integer types) ----
 * Q4_0, Q4_1, Q5_0, Q8_0, Q4_K, Q5_K, Q6_K and F16 matrices with a multiple of KERN_PACK_ROWS
 * rows can be copied at load time into groups of 16 interleaved rows
 * (kern_pack.c has the layouts; a matrix starts a group, or a panel, every
 * kern_pack_group_bytes times its groups). Q4_1
 * and the K-quants have no row-major integer kernel: without packing they
 * keep f32 activations.
 * Their kernel needs no horizontal sums and unpacks each weight byte once
 * per tile of up to 8 tokens: decode becomes purely bandwidth-bound and
 * prompts run at several times the rate of the row-major kernels. Values
 * differ from the row-major integer path's in float rounding order only;
 * every output of one packed matrix follows one fixed sequence.
 * Panels: for rows of 4096 elements or more, the 4-to-6-bit types store 4
 * groups together slice by slice (kern_pack.c); a call of kern_pack or
 * kern_pack_gemm must then start at a panel (kern_pack_panel_rows) and
 * cover whole panels, except the matrix's last one. Each output still
 * sums its blocks in order (the same bits as without panels). */
#define KERN_PACK_ROWS 16

/* 1 if this CPU can use packed weights of this type and shape. */
int kern_pack_supported(uint32_t type, uint64_t ne0, uint64_t ne1);
/* 1 if the kernels of level k can use packed weights of this type (else
 * the caller uses the row-major data). */
int kern_pack_usable(const kern_ops *k, uint32_t type);
/* Bytes of one packed group of KERN_PACK_ROWS rows (row_bytes each, n
 * elements): 16 * row_bytes, except Q4_0 rows of whole super-blocks (n %
 * 256 == 0: n / 256 * 2368, 3% more, a 64-byte first line per 8 blocks),
 * Q4_K (scales and mins unpacked to bytes: n / 256 * 2368, 3% more; Q5_K:
 * + fifth-bit masks, 2880, 2% more) and Q6_K (values unpacked to bytes:
 * n / 256 * 4384, 30% more). Group g of a packed matrix starts at g times this when
 * g starts a panel (kern_pack_panel_rows); in a panel, groups interleave. */
size_t kern_pack_group_bytes(uint32_t type, size_t n, size_t row_bytes);
/* Rows of one panel of a packed matrix of this type and row length: a
 * multiple of KERN_PACK_ROWS (KERN_PACK_ROWS: no panels). */
int kern_pack_panel_rows(uint32_t type, size_t n);
/* Packs nr rows (nr % KERN_PACK_ROWS == 0) of n elements, row_bytes each,
 * from src into dst (nr / 16 groups of kern_pack_group_bytes). Requires
 * kern_pack_supported. */
void kern_pack(uint32_t type, const void *src, size_t row_bytes, size_t n, size_t nr, void *dst);
/* Bytes of one activation row of n elements for the packed kernel. */
size_t kern_pack_x_bytes(size_t n);
/* Quantizes x[0..n) for the packed kernel (same q and dx as
 * kern_q8_quantize_block, plus per-block sums). */
void kern_pack_quantize(const float *x, size_t n, void *dst);
/* y[t * ldy + r] = dot(W[r], X[t]) for r < nr (a multiple of 16), t < nt;
 * packed points at a group start. 0, or -1 (type, shape). */
int kern_pack_gemm(uint32_t type, const void *packed, size_t row_bytes, int nr, size_t n, const void *xq,
                   size_t ldxq, int nt, float *y, size_t ldy);
/* The same for packed F16 weights on f32 activations x (row t at x + t * ldx):
 * per output, two partial sums (even and odd k, each in k order) added at
 * the end, at every tile shape. */
int kern_pack_gemm_f16(const void *packed, size_t row_bytes, int nr, size_t n, const float *x, size_t ldx, int nt,
                       float *y, size_t ldy);

/* Scalar reference of the activation quantization of one block of
 * KERN_Q8_BLOCK values (see "Q8 activations"): q[] and the scale dx. Every
 * level's q8_quantize produces exactly these values (tests check). */
void kern_q8_quantize_block(const float *x, int8_t *q, float *dx);
/* Bytes of one quantized activation row of n elements in the block-order
 * layout the scalar and AVX2 levels share: n / 32 blocks of int8, then
 * their float scales, padded to 64 bytes. */
size_t kern_q8_row_bytes(size_t n);

/* Level tables, defined in kern_avx2.c / kern_avx512.c on x86-64 builds. */
extern const kern_ops kern_ops_scalar;
#if defined(__x86_64__)
extern const kern_ops kern_ops_avx2;
extern const kern_ops kern_ops_avx512;
/* Integer-path kernels per ISA (kern_q8_avx2.c, kern_q8_avx512.c). The
 * AVX-512 ones need AVX-512 VNNI; without it the AVX-512 level uses the
 * AVX2 ones (kern.c). */
size_t kern_q8_row_bytes_avx2(size_t n);
void kern_q8_quantize_avx2(const float *x, size_t n, void *dst);
int kern_q8_gemm_avx2(uint32_t type, const void *w, size_t rb, int nr, size_t n, const void *xq, size_t ldxq, int nt,
                      float *y, size_t ldy);
size_t kern_q8_row_bytes_avx512(size_t n);
void kern_q8_quantize_avx512(const float *x, size_t n, void *dst);
int kern_q8_gemm_avx512(uint32_t type, const void *w, size_t rb, int nr, size_t n, const void *xq, size_t ldxq,
                        int nt, float *y, size_t ldy);
#endif

#endif
