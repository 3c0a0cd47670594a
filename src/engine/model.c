/* model: GGUF -> validated hyper-parameters and weight views. See model.h. */
#include "engine/model.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine/kern.h"
#include "engine/ops.h"
#include "util/clock.h"
#include "util/log.h"

#define MODEL_KEY_MAX 128   /* "<arch>.attention.layer_norm_rms_epsilon" etc. */
#define MODEL_NAME_MAX 64   /* GGUF tensor names are <= 64 bytes */

struct model {
    model_hparams hp;
    gguf_file *gguf;
    model_weight tok_embd;
    model_weight output;
    float *output_norm;
    float *rope_freqs;
    model_layer *layers;
    float **owned;          /* every f32 vector we allocated */
    size_t n_owned, cap_owned;
    uint64_t weight_bytes;
    size_t n_used_tensors;
    void **packed;          /* packed weight copies (kern.h): output + MODEL_LAYER_MATRICES per layer */
    size_t n_packed;
};

static void seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

model_params model_default_params(void)
{
    model_params p = {0};
    p.repack = 1;
    return p;
}

/* ---- hyper-parameters ---- */

static int key_name(char *buf, const model *m, const char *suffix)
{
    int n = snprintf(buf, MODEL_KEY_MAX, "%s.%s", m->hp.arch_name, suffix);
    return n > 0 && n < MODEL_KEY_MAX ? 0 : -1;
}

/* Reads <arch>.<suffix> as u32 (u32 or u64 in the file). 1 if absent and
 * optional (out untouched), 0 if read, -1 with err. */
static int get_u32(const model *m, const char *suffix, int required, uint32_t *out,
                   char *err, size_t errlen)
{
    char key[MODEL_KEY_MAX];
    if (key_name(key, m, suffix) != 0)
        return -1;
    int64_t i = gguf_find_key(m->gguf, key);
    if (i < 0) {
        if (!required)
            return 1;
        seterr(err, errlen, "model: missing key '%s'", key);
        return -1;
    }
    if (gguf_get_u32(m->gguf, key, out) != 0) {
        seterr(err, errlen, "model: key '%s' is not an unsigned integer that fits 32 bits", key);
        return -1;
    }
    return 0;
}

static int get_f32(const model *m, const char *suffix, int required, float *out,
                   char *err, size_t errlen)
{
    char key[MODEL_KEY_MAX];
    if (key_name(key, m, suffix) != 0)
        return -1;
    if (gguf_find_key(m->gguf, key) < 0) {
        if (!required)
            return 1;
        seterr(err, errlen, "model: missing key '%s'", key);
        return -1;
    }
    float v;
    if (gguf_get_f32(m->gguf, key, &v) != 0 || !isfinite(v)) {
        seterr(err, errlen, "model: key '%s' is not a finite float", key);
        return -1;
    }
    *out = v;
    return 0;
}

/* head_count_kv may be a per-layer array; ward needs one value for all layers. */
static int get_head_count_kv(model *m, char *err, size_t errlen)
{
    char key[MODEL_KEY_MAX];
    if (key_name(key, m, "attention.head_count_kv") != 0)
        return -1;
    int64_t ki = gguf_find_key(m->gguf, key);
    if (ki < 0) {
        m->hp.n_head_kv = m->hp.n_head;
        return 0;
    }
    if (gguf_kv_type(m->gguf, ki) != GGUF_T_ARRAY)
        return get_u32(m, "attention.head_count_kv", 1, &m->hp.n_head_kv, err, errlen) < 0 ? -1 : 0;
    gguf_vtype et;
    uint64_t count;
    if (gguf_get_arr(m->gguf, key, &et, &count) != 0 || count != m->hp.n_layer) {
        seterr(err, errlen, "model: key '%s' must have one entry per layer (%u)", key, m->hp.n_layer);
        return -1;
    }
    for (uint64_t i = 0; i < count; i++) {
        int64_t v;
        if (gguf_arr_i64(m->gguf, key, i, &v) != 0 || v <= 0 || v > MODEL_MAX_HEADS) {
            seterr(err, errlen, "model: key '%s'[%llu] is not a valid head count", key,
                   (unsigned long long)i);
            return -1;
        }
        if (i == 0)
            m->hp.n_head_kv = (uint32_t)v;
        else if ((uint32_t)v != m->hp.n_head_kv) {
            seterr(err, errlen, "model: key '%s': per-layer KV head counts differ (unsupported)", key);
            return -1;
        }
    }
    return 0;
}

