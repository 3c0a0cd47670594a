/* kern_pack: Q4_0, Q4_1, Q5_0, Q8_0 and K-quant weights interleaved by groups of
 * 16 rows, for the AVX-512 VNNI integer path, and F16 weights likewise for
 * AVX-512 f32 FMAs. See kern.h "Packed weights".
 *
 * F16: a group is n steps of 32 bytes, the 16 rows' element k (row order);
 * one vcvtph2ps gives a vector whose lanes are rows, multiplied by a
 * broadcast x[k]. The rest of this comment is about the integer types.
 *
 * Layout of one group (16 rows) and block b (32 elements), in block order,
 * groups one after the other (so the packed matrix has the size of the
 * original and row group g starts at g * 16 * row_bytes; but see panels,
 * which interleave 4 groups for long rows, and Q8_0's pairs of blocks):
 *     16 f16 scales (row 0..15), for Q4_1 then its 16 f16 mins, then
 *     chunks of 64 bytes: chunk j holds 4 bytes of each row in row order,
 *     bytes 4j..4j+3 of the block's quants (Q4_0, Q4_1: 4 chunks of the
 *     16 nibble bytes; Q8_0: 8 chunks of the 32 int8).
 * Q4_0 rows of whole super-blocks (n % 256 == 0) take another layout, by
 * 8 blocks (kp_pack_q4_0s); the one above is for other lengths.
 * Q4_1 (value d q + m) adds m dx S per block, S the sum of the block's
 * quantized activations, which the activation row carries. Q5_0 keeps the
 * Q4_0 layout and adds fifth-bit masks (kp_pack_q5_0).
 * One vpdpbusd then multiplies 4 quants of 16 rows by the same 4
 * activations (a broadcast), so a lane is one row's partial sum: no
 * horizontal sums, and each weight byte is unpacked once for every token
 * of the tile.
 *
 * A group's blocks are one linear stream, which the hardware prefetcher
 * follows: software prefetch 1 or 4 KiB ahead measured slower in decode.
 *
 * Per (row, token) the float work is, for every block in order,
 * acc = fma(float(I_b), dw * dx, acc) in that row's lane: one fixed sequence
 * whatever the tile shape (batch invariance), a different order from the
 * unpacked kernels (so the results differ from theirs in rounding only). */
#include "engine/kern.h"

#include <string.h>

#include "engine/cpu.h"
#include "engine/gguf.h"

#define KP_ROWS KERN_PACK_ROWS
#define KP_QK 256        /* K-quant super-block */
#define KP_Q4K_SB 2368   /* packed bytes of 16 rows x one Q4_K super-block: 64 + 256 + 2048 */
#define KP_Q5K_SB 2880   /* Q5_K: the Q4_K layout + 512 bytes of fifth-bit masks */
#define KP_Q6K_SB 4384   /* Q6_K: 32 + 256 + 4096 (6-bit values kept as bytes: 1.3x the original) */
#define KP_Q40_SB 2368   /* Q4_0 by 8 blocks: 64 (touched first, unused) + 256 scales + 2048 nibbles */
#define KP_ROW_ALIGN 64
#define KP_F16_TILE 64 /* elements per row pass when packing F16: 16 x 128 B read, 2 KiB written */
#define KP_CMAX 8 /* tokens per tile: 8 int + 8 float accumulators + operands < 32 zmm */
#define KP_Q40_PAIR_MAX_C 4 /* Q4_0 super-blocks: above this many tokens, blocks one at a time */

static size_t kp_block_bytes(uint32_t type)
{
    switch (type) {
    case GGML_T_Q4_0: return 18;
    case GGML_T_Q4_1: return 20;
    case GGML_T_Q5_0: return 22;
    case GGML_T_Q8_0: return 34;
    default: return 0;
    }
}

/* Bytes before a block's quants: f16 d, and Q4_1's f16 m. */
static size_t kp_head_bytes(uint32_t type) { return type == GGML_T_Q4_1 ? 4 : 2; }

/* Panels (kern.h "Packed weights"): for long rows of the 4-to-6-bit types,
 * KP_PANEL_GROUPS groups are stored slice by slice (KP_SLICE elements of
 * each group in turn), so one activation slice serves 4 groups while it is
 * in L1. Measured in decode on one linear stream: rows of 4096 and more
 * elements read ~20% slower than rows of 2048 without panels (the
 * activation row no longer stays in L1 across a group of 16 rows), and as
 * fast with them. Q8_0 (lighter per byte) and F16 showed no such loss. */
#define KP_PANEL_GROUPS 4
#define KP_PANEL_MIN_N 4096
#define KP_SLICE 1024 /* elements: 1 KiB of quantized activations */
#define KP_PAIRED(type) ((type) == GGML_T_Q8_0) /* blocks stored in pairs (kp_block_at) */

static int kp_panel_groups(uint32_t type, size_t n)
{
    if (n < KP_PANEL_MIN_N)
        return 1;
    switch (type) {
    case GGML_T_Q4_0: case GGML_T_Q4_1: case GGML_T_Q5_0:
    case GGML_T_Q4_K: case GGML_T_Q5_K: case GGML_T_Q6_K: return KP_PANEL_GROUPS;
    default: return 1;
    }
}

int kern_pack_panel_rows(uint32_t type, size_t n) { return kp_panel_groups(type, n) * KP_ROWS; }

/* Where a packed matrix of ng groups keeps group g's units [u, ...) (a unit
 * is a block, or a K-quant super-block, of ub bytes per group; nu per
 * group, su per slice): panel by panel; within a panel of pn groups, slice
 * by slice, each slice holding every group's units of it in group order. */
typedef struct {
    size_t ng, nu, su, ub;
    size_t hs; /* head bytes of a block: its 16 scales (Q4_1: and mins) */
    int pg, pair;
} kp_geom;

/* Q4_0 rows of whole super-blocks: packed by 8 blocks (kp_pack_q4_0s). */
static int kp_q40_super(uint32_t type, size_t n) { return type == GGML_T_Q4_0 && n % KP_QK == 0; }

static kp_geom kp_geometry(uint32_t type, size_t n, size_t rb, size_t nr)
{
    const size_t unit =
        type == GGML_T_Q4_K || type == GGML_T_Q5_K || type == GGML_T_Q6_K || kp_q40_super(type, n) ? KP_QK : KERN_Q8_BLOCK;
    kp_geom g = {.ng = nr / KP_ROWS, .nu = n / unit, .pg = kp_panel_groups(type, n)};
    g.ub = kern_pack_group_bytes(type, n, rb) / g.nu;
    g.su = g.pg > 1 ? KP_SLICE / unit : g.nu;
    g.pair = KP_PAIRED(type);
    g.hs = KP_ROWS * kp_head_bytes(type);
    return g;
}

