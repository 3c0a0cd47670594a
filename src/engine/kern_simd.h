/* kern_simd.h: the level-independent body of the SIMD kernels, included by
 * kern_avx2.c and kern_avx512.c after they define the vector vocabulary:
 *
 *   KS_TARGET         function attribute selecting the ISA (target("..."))
 *   KS(name)          suffixes a name with the level
 *   KS_V              f32 lanes per vector (8 or 16); KS_NB = 32 / KS_V
 *   vf                the vector type
 *   vf VZERO(void), VLD(const float *), VLDN(const float *, size_t n < KS_V),
 *   vf VFMA(a, b, c) = a * b + c (fused), float VHSUM(vf) (fixed tree),
 *   void VST(float *, vf), VSTN(float *, vf, size_t n < KS_V),
 *   vf VLD_F16(const void *), VLDN_F16(const void *, n), VLD_BF16, VLDN_BF16
 *   vf VMUL, VSUB; vi (int32 lanes) VU8 (KS_V bytes, zero-extended), VISET1,
 *   VIAND, VIOR, VISUB, VISRL/VISLL (by a count), vf VI2F(vi)
 *   void deq_q8_0(const uint8_t *blk, vf out[KS_NB]) and likewise q4_0,
 *   q4_1, q5_0: one 32-element block to f32, exactly as quant.c computes it.
 *
 * Every output goes through the same per-(row, token) operation sequence
 * (see kern.h "Determinism"): the tile loops below only decide how many of
 * those independent sequences run side by side.
 */

#include <immintrin.h>
#include <string.h>

#include "engine/gguf.h"
#include "engine/kern.h"

#define KS_NB (32 / KS_V)
#define KS_TR 4 /* GEMM tile rows: 4 x 6 accumulators + 4 weights + 1 x < 32 registers (AVX-512) */
#define KS_TC 6 /* GEMM tile tokens */
#define KS_FR 8 /* fused kernel rows per pass (with KERN_FUSED_MAX_TOK tokens) */
/* Decode prefetch: each row of a fused tile prefetches the same bytes of
 * the next tile's row (R rows further on). Rows are contiguous, so the
 * chunk streams in address order; rows of a few KiB are too short for the
 * hardware prefetcher to ramp up on its own (a fixed 1 KiB ahead in the
 * same row left the first KiB of every row to wait on DRAM: half the
 * decode speed). ops.c gives decode long runs of rows for this reason. */

#define KS_ALWAYS_INLINE inline __attribute__((always_inline))

/* ---- f32 dot, axpy ---- */

static KS_TARGET float KS(dot_f32)(const float *a, const float *b, size_t n)
{
    vf acc = VZERO();
    size_t k = 0;
    for (; k + KS_V <= n; k += KS_V)
        acc = VFMA(VLD(a + k), VLD(b + k), acc);
    if (k < n)
        acc = VFMA(VLDN(a + k, n - k), VLDN(b + k, n - k), acc);
    return VHSUM(acc);
}

static KS_TARGET void KS(axpy_f32)(float a, const float *x, float *y, size_t n)
{
    const vf va = VSET1(a);
    size_t k = 0;
    for (; k + KS_V <= n; k += KS_V)
        VST(y + k, VFMA(va, VLD(x + k), VLD(y + k)));
    if (k < n)
        VSTN(y + k, VFMA(va, VLDN(x + k, n - k), VLDN(y + k, n - k)), n - k);
}

/* ---- attention rows ----
 * Heads of up to KS_ROWS_MAXV vectors keep q (or the running sum) in
 * registers; the arithmetic is dot_f32's / axpy_f32's, element for element. */
#define KS_ROWS_MAXV 8 /* 128 dims at AVX-512, 64 at AVX2 (16 registers) */

