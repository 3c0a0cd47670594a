/* metrics: see metrics.h. */
#include "api/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "util/buf.h"

typedef struct series {
    char *values[METRICS_MAX_LABELS];
    double value;          /* counter / gauge */
    double sum;            /* histogram */
    uint64_t count;        /* histogram */
    uint64_t *buckets;     /* histogram: per-bucket (not cumulative) counts, n_buckets + 1 */
} series;

struct metrics_family {
    metrics_registry *reg;
    metrics_type type;
    char *name, *help;
    char *labels[METRICS_MAX_LABELS];
    size_t n_labels;
    double *bounds;
    size_t n_bounds;
    series *series;
    size_t n_series;
};

struct metrics_registry {
    pthread_mutex_t mu;
    metrics_family *fam[METRICS_MAX_FAMILIES];
    size_t n_fam;
    struct { void (*fn)(void *); void *ud; } coll[METRICS_MAX_COLLECTORS];
    size_t n_coll;
    metrics_family *dropped; /* ward:metrics_dropped_series_total */
};

static void family_free(metrics_family *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n_series; i++) {
        for (size_t j = 0; j < f->n_labels; j++)
            free(f->series[i].values[j]);
        free(f->series[i].buckets);
    }
    free(f->series);
    for (size_t j = 0; j < f->n_labels; j++)
        free(f->labels[j]);
    free(f->bounds);
    free(f->name);
    free(f->help);
    free(f);
}

static metrics_family *register_family(metrics_registry *r, metrics_type type, const char *name, const char *help,
                                       const char *const *labels, size_t n_labels, const double *buckets,
                                       size_t n_buckets);

metrics_registry *metrics_registry_new(void)
{
    metrics_registry *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    pthread_mutex_init(&r->mu, NULL);
    r->dropped = register_family(r, METRICS_COUNTER, "ward:metrics_dropped_series_total",
                                 "Metric updates dropped because a family reached its series limit.", NULL, 0, NULL,
                                 0);
    return r;
}

void metrics_registry_free(metrics_registry *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_fam; i++)
        family_free(r->fam[i]);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static metrics_registry *g_global;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static void global_init(void) { g_global = metrics_registry_new(); }

metrics_registry *metrics_global(void)
{
    pthread_once(&g_once, global_init);
    return g_global;
}

