/* Unit tests for chat_template: family detection (llama.cpp's order) and
 * renderings of the reference's fixed 6-message conversation
 * (engine-formats.md section 7.3). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/chat_template.h"

static const chat_msg CONV[] = {
    {"system", "You are a helpful assistant"},
    {"user", "Hello"},
    {"assistant", "Hi there"},
    {"user", "Who are you"},
    {"assistant", "   I am an assistant   "},
    {"user", "Another question"},
};
#define NCONV (sizeof CONV / sizeof CONV[0])

static void expect_render(chat_tmpl t, int add, const char *want)
{
    char err[128] = "";
    size_t len = 0;
    char *s = chat_template_render(t, CONV, NCONV, add, 0, &len, err, sizeof err);
    assert_non_null(s);
    if (strcmp(s, want) != 0)
        fail_msg("template %s:\n got  [%s]\n want [%s]", chat_template_name(t), s, want);
    assert_int_equal(len, strlen(want));
    free(s);
}

static void test_detect(void **state)
{
    (void)state;
    static const struct { const char *tmpl; chat_tmpl want; } cases[] = {
        {NULL, CHAT_TMPL_CHATML},
        {"", CHAT_TMPL_CHATML},
        {"llama3", CHAT_TMPL_LLAMA3},
        {"{{'<|im_start|>' + message['role'] + '\\n'}}", CHAT_TMPL_CHATML},
        {"<|im_start|>{{role}}<|im_sep|>", CHAT_TMPL_PHI4},
        {"{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' %}", CHAT_TMPL_LLAMA3},
        {"{{ '[INST] ' + message['content'] + ' [/INST]' }}", CHAT_TMPL_LLAMA2},
        {"{{ '[INST] <<SYS>>\\n' }}", CHAT_TMPL_LLAMA2_SYS},
        {"{{ bos_token + '[INST] ' }} <<SYS>>", CHAT_TMPL_LLAMA2_SYS_BOS},
        {"[INST] {{ content.strip() }} <<SYS>>", CHAT_TMPL_LLAMA2_SYS_STRIP},
        {"{{ ' [INST] ' + system_message }}", CHAT_TMPL_MISTRAL_V1},
        {"[AVAILABLE_TOOLS] {{ '[INST]' }}", CHAT_TMPL_MISTRAL_V3},
        {"[AVAILABLE_TOOLS] {{ \"[INST]\" }}", CHAT_TMPL_MISTRAL_V3_TEKKEN},
        {"[SYSTEM_PROMPT] [INST]", CHAT_TMPL_MISTRAL_V7},
        {"mistral", CHAT_TMPL_LLAMA2},
        {"<|user|>\n{{ content }}<|end|>\n<|assistant|>", CHAT_TMPL_PHI3},
        {"<|user|>{{x}}<|endoftext|>", CHAT_TMPL_ZEPHYR},
        {"<|user|>{{x}}</s><|assistant|>", CHAT_TMPL_FALCON3},
        {"<|user|>{{x}}{{ eos_token }}<|assistant|>", CHAT_TMPL_GLMEDGE}, /* TinyLlama: see reference 7.4 */
        {"<start_of_turn>user", CHAT_TMPL_GEMMA},
        {"{{bos_token + message['role'] + '\\n'}}", CHAT_TMPL_MONARCH},
        {"USER: {{x}} ASSISTANT: ", CHAT_TMPL_VICUNA},
        {"SYSTEM: USER: ASSISTANT: ", CHAT_TMPL_VICUNA_ORCA},
        {"### Instruction: <|EOT|>", CHAT_TMPL_DEEPSEEK},
        {"<|START_OF_TURN_TOKEN|><|USER_TOKEN|>", CHAT_TMPL_COMMAND_R},
        {"<|start_of_role|>", CHAT_TMPL_GRANITE},
        {"{% for m in messages %}{{ m.content }}{% endfor %}", CHAT_TMPL_UNKNOWN},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        chat_tmpl got = chat_template_detect(cases[i].tmpl);
        if (got != cases[i].want)
            fail_msg("case %zu: got %d want %d", i, got, cases[i].want);
    }
    chat_tmpl t;
    assert_int_equal(chat_template_from_name("gemma", &t), 0);
    assert_int_equal(t, CHAT_TMPL_GEMMA);
    assert_int_equal(chat_template_from_name("nope", &t), -1);
    assert_null(chat_template_name(CHAT_TMPL_UNKNOWN));
    for (int i = 0; i < CHAT_TMPL_COUNT; i++)
        assert_non_null(chat_template_name((chat_tmpl)i));
}

