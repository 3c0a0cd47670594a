/* Unit tests for engine/model + engine/engine on tiny random models written
 * with the C GGUF writer:
 *  - batching: sequences decoded interleaved in one batch (and split into
 *    internal steps, and with several threads) give the same logits as each
 *    sequence alone;
 *  - KV slot management: positions, truncate, reset, context full;
 *  - malformed models: each rejected with a message naming the problem. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine/engine.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "tiny_model.h"

#define NV 64      /* vocabulary */
#define NE 32      /* n_embd */
#define NH 4
#define NKV 2
#define NFF 48
#define NL 2

static char err[512];

/* The model writer is shared with the KV and scheduler tests; its defaults
 * are the shape above (NV, NE, NH, NKV, NFF, NL). */
typedef tiny_model_opts opts;
#define write_model tiny_model_write

static char model_path[64];

static int setup(void **st)
{
    (void)st;
    strcpy(model_path, "/tmp/ward-test-engine-XXXXXX");
    int fd = mkstemp(model_path);
    if (fd < 0)
        return -1;
    close(fd);
    opts o = {0};
    write_model(model_path, &o);
    return 0;
}

static int teardown(void **st)
{
    (void)st;
    unlink(model_path);
    return 0;
}

static model *load_ok(void)
{
    model *m = model_load(model_path, NULL, err, sizeof err);
    if (!m)
        fail_msg("model_load: %s", err);
    return m;
}

static engine *mk_engine(const model *m, int n_seq, int n_batch, int n_threads)
{
    engine_params p = engine_default_params();
    p.n_seq_max = n_seq;
    p.n_ctx = 32;
    p.n_batch = n_batch;
    p.n_threads = n_threads;
    engine *e = engine_new(m, &p, err, sizeof err);
    if (!e)
        fail_msg("engine_new: %s", err);
    return e;
}

static void test_hparams(void **st)
{
    (void)st;
    model *m = load_ok();
    const model_hparams *hp = model_get_hparams(m);
    assert_int_equal(hp->arch, MODEL_ARCH_LLAMA);
    assert_int_equal(hp->n_vocab, NV);
    assert_int_equal(hp->n_embd, NE);
    assert_int_equal(hp->n_layer, NL);
    assert_int_equal(hp->n_head, NH);
    assert_int_equal(hp->n_head_kv, NKV);
    assert_int_equal(hp->head_dim, NE / NH);
    assert_int_equal(hp->n_ctx_train, 64);
    assert_int_equal(hp->tied_embeddings, 0);
    assert_int_equal(hp->rope_neox, 0);
    assert_true(hp->rope_base == 10000.0f);
    assert_non_null(model_get_layer(m, NL - 1));
    assert_null(model_get_layer(m, NL));
    model_free(m);
}

/* Each sequence alone: prompt, then `steps` single tokens. Logits of the
 * last prompt row and each step, [1 + steps][NV]. */
static void run_alone(const model *m, const int32_t *prompt, int n_prompt, const int32_t *next, int steps,
                      float *out)
{
    engine *e = mk_engine(m, 1, 512, 1);
    int32_t pos[16], seq[16] = {0};
    for (int i = 0; i < n_prompt; i++)
        pos[i] = i;
    engine_batch b = {n_prompt, prompt, pos, seq, NULL};
    assert_int_equal(engine_decode(e, &b, out, err, sizeof err), 0);
    for (int s = 0; s < steps; s++) {
        int32_t p = n_prompt + s;
        engine_batch one = {1, &next[s], &p, seq, NULL};
        assert_int_equal(engine_decode(e, &one, out + (size_t)(s + 1) * NV, err, sizeof err), 0);
    }
    assert_int_equal(engine_seq_len(e, 0), n_prompt + steps);
    engine_free(e);
}

static float max_abs_diff(const float *a, const float *b, size_t n, float *scale)
{
    float d = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabsf(a[i] - b[i]) > d)
            d = fabsf(a[i] - b[i]);
        if (fabsf(b[i]) > s)
            s = fabsf(b[i]);
    }
    *scale = s;
    return d;
}

