/* ward quantize IN.gguf OUT.gguf TYPE: re-encodes a float model's weights.
 *
 * Follows llama.cpp's rule: only tensors with 2+ dims (weight matrices,
 * token embeddings included) are converted; 1-D tensors (norms, biases,
 * rope factors) keep their type. A K-quant needs rows that are a multiple of
 * 256: other rows fall back to the legacy type of about the same size (as
 * llama.cpp does), or stay as they are if not even a multiple of 32.
 * Input must be float (F32/F16/BF16) weights: re-quantizing quantized weights
 * compounds error, so it is refused. All KVs are copied; general.file_type
 * and general.quantization_version are set. */
#include "cmd/cmd.h"

#include "engine/gguf.h"
#include "engine/quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* llama.cpp's llama_ftype values recorded in general.file_type. */
#define FTYPE_ALL_F32 0
#define FTYPE_F16 1
#define FTYPE_Q4_0 2
#define FTYPE_Q4_1 3
#define FTYPE_Q8_0 7
#define FTYPE_Q5_0 8
#define FTYPE_Q4_K_S 14
#define FTYPE_Q5_K_S 16
#define FTYPE_Q6_K 18
#define FTYPE_BF16 32
/* ggml's current block-format revision, written by llama.cpp's quantizer. */
#define GGML_QUANT_VERSION 2

typedef struct {
    const char *name;
    uint32_t type;
    uint32_t fallback; /* for rows that are not a multiple of the block */
    uint32_t ftype;
} qtarget;

static const qtarget targets[] = {
    {"q8_0", GGML_T_Q8_0, GGML_T_Q8_0, FTYPE_Q8_0}, {"q4_0", GGML_T_Q4_0, GGML_T_Q4_0, FTYPE_Q4_0},
    {"q4_1", GGML_T_Q4_1, GGML_T_Q4_1, FTYPE_Q4_1}, {"q5_0", GGML_T_Q5_0, GGML_T_Q5_0, FTYPE_Q5_0},
    {"q4_k", GGML_T_Q4_K, GGML_T_Q5_0, FTYPE_Q4_K_S}, {"q5_k", GGML_T_Q5_K, GGML_T_Q5_0, FTYPE_Q5_K_S},
    {"q6_k", GGML_T_Q6_K, GGML_T_Q8_0, FTYPE_Q6_K}, {"f16", GGML_T_F16, GGML_T_F16, FTYPE_F16},
    {"bf16", GGML_T_BF16, GGML_T_BF16, FTYPE_BF16},
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ward quantize IN.gguf OUT.gguf TYPE\n"
            "\n"
            "Converts the 2-D weights of a float (F32/F16/BF16) GGUF model to TYPE:\n"
            "  q8_0 q4_0 q4_1 q5_0 q4_k q5_k q6_k f16 bf16\n"
            "1-D tensors (norms) are kept. K-quants need rows that are a multiple of 256;\n"
            "other rows use q5_0 (for q4_k, q5_k) or q8_0 (for q6_k). Metadata is copied\n"
            "and general.file_type is set. OUT is written to a temporary file and renamed.\n"
            "\n"
            "Exit status: 0 ok, 1 failure (bad or already-quantized input), 2 usage.\n");
}

static int is_float_type(uint32_t t)
{
    return t == GGML_T_F32 || t == GGML_T_F16 || t == GGML_T_BF16;
}

/* Type a tensor gets: the target, its fallback, or its own. */
static uint32_t choose_type(const gguf_tensor *t, const qtarget *q)
{
    if (t->n_dims < 2 || !is_float_type(t->type))
        return t->type;
    size_t be;
    if (ggml_type_block(q->type, &be, NULL) == 0 && t->ne[0] % be == 0)
        return q->type;
    if (ggml_type_block(q->fallback, &be, NULL) == 0 && t->ne[0] % be == 0)
        return q->fallback;
    return t->type;
}

typedef struct {
    const gguf_tensor *src;
    uint32_t dst_type;
} fill_ctx;