static void test_renderings(void **state)
{
    (void)state;
    expect_render(CHAT_TMPL_CHATML, 1,
                  "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
                  "<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\nWho are you<|im_end|>\n"
                  "<|im_start|>assistant\n   I am an assistant   <|im_end|>\n<|im_start|>user\nAnother question<|im_end|>\n"
                  "<|im_start|>assistant\n");
    expect_render(CHAT_TMPL_LLAMA2, 1,
                  "[INST] You are a helpful assistant\nHello [/INST]Hi there</s>[INST] Who are you [/INST]   I am an "
                  "assistant   </s>[INST] Another question [/INST]");
    expect_render(CHAT_TMPL_LLAMA2_SYS_BOS, 1,
                  "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s><s>[INST] Who are "
                  "you [/INST]   I am an assistant   </s><s>[INST] Another question [/INST]");
    expect_render(CHAT_TMPL_LLAMA2_SYS_STRIP, 1,
                  "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s>[INST] Who are you "
                  "[/INST]I am an assistant</s>[INST] Another question [/INST]");
    expect_render(CHAT_TMPL_LLAMA3, 1,
                  "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|>"
                  "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|>"
                  "<|start_header_id|>user<|end_header_id|>\n\nWho are you<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\nI am an assistant<|eot_id|>"
                  "<|start_header_id|>user<|end_header_id|>\n\nAnother question<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\n");
    expect_render(CHAT_TMPL_ZEPHYR, 1,
                  "<|system|>\nYou are a helpful assistant<|endoftext|>\n<|user|>\nHello<|endoftext|>\n"
                  "<|assistant|>\nHi there<|endoftext|>\n<|user|>\nWho are you<|endoftext|>\n"
                  "<|assistant|>\n   I am an assistant   <|endoftext|>\n<|user|>\nAnother question<|endoftext|>\n"
                  "<|assistant|>\n");
    expect_render(CHAT_TMPL_PHI3, 1,
                  "<|system|>\nYou are a helpful assistant<|end|>\n<|user|>\nHello<|end|>\n<|assistant|>\nHi there<|end|>\n"
                  "<|user|>\nWho are you<|end|>\n<|assistant|>\n   I am an assistant   <|end|>\n<|user|>\nAnother "
                  "question<|end|>\n<|assistant|>\n");
    expect_render(CHAT_TMPL_GEMMA, 1,
                  "<start_of_turn>user\nYou are a helpful assistant\n\nHello<end_of_turn>\n<start_of_turn>model\nHi "
                  "there<end_of_turn>\n<start_of_turn>user\nWho are you<end_of_turn>\n<start_of_turn>model\nI am an "
                  "assistant<end_of_turn>\n<start_of_turn>user\nAnother question<end_of_turn>\n<start_of_turn>model\n");
    expect_render(CHAT_TMPL_MISTRAL_V7, 1,
                  "[SYSTEM_PROMPT] You are a helpful assistant[/SYSTEM_PROMPT][INST] Hello[/INST] Hi there</s>[INST] Who "
                  "are you[/INST]    I am an assistant   </s>[INST] Another question[/INST]");
    expect_render(CHAT_TMPL_MISTRAL_V3, 1,
                  "[INST] You are a helpful assistant\n\nHello[/INST] Hi there</s>[INST] Who are you[/INST] I am an "
                  "assistant</s>[INST] Another question[/INST]");
    expect_render(CHAT_TMPL_MISTRAL_V1, 1,
                  " [INST] You are a helpful assistant\n\nHello [/INST] Hi there</s> [INST] Who are you [/INST]    I am "
                  "an assistant   </s> [INST] Another question [/INST]");
    expect_render(CHAT_TMPL_MONARCH, 1,
                  "system\nYou are a helpful assistant</s>\n<s>user\nHello</s>\n<s>assistant\nHi there</s>\n<s>user\nWho "
                  "are you</s>\n<s>assistant\n   I am an assistant   </s>\n<s>user\nAnother question</s>\n<s>assistant\n");
    expect_render(CHAT_TMPL_VICUNA, 1,
                  "You are a helpful assistant\n\nUSER: Hello\nASSISTANT: Hi there</s>\nUSER: Who are you\nASSISTANT:    "
                  "I am an assistant   </s>\nUSER: Another question\nASSISTANT:");
    expect_render(CHAT_TMPL_COMMAND_R, 1,
                  "<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>You are a helpful assistant<|END_OF_TURN_TOKEN|>"
                  "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>Hello<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>"
                  "Hi there<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|USER_TOKEN|>Who are you<|END_OF_TURN_TOKEN|>"
                  "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>I am an assistant<|END_OF_TURN_TOKEN|>"
                  "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>Another question<|END_OF_TURN_TOKEN|>"
                  "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>");
    expect_render(CHAT_TMPL_DEEPSEEK, 1,
                  "You are a helpful assistant### Instruction:\nHello\n### Response:\nHi there\n<|EOT|>\n### "
                  "Instruction:\nWho are you\n### Response:\n   I am an assistant   \n<|EOT|>\n### Instruction:\nAnother "
                  "question\n### Response:\n");
    expect_render(CHAT_TMPL_OPENCHAT, 1,
                  "You are a helpful assistant<|end_of_turn|>GPT4 Correct User: Hello<|end_of_turn|>GPT4 Correct "
                  "Assistant: Hi there<|end_of_turn|>GPT4 Correct User: Who are you<|end_of_turn|>GPT4 Correct "
                  "Assistant:    I am an assistant   <|end_of_turn|>GPT4 Correct User: Another question<|end_of_turn|>GPT4 "
                  "Correct Assistant:");
    expect_render(CHAT_TMPL_ORION, 1,
                  "Human: You are a helpful assistant\n\nHello\n\nAssistant: </s>Hi there</s>Human: Who are you\n\n"
                  "Assistant: </s>   I am an assistant   </s>Human: Another question\n\nAssistant: </s>");
}

