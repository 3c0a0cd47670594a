/* auth_secret: reads one API key from a Kubernetes-Secret-style directory.
 *
 * Layout (kubelet AtomicWriter): DIR/..data -> ..<timestamp>.<rand>/ holds the
 * real files and DIR/<entry> -> ..data/<entry> are symlinks. When ..data
 * exists every entry is read through one descriptor of it, so the key, name
 * and models always come from the same version even while the kubelet swaps
 * it; a plain directory (tests, docker -v, hand-made) works too.
 *
 * Entries: the key file (first found of the configured names, default
 * "api_key" then "token"), optional "name" (the identity's name; default the
 * directory's base name) and optional "models" (comma- or newline-separated
 * model ids; absent = every model).
 *
 * Key file format: the key bytes; trailing whitespace (a newline left by
 * `echo` without -n, CRLF) is stripped; a key with whitespace or control
 * characters inside, or an empty one, is rejected. Errors name the file,
 * never its content.
 */
#ifndef WARD_AUTH_SECRET_H
#define WARD_AUTH_SECRET_H

#include "auth/auth_keys.h"

#include <stddef.h>

#define AUTH_MAX_KEY_BYTES 4096             /* one API key; real keys are < 100 bytes */
#define AUTH_SECRET_MAX_FILE_BYTES 65536    /* name/models files; bounds what one Secret can make us read */
#define AUTH_MAX_KEY_FILE_NAMES 8           /* --api-key-file-name values */
#define AUTH_SECRET_RETRIES 3               /* re-reads when ..data moved under us */
#define AUTH_FINGERPRINT_MAX 1024           /* change-detection string */

typedef struct auth_secret {
    char key[AUTH_MAX_KEY_BYTES + 1];       /* plaintext: wiped by auth_secret_clear */
    size_t key_len;
    char name[AUTH_MAX_NAME_BYTES + 1];
    char models_buf[AUTH_SECRET_MAX_FILE_BYTES + 1];
    const char *models[AUTH_MAX_MODELS];    /* pointers into models_buf */
    int n_models;                           /* -1: no models entry (all models) */
} auth_secret;

/* Default key entry names, in lookup order. */
extern const char *const auth_secret_default_key_files[2];

/* Reads DIR into *out (large: allocate it, don't put it on a small stack).
 * Returns 0, or -1 with a message naming the path (not the content). On
 * failure *out holds no key. */
int auth_secret_read(const char *dir, const char *const *key_files, size_t n_key_files,
                     auth_secret *out, char *err, size_t errlen);

/* Wipes the plaintext key. */
void auth_secret_clear(auth_secret *s);

/* A cheap string that changes whenever the Secret changes (the ..data
 * target, and inode/size/mtime of the entries); "absent" if DIR is gone. */
void auth_secret_fingerprint(const char *dir, const char *const *key_files, size_t n_key_files,
                             char *out, size_t outlen);

/* Strips trailing whitespace and validates a key in place (used by the
 * Secret reader and the WARD_API_KEY variable). Returns the new length, or -1
 * with a message. */
long auth_key_normalize(char *key, size_t len, char *err, size_t errlen);

#endif
