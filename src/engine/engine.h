/* engine: the forward pass over a batch of tokens from several sequences,
 * with a KV cache slot per sequence.
 *
 * Model: an engine owns n_seq_max KV-cache slots, numbered 0..n_seq_max-1,
 * each holding up to n_ctx positions. One engine_decode() call takes a batch
 * of tokens, each tagged with its slot (seq) and its position, processes them
 * all at once (every weight matrix is applied to all rows of the batch
 * together), appends their keys/values to their slots, and returns logits for
 * the rows that asked for them. Attention is causal within a sequence and
 * never crosses sequences, so a batch may freely mix a long prompt of one
 * request with single decode tokens of others (continuous batching).
 *
 * Positions: within a slot, positions are contiguous from 0. The tokens of
 * slot s in a batch must carry positions len(s), len(s)+1, ... in batch
 * order (they may be interleaved with other slots' tokens). Anything else is
 * rejected with an error and nothing is changed. To drop a sequence's tail
 * (e.g. re-prompting) use engine_seq_truncate; to free a slot for a new
 * request use engine_seq_reset.
 *
 * Threads: an engine is NOT thread-safe; one thread (the scheduler) owns it
 * and makes all calls. Internally engine_decode splits work over n_threads
 * worker threads. Several engines may share one (immutable) model. The model
 * must outlive the engine.
 *
 * Memory: the KV cache is f32, n_seq_max * n_layer * n_ctx * 2 * kv_dim * 4
 * bytes of address space, allocated zeroed up front (the OS commits pages as
 * they are first written, so unused context costs little resident memory).
 */
#ifndef WARD_ENGINE_H
#define WARD_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/model.h"

#define ENGINE_MAX_SEQ 256          /* slots; bounds per-slot bookkeeping */
#define ENGINE_MAX_CTX (1 << 20)    /* positions per slot */
#define ENGINE_MAX_BATCH 4096       /* rows processed per internal step; larger batches are split */
#define ENGINE_MAX_THREADS 256

typedef struct {
    int n_seq_max;    /* KV slots; default 1 */
    int n_ctx;        /* positions per slot; 0 = min(model n_ctx_train, 4096) */
    int n_batch;      /* rows per internal step (scratch size); default 512 */
    int n_threads;    /* worker threads incl. the caller; 0 = online CPUs (max 8) */
} engine_params;

/* One batch. All arrays have n entries and are only read during the call. */
typedef struct {
    int n;
    const int32_t *token;        /* token ids, < n_vocab */
    const int32_t *pos;          /* position of each token in its sequence */
    const int32_t *seq;          /* KV slot of each token, < n_seq_max */
    const uint8_t *want_logits;  /* nonzero: write this row's logits; NULL = only the last row */
} engine_batch;

typedef struct engine engine;

engine_params engine_default_params(void);

/* Creates an engine over m (borrowed; must outlive the engine). NULL with err
 * on bad params, a vocab_only model, or no memory. */
engine *engine_new(const model *m, const engine_params *p, char *err, size_t errlen);
void engine_free(engine *e);

/* Runs the batch. logits_out receives n_vocab floats for each row whose
 * want_logits is set, in batch order (caller sizes it: rows * n_vocab).
 * Returns 0, or -1 with err; on error before any computation (bad token,
 * slot, position or context overflow) no slot is changed. A failure after
 * validation (none is expected besides thread creation) leaves the touched
 * slots truncated back to their length before the call. */
int engine_decode(engine *e, const engine_batch *b, float *logits_out, char *err, size_t errlen);

/* Empties slot seq (no-op for an out-of-range seq). */
void engine_seq_reset(engine *e, int seq);
/* Keeps the first n_keep positions of slot seq. -1 if seq is out of range or
 * n_keep > current length. */
int engine_seq_truncate(engine *e, int seq, int n_keep);
/* Current length (next position) of slot seq, or -1 if out of range. */
int engine_seq_len(const engine *e, int seq);

int engine_n_ctx(const engine *e);
int engine_n_seq_max(const engine *e);
int engine_n_threads(const engine *e);
int32_t engine_n_vocab(const engine *e);
const model *engine_model(const engine *e);

#endif
