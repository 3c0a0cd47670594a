/* Scheduler tests: results do not depend on batching (also with a tiny KV
 * block size and a pool small enough to force preemptions), cancellation
 * frees the slot and its KV blocks, a full queue is refused, limits and stop
 * conditions hold, prefix blocks are shared, beam search equals a brute-force
 * beam search over the engine. A tiny random-weight llama model is written
 * with the project's GGUF writer. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/scheduler.h"
#include "tiny_model.h"

#define E 32
#define V 64
#define F 48
#define L 2
#define H 4
#define HKV 2
#define MAXTOK 256

static char g_path[256];

static int write_model(void **state)
{
    (void)state;
    snprintf(g_path, sizeof g_path, "/tmp/ward-test-sched-%d.gguf", (int)getpid());
    tiny_model_opts o = {.n_embd = E, .n_vocab = V, .n_ff = F, .n_layer = L, .n_head = H, .n_head_kv = HKV,
                         .n_ctx = 128, .seed = 0x9e3779b97f4a7c15ull};
    tiny_model_write(g_path, &o);
    return 0;
}

static int remove_model(void **state)
{
    (void)state;
    unlink(g_path);
    return 0;
}

/* ---- a request whose results the test collects ---- */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    sched_done d;
    int n;
    int32_t toks[MAXTOK];
    int stop_after;          /* on_token returns 1 when n reaches it (0 = never) */
    int n_prompt_events;
    pthread_mutex_t *gate;   /* if set, on_token blocks on it (to hold a request running) */
    int gate_after;          /* ... once this many tokens were seen */
    int n_beams;             /* beam search results */
    int32_t beam_toks[8][MAXTOK];
    int beam_n[8];
    double beam_cum[8], beam_score[8];
    int has_last;            /* on_done got the ending EOS / stop token's sample */
    sampler_result last;
} result;

static void result_init(result *r)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
}

static int on_token(void *ud, const sched_token *t)
{
    result *r = ud;
    if (r->gate && r->n >= r->gate_after) {
        pthread_mutex_lock(r->gate);
        pthread_mutex_unlock(r->gate);
    }
    pthread_mutex_lock(&r->mu);
    int stop = 0;
    if (t->is_prompt) {
        r->n_prompt_events++;
    } else if (r->n < MAXTOK) {
        r->toks[r->n++] = t->r.token;
        stop = r->stop_after && r->n >= r->stop_after;
    }
    pthread_mutex_unlock(&r->mu);
    return stop;
}

