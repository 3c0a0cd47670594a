/* cpu: CPUID/XGETBV feature detection and the kernels' dispatch level. */
#include "engine/cpu.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define CPU_X86 1
#else
#define CPU_X86 0
#endif

#define CPU_FEATURES_STR_MAX 256 /* fits every feature name below */

static cpu_features g_feat;
static cpu_level g_detected = CPU_LEVEL_SCALAR;
static _Atomic int g_level = CPU_LEVEL_SCALAR;
static char g_feat_str[CPU_FEATURES_STR_MAX];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

#if CPU_X86
static unsigned long long xgetbv0(void)
{
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

static void detect_x86(cpu_features *f)
{
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return;
    const int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    const int fma = (c >> 12) & 1, f16c = (c >> 29) & 1;
    if (!osxsave || !avx)
        return;
    const unsigned long long xcr0 = xgetbv0();
    const int ymm_ok = (xcr0 & 0x6) == 0x6;      /* SSE + AVX state */
    const int zmm_ok = (xcr0 & 0xe6) == 0xe6;    /* + opmask, ZMM_Hi256, Hi16_ZMM */
    if (!ymm_ok)
        return;
    f->fma = fma;
    f->f16c = f16c;
    unsigned int max_leaf = __get_cpuid_max(0, NULL);
    if (max_leaf < 7)
        return;
    __cpuid_count(7, 0, a, b, c, d);
    f->avx2 = (b >> 5) & 1;
    if (zmm_ok) {
        f->avx512f = (b >> 16) & 1;
        f->avx512dq = (b >> 17) & 1;
        f->avx512bw = (b >> 30) & 1;
        f->avx512vl = (b >> 31) & 1;
        f->avx512_vbmi = (c >> 1) & 1;
        f->avx512_vnni = (c >> 11) & 1;
    }
    unsigned int a1, b1, c1, d1;
    __cpuid_count(7, 1, a1, b1, c1, d1);
    f->avx_vnni = (a1 >> 4) & 1;
    if (zmm_ok)
        f->avx512_bf16 = (a1 >> 5) & 1;
}
#endif

static void append(const char *name, int on)
{
    if (!on)
        return;
    size_t len = strlen(g_feat_str);
    snprintf(g_feat_str + len, sizeof g_feat_str - len, "%s%s", len ? " " : "", name);
}

static void init_once(void)
{
#if CPU_X86
    detect_x86(&g_feat);
#endif
    const cpu_features *f = &g_feat;
    if (f->avx2 && f->fma && f->f16c) {
        g_detected = CPU_LEVEL_AVX2;
        if (f->avx512f && f->avx512bw && f->avx512vl && f->avx512dq)
            g_detected = CPU_LEVEL_AVX512;
    }
    append("avx2", f->avx2);
    append("fma", f->fma);
    append("f16c", f->f16c);
    append("avx512f", f->avx512f);
    append("avx512bw", f->avx512bw);
    append("avx512vl", f->avx512vl);
    append("avx512dq", f->avx512dq);
    append("avx512_vnni", f->avx512_vnni);
    append("avx_vnni", f->avx_vnni);
    append("avx512_bf16", f->avx512_bf16);
    append("avx512_vbmi", f->avx512_vbmi);

    cpu_level lvl = g_detected;
    const char *env = getenv("WARD_CPU_LEVEL");
    cpu_level want;
    if (env && cpu_level_parse(env, &want) == 0 && want <= g_detected)
        lvl = want;
    atomic_store(&g_level, (int)lvl);
}

const cpu_features *cpu_get_features(void)
{
    pthread_once(&g_once, init_once);
    return &g_feat;
}

cpu_level cpu_detected_level(void)
{
    pthread_once(&g_once, init_once);
    return g_detected;
}

cpu_level cpu_get_level(void)
{
    pthread_once(&g_once, init_once);
    return (cpu_level)atomic_load_explicit(&g_level, memory_order_relaxed);
}

int cpu_set_level(cpu_level level)
{
    pthread_once(&g_once, init_once);
    if ((int)level < 0 || level > g_detected)
        return -1;
    atomic_store(&g_level, (int)level);
    return 0;
}

static const char *const LEVEL_NAMES[CPU_LEVEL_COUNT] = {"scalar", "avx2", "avx512"};

const char *cpu_level_name(cpu_level level)
{
    return (int)level >= 0 && (int)level < CPU_LEVEL_COUNT ? LEVEL_NAMES[level] : "?";
}

int cpu_level_parse(const char *name, cpu_level *out)
{
    for (int i = 0; i < CPU_LEVEL_COUNT; i++)
        if (name && strcmp(name, LEVEL_NAMES[i]) == 0) {
            *out = (cpu_level)i;
            return 0;
        }
    return -1;
}

const char *cpu_features_string(void)
{
    pthread_once(&g_once, init_once);
    return g_feat_str;
}