static size_t kp_off(const kp_geom *q, size_t g, size_t u)
{
    const size_t p0 = g / (size_t)q->pg * (size_t)q->pg, pn = q->ng - p0 < (size_t)q->pg ? q->ng - p0 : (size_t)q->pg;
    const size_t u0 = u / q->su * q->su, len = q->nu - u0 < q->su ? q->nu - u0 : q->su;
    return (p0 * q->nu + u0 * pn + (g - p0) * len + (u - u0)) * q->ub;
}

/* Pairs: a packed Q8_0 block (544 bytes per group: 32 of scales, 512 of
 * quants) is not a multiple of 64 bytes, so every other block's quants
 * crossed cache lines (each 64-byte load two line accesses). Its blocks are
 * therefore stored in pairs from the start of each piece (a group's run of
 * blocks in one slice): both heads (the 16 scales each), then both tails,
 * which keeps every tail 64-byte aligned when the piece is; an odd last
 * block stays as it was. Measured: Q8_0 decode +9.9% (median of 6
 * alternating runs), +26% in L2. Q4_0 and Q5_0 (288 and 352 bytes) gained
 * in L2 too but not in decode (Q4_0 -2.5%, Q5_0 +0.5%, within the noise),
 * so they keep the plain order. Offsets of block u's head and tail: */
static void kp_block_at(const kp_geom *q, size_t g, size_t u, size_t *head, size_t *tail)
{
    const size_t off = kp_off(q, g, u);
    if (!q->pair) {
        *head = off;
        *tail = off + q->hs;
        return;
    }
    const size_t u0 = u / q->su * q->su, len = q->nu - u0 < q->su ? q->nu - u0 : q->su, k = u - u0;
    if ((k | 1) >= len) { /* the odd last block */
        *head = off;
        *tail = off + q->hs;
        return;
    }
    const size_t base = off - (k & 1) * q->ub; /* the pair's start */
    *head = base + (k & 1) * q->hs;
    *tail = base + 2 * q->hs + (k & 1) * (q->ub - q->hs);
}

int kern_pack_supported(uint32_t type, uint64_t ne0, uint64_t ne1)
{
#if defined(__x86_64__)
    if (ne0 == 0 || ne1 == 0 || ne1 % KP_ROWS != 0 || cpu_detected_level() < CPU_LEVEL_AVX512)
        return 0;
    if (type == GGML_T_F16)
        return 1;
    if (type == GGML_T_Q4_K || type == GGML_T_Q5_K || type == GGML_T_Q6_K)
        return ne0 % KP_QK == 0 && cpu_get_features()->avx512_vnni;
    return kp_block_bytes(type) != 0 && ne0 % KERN_Q8_BLOCK == 0 && cpu_get_features()->avx512_vnni;
#else
    (void)type, (void)ne0, (void)ne1;
    return 0;
#endif
}

size_t kern_pack_group_bytes(uint32_t type, size_t n, size_t rb)
{
    switch (type) {
    case GGML_T_Q4_K: return n / KP_QK * KP_Q4K_SB;
    case GGML_T_Q5_K: return n / KP_QK * KP_Q5K_SB;
    case GGML_T_Q6_K: return n / KP_QK * KP_Q6K_SB;
    case GGML_T_Q4_0: return kp_q40_super(type, n) ? n / KP_QK * KP_Q40_SB : KP_ROWS * rb;
    default: return KP_ROWS * rb;
    }
}

int kern_pack_usable(const kern_ops *k, uint32_t type)
{
#if defined(__x86_64__)
    return k->level == CPU_LEVEL_AVX512 && (type == GGML_T_F16 || cpu_get_features()->avx512_vnni);
#else
    (void)k, (void)type;
    return 0;
#endif
}

/* Q4_K: a super-block (256 elements, 144 bytes: f16 d, f16 dmin, 12 bytes of
 * 6-bit scales and mins for 8 sub-blocks of 32, 128 bytes of nibbles where
 * bytes 32c..32c+31 hold sub-block 2c in their low nibbles and 2c+1 in
 * their high ones). Packed per group and super-block (KP_Q4K_SB bytes):
 * 16 d, 16 dmin (f16), then per sub-block the 16 rows' scales (u8), then
 * per sub-block the 16 mins (u8), then for each pair c 8 chunks of 64
 * bytes (chunk k: 4 bytes of each row, bytes 32c + 4k.. of its nibbles). */
static void kp_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *m)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* Q5_K (176 bytes: d, dmin, 12 scale bytes, qh[32], qs[128]) packs as Q4_K
 * plus, per pair c and chunk k, two 64-bit masks (low then high sub-block):
 * bit 4r + e is the fifth bit of row r's element 4k + e, so one masked add
 * of 16 restores the 5-bit values. */
static void kp_pack_q45_k(const uint8_t *s, size_t rb, size_t n, size_t nr, uint8_t *d, int q5)
{
    const size_t nsb = n / KP_QK, bb = q5 ? 176 : 144;
    const kp_geom q = kp_geometry(q5 ? GGML_T_Q5_K : GGML_T_Q4_K, n, rb, nr);
    for (size_t g = 0; g < nr / KP_ROWS; g++)
        for (size_t b = 0; b < nsb; b++) {
            uint8_t *o = d + kp_off(&q, g, b);
            if (q5)
                memset(o + 2368, 0, KP_Q5K_SB - 2368);
            for (size_t r = 0; r < KP_ROWS; r++) {
                const uint8_t *blk = s + (g * KP_ROWS + r) * rb + b * bb, *qs = blk + (q5 ? 48 : 16);
                memcpy(o + 2 * r, blk, 2);
                memcpy(o + 32 + 2 * r, blk + 2, 2);
                for (int j = 0; j < 8; j++)
                    kp_scale_min(j, blk + 4, o + 64 + 16 * j + r, o + 192 + 16 * j + r);
                for (size_t c = 0; c < 4; c++)
                    for (size_t k = 0; k < 8; k++) {
                        memcpy(o + 320 + c * 512 + k * 64 + 4 * r, qs + 32 * c + 4 * k, 4);
                        if (!q5)
                            continue;
                        for (int h = 0; h < 2; h++) {
                            uint64_t m;
                            uint8_t *mp = o + 2368 + (c * 8 + k) * 16 + 8 * (size_t)h;
                            memcpy(&m, mp, 8);
                            for (size_t e = 0; e < 4; e++)
                                if ((blk[16 + 4 * k + e] >> (2 * c + (size_t)h)) & 1)
                                    m |= 1ull << (4 * r + e);
                            memcpy(mp, &m, 8);
                        }
                    }
            }
        }
}

