/* gguf: GGUF v2/v3 reader (validating, zero-copy over an mmap) and writer.
 * Format facts: docs in shared/reference/engine-formats.md section 1. */
#include "engine/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ward's GGUF code assumes a little-endian host"
#endif

#define GGUF_MAGIC "GGUF"
#define GGUF_HEADER_BYTES 24 /* magic, version, tensor count, kv count */
/* Smallest possible encodings, used to bound counts by the bytes left before
 * anything is allocated: a KV is key length (8) + >=1 key byte + type (4) + >=1
 * value byte; a tensor info is name length (8) + >=1 name byte + n_dims (4) +
 * type (4) + offset (8). */
#define GGUF_MIN_KV_BYTES 14
#define GGUF_MIN_TENSOR_BYTES 25
/* Longest excerpt of an untrusted name quoted in an error message. */
#define GGUF_ERR_NAME 80

static void seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Printable excerpt of untrusted bytes for messages (no control characters,
 * so that a crafted name cannot forge log lines). */
static const char *san(const char *s, size_t n, char *buf, size_t buflen)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 4 < buflen; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[o++] = (c >= 0x20 && c < 0x7f && c != '\'') ? (char)c : '?';
        if (o >= GGUF_ERR_NAME && i + 1 < n) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
    }
    buf[o] = 0;
    return buf;
}

/* ---------------------------------------------------------------- types */

int ggml_type_block(uint32_t type, size_t *block_elems, size_t *block_bytes)
{
    size_t e, b;
    switch (type) {
    case GGML_T_F32: e = 1; b = 4; break;
    case GGML_T_F16: e = 1; b = 2; break;
    case GGML_T_BF16: e = 1; b = 2; break;
    case GGML_T_Q4_0: e = 32; b = 18; break;
    case GGML_T_Q4_1: e = 32; b = 20; break;
    case GGML_T_Q5_0: e = 32; b = 22; break;
    case GGML_T_Q5_1: e = 32; b = 24; break;
    case GGML_T_Q8_0: e = 32; b = 34; break;
    case GGML_T_Q8_1: e = 32; b = 36; break;
    case GGML_T_Q2_K: e = 256; b = 84; break;
    case GGML_T_Q3_K: e = 256; b = 110; break;
    case GGML_T_Q4_K: e = 256; b = 144; break;
    case GGML_T_Q5_K: e = 256; b = 176; break;
    case GGML_T_Q6_K: e = 256; b = 210; break;
    case GGML_T_Q8_K: e = 256; b = 292; break;
    default: return -1;
    }
    if (block_elems)
        *block_elems = e;
    if (block_bytes)
        *block_bytes = b;
    return 0;
}

const char *ggml_type_name(uint32_t type)
{
    switch (type) {
    case GGML_T_F32: return "F32";
    case GGML_T_F16: return "F16";
    case GGML_T_BF16: return "BF16";
    case GGML_T_Q4_0: return "Q4_0";
    case GGML_T_Q4_1: return "Q4_1";
    case GGML_T_Q5_0: return "Q5_0";
    case GGML_T_Q5_1: return "Q5_1";
    case GGML_T_Q8_0: return "Q8_0";
    case GGML_T_Q8_1: return "Q8_1";
    case GGML_T_Q2_K: return "Q2_K";
    case GGML_T_Q3_K: return "Q3_K";
    case GGML_T_Q4_K: return "Q4_K";
    case GGML_T_Q5_K: return "Q5_K";
    case GGML_T_Q6_K: return "Q6_K";
    case GGML_T_Q8_K: return "Q8_K";
    default: return "unknown";
    }
}

size_t gguf_vtype_size(uint32_t type)
{
    switch (type) {
    case GGUF_T_UINT8: case GGUF_T_INT8: case GGUF_T_BOOL: return 1;
    case GGUF_T_UINT16: case GGUF_T_INT16: return 2;
    case GGUF_T_UINT32: case GGUF_T_INT32: case GGUF_T_FLOAT32: return 4;
    case GGUF_T_UINT64: case GGUF_T_INT64: case GGUF_T_FLOAT64: return 8;
    default: return 0;
    }
}

const char *gguf_vtype_name(uint32_t type)
{
    static const char *const names[] = {"UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32", "FLOAT32",
                                        "BOOL", "STRING", "ARRAY", "UINT64", "INT64", "FLOAT64"};
    return type < sizeof names / sizeof names[0] ? names[type] : "unknown";
}

static int vtype_is_int(uint32_t t)
{
    return t == GGUF_T_UINT8 || t == GGUF_T_INT8 || t == GGUF_T_UINT16 || t == GGUF_T_INT16 ||
           t == GGUF_T_UINT32 || t == GGUF_T_INT32 || t == GGUF_T_UINT64 || t == GGUF_T_INT64;
}

static int vtype_is_signed(uint32_t t)
{
    return t == GGUF_T_INT8 || t == GGUF_T_INT16 || t == GGUF_T_INT32 || t == GGUF_T_INT64;
}

int gguf_tensor_geometry(uint32_t type, uint32_t n_dims, const uint64_t *ne,
                         uint64_t *n_elems, uint64_t *n_bytes, char *err, size_t errlen)
{
    size_t be, bb;
    if (ggml_type_block(type, &be, &bb) != 0) {
        seterr(err, errlen, "unknown tensor type %u", type);
        return -1;
    }
    if (n_dims > GGUF_MAX_DIMS) {
        seterr(err, errlen, "n_dims %u exceeds %d", n_dims, GGUF_MAX_DIMS);
        return -1;
    }
    /* ggml keeps element counts in int64_t: stay below INT64_MAX. */
    uint64_t n = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] == 0) {
            seterr(err, errlen, "dimension %u is zero", d);
            return -1;
        }
        if (ne[d] > (uint64_t)INT64_MAX / n) {
            seterr(err, errlen, "dimensions overflow (dim %u = %llu)", d, (unsigned long long)ne[d]);
            return -1;
        }
        n *= ne[d];
    }
    uint64_t ne0 = n_dims > 0 ? ne[0] : 1;
    if (ne0 % be != 0) {
        seterr(err, errlen, "row length %llu is not a multiple of the %s block size %zu",
               (unsigned long long)ne0, ggml_type_name(type), be);
        return -1;
    }
    /* n / be * bb: n <= INT64_MAX and bb / be <= 4 bytes per element at most
     * for any block type except F32 (be = 1, bb = 4), so check explicitly. */
    uint64_t blocks = n / be;
    if (blocks > UINT64_MAX / bb || blocks * bb > (uint64_t)INT64_MAX) {
        seterr(err, errlen, "tensor byte size overflows");
        return -1;
    }
    *n_elems = n;
    *n_bytes = blocks * bb;
    return 0;
}

