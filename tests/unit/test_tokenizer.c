/* Unit tests: UTF-8 decoding, Unicode categories, GPT-2 byte map,
 * pre-tokenizer splits, SPM/BPE encode/decode on tiny vocabularies,
 * streaming detokenizer, malformed vocabularies, limits, round trips on the
 * shared vocab files (skipped when absent), and that the generated Unicode
 * table matches a fresh run of tools/gen_unicode.py (when the data exists). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/gguf.h"
#include "engine/tokenizer.h"
#include "engine/tokenizer_pre.h"
#include "engine/unicode.h"
#include "test_tokenizer_vocab.h"

static char g_dir[] = "/tmp/ward-tok-XXXXXX";

static tokenizer *load_path(const char *path, char *err, size_t errlen)
{
    gguf_file *g = gguf_open(path, err, errlen);
    if (!g)
        return NULL;
    tokenizer *t = tokenizer_from_gguf(g, err, errlen);
    gguf_close(g);
    return t;
}

static tokenizer *make_spm(void)
{
    char path[256], err[256];
    snprintf(path, sizeof path, "%s/spm.gguf", g_dir);
    assert_int_equal(tv_write_spm(path, err, sizeof err), 0);
    tokenizer *t = load_path(path, err, sizeof err);
    assert_non_null(t);
    return t;
}

static tokenizer *make_bpe(const char *pre)
{
    char path[256], err[256];
    snprintf(path, sizeof path, "%s/bpe.gguf", g_dir);
    assert_int_equal(tv_write_bpe(path, pre, err, sizeof err), 0);
    tokenizer *t = load_path(path, err, sizeof err);
    if (!t)
        fail_msg("load: %s", err);
    return t;
}

static int32_t id_of(const tokenizer *t, const char *s)
{
    int32_t id = tokenizer_find(t, s, strlen(s));
    assert_true(id >= 0);
    return id;
}

/* ---- unicode ---- */

static void test_utf8_decode(void **state)
{
    (void)state;
    size_t used;
    assert_int_equal(unicode_decode("A", 1, &used), 'A');
    assert_int_equal(used, 1);
    assert_int_equal(unicode_decode("\xC3\xA9", 2, &used), 0xE9);
    assert_int_equal(used, 2);
    assert_int_equal(unicode_decode("\xE2\x96\x81", 3, &used), 0x2581);
    assert_int_equal(used, 3);
    assert_int_equal(unicode_decode("\xF0\x9F\x98\x81", 4, &used), 0x1F601);
    assert_int_equal(used, 4);
    /* stray continuation, 11111xxx, truncated, bad continuation, > U+10FFFF */
    assert_int_equal(unicode_decode("\x80", 1, &used), UNICODE_REPLACEMENT);
    assert_int_equal(used, 1);
    assert_int_equal(unicode_decode("\xFF\x80", 2, &used), UNICODE_REPLACEMENT);
    assert_int_equal(used, 1);
    assert_int_equal(unicode_decode("\xE2\x96", 2, &used), UNICODE_REPLACEMENT);
    assert_int_equal(used, 1);
    assert_int_equal(unicode_decode("\xE2\x41\x81", 3, &used), UNICODE_REPLACEMENT);
    assert_int_equal(used, 1);
    assert_int_equal(unicode_decode("\xF4\x90\x80\x80", 4, &used), UNICODE_REPLACEMENT);
    assert_int_equal(used, 1);
    /* llama.cpp leniency: overlong forms and surrogates decode */
    assert_int_equal(unicode_decode("\xC0\x80", 2, &used), 0);
    assert_int_equal(used, 2);
    assert_int_equal(unicode_decode("\xED\xA0\x80", 3, &used), 0xD800);

    char out[4];
    assert_int_equal(unicode_encode(0x1F601, out), 4);
    assert_memory_equal(out, "\xF0\x9F\x98\x81", 4);
    assert_int_equal(unicode_encode(0x110000, out), 3); /* invalid -> U+FFFD */
    assert_memory_equal(out, "\xEF\xBF\xBD", 3);

    assert_int_equal(unicode_incomplete_tail("ab\xE2\x96", 4), 2);
    assert_int_equal(unicode_incomplete_tail("ab\xF0", 3), 1);
    assert_int_equal(unicode_incomplete_tail("\xE2\x96\x81", 3), 0);
    assert_int_equal(unicode_incomplete_tail("a\x80", 2), 0);
    assert_int_equal(unicode_incomplete_tail("", 0), 0);
    assert_int_equal(unicode_seq_len(0x80), 1);
    assert_int_equal(unicode_seq_len(0xF7), 4);
}

