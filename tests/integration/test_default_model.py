"""The shipped default model (models/default.gguf) answers the seed's prompt in
English: greedy generation of 64 tokens for "What is Kubernetes?" is made of
real words, mentions Kubernetes and containers, and the file stays within the
16 MB the project allows itself. (Its speed is measured by `ward bench`, not
here.)"""
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import wardlib  # noqa: E402

SRC = os.environ.get("WARD_SRC", os.path.join(os.path.dirname(__file__), "..", ".."))
MODEL = os.path.join(SRC, "models", "default.gguf")


def main():
    c = wardlib.Check("test_default_model")
    if not os.path.exists(MODEL):
        print("SKIP: models/default.gguf is absent")
        sys.exit(77)
    c.ok(os.path.getsize(MODEL) <= 16 * 1024 * 1024, "default model is at most 16 MB")
    r = subprocess.run([wardlib.ward_bin(), "run", "--model", MODEL, "--prompt", "What is Kubernetes?",
                        "-n", "64", "--temperature", "0", "--json"], capture_output=True, text=True, timeout=120)
    c.eq(r.returncode, 0, "ward run exit code")
    out = json.loads(r.stdout.strip().split("\n")[0]) if r.returncode == 0 else {"text": "", "ids": []}
    text = out["text"]
    print("answer: %r" % text)
    words = re.findall(r"[A-Za-z]+", text)
    c.ok(len(words) >= 20, "at least 20 words")
    c.ok("Kubernetes" in text, "the answer is about Kubernetes")
    c.ok("container" in text, "the answer mentions containers")
    # English: common function words appear, and nearly everything is letters,
    # spaces and punctuation.
    common = {"is", "a", "an", "the", "and", "for", "of", "to", "it", "that", "on", "in"}
    c.ok(sum(w.lower() in common for w in words) >= 5, "common English function words")
    letters = sum(ch.isalpha() or ch in " .,'-;:!?\n" for ch in text)
    c.ok(letters >= 0.97 * len(text), "plain English characters")
    # The tokenizer round trip on the same file: ids of the answer re-encode to
    # the same text.
    r = subprocess.run([wardlib.ward_bin(), "tokenize", "--model", MODEL, "--no-special", "--text",
                        "What is Kubernetes?", "--json"], capture_output=True, text=True, timeout=60)
    c.eq(r.returncode, 0, "ward tokenize exit code")
    c.ok(len(json.loads(r.stdout)) <= 6, "the seed's prompt is a handful of tokens in the model's vocabulary")
    c.done()


if __name__ == "__main__":
    main()
