/* scheduler: continuous batching over one engine. See scheduler.h. */
#include "engine/scheduler.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct job {
    struct job *next;
    uint64_t id;
    sched_request req;        /* prompt and stop_ids point at the copies below */
    int32_t *prompt;
    int32_t stop_ids[SCHED_MAX_STOP_IDS];
    sampler *smp;
    int slot;                 /* -1 until admitted */
    int n_prefilled;          /* prompt tokens already in the KV cache */
    int n_output;
    int32_t pending;          /* sampled token not yet fed back, or -1 */
    int cancelled;            /* set under the lock */
    /* per-step bookkeeping */
    int step_first_row, step_rows, step_logit_row0;
} job;

struct sched {
    engine *e;
    sched_params p;
    int32_t n_vocab;
    int n_ctx, n_slots;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping;
    uint64_t next_id;
    job *waiting_head, *waiting_tail; /* FIFO, under mu */
    int n_waiting;
    job *running;                     /* scheduler thread only (list), count under mu */
    int n_running;
    uint8_t *slot_used;
    uint64_t steps, last_batch, kv_used;
    /* step buffers, scheduler thread only */
    int cap_rows;
    int32_t *b_tok, *b_pos, *b_seq;
    uint8_t *b_want;
    size_t cap_logits;                /* rows */
    float *logits;
};

sched_params sched_default_params(void)
{
    sched_params p;
    memset(&p, 0, sizeof p);
    p.max_queue = SCHED_DEFAULT_MAX_QUEUE;
    p.step_tokens = SCHED_DEFAULT_STEP_TOKENS;
    return p;
}

static void job_free(job *j)
{
    if (!j)
        return;
    sampler_free(j->smp);
    free(j->prompt);
    free(j);
}

static void finish(sched *s, job *j, sched_finish why, int32_t stop_token, const char *err)
{
    sched_done d = {why, stop_token, j->req.n_prompt, j->n_output, err};
    if (j->slot >= 0) {
        engine_seq_reset(s->e, j->slot);
        s->slot_used[j->slot] = 0;
        j->slot = -1;
    }
    j->req.on_done(j->req.ud, &d);
}

static int is_eog(const sched *s, int32_t t)
{
    for (int i = 0; i < s->p.n_eog; i++)
        if (s->p.eog[i] == t)
            return 1;
    return 0;
}

static int is_stop_id(const job *j, int32_t t)
{
    for (int i = 0; i < j->req.n_stop_ids; i++)
        if (j->stop_ids[i] == t)
            return 1;
    return 0;
}

/* Grows the step buffers to hold rows entries and logit_rows rows of logits. */
static int ensure_buffers(sched *s, int rows, int logit_rows)
{
    if (rows > s->cap_rows) {
        int32_t *t = realloc(s->b_tok, (size_t)rows * sizeof *t);
        if (t) s->b_tok = t;
        int32_t *p = realloc(s->b_pos, (size_t)rows * sizeof *p);
        if (p) s->b_pos = p;
        int32_t *q = realloc(s->b_seq, (size_t)rows * sizeof *q);
        if (q) s->b_seq = q;
        uint8_t *w = realloc(s->b_want, (size_t)rows);
        if (w) s->b_want = w;
        if (!t || !p || !q || !w)
            return -1;
        s->cap_rows = rows;
    }
    if ((size_t)logit_rows > s->cap_logits) {
        size_t n = (size_t)logit_rows * (size_t)s->n_vocab; /* both bounded: no overflow */
        float *l = realloc(s->logits, n * sizeof *l);
        if (!l)
            return -1;
        s->logits = l;
        s->cap_logits = (size_t)logit_rows;
    }
    return 0;
}