static void test_categories(void **state)
{
    (void)state;
    assert_int_equal(unicode_category('A'), UCAT_LU);
    assert_int_equal(unicode_category('1'), UCAT_ND);
    assert_int_equal(unicode_category(0xBD), UCAT_NO);       /* ½ */
    assert_int_equal(unicode_category(0x301), UCAT_MN);
    assert_int_equal(unicode_category(0x20AC), UCAT_SC);     /* € */
    assert_int_equal(unicode_category(0x4E00), UCAT_LO);
    assert_int_equal(unicode_category(0x9FA5), UCAT_LO);     /* inside a First/Last range */
    assert_int_equal(unicode_category(0x378), UCAT_CN);
    assert_int_equal(unicode_category(0xE000), UCAT_CO);
    assert_int_equal(unicode_category(0x10FFFF), UCAT_CN);
    assert_int_equal(unicode_category(0x110000), UCAT_CN);
    assert_int_equal(unicode_flags('a'), UFLAG_LETTER);
    assert_int_equal(unicode_flags(' '), UFLAG_SEPARATOR | UFLAG_WHITESPACE);
    assert_int_equal(unicode_flags('\n'), UFLAG_CONTROL | UFLAG_WHITESPACE);
    assert_int_equal(unicode_flags(0x3000), UFLAG_SEPARATOR | UFLAG_WHITESPACE);
    assert_int_equal(unicode_flags(0x85), UFLAG_CONTROL | UFLAG_WHITESPACE);
    assert_int_equal(unicode_flags(0x200D), UFLAG_CONTROL);  /* ZWJ is Cf */
    assert_int_equal(unicode_flags(0x1F601), UFLAG_SYMBOL);
    assert_int_equal(unicode_flags('~'), UFLAG_SYMBOL);
    assert_int_equal(unicode_flags('!'), UFLAG_PUNCT);
    assert_int_equal(unicode_flags(0x378), UFLAG_UNDEFINED);
    assert_true(unicode_in_dsllm_letters('a'));
    assert_true(unicode_in_dsllm_letters(0x1FD3));
    assert_true(unicode_in_dsllm_letters(0x212A));
    assert_false(unicode_in_dsllm_letters('1'));
    assert_false(unicode_in_dsllm_letters(0x4E00));
}

static void test_byte_map(void **state)
{
    (void)state;
    assert_int_equal(unicode_byte_to_cpt(' '), 0x120);
    assert_int_equal(unicode_byte_to_cpt('\n'), 0x10A);
    assert_int_equal(unicode_byte_to_cpt('A'), 'A');
    assert_int_equal(unicode_byte_to_cpt(0xAD), 0x143);
    for (int b = 0; b < 256; b++)
        assert_int_equal(unicode_cpt_to_byte(unicode_byte_to_cpt((uint8_t)b)), b);
    assert_int_equal(unicode_cpt_to_byte(0x20), -1);
    assert_int_equal(unicode_cpt_to_byte(0x144), -1);
}

/* Splits UTF-8 s and returns the pieces joined by '|'. */
static const char *split(tokenizer_pre_type t, const char *s)
{
    static char out[512];
    uint32_t c[128];
    size_t n = 0, len = strlen(s);
    for (size_t i = 0; i < len;) {
        size_t u;
        c[n++] = unicode_decode(s + i, len - i, &u);
        i += u;
    }
    tokenizer_pieces p = {0};
    assert_int_equal(tokenizer_pre_split(t, c, n, &p), 0);
    size_t o = 0, k = 0;
    for (size_t i = 0; i < p.n; i++) {
        if (i)
            out[o++] = '|';
        for (size_t j = 0; j < p.len[i]; j++)
            o += unicode_encode(c[k++], out + o);
    }
    out[o] = '\0';
    tokenizer_pieces_free(&p);
    return out;
}

