#!/usr/bin/python3
"""OpenAI-compatible API against the real server and a tiny random-weight
model (tests/integration/api_model.py): statuses, headers, JSON shapes and
values for completions, chat, streaming, logprobs, stop strings, n/best_of,
determinism, models/tokenize/detokenize, metrics and errors (vLLM wording).
"""
import json
import os
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import api_model  # noqa: E402
import wardlib  # noqa: E402

C = wardlib.Check("test_api_openai")


def post(w, path, body, headers=None):
    return wardlib.json_request("POST", w.url + path, body, headers, timeout=60)


def stream(w, path, body):
    st, hdrs, data = wardlib.request("POST", w.url + path, None, body, timeout=60)
    return st, hdrs, wardlib.sse_events(data)


def check_completion_shape(doc, n_choices, what):
    C.ok(isinstance(doc, dict), what + ": JSON object")
    if not isinstance(doc, dict):
        return
    C.ok(doc.get("id", "").startswith("cmpl-") and len(doc["id"]) == 37, what + ": id cmpl-<32 hex>")
    C.eq(doc.get("object"), "text_completion", what + ": object")
    C.ok(isinstance(doc.get("created"), int), what + ": created int")
    C.eq(doc.get("model"), api_model.NAME, what + ": model")
    C.eq(len(doc.get("choices", [])), n_choices, what + ": choices")
    for i, ch in enumerate(doc.get("choices", [])):
        C.eq(ch.get("index"), i, what + ": choice index")
        C.ok(isinstance(ch.get("text"), str), what + ": text str")
        C.ok(ch.get("finish_reason") in ("stop", "length"), what + ": finish_reason")
        C.ok("stop_reason" in ch and "logprobs" in ch, what + ": stop_reason/logprobs keys")
    u = doc.get("usage", {})
    C.eq(u.get("total_tokens"), u.get("prompt_tokens", 0) + u.get("completion_tokens", 0), what + ": usage sum")


def test_basic(w):
    st, hdrs, doc = post(w, "/v1/completions", {"model": api_model.NAME, "prompt": "What is Kubernetes?",
                                                "max_tokens": 5, "temperature": 0})
    C.eq(st, 200, "completion status")
    C.ok(hdrs.get("content-type", "").startswith("application/json"), "completion content-type")
    check_completion_shape(doc, 1, "completion")
    C.eq(doc["usage"]["completion_tokens"], 5, "max_tokens honoured")
    C.eq(doc["choices"][0]["finish_reason"], "length", "finish length")
    C.eq(doc["choices"][0]["stop_reason"], None, "stop_reason null")
    # model omitted: the served model answers
    st, _, doc2 = post(w, "/v1/completions", {"prompt": "What is Kubernetes?", "max_tokens": 5, "temperature": 0})
    C.eq(st, 200, "no model field")
    C.eq(doc2["choices"][0]["text"], doc["choices"][0]["text"], "greedy is deterministic")
    return doc["choices"][0]["text"]


def test_determinism(w):
    body = {"prompt": "Hello world", "max_tokens": 12, "temperature": 1.0, "seed": 1234}
    a = post(w, "/v1/completions", body)[2]["choices"][0]["text"]
    b = post(w, "/v1/completions", body)[2]["choices"][0]["text"]
    C.eq(a, b, "same seed, same text")
    body["seed"] = 99
    texts = {post(w, "/v1/completions", dict(body, seed=s))[2]["choices"][0]["text"] for s in (1, 2, 3, 4)}
    C.ok(len(texts) > 1, "different seeds give different texts")


