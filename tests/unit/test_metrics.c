/* Unit tests for metrics: registration rules, values, exact exposition text,
 * a strict checker of the Prometheus text format (the rules promtool's
 * parser enforces), series limits and concurrent updates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/metrics.h"

/* ---- strict exposition checker ---- */

static int is_name_char(char c, int first, int colon)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':') ||
           (!first && c >= '0' && c <= '9');
}

/* Checks every line; returns NULL when valid, else a description. */
static const char *check_exposition(const char *text, char *why, size_t whylen)
{
    char type_of[64][128];
    char type_val[64][16];
    int ntypes = 0;
    const char *p = text;
    int line = 0;
    if (*text && text[strlen(text) - 1] != '\n')
        return "does not end with a newline";
    while (*p) {
        line++;
        const char *nl = strchr(p, '\n');
        size_t n = (size_t)(nl - p);
        char buf[1024];
        if (n >= sizeof buf)
            return "line too long";
        memcpy(buf, p, n); /* n < sizeof buf checked above */
        buf[n] = '\0';
        p = nl + 1;
        if (strncmp(buf, "# HELP ", 7) == 0)
            continue;
        if (strncmp(buf, "# TYPE ", 7) == 0) {
            char name[128], type[16];
            if (sscanf(buf + 7, "%127s %15s", name, type) != 2)
                return "bad TYPE line";
            if (strcmp(type, "counter") && strcmp(type, "gauge") && strcmp(type, "histogram"))
                return "unknown type";
            for (int i = 0; i < ntypes; i++)
                if (strcmp(type_of[i], name) == 0)
                    return "duplicate TYPE";
            if (ntypes < 64) {
                snprintf(type_of[ntypes], sizeof type_of[0], "%s", name);
                snprintf(type_val[ntypes], sizeof type_val[0], "%s", type);
                ntypes++;
            }
            continue;
        }
        if (buf[0] == '#')
            return "unexpected comment";
        /* sample: name{labels} value */
        size_t i = 0;
        if (!is_name_char(buf[0], 1, 1)) {
            snprintf(why, whylen, "line %d: bad metric name start", line);
            return why;
        }
        while (is_name_char(buf[i], i == 0, 1))
            i++;
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)i, buf);
        /* the sample must belong to the last TYPE'd family */
        if (ntypes == 0)
            return "sample before TYPE";
        const char *fam = type_of[ntypes - 1];
        size_t fl = strlen(fam);
        int hist = strcmp(type_val[ntypes - 1], "histogram") == 0;
        if (!(strcmp(name, fam) == 0 ||
              (hist && strncmp(name, fam, fl) == 0 &&
               (!strcmp(name + fl, "_bucket") || !strcmp(name + fl, "_sum") || !strcmp(name + fl, "_count"))))) {
            snprintf(why, whylen, "line %d: sample %.60s outside its family %.60s", line, name, fam);
            return why;
        }
        if (buf[i] == '{') {
            i++;
            while (buf[i] != '}') {
                if (!is_name_char(buf[i], 1, 0))
                    return "bad label name";
                while (is_name_char(buf[i], 0, 0))
                    i++;
                if (buf[i++] != '=' || buf[i++] != '"')
                    return "bad label syntax";
                while (buf[i] != '"') {
                    if (!buf[i])
                        return "unterminated label value";
                    if (buf[i] == '\\') {
                        i++;
                        if (buf[i] != '\\' && buf[i] != '"' && buf[i] != 'n')
                            return "bad escape";
                    }
                    i++;
                }
                i++;
                if (buf[i] == ',')
                    i++;
                else if (buf[i] != '}')
                    return "bad label separator";
            }
            i++;
        }
        if (buf[i++] != ' ')
            return "missing space before value";
        const char *v = buf + i;
        if (strcmp(v, "+Inf") && strcmp(v, "-Inf") && strcmp(v, "NaN")) {
            char *end;
            strtod(v, &end);
            if (end == v || *end) {
                snprintf(why, whylen, "line %d: bad value %.40s", line, v);
                return why;
            }
        }
    }
    return NULL;
}

static void assert_valid(const char *text)
{
    char why[256];
    const char *bad = check_exposition(text, why, sizeof why);
    if (bad)
        fail_msg("invalid exposition: %s\n%s", bad, text);
}

