/* openai_response: see openai_response.h. */
#include "api/openai_response.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/rand.h"

int oai_make_id(oai_kind kind, char out[OAI_ID_MAX])
{
    unsigned char b[16];
    if (rand_bytes(b, sizeof b) != 0)
        return -1;
    const char *prefix = kind == OAI_CHAT ? "chatcmpl-" : "cmpl-";
    size_t p = strlen(prefix);
    memcpy(out, prefix, p);
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof b; i++) {
        out[p++] = hex[b[i] >> 4];
        out[p++] = hex[b[i] & 15];
    }
    out[p] = '\0';
    return 0;
}

const char *oai_finish_name(oai_finish f)
{
    switch (f) {
    case OAI_FINISH_STOP: return "stop";
    case OAI_FINISH_LENGTH: return "length";
    case OAI_FINISH_ABORT: return "abort";
    case OAI_FINISH_NONE: break;
    }
    return NULL;
}

/* ---- UTF-8 ---- */

/* Length of the valid UTF-8 sequence at s (1-4), 0 if invalid, or -(needed)
 * when the bytes so far are a valid but truncated sequence. */
static int utf8_seq(const unsigned char *s, size_t len)
{
    unsigned c = s[0];
    int n;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) { n = 2; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { n = 3; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { n = 4; min = 0x10000; }
    else return 0;
    unsigned cp = c & (0x3F >> (n - 1));
    for (int i = 1; i < n; i++) {
        if ((size_t)i >= len)
            return -n;
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
        /* reject overlongs and surrogates as early as the second byte allows */
        if (i == 1) {
            if (n == 3 && c == 0xE0 && s[1] < 0xA0) return 0;
            if (n == 3 && c == 0xED && s[1] > 0x9F) return 0;
            if (n == 4 && c == 0xF0 && s[1] < 0x90) return 0;
            if (n == 4 && c == 0xF4 && s[1] > 0x8F) return 0;
        }
    }
    if (cp < min || cp > 0x10FFFF)
        return 0;
    return n;
}

size_t oai_utf8_complete_len(const char *s, size_t len)
{
    /* Only the last (up to 3) bytes can start an incomplete sequence. */
    size_t start = len > 3 ? len - 3 : 0;
    for (size_t i = start; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0xC0) {
            int r = utf8_seq((const unsigned char *)s + i, len - i);
            if (r < 0)
                return i;
        }
    }
    return len;
}

json_t *oai_json_text(const char *s, size_t len)
{
    if (!s)
        return json_string("");
    /* Fast path: already valid. */
    json_t *j = json_stringn(s, len);
    if (j)
        return j;
    /* Worst case every byte becomes U+FFFD (3 bytes). */
    if (len > (SIZE_MAX - 1) / 3)
        return NULL;
    char *buf = malloc(len * 3 + 1);
    if (!buf)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        int r = utf8_seq((const unsigned char *)s + i, len - i);
        if (r > 0 && !(r == 1 && s[i] == '\0')) {
            memcpy(buf + o, s + i, (size_t)r);
            o += (size_t)r;
            i += (size_t)r;
        } else if (r == 1) { /* NUL: keep it, jansson escapes it as \u0000 */
            buf[o++] = '\0';
            i++;
        } else {
            memcpy(buf + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        }
    }
    j = json_stringn(buf, o);
    free(buf);
    return j;
}

/* ---- objects ---- */

json_t *oai_usage_json(const oai_usage *u)
{
    return json_pack("{s:I,s:I,s:I}", "prompt_tokens", (json_int_t)u->prompt_tokens, "total_tokens",
                     (json_int_t)(u->prompt_tokens + u->completion_tokens), "completion_tokens",
                     (json_int_t)u->completion_tokens);
}

static json_t *finish_json(oai_finish f)
{
    const char *s = oai_finish_name(f);
    return s ? json_string(s) : json_null();
}

static json_t *stop_reason_json(const oai_stop_reason *r)
{
    switch (r->kind) {
    case OAI_STOP_REASON_STR: return oai_json_text(r->str, r->str ? strlen(r->str) : 0);
    case OAI_STOP_REASON_TOKEN: return json_integer(r->token);
    case OAI_STOP_REASON_NONE: break;
    }
    return json_null();
}

