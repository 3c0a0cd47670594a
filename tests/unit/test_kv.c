/* Paged KV cache tests on a tiny random-weight llama model:
 *  - results do not depend on the block size (bit for bit, blocks of 1..5
 *    positions against one block per context);
 *  - blocks are taken on demand and all given back on reset/truncate;
 *  - a full pool refuses a batch with ENGINE_ERR_KV_FULL and changes nothing;
 *  - fork shares blocks and copies the partial last block on write;
 *  - prefix cache: a new sequence reuses the full blocks of an identical
 *    prefix, LRU blocks are evicted only when the pool needs them, a block
 *    that changes after truncation is no longer matched. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "tiny_model.h"

#define E 32
#define V 64
#define F 48
#define L 2
#define H 4
#define HKV 2
#define CTX 48

static char g_path[256];
static char err[512];
static model *g_model;

static int setup(void **state)
{
    (void)state;
    snprintf(g_path, sizeof g_path, "/tmp/ward-test-kv-%d.gguf", (int)getpid());
    tiny_model_opts o = {.n_embd = E, .n_vocab = V, .n_ff = F, .n_layer = L, .n_head = H, .n_head_kv = HKV,
                         .n_ctx = CTX, .seed = 0x2545f4914f6cdd1dull};
    tiny_model_write(g_path, &o);
    model_params mp = model_default_params();
    g_model = model_load(g_path, &mp, err, sizeof err);
    assert_non_null(g_model);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    model_free(g_model);
    unlink(g_path);
    return 0;
}

static engine *mk(int n_seq, int bs, int n_blocks, int no_prefix)
{
    engine_params p = engine_default_params();
    p.n_seq_max = n_seq;
    p.n_ctx = CTX;
    p.n_threads = 2;
    p.kv_block_size = bs;
    p.n_kv_blocks = n_blocks;
    p.no_prefix_cache = no_prefix;
    engine *e = engine_new(g_model, &p, err, sizeof err);
    if (!e)
        fail_msg("engine_new: %s", err);
    return e;
}

static void toks(int32_t *t, int n, int salt)
{
    for (int i = 0; i < n; i++)
        t[i] = (int32_t)((i * 11 + salt * 5 + 3) % V);
}

/* Appends tokens t[0..n) to seq (positions from its current length); logits
 * of the last row into out (may be NULL: a scratch buffer is used). */
static int feed(engine *e, int seq, const int32_t *t, int n, float *out)
{
    int32_t pos[CTX], sq[CTX];
    float scratch[V];
    int base = engine_seq_len(e, seq);
    for (int i = 0; i < n; i++) {
        pos[i] = base + i;
        sq[i] = seq;
    }
    engine_batch b = {n, t, pos, sq, NULL};
    return engine_decode(e, &b, out ? out : scratch, err, sizeof err);
}

static int free_blocks(const engine *e)
{
    engine_kv_stats st;
    engine_kv_get_stats(e, &st);
    assert_int_equal(st.blocks_free, engine_kv_blocks_free(e));
    return st.blocks_free;
}

/* Three sequences interleaved, prompt then decode steps: the logits are the
 * same bit for bit whatever the block size. */
static void test_block_size_invariance(void **state)
{
    (void)state;
    enum { N = 3, STEPS = 6 };
    static const int plen[N] = {7, 13, 2};
    int32_t prompt[N][16], next[N][STEPS];
    for (int s = 0; s < N; s++) {
        toks(prompt[s], plen[s], s);
        toks(next[s], STEPS, s + 7);
    }
    static float ref[N][STEPS + 1][V], got[N][STEPS + 1][V];
    static const int sizes[] = {CTX, 1, 2, 3, 5, 16};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        engine *e = mk(N, sizes[k], 0, 0);
        float (*dst)[STEPS + 1][V] = k == 0 ? ref : got;
        for (int s = 0; s < N; s++)
            assert_int_equal(feed(e, s, prompt[s], plen[s], dst[s][0]), 0);
        for (int st = 0; st < STEPS; st++) {
            int32_t t[N], p[N], q[N];
            uint8_t want[N] = {1, 1, 1};
            float out[N][V];
            for (int s = 0; s < N; s++) {
                t[s] = next[s][st];
                p[s] = engine_seq_len(e, s);
                q[s] = s;
            }
            engine_batch b = {N, t, p, q, want};
            assert_int_equal(engine_decode(e, &b, &out[0][0], err, sizeof err), 0);
            for (int s = 0; s < N; s++)
                memcpy(dst[s][st + 1], out[s], sizeof out[s]);
        }
        if (k > 0)
            assert_memory_equal(got, ref, sizeof ref);
        engine_free(e);
    }
}

