/* Unit tests for openai_response: exact JSON shapes of responses, chunks,
 * usage, errors and logprobs; UTF-8 repair. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/openai_response.h"

static char *dump(json_t *j)
{
    assert_non_null(j);
    char *s = oai_json_dump(j, NULL);
    json_decref(j);
    assert_non_null(s);
    return s;
}

static void expect_json(json_t *j, const char *want)
{
    char *s = dump(j);
    if (strcmp(s, want) != 0)
        fail_msg("got  %s\nwant %s", s, want);
    free(s);
}

static void test_ids(void **state)
{
    (void)state;
    char a[OAI_ID_MAX], b[OAI_ID_MAX];
    assert_int_equal(oai_make_id(OAI_COMPLETION, a), 0);
    assert_int_equal(oai_make_id(OAI_COMPLETION, b), 0);
    assert_int_equal(strlen(a), 5 + 32);
    assert_memory_equal(a, "cmpl-", 5);
    assert_int_equal(strspn(a + 5, "0123456789abcdef"), 32);
    assert_string_not_equal(a, b);
    assert_int_equal(oai_make_id(OAI_CHAT, a), 0);
    assert_memory_equal(a, "chatcmpl-", 9);
    assert_int_equal(strlen(a), 9 + 32);
}

static void test_completion_response(void **state)
{
    (void)state;
    oai_choice c[2] = {
        {.index = 0, .text = " Kubernetes", .text_len = 11, .finish = OAI_FINISH_LENGTH},
        {.index = 1, .text = "x", .text_len = 1, .finish = OAI_FINISH_STOP,
         .stop_reason = {.kind = OAI_STOP_REASON_STR, .str = "string"}},
    };
    oai_usage u = {.prompt_tokens = 6, .completion_tokens = 128};
    expect_json(oai_response_new(OAI_COMPLETION, "cmpl-1", 1720473958, "llama3", c, 2, &u),
                "{\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"created\":1720473958,\"model\":\"llama3\","
                "\"choices\":[{\"index\":0,\"text\":\" Kubernetes\",\"logprobs\":null,\"finish_reason\":\"length\","
                "\"stop_reason\":null,\"prompt_logprobs\":null},{\"index\":1,\"text\":\"x\",\"logprobs\":null,"
                "\"finish_reason\":\"stop\",\"stop_reason\":\"string\",\"prompt_logprobs\":null}],"
                "\"usage\":{\"prompt_tokens\":6,\"total_tokens\":134,\"completion_tokens\":128}}");
}

static void test_chat_response(void **state)
{
    (void)state;
    oai_choice c = {.index = 0, .text = "Hi", .text_len = 2, .finish = OAI_FINISH_STOP,
                    .stop_reason = {.kind = OAI_STOP_REASON_TOKEN, .token = 128009}};
    oai_usage u = {.prompt_tokens = 3, .completion_tokens = 2};
    expect_json(oai_response_new(OAI_CHAT, "chatcmpl-9", 5, "m", &c, 1, &u),
                "{\"id\":\"chatcmpl-9\",\"object\":\"chat.completion\",\"created\":5,\"model\":\"m\","
                "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Hi\",\"tool_calls\":[]},"
                "\"logprobs\":null,\"finish_reason\":\"stop\",\"stop_reason\":128009}],"
                "\"usage\":{\"prompt_tokens\":3,\"total_tokens\":5,\"completion_tokens\":2}}");
}

static void test_chunks(void **state)
{
    (void)state;
    oai_choice c = {.index = 0};
    expect_json(oai_chunk_new(OAI_CHAT, "chatcmpl-1", 7, "m", &c, 1, NULL),
                "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\","
                "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,"
                "\"finish_reason\":null,\"stop_reason\":null}]}");
    c.text = "ab";
    c.text_len = 2;
    expect_json(oai_chunk_new(OAI_CHAT, "chatcmpl-1", 7, "m", &c, 0, NULL),
                "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\","
                "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ab\"},\"logprobs\":null,"
                "\"finish_reason\":null,\"stop_reason\":null}]}");
    c.text = NULL;
    c.finish = OAI_FINISH_LENGTH;
    expect_json(oai_chunk_new(OAI_CHAT, "chatcmpl-1", 7, "m", &c, 0, NULL),
                "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\","
                "\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,"
                "\"finish_reason\":\"length\",\"stop_reason\":null}]}");
    oai_choice d = {.index = 2, .text = "z", .text_len = 1};
    oai_usage u = {.prompt_tokens = 1, .completion_tokens = 1};
    expect_json(oai_chunk_new(OAI_COMPLETION, "cmpl-1", 7, "m", &d, 0, &u),
                "{\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"created\":7,\"model\":\"m\","
                "\"choices\":[{\"index\":2,\"text\":\"z\",\"logprobs\":null,\"finish_reason\":null,"
                "\"stop_reason\":null}],\"usage\":{\"prompt_tokens\":1,\"total_tokens\":2,\"completion_tokens\":1}}");
    expect_json(oai_usage_chunk_new(OAI_COMPLETION, "cmpl-1", 7, "m", &u),
                "{\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"created\":7,\"model\":\"m\",\"choices\":[],"
                "\"usage\":{\"prompt_tokens\":1,\"total_tokens\":2,\"completion_tokens\":1}}");
}

static void test_sse_and_error(void **state)
{
    (void)state;
    oai_error e;
    oai_error_set(&e, 400, "top_p", "top_p must be in (0, 1], got %g.", 2.0);
    json_t *j = oai_error_body(&e);
    size_t len;
    char *s = oai_sse_event(j, &len);
    json_decref(j);
    const char *want = "data: {\"error\":{\"message\":\"top_p must be in (0, 1], got 2.\",\"type\":\"BadRequestError\","
                       "\"param\":\"top_p\",\"code\":400}}\n\n";
    assert_string_equal(s, want);
    assert_int_equal(len, strlen(want));
    free(s);
    oai_error_set(&e, 404, NULL, "The model `x` does not exist.");
    expect_json(oai_error_body(&e), "{\"error\":{\"message\":\"The model `x` does not exist.\",\"type\":\"NotFoundError\","
                                    "\"param\":null,\"code\":404}}");
    assert_string_equal(OAI_SSE_DONE, "data: [DONE]\n\n");
}

static void test_utf8(void **state)
{
    (void)state;
    /* invalid lead, truncated sequence, overlong, surrogate -> U+FFFD each byte */
    expect_json(oai_json_text("a\xFF" "b", 3), "\"a\xEF\xBF\xBD" "b\"");
    expect_json(oai_json_text("\xE2\x82", 2), "\"\xEF\xBF\xBD\xEF\xBF\xBD\"");
    expect_json(oai_json_text("\xC0\xAF", 2), "\"\xEF\xBF\xBD\xEF\xBF\xBD\"");
    expect_json(oai_json_text("\xED\xA0\x80", 3), "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"");
    expect_json(oai_json_text("\xE2\x82\xAC", 3), "\"\xE2\x82\xAC\"");
    assert_int_equal(oai_utf8_complete_len("ab\xE2\x82", 4), 2);
    assert_int_equal(oai_utf8_complete_len("ab\xE2\x82\xAC", 5), 5);
    assert_int_equal(oai_utf8_complete_len("ab\xF0", 3), 2);
    assert_int_equal(oai_utf8_complete_len("ab\xFF", 3), 3); /* invalid, not incomplete */
    assert_int_equal(oai_utf8_complete_len("", 0), 0);
}

