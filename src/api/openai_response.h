/* openai_response: OpenAI/vLLM-shaped response bodies, stream chunks, logprobs
 * objects and error bodies, built as jansson objects.
 *
 * Shapes follow vLLM (reference openai-api.md sections 1.3-1.7):
 *  - completions: {"id":"cmpl-<32 hex>","object":"text_completion","created",
 *    "model","choices":[{index,text,logprobs,finish_reason,stop_reason,
 *    prompt_logprobs}],"usage":{prompt_tokens,total_tokens,completion_tokens}}
 *  - chat: "chatcmpl-" ids, "chat.completion", message {role,content,tool_calls}
 *  - stream chunks ("text_completion" / "chat.completion.chunk"), the chat role
 *    chunk, the final usage chunk (choices: []), "data: [DONE]"
 *  - errors: {"error":{"message","type","param","code":<status>}}
 * Text from the model may be invalid UTF-8 (a token can end mid-character):
 * every builder here replaces invalid sequences with U+FFFD so that the JSON
 * is always valid.
 *
 * Ownership: functions returning json_t* return a new reference the caller
 * must json_decref(); inputs are copied (json_t inputs get a new reference).
 * Functions returning char* return malloc'd memory the caller frees.
 * Allocation failure gives NULL (or -1).
 */
#ifndef WARD_OPENAI_RESPONSE_H
#define WARD_OPENAI_RESPONSE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "api/openai_request.h"

#define OAI_ID_MAX 48                 /* "chatcmpl-" + 32 hex + NUL fits */
#define OAI_LOGPROB_NEG_INF (-9999.0) /* vLLM writes -inf as this */
#define OAI_SSE_DONE "data: [DONE]\n\n"

/* Writes "cmpl-<32 hex>" or "chatcmpl-<32 hex>" (CSPRNG). 0, or -1. */
int oai_make_id(oai_kind kind, char out[OAI_ID_MAX]);

typedef enum { OAI_FINISH_NONE = 0, OAI_FINISH_STOP, OAI_FINISH_LENGTH, OAI_FINISH_ABORT } oai_finish;
const char *oai_finish_name(oai_finish f); /* NULL for NONE */

typedef enum { OAI_STOP_REASON_NONE = 0, OAI_STOP_REASON_STR, OAI_STOP_REASON_TOKEN } oai_stop_reason_kind;
typedef struct oai_stop_reason {
    oai_stop_reason_kind kind;
    const char *str;      /* the stop string (STR) */
    int32_t token;        /* the stop token id (TOKEN) */
} oai_stop_reason;

typedef struct oai_usage {
    long prompt_tokens;
    long completion_tokens;
} oai_usage;

typedef struct oai_choice {
    int index;
    const char *text; size_t text_len; /* text == NULL: no text (chunk: no "content"/"text" delta) */
    json_t *logprobs;                  /* borrowed; NULL = null */
    oai_finish finish;
    oai_stop_reason stop_reason;
} oai_choice;

/* Complete (non-streaming) response. */
json_t *oai_response_new(oai_kind kind, const char *id, int64_t created, const char *model,
                         const oai_choice *choices, size_t n, const oai_usage *usage);
/* One stream chunk with one choice. role_delta: the chat role chunk
 * ({"role":"assistant","content":""}). usage: NULL, or running usage
 * (continuous_usage_stats). */
json_t *oai_chunk_new(oai_kind kind, const char *id, int64_t created, const char *model,
                      const oai_choice *c, int role_delta, const oai_usage *usage);
/* The final usage chunk: choices [] and usage. */
json_t *oai_usage_chunk_new(oai_kind kind, const char *id, int64_t created, const char *model,
                            const oai_usage *usage);
json_t *oai_usage_json(const oai_usage *u);

/* {"error":{"message","type","param","code"}} */
json_t *oai_error_body(const oai_error *e);

/* Compact JSON text of obj (NUL-terminated); *len set when len != NULL. */
char *oai_json_dump(const json_t *obj, size_t *len);
/* "data: <json>\n\n". */
char *oai_sse_event(const json_t *obj, size_t *len);

/* A JSON string from bytes, invalid UTF-8 replaced by U+FFFD. */
json_t *oai_json_text(const char *s, size_t len);
/* Length of the longest prefix of s[0..len) that does not end inside an
 * incomplete (but so far valid) UTF-8 sequence. */
size_t oai_utf8_complete_len(const char *s, size_t len);

/* ---- logprobs ---- */
typedef struct oai_top_entry {
    const char *token; size_t len;    /* token text (bytes) */
    double logprob;
} oai_top_entry;

/* Completions: {"text_offset":[],"token_logprobs":[],"tokens":[],"top_logprobs":[]} */
json_t *oai_cmpl_logprobs_new(void);
/* Appends one position. has_logprob 0 (e.g. the first prompt token under echo):
 * token_logprobs null and top_logprobs null. Otherwise top_logprobs gets
 * {token: logprob} for the n_top entries, and the sampled token is always
 * included (vLLM). Returns 0 or -1. */
int oai_cmpl_logprobs_append(json_t *lp, const char *tok, size_t tok_len, int has_logprob, double logprob,
                             const oai_top_entry *top, size_t n_top, long text_offset);

/* Chat: {"content":[]} */
json_t *oai_chat_logprobs_new(void);
/* Appends {"token","logprob","bytes":[...],"top_logprobs":[{token,logprob,bytes}]}. */
int oai_chat_logprobs_append(json_t *lp, const char *tok, size_t tok_len, double logprob,
                             const oai_top_entry *top, size_t n_top);

#endif