/* Blocks are taken as positions are appended and given back on truncate and reset. */
static void test_alloc_and_free(void **state)
{
    (void)state;
    engine *e = mk(2, 4, 0, 1);
    engine_kv_stats st;
    engine_kv_get_stats(e, &st);
    assert_int_equal(st.block_size, 4);
    assert_int_equal(st.blocks_total, 2 * CTX / 4); /* default: every sequence can fill its context */
    assert_true(st.bytes_per_block == (size_t)4 * L * 2 * HKV * (E / H) * sizeof(float));
    const int total = st.blocks_total;
    int32_t t[CTX];
    toks(t, CTX, 1);
    assert_int_equal(engine_seq_blocks_needed(e, 0, 9), 3);
    assert_int_equal(feed(e, 0, t, 9, NULL), 0);
    assert_int_equal(free_blocks(e), total - 3);
    assert_int_equal(engine_seq_blocks_needed(e, 0, 3), 0); /* fits the partial block */
    assert_int_equal(engine_seq_blocks_needed(e, 0, 4), 1);
    assert_int_equal(engine_seq_max_append(e, 0, 0), 3);
    assert_int_equal(engine_seq_max_append(e, 0, 2), 11);
    assert_int_equal(engine_seq_max_append(e, 0, 1000), CTX - 9); /* capped by the context */
    assert_int_equal(feed(e, 1, t, 1, NULL), 0);
    assert_int_equal(free_blocks(e), total - 4);
    assert_int_equal(engine_seq_truncate(e, 0, 4), 0);
    assert_int_equal(free_blocks(e), total - 2);
    assert_int_equal(engine_seq_truncate(e, 0, 0), 0);
    assert_int_equal(free_blocks(e), total - 1);
    engine_seq_reset(e, 1);
    assert_int_equal(free_blocks(e), total);
    assert_int_equal(engine_seq_blocks_needed(e, 5, 1), -1);
    assert_int_equal(engine_seq_max_append(e, -1, 1), -1);
    engine_free(e);
}

/* The smallest pool (one full context): a second sequence that does not fit
 * is refused with ENGINE_ERR_KV_FULL, nothing changes, and the first
 * sequence's results are unaffected. */
static void test_pool_full(void **state)
{
    (void)state;
    const int bs = 4, nb = CTX / 4;
    engine *e = mk(2, bs, nb, 1);
    engine *ref = mk(1, bs, 0, 1);
    int32_t a[CTX], b[CTX];
    toks(a, CTX, 2);
    toks(b, CTX, 3);
    float la[V], lr[V];
    assert_int_equal(feed(e, 0, a, 40, la), 0);
    assert_int_equal(feed(ref, 0, a, 40, lr), 0);
    assert_memory_equal(la, lr, sizeof la);
    assert_int_equal(engine_kv_blocks_free(e), 2);
    /* 9 positions need 3 blocks: refused, whole batch, nothing changed */
    int32_t t2[2] = {a[40], b[8]}, p2[2] = {40, 8}, s2[2] = {0, 1};
    engine_batch mixed = {2, t2, p2, s2, NULL};
    assert_int_equal(feed(e, 1, b, 9, NULL), ENGINE_ERR_KV_FULL);
    assert_non_null(strstr(err, "KV cache is full"));
    assert_int_equal(engine_seq_len(e, 1), 0);
    assert_int_equal(engine_kv_blocks_free(e), 2);
    assert_int_equal(feed(e, 1, b, 8, NULL), 0);
    assert_int_equal(engine_kv_blocks_free(e), 0);
    /* both need a new block now: refused as a whole */
    assert_int_equal(engine_decode(e, &mixed, la, err, sizeof err), ENGINE_ERR_KV_FULL);
    assert_int_equal(engine_seq_len(e, 0), 40);
    assert_int_equal(engine_seq_len(e, 1), 8);
    engine_seq_reset(e, 1);
    if (feed(e, 0, a + 40, 8, la) != 0)
        fail_msg("%s", err);
    assert_int_equal(feed(ref, 0, a + 40, 8, lr), 0);
    assert_memory_equal(la, lr, sizeof la);
    assert_int_equal(engine_kv_blocks_free(e), 0);
    engine_free(e);
    engine_free(ref);
}

