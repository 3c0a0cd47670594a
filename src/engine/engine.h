/* engine: the forward pass over a batch of tokens from several sequences,
 * with a paged KV cache shared by all of them.
 *
 * Model: an engine has n_seq_max sequence ids (0..n_seq_max-1). One
 * engine_decode() call takes a batch of tokens, each tagged with its sequence
 * and its position, processes them all at once (every weight matrix is
 * applied to all rows of the batch together), appends their keys/values to
 * their sequences, and returns logits for the rows that asked for them.
 * Attention is causal within a sequence and never crosses sequences, so a
 * batch may freely mix a long prompt of one request with single decode tokens
 * of others (continuous batching). A row's result does not depend on what
 * else is in the batch (bit for bit).
 *
 * Paged KV cache (the idea of vLLM's PagedAttention): keys and values live in
 * one pool of fixed-size blocks (kv_block_size positions x all layers). Each
 * sequence has a block table; blocks are taken from the pool as positions are
 * appended and given back on reset/truncate, so sequences of any length share
 * the pool without fragmentation. Blocks are refcounted:
 *  - engine_seq_fork() lets a sequence share another's blocks (beam search);
 *    the partially filled last block is copied on the next write (COW);
 *  - prefix cache: every full block is indexed by a hash of the token chain
 *    from position 0 through its end; engine_seq_prefix_attach() lets a new
 *    sequence start on the cached blocks of an identical prefix (a shared
 *    system prompt). Unreferenced cached blocks stay in an LRU list and are
 *    reused (evicted) only when no free block is left.
 * The keys/values of a position depend only on the tokens up to it, so a
 * shared block is exactly what the sequence would have computed itself.
 *
 * Positions: within a sequence, positions are contiguous from 0. The tokens of
 * sequence s in a batch must carry positions len(s), len(s)+1, ... in batch
 * order (they may be interleaved with other sequences' tokens). Anything else
 * is rejected with an error and nothing is changed. When the pool cannot hold
 * the batch's new positions, engine_decode returns ENGINE_ERR_KV_FULL and
 * nothing is changed either: the caller (the scheduler) plans batches with
 * engine_seq_blocks_needed()/engine_kv_blocks_free() and preempts.
 *
 * Threads: an engine is NOT thread-safe; one thread (the scheduler) owns it
 * and makes all calls. Internally engine_decode splits work over n_threads
 * worker threads. Several engines may share one (immutable) model. The model
 * must outlive the engine.
 *
 * Memory: the pool is f32, n_kv_blocks * kv_block_size * n_layer * 2 * kv_dim
 * * 4 bytes of address space allocated zeroed up front (the OS commits pages
 * as they are first written; with kv_commit, all of them at creation, as
 * llama.cpp's contexts do, so no decode step takes a first-touch page
 * fault: ward bench sets it, to measure steady-state speed). Default pool: n_seq_max * ceil(n_ctx /
 * kv_block_size) blocks, i.e. every sequence can fill its whole context (no
 * preemption ever); set n_kv_blocks or kv_cache_bytes to bound memory instead
 * (it must hold at least one full context).
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
#define ENGINE_DEFAULT_KV_BLOCK 16  /* positions per KV block: small waste per sequence, short tables */
#define ENGINE_MAX_KV_BLOCK 1024    /* positions per KV block */
#define ENGINE_MAX_KV_BLOCKS (1 << 24) /* pool blocks: bounds the block tables and hash index */

/* engine_decode: the KV pool cannot hold the batch's new positions (nothing changed). */
#define ENGINE_ERR_KV_FULL (-2)

typedef struct {
    int n_seq_max;    /* KV slots; default 1 */
    int n_ctx;        /* positions per slot; 0 = min(model n_ctx_train, 4096) */
    int n_batch;      /* rows per internal step (scratch size); default 512 */
    int n_threads;    /* worker threads incl. the caller; 0 = online CPUs (max 8) */
    int kv_block_size; /* positions per KV block; 0 = ENGINE_DEFAULT_KV_BLOCK */
    int n_kv_blocks;  /* pool blocks; 0 = from kv_cache_bytes, else n_seq_max full contexts */
    size_t kv_cache_bytes; /* pool bytes (K and V) when n_kv_blocks is 0; 0 = the default */
    int no_prefix_cache; /* 1: do not index full blocks for reuse */
    int kv_commit;       /* 1: write the whole pool at creation (see Memory) */
} engine_params;

typedef struct {
    int block_size;          /* positions per block */
    int blocks_total;        /* pool size */
    int blocks_free;         /* allocatable now: never used or cached but unreferenced */
    int blocks_cached;       /* unreferenced blocks kept for prefix reuse (part of blocks_free) */
    size_t bytes_per_block;  /* K and V, all layers */
    uint64_t prefix_queries; /* tokens looked up by engine_seq_prefix_attach */
    uint64_t prefix_hits;    /* of which found in the cache */
} engine_kv_stats;

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

/* Bytes of K and V per block for model m and block size bs (0 = the
 * default), to turn a memory budget into blocks. 0 on overflow. */
size_t engine_kv_block_bytes(const model *m, int bs);

/* Runs the batch. logits_out receives n_vocab floats for each row whose
 * want_logits is set, in batch order (caller sizes it: rows * n_vocab).
 * Returns 0, or -1 with err; on error before any computation (bad token,
 * slot, position or context overflow) no slot is changed. A failure after
 * validation (none is expected besides thread creation) leaves the touched
 * slots truncated back to their length before the call. */
int engine_decode(engine *e, const engine_batch *b, float *logits_out, char *err, size_t errlen);

/* Empties sequence seq and gives its blocks back (no-op for an out-of-range seq). */
void engine_seq_reset(engine *e, int seq);
/* Keeps the first n_keep positions of sequence seq. -1 if seq is out of range
 * or n_keep > current length. */
int engine_seq_truncate(engine *e, int seq, int n_keep);
/* Current length (next position) of sequence seq, or -1 if out of range. */
int engine_seq_len(const engine *e, int seq);

/* Makes dst (reset first) share all of src's positions: blocks are shared,
 * the partial last block is copied when either sequence next writes into it.
 * 0, or -1 on bad ids or src == dst. */
int engine_seq_fork(engine *e, int src, int dst);

/* Starts the empty sequence seq on the longest chain of cached full blocks
 * matching tokens[0..n). Returns the positions attached (a multiple of the
 * block size, <= n; pass n - 1 to keep one token to compute for its logits),
 * 0 when nothing matched or the prefix cache is off, -1 on bad arguments or a
 * non-empty sequence. Continue decoding at that position. */
int engine_seq_prefix_attach(engine *e, int seq, const int32_t *tokens, int n);

/* New pool blocks that appending n_new positions to seq would take now
 * (including a copy of a shared partial last block); -1 on bad arguments. */
int engine_seq_blocks_needed(const engine *e, int seq, int n_new);
/* The most positions that can be appended to seq using at most `blocks` new
 * blocks (capped by the context); -1 on bad arguments. */
int engine_seq_max_append(const engine *e, int seq, int blocks);
/* Blocks allocatable now (free plus cached-unreferenced). */
int engine_kv_blocks_free(const engine *e);
void engine_kv_get_stats(const engine *e, engine_kv_stats *out);

int engine_n_ctx(const engine *e);
int engine_n_seq_max(const engine *e);
int engine_n_threads(const engine *e);
int32_t engine_n_vocab(const engine *e);
const model *engine_model(const engine *e);

#endif
