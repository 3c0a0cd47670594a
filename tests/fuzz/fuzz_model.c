/* libFuzzer target: model loading (hyper-parameter and tensor validation on
 * top of the GGUF reader) and, for small models that load, one two-token
 * batch through the engine, so that whatever the loader accepts is safe to
 * run (no out-of-bounds reads, no unbounded allocation). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "engine/engine.h"
#include "engine/model.h"

/* Only run the forward pass on models this small: keeps each input fast. */
#define FUZZ_MODEL_MAX_RUN_BYTES (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    model *m = model_load_buffer(data, size, NULL, err, sizeof err);
    if (!m)
        return 0;
    const model_hparams *hp = model_get_hparams(m);
    if (model_weight_bytes(m) <= FUZZ_MODEL_MAX_RUN_BYTES) {
        engine_params p = engine_default_params();
        p.n_ctx = 4;
        p.n_batch = 2;
        p.n_threads = 1;
        engine *e = engine_new(m, &p, err, sizeof err);
        float *logits = malloc((size_t)hp->n_vocab * 2 * sizeof *logits);
        if (e && logits) {
            int32_t tok[2] = {0, (int32_t)hp->n_vocab - 1}, pos[2] = {0, 1}, seq[2] = {0, 0};
            uint8_t want[2] = {1, 1};
            engine_batch b = {2, tok, pos, seq, want};
            engine_decode(e, &b, logits, err, sizeof err);
        }
        free(logits);
        engine_free(e);
    }
    model_free(m);
    return 0;
}
