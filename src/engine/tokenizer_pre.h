/* tokenizer_pre: the pre-tokenizers of byte-level BPE vocabularies, i.e. the
 * regex splits that tokenizer.json files specify, written as hand-made
 * matchers with the exact semantics llama.cpp gives those regexes (ECMAScript
 * leftmost-first alternation, greedy quantifiers; each regex refines the
 * pieces of the previous one, and both its matches and the gaps between them
 * become pieces). No regex engine: every stage is linear in its input.
 *
 * Internal to the tokenizer module; tests may call it directly.
 */
#ifndef WARD_TOKENIZER_PRE_H
#define WARD_TOKENIZER_PRE_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    TOKENIZER_PRE_DEFAULT = 0,   /* "default", missing or unknown */
    TOKENIZER_PRE_GPT2,          /* "gpt-2" and friends */
    TOKENIZER_PRE_LLAMA3,        /* "llama3", "llama-bpe", "llama-v3" ... */
    TOKENIZER_PRE_QWEN2,         /* "qwen2", "deepseek-r1-qwen" */
    TOKENIZER_PRE_SMOLLM,        /* "smollm", "starcoder", "refact", "command-r" ... */
    TOKENIZER_PRE_DEEPSEEK_LLM,  /* "deepseek-llm" */
    TOKENIZER_PRE_DEEPSEEK_CODER,/* "deepseek-coder" */
} tokenizer_pre_type;

/* Piece lengths in code points, in order; the caller frees len. */
typedef struct {
    size_t *len;
    size_t n, cap;
} tokenizer_pieces;

/* Splits cpts[0..n) with the pre-tokenizer t; out must be zeroed or reused
 * (its n is reset). Returns 0, or -1 when out of memory. */
int tokenizer_pre_split(tokenizer_pre_type t, const uint32_t *cpts, size_t n,
                        tokenizer_pieces *out);

void tokenizer_pieces_free(tokenizer_pieces *p);

#endif