static KS_TARGET void KS(dot_rows)(const float *q, const float *k, size_t ldk, int nk, size_t n, float scale,
                                   float *out)
{
    if (n % KS_V != 0 || n > KS_ROWS_MAXV * KS_V) {
        for (int j = 0; j < nk; j++)
            out[j] = KS(dot_f32)(q, k + (size_t)j * ldk, n) * scale;
        return;
    }
    const size_t nv = n / KS_V;
    vf qv[KS_ROWS_MAXV];
    for (size_t i = 0; i < nv; i++)
        qv[i] = VLD(q + i * KS_V);
    for (int j = 0; j < nk; j++) {
        const float *kj = k + (size_t)j * ldk;
        vf acc = VZERO();
        for (size_t i = 0; i < nv; i++)
            acc = VFMA(qv[i], VLD(kj + i * KS_V), acc);
        out[j] = VHSUM(acc) * scale;
    }
}

static KS_TARGET void KS(axpy_rows)(const float *w, const float *v, size_t ldv, int nv, size_t n, float *y)
{
    if (n % KS_V != 0 || n > KS_ROWS_MAXV * KS_V) {
        for (int j = 0; j < nv; j++)
            KS(axpy_f32)(w[j], v + (size_t)j * ldv, y, n);
        return;
    }
    const size_t nvec = n / KS_V;
    vf acc[KS_ROWS_MAXV];
    for (size_t i = 0; i < nvec; i++)
        acc[i] = VLD(y + i * KS_V);
    for (int j = 0; j < nv; j++) {
        const vf a = VSET1(w[j]);
        const float *vj = v + (size_t)j * ldv;
        for (size_t i = 0; i < nvec; i++)
            acc[i] = VFMA(a, VLD(vj + i * KS_V), acc[i]);
    }
    for (size_t i = 0; i < nvec; i++)
        VST(y + i * KS_V, acc[i]);
}

/* ---- softmax ----
 * exp(t) for t <= 0 as 2^k * p(r), k = round(t log2 e), r = t - k ln 2 in
 * [-ln2/2, ln2/2] (ln 2 split in two for an exact product), p the degree-6
 * Taylor polynomial (relative error < 2e-7 there); t < -87 gives 0. */
static KS_TARGET KS_ALWAYS_INLINE vf KS(vexp)(vf t)
{
    const vf lo = VSET1(-87.0f);
    t = VMAX(t, lo);
    const vf k = VROUND(VMUL(t, VSET1(1.44269504088896341f)));
    vf r = VFMA(k, VSET1(-0.693145751953125f), t);
    r = VFMA(k, VSET1(-1.428606765330187045e-06f), r);
    vf p = VSET1(1.0f / 720);
    p = VFMA(p, r, VSET1(1.0f / 120));
    p = VFMA(p, r, VSET1(1.0f / 24));
    p = VFMA(p, r, VSET1(1.0f / 6));
    p = VFMA(p, r, VSET1(0.5f));
    p = VFMA(p, r, VSET1(1.0f));
    p = VFMA(p, r, VSET1(1.0f));
    return VSCALE2(p, k);
}

static KS_TARGET void KS(softmax)(float *x, size_t n)
{
    float mx = x[0];
    for (size_t i = 1; i < n; i++)
        if (x[i] > mx)
            mx = x[i];
    const vf vm = VSET1(mx);
    vf acc = VZERO();
    size_t i = 0;
    for (; i + KS_V <= n; i += KS_V) {
        const vf e = KS(vexp)(VSUB(VLD(x + i), vm));
        VST(x + i, e);
        acc = VADD(acc, e);
    }
    float sum = VHSUM(acc);
    for (; i < n; i++) { /* the tail, one lane at a time through the same formula */
        float tail[KS_V] = {0};
        tail[0] = x[i] - mx;
        VST(tail, KS(vexp)(VLD(tail)));
        x[i] = tail[0];
        sum += x[i];
    }
    const vf inv = VSET1(1.0f / sum);
    for (i = 0; i + KS_V <= n; i += KS_V)
        VST(x + i, VMUL(VLD(x + i), inv));
    for (; i < n; i++)
        x[i] *= 1.0f / sum;
}

/* silu(g) u with vexp; its argument -g is capped at 88 (vexp's 2^k stays
 * finite). The tail goes through the same vector formula. */
