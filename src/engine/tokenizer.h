/* tokenizer: text <-> token ids for the vocabularies GGUF files carry,
 * reproducing llama.cpp's tokenizers id for id.
 *
 * Models: "llama" (SentencePiece BPE: scores, U+2581 for spaces, <0xNN>
 * byte fallback) and "gpt2" (byte-level BPE: merge ranks, GPT-2 byte map,
 * with the pre-tokenizers of tokenizer_pre.h chosen by tokenizer.ggml.pre).
 *
 * A tokenizer is immutable once loaded: encode/decode may run concurrently
 * from many threads on one handle. It copies everything it needs from the
 * GGUF file, which may be closed right after tokenizer_from_gguf().
 *
 * Untrusted input: encode takes any bytes (invalid UTF-8 included, see
 * unicode.h for how it is read) up to TOKENIZER_MAX_INPUT; decode takes any
 * id sequence (out-of-range ids are an error, never a crash).
 */
#ifndef WARD_TOKENIZER_H
#define WARD_TOKENIZER_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/gguf.h"
#include "engine/tokenizer_pre.h"

/* Largest text one encode call accepts: HTTP bodies are capped at 1 MiB and a
 * chat template adds little, so 4 MiB is never hit by legitimate requests
 * while bounding the work (and memory, ~40 bytes per byte) of one call. */
#define TOKENIZER_MAX_INPUT (4u << 20)
/* Vocabulary bounds: real vocabularies have up to ~260k tokens and ~500k
 * merges; the GGUF reader already bounds arrays at 16M. */
#define TOKENIZER_MAX_VOCAB (1u << 20)
#define TOKENIZER_MAX_MERGES (1u << 21)
/* Longest token text accepted (real ones are < 300 bytes); bounds what one
 * token can add to a decoded stream. */
#define TOKENIZER_MAX_TOKEN_BYTES 4096u

#define TOKENIZER_ERROR INT_MIN   /* encode/piece: error (bad input, no memory) */
#define TOKENIZER_NULL (-1)       /* "no such special token" */

typedef enum { TOKENIZER_SPM = 1, TOKENIZER_BPE = 2 } tokenizer_type;

/* Token attributes (from tokenizer.ggml.token_type). */
#define TOKEN_ATTR_UNDEFINED 0x00u
#define TOKEN_ATTR_UNKNOWN 0x01u
#define TOKEN_ATTR_UNUSED 0x02u
#define TOKEN_ATTR_NORMAL 0x04u
#define TOKEN_ATTR_CONTROL 0x08u
#define TOKEN_ATTR_USER_DEFINED 0x10u
#define TOKEN_ATTR_BYTE 0x20u

typedef struct tokenizer tokenizer;

/* Loads the tokenizer.ggml.* keys. NULL with a message in err on any problem
 * (missing/mismatched arrays, unsupported model, limits exceeded). */
tokenizer *tokenizer_from_gguf(const gguf_file *f, char *err, size_t errlen);
void tokenizer_free(tokenizer *t);

/* Encodes text[0..len). add_special: add BOS/EOS as the vocabulary asks;
 * parse_special: match control tokens written in the text (user-defined
 * tokens are always matched). Writes at most cap ids to out and returns the
 * count; if more than cap are needed returns -(needed) and out is partial;
 * returns TOKENIZER_ERROR for text over TOKENIZER_MAX_INPUT or no memory. */
int tokenizer_encode(const tokenizer *t, const char *text, size_t len, int add_special,
                     int parse_special, int32_t *out, size_t cap);

/* Same, allocating: *out (caller frees) gets *n ids. 0, or -1 with err. */
int tokenizer_encode_alloc(const tokenizer *t, const char *text, size_t len, int add_special,
                           int parse_special, int32_t **out, size_t *n, char *err, size_t errlen);

/* The bytes one token stands for: byte tokens give their byte, U+2581
 * becomes a space (SPM), GPT-2 mapped code points their bytes (BPE).
 * Control/unknown tokens give nothing unless special is set. May be invalid
 * or partial UTF-8. Returns the length (copied if <= cap), -(length) if cap
 * is too small, TOKENIZER_ERROR for an out-of-range id. */
int tokenizer_token_to_piece(const tokenizer *t, int32_t id, int special, char *buf, size_t cap);

/* Decodes a whole sequence like llama.cpp's detokenize: drops a leading BOS
 * and trailing EOS when remove_special, strips the SPM prefix space, applies
 * the vocabulary's clean_spaces rules. *out (caller frees, NUL-terminated)
 * gets the raw bytes. 0, or -1 on an out-of-range id / no memory. */
int tokenizer_decode(const tokenizer *t, const int32_t *ids, size_t n, int remove_special,
                     int unparse_special, char **out, size_t *out_len);

int32_t tokenizer_n_vocab(const tokenizer *t);
tokenizer_type tokenizer_get_type(const tokenizer *t);
tokenizer_pre_type tokenizer_get_pre(const tokenizer *t);
int32_t tokenizer_bos(const tokenizer *t);   /* TOKENIZER_NULL if none */
int32_t tokenizer_eos(const tokenizer *t);
int32_t tokenizer_eot(const tokenizer *t);
int tokenizer_add_bos(const tokenizer *t);
int tokenizer_add_eos(const tokenizer *t);
int tokenizer_add_space_prefix(const tokenizer *t);
int tokenizer_clean_spaces(const tokenizer *t);
/* End of generation: eos, eot, eom, and tokens named like <|eot_id|>,
 * <|im_end|>, <|end|>, <|endoftext|>, <end_of_turn> ... */
int tokenizer_is_eog(const tokenizer *t, int32_t id);
/* Raw vocabulary text (NUL-terminated, owned by t) or NULL if out of range. */
const char *tokenizer_token_text(const tokenizer *t, int32_t id);
unsigned tokenizer_token_attr(const tokenizer *t, int32_t id);
/* Id of an exact vocabulary text, or TOKENIZER_NULL. */
int32_t tokenizer_find(const tokenizer *t, const char *text, size_t len);

/* ---- streaming detokenizer ----
 * Feeds generated tokens one at a time and returns text that is final: it
 * holds back a partial UTF-8 sequence until it completes, and (with
 * clean_spaces) a space until the next characters show whether it stays.
 * Output is always valid UTF-8: a sequence that can no longer complete is
 * replaced by U+FFFD. Concatenating every push and the final flush equals
 * tokenizer_decode() of the same ids for any sequence whose decoded bytes are
 * valid UTF-8. One stream per generation; not thread-safe. */
typedef struct {
    int special;             /* render control tokens' text; default 0 */
    int strip_leading_space; /* drop one leading space of the first piece;
                                default -1 = the vocabulary's add_space_prefix */
    int clean_spaces;        /* default -1 = the vocabulary's setting */
} tokenizer_stream_params;

typedef struct tokenizer_stream tokenizer_stream;

tokenizer_stream_params tokenizer_stream_default_params(void);
/* t must outlive the stream. NULL only when out of memory. */
tokenizer_stream *tokenizer_stream_new(const tokenizer *t, const tokenizer_stream_params *p);
void tokenizer_stream_free(tokenizer_stream *s);
/* Returns the newly final text (pointer owned by the stream, valid until the
 * next call; *len may be 0), or NULL for an out-of-range id / no memory. */
const char *tokenizer_stream_push(tokenizer_stream *s, int32_t id, size_t *len);
/* Releases everything held back; the stream can then be reused. */
const char *tokenizer_stream_flush(tokenizer_stream *s, size_t *len);

#endif
