#include "engine/tokenizer_pre.h"

#include <stdlib.h>
#include <string.h>

#include "engine/unicode.h"

/* Out-of-segment marker: no code point has this value. */
#define PRE_OOR 0xFFFFFFFFu

typedef struct {
    const uint32_t *c;   /* code points */
    const uint16_t *f;   /* their unicode_flags() */
} pre_text;

/* A segment [s, e) under work; emit() closes a piece at end. */
typedef struct {
    const pre_text *t;
    size_t s, e, prev;
    tokenizer_pieces *out;
    int oom;
} seg;

static int pieces_push(tokenizer_pieces *p, size_t len)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        if (cap > SIZE_MAX / sizeof *p->len)
            return -1;
        size_t *nl = realloc(p->len, cap * sizeof *nl);
        if (!nl)
            return -1;
        p->len = nl;
        p->cap = cap;
    }
    p->len[p->n++] = len;
    return 0;
}

void tokenizer_pieces_free(tokenizer_pieces *p)
{
    free(p->len);
    p->len = NULL;
    p->n = p->cap = 0;
}

static void emit(seg *g, size_t end)
{
    if (end > g->prev && pieces_push(g->out, end - g->prev) != 0)
        g->oom = 1;
    g->prev = end;
}

static unsigned F(const seg *g, size_t pos) { return pos < g->e ? g->t->f[pos] : 0u; }
static uint32_t C(const seg *g, size_t pos) { return pos < g->e ? g->t->c[pos] : PRE_OOR; }

#define F_WLN (UFLAG_WHITESPACE | UFLAG_LETTER | UFLAG_NUMBER)

static uint32_t ascii_lower(uint32_t c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

/* Contractions 's 't 're 've 'm 'll 'd at pos (case-folded when fold is
 * set); returns the match length or 0. */
static size_t contraction(const seg *g, size_t pos, int fold)
{
    if (g->t->c[pos] != '\'' || pos + 1 >= g->e)
        return 0;
    uint32_t a = g->t->c[pos + 1];
    if (fold)
        a = ascii_lower(a);
    if (a == 's' || a == 't' || a == 'm' || a == 'd')
        return 2;
    if (pos + 2 < g->e) {
        uint32_t b = g->t->c[pos + 2];
        if (fold)
            b = ascii_lower(b);
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
            return 3;
    }
    return 0;
}

/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
 * An unmatched code point becomes a piece of its own (llama.cpp's custom
 * splitter does the same). */
static void split_gpt2(seg *g)
{
    size_t pos = g->s;
    while (pos < g->e) {
        uint32_t cpt = g->t->c[pos];
        unsigned fl = g->t->f[pos];
        size_t k = contraction(g, pos, 0);
        if (k) {
            pos += k;
            emit(g, pos);
            continue;
        }
        unsigned f2 = cpt == ' ' ? F(g, pos + 1) : fl;
        if (f2 & UFLAG_LETTER) {
            pos += cpt == ' ';
            while (F(g, pos) & UFLAG_LETTER)
                pos++;
            emit(g, pos);
            continue;
        }
        if (f2 & UFLAG_NUMBER) {
            pos += cpt == ' ';
            while (F(g, pos) & UFLAG_NUMBER)
                pos++;
            emit(g, pos);
            continue;
        }
        if (!(f2 & F_WLN) && f2) {
            pos += cpt == ' ';
            while (!(F(g, pos) & F_WLN) && F(g, pos))
                pos++;
            emit(g, pos);
            continue;
        }
        size_t nws = 0;
        while (F(g, pos + nws) & UFLAG_WHITESPACE)
            nws++;
        if (nws > 1 && pos + nws < g->e) { /* \s+(?!\S): leave the last one */
            pos += nws - 1;
            emit(g, pos);
            continue;
        }
        if (nws > 0) {
            pos += nws;
            emit(g, pos);
            continue;
        }
        emit(g, ++pos);
    }
}

/* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max}|
 *  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * max = 3 for Llama 3, 1 for Qwen2 (whose \p{N} is a single digit). */
static void split_llama3(seg *g, size_t max_digits)
{
    size_t pos = g->s;
    while (pos < g->e) {
        uint32_t cpt = g->t->c[pos];
        unsigned fl = g->t->f[pos];
        size_t k = contraction(g, pos, 1);
        if (k) {
            pos += k;
            emit(g, pos);
            continue;
        }
        if (!(cpt == '\r' || cpt == '\n' || (fl & UFLAG_NUMBER))) {
            if ((fl & UFLAG_LETTER) || (F(g, pos + 1) & UFLAG_LETTER)) {
                pos++;
                while (F(g, pos) & UFLAG_LETTER)
                    pos++;
                emit(g, pos);
                continue;
            }
        }
        if (fl & UFLAG_NUMBER) {
            size_t ini = pos;
            while (F(g, pos) & UFLAG_NUMBER) {
                if (++pos - ini >= max_digits) {
                    emit(g, pos);
                    ini = pos;
                }
            }
            emit(g, pos);
            continue;
        }
        unsigned f2 = cpt == ' ' ? F(g, pos + 1) : fl;
        if (!(f2 & F_WLN) && fl) {
            pos += cpt == ' ';
            while (!(F(g, pos) & F_WLN) && F(g, pos))
                pos++;
            while (C(g, pos) == '\r' || C(g, pos) == '\n')
                pos++;
            emit(g, pos);
            continue;
        }
        size_t nws = 0, last_nl_end = 0;
        while (F(g, pos + nws) & UFLAG_WHITESPACE) {
            uint32_t c2 = g->t->c[pos + nws];
            if (c2 == '\r' || c2 == '\n')
                last_nl_end = pos + nws + 1;
            nws++;
        }
        if (last_nl_end > 0) { /* \s*[\r\n]+ */
            pos = last_nl_end;
            emit(g, pos);
            continue;
        }
        if (nws > 1 && pos + nws < g->e) {
            pos += nws - 1;
            emit(g, pos);
            continue;
        }
        if (nws > 0) {
            pos += nws;
            emit(g, pos);
            continue;
        }
        emit(g, ++pos);
    }
}

/* ---- single regexes run as "find every leftmost match" ---- */

/* Returns the length of the match at pos (0: none). */
typedef size_t (*pre_matcher)(const seg *g, size_t pos);

/* What a non-\p{} regex sees in llama.cpp: non-ASCII whitespace is replaced
 * by U+000B before matching (std::wregex's \s is ASCII-only). */
static uint32_t wview(const seg *g, size_t pos)
{
    uint32_t c = g->t->c[pos];
    return (c > 0x7F && (g->t->f[pos] & UFLAG_WHITESPACE)) ? 0x0B : c;
}

static size_t m_crlf(const seg *g, size_t pos)
{
    uint32_t c = g->t->c[pos];
    return c == '\r' || c == '\n';
}

typedef int (*cpt_pred)(const seg *g, size_t pos);

/* \s?P+ */
static size_t ws_opt_run(const seg *g, size_t pos, cpt_pred p)
{
    size_t q = pos;
    if ((g->t->f[pos] & UFLAG_WHITESPACE) && pos + 1 < g->e && p(g, pos + 1))
        q = pos + 1;
    else if (!p(g, pos))
        return 0;
    while (q < g->e && p(g, q))
        q++;
    return q - pos;
}

static int p_letter(const seg *g, size_t pos) { return (g->t->f[pos] & UFLAG_LETTER) != 0; }
static int p_punct(const seg *g, size_t pos) { return (g->t->f[pos] & UFLAG_PUNCT) != 0; }
static int p_number(const seg *g, size_t pos) { return (g->t->f[pos] & UFLAG_NUMBER) != 0; }

static int p_dsllm_letter(const seg *g, size_t pos) { return unicode_in_dsllm_letters(wview(g, pos)); }

/* [!-/:-~！-／：-～‘-‟　-。] */
static int p_dsllm_punct(const seg *g, size_t pos)
{
    uint32_t c = wview(g, pos);
    return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x7E) || (c >= 0xFF01 && c <= 0xFF0F) ||
           (c >= 0xFF1A && c <= 0xFF5E) || (c >= 0x2018 && c <= 0x201F) || (c >= 0x3000 && c <= 0x3002);
}