static void on_done(void *ud, const sched_done *d)
{
    result *r = ud;
    pthread_mutex_lock(&r->mu);
    r->d = *d;
    r->d.err = NULL;
    r->d.last = NULL; /* valid during on_done only: copied */
    if (d->last) {
        r->has_last = 1;
        r->last = *d->last;
    }
    r->done++;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void on_beams(void *ud, const sched_beam *b, int n)
{
    result *r = ud;
    pthread_mutex_lock(&r->mu);
    r->n_beams = n < 8 ? n : 8;
    for (int i = 0; i < r->n_beams; i++) {
        r->beam_n[i] = b[i].n_tokens < MAXTOK ? b[i].n_tokens : MAXTOK;
        memcpy(r->beam_toks[i], b[i].tokens, (size_t)r->beam_n[i] * sizeof(int32_t));
        r->beam_cum[i] = b[i].cum_logprob;
        r->beam_score[i] = b[i].score;
    }
    pthread_mutex_unlock(&r->mu);
}

static void wait_done(result *r)
{
    pthread_mutex_lock(&r->mu);
    while (!r->done)
        pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
}

static sched_request make_req(const int32_t *prompt, int n_prompt, int max_tokens, result *r)
{
    sched_request q;
    memset(&q, 0, sizeof q);
    q.prompt = prompt;
    q.n_prompt = n_prompt;
    q.sampling = sampler_default_params();
    q.sampling.temperature = 0;
    q.max_tokens = max_tokens;
    q.on_token = on_token;
    q.on_done = on_done;
    q.ud = r;
    return q;
}

typedef struct {
    model *m;
    engine *e;
    sched *s;
} rig;

static void rig_up_kv(rig *g, int slots, int max_queue, int step_tokens, int block, int n_blocks)
{
    char err[256];
    model_params mp = model_default_params();
    g->m = model_load(g_path, &mp, err, sizeof err);
    if (!g->m)
        fail_msg("model_load: %s", err);
    engine_params ep = engine_default_params();
    ep.n_seq_max = slots;
    ep.n_ctx = 96;
    ep.n_threads = 2;
    ep.kv_block_size = block;
    ep.n_kv_blocks = n_blocks;
    g->e = engine_new(g->m, &ep, err, sizeof err);
    if (!g->e)
        fail_msg("engine_new: %s", err);
    sched_params sp = sched_default_params();
    sp.max_queue = max_queue;
    sp.step_tokens = step_tokens;
    sp.n_eog = 0; /* random weights: no natural end; tests set stop ids explicitly */
    g->s = sched_new(g->e, &sp, err, sizeof err);
    assert_non_null(g->s);
}

static void rig_up(rig *g, int slots, int max_queue, int step_tokens)
{
    rig_up_kv(g, slots, max_queue, step_tokens, 0, 0);
}

static void rig_down(rig *g)
{
    sched_free(g->s);
    engine_free(g->e);
    model_free(g->m);
}

static void make_prompt(int32_t *p, int n, int salt)
{
    for (int i = 0; i < n; i++)
        p[i] = (int32_t)((i * 7 + salt * 13 + 1) % V);
}

/* Greedy output is the same alone and beside seven other requests of
 * different lengths and sampling settings, with a small step budget so
 * prompts are chunked across steps. */
static void test_batching_invariance(void **state)
{
    (void)state;
    enum { N = 8, GEN = 12 };
    int32_t prompts[N][40];
    int lens[N];
    for (int i = 0; i < N; i++) {
        lens[i] = 3 + i * 5;
        make_prompt(prompts[i], lens[i], i);
    }
    static result alone[N], together[N];
    char err[256];
    uint64_t id;
    rig g;
    rig_up(&g, 1, 16, 16);
    for (int i = 0; i < N; i++) {
        result_init(&alone[i]);
        sched_request q = make_req(prompts[i], lens[i], GEN, &alone[i]);
        assert_int_equal(sched_submit(g.s, &q, &id, NULL, err, sizeof err), 0);
        wait_done(&alone[i]);
        assert_int_equal(alone[i].d.why, SCHED_FINISH_LENGTH);
        assert_int_equal(alone[i].n, GEN);
    }
    rig_down(&g);

    rig_up(&g, N, 16, 16);
    for (int i = 0; i < N; i++) {
        result_init(&together[i]);
        sched_request q = make_req(prompts[i], lens[i], GEN, &together[i]);
        if (i % 2) { /* odd ones sample; only the even (greedy) ones are compared */
            q.sampling.temperature = 0.9f;
            q.sampling.top_k = 10;
            q.sampling.has_seed = 1;
            q.sampling.seed = (uint64_t)i;
            q.max_tokens = GEN + i;
        }
        assert_int_equal(sched_submit(g.s, &q, &id, NULL, err, sizeof err), 0);
    }
    for (int i = 0; i < N; i++)
        wait_done(&together[i]);
    for (int i = 0; i < N; i += 2) {
        assert_int_equal(together[i].n, GEN);
        assert_memory_equal(together[i].toks, alone[i].toks, GEN * sizeof(int32_t));
    }
    sched_stats st;
    sched_get_stats(g.s, &st);
    assert_int_equal(st.running, 0);
    assert_int_equal(st.waiting, 0);
    assert_true(st.steps > 0);
    rig_down(&g);
}

/* Cancelling a running request finishes it with CANCELLED and frees its slot
 * for the next request; a full queue is refused with queue_full set. */
static void test_cancel_and_queue_full(void **state)
{
    (void)state;
    rig g;
    rig_up(&g, 1, 2, 64);
    char err[256];
    int32_t p[4] = {1, 2, 3, 4};
    pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;
    static result a, b, c, d;
    result_init(&a);
    result_init(&b);
    result_init(&c);
    result_init(&d);
    a.gate = &gate;
    pthread_mutex_lock(&gate); /* a blocks in its first on_token: it holds the only slot */
    uint64_t ida, idb, idc, idd;
    sched_request qa = make_req(p, 4, 80, &a);
    assert_int_equal(sched_submit(g.s, &qa, &ida, NULL, err, sizeof err), 0);
    usleep(50000);
    sched_request qb = make_req(p, 4, 3, &b), qc = make_req(p, 3, 3, &c), qd = make_req(p, 2, 3, &d);
    assert_int_equal(sched_submit(g.s, &qb, &idb, NULL, err, sizeof err), 0);
    assert_int_equal(sched_submit(g.s, &qc, &idc, NULL, err, sizeof err), 0);
    int full = 0;
    assert_int_equal(sched_submit(g.s, &qd, &idd, &full, err, sizeof err), -1);
    assert_int_equal(full, 1);
    sched_stats st;
    sched_get_stats(g.s, &st);
    assert_int_equal(st.running, 1);
    assert_int_equal(st.waiting, 2);

    sched_cancel(g.s, idc);   /* cancelled while waiting */
    sched_cancel(g.s, ida);   /* cancelled while running */
    pthread_mutex_unlock(&gate);
    wait_done(&a);
    wait_done(&b);
    wait_done(&c);
    assert_int_equal(a.d.why, SCHED_FINISH_CANCELLED);
    assert_true(a.n < 80);
    assert_int_equal(c.d.why, SCHED_FINISH_CANCELLED);
    assert_int_equal(c.n, 0);
    assert_int_equal(b.d.why, SCHED_FINISH_LENGTH);
    assert_int_equal(b.n, 3);
    /* Stats are refreshed after the step in which b finished: poll briefly. */
    for (int i = 0; i < 100; i++) {
        sched_get_stats(g.s, &st);
        if (st.kv_usage == 0.0)
            break;
        usleep(10000);
    }
    assert_int_equal(st.running, 0);
    assert_int_equal(st.waiting, 0);
    assert_true(st.kv_usage == 0.0);
    rig_down(&g);
}

/* Stop conditions: a stop token id ends with STOP_TOKEN and is not reported;
 * on_token returning nonzero ends with STOP; max_tokens 0 ends at once;
 * min_tokens suppresses the stop token; a prompt that fills the context is refused. */
static void test_stops_and_limits(void **state)
{
    (void)state;
    rig g;
    rig_up(&g, 2, 8, 64);
    char err[256];
    uint64_t id;
    int32_t p[5] = {5, 9, 2, 7, 1};

    static result ref;
    result_init(&ref);
    sched_request q = make_req(p, 5, 10, &ref);
    assert_int_equal(sched_submit(g.s, &q, &id, NULL, err, sizeof err), 0);
    wait_done(&ref);
    assert_int_equal(ref.n, 10);

    /* stop on the 3rd greedy token */
    static result st;
    result_init(&st);
    q = make_req(p, 5, 10, &st);
    int32_t stop = ref.toks[2];
    int first = 0;
    while (ref.toks[first] != stop)
        first++;
    q.stop_ids = &stop;
    q.n_stop_ids = 1;
    assert_int_equal(sched_submit(g.s, &q, &id, NULL, err, sizeof err), 0);
    wait_done(&st);
    assert_int_equal(st.d.why, SCHED_FINISH_STOP_TOKEN);
    assert_int_equal(st.d.stop_token, stop);
    assert_int_equal(st.n, first);
    assert_int_equal(st.d.n_output, first + 1);
    assert_int_equal(st.d.n_prompt, 5);
    /* the stop token counts in n_output, so its sample (logprobs) comes with on_done */
    assert_int_equal(st.has_last, 1);
    assert_int_equal(st.last.token, stop);
    assert_true(st.last.logprob <= 0.0f);
    assert_int_equal(ref.has_last, 0); /* ended by length: nothing extra */

    /* on_token asks to stop after 2 */
    static result s2;
    result_init(&s2);
    s2.stop_after = 2;
    q = make_req(p, 5, 10, &s2);
    assert_int_equal(sched_submit(g.s, &q, &id, NULL, err, sizeof err), 0);
    wait_done(&s2);
    assert_int_equal(s2.d.why, SCHED_FINISH_STOP);
    assert_int_equal(s2.n, 2);
    assert_int_equal(s2.has_last, 0); /* the stopping token went through on_token */

    /* max_tokens 0 */
    static result z;
    result_init(&z);
    q = make_req(p, 5, 0, &z);
    assert_int_equal(sched_submit(g.s, &q, &id, NULL, err, sizeof err), 0);
    wait_done(&z);
    assert_int_equal(z.d.why, SCHED_FINISH_LENGTH);
    assert_int_equal(z.n, 0);

    /* min_tokens: the stop id cannot end the sequence before 4 outputs */
    static result mt;
    result_init(&mt);
    q = make_req(p, 5, 10, &mt);
    int32_t stop0 = ref.toks[0];
    q.stop_ids = &stop0;
    q.n_stop_ids = 1;
    q.min_tokens = 4;
    assert_int_equal(sched_submit(g.s, &q, &id, NULL, err, sizeof err), 0);
    wait_done(&mt);
    assert_true(mt.d.n_output >= 4);
    for (int i = 0; i < mt.n && i < 3; i++)
        assert_int_not_equal(mt.toks[i], stop0);

    /* prompt logprobs: one event per prompt position after the first */
    static result pl;
    result_init(&pl);
    q = make_req(p, 5, 1, &pl);
    q.prompt_logprobs = 1;
    q.sampling.n_logprobs = 2;
    assert_int_equal(sched_submit(g.s, &q, &id, NULL, err, sizeof err), 0);
    wait_done(&pl);
    assert_int_equal(pl.n_prompt_events, 4);
    assert_int_equal(pl.n, 1);
    assert_int_equal(pl.toks[0], ref.toks[0]);

    /* a prompt as long as the context is refused; out-of-vocabulary ids too */
    int32_t big[96];
    make_prompt(big, 96, 1);
    q = make_req(big, 96, 1, &pl);
    assert_int_equal(sched_submit(g.s, &q, &id, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "context"));
    int32_t bad[2] = {1, V};
    q = make_req(bad, 2, 1, &pl);
    assert_int_equal(sched_submit(g.s, &q, &id, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "vocabulary"));

    /* max_tokens is capped by the context: generation ends with LENGTH at n_ctx */
    static result cap;
    result_init(&cap);
    int32_t longp[90];
    make_prompt(longp, 90, 3);
    q = make_req(longp, 90, 1000, &cap);
    assert_int_equal(sched_submit(g.s, &q, &id, NULL, err, sizeof err), 0);
    wait_done(&cap);
    assert_int_equal(cap.d.why, SCHED_FINISH_LENGTH);
    assert_int_equal(cap.n, 96 - 90);
    rig_down(&g);
}

/* Eight requests (greedy and seeded sampling) on blocks of 2 positions and a
 * pool of little more than one context: requests wait for blocks and running
 * ones are preempted and recomputed, yet every request gives exactly the
 * tokens it gives alone. */
static void test_paged_preemption_invariance(void **state)
{
    (void)state;
    enum { N = 8, GEN = 20 };
    int32_t prompts[N][40];
    int lens[N];
    for (int i = 0; i < N; i++) {
        lens[i] = 4 + i * 4;
        make_prompt(prompts[i], lens[i], i + 3);
    }
    static result alone[N], together[N];
    char err[256];
    uint64_t id;
    rig g;
    for (int pass = 0; pass < 2; pass++) {
        result *res = pass ? together : alone;
        if (pass)
            rig_up_kv(&g, N, 16, 24, 2, 96 / 2 + 6);
        else
            rig_up(&g, 1, 16, 64);
        for (int i = 0; i < N; i++) {
            result_init(&res[i]);
            sched_request q = make_req(prompts[i], lens[i], GEN, &res[i]);
            if (i % 2) {
                q.sampling.temperature = 0.8f;
                q.sampling.has_seed = 1;
                q.sampling.seed = 100u + (uint64_t)i;
                q.max_tokens = GEN + 2 * i;
            }
            assert_int_equal(sched_submit(g.s, &q, &id, NULL, err, sizeof err), 0);
            if (!pass)
                wait_done(&res[i]);
        }
        for (int i = 0; i < N; i++)
            wait_done(&res[i]);
        sched_stats st;
        sched_get_stats(g.s, &st);
        if (pass) {
            assert_true(st.preemptions > 0);
            assert_int_equal(st.running, 0);
            assert_int_equal(st.waiting, 0);
        }
        rig_down(&g);
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(together[i].d.why, SCHED_FINISH_LENGTH);
        assert_int_equal(together[i].n, alone[i].n);
        assert_memory_equal(together[i].toks, alone[i].toks, (size_t)alone[i].n * sizeof(int32_t));
    }
}

/* Cancelling a running request gives every KV block back to the pool. */
static void test_cancel_frees_blocks(void **state)
{
    (void)state;
    rig g;
    rig_up_kv(&g, 2, 4, 64, 4, 0);
    char err[256];
    int32_t p[30];
    make_prompt(p, 30, 9);
    pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;
    static result a;
    result_init(&a);
    a.gate = &gate;
    a.gate_after = 1; /* stats are published after the first step */
    pthread_mutex_lock(&gate);
    uint64_t ida;
    sched_request qa = make_req(p, 30, 50, &a);
    assert_int_equal(sched_submit(g.s, &qa, &ida, NULL, err, sizeof err), 0);
    sched_stats st;
    for (int i = 0; i < 200; i++) { /* the prompt is in: 8 blocks held while a waits in on_token */
        usleep(5000);
        sched_get_stats(g.s, &st);
        if (st.kv_blocks_free < st.kv_blocks_total)
            break;
    }
    assert_int_equal(st.kv_blocks_total, 2 * 96 / 4);
    assert_int_equal(st.kv_blocks_free, st.kv_blocks_total - 8);
    assert_true(st.kv_usage > 0.0);
    sched_cancel(g.s, ida);
    pthread_mutex_unlock(&gate);
    wait_done(&a);
    assert_int_equal(a.d.why, SCHED_FINISH_CANCELLED);
    for (int i = 0; i < 200; i++) {
        sched_get_stats(g.s, &st);
        if (st.kv_blocks_free == st.kv_blocks_total)
            break;
        usleep(5000);
    }
    assert_int_equal(st.kv_blocks_free, st.kv_blocks_total);
    assert_true(st.kv_usage == 0.0);
    rig_down(&g);
}

/* A second request with the same prompt reuses its full blocks and gives the same tokens. */
static void test_prefix_sharing(void **state)
{
    (void)state;
    rig g;
    rig_up_kv(&g, 2, 4, 64, 4, 0);
    char err[256];
    uint64_t id;
    int32_t p[42];
    make_prompt(p, 42, 5);
    static result a, b;
    result_init(&a);
    result_init(&b);
    sched_request q = make_req(p, 42, 6, &a);
    assert_int_equal(sched_submit(g.s, &q, &id, NULL, err, sizeof err), 0);
    wait_done(&a);
    q = make_req(p, 42, 6, &b);
    assert_int_equal(sched_submit(g.s, &q, &id, NULL, err, sizeof err), 0);
    wait_done(&b);
    assert_int_equal(b.n, 6);
    assert_memory_equal(a.toks, b.toks, 6 * sizeof(int32_t));
    sched_stats st;
    sched_get_stats(g.s, &st);
    assert_true(st.prefix_queries >= 2 * 41);
    assert_true(st.prefix_hits >= 40); /* the second request found 10 full blocks */
    rig_down(&g);
}

/* ---- beam search against a brute force over the engine ---- */

static void log_softmax(const float *l, double *out)
{
    double mx = -INFINITY, sum = 0;
    for (int v = 0; v < V; v++)
        if (l[v] > mx)
            mx = l[v];
    for (int v = 0; v < V; v++)
        sum += exp((double)l[v] - mx);
    for (int v = 0; v < V; v++)
        out[v] = (double)l[v] - mx - log(sum);
}

typedef struct { int32_t t[8]; int n; double cum; } rbeam;

static int cmp_rbeam(const void *a, const void *b)
{
    const rbeam *x = a, *y = b;
    return (x->cum < y->cum) - (x->cum > y->cum);
}

/* Beam search with no end token: every step each beam's top 2W tokens, the
 * best W continuations go on; after T tokens the W best are the answer. */
static void ref_beam(const int32_t *prompt, int n_prompt, int W, int T, rbeam *out)
{
    char err[256];
    model_params mp = model_default_params();
    model *m = model_load(g_path, &mp, err, sizeof err);
    assert_non_null(m);
    engine_params ep = engine_default_params();
    ep.n_ctx = 96;
    ep.n_threads = 1;
    engine *e = engine_new(m, &ep, err, sizeof err);
    assert_non_null(e);
    rbeam beams[8] = {{{0}, 0, 0}}, cands[64];
    int nb = 1;
    for (int step = 0; step < T; step++) {
        int nc = 0;
        for (int b = 0; b < nb; b++) {
            int32_t toks[64], pos[64], seq[64] = {0};
            int n = 0;
            for (int i = 0; i < n_prompt; i++)
                toks[n++] = prompt[i];
            for (int i = 0; i < beams[b].n; i++)
                toks[n++] = beams[b].t[i];
            for (int i = 0; i < n; i++)
                pos[i] = i;
            engine_seq_reset(e, 0);
            float logits[V];
            engine_batch bt = {n, toks, pos, seq, NULL};
            assert_int_equal(engine_decode(e, &bt, logits, err, sizeof err), 0);
            double lp[V];
            log_softmax(logits, lp);
            for (int k = 0; k < 2 * W; k++) {
                int best = -1;
                for (int v = 0; v < V; v++)
                    if (lp[v] > -INFINITY && (best < 0 || lp[v] > lp[best]))
                        best = v;
                cands[nc] = beams[b];
                cands[nc].t[cands[nc].n++] = best;
                cands[nc].cum = beams[b].cum + lp[best];
                lp[best] = -INFINITY;
                nc++;
            }
        }
        qsort(cands, (size_t)nc, sizeof *cands, cmp_rbeam);
        nb = W;
        memcpy(beams, cands, (size_t)W * sizeof *beams);
    }
    memcpy(out, beams, (size_t)W * sizeof *beams);
    engine_free(e);
    model_free(m);
}

static void test_beam_search(void **state)
{
    (void)state;
    enum { W = 3, T = 5 };
    rig g;
    rig_up_kv(&g, 6, 8, 64, 2, 0); /* blocks of 2: beams share and copy partial blocks */
    char err[256];
    uint64_t id;
    int32_t p[9];
    make_prompt(p, 9, 11);
    rbeam ref[W];
    ref_beam(p, 9, W, T, ref);

    /* beside a sampling request, to mix batches */
    static result bm, other;
    result_init(&bm);
    result_init(&other);
    int32_t p2[12];
    make_prompt(p2, 12, 2);
    sched_request qo = make_req(p2, 12, 30, &other);
    qo.sampling.temperature = 1.0f;
    assert_int_equal(sched_submit(g.s, &qo, &id, NULL, err, sizeof err), 0);
    sched_request q = make_req(p, 9, T, &bm);
    q.beam_width = W;
    q.length_penalty = 1.0;
    q.on_beams = on_beams;
    assert_int_equal(sched_submit(g.s, &q, &id, NULL, err, sizeof err), 0);
    wait_done(&bm);
    wait_done(&other);
    assert_int_equal(bm.d.why, SCHED_FINISH_LENGTH);
    assert_int_equal(bm.n, 0); /* no on_token for beams */
    assert_int_equal(bm.n_beams, W);
    for (int i = 0; i < W; i++) {
        assert_int_equal(bm.beam_n[i], T);
        assert_memory_equal(bm.beam_toks[i], ref[i].t, T * sizeof(int32_t));
        assert_true(fabs(bm.beam_cum[i] - ref[i].cum) < 1e-9);
        assert_true(fabs(bm.beam_score[i] - ref[i].cum / (9.0 + T)) < 1e-9);
        if (i)
            assert_true(bm.beam_score[i] <= bm.beam_score[i - 1]);
    }
    /* every sequence and block is back */
    sched_stats st;
    for (int i = 0; i < 200; i++) {
        sched_get_stats(g.s, &st);
        if (st.kv_blocks_free == st.kv_blocks_total && st.running == 0)
            break;
        usleep(5000);
    }
    assert_int_equal(st.kv_blocks_free, st.kv_blocks_total);

    /* a stop token ends beams: the finished ones carry it as stop_token, not in tokens */
    static result bs;
    result_init(&bs);
    q = make_req(p, 9, T, &bs);
    q.beam_width = W;
    q.length_penalty = 1.0;
    q.on_beams = on_beams;
    int32_t stop = ref[0].t[1];
    q.stop_ids = &stop;
    q.n_stop_ids = 1;
    assert_int_equal(sched_submit(g.s, &q, &id, NULL, err, sizeof err), 0);
    wait_done(&bs);
    assert_true(bs.n_beams >= 1 && bs.n_beams <= W);
    for (int i = 0; i < bs.n_beams; i++) {
        for (int k = 0; k < bs.beam_n[i]; k++)
            assert_int_not_equal(bs.beam_toks[i][k], stop);
        if (i)
            assert_true(bs.beam_score[i] <= bs.beam_score[i - 1]);
    }

    /* bad widths are refused */
    q = make_req(p, 9, T, &bs);
    q.beam_width = 7; /* more than the 6 sequences */
    assert_int_equal(sched_submit(g.s, &q, &id, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "beam width"));
    rig_down(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batching_invariance),
        cmocka_unit_test(test_cancel_and_queue_full),
        cmocka_unit_test(test_stops_and_limits),
        cmocka_unit_test(test_paged_preemption_invariance),
        cmocka_unit_test(test_cancel_frees_blocks),
        cmocka_unit_test(test_prefix_sharing),
        cmocka_unit_test(test_beam_search),
    };
    return cmocka_run_group_tests(tests, write_model, remove_model);
}
