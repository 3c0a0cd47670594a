/* ward tokenize: text -> token ids with a model's (or vocab-only GGUF's)
 * tokenizer. Loads only the tokenizer keys, never the weights. */
#include "cmd/cmd.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/gguf.h"
#include "engine/tokenizer.h"

/* Longest line accepted in --jsonl mode: one JSON-encoded text of at most
 * TOKENIZER_MAX_INPUT bytes can be up to 6x longer when \u-escaped. */
#define TOKENIZE_MAX_LINE ((size_t)TOKENIZER_MAX_INPUT * 6 + 16)

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ward tokenize --model FILE [--no-special] [--pieces]\n"
            "                     (--text STR | --file PATH | --jsonl) [--json]\n"
            "\n"
            "Prints the token ids of a text, space-separated, or as one JSON array\n"
            "with --json. --no-special adds no BOS/EOS and leaves control tokens\n"
            "written in the text unparsed (llama.cpp's tokenizer-test convention).\n"
            "--jsonl reads one JSON string per stdin line and prints one JSON array\n"
            "per line (for batch tests). --pieces prints each id with its text.\n"
            "The model may be a vocabulary-only GGUF file.\n");
}

static int read_file(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "ward tokenize: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n == cap) {
            if (cap > TOKENIZER_MAX_INPUT) {
                fprintf(stderr, "ward tokenize: %s is larger than %u bytes\n", path, TOKENIZER_MAX_INPUT);
                free(buf);
                fclose(f);
                return -1;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t k = fread(buf + n, 1, cap - n, f);
        n += k;
        if (k == 0)
            break;
    }
    int bad = !buf || ferror(f);
    fclose(f);
    if (bad) {
        fprintf(stderr, "ward tokenize: cannot read %s\n", path);
        free(buf);
        return -1;
    }
    if (n > TOKENIZER_MAX_INPUT) {
        fprintf(stderr, "ward tokenize: %s is larger than %u bytes\n", path, TOKENIZER_MAX_INPUT);
        free(buf);
        return -1;
    }
    *out = buf;
    *len = n;
    return 0;
}

static int print_ids(const tokenizer *tok, const int32_t *ids, size_t n, int json, int pieces)
{
    if (pieces) {
        for (size_t i = 0; i < n; i++) {
            char buf[TOKENIZER_MAX_TOKEN_BYTES];
            int k = tokenizer_token_to_piece(tok, ids[i], 1, buf, sizeof buf);
            json_t *s = json_stringn_nocheck(buf, k > 0 ? (size_t)k : 0);
            char *enc = s ? json_dumps(s, JSON_ENCODE_ANY | JSON_ENSURE_ASCII) : NULL;
            printf("%6d -> %s\n", ids[i], enc ? enc : "?");
            free(enc);
            json_decref(s);
        }
        return 0;
    }
    if (json) {
        putchar('[');
        for (size_t i = 0; i < n; i++)
            printf(i ? ", %d" : "%d", ids[i]);
        puts("]");
    } else {
        for (size_t i = 0; i < n; i++)
            printf(i ? " %d" : "%d", ids[i]);
        putchar('\n');
    }
    return 0;
}

static int run_jsonl(const tokenizer *tok, int special)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int rc = 0;
    size_t lineno = 0;
    while ((got = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        if ((size_t)got > TOKENIZE_MAX_LINE) {
            fprintf(stderr, "ward tokenize: line %zu is too long\n", lineno);
            rc = 1;
            break;
        }
        json_error_t jerr;
        json_t *v = json_loadb(line, (size_t)got, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        if (!v || !json_is_string(v)) {
            fprintf(stderr, "ward tokenize: line %zu is not a JSON string\n", lineno);
            json_decref(v);
            rc = 1;
            break;
        }
        int32_t *ids;
        size_t n;
        char err[256];
        if (tokenizer_encode_alloc(tok, json_string_value(v), json_string_length(v), special, special,
                                   &ids, &n, err, sizeof err) != 0) {
            fprintf(stderr, "ward tokenize: line %zu: %s\n", lineno, err);
            json_decref(v);
            rc = 1;
            break;
        }
        print_ids(tok, ids, n, 1, 0);
        free(ids);
        json_decref(v);
    }
    free(line);
    if (fflush(stdout) != 0)
        rc = 1;
    return rc;
}

int cmd_tokenize(int argc, char **argv)
{
    if (cmd_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const char *model = NULL, *text = NULL, *file = NULL;
    int special = 1, json = 0, jsonl = 0, pieces = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_val = i + 1 < argc;
        if (strcmp(a, "--model") == 0 && has_val)
            model = argv[++i];
        else if (strcmp(a, "--text") == 0 && has_val)
            text = argv[++i];
        else if (strcmp(a, "--file") == 0 && has_val)
            file = argv[++i];
        else if (strcmp(a, "--no-special") == 0)
            special = 0;
        else if (strcmp(a, "--json") == 0)
            json = 1;
        else if (strcmp(a, "--jsonl") == 0)
            jsonl = 1;
        else if (strcmp(a, "--pieces") == 0)
            pieces = 1;
        else {
            fprintf(stderr, "ward tokenize: unknown or incomplete argument '%s' (see --help)\n", a);
            return 2;
        }
    }
    if (!model) {
        fprintf(stderr, "ward tokenize: --model is required (see --help)\n");
        return 2;
    }
    if ((text != NULL) + (file != NULL) + jsonl != 1) {
        fprintf(stderr, "ward tokenize: give exactly one of --text, --file, --jsonl\n");
        return 2;
    }

    char err[512];
    gguf_file *g = gguf_open(model, err, sizeof err);
    if (!g) {
        fprintf(stderr, "ward tokenize: %s\n", err);
        return 1;
    }
    tokenizer *tok = tokenizer_from_gguf(g, err, sizeof err);
    gguf_close(g);
    if (!tok) {
        fprintf(stderr, "ward tokenize: %s\n", err);
        return 1;
    }

    int rc = 0;
    if (jsonl) {
        rc = run_jsonl(tok, special);
    } else {
        char *buf = NULL;
        size_t len = 0;
        if (file) {
            if (read_file(file, &buf, &len) != 0)
                rc = 1;
        } else {
            len = strlen(text);
        }
        if (rc == 0) {
            int32_t *ids;
            size_t n;
            if (tokenizer_encode_alloc(tok, file ? buf : text, len, special, special, &ids, &n, err,
                                       sizeof err) != 0) {
                fprintf(stderr, "ward tokenize: %s\n", err);
                rc = 1;
            } else {
                print_ids(tok, ids, n, json, pieces);
                free(ids);
                if (fflush(stdout) != 0)
                    rc = 1;
            }
        }
        free(buf);
    }
    tokenizer_free(tok);
    return rc;
}