/* Fork shares the blocks; a write into the shared partial block copies it;
 * each branch then computes exactly what it would have alone. */
static void test_fork_cow(void **state)
{
    (void)state;
    engine *e = mk(3, 4, 0, 1);
    engine *ref = mk(1, 4, 0, 1);
    int32_t t[CTX];
    toks(t, CTX, 4);
    assert_int_equal(feed(e, 0, t, 10, NULL), 0);
    int before = engine_kv_blocks_free(e);
    assert_int_equal(engine_seq_fork(e, 0, 1), 0);
    assert_int_equal(engine_seq_len(e, 1), 10);
    assert_int_equal(engine_kv_blocks_free(e), before); /* nothing copied yet */
    assert_int_equal(engine_seq_blocks_needed(e, 1, 1), 1); /* the copy of the partial block */
    assert_int_equal(engine_seq_max_append(e, 1, 0), 0);
    assert_int_equal(engine_seq_max_append(e, 1, 1), 2);
    assert_int_equal(engine_seq_fork(e, 0, 0), -1);
    assert_int_equal(engine_seq_fork(e, 0, 3), -1);

    int32_t x[3] = {5, 6, 7}, y[3] = {40, 41, 42};
    float lx[V], ly[V], rx[V], ry[V];
    assert_int_equal(feed(e, 0, x, 3, lx), 0);
    assert_int_equal(engine_kv_blocks_free(e), before - 2); /* seq 0 wrote: a copy and a new block */
    assert_int_equal(engine_seq_blocks_needed(e, 1, 2), 0); /* seq 1 now owns the old block alone */
    assert_int_equal(feed(e, 1, y, 3, ly), 0);
    assert_int_equal(engine_kv_blocks_free(e), before - 3);

    assert_int_equal(feed(ref, 0, t, 10, NULL), 0);
    assert_int_equal(feed(ref, 0, x, 3, rx), 0);
    assert_memory_equal(lx, rx, sizeof lx);
    engine_seq_reset(ref, 0);
    assert_int_equal(feed(ref, 0, t, 10, NULL), 0);
    assert_int_equal(feed(ref, 0, y, 3, ry), 0);
    assert_memory_equal(ly, ry, sizeof ly);

    /* forking over a non-empty destination releases what it held */
    assert_int_equal(engine_seq_fork(e, 0, 1), 0);
    engine_seq_reset(e, 0);
    engine_seq_reset(e, 1);
    assert_int_equal(engine_kv_blocks_free(e), 3 * CTX / 4);
    engine_free(e);
    engine_free(ref);
}

/* Prefix cache: full blocks of a finished sequence are found by a new one
 * with the same tokens; the logits after the shared prefix are identical. */
