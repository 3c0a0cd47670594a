/* Unit tests for engine/sampler: exact expectations for greedy choice,
 * penalties, bias, truncation (top-k/top-p/min-p), seeded reproducibility
 * and raw log-probabilities. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "engine/sampler.h"

static char err[256];

/* logits log(1), log(2), log(3), log(4): probabilities .1 .2 .3 .4 */
static const float L4[4] = {0.0f, 0.69314718f, 1.09861229f, 1.38629436f};

static sampler *mk(const sampler_params *p, int32_t n)
{
    sampler *s = sampler_new(p, n, err, sizeof err);
    assert_non_null(s);
    return s;
}

static int32_t pick(sampler *s, const float *logits)
{
    sampler_result r;
    assert_int_equal(sampler_sample(s, logits, &r, err, sizeof err), 0);
    return r.token;
}

static void test_defaults(void **st)
{
    (void)st;
    sampler_params p = sampler_default_params();
    assert_true(p.temperature == 1.0f);
    assert_int_equal(p.top_k, 0);
    assert_true(p.top_p == 1.0f);
    assert_true(p.min_p == 0.0f);
    assert_true(p.repetition_penalty == 1.0f);
    assert_int_equal(p.n_logit_bias, 0);
    assert_int_equal(sampler_params_check(&p, 10, err, sizeof err), 0);
}

static void test_param_errors(void **st)
{
    (void)st;
    sampler_params p = sampler_default_params();
    p.top_p = 0;
    assert_int_equal(sampler_params_check(&p, 10, err, sizeof err), -1);
    assert_non_null(strstr(err, "top_p"));
    assert_null(sampler_new(&p, 10, err, sizeof err));

    p = sampler_default_params();
    p.temperature = NAN;
    assert_int_equal(sampler_params_check(&p, 10, err, sizeof err), -1);
    assert_non_null(strstr(err, "temperature"));

    p = sampler_default_params();
    p.n_logprobs = SAMPLER_MAX_LOGPROBS + 1;
    assert_int_equal(sampler_params_check(&p, 10, err, sizeof err), -1);
    assert_non_null(strstr(err, "n_logprobs"));

    p = sampler_default_params();
    p.n_logit_bias = 1;
    p.logit_bias[0].token = 10;
    p.logit_bias[0].bias = 1;
    assert_int_equal(sampler_params_check(&p, 10, err, sizeof err), -1);
    assert_non_null(strstr(err, "logit_bias token 10"));

    p = sampler_default_params();
    p.repetition_penalty = 0;
    assert_int_equal(sampler_params_check(&p, 10, err, sizeof err), -1);
    p = sampler_default_params();
    p.presence_penalty = 2.5f;
    assert_int_equal(sampler_params_check(&p, 10, err, sizeof err), -1);
    p = sampler_default_params();
    p.min_p = 1.5f;
    assert_int_equal(sampler_params_check(&p, 10, err, sizeof err), -1);
    p = sampler_default_params();
    assert_int_equal(sampler_params_check(&p, 0, err, sizeof err), -1);
}

static void test_greedy_and_logprobs(void **st)
{
    (void)st;
    sampler_params p = sampler_default_params();
    p.temperature = 0;
    p.n_logprobs = 2;
    sampler *s = mk(&p, 4);
    sampler_result r;
    assert_int_equal(sampler_sample(s, L4, &r, err, sizeof err), 0);
    assert_int_equal(r.token, 3);
    assert_float_equal(r.logprob, logf(0.4f), 1e-5);
    assert_int_equal(r.n_top, 2);
    assert_int_equal(r.top_token[0], 3);
    assert_int_equal(r.top_token[1], 2);
    assert_float_equal(r.top_logprob[0], logf(0.4f), 1e-5);
    assert_float_equal(r.top_logprob[1], logf(0.3f), 1e-5);
    assert_int_equal(sampler_n_output(s), 1);
    sampler_free(s);
}

static void test_greedy_ties_lowest_id(void **st)
{
    (void)st;
    sampler_params p = sampler_default_params();
    p.temperature = 0;
    p.n_logprobs = 3;
    sampler *s = mk(&p, 5);
    const float l[5] = {1, 3, 2, 3, 3};
    sampler_result r;
    assert_int_equal(sampler_sample(s, l, &r, err, sizeof err), 0);
    assert_int_equal(r.token, 1);
    assert_int_equal(r.top_token[0], 1);
    assert_int_equal(r.top_token[1], 3);
    assert_int_equal(r.top_token[2], 4);
    sampler_free(s);
}

