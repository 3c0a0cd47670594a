#!/usr/bin/env python3
"""Runs llama.cpp's tokenizer test vectors (*.gguf + .inp/.out, format in
engine-formats.md 4.1) through `ward tokenize --no-special --jsonl` and
requires exactly the expected ids for every case, reporting each mismatch."""
import glob
import json
import os
import subprocess
import sys

SEP = "\n__ggml_vocab_test__\n"


def load_cases(inp_path, out_path):
    with open(inp_path, "rb") as f:
        inp = f.read().decode("utf-8")
    with open(out_path, "rb") as f:
        out = f.read().decode("utf-8")
    texts = inp.split(SEP)
    if texts and texts[-1] == "":
        texts.pop()  # every case ends with the separator: no empty last case
    lines = out.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(texts) != len(lines):
        raise SystemExit("%s: %d cases but %d expected lines" % (inp_path, len(texts), len(lines)))
    return [(t, [int(x) for x in l.split()]) for t, l in zip(texts, lines)]


def main():
    ward = os.environ.get("WARD_BIN")
    shared = os.environ.get("WARD_SHARED")
    if not ward:
        print("WARD_BIN not set")
        return 1
    vocab_dir = os.path.join(shared or "", "testdata", "vocab")
    if not shared or not os.path.isdir(vocab_dir):
        print("SKIP: no shared test data at %s (WARD_SHARED)" % vocab_dir)
        return 77
    vocabs = sorted(glob.glob(os.path.join(vocab_dir, "*.gguf")))
    vocabs = [v for v in vocabs if os.path.exists(v + ".inp") and os.path.exists(v + ".out")]
    if not vocabs:
        print("SKIP: no *.gguf with .inp/.out in %s" % vocab_dir)
        return 77

    failures = 0
    total = 0
    for v in vocabs:
        cases = load_cases(v + ".inp", v + ".out")
        stdin = "".join(json.dumps(t) + "\n" for t, _ in cases)
        p = subprocess.run([ward, "tokenize", "--model", v, "--no-special", "--jsonl"],
                           input=stdin.encode(), capture_output=True, timeout=120)
        name = os.path.basename(v)
        if p.returncode != 0:
            print("FAIL %s: ward exited %d: %s" % (name, p.returncode, p.stderr.decode(errors="replace")[-2000:]))
            failures += len(cases)
            total += len(cases)
            continue
        got = p.stdout.decode().split("\n")
        if got and got[-1] == "":
            got.pop()
        if len(got) != len(cases):
            print("FAIL %s: %d output lines for %d cases" % (name, len(got), len(cases)))
            failures += len(cases)
            total += len(cases)
            continue
        bad = 0
        for i, ((text, want), line) in enumerate(zip(cases, got)):
            total += 1
            ids = json.loads(line)
            if ids != want:
                bad += 1
                print("FAIL %s case %d %r:\n  want %s\n  got  %s" % (name, i, text[:80], want, ids))
        failures += bad
        print("%s: %d/%d cases match" % (name, len(cases) - bad, len(cases)))
    print("total: %d cases, %d failures" % (total, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
