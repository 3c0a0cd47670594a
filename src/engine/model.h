/* model: loads a llama-family GGUF model and exposes its hyper-parameters and
 * weights (read-only views into the file mapping).
 *
 * Supported architectures: "llama" (Llama 1/2/3/3.1 incl. rope_freqs scaling,
 * GQA, tied embeddings when output.weight is absent; NORM RoPE = adjacent
 * pairs) and "qwen2" (q/k/v biases, NEOX RoPE = half-split pairs). Weight
 * types: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q4_K, Q5_K, Q6_K.
 *
 * model_load() checks every hyper-parameter against the MODEL_MAX_* limits
 * and every tensor's type and shape against the hyper-parameters before
 * returning; on failure it returns NULL with one clear message (naming the
 * key or tensor) in err. A loaded model is immutable: any number of threads
 * may read it concurrently. It owns its gguf_file; all pointers it hands out
 * (weights, the gguf handle, hparams) stay valid until model_free().
 */
#ifndef WARD_MODEL_H
#define WARD_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "engine/gguf.h"

/* Limits on untrusted files (largest real llama-family models are far below). */
#define MODEL_MAX_LAYERS 1024        /* Llama 3.1 405B has 126 */
#define MODEL_MAX_EMBD 65536         /* 405B: 16384 */
#define MODEL_MAX_FF (1u << 20)      /* 405B: 53248 */
#define MODEL_MAX_HEADS 1024         /* 405B: 128 */
#define MODEL_MAX_HEAD_DIM 1024      /* real: 64-256; bounds per-head scratch */
#define MODEL_MAX_VOCAB (1u << 22)   /* real: up to ~260k */
#define MODEL_MAX_CTX_TRAIN (1u << 24) /* 16M; only informative, engine has its own n_ctx */
#define MODEL_ARCH_NAME_MAX 32

typedef enum { MODEL_ARCH_LLAMA = 0, MODEL_ARCH_QWEN2 = 1 } model_arch;

typedef struct {
    model_arch arch;
    char arch_name[MODEL_ARCH_NAME_MAX]; /* "llama" / "qwen2" */
    uint32_t n_vocab;      /* rows of token_embd */
    uint32_t n_ctx_train;  /* <arch>.context_length */
    uint32_t n_embd;
    uint32_t n_layer;
    uint32_t n_head;
    uint32_t n_head_kv;    /* GQA: n_head % n_head_kv == 0 */
    uint32_t n_ff;
    uint32_t head_dim;     /* key_length, default n_embd / n_head */
    uint32_t n_rot;        /* rope.dimension_count; equals head_dim */
    float rms_eps;
    float rope_base;       /* rope.freq_base, default 10000 */
    float rope_scale;      /* linear scaling factor (1 = none) */
    int rope_neox;         /* 1: pairs (i, i + n_rot/2) (qwen2); 0: (2i, 2i+1) (llama) */
    int tied_embeddings;   /* output head reuses token_embd */
    int has_rope_freqs;    /* Llama 3.1 per-frequency factors present */
    uint32_t file_type;    /* general.file_type if present, else 0 */
} model_hparams;

/* A 2-D weight as stored: ne0 = input (row length), ne1 = output rows. Row r
 * starts at data + r * row_bytes. Points into the mapping. */
typedef struct {
    const void *data;
    uint32_t type;         /* ggml_type */
    uint64_t ne0, ne1;
    size_t row_bytes;
    const char *name;      /* tensor name, owned by the gguf handle */
    /* The same matrix in kern.h's packed layout (owned by the model), or
     * NULL. Matmuls use it when the kernel level can (kern_pack_usable). */
    const void *packed;
} model_weight;

/* Per-layer weights. 1-D tensors (norms, biases) are converted to f32 at
 * load time and owned by the model; bias pointers are NULL when absent. */
typedef struct {
    const float *attn_norm;     /* [n_embd] */
    model_weight wq, wk, wv, wo;
    const float *bq, *bk, *bv;  /* [n_head*head_dim], [n_head_kv*head_dim] x2; qwen2 */
    const float *bo;            /* [n_embd]; optional attn_output bias */
    const float *ffn_norm;      /* [n_embd] */
    model_weight w_gate, w_up, w_down;
} model_layer;

typedef struct {
    int vocab_only;   /* 1: hparams + gguf only, no weight checks (tokenizer use) */
    /* 1 (default): copy Q4_0/Q8_0 matrices into the packed layout at load
     * when the CPU has AVX-512 VNNI (faster; the copy is anonymous memory
     * the size of those tensors, while the mapped file pages go unused).
     * 0: compute from the mapping. The environment variable WARD_REPACK=0
     * also turns it off. */
    int repack;
} model_params;

typedef struct model model;

model_params model_default_params(void);

/* Opens and validates path. NULL with err on any problem. */
model *model_load(const char *path, const model_params *params, char *err, size_t errlen);
/* Same from an in-memory GGUF image (tests, fuzzing); buf must outlive the
 * model. */
model *model_load_buffer(const void *buf, size_t len, const model_params *params, char *err,
                         size_t errlen);
void model_free(model *m);

const model_hparams *model_get_hparams(const model *m);
/* The underlying GGUF (for tokenizer_from_gguf and the chat template). */
const gguf_file *model_gguf(const model *m);

/* Weights; NULL/zeroed for a vocab_only model. */
const model_weight *model_tok_embd(const model *m);   /* ne0 = n_embd, ne1 = n_vocab */
const model_weight *model_output(const model *m);     /* token_embd when tied */
const float *model_output_norm(const model *m);       /* [n_embd] */
const model_layer *model_get_layer(const model *m, uint32_t i); /* NULL if i out of range */
/* Llama 3.1 RoPE frequency factors [n_rot/2], or NULL. */
const float *model_rope_freqs(const model *m);

/* Bytes of weight data (for logs and bench). */
uint64_t model_weight_bytes(const model *m);

#endif
