/* openai_stop: incremental stop-string matcher over generated text.
 *
 * Text arrives in pieces (one per decoded token). A stop string can span
 * pieces, so the matcher holds back any tail of the text that could still be
 * the start of a stop string and releases it only once it cannot be: a stream
 * never shows part of a stop string. On a match the text before the stop
 * string (plus the stop string itself with include_stop_str_in_output) is
 * released and everything after it is dropped, as vLLM does. When several
 * stop strings match, the one that starts earliest wins (ties: the first in
 * the request's list).
 *
 * Ownership: oai_stop_new() copies the stop strings. Returned text pointers
 * point into the matcher and stay valid until the next call on it.
 * Not thread-safe; one matcher per generated sequence.
 */
#ifndef WARD_OPENAI_STOP_H
#define WARD_OPENAI_STOP_H

#include <stddef.h>

typedef struct oai_stop oai_stop;

/* stops: n strings (non-empty, NUL-terminated). n may be 0 (everything passes
 * straight through). Returns NULL on allocation failure. */
oai_stop *oai_stop_new(const char *const *stops, size_t n, int include_stop_str_in_output);
void oai_stop_free(oai_stop *s);

/* Feeds len bytes of newly generated text. Sets *out and *out_len to the text
 * that is now safe to emit (possibly empty). Returns the index (>= 0) of the
 * stop string that matched (generation must end; later feeds emit nothing),
 * -1 if none matched, or -2 on allocation failure. */
int oai_stop_feed(oai_stop *s, const char *text, size_t len, const char **out, size_t *out_len);

/* End of generation without a match: releases the held-back tail. */
void oai_stop_flush(oai_stop *s, const char **out, size_t *out_len);

/* Index of the matched stop string, or -1. */
int oai_stop_matched(const oai_stop *s);
/* The matched stop string (owned by the matcher), or NULL. */
const char *oai_stop_matched_str(const oai_stop *s);

#endif
