/* libFuzzer target: gguf_open_buffer on arbitrary bytes, then walk every KV
 * and tensor through the public getters, decode the first row of each
 * tensor, and check that what the reader accepted the writer reproduces and
 * the reader accepts again. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/gguf.h"
#include "engine/quant.h"

#define FUZZ_MAX_ARRAY_WALK 256      /* elements visited per array */
#define FUZZ_MAX_ROW 4096            /* elements decoded per tensor */
#define FUZZ_MAX_REWRITE (1u << 20)  /* tensor bytes re-written per input */

static volatile uint64_t sink;

static void walk_kv(const gguf_file *f, int64_t i)
{
    const char *key = gguf_key_name(f, i);
    if (!key || gguf_find_key(f, key) != i)
        abort(); /* keys are unique and findable */
    uint32_t u32;
    uint64_t u64;
    int64_t i64;
    float f32;
    int b;
    gguf_str s;
    sink += (uint64_t)gguf_get_u32(f, key, &u32) + (uint64_t)gguf_get_u64(f, key, &u64) +
            (uint64_t)gguf_get_i64(f, key, &i64) + (uint64_t)gguf_get_f32(f, key, &f32) +
            (uint64_t)gguf_get_bool(f, key, &b);
    if (gguf_get_str(f, key, &s) == 0 && s.len)
        sink += (uint8_t)s.ptr[0] + (uint8_t)s.ptr[s.len - 1];
    gguf_vtype et;
    uint64_t n;
    if (gguf_get_arr(f, key, &et, &n) == 0) {
        for (uint64_t k = 0; k < n && k < FUZZ_MAX_ARRAY_WALK; k++) {
            if (gguf_arr_str(f, key, k, &s) == 0 && s.len)
                sink += (uint8_t)s.ptr[s.len - 1];
            if (gguf_arr_i64(f, key, k, &i64) == 0)
                sink += (uint64_t)i64;
            if (gguf_arr_f32(f, key, k, &f32) == 0)
                sink += (uint64_t)(f32 == f32);
        }
        if (n && gguf_arr_str(f, key, n - 1, &s) == 0 && s.len)
            sink += (uint8_t)s.ptr[s.len - 1];
        if (gguf_arr_str(f, key, n, &s) == 0)
            abort(); /* out of bounds must fail */
        const void *raw;
        if (gguf_arr_data(f, key, &et, &n, &raw) == 0 && n)
            sink += ((const uint8_t *)raw)[n * gguf_vtype_size(et) - 1];
    }
}

static void rewrite(const gguf_file *f)
{
    uint64_t total = 0;
    for (size_t i = 0; i < gguf_n_tensors(f); i++)
        total += gguf_tensor_at(f, i)->n_bytes;
    if (total > FUZZ_MAX_REWRITE)
        return;
    gguf_writer *w = gguf_writer_new();
    if (!w)
        return;
    for (size_t i = 0; i < gguf_n_kv(f); i++)
        if (gguf_copy_kv(w, f, (int64_t)i))
            abort();
    for (size_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        if (gguf_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data))
            abort();
    }
    void *buf;
    size_t len;
    char err[256];
    if (gguf_writer_write_buffer(w, &buf, &len, err, sizeof err))
        abort();
    gguf_file *g = gguf_open_buffer(buf, len, err, sizeof err);
    if (!g || gguf_n_kv(g) != gguf_n_kv(f) || gguf_n_tensors(g) != gguf_n_tensors(f))
        abort();
    gguf_close(g);
    free(buf);
    gguf_writer_free(w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    gguf_file *f = gguf_open_buffer(data, size, err, sizeof err);
    if (!f)
        return 0;
    for (size_t i = 0; i < gguf_n_kv(f); i++)
        walk_kv(f, (int64_t)i);
    static float row[FUZZ_MAX_ROW];
    for (size_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        if (gguf_find_tensor(f, t->name) != t)
            abort();
        const uint8_t *p = t->data;
        sink += p[0] + p[t->n_bytes - 1];
        if (t->ne[0] <= FUZZ_MAX_ROW && quant_can_dequantize(t->type))
            if (quant_dequantize_row(t->type, t->data, row, (size_t)t->ne[0]))
                abort();
    }
    rewrite(f);
    gguf_close(f);
    return 0;
}
