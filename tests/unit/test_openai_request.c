/* Unit tests for openai_request: vLLM defaults, the seed's request, ranges,
 * types, limits and error shapes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/openai_request.h"

/* The seed demo's body, verbatim (the curl -d payload). */
static const char SEED_BODY[] =
    "{\n\"model\": \"llama3\",\n\"prompt\": \"What is Kubernetes?\",\n\"max_tokens\": 128,\n\"temperature\": 1,\n"
    "\"top_p\": 1,\n\"n\": 1,\n\"stream\": false,\n\"logprobs\": 0,\n\"echo\": false,\n\"stop\": [\"string\"],\n"
    "\"presence_penalty\": 0,\n\"frequency_penalty\": 0,\n\"best_of\": 1,\n\"user\": \"string\",\n\"top_k\": -1,\n"
    "\"ignore_eos\": false,\n\"use_beam_search\": false,\n\"stop_token_ids\": [0],\n\"skip_special_tokens\": true,\n"
    "\"spaces_between_special_tokens\": true,\n\"repetition_penalty\": 1,\n\"min_p\": 0,\n"
    "\"include_stop_str_in_output\": false,\n\"length_penalty\": 1\n}";

static int parse(oai_request *r, oai_kind k, const char *body, oai_error *e)
{
    memset(e, 0, sizeof *e);
    return oai_request_parse(r, k, body, strlen(body), e);
}

static void test_seed_request(void **state)
{
    (void)state;
    oai_request r;
    oai_error e;
    assert_int_equal(parse(&r, OAI_COMPLETION, SEED_BODY, &e), 0);
    assert_string_equal(r.model, "llama3");
    assert_int_equal(r.n_prompts, 1);
    assert_string_equal(r.prompts[0].text, "What is Kubernetes?");
    assert_null(r.prompts[0].ids);
    assert_int_equal(r.max_tokens, 128);
    assert_true(r.temperature == 1.0);
    assert_true(r.top_p == 1.0);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.best_of, 1);
    assert_int_equal(r.stream, 0);
    assert_int_equal(r.logprobs, 0);
    assert_int_equal(r.echo, 0);
    assert_int_equal(r.n_stop, 1);
    assert_string_equal(r.stop[0], "string");
    assert_int_equal(r.top_k, -1);
    assert_int_equal(r.n_stop_token_ids, 1);
    assert_int_equal(r.stop_token_ids[0], 0);
    assert_int_equal(r.skip_special_tokens, 1);
    assert_int_equal(r.spaces_between_special_tokens, 1);
    assert_true(r.repetition_penalty == 1.0);
    assert_true(r.min_p == 0.0);
    assert_int_equal(r.include_stop_str_in_output, 0);
    assert_true(r.length_penalty == 1.0);
    assert_int_equal(r.use_beam_search, 0);
    oai_request_free(&r);
}

static void test_completion_defaults(void **state)
{
    (void)state;
    oai_request r;
    oai_error e;
    assert_int_equal(parse(&r, OAI_COMPLETION, "{\"prompt\":\"hi\"}", &e), 0);
    assert_null(r.model);
    assert_int_equal(r.max_tokens, 16);
    assert_true(r.temperature == 1.0);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.best_of, 1);
    assert_int_equal(r.logprobs, -1);
    assert_int_equal(r.top_k, -1);
    assert_int_equal(r.has_seed, 0);
    assert_int_equal(r.add_special_tokens, 1);
    assert_int_equal(r.truncate_prompt_tokens, -1);
    assert_int_equal(r.include_usage, 0);
    oai_request_free(&r);
}

