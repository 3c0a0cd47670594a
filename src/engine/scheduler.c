/* scheduler: continuous batching over one engine with a paged KV cache,
 * preemption by recompute and beam search. See scheduler.h. */
#include "engine/scheduler.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Pause when no row could be scheduled (jobs waiting for KV blocks): short,
 * since blocks come back at the next step of another job. */
#define SCHED_IDLE_WAIT_NS 1000000L

typedef struct {
    int slot;
    int32_t *out;             /* output tokens */
    int n_out;
    double cum;
    int32_t pending;          /* last token, not yet in the KV cache */
} beam;

typedef struct {
    int32_t *out;             /* owned */
    int n_out, n_output;
    double cum, score;
    sched_finish why;
    int32_t stop_token;
} fin_beam;

typedef struct {
    int parent;               /* index into the live beams (-1: the prompt) */
    int32_t token;
    double lp, cum;
} cand;

typedef struct job {
    struct job *next;
    sampler_result last;      /* the ending EOS / stop token's sample, for on_done */
    int has_last;
    uint64_t id;
    sched_request req;        /* prompt and stop_ids point at the copies below */
    int32_t *prompt;
    int32_t stop_ids[SCHED_MAX_STOP_IDS];
    sampler *smp;
    int32_t *ctx;             /* prompt + outputs: recomputed after a preemption */
    int n_ctx_tok;
    int slot;                 /* sequence id of the prompt (beam: of beam 0), -1 until admitted */
    int n_output;
    int32_t pending;          /* sampled token not yet fed back, or -1 */
    int n_lp_next;            /* next prompt position whose logprob is to be reported */
    int cancelled;            /* set under the lock */
    int in_running;           /* on the running list (scheduler thread) */
    /* beam search */
    int width;                /* 0: not beam search */
    int slots[SCHED_MAX_BEAM];
    int n_slots;              /* slots held (width when admitted) */
    beam *live;               /* [width] */
    int n_live;
    int32_t *buf[2];          /* [width][cap] token storage, swapped each step */
    int cur_buf, cap;
    fin_beam fin[2 * SCHED_MAX_BEAM]; /* width best finished, plus the live ones at the end */
    int n_fin;
    /* per-step bookkeeping */
    int step_rows, step_logit_row0, step_start, plan_blocks;
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
    job *running;                     /* arrival order; changed under mu by the scheduler thread */
    int n_running;
    uint8_t *slot_used;
    /* stats, under mu */
    uint64_t steps, last_batch, preemptions;
    engine_kv_stats kv;
    /* step buffers, scheduler thread only */
    int cap_rows;
    int32_t *b_tok, *b_pos, *b_seq;
    uint8_t *b_want;
    size_t cap_logits;                /* rows */
    float *logits;
    double *lsm;                      /* [n_vocab] log-softmax scratch (beam search) */
    cand *cands;                      /* [SCHED_MAX_BEAM * 2 * SCHED_MAX_BEAM] */
    job **snap;                       /* [n_slots] running jobs at the start of planning */
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
    free(j->ctx);
    free(j->live);
    free(j->buf[0]);
    free(j->buf[1]);
    for (int i = 0; i < j->n_fin; i++)
        free(j->fin[i].out);
    free(j);
}

static int job_is_prefilling(const sched *s, const job *j, int *target);

/* Frees the job's sequences (slots and their KV blocks). */
static void release_slots(sched *s, job *j)
{
    for (int i = 0; i < j->n_slots; i++) {
        engine_seq_reset(s->e, j->slots[i]);
        s->slot_used[j->slots[i]] = 0;
    }
    j->n_slots = 0;
    j->slot = -1;
}