def test_prompt_forms(w):
    st, _, doc = post(w, "/v1/completions", {"prompt": ["a", "b"], "max_tokens": 2, "n": 2, "seed": 5})
    C.eq(st, 200, "list of strings")
    C.eq([c["index"] for c in doc["choices"]], [0, 1, 2, 3], "2 prompts x n=2 -> 4 choices")
    st, _, tok = post(w, "/tokenize", {"prompt": "Hello world"})
    ids = tok["tokens"]
    st, _, doc = post(w, "/v1/completions", {"prompt": ids, "max_tokens": 3, "temperature": 0})
    C.eq(st, 200, "token id prompt")
    C.eq(doc["usage"]["prompt_tokens"], len(ids), "prompt_tokens = given ids")
    st, _, doc2 = post(w, "/v1/completions", {"prompt": "Hello world", "max_tokens": 3, "temperature": 0})
    C.eq(doc2["choices"][0]["text"], doc["choices"][0]["text"], "ids and text prompts agree")
    st, _, doc = post(w, "/v1/completions", {"prompt": [ids, ids[:3]], "max_tokens": 1, "temperature": 0})
    C.eq(st, 200, "list of id lists")
    C.eq(doc["usage"]["prompt_tokens"], len(ids) + 3, "prompt tokens summed over prompts")
    st, _, doc = post(w, "/v1/completions", {"prompt": [99999], "max_tokens": 1})
    C.eq(st, 400, "out-of-vocab id")
    # echo + max_tokens 0: prompt only
    st, _, doc = post(w, "/v1/completions", {"prompt": "Hello world", "max_tokens": 0, "echo": True})
    C.eq(st, 200, "echo max_tokens 0")
    if st == 200:
        C.eq(doc["choices"][0]["text"], "Hello world", "echo returns the prompt")


def test_stop(w, greedy):
    body = {"prompt": "What is Kubernetes?", "max_tokens": 5, "temperature": 0}
    if len(greedy) < 4:
        C.ok(False, "greedy text too short for the stop test: %r" % greedy)
        return
    stop = greedy[2:4]
    want = greedy[:greedy.index(stop)]
    st, _, doc = post(w, "/v1/completions", dict(body, stop=[stop]))
    C.eq(st, 200, "stop status")
    ch = doc["choices"][0]
    C.eq(ch["text"], want, "text ends before the stop string")
    C.eq(ch["finish_reason"], "stop", "finish_reason stop")
    C.eq(ch["stop_reason"], stop, "stop_reason is the string")
    st, _, doc = post(w, "/v1/completions", dict(body, stop=stop, include_stop_str_in_output=True))
    C.eq(doc["choices"][0]["text"], want + stop, "include_stop_str_in_output")
    # streamed: no chunk shows part of the stop string
    st, hdrs, ev = stream(w, "/v1/completions", dict(body, stop=[stop], stream=True))
    text = "".join(json.loads(e)["choices"][0]["text"] for e in ev[:-1] if json.loads(e)["choices"])
    C.eq(text, want, "streamed text with stop")


