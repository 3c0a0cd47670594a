#!/usr/bin/env bash
# bench/serving.sh: continuous batching under load, as vLLM's
# benchmark_serving measures it (TTFT, TPOT, ITL, output tok/s; definitions in
# bench/loadgen.py), for 1, 4 and 8 concurrent streaming clients.
#
# Builds ward (Release), makes the random-weight TinyLlama-1.1B-shaped Q4_0
# file as bench/engine.sh does (bench/make_model.py + `ward quantize`), starts
# `ward serve --max-num-seqs 8`, and runs bench/loadgen.py with ~130-token
# prompts and 64 output tokens (REQS requests per client). Prints each run's
# medians and the issue's targets:
#     total output tok/s with 4 clients >= 3 x the one-client figure
#     TPOT with 4 clients <= 1.5 x the one-client TPOT
#
# If LLAMA_SERVER names a llama.cpp llama-server binary (built by you; this
# script never fetches or builds one), it is run the same way on the same
# file (-np 8 -t THREADS) and its figures printed too.
#
# Environment: BENCH_DIR (models; default /tmp/ward-bench), BUILD_DIR (default
# build-serving), THREADS (default 2), REQS (requests per client, default 2),
# LEVELS (default "1 4 8"), PROMPT_TOKENS (default 130), OUTPUT_TOKENS (default
# 64), WARD_ARGS (more `ward serve` flags), SMALL=1 (a tiny model: checks the
# script in seconds).
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/tmp/ward-bench}
BUILD_DIR=${BUILD_DIR:-$SRC/build-serving}
THREADS=${THREADS:-2}
REQS=${REQS:-2}
LEVELS=${LEVELS:-"1 4 8"}
SMALL=${SMALL:-0}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

mkdir -p "$BENCH_DIR"
echo "== build (Release) in $BUILD_DIR"
cmake -S "$SRC" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DWARD_BUILD_TESTS=OFF >/dev/null
cmake --build "$BUILD_DIR" -j"$THREADS" --target ward >/dev/null
WARD="$BUILD_DIR/ward"

if [ "$SMALL" = 1 ]; then tag=small; mkflag=--small; vocab=1024; else tag=tinyllama; mkflag=; vocab=32000; fi
F16="$BENCH_DIR/$tag-f16.gguf"
Q4="$BENCH_DIR/$tag-q4_0.gguf"
if [ ! -s "$F16" ]; then
    echo "== making $F16"
    "$PY" "$SRC/bench/make_model.py" "$F16" $mkflag
fi
if [ ! -s "$Q4" ] || [ "$Q4" -ot "$F16" ]; then
    echo "== ward quantize -> $Q4"
    "$WARD" quantize "$F16" "$Q4" q4_0 >/dev/null
fi

echo "== machine"
grep -m1 'model name' /proc/cpuinfo | sed 's/^.*: /cpu: /' || true
echo "cpus: $(nproc), load average: $(cut -d' ' -f1-3 /proc/loadavg), threads: $THREADS"

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_up() { # url pid
    for _ in $(seq 600); do
        if ! kill -0 "$2" 2>/dev/null; then echo "server exited" >&2; return 1; fi
        if "$PY" -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1]+'/v1/models', timeout=2)" "$1" \
            2>/dev/null; then return 0; fi
        sleep 0.5
    done
    echo "server did not come up" >&2
    return 1
}

results=$(mktemp)
logs=$(mktemp)
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    rm -f "$results" "$logs"
}
trap cleanup EXIT

run_levels() { # name url model
    for c in $LEVELS; do
        j=$("$PY" "$SRC/bench/loadgen.py" --url "$2" --model "$3" --concurrency "$c" --requests-per-client "$REQS" \
            --prompt-tokens "${PROMPT_TOKENS:-130}" --output-tokens "${OUTPUT_TOKENS:-64}" --vocab-hi "$vocab" \
            --json) || true
        echo "$1 $j" >>"$results"
        echo "$1 c=$c: $j"
    done
}

port=$(free_port)
echo "== ward serve on :$port"
"$WARD" serve --model "$Q4" --host 127.0.0.1 --port "$port" --auth off --max-num-seqs 8 \
    --engine-threads "$THREADS" --served-model-name bench ${WARD_ARGS:-} 2>"$logs" &
SERVER_PID=$!
wait_up "http://127.0.0.1:$port" "$SERVER_PID"
run_levels ward "http://127.0.0.1:$port" bench
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=

if [ -n "${LLAMA_SERVER:-}" ]; then
    if [ -x "$LLAMA_SERVER" ]; then
        port=$(free_port)
        echo "== llama-server on :$port"
        "$LLAMA_SERVER" -m "$Q4" --host 127.0.0.1 --port "$port" -t "$THREADS" -np 8 -c $((8 * 256)) \
            >/dev/null 2>&1 &
        SERVER_PID=$!
        wait_up "http://127.0.0.1:$port" "$SERVER_PID"
        run_levels llama "http://127.0.0.1:$port" bench
        kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
    else
        echo "LLAMA_SERVER=$LLAMA_SERVER is not executable; skipping llama.cpp" >&2
    fi
fi

echo "== summary (medians; TPOT/ITL/TTFT in ms)"
"$PY" - "$results" <<'EOF'
import json, sys
rows = {}
for line in open(sys.argv[1]):
    name, j = line.split(" ", 1)
    try:
        m = json.loads(j)
    except ValueError:
        continue
    rows.setdefault(name, {})[m["concurrency"]] = m
print("%-6s %3s %9s %9s %9s %9s %12s %6s" % ("server", "C", "TTFT", "TPOT", "ITL", "P99 ITL", "out tok/s", "failed"))
for name, by_c in rows.items():
    for c in sorted(by_c):
        m = by_c[c]
        print("%-6s %3d %9s %9s %9s %9s %12s %6d" % (name, c, m["median_ttft_ms"], m["median_tpot_ms"],
                                                     m["median_itl_ms"], m["p99_itl_ms"], m["output_tok_s"], m["failed"]))
    one, four = by_c.get(1), by_c.get(4)
    if one and four and one["output_tok_s"] and one["median_tpot_ms"]:
        r_tp = four["output_tok_s"] / one["output_tok_s"]
        r_tpot = four["median_tpot_ms"] / one["median_tpot_ms"]
        print("%s: tok/s(4)/tok/s(1) = %.2f (target >= 3: %s); TPOT(4)/TPOT(1) = %.2f (target <= 1.5: %s)" % (
            name, r_tp, "met" if r_tp >= 3 else "NOT met", r_tpot, "met" if r_tpot <= 1.5 else "NOT met"))
EOF
