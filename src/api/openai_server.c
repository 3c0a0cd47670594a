/* openai_server: see openai_server.h.
 *
 * Life of one request ("job"):
 *   loop thread: parse + validate -> tokenize -> one seq per (prompt, best_of
 *   index) -> hold the exchange -> sched_submit each seq.
 *   scheduler thread: on_token / on_done update the seq under job->mu and
 *   post job_pump() to the loop thread (at most one post in flight).
 *   loop thread: job_pump() writes stream chunks as they come, or the whole
 *   response once every seq is done.
 * References on a job: the loop side (dropped once the response is complete),
 * one per submitted seq (dropped in on_done), one per post in flight.
 */
#include "api/openai_server.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/chat_template.h"
#include "api/metrics.h"
#include "api/openai_request.h"
#include "api/openai_response.h"
#include "api/openai_stop.h"
#include "engine/engine.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "engine/scheduler.h"
#include "engine/tokenizer.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/log.h"

#define LOGGER "ward.api"
#define OAI_MAX_SERVED_NAME 256        /* served model name bytes */
#define OAI_PIECE_MAX 256              /* token text bytes kept for logprobs (longer ones are cut) */
#define OAI_METRICS_EXTRA_MAX (64 * 1024) /* bytes of extra /metrics text accepted */

struct openai_server {
    model *model;
    tokenizer *tok;
    engine *eng;
    sched *sched;
    char name[OAI_MAX_SERVED_NAME];
    int max_model_len;
    chat_tmpl tmpl;
    int64_t created;
    metrics_vllm met;
    /* KV cache and batching metrics (batching engineer) */
    metrics_family *cache_usage, *prefix_queries, *prefix_hits, *iteration_tokens;
    uint64_t seen_preempt, seen_pq, seen_ph; /* counters already exported */
    size_t (*extra_metrics)(const void *ud, char *buf, size_t len);
    const void *extra_metrics_ud;
};

/* vLLM's text_offset counts characters of the decoded text, not bytes:
 * count the bytes that start a UTF-8 sequence. */
static long utf8_chars(const char *p, size_t n)
{
    long c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)p[i] & 0xC0) != 0x80;
    return c;
}

/* ---- jobs ---- */

typedef struct job job;

typedef struct seq {
    job *job;
    int prompt_idx;
    uint64_t id;
    int submitted;
    tokenizer_stream *ds;
    oai_stop *stop;
    buf text;            /* whole output text (echo prefix included) */
    size_t sent;         /* stream: bytes of text already sent */
    json_t *lp;          /* logprobs object (all positions) */
    size_t lp_sent;      /* stream: positions already sent */
    long text_offset;    /* completions logprobs: running offset */
    double cum_logprob;
    int n_out;
    int n_prompt;
    int done;
    int finish_sent;
    int role_sent;
    oai_finish finish;
    oai_stop_reason stop_reason;
} seq;

struct job {
    openai_server *srv;
    http_exchange *ex;
    pthread_mutex_t mu;
    int refs;
    oai_kind kind;
    char id[OAI_ID_MAX];
    int64_t created;
    int stream;          /* stream chunk by chunk */
    int stream_whole;    /* stream requested but sent as one event (best_of != n) */
    int include_usage, continuous_usage;
    int logprobs;        /* -1 none */
    int skip_special;
    int n, best_of;
    int beam;            /* use_beam_search: seq p*best_of submits, on_beams fills the group */
    long max_tokens_param;
    int n_prompts;
    seq *seqs;
    int n_seqs;
    int n_done;
    int posted;
    int responded;       /* loop side finished (response complete) */
    int headers_sent;
    int closed;
    char err[256];       /* scheduler error */
    uint64_t t_start_ns, t_first_ns;
};

static void job_free(job *j)
{
    for (int i = 0; i < j->n_seqs; i++) {
        seq *s = &j->seqs[i];
        tokenizer_stream_free(s->ds);
        oai_stop_free(s->stop);
        buf_free(&s->text);
        json_decref(s->lp);
    }
    free(j->seqs);
    pthread_mutex_destroy(&j->mu);
    http_exchange_release(j->ex);
    free(j);
}

static void job_unref(job *j)
{
    pthread_mutex_lock(&j->mu);
    int left = --j->refs;
    pthread_mutex_unlock(&j->mu);
    if (left == 0)
        job_free(j);
}

/* ---- responses ---- */

static void send_json(http_exchange *ex, int status, json_t *body)
{
    size_t len = 0;
    char *s = oai_json_dump(body, &len);
    json_decref(body);
    if (!s) {
        static const char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"InternalServerError\","
                                  "\"param\":null,\"code\":500}}";
        http_exchange_respond(ex, 500, "application/json", oom, sizeof oom - 1);
        return;
    }
    http_exchange_respond(ex, status, "application/json", s, len);
    free(s);
}

static void send_error(http_exchange *ex, const oai_error *e)
{
    if (e->status == 503 || e->status == 429) {
        char v[16];
        snprintf(v, sizeof v, "%d", OAI_DEFAULT_RETRY_AFTER_S);
        http_exchange_add_header(ex, "Retry-After", v);
    }
    send_json(ex, e->status, oai_error_body(e));
}

static void stream_write_json(http_exchange *ex, json_t *obj)
{
    size_t len;
    char *s = oai_sse_event(obj, &len);
    json_decref(obj);
    if (s)
        http_exchange_stream_write(ex, s, len);
    free(s);
}

/* ---- model check ---- */

static int check_model(const openai_server *s, const char *want, oai_error *e)
{
    if (want && strcmp(want, s->name) != 0) {
        oai_error_set(e, 404, "model", "The model `%s` does not exist.", want);
        return -1;
    }
    return 0;
}

/* ---- token text ---- */

static size_t token_piece(const openai_server *s, int32_t id, int special, char *out, size_t cap)
{
    int n = tokenizer_token_to_piece(s->tok, id, special, out, cap);
    if (n == TOKENIZER_ERROR)
        return 0;
    if (n < 0) { /* longer than cap: keep a cut piece */
        n = tokenizer_token_to_piece(s->tok, id, special, out, cap);
        return n > 0 ? (size_t)n : cap;
    }
    return (size_t)n;
}

/* Appends one position to s->lp (scheduler thread, job->mu held). */
static void add_logprobs(job *j, seq *s, const sched_token *t, int has_lp)
{
    openai_server *srv = j->srv;
    char piece[OAI_PIECE_MAX];
    size_t plen = token_piece(srv, t->r.token, !j->skip_special, piece, sizeof piece);
    char tops_buf[SAMPLER_MAX_LOGPROBS][OAI_PIECE_MAX];
    oai_top_entry tops[SAMPLER_MAX_LOGPROBS];
    int nt = t->r.n_top < SAMPLER_MAX_LOGPROBS ? t->r.n_top : SAMPLER_MAX_LOGPROBS;
    if (nt > j->logprobs)
        nt = j->logprobs;
    for (int i = 0; i < nt; i++) {
        tops[i].len = token_piece(srv, t->r.top_token[i], !j->skip_special, tops_buf[i], OAI_PIECE_MAX);
        tops[i].token = tops_buf[i];
        tops[i].logprob = t->r.top_logprob[i];
    }
    if (j->kind == OAI_CHAT) {
        oai_chat_logprobs_append(s->lp, piece, plen, t->r.logprob, tops, (size_t)nt);
    } else {
        oai_cmpl_logprobs_append(s->lp, piece, plen, has_lp, t->r.logprob, tops, (size_t)nt, s->text_offset);
        s->text_offset += utf8_chars(piece, plen);
    }
}