/* ---------------------------------------------------------------- reader */

typedef struct {
    char *key;              /* owned, NUL-terminated */
    uint32_t type;
    union { uint64_t u; int64_t i; double f; } v; /* scalar value */
    const uint8_t *data;    /* string bytes, or first array element */
    uint64_t len;           /* string length, or array count */
    uint32_t elem_type;     /* arrays */
    uint64_t *str_off;      /* string arrays: file offset of each element */
    size_t val_off, val_len;/* raw value bytes (after the type field) */
} gguf_kv;

typedef struct { const char *name; size_t idx; } name_idx;

struct gguf_file {
    const uint8_t *base;
    size_t size;
    int mapped;
    uint32_t version;
    uint32_t alignment;
    uint64_t data_start;
    size_t n_kv;
    gguf_kv *kv;
    name_idx *kv_sorted;
    size_t n_tensors;
    gguf_tensor *tensors;
    name_idx *t_sorted;
};

typedef struct {
    const uint8_t *p;
    size_t size, pos;
    char *err;
    size_t errlen;
} rd;

static int need(rd *r, size_t n, const char *what)
{
    if (r->size - r->pos < n) {
        seterr(r->err, r->errlen, "gguf: file truncated at offset %zu reading %s (need %zu bytes, %zu left)",
               r->pos, what, n, r->size - r->pos);
        return -1;
    }
    return 0;
}

static int rd_u32(rd *r, uint32_t *v, const char *what)
{
    if (need(r, 4, what))
        return -1;
    memcpy(v, r->p + r->pos, 4);
    r->pos += 4;
    return 0;
}

static int rd_u64(rd *r, uint64_t *v, const char *what)
{
    if (need(r, 8, what))
        return -1;
    memcpy(v, r->p + r->pos, 8);
    r->pos += 8;
    return 0;
}

/* Reads a gguf string header and checks its length against max and the bytes
 * left; *s points at the bytes, which are consumed. */
static int rd_str(rd *r, uint64_t max, const char *what, const uint8_t **s, uint64_t *len)
{
    size_t at = r->pos;
    if (rd_u64(r, len, what))
        return -1;
    if (*len > max) {
        seterr(r->err, r->errlen, "gguf: %s at offset %zu has length %llu, over the limit %llu",
               what, at, (unsigned long long)*len, (unsigned long long)max);
        return -1;
    }
    if (*len > r->size - r->pos) {
        seterr(r->err, r->errlen, "gguf: %s at offset %zu has length %llu but only %zu bytes are left",
               what, at, (unsigned long long)*len, r->size - r->pos);
        return -1;
    }
    *s = r->p + r->pos;
    r->pos += (size_t)*len;
    return 0;
}

static uint64_t load_uint(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    memcpy(&v, p, n); /* little-endian host */
    return v;
}

static int64_t load_sint(const uint8_t *p, size_t n)
{
    uint64_t u = load_uint(p, n);
    if (n < 8 && (u >> (8 * n - 1)) & 1)
        u |= ~(uint64_t)0 << (8 * n);
    int64_t s;
    memcpy(&s, &u, 8);
    return s;
}

static double load_float(const uint8_t *p, uint32_t t)
{
    if (t == GGUF_T_FLOAT32) {
        float f;
        memcpy(&f, p, 4);
        return f;
    }
    double d;
    memcpy(&d, p, 8);
    return d;
}

static int cmp_name_idx(const void *a, const void *b)
{
    return strcmp(((const name_idx *)a)->name, ((const name_idx *)b)->name);
}

static char *dup_name(rd *r, const uint8_t *s, uint64_t len, const char *what, size_t at)
{
    if (len == 0) {
        seterr(r->err, r->errlen, "gguf: empty %s at offset %zu", what, at);
        return NULL;
    }
    if (memchr(s, 0, (size_t)len)) {
        char b[GGUF_ERR_NAME + 8];
        seterr(r->err, r->errlen, "gguf: %s '%s' at offset %zu contains a NUL byte", what,
               san((const char *)s, (size_t)len, b, sizeof b), at);
        return NULL;
    }
    char *k = malloc((size_t)len + 1);
    if (!k) {
        seterr(r->err, r->errlen, "gguf: out of memory");
        return NULL;
    }
    memcpy(k, s, (size_t)len);
    k[len] = 0;
    return k;
}

