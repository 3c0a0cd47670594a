/* ward bench: prompt-processing and decode throughput of the CPU engine, in
 * the spirit of llama-bench's pp/tg numbers. Token ids are pseudo-random
 * (fixed seed): throughput does not depend on which tokens they are. */
#include "cmd/cmd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "engine/engine.h"
#include "engine/model.h"
#include "util/clock.h"

#define BENCH_MAX_TOKENS 65536 /* -p and -n; the context is p + n */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ward bench --model FILE [-p 128] [-n 64] [--depth 0] [--threads N] [--parallel N]\n"
            "                  [--json]\n"
            "\n"
            "Measures prompt processing (one batch of -p tokens) and decoding (-n tokens,\n"
            "one at a time) and prints tokens per second. As llama-bench does, an untimed\n"
            "warm-up (the prompt, then one decoded token) runs first, and each test starts\n"
            "from an empty context, or after --depth tokens already in the cache (not\n"
            "timed). --parallel N: N sequences at once (N prompts in one batch, then\n"
            "-n steps of N tokens, one per sequence, as continuous batching runs them);\n"
            "tokens/s count every sequence's tokens.\n");
}

static int parse_count(const char *s, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0 || v > BENCH_MAX_TOKENS)
        return -1;
    *out = v;
    return 0;
}

/* Decodes n tokens of each of par sequences at positions start.. (one
 * batch). 0, or -1 with err. */
static int bench_fill(engine *e, const model_hparams *hp, long par, long start, long n, int32_t *tok, int32_t *pos,
                      int32_t *seq, float *logits, uint64_t *rng, char *err, size_t errlen)
{
    if (n == 0)
        return 0;
    int r = 0;
    for (long k = 0; k < par; k++)
        for (long i = 0; i < n; i++, r++) {
            *rng ^= *rng << 13, *rng ^= *rng >> 7, *rng ^= *rng << 17;
            tok[r] = (int32_t)(*rng % hp->n_vocab);
            pos[r] = (int32_t)(start + i);
            seq[r] = (int32_t)k;
        }
    engine_batch b = {r, tok, pos, seq, NULL};
    return engine_decode(e, &b, logits, err, errlen) == 0 ? 0 : -1;
}