static KS_TARGET void KS(silu_mul)(float *g, const float *u, size_t n)
{
    const vf one = VSET1(1.0f), cap = VSET1(88.0f);
    size_t i = 0;
    for (; i + KS_V <= n; i += KS_V) {
        const vf v = VLD(g + i);
        const vf e = KS(vexp)(VMIN(VSUB(VZERO(), v), cap));
        VST(g + i, VMUL(VDIV(v, VADD(one, e)), VLD(u + i)));
    }
    if (i < n) {
        const vf v = VLDN(g + i, n - i);
        const vf e = KS(vexp)(VMIN(VSUB(VZERO(), v), cap));
        VSTN(g + i, VMUL(VDIV(v, VADD(one, e)), VLDN(u + i, n - i)), n - i);
    }
}

/* ---- f32 GEMM tile: R rows x C tokens, each a canonical dot ---- */

static KS_TARGET KS_ALWAYS_INLINE void KS(tile)(const int R, const int C, size_t n, const float *w, size_t ldw,
                                                const float *x, size_t ldx, float *y, size_t ldy)
{
    vf acc[KS_TR][KS_TC];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 6
        for (int c = 0; c < C; c++)
            acc[r][c] = VZERO();
    size_t k = 0;
    for (; k + KS_V <= n; k += KS_V) {
        vf wv[KS_TR];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
            wv[r] = VLD(w + (size_t)r * ldw + k);
#pragma GCC unroll 6
        for (int c = 0; c < C; c++) {
            const vf xv = VLD(x + (size_t)c * ldx + k);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++)
                acc[r][c] = VFMA(wv[r], xv, acc[r][c]);
        }
    }
    if (k < n) {
        const size_t m = n - k;
        vf wv[KS_TR];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
            wv[r] = VLDN(w + (size_t)r * ldw + k, m);
#pragma GCC unroll 6
        for (int c = 0; c < C; c++) {
            const vf xv = VLDN(x + (size_t)c * ldx + k, m);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++)
                acc[r][c] = VFMA(wv[r], xv, acc[r][c]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 6
        for (int c = 0; c < C; c++)
            y[(size_t)c * ldy + r] = VHSUM(acc[r][c]);
}

#define KS_TILE_CASE(R_, C_)                                                                                 \
    case (R_) * 8 + (C_):                                                                                    \
        KS(tile)(R_, C_, n, w, ldw, x, ldx, y, ldy);                                                         \
        break

/* One tile with run-time R <= KS_TR, C <= KS_TC, dispatched to a copy
 * specialised for those constants (accumulators stay in registers). */
static KS_TARGET void KS(tile_any)(int R, int C, size_t n, const float *w, size_t ldw, const float *x,
                                   size_t ldx, float *y, size_t ldy)
{
    switch (R * 8 + C) {
        KS_TILE_CASE(4, 6); KS_TILE_CASE(4, 5); KS_TILE_CASE(4, 4); KS_TILE_CASE(4, 3);
        KS_TILE_CASE(4, 2); KS_TILE_CASE(4, 1);
        KS_TILE_CASE(3, 6); KS_TILE_CASE(3, 5); KS_TILE_CASE(3, 4); KS_TILE_CASE(3, 3);
        KS_TILE_CASE(3, 2); KS_TILE_CASE(3, 1);
        KS_TILE_CASE(2, 6); KS_TILE_CASE(2, 5); KS_TILE_CASE(2, 4); KS_TILE_CASE(2, 3);
        KS_TILE_CASE(2, 2); KS_TILE_CASE(2, 1);
        KS_TILE_CASE(1, 6); KS_TILE_CASE(1, 5); KS_TILE_CASE(1, 4); KS_TILE_CASE(1, 3);
        KS_TILE_CASE(1, 2); KS_TILE_CASE(1, 1);
    default:
        break;
    }
}

static KS_TARGET void KS(gemm_f32)(int nr, int nt, size_t n, const float *w, size_t ldw, const float *x,
                                   size_t ldx, float *y, size_t ldy)
{
    /* Row tile outer: its KS_TR weight rows stay in L1 (n up to ~2K) while
     * every token tile streams past: half the L2 traffic of the opposite
     * order, +25% on Zen 5. (Splitting k into L1-sized blocks with saved
     * accumulators measured slower at n = 5632.) */
    for (int r0 = 0; r0 < nr; r0 += KS_TR) {
        const int R = nr - r0 < KS_TR ? nr - r0 : KS_TR;
        for (int t0 = 0; t0 < nt; t0 += KS_TC) {
            const int C = nt - t0 < KS_TC ? nt - t0 : KS_TC;
            KS(tile_any)(R, C, n, w + (size_t)r0 * ldw, ldw, x + (size_t)t0 * ldx, ldx,
                         y + (size_t)t0 * ldy + r0, ldy);
        }
    }
}

/* ---- dequantization of rows ---- */

#define KS_DEQ_ROWS(name, bytes)                                                                             \
    static KS_TARGET void KS(deq_rows_##name)(const uint8_t *src, size_t rb, int nr, size_t n, float *dst)    \
    {                                                                                                        \
        for (int r = 0; r < nr; r++) {                                                                       \
            const uint8_t *row = src + (size_t)r * rb;                                                       \
            float *o = dst + (size_t)r * n;                                                                  \
            for (size_t b = 0; b < n / 32; b++) {                                                            \
                vf v[KS_NB];                                                                                 \
                deq_##name(row + b * (bytes), v);                                                            \
                for (int j = 0; j < KS_NB; j++)                                                              \
                    VST(o + b * 32 + (size_t)j * KS_V, v[j]);                                                \
            }                                                                                                \
        }                                                                                                    \
    }

KS_DEQ_ROWS(q8_0, 34)
KS_DEQ_ROWS(q4_0, 18)
KS_DEQ_ROWS(q4_1, 20)
KS_DEQ_ROWS(q5_0, 22)

static KS_TARGET void KS(deq_rows_f16)(const uint8_t *src, size_t rb, int nr, size_t n, float *dst, int bf16)
{
    for (int r = 0; r < nr; r++) {
        const uint8_t *row = src + (size_t)r * rb;
        float *o = dst + (size_t)r * n;
        size_t k = 0;
        for (; k + KS_V <= n; k += KS_V)
            VST(o + k, bf16 ? VLD_BF16(row + 2 * k) : VLD_F16(row + 2 * k));
        if (k < n)
            VSTN(o + k, bf16 ? VLDN_BF16(row + 2 * k, n - k) : VLDN_F16(row + 2 * k, n - k), n - k);
    }
}

/* K-quants: the same expressions as quant.c, KS_V elements at a time. They
 * have no fused kernel: decode and prompt both go through the panel, so
 * both see these exact values. */
static KS_TARGET KS_ALWAYS_INLINE void KS(kscale)(int j, const uint8_t *q, int *sc, int *m)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}


/* Q4_K (144 bytes) and Q5_K (176 bytes) super-blocks of 256. */
static KS_TARGET void KS(deq_k45)(const uint8_t *b, int q5, float *y)
{
    const float d = kx_f16(b), dmin = kx_f16(b + 2);
    const uint8_t *scales = b + 4, *qh = b + 16, *qs = q5 ? b + 48 : b + 16;
    for (int c = 0; c < 4; c++) {
        int sc1, m1, sc2, m2;
        KS(kscale)(2 * c, scales, &sc1, &m1);
        KS(kscale)(2 * c + 1, scales, &sc2, &m2);
        const float d1 = d * (float)sc1, mm1 = dmin * (float)m1, d2 = d * (float)sc2, mm2 = dmin * (float)m2;
        const uint8_t *q = qs + 32 * c;
        float *o = y + 64 * c;
        const vf vd1 = VSET1(d1), vm1 = VSET1(mm1), vd2 = VSET1(d2), vm2 = VSET1(mm2);
        const vi f = VISET1(15);
        for (int l = 0; l < 32; l += KS_V) {
            const vi qb = VU8(q + l);
            vi lo = VIAND(qb, f), hi = VISRL(qb, 4);
            if (q5) { /* bit 2c of qh[l] -> +16 on lo, bit 2c+1 -> +16 on hi */
                const vi hb = VU8(qh + l);
                lo = VIOR(lo, VISLL(VIAND(VISRL(hb, 2 * c), VISET1(1)), 4));
                hi = VIOR(hi, VISLL(VIAND(VISRL(hb, 2 * c + 1), VISET1(1)), 4));
            }
            VST(o + l, VSUB(VMUL(vd1, VI2F(lo)), vm1));
            VST(o + 32 + l, VSUB(VMUL(vd2, VI2F(hi)), vm2));
        }
    }
}

/* Q6_K (210 bytes) super-blocks of 256. */
static KS_TARGET void KS(deq_q6_k)(const uint8_t *b, float *y)
{
    const float d = kx_f16(b + 208);
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = b + 64 * h, *qh = b + 128 + 32 * h;
        const int8_t *sc = (const int8_t *)(b + 192 + 8 * h);
        float *o = y + 128 * h;
        const vi f = VISET1(15), three = VISET1(3), k32 = VISET1(32);
        for (int l = 0; l < 32; l += KS_V) { /* KS_V <= 16: one scale index (l / 16) per vector */
            const int is = l / 16;
            const vf s1 = VSET1(d * (float)sc[is]), s2 = VSET1(d * (float)sc[is + 2]);
            const vf s3 = VSET1(d * (float)sc[is + 4]), s4 = VSET1(d * (float)sc[is + 6]);
            const vi la = VU8(ql + l), lb = VU8(ql + l + 32), hb = VU8(qh + l);
            const vi q1 = VISUB(VIOR(VIAND(la, f), VISLL(VIAND(hb, three), 4)), k32);
            const vi q2 = VISUB(VIOR(VIAND(lb, f), VISLL(VIAND(VISRL(hb, 2), three), 4)), k32);
            const vi q3 = VISUB(VIOR(VISRL(la, 4), VISLL(VIAND(VISRL(hb, 4), three), 4)), k32);
            const vi q4 = VISUB(VIOR(VISRL(lb, 4), VISLL(VISRL(hb, 6), 4)), k32);
            VST(o + l, VMUL(s1, VI2F(q1)));
            VST(o + l + 32, VMUL(s2, VI2F(q2)));
            VST(o + l + 64, VMUL(s3, VI2F(q3)));
            VST(o + l + 96, VMUL(s4, VI2F(q4)));
        }
    }
}