static int parse_kv(rd *r, gguf_kv *kv, size_t index)
{
    size_t at = r->pos;
    const uint8_t *ks;
    uint64_t klen;
    char kb[GGUF_ERR_NAME + 8];
    if (rd_str(r, GGUF_MAX_KEY, "key", &ks, &klen))
        return -1;
    if (!(kv->key = dup_name(r, ks, klen, "key", at)))
        return -1;
    const char *kname = san(kv->key, (size_t)klen, kb, sizeof kb);
    size_t tat = r->pos;
    if (rd_u32(r, &kv->type, "value type"))
        return -1;
    kv->val_off = r->pos;
    uint32_t t = kv->type;
    size_t sz = gguf_vtype_size(t);
    if (sz > 0) {
        if (need(r, sz, "value"))
            return -1;
        const uint8_t *p = r->p + r->pos;
        if (t == GGUF_T_FLOAT32 || t == GGUF_T_FLOAT64)
            kv->v.f = load_float(p, t);
        else if (vtype_is_signed(t))
            kv->v.i = load_sint(p, sz);
        else
            kv->v.u = load_uint(p, sz);
        if (t == GGUF_T_BOOL && kv->v.u > 1) {
            seterr(r->err, r->errlen, "gguf: key '%s' has bool value %u at offset %zu (must be 0 or 1)",
                   kname, (unsigned)kv->v.u, r->pos);
            return -1;
        }
        r->pos += sz;
    } else if (t == GGUF_T_STRING) {
        if (rd_str(r, GGUF_MAX_STRING, "string value", &kv->data, &kv->len))
            return -1;
    } else if (t == GGUF_T_ARRAY) {
        size_t eat = r->pos;
        if (rd_u32(r, &kv->elem_type, "array element type"))
            return -1;
        uint32_t et = kv->elem_type;
        if (et == GGUF_T_ARRAY) {
            seterr(r->err, r->errlen, "gguf: key '%s' is a nested array (offset %zu)", kname, eat);
            return -1;
        }
        size_t esz = gguf_vtype_size(et);
        if (esz == 0 && et != GGUF_T_STRING) {
            seterr(r->err, r->errlen, "gguf: key '%s' has unknown array element type %u at offset %zu",
                   kname, et, eat);
            return -1;
        }
        size_t cat = r->pos;
        if (rd_u64(r, &kv->len, "array count"))
            return -1;
        uint64_t n = kv->len;
        if (n > GGUF_MAX_ARRAY) {
            seterr(r->err, r->errlen, "gguf: key '%s' array count %llu at offset %zu exceeds the limit %u",
                   kname, (unsigned long long)n, cat, (unsigned)GGUF_MAX_ARRAY);
            return -1;
        }
        size_t left = r->size - r->pos;
        /* each element takes at least esz bytes (a string: its 8-byte length) */
        size_t min_el = esz ? esz : 8;
        if (n > left / min_el) {
            seterr(r->err, r->errlen,
                   "gguf: key '%s' array of %llu %s at offset %zu needs more than the %zu bytes left",
                   kname, (unsigned long long)n, gguf_vtype_name(et), cat, left);
            return -1;
        }
        kv->data = r->p + r->pos;
        if (esz) {
            if (et == GGUF_T_BOOL) {
                for (uint64_t i = 0; i < n; i++)
                    if (kv->data[i] > 1) {
                        seterr(r->err, r->errlen, "gguf: key '%s' bool element %llu is %u (must be 0 or 1)",
                               kname, (unsigned long long)i, kv->data[i]);
                        return -1;
                    }
            }
            r->pos += (size_t)n * esz;
        } else {
            /* n <= left / 8, so this allocation is bounded by the file size */
            kv->str_off = malloc(n ? (size_t)n * sizeof *kv->str_off : 1);
            if (!kv->str_off) {
                seterr(r->err, r->errlen, "gguf: out of memory");
                return -1;
            }
            for (uint64_t i = 0; i < n; i++) {
                const uint8_t *s;
                uint64_t l;
                kv->str_off[i] = r->pos;
                if (rd_str(r, GGUF_MAX_STRING, "array string", &s, &l))
                    return -1;
            }
        }
    } else {
        seterr(r->err, r->errlen, "gguf: key '%s' has unknown value type %u at offset %zu", kname, t, tat);
        return -1;
    }
    kv->val_len = r->pos - kv->val_off;
    (void)index;
    return 0;
}

static int parse_tensor_info(rd *r, gguf_tensor *t)
{
    size_t at = r->pos;
    const uint8_t *s;
    uint64_t len;
    char nb[GGUF_ERR_NAME + 8], gerr[160];
    if (rd_str(r, UINT64_MAX, "tensor name", &s, &len))
        return -1;
    if (len >= GGUF_MAX_NAME) {
        seterr(r->err, r->errlen, "gguf: tensor name '%s' at offset %zu is %llu bytes (limit %d)",
               san((const char *)s, (size_t)len, nb, sizeof nb), at, (unsigned long long)len, GGUF_MAX_NAME - 1);
        return -1;
    }
    char *name = dup_name(r, s, len, "tensor name", at);
    if (!name)
        return -1;
    t->name = name;
    const char *tn = san(name, (size_t)len, nb, sizeof nb);
    size_t dat = r->pos;
    if (rd_u32(r, &t->n_dims, "tensor n_dims"))
        return -1;
    if (t->n_dims > GGUF_MAX_DIMS) {
        seterr(r->err, r->errlen, "gguf: tensor '%s' has n_dims %u at offset %zu (at most %d)", tn, t->n_dims,
               dat, GGUF_MAX_DIMS);
        return -1;
    }
    for (int d = 0; d < GGUF_MAX_DIMS; d++)
        t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++)
        if (rd_u64(r, &t->ne[d], "tensor dimension"))
            return -1;
    size_t tat = r->pos;
    if (rd_u32(r, &t->type, "tensor type") || rd_u64(r, &t->offset, "tensor offset"))
        return -1;
    if (gguf_tensor_geometry(t->type, t->n_dims, t->ne, &t->n_elems, &t->n_bytes, gerr, sizeof gerr)) {
        seterr(r->err, r->errlen, "gguf: tensor '%s' (info at offset %zu): %s", tn, tat, gerr);
        return -1;
    }
    return 0;
}

typedef struct { uint64_t off; size_t idx; } off_idx;

static int cmp_off_idx(const void *a, const void *b)
{
    uint64_t x = ((const off_idx *)a)->off, y = ((const off_idx *)b)->off;
    return x < y ? -1 : x > y;
}

void gguf_close(gguf_file *f)
{
    if (!f)
        return;
    if (f->kv)
        for (size_t i = 0; i < f->n_kv; i++) {
            free(f->kv[i].key);
            free(f->kv[i].str_off);
        }
    if (f->tensors)
        for (size_t i = 0; i < f->n_tensors; i++)
            free((char *)f->tensors[i].name);
    free(f->kv);
    free(f->kv_sorted);
    free(f->tensors);
    free(f->t_sorted);
    if (f->mapped && f->size)
        munmap((void *)f->base, f->size);
    free(f);
}