static void test_prefix_cache(void **state)
{
    (void)state;
    const int bs = 4;
    engine *e = mk(2, bs, CTX / bs + 2, 0);
    engine *ref = mk(1, bs, 0, 1);
    const int total = CTX / bs + 2;
    int32_t t[CTX], u[CTX];
    toks(t, CTX, 5);
    toks(u, CTX, 6);
    float l0[V], l1[V];
    assert_int_equal(feed(e, 0, t, 11, l0), 0); /* blocks 0, 1 full, 2 partial */
    engine_seq_reset(e, 0);
    engine_kv_stats st;
    engine_kv_get_stats(e, &st);
    assert_int_equal(st.blocks_free, total); /* cached blocks count as free */
    assert_int_equal(st.blocks_cached, 2);

    /* same 11 tokens: the 2 full blocks are reused (at most n - 1 = 10 asked) */
    assert_int_equal(engine_seq_prefix_attach(e, 1, t, 10), 8);
    assert_int_equal(engine_seq_len(e, 1), 8);
    assert_int_equal(free_blocks(e), total - 2);
    assert_int_equal(feed(e, 1, t + 8, 3, l1), 0);
    assert_memory_equal(l0, l1, sizeof l0);
    engine_kv_get_stats(e, &st);
    assert_true(st.prefix_queries == 10);
    assert_true(st.prefix_hits == 8);
    /* a non-empty sequence cannot attach */
    assert_int_equal(engine_seq_prefix_attach(e, 1, t, 10), -1);
    engine_seq_reset(e, 1);

    /* a different second block: only the first is shared */
    int32_t v[CTX];
    memcpy(v, t, sizeof v);
    v[5] = (v[5] + 1) % V;
    assert_int_equal(engine_seq_prefix_attach(e, 0, v, 10), 4);
    assert_int_equal(feed(e, 0, v + 4, 7, l1), 0);
    assert_int_equal(feed(ref, 0, v, 11, l0), 0);
    assert_memory_equal(l0, l1, sizeof l0);
    engine_seq_reset(e, 0);
    engine_seq_reset(ref, 0);

    /* truncating into an indexed block and writing other tokens: the block is
     * dropped from the index, the old prefix is no longer found beyond it */
    assert_int_equal(engine_seq_prefix_attach(e, 0, t, 10), 8);
    assert_int_equal(engine_seq_truncate(e, 0, 6), 0);
    assert_int_equal(feed(e, 0, u, 2, NULL), 0);
    assert_int_equal(engine_seq_prefix_attach(e, 1, t, 10), 4);
    engine_seq_reset(e, 1);
    engine_seq_reset(e, 0);

    /* a long unrelated sequence takes every block: cached ones are evicted */
    assert_int_equal(feed(e, 0, u, CTX, NULL), 0);
    assert_int_equal(free_blocks(e), 2);
    assert_int_equal(feed(e, 1, t, 8, NULL), 0); /* evicts the last cached blocks */
    assert_int_equal(free_blocks(e), 0);
    engine_seq_reset(e, 1);
    engine_seq_reset(e, 0);
    assert_int_equal(free_blocks(e), total);
    engine_free(e);

    /* prefix cache off: nothing is ever attached */
    e = mk(2, bs, 0, 1);
    assert_int_equal(feed(e, 0, t, 11, NULL), 0);
    engine_seq_reset(e, 0);
    assert_int_equal(engine_seq_prefix_attach(e, 1, t, 10), 0);
    engine_free(e);
    engine_free(ref);
}

static void test_params(void **state)
{
    (void)state;
    engine_params p = engine_default_params();
    p.n_ctx = CTX;
    p.kv_block_size = ENGINE_MAX_KV_BLOCK + 1;
    assert_null(engine_new(g_model, &p, err, sizeof err));
    assert_non_null(strstr(err, "kv_block_size"));
    p.kv_block_size = 4;
    p.n_kv_blocks = CTX / 4 - 1; /* less than one context */
    assert_null(engine_new(g_model, &p, err, sizeof err));
    assert_non_null(strstr(err, "full context"));
    p.n_kv_blocks = ENGINE_MAX_KV_BLOCKS + 1;
    assert_null(engine_new(g_model, &p, err, sizeof err));
    /* a byte budget becomes blocks */
    p.n_kv_blocks = 0;
    size_t bpb = engine_kv_block_bytes(g_model, 4);
    assert_true(bpb > 0);
    p.kv_cache_bytes = bpb * 20 + bpb / 2;
    engine *e = engine_new(g_model, &p, err, sizeof err);
    assert_non_null(e);
    engine_kv_stats st;
    engine_kv_get_stats(e, &st);
    assert_int_equal(st.blocks_total, 20);
    engine_free(e);
    p.kv_cache_bytes = bpb;
    assert_null(engine_new(g_model, &p, err, sizeof err));
    p.kv_cache_bytes = SIZE_MAX;
    assert_null(engine_new(g_model, &p, err, sizeof err));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_block_size_invariance),
        cmocka_unit_test(test_alloc_and_free),
        cmocka_unit_test(test_pool_full),
        cmocka_unit_test(test_fork_cow),
        cmocka_unit_test(test_prefix_cache),
        cmocka_unit_test(test_params),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