/* Feeds decoded text through the stop matcher into s->text. Returns the stop
 * index matched or -1. */
static int feed_text(seq *s, const char *txt, size_t len)
{
    const char *o;
    size_t ol;
    int m = oai_stop_feed(s->stop, txt, len, &o, &ol);
    buf_put(&s->text, o, ol);
    return m;
}

/* The end of a sequence's text: a non-special stop token's text is kept (as
 * vLLM does), then whatever the detokenizer and the stop matcher held back. */
static void finish_text(openai_server *srv, seq *s, sched_finish why, int32_t stop_token)
{
    if (why == SCHED_FINISH_STOP_TOKEN && stop_token >= 0 &&
        !(tokenizer_token_attr(srv->tok, stop_token) & TOKEN_ATTR_CONTROL)) {
        size_t len = 0;
        const char *txt = tokenizer_stream_push(s->ds, stop_token, &len);
        if (txt && len)
            feed_text(s, txt, len);
    }
    if (oai_stop_matched(s->stop) >= 0)
        return;
    size_t len = 0;
    const char *txt = tokenizer_stream_flush(s->ds, &len);
    if (txt && len)
        feed_text(s, txt, len);
    if (oai_stop_matched(s->stop) < 0) {
        const char *o;
        size_t ol;
        oai_stop_flush(s->stop, &o, &ol);
        buf_put(&s->text, o, ol);
    }
}

/* ---- scheduler callbacks (scheduler thread) ---- */

static void job_pump(http_exchange *ex, void *arg);

static void maybe_post(job *j)
{
    pthread_mutex_lock(&j->mu);
    int go = !j->posted && !j->responded;
    if (go) {
        j->posted = 1;
        j->refs++;
    }
    pthread_mutex_unlock(&j->mu);
    if (go && http_exchange_post(j->ex, job_pump, j) != 0) {
        pthread_mutex_lock(&j->mu);
        j->posted = 0;
        pthread_mutex_unlock(&j->mu);
        job_unref(j);
    }
}

static int on_token(void *ud, const sched_token *t)
{
    seq *s = ud;
    job *j = s->job;
    int stop = 0;
    pthread_mutex_lock(&j->mu);
    if (t->is_prompt) {
        if (s->lp && j->kind == OAI_COMPLETION)
            add_logprobs(j, s, t, 1);
    } else {
        if (!j->t_first_ns) {
            j->t_first_ns = clock_mono_ns();
            metrics_vllm_observe(&j->srv->met, j->srv->met.time_to_first_token_seconds,
                                 (double)(j->t_first_ns - j->t_start_ns) / 1e9);
        }
        s->n_out++;
        s->cum_logprob += t->r.logprob;
        if (s->lp)
            add_logprobs(j, s, t, 1);
        size_t len = 0;
        const char *txt = tokenizer_stream_push(s->ds, t->r.token, &len);
        if (txt && len) {
            int m = feed_text(s, txt, len);
            if (m >= 0)
                stop = 1;
        }
    }
    int stream = j->stream;
    pthread_mutex_unlock(&j->mu);
    if (stream)
        maybe_post(j);
    return stop;
}

/* Beam search results (scheduler thread): fills the seqs of the prompt's
 * group in score order; stop strings cut each beam's text afterwards. */
static void on_beams(void *ud, const sched_beam *b, int n)
{
    seq *s0 = ud;
    job *j = s0->job;
    openai_server *srv = j->srv;
    pthread_mutex_lock(&j->mu);
    for (int k = 0; k < n && k < j->best_of; k++) {
        seq *s = s0 + k;
        for (int i = 0; i < b[k].n_tokens; i++) {
            size_t len = 0;
            const char *txt = tokenizer_stream_push(s->ds, b[k].tokens[i], &len);
            if (txt && len && feed_text(s, txt, len) >= 0)
                break;
        }
        if (oai_stop_matched(s->stop) < 0)
            finish_text(srv, s, b[k].why, b[k].stop_token);
        s->finish = b[k].why == SCHED_FINISH_LENGTH ? OAI_FINISH_LENGTH : OAI_FINISH_STOP;
        if (b[k].why == SCHED_FINISH_STOP_TOKEN) {
            s->stop_reason.kind = OAI_STOP_REASON_TOKEN;
            s->stop_reason.token = b[k].stop_token;
        }
        if (oai_stop_matched(s->stop) >= 0) {
            s->finish = OAI_FINISH_STOP;
            s->stop_reason.kind = OAI_STOP_REASON_STR;
            s->stop_reason.str = oai_stop_matched_str(s->stop);
        }
        s->cum_logprob = b[k].cum_logprob;
        s->n_out = k < j->n ? b[k].n_output : 0; /* usage counts the returned choices */
    }
    pthread_mutex_unlock(&j->mu);
}

