#include "engine/tokenizer.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/unicode.h"
#include "util/log.h"

#define LOGGER "ward.tokenizer"

/* ---------------------------------------------------------------- helpers */

static void seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Copies at most 40 bytes of an untrusted string for an error message,
 * replacing anything but printable ASCII. */
static void printable(char *dst, size_t cap, const char *s, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; i < n && j + 1 < cap && i < 40; i++)
        dst[j++] = (s[i] >= 0x20 && s[i] < 0x7F) ? s[i] : '?';
    dst[j] = '\0';
}

typedef struct {
    int32_t *v;
    size_t n, cap;
} ivec;

static int ivec_push(ivec *a, int32_t x)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 256;
        if (cap > SIZE_MAX / sizeof *a->v)
            return -1;
        int32_t *nv = realloc(a->v, cap * sizeof *nv);
        if (!nv)
            return -1;
        a->v = nv;
        a->cap = cap;
    }
    a->v[a->n++] = x;
    return 0;
}

typedef struct {
    char *p;
    size_t n, cap;
} bbuf;

static int bbuf_reserve(bbuf *b, size_t extra)
{
    if (extra > SIZE_MAX - b->n - 1)
        return -1;
    size_t need = b->n + extra + 1; /* keep room for a NUL */
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) {
        if (cap > SIZE_MAX / 2)
            return -1;
        cap *= 2;
    }
    char *np = realloc(b->p, cap);
    if (!np)
        return -1;
    b->p = np;
    b->cap = cap;
    return 0;
}

static int bbuf_add(bbuf *b, const char *s, size_t n)
{
    if (bbuf_reserve(b, n) != 0)
        return -1;
    if (n)
        memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return 0;
}

/* FNV-1a; pairs hash their two parts with a separator so ("ab","c") and
 * ("a","bc") differ. */
static uint64_t fnv(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}
#define FNV_INIT 0xcbf29ce484222325ull

static uint64_t hash_pair(const char *a, size_t an, const char *b, size_t bn)
{
    uint64_t h = fnv(FNV_INIT, a, an);
    h ^= 0x1FFu + an;
    h *= 0x100000001b3ull;
    return fnv(h, b, bn);
}

/* --------------------------------------------------------------- the type */

typedef struct {
    uint32_t off;    /* into strs */
    uint32_t first;  /* length of the left part */
    uint32_t len;    /* left + ' ' + right */
} merge_rec;

struct tokenizer {
    tokenizer_type type;
    tokenizer_pre_type pre;
    int32_t n_vocab;

    char *strs;          /* all token texts (NUL-terminated) then merge texts */
    uint32_t *tok_off, *tok_len;
    float *score;
    uint8_t *attr;
    uint8_t *eog;
    char *pieces;        /* decoded piece of every token */
    uint32_t *piece_off, *piece_len;

    int32_t *vslot;      /* vocab hash: slot -> id, -1 empty */
    size_t vmask;

    merge_rec *merges;
    uint32_t n_merges;
    int32_t *mslot;      /* merge hash: slot -> rank, -1 empty */
    size_t mmask;

    int32_t *specials;   /* control/user-defined/unknown ids, longest text first */
    size_t n_specials;

    int32_t bos, eos, unk, eot, eom;
    int add_bos, add_eos, add_space_prefix, clean_spaces, ignore_merges;
    char enc_byte[256][3]; /* GPT-2 map: byte -> UTF-8 of its code point */
    uint8_t enc_byte_len[256];
};

static const char *tok_text(const tokenizer *t, int32_t id) { return t->strs + t->tok_off[id]; }

int32_t tokenizer_find(const tokenizer *t, const char *s, size_t n)
{
    if (!t)
        return TOKENIZER_NULL;
    size_t i = (size_t)fnv(FNV_INIT, s, n) & t->vmask;
    for (;;) {
        int32_t id = t->vslot[i];
        if (id < 0)
            return TOKENIZER_NULL;
        if (t->tok_len[id] == n && memcmp(tok_text(t, id), s, n) == 0)
            return id;
        i = (i + 1) & t->vmask;
    }
}

/* Inserts id; a later token with the same text replaces an earlier one, as
 * llama.cpp's token_to_id map does. */
static void vocab_insert(tokenizer *t, int32_t id)
{
    const char *s = tok_text(t, id);
    size_t n = t->tok_len[id];
    size_t i = (size_t)fnv(FNV_INIT, s, n) & t->vmask;
    for (;;) {
        int32_t o = t->vslot[i];
        if (o < 0 || (t->tok_len[o] == n && memcmp(tok_text(t, o), s, n) == 0)) {
            t->vslot[i] = id;
            return;
        }
        i = (i + 1) & t->vmask;
    }
}

/* Merge rank of (a, b) or -1. */
static int32_t merge_rank(const tokenizer *t, const char *a, size_t an, const char *b, size_t bn)
{
    if (!t->mslot)
        return -1;
    size_t i = (size_t)hash_pair(a, an, b, bn) & t->mmask;
    for (;;) {
        int32_t r = t->mslot[i];
        if (r < 0)
            return -1;
        const merge_rec *m = &t->merges[r];
        const char *ms = t->strs + m->off;
        if (m->first == an && m->len - m->first - 1 == bn && memcmp(ms, a, an) == 0 &&
            memcmp(ms + an + 1, b, bn) == 0)
            return r;
        i = (i + 1) & t->mmask;
    }
}

/* The first of duplicate merges keeps its rank (llama.cpp uses emplace). */
static void merge_insert(tokenizer *t, int32_t r)
{
    const merge_rec *m = &t->merges[r];
    const char *s = t->strs + m->off;
    size_t an = m->first, bn = m->len - m->first - 1;
    size_t i = (size_t)hash_pair(s, an, s + an + 1, bn) & t->mmask;
    for (;;) {
        int32_t o = t->mslot[i];
        if (o < 0) {
            t->mslot[i] = r;
            return;
        }
        const merge_rec *q = &t->merges[o];
        if (q->len == m->len && q->first == m->first && memcmp(t->strs + q->off, s, m->len) == 0)
            return;
        i = (i + 1) & t->mmask;
    }
}

static size_t table_size(size_t n)
{
    size_t s = 16;
    while (s < n * 2) /* load factor <= 1/2; n is bounded far below SIZE_MAX/4 */
        s *= 2;
    return s;
}

void tokenizer_free(tokenizer *t)
{
    if (!t)
        return;
    free(t->strs);
    free(t->tok_off);
    free(t->tok_len);
    free(t->score);
    free(t->attr);
    free(t->eog);
    free(t->pieces);
    free(t->piece_off);
    free(t->piece_len);
    free(t->vslot);
    free(t->merges);
    free(t->mslot);
    free(t->specials);
    free(t);
}

/* ------------------------------------------------------------------- load */

static int str_is(gguf_str s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.ptr, lit, n) == 0;
}

