/* openai_request: see openai_request.h.
 *
 * Choices where vLLM versions differ (reference: openai-api.md section 1):
 *  - Unknown fields are ignored (current vLLM), not rejected (0.6.1), so that
 *    newer SDKs keep working; each one gets a debug log line with its name.
 *  - top_k 0 means "off" like -1 (current vLLM); 0.6.1 rejected it.
 *  - Errors use the nested shape {"error":{...}} with type "BadRequestError".
 *  - JSON null for any optional field means "use the default" (pydantic).
 */
#include "api/openai_request.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

#define LOGGER "ward.api"
#define OAI_LOGIT_BIAS_ABS 100.0   /* vLLM clamps biases to [-100, 100] */
#define OAI_MIN_TEMPERATURE_STEP 0.01 /* below this (but > 0) vLLM raises temperature to it */
#define OAI_MAX_TEMPERATURE 2.0    /* OpenAI's and current vLLM's upper bound */

const char *oai_error_type_for(int status)
{
    switch (status) {
    case 400: return "BadRequestError";
    case 401: return "AuthenticationError";
    case 403: return "PermissionDeniedError";
    case 404: return "NotFoundError";
    case 413: return "BadRequestError";
    case 429: return "RateLimitError";
    case 503: return "ServiceUnavailableError";
    default:  return status >= 500 ? "InternalServerError" : "BadRequestError";
    }
}

void oai_error_set(oai_error *e, int status, const char *param, const char *fmt, ...)
{
    if (!e)
        return;
    e->status = status;
    snprintf(e->type, sizeof e->type, "%s", oai_error_type_for(status));
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

const char *oai_role_name(oai_role r)
{
    switch (r) {
    case OAI_ROLE_SYSTEM: return "system";
    case OAI_ROLE_USER: return "user";
    case OAI_ROLE_ASSISTANT: return "assistant";
    }
    return "user";
}

void oai_request_free(oai_request *r)
{
    if (!r)
        return;
    free(r->model);
    for (size_t i = 0; i < r->n_prompts; i++) {
        free(r->prompts[i].text);
        free(r->prompts[i].ids);
    }
    free(r->prompts);
    for (size_t i = 0; i < r->n_messages; i++)
        free(r->messages[i].content);
    free(r->messages);
    free(r->chat_template);
    free(r->logit_bias);
    for (size_t i = 0; i < r->n_stop; i++)
        free(r->stop[i]);
    free(r->stop);
    free(r->stop_token_ids);
    memset(r, 0, sizeof *r);
}

static void set_defaults(oai_request *r, oai_kind kind)
{
    memset(r, 0, sizeof *r);
    r->kind = kind;
    r->add_generation_prompt = 1;
    r->max_tokens = kind == OAI_CHAT ? -1 : 16;
    r->temperature = kind == OAI_CHAT ? 0.7 : 1.0;
    r->top_p = 1.0;
    r->top_k = -1;
    r->repetition_penalty = 1.0;
    r->length_penalty = 1.0;
    r->n = 1;
    r->best_of = 0; /* resolved to n after parsing */
    r->logprobs = -1;
    r->prompt_logprobs = -1;
    r->skip_special_tokens = 1;
    r->spaces_between_special_tokens = 1;
    r->add_special_tokens = kind == OAI_COMPLETION;
    r->truncate_prompt_tokens = -1;
}

/* ---- typed getters: 1 = value set, 0 = null (keep default), -1 = error ---- */

static int get_bool(json_t *v, const char *name, int *out, oai_error *err)
{
    if (json_is_null(v))
        return 0;
    if (!json_is_boolean(v)) {
        oai_error_set(err, 400, name, "'%s' must be a boolean", name);
        return -1;
    }
    *out = json_is_true(v);
    return 1;
}

static int get_number(json_t *v, const char *name, double *out, oai_error *err)
{
    if (json_is_null(v))
        return 0;
    if (!json_is_number(v)) {
        oai_error_set(err, 400, name, "'%s' must be a number", name);
        return -1;
    }
    double d = json_number_value(v);
    if (!isfinite(d)) {
        oai_error_set(err, 400, name, "'%s' must be a finite number", name);
        return -1;
    }
    *out = d;
    return 1;
}

/* Integers: JSON integers, or reals with an integral value (pydantic's lax mode). */
static int get_int64(json_t *v, const char *name, int64_t *out, oai_error *err)
{
    if (json_is_null(v))
        return 0;
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return 1;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (isfinite(d) && d == floor(d) && d >= -9.2e18 && d <= 9.2e18) {
            *out = (int64_t)d;
            return 1;
        }
    }
    oai_error_set(err, 400, name, "'%s' must be an integer", name);
    return -1;
}