static void test_prompt_forms(void **state)
{
    (void)state;
    oai_request r;
    oai_error e;
    assert_int_equal(parse(&r, OAI_COMPLETION, "{\"prompt\":[\"a\",\"b\",\"c\"]}", &e), 0);
    assert_int_equal(r.n_prompts, 3);
    assert_string_equal(r.prompts[2].text, "c");
    oai_request_free(&r);

    assert_int_equal(parse(&r, OAI_COMPLETION, "{\"prompt\":[1,2,3]}", &e), 0);
    assert_int_equal(r.n_prompts, 1);
    assert_int_equal(r.prompts[0].n_ids, 3);
    assert_int_equal(r.prompts[0].ids[2], 3);
    oai_request_free(&r);

    assert_int_equal(parse(&r, OAI_COMPLETION, "{\"prompt\":[[5],[6,7]]}", &e), 0);
    assert_int_equal(r.n_prompts, 2);
    assert_int_equal(r.prompts[1].n_ids, 2);
    assert_int_equal(r.prompts[1].ids[1], 7);
    oai_request_free(&r);

    assert_int_equal(parse(&r, OAI_COMPLETION, "{\"prompt\":[\"a\",[1]]}", &e), -1);
    assert_int_equal(e.status, 400);
    assert_string_equal(e.param, "prompt");
    assert_int_equal(parse(&r, OAI_COMPLETION, "{\"prompt\":[]}", &e), -1);
    assert_string_equal(e.param, "prompt");
    assert_int_equal(parse(&r, OAI_COMPLETION, "{\"prompt\":[[]]}", &e), -1);
    assert_int_equal(parse(&r, OAI_COMPLETION, "{\"prompt\":[1,-2]}", &e), -1);
    assert_int_equal(parse(&r, OAI_COMPLETION, "{\"prompt\":42}", &e), -1);
    assert_int_equal(parse(&r, OAI_COMPLETION, "{\"model\":\"m\"}", &e), -1);
    assert_string_equal(e.message, "'prompt' is required");
    assert_int_equal(parse(&r, OAI_COMPLETION, "{\"prompt\":\"a\\u0000b\"}", &e), -1);
}

static void test_prompt_list_limit(void **state)
{
    (void)state;
    char body[4096];
    size_t p = (size_t)snprintf(body, sizeof body, "{\"prompt\":[");
    for (int i = 0; i <= OAI_MAX_PROMPTS; i++)
        p += (size_t)snprintf(body + p, sizeof body - p, "%s\"x\"", i ? "," : "");
    snprintf(body + p, sizeof body - p, "]}");
    oai_request r;
    oai_error e;
    assert_int_equal(parse(&r, OAI_COMPLETION, body, &e), -1);
    assert_int_equal(e.status, 400);
    assert_non_null(strstr(e.message, "at most 64"));
}

struct bad_case { const char *body; const char *param; const char *msg; };

