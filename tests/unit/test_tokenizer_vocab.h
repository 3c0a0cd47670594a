/* Tiny vocabularies for tokenizer tests and the tokenizer fuzzer, written
 * with the gguf writer. Header-only so both programs can use it. */
#ifndef WARD_TEST_TOKENIZER_VOCAB_H
#define WARD_TEST_TOKENIZER_VOCAB_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/gguf.h"
#include "engine/unicode.h"

#define TV_MAX_TOKENS 320

/* SPM: <unk> <s> </s>, 256 byte tokens, a few pieces, one user-defined. */
static const char *const tv_spm_pieces[] = {
    "\xE2\x96\x81", "h", "e", "l", "o", "w", "r", "d",
    "\xE2\x96\x81h", "\xE2\x96\x81he", "\xE2\x96\x81hel", "\xE2\x96\x81hell", "\xE2\x96\x81hello",
    "ll", "\xE2\x96\x81w", "or", "ld", "\xE2\x96\x81wor", "\xE2\x96\x81world", "'", "s", "?",
    "\xE2\x96\x81\xE2\x96\x81",
};

static int tv_write_spm(const char *path, char *err, size_t errlen)
{
    static char bytebuf[256][8];
    const char *tok[TV_MAX_TOKENS];
    float score[TV_MAX_TOKENS];
    int32_t type[TV_MAX_TOKENS];
    size_t n = 0;
    tok[n] = "<unk>"; type[n] = 2; score[n++] = 0;
    tok[n] = "<s>"; type[n] = 3; score[n++] = 0;
    tok[n] = "</s>"; type[n] = 3; score[n++] = 0;
    for (int b = 0; b < 256; b++) {
        snprintf(bytebuf[b], sizeof bytebuf[b], "<0x%02X>", b);
        tok[n] = bytebuf[b]; type[n] = 6; score[n++] = 0;
    }
    for (size_t i = 0; i < sizeof tv_spm_pieces / sizeof tv_spm_pieces[0]; i++) {
        tok[n] = tv_spm_pieces[i];
        type[n] = 1;
        /* Longer pieces score higher, so the "hello" chain wins over "ll". */
        score[n++] = strcmp(tv_spm_pieces[i], "ll") == 0 ? -10.0f : (float)strlen(tv_spm_pieces[i]);
    }
    tok[n] = "<|user|>"; type[n] = 4; score[n++] = 0;
    gguf_writer *w = gguf_writer_new();
    int rc = !w || gguf_set_str(w, "tokenizer.ggml.model", "llama") || gguf_set_arr_str(w, "tokenizer.ggml.tokens", tok, n) ||
             gguf_set_arr_f32(w, "tokenizer.ggml.scores", score, n) ||
             gguf_set_arr_i32(w, "tokenizer.ggml.token_type", type, n) ||
             gguf_writer_write(w, path, err, errlen);
    gguf_writer_free(w);
    return rc ? -1 : 0;
}

/* Byte-level BPE: the 256 mapped bytes (id = byte), merged pieces, one
 * control and one user-defined token. pre may be NULL (key absent). */
static const char *const tv_bpe_pieces[] = {"he", "ll", "hell", "hello", "\xC4\xA0w", "or", "\xC4\xA0wor",
                                            "ld", "\xC4\xA0world", "'s", "\xC4\xA0\xC4\xA0"};
static const char *const tv_bpe_merges[] = {"h e", "l l", "he ll", "hell o", "\xC4\xA0 w", "o r",
                                            "\xC4\xA0w or", "l d", "\xC4\xA0wor ld", "' s", "\xC4\xA0 \xC4\xA0"};

static int tv_write_bpe(const char *path, const char *pre, char *err, size_t errlen)
{
    static char bytebuf[256][4];
    const char *tok[TV_MAX_TOKENS];
    int32_t type[TV_MAX_TOKENS];
    size_t n = 0;
    for (int b = 0; b < 256; b++) {
        size_t k = unicode_encode(unicode_byte_to_cpt((uint8_t)b), bytebuf[b]);
        bytebuf[b][k] = '\0';
        tok[n] = bytebuf[b]; type[n++] = 1;
    }
    for (size_t i = 0; i < sizeof tv_bpe_pieces / sizeof tv_bpe_pieces[0]; i++) {
        tok[n] = tv_bpe_pieces[i]; type[n++] = 1;
    }
    tok[n] = "<|endoftext|>"; type[n++] = 3;
    tok[n] = "<|user|>"; type[n++] = 4;
    gguf_writer *w = gguf_writer_new();
    int rc = !w || gguf_set_str(w, "tokenizer.ggml.model", "gpt2") ||
             (pre && gguf_set_str(w, "tokenizer.ggml.pre", pre)) ||
             gguf_set_arr_str(w, "tokenizer.ggml.tokens", tok, n) ||
             gguf_set_arr_i32(w, "tokenizer.ggml.token_type", type, n) ||
             gguf_set_arr_str(w, "tokenizer.ggml.merges", tv_bpe_merges,
                              sizeof tv_bpe_merges / sizeof tv_bpe_merges[0]) ||
             gguf_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)(n - 2)) ||
             gguf_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)(n - 2)) ||
             gguf_writer_write(w, path, err, errlen);
    gguf_writer_free(w);
    return rc ? -1 : 0;
}

#endif