static void test_logit_bias_keeps_raw_logprob(void **st)
{
    (void)st;
    sampler_params p = sampler_default_params();
    p.temperature = 0;
    p.n_logit_bias = 1;
    p.logit_bias[0].token = 0;
    p.logit_bias[0].bias = 5.0f;
    sampler *s = mk(&p, 4);
    sampler_result r;
    assert_int_equal(sampler_sample(s, L4, &r, err, sizeof err), 0);
    assert_int_equal(r.token, 0);
    /* raw distribution: p(0) = 0.1 regardless of the bias */
    assert_float_equal(r.logprob, logf(0.1f), 1e-5);
    sampler_free(s);
}

static void test_repetition_penalty(void **st)
{
    (void)st;
    sampler_params p = sampler_default_params();
    p.temperature = 0;
    p.repetition_penalty = 2.0f;
    /* positive logit divided: 2.0 -> 1.0 < 1.9 */
    sampler *s = mk(&p, 3);
    const int32_t prompt[2] = {0, 99 /* out of range: ignored */};
    sampler_accept_prompt(s, prompt, 2);
    const float a[3] = {2.0f, 1.9f, -5.0f};
    assert_int_equal(pick(s, a), 1);
    /* token 1 is now an output token: 1.9 -> 0.95; token 0: 1.0; picks 0 */
    assert_int_equal(pick(s, a), 0);
    sampler_free(s);

    /* negative logit multiplied: -1 -> -2 < -1.5 */
    s = mk(&p, 2);
    sampler_accept_prompt(s, prompt, 1);
    const float b[2] = {-1.0f, -1.5f};
    assert_int_equal(pick(s, b), 1);
    sampler_free(s);
}

static void test_presence_frequency(void **st)
{
    (void)st;
    sampler_params p = sampler_default_params();
    p.temperature = 0;
    p.frequency_penalty = 2.0f;
    p.presence_penalty = 2.0f;
    sampler *s = mk(&p, 2);
    const float l[2] = {1.0f, 0.5f};
    /* prompt tokens do not count for frequency/presence */
    const int32_t prompt[3] = {0, 0, 0};
    sampler_accept_prompt(s, prompt, 3);
    assert_int_equal(pick(s, l), 0); /* output count(0) = 0 -> 1.0 */
    assert_int_equal(pick(s, l), 1); /* 1.0 - 2 - 2 = -3 < 0.5 */
    sampler_free(s);
}

static void test_presence_frequency_exact(void **st)
{
    (void)st;
    sampler_params p = sampler_default_params();
    p.temperature = 0;
    p.frequency_penalty = 0.3f;
    sampler *s = mk(&p, 2);
    const float l[2] = {1.0f, 0.5f};
    sampler_accept(s, 0);
    assert_int_equal(pick(s, l), 0); /* 1.0 - 0.3 = 0.7 > 0.5 */
    assert_int_equal(pick(s, l), 1); /* 1.0 - 0.6 = 0.4 < 0.5 */
    sampler_free(s);

    p.frequency_penalty = 0;
    p.presence_penalty = 0.6f;
    s = mk(&p, 2);
    assert_int_equal(pick(s, l), 0); /* nothing seen yet */
    assert_int_equal(pick(s, l), 1); /* 1.0 - 0.6 = 0.4 < 0.5 */
    /* presence does not grow with the count: 1 was chosen once, 0.5-0.6 = -0.1 < 0.4 */
    assert_int_equal(pick(s, l), 0);
    sampler_free(s);
}

static void counts(const sampler_params *p, const float *l, int32_t n, int draws, int *c)
{
    sampler *s = mk(p, n);
    memset(c, 0, (size_t)n * sizeof *c);
    for (int i = 0; i < draws; i++)
        c[pick(s, l)]++;
    sampler_free(s);
}

static void test_distribution_seeded(void **st)
{
    (void)st;
    sampler_params p = sampler_default_params();
    p.has_seed = 1;
    p.seed = 1234;
    int c[4];
    counts(&p, L4, 4, 8000, c);
    /* expected 800 1600 2400 3200; binomial sd <= 45: allow ~5 sd */
    assert_in_range(c[0], 575, 1025);
    assert_in_range(c[1], 1375, 1825);
    assert_in_range(c[2], 2175, 2625);
    assert_in_range(c[3], 2975, 3425);

    /* reproducible: same seed -> same stream; different seed -> different stream */
    sampler *a = mk(&p, 4), *b = mk(&p, 4);
    p.seed = 1235;
    sampler *d = mk(&p, 4);
    int differ = 0;
    for (int i = 0; i < 64; i++) {
        int32_t x = pick(a, L4), y = pick(b, L4), z = pick(d, L4);
        assert_int_equal(x, y);
        differ |= x != z;
    }
    assert_true(differ);
    sampler_free(a);
    sampler_free(b);
    sampler_free(d);
}