static void test_cmpl_logprobs(void **state)
{
    (void)state;
    json_t *lp = oai_cmpl_logprobs_new();
    oai_top_entry top[2] = {{"A", 1, -0.5}, {"B", 1, -1.5}};
    assert_int_equal(oai_cmpl_logprobs_append(lp, "Hi", 2, 0, 0, NULL, 0, 0), 0);
    assert_int_equal(oai_cmpl_logprobs_append(lp, "C", 1, 1, -2.25, top, 2, 2), 0);
    assert_int_equal(oai_cmpl_logprobs_append(lp, "A", 1, 1, -1.0 / 0.0, top, 1, 3), 0);
    expect_json(lp, "{\"text_offset\":[0,2,3],\"token_logprobs\":[null,-2.25,-9999.0],\"tokens\":[\"Hi\",\"C\",\"A\"],"
                    "\"top_logprobs\":[null,{\"A\":-0.5,\"B\":-1.5,\"C\":-2.25},{\"A\":-0.5}]}");
}

static void test_chat_logprobs(void **state)
{
    (void)state;
    json_t *lp = oai_chat_logprobs_new();
    oai_top_entry top[1] = {{"\xC3\xA9", 2, -0.25}};
    assert_int_equal(oai_chat_logprobs_append(lp, "\xC3", 1, -0.5, top, 1), 0);
    expect_json(lp, "{\"content\":[{\"token\":\"\xEF\xBF\xBD\",\"logprob\":-0.5,\"bytes\":[195],"
                    "\"top_logprobs\":[{\"token\":\"\xC3\xA9\",\"logprob\":-0.25,\"bytes\":[195,169]}]}]}");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids),           cmocka_unit_test(test_completion_response),
        cmocka_unit_test(test_chat_response), cmocka_unit_test(test_chunks),
        cmocka_unit_test(test_sse_and_error), cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_cmpl_logprobs), cmocka_unit_test(test_chat_logprobs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
