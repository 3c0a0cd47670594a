/* log: structured logging, one JSON object per line on stderr.
 *
 * Every line carries, in this order: "level", "ts" (RFC 3339, UTC), "logger",
 * "msg", then the caller's fields in the order given. Fields are given as a
 * jansson json_pack() format for an object, e.g.
 *
 *   log_pack(LOG_INFO, "ward.http", "request", "{s:s,s:i}", "path", p, "status", 200);
 *
 * Thread-safe: a line is written with one write(2) so lines never interleave.
 * Never pass secret material (keys, tokens, header values) to a log call.
 */
#ifndef WARD_LOG_H
#define WARD_LOG_H

#include <stdarg.h>

typedef enum { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 } log_level;

/* Sets the minimum level written; default LOG_INFO. */
void log_set_level(log_level level);
log_level log_get_level(void);
/* Parses "debug", "info", "warn", "error"; returns 0 on success, -1 otherwise. */
int log_parse_level(const char *s, log_level *out);
/* Redirects output to fd (default 2). For tests. */
void log_set_fd(int fd);

/* True if a line at this level would be written (skip building costly fields). */
int log_enabled(log_level level);

/* fmt may be NULL for no extra fields. */
void log_pack(log_level level, const char *logger, const char *msg, const char *fmt, ...);
void log_vpack(log_level level, const char *logger, const char *msg, const char *fmt, va_list ap);

/* Plain message with printf-style formatting, no extra fields. */
void log_msgf(log_level level, const char *logger, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes the current UTC time as RFC 3339 ("2024-07-08T21:25:58Z") into buf
 * (at least 32 bytes). */
void log_rfc3339(char *buf, unsigned long len);

#endif