static tokenizer_pre_type pre_from_name(gguf_str s, int *known)
{
    static const struct { const char *name; tokenizer_pre_type t; } map[] = {
        {"default", TOKENIZER_PRE_DEFAULT},
        {"llama3", TOKENIZER_PRE_LLAMA3}, {"llama-v3", TOKENIZER_PRE_LLAMA3},
        {"llama-bpe", TOKENIZER_PRE_LLAMA3}, {"falcon3", TOKENIZER_PRE_LLAMA3},
        {"pixtral", TOKENIZER_PRE_LLAMA3}, {"dbrx", TOKENIZER_PRE_LLAMA3},
        {"smaug-bpe", TOKENIZER_PRE_LLAMA3},
        {"qwen2", TOKENIZER_PRE_QWEN2}, {"deepseek-r1-qwen", TOKENIZER_PRE_QWEN2},
        {"stablelm2", TOKENIZER_PRE_QWEN2},
        {"smollm", TOKENIZER_PRE_SMOLLM}, {"starcoder", TOKENIZER_PRE_SMOLLM},
        {"refact", TOKENIZER_PRE_SMOLLM}, {"command-r", TOKENIZER_PRE_SMOLLM},
        {"codeshell", TOKENIZER_PRE_SMOLLM}, {"exaone", TOKENIZER_PRE_SMOLLM},
        {"minerva-7b", TOKENIZER_PRE_SMOLLM},
        {"gpt-2", TOKENIZER_PRE_GPT2}, {"phi-2", TOKENIZER_PRE_GPT2}, {"mpt", TOKENIZER_PRE_GPT2},
        {"olmo", TOKENIZER_PRE_GPT2}, {"jais", TOKENIZER_PRE_GPT2},
        {"jina-es", TOKENIZER_PRE_GPT2}, {"jina-de", TOKENIZER_PRE_GPT2},
        {"deepseek-llm", TOKENIZER_PRE_DEEPSEEK_LLM},
        {"deepseek-coder", TOKENIZER_PRE_DEEPSEEK_CODER},
    };
    *known = 1;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (str_is(s, map[i].name))
            return map[i].t;
    *known = 0;
    return TOKENIZER_PRE_DEFAULT;
}

/* Pre-tokenizers whose Hugging Face decoders keep spaces as they are. */
static int pre_keeps_spaces(gguf_str s)
{
    static const char *names[] = {"deepseek-llm", "deepseek-coder", "command-r", "qwen2",
                                  "deepseek-r1-qwen", "poro-chat", "viking", "tekken", "smollm"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (str_is(s, names[i]))
            return 1;
    return 0;
}

static void load_special_id(tokenizer *t, const gguf_file *f, const char *key, int32_t *id)
{
    uint32_t v;
    if (gguf_get_u32(f, key, &v) != 0)
        return;
    if (v >= (uint32_t)t->n_vocab) {
        log_pack(LOG_WARN, LOGGER, "special token id out of range, ignored", "{s:s,s:I}", "key", key,
                 "id", (json_int_t)v);
        return;
    }
    *id = (int32_t)v;
}

/* Decoded bytes of one token (see tokenizer_token_to_piece); dst has room
 * for tok_len bytes (decoding never grows a token). */
static uint32_t make_piece(const tokenizer *t, int32_t id, char *dst)
{
    const char *s = tok_text(t, id);
    uint32_t n = t->tok_len[id];
    uint8_t a = t->attr[id];
    if (a & (TOKEN_ATTR_UNKNOWN | TOKEN_ATTR_CONTROL | TOKEN_ATTR_USER_DEFINED)) {
        memcpy(dst, s, n);
        return n;
    }
    if (t->type == TOKENIZER_SPM) {
        if (a & TOKEN_ATTR_NORMAL) { /* U+2581 -> ' ' */
            uint32_t j = 0;
            for (uint32_t i = 0; i < n;) {
                if (i + 3 <= n && memcmp(s + i, "\xE2\x96\x81", 3) == 0) {
                    dst[j++] = ' ';
                    i += 3;
                } else {
                    dst[j++] = s[i++];
                }
            }
            return j;
        }
        if (a & TOKEN_ATTR_BYTE) { /* "<0xNN>" */
            unsigned v = 0;
            if (n == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>') {
                int ok = 1;
                for (int i = 3; i < 5; i++) {
                    char c = s[i];
                    unsigned d = (c >= '0' && c <= '9') ? (unsigned)(c - '0')
                               : (c >= 'A' && c <= 'F') ? (unsigned)(c - 'A' + 10)
                               : (c >= 'a' && c <= 'f') ? (unsigned)(c - 'a' + 10) : 16u;
                    if (d > 15)
                        ok = 0;
                    v = v * 16 + d;
                }
                if (ok) {
                    dst[0] = (char)v;
                    return 1;
                }
            }
            memcpy(dst, s, n); /* malformed byte token: show its text */
            return n;
        }
        return 0; /* unused / undefined tokens render as nothing */
    }
    if (a & TOKEN_ATTR_NORMAL) { /* GPT-2 code points -> bytes */
        uint32_t j = 0;
        for (size_t i = 0; i < n;) {
            size_t used;
            uint32_t c = unicode_decode(s + i, n - i, &used);
            int b = unicode_cpt_to_byte(c);
            if (b >= 0 && c != UNICODE_REPLACEMENT) {
                dst[j++] = (char)b;
            } else { /* not a mapped code point: keep its bytes */
                memcpy(dst + j, s + i, used);
                j += (uint32_t)used;
            }
            i += used;
        }
        return j;
    }
    return 0;
}

static const char *const EOG_TEXTS[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<end_of_turn>",
    "<|endoftext|>", "<|eom_id|>", "<EOT>", "_<EOT>", "<|end_of_text|>", "<end_of_utterance>",
};
static const char *const EOT_TEXTS[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<EOT>", "_<EOT>",
    "<\xEF\xBD\x9C" "end\xE2\x96\x81" "of\xE2\x96\x81" "sentence\xEF\xBD\x9C>", "<end_of_utterance>",
};

static int special_cmp_len_desc(const void *a, const void *b, void *ctx);

/* qsort_r is a GNU extension; a small merge sort keeps it portable and
 * stable (ties in length keep id order). */
static void sort_specials(int32_t *v, int32_t *tmp, size_t n, const tokenizer *t)
{
    if (n < 2)
        return;
    size_t h = n / 2;
    sort_specials(v, tmp, h, t);
    sort_specials(v + h, tmp, n - h, t);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n)
        tmp[k++] = special_cmp_len_desc(&v[j], &v[i], (void *)t) < 0 ? v[j++] : v[i++];
    while (i < h)
        tmp[k++] = v[i++];
    while (j < n)
        tmp[k++] = v[j++];
    memcpy(v, tmp, n * sizeof *v);
}

