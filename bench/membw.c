/* membw: measures this machine's memory read bandwidth the way decoding
 * reads weights: T threads each stream through their part of one buffer
 * with the widest vector loads the CPU has (AVX-512, else AVX2, else
 * 64-bit words), summing so the loads cannot be dropped.
 *
 * usage: membw [-t THREADS=2] [-s MIB=1024] [-r RUNS=7]
 * Prints the median (and best) of the runs in GB/s (1e9 bytes/s) and,
 * with --json, {"threads":..,"bytes":..,"median_gbs":..,"best_gbs":..}.
 *
 * Standalone on purpose (bench/engine.sh compiles it with cc -O2): no ward
 * code involved, so it measures the machine, not ward. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#define MEMBW_MAX_THREADS 256
#define MEMBW_MAX_RUNS 101
#define MEMBW_MAX_MIB (1 << 20) /* 1 TiB: a typo guard, not a real limit */

typedef struct {
    const uint8_t *p;
    size_t n;
    uint64_t sink;
    int isa; /* 2 avx512, 1 avx2, 0 scalar */
    pthread_barrier_t *start;
} job;

#if defined(__x86_64__)
__attribute__((target("avx512f"))) static uint64_t read_avx512(const uint8_t *p, size_t n)
{
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 256 <= n; i += 256) {
        a0 = _mm512_xor_si512(a0, _mm512_load_si512((const void *)(p + i)));
        a1 = _mm512_xor_si512(a1, _mm512_load_si512((const void *)(p + i + 64)));
        a2 = _mm512_xor_si512(a2, _mm512_load_si512((const void *)(p + i + 128)));
        a3 = _mm512_xor_si512(a3, _mm512_load_si512((const void *)(p + i + 192)));
    }
    a0 = _mm512_xor_si512(_mm512_xor_si512(a0, a1), _mm512_xor_si512(a2, a3));
    uint64_t out[8];
    _mm512_storeu_si512((void *)out, a0);
    return out[0] ^ out[7];
}

__attribute__((target("avx2"))) static uint64_t read_avx2(const uint8_t *p, size_t n)
{
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 128 <= n; i += 128) {
        a0 = _mm256_xor_si256(a0, _mm256_load_si256((const __m256i *)(p + i)));
        a1 = _mm256_xor_si256(a1, _mm256_load_si256((const __m256i *)(p + i + 32)));
        a2 = _mm256_xor_si256(a2, _mm256_load_si256((const __m256i *)(p + i + 64)));
        a3 = _mm256_xor_si256(a3, _mm256_load_si256((const __m256i *)(p + i + 96)));
    }
    a0 = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
    uint64_t out[4];
    _mm256_storeu_si256((__m256i *)out, a0);
    return out[0] ^ out[3];
}
#endif

static uint64_t read_scalar(const uint8_t *p, size_t n)
{
    uint64_t a = 0, b = 0;
    for (size_t i = 0; i + 16 <= n; i += 16) {
        uint64_t x, y;
        memcpy(&x, p + i, 8);
        memcpy(&y, p + i + 8, 8);
        a ^= x;
        b ^= y;
    }
    return a ^ b;
}

static void *run_job(void *arg)
{
    job *j = arg;
    pthread_barrier_wait(j->start);
#if defined(__x86_64__)
    if (j->isa == 2)
        j->sink = read_avx512(j->p, j->n);
    else if (j->isa == 1)
        j->sink = read_avx2(j->p, j->n);
    else
#endif
        j->sink = read_scalar(j->p, j->n);
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int arg_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    long threads = 2, mib = 1024, runs = 7;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        int bad = 0;
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc)
            bad = arg_int(argv[++i], 1, MEMBW_MAX_THREADS, &threads);
        else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc)
            bad = arg_int(argv[++i], 1, MEMBW_MAX_MIB, &mib);
        else if (strcmp(argv[i], "-r") == 0 && i + 1 < argc)
            bad = arg_int(argv[++i], 1, MEMBW_MAX_RUNS, &runs);
        else
            bad = 1;
        if (bad) {
            fprintf(stderr, "usage: membw [-t THREADS] [-s MIB] [-r RUNS] [--json]\n");
            return 2;
        }
    }
    int isa = 0;
#if defined(__x86_64__)
    __builtin_cpu_init();
    isa = __builtin_cpu_supports("avx512f") ? 2 : __builtin_cpu_supports("avx2") ? 1 : 0;
#endif
    const size_t bytes = (size_t)mib << 20;
    uint8_t *buf = aligned_alloc(4096, bytes);
    if (!buf) {
        fprintf(stderr, "membw: cannot allocate %ld MiB\n", mib);
        return 1;
    }
    for (size_t i = 0; i < bytes; i += 64) /* commit every page, non-zero */
        buf[i] = (uint8_t)(i >> 6);

    /* Each thread's part is a multiple of 256 bytes (the unrolled loop). */
    const size_t part = bytes / (size_t)threads / 256 * 256;
    job jobs[MEMBW_MAX_THREADS];
    pthread_t tid[MEMBW_MAX_THREADS];
    double gbs[MEMBW_MAX_RUNS];
    uint64_t sink = 0;
    for (long r = 0; r < runs; r++) {
        pthread_barrier_t start;
        pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
        for (long t = 0; t < threads; t++) {
            jobs[t] = (job){buf + (size_t)t * part, part, 0, isa, &start};
            if (pthread_create(&tid[t], NULL, run_job, &jobs[t]) != 0) {
                fprintf(stderr, "membw: cannot start thread\n");
                return 1;
            }
        }
        double t0 = now_s();
        pthread_barrier_wait(&start);
        for (long t = 0; t < threads; t++) {
            pthread_join(tid[t], NULL);
            sink ^= jobs[t].sink;
        }
        double t1 = now_s();
        pthread_barrier_destroy(&start);
        gbs[r] = (double)part * (double)threads / (t1 - t0) / 1e9;
    }
    qsort(gbs, (size_t)runs, sizeof gbs[0], cmp_d);
    double med = runs % 2 ? gbs[runs / 2] : 0.5 * (gbs[runs / 2 - 1] + gbs[runs / 2]);
    const char *isa_name = isa == 2 ? "avx512" : isa == 1 ? "avx2" : "scalar";
    if (json)
        printf("{\"threads\":%ld,\"bytes\":%zu,\"isa\":\"%s\",\"median_gbs\":%.2f,\"best_gbs\":%.2f,\"sink\":%u}\n",
               threads, part * (size_t)threads, isa_name, med, gbs[runs - 1], (unsigned)(sink & 1));
    else
        printf("read bandwidth: %.2f GB/s median, %.2f best (%ld threads, %ld MiB, %s loads, %ld runs)\n", med,
               gbs[runs - 1], threads, mib, isa_name, runs);
    free(buf);
    return 0;
}
