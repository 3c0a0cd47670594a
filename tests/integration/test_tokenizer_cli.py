#!/usr/bin/env python3
"""`ward tokenize` command line: usage errors exit 2 with one line, unreadable
or non-GGUF models exit 1, and (with the shared vocab files) --json,
--no-special, --file and --jsonl print the expected ids."""
import os
import subprocess
import sys
import tempfile

WARD = os.environ.get("WARD_BIN")
failures = []


def run(args, stdin=None):
    p = subprocess.run([WARD, "tokenize"] + args, input=stdin, capture_output=True, timeout=60)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def check(name, cond, detail=""):
    if not cond:
        failures.append("%s %s" % (name, detail))
        print("FAIL", name, detail)


def main():
    if not WARD:
        print("WARD_BIN not set")
        return 1
    rc, out, err = run(["--text", "x"])
    check("missing --model", rc == 2 and "--model" in err, repr((rc, err)))
    rc, out, err = run(["--model", "m.gguf"])
    check("no input", rc == 2 and "exactly one" in err, repr((rc, err)))
    rc, out, err = run(["--model", "m.gguf", "--bogus"])
    check("unknown flag", rc == 2 and "--bogus" in err, repr((rc, err)))
    rc, out, err = run(["--model", "/nonexistent/m.gguf", "--text", "x"])
    check("missing file", rc == 1 and "cannot open" in err, repr((rc, err)))
    with tempfile.NamedTemporaryFile(suffix=".gguf") as f:
        f.write(b"not a gguf file at all")
        f.flush()
        rc, out, err = run(["--model", f.name, "--text", "x"])
        check("not gguf", rc == 1 and err.count("\n") == 1, repr((rc, err)))
    rc, out, err = run(["--help"])
    check("help", rc == 0 and "usage: ward tokenize" in out, repr((rc, out)))

    shared = os.environ.get("WARD_SHARED")
    spm = os.path.join(shared or "", "testdata", "vocab", "ggml-vocab-llama-spm.gguf")
    if shared and os.path.exists(spm):
        rc, out, err = run(["--model", spm, "--text", "Hello world", "--json"])
        check("spm json", rc == 0 and out == "[1, 15043, 3186]\n", repr((rc, out, err)))
        rc, out, err = run(["--model", spm, "--no-special", "--text", "Hello world"])
        check("spm no-special", rc == 0 and out == "15043 3186\n", repr((rc, out, err)))
        rc, out, err = run(["--model", spm, "--no-special", "--text", "<s>"])
        check("no-special leaves <s> as text", rc == 0 and "1" not in out.split(), repr(out))
        rc, out, err = run(["--model", spm, "--text", "<s>", "--json"])
        check("special parses <s>", rc == 0 and out == "[1, 1]\n", repr(out))
        with tempfile.NamedTemporaryFile() as f:
            f.write(b"Hello world")
            f.flush()
            rc, out, err = run(["--model", spm, "--no-special", "--file", f.name, "--json"])
            check("file", rc == 0 and out == "[15043, 3186]\n", repr((rc, out, err)))
        rc, out, err = run(["--model", spm, "--no-special", "--jsonl"], stdin=b'"Hello world"\n""\n"x\\u0000y"\n')
        lines = out.split("\n")
        check("jsonl", rc == 0 and lines[0] == "[15043, 3186]" and lines[1] == "[]" and len(lines) == 4,
              repr((rc, out, err)))
        rc, out, err = run(["--model", spm, "--jsonl"], stdin=b'"a"\n42\n')
        check("jsonl bad line", rc == 1 and "line 2" in err, repr((rc, err)))
    else:
        print("note: shared vocab files absent; ran only the error-path checks")

    print("%d failures" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
