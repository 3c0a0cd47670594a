/* sampler: see sampler.h for the processing order and the logprob choice. */
#include "engine/sampler.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/rand.h"

struct sampler {
    sampler_params p;
    int32_t n_vocab;
    uint64_t rng[4];          /* xoshiro256** state */
    size_t n_output;
    /* Penalty bookkeeping, allocated only when a penalty is active. */
    int penalties;
    uint32_t *out_count;      /* [n_vocab] occurrences among output tokens */
    uint8_t *in_prompt;       /* [n_vocab] 1 if seen in the prompt */
    int32_t *touched;         /* distinct tokens seen (prompt or output) */
    size_t n_touched;
    /* Scratch for non-greedy sampling, allocated on first use. */
    float *work;              /* [n_vocab] processed logits / weights */
    int32_t *cand;            /* [n_vocab] candidate ids */
};

sampler_params sampler_default_params(void)
{
    sampler_params p;
    memset(&p, 0, sizeof p);
    p.temperature = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.repetition_penalty = 1.0f;
    return p;
}

/* ---- RNG: splitmix64 to expand the seed, xoshiro256** for the stream ---- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xoshiro_next(uint64_t s[4])
{
    uint64_t r = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

/* Uniform double in [0, 1) with 53 random bits. */
static double rng_uniform(uint64_t s[4]) { return (double)(xoshiro_next(s) >> 11) * 0x1.0p-53; }

/* ---- parameters ---- */

int sampler_params_check(const sampler_params *p, int32_t n_vocab, char *err, size_t errlen)
{
#define FAIL(...) do { snprintf(err, errlen, __VA_ARGS__); return -1; } while (0)
    if (n_vocab <= 0 || n_vocab > SAMPLER_MAX_VOCAB)
        FAIL("sampler: vocabulary size %ld out of range", (long)n_vocab);
    if (!isfinite(p->temperature) || p->temperature < 0)
        FAIL("sampler: temperature must be finite and >= 0");
    if (!isfinite(p->top_p) || p->top_p <= 0 || p->top_p > 1)
        FAIL("sampler: top_p must be in (0, 1]");
    if (!isfinite(p->min_p) || p->min_p < 0 || p->min_p > 1)
        FAIL("sampler: min_p must be in [0, 1]");
    if (!isfinite(p->repetition_penalty) || p->repetition_penalty <= 0)
        FAIL("sampler: repetition_penalty must be finite and > 0");
    if (!isfinite(p->presence_penalty) || fabsf(p->presence_penalty) > 2)
        FAIL("sampler: presence_penalty must be in [-2, 2]");
    if (!isfinite(p->frequency_penalty) || fabsf(p->frequency_penalty) > 2)
        FAIL("sampler: frequency_penalty must be in [-2, 2]");
    if (p->n_logprobs < 0 || p->n_logprobs > SAMPLER_MAX_LOGPROBS)
        FAIL("sampler: n_logprobs must be in [0, %d]", SAMPLER_MAX_LOGPROBS);
    if (p->n_logit_bias < 0 || p->n_logit_bias > SAMPLER_MAX_LOGIT_BIAS)
        FAIL("sampler: at most %d logit_bias entries", SAMPLER_MAX_LOGIT_BIAS);
    for (int i = 0; i < p->n_logit_bias; i++) {
        if (p->logit_bias[i].token < 0 || p->logit_bias[i].token >= n_vocab)
            FAIL("sampler: logit_bias token %ld out of vocabulary range [0, %ld)",
                 (long)p->logit_bias[i].token, (long)n_vocab);
        if (!isfinite(p->logit_bias[i].bias))
            FAIL("sampler: logit_bias value for token %ld is not finite", (long)p->logit_bias[i].token);
    }
    return 0;
#undef FAIL
}

