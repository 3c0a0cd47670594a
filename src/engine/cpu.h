/* cpu: run-time detection of the x86-64 vector extensions the kernels use,
 * and the ISA level the kernels dispatch on.
 *
 * Detection reads CPUID and, for AVX/AVX-512, XGETBV (the OS must save the
 * wider registers, or using them faults). It runs once, on first use, and is
 * thread-safe. On non-x86 hosts every feature reads as absent and the level
 * is CPU_LEVEL_SCALAR.
 *
 * Override: cpu_set_level() (tests, benchmarks) or the environment variable
 * WARD_CPU_LEVEL=scalar|avx2|avx512 read at first use. A level above what the
 * CPU supports is refused (it would fault), never silently granted.
 */
#ifndef WARD_CPU_H
#define WARD_CPU_H

typedef enum {
    CPU_LEVEL_SCALAR = 0, /* portable C: the reference */
    CPU_LEVEL_AVX2 = 1,   /* AVX2 + FMA + F16C (Haswell, Zen 1 and later) */
    CPU_LEVEL_AVX512 = 2, /* AVX2 level + AVX-512 F/BW/VL/DQ (Skylake-X, Zen 4 and later) */
} cpu_level;

#define CPU_LEVEL_COUNT 3

typedef struct {
    int avx2, fma, f16c;
    int avx512f, avx512bw, avx512vl, avx512dq;
    int avx512_vnni, avx_vnni, avx512_bf16, avx512_vbmi;
} cpu_features;

/* Features of this CPU (as usable under this OS). Never NULL; static storage. */
const cpu_features *cpu_get_features(void);

/* Highest level this CPU supports. */
cpu_level cpu_detected_level(void);

/* Level the kernels use now: the detected one unless overridden. */
cpu_level cpu_get_level(void);

/* Forces the kernels' level (<= cpu_detected_level()). Returns 0, or -1 if the
 * CPU cannot run that level (nothing changes). Not meant to be called while
 * kernels run on other threads (they may pick either level for a call). */
int cpu_set_level(cpu_level level);

/* "scalar", "avx2", "avx512"; "?" for anything else. */
const char *cpu_level_name(cpu_level level);

/* Parses a level name as above; 0 and *out set, or -1. */
int cpu_level_parse(const char *name, cpu_level *out);

/* Space-separated list of detected features, for logs and bench output. */
const char *cpu_features_string(void);

#endif