/* [一-龥ࠀ-一가-퟿] */
static int p_cjk(const seg *g, size_t pos)
{
    uint32_t c = wview(g, pos);
    return (c >= 0x0800 && c <= 0x9FA5) || (c >= 0xAC00 && c <= 0xD7FF);
}

/* [\p{P}\$\+<=>\^~\|] */
static int p_default_punct(const seg *g, size_t pos)
{
    uint32_t c = g->t->c[pos];
    if (g->t->f[pos] & UFLAG_PUNCT)
        return 1;
    return c == '$' || c == '+' || c == '<' || c == '=' || c == '>' || c == '^' || c == '~' || c == '|';
}

static size_t run_of(const seg *g, size_t pos, cpt_pred p)
{
    size_t q = pos;
    while (q < g->e && p(g, q))
        q++;
    return q - pos;
}

static size_t m_ws_letters(const seg *g, size_t pos) { return ws_opt_run(g, pos, p_letter); }
static size_t m_ws_punct(const seg *g, size_t pos) { return ws_opt_run(g, pos, p_punct); }
static size_t m_ws_dsllm_letters(const seg *g, size_t pos) { return ws_opt_run(g, pos, p_dsllm_letter); }
static size_t m_ws_dsllm_punct(const seg *g, size_t pos) { return ws_opt_run(g, pos, p_dsllm_punct); }
static size_t m_cjk(const seg *g, size_t pos) { return run_of(g, pos, p_cjk); }
static size_t m_number1(const seg *g, size_t pos) { return p_number(g, pos) ? 1 : 0; }
static size_t m_numbers(const seg *g, size_t pos) { return run_of(g, pos, p_number); }
static size_t m_default_punct(const seg *g, size_t pos) { return run_of(g, pos, p_default_punct); }