static KS_TARGET void KS(deq_rows_k)(uint32_t type, const uint8_t *src, size_t rb, int nr, size_t n, float *dst)
{
    const size_t bytes = type == GGML_T_Q4_K ? 144 : type == GGML_T_Q5_K ? 176 : 210;
    for (int r = 0; r < nr; r++)
        for (size_t b = 0; b < n / 256; b++) {
            const uint8_t *blk = src + (size_t)r * rb + b * bytes;
            float *o = dst + (size_t)r * n + b * 256;
            if (type == GGML_T_Q6_K)
                KS(deq_q6_k)(blk, o);
            else
                KS(deq_k45)(blk, type == GGML_T_Q5_K, o);
        }
}

static KS_TARGET int KS(dequant_rows)(uint32_t type, const void *src, size_t rb, int nr, size_t n, float *dst)
{
    const uint8_t *s = src;
    if (type != GGML_T_F16 && type != GGML_T_BF16 && n % 32 != 0)
        return -1;
    switch (type) {
    case GGML_T_F16: KS(deq_rows_f16)(s, rb, nr, n, dst, 0); return 0;
    case GGML_T_BF16: KS(deq_rows_f16)(s, rb, nr, n, dst, 1); return 0;
    case GGML_T_Q8_0: KS(deq_rows_q8_0)(s, rb, nr, n, dst); return 0;
    case GGML_T_Q4_0: KS(deq_rows_q4_0)(s, rb, nr, n, dst); return 0;
    case GGML_T_Q4_1: KS(deq_rows_q4_1)(s, rb, nr, n, dst); return 0;
    case GGML_T_Q5_0: KS(deq_rows_q5_0)(s, rb, nr, n, dst); return 0;
    case GGML_T_Q4_K: case GGML_T_Q5_K: case GGML_T_Q6_K:
        if (n % 256 != 0)
            return -1;
        KS(deq_rows_k)(type, s, rb, nr, n, dst);
        return 0;
    default: return -1;
    }
}