static int special_cmp_len_desc(const void *a, const void *b, void *ctx)
{
    const tokenizer *t = ctx;
    uint32_t la = t->tok_len[*(const int32_t *)a], lb = t->tok_len[*(const int32_t *)b];
    return la > lb ? -1 : la < lb ? 1 : 0;
}

tokenizer *tokenizer_from_gguf(const gguf_file *f, char *err, size_t errlen)
{
    char shown[48];
    gguf_str model;
    if (!f) {
        seterr(err, errlen, "tokenizer: no file");
        return NULL;
    }
    if (gguf_get_str(f, "tokenizer.ggml.model", &model) != 0) {
        seterr(err, errlen, "tokenizer: missing key tokenizer.ggml.model");
        return NULL;
    }
    tokenizer_type type;
    if (str_is(model, "llama"))
        type = TOKENIZER_SPM;
    else if (str_is(model, "gpt2"))
        type = TOKENIZER_BPE;
    else {
        printable(shown, sizeof shown, model.ptr, (size_t)model.len);
        seterr(err, errlen, "tokenizer: unsupported tokenizer model '%s' (ward supports llama, gpt2)", shown);
        return NULL;
    }

    gguf_vtype et;
    uint64_t nv;
    if (gguf_get_arr(f, "tokenizer.ggml.tokens", &et, &nv) != 0 || et != GGUF_T_STRING) {
        seterr(err, errlen, "tokenizer: missing or non-string array tokenizer.ggml.tokens");
        return NULL;
    }
    if (nv == 0 || nv > TOKENIZER_MAX_VOCAB) {
        seterr(err, errlen, "tokenizer: vocabulary size %llu outside 1..%u", (unsigned long long)nv,
               TOKENIZER_MAX_VOCAB);
        return NULL;
    }
    uint64_t ns = 0, ntt = 0, nm = 0;
    int has_scores = gguf_get_arr(f, "tokenizer.ggml.scores", &et, &ns) == 0;
    if (has_scores && (et != GGUF_T_FLOAT32 || ns != nv)) {
        seterr(err, errlen, "tokenizer: tokenizer.ggml.scores must be f32[%llu]", (unsigned long long)nv);
        return NULL;
    }
    int has_types = gguf_get_arr(f, "tokenizer.ggml.token_type", &et, &ntt) == 0;
    if (has_types && (et == GGUF_T_STRING || et == GGUF_T_FLOAT32 || et == GGUF_T_FLOAT64 ||
                      et == GGUF_T_BOOL || et == GGUF_T_ARRAY || ntt != nv)) {
        seterr(err, errlen, "tokenizer: tokenizer.ggml.token_type must be an integer array of %llu",
               (unsigned long long)nv);
        return NULL;
    }
    int has_merges = gguf_get_arr(f, "tokenizer.ggml.merges", &et, &nm) == 0;
    if (has_merges && et != GGUF_T_STRING) {
        seterr(err, errlen, "tokenizer: tokenizer.ggml.merges must be a string array");
        return NULL;
    }
    if (type == TOKENIZER_BPE && !has_merges) {
        seterr(err, errlen, "tokenizer: gpt2 tokenizer without tokenizer.ggml.merges");
        return NULL;
    }
    if (type != TOKENIZER_BPE)
        nm = 0; /* SPM ignores merges */
    if (nm > TOKENIZER_MAX_MERGES) {
        seterr(err, errlen, "tokenizer: %llu merges exceed the limit %u", (unsigned long long)nm,
               TOKENIZER_MAX_MERGES);
        return NULL;
    }

    tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        goto oom;
    t->type = type;
    t->n_vocab = (int32_t)nv;
    size_t n = (size_t)nv;

    /* Sizes first, so that all strings live in one allocation. Both counts
     * are bounded (1M tokens x 4 KiB, 2M merges x 8 KiB): no overflow. */
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        gguf_str s;
        if (gguf_arr_str(f, "tokenizer.ggml.tokens", i, &s) != 0) {
            seterr(err, errlen, "tokenizer: cannot read token %zu", i);
            goto fail;
        }
        if (s.len > TOKENIZER_MAX_TOKEN_BYTES) {
            seterr(err, errlen, "tokenizer: token %zu is %llu bytes (limit %u)", i,
                   (unsigned long long)s.len, TOKENIZER_MAX_TOKEN_BYTES);
            goto fail;
        }
        total += (s.len ? (size_t)s.len : 24) + 1; /* empty -> "[EMPTY_n]" */
    }
    for (size_t i = 0; i < (size_t)nm; i++) {
        gguf_str s;
        if (gguf_arr_str(f, "tokenizer.ggml.merges", i, &s) != 0) {
            seterr(err, errlen, "tokenizer: cannot read merge %zu", i);
            goto fail;
        }
        if (s.len > 2 * TOKENIZER_MAX_TOKEN_BYTES + 1) {
            seterr(err, errlen, "tokenizer: merge %zu is %llu bytes (limit %u)", i,
                   (unsigned long long)s.len, 2 * TOKENIZER_MAX_TOKEN_BYTES + 1);
            goto fail;
        }
        total += (size_t)s.len;
    }
    if (total > UINT32_MAX) {
        seterr(err, errlen, "tokenizer: vocabulary text too large");
        goto fail;
    }

    t->strs = malloc(total ? total : 1);
    t->tok_off = malloc(n * sizeof *t->tok_off);
    t->tok_len = malloc(n * sizeof *t->tok_len);
    t->score = calloc(n, sizeof *t->score);
    t->attr = malloc(n);
    t->eog = calloc(n, 1);
    t->piece_off = malloc(n * sizeof *t->piece_off);
    t->piece_len = malloc(n * sizeof *t->piece_len);
    t->vmask = table_size(n) - 1;
    t->vslot = malloc((t->vmask + 1) * sizeof *t->vslot);
    if (!t->strs || !t->tok_off || !t->tok_len || !t->score || !t->attr || !t->eog ||
        !t->piece_off || !t->piece_len || !t->vslot)
        goto oom;
    memset(t->vslot, 0xFF, (t->vmask + 1) * sizeof *t->vslot);

    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        gguf_str s;
        (void)gguf_arr_str(f, "tokenizer.ggml.tokens", i, &s);
        t->tok_off[i] = (uint32_t)pos;
        if (s.len == 0) { /* llama.cpp names empty tokens so that they never match */
            int k = snprintf(t->strs + pos, 25, "[EMPTY_%zu]", i);
            t->tok_len[i] = (uint32_t)k;
            pos += (size_t)k + 1;
        } else {
            memcpy(t->strs + pos, s.ptr, (size_t)s.len);
            t->strs[pos + s.len] = '\0';
            t->tok_len[i] = (uint32_t)s.len;
            pos += (size_t)s.len + 1;
        }
        if (has_scores) {
            float sc = 0;
            (void)gguf_arr_f32(f, "tokenizer.ggml.scores", i, &sc);
            t->score[i] = isnan(sc) ? -INFINITY : sc; /* NaN would break heap order */
        }
        uint8_t a = TOKEN_ATTR_NORMAL;
        if (has_types) {
            int64_t ty = 0;
            (void)gguf_arr_i64(f, "tokenizer.ggml.token_type", i, &ty);
            switch (ty) {
            case 1: a = TOKEN_ATTR_NORMAL; break;
            case 2: a = TOKEN_ATTR_UNKNOWN; break;
            case 3: a = TOKEN_ATTR_CONTROL; break;
            case 4: a = TOKEN_ATTR_USER_DEFINED; break;
            case 5: a = TOKEN_ATTR_UNUSED; break;
            case 6: a = TOKEN_ATTR_BYTE; break;
            default: a = TOKEN_ATTR_UNDEFINED; break;
            }
        }
        t->attr[i] = a;
        vocab_insert(t, (int32_t)i);
    }

    if (nm > 0) {
        t->merges = malloc((size_t)nm * sizeof *t->merges);
        t->mmask = table_size((size_t)nm) - 1;
        t->mslot = malloc((t->mmask + 1) * sizeof *t->mslot);
        if (!t->merges || !t->mslot)
            goto oom;
        memset(t->mslot, 0xFF, (t->mmask + 1) * sizeof *t->mslot);
        t->n_merges = (uint32_t)nm;
        for (size_t i = 0; i < (size_t)nm; i++) {
            gguf_str s;
            (void)gguf_arr_str(f, "tokenizer.ggml.merges", i, &s);
            merge_rec *m = &t->merges[i];
            m->off = (uint32_t)pos;
            m->len = (uint32_t)s.len;
            memcpy(t->strs + pos, s.ptr, (size_t)s.len);
            pos += (size_t)s.len;
            /* Split at the first space from index 1 (llama.cpp's rule). */
            const char *sp = s.len > 1 ? memchr(s.ptr + 1, ' ', (size_t)s.len - 1) : NULL;
            if (!sp) { /* unusable merge: keeps its rank slot, never matches */
                m->first = 0;
                continue;
            }
            m->first = (uint32_t)(sp - s.ptr);
            merge_insert(t, (int32_t)i);
        }
    }

    /* Defaults, then keys (llama.cpp llama_vocab::load). */
    gguf_str pre = {"", 0};
    int has_pre = gguf_get_str(f, "tokenizer.ggml.pre", &pre) == 0;
    t->eot = t->eom = TOKENIZER_NULL;
    if (type == TOKENIZER_SPM) {
        t->bos = 1; t->eos = 2; t->unk = 0;
        t->add_space_prefix = 1; t->clean_spaces = 0; t->add_bos = 1; t->add_eos = 0;
        t->pre = TOKENIZER_PRE_DEFAULT;
    } else {
        t->bos = 11; t->eos = 11; t->unk = TOKENIZER_NULL;
        t->add_space_prefix = 0; t->clean_spaces = 1; t->add_bos = 0; t->add_eos = 0;
        int known = 1;
        t->pre = has_pre ? pre_from_name(pre, &known) : TOKENIZER_PRE_DEFAULT;
        if (!has_pre || !known) {
            printable(shown, sizeof shown, pre.ptr, (size_t)pre.len);
            log_pack(LOG_WARN, LOGGER, "unknown or missing pre-tokenizer, using default", "{s:s}",
                     "pre", shown);
        }
        if (t->pre == TOKENIZER_PRE_LLAMA3) {
            t->ignore_merges = 1;
            t->add_bos = 1;
        }
        if (has_pre && pre_keeps_spaces(pre))
            t->clean_spaces = 0;
    }
    for (int i = 0; i < 2; i++) { /* defaults may be out of range for tiny vocabs */
        int32_t *id = i ? &t->eos : &t->bos;
        if (*id >= t->n_vocab)
            *id = TOKENIZER_NULL;
    }
    if (t->unk >= t->n_vocab)
        t->unk = TOKENIZER_NULL;
    load_special_id(t, f, "tokenizer.ggml.bos_token_id", &t->bos);
    load_special_id(t, f, "tokenizer.ggml.eos_token_id", &t->eos);
    load_special_id(t, f, "tokenizer.ggml.unknown_token_id", &t->unk);
    load_special_id(t, f, "tokenizer.ggml.eot_token_id", &t->eot);
    load_special_id(t, f, "tokenizer.ggml.eom_token_id", &t->eom);
    int b;
    if (gguf_get_bool(f, "tokenizer.ggml.add_space_prefix", &b) == 0)
        t->add_space_prefix = b;
    if (gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &b) == 0)
        t->add_bos = b;
    if (gguf_get_bool(f, "tokenizer.ggml.add_eos_token", &b) == 0)
        t->add_eos = b;

    /* End-of-generation tokens by name; llama.cpp also makes them control
     * tokens, which keeps them from being parsed out of plain text. */
    if (t->eot == TOKENIZER_NULL) {
        for (size_t i = 0; i < sizeof EOT_TEXTS / sizeof EOT_TEXTS[0] && t->eot < 0; i++)
            t->eot = tokenizer_find(t, EOT_TEXTS[i], strlen(EOT_TEXTS[i]));
        if (t->eot >= 0)
            t->attr[t->eot] = TOKEN_ATTR_CONTROL;
    }
    if (t->eom == TOKENIZER_NULL) {
        t->eom = tokenizer_find(t, "<|eom_id|>", 10);
        if (t->eom >= 0)
            t->attr[t->eom] = TOKEN_ATTR_CONTROL;
    }
    for (size_t i = 0; i < sizeof EOG_TEXTS / sizeof EOG_TEXTS[0]; i++) {
        int32_t id = tokenizer_find(t, EOG_TEXTS[i], strlen(EOG_TEXTS[i]));
        if (id >= 0) {
            t->eog[id] = 1;
            t->attr[id] = TOKEN_ATTR_CONTROL;
        }
    }
    if (t->eos >= 0)
        t->eog[t->eos] = 1;
    if (t->eot >= 0)
        t->eog[t->eot] = 1;
    if (t->eom >= 0)
        t->eog[t->eom] = 1;

    /* Specials for the partition step, longest first. */
    size_t nsp = 0;
    for (size_t i = 0; i < n; i++)
        if (t->attr[i] & (TOKEN_ATTR_CONTROL | TOKEN_ATTR_USER_DEFINED | TOKEN_ATTR_UNKNOWN))
            nsp++;
    if (nsp) {
        t->specials = malloc(nsp * sizeof *t->specials);
        int32_t *tmp = malloc(nsp * sizeof *tmp);
        if (!t->specials || !tmp) {
            free(tmp);
            goto oom;
        }
        nsp = 0;
        for (size_t i = 0; i < n; i++)
            if (t->attr[i] & (TOKEN_ATTR_CONTROL | TOKEN_ATTR_USER_DEFINED | TOKEN_ATTR_UNKNOWN))
                t->specials[nsp++] = (int32_t)i;
        sort_specials(t->specials, tmp, nsp, t);
        free(tmp);
        t->n_specials = nsp;
    }

    /* Pieces: never longer than the token text. */
    t->pieces = malloc(pos + 1);
    if (!t->pieces)
        goto oom;
    size_t pp = 0;
    for (size_t i = 0; i < n; i++) {
        t->piece_off[i] = (uint32_t)pp;
        t->piece_len[i] = make_piece(t, (int32_t)i, t->pieces + pp);
        pp += t->piece_len[i];
    }

    for (unsigned by = 0; by < 256; by++)
        t->enc_byte_len[by] = (uint8_t)unicode_encode(unicode_byte_to_cpt((uint8_t)by), t->enc_byte[by]);
    return t;

