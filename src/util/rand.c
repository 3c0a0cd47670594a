/* rand: see rand.h. */
#include "util/rand.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

int rand_bytes(void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Request ids are public, so their randomness may be drawn ahead: one
 * getrandom(2) call serves RAND_UUID_BATCH ids per thread instead of a system
 * call on every request (measurable on the 401 fast path). */
#define RAND_UUID_BATCH 64

int rand_uuid4(char out[37])
{
    static _Thread_local uint8_t pool[RAND_UUID_BATCH * 16];
    static _Thread_local size_t used = sizeof pool;
    if (used == sizeof pool) {
        if (rand_bytes(pool, sizeof pool) != 0)
            return -1;
        used = 0;
    }
    uint8_t b[16];
    memcpy(b, pool + used, sizeof b);
    used += sizeof b;
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    snprintf(out, 37,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
             b[12], b[13], b[14], b[15]);
    return 0;
}