/* ---- fused dequantize + dot (decode) ---- */

/* Block formats: R rows x C tokens; for each 32-element block, dequantize
 * each row's block into registers and feed it to the C token chains. */
#define KS_FUSED_BLOCK(name, bytes)                                                                          \
    static KS_TARGET KS_ALWAYS_INLINE void KS(fz_##name)(const int R, const int C, size_t n, const uint8_t *w, \
                                                          size_t rb, const float *x, size_t ldx, float *y,    \
                                                          size_t ldy)                                         \
    {                                                                                                        \
        vf acc[KS_FR][KERN_FUSED_MAX_TOK];                                                                   \
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                                                  \
            _Pragma("GCC unroll 4") for (int c = 0; c < C; c++) acc[r][c] = VZERO();                         \
        for (size_t b = 0; b < n / 32; b++) {                                                                \
            _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                                              \
            {                                                                                                \
                vf wv[KS_NB];                                                                                \
                const uint8_t *wp = w + (size_t)r * rb + b * (bytes);                                        \
                _mm_prefetch((const char *)wp + (size_t)R * rb, _MM_HINT_T0);                                \
                deq_##name(wp, wv);                                                                          \
                _Pragma("GCC unroll 4") for (int c = 0; c < C; c++)                                          \
                    _Pragma("GCC unroll 4") for (int j = 0; j < KS_NB; j++)                                  \
                        acc[r][c] = VFMA(wv[j], VLD(x + (size_t)c * ldx + b * 32 + (size_t)j * KS_V), acc[r][c]); \
            }                                                                                                \
        }                                                                                                    \
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                                                  \
            _Pragma("GCC unroll 4") for (int c = 0; c < C; c++) y[(size_t)c * ldy + r] = VHSUM(acc[r][c]);   \
    }

