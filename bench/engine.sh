#!/usr/bin/env bash
# bench/engine.sh: ward's CPU engine throughput against the memory-bandwidth
# roofline (and llama.cpp, when one is given).
#
# Makes a random-weight Llama model with TinyLlama-1.1B's shape in F16
# (bench/make_model.py), quantizes it to Q8_0 and Q4_0 with `ward quantize`,
# then, in RUNS rounds, runs `ward bench -p 128 -n 64 --threads 2` on each
# file, with the machine's read bandwidth (bench/membw.c, 2 threads, median
# of 7 reads of 1 GiB) measured before and after every run. It prints the
# medians of prompt and decode tokens/s and of decode as a percentage of
# the roofline, each run against the mean of the probes around it:
#     weight bytes read per token x decode tok/s / bandwidth
# (the token-embedding table is not counted: a token reads one row of it).
# The probe swings by a third from one minute to the next on a shared VM;
# bracketing each run keeps a quiet minute's probe from being set against a
# busy minute's run, and the reverse.
#
# If LLAMA_BENCH names a llama-bench binary (built by you; this script never
# fetches or builds one), it also runs `llama-bench -t 2 -p 128 -n 64 -o json`
# on the same files, in the same rounds, and prints ward / llama.cpp ratios
# (the median over the rounds of each round's ratio: the two ran back to back).
# Any command taking those flags and printing llama-bench's JSON, or one
# object {"pp_tok_s": .., "tg_tok_s": ..}, will do.
#
# Environment: BENCH_DIR (models; default /tmp/ward-bench, ~3.9 GB),
# BUILD_DIR (default build-bench), RUNS (default 3), THREADS (default 2),
# TYPES (default "f16 q8_0 q4_0"; any `ward quantize` type, e.g. q4_k),
# SMALL=1 (a tiny model of the same kind: checks this script in seconds).
# The machine should be quiet: the load average is printed; compare ratios
# from one run, not absolute figures from different runs.
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/tmp/ward-bench}
BUILD_DIR=${BUILD_DIR:-$SRC/build-bench}
RUNS=${RUNS:-3}
THREADS=${THREADS:-2}
SMALL=${SMALL:-0}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

mkdir -p "$BENCH_DIR"
echo "== build (Release) in $BUILD_DIR"
if ! { cmake -S "$SRC" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release &&
        cmake --build "$BUILD_DIR" -j"$THREADS" --target ward; } >"$BUILD_DIR.log" 2>&1; then
    tail -30 "$BUILD_DIR.log" >&2
    echo "build failed (log: $BUILD_DIR.log)" >&2
    exit 1
fi
WARD="$BUILD_DIR/ward"
cc -O2 -pthread -o "$BUILD_DIR/membw" "$SRC/bench/membw.c"

if [ "$SMALL" = 1 ]; then
    tag=small; mkflag=--small; embd_elems=$((1024 * 256))
else
    tag=tinyllama; mkflag=; embd_elems=$((32000 * 2048))
fi
F16="$BENCH_DIR/$tag-f16.gguf"
if [ ! -s "$F16" ]; then
    echo "== making $F16"
    "$PY" "$SRC/bench/make_model.py" "$F16" $mkflag
fi
TYPES=${TYPES:-"f16 q8_0 q4_0"}
for q in $TYPES; do
    [ "$q" = f16 ] && continue
    out="$BENCH_DIR/$tag-$q.gguf"
    if [ ! -s "$out" ] || [ "$out" -ot "$F16" ]; then
        echo "== ward quantize -> $out"
        "$WARD" quantize "$F16" "$out" "$q" >/dev/null
    fi
done

echo "== machine"
grep -m1 'model name' /proc/cpuinfo | sed 's/^.*: /cpu: /' || true
echo "cpus: $(nproc), load average: $(cut -d' ' -f1-3 /proc/loadavg)"
measure_bw() {
    "$BUILD_DIR/membw" -t "$THREADS" -s $([ "$SMALL" = 1 ] && echo 64 || echo 1024) -r 7 --json |
        "$PY" -c 'import json,sys; print(json.load(sys.stdin)["median_gbs"])'
}

results=$(mktemp)
bws=$(mktemp)
trap 'rm -f "$results" "$bws"' EXIT
if [ -n "${LLAMA_BENCH:-}" ] && [ ! -x "$LLAMA_BENCH" ]; then
    echo "LLAMA_BENCH=$LLAMA_BENCH is not executable; skipping llama.cpp" >&2
    LLAMA_BENCH=
