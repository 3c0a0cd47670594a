/* ward run: load a model, decode a prompt, generate tokens. A development and
 * conformance tool: --json prints the generated ids, --dump-logits writes
 * the logits each sampled token was drawn from. */
#include "cmd/cmd.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "engine/engine.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "engine/tokenizer.h"
#include "util/clock.h"
#include "util/log.h"

#define RUN_MAX_PROMPT_IDS (1 << 20) /* --prompt-ids entries; the context bounds it further */
#define RUN_MAX_GEN (1 << 20)        /* -n */
#define RUN_DEFAULT_GEN 32

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ward run --model FILE (--prompt-ids 1,2,3 | --prompt TEXT) [options]\n"
            "\n"
            "Decodes the prompt and generates tokens with the CPU engine.\n"
            "\n"
            "  --model FILE         GGUF model (llama or qwen2 architecture)\n"
            "  --prompt-ids LIST    comma-separated token ids, used as given (no BOS added)\n"
            "  --prompt TEXT        text prompt, tokenized with the model's vocabulary (BOS added\n"
            "                       as the vocabulary asks; special tokens in the text are parsed)\n"
            "  -n N                 tokens to generate (default %d)\n"
            "  --temperature T      0 = greedy (default 0)\n"
            "  --top-k K, --top-p P, --min-p P, --repeat-penalty R\n"
            "  --seed S             sampling seed (default: random)\n"
            "  --ignore-eos         do not stop at end-of-generation tokens (EOS, EOT, ...)\n"
            "  --ctx N              context size (default: prompt + n)\n"
            "  --threads N          worker threads (default: CPUs, at most 8)\n"
            "  --dump-logits FILE   write the logits of every sampling step (the last prompt\n"
            "                       position, then each generated token) as raw little-endian f32,\n"
            "                       n_vocab values per step\n"
            "  --json               print {\"ids\":[...],\"text\":\"...\",\"finish_reason\":...}\n"
            "                       (ids exclude the end-of-generation token; text is the\n"
            "                       detokenized continuation, its leading space kept)\n"
            "Without --json the generated text is streamed to stdout.\n",
            RUN_DEFAULT_GEN);
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_float(const char *s, float *out)
{
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end)
        return -1;
    *out = v;
    return 0;
}

/* "1,2,3" -> ids (malloc'd). -1 on syntax error or too many. */
static int parse_ids(const char *s, int32_t **out, int *n_out)
{
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    if (cap > RUN_MAX_PROMPT_IDS)
        return -1;
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids)
        return -1;
    int n = 0;
    const char *p = s;
    for (;;) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno || end == p || v < 0 || v > INT32_MAX || (*end != ',' && *end != 0)) {
            free(ids);
            return -1;
        }
        ids[n++] = (int32_t)v;
        if (*end == 0)
            break;
        p = end + 1;
    }
    *out = ids;
    *n_out = n;
    return 0;
}

/* Streams a text piece to stdout, or (json) appends it to *buf. */
static int emit(char **buf, size_t *len, size_t *cap, const char *piece, size_t n, int json)
{
    if (!json) {
        fwrite(piece, 1, n, stdout);
        fflush(stdout);
        return 0;
    }
    if (*len + n + 1 > *cap) {
        size_t nc = (*cap ? *cap * 2 : 256) + n;
        char *b = realloc(*buf, nc);
        if (!b) {
            fprintf(stderr, "ward run: out of memory\n");
            return -1;
        }
        *buf = b;
        *cap = nc;
    }
    memcpy(*buf + *len, piece, n);
    *len += n;
    (*buf)[*len] = 0;
    return 0;
}

static int eos_id(const model *m, int32_t *out)
{
    uint32_t v;
    if (gguf_get_u32(model_gguf(m), "tokenizer.ggml.eos_token_id", &v) != 0 ||
        v >= model_get_hparams(m)->n_vocab)
        return -1;
    *out = (int32_t)v;
    return 0;
}

