/* gguf: reader and writer for GGUF v3 model files.
 *
 * Reader: gguf_open() mmaps the file read-only and validates everything before
 * returning: magic, version (3; 2 accepted), counts against GGUF_MAX_* limits,
 * every string/array length against the bytes left, value types, duplicate
 * keys, tensor names/dims/types, that every tensor's data lies inside the file,
 * is aligned and does not overlap another, and every size computation against
 * overflow. On failure it returns NULL and writes one clear message (with the
 * byte offset where useful) into err. Nothing it returns points outside the
 * mapping; all pointers stay valid until gguf_close().
 *
 * gguf_open_buffer() parses an in-memory buffer (for the fuzzer and tests); the
 * buffer must outlive the handle. Tensor data pointers are aligned to the
 * file's alignment relative to buf, so pass a buffer from malloc (or better)
 * if the data will be read as floats.
 *
 * Strings (keys, values, tensor names) are untrusted bytes: keys and names
 * contain no NUL (checked), values may contain anything.
 *
 * Byte order: little-endian files on little-endian hosts only (ward's targets).
 *
 * Writer: gguf_writer collects KVs and tensors, then writes a file in one go.
 */
#ifndef WARD_GGUF_H
#define WARD_GGUF_H

#include <stddef.h>
#include <stdint.h>

/* Limits on untrusted files. Real models have ~300-1000 tensors and ~50 KVs,
 * vocabularies up to ~260k entries and merges up to ~500k. */
#define GGUF_MAX_TENSORS 65536         /* far above any real model */
#define GGUF_MAX_KV 65536              /* ditto */
#define GGUF_MAX_STRING (1u << 20)     /* one string value: 1 MiB (chat templates are ~10 KiB) */
#define GGUF_MAX_ARRAY (1u << 24)      /* array elements: 16M (vocab/merges arrays < 1M) */
#define GGUF_MAX_NAME 64               /* tensor name bytes (ggml's GGML_MAX_NAME) */
#define GGUF_MAX_DIMS 4                /* ggml tensors have at most 4 dims */
#define GGUF_MAX_KEY 1024              /* key bytes; real keys are < 100 */
#define GGUF_DEFAULT_ALIGNMENT 32
/* general.alignment must be a power of two in this range: the spec asks for a
 * multiple of 8 (so F32/F16 data is naturally aligned for the engine), and no
 * format needs more than a large page. */
#define GGUF_MIN_ALIGNMENT 8
#define GGUF_MAX_ALIGNMENT 65536

/* GGUF metadata value types. */
typedef enum {
    GGUF_T_UINT8 = 0, GGUF_T_INT8 = 1, GGUF_T_UINT16 = 2, GGUF_T_INT16 = 3,
    GGUF_T_UINT32 = 4, GGUF_T_INT32 = 5, GGUF_T_FLOAT32 = 6, GGUF_T_BOOL = 7,
    GGUF_T_STRING = 8, GGUF_T_ARRAY = 9, GGUF_T_UINT64 = 10, GGUF_T_INT64 = 11,
    GGUF_T_FLOAT64 = 12,
} gguf_vtype;

/* ggml tensor types that ward knows (ids are ggml's). */
typedef enum {
    GGML_T_F32 = 0, GGML_T_F16 = 1, GGML_T_Q4_0 = 2, GGML_T_Q4_1 = 3,
    GGML_T_Q5_0 = 6, GGML_T_Q5_1 = 7, GGML_T_Q8_0 = 8, GGML_T_Q8_1 = 9,
    GGML_T_Q2_K = 10, GGML_T_Q3_K = 11, GGML_T_Q4_K = 12, GGML_T_Q5_K = 13,
    GGML_T_Q6_K = 14, GGML_T_Q8_K = 15, GGML_T_BF16 = 30,
} ggml_type;

/* Block geometry of a tensor type: elements per block and bytes per block.
 * Returns 0 and fills both for a known type, -1 for an unknown one. */
int ggml_type_block(uint32_t type, size_t *block_elems, size_t *block_bytes);
/* "F32", "Q4_K", ... or "unknown". */
const char *ggml_type_name(uint32_t type);

typedef struct { const char *ptr; uint64_t len; } gguf_str; /* not NUL-terminated */

typedef struct gguf_file gguf_file;

typedef struct {
    const char *name;          /* NUL-terminated copy owned by the handle */
    uint32_t type;             /* ggml_type */
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS];/* ne[0] fastest-varying; unused dims are 1 */
    uint64_t n_elems;
    uint64_t n_bytes;          /* validated: inside the file */
    uint64_t offset;           /* absolute file offset of the data */
    const void *data;          /* points into the mapping */
} gguf_tensor;

gguf_file *gguf_open(const char *path, char *err, size_t errlen);
gguf_file *gguf_open_buffer(const void *buf, size_t len, char *err, size_t errlen);
void gguf_close(gguf_file *f);

uint32_t gguf_version(const gguf_file *f);
uint32_t gguf_alignment(const gguf_file *f);

