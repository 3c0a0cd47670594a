/* openai_server: the OpenAI-compatible endpoints over the scheduler.
 *
 * Routes (registered on an api_router):
 *   POST /v1/completions, POST /v1/chat/completions (JSON or SSE streaming),
 *   GET /v1/models, POST /tokenize, POST /detokenize, GET /metrics.
 *
 * openai_server_open() loads the GGUF model, its tokenizer, an engine with
 * max_num_seqs KV slots and the scheduler thread; openai_server_register()
 * adds the routes. Requests are parsed and validated on the HTTP loop thread
 * (openai_request), tokenized, split into sequences (prompts x best_of) and
 * submitted; the scheduler thread detokenizes incrementally, applies stop
 * strings and builds logprobs under the request's lock, and hands results
 * back with http_exchange_post(). A client that disconnects cancels its
 * sequences at once.
 *
 * Ownership: the server owns the model, tokenizer, engine and scheduler.
 * openai_server_free() stops the scheduler (every request still running gets
 * its on_done) and must be called after the HTTP server has stopped.
 */
#ifndef WARD_OPENAI_SERVER_H
#define WARD_OPENAI_SERVER_H

#include <stddef.h>
#include <stdio.h>

#include "api/api_router.h"

#define OAI_DEFAULT_MAX_NUM_SEQS 4     /* KV slots: concurrent sequences on a small CPU */
#define OAI_DEFAULT_RETRY_AFTER_S 1    /* Retry-After on 503 when the queue is full */
#define OAI_MAX_SEQS_PER_REQUEST 64    /* prompts x best_of for one request: bounds one client's share */
#define OAI_MAX_BATCHED_TOKENS 65536  /* tokens per step: bounds the step's activation buffers (n_tok x dims) */

typedef struct openai_params {
    const char *model_path;        /* GGUF file (required) */
    const char *served_model_name; /* NULL: general.name, else the file name */
    int max_model_len;             /* 0: min(n_ctx_train, 4096) (the engine's default) */
    int max_num_seqs;              /* KV slots; 0: OAI_DEFAULT_MAX_NUM_SEQS */
    int max_queue;                 /* waiting requests; 0: the scheduler's default */
    int threads;                   /* engine threads; 0: the engine's default */
    int kv_cache_mib;              /* KV pool MiB; 0: max_num_seqs full contexts (engine.h) */
    int num_kv_blocks;             /* KV pool blocks, overrides kv_cache_mib; 0: unset */
    int kv_block_size;             /* positions per KV block; 0: the engine's default */
    const char *chat_template;     /* family name or template text overriding the GGUF's; NULL: the GGUF's */
    int max_num_batched_tokens;    /* tokens per scheduler step (vLLM's name); 0: the scheduler's default */
} openai_params;

void openai_default_params(openai_params *p);

/* `ward serve` flags: --max-model-len N, --max-num-seqs N, --max-queue N,
 * --max-num-batched-tokens N,
 * --engine-threads N, --kv-cache-mib N, --num-kv-blocks N, --kv-block-size N,
 * --chat-template NAME|TEXT. Returns 1 if applied, 0 if
 * not an api flag, -1 after printing one line about a bad value. val must
 * outlive p (argv does). */
int openai_serve_option(openai_params *p, const char *name, const char *val);
void openai_serve_usage(FILE *f);

typedef struct openai_server openai_server;

openai_server *openai_server_open(const openai_params *p, char *err, size_t errlen);
/* Adds the routes. 0, or -1 if the router refused one. */
int openai_server_register(openai_server *s, api_router *r);
void openai_server_free(openai_server *s);

/* Optional extra exposition appended to /metrics (e.g. auth's counters):
 * fn writes at most len bytes (snprintf-style) and returns the full length it
 * needs. Set before the server runs; ud must outlive the server. */
void openai_server_set_extra_metrics(openai_server *s, size_t (*fn)(const void *ud, char *buf, size_t len),
                                     const void *ud);

const char *openai_server_model_name(const openai_server *s);
int openai_server_max_model_len(const openai_server *s);

#endif
