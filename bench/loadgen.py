#!/usr/bin/python3
"""loadgen: a streaming load generator for OpenAI-compatible /v1/completions,
with vLLM benchmark_serving's definitions (stdlib only):

  TTFT   send -> first SSE chunk that has choices
  ITL    gaps between consecutive chunks that have choices
  TPOT   (latency - TTFT) / (output_tokens - 1), per request, when output > 1
  latency  time of the last choice chunk - send
  output tok/s  sum of usage.completion_tokens / wall time of the whole run

C clients run at once, each sending R requests one after the other. Prompts
are lists of random token ids (a fixed seed per request, so runs compare and
the prefix cache does not help), max_tokens output tokens with ignore_eos.

    loadgen.py --url http://127.0.0.1:PORT --model NAME --concurrency C
               [--requests-per-client R] [--prompt-tokens 130]
               [--output-tokens 64] [--vocab-lo 259] [--vocab-hi 32000] [--json]
"""
import argparse
import http.client
import json
import random
import statistics
import sys
import threading
import time
import urllib.parse


def one_request(url, model, prompt_ids, max_tokens, timeout):
    u = urllib.parse.urlsplit(url)
    body = json.dumps({"model": model, "prompt": prompt_ids, "max_tokens": max_tokens, "temperature": 0.0,
                       "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True}}).encode()
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    t0 = time.perf_counter()
    res = {"ok": False, "ttft": None, "itl": [], "latency": None, "output_tokens": 0}
    try:
        conn.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        if r.status != 200:
            res["error"] = "status %d" % r.status
            r.read()
            return res
        last = None
        buf = b""
        while True:
            chunk = r.read1(65536) if hasattr(r, "read1") else r.read(1)
            if not chunk:
                break
            buf += chunk
            while b"\n\n" in buf:
                ev, buf = buf.split(b"\n\n", 1)
                now = time.perf_counter()
                for line in ev.split(b"\n"):
                    if not line.startswith(b"data:"):
                        continue
                    data = line[5:].strip()
                    if data == b"[DONE]":
                        continue
                    doc = json.loads(data)
                    if doc.get("choices"):
                        if last is None:
                            res["ttft"] = now - t0
                        else:
                            res["itl"].append(now - last)
                        last = now
                    if doc.get("usage"):
                        res["output_tokens"] = doc["usage"].get("completion_tokens", 0)
        if last is not None:
            res["latency"] = last - t0
            res["ok"] = True
    except (OSError, ValueError, http.client.HTTPException) as e:
        res["error"] = str(e)
    finally:
        conn.close()
    return res


def median_ms(xs):
    return round(statistics.median(xs) * 1000, 2) if xs else None


def run(args):
    results = []
    lock = threading.Lock()

    def client(c):
        for k in range(args.requests_per_client):
            rng = random.Random(1000 * c + k)
            ids = [rng.randrange(args.vocab_lo, args.vocab_hi) for _ in range(args.prompt_tokens)]
            r = one_request(args.url, args.model, ids, args.output_tokens, args.timeout)
            with lock:
                results.append(r)

    t0 = time.perf_counter()
    th = [threading.Thread(target=client, args=(c,)) for c in range(args.concurrency)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    dur = time.perf_counter() - t0
    ok = [r for r in results if r["ok"]]
    tpot = [(r["latency"] - r["ttft"]) / (r["output_tokens"] - 1) for r in ok if r["output_tokens"] > 1]
    itl = [x for r in ok for x in r["itl"]]
    out_tok = sum(r["output_tokens"] for r in ok)
    return {
        "concurrency": args.concurrency,
        "requests": len(results),
        "successful": len(ok),
        "failed": len(results) - len(ok),
        "errors": sorted({r.get("error", "") for r in results if not r["ok"]})[:3],
        "duration_s": round(dur, 3),
        "output_tokens": out_tok,
        "output_tok_s": round(out_tok / dur, 2) if dur > 0 else 0.0,
        "median_ttft_ms": median_ms([r["ttft"] for r in ok]),
        "median_tpot_ms": median_ms(tpot),
        "median_itl_ms": median_ms(itl),
        "p99_itl_ms": round(sorted(itl)[int(0.99 * (len(itl) - 1))] * 1000, 2) if itl else None,
    }


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--requests-per-client", type=int, default=2)
    ap.add_argument("--prompt-tokens", type=int, default=130)
    ap.add_argument("--output-tokens", type=int, default=64)
    ap.add_argument("--vocab-lo", type=int, default=259)
    ap.add_argument("--vocab-hi", type=int, default=32000)
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv[1:])
    if args.concurrency < 1 or args.requests_per_client < 1 or args.prompt_tokens < 1 or args.output_tokens < 1:
        ap.error("counts must be >= 1")
    if not 0 <= args.vocab_lo < args.vocab_hi:
        ap.error("need 0 <= --vocab-lo < --vocab-hi")
    m = run(args)
    if args.json:
        print(json.dumps(m))
    else:
        for k, v in m.items():
            print("%-16s %s" % (k, v))
    return 0 if m["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