static void test_pre_split(void **state)
{
    (void)state;
    assert_string_equal(split(TOKENIZER_PRE_GPT2, "Hello world's  x\t\ty 123"),
                        "Hello| world|'s| | x|\t|\t|y| 123");
    assert_string_equal(split(TOKENIZER_PRE_LLAMA3, "I'VE 12345 hi!!\n\n  x"),
                        "I|'VE| |123|45| hi|!!\n\n| | x");
    assert_string_equal(split(TOKENIZER_PRE_QWEN2, "a 123 \r\n"), "a| |1|2|3| \r\n");
    assert_string_equal(split(TOKENIZER_PRE_SMOLLM, "x12 34"), "x|1|2| |3|4");
    assert_string_equal(split(TOKENIZER_PRE_DEFAULT, "a+=b 12345"), "a|+=|b| |123|45");
    assert_string_equal(split(TOKENIZER_PRE_DEEPSEEK_CODER, "int x=1;\n\xE4\xB8\xAD\xE6\x96\x87"),
                        "int| x|=|1|;|\n|\xE4\xB8\xAD\xE6\x96\x87");
    assert_string_equal(split(TOKENIZER_PRE_DEEPSEEK_LLM, "Hi, you 42  "), "Hi|,| you| |42|  ");
    assert_string_equal(split(TOKENIZER_PRE_GPT2, ""), "");
}

/* ---- SPM ---- */

static void test_spm_encode_decode(void **state)
{
    (void)state;
    tokenizer *t = make_spm();
    assert_int_equal(tokenizer_get_type(t), TOKENIZER_SPM);
    assert_int_equal(tokenizer_bos(t), 1);
    assert_int_equal(tokenizer_eos(t), 2);
    assert_true(tokenizer_is_eog(t, 2));
    assert_false(tokenizer_is_eog(t, 1));

    int32_t ids[32];
    int n = tokenizer_encode(t, "hello", 5, 1, 1, ids, 32);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], id_of(t, "\xE2\x96\x81hello"));

    /* byte fallback: "é" has no piece -> <0xC3> <0xA9> */
    n = tokenizer_encode(t, "\xC3\xA9", 2, 0, 0, ids, 32);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], id_of(t, "\xE2\x96\x81"));
    assert_int_equal(ids[1], 3 + 0xC3);
    assert_int_equal(ids[2], 3 + 0xA9);

    /* special tokens: user-defined always, control only with parse_special */
    n = tokenizer_encode(t, "<s>hello<|user|>", 16, 0, 1, ids, 32);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], id_of(t, "\xE2\x96\x81hello")); /* prefix space after a special */
    assert_int_equal(ids[2], id_of(t, "<|user|>"));
    n = tokenizer_encode(t, "<s>", 3, 0, 0, ids, 32);
    assert_true(n > 1); /* spelled out, not token 1 */
    for (int i = 0; i < n; i++)
        assert_int_not_equal(ids[i], 1);

    /* -needed when out is too small; empty text */
    assert_int_equal(tokenizer_encode(t, "hello world", 11, 1, 1, ids, 1), -3);
    assert_int_equal(tokenizer_encode(t, "", 0, 0, 0, ids, 32), 0);
    assert_int_equal(tokenizer_encode(t, "", 0, 1, 0, ids, 32), 1);

    /* decode: BOS dropped with remove_special, prefix space stripped */
    int32_t seq[] = {1, id_of(t, "\xE2\x96\x81hello"), id_of(t, "\xE2\x96\x81world"), 3 + 0xC3, 3 + 0xA9, 2};
    char *out;
    size_t len;
    assert_int_equal(tokenizer_decode(t, seq, 6, 1, 0, &out, &len), 0);
    assert_string_equal(out, " hello world\xC3\xA9"); /* space after BOS kept; EOS kept (add_eos off) */
    free(out);
    assert_int_equal(tokenizer_decode(t, seq + 1, 4, 0, 0, &out, &len), 0);
    assert_string_equal(out, "hello world\xC3\xA9");
    free(out);
    assert_int_equal(tokenizer_decode(t, seq, 6, 0, 1, &out, &len), 0);
    assert_string_equal(out, "<s> hello world\xC3\xA9</s>");
    free(out);
    int32_t badseq[] = {5, 100000};
    assert_int_equal(tokenizer_decode(t, badseq, 2, 0, 0, &out, &len), -1);

    char piece[8];
    assert_int_equal(tokenizer_token_to_piece(t, id_of(t, "\xE2\x96\x81hello"), 0, piece, 8), 6);
    assert_memory_equal(piece, " hello", 6);
    assert_int_equal(tokenizer_token_to_piece(t, 1, 0, piece, 8), 0);
    assert_int_equal(tokenizer_token_to_piece(t, 1, 1, piece, 8), 3);
    assert_int_equal(tokenizer_token_to_piece(t, id_of(t, "\xE2\x96\x81hello"), 0, piece, 2), -6);
    assert_int_equal(tokenizer_token_to_piece(t, -1, 0, piece, 8), TOKENIZER_ERROR);
    assert_int_equal(tokenizer_token_to_piece(t, 1 << 30, 0, piece, 8), TOKENIZER_ERROR);
    assert_string_equal(tokenizer_token_text(t, 0), "<unk>");
    assert_null(tokenizer_token_text(t, 1 << 30));
    tokenizer_free(t);
}