/* Metadata. Keys are looked up by exact name; -1 when absent. */
int64_t gguf_find_key(const gguf_file *f, const char *key);
size_t gguf_n_kv(const gguf_file *f);
const char *gguf_key_name(const gguf_file *f, int64_t i); /* NUL-terminated */
gguf_vtype gguf_kv_type(const gguf_file *f, int64_t i);

/* Typed getters with conversion between integer widths where the value fits.
 * Return 0 on success, -1 if absent or of an incompatible type. */
int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out);
int gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out);
int gguf_get_i64(const gguf_file *f, const char *key, int64_t *out);
int gguf_get_f32(const gguf_file *f, const char *key, float *out);
int gguf_get_bool(const gguf_file *f, const char *key, int *out);
int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out);

/* Arrays: element type and count; element access by index (bounds-checked). */
int gguf_get_arr(const gguf_file *f, const char *key, gguf_vtype *elem_type, uint64_t *count);
int gguf_arr_str(const gguf_file *f, const char *key, uint64_t i, gguf_str *out);
int gguf_arr_f32(const gguf_file *f, const char *key, uint64_t i, float *out);   /* FLOAT32 arrays */
int gguf_arr_i64(const gguf_file *f, const char *key, uint64_t i, int64_t *out); /* any integer array */
/* Raw view of a numeric or bool array: little-endian elements, count of them,
 * each gguf_vtype_size(elem_type) bytes, possibly unaligned (read with memcpy).
 * Points into the mapping. -1 if absent, not an array, or a string array. */
int gguf_arr_data(const gguf_file *f, const char *key, gguf_vtype *elem_type,
                  uint64_t *count, const void **data);
/* Bytes of one scalar of this type (0 for STRING/ARRAY/unknown). */
size_t gguf_vtype_size(uint32_t type);
/* "UINT32", "STRING", ... or "unknown". */
const char *gguf_vtype_name(uint32_t type);

/* Tensors. */
size_t gguf_n_tensors(const gguf_file *f);
const gguf_tensor *gguf_tensor_at(const gguf_file *f, size_t i);
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name); /* NULL if absent */

/* ---- writer ----
 * Setters replace an existing key of the same name (so a copied KV can be
 * overridden). The writer enforces the reader's limits, so what it writes the
 * reader accepts. A u32 "general.alignment" KV, if set, is used as the
 * alignment (it must be a power of two within the GGUF_*_ALIGNMENT range). */
typedef struct gguf_writer gguf_writer;

gguf_writer *gguf_writer_new(void);
void gguf_writer_free(gguf_writer *w);
/* Setters copy their arguments. Return 0, or -1 on bad input / no memory. */
int gguf_set_u32(gguf_writer *w, const char *key, uint32_t v);
int gguf_set_i32(gguf_writer *w, const char *key, int32_t v);
int gguf_set_u64(gguf_writer *w, const char *key, uint64_t v);
int gguf_set_f32(gguf_writer *w, const char *key, float v);
int gguf_set_bool(gguf_writer *w, const char *key, int v);
int gguf_set_str(gguf_writer *w, const char *key, const char *v);
int gguf_set_arr_str(gguf_writer *w, const char *key, const char *const *v, size_t n);
int gguf_set_arr_f32(gguf_writer *w, const char *key, const float *v, size_t n);
int gguf_set_arr_i32(gguf_writer *w, const char *key, const int32_t *v, size_t n);
/* Copies a KV (any type, arrays included) from an open file. */
int gguf_copy_kv(gguf_writer *w, const gguf_file *src, int64_t i);
/* Adds a tensor; data (n_bytes as implied by type and dims) is copied. */
int gguf_add_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                    const uint64_t *ne, const void *data);
/* Adds a tensor whose data is produced at write time: fill(ctx, dst, n_bytes,
 * err, errlen) must write exactly n_bytes into dst and return 0 (or -1 with
 * err set, which aborts the write). Keeps memory to one tensor at a time
 * (used by `ward quantize`). ctx must stay valid until the write. */
typedef int (*gguf_tensor_fill_fn)(void *ctx, void *dst, size_t n_bytes, char *err, size_t errlen);
int gguf_add_tensor_fn(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                       const uint64_t *ne, gguf_tensor_fill_fn fill, void *ctx);
/* Tensor geometry check shared by reader and writer: fills n_elems and n_bytes
 * or returns -1 with err (zero/overflowing dims, unknown type, ne[0] not a
 * multiple of the block). */
int gguf_tensor_geometry(uint32_t type, uint32_t n_dims, const uint64_t *ne,
                         uint64_t *n_elems, uint64_t *n_bytes, char *err, size_t errlen);
/* Writes the file (alignment GGUF_DEFAULT_ALIGNMENT unless general.alignment
 * says otherwise) to a temporary name next to path, then renames it into
 * place. 0 or -1 with err. */
int gguf_writer_write(gguf_writer *w, const char *path, char *err, size_t errlen);
/* Same bytes into a malloc'd buffer (*out, *out_len; caller frees). */
int gguf_writer_write_buffer(gguf_writer *w, void **out, size_t *out_len, char *err, size_t errlen);

#endif