static void test_range_errors(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        {"{\"prompt\":\"x\",\"n\":0}", "n", "n must be at least 1, got 0."},
        {"{\"prompt\":\"x\",\"n\":17}", "n", "n must be at most 16, got 17."},
        {"{\"prompt\":\"x\",\"n\":3,\"best_of\":2}", "best_of",
         "best_of must be greater than or equal to n, got n=3 and best_of=2."},
        {"{\"prompt\":\"x\",\"presence_penalty\":2.5}", "presence_penalty", "presence_penalty must be in [-2, 2], got 2.5."},
        {"{\"prompt\":\"x\",\"frequency_penalty\":-3}", "frequency_penalty",
         "frequency_penalty must be in [-2, 2], got -3."},
        {"{\"prompt\":\"x\",\"repetition_penalty\":0}", "repetition_penalty",
         "repetition_penalty must be in (0, 2], got 0."},
        {"{\"prompt\":\"x\",\"temperature\":-0.5}", "temperature", "temperature must be non-negative, got -0.5."},
        {"{\"prompt\":\"x\",\"temperature\":2.5}", "temperature", "temperature must be at most 2, got 2.5."},
        {"{\"prompt\":\"x\",\"top_p\":0}", "top_p", "top_p must be in (0, 1], got 0."},
        {"{\"prompt\":\"x\",\"top_p\":1.5}", "top_p", "top_p must be in (0, 1], got 1.5."},
        {"{\"prompt\":\"x\",\"top_k\":-2}", "top_k", "top_k must be -1 (disable), or at least 1, got -2."},
        {"{\"prompt\":\"x\",\"min_p\":1.5}", "min_p", "min_p must be in [0, 1], got 1.5."},
        {"{\"prompt\":\"x\",\"max_tokens\":0}", "max_tokens", "max_tokens must be at least 1, got 0."},
        {"{\"prompt\":\"x\",\"max_tokens\":-4}", "max_tokens", "max_tokens must be at least 1, got -4."},
        {"{\"prompt\":\"x\",\"max_tokens\":4,\"min_tokens\":5}", "min_tokens",
         "min_tokens must be less than or equal to max_tokens=4, got 5."},
        {"{\"prompt\":\"x\",\"logprobs\":-1}", "logprobs", "logprobs must be non-negative, got -1."},
        {"{\"prompt\":\"x\",\"logprobs\":21}", "logprobs",
         "Requested sample logprobs of 21, which is greater than max allowed: 20"},
        {"{\"prompt\":\"x\",\"stop\":[\"a\",\"\"]}", "stop", "stop cannot contain an empty string."},
        {"{\"prompt\":\"x\",\"stop\":\"\"}", "stop", "stop cannot contain an empty string."},
        {"{\"prompt\":\"x\",\"suffix\":\"tail\"}", "suffix", "suffix is not currently supported"},
        {"{\"prompt\":\"x\",\"stream_options\":{\"include_usage\":true}}", "stream_options",
         "Stream options can only be defined when `stream=True`."},
        {"{\"prompt\":\"x\",\"temperature\":0,\"best_of\":2}", "best_of",
         "best_of must be 1 when using greedy sampling. Got 2."},
        {"{\"prompt\":\"x\",\"use_beam_search\":true,\"best_of\":1,\"temperature\":0}", "best_of",
         "best_of must be greater than 1 when using beam search. Got 1."},
        {"{\"prompt\":\"x\",\"use_beam_search\":true,\"best_of\":2}", "temperature",
         "temperature must be 0 when using beam search."},
        {"{\"prompt\":\"x\",\"length_penalty\":2}", "length_penalty",
         "length_penalty is only used with beam search (use_beam_search=true), got 2."},
        {"{\"prompt\":\"x\",\"temperature\":\"hot\"}", "temperature", "'temperature' must be a number"},
        {"{\"prompt\":\"x\",\"n\":1.5}", "n", "'n' must be an integer"},
        {"{\"prompt\":\"x\",\"stream\":\"yes\"}", "stream", "'stream' must be a boolean"},
        {"{\"prompt\":\"x\",\"echo\":1}", "echo", "'echo' must be a boolean"},
        {"{\"prompt\":\"x\",\"model\":7}", "model", "'model' must be a string of at most 256 bytes"},
        {"{\"prompt\":\"x\",\"logit_bias\":{\"abc\":1}}", "logit_bias",
         "'logit_bias' keys must be token ids (non-negative integers)"},
        {"{\"prompt\":\"x\",\"logit_bias\":{\"5\":\"x\"}}", "logit_bias", "'logit_bias' values must be numbers"},
        {"{\"prompt\":\"x\",\"stop_token_ids\":[-1]}", "stop_token_ids",
         "'stop_token_ids' entries must be non-negative integers"},
        {"{\"prompt\":\"x\",\"response_format\":{\"type\":\"json_object\"}}", "response_format",
         "response_format type 'json_object' is not supported (guided decoding is not available)"},
        {"{\"prompt\":\"x\",\"user\":5}", "user", "'user' must be a string"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        oai_request r;
        oai_error e;
        int rc = parse(&r, OAI_COMPLETION, cases[i].body, &e);
        if (rc != -1 || strcmp(e.param, cases[i].param) != 0 || strcmp(e.message, cases[i].msg) != 0)
            fail_msg("case %zu (%s): rc=%d param=%s msg=%s", i, cases[i].body, rc, e.param, e.message);
        assert_int_equal(e.status, 400);
        assert_string_equal(e.type, "BadRequestError");
    }
}

