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
            "usage: ward bench --model FILE [-p 128] [-n 64] [--threads N] [--parallel N] [--json]\n"
            "\n"
            "Measures prompt processing (one batch of -p tokens) and decoding (-n tokens,\n"
            "one at a time) and prints tokens per second. --parallel N: N sequences at\n"
            "once (N prompts in one batch, then -n steps of N tokens, one per sequence,\n"
            "as continuous batching runs them); tokens/s count every sequence's tokens.\n");
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

int cmd_bench(int argc, char **argv)
{
    if (cmd_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const char *path = NULL;
    long n_p = 128, n_g = 64, threads = 0, par = 1;
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
    ep.n_ctx = (int)(n_p + n_g);
    ep.n_threads = (int)threads;
    ep.n_seq_max = (int)par;
    e = engine_new(m, &ep, err, sizeof err);
    if (!e) {
        fprintf(stderr, "ward bench: %s\n", err);
        goto done;
    }
    /* sequence k's tokens at k * (p + n): its prompt, then its decode tokens */
    const size_t per = (size_t)(n_p + n_g), n_all = per * (size_t)par;
    tok = malloc(n_all * sizeof *tok);
    pos = malloc(n_all * sizeof *pos);
    seq = calloc(n_all, sizeof *seq);
    logits = malloc((size_t)hp->n_vocab * (size_t)par * sizeof *logits);
    if (!tok || !pos || !seq || !logits) {
        fprintf(stderr, "ward bench: out of memory\n");
        goto done;
    }
    uint64_t x = 0x2545f4914f6cdd1dull;
    for (size_t i = 0; i < n_all; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        tok[i] = (int32_t)(x % hp->n_vocab);
        pos[i] = (int32_t)(i % per);
        seq[i] = (int32_t)(i / per);
    }
    /* batches: the prompts of all sequences, then one row per sequence */
    int32_t *bt = malloc(n_all * sizeof *bt), *bp = malloc(n_all * sizeof *bp), *bs = malloc(n_all * sizeof *bs);
    if (!bt || !bp || !bs) {
        free(bt), free(bp), free(bs);
        fprintf(stderr, "ward bench: out of memory\n");
        goto done;
    }
    double pp = 0, tg = 0;
    uint64_t t0 = clock_mono_ns();
    int brc = 0;
    if (n_p > 0) {
        int r = 0;
        for (long k = 0; k < par; k++)
            for (long i = 0; i < n_p; i++, r++) {
                bt[r] = tok[(size_t)k * per + (size_t)i];
                bp[r] = pos[(size_t)k * per + (size_t)i];
                bs[r] = seq[(size_t)k * per + (size_t)i];
            }
        engine_batch b = {r, bt, bp, bs, NULL};
        brc = engine_decode(e, &b, logits, err, sizeof err);
    }
    uint64_t t1 = clock_mono_ns();
    for (long i = 0; i < n_g && brc == 0; i++) {
        for (long k = 0; k < par; k++) {
            bt[k] = tok[(size_t)k * per + (size_t)(n_p + i)];
            bp[k] = pos[(size_t)k * per + (size_t)(n_p + i)];
            bs[k] = (int32_t)k;
        }
        engine_batch b = {(int)par, bt, bp, bs, NULL};
        brc = engine_decode(e, &b, logits, err, sizeof err);
    }
    uint64_t t2 = clock_mono_ns();
    free(bt), free(bp), free(bs);
    if (brc != 0) {
        fprintf(stderr, "ward bench: %s\n", err);
        goto done;
    }
    if (n_p > 0 && t1 > t0)
        pp = (double)(n_p * par) / ((double)(t1 - t0) / 1e9);
    if (n_g > 0 && t2 > t1)
        tg = (double)(n_g * par) / ((double)(t2 - t1) / 1e9);

    if (json) {
        json_t *o = json_pack("{s:f,s:f,s:i,s:i,s:i,s:i,s:s,s:I}", "pp_tok_s", pp, "tg_tok_s", tg,
                              "n_prompt", (int)n_p, "n_gen", (int)n_g, "parallel", (int)par,
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
done:
    free(tok);
    free(pos);
    free(seq);
    free(logits);
    engine_free(e);
    model_free(m);
    return rc;
}
