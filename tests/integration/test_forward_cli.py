#!/usr/bin/python3
"""`ward run` and `ward bench` behaviour on tiny random models: JSON shape,
logits dump size, seeded sampling reproducibility, EOS handling, usage
errors (exit 2) and malformed models (exit 1 with a clear message)."""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_forward_ref as fr  # noqa: E402  (model writer, paths)

BIN = fr.BIN
FAILS = []


def run(*args, timeout=60):
    return subprocess.run([BIN] + list(args), capture_output=True, text=True, timeout=timeout)


def expect(cond, what):
    if not cond:
        FAILS.append(what)


def main():
    with tempfile.TemporaryDirectory(prefix="ward-cli-") as tmp:
        model = os.path.join(tmp, "m.gguf")
        fr.make_model(model, n_vocab=300, seed=11)
        n_vocab = 300

        # --json shape and dump size
        dump = os.path.join(tmp, "d.bin")
        r = run("run", "--model", model, "--prompt-ids", "1,5,9", "-n", "4", "--json", "--ignore-eos",
                "--threads", "1", "--dump-logits", dump)
        expect(r.returncode == 0, "run --json failed: " + r.stderr)
        out = json.loads(r.stdout) if r.returncode == 0 else {}
        expect(len(out.get("ids", [])) == 4 and all(0 <= t < n_vocab for t in out.get("ids", [])),
               "ids: %r" % out)
        expect(out.get("finish_reason") == "length", "finish_reason: %r" % out)
        expect(isinstance(out.get("text"), str), "text missing: %r" % out)
        expect(os.path.getsize(dump) == 4 * n_vocab * 4, "dump size %d" % os.path.getsize(dump))
        # greedy: each id is the argmax of the row it was drawn from
        rows = np.fromfile(dump, dtype="<f4").reshape(-1, n_vocab)
        expect(list(rows.argmax(axis=1)) == out.get("ids"), "greedy ids are not the argmax of the dump")
        # thread count does not change the result
        r2 = run("run", "--model", model, "--prompt-ids", "1,5,9", "-n", "4", "--json", "--ignore-eos",
                 "--threads", "3")
        expect(r2.returncode == 0 and json.loads(r2.stdout)["ids"] == out.get("ids"), "threads change ids")

        # --prompt tokenizes like `ward tokenize`; plain output is the JSON text
        r = run("tokenize", "--model", model, "--text", "hello world", "--json")
        expect(r.returncode == 0, "tokenize failed: " + r.stderr)
        if r.returncode == 0:
            tids = json.loads(r.stdout)
            common = ["-n", "5", "--ignore-eos", "--threads", "1"]
            ra = run("run", "--model", model, "--prompt", "hello world", "--json", *common)
            rb = run("run", "--model", model, "--prompt-ids", ",".join(map(str, tids)), "--json", *common)
            rc = run("run", "--model", model, "--prompt", "hello world", *common)
            expect(ra.returncode == 0 and rb.returncode == 0 and rc.returncode == 0,
                   "prompt runs failed: %s %s %s" % (ra.stderr, rb.stderr, rc.stderr))
            if ra.returncode == 0 and rb.returncode == 0:
                ja, jb = json.loads(ra.stdout), json.loads(rb.stdout)
                expect(ja == jb, "--prompt %r != --prompt-ids %r" % (ja, jb))
                expect(len(ja["text"]) > 0, "empty text for 5 tokens: %r" % ja)
                expect(rc.stdout == ja["text"] + "\n", "plain output %r != json text %r" %
                       (rc.stdout, ja["text"]))

        # seeded sampling is reproducible; different seeds differ (over 24 tokens)
        def sample(seed):
            r = run("run", "--model", model, "--prompt-ids", "1,5,9", "-n", "24", "--json", "--ignore-eos",
                    "--temperature", "1.5", "--seed", str(seed))
            expect(r.returncode == 0, "sampling run failed: " + r.stderr)
            return json.loads(r.stdout)["ids"] if r.returncode == 0 else None
        a, b, c = sample(42), sample(42), sample(43)
        expect(a == b, "same seed gave %r and %r" % (a, b))
        expect(a != c, "different seeds gave the same 24 tokens")

        # EOS stops generation unless --ignore-eos: with output_norm all zero every
        # logit is 0, greedy picks id 0, and this model declares 0 as EOS
        eos_model = os.path.join(tmp, "eos.gguf")
        fr.make_model(eos_model, n_vocab=300, seed=12, eos=0, zero_output_norm=True)
        r = run("run", "--model", eos_model, "--prompt-ids", "1,5", "-n", "5", "--json")
        o = json.loads(r.stdout) if r.returncode == 0 else {}
        expect(o.get("ids") == [] and o.get("finish_reason") == "stop", "eos: %r %s" % (o, r.stderr))
        r = run("run", "--model", eos_model, "--prompt-ids", "1,5", "-n", "3", "--json", "--ignore-eos")
        o = json.loads(r.stdout) if r.returncode == 0 else {}
        expect(o.get("ids") == [0, 0, 0] and o.get("finish_reason") == "length", "ignore-eos: %r" % o)

        # usage errors -> 2
        for args, needle in [
            (["run"], "--model is required"),
            (["run", "--model", model], "exactly one of"),
            (["run", "--model", model, "--prompt-ids", "1,x"], "comma-separated"),
            (["run", "--model", model, "--prompt-ids", "1", "-n", "-3"], "bad value for -n"),
            (["run", "--model", model, "--prompt-ids", "5000"], "out of range"),
            (["run", "--model", model, "--prompt-ids", "1", "--bogus", "1"], "unknown option"),
            (["run", "--model", model, "--prompt-ids", "1", "--top-p", "0"], "top_p"),
            (["bench", "--model", model, "-p", "x"], "bad value for -p"),
            (["bench"], "--model is required"),
            (["bench", "--model", model, "--parallel", "0"], "bad value for --parallel"),
        ]:
            r = run(*args)
            expect(r.returncode == 2 and needle in r.stderr,
                   "%s: rc %d, stderr %r (want 2 and %r)" % (args, r.returncode, r.stderr, needle))

        # malformed / unsupported models -> 1 with the loader's message
        junk = os.path.join(tmp, "junk.gguf")
        with open(junk, "wb") as f:
            f.write(b"GGUF\x03\x00\x00\x00" + b"\xff" * 40)
        bad_arch = os.path.join(tmp, "arch.gguf")
        fr.make_model(bad_arch, arch="gpt2", n_vocab=300, seed=1)
        for path, needle in [(junk, "gguf"), (bad_arch, "unsupported architecture 'gpt2'"),
                             (os.path.join(tmp, "missing.gguf"), "missing.gguf")]:
            r = run("run", "--model", path, "--prompt-ids", "1")
            expect(r.returncode == 1 and needle in r.stderr,
                   "model %s: rc %d, stderr %r" % (os.path.basename(path), r.returncode, r.stderr))

        # bench --json
        r = run("bench", "--model", model, "-p", "16", "-n", "4", "--threads", "1", "--json")
        expect(r.returncode == 0, "bench failed: " + r.stderr)
        if r.returncode == 0:
            o = json.loads(r.stdout)
            expect(o["pp_tok_s"] > 0 and o["tg_tok_s"] > 0 and o["n_prompt"] == 16 and o["n_gen"] == 4,
                   "bench json: %r" % o)
        # bench --parallel: several sequences per step
        r = run("bench", "--model", model, "-p", "8", "-n", "4", "--threads", "2", "--parallel", "3", "--json")
        expect(r.returncode == 0, "bench --parallel failed: " + r.stderr)
        if r.returncode == 0:
            o = json.loads(r.stdout)
            expect(o["parallel"] == 3 and o["pp_tok_s"] > 0 and o["tg_tok_s"] > 0, "bench --parallel json: %r" % o)
        # bench --depth: tests run after tokens already in the cache
        r = run("bench", "--model", model, "-p", "8", "-n", "4", "--depth", "20", "--json")
        expect(r.returncode == 0, "bench --depth failed: " + r.stderr)
        if r.returncode == 0:
            o = json.loads(r.stdout)
            expect(o["depth"] == 20 and o["tg_tok_s"] > 0, "bench --depth json: %r" % o)
        r = run("bench", "--model", model, "-p", "8", "--depth", "65530")
        expect(r.returncode == 2 and "exceeds" in r.stderr, "bench --depth too large: %r" % r.stderr)

    for f in FAILS:
        print("FAIL:", f)
    print("ok" if not FAILS else "%d failures" % len(FAILS))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
