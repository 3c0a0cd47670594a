/* auth_ratelimit: per-identity token buckets (requests per minute).
 *
 * A bucket holds up to `rpm` tokens and refills at rpm/60 per second, so an
 * identity may burst its whole minute and then proceeds at the steady rate.
 * Thread-safe (one mutex: the critical section is a hash probe and a few
 * multiplications). The clock is passed in, so tests can drive time.
 * Memory is bounded: at most AUTH_RL_MAX_BUCKETS identities are tracked;
 * when full, buckets that have refilled completely (idle identities) are
 * dropped, and if none can be, the request is refused (fail closed).
 */
#ifndef WARD_AUTH_RATELIMIT_H
#define WARD_AUTH_RATELIMIT_H

#include <stdint.h>

#define AUTH_RL_MAX_BUCKETS 16384    /* tracked identities; table ~5 MiB once a limit is used */
#define AUTH_RL_MAX_KEY_BYTES 136    /* identity names are <= 128 bytes; longer JWT subjects are cut */

typedef struct auth_ratelimit auth_ratelimit;

auth_ratelimit *auth_ratelimit_new(void);
void auth_ratelimit_free(auth_ratelimit *rl);

/* Takes one token for `who` at time now_ns (monotonic). Returns 1 if allowed;
 * 0 if over the limit, with *retry_after_s (>= 1) set to when one token will
 * be back. rpm <= 0 means unlimited (always 1). */
int auth_ratelimit_take(auth_ratelimit *rl, const char *who, int rpm, uint64_t now_ns,
                        int *retry_after_s);

/* Tracked bucket count (tests). */
unsigned auth_ratelimit_size(auth_ratelimit *rl);

#endif