static int parse(gguf_file *f, char *err, size_t errlen)
{
    rd r = {.p = f->base, .size = f->size, .pos = 0, .err = err, .errlen = errlen};
    char nb[GGUF_ERR_NAME + 8], nb2[GGUF_ERR_NAME + 8];

    if (f->size < 4 || memcmp(f->base, GGUF_MAGIC, 4) != 0) {
        seterr(err, errlen, "gguf: bad magic (not a GGUF file)");
        return -1;
    }
    r.pos = 4;
    if (rd_u32(&r, &f->version, "version"))
        return -1;
    if (f->version != 2 && f->version != 3) {
        if (f->version == 0x03000000u || f->version == 0x02000000u)
            seterr(err, errlen, "gguf: big-endian GGUF files are not supported");
        else
            seterr(err, errlen, "gguf: unsupported version %u (need 2 or 3)", f->version);
        return -1;
    }
    uint64_t n_tensors, n_kv;
    if (rd_u64(&r, &n_tensors, "tensor count") || rd_u64(&r, &n_kv, "kv count"))
        return -1;
    if (n_tensors > GGUF_MAX_TENSORS) {
        seterr(err, errlen, "gguf: tensor count %llu exceeds the limit %d", (unsigned long long)n_tensors,
               GGUF_MAX_TENSORS);
        return -1;
    }
    if (n_kv > GGUF_MAX_KV) {
        seterr(err, errlen, "gguf: kv count %llu exceeds the limit %d", (unsigned long long)n_kv, GGUF_MAX_KV);
        return -1;
    }
    /* counts are small now; bound them by the bytes left before allocating */
    size_t left = f->size - r.pos;
    if (n_kv * GGUF_MIN_KV_BYTES + n_tensors * GGUF_MIN_TENSOR_BYTES > left) {
        seterr(err, errlen, "gguf: %llu KVs and %llu tensors cannot fit in the %zu bytes after the header",
               (unsigned long long)n_kv, (unsigned long long)n_tensors, left);
        return -1;
    }
    f->kv = calloc(n_kv ? (size_t)n_kv : 1, sizeof *f->kv);
    f->tensors = calloc(n_tensors ? (size_t)n_tensors : 1, sizeof *f->tensors);
    f->kv_sorted = malloc((n_kv ? (size_t)n_kv : 1) * sizeof *f->kv_sorted);
    f->t_sorted = malloc((n_tensors ? (size_t)n_tensors : 1) * sizeof *f->t_sorted);
    if (!f->kv || !f->tensors || !f->kv_sorted || !f->t_sorted) {
        seterr(err, errlen, "gguf: out of memory");
        return -1;
    }

    for (size_t i = 0; i < n_kv; i++) {
        f->n_kv = i + 1; /* so gguf_close frees what was allocated */
        if (parse_kv(&r, &f->kv[i], i))
            return -1;
        f->kv_sorted[i] = (name_idx){f->kv[i].key, i};
    }
    f->n_kv = (size_t)n_kv;
    qsort(f->kv_sorted, f->n_kv, sizeof *f->kv_sorted, cmp_name_idx);
    for (size_t i = 1; i < f->n_kv; i++)
        if (strcmp(f->kv_sorted[i - 1].name, f->kv_sorted[i].name) == 0) {
            const char *k = f->kv_sorted[i].name;
            seterr(err, errlen, "gguf: duplicate key '%s'", san(k, strlen(k), nb, sizeof nb));
            return -1;
        }

    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    int64_t ai = gguf_find_key(f, "general.alignment");
    if (ai >= 0) {
        const gguf_kv *kv = &f->kv[ai];
        if (kv->type != GGUF_T_UINT32) {
            seterr(err, errlen, "gguf: general.alignment has type %s (must be UINT32)", gguf_vtype_name(kv->type));
            return -1;
        }
        uint64_t a = kv->v.u;
        if (a < GGUF_MIN_ALIGNMENT || a > GGUF_MAX_ALIGNMENT || (a & (a - 1)) != 0) {
            seterr(err, errlen, "gguf: general.alignment %llu is not a power of two in [%d, %d]",
                   (unsigned long long)a, GGUF_MIN_ALIGNMENT, GGUF_MAX_ALIGNMENT);
            return -1;
        }
        f->alignment = (uint32_t)a;
    }

    for (size_t i = 0; i < n_tensors; i++) {
        f->n_tensors = i + 1;
        if (parse_tensor_info(&r, &f->tensors[i]))
            return -1;
        f->t_sorted[i] = (name_idx){f->tensors[i].name, i};
    }
    f->n_tensors = (size_t)n_tensors;
    qsort(f->t_sorted, f->n_tensors, sizeof *f->t_sorted, cmp_name_idx);
    for (size_t i = 1; i < f->n_tensors; i++)
        if (strcmp(f->t_sorted[i - 1].name, f->t_sorted[i].name) == 0) {
            const char *k = f->t_sorted[i].name;
            seterr(err, errlen, "gguf: duplicate tensor name '%s'", san(k, strlen(k), nb, sizeof nb));
            return -1;
        }

    uint64_t A = f->alignment;
    uint64_t ds = r.pos + (A - r.pos % A) % A;
    f->data_start = ds;
    if (f->n_tensors == 0)
        return 0;
    if (ds > f->size) {
        seterr(err, errlen, "gguf: data section start %llu is past the end of the file (%zu bytes)",
               (unsigned long long)ds, f->size);
        return -1;
    }
    uint64_t room = f->size - ds;
    for (size_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        const char *tn = san(t->name, strlen(t->name), nb, sizeof nb);
        if (t->offset % A != 0) {
            seterr(err, errlen, "gguf: tensor '%s' data offset %llu is not a multiple of the alignment %llu", tn,
                   (unsigned long long)t->offset, (unsigned long long)A);
            return -1;
        }
        if (t->offset > room || t->n_bytes > room - t->offset) {
            uint64_t abs = t->offset > UINT64_MAX - ds ? UINT64_MAX : ds + t->offset;
            seterr(err, errlen, "gguf: tensor '%s' data [offset %llu, %llu bytes] exceeds file size %zu", tn,
                   (unsigned long long)abs, (unsigned long long)t->n_bytes, f->size);
            return -1;
        }
        t->offset += ds;
        t->data = f->base + t->offset;
    }
    /* overlap check over tensors sorted by offset (reuse a scratch array) */
    off_idx *oi = malloc(f->n_tensors * sizeof *oi);
    if (!oi) {
        seterr(err, errlen, "gguf: out of memory");
        return -1;
    }
    for (size_t i = 0; i < f->n_tensors; i++)
        oi[i] = (off_idx){f->tensors[i].offset, i};
    qsort(oi, f->n_tensors, sizeof *oi, cmp_off_idx);
    for (size_t i = 1; i < f->n_tensors; i++) {
        const gguf_tensor *a = &f->tensors[oi[i - 1].idx], *b = &f->tensors[oi[i].idx];
        if (a->offset + a->n_bytes > b->offset) {
            seterr(err, errlen, "gguf: tensors '%s' and '%s' overlap at offset %llu",
                   san(a->name, strlen(a->name), nb, sizeof nb), san(b->name, strlen(b->name), nb2, sizeof nb2),
                   (unsigned long long)b->offset);
            free(oi);
            return -1;
        }
    }
    free(oi);
    return 0;
}