sampler *sampler_new(const sampler_params *p, int32_t n_vocab, char *err, size_t errlen)
{
    if (sampler_params_check(p, n_vocab, err, errlen) != 0)
        return NULL;
    sampler *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "sampler: out of memory");
        return NULL;
    }
    s->p = *p;
    s->n_vocab = n_vocab;
    if (s->p.temperature > 0 && s->p.temperature < SAMPLER_MIN_TEMPERATURE)
        s->p.temperature = SAMPLER_MIN_TEMPERATURE;

    uint64_t seed = p->seed;
    if (!p->has_seed && rand_bytes(&seed, sizeof seed) != 0) {
        snprintf(err, errlen, "sampler: no randomness available for seeding");
        free(s);
        return NULL;
    }
    for (int i = 0; i < 4; i++)
        s->rng[i] = splitmix64(&seed);

    s->penalties = p->repetition_penalty != 1.0f || p->presence_penalty != 0.0f ||
                   p->frequency_penalty != 0.0f;
    if (s->penalties) {
        s->out_count = calloc((size_t)n_vocab, sizeof *s->out_count);
        s->in_prompt = calloc((size_t)n_vocab, 1);
        s->touched = malloc((size_t)n_vocab * sizeof *s->touched);
        if (!s->out_count || !s->in_prompt || !s->touched) {
            snprintf(err, errlen, "sampler: out of memory");
            sampler_free(s);
            return NULL;
        }
    }
    return s;
}

void sampler_free(sampler *s)
{
    if (!s)
        return;
    free(s->out_count);
    free(s->in_prompt);
    free(s->touched);
    free(s->work);
    free(s->cand);
    free(s);
}

static void touch(sampler *s, int32_t t)
{
    if (!s->in_prompt[t] && s->out_count[t] == 0)
        s->touched[s->n_touched++] = t; /* at most n_vocab distinct tokens */
}

void sampler_accept_prompt(sampler *s, const int32_t *tokens, size_t n)
{
    if (!s->penalties)
        return;
    for (size_t i = 0; i < n; i++) {
        int32_t t = tokens[i];
        if (t < 0 || t >= s->n_vocab)
            continue;
        touch(s, t);
        s->in_prompt[t] = 1;
    }
}

void sampler_accept(sampler *s, int32_t token)
{
    s->n_output++;
    if (!s->penalties || token < 0 || token >= s->n_vocab)
        return;
    touch(s, token);
    if (s->out_count[token] < UINT32_MAX)
        s->out_count[token]++;
}

size_t sampler_n_output(const sampler *s) { return s->n_output; }

/* ---- log-probabilities of the raw distribution ---- */

/* max and log-sum-exp of the logits. -1 if any is NaN or +inf, or all are -inf. */
static int raw_lse(const float *logits, int32_t n, double *lse_out)
{
    float mx = -INFINITY;
    for (int32_t i = 0; i < n; i++) {
        float v = logits[i];
        if (isnan(v) || v == INFINITY)
            return -1;
        if (v > mx)
            mx = v;
    }
    if (mx == -INFINITY)
        return -1;
    double sum = 0;
    for (int32_t i = 0; i < n; i++)
        sum += exp((double)logits[i] - mx);
    *lse_out = mx + log(sum);
    return 0;
}

/* The n_top largest logits, largest first, ties -> lower id first. */
static void top_n(const float *logits, int32_t n, int n_top, int32_t *ids, float *vals)
{
    int have = 0;
    for (int32_t i = 0; i < n; i++) {
        float v = logits[i];
        if (have == n_top && !(v > vals[have - 1]))
            continue;
        int j = have < n_top ? have++ : have - 1;
        while (j > 0 && v > vals[j - 1]) {
            vals[j] = vals[j - 1];
            ids[j] = ids[j - 1];
            j--;
        }
        vals[j] = v;
        ids[j] = i;
    }
}

static void fill_logprobs(const float *logits, int32_t n, double lse, int32_t token, int n_top,
                          sampler_result *out)
{
    if (n_top < 0)
        n_top = 0;
    if (n_top > SAMPLER_MAX_LOGPROBS)
        n_top = SAMPLER_MAX_LOGPROBS;
    if (n_top > n)
        n_top = (int)n;
    out->token = token;
    out->logprob = (float)((double)logits[token] - lse);
    out->n_top = n_top;
    if (n_top > 0) {
        top_n(logits, n, n_top, out->top_token, out->top_logprob);
        for (int i = 0; i < n_top; i++)
            out->top_logprob[i] = (float)((double)out->top_logprob[i] - lse);
    }
}

int sampler_logprobs(const float *logits, int32_t n_vocab, int32_t token, int n_top,
                     sampler_result *out)
{
    double lse;
    if (n_vocab <= 0 || token < 0 || token >= n_vocab || raw_lse(logits, n_vocab, &lse) != 0)
        return -1;
    fill_logprobs(logits, n_vocab, lse, token, n_top, out);
    return 0;
}

/* ---- sampling ---- */