static void on_done(void *ud, const sched_done *d)
{
    seq *s = ud;
    job *j = s->job;
    openai_server *srv = j->srv;
    pthread_mutex_lock(&j->mu);
    s->n_prompt = d->n_prompt;
    if (j->beam) {
        /* the group's seqs were filled by on_beams; all of them end here */
        for (int k = 1; k < j->best_of; k++)
            s[k].done = 1;
        j->n_done += j->best_of - 1;
        if (d->why == SCHED_FINISH_ERROR && !j->err[0])
            snprintf(j->err, sizeof j->err, "%s", d->err ? d->err : "generation failed");
        if (d->why == SCHED_FINISH_CANCELLED || d->why == SCHED_FINISH_ERROR)
            for (int k = 0; k < j->best_of; k++)
                s[k].finish = OAI_FINISH_ABORT;
        s->done = 1;
        j->n_done++;
        double e2e = (double)(clock_mono_ns() - j->t_start_ns) / 1e9;
        pthread_mutex_unlock(&j->mu);
        if (d->why != SCHED_FINISH_CANCELLED && d->why != SCHED_FINISH_ERROR) {
            metrics_vllm_add(&srv->met, srv->met.prompt_tokens_total, d->n_prompt);
            metrics_vllm_add(&srv->met, srv->met.generation_tokens_total, d->n_output);
            metrics_vllm_request_done(&srv->met, oai_finish_name(s->finish), d->n_prompt, d->n_output, e2e, -1,
                                      j->n, j->max_tokens_param);
        }
        maybe_post(j);
        job_unref(j);
        return;
    }
    s->n_out = d->n_output;
    if (d->last) { /* the EOS / stop token: counted, so its logprobs are listed too (as vLLM) */
        s->cum_logprob += d->last->logprob;
        if (s->lp) {
            const sched_token t = {0, d->n_output - 1, *d->last};
            add_logprobs(j, s, &t, 1);
        }
    }
    finish_text(srv, s, d->why, d->stop_token);
    switch (d->why) {
    case SCHED_FINISH_LENGTH:
        s->finish = OAI_FINISH_LENGTH;
        break;
    case SCHED_FINISH_EOS:
        s->finish = OAI_FINISH_STOP;
        break;
    case SCHED_FINISH_STOP_TOKEN:
        s->finish = OAI_FINISH_STOP;
        s->stop_reason.kind = OAI_STOP_REASON_TOKEN;
        s->stop_reason.token = d->stop_token;
        break;
    case SCHED_FINISH_STOP:
        s->finish = OAI_FINISH_STOP;
        break;
    case SCHED_FINISH_CANCELLED:
        s->finish = OAI_FINISH_ABORT;
        break;
    case SCHED_FINISH_ERROR:
        s->finish = OAI_FINISH_ABORT;
        if (!j->err[0])
            snprintf(j->err, sizeof j->err, "%s", d->err ? d->err : "generation failed");
        break;
    }
    if (oai_stop_matched(s->stop) >= 0) {
        /* a stop string that matched makes the stop reason that string */
        s->finish = OAI_FINISH_STOP;
        s->stop_reason.kind = OAI_STOP_REASON_STR;
        s->stop_reason.str = oai_stop_matched_str(s->stop);
    }
    s->done = 1;
    j->n_done++;
    const char *fin = oai_finish_name(s->finish);
    double e2e = (double)(clock_mono_ns() - j->t_start_ns) / 1e9;
    pthread_mutex_unlock(&j->mu);

    if (d->why != SCHED_FINISH_CANCELLED && d->why != SCHED_FINISH_ERROR) {
        metrics_vllm_add(&srv->met, srv->met.prompt_tokens_total, d->n_prompt);
        metrics_vllm_add(&srv->met, srv->met.generation_tokens_total, d->n_output);
        metrics_vllm_request_done(&srv->met, fin, d->n_prompt, d->n_output, e2e, -1, 1, j->max_tokens_param);
        if (j->t_first_ns && d->n_output > 1) {
            double ttft = (double)(j->t_first_ns - j->t_start_ns) / 1e9;
            metrics_vllm_observe(&srv->met, srv->met.time_per_output_token_seconds,
                                 (e2e - ttft) / (double)(d->n_output - 1));
        }
    }
    maybe_post(j);
    job_unref(j);
}

/* ---- pumping results to the client (loop thread) ---- */

static json_t *lp_slice(const job *j, seq *s)
{
    /* positions added since the last chunk */
    if (!s->lp)
        return NULL;
    if (j->kind == OAI_CHAT) {
        json_t *all = json_object_get(s->lp, "content");
        json_t *out = oai_chat_logprobs_new();
        json_t *dst = json_object_get(out, "content");
        size_t n = json_array_size(all);
        for (size_t i = s->lp_sent; i < n; i++)
            json_array_append(dst, json_array_get(all, i));
        s->lp_sent = n;
        return out;
    }
    json_t *out = oai_cmpl_logprobs_new();
    static const char *const keys[] = {"text_offset", "token_logprobs", "tokens", "top_logprobs"};
    size_t n = json_array_size(json_object_get(s->lp, "tokens"));
    for (size_t k = 0; k < 4; k++) {
        json_t *src = json_object_get(s->lp, keys[k]);
        json_t *dst = json_object_get(out, keys[k]);
        for (size_t i = s->lp_sent; i < n; i++)
            json_array_append(dst, json_array_get(src, i));
    }
    s->lp_sent = n;
    return out;
}

static void usage_of(const job *j, oai_usage *u)
{
    u->prompt_tokens = 0;
    u->completion_tokens = 0;
    for (int i = 0; i < j->n_seqs; i++) {
        if (j->seqs[i].prompt_idx * j->best_of == i) /* count each prompt once */
            u->prompt_tokens += j->seqs[i].n_prompt;
        u->completion_tokens += j->seqs[i].n_out;
    }
}

static int cmp_rank(const void *a, const void *b)
{
    const seq *x = *(const seq *const *)a, *y = *(const seq *const *)b;
    if (x->prompt_idx != y->prompt_idx)
        return x->prompt_idx - y->prompt_idx;
    return (x->cum_logprob < y->cum_logprob) - (x->cum_logprob > y->cum_logprob);
}

/* The whole response (non-streaming, or streaming sent as one event). */
static json_t *whole_response(job *j)
{
    seq **order = malloc((size_t)j->n_seqs * sizeof *order);
    oai_choice *ch = calloc((size_t)j->n_prompts * (size_t)j->n, sizeof *ch);
    json_t *resp = NULL;
    if (order && ch) {
        for (int i = 0; i < j->n_seqs; i++)
            order[i] = &j->seqs[i];
        if (j->best_of > j->n && !j->beam) /* best_of: keep the n with the highest cumulative logprob (beams come ranked) */
            qsort(order, (size_t)j->n_seqs, sizeof *order, cmp_rank);
        size_t nc = 0;
        for (int p = 0; p < j->n_prompts; p++) {
            for (int k = 0; k < j->n; k++) {
                seq *s = order[p * j->best_of + k];
                oai_choice *c = &ch[nc];
                c->index = (int)nc;
                c->text = s->text.p ? s->text.p : "";
                c->text_len = s->text.len;
                c->logprobs = s->lp;
                c->finish = s->finish;
                c->stop_reason = s->stop_reason;
                nc++;
            }
        }
        oai_usage u;
        usage_of(j, &u);
        resp = oai_response_new(j->kind, j->id, j->created, j->srv->name, ch, nc, &u);
    }
    free(order);
    free(ch);
    return resp;
}

static void finish_loop_side(job *j)
{
    /* called with mu held: the loop side's reference goes with the response */
    j->responded = 1;
    j->refs--;
}

