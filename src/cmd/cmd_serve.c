/* cmd_serve: `ward serve` — parses flags, builds the router, runs the server
 * until SIGTERM/SIGINT, then drains gracefully and exits 0.
 *
 * Plugging in (auth, api): add your lines in the marked section of
 * serve_wire(); everything you need is in `serve_options` and the router. */
#include "api/api_router.h"
#include "api/openai_server.h"
#include "auth/auth_serve.h"
#include "cmd/cmd.h"
#include "server/http.h"
#include "util/log.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* Bounds on numeric flags: wide enough for any sane deployment, narrow enough
 * that a typo cannot ask for absurd memory or a timeout of decades. */
#define SERVE_MAX_THREADS 256
#define SERVE_MAX_HEADER_BYTES_LIMIT (1024 * 1024)
#define SERVE_MAX_BODY_BYTES_LIMIT (1024L * 1024 * 1024)
#define SERVE_MAX_HEADERS_LIMIT 10000
#define SERVE_MAX_TIMEOUT_MS (24L * 3600 * 1000)
#define SERVE_MAX_CONNECTIONS_LIMIT 1000000

typedef struct serve_options {
    http_params http;
    const char *model;             /* --model FILE, or NULL */
    const char *served_model_name; /* --served-model-name, default: general.name, else file name */
    log_level level;
    auth_serve_cfg auth;           /* authorization flags (auth/auth_serve.h) */
    openai_params api;             /* model serving flags (api/openai_server.h) */
} serve_options;

static http_server *volatile g_server;
static auth *g_auth; /* the authorizer; freed after the server stops */
static openai_server *g_api; /* model + OpenAI routes; freed after the server stops */

static void on_signal(int sig)
{
    (void)sig;
    http_server *s = g_server;
    if (s)
        http_server_stop(s); /* async-signal-safe: a flag and eventfd writes */
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ward serve [options]\n"
            "\n"
            "Serves the OpenAI-compatible HTTP API (health endpoints always).\n"
            "\n"
            "options:\n"
            "  --host ADDR              address to listen on (default 127.0.0.1)\n"
            "  --port N                 port, 0 = any free port (default 8080)\n"
            "  --threads N              event-loop threads (default 1)\n"
            "  --model FILE             GGUF model to serve\n"
            "  --served-model-name NAME model name in the API (default: the GGUF's general.name,\n"
            "                           else the file name)\n"
            "  --log-level LEVEL        debug, info, warn or error (default info)\n"
            "  --max-header-bytes N     request line + headers limit (default %d)\n"
            "  --max-body-bytes N       request body limit (default %d)\n"
            "  --max-headers N          header count limit (default %d)\n"
            "  --header-timeout-ms N    time to receive a request head (default %d)\n"
            "  --body-timeout-ms N      longest pause while receiving a body (default %d)\n"
            "  --idle-timeout-ms N      keep-alive idle limit (default %d)\n"
            "  --max-connections N      concurrent connections (default %d)\n"
            "  --shutdown-grace-ms N    time in-flight requests get on SIGTERM (default %d)\n"
            "  --tls-cert FILE          PEM certificate chain (with --tls-key: HTTPS)\n"
            "  --tls-key FILE           PEM private key (re-read when the files change)\n"
            "  -h, --help               this help\n",
            HTTP_MAX_HEADER_BYTES, HTTP_MAX_BODY_BYTES, HTTP_MAX_HEADERS, HTTP_HEADER_TIMEOUT_MS,
            HTTP_BODY_TIMEOUT_MS, HTTP_IDLE_TIMEOUT_MS, HTTP_MAX_CONNECTIONS, HTTP_SHUTDOWN_GRACE_MS);
}

/* Offers a flag that serve itself does not know to the plug-ins (e.g. auth's
 * auth_serve_option). Returns 1 if one applied it, 0 if none knows it, -1
 * after a plug-in printed one line about a bad value. */
static int plugin_option(serve_options *o, const char *name, const char *val)
{
    int r = auth_serve_option(&o->auth, name, val);
    return r ? r : openai_serve_option(&o->api, name, val);
}

/* Prints the plug-ins' part of --help. */
static void plugin_usage(FILE *f)
{
    auth_serve_usage(f);
    openai_serve_usage(f);
}

/* Parses a decimal integer in [lo, hi]; the whole string must be digits. */
static int parse_num(const char *flag, const char *v, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (!*v || *end || errno || x < lo || x > hi) {
        fprintf(stderr, "ward serve: %s expects an integer from %ld to %ld, got '%s'\n", flag, lo, hi, v);
        return -1;
    }
    *out = x;
    return 0;
}