gguf_file *gguf_open_buffer(const void *buf, size_t len, char *err, size_t errlen)
{
    if (!buf && len) {
        seterr(err, errlen, "gguf: NULL buffer");
        return NULL;
    }
    gguf_file *f = calloc(1, sizeof *f);
    if (!f) {
        seterr(err, errlen, "gguf: out of memory");
        return NULL;
    }
    f->base = buf;
    f->size = len;
    if (parse(f, err, errlen)) {
        gguf_close(f);
        return NULL;
    }
    return f;
}

gguf_file *gguf_open(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        seterr(err, errlen, "gguf: cannot open '%s': %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        seterr(err, errlen, "gguf: '%s' is not a regular file", path);
        close(fd);
        return NULL;
    }
    if (st.st_size == 0) {
        seterr(err, errlen, "gguf: '%s' is empty", path);
        close(fd);
        return NULL;
    }
    size_t size = (size_t)st.st_size;
    void *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (m == MAP_FAILED) {
        seterr(err, errlen, "gguf: cannot map '%s': %s", path, strerror(e));
        return NULL;
    }
    gguf_file *f = calloc(1, sizeof *f);
    if (!f) {
        munmap(m, size);
        seterr(err, errlen, "gguf: out of memory");
        return NULL;
    }
    f->base = m;
    f->size = size;
    f->mapped = 1;
    if (parse(f, err, errlen)) {
        gguf_close(f);
        return NULL;
    }
    return f;
}

uint32_t gguf_version(const gguf_file *f) { return f->version; }
uint32_t gguf_alignment(const gguf_file *f) { return f->alignment; }
size_t gguf_n_kv(const gguf_file *f) { return f->n_kv; }
size_t gguf_n_tensors(const gguf_file *f) { return f->n_tensors; }

int64_t gguf_find_key(const gguf_file *f, const char *key)
{
    if (!f || !key)
        return -1;
    size_t lo = 0, hi = f->n_kv;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(key, f->kv_sorted[mid].name);
        if (c == 0)
            return (int64_t)f->kv_sorted[mid].idx;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return -1;
}

const char *gguf_key_name(const gguf_file *f, int64_t i)
{
    return (i >= 0 && (uint64_t)i < f->n_kv) ? f->kv[i].key : NULL;
}

gguf_vtype gguf_kv_type(const gguf_file *f, int64_t i)
{
    return (i >= 0 && (uint64_t)i < f->n_kv) ? (gguf_vtype)f->kv[i].type : (gguf_vtype)-1;
}

static const gguf_kv *kv_get(const gguf_file *f, const char *key)
{
    int64_t i = gguf_find_key(f, key);
    return i < 0 ? NULL : &f->kv[i];
}

/* Integer value of a scalar as (negative?, magnitude-or-value) pair. */
static int kv_to_u64(uint32_t t, uint64_t u, int64_t s, uint64_t *out)
{
    if (!vtype_is_int(t))
        return -1;
    if (vtype_is_signed(t)) {
        if (s < 0)
            return -1;
        *out = (uint64_t)s;
    } else {
        *out = u;
    }
    return 0;
}

static int kv_to_i64(uint32_t t, uint64_t u, int64_t s, int64_t *out)
{
    if (!vtype_is_int(t))
        return -1;
    if (vtype_is_signed(t)) {
        *out = s;
    } else {
        if (u > (uint64_t)INT64_MAX)
            return -1;
        *out = (int64_t)u;
    }
    return 0;
}

int gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out)
{
    const gguf_kv *kv = kv_get(f, key);
    return kv ? kv_to_u64(kv->type, kv->v.u, kv->v.i, out) : -1;
}