static void job_pump(http_exchange *ex, void *arg)
{
    job *j = arg;
    pthread_mutex_lock(&j->mu);
    j->posted = 0;
    if (j->responded) {
        pthread_mutex_unlock(&j->mu);
        job_unref(j);
        return;
    }
    int all_done = j->n_done == j->n_seqs;
    if (!j->stream) {
        if (all_done) {
            if (j->err[0]) {
                oai_error e;
                oai_error_set(&e, 500, NULL, "%s", j->err);
                send_error(ex, &e);
            } else if (j->stream_whole) {
                http_exchange_stream_begin(ex, 200, "text/event-stream");
                stream_write_json(ex, whole_response(j));
                http_exchange_stream_write(ex, OAI_SSE_DONE, strlen(OAI_SSE_DONE));
                http_exchange_stream_end(ex);
            } else {
                send_json(ex, 200, whole_response(j));
            }
            finish_loop_side(j);
        }
        pthread_mutex_unlock(&j->mu);
        job_unref(j);
        return;
    }
    /* streaming */
    if (!j->headers_sent) {
        http_exchange_add_header(ex, "Cache-Control", "no-cache");
        http_exchange_stream_begin(ex, 200, "text/event-stream");
        j->headers_sent = 1;
    }
    oai_usage u;
    for (int i = 0; i < j->n_seqs; i++) {
        seq *s = &j->seqs[i];
        oai_choice c = {.index = i};
        const oai_usage *cu = NULL;
        if (j->continuous_usage) {
            usage_of(j, &u);
            cu = &u;
        }
        if (j->kind == OAI_CHAT && !s->role_sent) {
            stream_write_json(ex, oai_chunk_new(j->kind, j->id, j->created, j->srv->name, &c, 1, cu));
            s->role_sent = 1;
        }
        size_t nlp = s->lp ? json_array_size(json_object_get(s->lp, j->kind == OAI_CHAT ? "content" : "tokens")) : 0;
        int have_text = s->text.len > s->sent;
        int have_lp = nlp > s->lp_sent;
        int finishing = s->done && !s->finish_sent && !j->err[0];
        if (!have_text && !have_lp && !finishing)
            continue;
        json_t *lp = lp_slice(j, s);
        c.text = have_text ? s->text.p + s->sent : (j->kind == OAI_CHAT ? NULL : "");
        c.text_len = have_text ? s->text.len - s->sent : 0;
        c.logprobs = lp;
        if (finishing) {
            c.finish = s->finish;
            c.stop_reason = s->stop_reason;
            s->finish_sent = 1;
        }
        stream_write_json(ex, oai_chunk_new(j->kind, j->id, j->created, j->srv->name, &c, 0, cu));
        json_decref(lp);
        s->sent = s->text.len;
    }
    if (all_done) {
        if (j->err[0]) {
            oai_error e;
            oai_error_set(&e, 500, NULL, "%s", j->err);
            stream_write_json(ex, oai_error_body(&e));
        } else if (j->include_usage) {
            usage_of(j, &u);
            stream_write_json(ex, oai_usage_chunk_new(j->kind, j->id, j->created, j->srv->name, &u));
        }
        http_exchange_stream_write(ex, OAI_SSE_DONE, strlen(OAI_SSE_DONE));
        http_exchange_stream_end(ex);
        finish_loop_side(j);
    }
    pthread_mutex_unlock(&j->mu);
    job_unref(j);
}

/* Cancels every submitted, unfinished seq. sched_cancel is called without
 * job->mu: the scheduler may hold its own lock while a callback waits for
 * job->mu, so taking them in the other order would deadlock. */
static void cancel_seqs(job *j)
{
    uint64_t ids[OAI_MAX_SEQS_PER_REQUEST];
    int n = 0;
    pthread_mutex_lock(&j->mu);
    for (int i = 0; i < j->n_seqs && n < OAI_MAX_SEQS_PER_REQUEST; i++)
        if (j->seqs[i].submitted && !j->seqs[i].done)
            ids[n++] = j->seqs[i].id;
    pthread_mutex_unlock(&j->mu);
    for (int i = 0; i < n; i++)
        sched_cancel(j->srv->sched, ids[i]);
}

static void on_client_close(void *arg)
{
    job *j = arg;
    pthread_mutex_lock(&j->mu);
    j->closed = 1;
    pthread_mutex_unlock(&j->mu);
    cancel_seqs(j);
}

/* ---- request handling (loop thread) ---- */

typedef struct prompt_ids {
    int32_t *ids;
    size_t n;
    char *echo;          /* prompt text for echo */
    size_t echo_len;
} prompt_ids;

static void prompts_free(prompt_ids *p, size_t n)
{
    for (size_t i = 0; p && i < n; i++) {
        free(p[i].ids);
        free(p[i].echo);
    }
    free(p);
}

static int tokenize_text(const openai_server *s, const char *text, int add_special, prompt_ids *out, oai_error *e)
{
    char err[128];
    if (tokenizer_encode_alloc(s->tok, text, strlen(text), add_special, 1, &out->ids, &out->n, err, sizeof err) != 0) {
        oai_error_set(e, 400, "prompt", "cannot tokenize the prompt: %s", err);
        return -1;
    }
    return 0;
}

/* Builds the token ids of every prompt. */
static prompt_ids *build_prompts(const openai_server *s, const oai_request *r, size_t *n_out, oai_error *e)
{
    size_t n = r->kind == OAI_CHAT ? 1 : r->n_prompts;
    prompt_ids *p = calloc(n, sizeof *p);
    if (!p) {
        oai_error_set(e, 503, NULL, "out of memory");
        return NULL;
    }
    *n_out = n;
    if (r->kind == OAI_CHAT) {
        chat_msg *m = calloc(r->n_messages, sizeof *m);
        if (!m) {
            oai_error_set(e, 503, NULL, "out of memory");
            goto fail;
        }
        for (size_t i = 0; i < r->n_messages; i++) {
            m[i].role = oai_role_name(r->messages[i].role);
            m[i].content = r->messages[i].content;
        }
        chat_tmpl t = s->tmpl;
        if (r->chat_template) {
            t = chat_template_detect(r->chat_template);
            if (t == CHAT_TMPL_UNKNOWN)
                t = CHAT_TMPL_CHATML;
        }
        char err[128];
        size_t len;
        char *text = chat_template_render(t, m, r->n_messages, r->add_generation_prompt, r->continue_final_message,
                                          &len, err, sizeof err);
        free(m);
        if (!text) {
            oai_error_set(e, 400, "messages", "cannot apply the chat template: %s", err);
            goto fail;
        }
        /* The rendered template has no BOS (as llama.cpp's); the tokenizer
         * adds it when the vocabulary asks, and control tokens in the
         * template text are parsed as such. */
        int rc = tokenize_text(s, text, 1, &p[0], e);
        free(text);
        if (rc != 0)
            goto fail;
        return p;
    }
    for (size_t i = 0; i < n; i++) {
        const oai_prompt *op = &r->prompts[i];
        if (op->text) {
            if (tokenize_text(s, op->text, r->add_special_tokens, &p[i], e) != 0)
                goto fail;
            if (r->echo) {
                p[i].echo = strdup(op->text);
                p[i].echo_len = strlen(op->text);
            }
        } else {
            int32_t nv = tokenizer_n_vocab(s->tok);
            for (size_t k = 0; k < op->n_ids; k++) {
                if (op->ids[k] >= nv) {
                    oai_error_set(e, 400, "prompt", "Token id %" PRId32 " is out of vocabulary", op->ids[k]);
                    goto fail;
                }
            }
            p[i].ids = malloc(op->n_ids * sizeof *p[i].ids);
            if (!p[i].ids) {
                oai_error_set(e, 503, NULL, "out of memory");
                goto fail;
            }
            memcpy(p[i].ids, op->ids, op->n_ids * sizeof *p[i].ids);
            p[i].n = op->n_ids;
            if (r->echo) {
                size_t len = 0;
                if (tokenizer_decode(s->tok, op->ids, op->n_ids, 0, 0, &p[i].echo, &len) == 0)
                    p[i].echo_len = len;
            }
        }
        if (r->truncate_prompt_tokens > 0 && p[i].n > (size_t)r->truncate_prompt_tokens) {
            size_t k = (size_t)r->truncate_prompt_tokens;
            memmove(p[i].ids, p[i].ids + (p[i].n - k), k * sizeof *p[i].ids);
            p[i].n = k;
        }
        if (p[i].n == 0) {
            oai_error_set(e, 400, "prompt", "The prompt is empty after tokenization");
            goto fail;
        }
    }
    return p;
fail:
    prompts_free(p, n);
    return NULL;
}