static json_t *lp_ref(json_t *lp) { return lp ? json_incref(lp) : json_null(); }

static json_t *envelope(const char *id, const char *object, int64_t created, const char *model)
{
    return json_pack("{s:s,s:s,s:I,s:s}", "id", id, "object", object, "created", (json_int_t)created, "model",
                     model ? model : "");
}

json_t *oai_response_new(oai_kind kind, const char *id, int64_t created, const char *model,
                         const oai_choice *choices, size_t n, const oai_usage *usage)
{
    json_t *root = envelope(id, kind == OAI_CHAT ? "chat.completion" : "text_completion", created, model);
    json_t *arr = json_array();
    if (!root || !arr)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        const oai_choice *c = &choices[i];
        json_t *ch;
        if (kind == OAI_CHAT) {
            ch = json_pack("{s:i,s:{s:s,s:o,s:[]},s:o,s:o,s:o}", "index", c->index, "message", "role", "assistant",
                           "content", oai_json_text(c->text, c->text_len), "tool_calls", "logprobs",
                           lp_ref(c->logprobs), "finish_reason", finish_json(c->finish), "stop_reason",
                           stop_reason_json(&c->stop_reason));
        } else {
            ch = json_pack("{s:i,s:o,s:o,s:o,s:o,s:n}", "index", c->index, "text", oai_json_text(c->text, c->text_len),
                           "logprobs", lp_ref(c->logprobs), "finish_reason", finish_json(c->finish), "stop_reason",
                           stop_reason_json(&c->stop_reason), "prompt_logprobs");
        }
        if (!ch || json_array_append_new(arr, ch) != 0)
            goto fail;
    }
    if (json_object_set_new(root, "choices", arr) != 0) {
        arr = NULL;
        goto fail;
    }
    arr = NULL;
    if (json_object_set_new(root, "usage", usage ? oai_usage_json(usage) : json_null()) != 0)
        goto fail;
    return root;
fail:
    json_decref(arr);
    json_decref(root);
    return NULL;
}

json_t *oai_chunk_new(oai_kind kind, const char *id, int64_t created, const char *model, const oai_choice *c,
                      int role_delta, const oai_usage *usage)
{
    json_t *root = envelope(id, kind == OAI_CHAT ? "chat.completion.chunk" : "text_completion", created, model);
    if (!root)
        return NULL;
    json_t *ch;
    if (kind == OAI_CHAT) {
        json_t *delta = json_object();
        if (delta && role_delta) {
            json_object_set_new(delta, "role", json_string("assistant"));
            json_object_set_new(delta, "content", json_string(""));
        } else if (delta && c->text) {
            json_object_set_new(delta, "content", oai_json_text(c->text, c->text_len));
        }
        ch = json_pack("{s:i,s:o,s:o,s:o,s:o}", "index", c->index, "delta", delta ? delta : json_object(), "logprobs",
                       lp_ref(c->logprobs), "finish_reason", finish_json(c->finish), "stop_reason",
                       stop_reason_json(&c->stop_reason));
    } else {
        ch = json_pack("{s:i,s:o,s:o,s:o,s:o}", "index", c->index, "text",
                       oai_json_text(c->text ? c->text : "", c->text ? c->text_len : 0), "logprobs",
                       lp_ref(c->logprobs), "finish_reason", finish_json(c->finish), "stop_reason",
                       stop_reason_json(&c->stop_reason));
    }
    if (!ch || json_object_set_new(root, "choices", json_pack("[o]", ch)) != 0) {
        json_decref(root);
        return NULL;
    }
    if (usage)
        json_object_set_new(root, "usage", oai_usage_json(usage));
    return root;
}

json_t *oai_usage_chunk_new(oai_kind kind, const char *id, int64_t created, const char *model, const oai_usage *usage)
{
    json_t *root = envelope(id, kind == OAI_CHAT ? "chat.completion.chunk" : "text_completion", created, model);
    if (!root)
        return NULL;
    if (json_object_set_new(root, "choices", json_array()) != 0 ||
        json_object_set_new(root, "usage", oai_usage_json(usage)) != 0) {
        json_decref(root);
        return NULL;
    }
    return root;
}

