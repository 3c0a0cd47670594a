/* auth_ratelimit: see auth_ratelimit.h. */
#include "auth/auth_ratelimit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct bucket {
    char who[AUTH_RL_MAX_KEY_BYTES];
    double tokens;
    uint64_t last_ns;
    int rpm;
    int used;
} bucket;

#define TABLE_SIZE (AUTH_RL_MAX_BUCKETS * 2) /* load factor <= 0.5 keeps probes short */

struct auth_ratelimit {
    pthread_mutex_t mu;
    bucket *table;
    unsigned n;
};

auth_ratelimit *auth_ratelimit_new(void)
{
    auth_ratelimit *rl = calloc(1, sizeof *rl);
    if (!rl)
        return NULL;
    /* Allocated lazily: most servers never configure a limit. */
    pthread_mutex_init(&rl->mu, NULL);
    return rl;
}

void auth_ratelimit_free(auth_ratelimit *rl)
{
    if (!rl)
        return;
    pthread_mutex_destroy(&rl->mu);
    free(rl->table);
    free(rl);
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void refill(bucket *b, int rpm, uint64_t now_ns)
{
    if (b->rpm != rpm) { /* limit changed (key store edit): start full at the new rate */
        b->rpm = rpm;
        b->tokens = rpm;
    }
    if (now_ns > b->last_ns) {
        b->tokens += (double)(now_ns - b->last_ns) * rpm / 60e9;
        if (b->tokens > rpm)
            b->tokens = rpm;
    }
    b->last_ns = now_ns;
}

/* Rebuilds the table without idle buckets. Called with the lock held. */
static void sweep(auth_ratelimit *rl, uint64_t now_ns)
{
    bucket *old = rl->table;
    bucket *fresh = calloc(TABLE_SIZE, sizeof *fresh);
    if (!fresh)
        return;
    rl->n = 0;
    for (size_t i = 0; i < TABLE_SIZE; i++) {
        bucket *b = &old[i];
        if (!b->used)
            continue;
        refill(b, b->rpm, now_ns);
        if (b->tokens >= b->rpm)
            continue; /* idle: forgetting it changes nothing */
        size_t j = fnv1a(b->who) % TABLE_SIZE;
        while (fresh[j].used)
            j = (j + 1) % TABLE_SIZE;
        fresh[j] = *b;
        rl->n++;
    }
    free(old);
    rl->table = fresh;
}

int auth_ratelimit_take(auth_ratelimit *rl, const char *who, int rpm, uint64_t now_ns,
                        int *retry_after_s)
{
    if (rpm <= 0)
        return 1;
    char key[AUTH_RL_MAX_KEY_BYTES];
    size_t kl = strlen(who);
    if (kl >= sizeof key)
        kl = sizeof key - 1;
    memcpy(key, who, kl);
    key[kl] = '\0';

    pthread_mutex_lock(&rl->mu);
    if (!rl->table) {
        rl->table = calloc(TABLE_SIZE, sizeof *rl->table);
        if (!rl->table) {
            pthread_mutex_unlock(&rl->mu);
            *retry_after_s = 1;
            return 0;
        }
    }
    size_t i = fnv1a(key) % TABLE_SIZE;
    while (rl->table[i].used && strcmp(rl->table[i].who, key) != 0)
        i = (i + 1) % TABLE_SIZE;
    bucket *b = &rl->table[i];
    if (!b->used) {
        if (rl->n >= AUTH_RL_MAX_BUCKETS) {
            sweep(rl, now_ns);
            if (rl->n >= AUTH_RL_MAX_BUCKETS) {
                pthread_mutex_unlock(&rl->mu);
                *retry_after_s = 1;
                return 0;
            }
            i = fnv1a(key) % TABLE_SIZE;
            while (rl->table[i].used)
                i = (i + 1) % TABLE_SIZE;
            b = &rl->table[i];
        }
        memcpy(b->who, key, kl + 1);
        b->used = 1;
        b->rpm = rpm;
        b->tokens = rpm;
        b->last_ns = now_ns;
        rl->n++;
    }
    refill(b, rpm, now_ns);
    int ok = b->tokens >= 1.0;
    if (ok) {
        b->tokens -= 1.0;
    } else {
        double secs = (1.0 - b->tokens) * 60.0 / rpm - 1e-6; /* float noise must not add a second */
        int s = (int)secs;
        if ((double)s < secs)
            s++;
        *retry_after_s = s < 1 ? 1 : s;
    }
    pthread_mutex_unlock(&rl->mu);
    return ok;
}

unsigned auth_ratelimit_size(auth_ratelimit *rl)
{
    pthread_mutex_lock(&rl->mu);
    unsigned n = rl->n;
    pthread_mutex_unlock(&rl->mu);
    return n;
}