int cmd_bench(int argc, char **argv)
{
    if (cmd_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const char *path = NULL;
    long n_p = 128, n_g = 64, threads = 0, par = 1, n_d = 0;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--json") == 0) {
            json = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "ward bench: %s needs a value (see --help)\n", a);
            return 2;
        }
        int bad = 0;
        if (strcmp(a, "--model") == 0 || strcmp(a, "-m") == 0)
            path = v;
        else if (strcmp(a, "-p") == 0)
            bad = parse_count(v, &n_p);
        else if (strcmp(a, "-n") == 0)
            bad = parse_count(v, &n_g);
        else if (strcmp(a, "--depth") == 0 || strcmp(a, "-d") == 0)
            bad = parse_count(v, &n_d);
        else if (strcmp(a, "--parallel") == 0 || strcmp(a, "-np") == 0)
            bad = parse_count(v, &par) || par < 1 || par > ENGINE_MAX_SEQ;
        else if (strcmp(a, "--threads") == 0 || strcmp(a, "-t") == 0)
            bad = parse_count(v, &threads) || threads < 1 || threads > ENGINE_MAX_THREADS;
        else {
            fprintf(stderr, "ward bench: unknown option '%s' (see --help)\n", a);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "ward bench: bad value for %s: '%s'\n", a, v);
            return 2;
        }
        i++;
    }
    if (!path) {
        fprintf(stderr, "ward bench: --model is required\n");
        return 2;
    }
    if (n_d + (n_p > n_g ? n_p : n_g) > BENCH_MAX_TOKENS) {
        fprintf(stderr, "ward bench: --depth plus -p or -n exceeds %d tokens\n", BENCH_MAX_TOKENS);
        return 2;
    }
    if (n_p + n_g < 1) {
        fprintf(stderr, "ward bench: nothing to measure (-p 0 -n 0)\n");
        return 2;
    }

    char err[512];
    int rc = 1;
    engine *e = NULL;
    int32_t *tok = NULL, *pos = NULL, *seq = NULL;
    float *logits = NULL;
    model *m = model_load(path, NULL, err, sizeof err);
    if (!m) {
        fprintf(stderr, "ward bench: %s\n", err);
        return 1;
    }
    const model_hparams *hp = model_get_hparams(m);
    engine_params ep = engine_default_params();
    ep.n_ctx = (int)(n_d + (n_p > n_g ? n_p : n_g));
    if (ep.n_ctx < n_p + 1) /* the warm-up decodes one token after the prompt */
        ep.n_ctx = (int)n_p + 1;
    ep.n_threads = (int)threads;
    ep.n_seq_max = (int)par;
    ep.kv_commit = 1; /* as llama-bench's context: the KV pool committed before timing */
    e = engine_new(m, &ep, err, sizeof err);
    if (!e) {
        fprintf(stderr, "ward bench: %s\n", err);
        goto done;
    }
    /* Batches: up to max(p, depth) rows per sequence, par sequences. */
    const size_t rows = (size_t)(n_p > n_d ? n_p : n_d) * (size_t)par + (size_t)par;
    tok = malloc(rows * sizeof *tok);
    pos = malloc(rows * sizeof *pos);
    seq = malloc(rows * sizeof *seq);
    logits = malloc((size_t)hp->n_vocab * (size_t)par * sizeof *logits);
    if (!tok || !pos || !seq || !logits) {
        fprintf(stderr, "ward bench: out of memory\n");
        goto done;
    }
    uint64_t rng = 0x2545f4914f6cdd1dull;
    double pp = 0, tg = 0;
    /* As llama-bench: a warm-up (the prompt, one decoded token: first-touch
     * page faults in the KV cache and scratch buffers are not the engine's
     * speed), then the prompt test and the decode test, each from an empty
     * context (after --depth tokens, not timed); random tokens. */
    for (long k = 0; k < par; k++)
        engine_seq_reset(e, (int)k);
    if (bench_fill(e, hp, par, 0, n_p, tok, pos, seq, logits, &rng, err, sizeof err) != 0 ||
        (n_g > 0 && bench_fill(e, hp, par, n_p, 1, tok, pos, seq, logits, &rng, err, sizeof err) != 0))
        goto fail;
    for (int test = 0; test < 2; test++) {
        const long n = test == 0 ? n_p : n_g;
        if (n == 0)
            continue;
        for (long k = 0; k < par; k++)
            engine_seq_reset(e, (int)k);
        if (bench_fill(e, hp, par, 0, n_d, tok, pos, seq, logits, &rng, err, sizeof err) != 0)
            goto fail;
        const uint64_t t0 = clock_mono_ns();
        if (test == 0) {
            if (bench_fill(e, hp, par, n_d, n_p, tok, pos, seq, logits, &rng, err, sizeof err) != 0)
                goto fail;
        } else {
            for (long i = 0; i < n_g; i++)
                if (bench_fill(e, hp, par, n_d + i, 1, tok, pos, seq, logits, &rng, err, sizeof err) != 0)
                    goto fail;
        }
        const double secs = (double)(clock_mono_ns() - t0) / 1e9;
        if (secs > 0)
            *(test == 0 ? &pp : &tg) = (double)(n * par) / secs;
    }

    if (json) {
        json_t *o = json_pack("{s:f,s:f,s:i,s:i,s:i,s:i,s:i,s:s,s:I}", "pp_tok_s", pp, "tg_tok_s", tg,
                              "n_prompt", (int)n_p, "n_gen", (int)n_g, "depth", (int)n_d, "parallel", (int)par,
                              "threads", engine_n_threads(e),
                              "arch", hp->arch_name, "weight_bytes", (json_int_t)model_weight_bytes(m));
        if (!o) {
            fprintf(stderr, "ward bench: out of memory\n");
            goto done;
        }
        json_dumpf(o, stdout, JSON_COMPACT);
        printf("\n");
        json_decref(o);
    } else {
        printf("model    %s (%s, %u layers, %.1f MiB of weights), %d threads\n", path, hp->arch_name,
               hp->n_layer, (double)model_weight_bytes(m) / (1 << 20), engine_n_threads(e));
        printf("pp%-5ld %10.2f tok/s%s\n", n_p, pp, par > 1 ? " (all sequences)" : "");
        printf("tg%-5ld %10.2f tok/s%s\n", n_g, tg, par > 1 ? " (all sequences)" : "");
        if (par > 1)
            printf("parallel %ld sequences: %.2f ms per decode step\n", par, n_g > 0 && tg > 0 ? 1e3 * (double)par / tg : 0.0);
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "ward bench: %s\n", err);
done:
    free(tok);
    free(pos);
    free(seq);
    free(logits);
    engine_free(e);
    model_free(m);
    return rc;
}
