/* sampler: turns one row of logits into the next token, per request.
 *
 * A sampler holds the state of one sequence's sampling: its parameters, a
 * seeded RNG (xoshiro256**, so a request with a seed is reproducible) and the
 * token counts needed by the penalties. It is not thread-safe; one sampler
 * belongs to one request and is used by one thread at a time (the scheduler).
 *
 * Order of processing for each step, following vLLM (V1 sampler):
 *   1. logit bias (added to the logits),
 *   2. repetition penalty over prompt + output tokens (HF/vLLM style: positive
 *      logits divided by the penalty, negative ones multiplied),
 *      presence/frequency penalties over output tokens only (OpenAI style:
 *      logit -= presence * (count > 0) + frequency * count),
 *   3. temperature 0 -> greedy argmax (ties -> lowest id) of the processed logits;
 *      otherwise logits / temperature, then min-p, top-k, top-p, and a draw
 *      from what is left.
 *
 * Log-probabilities: like vLLM's default (V1, logprobs_mode "raw_logprobs"),
 * the reported logprobs are log-softmax of the RAW model logits, before bias,
 * penalties, temperature and truncation. They describe the model's
 * distribution and so do not depend on the sampling settings. The top-N list
 * is the N most likely tokens of that distribution; the chosen token is
 * reported separately (callers that need "sampled token always included" as
 * vLLM does add it themselves when it is not among the top N).
 */
#ifndef WARD_SAMPLER_H
#define WARD_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

/* vLLM caps logprobs at 20 (max_logprobs default) and OpenAI's chat
 * top_logprobs at 20: bounds the per-token result size. */
#define SAMPLER_MAX_LOGPROBS 20
/* logit_bias entries per request. Kept inline in sampler_params so the params
 * are a plain value that can be copied into a queue without ownership rules;
 * 1024 * 8 bytes = 8 KiB. OpenAI documents 300; the api layer may cap lower. */
#define SAMPLER_MAX_LOGIT_BIAS 1024
/* vLLM raises temperatures in (0, 0.01) to 0.01 (_SAMPLING_EPS) to avoid
 * overflow when dividing logits; so do we. */
#define SAMPLER_MIN_TEMPERATURE 0.01f
/* Largest vocabulary a sampler accepts (matches the model loader's limit). */
#define SAMPLER_MAX_VOCAB (1 << 22)

typedef struct {
    int32_t token;
    float bias;     /* added to the logit; callers clamp (vLLM: [-100, 100]) */
} sampler_bias;

/* A plain value: copy it freely. Defaults from sampler_default_params(). */
typedef struct {
    float temperature;        /* 0 = greedy; default 1.0 */
    int top_k;                /* <= 0 = off (vLLM's -1 and 0) */
    float top_p;              /* (0, 1]; 1 = off */
    float min_p;              /* [0, 1]; 0 = off */
    float repetition_penalty; /* > 0; 1 = off */
    float presence_penalty;   /* [-2, 2]; 0 = off */
    float frequency_penalty;  /* [-2, 2]; 0 = off */
    int has_seed;             /* 0: seeded from the kernel CSPRNG */
    uint64_t seed;
    int n_logprobs;           /* top alternatives to report, 0..SAMPLER_MAX_LOGPROBS */
    int n_logit_bias;
    sampler_bias logit_bias[SAMPLER_MAX_LOGIT_BIAS];
} sampler_params;

/* Result of one step. */
typedef struct {
    int32_t token;                          /* the chosen token */
    float logprob;                          /* its raw log-probability */
    int n_top;                              /* = params.n_logprobs (fewer if vocab smaller) */
    int32_t top_token[SAMPLER_MAX_LOGPROBS];/* most likely first; ties -> lower id first */
    float top_logprob[SAMPLER_MAX_LOGPROBS];
} sampler_result;

typedef struct sampler sampler;

sampler_params sampler_default_params(void);

/* Checks ranges (the api layer validates requests first; this is the last
 * line of defence). 0, or -1 with a message naming the field. */
int sampler_params_check(const sampler_params *p, int32_t n_vocab, char *err, size_t errlen);

/* Creates a sampler for a vocabulary of n_vocab tokens; params are copied.
 * NULL with err on bad params or no memory. Free with sampler_free. */
sampler *sampler_new(const sampler_params *p, int32_t n_vocab, char *err, size_t errlen);
void sampler_free(sampler *s);

/* Records prompt tokens (for the repetition penalty). Out-of-range ids are
 * ignored. Call before the first sampler_sample; may be called in pieces. */
void sampler_accept_prompt(sampler *s, const int32_t *tokens, size_t n);

/* Samples the next token from one row of n_vocab logits (not modified) and
 * records it as an output token (for the penalties). Returns 0, or -1 with
 * err when no token can be chosen (e.g. every logit NaN or -inf). */
int sampler_sample(sampler *s, const float *logits, sampler_result *out, char *err, size_t errlen);

/* Records a token produced outside sampler_sample as an output token. */
void sampler_accept(sampler *s, int32_t token);

/* Number of output tokens recorded so far. */
size_t sampler_n_output(const sampler *s);

/* Raw log-probability of `token` and the n_top most likely tokens under
 * log_softmax(logits) (for prompt logprobs / echo). Stateless. Returns 0, or
 * -1 if token is out of range or the logits are not finite. n_top is clamped
 * to [0, SAMPLER_MAX_LOGPROBS]. */
int sampler_logprobs(const float *logits, int32_t n_vocab, int32_t token, int n_top,
                     sampler_result *out);

#endif