/* Moves waiting jobs into free slots, and drops cancelled ones. Under mu. */
static void admit_locked(sched *s, job **cancelled)
{
    job **pp = &s->waiting_head;
    while (*pp) {
        job *j = *pp;
        if (j->cancelled) {
            *pp = j->next;
            s->n_waiting--;
            j->next = *cancelled;
            *cancelled = j;
            continue;
        }
        int slot = -1;
        for (int i = 0; i < s->n_slots; i++)
            if (!s->slot_used[i]) {
                slot = i;
                break;
            }
        if (slot < 0)
            break; /* FIFO: no overtaking */
        *pp = j->next;
        s->n_waiting--;
        s->slot_used[slot] = 1;
        j->slot = slot;
        /* append to running, keeping arrival order for fairness */
        j->next = NULL;
        job **rp = &s->running;
        while (*rp)
            rp = &(*rp)->next;
        *rp = j;
        s->n_running++;
    }
    s->waiting_tail = NULL;
    for (job *j = s->waiting_head; j; j = j->next)
        s->waiting_tail = j;
}

/* Removes j from the running list. Scheduler thread. */
static void unlink_running(sched *s, job *j)
{
    /* Under mu: sched_cancel walks this list from other threads. */
    pthread_mutex_lock(&s->mu);
    for (job **pp = &s->running; *pp; pp = &(*pp)->next)
        if (*pp == j) {
            *pp = j->next;
            s->n_running--;
            break;
        }
    pthread_mutex_unlock(&s->mu);
}

static void retire(sched *s, job *j, sched_finish why, int32_t stop_token, const char *err)
{
    unlink_running(s, j);
    finish(s, j, why, stop_token, err);
    job_free(j);
}

/* Handles a sampled token for j. Returns 1 if j finished (and was retired). */
static int on_sampled(sched *s, job *j, const sampler_result *r)
{
    int32_t t = r->token;
    if (!j->req.ignore_eos && is_eog(s, t)) {
        j->n_output++;
        retire(s, j, SCHED_FINISH_EOS, t, NULL);
        return 1;
    }
    if (is_stop_id(j, t)) {
        j->n_output++;
        retire(s, j, SCHED_FINISH_STOP_TOKEN, t, NULL);
        return 1;
    }
    sched_token ev = {0, j->n_output, *r};
    j->n_output++;
    if (j->req.on_token(j->req.ud, &ev)) {
        retire(s, j, SCHED_FINISH_STOP, -1, NULL);
        return 1;
    }
    if (j->n_output >= j->req.max_tokens) {
        retire(s, j, SCHED_FINISH_LENGTH, -1, NULL);
        return 1;
    }
    j->pending = t;
    return 0;
}

/* Masks end-of-generation and stop tokens while fewer than min_tokens were produced. */
static void suppress_stops(const sched *s, const job *j, float *row)
{
    if (j->n_output >= j->req.min_tokens)
        return;
    if (!j->req.ignore_eos)
        for (int i = 0; i < s->p.n_eog; i++)
            if (s->p.eog[i] >= 0 && s->p.eog[i] < s->n_vocab)
                row[s->p.eog[i]] = -INFINITY;
    for (int i = 0; i < j->req.n_stop_ids; i++)
        if (j->stop_ids[i] >= 0 && j->stop_ids[i] < s->n_vocab)
            row[j->stop_ids[i]] = -INFINITY;
}