oom:
    seterr(err, errlen, "tokenizer: out of memory");
fail:
    tokenizer_free(t);
    return NULL;
}

/* ------------------------------------------------------------------ heap */

/* A candidate merge of symbols left and right. Smaller prio wins (SPM uses
 * -score, BPE the merge rank); ties go to the leftmost pair. */
typedef struct {
    double prio;
    int32_t left, right;
    uint32_t llen, rlen; /* symbol lengths when queued; a change means stale */
} bigram;

typedef struct {
    bigram *v;
    size_t n, cap;
} bheap;

static int bg_less(const bigram *a, const bigram *b)
{
    return a->prio < b->prio || (a->prio == b->prio && a->left < b->left);
}

static int heap_push(bheap *h, bigram x)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        if (cap > SIZE_MAX / sizeof *h->v)
            return -1;
        bigram *nv = realloc(h->v, cap * sizeof *nv);
        if (!nv)
            return -1;
        h->v = nv;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!bg_less(&x, &h->v[p]))
            break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = x;
    return 0;
}

static bigram heap_pop(bheap *h)
{
    bigram top = h->v[0];
    bigram x = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && bg_less(&h->v[c + 1], &h->v[c]))
            c++;
        if (!bg_less(&h->v[c], &x))
            break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n)
        h->v[i] = x;
    return top;
}