/* Q6_K: a super-block (256 elements, 210 bytes: ql[128] low nibbles,
 * qh[64] high 2 bits, int8 scales[16] per 16 elements, f16 d). Packed per
 * group and super-block (KP_Q6K_SB bytes): 16 d (f16), the 16 rows' scale
 * of each 16-element sub-block (int8, 16 x 16), then for each 32-block j
 * 8 chunks of 64 bytes (chunk k: the 6-bit values 0..63 of elements
 * 32j + 4k.. of each row, one per byte). */
static void kp_pack_q6_k(const uint8_t *s, size_t rb, size_t n, size_t nr, uint8_t *d)
{
    const size_t nsb = n / KP_QK;
    const kp_geom q6 = kp_geometry(GGML_T_Q6_K, n, rb, nr);
    for (size_t g = 0; g < nr / KP_ROWS; g++)
        for (size_t b = 0; b < nsb; b++) {
            uint8_t *o = d + kp_off(&q6, g, b);
            for (size_t r = 0; r < KP_ROWS; r++) {
                const uint8_t *blk = s + (g * KP_ROWS + r) * rb + b * 210;
                uint8_t q[KP_QK];
                for (int h = 0; h < 2; h++) {
                    const uint8_t *ql = blk + 64 * h, *qh = blk + 128 + 32 * h;
                    for (int l = 0; l < 32; l++) {
                        q[128 * h + l] = (uint8_t)((ql[l] & 0xF) | ((qh[l] & 3) << 4));
                        q[128 * h + l + 32] = (uint8_t)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4));
                        q[128 * h + l + 64] = (uint8_t)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4));
                        q[128 * h + l + 96] = (uint8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4));
                    }
                }
                memcpy(o + 2 * r, blk + 208, 2);
                for (int j = 0; j < 16; j++)
                    o[32 + 16 * j + r] = blk[192 + j];
                for (size_t j = 0; j < 8; j++)
                    for (size_t k = 0; k < 8; k++)
                        memcpy(o + 288 + (j * 8 + k) * 64 + 4 * r, q + 32 * j + 4 * k, 4);
            }
        }
}

/* Q4_0 by super-blocks of 8 blocks (rows of n % 256 == 0), KP_Q40_SB bytes
 * per group: 64 bytes of zeros, then block j's 16 f16 scales split in
 * halves (rows 0..7 at 64 + 16j, rows 8..15 at 192 + 16j), then for each
 * pair of blocks c (2c, 2c + 1) 8 chunks of 64 bytes: chunk k holds 4 bytes
 * of each row, byte e with element 4k + e of block 2c in its low nibble and
 * of block 2c + 1 in its high one. It copies the shape of the packed Q4_K
 * layout, which decoded ~20% faster than Q4_0's per-block one on files of
 * the same size. Why each part matters is not known (these VMs expose no
 * performance counters), but each was measured, against this layout: the
 * first line left untouched, -15% in decode; no first line (the halves in
 * lines 0..3), -30% in decode; each block's 16 scales in one 32-byte run,
 * -20% in a kernel microbenchmark. The kernel prefetches the first line at
 * the super-block's start. Against the per-block layout: decode +17%
 * (median of 8 alternating runs), prompts -6% (more loads per dot product
 * when 8 tokens share a tile; see kp_tile_q4_0s). */
static void kp_pack_q4_0s(const uint8_t *s, size_t rb, size_t n, size_t nr, uint8_t *d)
{
    const kp_geom q = kp_geometry(GGML_T_Q4_0, n, rb, nr);
    for (size_t g = 0; g < nr / KP_ROWS; g++)
        for (size_t b = 0; b < n / KP_QK; b++) {
            uint8_t *o = d + kp_off(&q, g, b);
            memset(o, 0, 64);
            for (size_t r = 0; r < KP_ROWS; r++) {
                const uint8_t *row = s + (g * KP_ROWS + r) * rb + b * 8 * 18;
                for (size_t j = 0; j < 8; j++)
                    memcpy(o + (r < 8 ? 64 : 192) + 16 * j + 2 * (r % 8), row + 18 * j, 2);
                for (size_t c = 0; c < 4; c++) {
                    const uint8_t *qa = row + 18 * 2 * c + 2, *qb = qa + 18; /* blocks 2c, 2c + 1 */
                    uint8_t e[32]; /* element m of both blocks */
                    for (size_t m = 0; m < 16; m++) {
                        e[m] = (uint8_t)((qa[m] & 15) | (qb[m] & 15) << 4);
                        e[m + 16] = (uint8_t)(qa[m] >> 4 | (qb[m] >> 4) << 4);
                    }
                    for (size_t k = 0; k < 8; k++)
                        memcpy(o + 320 + c * 512 + k * 64 + 4 * r, e + 4 * k, 4);
                }
            }
        }
}

/* Q5_0 (22 bytes: f16 d, 32 fifth bits qh, 16 nibble bytes as Q4_0's; the
 * value is nibble + 16 fifth - 16). Packed per group and block (352 bytes,
 * the original size): 16 d, the 4 nibble chunks of Q4_0's layout, then per
 * chunk j two 64-bit masks (low nibbles, then high): bit 4r + e is row r's
 * fifth bit of element 4j + e (16 + 4j + e), for one masked add of 16. */
static void kp_pack_q5_0(const uint8_t *s, size_t rb, size_t nb, size_t nr, uint8_t *d)
{
    const kp_geom q = kp_geometry(GGML_T_Q5_0, nb * KERN_Q8_BLOCK, rb, nr);
    for (size_t g = 0; g < nr / KP_ROWS; g++)
        for (size_t b = 0; b < nb; b++) {
            size_t ho, to;
            kp_block_at(&q, g, b, &ho, &to);
            uint8_t *oh = d + ho, *ot = d + to;
            uint64_t mk[8] = {0};
            for (size_t r = 0; r < KP_ROWS; r++) {
                const uint8_t *blk = s + (g * KP_ROWS + r) * rb + b * 22;
                uint32_t qh;
                memcpy(oh + 2 * r, blk, 2);
                memcpy(&qh, blk + 2, 4);
                for (size_t j = 0; j < 4; j++) {
                    memcpy(ot + j * 64 + 4 * r, blk + 6 + 4 * j, 4);
                    for (size_t e = 0; e < 4; e++) {
                        mk[2 * j] |= (uint64_t)((qh >> (4 * j + e)) & 1) << (4 * r + e);
                        mk[2 * j + 1] |= (uint64_t)((qh >> (16 + 4 * j + e)) & 1) << (4 * r + e);
                    }
                }
            }
            memcpy(ot + 256, mk, sizeof mk);
        }
}

