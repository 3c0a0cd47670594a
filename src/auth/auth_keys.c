/* auth_keys: see auth_keys.h. */
#include "auth/auth_keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    uint8_t digest[AUTH_DIGEST_LEN];
    int domain;
    auth_identity id;
    char **models_owned;   /* backing store of id.models */
} entry;

struct auth_keyset {
    uint8_t domains[AUTH_MAX_DOMAINS][AUTH_HMAC_KEY_LEN];
    int n_domains;
    entry *entries;
    size_t n, cap;
    uint32_t *table;       /* open addressing: entry index + 1, 0 = empty */
    size_t table_mask;
    int sealed;
};

auth_keyset *auth_keyset_new(void) { return calloc(1, sizeof(auth_keyset)); }

static void entry_free(entry *e)
{
    free((char *)e->id.name);
    free((char *)e->id.source);
    if (e->models_owned) {
        for (size_t i = 0; i < e->id.n_models; i++)
            free(e->models_owned[i]);
        free(e->models_owned);
    }
}

void auth_keyset_free(auth_keyset *ks)
{
    if (!ks)
        return;
    for (size_t i = 0; i < ks->n; i++)
        entry_free(&ks->entries[i]);
    free(ks->entries);
    free(ks->table);
    auth_wipe(ks->domains, sizeof ks->domains);
    free(ks);
}

int auth_keyset_add_domain(auth_keyset *ks, const uint8_t key[AUTH_HMAC_KEY_LEN])
{
    if (ks->sealed || ks->n_domains >= AUTH_MAX_DOMAINS)
        return -1;
    memcpy(ks->domains[ks->n_domains], key, AUTH_HMAC_KEY_LEN);
    return ks->n_domains++;
}

static int printable(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return 1;
}

static size_t table_slot(const uint8_t *digest)
{
    size_t h;
    memcpy(&h, digest, sizeof h); /* an HMAC under a secret key: already uniform */
    return h;
}

static entry *find(const auth_keyset *ks, int domain, const uint8_t *digest)
{
    if (ks->sealed) {
        size_t i = table_slot(digest) & ks->table_mask;
        while (ks->table[i]) {
            entry *e = &ks->entries[ks->table[i] - 1];
            if (e->domain == domain && auth_digest_eq(e->digest, digest))
                return e;
            i = (i + 1) & ks->table_mask;
        }
        return NULL;
    }
    for (size_t i = 0; i < ks->n; i++)
        if (ks->entries[i].domain == domain && auth_digest_eq(ks->entries[i].digest, digest))
            return &ks->entries[i];
    return NULL;
}