/* An integer that must lie in [lo, hi] to be representable at all (the
 * semantic range checks come later with vLLM's messages). */
static int get_int_bounded(json_t *v, const char *name, long lo, long hi, long *out, oai_error *err)
{
    int64_t x;
    int rc = get_int64(v, name, &x, err);
    if (rc <= 0)
        return rc;
    if (x < lo || x > hi) {
        oai_error_set(err, 400, name, "'%s' is out of range, got %lld", name, (long long)x);
        return -1;
    }
    *out = (long)x;
    return 1;
}

static char *dup_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static int nomem(oai_error *err)
{
    oai_error_set(err, 503, NULL, "out of memory");
    return -1;
}

/* ---- prompt ---- */

static int parse_id_list(json_t *arr, const char *name, int32_t **ids, size_t *n, oai_error *err)
{
    size_t cnt = json_array_size(arr);
    if (cnt == 0) {
        oai_error_set(err, 400, name, "'%s' must not be an empty token list", name);
        return -1;
    }
    if (cnt > OAI_MAX_PROMPT_IDS) {
        oai_error_set(err, 400, name, "'%s' has %zu token ids; at most %d are accepted", name, cnt,
                      OAI_MAX_PROMPT_IDS);
        return -1;
    }
    int32_t *p = malloc(cnt * sizeof *p);
    if (!p)
        return nomem(err);
    for (size_t i = 0; i < cnt; i++) {
        json_t *e = json_array_get(arr, i);
        if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) > INT32_MAX) {
            free(p);
            oai_error_set(err, 400, name, "'%s' token ids must be non-negative integers", name);
            return -1;
        }
        p[i] = (int32_t)json_integer_value(e);
    }
    *ids = p;
    *n = cnt;
    return 0;
}

static int text_has_nul(const char *s, size_t n) { return memchr(s, '\0', n) != NULL; }

static int parse_prompt(oai_request *r, json_t *v, oai_error *err)
{
    if (json_is_string(v)) {
        if (text_has_nul(json_string_value(v), json_string_length(v))) {
            oai_error_set(err, 400, "prompt", "'prompt' must not contain NUL characters");
            return -1;
        }
        r->prompts = calloc(1, sizeof *r->prompts);
        if (!r->prompts)
            return nomem(err);
        r->n_prompts = 1;
        r->prompts[0].text = dup_n(json_string_value(v), json_string_length(v));
        return r->prompts[0].text ? 0 : nomem(err);
    }
    if (!json_is_array(v)) {
        oai_error_set(err, 400, "prompt",
                      "'prompt' must be a string, a list of strings, a list of token ids or a list of lists of token ids");
        return -1;
    }
    size_t cnt = json_array_size(v);
    if (cnt == 0) {
        oai_error_set(err, 400, "prompt", "'prompt' must not be empty");
        return -1;
    }
    json_t *first = json_array_get(v, 0);
    if (json_is_integer(first)) { /* one prompt given as token ids */
        r->prompts = calloc(1, sizeof *r->prompts);
        if (!r->prompts)
            return nomem(err);
        r->n_prompts = 1;
        return parse_id_list(v, "prompt", &r->prompts[0].ids, &r->prompts[0].n_ids, err);
    }
    if (cnt > OAI_MAX_PROMPTS) {
        oai_error_set(err, 400, "prompt", "'prompt' has %zu entries; at most %d are accepted", cnt,
                      OAI_MAX_PROMPTS);
        return -1;
    }
    r->prompts = calloc(cnt, sizeof *r->prompts);
    if (!r->prompts)
        return nomem(err);
    r->n_prompts = cnt;
    int strings = json_is_string(first);
    for (size_t i = 0; i < cnt; i++) {
        json_t *e = json_array_get(v, i);
        if (strings && json_is_string(e)) {
            if (text_has_nul(json_string_value(e), json_string_length(e))) {
                oai_error_set(err, 400, "prompt", "'prompt' must not contain NUL characters");
                return -1;
            }
            r->prompts[i].text = dup_n(json_string_value(e), json_string_length(e));
            if (!r->prompts[i].text)
                return nomem(err);
        } else if (!strings && json_is_array(e)) {
            if (parse_id_list(e, "prompt", &r->prompts[i].ids, &r->prompts[i].n_ids, err) != 0)
                return -1;
        } else {
            oai_error_set(err, 400, "prompt",
                          "'prompt' list entries must all be strings or all be lists of token ids");
            return -1;
        }
    }
    return 0;
}

/* ---- chat messages ---- */

