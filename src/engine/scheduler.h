/* scheduler: continuous batching over one engine.
 *
 * One scheduler thread owns the engine (and so its KV-cache slots). Each step
 * it gathers the next token of every running sequence and, within a token
 * budget, chunks of prompts still being prefilled (chunked prefill), runs them
 * all through one engine_decode() call, samples, and reports each new token
 * through the request's callbacks. New requests join at the next step;
 * finished or cancelled ones leave at once and free their slot.
 *
 * KV memory (engine.h: paged, refcounted blocks): a waiting request is
 * admitted when a sequence id is free and the pool can hold its prompt (after
 * reusing cached prefix blocks) besides a block of headroom per running
 * sequence; otherwise it waits in the bounded queue (FIFO, no overtaking).
 * When a running sequence needs a block and the pool is dry, the newest
 * running request is preempted as vLLM does by default (recompute): its
 * blocks are freed and it goes back to the head of the queue; when it is
 * admitted again its prompt and the tokens it already produced are prefilled
 * again (mostly found in the prefix cache) and it continues where it stopped.
 * Nothing already reported is reported twice, and its results are the same
 * bit for bit. Beam-search groups are never preempted: if a group cannot get
 * blocks after every other request was preempted, it ends early with its
 * current beams (SCHED_FINISH_LENGTH).
 *
 * Beam search (beam_width >= 2, as vLLM 0.6's use_beam_search): the prompt is
 * prefilled once, then each step every live beam proposes its top 2 x width
 * tokens by log-probability of the raw logits (temperature 0; penalties and
 * logit_bias are not applied); the 2 x width best continuations by cumulative
 * logprob are taken in order: those ending (end-of-generation or stop token,
 * or max_tokens reached) join the finished list (kept to the width best by
 * score), the others become the new beams, at most width. Beams share KV
 * blocks (engine_seq_fork). The search stops when no beam is left, or (vLLM's
 * early_stopping=false) when width beams finished and the best live beam's
 * score is no better than the worst of them. score = cum_logprob /
 * len^length_penalty, len = prompt + output tokens, the final EOS not counted.
 * Stop strings are not checked during the search (the caller cuts the text).
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
/* Beam width (vLLM's best_of): each beam is a sequence in every step. */
#define SCHED_MAX_BEAM 16

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

/* One finished beam (beam search), reported through on_beams. */
typedef struct {
    const int32_t *tokens;   /* output tokens, without a final EOS / stop token */
    int n_tokens;
    int n_output;            /* as vLLM counts: the EOS / stop token included */
    double cum_logprob;
    double score;            /* cum_logprob / len^length_penalty */
    sched_finish why;        /* LENGTH, EOS or STOP_TOKEN */
    int32_t stop_token;      /* EOS / stop token, else -1 */
} sched_beam;

typedef struct {
    sched_finish why;
    int32_t stop_token;  /* the EOS / stop token for SCHED_FINISH_EOS / _STOP_TOKEN, else -1 */
    int n_prompt;        /* prompt tokens */
    int n_output;        /* output tokens, the EOS/stop token included (as vLLM counts) */
    const char *err;     /* SCHED_FINISH_ERROR: a message; else NULL */
    /* SCHED_FINISH_EOS / _STOP_TOKEN: the final token's sample (its logprobs:
     * it counts in n_output but was not reported by on_token); else NULL.
     * Valid during on_done only. */
    const sampler_result *last;
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
    int beam_width;            /* >= 2: beam search (see above); 0 or 1: sampling */
    double length_penalty;     /* beam search score exponent (vLLM default 1.0) */
    /* Scheduler thread. Return nonzero to finish now with SCHED_FINISH_STOP.
     * Not called for beam search. */
    int (*on_token)(void *ud, const sched_token *t);
    /* Beam search, scheduler thread: once before on_done (unless cancelled or
     * failed), up to beam_width finished beams, best score first. The arrays
     * are valid during the call only. */
    void (*on_beams)(void *ud, const sched_beam *beams, int n);
    /* Scheduler thread, exactly once. */
    void (*on_done)(void *ud, const sched_done *d);
    void *ud;
} sched_request;

typedef struct {
    int max_queue;               /* default SCHED_DEFAULT_MAX_QUEUE */
    int step_tokens;             /* default SCHED_DEFAULT_STEP_TOKENS */
    int n_eog;
    int32_t eog[SCHED_MAX_EOG];  /* end-of-generation ids */
    /* Optional, scheduler thread, after every engine step: rows in it. */
    void (*on_step)(void *ud, int rows);
    void *step_ud;
} sched_params;

typedef struct {
    int running;                 /* requests holding a slot */
    int waiting;                 /* requests queued for a slot */
    int slots;                   /* engine slots */
    double kv_usage;             /* referenced KV blocks / pool blocks, 0..1 */
    int kv_blocks_total;         /* pool size */
    int kv_blocks_free;          /* allocatable (cached-unreferenced included) */
    uint64_t steps;              /* engine steps run */
    uint64_t last_batch;         /* rows in the last step */
    uint64_t preemptions;        /* requests preempted (recompute) */
    uint64_t prefix_queries;     /* prompt tokens looked up in the prefix cache */
    uint64_t prefix_hits;        /* of which found */
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