static int check_lengths(const openai_server *s, const oai_request *r, const prompt_ids *p, size_t n, oai_error *e)
{
    for (size_t i = 0; i < n; i++) {
        long np = (long)p[i].n;
        if (np >= s->max_model_len) {
            oai_error_set(e, 400, r->kind == OAI_CHAT ? "messages" : "prompt",
                          "This model's maximum context length is %d tokens. However, you requested %ld tokens in the "
                          "messages, Please reduce the length of the messages.",
                          s->max_model_len, np);
            return -1;
        }
        if (r->max_tokens >= 0 && np + r->max_tokens > s->max_model_len) {
            oai_error_set(e, 400, "max_tokens",
                          "This model's maximum context length is %d tokens. However, you requested %ld tokens (%ld in "
                          "the messages, %ld in the completion). Please reduce the length of the messages or completion.",
                          s->max_model_len, np + r->max_tokens, np, r->max_tokens);
            return -1;
        }
    }
    return 0;
}

static int fill_sampling(const openai_server *s, const oai_request *r, sampler_params *sp, oai_error *e)
{
    *sp = sampler_default_params();
    sp->temperature = (float)r->temperature;
    sp->top_k = r->top_k;
    sp->top_p = (float)r->top_p;
    sp->min_p = (float)r->min_p;
    sp->repetition_penalty = (float)r->repetition_penalty;
    sp->presence_penalty = (float)r->presence_penalty;
    sp->frequency_penalty = (float)r->frequency_penalty;
    sp->has_seed = r->has_seed;
    sp->seed = (uint64_t)r->seed;
    sp->n_logprobs = r->logprobs > 0 ? r->logprobs : 0;
    if (r->n_logit_bias > SAMPLER_MAX_LOGIT_BIAS) {
        oai_error_set(e, 400, "logit_bias", "'logit_bias' has too many entries");
        return -1;
    }
    int32_t nv = tokenizer_n_vocab(s->tok);
    for (size_t i = 0; i < r->n_logit_bias; i++) {
        if (r->logit_bias[i].token >= nv) {
            oai_error_set(e, 400, "logit_bias", "token_id %" PRId32 " in logit_bias contains out-of-vocab token id",
                          r->logit_bias[i].token);
            return -1;
        }
        sp->logit_bias[i].token = r->logit_bias[i].token;
        sp->logit_bias[i].bias = r->logit_bias[i].bias;
    }
    sp->n_logit_bias = (int)r->n_logit_bias;
    char err[160];
    if (sampler_params_check(sp, nv, err, sizeof err) != 0) {
        oai_error_set(e, 400, NULL, "%s", err);
        return -1;
    }
    return 0;
}

static void handle_generate(http_exchange *ex, const http_request *req, openai_server *srv, oai_kind kind)
{
    oai_request r;
    oai_error e;
    memset(&e, 0, sizeof e);
    if (oai_request_parse(&r, kind, req->body, req->body_len, &e) != 0) {
        send_error(ex, &e);
        return;
    }
    prompt_ids *pr = NULL;
    size_t n_pr = 0;
    job *j = NULL;
    sampler_params *sp = NULL;
    if (check_model(srv, r.model, &e) != 0)
        goto fail;
    if (r.use_beam_search && r.logprobs >= 0) {
        oai_error_set(&e, 400, "logprobs", "logprobs are not supported with beam search by this server");
        goto fail;
    }
    if (r.n_stop_token_ids > SCHED_MAX_STOP_IDS) {
        oai_error_set(&e, 400, "stop_token_ids", "'stop_token_ids' has more than %d entries", SCHED_MAX_STOP_IDS);
        goto fail;
    }
    for (size_t i = 0; i < r.n_stop_token_ids; i++) {
        if (r.stop_token_ids[i] >= tokenizer_n_vocab(srv->tok)) {
            oai_error_set(&e, 400, "stop_token_ids", "stop_token_ids contains out-of-vocab token id %" PRId32,
                          r.stop_token_ids[i]);
            goto fail;
        }
    }
    pr = build_prompts(srv, &r, &n_pr, &e);
    if (!pr)
        goto fail;
    if (check_lengths(srv, &r, pr, n_pr, &e) != 0)
        goto fail;
    if ((size_t)r.best_of * n_pr > OAI_MAX_SEQS_PER_REQUEST) {
        oai_error_set(&e, 400, "best_of", "prompts x best_of is %zu; at most %d sequences per request",
                      (size_t)r.best_of * n_pr, OAI_MAX_SEQS_PER_REQUEST);
        goto fail;
    }
    sp = malloc(sizeof *sp);
    if (!sp) {
        oai_error_set(&e, 503, NULL, "out of memory");
        goto fail;
    }
    if (fill_sampling(srv, &r, sp, &e) != 0)
        goto fail;

    j = calloc(1, sizeof *j);
    int n_seqs = (int)n_pr * r.best_of;
    if (!j || !(j->seqs = calloc((size_t)n_seqs, sizeof *j->seqs))) {
        free(j);
        j = NULL;
        oai_error_set(&e, 503, NULL, "out of memory");
        goto fail;
    }
    pthread_mutex_init(&j->mu, NULL);
    j->srv = srv;
    j->ex = ex;
    j->kind = kind;
    j->created = clock_unix_s();
    oai_make_id(kind, j->id);
    j->beam = r.use_beam_search;
    j->stream = r.stream && r.best_of == r.n && !j->beam;
    j->stream_whole = r.stream && !j->stream; /* vLLM: one event when streaming is impossible */
    j->include_usage = r.include_usage;
    j->continuous_usage = r.include_usage && r.continuous_usage_stats;
    j->logprobs = r.logprobs;
    j->skip_special = r.skip_special_tokens;
    j->n = r.n;
    j->best_of = r.best_of;
    j->n_prompts = (int)n_pr;
    j->n_seqs = n_seqs;
    j->max_tokens_param = r.max_tokens;
    j->t_start_ns = clock_mono_ns();
    j->refs = 1; /* the loop side */
    http_exchange_hold(ex);

    tokenizer_stream_params dp = tokenizer_stream_default_params();
    dp.special = !r.skip_special_tokens;
    dp.strip_leading_space = 0; /* output continues the prompt */
    for (int i = 0; i < n_seqs; i++) {
        seq *s = &j->seqs[i];
        s->job = j;
        s->prompt_idx = i / r.best_of;
        s->ds = tokenizer_stream_new(srv->tok, &dp);
        s->stop = oai_stop_new((const char *const *)r.stop, r.n_stop, r.include_stop_str_in_output);
        if (r.logprobs >= 0)
            s->lp = kind == OAI_CHAT ? oai_chat_logprobs_new() : oai_cmpl_logprobs_new();
        const prompt_ids *p = &pr[s->prompt_idx];
        if (!s->ds || !s->stop || (r.logprobs >= 0 && !s->lp) ||
            (p->echo && (buf_put(&s->text, p->echo, p->echo_len), buf_error(&s->text) != BUF_OK))) {
            oai_error_set(&e, 503, NULL, "out of memory");
            goto fail_job;
        }
        if (p->echo && s->lp) {
            /* the first prompt position has no logprob (vLLM: null) */
            char piece[OAI_PIECE_MAX];
            size_t plen = token_piece(srv, p->ids[0], !r.skip_special_tokens, piece, sizeof piece);
            oai_cmpl_logprobs_append(s->lp, piece, plen, 0, 0, NULL, 0, 0);
            s->text_offset = utf8_chars(piece, plen);
        }
    }
    /* The stop string a seq matched is looked up after the fact by index. */
    for (int i = 0; i < n_seqs; i++) {
        seq *s = &j->seqs[i];
        const prompt_ids *p = &pr[s->prompt_idx];
        if (j->beam && i % r.best_of != 0)
            continue; /* one beam group per prompt */
        sched_request sr;
        memset(&sr, 0, sizeof sr);
        sr.prompt = p->ids;
        sr.n_prompt = (int)p->n;
        sr.sampling = *sp;
        if (r.has_seed)
            sr.sampling.seed = (uint64_t)r.seed + (uint64_t)(i % r.best_of); /* distinct choices, reproducible */
        long maxt = r.max_tokens >= 0 ? r.max_tokens : (long)srv->max_model_len - (long)p->n;
        sr.max_tokens = (int)maxt;
        sr.min_tokens = (int)r.min_tokens;
        sr.ignore_eos = r.ignore_eos;
        sr.stop_ids = r.stop_token_ids;
        sr.n_stop_ids = (int)r.n_stop_token_ids;
        sr.prompt_logprobs = p->echo && r.logprobs >= 0 && kind == OAI_COMPLETION;
        sr.on_token = on_token;
        sr.on_done = on_done;
        sr.ud = s;
        if (j->beam) {
            sr.beam_width = r.best_of;
            sr.length_penalty = r.length_penalty;
            sr.on_beams = on_beams;
        }
        pthread_mutex_lock(&j->mu);
        j->refs++;
        s->submitted = 1;
        pthread_mutex_unlock(&j->mu);
        char err[160];
        int qfull = 0;
        if (sched_submit(srv->sched, &sr, &s->id, &qfull, err, sizeof err) != 0) {
            pthread_mutex_lock(&j->mu);
            j->refs--;
            s->submitted = 0;
            pthread_mutex_unlock(&j->mu);
            if (qfull)
                oai_error_set(&e, 503, NULL, "The server is busy: the request queue is full. Retry later.");
            else
                oai_error_set(&e, 400, NULL, "%s", err);
            goto fail_job;
        }
    }
    http_exchange_on_close(ex, on_client_close, j);
    free(sp);
    prompts_free(pr, n_pr);
    oai_request_free(&r);
    return;

fail_job:
    /* Cancel what was accepted; those seqs finish through on_done. The job
     * answers now and ignores their results. */
    pthread_mutex_lock(&j->mu);
    j->responded = 1;
    pthread_mutex_unlock(&j->mu);
    cancel_seqs(j);
    send_error(ex, &e);
    job_unref(j);
    free(sp);
    prompts_free(pr, n_pr);
    oai_request_free(&r);
    return;
fail:
    send_error(ex, &e);
    free(sp);
    prompts_free(pr, n_pr);
    oai_request_free(&r);
}