int cmd_run(int argc, char **argv)
{
    if (cmd_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const char *model_path = NULL, *prompt = NULL, *prompt_ids = NULL, *dump_path = NULL;
    long n_gen = RUN_DEFAULT_GEN, ctx = 0, threads = 0;
    int json = 0, ignore_eos = 0;
    sampler_params sp = sampler_default_params();
    sp.temperature = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long lv = 0;
        int bad = 0, takes = 1;
        if (strcmp(a, "--json") == 0) {
            json = 1;
            takes = 0;
        } else if (strcmp(a, "--ignore-eos") == 0) {
            ignore_eos = 1;
            takes = 0;
        } else if (!v) {
            fprintf(stderr, "ward run: %s needs a value (see --help)\n", a);
            return 2;
        } else if (strcmp(a, "--model") == 0 || strcmp(a, "-m") == 0) {
            model_path = v;
        } else if (strcmp(a, "--prompt") == 0 || strcmp(a, "-p") == 0) {
            prompt = v;
        } else if (strcmp(a, "--prompt-ids") == 0) {
            prompt_ids = v;
        } else if (strcmp(a, "--dump-logits") == 0) {
            dump_path = v;
        } else if (strcmp(a, "-n") == 0 || strcmp(a, "--n-predict") == 0) {
            bad = parse_long(v, 0, RUN_MAX_GEN, &n_gen);
        } else if (strcmp(a, "--ctx") == 0) {
            bad = parse_long(v, 1, ENGINE_MAX_CTX, &ctx);
        } else if (strcmp(a, "--threads") == 0 || strcmp(a, "-t") == 0) {
            bad = parse_long(v, 1, ENGINE_MAX_THREADS, &threads);
        } else if (strcmp(a, "--temperature") == 0 || strcmp(a, "--temp") == 0) {
            bad = parse_float(v, &sp.temperature);
        } else if (strcmp(a, "--top-k") == 0) {
            bad = parse_long(v, -1, INT_MAX, &lv);
            sp.top_k = (int)lv;
        } else if (strcmp(a, "--top-p") == 0) {
            bad = parse_float(v, &sp.top_p);
        } else if (strcmp(a, "--min-p") == 0) {
            bad = parse_float(v, &sp.min_p);
        } else if (strcmp(a, "--repeat-penalty") == 0) {
            bad = parse_float(v, &sp.repetition_penalty);
        } else if (strcmp(a, "--seed") == 0) {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(v, &end, 10);
            bad = errno || end == v || *end || v[0] == '-';
            sp.seed = s;
            sp.has_seed = 1;
        } else {
            fprintf(stderr, "ward run: unknown option '%s' (see --help)\n", a);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "ward run: bad value for %s: '%s'\n", a, v);
            return 2;
        }
        i += takes;
    }
    if (!model_path) {
        fprintf(stderr, "ward run: --model is required\n");
        return 2;
    }
    if (!!prompt + !!prompt_ids != 1) {
        fprintf(stderr, "ward run: give exactly one of --prompt and --prompt-ids\n");
        return 2;
    }
    int32_t *ids = NULL;
    int n_prompt = 0;
    if (prompt_ids && parse_ids(prompt_ids, &ids, &n_prompt) != 0) {
        fprintf(stderr, "ward run: --prompt-ids must be a comma-separated list of token ids\n");
        return 2;
    }

    char err[512];
    int rc = 1;
    model *m = NULL;
    engine *e = NULL;
    sampler *s = NULL;
    float *logits = NULL;
    FILE *dump = NULL;
    int32_t *out_ids = NULL;
    json_t *jids = NULL;
    tokenizer *tok = NULL;
    tokenizer_stream *ts = NULL;
    char *text = NULL;
    size_t text_len = 0, text_cap = 0;
    int n_out = 0;
    const char *finish = "length";

    m = model_load(model_path, NULL, err, sizeof err);
    if (!m) {
        fprintf(stderr, "ward run: %s\n", err);
        goto done;
    }
    const model_hparams *hp = model_get_hparams(m);
    tok = tokenizer_from_gguf(model_gguf(m), err, sizeof err);
    if (!tok && prompt) {
        fprintf(stderr, "ward run: %s\n", err);
        goto done;
    }
    if (!tok)
        log_pack(LOG_WARN, "ward.run", "no usable tokenizer: printing ids only", "{s:s}", "error", err);
    if (prompt) {
        size_t n;
        if (tokenizer_encode_alloc(tok, prompt, strlen(prompt), 1, 1, &ids, &n, err, sizeof err) != 0) {
            fprintf(stderr, "ward run: %s\n", err);
            goto done;
        }
        if (n > RUN_MAX_PROMPT_IDS) {
            fprintf(stderr, "ward run: the prompt is too long (%zu tokens)\n", n);
            rc = 2;
            goto done;
        }
        n_prompt = (int)n;
    }
    if (tok) {
        tokenizer_stream_params tp = tokenizer_stream_default_params();
        tp.strip_leading_space = 0; /* a continuation keeps its leading space */
        ts = tokenizer_stream_new(tok, &tp);
        if (!ts) {
            fprintf(stderr, "ward run: out of memory\n");
            goto done;
        }
    }
    for (int i = 0; i < n_prompt; i++)
        if (ids[i] >= (int32_t)hp->n_vocab) {
            fprintf(stderr, "ward run: prompt token %d out of range (vocabulary %u)\n", ids[i], hp->n_vocab);
            rc = 2;
            goto done;
        }
    if (n_prompt == 0) {
        fprintf(stderr, "ward run: the prompt is empty\n");
        rc = 2;
        goto done;
    }
    engine_params ep = engine_default_params();
    ep.n_ctx = ctx ? (int)ctx : (n_prompt + n_gen > ENGINE_MAX_CTX ? ENGINE_MAX_CTX : (int)(n_prompt + n_gen));
    ep.n_threads = (int)threads;
    if (n_prompt + n_gen > ep.n_ctx + 1) {
        fprintf(stderr, "ward run: prompt (%d) + n (%ld) exceeds the context (%d)\n", n_prompt, n_gen, ep.n_ctx);
        rc = 2;
        goto done;
    }
    e = engine_new(m, &ep, err, sizeof err);
    if (!e) {
        fprintf(stderr, "ward run: %s\n", err);
        goto done;
    }
    s = sampler_new(&sp, (int32_t)hp->n_vocab, err, sizeof err);
    if (!s) {
        fprintf(stderr, "ward run: %s\n", err);
        rc = 2;
        goto done;
    }
    sampler_accept_prompt(s, ids, (size_t)n_prompt);
    if (dump_path && !(dump = fopen(dump_path, "wb"))) {
        fprintf(stderr, "ward run: cannot open %s: %s\n", dump_path, strerror(errno));
        goto done;
    }
    logits = malloc((size_t)hp->n_vocab * sizeof *logits);
    out_ids = malloc(((size_t)n_gen + 1) * sizeof *out_ids);
    int32_t *pos = malloc((size_t)n_prompt * sizeof *pos);
    int32_t *seq = calloc((size_t)n_prompt, sizeof *seq);
    if (!logits || !out_ids || !pos || !seq) {
        free(pos);
        free(seq);
        fprintf(stderr, "ward run: out of memory\n");
        goto done;
    }
    for (int i = 0; i < n_prompt; i++)
        pos[i] = i;
    int32_t eos = -1;
    if (!ignore_eos && !tok)
        eos_id(m, &eos);

    uint64_t t0 = clock_mono_ns();
    engine_batch b = {n_prompt, ids, pos, seq, NULL};
    int drc = engine_decode(e, &b, logits, err, sizeof err);
    free(pos);
    free(seq);
    if (drc != 0) {
        fprintf(stderr, "ward run: %s\n", err);
        goto done;
    }
    uint64_t t1 = clock_mono_ns();
    int32_t next_pos = n_prompt, zero = 0;
    for (;;) {
        if (n_out >= n_gen)
            break;
        if (dump && fwrite(logits, sizeof *logits, hp->n_vocab, dump) != hp->n_vocab) {
            fprintf(stderr, "ward run: writing %s failed\n", dump_path);
            goto done;
        }
        sampler_result r;
        if (sampler_sample(s, logits, &r, err, sizeof err) != 0) {
            fprintf(stderr, "ward run: %s\n", err);
            goto done;
        }
        if (!ignore_eos && (r.token == eos || (tok && tokenizer_is_eog(tok, r.token)))) {
            finish = "stop";
            break;
        }
        out_ids[n_out++] = r.token;
        size_t plen = 0;
        const char *piece = ts ? tokenizer_stream_push(ts, r.token, &plen) : NULL;
        if (piece && emit(&text, &text_len, &text_cap, piece, plen, json) != 0)
            goto done;
        if (!json && !ts) {
            printf("%d ", r.token);
            fflush(stdout);
        }
        if (n_out >= n_gen)
            break;
        engine_batch one = {1, &r.token, &next_pos, &zero, NULL};
        if (engine_decode(e, &one, logits, err, sizeof err) != 0) {
            fprintf(stderr, "ward run: %s\n", err);
            goto done;
        }
        next_pos++;
    }
    if (ts && n_out > 0) {
        size_t plen = 0;
        const char *piece = tokenizer_stream_flush(ts, &plen);
        if (piece && emit(&text, &text_len, &text_cap, piece, plen, json) != 0)
            goto done;
    }
    uint64_t t2 = clock_mono_ns();
    double pp_s = (double)(t1 - t0) / 1e9, tg_s = (double)(t2 - t1) / 1e9;
    log_pack(LOG_INFO, "ward.run", "generation done", "{s:i,s:i,s:f,s:f}", "prompt_tokens", n_prompt,
             "generated_tokens", n_out, "prompt_tok_s", pp_s > 0 ? n_prompt / pp_s : 0.0,
             "gen_tok_s", tg_s > 0 ? n_out / tg_s : 0.0);

    if (json) {
        jids = json_array();
        for (int i = 0; i < n_out; i++)
            json_array_append_new(jids, json_integer(out_ids[i]));
        json_t *o = json_pack("{s:O,s:s%,s:s}", "ids", jids, "text", text ? text : "", text_len,
                              "finish_reason", finish);
        if (!o) {
            fprintf(stderr, "ward run: out of memory\n");
            goto done;
        }
        json_dumpf(o, stdout, JSON_COMPACT);
        json_decref(o);
    }
    printf("\n");
    rc = 0;
done:
    if (dump && fclose(dump) != 0 && rc == 0) {
        fprintf(stderr, "ward run: writing %s failed\n", dump_path);
        rc = 1;
    }
    json_decref(jids);
    free(text);
    tokenizer_stream_free(ts);
    tokenizer_free(tok);
    free(out_ids);
    free(logits);
    free(ids);
    sampler_free(s);
    engine_free(e);
    model_free(m);
    return rc;
}