json_t *oai_error_body(const oai_error *e)
{
    return json_pack("{s:{s:s,s:s,s:o,s:i}}", "error", "message", e->message, "type", e->type, "param",
                     e->param[0] ? json_string(e->param) : json_null(), "code", e->status);
}

char *oai_json_dump(const json_t *obj, size_t *len)
{
    char *s = obj ? json_dumps(obj, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(9)) : NULL;
    if (s && len)
        *len = strlen(s);
    return s;
}

char *oai_sse_event(const json_t *obj, size_t *len)
{
    size_t jl;
    char *j = oai_json_dump(obj, &jl);
    if (!j)
        return NULL;
    static const char pre[] = "data: ";
    size_t total = sizeof pre - 1 + jl + 2;
    char *s = malloc(total + 1);
    if (s) {
        memcpy(s, pre, sizeof pre - 1);
        memcpy(s + sizeof pre - 1, j, jl);
        memcpy(s + sizeof pre - 1 + jl, "\n\n", 3);
        if (len)
            *len = total;
    }
    free(j);
    return s;
}

/* ---- logprobs ---- */

static json_t *lp_value(double lp) { return json_real(isfinite(lp) ? lp : OAI_LOGPROB_NEG_INF); }

json_t *oai_cmpl_logprobs_new(void)
{
    return json_pack("{s:[],s:[],s:[],s:[]}", "text_offset", "token_logprobs", "tokens", "top_logprobs");
}

int oai_cmpl_logprobs_append(json_t *lp, const char *tok, size_t tok_len, int has_logprob, double logprob,
                             const oai_top_entry *top, size_t n_top, long text_offset)
{
    json_t *tokens = json_object_get(lp, "tokens");
    json_t *tlp = json_object_get(lp, "token_logprobs");
    json_t *tops = json_object_get(lp, "top_logprobs");
    json_t *offs = json_object_get(lp, "text_offset");
    if (!tokens || !tlp || !tops || !offs)
        return -1;
    json_t *top_obj = NULL;
    if (has_logprob) {
        top_obj = json_object();
        if (!top_obj)
            return -1;
        for (size_t i = 0; i < n_top; i++) {
            json_t *k = oai_json_text(top[i].token, top[i].len);
            if (!k)
                continue;
            json_object_set_new(top_obj, json_string_value(k), lp_value(top[i].logprob));
            json_decref(k);
        }
        json_t *k = oai_json_text(tok, tok_len); /* the sampled token is always listed */
        if (k && !json_object_get(top_obj, json_string_value(k)))
            json_object_set_new(top_obj, json_string_value(k), lp_value(logprob));
        json_decref(k);
    }
    if (json_array_append_new(tokens, oai_json_text(tok, tok_len)) != 0 ||
        json_array_append_new(tlp, has_logprob ? lp_value(logprob) : json_null()) != 0 ||
        json_array_append_new(tops, top_obj ? top_obj : json_null()) != 0 ||
        json_array_append_new(offs, json_integer(text_offset)) != 0)
        return -1;
    return 0;
}

json_t *oai_chat_logprobs_new(void) { return json_pack("{s:[]}", "content"); }

static json_t *bytes_json(const char *s, size_t len)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < len; i++)
        json_array_append_new(a, json_integer((unsigned char)s[i]));
    return a;
}

int oai_chat_logprobs_append(json_t *lp, const char *tok, size_t tok_len, double logprob, const oai_top_entry *top,
                             size_t n_top)
{
    json_t *content = json_object_get(lp, "content");
    if (!content)
        return -1;
    json_t *tarr = json_array();
    if (!tarr)
        return -1;
    for (size_t i = 0; i < n_top; i++)
        json_array_append_new(tarr, json_pack("{s:o,s:o,s:o}", "token", oai_json_text(top[i].token, top[i].len),
                                              "logprob", lp_value(top[i].logprob), "bytes",
                                              bytes_json(top[i].token, top[i].len)));
    json_t *e = json_pack("{s:o,s:o,s:o,s:o}", "token", oai_json_text(tok, tok_len), "logprob", lp_value(logprob),
                          "bytes", bytes_json(tok, tok_len), "top_logprobs", tarr);
    if (!e)
        return -1;
    return json_array_append_new(content, e);
}