static void h_completions(http_exchange *ex, const http_request *req, void *ud)
{
    handle_generate(ex, req, ud, OAI_COMPLETION);
}

static void h_chat(http_exchange *ex, const http_request *req, void *ud)
{
    handle_generate(ex, req, ud, OAI_CHAT);
}

static void h_models(http_exchange *ex, const http_request *req, void *ud)
{
    (void)req;
    openai_server *s = ud;
    char permid[OAI_ID_MAX + 16];
    char idbuf[OAI_ID_MAX];
    oai_make_id(OAI_COMPLETION, idbuf);
    snprintf(permid, sizeof permid, "modelperm-%s", idbuf + 5);
    json_t *card = json_pack(
        "{s:s,s:s,s:I,s:s,s:s,s:n,s:i,s:[{s:s,s:s,s:I,s:b,s:b,s:b,s:b,s:b,s:b,s:s,s:n,s:b}]}", "id", s->name, "object",
        "model", "created", (json_int_t)s->created, "owned_by", "ward", "root", s->name, "parent", "max_model_len",
        s->max_model_len, "permission", "id", permid, "object", "model_permission", "created",
        (json_int_t)s->created, "allow_create_engine", 0, "allow_sampling", 1, "allow_logprobs", 1,
        "allow_search_indices", 0, "allow_view", 1, "allow_fine_tuning", 0, "organization", "*", "group",
        "is_blocking", 0);
    send_json(ex, 200, json_pack("{s:s,s:[o]}", "object", "list", "data", card));
}

static json_t *parse_body_object(const http_request *req, oai_error *e)
{
    json_error_t je;
    json_t *root = json_loadb(req->body ? req->body : "", req->body_len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        oai_error_set(e, 400, NULL, "Invalid JSON body: %.200s (at byte %d)", je.text, je.position);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        oai_error_set(e, 400, NULL, "The request body must be a JSON object");
        return NULL;
    }
    return root;
}

static void h_tokenize(http_exchange *ex, const http_request *req, void *ud)
{
    openai_server *s = ud;
    oai_error e;
    memset(&e, 0, sizeof e);
    json_t *root = parse_body_object(req, &e);
    if (!root) {
        send_error(ex, &e);
        return;
    }
    /* Reuse the request parser: "prompt" (completions) or "messages" (chat). */
    oai_kind kind = json_object_get(root, "messages") ? OAI_CHAT : OAI_COMPLETION;
    json_t *add = json_object_get(root, "add_special_tokens");
    json_t *gen = json_object_get(root, "add_generation_prompt");
    json_t *sub = json_pack("{s:O*,s:O*,s:O*,s:O*,s:O*}", "model", json_object_get(root, "model"), "prompt",
                            json_object_get(root, "prompt"), "messages", json_object_get(root, "messages"),
                            "add_special_tokens", add, "add_generation_prompt", gen);
    json_decref(root);
    char *body = sub ? json_dumps(sub, JSON_COMPACT) : NULL;
    json_decref(sub);
    oai_request r;
    if (!body) {
        oai_error_set(&e, 503, NULL, "out of memory");
        send_error(ex, &e);
        return;
    }
    int rc = oai_request_parse(&r, kind, body, strlen(body), &e);
    free(body);
    if (rc != 0) {
        send_error(ex, &e);
        return;
    }
    if (kind == OAI_COMPLETION && !add)
        r.add_special_tokens = 1; /* vLLM's /tokenize default */
    if (check_model(s, r.model, &e) != 0 || (kind == OAI_COMPLETION && r.n_prompts != 1)) {
        if (!e.status)
            oai_error_set(&e, 400, "prompt", "'prompt' must be a single string or token list");
        oai_request_free(&r);
        send_error(ex, &e);
        return;
    }
    size_t n = 0;
    prompt_ids *p = build_prompts(s, &r, &n, &e);
    oai_request_free(&r);
    if (!p) {
        send_error(ex, &e);
        return;
    }
    json_t *toks = json_array();
    for (size_t i = 0; toks && i < p[0].n; i++)
        json_array_append_new(toks, json_integer(p[0].ids[i]));
    send_json(ex, 200, json_pack("{s:I,s:i,s:o}", "count", (json_int_t)p[0].n, "max_model_len", s->max_model_len,
                                 "tokens", toks));
    prompts_free(p, n);
}