static int parse_content(json_t *c, size_t idx, char **out, oai_error *err)
{
    if (json_is_null(c)) {
        *out = strdup("");
        return *out ? 0 : nomem(err);
    }
    if (json_is_string(c)) {
        if (text_has_nul(json_string_value(c), json_string_length(c))) {
            oai_error_set(err, 400, "messages", "messages[%zu].content must not contain NUL characters", idx);
            return -1;
        }
        *out = dup_n(json_string_value(c), json_string_length(c));
        return *out ? 0 : nomem(err);
    }
    if (!json_is_array(c)) {
        oai_error_set(err, 400, "messages", "messages[%zu].content must be a string or a list of content parts", idx);
        return -1;
    }
    size_t np = json_array_size(c);
    if (np > OAI_MAX_CONTENT_PARTS) {
        oai_error_set(err, 400, "messages", "messages[%zu].content has %zu parts; at most %d are accepted", idx, np,
                      OAI_MAX_CONTENT_PARTS);
        return -1;
    }
    /* Text parts are joined with "\n", as vLLM does for string-only content. */
    size_t total = 1;
    for (size_t i = 0; i < np; i++) {
        json_t *part = json_array_get(c, i);
        const char *type = json_string_value(json_object_get(part, "type"));
        json_t *text = json_object_get(part, "text");
        if (!json_is_object(part) || !type) {
            oai_error_set(err, 400, "messages", "messages[%zu].content[%zu] must be an object with a 'type'", idx, i);
            return -1;
        }
        if (strcmp(type, "text") != 0) {
            oai_error_set(err, 400, "messages", "messages[%zu].content[%zu]: content type '%.32s' is not supported",
                          idx, i, type);
            return -1;
        }
        if (!json_is_string(text) || text_has_nul(json_string_value(text), json_string_length(text))) {
            oai_error_set(err, 400, "messages", "messages[%zu].content[%zu].text must be a string", idx, i);
            return -1;
        }
        total += json_string_length(text) + 1; /* bounded by the body size */
    }
    char *buf = malloc(total);
    if (!buf)
        return nomem(err);
    size_t pos = 0;
    for (size_t i = 0; i < np; i++) {
        json_t *text = json_object_get(json_array_get(c, i), "text");
        if (i > 0)
            buf[pos++] = '\n';
        memcpy(buf + pos, json_string_value(text), json_string_length(text));
        pos += json_string_length(text);
    }
    buf[pos] = '\0';
    *out = buf;
    return 0;
}

static int parse_messages(oai_request *r, json_t *v, oai_error *err)
{
    if (!json_is_array(v)) {
        oai_error_set(err, 400, "messages", "'messages' must be a list of messages");
        return -1;
    }
    size_t cnt = json_array_size(v);
    if (cnt == 0) {
        oai_error_set(err, 400, "messages", "'messages' must not be empty");
        return -1;
    }
    if (cnt > OAI_MAX_MESSAGES) {
        oai_error_set(err, 400, "messages", "'messages' has %zu entries; at most %d are accepted", cnt,
                      OAI_MAX_MESSAGES);
        return -1;
    }
    r->messages = calloc(cnt, sizeof *r->messages);
    if (!r->messages)
        return nomem(err);
    for (size_t i = 0; i < cnt; i++) {
        json_t *m = json_array_get(v, i);
        if (!json_is_object(m)) {
            oai_error_set(err, 400, "messages", "messages[%zu] must be an object", i);
            return -1;
        }
        const char *role = json_string_value(json_object_get(m, "role"));
        if (!role) {
            oai_error_set(err, 400, "messages", "messages[%zu].role must be a string", i);
            return -1;
        }
        oai_message *msg = &r->messages[i];
        if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0)
            msg->role = OAI_ROLE_SYSTEM;
        else if (strcmp(role, "user") == 0)
            msg->role = OAI_ROLE_USER;
        else if (strcmp(role, "assistant") == 0)
            msg->role = OAI_ROLE_ASSISTANT;
        else {
            oai_error_set(err, 400, "messages", "messages[%zu].role '%.32s' is not supported (system, user or assistant)",
                          i, role);
            return -1;
        }
        r->n_messages = i + 1; /* so that free() sees the content */
        json_t *content = json_object_get(m, "content");
        if (!content && msg->role != OAI_ROLE_ASSISTANT) {
            oai_error_set(err, 400, "messages", "messages[%zu].content is required", i);
            return -1;
        }
        if (parse_content(content ? content : json_null(), i, &msg->content, err) != 0)
            return -1;
    }
    return 0;
}

/* ---- stop, stop_token_ids, logit_bias ---- */