static void test_spm_decode_bos(void **state)
{
    (void)state;
    tokenizer *t = make_spm();
    int32_t seq[] = {1, id_of(t, "\xE2\x96\x81hello")};
    char *out;
    size_t len;
    /* BOS removed: the space after it is kept, as llama.cpp does */
    assert_int_equal(tokenizer_decode(t, seq, 2, 1, 0, &out, &len), 0);
    assert_string_equal(out, " hello");
    free(out);
    tokenizer_free(t);
}

/* ---- streaming ---- */

static char *stream_all(const tokenizer *t, const tokenizer_stream_params *p, const int32_t *ids, size_t n,
                        size_t *out_len)
{
    tokenizer_stream *s = tokenizer_stream_new(t, p);
    assert_non_null(s);
    char *acc = malloc(16 * n + 16);
    size_t k = 0, len;
    for (size_t i = 0; i < n; i++) {
        const char *o = tokenizer_stream_push(s, ids[i], &len);
        assert_non_null(o);
        memcpy(acc + k, o, len);
        k += len;
    }
    const char *o = tokenizer_stream_flush(s, &len);
    assert_non_null(o);
    memcpy(acc + k, o, len);
    k += len;
    acc[k] = '\0';
    *out_len = k;
    tokenizer_stream_free(s);
    return acc;
}

