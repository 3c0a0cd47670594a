/* openai_stop: see openai_stop.h. */
#include "api/openai_stop.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct oai_stop {
    char **stops;
    size_t *lens;
    size_t n;
    int include;
    int matched;         /* index of the matched stop string, or -1 */
    char *pend;          /* held-back text: no complete stop string inside */
    size_t pend_len, pend_cap;
    char *out;           /* text released by the last call */
    size_t out_cap;
};

oai_stop *oai_stop_new(const char *const *stops, size_t n, int include_stop_str_in_output)
{
    oai_stop *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->matched = -1;
    s->include = include_stop_str_in_output;
    if (n) {
        s->stops = calloc(n, sizeof *s->stops);
        s->lens = calloc(n, sizeof *s->lens);
        if (!s->stops || !s->lens) {
            oai_stop_free(s);
            return NULL;
        }
        for (size_t i = 0; i < n; i++) {
            s->stops[i] = strdup(stops[i] ? stops[i] : "");
            if (!s->stops[i]) {
                s->n = i;
                oai_stop_free(s);
                return NULL;
            }
            s->lens[i] = strlen(s->stops[i]);
        }
    }
    s->n = n;
    return s;
}

void oai_stop_free(oai_stop *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        free(s->stops[i]);
    free(s->stops);
    free(s->lens);
    free(s->pend);
    free(s->out);
    free(s);
}

int oai_stop_matched(const oai_stop *s) { return s ? s->matched : -1; }

const char *oai_stop_matched_str(const oai_stop *s)
{
    return s && s->matched >= 0 ? s->stops[s->matched] : NULL;
}

static int reserve(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need) {
        if (c > SIZE_MAX / 2)
            return -1;
        c *= 2;
    }
    char *p = realloc(*buf, c);
    if (!p)
        return -1;
    *buf = p;
    *cap = c;
    return 0;
}

/* Copies n bytes of pend (plus an optional suffix) to the output buffer. */
static int release(oai_stop *s, size_t n, const char *extra, size_t extra_len, const char **out, size_t *out_len)
{
    if (reserve(&s->out, &s->out_cap, n + extra_len + 1) != 0)
        return -1;
    memcpy(s->out, s->pend, n);
    if (extra_len)
        memcpy(s->out + n, extra, extra_len);
    s->out[n + extra_len] = '\0';
    *out = s->out;
    *out_len = n + extra_len;
    return 0;
}

int oai_stop_feed(oai_stop *s, const char *text, size_t len, const char **out, size_t *out_len)
{
    *out = "";
    *out_len = 0;
    if (s->matched >= 0)
        return s->matched;
    if (len > SIZE_MAX - s->pend_len - 1 || reserve(&s->pend, &s->pend_cap, s->pend_len + len + 1) != 0)
        return -2;
    if (len)
        memcpy(s->pend + s->pend_len, text, len);
    s->pend_len += len;

    /* Earliest complete match; the held tail had none, so a match involves new bytes. */
    size_t best_pos = SIZE_MAX;
    size_t best = 0;
    for (size_t i = 0; i < s->n; i++) {
        const char *hit = memmem(s->pend, s->pend_len, s->stops[i], s->lens[i]);
        if (hit && (size_t)(hit - s->pend) < best_pos) {
            best_pos = (size_t)(hit - s->pend);
            best = i;
        }
    }
    if (best_pos != SIZE_MAX) {
        s->matched = (int)best;
        if (release(s, best_pos, s->stops[best], s->include ? s->lens[best] : 0, out, out_len) != 0)
            return -2;
        s->pend_len = 0;
        return s->matched;
    }

    /* Hold back the longest tail that is a proper prefix of some stop string. */
    size_t hold = 0;
    for (size_t i = 0; i < s->n; i++) {
        size_t max = s->lens[i] - 1;
        if (max > s->pend_len)
            max = s->pend_len;
        for (size_t l = max; l > hold; l--) {
            if (memcmp(s->pend + s->pend_len - l, s->stops[i], l) == 0) {
                hold = l;
                break;
            }
        }
    }
    size_t emit = s->pend_len - hold;
    if (release(s, emit, NULL, 0, out, out_len) != 0)
        return -2;
    memmove(s->pend, s->pend + emit, hold);
    s->pend_len = hold;
    return -1;
}

void oai_stop_flush(oai_stop *s, const char **out, size_t *out_len)
{
    *out = "";
    *out_len = 0;
    if (s->matched >= 0 || s->pend_len == 0)
        return;
    if (release(s, s->pend_len, NULL, 0, out, out_len) == 0)
        s->pend_len = 0;
}
