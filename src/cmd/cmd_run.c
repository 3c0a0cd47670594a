#include "cmd/cmd.h"

#include <stdio.h>

int cmd_run(int argc, char **argv)
{
    if (cmd_wants_help(argc, argv)) {
        printf("usage: ward run ...\n\nNot built yet.\n");
        return 0;
    }
    return cmd_not_built("run");
}