/* One step: build the batch, decode, sample. Returns 0 if there was nothing to do. */
static int step(sched *s)
{
    if (!s->running)
        return 0;
    int budget = s->p.step_tokens;
    int rows = 0, logit_rows = 0;

    /* Finish jobs whose context is full before they take a row. */
    for (job *j = s->running, *nx; j; j = nx) {
        nx = j->next;
        if (j->n_prefilled == j->req.n_prompt && engine_seq_len(s->e, j->slot) >= s->n_ctx)
            retire(s, j, SCHED_FINISH_LENGTH, -1, NULL);
    }
    if (!s->running)
        return 0;

    /* Pass 1: size the step. Decode rows first (one each), then prompt chunks. */
    for (job *j = s->running; j; j = j->next) {
        j->step_rows = 0;
        if (j->n_prefilled == j->req.n_prompt) {
            j->step_rows = 1;
            budget--;
        }
    }
    for (job *j = s->running; j; j = j->next) {
        if (j->n_prefilled < j->req.n_prompt && budget > 0) {
            int left = j->req.n_prompt - j->n_prefilled;
            int take = left < budget ? left : budget;
            if (j->req.prompt_logprobs && take > SCHED_MAX_PROMPT_LOGIT_ROWS)
                take = SCHED_MAX_PROMPT_LOGIT_ROWS;
            j->step_rows = take;
            budget -= take;
        }
    }
    for (job *j = s->running; j; j = j->next) {
        j->step_first_row = rows;
        j->step_logit_row0 = logit_rows;
        rows += j->step_rows;
        if (j->step_rows == 0)
            continue;
        if (j->n_prefilled == j->req.n_prompt)
            logit_rows += 1;
        else if (j->req.prompt_logprobs)
            logit_rows += j->step_rows;
        else if (j->n_prefilled + j->step_rows == j->req.n_prompt)
            logit_rows += 1;
    }
    if (rows == 0)
        return 0;
    if (ensure_buffers(s, rows, logit_rows) != 0) {
        for (job *j = s->running, *nx; j; j = nx) {
            nx = j->next;
            retire(s, j, SCHED_FINISH_ERROR, -1, "out of memory for the batch");
        }
        return 1;
    }

    /* Pass 2: fill the batch. */
    for (job *j = s->running; j; j = j->next) {
        int r = j->step_first_row;
        int base = engine_seq_len(s->e, j->slot);
        if (j->n_prefilled == j->req.n_prompt) {
            s->b_tok[r] = j->pending;
            s->b_pos[r] = base;
            s->b_seq[r] = j->slot;
            s->b_want[r] = 1;
            continue;
        }
        for (int k = 0; k < j->step_rows; k++) {
            int pi = j->n_prefilled + k;
            s->b_tok[r + k] = j->req.prompt[pi];
            s->b_pos[r + k] = base + k;
            s->b_seq[r + k] = j->slot;
            s->b_want[r + k] = j->req.prompt_logprobs || pi == j->req.n_prompt - 1;
        }
    }

    engine_batch b = {rows, s->b_tok, s->b_pos, s->b_seq, s->b_want};
    char err[256];
    if (engine_decode(s->e, &b, s->logits, err, sizeof err) != 0) {
        for (job *j = s->running, *nx; j; j = nx) {
            nx = j->next;
            if (j->step_rows)
                retire(s, j, SCHED_FINISH_ERROR, -1, err);
        }
        return 1;
    }
    s->steps++;
    s->last_batch = (uint64_t)rows;

    /* Pass 3: consume logits. */
    for (job *j = s->running, *nx; j; j = nx) {
        nx = j->next;
        if (j->step_rows == 0)
            continue;
        float *row0 = s->logits + (size_t)j->step_logit_row0 * (size_t)s->n_vocab;
        if (j->n_prefilled == j->req.n_prompt) {
            sampler_result r;
            suppress_stops(s, j, row0);
            if (sampler_sample(j->smp, row0, &r, err, sizeof err) != 0) {
                retire(s, j, SCHED_FINISH_ERROR, -1, err);
                continue;
            }
            on_sampled(s, j, &r);
            continue;
        }
        int start = j->n_prefilled;
        j->n_prefilled += j->step_rows;
        int stopped = 0;
        if (j->req.prompt_logprobs) {
            /* Row k holds the distribution of prompt token start+k+1. */
            for (int k = 0; k < j->step_rows && start + k + 1 < j->req.n_prompt; k++) {
                sched_token ev;
                memset(&ev, 0, sizeof ev);
                ev.is_prompt = 1;
                ev.index = start + k + 1;
                const float *row = row0 + (size_t)k * (size_t)s->n_vocab;
                if (sampler_logprobs(row, s->n_vocab, j->req.prompt[start + k + 1],
                                     j->req.sampling.n_logprobs, &ev.r) != 0) {
                    ev.r.token = j->req.prompt[start + k + 1];
                    ev.r.logprob = -INFINITY;
                }
                if (j->req.on_token(j->req.ud, &ev)) {
                    retire(s, j, SCHED_FINISH_STOP, -1, NULL);
                    stopped = 1;
                    break;
                }
            }
        }
        if (stopped || j->n_prefilled < j->req.n_prompt)
            continue;
        if (j->req.max_tokens == 0) {
            retire(s, j, SCHED_FINISH_LENGTH, -1, NULL);
            continue;
        }
        float *last = j->req.prompt_logprobs ? row0 + (size_t)(j->step_rows - 1) * (size_t)s->n_vocab : row0;
        sampler_result r;
        suppress_stops(s, j, last);
        if (sampler_sample(j->smp, last, &r, err, sizeof err) != 0) {
            retire(s, j, SCHED_FINISH_ERROR, -1, err);
            continue;
        }
        on_sampled(s, j, &r);
    }
    return 1;
}