typedef struct {
    uint32_t off, n; /* bytes in the word; n == 0 once merged away */
    int32_t prev, next;
} symbol;

/* Work buffers reused across the words of one encode call. */
typedef struct {
    symbol *sym;
    size_t cap;
    bheap heap;
    bbuf word;
    ivec *out;
} session;

static int session_symbols(session *ss, const char *w, size_t n, size_t *count)
{
    if (n > ss->cap) {
        if (n > SIZE_MAX / sizeof *ss->sym)
            return -1;
        symbol *ns = realloc(ss->sym, n * sizeof *ns);
        if (!ns)
            return -1;
        ss->sym = ns;
        ss->cap = n;
    }
    size_t k = 0;
    for (size_t off = 0; off < n;) {
        size_t len = unicode_seq_len((uint8_t)w[off]);
        if (len > n - off)
            len = n - off;
        ss->sym[k] = (symbol){(uint32_t)off, (uint32_t)len, (int32_t)k - 1, off + len == n ? -1 : (int32_t)k + 1};
        off += len;
        k++;
    }
    *count = k;
    return 0;
}

/* ------------------------------------------------------------------- SPM */

static int spm_try_bigram(const tokenizer *t, session *ss, const char *w, int32_t l, int32_t r)
{
    if (l < 0 || r < 0)
        return 0;
    const symbol *a = &ss->sym[l], *b = &ss->sym[r];
    int32_t id = tokenizer_find(t, w + a->off, (size_t)a->n + b->n);
    if (id < 0)
        return 0;
    bigram g = {-(double)t->score[id], l, r, a->n, b->n};
    return heap_push(&ss->heap, g);
}

static int spm_byte_token(const tokenizer *t, uint8_t c, ivec *out)
{
    static const char hex[] = "0123456789ABCDEF";
    char buf[6] = {'<', '0', 'x', hex[c >> 4], hex[c & 15], '>'};
    int32_t id = tokenizer_find(t, buf, 6);
    if (id < 0)
        id = tokenizer_find(t, (const char *)&c, 1);
    if (id < 0)
        id = t->unk; /* llama.cpp aborts here; ward degrades to <unk> */
    return id >= 0 ? ivec_push(out, id) : 0;
}