static int add_stop(oai_request *r, json_t *s, oai_error *err)
{
    if (!json_is_string(s)) {
        oai_error_set(err, 400, "stop", "'stop' must be a string or a list of strings");
        return -1;
    }
    size_t n = json_string_length(s);
    if (n == 0) {
        oai_error_set(err, 400, "stop", "stop cannot contain an empty string.");
        return -1;
    }
    if (n > OAI_MAX_STOP_LEN || text_has_nul(json_string_value(s), n)) {
        oai_error_set(err, 400, "stop", "each stop string must be at most %d bytes without NUL characters",
                      OAI_MAX_STOP_LEN);
        return -1;
    }
    r->stop[r->n_stop] = dup_n(json_string_value(s), n);
    if (!r->stop[r->n_stop])
        return nomem(err);
    r->n_stop++;
    return 0;
}

static int parse_stop(oai_request *r, json_t *v, oai_error *err)
{
    if (json_is_null(v))
        return 0;
    size_t cnt = json_is_array(v) ? json_array_size(v) : 1;
    if (cnt > OAI_MAX_STOP) {
        oai_error_set(err, 400, "stop", "'stop' has %zu entries; at most %d are accepted", cnt, OAI_MAX_STOP);
        return -1;
    }
    if (cnt == 0)
        return 0;
    r->stop = calloc(cnt, sizeof *r->stop);
    if (!r->stop)
        return nomem(err);
    if (!json_is_array(v))
        return add_stop(r, v, err);
    for (size_t i = 0; i < cnt; i++)
        if (add_stop(r, json_array_get(v, i), err) != 0)
            return -1;
    return 0;
}

static int parse_stop_token_ids(oai_request *r, json_t *v, oai_error *err)
{
    if (json_is_null(v))
        return 0;
    if (!json_is_array(v)) {
        oai_error_set(err, 400, "stop_token_ids", "'stop_token_ids' must be a list of token ids");
        return -1;
    }
    size_t cnt = json_array_size(v);
    if (cnt > OAI_MAX_STOP_TOKEN_IDS) {
        oai_error_set(err, 400, "stop_token_ids", "'stop_token_ids' has %zu entries; at most %d are accepted", cnt,
                      OAI_MAX_STOP_TOKEN_IDS);
        return -1;
    }
    if (cnt == 0)
        return 0;
    r->stop_token_ids = malloc(cnt * sizeof *r->stop_token_ids);
    if (!r->stop_token_ids)
        return nomem(err);
    for (size_t i = 0; i < cnt; i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) > INT32_MAX) {
            oai_error_set(err, 400, "stop_token_ids", "'stop_token_ids' entries must be non-negative integers");
            return -1;
        }
        r->stop_token_ids[i] = (int32_t)json_integer_value(e);
        r->n_stop_token_ids = i + 1;
    }
    return 0;
}

static int parse_logit_bias(oai_request *r, json_t *v, oai_error *err)
{
    if (json_is_null(v))
        return 0;
    if (!json_is_object(v)) {
        oai_error_set(err, 400, "logit_bias", "'logit_bias' must be an object mapping token ids to biases");
        return -1;
    }
    size_t cnt = json_object_size(v);
    if (cnt > OAI_MAX_LOGIT_BIAS) {
        oai_error_set(err, 400, "logit_bias", "'logit_bias' has %zu entries; at most %d are accepted", cnt,
                      OAI_MAX_LOGIT_BIAS);
        return -1;
    }
    if (cnt == 0)
        return 0;
    r->logit_bias = malloc(cnt * sizeof *r->logit_bias);
    if (!r->logit_bias)
        return nomem(err);
    const char *key;
    json_t *val;
    json_object_foreach(v, key, val) {
        char *end = NULL;
        long long id = strtoll(key, &end, 10);
        if (!*key || *end || id < 0 || id > INT32_MAX) {
            oai_error_set(err, 400, "logit_bias", "'logit_bias' keys must be token ids (non-negative integers)");
            return -1;
        }
        if (!json_is_number(val) || !isfinite(json_number_value(val))) {
            oai_error_set(err, 400, "logit_bias", "'logit_bias' values must be numbers");
            return -1;
        }
        double b = json_number_value(val);
        if (b > OAI_LOGIT_BIAS_ABS)
            b = OAI_LOGIT_BIAS_ABS;
        if (b < -OAI_LOGIT_BIAS_ABS)
            b = -OAI_LOGIT_BIAS_ABS;
        r->logit_bias[r->n_logit_bias].token = (int32_t)id;
        r->logit_bias[r->n_logit_bias].bias = (float)b;
        r->n_logit_bias++;
    }
    return 0;
}