fi
# Rounds interleave the engines and the bandwidth probe, so a noisy
# neighbour weighs on all of them alike; results holds, in order, probe
# lines ("bw GB/s") and run lines ("ward|llama TYPE JSON").
probe() { bw=$(measure_bw); echo "bw $bw" >>"$results"; echo "$bw" >>"$bws"; }
probe
for i in $(seq "$RUNS"); do
    for t in $TYPES; do
        f="$BENCH_DIR/$tag-$t.gguf"
        j=$("$WARD" bench --model "$f" -p 128 -n 64 --threads "$THREADS" --json)
        echo "ward $t $j" >>"$results"
        probe
        if [ -n "${LLAMA_BENCH:-}" ]; then
            j=$("$LLAMA_BENCH" -m "$f" -t "$THREADS" -p 128 -n 64 -o json 2>/dev/null | tr -d '\n')
            echo "llama $t $j" >>"$results"
            probe
        fi
    done
    echo "round $i/$RUNS done (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
done
BW=$(sort -n "$bws" | "$PY" -c 'import statistics,sys; print(statistics.median(float(l) for l in sys.stdin))')
BWR=$(sort -n "$bws" | "$PY" -c 'import sys; v=[float(l) for l in sys.stdin]; print("%.1f-%.1f" % (min(v), max(v)))')
echo "read bandwidth ($THREADS threads): median of $(wc -l <"$bws") probes $BW GB/s, range $BWR"

"$PY" - "$results" "$BW" "$embd_elems" <<'PYEOF'
import json, os, statistics, sys
path, bw_med, embd = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
bpe = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32, "q4_k": 144 / 256, "q6_k": 210 / 256,
       "q5_0": 22 / 32, "q4_1": 20 / 32, "q5_k": 176 / 256}   # bytes per weight
ward, llama = {}, {}
lines = [l.rstrip("\n") for l in open(path) if l.strip()]
for i, line in enumerate(lines):
    if line.startswith("bw "):
        continue
    who, t, js = line.split(" ", 2)
    if who == "ward":
        r = json.loads(js)
        # the probes just before and just after this run
        before = next(float(l[3:]) for l in reversed(lines[:i]) if l.startswith("bw "))
        after = next(float(l[3:]) for l in lines[i + 1:] if l.startswith("bw "))
        r["bw"] = (before + after) / 2
        ward.setdefault(t, []).append(r)
    else:
        try:
            rows = json.loads(js)
            if isinstance(rows, dict):   # a harness printing {"pp_tok_s": .., "tg_tok_s": ..}
                pp, tg = [rows["pp_tok_s"]], [rows["tg_tok_s"]]
            else:                        # llama-bench -o json
                pp = [r["avg_ts"] for r in rows if r.get("n_prompt", 0) > 0 and r.get("n_gen", 0) == 0]
                tg = [r["avg_ts"] for r in rows if r.get("n_gen", 0) > 0 and r.get("n_prompt", 0) == 0]
            llama.setdefault(t, []).append((pp[0] if pp else 0.0, tg[0] if tg else 0.0))
        except (ValueError, KeyError, TypeError, IndexError):
            print("could not parse llama-bench output for", t, file=sys.stderr)
print()
hdr = "%-5s %9s %10s %10s %11s %9s %10s" % ("type", "GiB", "pp tok/s", "tg tok/s", "decode GB/s", "roofline", "(range)")
if llama:
    hdr += " %12s %12s %8s %8s" % ("llama pp", "llama tg", "pp x", "tg x")
print(hdr)
for t in ward:
    runs = ward.get(t, [])
    if not runs:
        continue
    pp = statistics.median(r["pp_tok_s"] for r in runs)
    tg = statistics.median(r["tg_tok_s"] for r in runs)
    wb = runs[0]["weight_bytes"]
    per_tok = wb - embd * bpe[t]        # bytes of weights read per decoded token
    gbs = per_tok * tg / 1e9
    roof = [100 * per_tok * r["tg_tok_s"] / 1e9 / r["bw"] for r in runs]   # each run against its probes
    line = "%-5s %9.2f %10.1f %10.1f %11.1f %8.0f%% %10s" % (t.upper(), wb / 2**30, pp, tg, gbs, statistics.median(roof),
                                                          "%.0f-%.0f%%" % (min(roof), max(roof)))
    if t in llama:
        lp = statistics.median(r[0] for r in llama[t])
        lt = statistics.median(r[1] for r in llama[t])
        # ratios round by round (ward and llama.cpp ran one after the other), then their median
        rp = [w["pp_tok_s"] / l[0] for w, l in zip(runs, llama[t]) if l[0] > 0]
        rt = [w["tg_tok_s"] / l[1] for w, l in zip(runs, llama[t]) if l[1] > 0]
        line += " %12.1f %12.1f %8.2f %8.2f" % (lp, lt, statistics.median(rp) if rp else 0,
                                                statistics.median(rt) if rt else 0)
    print(line)
if llama:
    print("\n(pp x, tg x: ward / llama.cpp in each round, median over the rounds)")
print("\n(medians of %d ward runs; roofline = weight bytes/token x decode tok/s / the bandwidth probed around"
      " that run; median probe %.1f GB/s)" % (max(len(v) for v in ward.values()) if ward else 0, bw_med))
PYEOF