/* text is one raw fragment with the prefix space (if any) already added. */
static int spm_tokenize(const tokenizer *t, session *ss, const char *text, size_t len)
{
    bbuf *w = &ss->word;
    w->n = 0;
    for (size_t i = 0; i < len; i++) { /* ' ' -> U+2581 */
        int rc = text[i] == ' ' ? bbuf_add(w, "\xE2\x96\x81", 3) : bbuf_add(w, text + i, 1);
        if (rc != 0)
            return -1;
    }
    if (w->n == 0)
        return 0;
    size_t ns;
    if (session_symbols(ss, w->p, w->n, &ns) != 0)
        return -1;
    ss->heap.n = 0;
    for (size_t i = 1; i < ns; i++)
        if (spm_try_bigram(t, ss, w->p, (int32_t)i - 1, (int32_t)i) != 0)
            return -1;
    while (ss->heap.n) {
        bigram g = heap_pop(&ss->heap);
        symbol *a = &ss->sym[g.left], *b = &ss->sym[g.right];
        if (a->n == 0 || b->n == 0 || a->n != g.llen || b->n != g.rlen)
            continue;
        a->n += b->n;
        b->n = 0;
        a->next = b->next;
        if (b->next >= 0)
            ss->sym[b->next].prev = g.left;
        if (spm_try_bigram(t, ss, w->p, a->prev, g.left) != 0 ||
            spm_try_bigram(t, ss, w->p, g.left, a->next) != 0)
            return -1;
    }
    for (int32_t i = 0; i != -1; i = ss->sym[i].next) {
        const symbol *s = &ss->sym[i];
        int32_t id = tokenizer_find(t, w->p + s->off, s->n);
        if (id >= 0) {
            if (ivec_push(ss->out, id) != 0)
                return -1;
            continue;
        }
        for (uint32_t j = 0; j < s->n; j++)
            if (spm_byte_token(t, (uint8_t)w->p[s->off + j], ss->out) != 0)
                return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------- BPE */

static int bpe_try_bigram(const tokenizer *t, session *ss, const char *w, int32_t l, int32_t r)
{
    if (l < 0 || r < 0)
        return 0;
    const symbol *a = &ss->sym[l], *b = &ss->sym[r];
    int32_t rank = merge_rank(t, w + a->off, a->n, w + b->off, b->n);
    if (rank < 0)
        return 0;
    bigram g = {(double)rank, l, r, a->n, b->n};
    return heap_push(&ss->heap, g);
}

static int bpe_word(const tokenizer *t, session *ss, const char *w, size_t n)
{
    if (t->ignore_merges) {
        int32_t id = tokenizer_find(t, w, n);
        if (id >= 0)
            return ivec_push(ss->out, id);
    }
    size_t ns;
    if (session_symbols(ss, w, n, &ns) != 0)
        return -1;
    ss->heap.n = 0;
    for (size_t i = 1; i < ns; i++)
        if (bpe_try_bigram(t, ss, w, (int32_t)i - 1, (int32_t)i) != 0)
            return -1;
    while (ss->heap.n) {
        bigram g = heap_pop(&ss->heap);
        symbol *a = &ss->sym[g.left], *b = &ss->sym[g.right];
        if (a->n != g.llen || b->n != g.rlen || b->n == 0)
            continue;
        a->n += b->n;
        b->n = 0;
        a->next = b->next;
        if (b->next >= 0)
            ss->sym[b->next].prev = g.left;
        if (bpe_try_bigram(t, ss, w, a->prev, g.left) != 0 ||
            bpe_try_bigram(t, ss, w, g.left, a->next) != 0)
            return -1;
    }
    for (int32_t i = 0; ns && i != -1; i = ss->sym[i].next) {
        const symbol *s = &ss->sym[i];
        int32_t id = tokenizer_find(t, w + s->off, s->n);
        if (id >= 0) {
            if (ivec_push(ss->out, id) != 0)
                return -1;
            continue;
        }
        for (uint32_t j = 0; j < s->n; j++) { /* per byte; bytes without a token are dropped */
            int32_t bid = tokenizer_find(t, w + s->off + j, 1);
            if (bid >= 0 && ivec_push(ss->out, bid) != 0)
                return -1;
        }
    }
    return 0;
}

static int bpe_tokenize(const tokenizer *t, session *ss, const char *text, size_t len)
{
    if (len == 0)
        return 0;
    int rc = -1;
    uint32_t *cpts = malloc(len * sizeof *cpts); /* len <= TOKENIZER_MAX_INPUT: no overflow */
    tokenizer_pieces pieces = {0};
    if (!cpts)
        return -1;
    size_t nc = 0;
    for (size_t i = 0; i < len;) {
        size_t used;
        cpts[nc++] = unicode_decode(text + i, len - i, &used);
        i += used;
    }
    if (tokenizer_pre_split(t->pre, cpts, nc, &pieces) != 0)
        goto out;
    size_t start = 0;
    for (size_t p = 0; p < pieces.n; p++) {
        bbuf *w = &ss->word;
        w->n = 0;
        for (size_t i = start; i < start + pieces.len[p]; i++) {
            char u[UNICODE_MAX_UTF8];
            size_t un = unicode_encode(cpts[i], u);
            for (size_t k = 0; k < un; k++) {
                uint8_t by = (uint8_t)u[k];
                if (bbuf_add(w, t->enc_byte[by], t->enc_byte_len[by]) != 0)
                    goto out;
            }
        }
        start += pieces.len[p];
        if (bpe_word(t, ss, w->p, w->n) != 0)
            goto out;
    }
    rc = 0;
out:
    tokenizer_pieces_free(&pieces);
    free(cpts);
    return rc;
}

/* ------------------------------------------------------------- partition */

typedef struct {
    int32_t token;   /* >= 0: a special token; -1: raw text */
    size_t off, len; /* raw text span */
} frag;

typedef struct {
    frag *v;
    size_t n, cap;
} fvec;

static int fvec_push(fvec *a, frag x)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16;
        if (cap > SIZE_MAX / sizeof *a->v)
            return -1;
        frag *nv = realloc(a->v, cap * sizeof *nv);
        if (!nv)
            return -1;
        a->v = nv;
        a->cap = cap;
    }
    a->v[a->n++] = x;
    return 0;
}

/* Splits raw fragments around every special token, longest tokens first;
 * each token splits the raw text that earlier (longer) ones left. */
static int partition(const tokenizer *t, const char *text, size_t len, int parse_special, fvec *fr)
{
    fvec tmp = {0};
    int rc = -1;
    fr->n = 0;
    if (fvec_push(fr, (frag){-1, 0, len}) != 0)
        return -1;
    for (size_t si = 0; si < t->n_specials; si++) {
        int32_t id = t->specials[si];
        if (!parse_special && (t->attr[id] & (TOKEN_ATTR_CONTROL | TOKEN_ATTR_UNKNOWN)))
            continue;
        const char *s = tok_text(t, id);
        size_t sl = t->tok_len[id];
        if (sl == 0 || sl > len || !memmem(text, len, s, sl))
            continue; /* cheap whole-text check before touching fragments */
        tmp.n = 0;
        for (size_t i = 0; i < fr->n; i++) {
            frag f = fr->v[i];
            if (f.token >= 0) {
                if (fvec_push(&tmp, f) != 0)
                    goto out;
                continue;
            }
            size_t off = f.off, end = f.off + f.len;
            while (off < end) {
                const char *m = memmem(text + off, end - off, s, sl);
                if (!m)
                    break;
                size_t at = (size_t)(m - text);
                if (at > off && fvec_push(&tmp, (frag){-1, off, at - off}) != 0)
                    goto out;
                if (fvec_push(&tmp, (frag){id, at, sl}) != 0)
                    goto out;
                off = at + sl;
            }
            if (off < end && fvec_push(&tmp, (frag){-1, off, end - off}) != 0)
                goto out;
        }
        fvec sw = *fr;
        *fr = tmp;
        tmp = sw;
    }
    rc = 0;
out:
    free(tmp.v);
    return rc;
}

/* ---------------------------------------------------------------- encode */

static int encode_vec(const tokenizer *t, const char *text, size_t len, int add_special,
                      int parse_special, ivec *out)
{
    session ss = {0};
    fvec fr = {0};
    bbuf pre = {0};
    int rc = -1;
    ss.out = out;

    if (len > 0 && partition(t, text, len, parse_special, &fr) != 0)
        goto done;

    if (t->type == TOKENIZER_SPM) {
        int prev_special = 1; /* the first fragment gets the prefix space */
        if (add_special && t->add_bos && t->bos >= 0 && ivec_push(out, t->bos) != 0)
            goto done;
        for (size_t i = 0; i < fr.n; i++) {
            if (fr.v[i].token >= 0) {
                if (ivec_push(out, fr.v[i].token) != 0)
                    goto done;
                prev_special = 1;
                continue;
            }
            pre.n = 0;
            if (t->add_space_prefix && prev_special && bbuf_add(&pre, " ", 1) != 0)
                goto done;
            if (bbuf_add(&pre, text + fr.v[i].off, fr.v[i].len) != 0)
                goto done;
            if (spm_tokenize(t, &ss, pre.p, pre.n) != 0)
                goto done;
            prev_special = 0;
        }
        if (add_special && t->add_eos && t->eos >= 0 && ivec_push(out, t->eos) != 0)
            goto done;
    } else {
        if (add_special && t->add_bos && t->bos >= 0 && ivec_push(out, t->bos) != 0)
            goto done;
        for (size_t i = 0; i < fr.n; i++) {
            if (fr.v[i].token >= 0) {
                if (ivec_push(out, fr.v[i].token) != 0)
                    goto done;
                continue;
            }
            if (bpe_tokenize(t, &ss, text + fr.v[i].off, fr.v[i].len) != 0)
                goto done;
        }
        if (add_special && t->add_eos && t->eos >= 0 && ivec_push(out, t->eos) != 0)
            goto done;
    }
    rc = 0;
done:
    free(ss.sym);
    free(ss.heap.v);
    free(ss.word.p);
    free(fr.v);
    free(pre.p);
    return rc;
}