/* qsort has no context argument in C11, so the comparator reads the weights
 * through a thread-local pointer: samplers on different threads do not race.
 * Order: descending weight, ties -> lower id (deterministic). */
static _Thread_local const float *tl_keys;
static int cmp_cand_tl(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    float wx = tl_keys[x], wy = tl_keys[y];
    if (wx > wy)
        return -1;
    if (wx < wy)
        return 1;
    return (x > y) - (x < y);
}

static void cand_sort(int32_t *cand, size_t n, const float *w)
{
    tl_keys = w;
    qsort(cand, n, sizeof *cand, cmp_cand_tl);
}

int sampler_sample(sampler *s, const float *logits, sampler_result *out, char *err, size_t errlen)
{
    const int32_t n = s->n_vocab;
    double lse;
    if (raw_lse(logits, n, &lse) != 0) {
        snprintf(err, errlen, "sampler: logits are NaN, +inf or all -inf");
        return -1;
    }
    if (!s->work) {
        s->work = malloc((size_t)n * sizeof *s->work);
        s->cand = malloc((size_t)n * sizeof *s->cand);
        if (!s->work || !s->cand) {
            snprintf(err, errlen, "sampler: out of memory");
            return -1;
        }
    }
    float *w = s->work;
    memcpy(w, logits, (size_t)n * sizeof *w);

    /* 1. logit bias */
    for (int i = 0; i < s->p.n_logit_bias; i++)
        w[s->p.logit_bias[i].token] += s->p.logit_bias[i].bias;

    /* 2. penalties, only over tokens seen so far */
    if (s->penalties) {
        const float rp = s->p.repetition_penalty;
        for (size_t i = 0; i < s->n_touched; i++) {
            int32_t t = s->touched[i];
            if (rp != 1.0f)
                w[t] = w[t] > 0 ? w[t] / rp : w[t] * rp;
            uint32_t c = s->out_count[t];
            if (c > 0)
                w[t] -= s->p.frequency_penalty * (float)c + s->p.presence_penalty;
        }
    }

    int32_t chosen = -1;
    if (s->p.temperature == 0.0f) {
        float best = -INFINITY;
        for (int32_t i = 0; i < n; i++)
            if (w[i] > best) {
                best = w[i];
                chosen = i;
            }
    } else {
        /* 3. temperature; weights exp((l - max) / T), the best token has weight 1 */
        const float inv_t = 1.0f / s->p.temperature;
        float mx = -INFINITY;
        for (int32_t i = 0; i < n; i++)
            if (w[i] > mx)
                mx = w[i];
        size_t nc = 0;
        if (mx != -INFINITY) {
            for (int32_t i = 0; i < n; i++) {
                float e = w[i] == -INFINITY ? 0.0f : expf((w[i] - mx) * inv_t);
                w[i] = e;
                /* min-p: relative to the most likely token (weight 1) */
                if (e > 0.0f && e >= s->p.min_p)
                    s->cand[nc++] = i;
            }
        }
        if (nc > 0 && ((s->p.top_k > 0 && (size_t)s->p.top_k < nc) || s->p.top_p < 1.0f)) {
            cand_sort(s->cand, nc, w);
            if (s->p.top_k > 0 && (size_t)s->p.top_k < nc)
                nc = (size_t)s->p.top_k;
            if (s->p.top_p < 1.0f) {
                double total = 0;
                for (size_t i = 0; i < nc; i++)
                    total += w[s->cand[i]];
                /* keep a token while the mass ranked above it is < top_p */
                double above = 0;
                size_t keep = 0;
                while (keep < nc && above < s->p.top_p * total)
                    above += w[s->cand[keep++]];
                nc = keep;
            }
        }
        if (nc > 0) {
            double total = 0;
            for (size_t i = 0; i < nc; i++)
                total += w[s->cand[i]];
            double u = rng_uniform(s->rng) * total, acc = 0;
            chosen = s->cand[nc - 1]; /* rounding: fall back to the last candidate */
            for (size_t i = 0; i < nc; i++) {
                acc += w[s->cand[i]];
                if (u < acc) {
                    chosen = s->cand[i];
                    break;
                }
            }
        }
    }
    if (chosen < 0) {
        snprintf(err, errlen, "sampler: no token can be sampled (all logits -inf after bias)");
        return -1;
    }
    fill_logprobs(logits, n, lse, chosen, s->p.n_logprobs, out);
    sampler_accept(s, chosen);
    return 0;
}
