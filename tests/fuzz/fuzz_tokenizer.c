/* libFuzzer target for the tokenizer. Input byte 0 picks one of eight tiny
 * vocabularies (SPM, and byte-level BPE with each pre-tokenizer) and the
 * flags; the rest is encoded as text, then read as little-endian 16-bit ids
 * and decoded both in one go and through the streaming detokenizer, whose
 * output must be valid UTF-8 and (for valid pieces) equal the batch decode. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../unit/test_tokenizer_vocab.h"
#include "engine/tokenizer.h"

#define N_VOCABS 8

static tokenizer *g_tok[N_VOCABS];

static tokenizer *load(int which)
{
    static const char *const pre[] = {"default", "gpt-2", "llama-bpe", "qwen2", "smollm",
                                      "deepseek-llm", "deepseek-coder"};
    char path[] = "/tmp/ward-fuzz-tok-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        abort();
    close(fd);
    char err[256];
    int rc = which == 0 ? tv_write_spm(path, err, sizeof err) : tv_write_bpe(path, pre[which - 1], err, sizeof err);
    if (rc != 0)
        abort();
    gguf_file *g = gguf_open(path, err, sizeof err);
    unlink(path);
    if (!g)
        abort();
    tokenizer *t = tokenizer_from_gguf(g, err, sizeof err);
    gguf_close(g);
    if (!t)
        abort();
    return t;
}

static int valid_utf8(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned char b = p[i];
        size_t k = b < 0x80 ? 1 : (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : (b & 0xF8) == 0xF0 ? 4 : 0;
        if (k == 0 || i + k > n)
            return 0;
        uint32_t c = k == 1 ? b : k == 2 ? (b & 0x1Fu) : k == 3 ? (b & 0x0Fu) : (b & 0x07u);
        for (size_t j = 1; j < k; j++) {
            if ((p[i + j] & 0xC0) != 0x80)
                return 0;
            c = (c << 6) | (p[i + j] & 0x3Fu);
        }
        static const uint32_t min_for[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (c < min_for[k] || (c >= 0xD800 && c <= 0xDFFF) || c > 0x10FFFF)
            return 0; /* strict, as JSON encoders require */
        i += k;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int which = data[0] % N_VOCABS;
    int add_special = (data[0] >> 3) & 1, parse_special = (data[0] >> 4) & 1, special = (data[0] >> 5) & 1;
    if (!g_tok[which])
        g_tok[which] = load(which);
    tokenizer *t = g_tok[which];
    const char *text = (const char *)data + 1;
    size_t len = size - 1;

    int32_t *ids;
    size_t n;
    char err[128];
    if (tokenizer_encode_alloc(t, text, len, add_special, parse_special, &ids, &n, err, sizeof err) != 0)
        abort(); /* inputs are far below the limit: must not fail */
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= tokenizer_n_vocab(t))
            abort();
    free(ids);

    /* decode arbitrary ids (some out of range) */
    size_t nid = len / 2;
    int32_t *seq = malloc((nid ? nid : 1) * sizeof *seq);
    int bad = 0;
    for (size_t i = 0; i < nid; i++) {
        seq[i] = (int32_t)(data[1 + 2 * i] | (data[2 + 2 * i] << 8)) % (tokenizer_n_vocab(t) + 8);
        bad |= seq[i] >= tokenizer_n_vocab(t);
    }
    char *out;
    size_t olen;
    int rc = tokenizer_decode(t, seq, nid, 0, special, &out, &olen);
    if ((rc != 0) != bad)
        abort();
    if (rc == 0) {
        tokenizer_stream_params p = tokenizer_stream_default_params();
        p.special = special;
        tokenizer_stream *s = tokenizer_stream_new(t, &p);
        char *acc = malloc(olen * 3 + 16);
        size_t k = 0, sl;
        for (size_t i = 0; i < nid; i++) {
            const char *o = tokenizer_stream_push(s, seq[i], &sl);
            if (!o || k + sl > olen * 3 + 16)
                abort();
            memcpy(acc + k, o, sl);
            k += sl;
        }
        const char *o = tokenizer_stream_flush(s, &sl);
        if (!o || k + sl > olen * 3 + 16)
            abort();
        memcpy(acc + k, o, sl);
        k += sl;
        if (!valid_utf8(acc, k))
            abort();
        if (valid_utf8(out, olen) && (k != olen || memcmp(acc, out, k) != 0))
            abort();
        tokenizer_stream_free(s);
        free(acc);
        free(out);
    }
    free(seq);
    return 0;
}