void kern_pack(uint32_t type, const void *src, size_t rb, size_t n, size_t nr, void *dst)
{
    const uint8_t *s = src;
    uint8_t *d = dst;
    if (type == GGML_T_F16) { /* element k of the group's 16 rows together, in tiles of KP_F16_TILE k */
        for (size_t g = 0; g < nr / KP_ROWS; g++)
            for (size_t k0 = 0; k0 < n; k0 += KP_F16_TILE) {
                const size_t k1 = n - k0 < KP_F16_TILE ? n : k0 + KP_F16_TILE;
                for (size_t r = 0; r < KP_ROWS; r++) {
                    const uint8_t *row = s + (g * KP_ROWS + r) * rb;
                    uint8_t *o = d + g * KP_ROWS * rb + 2 * r;
                    for (size_t k = k0; k < k1; k++)
                        memcpy(o + k * 2 * KP_ROWS, row + 2 * k, 2);
                }
            }
        return;
    }
    if (type == GGML_T_Q4_K || type == GGML_T_Q5_K) {
        kp_pack_q45_k(s, rb, n, nr, d, type == GGML_T_Q5_K);
        return;
    }
    if (type == GGML_T_Q6_K) {
        kp_pack_q6_k(s, rb, n, nr, d);
        return;
    }
    if (kp_q40_super(type, n)) {
        kp_pack_q4_0s(s, rb, n, nr, d);
        return;
    }
    const size_t bb = kp_block_bytes(type), nb = n / KERN_Q8_BLOCK, hb = kp_head_bytes(type);
    const size_t nq = bb - hb; /* quant bytes per block */
    if (type == GGML_T_Q5_0) {
        kp_pack_q5_0(s, rb, nb, nr, d);
        return;
    }
    const kp_geom q = kp_geometry(type, n, rb, nr);
    for (size_t g = 0; g < nr / KP_ROWS; g++)
        for (size_t b = 0; b < nb; b++) {
            size_t ho, to;
            kp_block_at(&q, g, b, &ho, &to);
            for (size_t r = 0; r < KP_ROWS; r++) {
                const uint8_t *blk = s + (g * KP_ROWS + r) * rb + b * bb;
                for (size_t h = 0; h < hb; h += 2) /* the 16 d, then (Q4_1) the 16 m */
                    memcpy(d + ho + h * KP_ROWS + 2 * r, blk + h, 2);
                for (size_t j = 0; j < nq / 4; j++)
                    memcpy(d + to + j * 4 * KP_ROWS + 4 * r, blk + hb + 4 * j, 4);
            }
        }
}

size_t kern_pack_x_bytes(size_t n)
{
    const size_t nb = n / KERN_Q8_BLOCK;
    return (nb * (KERN_Q8_BLOCK + sizeof(float) + 3 * sizeof(int32_t)) + KP_ROW_ALIGN - 1) / KP_ROW_ALIGN *
           KP_ROW_ALIGN;
}

#if defined(__x86_64__)

#include <immintrin.h>

#define KPT __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))
#define KPI static KPT inline __attribute__((always_inline))

/* Natural element order (as kern_q8_quantize_block), then the nb scales,
 * the nb sums of the block's quants (for the unsigned-weight offset), then
 * the sums of each block's halves (Q6_K's scales cover 16 elements). */
KPT void kern_pack_quantize(const float *x, size_t n, void *dst)
{
    const size_t nb = n / KERN_Q8_BLOCK;
    int8_t *q = dst;
    float *d = (float *)(void *)(q + nb * KERN_Q8_BLOCK);
    int32_t *sum = (int32_t *)(void *)(d + nb);
    const __m512 sign = _mm512_set1_ps(-0.0f), hi = _mm512_set1_ps(127.0f), lo = _mm512_set1_ps(-127.0f);
    for (size_t b = 0; b < nb; b++) {
        const __m512 a0 = _mm512_loadu_ps(x + b * 32), a1 = _mm512_loadu_ps(x + b * 32 + 16);
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_andnot_ps(sign, a0), _mm512_andnot_ps(sign, a1)));
        const __m512 id = _mm512_set1_ps(amax > 0 ? 127.0f / amax : 0.0f);
        const __m512i v0 = _mm512_cvtps_epi32(_mm512_max_ps(_mm512_min_ps(_mm512_mul_ps(a0, id), hi), lo));
        const __m512i v1 = _mm512_cvtps_epi32(_mm512_max_ps(_mm512_min_ps(_mm512_mul_ps(a1, id), hi), lo));
        _mm_storeu_si128((__m128i *)(q + b * 32), _mm512_cvtepi32_epi8(v0));
        _mm_storeu_si128((__m128i *)(q + b * 32 + 16), _mm512_cvtepi32_epi8(v1));
        d[b] = amax / 127.0f;
        const int32_t h0 = _mm512_reduce_add_epi32(v0), h1 = _mm512_reduce_add_epi32(v1);
        sum[b] = h0 + h1;
        sum[nb + 2 * b] = h0;
        sum[nb + 2 * b + 1] = h1;
    }
}

