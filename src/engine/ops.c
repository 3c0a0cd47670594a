/* ops: scalar reference kernels and a small thread pool. See ops.h. */
#include "engine/ops.h"

#include <limits.h>
#include <linux/futex.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "engine/kern.h"
#include "engine/quant.h"

/* ---- thread pool ----
 *
 * Workers wait for a new task by spinning on a generation counter for a
 * short while (a forward pass issues ~10 tasks per layer back to back, so
 * the next one usually arrives within microseconds), then sleep on a futex.
 * Condition variables cost a syscall and a wake-up (tens of microseconds)
 * per task: several milliseconds per decoded token.
 *
 * These machines are shared, so a worker may not be running when a task is
 * posted. Each worker claims its share (CAS PENDING -> RUNNING); the caller,
 * having done its own share, takes over every share not yet claimed (CAS
 * PENDING -> TAKEN) and runs fn for that ith itself, so it only ever waits
 * for workers that are actually computing. fn(ctx, ith, nth) is called
 * exactly once per ith either way, on some thread, with scratch ith. */

#define OPS_SCRATCH_ALIGN 64  /* cache line */
#define OPS_PAR_MIN_MACS (1u << 19) /* below ~10 us of work a matmul stays on the calling thread */
#define OPS_SPIN_ITERS 20000  /* pause loops (~100-400 us) before sleeping */
/* Per-thread panel of dequantized weight rows for the tiled GEMM: 256 KiB
 * stays in L2 while every token tile of the batch passes over it. */
#define OPS_PANEL_FLOATS (64 * 1024)
#define OPS_PANEL_ROWS_MAX 64 /* more rows per panel gain nothing once x is reused */
/* Prefetch while waiting (ops_pool_prefetch_matmul): at most this much of
 * the start of a thread's region, well inside a 1 MiB L2 and about what
 * one core streams in the ~10 us a thread may wait at a task's end. */
#define OPS_PF_MAX_BYTES (256 * 1024)
#define OPS_PF_LINES 4 /* cache lines prefetched per turn of a wait loop */
#define OPS_LINE 64
#define OPS_MATMUL_MAX_FUSE 3 /* matrices in one matmul task (ops_matmul_n) */
#define OPS_RUN_BYTES (128 * 1024) /* weights per grab of a thread's own region in decode (matmul_run) */
#define OPS_RUN_MIN_CHUNKS 2        /* ... and at least this many chunks per grab */

enum { SHARE_DONE = 0, SHARE_PENDING = 1, SHARE_RUNNING = 2 };

typedef struct {
    _Alignas(OPS_SCRATCH_ALIGN) _Atomic uint32_t state; /* SHARE_*; also a futex word */
    _Atomic int caller_sleeps;                          /* caller blocks on state */
    /* What thread ith prefetches while it waits: the start of its region
     * of the next matmul. A hint only: a torn read prefetches the wrong
     * bytes, which costs bandwidth, never correctness. */
    _Atomic uintptr_t pf_ptr;
    _Atomic size_t pf_len;
    /* Thread ith's region of each matrix of the running matmul: rows
     * [lo, hi) not yet taken, as lo | hi << 32 (matmul_worker). */
    _Alignas(OPS_SCRATCH_ALIGN) _Atomic uint64_t region[OPS_MATMUL_MAX_FUSE];
} share_slot;

/* One waiting thread's progress through its prefetch range. */
typedef struct {
    uint32_t gen;
    uintptr_t ptr;
    size_t len, off;
} pf_cursor;

struct ops_pool {
    int n_threads;
    pthread_t *threads;      /* n_threads - 1 workers */
    int n_started;
    float **scratch;         /* [n_threads] */
    float **panel;           /* [n_threads], OPS_PANEL_FLOATS each */
    size_t scratch_floats;
    share_slot *share;       /* [n_threads]; slot 0 unused */
    void *xq;                /* quantized activations of the current matmul (grown by the owner) */
    uint64_t par_min_macs;   /* smaller matmuls run on the caller alone */
    size_t xq_cap;

