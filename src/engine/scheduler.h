/* scheduler: continuous batching over one engine.
 *
 * One scheduler thread owns the engine (and so its KV-cache slots). Each step
 * it gathers the next token of every running sequence and, within a token
 * budget, chunks of prompts still being prefilled (chunked prefill), runs them
 * all through one engine_decode() call, samples, and reports each new token
 * through the request's callbacks. New requests join at the next step;
 * finished or cancelled ones leave at once and free their slot.
 *
 * The scheduler knows nothing of HTTP or text: it takes token ids and returns
 * token ids. Stop strings and detokenization are the caller's business (the
 * caller's on_token returns nonzero to finish with SCHED_FINISH_STOP).
 *
 * Threads: sched_submit, sched_cancel and sched_get_stats are thread-safe.
 * Callbacks run on the scheduler thread and must not block for long (hand the
 * data to another thread); they must not call sched_* functions except
 * sched_cancel. on_done is called exactly once per accepted request, also when
 * it is cancelled or the scheduler is freed.
 */
#ifndef WARD_SCHEDULER_H
#define WARD_SCHEDULER_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "engine/sampler.h"

/* Requests waiting for a slot; past it sched_submit refuses (the API answers
 * 503 with Retry-After) rather than letting memory and latency grow without bound. */
#define SCHED_DEFAULT_MAX_QUEUE 64
/* Tokens per step: bounds how long a long prompt can stall running decodes
 * (fairness) while still prefilling in large, efficient chunks. */
#define SCHED_DEFAULT_STEP_TOKENS 256
/* Rows per step whose full logits are kept for prompt logprobs (echo):
 * n_vocab floats each, so this bounds the step's logits buffer. */
#define SCHED_MAX_PROMPT_LOGIT_ROWS 32
/* End-of-generation ids (eos, eot, eom...). */
#define SCHED_MAX_EOG 16
/* stop_token_ids per request (vLLM has no limit; 64 is far above real use). */
#define SCHED_MAX_STOP_IDS 64

typedef enum {
    SCHED_FINISH_LENGTH = 0,     /* max_tokens reached or the context is full */
    SCHED_FINISH_EOS,            /* an end-of-generation token (not reported by on_token) */
    SCHED_FINISH_STOP_TOKEN,     /* a stop_token_ids entry (not reported by on_token) */
    SCHED_FINISH_STOP,           /* on_token returned nonzero (stop string) */
    SCHED_FINISH_CANCELLED,      /* sched_cancel or shutdown */
    SCHED_FINISH_ERROR,          /* engine or sampler failure; err says why */
} sched_finish;

typedef struct {
    int is_prompt;      /* 1: logprob of prompt token `index` (index >= 1) given the earlier ones */
    int index;          /* prompt index, or output index (0-based) */
    sampler_result r;   /* token, logprob, top alternatives (n_logprobs of the request) */
} sched_token;

typedef struct {
    sched_finish why;
    int32_t stop_token;  /* the EOS / stop token for SCHED_FINISH_EOS / _STOP_TOKEN, else -1 */
    int n_prompt;        /* prompt tokens */
    int n_output;        /* output tokens, the EOS/stop token included (as vLLM counts) */
    const char *err;     /* SCHED_FINISH_ERROR: a message; else NULL */
} sched_done;

typedef struct {
    const int32_t *prompt;     /* copied by sched_submit; n_prompt >= 1 */
    int n_prompt;
    sampler_params sampling;   /* copied */
    int max_tokens;            /* >= 0; further capped by the context */
    int min_tokens;            /* EOS/stop tokens are suppressed until this many outputs */
    int ignore_eos;
    const int32_t *stop_ids;   /* copied; at most SCHED_MAX_STOP_IDS */
    int n_stop_ids;
    int prompt_logprobs;       /* also report prompt positions 1..n_prompt-1 */
    /* Scheduler thread. Return nonzero to finish now with SCHED_FINISH_STOP. */
    int (*on_token)(void *ud, const sched_token *t);
    /* Scheduler thread, exactly once. */
    void (*on_done)(void *ud, const sched_done *d);
    void *ud;
} sched_request;

typedef struct {
    int max_queue;               /* default SCHED_DEFAULT_MAX_QUEUE */
    int step_tokens;             /* default SCHED_DEFAULT_STEP_TOKENS */
    int n_eog;
    int32_t eog[SCHED_MAX_EOG];  /* end-of-generation ids */
} sched_params;

typedef struct {
    int running;                 /* requests holding a slot */
    int waiting;                 /* requests queued for a slot */
    int slots;                   /* engine slots */
    double kv_usage;             /* used positions / (slots * n_ctx), 0..1 */
    uint64_t steps;              /* engine steps run */
    uint64_t last_batch;         /* rows in the last step */
} sched_stats;

typedef struct sched sched;

sched_params sched_default_params(void);

/* Starts the scheduler thread over e (borrowed: must outlive the scheduler;
 * no one else may use it meanwhile). NULL with err on failure. */
sched *sched_new(engine *e, const sched_params *p, char *err, size_t errlen);
/* Stops the thread; every request still queued or running gets on_done
 * (SCHED_FINISH_CANCELLED) before this returns. */
void sched_free(sched *s);

/* Queues a request. Returns 0 and its id, or -1 with err: bad request
 * (empty or too long prompt, bad sampling params) or queue full (*queue_full
 * set to 1 when that is the reason). */
int sched_submit(sched *s, const sched_request *r, uint64_t *id, int *queue_full,
                 char *err, size_t errlen);
/* Finishes request id with SCHED_FINISH_CANCELLED at the next step boundary
 * (no-op when it is already done). */
void sched_cancel(sched *s, uint64_t id);

void sched_get_stats(sched *s, sched_stats *out);

#endif