int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out)
{
    uint64_t v;
    if (gguf_get_u64(f, key, &v) || v > UINT32_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

int gguf_get_i64(const gguf_file *f, const char *key, int64_t *out)
{
    const gguf_kv *kv = kv_get(f, key);
    return kv ? kv_to_i64(kv->type, kv->v.u, kv->v.i, out) : -1;
}

int gguf_get_f32(const gguf_file *f, const char *key, float *out)
{
    const gguf_kv *kv = kv_get(f, key);
    if (!kv || (kv->type != GGUF_T_FLOAT32 && kv->type != GGUF_T_FLOAT64))
        return -1;
    *out = (float)kv->v.f;
    return 0;
}

int gguf_get_bool(const gguf_file *f, const char *key, int *out)
{
    const gguf_kv *kv = kv_get(f, key);
    if (!kv || kv->type != GGUF_T_BOOL)
        return -1;
    *out = kv->v.u != 0;
    return 0;
}

int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out)
{
    const gguf_kv *kv = kv_get(f, key);
    if (!kv || kv->type != GGUF_T_STRING)
        return -1;
    out->ptr = (const char *)kv->data;
    out->len = kv->len;
    return 0;
}

int gguf_get_arr(const gguf_file *f, const char *key, gguf_vtype *elem_type, uint64_t *count)
{
    const gguf_kv *kv = kv_get(f, key);
    if (!kv || kv->type != GGUF_T_ARRAY)
        return -1;
    if (elem_type)
        *elem_type = (gguf_vtype)kv->elem_type;
    if (count)
        *count = kv->len;
    return 0;
}

static const gguf_kv *arr_get(const gguf_file *f, const char *key, uint64_t i)
{
    const gguf_kv *kv = kv_get(f, key);
    if (!kv || kv->type != GGUF_T_ARRAY || i >= kv->len)
        return NULL;
    return kv;
}

int gguf_arr_str(const gguf_file *f, const char *key, uint64_t i, gguf_str *out)
{
    const gguf_kv *kv = arr_get(f, key, i);
    if (!kv || kv->elem_type != GGUF_T_STRING)
        return -1;
    uint64_t off = kv->str_off[i], len; /* validated at open */
    memcpy(&len, f->base + off, 8);
    out->ptr = (const char *)f->base + off + 8;
    out->len = len;
    return 0;
}

int gguf_arr_f32(const gguf_file *f, const char *key, uint64_t i, float *out)
{
    const gguf_kv *kv = arr_get(f, key, i);
    if (!kv)
        return -1;
    if (kv->elem_type == GGUF_T_FLOAT32)
        memcpy(out, kv->data + i * 4, 4);
    else if (kv->elem_type == GGUF_T_FLOAT64)
        *out = (float)load_float(kv->data + i * 8, GGUF_T_FLOAT64);
    else
        return -1;
    return 0;
}

int gguf_arr_i64(const gguf_file *f, const char *key, uint64_t i, int64_t *out)
{
    const gguf_kv *kv = arr_get(f, key, i);
    if (!kv || !vtype_is_int(kv->elem_type))
        return -1;
    size_t sz = gguf_vtype_size(kv->elem_type);
    const uint8_t *p = kv->data + i * sz;
    if (vtype_is_signed(kv->elem_type)) {
        *out = load_sint(p, sz);
        return 0;
    }
    return kv_to_i64(kv->elem_type, load_uint(p, sz), 0, out);
}

int gguf_arr_data(const gguf_file *f, const char *key, gguf_vtype *elem_type, uint64_t *count, const void **data)
{
    const gguf_kv *kv = kv_get(f, key);
    if (!kv || kv->type != GGUF_T_ARRAY || kv->elem_type == GGUF_T_STRING)
        return -1;
    if (elem_type)
        *elem_type = (gguf_vtype)kv->elem_type;
    if (count)
        *count = kv->len;
    if (data)
        *data = kv->data;
    return 0;
}

const gguf_tensor *gguf_tensor_at(const gguf_file *f, size_t i)
{
    return i < f->n_tensors ? &f->tensors[i] : NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name)
{
    if (!f || !name)
        return NULL;
    size_t lo = 0, hi = f->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, f->t_sorted[mid].name);
        if (c == 0)
            return &f->tensors[f->t_sorted[mid].idx];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* ---------------------------------------------------------------- writer */

typedef struct {
    char *key;
    uint32_t type;
    uint8_t *val; /* encoded value after the type field */
    size_t val_len;
} wkv;

typedef struct {
    char *name;
    uint32_t type, n_dims;
    uint64_t ne[GGUF_MAX_DIMS];
    uint64_t n_bytes;
    void *data; /* owned copy, or NULL when fill is used */
    gguf_tensor_fill_fn fill;
    void *ctx;
} wtensor;

struct gguf_writer {
    wkv *kv;
    size_t n_kv, cap_kv;
    wtensor *t;
    size_t n_t, cap_t;
};

gguf_writer *gguf_writer_new(void)
{
    return calloc(1, sizeof(gguf_writer));
}

void gguf_writer_free(gguf_writer *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].val);
    }
    for (size_t i = 0; i < w->n_t; i++) {
        free(w->t[i].name);
        free(w->t[i].data);
    }
    free(w->kv);
    free(w->t);
    free(w);
}

static int grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return 0;
    size_t nc = *cap ? *cap * 2 : 16;
    if (nc > SIZE_MAX / elem)
        return -1;
    void *p = realloc(*arr, nc * elem);
    if (!p)
        return -1;
    *arr = p;
    *cap = nc;
    return 0;
}

/* Takes ownership of val (freed on failure too). */
static int put_kv(gguf_writer *w, const char *key, uint32_t type, uint8_t *val, size_t val_len)
{
    size_t kl = key ? strlen(key) : 0;
    if (!w || kl == 0 || kl > GGUF_MAX_KEY || !val) {
        free(val);
        return -1;
    }
    for (size_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->kv[i].key, key) == 0) {
            free(w->kv[i].val);
            w->kv[i].type = type;
            w->kv[i].val = val;
            w->kv[i].val_len = val_len;
            return 0;
        }
    char *k = strdup(key);
    if (w->n_kv >= GGUF_MAX_KV || !k || grow((void **)&w->kv, &w->cap_kv, w->n_kv, sizeof *w->kv)) {
        free(k);
        free(val);
        return -1;
    }
    w->kv[w->n_kv++] = (wkv){k, type, val, val_len};
    return 0;
}

static int put_scalar(gguf_writer *w, const char *key, uint32_t type, const void *v, size_t n)
{
    uint8_t *b = malloc(n);
    if (b)
        memcpy(b, v, n);
    return put_kv(w, key, type, b, n);
}

int gguf_set_u32(gguf_writer *w, const char *key, uint32_t v) { return put_scalar(w, key, GGUF_T_UINT32, &v, 4); }
int gguf_set_i32(gguf_writer *w, const char *key, int32_t v) { return put_scalar(w, key, GGUF_T_INT32, &v, 4); }
int gguf_set_u64(gguf_writer *w, const char *key, uint64_t v) { return put_scalar(w, key, GGUF_T_UINT64, &v, 8); }
int gguf_set_f32(gguf_writer *w, const char *key, float v) { return put_scalar(w, key, GGUF_T_FLOAT32, &v, 4); }

int gguf_set_bool(gguf_writer *w, const char *key, int v)
{
    uint8_t b = v ? 1 : 0;
    return put_scalar(w, key, GGUF_T_BOOL, &b, 1);
}

int gguf_set_str(gguf_writer *w, const char *key, const char *v)
{
    if (!v)
        return -1;
    uint64_t n = strlen(v);
    if (n > GGUF_MAX_STRING)
        return -1;
    uint8_t *b = malloc(8 + (size_t)n);
    if (!b)
        return -1;
    memcpy(b, &n, 8);
    memcpy(b + 8, v, (size_t)n);
    return put_kv(w, key, GGUF_T_STRING, b, 8 + (size_t)n);
}

static uint8_t *arr_header(uint32_t et, uint64_t n, size_t body, size_t *total)
{
    if (n > GGUF_MAX_ARRAY || body > SIZE_MAX - 12)
        return NULL;
    *total = 12 + body;
    uint8_t *b = malloc(*total);
    if (b) {
        memcpy(b, &et, 4);
        memcpy(b + 4, &n, 8);
    }
    return b;
}

