/* engine: batched forward pass with per-sequence KV slots. See engine.h. */
#include "engine/engine.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/ops.h"

#define ENGINE_DEFAULT_CTX 4096     /* default slot size when the model allows it */
#define ENGINE_DEFAULT_BATCH 512    /* prompt rows per step: amortizes weight reads */
#define ENGINE_DEFAULT_THREADS_MAX 8 /* decode is bandwidth-bound: more rarely helps */

struct engine {
    const model *m;
    const model_hparams *hp;
    int n_seq_max, n_ctx, n_batch, n_threads;
    size_t E, F, QD, KD;           /* n_embd, n_ff, n_head*head_dim, n_head_kv*head_dim */
    float *k_cache, *v_cache;      /* [seq][layer][pos][KD] */
    int *seq_len;                  /* [n_seq_max] */
    int *next_len;                 /* [n_seq_max] scratch for validation */
    ops_pool *pool;
    /* per-step activations, n_batch rows each */
    float *x, *xn, *q, *k, *v, *att, *tmp, *g, *u, *cs;
    int32_t *rows_out;             /* [n_batch] rows that want logits */
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

/* a * b into *out; 0, or -1 on size_t overflow. */
static int mul_sz(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return -1;
    *out = a * b;
    return 0;
}

static float *alloc_f(size_t rows, size_t cols, int *fail)
{
    size_t n;
    if (*fail || mul_sz(rows, cols, &n) != 0 || mul_sz(n, sizeof(float), &n) != 0) {
        *fail = 1;
        return NULL;
    }
    float *p = malloc(n ? n : 1);
    if (!p)
        *fail = 1;
    return p;
}

engine_params engine_default_params(void)
{
    engine_params p = {.n_seq_max = 1, .n_ctx = 0, .n_batch = ENGINE_DEFAULT_BATCH, .n_threads = 0};
    return p;
}

engine *engine_new(const model *m, const engine_params *params, char *err, size_t errlen)
{
    engine_params p = params ? *params : engine_default_params();
    const model_hparams *hp = model_get_hparams(m);
    if (!model_get_layer(m, 0)) {
        seterr(err, errlen, "engine: model was loaded without weights (vocab only)");
        return NULL;
    }
    if (p.n_seq_max < 1 || p.n_seq_max > ENGINE_MAX_SEQ) {
        seterr(err, errlen, "engine: n_seq_max %d out of range [1, %d]", p.n_seq_max, ENGINE_MAX_SEQ);
        return NULL;
    }
    if (p.n_ctx == 0)
        p.n_ctx = hp->n_ctx_train < ENGINE_DEFAULT_CTX ? (int)hp->n_ctx_train : ENGINE_DEFAULT_CTX;
    if (p.n_ctx < 1 || p.n_ctx > ENGINE_MAX_CTX) {
        seterr(err, errlen, "engine: n_ctx %d out of range [1, %d]", p.n_ctx, ENGINE_MAX_CTX);
        return NULL;
    }
    if (p.n_batch < 1 || p.n_batch > ENGINE_MAX_BATCH) {
        seterr(err, errlen, "engine: n_batch %d out of range [1, %d]", p.n_batch, ENGINE_MAX_BATCH);
        return NULL;
    }
    if (p.n_threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        p.n_threads = n < 1 ? 1 : n > ENGINE_DEFAULT_THREADS_MAX ? ENGINE_DEFAULT_THREADS_MAX : (int)n;
    }
    if (p.n_threads < 1 || p.n_threads > ENGINE_MAX_THREADS) {
        seterr(err, errlen, "engine: n_threads %d out of range [1, %d]", p.n_threads, ENGINE_MAX_THREADS);
        return NULL;
    }

    engine *e = calloc(1, sizeof *e);
    if (!e) {
        seterr(err, errlen, "engine: out of memory");
        return NULL;
    }
    e->m = m;
    e->hp = hp;
    e->n_seq_max = p.n_seq_max;
    e->n_ctx = p.n_ctx;
    e->n_batch = p.n_batch;
    e->n_threads = p.n_threads;
    e->E = hp->n_embd;
    e->F = hp->n_ff;
    e->QD = (size_t)hp->n_head * hp->head_dim;
    e->KD = (size_t)hp->n_head_kv * hp->head_dim;

    /* KV cache: n_seq * n_layer * n_ctx * KD floats, twice. calloc: the OS
     * commits zero pages lazily, so only used positions cost memory. */
    size_t cells, bytes;
    int fail = 0;
    if (mul_sz((size_t)p.n_seq_max, hp->n_layer, &cells) || mul_sz(cells, (size_t)p.n_ctx, &cells) ||
        mul_sz(cells, e->KD, &cells) || mul_sz(cells, sizeof(float), &bytes)) {
        seterr(err, errlen, "engine: KV cache size overflows (n_seq_max %d, n_ctx %d)", p.n_seq_max, p.n_ctx);
        free(e);
        return NULL;
    }
    e->k_cache = calloc(cells, sizeof(float));
    e->v_cache = calloc(cells, sizeof(float));
    e->seq_len = calloc((size_t)p.n_seq_max, sizeof *e->seq_len);
    e->next_len = calloc((size_t)p.n_seq_max, sizeof *e->next_len);
    e->rows_out = calloc((size_t)p.n_batch, sizeof *e->rows_out);
    if (!e->k_cache || !e->v_cache || !e->seq_len || !e->next_len || !e->rows_out) {
        seterr(err, errlen, "engine: out of memory for a KV cache of %zu MiB", 2 * bytes >> 20);
        engine_free(e);
        return NULL;
    }
    size_t B = (size_t)p.n_batch;
    size_t wide = e->E > e->QD ? e->E : e->QD;
    e->x = alloc_f(B, e->E, &fail);
    e->xn = alloc_f(B, e->E, &fail);
    e->q = alloc_f(B, e->QD, &fail);
    e->k = alloc_f(B, e->KD, &fail);
    e->v = alloc_f(B, e->KD, &fail);
    e->att = alloc_f(B, e->QD, &fail);
    e->tmp = alloc_f(B, wide, &fail);
    e->g = alloc_f(B, e->F, &fail);
    e->u = alloc_f(B, e->F, &fail);
    e->cs = alloc_f(B, hp->n_rot, &fail);
    if (fail) {
        seterr(err, errlen, "engine: out of memory for activations (n_batch %d)", p.n_batch);
        engine_free(e);
        return NULL;
    }
    /* Per-thread scratch: OPS_MATMUL_ROWS dequantized rows of the widest
     * input (n_embd, n_ff or n_head*head_dim), or one row of attention scores. */
    size_t in_max = e->E;
    if (e->F > in_max)
        in_max = e->F;
    if (e->QD > in_max)
        in_max = e->QD;
    size_t scratch = in_max * OPS_MATMUL_ROWS;
    if ((size_t)p.n_ctx > scratch)
        scratch = (size_t)p.n_ctx;
    e->pool = ops_pool_new(p.n_threads, scratch, err, errlen);
    if (!e->pool) {
        engine_free(e);
        return NULL;
    }
    return e;
}

void engine_free(engine *e)
{
    if (!e)
        return;
    ops_pool_free(e->pool);
    free(e->k_cache);
    free(e->v_cache);
    free(e->seq_len);
    free(e->next_len);
    free(e->rows_out);
    free(e->x);
    free(e->xn);
    free(e->q);
    free(e->k);
    free(e->v);
    free(e->att);
    free(e->tmp);
    free(e->g);
    free(e->u);
    free(e->cs);
    free(e);
}

void engine_seq_reset(engine *e, int seq)
{
    if (seq >= 0 && seq < e->n_seq_max)
        e->seq_len[seq] = 0;
}

int engine_seq_truncate(engine *e, int seq, int n_keep)
{
    if (seq < 0 || seq >= e->n_seq_max || n_keep < 0 || n_keep > e->seq_len[seq])
        return -1;
    e->seq_len[seq] = n_keep;
    return 0;
}

int engine_seq_len(const engine *e, int seq)
{
    return seq >= 0 && seq < e->n_seq_max ? e->seq_len[seq] : -1;
}

int engine_n_ctx(const engine *e) { return e->n_ctx; }
int engine_n_seq_max(const engine *e) { return e->n_seq_max; }
int engine_n_threads(const engine *e) { return e->n_threads; }
int32_t engine_n_vocab(const engine *e) { return (int32_t)e->hp->n_vocab; }
const model *engine_model(const engine *e) { return e->m; }

/* Offset of cache cell (seq, layer, pos) in floats. */
static size_t kv_off(const engine *e, int seq, uint32_t layer, int pos)
{
    return (((size_t)seq * e->hp->n_layer + layer) * (size_t)e->n_ctx + (size_t)pos) * e->KD;
}

/* ---- attention ---- */

typedef struct {
    engine *e;
    uint32_t layer;
    int n_rows;
    const int32_t *pos, *seq; /* of this step's rows */
} attn_task;

static void attn_worker(void *arg, int ith, int nth)
{
    const attn_task *t = arg;
    engine *e = t->e;
    const model_hparams *hp = e->hp;
    const size_t hd = hp->head_dim;
    const uint32_t group = hp->n_head / hp->n_head_kv;
    const float scale = 1.0f / sqrtf((float)hd);
    const size_t n_items = (size_t)t->n_rows * hp->n_head;
    const size_t i0 = n_items * (size_t)ith / (size_t)nth, i1 = n_items * (size_t)(ith + 1) / (size_t)nth;
    float *scores = ops_pool_scratch(e->pool, ith);

    for (size_t it = i0; it < i1; it++) {
        size_t r = it / hp->n_head;
        uint32_t h = (uint32_t)(it % hp->n_head), kvh = h / group;
        int p = t->pos[r];
        const float *q = e->q + r * e->QD + h * hd;
        const float *kb = e->k_cache + kv_off(e, t->seq[r], t->layer, 0) + kvh * hd;
        const float *vb = e->v_cache + kv_off(e, t->seq[r], t->layer, 0) + kvh * hd;
        for (int j = 0; j <= p; j++)
            scores[j] = ops_dot_f32(q, kb + (size_t)j * e->KD, hd) * scale;
        ops_softmax(scores, (size_t)p + 1);
        float *out = e->att + r * e->QD + h * hd;
        memset(out, 0, hd * sizeof *out);
        for (int j = 0; j <= p; j++) {
            const float *vj = vb + (size_t)j * e->KD;
            const float w = scores[j];
            for (size_t d = 0; d < hd; d++)
                out[d] += w * vj[d];
        }
    }
}

/* ---- one step of at most n_batch rows ---- */

static void add_rows(float *x, const float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] += y[i];
}