/* F16/BF16: one vector of elements per step, masked tail (as the GEMM). */
static KS_TARGET KS_ALWAYS_INLINE void KS(fz_half)(const int R, const int C, const int bf16, size_t n,
                                                    const uint8_t *w, size_t rb, const float *x, size_t ldx,
                                                    float *y, size_t ldy)
{
    vf acc[KS_FR][KERN_FUSED_MAX_TOK];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++)
            acc[r][c] = VZERO();
    size_t k = 0;
    for (; k + KS_V <= n; k += KS_V) {
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            const uint8_t *p = w + (size_t)r * rb + 2 * k;
            if ((k & 31) == 0) /* one line per 32 elements */
                _mm_prefetch((const char *)p + (size_t)R * rb, _MM_HINT_T0);
            const vf wv = bf16 ? VLD_BF16(p) : VLD_F16(p);
#pragma GCC unroll 4
            for (int c = 0; c < C; c++)
                acc[r][c] = VFMA(wv, VLD(x + (size_t)c * ldx + k), acc[r][c]);
        }
    }
    if (k < n) {
        const size_t m = n - k;
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            const uint8_t *p = w + (size_t)r * rb + 2 * k;
            const vf wv = bf16 ? VLDN_BF16(p, m) : VLDN_F16(p, m);
#pragma GCC unroll 4
            for (int c = 0; c < C; c++)
                acc[r][c] = VFMA(wv, VLDN(x + (size_t)c * ldx + k, m), acc[r][c]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++)
            y[(size_t)c * ldy + r] = VHSUM(acc[r][c]);
}

KS_FUSED_BLOCK(q8_0, 34)
KS_FUSED_BLOCK(q4_0, 18)
KS_FUSED_BLOCK(q4_1, 20)
KS_FUSED_BLOCK(q5_0, 22)

static KS_TARGET KS_ALWAYS_INLINE void KS(fz_f16)(const int R, const int C, size_t n, const uint8_t *w, size_t rb,
                                                   const float *x, size_t ldx, float *y, size_t ldy)
{
    KS(fz_half)(R, C, 0, n, w, rb, x, ldx, y, ldy);
}

static KS_TARGET KS_ALWAYS_INLINE void KS(fz_bf16)(const int R, const int C, size_t n, const uint8_t *w, size_t rb,
                                                    const float *x, size_t ldx, float *y, size_t ldy)
{
    KS(fz_half)(R, C, 1, n, w, rb, x, ldx, y, ldy);
}