static void test_generation_prompt_flags(void **state)
{
    (void)state;
    chat_msg m[] = {{"user", "Hi"}, {"assistant", "The answer is"}};
    char err[64];
    size_t len;
    char *s = chat_template_render(CHAT_TMPL_CHATML, m, 1, 0, 0, &len, err, sizeof err);
    assert_string_equal(s, "<|im_start|>user\nHi<|im_end|>\n");
    free(s);
    s = chat_template_render(CHAT_TMPL_CHATML, m, 2, 0, 1, &len, err, sizeof err);
    assert_string_equal(s, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nThe answer is");
    free(s);
    s = chat_template_render(CHAT_TMPL_LLAMA3, m, 2, 0, 1, &len, err, sizeof err);
    assert_string_equal(s, "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                           "<|start_header_id|>assistant<|end_header_id|>\n\nThe answer is");
    free(s);
    assert_null(chat_template_render(CHAT_TMPL_UNKNOWN, m, 1, 1, 0, &len, err, sizeof err));
    assert_string_equal(err, "unknown chat template family");
    /* no messages at all: an empty prompt plus the generation prompt */
    s = chat_template_render(CHAT_TMPL_CHATML, m, 0, 1, 0, &len, err, sizeof err);
    assert_string_equal(s, "<|im_start|>assistant\n");
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_detect),
        cmocka_unit_test(test_renderings),
        cmocka_unit_test(test_generation_prompt_flags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