int gguf_set_arr_str(gguf_writer *w, const char *key, const char *const *v, size_t n)
{
    if (!v && n)
        return -1;
    size_t body = 0;
    for (size_t i = 0; i < n; i++) {
        if (!v[i])
            return -1;
        size_t l = strlen(v[i]);
        if (l > GGUF_MAX_STRING || body > SIZE_MAX - 8 - l)
            return -1;
        body += 8 + l;
    }
    size_t total;
    uint8_t *b = arr_header(GGUF_T_STRING, n, body, &total);
    if (!b)
        return -1;
    size_t o = 12;
    for (size_t i = 0; i < n; i++) {
        uint64_t l = strlen(v[i]);
        memcpy(b + o, &l, 8);
        memcpy(b + o + 8, v[i], (size_t)l);
        o += 8 + (size_t)l;
    }
    return put_kv(w, key, GGUF_T_ARRAY, b, total);
}

static int set_arr_num(gguf_writer *w, const char *key, uint32_t et, const void *v, size_t n)
{
    size_t esz = gguf_vtype_size(et);
    if ((!v && n) || n > GGUF_MAX_ARRAY)
        return -1;
    size_t total;
    uint8_t *b = arr_header(et, n, n * esz, &total);
    if (!b)
        return -1;
    if (n)
        memcpy(b + 12, v, n * esz);
    return put_kv(w, key, GGUF_T_ARRAY, b, total);
}

int gguf_set_arr_f32(gguf_writer *w, const char *key, const float *v, size_t n)
{
    return set_arr_num(w, key, GGUF_T_FLOAT32, v, n);
}

int gguf_set_arr_i32(gguf_writer *w, const char *key, const int32_t *v, size_t n)
{
    return set_arr_num(w, key, GGUF_T_INT32, v, n);
}

int gguf_copy_kv(gguf_writer *w, const gguf_file *src, int64_t i)
{
    if (!src || i < 0 || (uint64_t)i >= src->n_kv)
        return -1;
    const gguf_kv *kv = &src->kv[i];
    return put_scalar(w, kv->key, kv->type, src->base + kv->val_off, kv->val_len);
}

static int add_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims, const uint64_t *ne,
                      const void *data, gguf_tensor_fill_fn fill, void *ctx)
{
    if (!w || !name || (!ne && n_dims) || (!data && !fill))
        return -1;
    size_t nl = strlen(name);
    if (nl == 0 || nl >= GGUF_MAX_NAME || w->n_t >= GGUF_MAX_TENSORS)
        return -1;
    wtensor t = {.type = type, .n_dims = n_dims, .fill = fill, .ctx = ctx};
    for (int d = 0; d < GGUF_MAX_DIMS; d++)
        t.ne[d] = (uint32_t)d < n_dims ? ne[d] : 1;
    uint64_t n_elems;
    if (gguf_tensor_geometry(type, n_dims, t.ne, &n_elems, &t.n_bytes, NULL, 0))
        return -1;
    if (t.n_bytes > SIZE_MAX)
        return -1;
    if (grow((void **)&w->t, &w->cap_t, w->n_t, sizeof *w->t))
        return -1;
    t.name = strdup(name);
    if (!t.name)
        return -1;
    if (data) {
        t.data = malloc(t.n_bytes ? (size_t)t.n_bytes : 1);
        if (!t.data) {
            free(t.name);
            return -1;
        }
        memcpy(t.data, data, (size_t)t.n_bytes);
    }
    w->t[w->n_t++] = t;
    return 0;
}

int gguf_add_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims, const uint64_t *ne,
                    const void *data)
{
    return add_tensor(w, name, type, n_dims, ne, data, NULL, NULL);
}

int gguf_add_tensor_fn(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims, const uint64_t *ne,
                       gguf_tensor_fill_fn fill, void *ctx)
{
    return add_tensor(w, name, type, n_dims, ne, NULL, fill, ctx);
}

/* Output sink: a stdio stream or a preallocated memory buffer. */
typedef struct {
    FILE *fp;
    uint8_t *buf;
    size_t len, cap;
    int failed;
} sink;

static void emit(sink *s, const void *p, size_t n)
{
    if (s->failed || n == 0)
        return;
    if (s->fp) {
        if (fwrite(p, 1, n, s->fp) != n)
            s->failed = 1;
        return;
    }
    if (s->cap - s->len < n) {
        s->failed = 1;
        return;
    }
    memcpy(s->buf + s->len, p, n);
    s->len += n;
}

static void emit_zero(sink *s, size_t n)
{
    static const uint8_t zeros[64];
    while (n > 0) {
        size_t k = n < sizeof zeros ? n : sizeof zeros;
        emit(s, zeros, k);
        n -= k;
    }
}

static void emit_u32(sink *s, uint32_t v) { emit(s, &v, 4); }
static void emit_u64(sink *s, uint64_t v) { emit(s, &v, 8); }

static void emit_str(sink *s, const char *str)
{
    uint64_t n = strlen(str);
    emit_u64(s, n);
    emit(s, str, (size_t)n);
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Validates and lays out the file: alignment, tensor offsets, total size. */
static int layout(gguf_writer *w, uint32_t *align_out, uint64_t *offsets, uint64_t *data_start, uint64_t *total,
                  char *err, size_t errlen)
{
    uint32_t A = GGUF_DEFAULT_ALIGNMENT;
    for (size_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->kv[i].key, "general.alignment") == 0) {
            uint32_t a = 0;
            if (w->kv[i].type == GGUF_T_UINT32)
                memcpy(&a, w->kv[i].val, 4);
            if (a < GGUF_MIN_ALIGNMENT || a > GGUF_MAX_ALIGNMENT || (a & (a - 1)) != 0) {
                seterr(err, errlen, "gguf: general.alignment must be a UINT32 power of two in [%d, %d]",
                       GGUF_MIN_ALIGNMENT, GGUF_MAX_ALIGNMENT);
                return -1;
            }
            A = a;
        }
    char **names = malloc((w->n_t ? w->n_t : 1) * sizeof *names);
    if (!names) {
        seterr(err, errlen, "gguf: out of memory");
        return -1;
    }
    for (size_t i = 0; i < w->n_t; i++)
        names[i] = w->t[i].name;
    qsort(names, w->n_t, sizeof *names, cmp_str_ptr);
    for (size_t i = 1; i < w->n_t; i++)
        if (strcmp(names[i - 1], names[i]) == 0) {
            char nb[GGUF_ERR_NAME + 8];
            seterr(err, errlen, "gguf: duplicate tensor name '%s'", san(names[i], strlen(names[i]), nb, sizeof nb));
            free(names);
            return -1;
        }
    free(names);

    /* all sizes below are bounded by the writer's limits, far from 2^64 */
    uint64_t pos = GGUF_HEADER_BYTES;
    for (size_t i = 0; i < w->n_kv; i++)
        pos += 8 + strlen(w->kv[i].key) + 4 + w->kv[i].val_len;
    for (size_t i = 0; i < w->n_t; i++)
        pos += 8 + strlen(w->t[i].name) + 4 + 8ull * w->t[i].n_dims + 4 + 8;
    uint64_t ds = pos + (A - pos % A) % A, off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        offsets[i] = off;
        uint64_t nb = w->t[i].n_bytes;
        uint64_t padded = nb + (A - nb % A) % A;
        if (padded < nb || off > UINT64_MAX - ds - padded) {
            seterr(err, errlen, "gguf: output size overflows");
            return -1;
        }
        off += padded;
    }
    *align_out = A;
    *data_start = ds;
    *total = ds + off;
    return 0;
}

