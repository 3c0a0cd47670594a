/* log: JSON-lines logger. See log.h. */
#include "util/log.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int g_level = LOG_INFO;
static atomic_int g_fd = 2;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(log_level level) { atomic_store(&g_level, (int)level); }
log_level log_get_level(void) { return (log_level)atomic_load(&g_level); }
void log_set_fd(int fd) { atomic_store(&g_fd, fd); }
int log_enabled(log_level level) { return (int)level >= atomic_load(&g_level); }

int log_parse_level(const char *s, log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (log_level)i;
            return 0;
        }
    }
    if (strcmp(s, "warning") == 0) {
        *out = LOG_WARN;
        return 0;
    }
    return -1;
}

void log_rfc3339(char *buf, unsigned long len)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            return; /* nowhere to report a logging failure */
        p += w;
        n -= (size_t)w;
    }
}

static void emit(log_level level, const char *logger, const char *msg, json_t *fields)
{
    char ts[32];
    log_rfc3339(ts, sizeof ts);
    json_t *o = json_object();
    if (!o)
        return;
    json_object_set_new(o, "level", json_string(level_names[level]));
    json_object_set_new(o, "ts", json_string(ts));
    json_object_set_new(o, "logger", json_string(logger ? logger : "ward"));
    /* json_string rejects invalid UTF-8; fall back so the line is never lost. */
    json_t *m = json_string(msg ? msg : "");
    json_object_set_new(o, "msg", m ? m : json_string("(invalid utf-8 in message)"));
    if (fields) {
        const char *k;
        json_t *v;
        json_object_foreach(fields, k, v) json_object_set(o, k, v);
    }
    char *s = json_dumps(o, JSON_PRESERVE_ORDER | JSON_COMPACT | JSON_REAL_PRECISION(6));
    json_decref(o);
    if (!s)
        return;
    size_t n = strlen(s);
    s[n] = '\n'; /* json_dumps buffer has room for the NUL we overwrite */
    write_all(atomic_load(&g_fd), s, n + 1);
    free(s);
}

void log_vpack(log_level level, const char *logger, const char *msg, const char *fmt, va_list ap)
{
    if (!log_enabled(level))
        return;
    json_t *fields = NULL;
    if (fmt) {
        json_error_t err;
        fields = json_vpack_ex(&err, 0, fmt, ap);
        if (!fields) {
            emit(LOG_ERROR, "ward.log", "bad log call", NULL);
            return;
        }
    }
    emit(level, logger, msg, fields);
    json_decref(fields);
}

void log_pack(log_level level, const char *logger, const char *msg, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vpack(level, logger, msg, fmt, ap);
    va_end(ap);
}

void log_msgf(log_level level, const char *logger, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    emit(level, logger, buf, NULL);
}