static int parse_stream_options(oai_request *r, json_t *v, oai_error *err)
{
    if (json_is_null(v))
        return 0;
    if (!json_is_object(v)) {
        oai_error_set(err, 400, "stream_options", "'stream_options' must be an object");
        return -1;
    }
    r->has_stream_options = 1;
    r->include_usage = 1; /* vLLM: include_usage defaults to True once the object is present */
    if (get_bool(json_object_get(v, "include_usage") ? json_object_get(v, "include_usage") : json_null(),
                 "stream_options.include_usage", &r->include_usage, err) < 0)
        return -1;
    if (get_bool(json_object_get(v, "continuous_usage_stats") ? json_object_get(v, "continuous_usage_stats")
                                                               : json_null(),
                 "stream_options.continuous_usage_stats", &r->continuous_usage_stats, err) < 0)
        return -1;
    return 0;
}

/* ---- field dispatch ---- */

#define LIM_TOKENS 100000000L /* representable token counts; real limits come from the context */

static int parse_field(oai_request *r, const char *key, json_t *v, int *chat_logprobs, long *top_logprobs,
                       oai_error *err)
{
    const int chat = r->kind == OAI_CHAT;
    long l = 0;
    int rc;

    if (strcmp(key, "model") == 0) {
        if (json_is_null(v))
            return 0;
        if (!json_is_string(v) || json_string_length(v) > OAI_MAX_MODEL_NAME ||
            text_has_nul(json_string_value(v), json_string_length(v))) {
            oai_error_set(err, 400, "model", "'model' must be a string of at most %d bytes", OAI_MAX_MODEL_NAME);
            return -1;
        }
        r->model = dup_n(json_string_value(v), json_string_length(v));
        return r->model ? 0 : nomem(err);
    }
    if (!chat && strcmp(key, "prompt") == 0)
        return json_is_null(v) ? 0 : parse_prompt(r, v, err);
    if (chat && strcmp(key, "messages") == 0)
        return parse_messages(r, v, err);
    if (strcmp(key, "max_tokens") == 0 || (chat && strcmp(key, "max_completion_tokens") == 0)) {
        rc = get_int_bounded(v, key, -LIM_TOKENS, LIM_TOKENS, &l, err);
        if (rc < 0)
            return -1;
        if (rc == 0)
            r->max_tokens = -1; /* explicit null: fill the context */
        if (rc > 0) {
            if (l < 0) {
                oai_error_set(err, 400, key, "%s must be at least 1, got %ld.", key, l);
                return -1;
            }
            r->max_tokens = l; /* max_completion_tokens wins: see oai_request_parse */
        }
        return 0;
    }
    if (strcmp(key, "min_tokens") == 0) {
        rc = get_int_bounded(v, key, -LIM_TOKENS, LIM_TOKENS, &l, err);
        if (rc > 0)
            r->min_tokens = l;
        return rc < 0 ? -1 : 0;
    }
    if (strcmp(key, "temperature") == 0)
        return get_number(v, key, &r->temperature, err) < 0 ? -1 : 0;
    if (strcmp(key, "top_p") == 0)
        return get_number(v, key, &r->top_p, err) < 0 ? -1 : 0;
    if (strcmp(key, "min_p") == 0)
        return get_number(v, key, &r->min_p, err) < 0 ? -1 : 0;
    if (strcmp(key, "presence_penalty") == 0)
        return get_number(v, key, &r->presence_penalty, err) < 0 ? -1 : 0;
    if (strcmp(key, "frequency_penalty") == 0)
        return get_number(v, key, &r->frequency_penalty, err) < 0 ? -1 : 0;
    if (strcmp(key, "repetition_penalty") == 0)
        return get_number(v, key, &r->repetition_penalty, err) < 0 ? -1 : 0;
    if (strcmp(key, "length_penalty") == 0)
        return get_number(v, key, &r->length_penalty, err) < 0 ? -1 : 0;
    if (strcmp(key, "top_k") == 0) {
        rc = get_int_bounded(v, key, -LIM_TOKENS, LIM_TOKENS, &l, err);
        if (rc > 0)
            r->top_k = (int)l;
        return rc < 0 ? -1 : 0;
    }
    if (strcmp(key, "n") == 0) {
        rc = get_int_bounded(v, key, -LIM_TOKENS, LIM_TOKENS, &l, err);
        if (rc > 0)
            r->n = (int)l;
        return rc < 0 ? -1 : 0;
    }
    if (strcmp(key, "best_of") == 0) {
        rc = get_int_bounded(v, key, -LIM_TOKENS, LIM_TOKENS, &l, err);
        if (rc > 0) {
            if (l < 1) {
                oai_error_set(err, 400, key, "best_of must be at least 1, got %ld.", l);
                return -1;
            }
            r->best_of = (int)l;
        }
        return rc < 0 ? -1 : 0;
    }
    if (strcmp(key, "seed") == 0) {
        int64_t s;
        rc = get_int64(v, key, &s, err);
        if (rc > 0 && s != -1) { /* vLLM treats -1 as "no seed" */
            r->has_seed = 1;
            r->seed = s;
        }
        return rc < 0 ? -1 : 0;
    }
    if (strcmp(key, "stream") == 0)
        return get_bool(v, key, &r->stream, err) < 0 ? -1 : 0;
    if (strcmp(key, "stream_options") == 0)
        return parse_stream_options(r, v, err);
    if (strcmp(key, "logprobs") == 0) {
        if (chat)
            return get_bool(v, key, chat_logprobs, err) < 0 ? -1 : 0;
        rc = get_int_bounded(v, key, -LIM_TOKENS, LIM_TOKENS, &l, err);
        if (rc > 0) {
            if (l < 0) {
                oai_error_set(err, 400, key, "logprobs must be non-negative, got %ld.", l);
                return -1;
            }
            if (l > OAI_MAX_LOGPROBS) {
                oai_error_set(err, 400, key, "Requested sample logprobs of %ld, which is greater than max allowed: %d",
                              l, OAI_MAX_LOGPROBS);
                return -1;
            }
            r->logprobs = (int)l;
        }
        return rc < 0 ? -1 : 0;
    }
    if (chat && strcmp(key, "top_logprobs") == 0) {
        rc = get_int_bounded(v, key, -LIM_TOKENS, LIM_TOKENS, &l, err);
        if (rc > 0) {
            if (l < 0 || l > OAI_MAX_LOGPROBS) {
                oai_error_set(err, 400, key, "top_logprobs must be between 0 and %d, got %ld.", OAI_MAX_LOGPROBS, l);
                return -1;
            }
            *top_logprobs = l;
        }
        return rc < 0 ? -1 : 0;
    }
    if (strcmp(key, "prompt_logprobs") == 0) {
        rc = get_int_bounded(v, key, -LIM_TOKENS, LIM_TOKENS, &l, err);
        if (rc > 0) {
            if (l < 0 || l > OAI_MAX_LOGPROBS) {
                oai_error_set(err, 400, key, "prompt_logprobs must be between 0 and %d, got %ld.", OAI_MAX_LOGPROBS, l);
                return -1;
            }
            r->prompt_logprobs = (int)l;
        }
        return rc < 0 ? -1 : 0;
    }
    if (strcmp(key, "echo") == 0)
        return get_bool(v, key, &r->echo, err) < 0 ? -1 : 0;
    if (strcmp(key, "stop") == 0)
        return parse_stop(r, v, err);
    if (strcmp(key, "stop_token_ids") == 0)
        return parse_stop_token_ids(r, v, err);
    if (strcmp(key, "logit_bias") == 0)
        return parse_logit_bias(r, v, err);
    if (strcmp(key, "ignore_eos") == 0)
        return get_bool(v, key, &r->ignore_eos, err) < 0 ? -1 : 0;
    if (strcmp(key, "use_beam_search") == 0)
        return get_bool(v, key, &r->use_beam_search, err) < 0 ? -1 : 0;
    if (strcmp(key, "skip_special_tokens") == 0)
        return get_bool(v, key, &r->skip_special_tokens, err) < 0 ? -1 : 0;
    if (strcmp(key, "spaces_between_special_tokens") == 0)
        return get_bool(v, key, &r->spaces_between_special_tokens, err) < 0 ? -1 : 0;
    if (strcmp(key, "include_stop_str_in_output") == 0)
        return get_bool(v, key, &r->include_stop_str_in_output, err) < 0 ? -1 : 0;
    if (strcmp(key, "add_special_tokens") == 0)
        return get_bool(v, key, &r->add_special_tokens, err) < 0 ? -1 : 0;
    if (strcmp(key, "truncate_prompt_tokens") == 0) {
        rc = get_int_bounded(v, key, -LIM_TOKENS, LIM_TOKENS, &l, err);
        if (rc > 0) {
            if (l < 1) {
                oai_error_set(err, 400, key, "truncate_prompt_tokens must be at least 1, got %ld.", l);
                return -1;
            }
            r->truncate_prompt_tokens = l;
        }
        return rc < 0 ? -1 : 0;
    }
    if (strcmp(key, "user") == 0) { /* accepted and ignored, as vLLM does */
        if (!json_is_null(v) && !json_is_string(v)) {
            oai_error_set(err, 400, key, "'user' must be a string");
            return -1;
        }
        return 0;
    }
    if (!chat && strcmp(key, "suffix") == 0) {
        if (json_is_null(v))
            return 0;
        oai_error_set(err, 400, key, "suffix is not currently supported");
        return -1;
    }
    if (strcmp(key, "response_format") == 0) {
        if (json_is_null(v))
            return 0;
        const char *t = json_string_value(json_object_get(v, "type"));
        if (!json_is_object(v) || !t) {
            oai_error_set(err, 400, key, "'response_format' must be an object with a 'type'");
            return -1;
        }
        if (strcmp(t, "text") != 0) {
            oai_error_set(err, 400, key, "response_format type '%.32s' is not supported (guided decoding is not available)",
                          t);
            return -1;
        }
        return 0;
    }
    if (chat && strcmp(key, "add_generation_prompt") == 0)
        return get_bool(v, key, &r->add_generation_prompt, err) < 0 ? -1 : 0;
    if (chat && strcmp(key, "continue_final_message") == 0)
        return get_bool(v, key, &r->continue_final_message, err) < 0 ? -1 : 0;
    if (chat && strcmp(key, "chat_template") == 0) {
        if (json_is_null(v))
            return 0;
        if (!json_is_string(v) || text_has_nul(json_string_value(v), json_string_length(v))) {
            oai_error_set(err, 400, key, "'chat_template' must be a string");
            return -1;
        }
        r->chat_template = dup_n(json_string_value(v), json_string_length(v));
        return r->chat_template ? 0 : nomem(err);
    }
    if (chat && strcmp(key, "tool_choice") == 0) {
        if (json_is_null(v) || (json_is_string(v) && strcmp(json_string_value(v), "none") == 0))
            return 0;
        oai_error_set(err, 400, key, "\"auto\" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set");
        return -1;
    }
    if (log_enabled(LOG_DEBUG)) {
        size_t n = strnlen(key, OAI_MAX_FIELD_NAME);
        while (n > 0 && key[n] && ((unsigned char)key[n] & 0xC0) == 0x80)
            n--; /* cut at a UTF-8 character boundary */
        log_pack(LOG_DEBUG, LOGGER, "ignored unknown request field", "{s:s%}", "field", key, n);
    }
    return 0;
}