static void batched_vs_alone(int n_batch, int n_threads)
{
    model *m = load_ok();
    static const int32_t pa[5] = {1, 5, 9, 13, 17}, pb[3] = {2, 60, 33}, pc[7] = {3, 4, 5, 6, 7, 8, 63};
    static const int32_t na[3] = {10, 11, 12}, nb[3] = {20, 21, 22}, nc[3] = {30, 31, 32};
    const int32_t *pr[3] = {pa, pb, pc}, *nx[3] = {na, nb, nc};
    const int np[3] = {5, 3, 7};
    float alone[3][4 * NV];
    for (int s = 0; s < 3; s++)
        run_alone(m, pr[s], np[s], nx[s], 3, alone[s]);

    engine *e = mk_engine(m, 3, n_batch, n_threads);
    /* all three prompts interleaved round-robin in one batch */
    int32_t tok[15], pos[15], seq[15];
    uint8_t want[15];
    int n = 0, cur[3] = {0};
    for (int round = 0; round < 7; round++)
        for (int s = 0; s < 3; s++)
            if (cur[s] < np[s]) {
                tok[n] = pr[s][cur[s]];
                pos[n] = cur[s];
                seq[n] = s;
                want[n] = cur[s] == np[s] - 1;
                cur[s]++;
                n++;
            }
    assert_int_equal(n, 15);
    float out[3 * NV];
    engine_batch b = {n, tok, pos, seq, want};
    assert_int_equal(engine_decode(e, &b, out, err, sizeof err), 0);
    /* rows come back in batch order: b's last prompt token is first (row 7), then a's, then c's */
    const int order[3] = {1, 0, 2};
    float scale;
    for (int i = 0; i < 3; i++) {
        float d = max_abs_diff(out + i * NV, alone[order[i]], NV, &scale);
        assert_true(d <= 1e-5f * scale);
    }
    /* three decode steps, one token per sequence, reverse slot order */
    for (int st = 0; st < 3; st++) {
        int32_t t3[3], p3[3], s3[3];
        for (int i = 0; i < 3; i++) {
            int s = 2 - i;
            t3[i] = nx[s][st];
            p3[i] = np[s] + st;
            s3[i] = s;
        }
        uint8_t w3[3] = {1, 1, 1};
        engine_batch b3 = {3, t3, p3, s3, w3};
        assert_int_equal(engine_decode(e, &b3, out, err, sizeof err), 0);
        for (int i = 0; i < 3; i++) {
            float d = max_abs_diff(out + i * NV, alone[2 - i] + (size_t)(st + 1) * NV, NV, &scale);
            assert_true(d <= 1e-5f * scale);
        }
    }
    engine_free(e);
    model_free(m);
}

static void test_batching_equivalence(void **st) { (void)st; batched_vs_alone(512, 1); }
static void test_batching_split_steps(void **st) { (void)st; batched_vs_alone(4, 1); }
static void test_batching_threads(void **st) { (void)st; batched_vs_alone(6, 3); }