static void test_stream_partial_utf8(void **state)
{
    (void)state;
    tokenizer *t = make_spm();
    tokenizer_stream *s = tokenizer_stream_new(t, NULL);
    size_t len;
    const char *o = tokenizer_stream_push(s, id_of(t, "\xE2\x96\x81hello"), &len);
    assert_int_equal(len, 5); /* leading space stripped */
    assert_memory_equal(o, "hello", 5);
    o = tokenizer_stream_push(s, 3 + 0xF0, &len); /* 4-byte emoji, byte by byte */
    assert_int_equal(len, 0);
    o = tokenizer_stream_push(s, 3 + 0x9F, &len);
    assert_int_equal(len, 0);
    o = tokenizer_stream_push(s, 3 + 0x98, &len);
    assert_int_equal(len, 0);
    o = tokenizer_stream_push(s, 3 + 0x81, &len);
    assert_int_equal(len, 4);
    assert_memory_equal(o, "\xF0\x9F\x98\x81", 4);
    /* a sequence that cannot complete becomes U+FFFD, then the next char */
    o = tokenizer_stream_push(s, 3 + 0xC3, &len);
    assert_int_equal(len, 0);
    o = tokenizer_stream_push(s, id_of(t, "h"), &len);
    assert_int_equal(len, 4);
    assert_memory_equal(o, "\xEF\xBF\xBDh", 4);
    /* incomplete at the end: flushed as U+FFFD */
    o = tokenizer_stream_push(s, 3 + 0xE2, &len);
    assert_int_equal(len, 0);
    o = tokenizer_stream_flush(s, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(o, "\xEF\xBF\xBD", 3);
    assert_null(tokenizer_stream_push(s, -5, &len));
    tokenizer_stream_free(s);
    tokenizer_free(t);
}

static void test_stream_matches_decode(void **state)
{
    (void)state;
    /* BPE without a pre key: default pre-tokenizer, clean_spaces on. */
    tokenizer *t = make_bpe(NULL);
    assert_int_equal(tokenizer_clean_spaces(t), 1);
    const uint8_t alphabet[] = {' ', '\'', 's', 'm', 'r', 'v', 'e', 't', '?', '!', '.', ',', 'x', 'l', 'd'};
    int32_t ids[24];
    tokenizer_stream_params p = tokenizer_stream_default_params();
    srand(1234);
    for (int iter = 0; iter < 3000; iter++) {
        size_t n = (size_t)(rand() % 24);
        for (size_t i = 0; i < n; i++)
            ids[i] = (rand() % 8 == 0) ? id_of(t, "\xC4\xA0\xC4\xA0") : alphabet[rand() % sizeof alphabet];
        char *want;
        size_t wl, gl;
        assert_int_equal(tokenizer_decode(t, ids, n, 0, 0, &want, &wl), 0);
        char *got = stream_all(t, &p, ids, n, &gl);
        if (gl != wl || memcmp(got, want, wl) != 0)
            fail_msg("stream '%s' != decode '%s'", got, want);
        free(want);
        free(got);
    }
    /* the rules themselves */
    int32_t seq[] = {'x', ' ', '?', ' ', '\'', 's', ' ', '\'', ' ', 'x', ' ', '\'', 't'};
    char *out;
    size_t len;
    assert_int_equal(tokenizer_decode(t, seq, sizeof seq / sizeof seq[0], 0, 0, &out, &len), 0);
    assert_string_equal(out, "x?'s'x 't");
    free(out);
    tokenizer_free(t);
}

/* ---- BPE ---- */

static void test_bpe_encode(void **state)
{
    (void)state;
    tokenizer *t = make_bpe("gpt-2");
    assert_int_equal(tokenizer_get_pre(t), TOKENIZER_PRE_GPT2);
    assert_int_equal(tokenizer_add_bos(t), 0);
    int32_t ids[32];
    int n = tokenizer_encode(t, "hello world's", 13, 1, 0, ids, 32);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], id_of(t, "hello"));
    assert_int_equal(ids[1], id_of(t, "\xC4\xA0world"));
    assert_int_equal(ids[2], id_of(t, "'s"));
    /* invalid UTF-8 becomes U+FFFD, i.e. bytes EF BF BD as byte tokens */
    n = tokenizer_encode(t, "\xFF", 1, 0, 0, ids, 32);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], 0xEF);
    assert_int_equal(ids[1], 0xBF);
    assert_int_equal(ids[2], 0xBD);
    /* control token only with parse_special; it is also end-of-generation */
    int32_t eot = id_of(t, "<|endoftext|>");
    assert_true(tokenizer_is_eog(t, eot));
    n = tokenizer_encode(t, "<|endoftext|>", 13, 0, 1, ids, 32);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], eot);
    n = tokenizer_encode(t, "<|endoftext|>", 13, 0, 0, ids, 32);
    assert_true(n > 1);
    char *out;
    size_t len;
    int32_t seq[] = {id_of(t, "hello"), id_of(t, "\xC4\xA0world"), eot};
    assert_int_equal(tokenizer_decode(t, seq, 3, 0, 0, &out, &len), 0);
    assert_string_equal(out, "hello world");
    free(out);
    tokenizer_free(t);

    t = make_bpe("llama-bpe"); /* ignore_merges and add_bos */
    assert_int_equal(tokenizer_get_pre(t), TOKENIZER_PRE_LLAMA3);
    assert_int_equal(tokenizer_add_bos(t), 1);
    n = tokenizer_encode(t, "hello", 5, 1, 0, ids, 32);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], id_of(t, "<|endoftext|>"));
    assert_int_equal(ids[1], id_of(t, "hello"));
    tokenizer_free(t);

    t = make_bpe("qwen2");
    assert_int_equal(tokenizer_clean_spaces(t), 0);
    tokenizer_free(t);
}