#define RANGE(name, v, lo, hi)                                                                   \
    do {                                                                                         \
        if ((v) < (lo) || (v) > (hi)) {                                                          \
            seterr(err, errlen, "model: %s = %llu out of range [%llu, %llu]", name,            \
                   (unsigned long long)(v), (unsigned long long)(lo), (unsigned long long)(hi)); \
            return -1;                                                                           \
        }                                                                                        \
    } while (0)

static int load_hparams(model *m, char *err, size_t errlen)
{
    model_hparams *hp = &m->hp;
    gguf_str arch;
    if (gguf_get_str(m->gguf, "general.architecture", &arch) != 0) {
        seterr(err, errlen, "model: missing string key 'general.architecture'");
        return -1;
    }
    if (arch.len == 5 && memcmp(arch.ptr, "llama", 5) == 0) {
        hp->arch = MODEL_ARCH_LLAMA;
        hp->rope_neox = 0;
    } else if (arch.len == 5 && memcmp(arch.ptr, "qwen2", 5) == 0) {
        hp->arch = MODEL_ARCH_QWEN2;
        hp->rope_neox = 1;
    } else {
        char shown[MODEL_ARCH_NAME_MAX];
        size_t n = arch.len < sizeof shown - 1 ? (size_t)arch.len : sizeof shown - 1;
        for (size_t i = 0; i < n; i++)
            shown[i] = (arch.ptr[i] >= 0x20 && arch.ptr[i] < 0x7f) ? arch.ptr[i] : '?';
        shown[n] = 0;
        seterr(err, errlen, "model: unsupported architecture '%s' (supported: llama, qwen2)", shown);
        return -1;
    }
    memcpy(hp->arch_name, arch.ptr, (size_t)arch.len);
    hp->arch_name[arch.len] = 0;

    if (get_u32(m, "context_length", 1, &hp->n_ctx_train, err, errlen) < 0 ||
        get_u32(m, "embedding_length", 1, &hp->n_embd, err, errlen) < 0 ||
        get_u32(m, "block_count", 1, &hp->n_layer, err, errlen) < 0 ||
        get_u32(m, "feed_forward_length", 1, &hp->n_ff, err, errlen) < 0 ||
        get_u32(m, "attention.head_count", 1, &hp->n_head, err, errlen) < 0 ||
        get_f32(m, "attention.layer_norm_rms_epsilon", 1, &hp->rms_eps, err, errlen) < 0)
        return -1;
    RANGE("context_length", hp->n_ctx_train, 1, MODEL_MAX_CTX_TRAIN);
    RANGE("embedding_length", hp->n_embd, 1, MODEL_MAX_EMBD);
    RANGE("block_count", hp->n_layer, 1, MODEL_MAX_LAYERS);
    RANGE("feed_forward_length", hp->n_ff, 1, MODEL_MAX_FF);
    RANGE("attention.head_count", hp->n_head, 1, MODEL_MAX_HEADS);
    if (!(hp->rms_eps > 0 && hp->rms_eps < 1)) {
        seterr(err, errlen, "model: attention.layer_norm_rms_epsilon must be in (0, 1)");
        return -1;
    }
    if (get_head_count_kv(m, err, errlen) != 0)
        return -1;
    RANGE("attention.head_count_kv", hp->n_head_kv, 1, hp->n_head);
    if (hp->n_head % hp->n_head_kv != 0) {
        seterr(err, errlen, "model: head_count %u is not a multiple of head_count_kv %u",
               hp->n_head, hp->n_head_kv);
        return -1;
    }

    hp->head_dim = hp->n_embd / hp->n_head;
    if (hp->n_embd % hp->n_head != 0)
        hp->head_dim = 0; /* must come from key_length */
    if (get_u32(m, "attention.key_length", 0, &hp->head_dim, err, errlen) < 0)
        return -1;
    uint32_t vlen = hp->head_dim;
    if (get_u32(m, "attention.value_length", 0, &vlen, err, errlen) < 0)
        return -1;
    RANGE("head dimension", hp->head_dim, 2, MODEL_MAX_HEAD_DIM);
    if (vlen != hp->head_dim || hp->head_dim % 2 != 0) {
        seterr(err, errlen, "model: key/value head dimensions %u/%u unsupported (must be equal and even)",
               hp->head_dim, vlen);
        return -1;
    }
    hp->n_rot = hp->head_dim;
    if (get_u32(m, "rope.dimension_count", 0, &hp->n_rot, err, errlen) < 0)
        return -1;
    if (hp->n_rot != hp->head_dim) {
        seterr(err, errlen, "model: rope.dimension_count %u differs from the head dimension %u (unsupported)",
               hp->n_rot, hp->head_dim);
        return -1;
    }
    hp->rope_base = 10000.0f;
    if (get_f32(m, "rope.freq_base", 0, &hp->rope_base, err, errlen) < 0)
        return -1;
    if (!(hp->rope_base > 1.0f)) {
        seterr(err, errlen, "model: rope.freq_base must be > 1");
        return -1;
    }
    hp->rope_scale = 1.0f;
    char key[MODEL_KEY_MAX];
    gguf_str st;
    if (key_name(key, m, "rope.scaling.type") == 0 && gguf_get_str(m->gguf, key, &st) == 0) {
        if (st.len == 6 && memcmp(st.ptr, "linear", 6) == 0) {
            float factor = 1.0f;
            if (get_f32(m, "rope.scaling.factor", 1, &factor, err, errlen) < 0)
                return -1;
            if (!(factor >= 1.0f && factor <= 1024.0f)) {
                seterr(err, errlen, "model: rope.scaling.factor must be in [1, 1024]");
                return -1;
            }
            hp->rope_scale = 1.0f / factor;
        } else if (!(st.len == 4 && memcmp(st.ptr, "none", 4) == 0)) {
            seterr(err, errlen, "model: unsupported rope.scaling.type (supported: none, linear)");
            return -1;
        }
    }
    uint32_t ft = 0;
    if (gguf_get_u32(m->gguf, "general.file_type", &ft) == 0)
        hp->file_type = ft;
    return 0;
}