    _Alignas(OPS_SCRATCH_ALIGN) _Atomic uint32_t gen; /* futex word: bumped for each task */
    _Atomic int sleepers;       /* workers blocked (or about to block) on gen */
    _Atomic int quit;
    _Atomic uint32_t pf_gen; /* bumped when the prefetch plan changes */
    pf_cursor pf_caller;     /* the calling thread's (used in ops_pool_run only) */
    ops_task_fn fn;
    void *ctx;
};

typedef struct { ops_pool *p; int ith; } worker_arg;

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void futex_wait(_Atomic uint32_t *addr, uint32_t val)
{
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake_all(_Atomic uint32_t *addr)
{
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* One turn of a wait loop: prefetches the next few lines of thread ith's
 * plan; 0 when there is nothing (left) to prefetch. Decoding is bound by
 * memory bandwidth, so a thread that waits should keep memory busy. */
static int pf_turn(ops_pool *p, int ith, pf_cursor *c)
{
    uint32_t g = atomic_load_explicit(&p->pf_gen, memory_order_acquire);
    if (g != c->gen) {
        c->gen = g;
        c->ptr = atomic_load_explicit(&p->share[ith].pf_ptr, memory_order_relaxed);
        c->len = atomic_load_explicit(&p->share[ith].pf_len, memory_order_relaxed);
        c->off = 0;
    }
    if (c->off >= c->len)
        return 0;
    for (int i = 0; i < OPS_PF_LINES && c->off < c->len; i++, c->off += OPS_LINE)
        __builtin_prefetch((const void *)(c->ptr + c->off), 0, 2); /* to L2 (T1): 256 KiB would flood L1 */
    return 1;
}

/* Waits until *word != seen; returns the new value. sleepers counts this
 * thread while it may block, so the waker knows a syscall is needed. While
 * spinning, thread ith works through its prefetch plan (pf may be NULL). */
static uint32_t wait_change(ops_pool *p, int ith, pf_cursor *pf, _Atomic uint32_t *word, uint32_t seen,
                            _Atomic int *sleepers)
{
    uint32_t v;
    for (int i = 0; i < OPS_SPIN_ITERS; i++) {
        if ((v = atomic_load_explicit(word, memory_order_acquire)) != seen)
            return v;
        if (!pf || !pf_turn(p, ith, pf))
            cpu_relax();
    }
    while ((v = atomic_load(word)) == seen) {
        atomic_fetch_add(sleepers, 1);
        /* seq_cst: either the waker sees sleepers > 0, or the kernel sees the new value */
        futex_wait(word, seen);
        atomic_fetch_sub(sleepers, 1);
    }
    return v;
}

/* Waits until *word == target (the calling thread, prefetching its plan). */
static void wait_value(ops_pool *p, _Atomic uint32_t *word, uint32_t target, _Atomic int *sleepers)
{
    uint32_t v;
    for (int i = 0; i < OPS_SPIN_ITERS; i++) {
        if (atomic_load_explicit(word, memory_order_acquire) == target)
            return;
        if (!pf_turn(p, 0, &p->pf_caller))
            cpu_relax();
    }
    while ((v = atomic_load(word)) != target) {
        atomic_fetch_add(sleepers, 1);
        futex_wait(word, v);
        atomic_fetch_sub(sleepers, 1);
    }
}

static void *worker_main(void *arg)
{
    worker_arg *wa = arg;
    ops_pool *p = wa->p;
    int ith = wa->ith;
    free(wa);
    share_slot *me = &p->share[ith];
    uint32_t seen = 0;
    pf_cursor pf = {0};
    for (;;) {
        seen = wait_change(p, ith, &pf, &p->gen, seen, &p->sleepers);
        if (atomic_load(&p->quit))
            return NULL;
        uint32_t want = SHARE_PENDING;
        if (!atomic_compare_exchange_strong(&me->state, &want, SHARE_RUNNING))
            continue; /* the caller took this share */
        p->fn(p->ctx, ith, p->n_threads);
        atomic_store(&me->state, SHARE_DONE); /* release: the share's results */
        if (atomic_load(&me->caller_sleeps) > 0)
            futex_wake_all(&me->state);
    }
}

ops_pool *ops_pool_new(int n_threads, size_t scratch_floats, char *err, size_t errlen)
{
    if (n_threads < 1) {
        snprintf(err, errlen, "ops: n_threads must be >= 1");
        return NULL;
    }
    if (scratch_floats == 0 || scratch_floats > SIZE_MAX / sizeof(float) - OPS_SCRATCH_ALIGN) {
        snprintf(err, errlen, "ops: bad scratch size");
        return NULL;
    }
    ops_pool *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "ops: out of memory");
        return NULL;
    }
    p->n_threads = n_threads;
    p->scratch_floats = scratch_floats;
    p->par_min_macs = OPS_PAR_MIN_MACS;
    p->scratch = calloc((size_t)n_threads, sizeof *p->scratch);
    p->panel = calloc((size_t)n_threads, sizeof *p->panel);
    p->share = aligned_alloc(OPS_SCRATCH_ALIGN, (size_t)n_threads * sizeof *p->share);
    if (p->share)
        for (int i = 0; i < n_threads; i++) {
            atomic_init(&p->share[i].state, SHARE_DONE);
            atomic_init(&p->share[i].caller_sleeps, 0);
            atomic_init(&p->share[i].pf_ptr, 0);
            atomic_init(&p->share[i].pf_len, 0);
        }
    p->threads = calloc((size_t)n_threads, sizeof *p->threads);
    if (!p->scratch || !p->panel || !p->share || !p->threads)
        goto oom;
    size_t bytes = (scratch_floats * sizeof(float) + OPS_SCRATCH_ALIGN - 1) / OPS_SCRATCH_ALIGN * OPS_SCRATCH_ALIGN;
    for (int i = 0; i < n_threads; i++) {
        p->scratch[i] = aligned_alloc(OPS_SCRATCH_ALIGN, bytes);
        p->panel[i] = aligned_alloc(OPS_SCRATCH_ALIGN, OPS_PANEL_FLOATS * sizeof(float));
        if (!p->scratch[i] || !p->panel[i])
            goto oom;
    }
    for (int i = 1; i < n_threads; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (!wa)
            goto oom;
        wa->p = p;
        wa->ith = i;
        if (pthread_create(&p->threads[i - 1], NULL, worker_main, wa) != 0) {
            free(wa);
            snprintf(err, errlen, "ops: cannot start worker thread %d", i);
            ops_pool_free(p);
            return NULL;
        }
        p->n_started++;
    }
    return p;
oom:
    snprintf(err, errlen, "ops: out of memory");
    ops_pool_free(p);
    return NULL;
}