/* Cross-field checks with vLLM's messages (sampling_params._verify_args). */
static int validate(oai_request *r, int chat_logprobs, long top_logprobs, oai_error *err)
{
    if (r->kind == OAI_COMPLETION && r->n_prompts == 0) {
        oai_error_set(err, 400, "prompt", "'prompt' is required");
        return -1;
    }
    if (r->kind == OAI_CHAT && r->n_messages == 0) {
        oai_error_set(err, 400, "messages", "'messages' is required");
        return -1;
    }
    if (r->kind == OAI_CHAT) {
        if (top_logprobs > 0 && !chat_logprobs) {
            oai_error_set(err, 400, "top_logprobs", "when using `top_logprobs`, `logprobs` must be set to true.");
            return -1;
        }
        r->logprobs = chat_logprobs ? (int)top_logprobs : -1;
        if (r->continue_final_message && r->add_generation_prompt) {
            /* vLLM: both at once is contradictory */
            oai_error_set(err, 400, "continue_final_message",
                          "Cannot set both `continue_final_message` and `add_generation_prompt` to True.");
            return -1;
        }
    }
    if (r->n < 1) {
        oai_error_set(err, 400, "n", "n must be at least 1, got %d.", r->n);
        return -1;
    }
    if (r->n > OAI_MAX_N) {
        oai_error_set(err, 400, "n", "n must be at most %d, got %d.", OAI_MAX_N, r->n);
        return -1;
    }
    if (r->best_of == 0)
        r->best_of = r->n;
    if (r->best_of < r->n) {
        oai_error_set(err, 400, "best_of", "best_of must be greater than or equal to n, got n=%d and best_of=%d.",
                      r->n, r->best_of);
        return -1;
    }
    if (r->best_of > OAI_MAX_N) {
        oai_error_set(err, 400, "best_of", "best_of must be at most %d, got %d.", OAI_MAX_N, r->best_of);
        return -1;
    }
    if (r->presence_penalty < -2.0 || r->presence_penalty > 2.0) {
        oai_error_set(err, 400, "presence_penalty", "presence_penalty must be in [-2, 2], got %g.", r->presence_penalty);
        return -1;
    }
    if (r->frequency_penalty < -2.0 || r->frequency_penalty > 2.0) {
        oai_error_set(err, 400, "frequency_penalty", "frequency_penalty must be in [-2, 2], got %g.",
                      r->frequency_penalty);
        return -1;
    }
    if (!(r->repetition_penalty > 0.0 && r->repetition_penalty <= 2.0)) {
        oai_error_set(err, 400, "repetition_penalty", "repetition_penalty must be in (0, 2], got %g.",
                      r->repetition_penalty);
        return -1;
    }
    if (r->temperature < 0.0) {
        oai_error_set(err, 400, "temperature", "temperature must be non-negative, got %g.", r->temperature);
        return -1;
    }
    if (r->temperature > OAI_MAX_TEMPERATURE) {
        oai_error_set(err, 400, "temperature", "temperature must be at most 2, got %g.", r->temperature);
        return -1;
    }
    if (r->temperature > 0.0 && r->temperature < OAI_MIN_TEMPERATURE_STEP)
        r->temperature = OAI_MIN_TEMPERATURE_STEP;
    if (!(r->top_p > 0.0 && r->top_p <= 1.0)) {
        oai_error_set(err, 400, "top_p", "top_p must be in (0, 1], got %g.", r->top_p);
        return -1;
    }
    if (r->top_k == 0)
        r->top_k = -1;
    if (r->top_k < -1) {
        oai_error_set(err, 400, "top_k", "top_k must be -1 (disable), or at least 1, got %d.", r->top_k);
        return -1;
    }
    if (r->min_p < 0.0 || r->min_p > 1.0) {
        oai_error_set(err, 400, "min_p", "min_p must be in [0, 1], got %g.", r->min_p);
        return -1;
    }
    /* echo with max_tokens 0 returns the prompt only (vLLM); otherwise at least 1 */
    if (r->max_tokens == 0 && !(r->echo && r->kind == OAI_COMPLETION)) {
        oai_error_set(err, 400, "max_tokens", "max_tokens must be at least 1, got 0.");
        return -1;
    }
    if (r->min_tokens < 0) {
        oai_error_set(err, 400, "min_tokens", "min_tokens must be greater than or equal to 0, got %ld.", r->min_tokens);
        return -1;
    }
    if (r->max_tokens >= 0 && r->min_tokens > r->max_tokens) {
        oai_error_set(err, 400, "min_tokens", "min_tokens must be less than or equal to max_tokens=%ld, got %ld.",
                      r->max_tokens, r->min_tokens);
        return -1;
    }
    if (r->has_stream_options && !r->stream) {
        oai_error_set(err, 400, "stream_options", "Stream options can only be defined when `stream=True`.");
        return -1;
    }
    if (r->use_beam_search) {
        if (r->best_of < 2) {
            oai_error_set(err, 400, "best_of", "best_of must be greater than 1 when using beam search. Got %d.",
                          r->best_of);
            return -1;
        }
        if (r->temperature > 0.0) {
            oai_error_set(err, 400, "temperature", "temperature must be 0 when using beam search.");
            return -1;
        }
        if (r->top_p < 1.0) {
            oai_error_set(err, 400, "top_p", "top_p must be 1 when using beam search.");
            return -1;
        }
        if (r->top_k != -1) {
            oai_error_set(err, 400, "top_k", "top_k must be -1 when using beam search.");
            return -1;
        }
    } else {
        if (r->length_penalty != 1.0) {
            oai_error_set(err, 400, "length_penalty",
                          "length_penalty is only used with beam search (use_beam_search=true), got %g.",
                          r->length_penalty);
            return -1;
        }
        if (r->temperature == 0.0 && r->best_of > 1) {
            oai_error_set(err, 400, "best_of", "best_of must be 1 when using greedy sampling. Got %d.", r->best_of);
            return -1;
        }
    }
    return 0;
}