static void test_registration_rules(void **state)
{
    (void)state;
    metrics_registry *r = metrics_registry_new();
    const char *l[] = {"code"};
    metrics_family *c = metrics_counter(r, "x_total", "X.", l, 1);
    assert_non_null(c);
    assert_ptr_equal(metrics_counter(r, "x_total", "X again.", l, 1), c); /* same shape: same family */
    assert_null(metrics_gauge(r, "x_total", "X.", l, 1));                 /* type clash */
    assert_null(metrics_counter(r, "x_total", "X.", NULL, 0));            /* label clash */
    assert_null(metrics_counter(r, "9bad", "", NULL, 0));
    assert_null(metrics_counter(r, "bad-name", "", NULL, 0));
    const char *badl[] = {"__x"};
    assert_null(metrics_counter(r, "y", "", badl, 1));
    const char *le[] = {"le"};
    assert_null(metrics_histogram(r, "h", "", le, 1, NULL, 0));
    double unsorted[] = {1, 0.5};
    assert_null(metrics_histogram(r, "h", "", NULL, 0, unsorted, 2));
    const char *dup[] = {"a", "a"};
    assert_null(metrics_counter(r, "z", "", dup, 2));
    metrics_registry_free(r);
}

static void test_exact_text(void **state)
{
    (void)state;
    metrics_registry *r = metrics_registry_new();
    const char *l[] = {"finished_reason"};
    metrics_family *c = metrics_counter(r, "ward:req_total", "Requests.\nSecond line \\ here.", l, 1);
    metrics_family *g = metrics_gauge(r, "ward:running", "Running.", NULL, 0);
    double b[] = {0.5, 1};
    metrics_family *h = metrics_histogram(r, "ward:lat_seconds", "Latency.", NULL, 0, b, 2);
    const char *stop[] = {"stop"};
    const char *weird[] = {"a\"b\\c\nd"};
    metrics_add(c, stop, 2);
    metrics_add(c, stop, -5); /* ignored: counters only go up */
    metrics_add(c, weird, 1);
    metrics_set(g, NULL, 3);
    metrics_add(g, NULL, -1);
    metrics_observe(h, NULL, 0.25);
    metrics_observe(h, NULL, 0.75);
    metrics_observe(h, NULL, 5);
    metrics_observe(h, NULL, NAN); /* ignored */
    assert_true(metrics_get(c, stop) == 2);
    assert_true(metrics_get(g, NULL) == 2);
    assert_true(metrics_get(h, NULL) == 3);
    size_t len;
    char *t = metrics_render(r, &len);
    const char *want =
        "# HELP ward:metrics_dropped_series_total Metric updates dropped because a family reached its series limit.\n"
        "# TYPE ward:metrics_dropped_series_total counter\n"
        "ward:metrics_dropped_series_total 0\n"
        "# HELP ward:req_total Requests.\\nSecond line \\\\ here.\n"
        "# TYPE ward:req_total counter\n"
        "ward:req_total{finished_reason=\"stop\"} 2\n"
        "ward:req_total{finished_reason=\"a\\\"b\\\\c\\nd\"} 1\n"
        "# HELP ward:running Running.\n"
        "# TYPE ward:running gauge\n"
        "ward:running 2\n"
        "# HELP ward:lat_seconds Latency.\n"
        "# TYPE ward:lat_seconds histogram\n"
        "ward:lat_seconds_bucket{le=\"0.5\"} 1\n"
        "ward:lat_seconds_bucket{le=\"1\"} 2\n"
        "ward:lat_seconds_bucket{le=\"+Inf\"} 3\n"
        "ward:lat_seconds_sum 6\n"
        "ward:lat_seconds_count 3\n";
    if (strcmp(t, want) != 0)
        fail_msg("got:\n%s\nwant:\n%s", t, want);
    assert_int_equal(len, strlen(want));
    assert_valid(t);
    free(t);
    metrics_registry_free(r);
}

