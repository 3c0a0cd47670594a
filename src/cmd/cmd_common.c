#include "cmd/cmd.h"

#include <stdio.h>
#include <string.h>

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
        printf("usage: ward version\n\nPrints ward's version.\n");
        return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "ward version: unexpected argument '%s'\n", argv[1]);
        return 2;
    }
    printf("ward %s\n", WARD_VERSION);
    return 0;
}