def test_stream(w):
    st, hdrs, ev = stream(w, "/v1/completions", {"prompt": "Hello", "max_tokens": 4, "temperature": 0, "stream": True,
                                                 "stream_options": {"include_usage": True}})
    C.eq(st, 200, "stream status")
    C.ok(hdrs.get("content-type", "").startswith("text/event-stream"), "stream content-type")
    C.eq(ev[-1], "[DONE]", "ends with [DONE]")
    chunks = [json.loads(e) for e in ev[:-1]]
    C.ok(all(c["object"] == "text_completion" for c in chunks), "chunk object")
    C.eq(len({c["id"] for c in chunks}), 1, "one id for all chunks")
    C.eq(chunks[-1]["choices"], [], "usage chunk has no choices")
    C.eq(chunks[-1]["usage"]["completion_tokens"], 4, "usage chunk counts")
    C.eq(chunks[-2]["choices"][0]["finish_reason"], "length", "last choice chunk has finish_reason")
    text = "".join(c["choices"][0]["text"] for c in chunks[:-1])
    full = post(w, "/v1/completions", {"prompt": "Hello", "max_tokens": 4, "temperature": 0})[2]
    C.eq(text, full["choices"][0]["text"], "streamed text = non-streamed text")
    # chat stream: role chunk first
    st, hdrs, ev = stream(w, "/v1/chat/completions", {"messages": [{"role": "user", "content": "Hello"}],
                                                      "max_tokens": 3, "stream": True, "seed": 3})
    chunks = [json.loads(e) for e in ev[:-1]]
    C.eq(ev[-1], "[DONE]", "chat ends with [DONE]")
    C.eq(chunks[0]["object"], "chat.completion.chunk", "chat chunk object")
    C.eq(chunks[0]["choices"][0]["delta"], {"role": "assistant", "content": ""}, "role chunk first")
    C.ok(chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length"), "chat finish chunk")
    C.ok(all("usage" not in c for c in chunks), "no usage without include_usage")


def test_chat(w):
    body = {"model": api_model.NAME, "messages": [{"role": "system", "content": "You are helpful"},
                                                 {"role": "user", "content": "Hello"}],
            "max_tokens": 4, "temperature": 0, "logprobs": True, "top_logprobs": 2}
    st, _, doc = post(w, "/v1/chat/completions", body)
    C.eq(st, 200, "chat status")
    C.ok(doc["id"].startswith("chatcmpl-"), "chat id")
    C.eq(doc["object"], "chat.completion", "chat object")
    msg = doc["choices"][0]["message"]
    C.eq(msg["role"], "assistant", "assistant role")
    C.ok(isinstance(msg["content"], str), "content str")
    lp = doc["choices"][0]["logprobs"]["content"]
    C.eq(len(lp), 4, "one logprob entry per token")
    C.ok(all(set(e) == {"token", "logprob", "bytes", "top_logprobs"} for e in lp), "chat logprob keys")
    C.ok(all(len(e["top_logprobs"]) == 2 for e in lp), "top_logprobs count")
    C.ok(all(e["logprob"] <= 0 for e in lp), "logprobs <= 0")
    # the prompt is the ChatML rendering of the messages
    st, _, tok = post(w, "/tokenize", {"messages": body["messages"]})
    C.eq(doc["usage"]["prompt_tokens"], tok["count"], "chat prompt tokens = /tokenize of messages")
    st, _, det = post(w, "/detokenize", {"tokens": tok["tokens"]})
    C.ok(det["prompt"].endswith("<|im_start|>assistant\n") or "assistant" in det["prompt"],
         "chat prompt ends with the generation prompt")


def test_logprobs_completions(w):
    st, _, doc = post(w, "/v1/completions", {"prompt": "Hello world", "max_tokens": 3, "temperature": 0,
                                             "logprobs": 2, "echo": True})
    C.eq(st, 200, "logprobs status")
    lp = doc["choices"][0]["logprobs"]
    C.eq(set(lp), {"text_offset", "token_logprobs", "tokens", "top_logprobs"}, "logprobs keys")
    n = len(lp["tokens"])
    C.eq(n, doc["usage"]["prompt_tokens"] + 3, "echo: prompt + generated positions")
    C.eq(lp["token_logprobs"][0], None, "first prompt position has null logprob")
    C.eq(lp["top_logprobs"][0], None, "first prompt position has null top")
    C.ok(all(len(t) in (2, 3) for t in lp["top_logprobs"][1:]), "top has logprobs(+1) entries")
    C.ok(lp["text_offset"] == sorted(lp["text_offset"]), "offsets increase")
    C.ok(doc["choices"][0]["text"].startswith("Hello world"), "echo prefixes the prompt")
    # greedy: the chosen token is the most likely one
    gen_top = lp["top_logprobs"][-1]
    C.ok(abs(max(gen_top.values()) - lp["token_logprobs"][-1]) < 1e-4, "greedy token is the top one")


def test_best_of(w):
    st, _, doc = post(w, "/v1/completions", {"prompt": "Hello", "max_tokens": 4, "n": 2, "best_of": 4, "seed": 11})
    C.eq(st, 200, "best_of status")
    C.eq(len(doc["choices"]), 2, "best_of returns n choices")
    C.eq(doc["usage"]["completion_tokens"], 16, "usage counts all best_of sequences")
    st, _, ev = stream(w, "/v1/completions", {"prompt": "Hello", "max_tokens": 2, "n": 1, "best_of": 2,
                                              "seed": 1, "stream": True})
    C.eq(len(ev), 2, "best_of != n: one whole event then [DONE]")
    C.eq(json.loads(ev[0])["object"], "text_completion", "whole response as one event")


ERRS = [
    ({"prompt": "x", "n": 0}, 400, "n must be at least 1, got 0."),
    ({"prompt": "x", "top_p": 0}, 400, "top_p must be in (0, 1], got 0."),
    ({"prompt": "x", "temperature": -1}, 400, "temperature must be non-negative, got -1."),
    ({"prompt": "x", "suffix": "y"}, 400, "suffix is not currently supported"),
    ({"prompt": "x", "stop": [""]}, 400, "stop cannot contain an empty string."),
    ({"prompt": "x", "model": "gpt-4"}, 404, "The model `gpt-4` does not exist."),
    ({"prompt": "x", "max_tokens": 300}, 400, None),
    ({"model": api_model.NAME}, 400, "'prompt' is required"),
]


def test_errors(w):
    for body, status, msg in ERRS:
        st, _, doc = post(w, "/v1/completions", body)
        C.eq(st, status, "error status for %s" % body)
        err = (doc or {}).get("error", {})
        C.eq(set(err), {"message", "type", "param", "code"}, "error keys for %s" % body)
        C.eq(err.get("code"), status, "error code for %s" % body)
        C.eq(err.get("type"), "NotFoundError" if status == 404 else "BadRequestError", "error type for %s" % body)
        if msg:
            C.eq(err.get("message"), msg, "error message for %s" % body)
    st, _, doc = post(w, "/v1/completions", {"prompt": "x", "max_tokens": 300})
    C.ok("maximum context length is 256 tokens" in doc["error"]["message"], "context overflow wording")
    st, _, data = wardlib.request("POST", w.url + "/v1/completions", {"Content-Type": "application/json"}, b"{bad")
    C.eq(st, 400, "invalid JSON -> 400")
    st, _, doc = post(w, "/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})
    C.eq(doc["error"]["message"], "when using `top_logprobs`, `logprobs` must be set to true.", "chat logprobs rule")
    st, _, _ = wardlib.request("GET", w.url + "/v1/completions")
    C.eq(st, 405, "GET on completions -> 405")


def test_models_tokenize(w):
    st, _, doc = wardlib.json_request("GET", w.url + "/v1/models")
    C.eq(st, 200, "models status")
    C.eq(doc["object"], "list", "models object")
    card = doc["data"][0]
    C.eq(card["id"], api_model.NAME, "model id = general.name")
    C.eq(card["object"], "model", "card object")
    C.eq(card["max_model_len"], api_model.N_CTX, "max_model_len")
    st, _, tok = post(w, "/tokenize", {"model": api_model.NAME, "prompt": "Hello world"})
    C.eq(st, 200, "tokenize status")
    C.eq(tok["count"], len(tok["tokens"]), "count = len(tokens)")
    C.eq(tok["max_model_len"], api_model.N_CTX, "tokenize max_model_len")
    C.eq(tok["tokens"][0], 1, "BOS first")
    st, _, det = post(w, "/detokenize", {"tokens": tok["tokens"]})
    C.eq(det["prompt"].strip(), "Hello world", "detokenize round trip")
    st, _, doc = post(w, "/detokenize", {"tokens": [-1]})
    C.eq(st, 400, "detokenize bad id")
    st, _, doc = post(w, "/tokenize", {"model": "nope", "prompt": "x"})
    C.eq(st, 404, "tokenize unknown model")


def test_metrics(w):
    st, hdrs, data = wardlib.request("GET", w.url + "/metrics")
    C.eq(st, 200, "metrics status")
    C.ok(hdrs.get("content-type", "").startswith("text/plain"), "metrics content-type")
    text = data.decode()
    for name, typ in (("ward:num_requests_running", "gauge"), ("ward:num_requests_waiting", "gauge"),
                      ("ward:prompt_tokens_total", "counter"), ("ward:generation_tokens_total", "counter"),
                      ("ward:time_to_first_token_seconds", "histogram"),
                      ("ward:time_per_output_token_seconds", "histogram"),
                      ("ward:e2e_request_latency_seconds", "histogram"), ("ward:request_success_total", "counter")):
        C.ok("# TYPE %s %s\n" % (name, typ) in text, "TYPE line for " + name)
        C.ok("# HELP %s " % name in text, "HELP line for " + name)
    gen = [l for l in text.splitlines() if l.startswith("ward:generation_tokens_total{")]
    C.ok(gen and float(gen[0].rsplit(" ", 1)[1]) > 0, "generation tokens counted")
    C.ok('finished_reason="length"' in text, "success by finish reason")
    promtool = "/usr/bin/promtool"
    if os.path.exists(promtool):
        import subprocess
        p = subprocess.run([promtool, "check", "metrics"], input=data, capture_output=True)
        C.eq(p.returncode, 0, "promtool check metrics: %s" % p.stderr.decode()[:300])


def test_queue_full():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.gguf")
        api_model.make_model(path)
        with wardlib.start_ward(["--model", path, "--auth", "off", "--max-num-seqs", "1", "--max-queue", "1"]) as w:
            st, hdrs, doc = post(w, "/v1/completions", {"prompt": "x", "max_tokens": 50, "best_of": 16, "n": 1,
                                                        "ignore_eos": True})
            C.eq(st, 503, "queue full -> 503")
            C.eq(hdrs.get("retry-after"), "1", "Retry-After on 503")
            C.eq((doc or {}).get("error", {}).get("code"), 503, "503 error body")
            # the refused request's accepted sequences are cancelled at the next
            # scheduler step; the queue then has room again
            deadline = time.time() + 10
            while True:
                st, _, _ = post(w, "/v1/completions", {"prompt": "x", "max_tokens": 2})
                if st == 200 or time.time() > deadline:
                    break
                time.sleep(0.05)
            C.eq(st, 200, "server still serves after a refusal")


def test_disconnect(w):
    # open a stream, read the first bytes and hang up; the server must stay healthy
    body = json.dumps({"prompt": "Hello", "max_tokens": 200, "ignore_eos": True, "stream": True}).encode()
    s = socket.create_connection(("127.0.0.1", w.port), timeout=10)
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body) + body)
    first = s.recv(100)
    s.close()
    C.ok(first.startswith(b"HTTP/1.1 200"), "stream started before disconnect")
    st, _, doc = post(w, "/v1/completions", {"prompt": "x", "max_tokens": 2})
    C.eq(st, 200, "server healthy after a client disconnect")


def test_concurrent(w):
    results = []

    def one(seed):
        results.append(post(w, "/v1/completions", {"prompt": "Hello", "max_tokens": 8, "seed": seed})[0])

    th = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    C.eq(sorted(results), [200] * 8, "8 concurrent requests all succeed")


def main():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.gguf")
        api_model.make_model(path)
        with wardlib.start_ward(["--model", path, "--auth", "off", "--max-num-seqs", "4"]) as w:
            greedy = test_basic(w)
            test_determinism(w)
            test_prompt_forms(w)
            test_stop(w, greedy)
            test_stream(w)
            test_chat(w)
            test_logprobs_completions(w)
            test_best_of(w)
            test_errors(w)
            test_models_tokenize(w)
            test_concurrent(w)
            test_disconnect(w)
            test_metrics(w)
    test_queue_full()
    C.done()


if __name__ == "__main__":
    main()