static int emit_all(gguf_writer *w, sink *s, uint32_t A, const uint64_t *offsets, uint64_t ds, char *err,
                    size_t errlen)
{
    emit(s, GGUF_MAGIC, 4);
    emit_u32(s, 3);
    emit_u64(s, w->n_t);
    emit_u64(s, w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++) {
        emit_str(s, w->kv[i].key);
        emit_u32(s, w->kv[i].type);
        emit(s, w->kv[i].val, w->kv[i].val_len);
    }
    uint64_t pos = GGUF_HEADER_BYTES;
    for (size_t i = 0; i < w->n_kv; i++)
        pos += 8 + strlen(w->kv[i].key) + 4 + w->kv[i].val_len;
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        emit_str(s, t->name);
        emit_u32(s, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++)
            emit_u64(s, t->ne[d]);
        emit_u32(s, t->type);
        emit_u64(s, offsets[i]);
        pos += 8 + strlen(t->name) + 4 + 8ull * t->n_dims + 4 + 8;
    }
    emit_zero(s, (size_t)(ds - pos));
    for (size_t i = 0; i < w->n_t && !s->failed; i++) {
        const wtensor *t = &w->t[i];
        size_t nb = (size_t)t->n_bytes;
        if (t->data) {
            emit(s, t->data, nb);
        } else {
            void *tmp = malloc(nb ? nb : 1);
            if (!tmp) {
                seterr(err, errlen, "gguf: out of memory for tensor '%s' (%zu bytes)", t->name, nb);
                return -1;
            }
            if (t->fill(t->ctx, tmp, nb, err, errlen) != 0) {
                free(tmp);
                return -1;
            }
            emit(s, tmp, nb);
            free(tmp);
        }
        emit_zero(s, (size_t)((A - t->n_bytes % A) % A));
    }
    return 0;
}

int gguf_writer_write_buffer(gguf_writer *w, void **out, size_t *out_len, char *err, size_t errlen)
{
    if (!w || !out || !out_len) {
        seterr(err, errlen, "gguf: bad arguments");
        return -1;
    }
    uint64_t *offsets = malloc((w->n_t ? w->n_t : 1) * sizeof *offsets);
    uint32_t A;
    uint64_t ds, total;
    if (!offsets) {
        seterr(err, errlen, "gguf: out of memory");
        return -1;
    }
    if (layout(w, &A, offsets, &ds, &total, err, errlen)) {
        free(offsets);
        return -1;
    }
    if (total > SIZE_MAX) {
        free(offsets);
        seterr(err, errlen, "gguf: output too large for memory");
        return -1;
    }
    sink s = {.buf = malloc((size_t)total), .cap = (size_t)total};
    if (!s.buf) {
        free(offsets);
        seterr(err, errlen, "gguf: out of memory (%llu bytes)", (unsigned long long)total);
        return -1;
    }
    int rc = emit_all(w, &s, A, offsets, ds, err, errlen);
    free(offsets);
    if (rc == 0 && (s.failed || s.len != total)) {
        seterr(err, errlen, "gguf: internal size mismatch writing buffer");
        rc = -1;
    }
    if (rc) {
        free(s.buf);
        return -1;
    }
    *out = s.buf;
    *out_len = s.len;
    return 0;
}

int gguf_writer_write(gguf_writer *w, const char *path, char *err, size_t errlen)
{
    if (!w || !path) {
        seterr(err, errlen, "gguf: bad arguments");
        return -1;
    }
    uint64_t *offsets = malloc((w->n_t ? w->n_t : 1) * sizeof *offsets);
    uint32_t A;
    uint64_t ds, total;
    if (!offsets) {
        seterr(err, errlen, "gguf: out of memory");
        return -1;
    }
    if (layout(w, &A, offsets, &ds, &total, err, errlen)) {
        free(offsets);
        return -1;
    }
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 16);
    if (!tmp) {
        free(offsets);
        seterr(err, errlen, "gguf: out of memory");
        return -1;
    }
    memcpy(tmp, path, pl);
    memcpy(tmp + pl, ".tmp.XXXXXX", 12);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        seterr(err, errlen, "gguf: cannot create '%s': %s", tmp, strerror(errno));
        free(tmp);
        free(offsets);
        return -1;
    }
    (void)fchmod(fd, 0644); /* mkstemp makes 0600; a model file is not secret */
    FILE *fp = fdopen(fd, "wb");
    if (!fp) {
        close(fd);
        unlink(tmp);
        seterr(err, errlen, "gguf: cannot write '%s': %s", tmp, strerror(errno));
        free(tmp);
        free(offsets);
        return -1;
    }
    sink s = {.fp = fp};
    int rc = emit_all(w, &s, A, offsets, ds, err, errlen);
    free(offsets);
    int werr = s.failed ? errno : 0;
    if (fflush(fp) != 0 && !werr)
        werr = errno ? errno : EIO;
    if (fclose(fp) != 0 && !werr)
        werr = errno ? errno : EIO;
    if (rc == 0 && werr) {
        seterr(err, errlen, "gguf: writing '%s' failed: %s", path, strerror(werr));
        rc = -1;
    }
    if (rc == 0 && rename(tmp, path) != 0) {
        seterr(err, errlen, "gguf: cannot rename to '%s': %s", path, strerror(errno));
        rc = -1;
    }
    if (rc)
        unlink(tmp);
    free(tmp);
    return rc;
}