static void step(engine *e, int n, const int32_t *token, const int32_t *pos, const int32_t *seq,
                 int n_out, float *logits_out)
{
    const model_hparams *hp = e->hp;
    const model *m = e->m;
    const size_t E = e->E;
    const model_weight *emb = model_tok_embd(m);

    for (int r = 0; r < n; r++) {
        const char *row = (const char *)emb->data + (size_t)token[r] * emb->row_bytes;
        ops_dequant_row(emb->type, row, e->x + (size_t)r * E, E);
        ops_rope_cache(e->cs + (size_t)r * hp->n_rot, (int)hp->n_rot, pos[r], hp->rope_base,
                       hp->rope_scale, model_rope_freqs(m));
    }

    for (uint32_t l = 0; l < hp->n_layer; l++) {
        const model_layer *L = model_get_layer(m, l);
        for (int r = 0; r < n; r++)
            ops_rmsnorm(e->xn + (size_t)r * E, e->x + (size_t)r * E, L->attn_norm, E, hp->rms_eps);
        ops_matmul(e->pool, &L->wq, L->bq, e->xn, n, e->q);
        ops_matmul(e->pool, &L->wk, L->bk, e->xn, n, e->k);
        ops_matmul(e->pool, &L->wv, L->bv, e->xn, n, e->v);
        for (int r = 0; r < n; r++) {
            const float *cs = e->cs + (size_t)r * hp->n_rot;
            ops_rope(e->q + (size_t)r * e->QD, (int)hp->n_head, (int)hp->head_dim, (int)hp->n_rot, cs,
                     hp->rope_neox);
            ops_rope(e->k + (size_t)r * e->KD, (int)hp->n_head_kv, (int)hp->head_dim, (int)hp->n_rot, cs,
                     hp->rope_neox);
            size_t off = kv_off(e, seq[r], l, pos[r]);
            memcpy(e->k_cache + off, e->k + (size_t)r * e->KD, e->KD * sizeof(float));
            memcpy(e->v_cache + off, e->v + (size_t)r * e->KD, e->KD * sizeof(float));
        }
        attn_task at = {e, l, n, pos, seq};
        ops_pool_run(e->pool, attn_worker, &at);
        ops_matmul(e->pool, &L->wo, L->bo, e->att, n, e->tmp);
        add_rows(e->x, e->tmp, (size_t)n * E);

        for (int r = 0; r < n; r++)
            ops_rmsnorm(e->xn + (size_t)r * E, e->x + (size_t)r * E, L->ffn_norm, E, hp->rms_eps);
        ops_matmul(e->pool, &L->w_gate, NULL, e->xn, n, e->g);
        ops_matmul(e->pool, &L->w_up, NULL, e->xn, n, e->u);
        ops_silu_mul(e->g, e->u, (size_t)n * e->F);
        ops_matmul(e->pool, &L->w_down, NULL, e->g, n, e->tmp);
        add_rows(e->x, e->tmp, (size_t)n * E);
    }

    if (n_out == 0)
        return;
    /* Output head only for the rows that want logits, gathered compactly. */
    for (int i = 0; i < n_out; i++) {
        int r = e->rows_out[i];
        ops_rmsnorm(e->xn + (size_t)i * E, e->x + (size_t)r * E, model_output_norm(m), E, hp->rms_eps);
    }
    ops_matmul(e->pool, model_output(m), NULL, e->xn, n_out, logits_out);
}