static void test_json_errors(void **state)
{
    (void)state;
    oai_request r;
    oai_error e;
    assert_int_equal(parse(&r, OAI_COMPLETION, "{\"prompt\":", &e), -1);
    assert_int_equal(e.status, 400);
    assert_non_null(strstr(e.message, "Invalid JSON body"));
    assert_int_equal(parse(&r, OAI_COMPLETION, "[1,2]", &e), -1);
    assert_string_equal(e.message, "The request body must be a JSON object");
    assert_int_equal(parse(&r, OAI_COMPLETION, "{\"prompt\":\"a\",\"prompt\":\"b\"}", &e), -1);
    assert_int_equal(parse(&r, OAI_COMPLETION, "", &e), -1);
    assert_int_equal(oai_request_parse(&r, OAI_COMPLETION, NULL, 0, &e), -1);
    assert_int_equal(e.status, 400);
}

static void test_values_and_nulls(void **state)
{
    (void)state;
    oai_request r;
    oai_error e;
    const char *body = "{\"prompt\":\"x\",\"max_tokens\":null,\"temperature\":0.001,\"seed\":-1,\"top_k\":0,"
                       "\"stream\":true,\"stream_options\":{},\"logit_bias\":{\"12\":150,\"13\":-3.5},"
                       "\"n\":2.0,\"best_of\":null,\"stop\":\"END\",\"unknown_field\":{\"x\":1},\"min_tokens\":3,"
                       "\"echo\":true,\"truncate_prompt_tokens\":5}";
    assert_int_equal(parse(&r, OAI_COMPLETION, body, &e), 0);
    assert_int_equal(r.max_tokens, -1);
    assert_true(r.temperature == 0.01); /* raised like vLLM's _SAMPLING_EPS */
    assert_int_equal(r.has_seed, 0);
    assert_int_equal(r.top_k, -1);
    assert_int_equal(r.include_usage, 1);
    assert_int_equal(r.n_logit_bias, 2);
    assert_int_equal(r.logit_bias[0].token, 12);
    assert_true(r.logit_bias[0].bias == 100.0f);
    assert_true(r.logit_bias[1].bias == -3.5f);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.best_of, 2);
    assert_int_equal(r.n_stop, 1);
    assert_string_equal(r.stop[0], "END");
    assert_int_equal(r.min_tokens, 3);
    assert_int_equal(r.truncate_prompt_tokens, 5);
    oai_request_free(&r);

    assert_int_equal(parse(&r, OAI_COMPLETION, "{\"prompt\":\"x\",\"seed\":42,\"echo\":true,\"max_tokens\":0}", &e), 0);
    assert_int_equal(r.has_seed, 1);
    assert_int_equal(r.seed, 42);
    assert_int_equal(r.max_tokens, 0);
    oai_request_free(&r);

    assert_int_equal(parse(&r, OAI_COMPLETION,
                           "{\"prompt\":\"x\",\"use_beam_search\":true,\"best_of\":3,\"n\":2,\"temperature\":0,"
                           "\"length_penalty\":0.5}",
                           &e),
                     0);
    assert_int_equal(r.use_beam_search, 1);
    assert_int_equal(r.best_of, 3);
    assert_true(r.length_penalty == 0.5);
    oai_request_free(&r);
}