int tokenizer_encode_alloc(const tokenizer *t, const char *text, size_t len, int add_special,
                           int parse_special, int32_t **out, size_t *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    if (!t || (!text && len)) {
        seterr(err, errlen, "tokenizer: bad arguments");
        return -1;
    }
    if (len > TOKENIZER_MAX_INPUT) {
        seterr(err, errlen, "tokenizer: input of %zu bytes exceeds the limit of %u", len, TOKENIZER_MAX_INPUT);
        return -1;
    }
    ivec v = {0};
    if (encode_vec(t, text ? text : "", len, add_special, parse_special, &v) != 0) {
        free(v.v);
        seterr(err, errlen, "tokenizer: out of memory");
        return -1;
    }
    if (v.n > INT_MAX) { /* cannot happen within TOKENIZER_MAX_INPUT; keeps int results exact */
        free(v.v);
        seterr(err, errlen, "tokenizer: too many tokens");
        return -1;
    }
    *out = v.v;
    *n = v.n;
    return 0;
}

int tokenizer_encode(const tokenizer *t, const char *text, size_t len, int add_special,
                     int parse_special, int32_t *out, size_t cap)
{
    int32_t *ids;
    size_t n;
    if (tokenizer_encode_alloc(t, text, len, add_special, parse_special, &ids, &n, NULL, 0) != 0)
        return TOKENIZER_ERROR;
    size_t k = n < cap ? n : cap;
    if (k)
        memcpy(out, ids, k * sizeof *ids);
    free(ids);
    return n <= cap ? (int)n : -(int)n;
}

/* ---------------------------------------------------------------- decode */

int32_t tokenizer_n_vocab(const tokenizer *t) { return t->n_vocab; }
tokenizer_type tokenizer_get_type(const tokenizer *t) { return t->type; }
tokenizer_pre_type tokenizer_get_pre(const tokenizer *t) { return t->pre; }
int32_t tokenizer_bos(const tokenizer *t) { return t->bos; }
int32_t tokenizer_eos(const tokenizer *t) { return t->eos; }
int32_t tokenizer_eot(const tokenizer *t) { return t->eot; }
int tokenizer_add_bos(const tokenizer *t) { return t->add_bos; }
int tokenizer_add_eos(const tokenizer *t) { return t->add_eos; }
int tokenizer_add_space_prefix(const tokenizer *t) { return t->add_space_prefix; }
int tokenizer_clean_spaces(const tokenizer *t) { return t->clean_spaces; }

int tokenizer_is_eog(const tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n_vocab && t->eog[id];
}

const char *tokenizer_token_text(const tokenizer *t, int32_t id)
{
    return (id >= 0 && id < t->n_vocab) ? tok_text(t, id) : NULL;
}

unsigned tokenizer_token_attr(const tokenizer *t, int32_t id)
{
    return (id >= 0 && id < t->n_vocab) ? t->attr[id] : 0u;
}

/* The piece of id (special: render control/unknown tokens). */
static const char *piece_of(const tokenizer *t, int32_t id, int special, size_t *n)
{
    if (!special && (t->attr[id] & (TOKEN_ATTR_UNKNOWN | TOKEN_ATTR_CONTROL))) {
        *n = 0;
        return "";
    }
    *n = t->piece_len[id];
    return t->pieces + t->piece_off[id];
}

int tokenizer_token_to_piece(const tokenizer *t, int32_t id, int special, char *buf, size_t cap)
{
    if (!t || id < 0 || id >= t->n_vocab)
        return TOKENIZER_ERROR;
    size_t n;
    const char *p = piece_of(t, id, special, &n);
    if (n > cap)
        return -(int)n;
    if (n)
        memcpy(buf, p, n);
    return (int)n;
}

/* llama.cpp's clean-up passes, applied in place to s[0..n); returns the new
 * length. 1: drop ' ' before ?!., 2: " ' " -> "'", 3: drop ' ' before 's 'm
 * 're 've. */
static size_t clean_spaces_batch(char *s, size_t n)
{
    size_t total = n ? 1 : 0;
    for (size_t i = 1; i < n; i++) {
        char x = s[i];
        if (s[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ','))
            total--;
        s[total++] = x;
    }
    n = total;
    total = n ? 1 : 0;
    for (size_t i = 1; i < n; i++) {
        char x = s[i];
        if (x == '\'' && i + 1 < n && s[i - 1] == ' ' && s[i + 1] == ' ') {
            total--;
            s[++i] = '\0';
        }
        s[total++] = x;
    }
    n = total;
    total = n ? 1 : 0;
    for (size_t i = 1; i < n; i++) {
        char x = s[i];
        if (s[i - 1] == ' ' && x == '\'' && i + 1 < n) {
            char x1 = s[i + 1];
            if (x1 == 's' || x1 == 'm')
                total--;
            else if ((x1 == 'r' || x1 == 'v') && i + 2 < n && s[i + 2] == 'e')
                total--;
        }
        s[total++] = x;
    }
    return total;
}

int tokenizer_decode(const tokenizer *t, const int32_t *ids, size_t n, int remove_special,
                     int unparse_special, char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    bbuf b = {0};
    int remove_space = t->add_space_prefix;
    if (remove_special && t->add_bos && n > 0 && ids[0] == t->bos) {
        remove_space = 0;
        ids++;
        n--;
    }
    if (remove_special && t->add_eos && n > 0 && ids[n - 1] == t->eos)
        n--;
    if (bbuf_reserve(&b, 0) != 0)
        return -1;
    b.p[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab) {
            free(b.p);
            return -1;
        }
        size_t pn;
        const char *p = piece_of(t, ids[i], unparse_special, &pn);
        if (remove_space && pn && p[0] == ' ') {
            p++;
            pn--;
        }
        remove_space = 0;
        if (bbuf_add(&b, p, pn) != 0) {
            free(b.p);
            return -1;
        }
    }
    if (t->clean_spaces) {
        b.n = clean_spaces_batch(b.p, b.n);
        b.p[b.n] = '\0';
    }
    *out = b.p;
    *out_len = b.n;
    return 0;
}

/* ------------------------------------------------------------- streaming */

struct tokenizer_stream {
    const tokenizer *t;
    int special, strip, clean;
    int first;
    char p1, p2[2], p3[4];    /* held bytes of the three clean-up passes */
    size_t p2n, p3n;
    bbuf raw;                  /* cleaned bytes not yet UTF-8 checked */
    bbuf out;
    int oom;
};