static void test_positions_and_slots(void **st)
{
    (void)st;
    model *m = load_ok();
    engine *e = mk_engine(m, 2, 512, 1);
    float out[NV], out2[NV];
    int32_t t[3] = {1, 2, 3}, p[3] = {0, 1, 2}, s[3] = {0, 0, 0};
    engine_batch b = {3, t, p, s, NULL};
    assert_int_equal(engine_decode(e, &b, out, err, sizeof err), 0);
    assert_int_equal(engine_seq_len(e, 0), 3);
    assert_int_equal(engine_seq_len(e, 1), 0);

    /* wrong position: rejected, nothing changes */
    int32_t bad_p = 5;
    engine_batch bp = {1, t, &bad_p, s, NULL};
    assert_int_equal(engine_decode(e, &bp, out2, err, sizeof err), -1);
    assert_non_null(strstr(err, "position 5"));
    assert_int_equal(engine_seq_len(e, 0), 3);
    /* slot out of range, token out of range */
    int32_t bad_s = 2, p3 = 3, bad_t = NV;
    engine_batch bs = {1, t, &p3, &bad_s, NULL};
    assert_int_equal(engine_decode(e, &bs, out2, err, sizeof err), -1);
    assert_non_null(strstr(err, "sequence 2"));
    engine_batch bt = {1, &bad_t, &p3, s, NULL};
    assert_int_equal(engine_decode(e, &bt, out2, err, sizeof err), -1);
    assert_non_null(strstr(err, "token 64"));
    /* a later bad row rejects the whole batch before anything runs */
    int32_t t2[2] = {4, 4}, p2[2] = {3, 9}, s2[2] = {0, 0};
    engine_batch b2 = {2, t2, p2, s2, NULL};
    assert_int_equal(engine_decode(e, &b2, out2, err, sizeof err), -1);
    assert_int_equal(engine_seq_len(e, 0), 3);

    /* truncate to 2 and redo position 2 with the same token: same logits */
    assert_int_equal(engine_seq_truncate(e, 0, 4), -1);
    assert_int_equal(engine_seq_truncate(e, 0, 2), 0);
    int32_t pos2 = 2;
    engine_batch again = {1, &t[2], &pos2, s, NULL};
    assert_int_equal(engine_decode(e, &again, out2, err, sizeof err), 0);
    assert_memory_equal(out, out2, sizeof out);

    /* reset: slot 0 starts over at position 0 */
    engine_seq_reset(e, 0);
    assert_int_equal(engine_seq_len(e, 0), 0);
    assert_int_equal(engine_decode(e, &b, out2, err, sizeof err), 0);
    assert_memory_equal(out, out2, sizeof out);

    /* empty batch is a no-op */
    engine_batch empty = {0, NULL, NULL, NULL, NULL};
    assert_int_equal(engine_decode(e, &empty, NULL, err, sizeof err), 0);
    engine_free(e);
    model_free(m);
}

static void test_context_full(void **st)
{
    (void)st;
    model *m = load_ok();
    engine *e = mk_engine(m, 1, 512, 1); /* n_ctx 32 */
    int32_t t[33], p[33], s[33] = {0};
    for (int i = 0; i < 33; i++) {
        t[i] = i % NV;
        p[i] = i;
    }
    float out[NV];
    engine_batch b = {33, t, p, s, NULL};
    assert_int_equal(engine_decode(e, &b, out, err, sizeof err), -1);
    assert_non_null(strstr(err, "full"));
    assert_int_equal(engine_seq_len(e, 0), 0);
    b.n = 32;
    assert_int_equal(engine_decode(e, &b, out, err, sizeof err), 0);
    engine_free(e);
    model_free(m);
}

static void test_engine_params(void **st)
{
    (void)st;
    model *m = load_ok();
    engine_params p = engine_default_params();
    p.n_seq_max = 0;
    assert_null(engine_new(m, &p, err, sizeof err));
    assert_non_null(strstr(err, "n_seq_max"));
    p = engine_default_params();
    p.n_batch = ENGINE_MAX_BATCH + 1;
    assert_null(engine_new(m, &p, err, sizeof err));
    p = engine_default_params();
    engine *e = engine_new(m, &p, err, sizeof err);
    assert_non_null(e);
    assert_int_equal(engine_n_ctx(e), 64); /* min(n_ctx_train, default) */
    assert_int_equal(engine_n_vocab(e), NV);
    engine_free(e);
    model_params mp = model_default_params();
    mp.vocab_only = 1;
    model *vm = model_load(model_path, &mp, err, sizeof err);
    assert_non_null(vm);
    assert_null(engine_new(vm, &p, err, sizeof err));
    assert_non_null(strstr(err, "vocab only"));
    model_free(vm);
    model_free(m);
}

/* Resident pages of this process (Linux /proc/self/statm), in bytes. */
static size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, res = 0;
    assert_non_null(f);
    assert_int_equal(fscanf(f, "%lu %lu", &size, &res), 2);
    fclose(f);
    return (size_t)res * (size_t)sysconf(_SC_PAGESIZE);
}