static void test_chat(void **state)
{
    (void)state;
    oai_request r;
    oai_error e;
    const char *body = "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"S\"},"
                       "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}]},"
                       "{\"role\":\"assistant\",\"content\":null},{\"role\":\"developer\",\"content\":\"D\"}],"
                       "\"logprobs\":true,\"top_logprobs\":3,\"max_completion_tokens\":7,\"max_tokens\":99}";
    assert_int_equal(parse(&r, OAI_CHAT, body, &e), 0);
    assert_int_equal(r.n_messages, 4);
    assert_int_equal(r.messages[0].role, OAI_ROLE_SYSTEM);
    assert_string_equal(r.messages[1].content, "a\nb");
    assert_string_equal(r.messages[2].content, "");
    assert_int_equal(r.messages[3].role, OAI_ROLE_SYSTEM);
    assert_int_equal(r.logprobs, 3);
    assert_int_equal(r.max_tokens, 7);
    assert_true(r.temperature == 0.7);
    assert_int_equal(r.add_generation_prompt, 1);
    assert_int_equal(r.add_special_tokens, 0);
    oai_request_free(&r);

    assert_int_equal(parse(&r, OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", &e), 0);
    assert_int_equal(r.max_tokens, -1);
    assert_int_equal(r.logprobs, -1);
    oai_request_free(&r);

    assert_int_equal(parse(&r, OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_logprobs\":2}", &e),
                     -1);
    assert_string_equal(e.message, "when using `top_logprobs`, `logprobs` must be set to true.");
    assert_int_equal(parse(&r, OAI_CHAT, "{\"messages\":[]}", &e), -1);
    assert_string_equal(e.param, "messages");
    assert_int_equal(parse(&r, OAI_CHAT, "{\"model\":\"m\"}", &e), -1);
    assert_string_equal(e.message, "'messages' is required");
    assert_int_equal(parse(&r, OAI_CHAT, "{\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}", &e), -1);
    assert_non_null(strstr(e.message, "messages[0].role 'wizard' is not supported"));
    assert_int_equal(parse(&r, OAI_CHAT, "{\"messages\":[{\"role\":\"user\"}]}", &e), -1);
    assert_string_equal(e.message, "messages[0].content is required");
    assert_int_equal(parse(&r, OAI_CHAT,
                           "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{}}]}]}",
                           &e),
                     -1);
    assert_non_null(strstr(e.message, "content type 'image_url' is not supported"));
    assert_int_equal(parse(&r, OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tool_choice\":\"auto\"}",
                           &e),
                     -1);
    assert_string_equal(e.param, "tool_choice");
    assert_int_equal(parse(&r, OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logprobs\":3}", &e), -1);
    assert_string_equal(e.message, "'logprobs' must be a boolean");
    assert_int_equal(parse(&r, OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                                         "\"continue_final_message\":true}", &e), -1);
    assert_string_equal(e.param, "continue_final_message");
}

static void test_stop_limits(void **state)
{
    (void)state;
    char body[8192];
    size_t p = (size_t)snprintf(body, sizeof body, "{\"prompt\":\"x\",\"stop\":[");
    for (int i = 0; i <= OAI_MAX_STOP; i++)
        p += (size_t)snprintf(body + p, sizeof body - p, "%s\"s%d\"", i ? "," : "", i);
    snprintf(body + p, sizeof body - p, "]}");
    oai_request r;
    oai_error e;
    assert_int_equal(parse(&r, OAI_COMPLETION, body, &e), -1);
    assert_string_equal(e.param, "stop");

    char longstop[OAI_MAX_STOP_LEN + 2];
    memset(longstop, 'a', sizeof longstop - 1);
    longstop[sizeof longstop - 1] = '\0';
    snprintf(body, sizeof body, "{\"prompt\":\"x\",\"stop\":\"%s\"}", longstop);
    assert_int_equal(parse(&r, OAI_COMPLETION, body, &e), -1);
    assert_string_equal(e.param, "stop");
}

static void test_error_type_for(void **state)
{
    (void)state;
    assert_string_equal(oai_error_type_for(400), "BadRequestError");
    assert_string_equal(oai_error_type_for(404), "NotFoundError");
    assert_string_equal(oai_error_type_for(500), "InternalServerError");
    assert_string_equal(oai_error_type_for(503), "ServiceUnavailableError");
    oai_error e;
    oai_error_set(&e, 404, NULL, "The model `%s` does not exist.", "gpt-4");
    assert_string_equal(e.message, "The model `gpt-4` does not exist.");
    assert_string_equal(e.param, "");
    assert_string_equal(e.type, "NotFoundError");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_request),     cmocka_unit_test(test_completion_defaults),
        cmocka_unit_test(test_prompt_forms),     cmocka_unit_test(test_prompt_list_limit),
        cmocka_unit_test(test_range_errors),     cmocka_unit_test(test_json_errors),
        cmocka_unit_test(test_values_and_nulls), cmocka_unit_test(test_chat),
        cmocka_unit_test(test_stop_limits),      cmocka_unit_test(test_error_type_for),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