int engine_decode(engine *e, const engine_batch *b, float *logits_out, char *err, size_t errlen)
{
    if (!b || b->n < 0 || (b->n > 0 && (!b->token || !b->pos || !b->seq))) {
        seterr(err, errlen, "engine: malformed batch");
        return -1;
    }
    const int n = b->n;
    if (n == 0)
        return 0;
    const int32_t n_vocab = (int32_t)e->hp->n_vocab;
    int any_out = 0;
    memcpy(e->next_len, e->seq_len, (size_t)e->n_seq_max * sizeof *e->next_len);
    for (int i = 0; i < n; i++) {
        int32_t s = b->seq[i], t = b->token[i];
        if (s < 0 || s >= e->n_seq_max) {
            seterr(err, errlen, "engine: batch row %d: sequence %d out of range [0, %d)", i, s, e->n_seq_max);
            return -1;
        }
        if (t < 0 || t >= n_vocab) {
            seterr(err, errlen, "engine: batch row %d: token %d out of range [0, %d)", i, t, n_vocab);
            return -1;
        }
        if (b->pos[i] != e->next_len[s]) {
            seterr(err, errlen, "engine: batch row %d: position %d for sequence %d, expected %d", i,
                   b->pos[i], s, e->next_len[s]);
            return -1;
        }
        if (e->next_len[s] >= e->n_ctx) {
            seterr(err, errlen, "engine: sequence %d is full (context %d)", s, e->n_ctx);
            return -1;
        }
        e->next_len[s]++;
        any_out |= b->want_logits && b->want_logits[i];
    }
    if ((b->want_logits && any_out) || !b->want_logits) {
        if (!logits_out) {
            seterr(err, errlen, "engine: logits requested but no output buffer");
            return -1;
        }
    }

    float *out = logits_out;
    for (int c0 = 0; c0 < n; c0 += e->n_batch) {
        int cn = n - c0 < e->n_batch ? n - c0 : e->n_batch;
        int n_out = 0;
        for (int r = 0; r < cn; r++) {
            int i = c0 + r;
            int want = b->want_logits ? b->want_logits[i] != 0 : i == n - 1;
            if (want)
                e->rows_out[n_out++] = r;
        }
        step(e, cn, b->token + c0, b->pos + c0, b->seq + c0, n_out, out);
        if (n_out > 0)
            out += (size_t)n_out * (size_t)n_vocab;
    }
    memcpy(e->seq_len, e->next_len, (size_t)e->n_seq_max * sizeof *e->seq_len);
    return 0;
}
