#!/usr/bin/env bash
# bench/auth.sh: what authorization costs ward per request.
#
# 1. In process: median time of auth_decide_at() (the whole decision a request
#    pays: credential parsing, HMAC-SHA256, table lookup, rate limiter) for a
#    valid key, an invalid key, no credential and an ES256 JWT; and the valid
#    key's median while another thread floods invalid keys. Target: < 20 us.
# 2. Over HTTP (when wrk and nginx from Debian are installed): 401 responses per
#    second from ward vs nginx answering 401 on the same machine, same run.
#    Target: >= 0.8x nginx.
# One short run; numbers go to stdout. BUILD=build-xyz to use another build dir.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
DUR=${DUR:-5s}
[ -f "$BUILD/libwardcore.a" ] || { echo "bench/auth.sh: build first (make build)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT

cat >"$tmp/b.c" <<'C'
#include "auth/auth.h"
#include "util/clock.h"
#include "util/log.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#define BATCH 200
#define ROUNDS 300
static const char *hv(void *c, const char *n) { return strcasecmp(n, "authorization") == 0 ? c : NULL; }
static int cmpd(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }
static double median_us(auth *a, const char *hdr) {
    static double t[ROUNDS];
    auth_request r = {.method = "POST", .path = "/v1/completions", .request_id = "b", .header = hv, .header_ctx = (void *)hdr};
    auth_decision d;
    for (int i = 0; i < ROUNDS; i++) {
        uint64_t t0 = clock_mono_ns();
        for (int j = 0; j < BATCH; j++) auth_decide_at(a, &r, clock_unix_s(), t0, &d);
        t[i] = (double)(clock_mono_ns() - t0) / BATCH / 1000.0;
    }
    qsort(t, ROUNDS, sizeof t[0], cmpd);
    return t[ROUNDS / 2];
}
static volatile int stop;
static auth *ga;
static void *flood(void *x) {
    (void)x;
    auth_request r = {.method = "POST", .path = "/v1/completions", .request_id = "f", .header = hv,
                      .header_ctx = (void *)"Bearer ward_invalidinvalidinvalidinvalidinvalid000"};
    auth_decision d;
    while (!stop) auth_decide_at(ga, &r, clock_unix_s(), clock_mono_ns(), &d);
    return NULL;
}
int main(int argc, char **argv) {
    log_set_level(LOG_ERROR);
    auth_params p;
    auth_default_params(&p);
    p.key_dirs[p.n_key_dirs++] = argv[1];
    p.jwks_file = argv[2];
    char err[256];
    auth *a = auth_new(&p, err, sizeof err);
    if (!a) { fprintf(stderr, "%s\n", err); return 1; }
    char hdr[4096];
    snprintf(hdr, sizeof hdr, "Bearer %s", argv[3]);
    char jwt[4096];
    snprintf(jwt, sizeof jwt, "Bearer %s", argc > 4 ? argv[4] : "x");
    printf("auth decision, median per request (%d x %d calls):\n", ROUNDS, BATCH);
    printf("  valid API key      %7.2f us\n", median_us(a, hdr));
    printf("  invalid API key    %7.2f us\n", median_us(a, "Bearer ward_invalidinvalidinvalidinvalidinvalid000"));
    printf("  no credential      %7.2f us\n", median_us(a, NULL));
    if (argc > 4) printf("  ES256 JWT          %7.2f us\n", median_us(a, jwt));
    ga = a;
    pthread_t th;
    pthread_create(&th, NULL, flood, NULL);
    printf("  valid key during an invalid-key flood on another thread %7.2f us\n", median_us(a, hdr));
    stop = 1;
    pthread_join(th, NULL);
    auth_free(a);
    return 0;
}
C
cc -O2 -D_GNU_SOURCE -Isrc -o "$tmp/b" "$tmp/b.c" "$BUILD/libwardcore.a" -ljansson -lssl -lcrypto -lpthread -lm

mkdir -p "$tmp/secret"
key="bench-$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
printf '%s' "$key" >"$tmp/secret/token"
# An ES256 key pair and a JWT, made with the openssl command.
openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/ec.pem" 2>/dev/null
b64u() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
pub=$(openssl ec -in "$tmp/ec.pem" -pubout -outform DER 2>/dev/null | tail -c 64 | xxd -p -c 64 2>/dev/null || true)
if [ -n "$pub" ]; then
  x=$(echo "$pub" | cut -c1-64 | xxd -r -p | b64u); y=$(echo "$pub" | cut -c65-128 | xxd -r -p | b64u)
  printf '{"keys":[{"kty":"EC","crv":"P-256","x":"%s","y":"%s"}]}' "$x" "$y" >"$tmp/jwks.json"
  h=$(printf '{"alg":"ES256"}' | b64u)
  p=$(printf '{"sub":"bench","exp":%d}' $(( $(date +%s) + 3600 )) | b64u)
  # openssl emits DER ECDSA; JOSE wants r||s (32 bytes each).
  der=$(printf '%s.%s' "$h" "$p" | openssl dgst -sha256 -sign "$tmp/ec.pem" | xxd -p -c 256)
  sig=$(python3 - "$der" <<'PY'
import sys, base64
d = bytes.fromhex(sys.argv[1]); i = 2
def rd(i):
    l = d[i + 1]; v = d[i + 2:i + 2 + l]; return v[-32:].rjust(32, b"\0"), i + 2 + l
r, i = rd(i); s, i = rd(i)
print(base64.urlsafe_b64encode(r + s).decode().rstrip("="))
PY
)
  jwt="$h.$p.$sig"
else
  echo '{"keys":[]}' >"$tmp/jwks.json"; jwt=""
fi
"$tmp/b" "$tmp/secret" "$tmp/jwks.json" "$key" ${jwt:+"$jwt"}

if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null; then
  echo "401/s vs nginx: skipped (install wrk and nginx-light from Debian)"
  exit 0
fi
port=18431; nport=18432
"$BUILD/ward" serve --port $port --api-keys-dir "$tmp/secret" --log-level error 2>/dev/null &
mkdir -p "$tmp/ng"
cat >"$tmp/ng/nginx.conf" <<NG
worker_processes 1; daemon off; error_log stderr error; pid $tmp/ng/pid;
events { worker_connections 1024; }
http { access_log off; server { listen 127.0.0.1:$nport;
  location / { add_header WWW-Authenticate 'Bearer realm="ward"' always; return 401; } } }
NG
nginx -c "$tmp/ng/nginx.conf" -p "$tmp/ng" 2>/dev/null &
sleep 1
w=$(wrk -t1 -c32 -d"$DUR" "http://127.0.0.1:$port/v1/completions" | awk '/Requests\/sec/ {print $2}')
n=$(wrk -t1 -c32 -d"$DUR" "http://127.0.0.1:$nport/v1/completions" | awk '/Requests\/sec/ {print $2}')
echo "401/s: ward $w, nginx $n, ratio $(python3 -c "print(round($w/$n, 2))")"