/* Returns 0, 1 for --help, or 2 after printing one line for a usage error. */
static int parse_args(int argc, char **argv, serve_options *o)
{
    http_default_params(&o->http);
    o->model = NULL;
    o->served_model_name = NULL;
    o->level = LOG_INFO;
    auth_serve_default_cfg(&o->auth);
    openai_default_params(&o->api);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
            return 1;
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "ward serve: unexpected argument '%s' (see 'ward serve --help')\n", a);
            return 2;
        }
        /* --flag=value or --flag value */
        char name[64];
        const char *val = NULL;
        const char *eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        if (nlen >= sizeof name) {
            fprintf(stderr, "ward serve: unknown option '%.40s...' (see 'ward serve --help')\n", a);
            return 2;
        }
        memcpy(name, a, nlen);
        name[nlen] = '\0';
        if (eq) {
            val = eq + 1;
        } else if (i + 1 < argc) {
            val = argv[i + 1];
        }
        static const char *const known[] = {
            "--host", "--port", "--threads", "--model", "--served-model-name", "--log-level",
            "--max-header-bytes", "--max-body-bytes", "--max-headers", "--header-timeout-ms", "--body-timeout-ms",
            "--idle-timeout-ms", "--max-connections", "--shutdown-grace-ms", "--tls-cert", "--tls-key",
        };
        int ok = 0;
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
            ok |= strcmp(name, known[k]) == 0;
        if (!ok) {
            int pr = val ? plugin_option(o, name, val) : 0;
            if (pr < 0)
                return 2;
            if (pr == 0) {
                fprintf(stderr, "ward serve: unknown option '%s' (see 'ward serve --help')\n", name);
                return 2;
            }
            if (!eq)
                i++;
            continue;
        }
        if (!val) {
            fprintf(stderr, "ward serve: %s needs a value\n", name);
            return 2;
        }
        if (!eq)
            i++;
        long x = 0;
        http_params *h = &o->http;
        if (strcmp(name, "--host") == 0) {
            if (!*val) {
                fprintf(stderr, "ward serve: --host needs a value\n");
                return 2;
            }
            h->host = val;
        } else if (strcmp(name, "--model") == 0) {
            o->model = val;
        } else if (strcmp(name, "--served-model-name") == 0) {
            o->served_model_name = val;
        } else if (strcmp(name, "--tls-cert") == 0) {
            h->tls_cert = val;
        } else if (strcmp(name, "--tls-key") == 0) {
            h->tls_key = val;
        } else if (strcmp(name, "--log-level") == 0) {
            if (log_parse_level(val, &o->level) != 0) {
                fprintf(stderr, "ward serve: --log-level expects debug, info, warn or error, got '%s'\n", val);
                return 2;
            }
        } else if (strcmp(name, "--port") == 0) {
            if (parse_num(name, val, 0, 65535, &x))
                return 2;
            h->port = (int)x;
        } else if (strcmp(name, "--threads") == 0) {
            if (parse_num(name, val, 1, SERVE_MAX_THREADS, &x))
                return 2;
            h->threads = (int)x;
        } else if (strcmp(name, "--max-header-bytes") == 0) {
            if (parse_num(name, val, 256, SERVE_MAX_HEADER_BYTES_LIMIT, &x))
                return 2;
            h->max_header_bytes = (size_t)x;
        } else if (strcmp(name, "--max-body-bytes") == 0) {
            if (parse_num(name, val, 0, SERVE_MAX_BODY_BYTES_LIMIT, &x))
                return 2;
            h->max_body_bytes = (size_t)x;
        } else if (strcmp(name, "--max-headers") == 0) {
            if (parse_num(name, val, 1, SERVE_MAX_HEADERS_LIMIT, &x))
                return 2;
            h->max_headers = (int)x;
        } else if (strcmp(name, "--header-timeout-ms") == 0) {
            if (parse_num(name, val, 1, SERVE_MAX_TIMEOUT_MS, &x))
                return 2;
            h->header_timeout_ms = (int)x;
        } else if (strcmp(name, "--body-timeout-ms") == 0) {
            if (parse_num(name, val, 1, SERVE_MAX_TIMEOUT_MS, &x))
                return 2;
            h->body_timeout_ms = (int)x;
        } else if (strcmp(name, "--idle-timeout-ms") == 0) {
            if (parse_num(name, val, 1, SERVE_MAX_TIMEOUT_MS, &x))
                return 2;
            h->idle_timeout_ms = (int)x;
        } else if (strcmp(name, "--max-connections") == 0) {
            if (parse_num(name, val, 1, SERVE_MAX_CONNECTIONS_LIMIT, &x))
                return 2;
            h->max_connections = (int)x;
        } else if (strcmp(name, "--shutdown-grace-ms") == 0) {
            if (parse_num(name, val, 0, SERVE_MAX_TIMEOUT_MS, &x))
                return 2;
            h->shutdown_grace_ms = (int)x;
        }
    }
    if ((o->http.tls_cert == NULL) != (o->http.tls_key == NULL)) {
        fprintf(stderr, "ward serve: --tls-cert and --tls-key go together\n");
        return 2;
    }
    /* The served name defaults to the GGUF's general.name, else the file
     * name: decided when the model is loaded (serve_wire). */
    return 0;
}

