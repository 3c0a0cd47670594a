/* chat_template: see chat_template.h. Formats as described in
 * engine-formats.md section 7 (llama.cpp's llama-chat semantics). */
#include "api/chat_template.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "util/buf.h"

static const char *const k_names[CHAT_TMPL_COUNT] = {
    [CHAT_TMPL_CHATML] = "chatml",
    [CHAT_TMPL_LLAMA2] = "llama2",
    [CHAT_TMPL_LLAMA2_SYS] = "llama2-sys",
    [CHAT_TMPL_LLAMA2_SYS_BOS] = "llama2-sys-bos",
    [CHAT_TMPL_LLAMA2_SYS_STRIP] = "llama2-sys-strip",
    [CHAT_TMPL_MISTRAL_V1] = "mistral-v1",
    [CHAT_TMPL_MISTRAL_V3] = "mistral-v3",
    [CHAT_TMPL_MISTRAL_V3_TEKKEN] = "mistral-v3-tekken",
    [CHAT_TMPL_MISTRAL_V7] = "mistral-v7",
    [CHAT_TMPL_MISTRAL_V7_TEKKEN] = "mistral-v7-tekken",
    [CHAT_TMPL_PHI3] = "phi3",
    [CHAT_TMPL_PHI4] = "phi4",
    [CHAT_TMPL_FALCON3] = "falcon3",
    [CHAT_TMPL_ZEPHYR] = "zephyr",
    [CHAT_TMPL_MONARCH] = "monarch",
    [CHAT_TMPL_GEMMA] = "gemma",
    [CHAT_TMPL_ORION] = "orion",
    [CHAT_TMPL_OPENCHAT] = "openchat",
    [CHAT_TMPL_VICUNA] = "vicuna",
    [CHAT_TMPL_VICUNA_ORCA] = "vicuna-orca",
    [CHAT_TMPL_DEEPSEEK] = "deepseek",
    [CHAT_TMPL_COMMAND_R] = "command-r",
    [CHAT_TMPL_LLAMA3] = "llama3",
    [CHAT_TMPL_CHATGLM4] = "chatglm4",
    [CHAT_TMPL_GLMEDGE] = "glmedge",
    [CHAT_TMPL_GRANITE] = "granite",
    [CHAT_TMPL_LLAMA4] = "llama4",
};

const char *chat_template_name(chat_tmpl t)
{
    return (t >= 0 && t < CHAT_TMPL_COUNT) ? k_names[t] : NULL;
}

int chat_template_from_name(const char *name, chat_tmpl *out)
{
    for (int i = 0; name && i < CHAT_TMPL_COUNT; i++) {
        if (strcmp(name, k_names[i]) == 0) {
            *out = (chat_tmpl)i;
            return 0;
        }
    }
    return -1;
}