KPI int32_t ld32(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* A tile's float sums, one vector of 16 rows per token: first, they start
 * at 0, else they go on from y (exact: f32 in, f32 out), so a row split in
 * slices follows the same sequence as a whole one. */
KPI void kp_acc_load(const int C, __m512 *acc, const float *y, size_t ldy, int first)
{
#pragma GCC unroll 8
    for (int c = 0; c < C; c++)
        acc[c] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(y + (size_t)c * ldy);
}

KPI void kp_acc_store(const int C, const __m512 *acc, float *y, size_t ldy)
{
#pragma GCC unroll 8
    for (int c = 0; c < C; c++)
        _mm512_storeu_ps(y + (size_t)c * ldy, acc[c]);
}

/* Exact integer sums of two 32-element blocks for C tokens, from 8 chunks
 * of 64 bytes at q whose low nibbles belong to the first block and high
 * nibbles to the second (the packed Q4_K, Q5_K and Q4_0 super-block
 * layouts): is0 (is1) gets the first (second) block times the activations
 * of block blk (blk + 1). mk: Q5_K's fifth-bit masks, 16 bytes per chunk
 * (low, then high), or NULL. */
KPI void kp_nibble_pair(const int C, const uint8_t *q, const uint8_t *mk, const uint8_t *xq, size_t ldxq, size_t blk,
                        __m512i *is0, __m512i *is1)
{
    const __m512i m4 = _mm512_set1_epi8(15), sixteen = _mm512_set1_epi8(16);
#pragma GCC unroll 8
    for (int c = 0; c < C; c++)
        is0[c] = is1[c] = _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++) {
        const __m512i v = _mm512_loadu_si512(q + 64 * k);
        __m512i lo = _mm512_and_si512(v, m4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
        if (mk) {
            uint64_t m[2];
            memcpy(m, mk + 16 * k, 16);
            lo = _mm512_mask_add_epi8(lo, (__mmask64)m[0], lo, sixteen);
            hi = _mm512_mask_add_epi8(hi, (__mmask64)m[1], hi, sixteen);
        }
#pragma GCC unroll 8
        for (int c = 0; c < C; c++) {
            const int8_t *xb = (const int8_t *)(xq + (size_t)c * ldxq) + blk * 32;
            is0[c] = _mm512_dpbusd_epi32(is0[c], lo, _mm512_set1_epi32(ld32(xb + 4 * k)));
            is1[c] = _mm512_dpbusd_epi32(is1[c], hi, _mm512_set1_epi32(ld32(xb + 32 + 4 * k)));
        }
    }
}

/* 16 rows (one group) x C tokens, blocks [b0, b1) of nb, g at block b0;
 * first: as kp_acc_load. */
KPI void kp_tile(const int TYPE, const int C, size_t nb, size_t b0, size_t b1, const uint8_t *g, const uint8_t *xq,
                 size_t ldxq, float *y, size_t ldy, int first)
{
    const int Q4 = TYPE != GGML_T_Q8_0; /* nibbles (Q5_0: plus fifth bits) */
    const size_t gbb = KP_ROWS * (TYPE == GGML_T_Q4_0 ? 18 : TYPE == GGML_T_Q4_1 ? 20 : TYPE == GGML_T_Q5_0 ? 22 : 34);
    const size_t hs = KP_ROWS * (TYPE == GGML_T_Q4_1 ? 4 : 2); /* head: the scales (and Q4_1's mins) */
    const int pair = KP_PAIRED(TYPE);                           /* blocks stored in pairs (kp_block_at) */
    const int off = TYPE == GGML_T_Q4_0 ? 8 : TYPE == GGML_T_Q4_1 ? 0 : TYPE == GGML_T_Q5_0 ? 16 : 128;
    const __m512i sixteen = _mm512_set1_epi8(16);
    const __m512i m4 = _mm512_set1_epi8(15), flip = _mm512_set1_epi8((char)0x80);
    __m512 acc[KP_CMAX];
    kp_acc_load(C, acc, y, ldy, first);
    for (size_t b = b0; b < b1; b++) {
        /* head and tail of block b (kp_block_at, within this piece) */
        const size_t k = b - b0;
        const uint8_t *gb = g + k * gbb, *qb = gb + hs;
        if (pair && (k | 1) < b1 - b0) {
            const uint8_t *pb = g + (k & ~(size_t)1) * gbb;
            gb = pb + (k & 1) * hs;
            qb = pb + 2 * hs + (k & 1) * (gbb - hs);
        }
        __m512i is[KP_CMAX];
#pragma GCC unroll 8
        for (int c = 0; c < C; c++)
            is[c] = _mm512_setzero_si512();
        if (Q4) {
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) {
                const __m512i v = _mm512_loadu_si512(qb + 64 * j);
                __m512i lo = _mm512_and_si512(v, m4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
                if (TYPE == GGML_T_Q5_0) {
                    uint64_t mk[2];
                    memcpy(mk, qb + 256 + 16 * j, 16);
                    lo = _mm512_mask_add_epi8(lo, (__mmask64)mk[0], lo, sixteen);
                    hi = _mm512_mask_add_epi8(hi, (__mmask64)mk[1], hi, sixteen);
                }
#pragma GCC unroll 8
                for (int c = 0; c < C; c++) {
                    const int8_t *xb = (const int8_t *)(xq + (size_t)c * ldxq) + b * 32;
                    is[c] = _mm512_dpbusd_epi32(is[c], lo, _mm512_set1_epi32(ld32(xb + 4 * j)));
                    is[c] = _mm512_dpbusd_epi32(is[c], hi, _mm512_set1_epi32(ld32(xb + 16 + 4 * j)));
                }
            }
        } else {
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++) {
                const __m512i v = _mm512_xor_si512(_mm512_loadu_si512(qb + 64 * j), flip);
#pragma GCC unroll 8
                for (int c = 0; c < C; c++) {
                    const int8_t *xb = (const int8_t *)(xq + (size_t)c * ldxq) + b * 32;
                    is[c] = _mm512_dpbusd_epi32(is[c], v, _mm512_set1_epi32(ld32(xb + 4 * j)));
                }
            }
        }
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)gb));
        const __m512 mw = TYPE == GGML_T_Q4_1 ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(gb + 32)))
                                              : _mm512_setzero_ps();
#pragma GCC unroll 8
        for (int c = 0; c < C; c++) {
            const uint8_t *xr = xq + (size_t)c * ldxq;
            float dx;
            int32_t s;
            memcpy(&dx, xr + nb * 32 + b * 4, 4);
            memcpy(&s, xr + nb * 36 + b * 4, 4);
            const __m512i i = off ? _mm512_sub_epi32(is[c], _mm512_set1_epi32(off * s)) : is[c];
            acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i), _mm512_mul_ps(dw, _mm512_set1_ps(dx)), acc[c]);
            if (TYPE == GGML_T_Q4_1) /* + m dx s: the mins times the block's activations */
                acc[c] = _mm512_fmadd_ps(mw, _mm512_set1_ps(dx * (float)s), acc[c]);
        }
    }
    kp_acc_store(C, acc, y, ldy);
}

/* Q4_0 by super-blocks (kp_pack_q4_0s), 16 rows x C tokens, super-blocks
 * [sb0, sb1): per pair of blocks two integer sums (low nibbles: the first
 * block, high: the second), then the blocks in order as in kp_tile (the
 * same sequence, so the same bits). */
KPI __m512 kp_f16_halves(const uint8_t *lo, const uint8_t *hi)
{
    return _mm512_cvtph_ps(_mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)lo)),
                                                   _mm_loadu_si128((const __m128i *)hi), 1));
}

/* Block b's step for one token: acc + float(I - 8 S) (dw dx), as kp_tile. */
KPI __m512 kp_q40_step(__m512 acc, __m512i is, __m512 dw, const uint8_t *xr, size_t nb, size_t b)
{
    float dx;
    int32_t s;
    memcpy(&dx, xr + nb * 32 + b * 4, 4);
    memcpy(&s, xr + nb * 36 + b * 4, 4);
    const __m512i i = _mm512_sub_epi32(is, _mm512_set1_epi32(8 * s));
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(i), _mm512_mul_ps(dw, _mm512_set1_ps(dx)), acc);
}

