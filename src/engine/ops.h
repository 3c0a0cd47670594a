/* ops: the numeric kernels of the forward pass, kept in one place so that a
 * later SIMD implementation can replace them one by one and be compared
 * against this scalar reference.
 *
 * Threading: an ops_pool is a fixed set of worker threads plus the calling
 * thread. ops_pool_run() runs one task on all of them and returns when every
 * thread is done; it must be called from one thread at a time (the engine's
 * owner). Each thread also owns a scratch buffer (for dequantized rows and
 * attention scores) of the size given at creation.
 */
#ifndef WARD_OPS_H
#define WARD_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/model.h"

/* Rows of a weight matrix dequantized together in ops_matmul: each pass over
 * the activations then serves this many output rows (fewer cache misses on x
 * for prompt batches), at the cost of OPS_MATMUL_ROWS * n_in floats of scratch. */
#define OPS_MATMUL_ROWS 8

typedef struct ops_pool ops_pool;

/* fn is called once per thread with ith in [0, nth). */
typedef void (*ops_task_fn)(void *ctx, int ith, int nth);

/* n_threads >= 1 (the caller counts as one). scratch_floats: per-thread
 * scratch size in floats. NULL with err on failure. */
ops_pool *ops_pool_new(int n_threads, size_t scratch_floats, char *err, size_t errlen);
void ops_pool_free(ops_pool *p);
int ops_pool_n_threads(const ops_pool *p);
/* Matmuls of fewer multiply-adds than this run on the calling thread alone
 * (default 512K: waking the workers costs more). Tests set 0 to exercise
 * the threaded path on small matrices. */
void ops_pool_set_par_min(ops_pool *p, uint64_t macs);
void ops_pool_run(ops_pool *p, ops_task_fn fn, void *ctx);
/* Thread ith's scratch buffer (scratch_floats floats, 64-byte aligned). */
float *ops_pool_scratch(ops_pool *p, int ith);
size_t ops_pool_scratch_floats(const ops_pool *p);

/* Weight types the kernels accept. */
int ops_type_supported(uint32_t type);

/* Dequantizes one row of n elements (n a multiple of the type's block) into
 * dst. 0, or -1 for an unsupported type. */
int ops_dequant_row(uint32_t type, const void *src, float *dst, size_t n);

/* y[t][o] = sum_i W[o][i] * x[t][i] (+ bias[o] if bias) for t < n_tok,
 * o < W.ne1, i < W.ne0. x is [n_tok][ne0], y is [n_tok][ne1], both row-major.
 * Rows of W are split across the pool's threads. Requires scratch >=
 * OPS_MATMUL_ROWS * ne0 floats. Kernels: kern.h (SIMD, chosen at run time);
 * Q8_0/Q4_0/Q5_0 weights, and packed Q4_1 and K-quants, take the integer
 * path (activations quantized to 8 bits per block, kern.h "Q8
 * activations"); the other types keep f32 activations. y[t] depends only on W, bias
 * and x[t], bit for bit: not on n_tok, the thread count or which thread
 * computed it (batch invariance; kern.h "Determinism"). */
void ops_matmul(ops_pool *p, const model_weight *w, const float *bias,
                const float *x, int n_tok, float *y);

/* ops_matmul for nw (<= 3) matrices on the same x (q/k/v, gate/up): ys[i] =
 * ws[i] x (+ biases[i]), the same bits as nw separate calls. Matrices of one
 * type, row length and packing run as a single pool task (no wait between
 * them, x quantized once); otherwise they run one by one. */
void ops_matmul_n(ops_pool *p, int nw, const model_weight *const *ws, const float *const *biases, const float *x,
                  int n_tok, float *const *ys);

/* Declares the matmul that comes after the next one (w, n_tok rows; NULL:
 * none). Until then, a thread that waits (a worker between tasks, the
 * caller for the workers) prefetches the start of the rows it will take
 * first there: decoding is bound by memory bandwidth, and this keeps memory
 * busy through the ends of tasks and the serial work between them. Call it
 * before launching the matmul that precedes w's. A hint: results never
 * depend on it. */
void ops_pool_prefetch_matmul(ops_pool *p, const model_weight *w, int n_tok);

/* out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i]. out may alias x. */
void ops_rmsnorm(float *out, const float *x, const float *w, size_t n, float eps);

/* g[i] = silu(g[i]) * u[i] (kern.h silu_mul, at the dispatched level) */
void ops_silu_mul(float *g, const float *u, size_t n);

/* Rotates n_heads vectors of head_dim floats at x (stride head_dim) for
 * position pos. cs holds n_rot/2 (cos, sin) pairs precomputed by
 * ops_rope_cache. neox: pairs (i, i + n_rot/2), else (2i, 2i+1). Dimensions
 * beyond n_rot are left as they are. */
void ops_rope(float *x, int n_heads, int head_dim, int n_rot, const float *cs, int neox);

/* cs[2i] = cos(theta_i), cs[2i+1] = sin(theta_i) for i < n_rot/2 with
 * theta_i = pos * scale * base^(-2i/n_rot) / (freq_factors ? freq_factors[i] : 1). */
void ops_rope_cache(float *cs, int n_rot, int32_t pos, float base, float scale,
                    const float *freq_factors);

#endif
