/* cmd: the `ward` sub-commands. Each takes the arguments after its name
 * (argv[0] is the sub-command name) and returns the process exit status:
 * 0 success, 1 runtime failure, 2 usage error (one clear line on stderr).
 * main.c dispatches to them; each lives in its own cmd_<name>.c. */
#ifndef WARD_CMD_H
#define WARD_CMD_H

int cmd_serve(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_keys(int argc, char **argv);
int cmd_version(int argc, char **argv);

/* Shared by sub-commands that are not built yet: prints one line, returns 2. */
int cmd_not_built(const char *name);

/* True if argv contains -h or --help. */
int cmd_wants_help(int argc, char **argv);

#define WARD_VERSION "0.1.0"

#endif