/* ---- tensors ---- */

static const gguf_tensor *find(model *m, const char *name)
{
    const gguf_tensor *t = gguf_find_tensor(m->gguf, name);
    if (t)
        m->n_used_tensors++;
    return t;
}

/* A 2-D weight of shape {ne0, ne1}. Absent + optional -> 1 (w zeroed). */
static int get_weight(model *m, const char *name, uint64_t ne0, uint64_t ne1, int required,
                      model_weight *w, char *err, size_t errlen)
{
    memset(w, 0, sizeof *w);
    const gguf_tensor *t = find(m, name);
    if (!t) {
        if (!required)
            return 1;
        seterr(err, errlen, "model: missing tensor '%s'", name);
        return -1;
    }
    if (t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != 1 || t->ne[3] != 1) {
        seterr(err, errlen,
               "model: tensor '%s' has shape [%llu, %llu, %llu, %llu], expected [%llu, %llu]", name,
               (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
               (unsigned long long)t->ne[2], (unsigned long long)t->ne[3],
               (unsigned long long)ne0, (unsigned long long)ne1);
        return -1;
    }
    size_t be, bb;
    if (!ops_type_supported(t->type) || ggml_type_block(t->type, &be, &bb) != 0) {
        seterr(err, errlen, "model: tensor '%s' has unsupported type %s (%u)", name,
               ggml_type_name(t->type), t->type);
        return -1;
    }
    if (ne0 % be != 0) {
        seterr(err, errlen, "model: tensor '%s' row length %llu is not a multiple of the %s block (%zu)",
               name, (unsigned long long)ne0, ggml_type_name(t->type), be);
        return -1;
    }
    /* ne0/be * bb * ne1 <= n_bytes: gguf validated n_bytes, recheck the product */
    uint64_t row = ne0 / be * bb;
    if (ne1 != 0 && row > t->n_bytes / ne1) {
        seterr(err, errlen, "model: tensor '%s' data is smaller than its shape", name);
        return -1;
    }
    if (t->type == GGML_T_F32 && ((uintptr_t)t->data % sizeof(float)) != 0) {
        seterr(err, errlen, "model: tensor '%s' F32 data is not 4-byte aligned", name);
        return -1;
    }
    w->data = t->data;
    w->type = t->type;
    w->ne0 = ne0;
    w->ne1 = ne1;
    w->row_bytes = (size_t)row;
    w->name = t->name;
    m->weight_bytes += t->n_bytes;
    return 0;
}

static int own(model *m, float *v)
{
    if (m->n_owned == m->cap_owned) {
        size_t cap = m->cap_owned ? m->cap_owned * 2 : 64;
        float **o = realloc(m->owned, cap * sizeof *o);
        if (!o)
            return -1;
        m->owned = o;
        m->cap_owned = cap;
    }
    m->owned[m->n_owned++] = v;
    return 0;
}

/* A 1-D vector of n values converted to an owned f32 array. */
static int get_vec(model *m, const char *name, uint64_t n, int required, float **out,
                   char *err, size_t errlen)
{
    *out = NULL;
    const gguf_tensor *t = find(m, name);
    if (!t) {
        if (!required)
            return 1;
        seterr(err, errlen, "model: missing tensor '%s'", name);
        return -1;
    }
    if (t->ne[0] != n || t->ne[1] != 1 || t->ne[2] != 1 || t->ne[3] != 1) {
        seterr(err, errlen, "model: tensor '%s' has shape [%llu, %llu, %llu, %llu], expected [%llu]",
               name, (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
               (unsigned long long)t->ne[2], (unsigned long long)t->ne[3], (unsigned long long)n);
        return -1;
    }
    if (t->type != GGML_T_F32 && t->type != GGML_T_F16 && t->type != GGML_T_BF16) {
        seterr(err, errlen, "model: tensor '%s' has type %s; 1-D tensors must be F32, F16 or BF16",
               name, ggml_type_name(t->type));
        return -1;
    }
    float *v = malloc((size_t)n * sizeof *v);
    if (!v || own(m, v) != 0) {
        free(v);
        seterr(err, errlen, "model: out of memory");
        return -1;
    }
    if (t->type == GGML_T_F32)
        memcpy(v, t->data, (size_t)n * sizeof *v); /* data may be unaligned in a buffer */
    else
        ops_dequant_row(t->type, t->data, v, (size_t)n);
    for (uint64_t i = 0; i < n; i++)
        if (!isfinite(v[i])) {
            seterr(err, errlen, "model: tensor '%s' contains a non-finite value at index %llu", name,
                   (unsigned long long)i);
            return -1;
        }
    *out = v;
    m->weight_bytes += t->n_bytes;
    return 0;
}

static int load_tensors(model *m, char *err, size_t errlen)
{
    model_hparams *hp = &m->hp;
    const uint64_t E = hp->n_embd, F = hp->n_ff;
    const uint64_t QD = (uint64_t)hp->n_head * hp->head_dim, KD = (uint64_t)hp->n_head_kv * hp->head_dim;

    const gguf_tensor *te = gguf_find_tensor(m->gguf, "token_embd.weight");
    if (!te) {
        seterr(err, errlen, "model: missing tensor 'token_embd.weight'");
        return -1;
    }
    if (te->ne[1] < 1 || te->ne[1] > MODEL_MAX_VOCAB) {
        seterr(err, errlen, "model: tensor 'token_embd.weight' vocabulary size %llu out of range [1, %u]",
               (unsigned long long)te->ne[1], MODEL_MAX_VOCAB);
        return -1;
    }
    hp->n_vocab = (uint32_t)te->ne[1];
    gguf_vtype et;
    uint64_t n_tok_text;
    if (gguf_get_arr(m->gguf, "tokenizer.ggml.tokens", &et, &n_tok_text) == 0 &&
        n_tok_text != hp->n_vocab) {
        seterr(err, errlen, "model: tokenizer has %llu tokens but token_embd.weight has %u rows",
               (unsigned long long)n_tok_text, hp->n_vocab);
        return -1;
    }
    const uint64_t V = hp->n_vocab;
    if (get_weight(m, "token_embd.weight", E, V, 1, &m->tok_embd, err, errlen) < 0)
        return -1;
    int r = get_weight(m, "output.weight", E, V, 0, &m->output, err, errlen);
    if (r < 0)
        return -1;
    if (r == 1) {
        m->output = m->tok_embd;
        hp->tied_embeddings = 1;
    }
    if (get_vec(m, "output_norm.weight", E, 1, &m->output_norm, err, errlen) < 0)
        return -1;
    r = get_vec(m, "rope_freqs.weight", hp->n_rot / 2, 0, &m->rope_freqs, err, errlen);
    if (r < 0)
        return -1;
    if (r == 0) {
        hp->has_rope_freqs = 1;
        for (uint32_t i = 0; i < hp->n_rot / 2; i++)
            if (!(m->rope_freqs[i] > 0)) {
                seterr(err, errlen, "model: tensor 'rope_freqs.weight' has a non-positive factor at %u", i);
                return -1;
            }
    }

    m->layers = calloc(hp->n_layer, sizeof *m->layers);
    if (!m->layers) {
        seterr(err, errlen, "model: out of memory");
        return -1;
    }
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        model_layer *L = &m->layers[l];
        char n[MODEL_NAME_MAX];
        float *v;
#define W(field, suffix, a, b)                                                      \
        snprintf(n, sizeof n, "blk.%u." suffix, l);                                  \
        if (get_weight(m, n, a, b, 1, &L->field, err, errlen) < 0)                   \
            return -1;
#define VEC(field, suffix, len, req)                                                 \
        snprintf(n, sizeof n, "blk.%u." suffix, l);                                  \
        if (get_vec(m, n, len, req, &v, err, errlen) < 0)                            \
            return -1;                                                               \
        L->field = v;
        VEC(attn_norm, "attn_norm.weight", E, 1)
        W(wq, "attn_q.weight", E, QD)
        W(wk, "attn_k.weight", E, KD)
        W(wv, "attn_v.weight", E, KD)
        W(wo, "attn_output.weight", QD, E)
        VEC(bq, "attn_q.bias", QD, 0)
        VEC(bk, "attn_k.bias", KD, 0)
        VEC(bv, "attn_v.bias", KD, 0)
        VEC(bo, "attn_output.bias", E, 0)
        VEC(ffn_norm, "ffn_norm.weight", E, 1)
        W(w_gate, "ffn_gate.weight", E, F)
        W(w_up, "ffn_up.weight", E, F)
        W(w_down, "ffn_down.weight", F, E)
#undef W
#undef VEC
    }
    size_t n_t = gguf_n_tensors(m->gguf);
    if (m->n_used_tensors != n_t) {
        /* Unknown tensors are a sign of an architecture variant we do not
         * model; say so, but they cannot affect what we compute. */
        log_pack(LOG_WARN, "ward.engine", "model has tensors ward does not use", "{s:I,s:I}",
                 "tensors", (json_int_t)n_t, "used", (json_int_t)m->n_used_tensors);
    }
    return 0;
}

/* Maps the token-embedding table's pages now: each token reads one row of
 * it, at random, from the file mapping, and the first read of a page was a
 * page fault inside a decode step (tens of microseconds in a VM: 1% of a
 * TinyLlama Q4_0 step in ward bench). Best effort: a kernel without
 * MADV_POPULATE_READ (Linux < 5.14) faults the rows in as before. */
static void prefault_embd(const model *m)
{
#ifdef MADV_POPULATE_READ
    const model_weight *w = &m->tok_embd;
    const long pg = sysconf(_SC_PAGESIZE);
    if (!w->data || pg <= 0 || !w->row_bytes || w->ne1 > SIZE_MAX / w->row_bytes)
        return;
    const uintptr_t a = (uintptr_t)w->data, b = a + (size_t)w->ne1 * w->row_bytes;
    const uintptr_t lo = a / (uintptr_t)pg * (uintptr_t)pg, hi = (b + (uintptr_t)pg - 1) / (uintptr_t)pg * (uintptr_t)pg;
    (void)madvise((void *)lo, hi - lo, MADV_POPULATE_READ);
#else
    (void)m;
#endif
}

/* Packed copies (kern.h "Packed weights") of the matrices that qualify.
 * A copy that cannot be allocated is skipped: the mapping still works. */
#define MODEL_LAYER_MATRICES 7 /* q, k, v, o, gate, up, down */
#define MODEL_HUGE_ALIGN ((size_t)2 << 20) /* lets the kernel back big copies with 2 MiB pages (fewer TLB misses) */

#define MODEL_PACK_THREADS_MAX 16            /* first-touch zeroing and copying scale to a few threads */
#define MODEL_PACK_CHUNK ((size_t)4 << 20)   /* bytes of one packing job: fine enough to balance */

/* One packing job: groups [g0, g1) of a matrix. */
typedef struct {
    model_weight *w;
    void *dst;
    size_t g0, g1;
} pack_job;

typedef struct {
    pack_job *jobs;
    size_t n_jobs;
    _Atomic size_t next;
} pack_work;

static void *pack_thread(void *arg)
{
    pack_work *pw = arg;
    for (size_t i; (i = atomic_fetch_add(&pw->next, 1)) < pw->n_jobs;) {
        const pack_job *j = &pw->jobs[i];
        const size_t gb = kern_pack_group_bytes(j->w->type, (size_t)j->w->ne0, j->w->row_bytes);
        kern_pack(j->w->type, (const char *)j->w->data + j->g0 * KERN_PACK_ROWS * j->w->row_bytes, j->w->row_bytes,
                  (size_t)j->w->ne0, (j->g1 - j->g0) * KERN_PACK_ROWS, (char *)j->dst + j->g0 * gb);
    }
    return NULL;
}

/* Allocates w's packed copy and appends its jobs; 0, or -1 (skip w). */
static int pack_plan(model *m, model_weight *w, pack_job **jobs, size_t *n_jobs, size_t *cap)
{
    if (!kern_pack_supported(w->type, w->ne0, w->ne1) || w->ne1 > SIZE_MAX / w->row_bytes)
        return -1;
    const size_t group = kern_pack_group_bytes(w->type, (size_t)w->ne0, w->row_bytes);
    if (w->ne1 / KERN_PACK_ROWS > SIZE_MAX / group)
        return -1;
    const size_t bytes = (size_t)(w->ne1 / KERN_PACK_ROWS) * group;
    const size_t align = bytes >= MODEL_HUGE_ALIGN ? MODEL_HUGE_ALIGN : 64;
    /* jobs of whole panels (kern.h: a kern_pack call starts at one) */
    const size_t panel = (size_t)kern_pack_panel_rows(w->type, (size_t)w->ne0) / KERN_PACK_ROWS;
    const size_t per_job = (MODEL_PACK_CHUNK / group / panel ? MODEL_PACK_CHUNK / group / panel : 1) * panel,
                 n_groups = w->ne1 / KERN_PACK_ROWS;
    const size_t need = (n_groups + per_job - 1) / per_job;
    if (*n_jobs + need > *cap) {
        size_t nc = (*cap ? *cap * 2 : 256) + need;
        pack_job *nj = realloc(*jobs, nc * sizeof *nj);
        if (!nj)
            return -1;
        *jobs = nj;
        *cap = nc;
    }
    void *dst = NULL;
    if (posix_memalign(&dst, align, (bytes + align - 1) / align * align) != 0)
        return -1;
#ifdef MADV_HUGEPAGE
    if (align == MODEL_HUGE_ALIGN)
        madvise(dst, (bytes + align - 1) / align * align, MADV_HUGEPAGE);
#endif
    for (size_t g = 0; g < n_groups; g += per_job)
        (*jobs)[(*n_jobs)++] = (pack_job){w, dst, g, g + per_job < n_groups ? g + per_job : n_groups};
    w->packed = dst;
    m->packed[m->n_packed++] = dst;
    return 0;
}

static void pack_weights(model *m)
{
    m->packed = calloc(1 + (size_t)MODEL_LAYER_MATRICES * m->hp.n_layer, sizeof *m->packed);
    if (!m->packed)
        return;
    const uint64_t t0 = clock_mono_ns();
    size_t bytes = 0, n_jobs = 0, cap = 0;
    pack_job *jobs = NULL;
    for (uint32_t l = 0; l <= m->hp.n_layer; l++) {
        model_weight *ws[MODEL_LAYER_MATRICES] = {&m->output};
        size_t n = 1;
        if (l < m->hp.n_layer) {
            model_layer *L = &m->layers[l];
            model_weight *lw[MODEL_LAYER_MATRICES] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
            memcpy(ws, lw, sizeof lw);
            n = MODEL_LAYER_MATRICES;
        }
        for (size_t i = 0; i < n; i++)
            if (pack_plan(m, ws[i], &jobs, &n_jobs, &cap) == 0)
                bytes += (size_t)(ws[i]->ne1 / KERN_PACK_ROWS) *
                         kern_pack_group_bytes(ws[i]->type, (size_t)ws[i]->ne0, ws[i]->row_bytes);
    }
    /* The copies' first touch (the kernel zeroes each new page: most of the
     * cost in a VM) and the shuffling both spread over the CPUs. */
    pack_work pw = {.jobs = jobs, .n_jobs = n_jobs};
    atomic_init(&pw.next, 0);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    size_t nth = ncpu < 1 ? 1 : ncpu > MODEL_PACK_THREADS_MAX ? MODEL_PACK_THREADS_MAX : (size_t)ncpu;
    if (nth > n_jobs)
        nth = n_jobs ? n_jobs : 1;
    pthread_t th[MODEL_PACK_THREADS_MAX];
    size_t started = 0;
    for (size_t i = 1; i < nth; i++)
        if (pthread_create(&th[started], NULL, pack_thread, &pw) == 0)
            started++;
    pack_thread(&pw);
    for (size_t i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    free(jobs);
    if (m->n_packed)
        log_pack(LOG_INFO, "ward.engine", "weights packed for the AVX-512 kernels", "{s:I,s:I,s:I,s:I}", "matrices",
                 (json_int_t)m->n_packed, "mib", (json_int_t)(bytes >> 20), "threads", (json_int_t)nth, "ms",
                 (json_int_t)((clock_mono_ns() - t0) / 1000000));
}

static model *load_from(gguf_file *g, const model_params *params, char *err, size_t errlen)
{
    model_params defaults = model_default_params();
    if (!params)
        params = &defaults;
    if (!g)
        return NULL;
    model *m = calloc(1, sizeof *m);
    if (!m) {
        gguf_close(g);
        seterr(err, errlen, "model: out of memory");
        return NULL;
    }
    m->gguf = g;
    if (load_hparams(m, err, errlen) != 0)
        goto fail;
    if (params->vocab_only) {
        gguf_vtype et;
        uint64_t n;
        if (gguf_get_arr(m->gguf, "tokenizer.ggml.tokens", &et, &n) == 0 && n <= MODEL_MAX_VOCAB)
            m->hp.n_vocab = (uint32_t)n;
        return m;
    }
    if (load_tensors(m, err, errlen) != 0)
        goto fail;
    const char *env = getenv("WARD_REPACK");
    if (params->repack && !(env && strcmp(env, "0") == 0))
        pack_weights(m);
    prefault_embd(m);
    return m;
fail:
    model_free(m);
    return NULL;
}

model *model_load(const char *path, const model_params *params, char *err, size_t errlen)
{
    return load_from(gguf_open(path, err, errlen), params, err, errlen);
}

model *model_load_buffer(const void *buf, size_t len, const model_params *params, char *err,
                         size_t errlen)
{
    return load_from(gguf_open_buffer(buf, len, err, errlen), params, err, errlen);
}

void model_free(model *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_owned; i++)
        free(m->owned[i]);
    for (size_t i = 0; i < m->n_packed; i++)
        free(m->packed[i]);
    free(m->packed);
    free(m->owned);
    free(m->layers);
    gguf_close(m->gguf);
    free(m);
}

const model_hparams *model_get_hparams(const model *m) { return &m->hp; }
const gguf_file *model_gguf(const model *m) { return m->gguf; }
const model_weight *model_tok_embd(const model *m) { return &m->tok_embd; }
const model_weight *model_output(const model *m) { return &m->output; }
const float *model_output_norm(const model *m) { return m->output_norm; }
const float *model_rope_freqs(const model *m) { return m->rope_freqs; }
uint64_t model_weight_bytes(const model *m) { return m->weight_bytes; }

const model_layer *model_get_layer(const model *m, uint32_t i)
{
    if (!m->layers || i >= m->hp.n_layer)
        return NULL;
    return &m->layers[i];
}