chat_tmpl chat_template_detect(const char *t)
{
    chat_tmpl named;
    if (!t || !*t)
        return CHAT_TMPL_CHATML;
    if (chat_template_from_name(t, &named) == 0)
        return named;
#define HAS(s) (strstr(t, (s)) != NULL)
    /* Same order as llama.cpp: the first match wins. */
    if (HAS("<|im_start|>"))
        return HAS("<|im_sep|>") ? CHAT_TMPL_PHI4 : CHAT_TMPL_CHATML;
    if (strncmp(t, "mistral", 7) == 0 || HAS("[INST]")) {
        if (HAS("[SYSTEM_PROMPT]"))
            return CHAT_TMPL_MISTRAL_V7;
        if (HAS("' [INST] ' + system_message") || HAS("[AVAILABLE_TOOLS]")) {
            if (HAS(" [INST]"))
                return CHAT_TMPL_MISTRAL_V1;
            if (HAS("\"[INST]\""))
                return CHAT_TMPL_MISTRAL_V3_TEKKEN;
            return CHAT_TMPL_MISTRAL_V3;
        }
        if (HAS("content.strip()"))
            return CHAT_TMPL_LLAMA2_SYS_STRIP;
        if (HAS("bos_token + '[INST]"))
            return CHAT_TMPL_LLAMA2_SYS_BOS;
        if (HAS("<<SYS>>"))
            return CHAT_TMPL_LLAMA2_SYS;
        return CHAT_TMPL_LLAMA2;
    }
    if (HAS("<|assistant|>") && HAS("<|end|>"))
        return CHAT_TMPL_PHI3;
    if (HAS("[gMASK]<sop>"))
        return CHAT_TMPL_CHATGLM4;
    if (HAS("<|assistant|>") && HAS("<|user|>"))
        return HAS("</s>") ? CHAT_TMPL_FALCON3 : CHAT_TMPL_GLMEDGE;
    if (HAS("<|user|>") && HAS("<|endoftext|>"))
        return CHAT_TMPL_ZEPHYR;
    if (HAS("bos_token + message['role']"))
        return CHAT_TMPL_MONARCH;
    if (HAS("<start_of_turn>"))
        return CHAT_TMPL_GEMMA;
    if (HAS("'\\n\\nAssistant: ' + eos_token"))
        return CHAT_TMPL_ORION;
    if (HAS("GPT4 Correct "))
        return CHAT_TMPL_OPENCHAT;
    if (HAS("USER: ") && HAS("ASSISTANT: "))
        return HAS("SYSTEM: ") ? CHAT_TMPL_VICUNA_ORCA : CHAT_TMPL_VICUNA;
    if (HAS("### Instruction:") && HAS("<|EOT|>"))
        return CHAT_TMPL_DEEPSEEK;
    if (HAS("<|START_OF_TURN_TOKEN|>") && HAS("<|USER_TOKEN|>"))
        return CHAT_TMPL_COMMAND_R;
    if (HAS("<|start_header_id|>") && HAS("<|end_header_id|>"))
        return CHAT_TMPL_LLAMA3;
    if (HAS("<|start_of_role|>"))
        return CHAT_TMPL_GRANITE;
    if (HAS("<|header_start|>") && HAS("<|header_end|>"))
        return CHAT_TMPL_LLAMA4;
#undef HAS
    return CHAT_TMPL_UNKNOWN;
}

/* ---- rendering ---- */

/* The renderer's output: util/buf with the template's size limit, plus a
 * flag for a family the renderer does not know. */
typedef struct sbuf { buf b; int unknown; } sbuf;

static void put(sbuf *b, const char *s, size_t n) { buf_put(&b->b, s, n); }

static void puts_(sbuf *b, const char *s) { buf_puts(&b->b, s); }

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

/* Appends s with leading and trailing ASCII whitespace removed. */
static void put_trim(sbuf *b, const char *s)
{
    size_t n = strlen(s);
    while (n && is_space(*s)) {
        s++;
        n--;
    }
    while (n && is_space(s[n - 1]))
        n--;
    put(b, s, n);
}

static int role_is(const chat_msg *m, const char *r) { return strcmp(m->role, r) == 0; }

