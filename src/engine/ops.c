/* ops: scalar reference kernels and a small thread pool. See ops.h. */
#include "engine/ops.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/quant.h"

/* ---- thread pool ---- */

#define OPS_SCRATCH_ALIGN 64 /* cache line */

struct ops_pool {
    int n_threads;
    pthread_t *threads;      /* n_threads - 1 workers */
    int n_started;
    float **scratch;         /* [n_threads] */
    size_t scratch_floats;

    pthread_mutex_t mu;
    pthread_cond_t wake;     /* workers wait for a new generation */
    pthread_cond_t done;     /* caller waits for pending == 0 */
    uint64_t generation;
    int pending;
    int quit;
    ops_task_fn fn;
    void *ctx;
};

typedef struct { ops_pool *p; int ith; } worker_arg;

static void *worker_main(void *arg)
{
    worker_arg *wa = arg;
    ops_pool *p = wa->p;
    int ith = wa->ith;
    free(wa);
    uint64_t seen = 0;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->quit && p->generation == seen)
            pthread_cond_wait(&p->wake, &p->mu);
        if (p->quit) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        seen = p->generation;
        ops_task_fn fn = p->fn;
        void *ctx = p->ctx;
        pthread_mutex_unlock(&p->mu);

        fn(ctx, ith, p->n_threads);

        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0)
            pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->mu);
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
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    p->scratch = calloc((size_t)n_threads, sizeof *p->scratch);
    p->threads = calloc((size_t)n_threads, sizeof *p->threads);
    if (!p->scratch || !p->threads)
        goto oom;
    size_t bytes = (scratch_floats * sizeof(float) + OPS_SCRATCH_ALIGN - 1) / OPS_SCRATCH_ALIGN * OPS_SCRATCH_ALIGN;
    for (int i = 0; i < n_threads; i++) {
        p->scratch[i] = aligned_alloc(OPS_SCRATCH_ALIGN, bytes);
        if (!p->scratch[i])
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
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_started; i++)
        pthread_join(p->threads[i], NULL);
    if (p->scratch)
        for (int i = 0; i < p->n_threads; i++)
            free(p->scratch[i]);
    free(p->scratch);
    free(p->threads);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    free(p);
}

int ops_pool_n_threads(const ops_pool *p) { return p->n_threads; }
float *ops_pool_scratch(ops_pool *p, int ith) { return p->scratch[ith]; }
size_t ops_pool_scratch_floats(const ops_pool *p) { return p->scratch_floats; }

void ops_pool_run(ops_pool *p, ops_task_fn fn, void *ctx)
{
    if (p->n_threads == 1) {
        fn(ctx, 0, 1);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->pending = p->n_threads - 1;
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);

    fn(ctx, 0, p->n_threads);

    pthread_mutex_lock(&p->mu);
    while (p->pending > 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
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

float ops_dot_f32(const float *a, const float *b, size_t n)
{
    /* 8 independent partial sums: lets the compiler keep them in one vector
     * register and is more accurate than one long running sum. */
    float acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            acc[k] += a[i + k] * b[i + k];
    float s = 0;
    for (; i < n; i++)
        s += a[i] * b[i];
    return s + ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
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

void ops_softmax(float *x, size_t n)
{
    float mx = x[0];
    for (size_t i = 1; i < n; i++)
        if (x[i] > mx)
            mx = x[i];
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (size_t i = 0; i < n; i++)
        x[i] *= inv;
}

void ops_silu_mul(float *g, const float *u, size_t n)
{
    for (size_t i = 0; i < n; i++)
        g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
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

/* ---- matmul ---- */

typedef struct {
    const model_weight *w;
    const float *bias;
    const float *x;
    int n_tok;
    float *y;
    ops_pool *pool;
} matmul_task;

static void matmul_worker(void *arg, int ith, int nth)
{
    const matmul_task *t = arg;
    const model_weight *w = t->w;
    const size_t n_in = (size_t)w->ne0, n_out = (size_t)w->ne1;
    /* Contiguous share of rows, in groups of OPS_MATMUL_ROWS. */
    const size_t n_groups = (n_out + OPS_MATMUL_ROWS - 1) / OPS_MATMUL_ROWS;
    const size_t g0 = n_groups * (size_t)ith / (size_t)nth;
    const size_t g1 = n_groups * (size_t)(ith + 1) / (size_t)nth;
    float *rows = ops_pool_scratch(t->pool, ith);
    const int is_f32 = w->type == GGML_T_F32;

    for (size_t g = g0; g < g1; g++) {
        size_t r0 = g * OPS_MATMUL_ROWS;
        size_t nr = n_out - r0 < OPS_MATMUL_ROWS ? n_out - r0 : OPS_MATMUL_ROWS;
        const float *rp[OPS_MATMUL_ROWS];
        for (size_t r = 0; r < nr; r++) {
            const char *src = (const char *)w->data + (r0 + r) * w->row_bytes;
            if (is_f32) {
                rp[r] = (const float *)(const void *)src;
            } else {
                ops_dequant_row(w->type, src, rows + r * n_in, n_in);
                rp[r] = rows + r * n_in;
            }
        }
        for (int tk = 0; tk < t->n_tok; tk++) {
            const float *xt = t->x + (size_t)tk * n_in;
            float *yt = t->y + (size_t)tk * n_out + r0;
            for (size_t r = 0; r < nr; r++)
                yt[r] = ops_dot_f32(rp[r], xt, n_in) + (t->bias ? t->bias[r0 + r] : 0.0f);
        }
    }
}

void ops_matmul(ops_pool *p, const model_weight *w, const float *bias,
                const float *x, int n_tok, float *y)
{
    matmul_task t = {w, bias, x, n_tok, y, p};
    ops_pool_run(p, matmul_worker, &t);
}