static size_t m_3digits(const seg *g, size_t pos)
{
    if (pos + 3 > g->e)
        return 0;
    for (size_t i = 0; i < 3; i++)
        if (g->t->c[pos + i] < '0' || g->t->c[pos + i] > '9')
            return 0;
    return 3;
}

static void split_matcher(seg *g, pre_matcher m)
{
    size_t pos = g->s;
    while (pos < g->e) {
        size_t k = m(g, pos);
        if (k == 0) {
            pos++;
            continue;
        }
        emit(g, pos);      /* the gap before the match, if any */
        pos += k;
        emit(g, pos);
    }
    emit(g, g->e);
}

/* \s+$ : the trailing whitespace run of the segment. */
static void split_trailing_ws(seg *g)
{
    size_t t = g->e;
    while (t > g->s && (g->t->f[t - 1] & UFLAG_WHITESPACE))
        t--;
    emit(g, t);
    emit(g, g->e);
}

/* ---- pipelines ---- */

typedef enum { ST_GPT2, ST_LLAMA3, ST_QWEN2, ST_TRAIL_WS, ST_MATCH } stage_kind;
typedef struct { stage_kind kind; pre_matcher m; } stage;

#define PRE_MAX_STAGES 6 /* deepseek-llm has the most: 6 regexes */

static size_t pipeline(tokenizer_pre_type t, stage st[PRE_MAX_STAGES])
{
    switch (t) {
    case TOKENIZER_PRE_GPT2:
        st[0] = (stage){ST_GPT2, NULL};
        return 1;
    case TOKENIZER_PRE_LLAMA3:
        st[0] = (stage){ST_LLAMA3, NULL};
        return 1;
    case TOKENIZER_PRE_QWEN2:
        st[0] = (stage){ST_QWEN2, NULL};
        return 1;
    case TOKENIZER_PRE_SMOLLM:
        st[0] = (stage){ST_MATCH, m_number1};
        st[1] = (stage){ST_GPT2, NULL};
        return 2;
    case TOKENIZER_PRE_DEEPSEEK_LLM:
        st[0] = (stage){ST_MATCH, m_crlf};
        st[1] = (stage){ST_MATCH, m_ws_dsllm_letters};
        st[2] = (stage){ST_MATCH, m_ws_dsllm_punct};
        st[3] = (stage){ST_TRAIL_WS, NULL};
        st[4] = (stage){ST_MATCH, m_cjk};
        st[5] = (stage){ST_MATCH, m_numbers};
        return 6;
    case TOKENIZER_PRE_DEEPSEEK_CODER:
        st[0] = (stage){ST_MATCH, m_crlf};
        st[1] = (stage){ST_MATCH, m_ws_letters};
        st[2] = (stage){ST_MATCH, m_ws_punct};
        st[3] = (stage){ST_MATCH, m_cjk};
        st[4] = (stage){ST_MATCH, m_number1};
        return 5;
    case TOKENIZER_PRE_DEFAULT:
    default:
        st[0] = (stage){ST_MATCH, m_default_punct};
        st[1] = (stage){ST_GPT2, NULL};
        st[2] = (stage){ST_MATCH, m_numbers};
        st[3] = (stage){ST_MATCH, m_3digits};
        return 4;
    }
}

int tokenizer_pre_split(tokenizer_pre_type t, const uint32_t *cpts, size_t n, tokenizer_pieces *out)
{
    out->n = 0;
    if (n == 0)
        return 0;
    if (n > SIZE_MAX / sizeof(uint16_t))
        return -1;
    uint16_t *f = malloc(n * sizeof *f);
    if (!f)
        return -1;
    for (size_t i = 0; i < n; i++)
        f[i] = (uint16_t)unicode_flags(cpts[i]);
    pre_text text = {cpts, f};

    stage st[PRE_MAX_STAGES];
    size_t nst = pipeline(t, st);
    tokenizer_pieces a = {0}, b = {0};
    int rc = pieces_push(&a, n);
    for (size_t si = 0; rc == 0 && si < nst; si++) {
        tokenizer_pieces *dst = si + 1 == nst ? out : &b;
        dst->n = 0;
        size_t start = 0;
        for (size_t i = 0; i < a.n && rc == 0; i++) {
            seg g = {&text, start, start + a.len[i], start, dst, 0};
            switch (st[si].kind) {
            case ST_GPT2: split_gpt2(&g); break;
            case ST_LLAMA3: split_llama3(&g, 3); break;
            case ST_QWEN2: split_llama3(&g, 1); break;
            case ST_TRAIL_WS: split_trailing_ws(&g); break;
            case ST_MATCH: split_matcher(&g, st[si].m); break;
            }
            if (g.oom)
                rc = -1;
            start += a.len[i];
        }
        if (dst == &b) { /* b becomes the next stage's input */
            tokenizer_pieces tmp = a;
            a = b;
            b = tmp;
        }
    }
    tokenizer_pieces_free(&a);
    tokenizer_pieces_free(&b);
    free(f);
    return rc;
}
