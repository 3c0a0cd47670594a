/* metrics: a thread-safe Prometheus registry (counters, gauges, histograms
 * with labels) and its text exposition (format 0.0.4, with # HELP and # TYPE
 * lines), plus the vLLM metric set under the "ward:" prefix.
 *
 * Use: register a family once (metrics_counter/gauge/histogram; registering
 * the same name again with the same type and labels returns the same family,
 * so modules need no coordination), then update it from any thread. Updates
 * take the registry's mutex briefly; rendering takes it for the whole walk.
 * Every update function accepts a NULL family and does nothing, so callers do
 * not have to check registration results on hot paths.
 *
 * Cardinality is bounded: a family holds at most METRICS_MAX_SERIES label
 * combinations; updates for new combinations beyond it are dropped (and
 * counted in ward:metrics_dropped_series_total).
 *
 * Ownership: the registry owns its families; family pointers stay valid until
 * metrics_registry_free(). Name, help and label strings are copied.
 * metrics_global() is a process-wide registry that is never freed.
 */
#ifndef WARD_METRICS_H
#define WARD_METRICS_H

#include <stddef.h>

#define METRICS_MAX_FAMILIES 128      /* every module's metrics together stay far below */
#define METRICS_MAX_LABELS 4          /* per family */
#define METRICS_MAX_SERIES 256        /* label combinations per family: bounds memory and scrape size */
#define METRICS_MAX_BUCKETS 40        /* histogram buckets (vLLM's largest set has 22) */
#define METRICS_MAX_LABEL_VALUE 128   /* bytes; longer values are truncated */
#define METRICS_MAX_NAME 128          /* metric and label name bytes */
#define METRICS_MAX_HELP 512          /* help text bytes */

typedef enum { METRICS_COUNTER = 0, METRICS_GAUGE, METRICS_HISTOGRAM } metrics_type;

typedef struct metrics_registry metrics_registry;
typedef struct metrics_family metrics_family;

metrics_registry *metrics_registry_new(void);
void metrics_registry_free(metrics_registry *r);
metrics_registry *metrics_global(void);

/* Registration. labels: n_labels label names (may be NULL when 0). Returns
 * NULL on an invalid name, a clash with an existing family of another type or
 * label set, too many families, or no memory. Histogram buckets must be
 * finite and strictly increasing (+Inf is implicit). */
metrics_family *metrics_counter(metrics_registry *r, const char *name, const char *help,
                                const char *const *labels, size_t n_labels);
metrics_family *metrics_gauge(metrics_registry *r, const char *name, const char *help,
                              const char *const *labels, size_t n_labels);
metrics_family *metrics_histogram(metrics_registry *r, const char *name, const char *help,
                                  const char *const *labels, size_t n_labels,
                                  const double *buckets, size_t n_buckets);

/* Updates. values: one per label name (NULL when the family has none).
 * metrics_add on a counter ignores negative deltas (counters only go up). */
void metrics_add(metrics_family *f, const char *const *values, double delta);
void metrics_set(metrics_family *f, const char *const *values, double v);   /* gauges */
void metrics_observe(metrics_family *f, const char *const *values, double v); /* histograms */

/* Current value (counter/gauge) or observation count (histogram); 0 if the
 * series does not exist. For tests and internal checks. */
double metrics_get(metrics_family *f, const char *const *values);

/* Callback run at the start of every render, before the lock is taken, to
 * refresh gauges that are read from elsewhere (e.g. queue lengths). At most
 * METRICS_MAX_COLLECTORS. Returns 0 or -1. */
#define METRICS_MAX_COLLECTORS 8
int metrics_on_collect(metrics_registry *r, void (*fn)(void *ud), void *ud);

/* Text exposition of every family, sorted by registration order. Returns a
 * malloc'd NUL-terminated string (length in *len when len != NULL) or NULL. */
char *metrics_render(metrics_registry *r, size_t *len);
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Bucket helpers: vLLM's 1-2-5 series up to max (inclusive): 1,2,5,10,20,...
 * Returns the number written (at most cap). */
size_t metrics_buckets_125(double max, double *out, size_t cap);

/* ---- the vLLM set, under "ward:" with label model_name ---- */
typedef struct metrics_vllm {
    char model_name[METRICS_MAX_LABEL_VALUE];
    metrics_family *num_requests_running;      /* gauge */
    metrics_family *num_requests_waiting;      /* gauge */
    metrics_family *prompt_tokens_total;       /* counter */
    metrics_family *generation_tokens_total;   /* counter */
    metrics_family *request_success_total;     /* counter {model_name, finished_reason} */
    metrics_family *num_preemptions_total;     /* counter */
    metrics_family *time_to_first_token_seconds;   /* histogram */
    metrics_family *time_per_output_token_seconds; /* histogram */
    metrics_family *e2e_request_latency_seconds;   /* histogram */
    metrics_family *request_queue_time_seconds;    /* histogram */
    metrics_family *request_prompt_tokens;     /* histogram (tokens) */
    metrics_family *request_generation_tokens; /* histogram (tokens) */
    metrics_family *request_params_n;          /* histogram */
    metrics_family *request_params_max_tokens; /* histogram */
} metrics_vllm;

/* Registers (or finds) the set in r. max_model_len sizes the token-count
 * buckets. Returns 0, or -1 if any family could not be registered. */
int metrics_vllm_init(metrics_vllm *m, metrics_registry *r, const char *model_name, long max_model_len);

/* Convenience updates with the model_name label filled in. queue_s < 0 means
 * not measured (not observed). */
void metrics_vllm_request_done(const metrics_vllm *m, const char *finished_reason, long prompt_tokens,
                               long generation_tokens, double e2e_s, double queue_s, int n, long max_tokens);
void metrics_vllm_set(const metrics_vllm *m, metrics_family *f, double v);
void metrics_vllm_add(const metrics_vllm *m, metrics_family *f, double v);
void metrics_vllm_observe(const metrics_vllm *m, metrics_family *f, double v);

#endif
