/* Scheduler tests: results do not depend on batching, cancellation frees the
 * slot, a full queue is refused, limits and stop conditions hold. A tiny
 * random-weight llama model is written with the project's GGUF writer. */
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

#define E 32
#define V 64
#define F 48
#define L 2
#define H 4
#define HKV 2
#define MAXTOK 256

static char g_path[256];

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float frand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static void add_f32(gguf_writer *w, const char *name, uint64_t ne0, uint64_t ne1, float scale, float base)
{
    size_t n = (size_t)(ne0 * ne1);
    float *d = malloc(n * sizeof *d);
    for (size_t i = 0; i < n; i++)
        d[i] = base + scale * frand();
    uint64_t ne[2] = {ne0, ne1};
    assert_int_equal(gguf_add_tensor(w, name, GGML_T_F32, ne1 > 1 ? 2 : 1, ne, d), 0);
    free(d);
}

static int write_model(void **state)
{
    (void)state;
    snprintf(g_path, sizeof g_path, "/tmp/ward-test-sched-%d.gguf", (int)getpid());
    gguf_writer *w = gguf_writer_new();
    gguf_set_str(w, "general.architecture", "llama");
    gguf_set_u32(w, "llama.context_length", 128);
    gguf_set_u32(w, "llama.embedding_length", E);
    gguf_set_u32(w, "llama.block_count", L);
    gguf_set_u32(w, "llama.feed_forward_length", F);
    gguf_set_u32(w, "llama.attention.head_count", H);
    gguf_set_u32(w, "llama.attention.head_count_kv", HKV);
    gguf_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    add_f32(w, "token_embd.weight", E, V, 1.0f, 0);
    add_f32(w, "output_norm.weight", E, 1, 0.1f, 1.0f);
    add_f32(w, "output.weight", E, V, 0.5f, 0);
    const int hd = E / H;
    for (int l = 0; l < L; l++) {
        char n[64];
#define T(name, a, b, sc, base)                            \
    snprintf(n, sizeof n, "blk.%d." name, l);              \
    add_f32(w, n, a, b, sc, base);
        T("attn_norm.weight", E, 1, 0.1f, 1.0f)
        T("attn_q.weight", E, E, 0.3f, 0)
        T("attn_k.weight", E, HKV * hd, 0.3f, 0)
        T("attn_v.weight", E, HKV * hd, 0.3f, 0)
        T("attn_output.weight", E, E, 0.3f, 0)
        T("ffn_norm.weight", E, 1, 0.1f, 1.0f)
        T("ffn_gate.weight", E, F, 0.3f, 0)
        T("ffn_up.weight", E, F, 0.3f, 0)
        T("ffn_down.weight", F, E, 0.3f, 0)
#undef T
    }
    char err[256];
    assert_int_equal(gguf_writer_write(w, g_path, err, sizeof err), 0);
    gguf_writer_free(w);
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
    if (r->gate) {
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
    r->done++;
    pthread_cond_broadcast(&r->cv);
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

static void rig_up(rig *g, int slots, int max_queue, int step_tokens)
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

    /* on_token asks to stop after 2 */
    static result s2;
    result_init(&s2);
    s2.stop_after = 2;
    q = make_req(p, 5, 10, &s2);
    assert_int_equal(sched_submit(g.s, &q, &id, NULL, err, sizeof err), 0);
    wait_done(&s2);
    assert_int_equal(s2.d.why, SCHED_FINISH_STOP);
    assert_int_equal(s2.n, 2);

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batching_invariance),
        cmocka_unit_test(test_cancel_and_queue_full),
        cmocka_unit_test(test_stops_and_limits),
    };
    return cmocka_run_group_tests(tests, write_model, remove_model);
}