/* kv_commit: the pool's memory is resident once the engine exists (not
 * before a step writes it), and the logits are the same bits. */
static void test_kv_commit(void **st)
{
    (void)st;
    model *m = load_ok();
    enum { POOL_MIB = 64 };
    float out[2][NV];
    for (int commit = 0; commit <= 1; commit++) {
        engine_params p = engine_default_params();
        p.n_ctx = 32;
        p.kv_cache_bytes = (size_t)POOL_MIB << 20;
        p.kv_commit = commit;
        const size_t before = rss_bytes();
        engine *e = engine_new(m, &p, err, sizeof err);
        if (!e)
            fail_msg("engine_new: %s", err);
        const size_t grew = rss_bytes() - before;
        if (commit)
            assert_true(grew >= (size_t)(POOL_MIB - 8) << 20);
        else
            assert_true(grew < (size_t)(POOL_MIB / 2) << 20); /* lazily committed (sanitizers add shadow pages) */
        int32_t tok[3] = {1, 2, 3}, pos[3] = {0, 1, 2}, seq[3] = {0, 0, 0};
        engine_batch b = {3, tok, pos, seq, NULL};
        assert_int_equal(engine_decode(e, &b, out[commit], err, sizeof err), 0);
        engine_free(e);
    }
    assert_memory_equal(out[0], out[1], sizeof out[0]);
    model_free(m);
}

static void expect_load_error(const opts *o, const char *needle)
{
    char path[64] = "/tmp/ward-test-engine-bad-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    write_model(path, o);
    model *m = model_load(path, NULL, err, sizeof err);
    unlink(path);
    if (m) {
        model_free(m);
        fail_msg("model loaded; expected an error containing '%s'", needle);
    }
    if (!strstr(err, needle))
        fail_msg("error '%s' does not contain '%s'", err, needle);
}

static void test_malformed_models(void **st)
{
    (void)st;
    opts o = {0};
    o.arch = "gpt2";
    expect_load_error(&o, "unsupported architecture 'gpt2'");
    o = (opts){0};
    o.skip = "blk.1.ffn_down.weight";
    expect_load_error(&o, "missing tensor 'blk.1.ffn_down.weight'");
    o = (opts){0};
    o.bad_shape = "blk.0.attn_k.weight";
    expect_load_error(&o, "tensor 'blk.0.attn_k.weight' has shape [32, 17, 1, 1], expected [32, 16]");
    o = (opts){0};
    o.wtype = GGML_T_Q8_1;
    expect_load_error(&o, "unsupported type Q8_1");
    o = (opts){0};
    o.n_head_kv = 3;
    expect_load_error(&o, "not a multiple of head_count_kv 3");
    o = (opts){0};
    o.tokens_count = NV - 1;
    expect_load_error(&o, "tokenizer has 63 tokens but token_embd.weight has 64 rows");
    o = (opts){0};
    o.no_eps = 1;
    expect_load_error(&o, "missing key 'llama.attention.layer_norm_rms_epsilon'");
    o = (opts){0};
    o.skip = "output.weight"; /* tied embeddings: fine */
    char path[64] = "/tmp/ward-test-engine-tied-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    write_model(path, &o);
    model *m = model_load(path, NULL, err, sizeof err);
    unlink(path);
    assert_non_null(m);
    assert_int_equal(model_get_hparams(m)->tied_embeddings, 1);
    assert_ptr_equal(model_output(m)->data, model_tok_embd(m)->data);
    model_free(m);
    assert_null(model_load("/nonexistent/ward.gguf", NULL, err, sizeof err));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hparams),
        cmocka_unit_test(test_batching_equivalence),
        cmocka_unit_test(test_batching_split_steps),
        cmocka_unit_test(test_batching_threads),
        cmocka_unit_test(test_positions_and_slots),
        cmocka_unit_test(test_context_full),
        cmocka_unit_test(test_engine_params),
        cmocka_unit_test(test_kv_commit),
        cmocka_unit_test(test_malformed_models),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
