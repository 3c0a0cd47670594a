/* rand: cryptographically secure random bytes and identifiers (getrandom(2)). */
#ifndef WARD_RAND_H
#define WARD_RAND_H

#include <stddef.h>

/* Fills buf with n random bytes from the kernel CSPRNG. Returns 0, or -1 if
 * the kernel refused (never returns weak randomness). */
int rand_bytes(void *buf, size_t n);

/* Writes a random RFC 4122 version-4 UUID, 36 chars + NUL, into out[37].
 * For public identifiers (request ids): the randomness is drawn ahead in
 * per-thread batches. Never use it for secrets. */
int rand_uuid4(char out[37]);

#endif