static void test_temperature(void **st)
{
    (void)st;
    sampler_params p = sampler_default_params();
    p.has_seed = 1;
    p.seed = 7;
    p.temperature = 0.001f; /* raised to 0.01: (log 4 - log 3)/0.01 = 28.8 nats: always argmax */
    int c[4];
    counts(&p, L4, 4, 500, c);
    assert_int_equal(c[3], 500);

    /* high temperature flattens: T = 1000 -> nearly uniform */
    p.temperature = 1000.0f;
    counts(&p, L4, 4, 4000, c);
    for (int i = 0; i < 4; i++)
        assert_in_range(c[i], 850, 1150);
}

static void test_top_k(void **st)
{
    (void)st;
    sampler_params p = sampler_default_params();
    p.has_seed = 1;
    p.seed = 99;
    p.top_k = 1;
    int c[4];
    counts(&p, L4, 4, 300, c);
    assert_int_equal(c[3], 300);
    p.top_k = 2; /* {3, 2} with 4:3 odds */
    counts(&p, L4, 4, 3500, c);
    assert_int_equal(c[0] + c[1], 0);
    assert_in_range(c[3], 1850, 2150); /* 2000 expected */
}

static void test_top_p(void **st)
{
    (void)st;
    sampler_params p = sampler_default_params();
    p.has_seed = 1;
    p.seed = 5;
    p.top_p = 0.5f; /* .4 < .5 keeps 3 and 2; .7 >= .5 stops */
    int c[4];
    counts(&p, L4, 4, 3500, c);
    assert_int_equal(c[0] + c[1], 0);
    assert_in_range(c[3], 1850, 2150);
    p.top_p = 0.39f; /* below the top token's mass (.4): only 3 */
    counts(&p, L4, 4, 200, c);
    assert_int_equal(c[3], 200);
}

static void test_min_p(void **st)
{
    (void)st;
    sampler_params p = sampler_default_params();
    p.has_seed = 1;
    p.seed = 11;
    p.min_p = 0.5f; /* keep p >= 0.2: tokens 1, 2, 3 */
    int c[4];
    counts(&p, L4, 4, 3000, c);
    assert_int_equal(c[0], 0);
    assert_true(c[1] > 0 && c[2] > 0 && c[3] > 0);
    p.min_p = 1.0f; /* only the most likely */
    counts(&p, L4, 4, 200, c);
    assert_int_equal(c[3], 200);
}

static void test_bad_logits(void **st)
{
    (void)st;
    sampler_params p = sampler_default_params();
    sampler *s = mk(&p, 3);
    sampler_result r;
    const float nan_l[3] = {0, NAN, 1};
    assert_int_equal(sampler_sample(s, nan_l, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "NaN"));
    const float inf_l[3] = {-INFINITY, -INFINITY, -INFINITY};
    assert_int_equal(sampler_sample(s, inf_l, &r, err, sizeof err), -1);
    /* -inf entries are fine as long as one is finite, and are never sampled */
    const float masked[3] = {-INFINITY, 0, -INFINITY};
    for (int i = 0; i < 50; i++)
        assert_int_equal(pick(s, masked), 1);
    assert_int_equal(sampler_sample(s, masked, &r, err, sizeof err), 0);
    assert_float_equal(r.logprob, 0.0f, 1e-6);
    sampler_free(s);
}

static void test_logprobs_stateless(void **st)
{
    (void)st;
    sampler_result r;
    assert_int_equal(sampler_logprobs(L4, 4, 1, 25, &r), 0);
    assert_int_equal(r.token, 1);
    assert_float_equal(r.logprob, logf(0.2f), 1e-5);
    assert_int_equal(r.n_top, 4); /* clamped to vocab */
    assert_int_equal(r.top_token[3], 0);
    assert_float_equal(r.top_logprob[3], logf(0.1f), 1e-5);
    assert_int_equal(sampler_logprobs(L4, 4, 4, 1, &r), -1);
    assert_int_equal(sampler_logprobs(L4, 4, -1, 1, &r), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_param_errors),
        cmocka_unit_test(test_greedy_and_logprobs),
        cmocka_unit_test(test_greedy_ties_lowest_id),
        cmocka_unit_test(test_logit_bias_keeps_raw_logprob),
        cmocka_unit_test(test_repetition_penalty),
        cmocka_unit_test(test_presence_frequency),
        cmocka_unit_test(test_presence_frequency_exact),
        cmocka_unit_test(test_distribution_seeded),
        cmocka_unit_test(test_temperature),
        cmocka_unit_test(test_top_k),
        cmocka_unit_test(test_top_p),
        cmocka_unit_test(test_min_p),
        cmocka_unit_test(test_bad_logits),
        cmocka_unit_test(test_logprobs_stateless),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