static void test_limits(void **state)
{
    (void)state;
    tokenizer *t = make_bpe("gpt-2");
    size_t big = (size_t)TOKENIZER_MAX_INPUT + 1;
    char *text = malloc(big);
    memset(text, 'a', big);
    int32_t ids[4];
    char err[128];
    int32_t *v;
    size_t n;
    assert_int_equal(tokenizer_encode(t, text, big, 0, 0, ids, 4), TOKENIZER_ERROR);
    assert_int_equal(tokenizer_encode_alloc(t, text, big, 0, 0, &v, &n, err, sizeof err), -1);
    assert_non_null(strstr(err, "limit"));
    /* a long single word still encodes */
    assert_int_equal(tokenizer_encode_alloc(t, text, 100000, 0, 0, &v, &n, err, sizeof err), 0);
    assert_int_equal(n, 100000);
    free(v);
    free(text);
    tokenizer_free(t);
}

/* ---- malformed vocabularies ---- */

static tokenizer *load_writer(gguf_writer *w, char *err, size_t errlen)
{
    char path[256];
    snprintf(path, sizeof path, "%s/bad.gguf", g_dir);
    assert_int_equal(gguf_writer_write(w, path, err, errlen), 0);
    gguf_writer_free(w);
    return load_path(path, err, errlen);
}

static void test_malformed_vocab(void **state)
{
    (void)state;
    char err[256];
    const char *toks[] = {"a", "b", "c"};
    float sc[] = {0, 0};

    gguf_writer *w = gguf_writer_new();
    gguf_set_str(w, "tokenizer.ggml.model", "llama");
    assert_null(load_writer(w, err, sizeof err));
    assert_non_null(strstr(err, "tokenizer.ggml.tokens"));

    w = gguf_writer_new();
    gguf_set_str(w, "tokenizer.ggml.model", "bert");
    gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, 3);
    assert_null(load_writer(w, err, sizeof err));
    assert_non_null(strstr(err, "unsupported tokenizer model 'bert'"));

    w = gguf_writer_new();
    gguf_set_str(w, "tokenizer.ggml.model", "llama");
    gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, 3);
    gguf_set_arr_f32(w, "tokenizer.ggml.scores", sc, 2);
    assert_null(load_writer(w, err, sizeof err));
    assert_non_null(strstr(err, "scores"));

    w = gguf_writer_new();
    gguf_set_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, 3);
    assert_null(load_writer(w, err, sizeof err));
    assert_non_null(strstr(err, "merges"));

    w = gguf_writer_new();
    gguf_set_u32(w, "tokenizer.ggml.model", 7);
    assert_null(load_writer(w, err, sizeof err));
    assert_non_null(strstr(err, "tokenizer.ggml.model"));

    /* tolerated: out-of-range special ids, empty tokens, merges without a
     * space; bos default out of range for a 3-token vocab */
    const char *toks2[] = {"a", "", "ab"};
    const char *merges[] = {"a b", "ab", "a  b"};
    w = gguf_writer_new();
    gguf_set_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_set_str(w, "tokenizer.ggml.pre", "no-such-pre");
    gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks2, 3);
    gguf_set_arr_str(w, "tokenizer.ggml.merges", merges, 3);
    gguf_set_u32(w, "tokenizer.ggml.eos_token_id", 99);
    tokenizer *t = load_writer(w, err, sizeof err);
    assert_non_null(t);
    assert_int_equal(tokenizer_bos(t), TOKENIZER_NULL);
    assert_int_equal(tokenizer_eos(t), TOKENIZER_NULL);
    assert_int_equal(tokenizer_get_pre(t), TOKENIZER_PRE_DEFAULT);
    assert_string_equal(tokenizer_token_text(t, 1), "[EMPTY_1]");
    int32_t ids[8];
    assert_int_equal(tokenizer_encode(t, "abz", 3, 1, 1, ids, 8), 1); /* 'z' has no token: dropped */
    assert_int_equal(ids[0], 2);
    tokenizer_free(t);
}

