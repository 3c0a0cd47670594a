/* auth_store: the local API key store (a JSON file) behind `ward keys` and
 * `ward serve --keys-file`.
 *
 * The file holds no key: a store-wide random salt and, per key,
 * HMAC-SHA256(salt, key) with its metadata:
 *
 *   {"version":1,"salt":"<64 hex>","keys":[
 *     {"name":"default","id":"<8 hex>","hash":"<64 hex>","created":1720473958,
 *      "expires":1728249958,"models":["llama3"],"rpm":60}]}
 *
 * "expires", "models" and "rpm" are optional. "id" is a short, non-secret
 * handle derived from the hash for listings. The file is written atomically
 * (temporary file in the same directory, fsync, rename) with mode 0600, under
 * an flock on "<file>.lock" so that concurrent `ward keys` calls do not lose
 * updates; a reader (the server) never sees a half-written file.
 *
 * Documents are jansson objects owned by the caller (json_decref).
 */
#ifndef WARD_AUTH_STORE_H
#define WARD_AUTH_STORE_H

#include "auth/auth_keys.h"

#include <jansson.h>
#include <stdint.h>

#define AUTH_STORE_MAX_BYTES (8 * 1024 * 1024) /* ~100k keys' metadata; refuse bigger files */
#define AUTH_STORE_VERSION 1
#define AUTH_STORE_MAX_RPM 1000000             /* beyond this a limit is meaningless */
#define AUTH_STORE_DEFAULT_DIR ".ward"         /* used when WARD_HOME is unset */
#define AUTH_STORE_FILE_NAME "keys.json"

/* The default path: $WARD_KEYS_FILE, else $WARD_HOME/keys.json, else
 * ./.ward/keys.json. Writes into out (PATH_MAX). */
void auth_store_default_path(char *out, size_t outlen);

/* Loads and validates a store. Missing file: with create_if_missing an empty
 * store with a fresh salt, else an error. Returns the document or NULL with
 * a message (never containing file content). */
json_t *auth_store_load(const char *path, int create_if_missing, char *err, size_t errlen);

/* Validates a parsed document (structure, limits, hex). 0 or -1. */
int auth_store_validate(json_t *doc, char *err, size_t errlen);

typedef struct auth_store_opts {
    const char *const *models;  /* NULL = every model */
    size_t n_models;
    int64_t expires;            /* Unix seconds, 0 = never */
    int rpm;                    /* 0 = server default */
} auth_store_opts;

/* Adds key NAME; writes the new plaintext key into key_out (the caller shows
 * it once and wipes it). -1 if NAME exists or on error. */
int auth_store_create(json_t *doc, const char *name, const auth_store_opts *o, int64_t now,
                      char key_out[AUTH_KEY_TEXT_MAX], char *err, size_t errlen);
/* Removes key NAME. -1 if absent. */
int auth_store_revoke(json_t *doc, const char *name, char *err, size_t errlen);
/* Replaces NAME's key by a new one (same metadata, new created time). */
int auth_store_rotate(json_t *doc, const char *name, int64_t now,
                      char key_out[AUTH_KEY_TEXT_MAX], char *err, size_t errlen);

/* Atomic 0600 write. 0 or -1. */
int auth_store_save(json_t *doc, const char *path, char *err, size_t errlen);

/* Takes the store's write lock (blocking flock on "<path>.lock"); returns an
 * fd for auth_store_unlock, or -1. Creates the parent directory (0700). */
int auth_store_lock(const char *path, char *err, size_t errlen);
void auth_store_unlock(int fd);

/* Adds the store's salt as a domain of ks and every key's digest, skipping
 * keys expired at `now`. Returns the number added, or -1. */
int auth_store_to_keyset(json_t *doc, auth_keyset *ks, int64_t now, char *err, size_t errlen);

/* Parses "90d", "12h", "30m", "45s", or a plain number of days, into seconds.
 * 0 or -1. */
int auth_parse_duration(const char *s, int64_t *out);

#endif
