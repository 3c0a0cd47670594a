#include "cmd/cmd.h"

#include <stdio.h>

int cmd_bench(int argc, char **argv)
{
    if (cmd_wants_help(argc, argv)) {
        printf("usage: ward bench ...\n\nNot built yet.\n");
        return 0;
    }
    return cmd_not_built("bench");
}
