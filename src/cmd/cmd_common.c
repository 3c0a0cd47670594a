#include "cmd/cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cpu.h"
#include "engine/gguf.h"
#include "engine/kern.h"

int cmd_not_built(const char *name)
{
    fprintf(stderr, "ward %s: not built yet\n", name);
    return 2;
}

int cmd_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return 1;
    return 0;
}

int cmd_version(int argc, char **argv)
{
    if (cmd_wants_help(argc, argv)) {
        printf("usage: ward version\n\nPrints ward's version, the CPU kernel level and features, the weight\n"
               "types computed on 8-bit activations and those packed at load.\n");
        return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "ward version: unexpected argument '%s'\n", argv[1]);
        return 2;
    }
    printf("ward %s\n", WARD_VERSION);
    /* What the kernels will do on this machine (tests and bug reports read it). */
    const kern_ops *k = kern_get();
    printf("cpu: %s (%s)\n", cpu_level_name(k->level), cpu_features_string());
    static const struct { uint32_t type; const char *name; } types[] = {
        {GGML_T_F16, "f16"}, {GGML_T_Q8_0, "q8_0"}, {GGML_T_Q4_0, "q4_0"}, {GGML_T_Q4_1, "q4_1"},
        {GGML_T_Q5_0, "q5_0"}, {GGML_T_Q4_K, "q4_k"}, {GGML_T_Q5_K, "q5_k"}, {GGML_T_Q6_K, "q6_k"}};
    const char *env = getenv("WARD_REPACK");
    const int repack = !(env && strcmp(env, "0") == 0);
    int packs[sizeof types / sizeof types[0]];
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        packs[i] = repack && kern_pack_usable(k, types[i].type) && kern_pack_supported(types[i].type, 256, KERN_PACK_ROWS);
    printf("8-bit activations:");
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (kern_has_q8(k, types[i].type) || (types[i].type != GGML_T_F16 && packs[i]))
            printf(" %s", types[i].name);
    printf("\npacked weights:");
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (packs[i])
            printf(" %s", types[i].name);
    printf("\n");
    return 0;
}
