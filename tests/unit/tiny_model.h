/* tiny_model.h: writes a tiny random-weight llama/qwen2 GGUF with the
 * project's writer, for the engine, KV-cache and scheduler unit tests.
 * Header-only (static functions); include it after <cmocka.h>. */
#ifndef WARD_TEST_TINY_MODEL_H
#define WARD_TEST_TINY_MODEL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/gguf.h"

typedef struct {
    const char *arch;        /* default "llama" */
    int n_embd, n_vocab, n_ff, n_layer, n_head, n_head_kv, n_ctx; /* 0 = defaults 32/64/48/2/4/2/64 */
    uint64_t seed;           /* 0 = 12345 */
    const char *skip;        /* tensor to leave out */
    const char *bad_shape;   /* tensor written with one more row */
    uint32_t wtype;          /* type of blk.0.attn_q.weight (zero bytes); 0 = F32 random */
    int tokens_count;        /* tokenizer.ggml.tokens entries; 0 = none */
    int no_eps;              /* leave out the rms epsilon key */
} tiny_model_opts;

static uint64_t tiny_model_rng;

static float tiny_model_rand(void) /* uniform in [-1, 1) */
{
    tiny_model_rng = tiny_model_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((tiny_model_rng >> 40) & 0xffffff) / (float)0x1000000 * 2.0f - 1.0f;
}

static void tiny_model_add(gguf_writer *w, const char *name, uint64_t ne0, uint64_t ne1, float gain, float base)
{
    size_t n = (size_t)(ne0 * ne1);
    float *d = malloc(n * sizeof *d);
    assert_non_null(d);
    for (size_t i = 0; i < n; i++)
        d[i] = base + gain * tiny_model_rand();
    uint64_t ne[2] = {ne0, ne1};
    assert_int_equal(gguf_add_tensor(w, name, GGML_T_F32, ne1 == 1 ? 1 : 2, ne, d), 0);
    free(d);
}

static void tiny_model_write(const char *path, const tiny_model_opts *o)
{
    const uint64_t E = (uint64_t)(o->n_embd ? o->n_embd : 32), V = (uint64_t)(o->n_vocab ? o->n_vocab : 64);
    const uint64_t F = (uint64_t)(o->n_ff ? o->n_ff : 48);
    const int L = o->n_layer ? o->n_layer : 2, H = o->n_head ? o->n_head : 4;
    const int KVH = o->n_head_kv ? o->n_head_kv : 2;
    const uint64_t QD = (uint64_t)H * (E / (uint64_t)H), KD = (uint64_t)KVH * (E / (uint64_t)H);
    tiny_model_rng = o->seed ? o->seed : 12345;
    gguf_writer *w = gguf_writer_new();
    assert_non_null(w);
    const char *a = o->arch ? o->arch : "llama";
    char k[128];
    gguf_set_str(w, "general.architecture", a);
#define TM_U32(suffix, v) (snprintf(k, sizeof k, "%s." suffix, a), gguf_set_u32(w, k, (uint32_t)(v)))
    TM_U32("context_length", o->n_ctx ? o->n_ctx : 64);
    TM_U32("embedding_length", E);
    TM_U32("block_count", L);
    TM_U32("feed_forward_length", F);
    TM_U32("attention.head_count", H);
    TM_U32("attention.head_count_kv", KVH);
#undef TM_U32
    if (!o->no_eps) {
        snprintf(k, sizeof k, "%s.attention.layer_norm_rms_epsilon", a);
        gguf_set_f32(w, k, 1e-5f);
    }
    if (o->tokens_count > 0) {
        const char **t = malloc((size_t)o->tokens_count * sizeof *t);
        assert_non_null(t);
        for (int i = 0; i < o->tokens_count; i++)
            t[i] = "x";
        gguf_set_arr_str(w, "tokenizer.ggml.tokens", t, (size_t)o->tokens_count);
        free(t);
    }
    static const char *const suf[9] = {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                                       "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"};
    const uint64_t dims[9][2] = {{E, 1}, {E, QD}, {E, KD}, {E, KD}, {QD, E}, {E, 1}, {E, F}, {E, F}, {F, E}};
    struct { char name[48]; uint64_t ne0, ne1; float gain, base; } t[3 + 9 * 64];
    int n = 0;
    assert_true(L <= 64);
#define TM_T(nm, a0, a1, g, b)                                   \
    do {                                                         \
        snprintf(t[n].name, sizeof t[n].name, "%s", nm);         \
        t[n].ne0 = (a0), t[n].ne1 = (a1), t[n].gain = (g), t[n].base = (b); \
        n++;                                                     \
    } while (0)
    TM_T("token_embd.weight", E, V, 1.0f, 0.0f);
    TM_T("output_norm.weight", E, 1, 0.1f, 1.0f);
    TM_T("output.weight", E, V, 0.5f, 0.0f);
    for (int l = 0; l < L; l++)
        for (int j = 0; j < 9; j++) {
            char nm[48];
            snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, suf[j]);
            int norm = dims[j][1] == 1;
            TM_T(nm, dims[j][0], dims[j][1], norm ? 0.1f : 0.4f, norm ? 1.0f : 0.0f);
        }
#undef TM_T
    for (int i = 0; i < n; i++) {
        if (o->skip && strcmp(o->skip, t[i].name) == 0)
            continue;
        uint64_t ne1 = t[i].ne1 + (o->bad_shape && strcmp(o->bad_shape, t[i].name) == 0);
        if (o->wtype && strcmp(t[i].name, "blk.0.attn_q.weight") == 0) {
            size_t be, bb; /* zero bytes of the right size for the type */
            assert_int_equal(ggml_type_block(o->wtype, &be, &bb), 0);
            void *z = calloc(1, (size_t)(t[i].ne0 / be * bb * ne1));
            uint64_t ne[2] = {t[i].ne0, ne1};
            assert_int_equal(gguf_add_tensor(w, t[i].name, o->wtype, 2, ne, z), 0);
            free(z);
            continue;
        }
        tiny_model_add(w, t[i].name, t[i].ne0, ne1, t[i].gain, t[i].base);
    }
    char err[256];
    if (gguf_writer_write(w, path, err, sizeof err) != 0)
        fail_msg("tiny_model_write: %s", err);
    gguf_writer_free(w);
}

#endif