/* [a-zA-Z_:][a-zA-Z0-9_:]* for metrics; no ':' for labels, and no "__" prefix. */
static int valid_name(const char *s, int label)
{
    if (!s || !*s || strlen(s) > METRICS_MAX_NAME)
        return 0;
    if (label && s[0] == '_' && s[1] == '_')
        return 0;
    for (size_t i = 0; s[i]; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (!label && c == ':') ||
                 (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return 0;
    }
    return 1;
}

static metrics_family *find_locked(metrics_registry *r, const char *name)
{
    for (size_t i = 0; i < r->n_fam; i++)
        if (strcmp(r->fam[i]->name, name) == 0)
            return r->fam[i];
    return NULL;
}

static int same_shape(const metrics_family *f, metrics_type type, const char *const *labels, size_t n_labels)
{
    if (f->type != type || f->n_labels != n_labels)
        return 0;
    for (size_t i = 0; i < n_labels; i++)
        if (strcmp(f->labels[i], labels[i]) != 0)
            return 0;
    return 1;
}

static series *series_find_locked(metrics_family *f, const char *const *values, int create);

static metrics_family *register_family(metrics_registry *r, metrics_type type, const char *name, const char *help,
                                       const char *const *labels, size_t n_labels, const double *buckets,
                                       size_t n_buckets)
{
    if (!r || !valid_name(name, 0) || n_labels > METRICS_MAX_LABELS || (n_labels && !labels))
        return NULL;
    for (size_t i = 0; i < n_labels; i++) {
        if (!valid_name(labels[i], 1) || (type == METRICS_HISTOGRAM && strcmp(labels[i], "le") == 0))
            return NULL;
        for (size_t j = 0; j < i; j++)
            if (strcmp(labels[i], labels[j]) == 0)
                return NULL;
    }
    if (type == METRICS_HISTOGRAM) {
        if (n_buckets > METRICS_MAX_BUCKETS || (n_buckets && !buckets))
            return NULL;
        for (size_t i = 0; i < n_buckets; i++)
            if (!isfinite(buckets[i]) || (i > 0 && !(buckets[i] > buckets[i - 1])))
                return NULL;
    }
    pthread_mutex_lock(&r->mu);
    metrics_family *f = find_locked(r, name);
    if (f) {
        pthread_mutex_unlock(&r->mu);
        return same_shape(f, type, labels, n_labels) ? f : NULL;
    }
    if (r->n_fam >= METRICS_MAX_FAMILIES) {
        pthread_mutex_unlock(&r->mu);
        return NULL;
    }
    f = calloc(1, sizeof *f);
    if (!f)
        goto fail;
    f->reg = r;
    f->type = type;
    f->name = strdup(name);
    f->help = strndup(help ? help : "", METRICS_MAX_HELP);
    if (!f->name || !f->help)
        goto fail;
    for (size_t i = 0; i < n_labels; i++) {
        f->labels[i] = strdup(labels[i]);
        if (!f->labels[i])
            goto fail;
        f->n_labels = i + 1;
    }
    if (type == METRICS_HISTOGRAM && n_buckets) {
        f->bounds = malloc(n_buckets * sizeof *f->bounds);
        if (!f->bounds)
            goto fail;
        memcpy(f->bounds, buckets, n_buckets * sizeof *f->bounds);
        f->n_bounds = n_buckets;
    }
    f->series = calloc(METRICS_MAX_SERIES, sizeof *f->series);
    if (!f->series)
        goto fail;
    /* A family without labels always shows its (zero) sample. */
    if (n_labels == 0 && !series_find_locked(f, NULL, 1))
        goto fail;
    r->fam[r->n_fam++] = f;
    pthread_mutex_unlock(&r->mu);
    return f;
fail:
    pthread_mutex_unlock(&r->mu);
    family_free(f);
    return NULL;
}

metrics_family *metrics_counter(metrics_registry *r, const char *name, const char *help, const char *const *labels,
                                size_t n_labels)
{
    return register_family(r, METRICS_COUNTER, name, help, labels, n_labels, NULL, 0);
}

metrics_family *metrics_gauge(metrics_registry *r, const char *name, const char *help, const char *const *labels,
                              size_t n_labels)
{
    return register_family(r, METRICS_GAUGE, name, help, labels, n_labels, NULL, 0);
}

metrics_family *metrics_histogram(metrics_registry *r, const char *name, const char *help,
                                  const char *const *labels, size_t n_labels, const double *buckets,
                                  size_t n_buckets)
{
    return register_family(r, METRICS_HISTOGRAM, name, help, labels, n_labels, buckets, n_buckets);
}

static int value_eq(const char *stored, const char *given)
{
    return strncmp(stored, given ? given : "", METRICS_MAX_LABEL_VALUE) == 0;
}

static series *series_find_locked(metrics_family *f, const char *const *values, int create)
{
    for (size_t i = 0; i < f->n_series; i++) {
        size_t j = 0;
        while (j < f->n_labels && value_eq(f->series[i].values[j], values[j]))
            j++;
        if (j == f->n_labels)
            return &f->series[i];
    }
    if (!create)
        return NULL;
    if (f->n_series >= METRICS_MAX_SERIES) {
        metrics_registry *r = f->reg;
        if (r->dropped && r->dropped != f && r->dropped->n_series)
            r->dropped->series[0].value += 1;
        return NULL;
    }
    series *s = &f->series[f->n_series];
    memset(s, 0, sizeof *s);
    for (size_t j = 0; j < f->n_labels; j++) {
        s->values[j] = strndup(values[j] ? values[j] : "", METRICS_MAX_LABEL_VALUE);
        if (!s->values[j])
            goto fail;
    }
    if (f->type == METRICS_HISTOGRAM) {
        s->buckets = calloc(f->n_bounds + 1, sizeof *s->buckets);
        if (!s->buckets)
            goto fail;
    }
    f->n_series++;
    return s;
fail:
    for (size_t j = 0; j < f->n_labels; j++)
        free(s->values[j]);
    memset(s, 0, sizeof *s);
    return NULL;
}

void metrics_add(metrics_family *f, const char *const *values, double delta)
{
    if (!f || f->type == METRICS_HISTOGRAM || (f->n_labels && !values) || isnan(delta))
        return;
    if (f->type == METRICS_COUNTER && delta < 0)
        return;
    pthread_mutex_lock(&f->reg->mu);
    series *s = series_find_locked(f, values, 1);
    if (s)
        s->value += delta;
    pthread_mutex_unlock(&f->reg->mu);
}

void metrics_set(metrics_family *f, const char *const *values, double v)
{
    if (!f || f->type != METRICS_GAUGE || (f->n_labels && !values))
        return;
    pthread_mutex_lock(&f->reg->mu);
    series *s = series_find_locked(f, values, 1);
    if (s)
        s->value = v;
    pthread_mutex_unlock(&f->reg->mu);
}

void metrics_observe(metrics_family *f, const char *const *values, double v)
{
    if (!f || f->type != METRICS_HISTOGRAM || (f->n_labels && !values) || isnan(v))
        return;
    pthread_mutex_lock(&f->reg->mu);
    series *s = series_find_locked(f, values, 1);
    if (s) {
        size_t b = 0;
        while (b < f->n_bounds && v > f->bounds[b])
            b++;
        s->buckets[b]++;
        s->count++;
        s->sum += v;
    }
    pthread_mutex_unlock(&f->reg->mu);
}

double metrics_get(metrics_family *f, const char *const *values)
{
    if (!f || (f->n_labels && !values))
        return 0;
    pthread_mutex_lock(&f->reg->mu);
    series *s = series_find_locked(f, values, 0);
    double v = !s ? 0 : f->type == METRICS_HISTOGRAM ? (double)s->count : s->value;
    pthread_mutex_unlock(&f->reg->mu);
    return v;
}

int metrics_on_collect(metrics_registry *r, void (*fn)(void *ud), void *ud)
{
    if (!r || !fn)
        return -1;
    pthread_mutex_lock(&r->mu);
    int rc = -1;
    if (r->n_coll < METRICS_MAX_COLLECTORS) {
        r->coll[r->n_coll].fn = fn;
        r->coll[r->n_coll].ud = ud;
        r->n_coll++;
        rc = 0;
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

/* ---- rendering ---- */

/* The exposition is built in a util/buf (no size limit beyond memory: the
 * registry itself is bounded). */
typedef buf sbuf;
#define sb_put buf_put
#define sb_str buf_puts
#define sb_fmt buf_printf

static void sb_num(sbuf *b, double v)
{
    if (isnan(v))
        sb_str(b, "NaN");
    else if (isinf(v))
        sb_str(b, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 1e15)
        sb_fmt(b, "%.0f", v);
    else {
        /* shortest form that reads back exactly ("0.04", not 0.040000000000000001) */
        char tmp[40];
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(tmp, sizeof tmp, "%.*g", prec, v);
            if (strtod(tmp, NULL) == v)
                break;
        }
        sb_str(b, tmp);
    }
}

/* HELP escapes \ and newline; label values also escape the double quote. */
static void sb_escaped(sbuf *b, const char *s, int quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            sb_str(b, "\\\\");
        else if (*s == '\n')
            sb_str(b, "\\n");
        else if (quote && *s == '"')
            sb_str(b, "\\\"");
        else
            sb_put(b, s, 1);
    }
}

static void sb_labels(sbuf *b, const metrics_family *f, const series *s, const char *le)
{
    if (f->n_labels == 0 && !le)
        return;
    sb_str(b, "{");
    for (size_t j = 0; j < f->n_labels; j++) {
        if (j)
            sb_str(b, ",");
        sb_str(b, f->labels[j]);
        sb_str(b, "=\"");
        sb_escaped(b, s->values[j], 1);
        sb_str(b, "\"");
    }
    if (le) {
        if (f->n_labels)
            sb_str(b, ",");
        sb_str(b, "le=\"");
        sb_str(b, le);
        sb_str(b, "\"");
    }
    sb_str(b, "}");
}

static void render_family(sbuf *b, const metrics_family *f)
{
    static const char *const tn[] = {"counter", "gauge", "histogram"};
    sb_str(b, "# HELP ");
    sb_str(b, f->name);
    sb_str(b, " ");
    sb_escaped(b, f->help, 0);
    sb_str(b, "\n# TYPE ");
    sb_str(b, f->name);
    sb_str(b, " ");
    sb_str(b, tn[f->type]);
    sb_str(b, "\n");
    for (size_t i = 0; i < f->n_series; i++) {
        const series *s = &f->series[i];
        if (f->type != METRICS_HISTOGRAM) {
            sb_str(b, f->name);
            sb_labels(b, f, s, NULL);
            sb_str(b, " ");
            sb_num(b, s->value);
            sb_str(b, "\n");
            continue;
        }
        uint64_t cum = 0;
        for (size_t k = 0; k <= f->n_bounds; k++) {
            char le[48];
            cum += s->buckets[k];
            if (k < f->n_bounds) {
                sbuf tmp = {0};
                sb_num(&tmp, f->bounds[k]);
                snprintf(le, sizeof le, "%s", tmp.p ? tmp.p : "0");
                free(tmp.p);
            } else {
                snprintf(le, sizeof le, "+Inf");
            }
            sb_str(b, f->name);
            sb_str(b, "_bucket");
            sb_labels(b, f, s, le);
            sb_fmt(b, " %llu\n", (unsigned long long)cum);
        }
        sb_str(b, f->name);
        sb_str(b, "_sum");
        sb_labels(b, f, s, NULL);
        sb_str(b, " ");
        sb_num(b, s->sum);
        sb_str(b, "\n");
        sb_str(b, f->name);
        sb_str(b, "_count");
        sb_labels(b, f, s, NULL);
        sb_fmt(b, " %llu\n", (unsigned long long)s->count);
    }
}

char *metrics_render(metrics_registry *r, size_t *len)
{
    if (!r)
        return NULL;
    /* Collectors update gauges through the public API, so run them unlocked. */
    size_t nc;
    void (*fns[METRICS_MAX_COLLECTORS])(void *);
    void *uds[METRICS_MAX_COLLECTORS];
    pthread_mutex_lock(&r->mu);
    nc = r->n_coll;
    for (size_t i = 0; i < nc; i++) {
        fns[i] = r->coll[i].fn;
        uds[i] = r->coll[i].ud;
    }
    pthread_mutex_unlock(&r->mu);
    for (size_t i = 0; i < nc; i++)
        fns[i](uds[i]);

    sbuf b;
    buf_init(&b, 0);
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n_fam; i++)
        render_family(&b, r->fam[i]);
    pthread_mutex_unlock(&r->mu);
    if (buf_error(&b) != BUF_OK) {
        buf_free(&b);
        return NULL;
    }
    return buf_take(&b, len);
}

