#!/usr/bin/env bash
# bench/http.sh: ward's HTTP layer against nginx on loopback, same machine.
#
# Starts `ward serve` (no model, no keys: /health 200, /v1/completions 401) and an nginx with a
# throwaway config answering 200 {"status":"ok"} on /health and 401 on
# /v1/completions, then runs wrk -t1 -c50 -d5s against each, three rounds,
# and prints the median requests/s and the ratio ward/nginx.
# Installs wrk and nginx-light with apt-get when missing (root only).
# Env: WARD_BIN (default build/ward), ROUNDS (3), DURATION (5s), CONNS (50).
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
ward="${WARD_BIN:-$here/build/ward}"
rounds="${ROUNDS:-3}"
duration="${DURATION:-5s}"
conns="${CONNS:-50}"

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "bench: missing ${need[*]} (run as root, or: sudo apt-get install ${need[*]})" >&2
    exit 1
  fi
  echo "bench: installing ${need[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }
fi
nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"
[ -x "$ward" ] || { echo "bench: $ward not built (make build)" >&2; exit 1; }

tmp="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ---- ward ----
# Default authorization with no identities: /health is public, /v1/completions
# is denied with 401 by the pre-hook, the same answers as the nginx config.
# Logging at warn, like nginx's access_log off.
ward_port="$(free_port)"
"$ward" serve --port "$ward_port" --log-level warn 2>"$tmp/ward.log" &
pids+=($!)
for _ in $(seq 100); do
  curl -s -o /dev/null "http://127.0.0.1:$ward_port/health" && break
  sleep 0.1
done
curl -s -o /dev/null "http://127.0.0.1:$ward_port/health" || { echo "bench: ward did not start:" >&2; cat "$tmp/ward.log" >&2; exit 1; }

# ---- nginx ----
nginx_port="$(free_port)"
mkdir -p "$tmp/nginx"
cat >"$tmp/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  server {
    listen 127.0.0.1:$nginx_port;
    location = /health { default_type application/json; return 200 '{"status":"ok"}'; }
    location = /v1/completions { return 401; }
  }
}
CONF
"$nginx_bin" -c "$tmp/nginx.conf" -p "$tmp/nginx" 2>"$tmp/nginx.stderr" &
pids+=($!)
for _ in $(seq 50); do
  curl -s -o /dev/null "http://127.0.0.1:$nginx_port/health" && break
  sleep 0.1
done

run_wrk() { # url -> requests/s
  wrk -t1 -c"$conns" -d"$duration" "$1" 2>/dev/null | awk '/^Requests\/sec/ {print $2}'
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "bench: wrk -t1 -c$conns -d$duration, $rounds rounds, median requests/s"
printf '%-24s %12s %12s %8s\n' path ward nginx ratio
for path in /health /v1/completions; do
  w=(); n=()
  for _ in $(seq "$rounds"); do
    w+=("$(run_wrk "http://127.0.0.1:$ward_port$path")")
    n+=("$(run_wrk "http://127.0.0.1:$nginx_port$path")")
  done
  wm="$(printf '%s\n' "${w[@]}" | median)"
  nm="$(printf '%s\n' "${n[@]}" | median)"
  ratio="$(awk -v a="$wm" -v b="$nm" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')"
  printf '%-24s %12s %12s %8s\n' "$path" "$wm" "$nm" "$ratio"
done