KPI void kp_tile_q4_0s(const int C, size_t n, size_t sb0, size_t sb1, const uint8_t *g, const uint8_t *xq,
                       size_t ldxq, float *y, size_t ldy, int first)
{
    const size_t nb = n / KERN_Q8_BLOCK;
    const __m512i m4 = _mm512_set1_epi8(15);
    __m512 acc[KP_CMAX];
    kp_acc_load(C, acc, y, ldy, first);
    for (size_t sb = sb0; sb < sb1; sb++) {
        const uint8_t *gb = g + (sb - sb0) * KP_Q40_SB;
        _mm_prefetch((const char *)gb, _MM_HINT_T0); /* the first line first (kp_pack_q4_0s) */
        for (int cp = 0; cp < 4; cp++) {
            const size_t b = sb * 8 + 2 * (size_t)cp;
            if (C > KP_Q40_PAIR_MAX_C) { /* one block at a time: both blocks' sums for 8 tokens spilled (-11% in prompts) */
                for (int h = 0; h < 2; h++) {
                    __m512i is[KP_CMAX];
#pragma GCC unroll 8
                    for (int c = 0; c < C; c++)
                        is[c] = _mm512_setzero_si512();
#pragma GCC unroll 8
                    for (int k = 0; k < 8; k++) {
                        const __m512i v = _mm512_loadu_si512(gb + 320 + 512 * cp + 64 * k);
                        const __m512i q = _mm512_and_si512(h ? _mm512_srli_epi16(v, 4) : v, m4);
#pragma GCC unroll 8
                        for (int c = 0; c < C; c++) {
                            const int8_t *xb = (const int8_t *)(xq + (size_t)c * ldxq) + (b + (size_t)h) * 32;
                            is[c] = _mm512_dpbusd_epi32(is[c], q, _mm512_set1_epi32(ld32(xb + 4 * k)));
                        }
                    }
                    const __m512 dw = kp_f16_halves(gb + 64 + 32 * cp + 16 * h, gb + 192 + 32 * cp + 16 * h);
#pragma GCC unroll 8
                    for (int c = 0; c < C; c++)
                        acc[c] = kp_q40_step(acc[c], is[c], dw, xq + (size_t)c * ldxq, nb, b + (size_t)h);
                }
                continue;
            }
            __m512i is0[KP_CMAX], is1[KP_CMAX];
            kp_nibble_pair(C, gb + 320 + 512 * cp, NULL, xq, ldxq, b, is0, is1);
            const __m512 d0 = kp_f16_halves(gb + 64 + 32 * cp, gb + 192 + 32 * cp);
            const __m512 d1 = kp_f16_halves(gb + 80 + 32 * cp, gb + 208 + 32 * cp);
#pragma GCC unroll 8
            for (int c = 0; c < C; c++) {
                acc[c] = kp_q40_step(acc[c], is0[c], d0, xq + (size_t)c * ldxq, nb, b);
                acc[c] = kp_q40_step(acc[c], is1[c], d1, xq + (size_t)c * ldxq, nb, b + 1);
            }
        }
    }
    kp_acc_store(C, acc, y, ldy);
}

/* Q4_K, 16 rows x C tokens: per sub-block j, I = sum of nibble x q (exact,
 * unsigned weights need no offset), then acc += (d sc_j dx) I - (dmin m_j dx) S. */
KPI void kp_tile_q45_k(const int Q5, const int C, size_t n, size_t sb0, size_t sb1, const uint8_t *g,
                       const uint8_t *xq, size_t ldxq, float *y, size_t ldy, int first)
{
    const size_t nb = n / KERN_Q8_BLOCK, sbb = Q5 ? KP_Q5K_SB : KP_Q4K_SB;
    __m512 acc[KP_CMAX];
    kp_acc_load(C, acc, y, ldy, first);
    for (size_t b = sb0; b < sb1; b++) {
        const uint8_t *gb = g + (b - sb0) * sbb;
        const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)gb));
        const __m512 dmin = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(gb + 32)));
        for (int cp = 0; cp < 4; cp++) {
            __m512i is0[KP_CMAX], is1[KP_CMAX];
            kp_nibble_pair(C, gb + 320 + cp * 512, Q5 ? gb + 2368 + cp * 8 * 16 : NULL, xq, ldxq,
                           b * 8 + 2 * (size_t)cp, is0, is1);
            for (int h = 0; h < 2; h++) {
                const int j = 2 * cp + h;
                const __m512 sc = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(
                                                       _mm_loadu_si128((const __m128i *)(gb + 64 + 16 * j)))));
                const __m512 mn = _mm512_mul_ps(dmin, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(
                                                          _mm_loadu_si128((const __m128i *)(gb + 192 + 16 * j)))));
#pragma GCC unroll 8
                for (int c = 0; c < C; c++) {
                    const uint8_t *xr = xq + (size_t)c * ldxq;
                    const size_t blk = b * 8 + (size_t)j;
                    float dx;
                    int32_t sum;
                    memcpy(&dx, xr + nb * 32 + blk * 4, 4);
                    memcpy(&sum, xr + nb * 36 + blk * 4, 4);
                    const __m512 vdx = _mm512_set1_ps(dx);
                    acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(h ? is1[c] : is0[c]), _mm512_mul_ps(sc, vdx), acc[c]);
                    acc[c] = _mm512_fnmadd_ps(_mm512_mul_ps(mn, vdx), _mm512_set1_ps((float)sum), acc[c]);
                }
            }
        }
    }
    kp_acc_store(C, acc, y, ldy);
}

/* Q6_K, 16 rows x C tokens: per 32-block j, the halves' integer dots Ia, Ib
 * (values 0..63, offset 32 taken off with the halves' activation sums),
 * then acc += d dx (sc_a Ia + sc_b Ib). */
