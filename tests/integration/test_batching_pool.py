#!/usr/bin/python3
"""Continuous batching against the real server (tiny random-weight model from
api_model.py):
  - a KV pool of one context (--num-kv-blocks 16 x --kv-block-size 16 for a
    256-token context), four sequences and a short queue: under 14
    concurrent requests every 200 answer equals the same request run alone,
    the others are 503 with Retry-After; the KV metrics are exported;
    (prompts prefilled 7 tokens per step: --max-num-batched-tokens 7);
    a bad --max-num-batched-tokens exits 2 naming the flag;
  - beam search (use_beam_search, best_of, n, length_penalty): n choices,
    deterministic, stream answered as one event; vLLM's validation kept.
"""
import os
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import api_model  # noqa: E402
import wardlib  # noqa: E402

C = wardlib.Check("test_batching_pool")


def post(w, body, path="/v1/completions", timeout=120):
    return wardlib.json_request("POST", w.url + path, body, None, timeout=timeout)


WORDS = "What is Kubernetes ? Hello world the a of and to in it you are helpful assistant".split()


def prompt(i):
    # different lengths (8..37 words) and contents
    n = 8 + (i * 13) % 30
    return " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(n))


def body(i):
    b = {"model": api_model.NAME, "prompt": prompt(i), "max_tokens": 24 + (i % 4) * 8, "ignore_eos": True}
    if i % 3 == 1:
        b.update(temperature=0.9, seed=1000 + i)  # seeded sampling: reproducible too
    else:
        b.update(temperature=0)
    return b


def test_pool_exhaustion(path):
    N = 14
    alone = {}
    with wardlib.start_ward(["--model", path, "--auth", "off", "--max-num-seqs", "1"]) as w:
        for i in range(N):
            st, _, doc = post(w, body(i))
            C.eq(st, 200, "alone %d: 200" % i)
            alone[i] = doc["choices"][0]["text"] if st == 200 else None
    # prompts prefilled in chunks of 7 tokens per step here: the same tokens
    args = ["--model", path, "--auth", "off", "--max-num-seqs", "4", "--max-queue", "4",
            "--kv-block-size", "16", "--num-kv-blocks", "16", "--max-num-batched-tokens", "7"]
    with wardlib.start_ward(args) as w:
        out = {}
        go = threading.Barrier(N)  # all arrive within a moment: the queue must overflow

        def one(i):
            go.wait()
            out[i] = post(w, body(i))

        th = [threading.Thread(target=one, args=(i,)) for i in range(N)]
        for t in th:
            t.start()
        for t in th:
            t.join()
        ok = busy = 0
        for i in range(N):
            st, hdrs, doc = out[i]
            if st == 200:
                ok += 1
                C.eq(doc["choices"][0]["text"], alone[i], "request %d: same text as alone" % i)
                C.eq(doc["choices"][0]["finish_reason"], "length", "request %d: finish_reason" % i)
            else:
                busy += 1
                C.eq(st, 503, "request %d: 200 or 503" % i)
                C.eq(hdrs.get("retry-after"), "1", "request %d: Retry-After" % i)
                C.eq(((doc or {}).get("error") or {}).get("code"), 503, "request %d: 503 error body" % i)
        C.ok(ok >= 5, "at least the running and queued requests succeed (%d)" % ok)
        C.ok(busy >= 1, "some requests refused when the queue is full (%d)" % busy)
        # the server recovers: a request after the burst succeeds and equals alone
        st, _, doc = post(w, body(0))
        C.eq(st, 200, "after the burst: 200")
        C.eq(doc["choices"][0]["text"] if st == 200 else None, alone[0], "after the burst: same text")
        # The burst may have evicted the earlier runs' cached blocks; the same
        # request right again must reuse the blocks the previous one left.
        st, _, doc = post(w, body(0))
        C.eq(st, 200, "repeat after the burst: 200")
        st, _, data = wardlib.request("GET", w.url + "/metrics")
        text = data.decode()
        for name in ("ward:gpu_cache_usage_perc", "ward:num_preemptions_total", "ward:iteration_tokens_total_bucket",
                     "ward:gpu_prefix_cache_queries", "ward:gpu_prefix_cache_hits", "ward:num_requests_waiting"):
            C.ok(name in text, "metrics: " + name)
        hits = [ln for ln in text.splitlines() if ln.startswith("ward:gpu_prefix_cache_hits{")]
        C.ok(hits and float(hits[0].split()[-1]) > 0, "prefix cache hits counted (the repeated request)")