static void h_detokenize(http_exchange *ex, const http_request *req, void *ud)
{
    openai_server *s = ud;
    oai_error e;
    memset(&e, 0, sizeof e);
    json_t *root = parse_body_object(req, &e);
    if (!root) {
        send_error(ex, &e);
        return;
    }
    json_t *mdl = json_object_get(root, "model");
    json_t *tokens = json_object_get(root, "tokens");
    if (mdl && !json_is_null(mdl) && !json_is_string(mdl)) {
        oai_error_set(&e, 400, "model", "'model' must be a string");
    } else if (check_model(s, json_string_value(mdl), &e) == 0) {
        if (!json_is_array(tokens)) {
            oai_error_set(&e, 400, "tokens", "'tokens' must be a list of token ids");
        } else if (json_array_size(tokens) > OAI_MAX_PROMPT_IDS) {
            oai_error_set(&e, 400, "tokens", "'tokens' has more than %d entries", OAI_MAX_PROMPT_IDS);
        }
    }
    size_t n = json_array_size(tokens);
    int32_t *ids = e.status ? NULL : malloc((n ? n : 1) * sizeof *ids);
    if (!e.status && !ids)
        oai_error_set(&e, 503, NULL, "out of memory");
    for (size_t i = 0; !e.status && i < n; i++) {
        json_t *v = json_array_get(tokens, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= tokenizer_n_vocab(s->tok))
            oai_error_set(&e, 400, "tokens", "'tokens' must hold token ids below %" PRId32, tokenizer_n_vocab(s->tok));
        else
            ids[i] = (int32_t)json_integer_value(v);
    }
    json_decref(root);
    if (e.status) {
        free(ids);
        send_error(ex, &e);
        return;
    }
    char *text = NULL;
    size_t len = 0;
    if (tokenizer_decode(s->tok, ids, n, 0, 0, &text, &len) != 0) {
        free(ids);
        oai_error_set(&e, 400, "tokens", "cannot decode the tokens");
        send_error(ex, &e);
        return;
    }
    free(ids);
    send_json(ex, 200, json_pack("{s:o}", "prompt", oai_json_text(text, len)));
    free(text);
}

static void collect_sched(void *ud)
{
    openai_server *s = ud;
    sched_stats st;
    sched_get_stats(s->sched, &st);
    metrics_vllm_set(&s->met, s->met.num_requests_running, st.running);
    metrics_vllm_set(&s->met, s->met.num_requests_waiting, st.waiting);
    metrics_vllm_set(&s->met, s->cache_usage, st.kv_usage);
    /* counters: export what happened since the last scrape */
    if (st.preemptions > s->seen_preempt)
        metrics_vllm_add(&s->met, s->met.num_preemptions_total, (double)(st.preemptions - s->seen_preempt));
    if (st.prefix_queries > s->seen_pq)
        metrics_vllm_add(&s->met, s->prefix_queries, (double)(st.prefix_queries - s->seen_pq));
    if (st.prefix_hits > s->seen_ph)
        metrics_vllm_add(&s->met, s->prefix_hits, (double)(st.prefix_hits - s->seen_ph));
    s->seen_preempt = st.preemptions;
    s->seen_pq = st.prefix_queries;
    s->seen_ph = st.prefix_hits;
}

/* Scheduler thread, after each engine step: the batch size histogram. */
static void observe_step(void *ud, int rows)
{
    openai_server *s = ud;
    if (s->iteration_tokens)
        metrics_vllm_observe(&s->met, s->iteration_tokens, rows);
}

static void h_metrics(http_exchange *ex, const http_request *req, void *ud)
{
    (void)req;
    openai_server *s = ud;
    size_t len = 0;
    char *text = metrics_render(metrics_global(), &len);
    if (!text) {
        http_exchange_respond(ex, 500, "text/plain", "out of memory\n", 14);
        return;
    }
    if (s->extra_metrics) {
        size_t need = s->extra_metrics(s->extra_metrics_ud, NULL, 0);
        if (need > 0 && need <= OAI_METRICS_EXTRA_MAX) {
            char *t2 = realloc(text, len + need + 1);
            if (t2) {
                text = t2;
                size_t got = s->extra_metrics(s->extra_metrics_ud, text + len, need + 1);
                if (got <= need)
                    len += got;
                text[len] = '\0';
            }
        }
    }
    http_exchange_respond(ex, 200, METRICS_CONTENT_TYPE, text, len);
    free(text);
}

/* ---- setup ---- */

void openai_default_params(openai_params *p)
{
    memset(p, 0, sizeof *p);
}

static int parse_pos(const char *flag, const char *v, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (!*v || *end || errno || x < lo || x > hi) {
        fprintf(stderr, "ward serve: %s expects an integer from %ld to %ld, got '%s'\n", flag, lo, hi, v);
        return -1;
    }
    *out = (int)x;
    return 1;
}

int openai_serve_option(openai_params *p, const char *name, const char *val)
{
    if (strcmp(name, "--max-model-len") == 0)
        return parse_pos(name, val, 16, ENGINE_MAX_CTX, &p->max_model_len);
    if (strcmp(name, "--max-num-seqs") == 0)
        return parse_pos(name, val, 1, ENGINE_MAX_SEQ, &p->max_num_seqs);
    if (strcmp(name, "--max-queue") == 0)
        return parse_pos(name, val, 1, 1000000, &p->max_queue);
    if (strcmp(name, "--max-num-batched-tokens") == 0)
        return parse_pos(name, val, 1, OAI_MAX_BATCHED_TOKENS, &p->max_num_batched_tokens);
    if (strcmp(name, "--engine-threads") == 0)
        return parse_pos(name, val, 1, ENGINE_MAX_THREADS, &p->threads);
    if (strcmp(name, "--kv-cache-mib") == 0)
        return parse_pos(name, val, 1, 1 << 24, &p->kv_cache_mib);
    if (strcmp(name, "--num-kv-blocks") == 0)
        return parse_pos(name, val, 1, ENGINE_MAX_KV_BLOCKS, &p->num_kv_blocks);
    if (strcmp(name, "--kv-block-size") == 0)
        return parse_pos(name, val, 1, ENGINE_MAX_KV_BLOCK, &p->kv_block_size);
    if (strcmp(name, "--chat-template") == 0) {
        p->chat_template = val;
        return 1;
    }
    return 0;
}