int auth_keyset_add_digest(auth_keyset *ks, int domain, const uint8_t digest[AUTH_DIGEST_LEN],
                           const auth_identity *id, char *err, size_t errlen)
{
    if (ks->sealed || domain < 0 || domain >= ks->n_domains) {
        snprintf(err, errlen, "key set is sealed or the domain is unknown");
        return -1;
    }
    if (ks->n >= AUTH_MAX_KEYS) {
        snprintf(err, errlen, "too many keys (limit %d)", AUTH_MAX_KEYS);
        return -1;
    }
    if (!id->name || !printable(id->name, AUTH_MAX_NAME_BYTES)) {
        snprintf(err, errlen, "identity name missing, too long or not printable");
        return -1;
    }
    if (id->n_models > AUTH_MAX_MODELS) {
        snprintf(err, errlen, "too many models (limit %d)", AUTH_MAX_MODELS);
        return -1;
    }
    /* Linear duplicate check while building would be quadratic; duplicates
     * are rare, so they are resolved at seal time (first one wins). */
    if (ks->n == ks->cap) {
        size_t ncap = ks->cap ? ks->cap * 2 : 16;
        entry *ne = realloc(ks->entries, ncap * sizeof *ne);
        if (!ne) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        ks->entries = ne;
        ks->cap = ncap;
    }
    entry *e = &ks->entries[ks->n];
    memset(e, 0, sizeof *e);
    memcpy(e->digest, digest, AUTH_DIGEST_LEN);
    e->domain = domain;
    e->id.rpm = id->rpm;
    e->id.expires = id->expires;
    e->id.name = strdup(id->name);
    e->id.source = strdup(id->source ? id->source : "");
    int ok = e->id.name && e->id.source;
    if (ok && id->models) {
        e->models_owned = calloc(id->n_models ? id->n_models : 1, sizeof(char *));
        ok = e->models_owned != NULL;
        for (size_t i = 0; ok && i < id->n_models; i++) {
            if (!id->models[i] || !printable(id->models[i], AUTH_MAX_MODEL_BYTES)) {
                e->id.n_models = i;
                entry_free(e);
                snprintf(err, errlen, "model id empty, too long or not printable");
                return -1;
            }
            e->models_owned[i] = strdup(id->models[i]);
            e->id.n_models = i + 1;
            ok = e->models_owned[i] != NULL;
        }
        e->id.models = (const char *const *)e->models_owned;
        e->id.n_models = id->n_models;
    }
    if (!ok) {
        entry_free(e);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    ks->n++;
    return 0;
}

int auth_keyset_add_key(auth_keyset *ks, int domain, const char *key, size_t key_len,
                        const auth_identity *id, char *err, size_t errlen)
{
    if (domain < 0 || domain >= ks->n_domains) {
        snprintf(err, errlen, "unknown key domain");
        return -1;
    }
    uint8_t d[AUTH_DIGEST_LEN];
    if (auth_hmac(ks->domains[domain], key, key_len, d) != 0) {
        snprintf(err, errlen, "HMAC failed");
        return -1;
    }
    int rc = auth_keyset_add_digest(ks, domain, d, id, err, errlen);
    auth_wipe(d, sizeof d);
    return rc;
}

int auth_keyset_seal(auth_keyset *ks)
{
    if (ks->sealed)
        return 0;
    size_t cap = 16;
    while (cap < ks->n * 2) /* n <= AUTH_MAX_KEYS, so this cannot overflow */
        cap <<= 1;
    ks->table = calloc(cap, sizeof *ks->table);
    if (!ks->table)
        return -1;
    ks->table_mask = cap - 1;
    ks->sealed = 1;
    size_t kept = 0;
    for (size_t i = 0; i < ks->n; i++) {
        entry *e = &ks->entries[i];
        if (find(ks, e->domain, e->digest)) {
            entry_free(e); /* duplicate key: the first identity keeps it */
            continue;
        }
        if (kept != i)
            ks->entries[kept] = *e;
        size_t j = table_slot(ks->entries[kept].digest) & ks->table_mask;
        while (ks->table[j])
            j = (j + 1) & ks->table_mask;
        ks->table[j] = (uint32_t)(kept + 1);
        kept++;
    }
    ks->n = kept;
    return 0;
}

size_t auth_keyset_count(const auth_keyset *ks) { return ks ? ks->n : 0; }

const auth_identity *auth_keyset_lookup(const auth_keyset *ks, const char *cred, size_t len)
{
    if (!ks || !ks->sealed || ks->n == 0)
        return NULL;
    const auth_identity *found = NULL;
    for (int d = 0; d < ks->n_domains; d++) {
        uint8_t dig[AUTH_DIGEST_LEN];
        if (auth_hmac(ks->domains[d], cred, len, dig) != 0)
            return NULL;
        entry *e = find(ks, d, dig);
        if (e && !found)
            found = &e->id;
    }
    return found;
}

int auth_parse_models(char *buf, const char **out, char *err, size_t errlen)
{
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",\n", &save); tok; tok = strtok_r(NULL, ",\n", &save)) {
        while (*tok == ' ' || *tok == '\t' || *tok == '\r')
            tok++;
        char *end = tok + strlen(tok);
        while (end > tok && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
            *--end = '\0';
        if (*tok == '\0')
            continue;
        if (n >= AUTH_MAX_MODELS) {
            snprintf(err, errlen, "too many models (limit %d)", AUTH_MAX_MODELS);
            return -1;
        }
        if (!printable(tok, AUTH_MAX_MODEL_BYTES)) {
            snprintf(err, errlen, "model id too long or not printable");
            return -1;
        }
        out[n++] = tok;
    }
    return n;
}

int auth_identity_allows_model(const auth_identity *id, const char *model)
{
    if (!id->models || !model || !*model)
        return 1;
    for (size_t i = 0; i < id->n_models; i++)
        if (strcmp(id->models[i], model) == 0)
            return 1;
    return 0;
}