def test_beam_search(path):
    with wardlib.start_ward(["--model", path, "--auth", "off", "--max-num-seqs", "4"]) as w:
        b = {"model": api_model.NAME, "prompt": "Hello world", "max_tokens": 6, "use_beam_search": True,
             "best_of": 3, "n": 2, "temperature": 0, "ignore_eos": True}
        st, _, doc = post(w, b)
        C.eq(st, 200, "beam: 200")
        ch = (doc or {}).get("choices", [])
        C.eq(len(ch), 2, "beam: n choices")
        C.ok(all(c.get("finish_reason") == "length" for c in ch), "beam: finish_reason length")
        C.ok(len(ch) == 2 and ch[0]["text"] != ch[1]["text"], "beam: distinct beams")
        C.eq((doc or {}).get("usage", {}).get("completion_tokens"), 12, "beam: usage counts the n choices")
        st2, _, doc2 = post(w, b)
        C.eq([c["text"] for c in (doc2 or {}).get("choices", [])], [c["text"] for c in ch], "beam: deterministic")
        # a beam group beside other requests gives the same answer
        res = {}

        def other(i):
            res[i] = post(w, {"model": api_model.NAME, "prompt": "What is", "max_tokens": 20, "ignore_eos": True})

        th = [threading.Thread(target=other, args=(i,)) for i in range(2)]
        for t in th:
            t.start()
        st3, _, doc3 = post(w, b)
        for t in th:
            t.join()
        C.eq([c["text"] for c in (doc3 or {}).get("choices", [])], [c["text"] for c in ch], "beam: batched alike")
        # length_penalty changes the ranking score only; still n choices
        st, _, doc = post(w, dict(b, length_penalty=0.5, ignore_eos=False))
        C.eq(st, 200, "beam with length_penalty: 200")
        C.eq(len((doc or {}).get("choices", [])), 2, "beam with length_penalty: n choices")
        # chat
        st, _, doc = post(w, {"model": api_model.NAME, "messages": [{"role": "user", "content": "Hello"}],
                              "max_tokens": 4, "use_beam_search": True, "best_of": 2, "temperature": 0},
                          path="/v1/chat/completions")
        C.eq(st, 200, "beam chat: 200")
        C.eq(len((doc or {}).get("choices", [])), 1, "beam chat: one choice")
        # streaming: the whole answer as one event, then [DONE]
        st, hdrs, data = wardlib.request("POST", w.url + "/v1/completions", None, dict(b, stream=True), timeout=60)
        ev = wardlib.sse_events(data)
        C.eq(st, 200, "beam stream: 200")
        C.eq(len(ev), 2, "beam stream: one event + [DONE]")
        C.eq(ev[-1] if ev else None, "[DONE]", "beam stream: [DONE]")
        # validation (vLLM 0.6)
        st, _, doc = post(w, dict(b, temperature=0.5))
        C.eq(st, 400, "beam with temperature > 0: 400")
        st, _, doc = post(w, dict(b, best_of=1, n=1))
        C.eq(st, 400, "beam with best_of 1: 400")
        st, _, doc = post(w, dict(b, best_of=5, n=1))
        C.eq(st, 400, "beam wider than max_num_seqs: 400")
        C.ok("beam width" in ((doc or {}).get("error") or {}).get("message", ""), "beam width error message")


def test_bad_budget(path):
    for v in ("0", "-3", "x", "70000"):
        r = subprocess.run([wardlib.ward_bin(), "serve", "--model", path, "--auth", "off",
                            "--max-num-batched-tokens", v], capture_output=True, text=True, timeout=30)
        C.eq(r.returncode, 2, "--max-num-batched-tokens %s: exit 2" % v)
        C.ok("--max-num-batched-tokens" in r.stderr, "--max-num-batched-tokens %s: says which flag" % v)


def main():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.gguf")
        api_model.make_model(path)
        test_bad_budget(path)
        test_pool_exhaustion(path)
        test_beam_search(path)
    C.done()


if __name__ == "__main__":
    main()