static void render(sbuf *b, chat_tmpl t, const chat_msg *msgs, size_t n, int add_ass)
{
    switch (t) {
    case CHAT_TMPL_CHATML:
        for (size_t i = 0; i < n; i++) {
            puts_(b, "<|im_start|>"); puts_(b, msgs[i].role); puts_(b, "\n");
            puts_(b, msgs[i].content); puts_(b, "<|im_end|>\n");
        }
        if (add_ass)
            puts_(b, "<|im_start|>assistant\n");
        break;
    case CHAT_TMPL_PHI4:
        for (size_t i = 0; i < n; i++) {
            puts_(b, "<|im_start|>"); puts_(b, msgs[i].role); puts_(b, "<|im_sep|>");
            puts_(b, msgs[i].content); puts_(b, "<|im_end|>");
        }
        if (add_ass)
            puts_(b, "<|im_start|>assistant<|im_sep|>");
        break;
    case CHAT_TMPL_MISTRAL_V7:
    case CHAT_TMPL_MISTRAL_V7_TEKKEN: {
        const char *sp = t == CHAT_TMPL_MISTRAL_V7 ? " " : "";
        for (size_t i = 0; i < n; i++) {
            if (role_is(&msgs[i], "system")) {
                puts_(b, "[SYSTEM_PROMPT]"); puts_(b, sp); puts_(b, msgs[i].content); puts_(b, "[/SYSTEM_PROMPT]");
            } else if (role_is(&msgs[i], "user")) {
                puts_(b, "[INST]"); puts_(b, sp); puts_(b, msgs[i].content); puts_(b, "[/INST]");
            } else {
                puts_(b, sp); puts_(b, msgs[i].content); puts_(b, "</s>");
            }
        }
        break;
    }
    case CHAT_TMPL_MISTRAL_V1:
    case CHAT_TMPL_MISTRAL_V3:
    case CHAT_TMPL_MISTRAL_V3_TEKKEN: {
        const char *lead = t == CHAT_TMPL_MISTRAL_V1 ? " " : "";
        const char *trail = t == CHAT_TMPL_MISTRAL_V3_TEKKEN ? "" : " ";
        int in_turn = 0;
        for (size_t i = 0; i < n; i++) {
            if (!in_turn) {
                puts_(b, lead); puts_(b, "[INST]"); puts_(b, trail);
                in_turn = 1;
            }
            if (role_is(&msgs[i], "system")) {
                puts_(b, msgs[i].content); puts_(b, "\n\n");
            } else if (role_is(&msgs[i], "user")) {
                puts_(b, msgs[i].content); puts_(b, lead); puts_(b, "[/INST]");
            } else {
                puts_(b, trail);
                if (t == CHAT_TMPL_MISTRAL_V3)
                    put_trim(b, msgs[i].content);
                else
                    puts_(b, msgs[i].content);
                puts_(b, "</s>");
                in_turn = 0;
            }
        }
        break;
    }
    case CHAT_TMPL_LLAMA2:
    case CHAT_TMPL_LLAMA2_SYS:
    case CHAT_TMPL_LLAMA2_SYS_BOS:
    case CHAT_TMPL_LLAMA2_SYS_STRIP: {
        int sys = t != CHAT_TMPL_LLAMA2;
        int bos = t == CHAT_TMPL_LLAMA2_SYS_BOS;
        int strip = t == CHAT_TMPL_LLAMA2_SYS_STRIP;
        int in_turn = 1; /* the first [INST] comes without BOS: the tokenizer adds it */
        puts_(b, "[INST] ");
        for (size_t i = 0; i < n; i++) {
            if (!in_turn) {
                in_turn = 1;
                puts_(b, bos ? "<s>[INST] " : "[INST] ");
            }
            if (role_is(&msgs[i], "system")) {
                /* without <<SYS>> support the system text still leads the first turn */
                puts_(b, sys ? "<<SYS>>\n" : "");
                strip ? put_trim(b, msgs[i].content) : puts_(b, msgs[i].content);
                puts_(b, sys ? "\n<</SYS>>\n\n" : "\n");
            } else if (role_is(&msgs[i], "user")) {
                strip ? put_trim(b, msgs[i].content) : puts_(b, msgs[i].content);
                puts_(b, " [/INST]");
            } else {
                strip ? put_trim(b, msgs[i].content) : puts_(b, msgs[i].content);
                puts_(b, "</s>");
                in_turn = 0;
            }
        }
        break;
    }
    case CHAT_TMPL_PHI3:
    case CHAT_TMPL_FALCON3:
    case CHAT_TMPL_ZEPHYR:
    case CHAT_TMPL_GLMEDGE:
    case CHAT_TMPL_CHATGLM4: {
        const char *end = t == CHAT_TMPL_PHI3 ? "<|end|>\n" : t == CHAT_TMPL_FALCON3 ? "\n"
                        : t == CHAT_TMPL_ZEPHYR ? "<|endoftext|>\n" : "";
        if (t == CHAT_TMPL_CHATGLM4)
            puts_(b, "[gMASK]<sop>");
        for (size_t i = 0; i < n; i++) {
            puts_(b, "<|"); puts_(b, msgs[i].role); puts_(b, "|>\n");
            puts_(b, msgs[i].content); puts_(b, end);
        }
        if (add_ass)
            puts_(b, t == CHAT_TMPL_GLMEDGE ? "<|assistant|>" : "<|assistant|>\n");
        break;
    }
    case CHAT_TMPL_MONARCH:
        for (size_t i = 0; i < n; i++) {
            if (i > 0)
                puts_(b, "<s>");
            puts_(b, msgs[i].role); puts_(b, "\n"); puts_(b, msgs[i].content); puts_(b, "</s>\n");
        }
        if (add_ass)
            puts_(b, "<s>assistant\n");
        break;
    case CHAT_TMPL_GEMMA: {
        /* No system role: system text is merged into the next user turn. */
        sbuf sys = {{0}, 0};
        buf_init(&sys.b, CHAT_TEMPLATE_MAX_OUTPUT);
        for (size_t i = 0; i < n; i++) {
            if (role_is(&msgs[i], "system")) {
                put_trim(&sys, msgs[i].content);
                continue;
            }
            int model = role_is(&msgs[i], "assistant");
            puts_(b, "<start_of_turn>"); puts_(b, model ? "model" : msgs[i].role); puts_(b, "\n");
            if (sys.b.len && !model) {
                put(b, sys.b.p, sys.b.len);
                puts_(b, "\n\n");
                sys.b.len = 0; /* keeps a sticky error */
            }
            put_trim(b, msgs[i].content);
            puts_(b, "<end_of_turn>\n");
        }
        if (buf_error(&sys.b) != BUF_OK && buf_error(&b->b) == BUF_OK)
            b->b.err = buf_error(&sys.b);
        buf_free(&sys.b);
        if (add_ass)
            puts_(b, "<start_of_turn>model\n");
        break;
    }
    case CHAT_TMPL_ORION: {
        sbuf sys = {{0}, 0};
        buf_init(&sys.b, CHAT_TEMPLATE_MAX_OUTPUT);
        for (size_t i = 0; i < n; i++) {
            if (role_is(&msgs[i], "system")) {
                puts_(&sys, msgs[i].content);
            } else if (role_is(&msgs[i], "user")) {
                puts_(b, "Human: ");
                if (sys.b.len) {
                    put(b, sys.b.p, sys.b.len);
                    puts_(b, "\n\n");
                    sys.b.len = 0; /* keeps a sticky error */
                }
                puts_(b, msgs[i].content); puts_(b, "\n\nAssistant: </s>");
            } else {
                puts_(b, msgs[i].content); puts_(b, "</s>");
            }
        }
        if (buf_error(&sys.b) != BUF_OK && buf_error(&b->b) == BUF_OK)
            b->b.err = buf_error(&sys.b);
        buf_free(&sys.b);
        break;
    }
    case CHAT_TMPL_OPENCHAT:
        for (size_t i = 0; i < n; i++) {
            if (role_is(&msgs[i], "system")) {
                puts_(b, msgs[i].content);
            } else {
                char role[32];
                snprintf(role, sizeof role, "%s", msgs[i].role);
                if (role[0] >= 'a' && role[0] <= 'z')
                    role[0] = (char)(role[0] - 'a' + 'A');
                puts_(b, "GPT4 Correct "); puts_(b, role); puts_(b, ": "); puts_(b, msgs[i].content);
            }
            puts_(b, "<|end_of_turn|>");
        }
        if (add_ass)
            puts_(b, "GPT4 Correct Assistant:");
        break;
    case CHAT_TMPL_VICUNA:
    case CHAT_TMPL_VICUNA_ORCA:
        for (size_t i = 0; i < n; i++) {
            if (role_is(&msgs[i], "system")) {
                if (t == CHAT_TMPL_VICUNA_ORCA) {
                    puts_(b, "SYSTEM: "); puts_(b, msgs[i].content); puts_(b, "\n");
                } else {
                    puts_(b, msgs[i].content); puts_(b, "\n\n");
                }
            } else if (role_is(&msgs[i], "user")) {
                puts_(b, "USER: "); puts_(b, msgs[i].content); puts_(b, "\n");
            } else {
                puts_(b, "ASSISTANT: "); puts_(b, msgs[i].content); puts_(b, "</s>\n");
            }
        }
        if (add_ass)
            puts_(b, "ASSISTANT:");
        break;
    case CHAT_TMPL_DEEPSEEK:
        for (size_t i = 0; i < n; i++) {
            if (role_is(&msgs[i], "system")) {
                puts_(b, msgs[i].content);
            } else if (role_is(&msgs[i], "user")) {
                puts_(b, "### Instruction:\n"); puts_(b, msgs[i].content); puts_(b, "\n");
            } else {
                puts_(b, "### Response:\n"); puts_(b, msgs[i].content); puts_(b, "\n<|EOT|>\n");
            }
        }
        if (add_ass)
            puts_(b, "### Response:\n");
        break;
    case CHAT_TMPL_COMMAND_R:
        for (size_t i = 0; i < n; i++) {
            const char *tok = role_is(&msgs[i], "system") ? "<|SYSTEM_TOKEN|>"
                            : role_is(&msgs[i], "user")   ? "<|USER_TOKEN|>" : "<|CHATBOT_TOKEN|>";
            puts_(b, "<|START_OF_TURN_TOKEN|>"); puts_(b, tok);
            put_trim(b, msgs[i].content); puts_(b, "<|END_OF_TURN_TOKEN|>");
        }
        if (add_ass)
            puts_(b, "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>");
        break;
    case CHAT_TMPL_LLAMA3:
    case CHAT_TMPL_LLAMA4: {
        int l3 = t == CHAT_TMPL_LLAMA3;
        const char *hs = l3 ? "<|start_header_id|>" : "<|header_start|>";
        const char *he = l3 ? "<|end_header_id|>\n\n" : "<|header_end|>\n\n";
        for (size_t i = 0; i < n; i++) {
            puts_(b, hs); puts_(b, msgs[i].role); puts_(b, he);
            put_trim(b, msgs[i].content); puts_(b, l3 ? "<|eot_id|>" : "<|eot|>");
        }
        if (add_ass) {
            puts_(b, hs); puts_(b, "assistant"); puts_(b, he);
        }
        break;
    }
    case CHAT_TMPL_GRANITE:
        for (size_t i = 0; i < n; i++) {
            puts_(b, "<|start_of_role|>"); puts_(b, msgs[i].role); puts_(b, "<|end_of_role|>");
            puts_(b, msgs[i].content); puts_(b, "<|end_of_text|>\n");
        }
        if (add_ass)
            puts_(b, "<|start_of_role|>assistant<|end_of_role|>\n");
        break;
    case CHAT_TMPL_UNKNOWN:
    case CHAT_TMPL_COUNT:
        b->unknown = 1;
        break;
    }
}

char *chat_template_render(chat_tmpl t, const chat_msg *msgs, size_t n, int add_generation_prompt,
                           int continue_final_message, size_t *out_len, char *err, size_t errlen)
{
    sbuf b = {{0}, 0};
    buf_init(&b.b, CHAT_TEMPLATE_MAX_OUTPUT);
    int cont = continue_final_message && n > 0 && role_is(&msgs[n - 1], "assistant");
    if (cont) {
        /* Open an assistant turn for everything before the last message, then
         * append the last message's text without closing it. */
        render(&b, t, msgs, n - 1, 1);
        puts_(&b, msgs[n - 1].content);
    } else {
        render(&b, t, msgs, n, add_generation_prompt);
    }
    buf_status st = buf_error(&b.b);
    if (b.unknown || st != BUF_OK) {
        snprintf(err, errlen, "%s",
                 b.unknown ? "unknown chat template family"
                 : st == BUF_ETOOBIG ? "rendered chat prompt is too large" : "out of memory");
        buf_free(&b.b);
        return NULL;
    }
    /* An empty rendering is still a prompt: buf_take returns "" then. */
    char *p = buf_take(&b.b, out_len);
    if (!p)
        snprintf(err, errlen, "out of memory");
    return p;
}