size_t metrics_buckets_125(double max, double *out, size_t cap)
{
    size_t n = 0;
    static const double m[] = {1, 2, 5};
    for (double exp = 1; n < cap; exp *= 10) {
        for (size_t i = 0; i < 3 && n < cap; i++) {
            double v = m[i] * exp;
            if (v > max)
                return n;
            out[n++] = v;
        }
    }
    return n;
}

/* ---- the vLLM set ---- */

/* Latency buckets are vLLM's (v1/metrics/loggers.py). */
static const double k_ttft[] = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
                                1.0,   2.5,   5.0,  7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};
static const double k_tpot[] = {0.01, 0.025, 0.05, 0.075, 0.1,  0.15, 0.2,  0.3,  0.4,  0.5,
                                0.75, 1.0,   2.5,  5.0,   7.5, 10.0, 20.0, 40.0, 80.0};
static const double k_e2e[] = {0.3,  0.5,  0.8,  1.0,  1.5,  2.0,   2.5,   5.0,   10.0,   15.0,  20.0,
                               30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

int metrics_vllm_init(metrics_vllm *m, metrics_registry *r, const char *model_name, long max_model_len)
{
    memset(m, 0, sizeof *m);
    snprintf(m->model_name, sizeof m->model_name, "%s", model_name ? model_name : "");
    static const char *const L[] = {"model_name"};
    static const char *const LF[] = {"model_name", "finished_reason"};
    double tok[METRICS_MAX_BUCKETS];
    size_t ntok = metrics_buckets_125(max_model_len > 0 ? (double)max_model_len : 1e6, tok, METRICS_MAX_BUCKETS);
    static const double k_n[] = {1, 2, 5, 10, 20};

    m->num_requests_running =
        metrics_gauge(r, "ward:num_requests_running", "Number of requests in model execution batches.", L, 1);
    m->num_requests_waiting =
        metrics_gauge(r, "ward:num_requests_waiting", "Number of requests waiting to be processed.", L, 1);
    m->prompt_tokens_total = metrics_counter(r, "ward:prompt_tokens_total", "Number of prefill tokens processed.", L, 1);
    m->generation_tokens_total =
        metrics_counter(r, "ward:generation_tokens_total", "Number of generation tokens processed.", L, 1);
    m->request_success_total =
        metrics_counter(r, "ward:request_success_total", "Count of successfully processed requests.", LF, 2);
    m->num_preemptions_total =
        metrics_counter(r, "ward:num_preemptions_total", "Cumulative number of preemption from the engine.", L, 1);
    m->time_to_first_token_seconds = metrics_histogram(r, "ward:time_to_first_token_seconds",
                                                       "Histogram of time to first token in seconds.", L, 1, k_ttft,
                                                       NELEM(k_ttft));
    m->time_per_output_token_seconds = metrics_histogram(r, "ward:time_per_output_token_seconds",
                                                         "Histogram of time per output token in seconds.", L, 1,
                                                         k_tpot, NELEM(k_tpot));
    m->e2e_request_latency_seconds = metrics_histogram(r, "ward:e2e_request_latency_seconds",
                                                       "Histogram of end to end request latency in seconds.", L, 1,
                                                       k_e2e, NELEM(k_e2e));
    m->request_queue_time_seconds = metrics_histogram(r, "ward:request_queue_time_seconds",
                                                      "Histogram of time spent in WAITING phase for request.", L, 1,
                                                      k_e2e, NELEM(k_e2e));
    m->request_prompt_tokens = metrics_histogram(r, "ward:request_prompt_tokens",
                                                 "Number of prefill tokens processed.", L, 1, tok, ntok);
    m->request_generation_tokens = metrics_histogram(r, "ward:request_generation_tokens",
                                                     "Number of generation tokens processed.", L, 1, tok, ntok);
    m->request_params_n =
        metrics_histogram(r, "ward:request_params_n", "Histogram of the n request parameter.", L, 1, k_n, NELEM(k_n));
    m->request_params_max_tokens = metrics_histogram(r, "ward:request_params_max_tokens",
                                                     "Histogram of the max_tokens request parameter.", L, 1, tok,
                                                     ntok);
    metrics_family **all[] = {&m->num_requests_running, &m->num_requests_waiting, &m->prompt_tokens_total,
                              &m->generation_tokens_total, &m->request_success_total, &m->num_preemptions_total,
                              &m->time_to_first_token_seconds, &m->time_per_output_token_seconds,
                              &m->e2e_request_latency_seconds, &m->request_queue_time_seconds,
                              &m->request_prompt_tokens, &m->request_generation_tokens, &m->request_params_n,
                              &m->request_params_max_tokens};
    for (size_t i = 0; i < NELEM(all); i++)
        if (!*all[i])
            return -1;
    /* Show the single-label series at zero from the start, as vLLM does. */
    const char *v[] = {m->model_name};
    metrics_set(m->num_requests_running, v, 0);
    metrics_set(m->num_requests_waiting, v, 0);
    metrics_add(m->prompt_tokens_total, v, 0);
    metrics_add(m->generation_tokens_total, v, 0);
    metrics_add(m->num_preemptions_total, v, 0);
    return 0;
}

void metrics_vllm_set(const metrics_vllm *m, metrics_family *f, double v)
{
    const char *vals[] = {m->model_name};
    metrics_set(f, vals, v);
}

void metrics_vllm_add(const metrics_vllm *m, metrics_family *f, double v)
{
    const char *vals[] = {m->model_name};
    metrics_add(f, vals, v);
}

void metrics_vllm_observe(const metrics_vllm *m, metrics_family *f, double v)
{
    const char *vals[] = {m->model_name};
    metrics_observe(f, vals, v);
}

void metrics_vllm_request_done(const metrics_vllm *m, const char *finished_reason, long prompt_tokens,
                               long generation_tokens, double e2e_s, double queue_s, int n, long max_tokens)
{
    const char *vals[] = {m->model_name};
    const char *fr[] = {m->model_name, finished_reason ? finished_reason : "stop"};
    metrics_add(m->request_success_total, fr, 1);
    metrics_observe(m->request_prompt_tokens, vals, (double)prompt_tokens);
    metrics_observe(m->request_generation_tokens, vals, (double)generation_tokens);
    metrics_observe(m->e2e_request_latency_seconds, vals, e2e_s);
    if (queue_s >= 0) /* negative: not measured */
        metrics_observe(m->request_queue_time_seconds, vals, queue_s);
    metrics_observe(m->request_params_n, vals, (double)n);
    if (max_tokens >= 0)
        metrics_observe(m->request_params_max_tokens, vals, (double)max_tokens);
}
