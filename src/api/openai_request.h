/* openai_request: parse and validate OpenAI-compatible request bodies.
 *
 * Covers POST /v1/completions and POST /v1/chat/completions with vLLM's
 * field set, defaults and ranges (v0.6.1 semantics, the demo's version, with
 * the current code's kinder choices where noted in the .c file). The body is
 * untrusted: every list has a named limit below, every type is checked, and a
 * failure fills an oai_error (HTTP status, OpenAI error type, the offending
 * field and a message naming it) instead of crashing or allocating without
 * bound. Unknown fields are ignored with a debug log line (field name only).
 *
 * Ownership: oai_request_parse() fills *out with heap memory owned by *out;
 * oai_request_free() releases it (safe on a zeroed or partly filled struct).
 * No pointer into the request body is kept.
 */
#ifndef WARD_OPENAI_REQUEST_H
#define WARD_OPENAI_REQUEST_H

#include <stddef.h>
#include <stdint.h>

/* Limits on untrusted requests. */
#define OAI_MAX_N 16                /* n and best_of: each is a full sequence in the batch */
#define OAI_MAX_PROMPTS 64          /* prompts in one completions request (each is a sequence) */
#define OAI_MAX_PROMPT_IDS 262144   /* token ids in one prompt list: above any context we serve */
#define OAI_MAX_STOP 16             /* stop strings (OpenAI allows 4; vLLM has no cap) */
#define OAI_MAX_STOP_LEN 256        /* bytes per stop string: longer ones are not realistic */
#define OAI_MAX_STOP_TOKEN_IDS 256  /* stop_token_ids entries */
#define OAI_MAX_LOGIT_BIAS 1024     /* logit_bias entries (OpenAI documents 300) */
#define OAI_MAX_LOGPROBS 20         /* vLLM's default max_logprobs */
#define OAI_MAX_MESSAGES 4096       /* chat messages; the body limit bounds the text itself */
#define OAI_MAX_CONTENT_PARTS 256   /* text parts in one message's content list */
#define OAI_MAX_MODEL_NAME 256      /* model field bytes */
#define OAI_MAX_FIELD_NAME 64       /* unknown field names are logged up to this length */

typedef enum { OAI_COMPLETION = 0, OAI_CHAT = 1 } oai_kind;

/* A failure: HTTP status, OpenAI/vLLM error type, field (param) and message. */
typedef struct oai_error {
    int status;            /* 400, 404, 413, 429, 503, 500 */
    char type[32];         /* "BadRequestError", "NotFoundError", ... */
    char param[64];        /* offending field, "" when none */
    char message[512];
} oai_error;

/* Fills e (status + vLLM's type for that status) with a printf message. */
void oai_error_set(oai_error *e, int status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* vLLM's error type for an HTTP status ("BadRequestError" for 400, ...). */
const char *oai_error_type_for(int status);

/* One prompt: either text (NUL-terminated, may contain no NULs) or token ids. */
typedef struct oai_prompt {
    char *text;            /* NULL when ids are given */
    int32_t *ids;
    size_t n_ids;
} oai_prompt;

typedef enum { OAI_ROLE_SYSTEM, OAI_ROLE_USER, OAI_ROLE_ASSISTANT } oai_role;

typedef struct oai_message {
    oai_role role;
    char *content;         /* text parts joined with "\n"; "" for null content */
} oai_message;

typedef struct oai_logit_bias {
    int32_t token;
    float bias;            /* clamped to [-100, 100] as vLLM does */
} oai_logit_bias;

typedef struct oai_request {
    oai_kind kind;
    char *model;                    /* NULL when absent (the served model is used) */

    /* completions */
    oai_prompt *prompts; size_t n_prompts;
    /* chat */
    oai_message *messages; size_t n_messages;
    int add_generation_prompt;      /* default 1 */
    int continue_final_message;     /* default 0 */
    char *chat_template;            /* request override of the template (family detection), or NULL */

    /* generation length; -1 = null: fill the context */
    long max_tokens;
    long min_tokens;                /* default 0 */

    /* sampling */
    double temperature;             /* completions 1.0, chat 0.7 (vLLM 0.6.1) */
    double top_p;                   /* (0,1], default 1 */
    int top_k;                      /* -1 = off (0 accepted as off) */
    double min_p;                   /* [0,1], default 0 */
    double presence_penalty;        /* [-2,2] */
    double frequency_penalty;       /* [-2,2] */
    double repetition_penalty;      /* (0,2], default 1 */
    double length_penalty;          /* default 1; beam search only */
    int has_seed; int64_t seed;
    oai_logit_bias *logit_bias; size_t n_logit_bias;

    /* sequences */
    int n;                          /* default 1 */
    int best_of;                    /* default n */
    int use_beam_search;

    /* output */
    int stream;
    int has_stream_options;
    int include_usage;              /* stream_options.include_usage (true once the object is given) */
    int continuous_usage_stats;
    int logprobs;                   /* -1 = none; else number of top logprobs (chat: top_logprobs) */
    int prompt_logprobs;            /* -1 = none */
    int echo;
    char **stop; size_t n_stop;
    int32_t *stop_token_ids; size_t n_stop_token_ids;
    int ignore_eos;
    int skip_special_tokens;        /* default 1 */
    int spaces_between_special_tokens; /* default 1 */
    int include_stop_str_in_output;
    int add_special_tokens;         /* completions default 1; chat default 0 (the template carries them) */
    long truncate_prompt_tokens;    /* -1 = off; else keep the last k prompt tokens */
} oai_request;

/* Parses and validates body (len bytes, need not be NUL-terminated).
 * Returns 0, or -1 with *err filled (status 400 for every client mistake). */
int oai_request_parse(oai_request *out, oai_kind kind, const char *body, size_t len, oai_error *err);
void oai_request_free(oai_request *r);

/* "system", "user", "assistant". */
const char *oai_role_name(oai_role r);

#endif
