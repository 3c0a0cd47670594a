/* quant: ggml tensor block formats, scalar reference (de)quantization and
 * fp16/bf16 conversion.
 *
 * This is the portable reference: plain C, one element at a time, meant to be
 * obviously right. SIMD kernels are checked against it. Layouts follow ggml
 * (shared/reference/engine-formats.md section 2); all multi-byte fields are
 * little-endian and the host is assumed little-endian (checked in quant.c).
 *
 * Pointers to blocks need not be aligned: the functions read and write block
 * bytes with memcpy, so data straight out of a GGUF mapping is fine.
 * Nothing here allocates; nothing keeps a pointer after returning.
 */
#ifndef WARD_QUANT_H
#define WARD_QUANT_H

#include <stddef.h>
#include <stdint.h>

#define QUANT_QK 32   /* elements per block of the legacy formats (Q4_0 ... Q8_0) */
#define QUANT_QK_K 256 /* elements per super-block of the K-quants */
#define QUANT_K_SCALE_BYTES 12 /* packed 6-bit scales and mins of Q4_K/Q5_K */

/* Block structs (documentation of the byte layout, for SIMD code and tests).
 * f16 fields are raw IEEE binary16 bits. */
typedef struct { uint16_t d; uint8_t qs[QUANT_QK / 2]; } quant_block_q4_0;           /* 18 bytes */
typedef struct { uint16_t d, m; uint8_t qs[QUANT_QK / 2]; } quant_block_q4_1;        /* 20 bytes */
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[QUANT_QK / 2]; } quant_block_q5_0; /* 22 bytes */
typedef struct { uint16_t d; int8_t qs[QUANT_QK]; } quant_block_q8_0;                /* 34 bytes */
typedef struct {
    uint16_t d, dmin;
    uint8_t scales[QUANT_K_SCALE_BYTES];
    uint8_t qs[QUANT_QK_K / 2];
} quant_block_q4_k; /* 144 bytes */
typedef struct {
    uint16_t d, dmin;
    uint8_t scales[QUANT_K_SCALE_BYTES];
    uint8_t qh[QUANT_QK_K / 8];
    uint8_t qs[QUANT_QK_K / 2];
} quant_block_q5_k; /* 176 bytes */
typedef struct {
    uint8_t ql[QUANT_QK_K / 2];
    uint8_t qh[QUANT_QK_K / 4];
    int8_t scales[QUANT_QK_K / 16];
    uint16_t d;
} quant_block_q6_k; /* 210 bytes */

/* IEEE binary16 <-> binary32, round-to-nearest-even; inf, NaN (quiet, sign
 * and top payload bits kept) and subnormals handled exactly. */
float quant_f16_to_f32(uint16_t h);
uint16_t quant_f32_to_f16(float f);
/* bfloat16 <-> binary32: bf16 is the top half of an f32. Rounding is to
 * nearest-even; NaN stays NaN (quiet bit forced). */
float quant_bf16_to_f32(uint16_t h);
uint16_t quant_f32_to_bf16(float f);

/* 1 if quant_dequantize_row supports the type (F32, F16, BF16, Q4_0, Q4_1,
 * Q5_0, Q8_0, Q4_K, Q5_K, Q6_K), else 0. */
int quant_can_dequantize(uint32_t type);
/* 1 if quant_quantize_row supports the type (the same set), else 0. */
int quant_can_quantize(uint32_t type);

/* Bytes of a row of n elements of the type; 0 if the type is unknown, n is
 * 0 or not a multiple of the block size, or the size overflows size_t. */
size_t quant_row_bytes(uint32_t type, size_t n);

/* Decodes n elements (a whole number of blocks) from src into dst.
 * Returns 0, or -1 (nothing written) for an unsupported type or bad n. */
int quant_dequantize_row(uint32_t type, const void *src, float *dst, size_t n);

/* Encodes n floats into quant_row_bytes(type, n) bytes at dst using the
 * simple round-to-nearest reference quantizers (ggml's for Q8_0/Q4_0/Q4_1/
 * Q5_0; per-sub-block min/max with 6-bit scales for the K-quants). Any input
 * (NaN and inf included) gives defined output. Returns 0 or -1. */
int quant_quantize_row(uint32_t type, const float *src, void *dst, size_t n);

#endif