KPI void kp_tile_q6_k(const int C, size_t n, size_t sb0, size_t sb1, const uint8_t *g, const uint8_t *xq,
                      size_t ldxq, float *y, size_t ldy, int first)
{
    const size_t nb = n / KERN_Q8_BLOCK;
    __m512 acc[KP_CMAX];
    kp_acc_load(C, acc, y, ldy, first);
    for (size_t b = sb0; b < sb1; b++) {
        const uint8_t *gb = g + (b - sb0) * KP_Q6K_SB;
        const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)gb));
        for (int j = 0; j < 8; j++) {
            __m512i ia[KP_CMAX], ib[KP_CMAX];
#pragma GCC unroll 8
            for (int c = 0; c < C; c++)
                ia[c] = ib[c] = _mm512_setzero_si512();
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                const __m512i va = _mm512_loadu_si512(gb + 288 + ((size_t)j * 8 + (size_t)k) * 64);
                const __m512i vb = _mm512_loadu_si512(gb + 288 + ((size_t)j * 8 + (size_t)k + 4) * 64);
#pragma GCC unroll 8
                for (int c = 0; c < C; c++) {
                    const int8_t *xb = (const int8_t *)(xq + (size_t)c * ldxq) + (b * 8 + (size_t)j) * 32;
                    ia[c] = _mm512_dpbusd_epi32(ia[c], va, _mm512_set1_epi32(ld32(xb + 4 * k)));
                    ib[c] = _mm512_dpbusd_epi32(ib[c], vb, _mm512_set1_epi32(ld32(xb + 16 + 4 * k)));
                }
            }
            const __m512 sa = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(gb + 32 + 32 * j))));
            const __m512 sb = _mm512_cvtepi32_ps(
                _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(gb + 32 + 32 * j + 16))));
            const size_t blk = b * 8 + (size_t)j;
#pragma GCC unroll 8
            for (int c = 0; c < C; c++) {
                const uint8_t *xr = xq + (size_t)c * ldxq;
                float dx;
                int32_t h[2];
                memcpy(&dx, xr + nb * 32 + blk * 4, 4);
                memcpy(h, xr + nb * 40 + blk * 8, 8);
                const __m512 fa = _mm512_cvtepi32_ps(_mm512_sub_epi32(ia[c], _mm512_set1_epi32(32 * h[0])));
                const __m512 fb = _mm512_cvtepi32_ps(_mm512_sub_epi32(ib[c], _mm512_set1_epi32(32 * h[1])));
                const __m512 f = _mm512_fmadd_ps(fb, sb, _mm512_mul_ps(fa, sa));
                acc[c] = _mm512_fmadd_ps(f, _mm512_mul_ps(d, _mm512_set1_ps(dx)), acc[c]);
            }
        }
    }
    kp_acc_store(C, acc, y, ldy);
}

/* Per type, a function taking the token count C at run time and calling
 * the tile inlined for that constant C (accumulators stay in registers). */
#define KP_DISPATCH(name, CALL)                                                                              \
    static KPT void name(int C, size_t n, size_t u0, size_t u1, const uint8_t *g, const uint8_t *xq, size_t ldxq, \
                         float *y, size_t ldy, int first)                                                    \
    {                                                                                                        \
        switch (C) {                                                                                         \
        case 1: CALL(1); break;                                                                              \
        case 2: CALL(2); break;                                                                              \
        case 3: CALL(3); break;                                                                              \
        case 4: CALL(4); break;                                                                              \
        case 5: CALL(5); break;                                                                              \
        case 6: CALL(6); break;                                                                              \
        case 7: CALL(7); break;                                                                              \
        case 8: CALL(8); break;                                                                              \
        default: break;                                                                                      \
        }                                                                                                    \
    }
#define KP_CALL_Q4_0(C_) kp_tile(GGML_T_Q4_0, C_, n / KERN_Q8_BLOCK, u0, u1, g, xq, ldxq, y, ldy, first)
#define KP_CALL_Q4_0S(C_) kp_tile_q4_0s(C_, n, u0, u1, g, xq, ldxq, y, ldy, first)
#define KP_CALL_Q8_0(C_) kp_tile(GGML_T_Q8_0, C_, n / KERN_Q8_BLOCK, u0, u1, g, xq, ldxq, y, ldy, first)
#define KP_CALL_Q4_1(C_) kp_tile(GGML_T_Q4_1, C_, n / KERN_Q8_BLOCK, u0, u1, g, xq, ldxq, y, ldy, first)
#define KP_CALL_Q5_0(C_) kp_tile(GGML_T_Q5_0, C_, n / KERN_Q8_BLOCK, u0, u1, g, xq, ldxq, y, ldy, first)
#define KP_CALL_Q4_K(C_) kp_tile_q45_k(0, C_, n, u0, u1, g, xq, ldxq, y, ldy, first)
#define KP_CALL_Q5_K(C_) kp_tile_q45_k(1, C_, n, u0, u1, g, xq, ldxq, y, ldy, first)
#define KP_CALL_Q6_K(C_) kp_tile_q6_k(C_, n, u0, u1, g, xq, ldxq, y, ldy, first)
KP_DISPATCH(kp_q4_0, KP_CALL_Q4_0)
KP_DISPATCH(kp_q4_0s, KP_CALL_Q4_0S)
KP_DISPATCH(kp_q8_0, KP_CALL_Q8_0)
KP_DISPATCH(kp_q4_1, KP_CALL_Q4_1)
KP_DISPATCH(kp_q5_0, KP_CALL_Q5_0)
KP_DISPATCH(kp_q4_k, KP_CALL_Q4_K)
KP_DISPATCH(kp_q5_k, KP_CALL_Q5_K)
KP_DISPATCH(kp_q6_k, KP_CALL_Q6_K)

KPT int kern_pack_gemm(uint32_t type, const void *packed, size_t rb, int nr, size_t n, const void *xq, size_t ldxq,
                       int nt, float *y, size_t ldy)
{
    void (*fn)(int, size_t, size_t, size_t, const uint8_t *, const uint8_t *, size_t, float *, size_t, int);
    size_t block; /* elements each group-block of the type covers */
    switch (type) {
    case GGML_T_Q4_0: /* whole super-blocks: by 8 blocks (kp_pack_q4_0s) */
        fn = kp_q40_super(type, n) ? kp_q4_0s : kp_q4_0;
        block = kp_q40_super(type, n) ? KP_QK : KERN_Q8_BLOCK;
        break;
    case GGML_T_Q8_0: fn = kp_q8_0; block = KERN_Q8_BLOCK; break;
    case GGML_T_Q4_1: fn = kp_q4_1; block = KERN_Q8_BLOCK; break;
    case GGML_T_Q5_0: fn = kp_q5_0; block = KERN_Q8_BLOCK; break;
    case GGML_T_Q4_K: fn = kp_q4_k; block = KP_QK; break;
    case GGML_T_Q5_K: fn = kp_q5_k; block = KP_QK; break;
    case GGML_T_Q6_K: fn = kp_q6_k; block = KP_QK; break;
    default: return -1;
    }
    if (nr % KP_ROWS != 0 || n % block != 0)
        return -1;
    const uint8_t *p = packed, *x = xq;
    const kp_geom q = kp_geometry(type, n, rb, (size_t)nr);
    /* Panel by panel, slice by slice (one slice: the whole row), group by
     * group: the order of the bytes, so the weights stream linearly. */
    for (size_t p0 = 0; p0 < q.ng; p0 += (size_t)q.pg) {
        const size_t pe = q.ng - p0 < (size_t)q.pg ? q.ng : p0 + (size_t)q.pg;
        for (size_t u0 = 0; u0 < q.nu; u0 += q.su) {
            const size_t u1 = q.nu - u0 < q.su ? q.nu : u0 + q.su;
            for (size_t g = p0; g < pe; g++)
                for (int c0 = 0; c0 < nt; c0 += KP_CMAX) {
                    const int C = nt - c0 < KP_CMAX ? nt - c0 : KP_CMAX;
                    fn(C, n, u0, u1, p + kp_off(&q, g, u0), x + (size_t)c0 * ldxq, ldxq,
                       y + (size_t)c0 * ldy + g * KP_ROWS, ldy, u0 == 0);
                }
        }
    }
    return 0;
}