tokenizer_stream_params tokenizer_stream_default_params(void)
{
    tokenizer_stream_params p = {0, -1, -1};
    return p;
}

tokenizer_stream *tokenizer_stream_new(const tokenizer *t, const tokenizer_stream_params *p)
{
    tokenizer_stream_params d = tokenizer_stream_default_params();
    if (!p)
        p = &d;
    tokenizer_stream *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->t = t;
    s->special = p->special;
    s->strip = p->strip_leading_space < 0 ? t->add_space_prefix : p->strip_leading_space;
    s->clean = p->clean_spaces < 0 ? t->clean_spaces : p->clean_spaces;
    s->first = 1;
    return s;
}

void tokenizer_stream_free(tokenizer_stream *s)
{
    if (!s)
        return;
    free(s->raw.p);
    free(s->out.p);
    free(s);
}

static void st_raw(tokenizer_stream *s, char c)
{
    if (bbuf_add(&s->raw, &c, 1) != 0)
        s->oom = 1;
}

/* Pass 3: a space followed by 's 'm 're 've is dropped. */
static void st_p3(tokenizer_stream *s, char c, int flush)
{
    if (!flush) {
        if (s->p3n == 0 && c != ' ') {
            st_raw(s, c);
            return;
        }
        s->p3[s->p3n++] = c;
    }
    while (s->p3n > 0) {
        char *b = s->p3;
        size_t drop = 0; /* how many held bytes to release; space dropped if < 0 */
        int keep_space = 1;
        if (b[0] != ' ') {
            drop = 1;
        } else if (s->p3n >= 2 && b[1] != '\'') {
            drop = 1;
        } else if (s->p3n >= 3 && (b[2] == 's' || b[2] == 'm')) {
            drop = 1;
            keep_space = 0;
        } else if (s->p3n >= 3 && b[2] != 'r' && b[2] != 'v') {
            drop = 1;
        } else if (s->p3n >= 4) {
            drop = 1;
            keep_space = b[3] != 'e';
        } else if (flush) {
            drop = 1;
        } else {
            return; /* need more bytes */
        }
        if (b[0] != ' ' || keep_space)
            st_raw(s, b[0]);
        memmove(b, b + drop, s->p3n - drop);
        s->p3n -= drop;
    }
}

static void st_p3_feed(tokenizer_stream *s, char c) { st_p3(s, c, 0); }

/* Pass 2: " ' " becomes "'". */
static void st_p2(tokenizer_stream *s, char c)
{
    if (s->p2n == 1) {
        if (c == '\'') {
            s->p2[1] = c;
            s->p2n = 2;
            return;
        }
        st_p3_feed(s, ' ');
        s->p2n = 0;
    } else if (s->p2n == 2) {
        s->p2n = 0;
        if (c == ' ') {
            st_p3_feed(s, '\'');
            return;
        }
        st_p3_feed(s, ' ');
        st_p3_feed(s, '\'');
    }
    if (c == ' ') {
        s->p2[0] = c;
        s->p2n = 1;
    } else {
        st_p3_feed(s, c);
    }
}

/* Pass 1: a space before ?!., is dropped. */
static void st_p1(tokenizer_stream *s, char c)
{
    if (s->p1) {
        s->p1 = 0;
        if (!(c == '?' || c == '!' || c == '.' || c == ','))
            st_p2(s, ' ');
    }
    if (c == ' ')
        s->p1 = 1;
    else
        st_p2(s, c);
}

/* Moves complete, valid UTF-8 from raw to out; invalid bytes become U+FFFD.
 * A valid but incomplete tail stays in raw unless flushing. */
static void st_utf8(tokenizer_stream *s, int flush)
{
    const uint8_t *p = (const uint8_t *)s->raw.p;
    size_t n = s->raw.n, i = 0;
    while (i < n) {
        uint8_t b = p[i];
        if (b < 0x80) {
            if (bbuf_add(&s->out, (const char *)p + i, 1) != 0)
                s->oom = 1;
            i++;
            continue;
        }
        size_t need = (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : (b & 0xF8) == 0xF0 ? 4 : 0;
        size_t k = 1;
        int ok = need > 0;
        while (ok && k < need && i + k < n) {
            if ((p[i + k] & 0xC0) != 0x80)
                ok = 0;
            else
                k++;
        }
        if (ok && k < need) { /* ran out of bytes */
            if (!flush)
                break;
            ok = 0;
        }
        if (ok) { /* reject overlong forms, surrogates, > U+10FFFF */
            uint32_t c = need == 2 ? (b & 0x1Fu) : need == 3 ? (b & 0x0Fu) : (b & 0x07u);
            for (size_t j = 1; j < need; j++)
                c = (c << 6) | (p[i + j] & 0x3Fu);
            static const uint32_t min_for[5] = {0, 0, 0x80, 0x800, 0x10000};
            if (c < min_for[need] || (c >= 0xD800 && c <= 0xDFFF) || c > UNICODE_MAX_CPT)
                ok = 0;
        }
        if (ok) {
            if (bbuf_add(&s->out, (const char *)p + i, need) != 0)
                s->oom = 1;
            i += need;
        } else {
            if (bbuf_add(&s->out, "\xEF\xBF\xBD", 3) != 0)
                s->oom = 1;
            i++;
        }
    }
    if (i > 0 && i < n)
        memmove(s->raw.p, s->raw.p + i, n - i);
    s->raw.n = n - i;
}

const char *tokenizer_stream_push(tokenizer_stream *s, int32_t id, size_t *len)
{
    *len = 0;
    if (!s || id < 0 || id >= s->t->n_vocab)
        return NULL;
    s->out.n = 0;
    size_t pn;
    const char *p = piece_of(s->t, id, s->special, &pn);
    if (s->first && s->strip && pn && p[0] == ' ') {
        p++;
        pn--;
    }
    s->first = 0;
    for (size_t i = 0; i < pn; i++) {
        if (s->clean)
            st_p1(s, p[i]);
        else
            st_raw(s, p[i]);
    }
    st_utf8(s, 0);
    if (s->oom || bbuf_reserve(&s->out, 0) != 0)
        return NULL;
    *len = s->out.n;
    return s->out.p;
}

const char *tokenizer_stream_flush(tokenizer_stream *s, size_t *len)
{
    *len = 0;
    if (!s)
        return NULL;
    s->out.n = 0;
    if (s->p1) { /* release in pass order */
        s->p1 = 0;
        st_p2(s, ' ');
    }
    if (s->p2n) {
        for (size_t i = 0; i < s->p2n; i++)
            st_p3_feed(s, s->p2[i]);
        s->p2n = 0;
    }
    st_p3(s, 0, 1);
    st_utf8(s, 1);
    s->first = 1;
    if (s->oom || bbuf_reserve(&s->out, 0) != 0)
        return NULL;
    *len = s->out.n;
    return s->out.p;
}
