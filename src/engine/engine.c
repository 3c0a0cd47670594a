/* engine: batched forward pass over a paged, refcounted KV cache. See engine.h. */
#include "engine/engine.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/kern.h"
#include "engine/ops.h"

#define ENGINE_PAGE_BYTES 4096 /* commit_pages: the smallest page size; larger pages are touched more than once */
#define ENGINE_DEFAULT_CTX 4096     /* default slot size when the model allows it */
#define ENGINE_DEFAULT_BATCH 512    /* prompt rows per step: amortizes weight reads */
#define ENGINE_DEFAULT_THREADS_MAX 8 /* decode is bandwidth-bound: more rarely helps */

struct engine {
    const model *m;
    const model_hparams *hp;
    int n_seq_max, n_ctx, n_batch, n_threads;
    size_t E, F, QD, KD;           /* n_embd, n_ff, n_head*head_dim, n_head_kv*head_dim */
    int *seq_len;                  /* [n_seq_max] */
    int *next_len;                 /* [n_seq_max] scratch for validation */
    /* paged KV cache, see engine.h */
    int bs;                        /* positions per block */
    int n_blocks;                  /* pool size */
    int max_bps;                   /* blocks per sequence: ceil(n_ctx / bs) */
    size_t blk_floats;             /* floats of K (or V) per block: n_layer * bs * KD */
    float *k_pool, *v_pool;        /* [block][layer][bs][KD] */
    int32_t *table;                /* [n_seq_max][max_bps] block of each block index */
    uint64_t *seq_hash;            /* [n_seq_max][max_bps] chain hash of each full block */
    int *n_hashed;                 /* [n_seq_max] leading blocks with a chain hash */
    int32_t *ref;                  /* [n_blocks] sequences using the block */
    uint64_t *bhash;               /* [n_blocks] chain hash when indexed, else 0 */
    uint64_t *bparent;             /* [n_blocks] chain hash of the block before (0: first) */
    int32_t *btok;                 /* [n_blocks][bs] tokens the block holds */
    int32_t *free_stack;           /* [n_blocks] unindexed unreferenced blocks */
    int n_free;
    int32_t *lru_prev, *lru_next;  /* [n_blocks] indexed unreferenced blocks, oldest first */
    int32_t lru_head, lru_tail;
    int n_lru;
    int32_t *ht_head, *ht_next;    /* hash index: [ht_mask + 1] chains, [n_blocks] links */
    uint32_t ht_mask;
    int prefix_cache;
    uint64_t prefix_queries, prefix_hits;
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

/* ---- paged KV cache: block pool, refcounts, prefix index ---- */

#define KV_NONE (-1)

/* Chain hash of a full block: its tokens mixed with the hash of the block
 * before (0 for the first), so equal hashes mean equal prefixes up to a 64-bit
 * collision; lookups also compare the block's tokens and parent hash. Never 0
 * (0 marks "not indexed"). */
static uint64_t chain_hash(uint64_t parent, const int32_t *t, int n)
{
    uint64_t h = parent ^ 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < n; i++) {
        h ^= (uint32_t)t[i];
        h *= 0x100000001b3ull;
        h ^= h >> 31;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h ? h : 1;
}

static int32_t *seq_table(const engine *e, int seq)
{
    return e->table + (size_t)seq * (size_t)e->max_bps;
}

static void lru_remove(engine *e, int32_t b)
{
    int32_t p = e->lru_prev[b], n = e->lru_next[b];
    if (p != KV_NONE)
        e->lru_next[p] = n;
    else
        e->lru_head = n;
    if (n != KV_NONE)
        e->lru_prev[n] = p;
    else
        e->lru_tail = p;
    e->lru_prev[b] = e->lru_next[b] = KV_NONE;
    e->n_lru--;
}

static void lru_append(engine *e, int32_t b)
{
    e->lru_prev[b] = e->lru_tail;
    e->lru_next[b] = KV_NONE;
    if (e->lru_tail != KV_NONE)
        e->lru_next[e->lru_tail] = b;
    else
        e->lru_head = b;
    e->lru_tail = b;
    e->n_lru++;
}

static void ht_insert(engine *e, int32_t b, uint64_t h, uint64_t parent)
{
    uint32_t k = (uint32_t)h & e->ht_mask;
    e->bhash[b] = h;
    e->bparent[b] = parent;
    e->ht_next[b] = e->ht_head[k];
    e->ht_head[k] = b;
}

static void ht_remove(engine *e, int32_t b)
{
    if (!e->bhash[b])
        return;
    uint32_t k = (uint32_t)e->bhash[b] & e->ht_mask;
    for (int32_t *pp = &e->ht_head[k]; *pp != KV_NONE; pp = &e->ht_next[*pp])
        if (*pp == b) {
            *pp = e->ht_next[b];
            break;
        }
    e->bhash[b] = 0;
    e->ht_next[b] = KV_NONE;
}

static int32_t ht_find(const engine *e, uint64_t h, uint64_t parent, const int32_t *tokens)
{
    for (int32_t b = e->ht_head[(uint32_t)h & e->ht_mask]; b != KV_NONE; b = e->ht_next[b])
        if (e->bhash[b] == h && e->bparent[b] == parent &&
            memcmp(e->btok + (size_t)b * (size_t)e->bs, tokens, (size_t)e->bs * sizeof *tokens) == 0)
            return b;
    return KV_NONE;
}

/* A block with ref 1 for the caller: a free one, else the least recently
 * released cached one (dropped from the index). KV_NONE when the pool is dry. */
static int32_t blk_alloc(engine *e)
{
    int32_t b;
    if (e->n_free > 0) {
        b = e->free_stack[--e->n_free];
    } else if (e->lru_head != KV_NONE) {
        b = e->lru_head;
        lru_remove(e, b);
        ht_remove(e, b);
    } else {
        return KV_NONE;
    }
    e->ref[b] = 1;
    return b;
}

static void blk_release(engine *e, int32_t b)
{
    if (--e->ref[b] > 0)
        return;
    if (e->bhash[b])
        lru_append(e, b); /* kept for reuse until the pool needs it */
    else
        e->free_stack[e->n_free++] = b;
}

static int n_blocks_for(const engine *e, int len)
{
    return (len + e->bs - 1) / e->bs;
}

/* Keeps the first n_keep positions of seq, releasing the blocks past them. */
static void seq_shrink(engine *e, int seq, int n_keep)
{
    int32_t *t = seq_table(e, seq);
    for (int i = n_blocks_for(e, n_keep); i < n_blocks_for(e, e->seq_len[seq]); i++) {
        blk_release(e, t[i]);
        t[i] = KV_NONE;
    }
    if (e->n_hashed[seq] > n_keep / e->bs)
        e->n_hashed[seq] = n_keep / e->bs;
    e->seq_len[seq] = n_keep;
}

/* Makes room for positions seq_len..new_len-1: the partial last block made
 * private (copied when shared, dropped from the index when it will change),
 * then fresh blocks. The caller checked engine_seq_blocks_needed. */
static void seq_prepare_write(engine *e, int seq, int new_len)
{
    int32_t *t = seq_table(e, seq);
    int len = e->seq_len[seq];
    if (len % e->bs != 0) {
        int32_t b = t[len / e->bs];
        if (e->ref[b] > 1) {
            int32_t c = blk_alloc(e);
            memcpy(e->k_pool + (size_t)c * e->blk_floats, e->k_pool + (size_t)b * e->blk_floats,
                   e->blk_floats * sizeof(float));
            memcpy(e->v_pool + (size_t)c * e->blk_floats, e->v_pool + (size_t)b * e->blk_floats,
                   e->blk_floats * sizeof(float));
            memcpy(e->btok + (size_t)c * (size_t)e->bs, e->btok + (size_t)b * (size_t)e->bs,
                   (size_t)e->bs * sizeof *e->btok);
            blk_release(e, b);
            t[len / e->bs] = c;
        } else if (e->bhash[b]) {
            ht_remove(e, b); /* truncated into an indexed block: its content changes */
        }
    }
    for (int i = n_blocks_for(e, len); i < n_blocks_for(e, new_len); i++)
        t[i] = blk_alloc(e);
}

/* Computes the chain hash of seq's newly full blocks and indexes them. */
static void seq_index_blocks(engine *e, int seq)
{
    int32_t *t = seq_table(e, seq);
    uint64_t *sh = e->seq_hash + (size_t)seq * (size_t)e->max_bps;
    for (int i = e->n_hashed[seq]; (i + 1) * e->bs <= e->seq_len[seq]; i++) {
        uint64_t parent = i ? sh[i - 1] : 0;
        int32_t b = t[i];
        const int32_t *tok = e->btok + (size_t)b * (size_t)e->bs;
        sh[i] = chain_hash(parent, tok, e->bs);
        if (e->prefix_cache && !e->bhash[b] && ht_find(e, sh[i], parent, tok) == KV_NONE)
            ht_insert(e, b, sh[i], parent);
        e->n_hashed[seq] = i + 1;
    }
}

/* Writes one zero per page of a zeroed buffer: the OS commits every page now
 * (volatile: a compiler may drop a memset of calloc'd memory). */
static void commit_pages(void *buf, size_t bytes)
{
    volatile char *c = buf;
    for (size_t i = 0; i < bytes; i += ENGINE_PAGE_BYTES)
        c[i] = 0;
}

static int kv_init(engine *e, const engine_params *p, char *err, size_t errlen)
{
    e->bs = p->kv_block_size ? p->kv_block_size : ENGINE_DEFAULT_KV_BLOCK;
    if (e->bs < 1 || e->bs > ENGINE_MAX_KV_BLOCK) {
        seterr(err, errlen, "engine: kv_block_size %d out of range [1, %d]", e->bs, ENGINE_MAX_KV_BLOCK);
        return -1;
    }
    e->max_bps = (p->n_ctx + e->bs - 1) / e->bs;
    size_t bpb = engine_kv_block_bytes(e->m, e->bs);
    if (bpb == 0 || mul_sz(e->hp->n_layer, (size_t)e->bs * e->KD, &e->blk_floats)) {
        seterr(err, errlen, "engine: KV block size overflows");
        return -1;
    }
    long nb = p->n_kv_blocks;
    if (nb == 0 && p->kv_cache_bytes > 0)
        nb = (long)(p->kv_cache_bytes / bpb > (size_t)ENGINE_MAX_KV_BLOCKS ? (size_t)ENGINE_MAX_KV_BLOCKS + 1
                                                                           : p->kv_cache_bytes / bpb);
    if (nb == 0) {
        nb = (long)p->n_seq_max * e->max_bps;
        if (nb > ENGINE_MAX_KV_BLOCKS)
            nb = ENGINE_MAX_KV_BLOCKS;
    }
    if (nb < e->max_bps || nb > ENGINE_MAX_KV_BLOCKS) {
        seterr(err, errlen,
               "engine: a KV pool of %ld blocks of %d positions (%zu KiB each) is out of range [%d, %d]: it must "
               "hold one full context of %d positions",
               nb, e->bs, bpb >> 10, e->max_bps, ENGINE_MAX_KV_BLOCKS, p->n_ctx);
        return -1;
    }
    e->n_blocks = (int)nb;
    size_t cells;
    if (mul_sz((size_t)nb, e->blk_floats, &cells) || mul_sz(cells, sizeof(float), &(size_t){0})) {
        seterr(err, errlen, "engine: KV pool size overflows");
        return -1;
    }
    /* calloc: the OS commits zero pages lazily, so unused blocks cost little. */
    e->k_pool = calloc(cells, sizeof(float));
    e->v_pool = calloc(cells, sizeof(float));
    if (p->kv_commit && e->k_pool && e->v_pool) { /* engine.h "Memory" */
        commit_pages(e->k_pool, cells * sizeof(float));
        commit_pages(e->v_pool, cells * sizeof(float));
    }
    size_t tab = (size_t)p->n_seq_max * (size_t)e->max_bps;
    e->table = malloc(tab * sizeof *e->table);
    e->seq_hash = calloc(tab, sizeof *e->seq_hash);
    e->n_hashed = calloc((size_t)p->n_seq_max, sizeof *e->n_hashed);
    e->ref = calloc((size_t)nb, sizeof *e->ref);
    e->bhash = calloc((size_t)nb, sizeof *e->bhash);
    e->bparent = calloc((size_t)nb, sizeof *e->bparent);
    e->btok = calloc((size_t)nb * (size_t)e->bs, sizeof *e->btok);
    e->free_stack = malloc((size_t)nb * sizeof *e->free_stack);
    e->lru_prev = malloc((size_t)nb * sizeof *e->lru_prev);
    e->lru_next = malloc((size_t)nb * sizeof *e->lru_next);
    e->ht_next = malloc((size_t)nb * sizeof *e->ht_next);
    uint32_t hsz = 1;
    while (hsz < (uint32_t)nb) /* about one chain per block; nb <= 2^24 */
        hsz <<= 1;
    e->ht_mask = hsz - 1;
    e->ht_head = malloc((size_t)hsz * sizeof *e->ht_head);
    if (!e->k_pool || !e->v_pool || !e->table || !e->seq_hash || !e->n_hashed || !e->ref || !e->bhash ||
        !e->bparent || !e->btok || !e->free_stack || !e->lru_prev || !e->lru_next || !e->ht_next || !e->ht_head) {
        seterr(err, errlen, "engine: out of memory for a KV pool of %d blocks (%zu MiB)", e->n_blocks,
               (size_t)nb * (bpb >> 10) >> 10);
        return -1;
    }
    for (size_t i = 0; i < tab; i++)
        e->table[i] = KV_NONE;
    for (int i = 0; i < e->n_blocks; i++) {
        /* pop order 0, 1, 2...: low blocks first */
        e->free_stack[i] = e->n_blocks - 1 - i;
        e->lru_prev[i] = e->lru_next[i] = e->ht_next[i] = KV_NONE;
    }
    e->n_free = e->n_blocks;
    for (uint32_t i = 0; i < hsz; i++)
        e->ht_head[i] = KV_NONE;
    e->lru_head = e->lru_tail = KV_NONE;
    e->prefix_cache = !p->no_prefix_cache;
    return 0;
}

engine_params engine_default_params(void)
{
    engine_params p = {.n_seq_max = 1, .n_ctx = 0, .n_batch = ENGINE_DEFAULT_BATCH, .n_threads = 0,
                       .kv_block_size = 0, .n_kv_blocks = 0, .kv_cache_bytes = 0, .no_prefix_cache = 0};
    return p;
}

size_t engine_kv_block_bytes(const model *m, int bs)
{
    const model_hparams *hp = model_get_hparams(m);
    size_t kd = (size_t)hp->n_head_kv * hp->head_dim, n;
    if (bs <= 0)
        bs = ENGINE_DEFAULT_KV_BLOCK;
    if (mul_sz(kd, (size_t)hp->n_layer, &n) || mul_sz(n, (size_t)bs, &n) || mul_sz(n, 2 * sizeof(float), &n))
        return 0;
    return n;
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

    int fail = 0;
    if (kv_init(e, &p, err, errlen) != 0) {
        engine_free(e);
        return NULL;
    }
    e->seq_len = calloc((size_t)p.n_seq_max, sizeof *e->seq_len);
    e->next_len = calloc((size_t)p.n_seq_max, sizeof *e->next_len);
    e->rows_out = calloc((size_t)p.n_batch, sizeof *e->rows_out);
    if (!e->seq_len || !e->next_len || !e->rows_out) {
        seterr(err, errlen, "engine: out of memory");
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
    /* attention scores of one GQA group: n_head / n_head_kv rows of n_ctx
     * (both bounded by the model limits, so no overflow) */
    const size_t attn = (size_t)p.n_ctx * (e->hp->n_head / e->hp->n_head_kv);
    if (attn > scratch)
        scratch = attn;
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
    free(e->k_pool);
    free(e->v_pool);
    free(e->table);
    free(e->seq_hash);
    free(e->n_hashed);
    free(e->ref);
    free(e->bhash);
    free(e->bparent);
    free(e->btok);
    free(e->free_stack);
    free(e->lru_prev);
    free(e->lru_next);
    free(e->ht_head);
    free(e->ht_next);
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
        seq_shrink(e, seq, 0);
}

int engine_seq_truncate(engine *e, int seq, int n_keep)
{
    if (seq < 0 || seq >= e->n_seq_max || n_keep < 0 || n_keep > e->seq_len[seq])
        return -1;
    seq_shrink(e, seq, n_keep);
    return 0;
}

int engine_seq_len(const engine *e, int seq)
{
    return seq >= 0 && seq < e->n_seq_max ? e->seq_len[seq] : -1;
}

int engine_seq_fork(engine *e, int src, int dst)
{
    if (src < 0 || src >= e->n_seq_max || dst < 0 || dst >= e->n_seq_max || src == dst)
        return -1;
    seq_shrink(e, dst, 0);
    int nb = n_blocks_for(e, e->seq_len[src]);
    memcpy(seq_table(e, dst), seq_table(e, src), (size_t)nb * sizeof *e->table);
    for (int i = 0; i < nb; i++)
        e->ref[seq_table(e, dst)[i]]++;
    memcpy(e->seq_hash + (size_t)dst * (size_t)e->max_bps, e->seq_hash + (size_t)src * (size_t)e->max_bps,
           (size_t)e->n_hashed[src] * sizeof *e->seq_hash);
    e->n_hashed[dst] = e->n_hashed[src];
    e->seq_len[dst] = e->seq_len[src];
    return 0;
}

int engine_seq_prefix_attach(engine *e, int seq, const int32_t *tokens, int n)
{
    if (seq < 0 || seq >= e->n_seq_max || n < 0 || (n > 0 && !tokens) || e->seq_len[seq] != 0)
        return -1;
    if (n > e->n_ctx)
        n = e->n_ctx;
    e->prefix_queries += (uint64_t)n;
    if (!e->prefix_cache)
        return 0;
    int32_t *t = seq_table(e, seq);
    uint64_t *sh = e->seq_hash + (size_t)seq * (size_t)e->max_bps;
    uint64_t parent = 0;
    int i = 0;
    for (; (i + 1) * e->bs <= n; i++) {
        const int32_t *tok = tokens + (size_t)i * (size_t)e->bs;
        uint64_t h = chain_hash(parent, tok, e->bs);
        int32_t b = ht_find(e, h, parent, tok);
        if (b == KV_NONE)
            break;
        if (e->ref[b] == 0)
            lru_remove(e, b);
        e->ref[b]++;
        t[i] = b;
        sh[i] = h;
        parent = h;
    }
    e->n_hashed[seq] = i;
    e->seq_len[seq] = i * e->bs;
    e->prefix_hits += (uint64_t)e->seq_len[seq];
    return e->seq_len[seq];
}

int engine_seq_blocks_needed(const engine *e, int seq, int n_new)
{
    if (seq < 0 || seq >= e->n_seq_max || n_new < 0)
        return -1;
    if (n_new == 0)
        return 0;
    int len = e->seq_len[seq];
    int need = n_blocks_for(e, len + n_new) - n_blocks_for(e, len);
    if (len % e->bs != 0 && e->ref[seq_table(e, seq)[len / e->bs]] > 1)
        need++; /* copy-on-write of the shared partial block */
    return need;
}

int engine_seq_max_append(const engine *e, int seq, int blocks)
{
    if (seq < 0 || seq >= e->n_seq_max || blocks < 0)
        return -1;
    int len = e->seq_len[seq];
    long room = 0;
    if (len % e->bs != 0) {
        if (e->ref[seq_table(e, seq)[len / e->bs]] > 1) {
            if (blocks == 0)
                return 0;
            blocks--;
        }
        room = e->bs - len % e->bs;
    }
    room += (long)blocks * e->bs;
    if (room > e->n_ctx - len)
        room = e->n_ctx - len;
    return (int)room;
}

int engine_kv_blocks_free(const engine *e)
{
    return e->n_free + e->n_lru;
}

void engine_kv_get_stats(const engine *e, engine_kv_stats *out)
{
    out->block_size = e->bs;
    out->blocks_total = e->n_blocks;
    out->blocks_free = e->n_free + e->n_lru;
    out->blocks_cached = e->n_lru;
    out->bytes_per_block = engine_kv_block_bytes(e->m, e->bs);
    out->prefix_queries = e->prefix_queries;
    out->prefix_hits = e->prefix_hits;
}

int engine_n_ctx(const engine *e) { return e->n_ctx; }
int engine_n_seq_max(const engine *e) { return e->n_seq_max; }
int engine_n_threads(const engine *e) { return e->n_threads; }
int32_t engine_n_vocab(const engine *e) { return (int32_t)e->hp->n_vocab; }
const model *engine_model(const engine *e) { return e->m; }

/* Offset in floats of cell (seq, layer, pos) in k_pool / v_pool. */
static size_t kv_off(const engine *e, int seq, uint32_t layer, int pos)
{
    int32_t blk = e->table[(size_t)seq * (size_t)e->max_bps + (size_t)(pos / e->bs)];
    return (size_t)blk * e->blk_floats + ((size_t)layer * (size_t)e->bs + (size_t)(pos % e->bs)) * e->KD;
}

/* ---- attention ---- */

typedef struct {
    engine *e;
    uint32_t layer;
    int n_rows;
    const int32_t *pos, *seq; /* of this step's rows */
} attn_task;

/* Attention of heads h0..h0+nh-1 of row r, which share one KV head (a GQA
 * group, or one head). Each block of keys (values) is used by every head
 * of the group while it is in L1, so the cache is read once per group, not
 * once per head; per head the arithmetic is the same sequence as one head
 * alone: its scores in position order, softmax, its weighted values in
 * position order. scores holds nh * (p + 1) floats. */
static void attn_heads(const attn_task *t, const kern_ops *k, size_t r, uint32_t h0, uint32_t nh, float *scores)
{
    engine *e = t->e;
    const model_hparams *hp = e->hp;
    const size_t hd = hp->head_dim;
    const uint32_t kvh = h0 / (hp->n_head / hp->n_head_kv);
    const float scale = 1.0f / sqrtf((float)hd);
    const int p = t->pos[r];
    const size_t np = (size_t)p + 1;
    for (int j0 = 0; j0 <= p; j0 += e->bs) {
        const float *kb = e->k_pool + kv_off(e, t->seq[r], t->layer, j0) + kvh * hd;
        const int jn = p + 1 - j0 < e->bs ? p + 1 - j0 : e->bs;
        for (uint32_t g = 0; g < nh; g++)
            k->dot_rows(e->q + r * e->QD + (h0 + g) * hd, kb, e->KD, jn, hd, scale, scores + g * np + j0);
    }
    for (uint32_t g = 0; g < nh; g++) {
        k->softmax(scores + g * np, np);
        memset(e->att + r * e->QD + (h0 + g) * hd, 0, hd * sizeof(float));
    }
    for (int j0 = 0; j0 <= p; j0 += e->bs) {
        const float *vb = e->v_pool + kv_off(e, t->seq[r], t->layer, j0) + kvh * hd;
        const int jn = p + 1 - j0 < e->bs ? p + 1 - j0 : e->bs;
        for (uint32_t g = 0; g < nh; g++)
            k->axpy_rows(scores + g * np + j0, vb, e->KD, jn, hd, e->att + r * e->QD + (h0 + g) * hd);
    }
}

static void attn_worker(void *arg, int ith, int nth)
{
    const attn_task *t = arg;
    const model_hparams *hp = t->e->hp;
    const uint32_t group = hp->n_head / hp->n_head_kv;
    float *scores = ops_pool_scratch(t->e->pool, ith);
    const kern_ops *k = kern_get(); /* once: these calls are short (one head's dims) */
    /* Work items are (row, KV head) groups when there are enough of them to
     * share among the threads, else single heads (the same results). */
    const int by_group = (size_t)t->n_rows * hp->n_head_kv >= (size_t)nth;
    const uint32_t per_row = by_group ? hp->n_head_kv : hp->n_head, nh = by_group ? group : 1;
    const size_t n_items = (size_t)t->n_rows * per_row;
    const size_t i0 = n_items * (size_t)ith / (size_t)nth, i1 = n_items * (size_t)(ith + 1) / (size_t)nth;
    for (size_t it = i0; it < i1; it++)
        attn_heads(t, k, it / per_row, (uint32_t)(it % per_row) * nh, nh, scores);
}

/* ---- one step of at most n_batch rows ---- */

static void add_rows(float *x, const float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] += y[i];
}

/* Row-wise steps between the matmuls (the norms, the SwiGLU gate): in a
 * prompt step they run on all threads, else one would idle while the
 * other works. Each row's result is the same either way. */
#define ENGINE_PAR_ROWS 8 /* fewer rows: one thread (a pool task costs more) */

enum { ROWS_NORM, ROWS_GATE };

typedef struct {
    engine *e;
    int n, kind;
    const float *w; /* ROWS_NORM: the norm's weights */
} rows_task;

static void rows_range(const rows_task *t, int r0, int r1)
{
    engine *e = t->e;
    if (t->kind == ROWS_NORM)
        for (int r = r0; r < r1; r++)
            ops_rmsnorm(e->xn + (size_t)r * e->E, e->x + (size_t)r * e->E, t->w, e->E, e->hp->rms_eps);
    else
        ops_silu_mul(e->g + (size_t)r0 * e->F, e->u + (size_t)r0 * e->F, (size_t)(r1 - r0) * e->F);
}

static void rows_worker(void *arg, int ith, int nth)
{
    const rows_task *t = arg;
    const int r0 = (int)((long)t->n * ith / nth), r1 = (int)((long)t->n * (ith + 1) / nth);
    if (r0 < r1)
        rows_range(t, r0, r1);
}

static void rows_run(engine *e, int n, int kind, const float *w)
{
    rows_task t = {e, n, kind, w};
    if (n < ENGINE_PAR_ROWS)
        rows_range(&t, 0, n);
    else
        ops_pool_run(e->pool, rows_worker, &t);
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

    /* Each matmul is preceded by declaring the one after it (ops.h): the
     * threads prefetch its first rows while they wait. */
    ops_pool_prefetch_matmul(e->pool, &model_get_layer(m, 0)->wq, n);
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        const model_layer *L = model_get_layer(m, l);
        rows_run(e, n, ROWS_NORM, L->attn_norm);
        {
            const model_weight *ws[3] = {&L->wq, &L->wk, &L->wv};
            const float *bs[3] = {L->bq, L->bk, L->bv};
            float *ys[3] = {e->q, e->k, e->v};
            ops_pool_prefetch_matmul(e->pool, &L->wo, n);
            ops_matmul_n(e->pool, 3, ws, bs, e->xn, n, ys);
        }
        for (int r = 0; r < n; r++) {
            const float *cs = e->cs + (size_t)r * hp->n_rot;
            ops_rope(e->q + (size_t)r * e->QD, (int)hp->n_head, (int)hp->head_dim, (int)hp->n_rot, cs,
                     hp->rope_neox);
            ops_rope(e->k + (size_t)r * e->KD, (int)hp->n_head_kv, (int)hp->head_dim, (int)hp->n_rot, cs,
                     hp->rope_neox);
            size_t off = kv_off(e, seq[r], l, pos[r]);
            memcpy(e->k_pool + off, e->k + (size_t)r * e->KD, e->KD * sizeof(float));
            memcpy(e->v_pool + off, e->v + (size_t)r * e->KD, e->KD * sizeof(float));
        }
        attn_task at = {e, l, n, pos, seq};
        ops_pool_run(e->pool, attn_worker, &at);
        ops_pool_prefetch_matmul(e->pool, &L->w_gate, n);
        ops_matmul(e->pool, &L->wo, L->bo, e->att, n, e->tmp);
        add_rows(e->x, e->tmp, (size_t)n * E);

        rows_run(e, n, ROWS_NORM, L->ffn_norm);
        {
            const model_weight *ws[2] = {&L->w_gate, &L->w_up};
            const float *bs[2] = {NULL, NULL};
            float *ys[2] = {e->g, e->u};
            ops_pool_prefetch_matmul(e->pool, &L->w_down, n);
            ops_matmul_n(e->pool, 2, ws, bs, e->xn, n, ys);
        }
        rows_run(e, n, ROWS_GATE, NULL);
        if (l + 1 < hp->n_layer)
            ops_pool_prefetch_matmul(e->pool, &model_get_layer(m, l + 1)->wq, n);
        else
            ops_pool_prefetch_matmul(e->pool, n_out ? model_output(m) : NULL, n_out);
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
    ops_pool_prefetch_matmul(e->pool, NULL, 0);
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
    /* Blocks for the new positions: all or nothing, before any change. */
    long need = 0;
    for (int s = 0; s < e->n_seq_max; s++)
        if (e->next_len[s] > e->seq_len[s])
            need += engine_seq_blocks_needed(e, s, e->next_len[s] - e->seq_len[s]);
    if (need > (long)(e->n_free + e->n_lru)) {
        seterr(err, errlen, "engine: the KV cache is full (%ld blocks needed, %d free)", need, e->n_free + e->n_lru);
        return ENGINE_ERR_KV_FULL;
    }
    for (int s = 0; s < e->n_seq_max; s++)
        if (e->next_len[s] > e->seq_len[s])
            seq_prepare_write(e, s, e->next_len[s]);
    for (int i = 0; i < n; i++) {
        int32_t s = b->seq[i], p = b->pos[i];
        int32_t blk = e->table[(size_t)s * (size_t)e->max_bps + (size_t)(p / e->bs)];
        e->btok[(size_t)blk * (size_t)e->bs + (size_t)(p % e->bs)] = b->token[i];
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
    for (int s = 0; s < e->n_seq_max; s++)
        if (e->next_len[s] > e->seq_len[s]) {
            e->seq_len[s] = e->next_len[s];
            seq_index_blocks(e, s);
        }
    return 0;
}