/* Lets the process hold max_connections sockets: the soft descriptor limit is
 * often 1024, the hard one much higher. */
static void raise_fd_limit(int want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t need = (rlim_t)want + 64; /* listeners, epoll, model file, logs */
    if (rl.rlim_cur >= need)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
}

/* Adds auth's counters to the api's /metrics output. */
static size_t auth_extra_metrics(const void *ud, char *buf, size_t len)
{
    return auth_metrics_render(ud, buf, len);
}

/* Builds the routes. Returns 0, or 1 after logging why not. */
static int serve_wire(api_router *r, serve_options *o)
{
    /* ---- other modules plug in here (api: OpenAI routes; auth: pre-hook) ---- */
    if (o->model) { /* first, so that auth knows the served model name */
        char err[512];
        o->api.model_path = o->model;
        o->api.served_model_name = o->served_model_name;
        g_api = openai_server_open(&o->api, err, sizeof err);
        if (!g_api) {
            log_pack(LOG_ERROR, "ward.server", "cannot load model", "{s:s,s:s}", "path", o->model, "error", err);
            return 1;
        }
        o->served_model_name = openai_server_model_name(g_api);
        if (openai_server_register(g_api, r) != 0) {
            log_pack(LOG_ERROR, "ward.server", "cannot register API routes", NULL);
            return 1;
        }
    }
    int auth_failed = 0;
    g_auth = auth_serve_start(&o->auth, o->served_model_name, &auth_failed);
    if (auth_failed)
        return 1;
    if (g_auth)
        api_router_set_pre_hook(r, auth_serve_hook, g_auth);
    if (g_auth && g_api)
        openai_server_set_extra_metrics(g_api, auth_extra_metrics, g_auth);
    /* ---- end of plug-ins ---- */

    if (o->model && access(o->model, R_OK) != 0) {
        log_pack(LOG_ERROR, "ward.server", "cannot read model file", "{s:s,s:s}", "path", o->model, "error",
                 strerror(errno));
        return 1;
    }
    /* Model loading (engine) sets the ready flag when done; with nothing to
     * load the server is ready at once. */
    api_router_set_ready(r, 1);
    return 0;
}

int cmd_serve(int argc, char **argv)
{
    serve_options o;
    int pr = parse_args(argc, argv, &o);
    if (pr == 1) {
        usage(stdout);
        plugin_usage(stdout);
        return 0;
    }
    if (pr)
        return pr;
    log_set_level(o.level);
    raise_fd_limit(o.http.max_connections);

    api_router *router = api_router_new();
    if (!router) {
        log_pack(LOG_ERROR, "ward.server", "out of memory", NULL);
        return 1;
    }
    if (serve_wire(router, &o) != 0) {
        api_router_free(router);
        openai_server_free(g_api);
        auth_free(g_auth);
        return 1;
    }
    http_handler h;
    api_router_handler(router, &h);
    char err[512];
    http_server *srv = http_server_new(&o.http, &h, err, sizeof err);
    if (!srv) {
        log_pack(LOG_ERROR, "ward.server", "cannot start server", "{s:s}", "error", err);
        api_router_free(router);
        openai_server_free(g_api);
        auth_free(g_auth);
        return 1;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN; /* a client that vanishes must not kill us */
    sigaction(SIGPIPE, &sa, NULL);
    g_server = srv;
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    log_pack(LOG_INFO, "ward.server", "listening", "{s:s,s:i,s:b,s:i}", "host", o.http.host, "port",
             http_server_port(srv), "tls", o.http.tls_cert != NULL, "threads", o.http.threads);
    int rc = http_server_run(srv);
    log_pack(LOG_INFO, "ward.server", "stopped", NULL);

    sa.sa_handler = SIG_DFL;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    g_server = NULL;
    http_server_free(srv);
    api_router_free(router);
    openai_server_free(g_api); /* after the server: no exchange is left */
    auth_free(g_auth);
    return rc == 0 ? 0 : 1;
}