int oai_request_parse(oai_request *out, oai_kind kind, const char *body, size_t len, oai_error *err)
{
    set_defaults(out, kind);
    json_error_t jerr;
    /* Duplicate keys are rejected: two readers of one body must not disagree. */
    json_t *root = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        oai_error_set(err, 400, NULL, "Invalid JSON body: %.200s (at byte %d)", jerr.text, jerr.position);
        return -1;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        oai_error_set(err, 400, NULL, "The request body must be a JSON object");
        return -1;
    }
    int chat_logprobs = 0;
    long top_logprobs = 0;
    int mct_given = json_object_get(root, "max_completion_tokens") != NULL &&
                    !json_is_null(json_object_get(root, "max_completion_tokens"));
    const char *key;
    json_t *v;
    int rc = 0;
    json_object_foreach(root, key, v) {
        /* max_completion_tokens takes precedence over max_tokens in chat */
        if (kind == OAI_CHAT && mct_given && strcmp(key, "max_tokens") == 0)
            continue;
        if (parse_field(out, key, v, &chat_logprobs, &top_logprobs, err) != 0) {
            rc = -1;
            break;
        }
    }
    json_decref(root);
    if (rc == 0)
        rc = validate(out, chat_logprobs, top_logprobs, err);
    if (rc != 0)
        oai_request_free(out);
    return rc;
}