static int fill_tensor(void *vctx, void *dst, size_t n_bytes, char *err, size_t errlen)
{
    const fill_ctx *c = vctx;
    const gguf_tensor *t = c->src;
    if (c->dst_type == t->type) { /* kept as is: straight from the mapping */
        if (n_bytes != t->n_bytes) {
            snprintf(err, errlen, "tensor '%s': size mismatch", t->name);
            return -1;
        }
        memcpy(dst, t->data, n_bytes);
        return 0;
    }
    size_t ne0 = (size_t)t->ne[0], rows = (size_t)(t->n_elems / t->ne[0]);
    size_t in_row = quant_row_bytes(t->type, ne0), out_row = quant_row_bytes(c->dst_type, ne0);
    if (in_row == 0 || out_row == 0 || rows > SIZE_MAX / out_row || rows * out_row != n_bytes) {
        snprintf(err, errlen, "tensor '%s': bad row geometry", t->name);
        return -1;
    }
    if (ne0 > SIZE_MAX / sizeof(float)) {
        snprintf(err, errlen, "tensor '%s': row too long", t->name);
        return -1;
    }
    float *row = malloc(ne0 * sizeof *row);
    if (!row) {
        snprintf(err, errlen, "out of memory for a row of tensor '%s'", t->name);
        return -1;
    }
    const uint8_t *in = t->data;
    uint8_t *out = dst;
    int rc = 0;
    for (size_t r = 0; r < rows && rc == 0; r++)
        if (quant_dequantize_row(t->type, in + r * in_row, row, ne0) ||
            quant_quantize_row(c->dst_type, row, out + r * out_row, ne0)) {
            snprintf(err, errlen, "tensor '%s': conversion %s -> %s failed", t->name, ggml_type_name(t->type),
                     ggml_type_name(c->dst_type));
            rc = -1;
        }
    free(row);
    return rc;
}

int cmd_quantize(int argc, char **argv)
{
    if (cmd_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    if (argc != 4) {
        fprintf(stderr, "ward quantize: expected IN.gguf OUT.gguf TYPE (see ward quantize --help)\n");
        return 2;
    }
    const char *in_path = argv[1], *out_path = argv[2];
    const qtarget *q = NULL;
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++)
        if (strcasecmp(argv[3], targets[i].name) == 0)
            q = &targets[i];
    if (!q) {
        fprintf(stderr, "ward quantize: unknown type '%.32s' (one of q8_0 q4_0 q4_1 q5_0 q4_k q5_k q6_k f16 bf16)\n",
                argv[3]);
        return 2;
    }

    char err[512];
    gguf_file *f = gguf_open(in_path, err, sizeof err);
    if (!f) {
        fprintf(stderr, "ward quantize: %s\n", err);
        return 1;
    }
    size_t nt = gguf_n_tensors(f);
    for (size_t i = 0; i < nt; i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        if (!is_float_type(t->type)) {
            fprintf(stderr,
                    "ward quantize: input is already quantized (tensor '%s' is %s); "
                    "quantize from the F32/F16/BF16 model instead\n",
                    t->name, ggml_type_name(t->type));
            gguf_close(f);
            return 1;
        }
    }

    int rc = 1;
    gguf_writer *w = gguf_writer_new();
    fill_ctx *ctx = calloc(nt ? nt : 1, sizeof *ctx);
    if (!w || !ctx) {
        fprintf(stderr, "ward quantize: out of memory\n");
        goto out;
    }
    for (size_t i = 0; i < gguf_n_kv(f); i++)
        if (gguf_copy_kv(w, f, (int64_t)i)) {
            fprintf(stderr, "ward quantize: cannot copy key '%s'\n", gguf_key_name(f, (int64_t)i));
            goto out;
        }
    if (gguf_set_u32(w, "general.file_type", q->ftype) ||
        gguf_set_u32(w, "general.quantization_version", GGML_QUANT_VERSION)) {
        fprintf(stderr, "ward quantize: out of memory\n");
        goto out;
    }
    size_t n_conv = 0, n_fallback = 0;
    uint64_t in_bytes = 0, out_bytes = 0;
    for (size_t i = 0; i < nt; i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        uint32_t ty = choose_type(t, q);
        /* every tensor is produced at write time, so memory stays at one tensor */
        ctx[i] = (fill_ctx){t, ty};
        int r = gguf_add_tensor_fn(w, t->name, ty, t->n_dims, t->ne, fill_tensor, &ctx[i]);
        if (ty == t->type) {
            out_bytes += t->n_bytes;
        } else {
            out_bytes += quant_row_bytes(ty, (size_t)t->ne[0]) * (t->n_elems / t->ne[0]);
            n_conv++;
            n_fallback += ty != q->type;
        }
        in_bytes += t->n_bytes;
        if (r) {
            fprintf(stderr, "ward quantize: cannot add tensor '%s' (out of memory?)\n", t->name);
            goto out;
        }
    }
    if (gguf_writer_write(w, out_path, err, sizeof err)) {
        fprintf(stderr, "ward quantize: %s\n", err);
        goto out;
    }
    printf("ward quantize: %s -> %s (%s): %zu of %zu tensors converted (%zu to the fallback type), "
           "tensor data %.2f MiB -> %.2f MiB\n",
           in_path, out_path, q->name, n_conv, nt, n_fallback, (double)in_bytes / 1048576.0,
           (double)out_bytes / 1048576.0);
    rc = 0;
out:
    free(ctx);
    gguf_writer_free(w);
    gguf_close(f);
    return rc;
}