/* ---- shared vocab files ---- */

static int read_all(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    *out = malloc((size_t)n + 1);
    *len = fread(*out, 1, (size_t)n, f);
    (*out)[*len] = '\0';
    fclose(f);
    return 0;
}

static void test_round_trip_vocab_files(void **state)
{
    (void)state;
    const char *shared = getenv("WARD_SHARED");
    const char *names[] = {"llama-spm", "gpt-2", "deepseek-coder"};
    int done = 0;
    for (size_t v = 0; shared && v < 3; v++) {
        char path[1024], err[256];
        snprintf(path, sizeof path, "%s/testdata/vocab/ggml-vocab-%s.gguf", shared, names[v]);
        if (access(path, R_OK) != 0)
            continue;
        tokenizer *t = load_path(path, err, sizeof err);
        if (!t)
            fail_msg("%s: %s", path, err);
        char inp_path[1100];
        snprintf(inp_path, sizeof inp_path, "%s.inp", path);
        char *inp;
        size_t inl;
        assert_int_equal(read_all(inp_path, &inp, &inl), 0);
        const char *sep = "\n__ggml_vocab_test__\n";
        char *p = inp;
        int cases = 0;
        for (char *q; (q = strstr(p, sep)) != NULL; p = q + strlen(sep)) {
            size_t len = (size_t)(q - p);
            int32_t *ids;
            size_t n;
            assert_int_equal(tokenizer_encode_alloc(t, p, len, 0, 0, &ids, &n, err, sizeof err), 0);
            /* raw pieces, no clean-up: exactly the input again */
            tokenizer_stream_params sp = tokenizer_stream_default_params();
            sp.clean_spaces = 0;
            size_t gl;
            char *got = stream_all(t, &sp, ids, n, &gl);
            if (gl != len || memcmp(got, p, len) != 0)
                fail_msg("%s: round trip of case %d differs: '%s'", names[v], cases, got);
            free(got);
            free(ids);
            cases++;
        }
        assert_true(cases > 10);
        free(inp);
        tokenizer_free(t);
        done++;
    }
    if (!done)
        skip();
}

static void test_unicode_table_regenerates(void **state)
{
    (void)state;
    const char *src = getenv("WARD_SRC");
    if (!src || access("/usr/share/unicode/UnicodeData.txt", R_OK) != 0 || access("/usr/bin/python3", X_OK) != 0)
        skip();
    char cmd[2048], out[256];
    snprintf(out, sizeof out, "%s/unicode_data.c", g_dir);
    snprintf(cmd, sizeof cmd, "cd '%s' && /usr/bin/python3 tools/gen_unicode.py /usr/share/unicode/UnicodeData.txt '%s'",
             src, out);
    assert_int_equal(system(cmd), 0);
    char committed[1024];
    snprintf(committed, sizeof committed, "%s/src/engine/unicode_data.c", src);
    char *a, *b;
    size_t al, bl;
    assert_int_equal(read_all(committed, &a, &al), 0);
    assert_int_equal(read_all(out, &b, &bl), 0);
    assert_int_equal(al, bl);
    assert_memory_equal(a, b, al);
    free(a);
    free(b);
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_decode),
        cmocka_unit_test(test_categories),
        cmocka_unit_test(test_byte_map),
        cmocka_unit_test(test_pre_split),
        cmocka_unit_test(test_spm_encode_decode),
        cmocka_unit_test(test_spm_decode_bos),
        cmocka_unit_test(test_stream_partial_utf8),
        cmocka_unit_test(test_stream_matches_decode),
        cmocka_unit_test(test_bpe_encode),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_malformed_vocab),
        cmocka_unit_test(test_round_trip_vocab_files),
        cmocka_unit_test(test_unicode_table_regenerates),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