/* Per type: a dispatcher over (R, C) with both constant in each copy. */
#define KS_FZ_CASE(name, R_, C_)                                                                             \
    case (R_) * 8 + (C_):                                                                                    \
        KS(fz_##name)(R_, C_, n, w, rb, x, ldx, y, ldy);                                                     \
        break
#define KS_FZ_ANY(name)                                                                                      \
    static KS_TARGET void KS(fza_##name)(int R, int C, size_t n, const uint8_t *w, size_t rb, const float *x,  \
                                         size_t ldx, float *y, size_t ldy)                                    \
    {                                                                                                        \
        switch (R * 8 + C) {                                                                                 \
            KS_FZ_CASE(name, 8, 1); KS_FZ_CASE(name, 7, 1); KS_FZ_CASE(name, 6, 1); KS_FZ_CASE(name, 5, 1);  \
            KS_FZ_CASE(name, 4, 1); KS_FZ_CASE(name, 4, 2); KS_FZ_CASE(name, 4, 3); KS_FZ_CASE(name, 4, 4);  \
            KS_FZ_CASE(name, 3, 1); KS_FZ_CASE(name, 3, 2); KS_FZ_CASE(name, 3, 3); KS_FZ_CASE(name, 3, 4);  \
            KS_FZ_CASE(name, 2, 1); KS_FZ_CASE(name, 2, 2); KS_FZ_CASE(name, 2, 3); KS_FZ_CASE(name, 2, 4);  \
            KS_FZ_CASE(name, 1, 1); KS_FZ_CASE(name, 1, 2); KS_FZ_CASE(name, 1, 3); KS_FZ_CASE(name, 1, 4);  \
        default:                                                                                             \
            break;                                                                                           \
        }                                                                                                    \
    }

KS_FZ_ANY(q8_0)
KS_FZ_ANY(q4_0)
KS_FZ_ANY(q4_1)
KS_FZ_ANY(q5_0)
KS_FZ_ANY(f16)
KS_FZ_ANY(bf16)

typedef void (*KS(fz_fn))(int, int, size_t, const uint8_t *, size_t, const float *, size_t, float *, size_t);

static KS_TARGET int KS(gemv)(uint32_t type, const void *w, size_t rb, int nr, size_t n, const float *x,
                              size_t ldx, int nt, float *y, size_t ldy)
{
    KS(fz_fn) fn;
    switch (type) {
    case GGML_T_F16: fn = KS(fza_f16); break;
    case GGML_T_BF16: fn = KS(fza_bf16); break;
    case GGML_T_Q8_0: fn = KS(fza_q8_0); break;
    case GGML_T_Q4_0: fn = KS(fza_q4_0); break;
    case GGML_T_Q4_1: fn = KS(fza_q4_1); break;
    case GGML_T_Q5_0: fn = KS(fza_q5_0); break;
    default: return -1;
    }
    if (nt < 1 || nt > KERN_FUSED_MAX_TOK || (type != GGML_T_F16 && type != GGML_T_BF16 && n % 32 != 0))
        return -1;
    const uint8_t *wb = w;
    /* One token: 8 rows per pass (8 chains and streams in flight: +20-35%
     * for Q4_0/Q8_0 on Zen 5, and F16 since the next-tile prefetch);
     * several tokens (4 x nt accumulators in registers): 4 rows. */
    const int fr = nt == 1 ? KS_FR : 4;
    for (int r0 = 0; r0 < nr; r0 += fr) {
        const int R = nr - r0 < fr ? nr - r0 : fr;
        fn(R, nt, n, wb + (size_t)r0 * rb, rb, x, ldx, y + r0, ldy);
    }
    return 0;
}

const kern_ops KS(kern_ops) = {
    .level = KS_LEVEL,
    .dot_f32 = KS(dot_f32),
    .axpy_f32 = KS(axpy_f32),
    .dot_rows = KS(dot_rows),
    .axpy_rows = KS(axpy_rows),
    .softmax = KS(softmax),
    .silu_mul = KS(silu_mul),
    .gemm_f32 = KS(gemm_f32),
    .dequant_rows = KS(dequant_rows),
    .gemv = KS(gemv),
    .q8_row_bytes = KS(kern_q8_row_bytes),
    .q8_quantize = KS(kern_q8_quantize),
    .q8_gemm = KS(kern_q8_gemm),
};