static void test_vllm_set(void **state)
{
    (void)state;
    metrics_registry *r = metrics_registry_new();
    metrics_vllm m;
    assert_int_equal(metrics_vllm_init(&m, r, "llama3", 4096), 0);
    metrics_vllm m2;
    assert_int_equal(metrics_vllm_init(&m2, r, "llama3", 4096), 0); /* idempotent */
    assert_ptr_equal(m.prompt_tokens_total, m2.prompt_tokens_total);
    metrics_vllm_add(&m, m.prompt_tokens_total, 6);
    metrics_vllm_add(&m, m.generation_tokens_total, 128);
    metrics_vllm_observe(&m, m.time_to_first_token_seconds, 0.03);
    metrics_vllm_observe(&m, m.time_per_output_token_seconds, 0.02);
    metrics_vllm_request_done(&m, "length", 6, 128, 3.5, 0.01, 1, 128);
    char *t = metrics_render(r, NULL);
    assert_valid(t);
    static const char *const must[] = {
        "# TYPE ward:num_requests_running gauge\n",
        "ward:num_requests_running{model_name=\"llama3\"} 0\n",
        "ward:num_requests_waiting{model_name=\"llama3\"} 0\n",
        "ward:prompt_tokens_total{model_name=\"llama3\"} 6\n",
        "ward:generation_tokens_total{model_name=\"llama3\"} 128\n",
        "ward:request_success_total{model_name=\"llama3\",finished_reason=\"length\"} 1\n",
        "# TYPE ward:time_to_first_token_seconds histogram\n",
        "ward:time_to_first_token_seconds_bucket{model_name=\"llama3\",le=\"0.04\"} 1\n",
        "ward:time_to_first_token_seconds_bucket{model_name=\"llama3\",le=\"0.02\"} 0\n",
        "ward:time_per_output_token_seconds_count{model_name=\"llama3\"} 1\n",
        "ward:e2e_request_latency_seconds_bucket{model_name=\"llama3\",le=\"5\"} 1\n",
        "ward:e2e_request_latency_seconds_sum{model_name=\"llama3\"} 3.5\n",
        "ward:request_prompt_tokens_bucket{model_name=\"llama3\",le=\"10\"} 1\n",
        "ward:request_generation_tokens_bucket{model_name=\"llama3\",le=\"100\"} 0\n",
        "ward:request_generation_tokens_bucket{model_name=\"llama3\",le=\"200\"} 1\n",
        "ward:request_params_max_tokens_count{model_name=\"llama3\"} 1\n",
        "# HELP ward:e2e_request_latency_seconds ",
    };
    for (size_t i = 0; i < sizeof must / sizeof must[0]; i++)
        if (!strstr(t, must[i]))
            fail_msg("missing: %s\n%s", must[i], t);
    /* token buckets stop at max_model_len */
    assert_non_null(strstr(t, "ward:request_prompt_tokens_bucket{model_name=\"llama3\",le=\"2000\"}"));
    assert_null(strstr(t, "ward:request_prompt_tokens_bucket{model_name=\"llama3\",le=\"5000\"}"));
    free(t);
    metrics_registry_free(r);
}

static void test_series_limit(void **state)
{
    (void)state;
    metrics_registry *r = metrics_registry_new();
    const char *l[] = {"k"};
    metrics_family *c = metrics_counter(r, "many_total", "Many.", l, 1);
    char v[32];
    const char *vals[] = {v};
    for (int i = 0; i < METRICS_MAX_SERIES + 10; i++) {
        snprintf(v, sizeof v, "v%d", i);
        metrics_add(c, vals, 1);
    }
    snprintf(v, sizeof v, "v%d", METRICS_MAX_SERIES + 5);
    assert_true(metrics_get(c, vals) == 0);
    snprintf(v, sizeof v, "v%d", 3);
    assert_true(metrics_get(c, vals) == 1);
    metrics_family *d = metrics_counter(r, "ward:metrics_dropped_series_total", "", NULL, 0);
    assert_true(metrics_get(d, NULL) == 10);
    /* over-long label values are truncated, not rejected */
    char big[METRICS_MAX_LABEL_VALUE * 2];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    metrics_family *g = metrics_gauge(r, "g", "G.", l, 1);
    const char *bv[] = {big};
    metrics_set(g, bv, 1);
    char *t = metrics_render(r, NULL);
    assert_valid(t);
    free(t);
    /* NULL families are no-ops */
    metrics_add(NULL, NULL, 1);
    metrics_observe(NULL, NULL, 1);
    metrics_set(NULL, NULL, 1);
    metrics_registry_free(r);
}

static metrics_family *g_conc;
static void *worker(void *arg)
{
    (void)arg;
    const char *v[] = {"a"};
    for (int i = 0; i < 10000; i++)
        metrics_add(g_conc, v, 1);
    return NULL;
}

static int g_collected;
static void collector(void *ud) { g_collected += *(int *)ud; }

static void test_concurrency_and_collect(void **state)
{
    (void)state;
    metrics_registry *r = metrics_registry_new();
    const char *l[] = {"k"};
    g_conc = metrics_counter(r, "c_total", "C.", l, 1);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, worker, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    const char *v[] = {"a"};
    assert_true(metrics_get(g_conc, v) == 40000);
    int one = 1;
    assert_int_equal(metrics_on_collect(r, collector, &one), 0);
    free(metrics_render(r, NULL));
    free(metrics_render(r, NULL));
    assert_int_equal(g_collected, 2);
    metrics_registry_free(r);
    assert_non_null(metrics_global());
    assert_ptr_equal(metrics_global(), metrics_global());
}

static void test_buckets_125(void **state)
{
    (void)state;
    double b[10];
    size_t n = metrics_buckets_125(100, b, 10);
    assert_int_equal(n, 7);
    assert_true(b[0] == 1 && b[1] == 2 && b[2] == 5 && b[3] == 10 && b[6] == 100);
    assert_int_equal(metrics_buckets_125(1e12, b, 10), 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registration_rules), cmocka_unit_test(test_exact_text),
        cmocka_unit_test(test_vllm_set),           cmocka_unit_test(test_series_limit),
        cmocka_unit_test(test_concurrency_and_collect), cmocka_unit_test(test_buckets_125),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