void ops_pool_free(ops_pool *p)
{
    if (!p)
        return;
    atomic_store(&p->quit, 1);
    atomic_fetch_add(&p->gen, 1);
    futex_wake_all(&p->gen);
    for (int i = 0; i < p->n_started; i++)
        pthread_join(p->threads[i], NULL);
    for (int i = 0; i < p->n_threads; i++) {
        if (p->scratch)
            free(p->scratch[i]);
        if (p->panel)
            free(p->panel[i]);
    }
    free(p->scratch);
    free(p->panel);
    free(p->xq);
    free(p->share);
    free(p->threads);
    free(p);
}

int ops_pool_n_threads(const ops_pool *p) { return p->n_threads; }
void ops_pool_set_par_min(ops_pool *p, uint64_t macs) { p->par_min_macs = macs; }
float *ops_pool_scratch(ops_pool *p, int ith) { return p->scratch[ith]; }
size_t ops_pool_scratch_floats(const ops_pool *p) { return p->scratch_floats; }

void ops_pool_run(ops_pool *p, ops_task_fn fn, void *ctx)
{
    const int nth = p->n_threads;
    if (nth == 1) {
        fn(ctx, 0, 1);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    for (int i = 1; i < nth; i++)
        atomic_store_explicit(&p->share[i].state, SHARE_PENDING, memory_order_release); /* fn, ctx */
    atomic_fetch_add(&p->gen, 1); /* release: fn, ctx, shares */
    if (atomic_load(&p->sleepers) > 0)
        futex_wake_all(&p->gen);

    fn(ctx, 0, nth);

    for (int i = 1; i < nth; i++) {
        share_slot *s = &p->share[i];
        uint32_t want = SHARE_PENDING;
        if (atomic_compare_exchange_strong(&s->state, &want, SHARE_DONE)) {
            fn(ctx, i, nth); /* not started yet: do it here */
            continue;
        }
        /* claimed by worker i: wait for it (acquire: its results) */
        wait_value(p, &s->state, SHARE_DONE, &s->caller_sleeps);
    }
}

/* ---- element-wise kernels ---- */

int ops_type_supported(uint32_t type)
{
    switch (type) {
    case GGML_T_F32: case GGML_T_F16: case GGML_T_BF16: case GGML_T_Q8_0: case GGML_T_Q4_0:
    case GGML_T_Q4_1: case GGML_T_Q5_0: case GGML_T_Q4_K: case GGML_T_Q5_K: case GGML_T_Q6_K:
        return 1;
    default:
        return 0;
    }
}

int ops_dequant_row(uint32_t type, const void *src, float *dst, size_t n)
{
    if (!ops_type_supported(type))
        return -1;
    if (type == GGML_T_F32) {
        memcpy(dst, src, n * sizeof(float));
        return 0;
    }
    return quant_dequantize_row(type, src, dst, n) == 0 ? 0 : -1;
}

void ops_rmsnorm(float *out, const float *x, const float *w, size_t n, float eps)
{
    double ss = 0;
    for (size_t i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    float scale = (float)(1.0 / sqrt(ss / (double)n + eps));
    for (size_t i = 0; i < n; i++)
        out[i] = x[i] * scale * w[i];
}

void ops_silu_mul(float *g, const float *u, size_t n)
{
    kern_get()->silu_mul(g, u, n);
}

void ops_rope_cache(float *cs, int n_rot, int32_t pos, float base, float scale,
                    const float *freq_factors)
{
    for (int i = 0; i < n_rot / 2; i++) {
        double theta = (double)pos * scale * pow((double)base, -2.0 * i / n_rot);
        if (freq_factors)
            theta /= freq_factors[i];
        cs[2 * i] = (float)cos(theta);
        cs[2 * i + 1] = (float)sin(theta);
    }
}

void ops_rope(float *x, int n_heads, int head_dim, int n_rot, const float *cs, int neox)
{
    const int half = n_rot / 2;
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * head_dim;
        for (int i = 0; i < half; i++) {
            int a = neox ? i : 2 * i;
            int b = neox ? i + half : 2 * i + 1;
            float c = cs[2 * i], s = cs[2 * i + 1];
            float x0 = v[a], x1 = v[b];
            v[a] = x0 * c - x1 * s;
            v[b] = x0 * s + x1 * c;
        }
    }
}

/* ---- matmul ----
 *
 * A matrix takes one of three paths (kern.h), each giving every (row,
 * token) the same bits whatever the batch: packed weights (kern_pack: any
 * token count, 8-bit activations except for F16); the row-major integer
 * kernels (Q8_0, Q4_0, Q5_0: activations quantized once per call); or f32
 * activations, where up to KERN_FUSED_MAX_TOK tokens dequantize weights in
 * registers and stream them once (decode is bound by memory bandwidth) and
 * more tokens dequantize a panel of rows into a per-thread buffer for a
 * tiled GEMM (prompt processing is bound by arithmetic).
 * Threads take chunks of rows from a shared counter, so a busy core (these
 * machines are shared) does not hold the other back; which thread computes
 * a row does not change its value. */

#define OPS_FUSED_CHUNK_ROWS 16 /* decode: rows per grab from another thread's region (one packed group) */

#define OPS_Q8_CHUNK_ROWS 32      /* rows per grab on the integer path with many tokens (32 x 5632 Q4_0 = 100 KB: L2) */
#define OPS_Q8_PAR_TOKENS 8       /* from this many tokens, activations are quantized by all threads */

typedef struct {
    const model_weight *w;
    const float *bias;
    const float *x;
    int n_tok;
    float *y;
    ops_pool *pool;
    const kern_ops *k;
    int fused;
    int packed;              /* integer path on w->packed (kern.h "Packed weights") */
    size_t group_bytes;      /* packed: bytes per 16-row group */
    const void *xq;          /* non-NULL: integer path on these quantized rows */
    size_t ldxq;
    size_t chunk;            /* rows per grab from another thread's region */
    size_t run;              /* rows per grab from the thread's own region (a multiple of chunk) */
} matmul_task;

typedef struct {
    void (*quantize)(const float *x, size_t n, void *dst);
    const float *x;
    size_t n;
    int n_tok;
    char *xq;
    size_t ldxq;
} quant_task;

static void quant_worker(void *arg, int ith, int nth)
{
    quant_task *q = arg;
    for (int t = ith; t < q->n_tok; t += nth)
        q->quantize(q->x + (size_t)t * q->n, q->n, q->xq + (size_t)t * q->ldxq);
}

/* The pool's activation buffer, at least bytes long (64-byte aligned), or
 * NULL if it cannot grow (the caller then takes the f32 path). */
static void *pool_xq(ops_pool *p, size_t bytes)
{
    if (bytes <= p->xq_cap)
        return p->xq;
    size_t cap = (bytes + OPS_SCRATCH_ALIGN - 1) / OPS_SCRATCH_ALIGN * OPS_SCRATCH_ALIGN;
    void *nb = aligned_alloc(OPS_SCRATCH_ALIGN, cap);
    if (!nb)
        return NULL;
    free(p->xq);
    p->xq = nb;
    p->xq_cap = cap;
    return nb;
}

static void matmul_rows(matmul_task *t, int ith, size_t r0, size_t nr)
{
    const model_weight *w = t->w;
    const kern_ops *k = t->k;
    const size_t n_in = (size_t)w->ne0, n_out = (size_t)w->ne1;
    const char *src = (const char *)w->data + r0 * w->row_bytes;
    float *y = t->y + r0;
    if (t->packed && w->type == GGML_T_F16) {
        kern_pack_gemm_f16((const char *)w->packed + r0 / KERN_PACK_ROWS * t->group_bytes, w->row_bytes, (int)nr,
                           n_in, t->x, n_in,
                           t->n_tok, y, n_out);
    } else if (t->packed) {
        kern_pack_gemm(w->type, (const char *)w->packed + r0 / KERN_PACK_ROWS * t->group_bytes, w->row_bytes,
                       (int)nr, n_in, t->xq,
                       t->ldxq, t->n_tok, y, n_out);
    } else if (t->xq) {
        k->q8_gemm(w->type, src, w->row_bytes, (int)nr, n_in, t->xq, t->ldxq, t->n_tok, y, n_out);
    } else if (t->fused) {
        k->gemv(w->type, src, w->row_bytes, (int)nr, n_in, t->x, n_in, t->n_tok, y, n_out);
    } else if (w->type == GGML_T_F32) {
        k->gemm_f32((int)nr, t->n_tok, n_in, (const float *)(const void *)src, w->row_bytes / sizeof(float), t->x,
                    n_in, y, n_out);
    } else {
        float *panel = nr * n_in <= OPS_PANEL_FLOATS ? t->pool->panel[ith] : ops_pool_scratch(t->pool, ith);
        if (k->dequant_rows(w->type, src, w->row_bytes, (int)nr, n_in, panel) != 0)
            for (size_t r = 0; r < nr; r++)
                ops_dequant_row(w->type, src + r * w->row_bytes, panel + r * n_in, n_in);
        k->gemm_f32((int)nr, t->n_tok, n_in, panel, n_in, t->x, n_in, y, n_out);
    }
    if (t->bias)
        for (int tk = 0; tk < t->n_tok; tk++)
            for (size_t r = 0; r < nr; r++)
                y[(size_t)tk * n_out + r] += t->bias[r0 + r];
}

/* Several matrices of one step that read the same x (q/k/v, gate/up) run
 * as one pool task: threads move on to the next matrix's chunks without
 * waiting for each other, and x is quantized once. */

typedef struct {
    matmul_task t[OPS_MATMUL_MAX_FUSE];
    int n;
} matmul_group;

/* Thread ith's region of a matrix of n_out rows split in chunks: whole
 * chunks, as even as they come. */
static void matmul_region(size_t n_out, size_t chunk, int nth, int ith, size_t *lo, size_t *hi)
{
    const size_t n_chunks = (n_out + chunk - 1) / chunk, per = (n_chunks + (size_t)nth - 1) / (size_t)nth;
    *lo = (size_t)ith * per * chunk;
    *hi = *lo + per * chunk;
    *lo = *lo < n_out ? *lo : n_out;
    *hi = *hi < n_out ? *hi : n_out;
}

/* Takes rows of a region: its owner a run from the bottom (so it streams
 * the region in address order, with few grabs), others one chunk from the
 * top (so they cut into the owner's stream only where it ends). Chunk
 * boundaries stay at multiples of chunk from the region's start (run is a
 * multiple of chunk). 0 when the region is empty. */
static int region_take(_Atomic uint64_t *r, size_t chunk, size_t run, int owner, size_t *r0, size_t *nr)
{
    uint64_t v = atomic_load_explicit(r, memory_order_relaxed);
    for (;;) {
        const uint64_t lo = (uint32_t)v, hi = v >> 32;
        if (lo >= hi)
            return 0;
        uint64_t start = lo, end = lo + run < hi ? lo + run : hi, nv = end | hi << 32;
        if (!owner) {
            start = lo + (hi - lo - 1) / chunk * chunk;
            end = hi;
            nv = lo | start << 32;
        }
        if (atomic_compare_exchange_weak_explicit(r, &v, nv, memory_order_relaxed, memory_order_relaxed)) {
            *r0 = (size_t)start;
            *nr = (size_t)(end - start);
            return 1;
        }
    }
}

/* Each thread streams its own region of each matrix (one run of addresses
 * for the hardware prefetcher, and the one it prefetched while waiting),
 * then helps the others with theirs, chunk by chunk from their ends, so a
 * thread that falls behind (these machines are shared) delays the task by
 * at most one chunk. */
static void matmul_worker(void *arg, int ith, int nth)
{
    matmul_group *g = arg;
    for (int i = 0; i < g->n; i++) {
        matmul_task *t = &g->t[i];
        const size_t n_out = (size_t)t->w->ne1;
        size_t r0, nr;
        if (nth == 1) { /* the calling thread alone: no regions */
            for (r0 = 0; r0 < n_out; r0 += t->run)
                matmul_rows(t, ith, r0, n_out - r0 < t->run ? n_out - r0 : t->run);
            continue;
        }
        share_slot *sh = t->pool->share;
        for (int v = 0; v < nth; v++) {
            const int owner = (ith + v) % nth;
            while (region_take(&sh[owner].region[i], t->chunk, t->run, v == 0, &r0, &nr))
                matmul_rows(t, ith, r0, nr);
        }
    }
}

static size_t matmul_rows_bytes(const matmul_task *t, size_t nr);

/* Rows per grab for t (its path already chosen). */
static size_t matmul_chunk(const ops_pool *p, const matmul_task *t)
{
    const size_t n_in = (size_t)t->w->ne0, n_out = (size_t)t->w->ne1, nth = (size_t)ops_pool_n_threads(p);
    size_t chunk;
    if ((t->xq || t->fused || t->packed) && t->n_tok <= KERN_FUSED_MAX_TOK) {
        /* Decode: small chunks, for balance. A thread takes its region's
         * chunks in address order, so the stream does not restart at each. */
        chunk = OPS_FUSED_CHUNK_ROWS;
    } else if (t->xq || t->packed) {
        chunk = OPS_Q8_CHUNK_ROWS;
    } else {
        /* As many rows as fit the panel (a multiple of 4, the GEMM tile), at
         * least OPS_MATMUL_ROWS (the scratch holds that many, by contract). */
        chunk = n_in ? OPS_PANEL_FLOATS / n_in : OPS_PANEL_ROWS_MAX;
        chunk = chunk > OPS_PANEL_ROWS_MAX ? OPS_PANEL_ROWS_MAX : chunk / 4 * 4;
        if (chunk < OPS_MATMUL_ROWS)
            chunk = OPS_MATMUL_ROWS;
    }
    /* Leave every thread a few chunks so none idles at the end. */
    while (chunk > (t->packed ? KERN_PACK_ROWS : 4) && n_out / chunk < 4 * nth)
        chunk /= 2;
    if (t->packed) { /* whole row groups, whole panels (kern.h) */
        const size_t unit = (size_t)kern_pack_panel_rows(t->w->type, n_in);
        chunk = chunk < unit ? unit : chunk / unit * unit;
    }
    return chunk;
}

/* Rows per grab from a thread's own region: OPS_RUN_BYTES of weights in
 * decode (each grab costs an atomic and a kernel call; the region streams
 * on regardless), one chunk otherwise. At least OPS_RUN_MIN_CHUNKS chunks:
 * packed F16 decodes two row groups at once (kern_pack_gemm_f16), which it
 * can only do within one call. */
static size_t matmul_run(const matmul_task *t)
{
    if (!((t->xq || t->fused || t->packed) && t->n_tok <= KERN_FUSED_MAX_TOK))
        return t->chunk;
    const size_t per_chunk = matmul_rows_bytes(t, t->chunk);
    const size_t k = per_chunk ? OPS_RUN_BYTES / per_chunk : 1;
    return (k > OPS_RUN_MIN_CHUNKS ? k : OPS_RUN_MIN_CHUNKS) * t->chunk;
}

/* Bytes of w holding rows [r0, r0 + nr) in the layout t's kernel reads. */
static const char *matmul_row_addr(const matmul_task *t, size_t r0)
{
    if (t->packed)
        return (const char *)t->w->packed + r0 / KERN_PACK_ROWS * t->group_bytes;
    return (const char *)t->w->data + r0 * t->w->row_bytes;
}

static size_t matmul_rows_bytes(const matmul_task *t, size_t nr)
{
    return t->packed ? nr / KERN_PACK_ROWS * t->group_bytes : nr * t->w->row_bytes;
}

/* The path ops_matmul_n takes for w and n_tok (xq only says whether
 * activations get quantized; it is not a buffer). */
static void matmul_path(const kern_ops *k, const model_weight *w, int n_tok, matmul_task *t)
{
    const size_t n_in = (size_t)w->ne0;
    t->w = w;
    t->n_tok = n_tok;
    t->k = k;
    t->fused = n_tok <= KERN_FUSED_MAX_TOK && kern_has_fused(k, w->type);
    const int pk = w->packed && kern_pack_usable(k, w->type);
    t->packed = 0;
    t->xq = NULL;
    if ((kern_has_q8(k, w->type) || (pk && w->type != GGML_T_F16)) && n_in % KERN_Q8_BLOCK == 0 && n_tok > 0) {
        t->packed = pk;
        t->xq = w; /* a marker, replaced by the buffer */
    }
    if (w->type == GGML_T_F16 && pk)
        t->packed = 1; /* f32 activations, no quantization */
    t->group_bytes = t->packed ? kern_pack_group_bytes(w->type, n_in, w->row_bytes) : 0;
}

void ops_pool_prefetch_matmul(ops_pool *p, const model_weight *w, int n_tok)
{
    const int nth = p->n_threads;
    if (nth == 1)
        return;
    matmul_task t = {.pool = p};
    if (w && n_tok > 0) {
        matmul_path(kern_get(), w, n_tok, &t);
        t.chunk = matmul_chunk(p, &t);
    }
    for (int i = 0; i < nth; i++) {
        size_t len = 0, lo, hi;
        uintptr_t ptr = 0;
        if (w && n_tok > 0) {
            matmul_region((size_t)w->ne1, t.chunk, nth, i, &lo, &hi);
            ptr = (uintptr_t)matmul_row_addr(&t, lo);
            len = matmul_rows_bytes(&t, hi - lo);
            len = len < OPS_PF_MAX_BYTES ? len : OPS_PF_MAX_BYTES;
        }
        atomic_store_explicit(&p->share[i].pf_ptr, ptr, memory_order_relaxed);
        atomic_store_explicit(&p->share[i].pf_len, len, memory_order_relaxed);
    }
    atomic_fetch_add_explicit(&p->pf_gen, 1, memory_order_release);
}

void ops_matmul_n(ops_pool *p, int nw, const model_weight *const *ws, const float *const *biases, const float *x,
                  int n_tok, float *const *ys)
{
    const model_weight *w = ws[0];
    int same = nw >= 1 && nw <= OPS_MATMUL_MAX_FUSE;
    for (int i = 1; same && i < nw; i++)
        same = ws[i]->type == w->type && ws[i]->ne0 == w->ne0 && !ws[i]->packed == !w->packed;
    if (!same) {
        for (int i = 0; i < nw; i++)
            ops_matmul_n(p, 1, &ws[i], &biases[i], x, n_tok, &ys[i]);
        return;
    }
    const kern_ops *k = kern_get(); /* one level for the whole call */
    const size_t n_in = (size_t)w->ne0;
    matmul_task t0 = {.x = x, .pool = p};
    matmul_path(k, w, n_tok, &t0);
    if (t0.xq) {
        const size_t rowb = t0.packed ? kern_pack_x_bytes(n_in) : k->q8_row_bytes(n_in);
        void *xq = (size_t)n_tok <= SIZE_MAX / rowb ? pool_xq(p, rowb * (size_t)n_tok) : NULL;
        if (xq) {
            quant_task q = {.quantize = t0.packed ? kern_pack_quantize : k->q8_quantize,
                            .x = x, .n = n_in, .n_tok = n_tok, .xq = xq, .ldxq = rowb};
            if (n_tok >= OPS_Q8_PAR_TOKENS)
                ops_pool_run(p, quant_worker, &q);
            else
                quant_worker(&q, 0, 1);
            t0.ldxq = rowb;
        } else if (w->type != GGML_T_F16) { /* no buffer: the f32 path */
            t0.packed = 0;
            t0.group_bytes = 0;
        }
        t0.xq = xq;
    }
    matmul_group g = {.n = nw};
    for (int i = 0; i < nw; i++) {
        matmul_task *t = &g.t[i];
        *t = t0;
        t->w = ws[i];
        t->bias = biases[i];
        t->y = ys[i];
        t->chunk = matmul_chunk(p, t);
        t->run = matmul_run(t);
    }
    /* Small products (tiny models, or one token through a small matrix) run
     * on the calling thread: waking the others costs more than they save. */
    uint64_t macs = 0;
    for (int i = 0; i < nw; i++)
        macs += (uint64_t)ws[i]->ne0 * ws[i]->ne1 * (uint64_t)n_tok;
    const int nth = ops_pool_n_threads(p);
    int big = 0; /* regions hold row indices in 32 bits */
    for (int i = 0; i < nw; i++)
        big |= ws[i]->ne1 > UINT32_MAX;
    if (macs < p->par_min_macs || nth == 1 || big) {
        matmul_worker(&g, 0, 1);
        return;
    }
    for (int i = 0; i < nw; i++)
        for (int j = 0; j < nth; j++) {
            size_t lo, hi;
            matmul_region((size_t)ws[i]->ne1, g.t[i].chunk, nth, j, &lo, &hi);
            atomic_store_explicit(&p->share[j].region[i], (uint64_t)lo | (uint64_t)hi << 32, memory_order_relaxed);
        }
    ops_pool_run(p, matmul_worker, &g); /* publishes the regions */
}

void ops_matmul(ops_pool *p, const model_weight *w, const float *bias,
                const float *x, int n_tok, float *y)
{
    ops_matmul_n(p, 1, &w, &bias, x, n_tok, &y);
}
