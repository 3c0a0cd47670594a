/* chat_template: turn chat messages into a prompt string without a Jinja
 * engine, by recognising the template family from the model's
 * tokenizer.chat_template the way llama.cpp does (substring checks in a fixed
 * order; reference engine-formats.md section 7), then rendering that family's
 * format. Unknown templates fall back to ChatML (llama.cpp's server does the
 * same), which the caller decides by checking for CHAT_TMPL_UNKNOWN.
 *
 * Ownership: chat_template_render() returns a malloc'd NUL-terminated string
 * the caller frees. Inputs are only read during the call.
 */
#ifndef WARD_CHAT_TEMPLATE_H
#define WARD_CHAT_TEMPLATE_H

#include <stddef.h>

#define CHAT_TEMPLATE_MAX_OUTPUT (64u * 1024 * 1024) /* far above any context; refuses runaway sizes */

typedef enum {
    CHAT_TMPL_UNKNOWN = -1,
    CHAT_TMPL_CHATML = 0,
    CHAT_TMPL_LLAMA2,
    CHAT_TMPL_LLAMA2_SYS,
    CHAT_TMPL_LLAMA2_SYS_BOS,
    CHAT_TMPL_LLAMA2_SYS_STRIP,
    CHAT_TMPL_MISTRAL_V1,
    CHAT_TMPL_MISTRAL_V3,
    CHAT_TMPL_MISTRAL_V3_TEKKEN,
    CHAT_TMPL_MISTRAL_V7,
    CHAT_TMPL_MISTRAL_V7_TEKKEN,
    CHAT_TMPL_PHI3,
    CHAT_TMPL_PHI4,
    CHAT_TMPL_FALCON3,
    CHAT_TMPL_ZEPHYR,
    CHAT_TMPL_MONARCH,
    CHAT_TMPL_GEMMA,
    CHAT_TMPL_ORION,
    CHAT_TMPL_OPENCHAT,
    CHAT_TMPL_VICUNA,
    CHAT_TMPL_VICUNA_ORCA,
    CHAT_TMPL_DEEPSEEK,
    CHAT_TMPL_COMMAND_R,
    CHAT_TMPL_LLAMA3,
    CHAT_TMPL_CHATGLM4,
    CHAT_TMPL_GLMEDGE,
    CHAT_TMPL_GRANITE,
    CHAT_TMPL_LLAMA4,
    CHAT_TMPL_COUNT
} chat_tmpl;

typedef struct chat_msg {
    const char *role;      /* "system", "user", "assistant" */
    const char *content;
} chat_msg;

/* NULL or empty -> CHATML; a family name ("llama3") -> that family; else
 * llama.cpp's substring detection; no match -> CHAT_TMPL_UNKNOWN. */
chat_tmpl chat_template_detect(const char *tmpl);
/* "chatml", "llama2-sys", "llama3", ... ; NULL for UNKNOWN. */
const char *chat_template_name(chat_tmpl t);
/* Name -> family; -1 if unknown. */
int chat_template_from_name(const char *name, chat_tmpl *out);

/* Renders msgs. add_generation_prompt appends the assistant turn opener.
 * continue_final_message leaves the last (assistant) message open so that the
 * model continues it (add_generation_prompt must then be 0). Returns NULL with
 * err filled on an unknown family or an output over CHAT_TEMPLATE_MAX_OUTPUT. */
char *chat_template_render(chat_tmpl t, const chat_msg *msgs, size_t n, int add_generation_prompt,
                           int continue_final_message, size_t *out_len, char *err, size_t errlen);

#endif