void openai_serve_usage(FILE *f)
{
    fprintf(f, "\nmodel serving options:\n"
               "  --max-model-len N        context length per sequence (default: min(trained, 4096))\n"
               "  --max-num-seqs N         concurrent sequences / KV slots (default %d)\n"
               "  --max-queue N            waiting requests before 503 + Retry-After (default %d)\n"
               "  --max-num-batched-tokens N  tokens per engine step: running decodes plus prompt\n"
               "                           chunks (default %d); larger prefills prompts in fewer,\n"
               "                           longer steps (decodes wait longer in each)\n"
               "  --engine-threads N       inference threads (default: online CPUs, at most 8)\n"
               "  --kv-cache-mib N         KV cache pool size (default: max-num-seqs full contexts);\n"
               "                           must hold one full context; when full, requests wait\n"
               "  --num-kv-blocks N        KV cache pool in blocks (overrides --kv-cache-mib)\n"
               "  --kv-block-size N        positions per KV block (default %d)\n"
               "  --chat-template NAME     chat template family (chatml, llama3, ...) or template text\n",
            OAI_DEFAULT_MAX_NUM_SEQS, SCHED_DEFAULT_MAX_QUEUE, SCHED_DEFAULT_STEP_TOKENS, ENGINE_DEFAULT_KV_BLOCK);
}

static void pick_name(openai_server *s, const openai_params *p)
{
    if (p->served_model_name && *p->served_model_name) {
        snprintf(s->name, sizeof s->name, "%s", p->served_model_name);
        return;
    }
    gguf_str gn;
    const gguf_file *g = model_gguf(s->model);
    if (g && gguf_get_str(g, "general.name", &gn) == 0 && gn.len > 0 && gn.len < sizeof s->name) {
        memcpy(s->name, gn.ptr, gn.len);
        s->name[gn.len] = '\0';
        return;
    }
    const char *slash = strrchr(p->model_path, '/');
    snprintf(s->name, sizeof s->name, "%s", slash ? slash + 1 : p->model_path);
}

openai_server *openai_server_open(const openai_params *p, char *err, size_t errlen)
{
    if (!p || !p->model_path) {
        snprintf(err, errlen, "no model file given");
        return NULL;
    }
    openai_server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    model_params mp = model_default_params();
    s->model = model_load(p->model_path, &mp, err, errlen);
    if (!s->model)
        goto fail;
    s->tok = tokenizer_from_gguf(model_gguf(s->model), err, errlen);
    if (!s->tok)
        goto fail;
    engine_params ep = engine_default_params();
    ep.n_seq_max = p->max_num_seqs > 0 ? p->max_num_seqs : OAI_DEFAULT_MAX_NUM_SEQS;
    ep.n_ctx = p->max_model_len;
    if (p->threads > 0)
        ep.n_threads = p->threads;
    ep.kv_block_size = p->kv_block_size;
    ep.n_kv_blocks = p->num_kv_blocks;
    ep.kv_cache_bytes = (size_t)p->kv_cache_mib << 20;
    s->eng = engine_new(s->model, &ep, err, errlen);
    if (!s->eng)
        goto fail;
    s->max_model_len = engine_n_ctx(s->eng);
    sched_params sp = sched_default_params();
    if (p->max_queue > 0)
        sp.max_queue = p->max_queue;
    if (p->max_num_batched_tokens > 0)
        sp.step_tokens = p->max_num_batched_tokens;
    /* end-of-generation ids from the vocabulary */
    int32_t nv = tokenizer_n_vocab(s->tok);
    for (int32_t id = 0; id < nv && sp.n_eog < SCHED_MAX_EOG; id++)
        if (tokenizer_is_eog(s->tok, id))
            sp.eog[sp.n_eog++] = id;
    sp.on_step = observe_step;
    sp.step_ud = s;
    /* Registered before the scheduler runs: observe_step reads them. */
    static const char *const mlab[] = {"model_name"};
    static const double step_buckets[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096};
    s->cache_usage = metrics_gauge(metrics_global(), "ward:gpu_cache_usage_perc",
                                   "KV-cache usage. 1 means 100 percent usage.", mlab, 1);
    s->prefix_queries = metrics_counter(metrics_global(), "ward:gpu_prefix_cache_queries",
                                        "Prefix cache queries, in terms of number of queried tokens.", mlab, 1);
    s->prefix_hits = metrics_counter(metrics_global(), "ward:gpu_prefix_cache_hits",
                                     "Prefix cache hits, in terms of number of cached tokens.", mlab, 1);
    s->iteration_tokens = metrics_histogram(metrics_global(), "ward:iteration_tokens_total",
                                            "Histogram of number of tokens per engine_step.", mlab, 1, step_buckets,
                                            sizeof step_buckets / sizeof step_buckets[0]);
    s->sched = sched_new(s->eng, &sp, err, errlen);
    if (!s->sched)
        goto fail;
    pick_name(s, p);
    s->created = clock_unix_s();
    /* chat template: the flag, else the GGUF's, else chatml */
    gguf_str ct = {0};
    char *tmpl = NULL;
    if (p->chat_template) {
        tmpl = strdup(p->chat_template);
    } else if (gguf_get_str(model_gguf(s->model), "tokenizer.chat_template", &ct) == 0) {
        tmpl = malloc(ct.len + 1);
        if (tmpl) {
            memcpy(tmpl, ct.ptr, ct.len);
            tmpl[ct.len] = '\0';
        }
    }
    s->tmpl = chat_template_detect(tmpl);
    if (s->tmpl == CHAT_TMPL_UNKNOWN) {
        log_pack(LOG_WARN, LOGGER, "chat template not recognised; using chatml", NULL);
        s->tmpl = CHAT_TMPL_CHATML;
    }
    free(tmpl);
    if (metrics_vllm_init(&s->met, metrics_global(), s->name, s->max_model_len) != 0 ||
        metrics_on_collect(metrics_global(), collect_sched, s) != 0)
        log_pack(LOG_WARN, LOGGER, "metrics registration failed", NULL);
    log_pack(LOG_INFO, LOGGER, "model ready", "{s:s,s:i,s:i,s:s,s:i}", "model", s->name, "max_model_len",
             s->max_model_len, "max_num_seqs", ep.n_seq_max, "chat_template", chat_template_name(s->tmpl), "n_vocab",
             (int)nv);
    return s;
fail:
    openai_server_free(s);
    return NULL;
}

int openai_server_register(openai_server *s, api_router *r)
{
    if (api_router_add(r, "POST", "/v1/completions", h_completions, s) != 0 ||
        api_router_add(r, "POST", "/v1/chat/completions", h_chat, s) != 0 ||
        api_router_add(r, "GET", "/v1/models", h_models, s) != 0 ||
        api_router_add(r, "POST", "/tokenize", h_tokenize, s) != 0 ||
        api_router_add(r, "POST", "/detokenize", h_detokenize, s) != 0 ||
        api_router_add(r, "GET", "/metrics", h_metrics, s) != 0)
        return -1;
    return 0;
}

void openai_server_free(openai_server *s)
{
    if (!s)
        return;
    sched_free(s->sched);
    engine_free(s->eng);
    tokenizer_free(s->tok);
    model_free(s->model);
    free(s);
}

void openai_server_set_extra_metrics(openai_server *s, size_t (*fn)(const void *ud, char *buf, size_t len),
                                     const void *ud)
{
    s->extra_metrics = fn;
    s->extra_metrics_ud = ud;
}

const char *openai_server_model_name(const openai_server *s) { return s->name; }
int openai_server_max_model_len(const openai_server *s) { return s->max_model_len; }