static void finish(sched *s, job *j, sched_finish why, int32_t stop_token, const char *err)
{
    sched_done d = {why, stop_token, j->req.n_prompt, j->n_output, err,
                    (why == SCHED_FINISH_EOS || why == SCHED_FINISH_STOP_TOKEN) && j->has_last ? &j->last : NULL};
    release_slots(s, j);
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

/* Positions a job still has to prefill before its next decode or sample:
 * the prompt, or after a preemption the prompt and every output but the
 * pending one. Returns 1 while prefilling (target in *target). */
static int job_is_prefilling(const sched *s, const job *j, int *target)
{
    int t = j->width && j->n_live ? 0 : j->pending >= 0 ? j->n_ctx_tok - 1 : j->n_ctx_tok;
    if (target)
        *target = t;
    return !(j->width && j->n_live) && engine_seq_len(s->e, j->slot) < t;
}

/* Blocks a running job may still take soon: the rest of its prefill, and a
 * block of headroom per sequence for decoding. */
static int job_reserve(const sched *s, const job *j)
{
    int target;
    if (j->width && j->n_live)
        return j->n_live;
    int r = job_is_prefilling(s, j, &target)
                ? engine_seq_blocks_needed(s->e, j->slot, target - engine_seq_len(s->e, j->slot))
                : 0;
    return r + (j->width ? j->width : 1);
}

/* Moves waiting jobs into free slots while the KV pool can hold them, and
 * drops cancelled ones. Under mu, on the scheduler thread. */
static void admit_locked(sched *s, job **cancelled)
{
    int reserve = 0;
    for (job *j = s->running; j; j = j->next)
        reserve += job_reserve(s, j);
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
        int want = j->width ? j->width : 1, got = 0;
        for (int i = 0; i < s->n_slots && got < want; i++)
            if (!s->slot_used[i])
                j->slots[got++] = i;
        if (got < want)
            break; /* FIFO: no overtaking */
        /* Reuse cached prefix blocks; keep the last token to compute unless
         * its logits are not needed (a resumed job has its pending token). */
        int target;
        j->slot = j->slots[0];
        job_is_prefilling(s, j, &target);
        int attach = j->pending >= 0 ? target : target - 1;
        if (j->req.prompt_logprobs && j->n_lp_next < j->req.n_prompt && attach > j->n_lp_next - 1)
            attach = j->n_lp_next - 1; /* prompt logprobs still to compute */
        if (attach > 0)
            engine_seq_prefix_attach(s->e, j->slot, j->ctx, attach);
        int need = engine_seq_blocks_needed(s->e, j->slot, target - engine_seq_len(s->e, j->slot)) + want;
        if (s->running && need > engine_kv_blocks_free(s->e) - reserve) {
            engine_seq_reset(s->e, j->slot);
            j->slot = -1;
            break; /* the pool is busy: wait (FIFO) */
        }
        reserve += need;
        *pp = j->next;
        s->n_waiting--;
        for (int i = 0; i < want; i++)
            s->slot_used[j->slots[i]] = 1;
        j->n_slots = want;
        j->in_running = 1;
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
    j->in_running = 0;
    finish(s, j, why, stop_token, err);
    job_free(j);
}

/* Recompute preemption: frees j's blocks and puts it back at the head of the
 * queue; it continues from its context tokens when admitted again. */
static void preempt(sched *s, job *j)
{
    release_slots(s, j);
    j->in_running = 0;
    pthread_mutex_lock(&s->mu);
    for (job **pp = &s->running; *pp; pp = &(*pp)->next)
        if (*pp == j) {
            *pp = j->next;
            s->n_running--;
            break;
        }
    j->next = s->waiting_head;
    s->waiting_head = j;
    if (!s->waiting_tail)
        s->waiting_tail = j;
    s->n_waiting++;
    s->preemptions++;
    pthread_mutex_unlock(&s->mu);
}

/* The newest running job that may be preempted (not beam search), or NULL. */
static job *pick_victim(sched *s)
{
    job *v = NULL;
    for (job *j = s->running; j; j = j->next)
        if (!j->width)
            v = j;
    return v;
}

/* Handles a sampled token for j. Returns 1 if j finished (and was retired). */
static int on_sampled(sched *s, job *j, const sampler_result *r)
{
    int32_t t = r->token;
    if (!j->req.ignore_eos && is_eog(s, t)) {
        j->n_output++;
        j->last = *r;
        j->has_last = 1;
        retire(s, j, SCHED_FINISH_EOS, t, NULL);
        return 1;
    }
    if (is_stop_id(j, t)) {
        j->n_output++;
        j->last = *r;
        j->has_last = 1;
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
    j->ctx[j->n_ctx_tok++] = t; /* capacity n_prompt + max_tokens */
    return 0;
}

/* Masks end-of-generation and stop tokens while fewer than min_tokens were produced. */
static void suppress_stops(const sched *s, const job *j, int n_output, float *row)
{
    if (n_output >= j->req.min_tokens)
        return;
    if (!j->req.ignore_eos)
        for (int i = 0; i < s->p.n_eog; i++)
            if (s->p.eog[i] >= 0 && s->p.eog[i] < s->n_vocab)
                row[s->p.eog[i]] = -INFINITY;
    for (int i = 0; i < j->req.n_stop_ids; i++)
        if (j->stop_ids[i] >= 0 && j->stop_ids[i] < s->n_vocab)
            row[j->stop_ids[i]] = -INFINITY;
}

/* ---- beam search ---- */

static double beam_score(const job *j, double cum, int n_output, int ends_eos)
{
    double len = (double)j->req.n_prompt + (double)n_output - (ends_eos ? 1.0 : 0.0);
    if (len < 1.0)
        len = 1.0;
    return cum / pow(len, j->req.length_penalty);
}

static int cmp_cand(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->cum != y->cum)
        return x->cum < y->cum ? 1 : -1;
    if (x->parent != y->parent) /* ties: deterministic order */
        return x->parent - y->parent;
    return x->token - y->token;
}

static int cmp_fin(const void *a, const void *b)
{
    const fin_beam *x = a, *y = b;
    return (x->score < y->score) - (x->score > y->score);
}

/* Appends the top k tokens of row (log-softmax) for parent to s->cands. */
static int top_candidates(sched *s, const job *j, const float *row, int parent, double base, int k, int n)
{
    double mx = -INFINITY;
    for (int32_t v = 0; v < s->n_vocab; v++)
        if (row[v] > mx)
            mx = row[v];
    double sum = 0;
    for (int32_t v = 0; v < s->n_vocab; v++)
        sum += exp((double)row[v] - mx);
    double lse = mx + log(sum);
    for (int32_t v = 0; v < s->n_vocab; v++)
        s->lsm[v] = (double)row[v] - lse;
    (void)j;
    /* k passes of selection: k <= 2 * SCHED_MAX_BEAM and vocabularies are small enough */
    for (int i = 0; i < k; i++) {
        int32_t best = -1;
        for (int32_t v = 0; v < s->n_vocab; v++)
            if (s->lsm[v] > -INFINITY && (best < 0 || s->lsm[v] > s->lsm[best]))
                best = v;
        if (best < 0)
            break;
        s->cands[n++] = (cand){parent, best, s->lsm[best], base + s->lsm[best]};
        s->lsm[best] = -INFINITY;
    }
    return n;
}

/* Ends the search: reports the finished beams (best first) and retires j. */
static void beam_finish(sched *s, job *j)
{
    /* live beams left over (cut short) compete too */
    for (int i = 0; i < j->n_live && j->n_fin < 2 * SCHED_MAX_BEAM; i++) {
        beam *b = &j->live[i];
        fin_beam *f = &j->fin[j->n_fin];
        f->out = malloc((size_t)(b->n_out ? b->n_out : 1) * sizeof *f->out);
        if (!f->out)
            break;
        memcpy(f->out, b->out, (size_t)b->n_out * sizeof *f->out);
        f->n_out = f->n_output = b->n_out;
        f->cum = b->cum;
        f->score = beam_score(j, b->cum, b->n_out, 0);
        f->why = SCHED_FINISH_LENGTH;
        f->stop_token = -1;
        j->n_fin++;
    }
    j->n_live = 0;
    qsort(j->fin, (size_t)j->n_fin, sizeof *j->fin, cmp_fin);
    int n = j->n_fin < j->width ? j->n_fin : j->width;
    sched_beam out[SCHED_MAX_BEAM];
    for (int i = 0; i < n; i++)
        out[i] = (sched_beam){j->fin[i].out, j->fin[i].n_out, j->fin[i].n_output, j->fin[i].cum,
                              j->fin[i].score, j->fin[i].why, j->fin[i].stop_token};
    if (j->req.on_beams)
        j->req.on_beams(j->req.ud, out, n);
    j->n_output = n ? out[0].n_output : 0;
    retire(s, j, n ? out[0].why : SCHED_FINISH_LENGTH, n ? out[0].stop_token : -1, NULL);
}

/* One beam step from the candidates s->cands[0..n) (all from the live beams,
 * or from the prompt when none is live yet). Returns 1 if j finished. */
static int beam_select(sched *s, job *j, int n)
{
    qsort(s->cands, (size_t)n, sizeof *s->cands, cmp_cand);
    if (n > 2 * j->width)
        n = 2 * j->width;
    int32_t *nb = j->buf[j->cur_buf ^ 1];
    beam next[SCHED_MAX_BEAM];
    int n_next = 0;
    for (int c = 0; c < n; c++) {
        const cand *cd = &s->cands[c];
        const beam *par = cd->parent >= 0 ? &j->live[cd->parent] : NULL;
        int n_out = (par ? par->n_out : 0) + 1;
        sched_finish why = SCHED_FINISH_LENGTH;
        int ends = 0;
        if (!j->req.ignore_eos && is_eog(s, cd->token)) {
            why = SCHED_FINISH_EOS;
            ends = 1;
        } else if (is_stop_id(j, cd->token)) {
            why = SCHED_FINISH_STOP_TOKEN;
            ends = 1;
        } else if (n_out >= j->req.max_tokens) {
            ends = 1;
        }
        if (ends) {
            fin_beam f;
            int keep = why == SCHED_FINISH_LENGTH; /* the last token is part of the text */
            f.n_out = n_out - (keep ? 0 : 1);
            f.n_output = n_out;
            f.out = malloc((size_t)(n_out) * sizeof *f.out);
            if (!f.out)
                continue;
            if (par)
                memcpy(f.out, par->out, (size_t)par->n_out * sizeof *f.out);
            if (keep)
                f.out[n_out - 1] = cd->token;
            f.cum = cd->cum;
            f.score = beam_score(j, cd->cum, n_out, why == SCHED_FINISH_EOS);
            f.why = why;
            f.stop_token = keep ? -1 : cd->token;
            /* keep the width best finished */
            if (j->n_fin < j->width) {
                j->fin[j->n_fin++] = f;
            } else {
                int worst = 0;
                for (int i = 1; i < j->n_fin; i++)
                    if (j->fin[i].score < j->fin[worst].score)
                        worst = i;
                if (f.score > j->fin[worst].score) {
                    free(j->fin[worst].out);
                    j->fin[worst] = f;
                } else {
                    free(f.out);
                }
            }
        } else if (n_next < j->width) {
            beam *b = &next[n_next];
            b->out = nb + (size_t)n_next * (size_t)j->cap;
            if (par)
                memcpy(b->out, par->out, (size_t)par->n_out * sizeof *b->out);
            b->out[n_out - 1] = cd->token;
            b->n_out = n_out;
            b->cum = cd->cum;
            b->pending = cd->token;
            b->slot = cd->parent; /* parent index for now */
            n_next++;
        }
    }
    /* Stop? No beam left, or (early_stopping=false) width finished beams
     * and the best live one cannot beat the worst of them. */
    int stop = n_next == 0;
    if (!stop && j->n_fin >= j->width) {
        double worst = j->fin[0].score;
        for (int i = 1; i < j->n_fin; i++)
            if (j->fin[i].score < worst)
                worst = j->fin[i].score;
        stop = worst >= beam_score(j, next[0].cum, next[0].n_out, 0);
    }
    if (stop) {
        j->n_live = 0;
        beam_finish(s, j);
        return 1;
    }
    /* Sequences: a parent's first child takes its sequence over; other
     * children fork it into the sequences of parents left childless (as many
     * as needed, since there are as many beams as sequences at most). */
    int n_par = j->n_live ? j->n_live : 1;
    int claimed[SCHED_MAX_BEAM] = {0}, children[SCHED_MAX_BEAM] = {0};
    for (int i = 0; i < n_next; i++)
        children[next[i].slot >= 0 ? next[i].slot : 0]++;
    int spare[SCHED_MAX_BEAM], n_spare = 0;
    uint8_t in_use[SCHED_MAX_BEAM] = {0};
    for (int p = 0; p < n_par; p++) {
        int ps = j->n_live ? j->live[p].slot : j->slot;
        for (int k = 0; k < j->n_slots; k++)
            if (j->slots[k] == ps)
                in_use[k] = 1;
        if (!children[p])
            engine_seq_reset(s->e, ps);
    }
    for (int k = 0; k < j->n_slots; k++)
        if (!in_use[k])
            spare[n_spare++] = j->slots[k];
    for (int p = 0; p < n_par; p++)
        if (!children[p])
            spare[n_spare++] = j->n_live ? j->live[p].slot : j->slot;
    for (int i = 0; i < n_next; i++) {
        int p = next[i].slot >= 0 ? next[i].slot : 0;
        int ps = j->n_live ? j->live[p].slot : j->slot;
        if (!claimed[p]) {
            claimed[p] = 1;
            next[i].slot = ps;
        } else {
            int d = spare[--n_spare];
            engine_seq_fork(s->e, ps, d);
            next[i].slot = d;
        }
    }
    memcpy(j->live, next, (size_t)n_next * sizeof *next);
    j->n_live = n_next;
    j->cur_buf ^= 1;
    return 0;
}

/* Expands a beam job from the logits of its live beams (rows in order) or of
 * its last prompt row. Returns 1 if j finished. */
static int beam_step(sched *s, job *j, float *rows)
{
    int n = 0, k = 2 * j->width;
    if (!j->n_live) {
        suppress_stops(s, j, 0, rows);
        n = top_candidates(s, j, rows, -1, 0.0, k, n);
    } else {
        for (int i = 0; i < j->n_live; i++) {
            float *row = rows + (size_t)i * (size_t)s->n_vocab;
            suppress_stops(s, j, j->live[i].n_out, row);
            n = top_candidates(s, j, row, i, j->live[i].cum, k, n);
        }
    }
    if (n == 0) {
        beam_finish(s, j);
        return 1;
    }
    return beam_select(s, j, n);
}

/* ---- one step ---- */

/* Plans j's rows for this step within *budget tokens and *free blocks,
 * preempting newer jobs when a decode cannot get a block. Returns 0, or 1
 * when j itself was preempted or retired. */
static int plan_job(sched *s, job *j, int *budget, int *planned)
{
    j->step_rows = 0;
    j->plan_blocks = 0;
    int target;
    if (!job_is_prefilling(s, j, &target)) {
        /* decode rows: one per sequence */
        int nseq = j->width && j->n_live ? j->n_live : 1;
        for (;;) {
            int need = 0;
            for (int i = 0; i < nseq; i++)
                need += engine_seq_blocks_needed(s->e, j->width && j->n_live ? j->live[i].slot : j->slot, 1);
            if (need <= engine_kv_blocks_free(s->e) - *planned) {
                j->step_rows = nseq;
                j->plan_blocks = need;
                *planned += need;
                *budget -= nseq;
                return 0;
            }
            job *v = pick_victim(s);
            if (!v) {
                /* only beam groups left: this one ends with what it has */
                beam_finish(s, j);
                return 1;
            }
            *planned -= v->plan_blocks;
            v->plan_blocks = 0;
            v->step_rows = 0;
            preempt(s, v);
            if (v == j)
                return 1;
        }
    }
    if (*budget <= 0)
        return 0;
    int len = engine_seq_len(s->e, j->slot);
    int take = target - len < *budget ? target - len : *budget;
    if (j->req.prompt_logprobs && j->n_lp_next < j->req.n_prompt && take > SCHED_MAX_PROMPT_LOGIT_ROWS)
        take = SCHED_MAX_PROMPT_LOGIT_ROWS;
    int fit = engine_seq_max_append(s->e, j->slot, engine_kv_blocks_free(s->e) - *planned);
    if (take > fit)
        take = fit;
    if (take <= 0)
        return 0; /* waits for blocks */
    j->step_rows = take;
    j->step_start = len;
    j->plan_blocks = engine_seq_blocks_needed(s->e, j->slot, take);
    *planned += j->plan_blocks;
    *budget -= take;
    return 0;
}

/* Whether prefill row at position pi of j wants logits. */
static int prefill_wants(const job *j, int pi, int target)
{
    if (pi == target - 1 && j->pending < 0 && !(j->width && j->n_live))
        return 1; /* the last prompt row: sample from it */
    return j->req.prompt_logprobs && pi + 1 < j->req.n_prompt && pi + 1 >= j->n_lp_next;
}

/* One step: build the batch, decode, sample. Returns 0 if there was nothing to do. */
static int step(sched *s)
{
    if (!s->running)
        return 0;
    int budget = s->p.step_tokens;
    int rows = 0, logit_rows = 0, planned = 0;

    /* Finish jobs whose context is full before they take a row. */
    for (job *j = s->running, *nx; j; j = nx) {
        nx = j->next;
        if (!j->width && !job_is_prefilling(s, j, NULL) && engine_seq_len(s->e, j->slot) >= s->n_ctx)
            retire(s, j, SCHED_FINISH_LENGTH, -1, NULL);
    }
    if (!s->running)
        return 0;

    /* Pass 1: size the step. Decode rows first (oldest first), then prompt chunks. */
    /* Planning may preempt jobs (they leave the list, flagged) or end the
     * job being planned, so it walks a snapshot. */
    int n_snap = 0;
    for (job *j = s->running; j && n_snap < s->n_slots; j = j->next) {
        j->step_rows = j->plan_blocks = 0;
        s->snap[n_snap++] = j;
    }
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < n_snap; i++) {
            job *j = s->snap[i];
            if (j->in_running && job_is_prefilling(s, j, NULL) == pass)
                plan_job(s, j, &budget, &planned);
        }
    for (job *j = s->running; j; j = j->next) {
        j->step_logit_row0 = logit_rows;
        rows += j->step_rows;
        if (j->step_rows == 0)
            continue;
        int target;
        if (!job_is_prefilling(s, j, &target)) {
            logit_rows += j->step_rows;
        } else {
            for (int k = 0; k < j->step_rows; k++)
                logit_rows += prefill_wants(j, j->step_start + k, target);
        }
    }
    if (rows == 0) {
        /* Every running job waits for blocks held by the others (their
         * prefills filled the pool): free the newest one's. */
        if (s->running && s->running->next) {
            job *v = pick_victim(s);
            if (v)
                preempt(s, v);
            return 1;
        }
        return 0;
    }
    if (ensure_buffers(s, rows, logit_rows) != 0) {
        for (job *j = s->running, *nx; j; j = nx) {
            nx = j->next;
            retire(s, j, SCHED_FINISH_ERROR, -1, "out of memory for the batch");
        }
        return 1;
    }

    /* Pass 2: fill the batch. */
    int r = 0;
    for (job *j = s->running; j; j = j->next) {
        if (j->step_rows == 0)
            continue;
        int target;
        if (!job_is_prefilling(s, j, &target)) {
            for (int i = 0; i < j->step_rows; i++, r++) {
                int slot = j->width && j->n_live ? j->live[i].slot : j->slot;
                s->b_tok[r] = j->width && j->n_live ? j->live[i].pending : j->pending;
                s->b_pos[r] = engine_seq_len(s->e, slot);
                s->b_seq[r] = slot;
                s->b_want[r] = 1;
            }
            continue;
        }
        for (int k = 0; k < j->step_rows; k++, r++) {
            int pi = j->step_start + k;
            s->b_tok[r] = j->ctx[pi];
            s->b_pos[r] = pi;
            s->b_seq[r] = j->slot;
            s->b_want[r] = (uint8_t)prefill_wants(j, pi, target);
        }
    }

    engine_batch b = {rows, s->b_tok, s->b_pos, s->b_seq, s->b_want};
    char err[256];
    int rc = engine_decode(s->e, &b, s->logits, err, sizeof err);
    if (rc != 0) {
        for (job *j = s->running, *nx; j; j = nx) {
            nx = j->next;
            if (j->step_rows)
                retire(s, j, SCHED_FINISH_ERROR, -1, err);
        }
        return 1;
    }
    pthread_mutex_lock(&s->mu);
    s->steps++;
    s->last_batch = (uint64_t)rows;
    pthread_mutex_unlock(&s->mu);
    if (s->p.on_step)
        s->p.on_step(s->p.step_ud, rows);

    /* Pass 3: consume logits. Decode jobs first saw their rows appended. */
    for (job *j = s->running, *nx; j; j = nx) {
        nx = j->next;
        if (j->step_rows == 0)
            continue;
        /* a step of mid-prompt chunks only wants no logits (s->logits may be NULL) */
        float *row0 = s->logits ? s->logits + (size_t)j->step_logit_row0 * (size_t)s->n_vocab : NULL;
        int target;
        job_is_prefilling(s, j, &target);
        if (j->width && j->n_live) {
            beam_step(s, j, row0);
            continue;
        }
        if (j->pending >= 0 && engine_seq_len(s->e, j->slot) == target + 1) {
            /* the pending token went in: sample the next one */
            sampler_result sr;
            suppress_stops(s, j, j->n_output, row0);
            if (sampler_sample(j->smp, row0, &sr, err, sizeof err) != 0) {
                retire(s, j, SCHED_FINISH_ERROR, -1, err);
                continue;
            }
            on_sampled(s, j, &sr);
            continue;
        }
        /* a prefill chunk */
        int stopped = 0;
        const float *lr = row0;
        float *last = NULL;
        for (int k = 0; k < j->step_rows && !stopped; k++) {
            int pi = j->step_start + k;
            if (!prefill_wants(j, pi, target))
                continue;
            const float *row = lr;
            lr += s->n_vocab;
            if (j->req.prompt_logprobs && pi + 1 < j->req.n_prompt && pi + 1 >= j->n_lp_next) {
                /* row pi holds the distribution of prompt token pi + 1 */
                sched_token ev;
                memset(&ev, 0, sizeof ev);
                ev.is_prompt = 1;
                ev.index = pi + 1;
                if (sampler_logprobs(row, s->n_vocab, j->req.prompt[pi + 1], j->req.sampling.n_logprobs, &ev.r) != 0) {
                    ev.r.token = j->req.prompt[pi + 1];
                    ev.r.logprob = -INFINITY;
                }
                j->n_lp_next = pi + 2;
                if (j->req.on_token(j->req.ud, &ev)) {
                    retire(s, j, SCHED_FINISH_STOP, -1, NULL);
                    stopped = 1;
                }
            }
            if (pi == target - 1 && j->pending < 0)
                last = (float *)row;
        }
        if (stopped || engine_seq_len(s->e, j->slot) < target || j->pending >= 0)
            continue;
        if (j->req.max_tokens == 0) {
            retire(s, j, SCHED_FINISH_LENGTH, -1, NULL);
            continue;
        }
        if (!last) {
            retire(s, j, SCHED_FINISH_ERROR, -1, "internal error: no logits for the last prompt token");
            continue;
        }
        if (j->width) {
            beam_step(s, j, last);
            continue;
        }
        sampler_result sr;
        suppress_stops(s, j, j->n_output, last);
        if (sampler_sample(j->smp, last, &sr, err, sizeof err) != 0) {
            retire(s, j, SCHED_FINISH_ERROR, -1, err);
            continue;
        }
        on_sampled(s, j, &sr);
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
        pthread_mutex_unlock(&s->mu);
        /* Cancelled jobs give their blocks back before admission. */
        for (job *j = to_cancel, *nx; j; j = nx) {
            nx = j->next;
            finish(s, j, SCHED_FINISH_CANCELLED, -1, NULL);
            job_free(j);
        }
        pthread_mutex_lock(&s->mu);
        admit_locked(s, &cancelled);
        pthread_mutex_unlock(&s->mu);

        for (job *j = cancelled, *nx; j; j = nx) {
            nx = j->next;
            finish(s, j, SCHED_FINISH_CANCELLED, -1, NULL);
            job_free(j);
        }
        int did = step(s);
        engine_kv_stats kv;
        engine_kv_get_stats(s->e, &kv);
        pthread_mutex_lock(&s->mu);
        s->kv = kv;
        /* Nothing could run this round (a job waits for blocks): wait for a
         * submit/cancel, or a moment, rather than spin. */
        if (!did && (s->waiting_head || s->running) && !s->stopping) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += SCHED_IDLE_WAIT_NS;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&s->cv, &s->mu, &ts);
        }
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
    s->lsm = malloc((size_t)s->n_vocab * sizeof *s->lsm);
    s->cands = malloc((size_t)SCHED_MAX_BEAM * 2 * SCHED_MAX_BEAM * sizeof *s->cands);
    s->snap = malloc((size_t)s->n_slots * sizeof *s->snap);
    if (!s->slot_used || !s->lsm || !s->cands || !s->snap) {
        free(s->snap);
        free(s->slot_used);
        free(s->lsm);
        free(s->cands);
        free(s);
        snprintf(err, errlen, "scheduler: out of memory");
        return NULL;
    }
    engine_kv_get_stats(e, &s->kv);
    s->next_id = 1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (pthread_create(&s->thread, NULL, sched_main, s) != 0) {
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        free(s->slot_used);
        free(s->lsm);
        free(s->cands);
        free(s->snap);
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
    free(s->lsm);
    free(s->cands);
    free(s->snap);
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
    int width = r->beam_width >= 2 ? r->beam_width : 0;
    if (width) {
        if (width > SCHED_MAX_BEAM || width > s->n_slots) {
            snprintf(err, errlen, "beam width %d is above the limit of %d (max_num_seqs %d)", width,
                     SCHED_MAX_BEAM < s->n_slots ? SCHED_MAX_BEAM : s->n_slots, s->n_slots);
            return -1;
        }
        if (!isfinite(r->length_penalty)) {
            snprintf(err, errlen, "length_penalty must be finite");
            return -1;
        }
        if (r->prompt_logprobs) {
            snprintf(err, errlen, "prompt logprobs are not supported with beam search");
            return -1;
        }
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
    j->n_lp_next = 1;
    j->width = width;
    /* The context caps the output: the last position is n_ctx - 1. */
    if (j->req.max_tokens > s->n_ctx - r->n_prompt)
        j->req.max_tokens = s->n_ctx - r->n_prompt;
    j->prompt = malloc((size_t)r->n_prompt * sizeof *j->prompt);
    /* prompt + outputs: both bounded by the context (checked above) */
    j->ctx = malloc((size_t)(r->n_prompt + j->req.max_tokens + 1) * sizeof *j->ctx);
    j->smp = sampler_new(&r->sampling, s->n_vocab, err, errlen);
    int oom = !j->prompt || !j->ctx;
    if (width && !oom) {
        j->cap = j->req.max_tokens + 1;
        j->live = calloc((size_t)width, sizeof *j->live);
        j->buf[0] = malloc((size_t)width * (size_t)j->cap * sizeof *j->buf[0]);
        j->buf[1] = malloc((size_t)width * (size_t)j->cap * sizeof *j->buf[1]);
        oom = !j->live || !j->buf[0] || !j->buf[1];
    }
    if (oom || !j->smp) {
        if (oom)
            snprintf(err, errlen, "scheduler: out of memory");
        job_free(j);
        return -1;
    }
    memcpy(j->prompt, r->prompt, (size_t)r->n_prompt * sizeof *j->prompt);
    memcpy(j->ctx, r->prompt, (size_t)r->n_prompt * sizeof *j->ctx);
    j->n_ctx_tok = r->n_prompt;
    if (r->n_stop_ids)
        memcpy(j->stop_ids, r->stop_ids, (size_t)r->n_stop_ids * sizeof *j->stop_ids);
    j->req.prompt = j->prompt;
    j->req.stop_ids = j->stop_ids;
    sampler_accept_prompt(j->smp, j->prompt, (size_t)r->n_prompt);

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
    out->kv_blocks_total = s->kv.blocks_total;
    out->kv_blocks_free = s->kv.blocks_free;
    out->kv_usage = s->kv.blocks_total
                        ? (double)(s->kv.blocks_total - s->kv.blocks_free) / (double)s->kv.blocks_total
                        : 0.0;
    out->steps = s->steps;
    out->last_batch = s->last_batch;
    out->preemptions = s->preemptions;
    out->prefix_queries = s->kv.prefix_queries;
    out->prefix_hits = s->kv.prefix_hits;
    pthread_mutex_unlock(&s->mu);
}