static void *sched_main(void *arg)
{
    sched *s = arg;
    for (;;) {
        job *cancelled = NULL;
        pthread_mutex_lock(&s->mu);
        while (!s->stopping && !s->running && !s->waiting_head)
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->stopping) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        admit_locked(s, &cancelled);
        /* Cancellation flags of running jobs are read under the lock. */
        job *to_cancel = NULL;
        for (job **pp = &s->running; *pp;) {
            job *j = *pp;
            if (j->cancelled) {
                *pp = j->next;
                s->n_running--;
                j->next = to_cancel;
                to_cancel = j;
            } else {
                pp = &j->next;
            }
        }
        uint64_t used = 0;
        pthread_mutex_unlock(&s->mu);

        for (job *j = cancelled, *nx; j; j = nx) {
            nx = j->next;
            finish(s, j, SCHED_FINISH_CANCELLED, -1, NULL);
            job_free(j);
        }
        for (job *j = to_cancel, *nx; j; j = nx) {
            nx = j->next;
            finish(s, j, SCHED_FINISH_CANCELLED, -1, NULL);
            job_free(j);
        }
        step(s);
        for (job *j = s->running; j; j = j->next)
            used += (uint64_t)engine_seq_len(s->e, j->slot);
        pthread_mutex_lock(&s->mu);
        s->kv_used = used;
        pthread_mutex_unlock(&s->mu);
    }
    /* Shutdown: everyone gets on_done. */
    pthread_mutex_lock(&s->mu);
    job *w = s->waiting_head;
    s->waiting_head = s->waiting_tail = NULL;
    s->n_waiting = 0;
    pthread_mutex_unlock(&s->mu);
    for (job *j = w, *nx; j; j = nx) {
        nx = j->next;
        finish(s, j, SCHED_FINISH_CANCELLED, -1, NULL);
        job_free(j);
    }
    while (s->running)
        retire(s, s->running, SCHED_FINISH_CANCELLED, -1, NULL);
    return NULL;
}

sched *sched_new(engine *e, const sched_params *p, char *err, size_t errlen)
{
    sched *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "scheduler: out of memory");
        return NULL;
    }
    s->e = e;
    s->p = p ? *p : sched_default_params();
    if (s->p.max_queue <= 0)
        s->p.max_queue = SCHED_DEFAULT_MAX_QUEUE;
    if (s->p.step_tokens <= 0)
        s->p.step_tokens = SCHED_DEFAULT_STEP_TOKENS;
    if (s->p.n_eog < 0 || s->p.n_eog > SCHED_MAX_EOG)
        s->p.n_eog = 0;
    s->n_vocab = engine_n_vocab(e);
    s->n_ctx = engine_n_ctx(e);
    s->n_slots = engine_n_seq_max(e);
    if (s->p.step_tokens < s->n_slots)
        s->p.step_tokens = s->n_slots; /* every running sequence gets its decode row */
    s->slot_used = calloc((size_t)s->n_slots, 1);
    if (!s->slot_used) {
        free(s);
        snprintf(err, errlen, "scheduler: out of memory");
        return NULL;
    }
    s->next_id = 1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (pthread_create(&s->thread, NULL, sched_main, s) != 0) {
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        free(s->slot_used);
        free(s);
        snprintf(err, errlen, "scheduler: cannot start thread");
        return NULL;
    }
    return s;
}

void sched_free(sched *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->slot_used);
    free(s->b_tok);
    free(s->b_pos);
    free(s->b_seq);
    free(s->b_want);
    free(s->logits);
    free(s);
}