/* F16: 16 rows x C tokens on f32 activations. Two accumulators per token
 * (even and odd k) keep two FMA chains in flight in decode; the same split
 * at every tile shape, summed once at the end. */
#define KPF_CMAX 8
#define KPF_PREFETCH 2048 /* bytes ahead in the group's stream */

KPI void kpf_tile(const int C, size_t n, const uint8_t *g, const float *x, size_t ldx, float *y, size_t ldy)
{
    __m512 a0[KPF_CMAX], a1[KPF_CMAX];
#pragma GCC unroll 8
    for (int c = 0; c < C; c++)
        a0[c] = a1[c] = _mm512_setzero_ps();
    size_t k = 0;
    for (; k + 2 <= n; k += 2) {
        const uint8_t *p = g + k * 2 * KP_ROWS;
        _mm_prefetch((const char *)p + KPF_PREFETCH, _MM_HINT_T0);
        const __m512 w0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
        const __m512 w1 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p + 32)));
#pragma GCC unroll 8
        for (int c = 0; c < C; c++) {
            a0[c] = _mm512_fmadd_ps(w0, _mm512_set1_ps(x[(size_t)c * ldx + k]), a0[c]);
            a1[c] = _mm512_fmadd_ps(w1, _mm512_set1_ps(x[(size_t)c * ldx + k + 1]), a1[c]);
        }
    }
    if (k < n) {
        const __m512 w0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(g + k * 2 * KP_ROWS)));
#pragma GCC unroll 8
        for (int c = 0; c < C; c++)
            a0[c] = _mm512_fmadd_ps(w0, _mm512_set1_ps(x[(size_t)c * ldx + k]), a0[c]);
    }
#pragma GCC unroll 8
    for (int c = 0; c < C; c++)
        _mm512_storeu_ps(y + (size_t)c * ldy, _mm512_add_ps(a0[c], a1[c]));
}

#define KPF_CASE(C_)                                                                                         \
    case C_:                                                                                                 \
        kpf_tile(C_, n, g, x, ldx, y, ldy);                                                                  \
        break

static KPT void kpf_any(int C, size_t n, const uint8_t *g, const float *x, size_t ldx, float *y, size_t ldy)
{
    switch (C) {
        KPF_CASE(1); KPF_CASE(2); KPF_CASE(3); KPF_CASE(4); KPF_CASE(5); KPF_CASE(6); KPF_CASE(7); KPF_CASE(8);
    default:
        break;
    }
}

/* Decode (one token): two groups at once, each with kpf_tile's two chains
 * and order (so the same bits), for two streams in flight instead of one. */
KPI void kpf_pair1(size_t n, const uint8_t *g0, const uint8_t *g1, const float *x, float *y0, float *y1)
{
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, b0 = a0, b1 = a0;
    size_t k = 0;
    for (; k + 2 <= n; k += 2) {
        const uint8_t *p = g0 + k * 2 * KP_ROWS, *q = g1 + k * 2 * KP_ROWS;
        _mm_prefetch((const char *)p + KPF_PREFETCH, _MM_HINT_T0);
        _mm_prefetch((const char *)q + KPF_PREFETCH, _MM_HINT_T0);
        const __m512 x0 = _mm512_set1_ps(x[k]), x1 = _mm512_set1_ps(x[k + 1]);
        a0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)), x0, a0);
        a1 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p + 32))), x1, a1);
        b0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)q)), x0, b0);
        b1 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(q + 32))), x1, b1);
    }
    if (k < n) {
        const __m512 x0 = _mm512_set1_ps(x[k]);
        a0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(g0 + k * 2 * KP_ROWS))), x0, a0);
        b0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(g1 + k * 2 * KP_ROWS))), x0, b0);
    }
    _mm512_storeu_ps(y0, _mm512_add_ps(a0, a1));
    _mm512_storeu_ps(y1, _mm512_add_ps(b0, b1));
}

KPT int kern_pack_gemm_f16(const void *packed, size_t rb, int nr, size_t n, const float *x, size_t ldx, int nt,
                           float *y, size_t ldy)
{
    if (nr % KP_ROWS != 0)
        return -1;
    const uint8_t *p = packed;
    int g = 0;
    const size_t gs = (size_t)KP_ROWS * rb;
    if (nt == 1)
        for (; g + 2 <= nr / KP_ROWS; g += 2)
            kpf_pair1(n, p + (size_t)g * gs, p + (size_t)(g + 1) * gs, x, y + g * KP_ROWS, y + (g + 1) * KP_ROWS);
    for (; g < nr / KP_ROWS; g++)
        for (int c0 = 0; c0 < nt; c0 += KPF_CMAX) {
            const int C = nt - c0 < KPF_CMAX ? nt - c0 : KPF_CMAX;
            kpf_any(C, n, p + (size_t)g * KP_ROWS * rb, x + (size_t)c0 * ldx, ldx, y + (size_t)c0 * ldy + g * KP_ROWS,
                    ldy);
        }
    return 0;
}

#else

int kern_pack_gemm_f16(const void *packed, size_t rb, int nr, size_t n, const float *x, size_t ldx, int nt,
                       float *y, size_t ldy)
{
    (void)packed, (void)rb, (void)nr, (void)n, (void)x, (void)ldx, (void)nt, (void)y, (void)ldy;
    return -1;
}

void kern_pack_quantize(const float *x, size_t n, void *dst)
{
    (void)x, (void)n, (void)dst;
}

int kern_pack_gemm(uint32_t type, const void *packed, size_t rb, int nr, size_t n, const void *xq, size_t ldxq,
                   int nt, float *y, size_t ldy)
{
    (void)type, (void)packed, (void)rb, (void)nr, (void)n, (void)xq, (void)ldxq, (void)nt, (void)y, (void)ldy;
    return -1;
}

#endif