int sched_submit(sched *s, const sched_request *r, uint64_t *id, int *queue_full,
                 char *err, size_t errlen)
{
    if (queue_full)
        *queue_full = 0;
    if (!r || !r->on_token || !r->on_done) {
        snprintf(err, errlen, "scheduler: request without callbacks");
        return -1;
    }
    if (r->n_prompt < 1 || !r->prompt) {
        snprintf(err, errlen, "the prompt must contain at least one token");
        return -1;
    }
    if (r->n_prompt >= s->n_ctx) {
        snprintf(err, errlen, "the prompt (%d tokens) does not fit the context (%d)", r->n_prompt, s->n_ctx);
        return -1;
    }
    if (r->n_stop_ids < 0 || r->n_stop_ids > SCHED_MAX_STOP_IDS || (r->n_stop_ids && !r->stop_ids)) {
        snprintf(err, errlen, "too many stop token ids (at most %d)", SCHED_MAX_STOP_IDS);
        return -1;
    }
    if (r->max_tokens < 0 || r->min_tokens < 0) {
        snprintf(err, errlen, "max_tokens and min_tokens must be >= 0");
        return -1;
    }
    for (int i = 0; i < r->n_prompt; i++)
        if (r->prompt[i] < 0 || r->prompt[i] >= s->n_vocab) {
            snprintf(err, errlen, "token id %d is out of vocabulary (size %d)", (int)r->prompt[i], (int)s->n_vocab);
            return -1;
        }
    job *j = calloc(1, sizeof *j);
    if (!j) {
        snprintf(err, errlen, "scheduler: out of memory");
        return -1;
    }
    j->req = *r;
    j->slot = -1;
    j->pending = -1;
    j->prompt = malloc((size_t)r->n_prompt * sizeof *j->prompt);
    j->smp = sampler_new(&r->sampling, s->n_vocab, err, errlen);
    if (!j->prompt || !j->smp) {
        if (!j->prompt)
            snprintf(err, errlen, "scheduler: out of memory");
        job_free(j);
        return -1;
    }
    memcpy(j->prompt, r->prompt, (size_t)r->n_prompt * sizeof *j->prompt);
    if (r->n_stop_ids)
        memcpy(j->stop_ids, r->stop_ids, (size_t)r->n_stop_ids * sizeof *j->stop_ids);
    j->req.prompt = j->prompt;
    j->req.stop_ids = j->stop_ids;
    sampler_accept_prompt(j->smp, j->prompt, (size_t)r->n_prompt);
    /* The context caps the output: the last position is n_ctx - 1. */
    if (j->req.max_tokens > s->n_ctx - r->n_prompt)
        j->req.max_tokens = s->n_ctx - r->n_prompt;

    pthread_mutex_lock(&s->mu);
    if (s->stopping || s->n_waiting >= s->p.max_queue) {
        pthread_mutex_unlock(&s->mu);
        if (queue_full)
            *queue_full = 1;
        snprintf(err, errlen, "the server is busy: %d requests are already waiting", s->p.max_queue);
        job_free(j);
        return -1;
    }
    j->id = s->next_id++;
    if (s->waiting_tail)
        s->waiting_tail->next = j;
    else
        s->waiting_head = j;
    s->waiting_tail = j;
    s->n_waiting++;
    if (id)
        *id = j->id;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

void sched_cancel(sched *s, uint64_t id)
{
    pthread_mutex_lock(&s->mu);
    for (job *j = s->waiting_head; j; j = j->next)
        if (j->id == id)
            j->cancelled = 1;
    for (job *j = s->running; j; j = j->next)
        if (j->id == id)
            j->cancelled = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void sched_get_stats(sched *s, sched_stats *out)
{
    pthread_mutex_lock(&s->mu);
    out->running = s->n_running;
    out->waiting = s->n_waiting;
    out->slots = s->n_slots;
    out->kv_usage = s->n_slots && s->n_ctx ? (double)s->kv_used / ((double)s->n_slots * (double)s->n_ctx) : 0.0;
    out->steps = s->steps;
    out->last_batch = s->last_batch;
    pthread_mutex_unlock(&s->mu);
}
