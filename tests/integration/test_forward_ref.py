#!/usr/bin/python3
"""Conformance of ward's forward pass against tools/ref_llama.py, an
independent float64 numpy implementation.

For several tiny random-weight models (llama with/without GQA, tied and untied
embeddings, Llama-3.1 rope_freqs, odd sizes; qwen2 with q/k/v biases and NEOX
RoPE) in F32, F16, Q8_0, Q4_0 (written by tools/gguf_writer.py) and the
K-quants / Q5_0 / Q4_1 (made by `ward quantize` when it is built), runs
`ward run --prompt-ids ... --json --dump-logits` and checks, at every
generation step, against the reference computed on the same (dequantized)
weights:
  - max |logit error| < 1e-3 * max |logit|,
  - ward's greedy token is the reference's best within that tolerance,
and that F32 and F16 files give the same greedy sequence.

Types ward computes on 8-bit activations here (`ward version` lists them:
Q8_0/Q4_0/Q5_0, and the K-quants when packed) are compared with a reference
that rounds their activations the same way (same 1e-3 bound), and their
greedy tokens must be within GAP_TOL of the logit scale of the unrounded
reference (issue 3's rule for quantized types). The quantized cases run
twice: with packing (the default) and with WARD_REPACK=0 (row-major integer
kernels, f32 K-quants).
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

SRC = os.environ.get("WARD_SRC", os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("WARD_BIN", os.path.join(SRC, "build", "ward"))
sys.path.insert(0, os.path.join(SRC, "tools"))
import gguf_writer  # noqa: E402
import ref_llama  # noqa: E402

REL_TOL = 1e-3
INT8_TYPES = ()
GAP_TOL = 0.02  # greedy choice vs the unrounded reference, for 8-bit activations
PROMPT = [1, 17, 250, 42, 99, 3, 7]
N_GEN = 6
FAILS = []


def vocab(n):
    """Minimal SentencePiece-style vocabulary of n >= 259 tokens."""
    toks = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)]
    types = [2, 3, 3] + [6] * 256
    i = 0
    while len(toks) < n:
        toks.append("\u2581w%d" % i)
        types.append(1)
        i += 1
    return toks, [0.0] * 3 + [0.0] * 256 + [-float(j) for j in range(n - 259)], types


def make_model(path, arch="llama", n_embd=64, n_layer=2, n_head=4, n_head_kv=2, n_ff=96,
               n_vocab=300, tied=False, rope_freqs=False, bias=False, wtype="F32", seed=0,
               base=10000.0, eos=2, zero_output_norm=False):
    rng = np.random.default_rng(seed)
    hd = n_embd // n_head
    w = gguf_writer.GGUFWriter(path)
    w.add_llama_hparams(arch, "ward-test-" + arch, 256, n_embd, n_layer, n_ff, n_head, n_head_kv, rope_base=base)
    w.add_spm_vocab(*vocab(n_vocab), eos=eos)

    def mat(rows, cols, gain=1.0):
        return (rng.standard_normal((rows, cols)) * gain / np.sqrt(cols)).astype(np.float32)

    def norm(n):
        return (1.0 + 0.2 * rng.standard_normal(n)).astype(np.float32)

    w.add_tensor("token_embd.weight", rng.standard_normal((n_vocab, n_embd)).astype(np.float32), wtype)
    w.add_tensor("output_norm.weight", np.zeros(n_embd, np.float32) if zero_output_norm else norm(n_embd))
    if not tied:
        w.add_tensor("output.weight", mat(n_vocab, n_embd, 4.0), wtype)
    if rope_freqs:
        # Llama-3.1-like factors: 1 for high frequencies, up to 8 for low ones
        w.add_tensor("rope_freqs.weight", np.linspace(1.0, 8.0, hd // 2).astype(np.float32))
    for i in range(n_layer):
        p = "blk.%d." % i
        w.add_tensor(p + "attn_norm.weight", norm(n_embd))
        w.add_tensor(p + "attn_q.weight", mat(n_head * hd, n_embd, 2.0), wtype)
        w.add_tensor(p + "attn_k.weight", mat(n_head_kv * hd, n_embd, 2.0), wtype)
        w.add_tensor(p + "attn_v.weight", mat(n_head_kv * hd, n_embd), wtype)
        w.add_tensor(p + "attn_output.weight", mat(n_embd, n_head * hd), wtype)
        if bias:
            w.add_tensor(p + "attn_q.bias", (0.5 * rng.standard_normal(n_head * hd)).astype(np.float32))
            w.add_tensor(p + "attn_k.bias", (0.5 * rng.standard_normal(n_head_kv * hd)).astype(np.float32))
            w.add_tensor(p + "attn_v.bias", (0.5 * rng.standard_normal(n_head_kv * hd)).astype(np.float32))
        w.add_tensor(p + "ffn_norm.weight", norm(n_embd))
        w.add_tensor(p + "ffn_gate.weight", mat(n_ff, n_embd), wtype)
        w.add_tensor(p + "ffn_up.weight", mat(n_ff, n_embd), wtype)
        w.add_tensor(p + "ffn_down.weight", mat(n_embd, n_ff), wtype)
    w.write()


def run_ward(path, dump):
    cmd = [BIN, "run", "--model", path, "--prompt-ids", ",".join(map(str, PROMPT)), "-n", str(N_GEN),
           "--json", "--ignore-eos", "--threads", "2", "--dump-logits", dump]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError("ward run failed (%d): %s" % (r.returncode, r.stderr.strip()[-500:]))
    out = json.loads(r.stdout)
    assert isinstance(out["ids"], list) and isinstance(out["text"], str), out
    return out["ids"]


def check(name, path, tmp):
    """Runs ward on path and compares with the reference. Returns ward's ids."""
    dump = os.path.join(tmp, name.replace("/", "_") + ".logits")
    ids = run_ward(path, dump)
    m = ref_llama.load(path)
    n_vocab = m["tok_embd"].shape[0]
    got = np.fromfile(dump, dtype="<f4").astype(np.float64)
    if len(ids) != N_GEN or got.size != N_GEN * n_vocab:
        FAILS.append("%s: expected %d ids and %d logits, got %d and %d" %
                     (name, N_GEN, N_GEN * n_vocab, len(ids), got.size))
        return ids
    got = got.reshape(N_GEN, n_vocab)
    ref = ref_llama.forward(m, PROMPT + ids[:-1])[len(PROMPT) - 1:]
    scale = np.abs(ref).max()
    tol = REL_TOL * scale
    mq = ref_llama.load(path, act_q8=INT8_TYPES)
    q8 = any(L[k] for L in mq["layers"] for k in L if k.endswith("_q8")) or mq["output_q8"]
    if q8:
        # ward's integer path: exact against the reference that rounds
        # activations the same way; within a small gap of the exact one
        refq = ref_llama.forward(mq, PROMPT + ids[:-1])[len(PROMPT) - 1:]
        err = np.abs(got - refq).max()
        errx = np.abs(got - ref).max()
        gap_tol = GAP_TOL * scale
    else:
        err = errx = np.abs(got - ref).max()
        gap_tol = tol
    if not err < tol:
        FAILS.append("%s: max logit error %.3g >= %.3g (scale %.3g)" % (name, err, tol, scale))
    for step, t in enumerate(ids):
        gap = ref[step].max() - ref[step][t]
        if gap > gap_tol:
            FAILS.append("%s: step %d: ward chose %d, reference best %d by %.3g" %
                         (name, step, t, int(ref[step].argmax()), gap))
    print("%-28s scale %7.3f  max err %.2e  vs unrounded %.2e  ids %s" % (name, scale, err, errx, ids))
    return ids


def int8_types():
    """GGML type names ward computes on 8-bit activations on this machine
    (`ward version` says: it depends on the CPU, WARD_CPU_LEVEL, WARD_REPACK)."""
    r = subprocess.run([BIN, "version"], capture_output=True, text=True, timeout=30)
    for line in r.stdout.splitlines():
        if line.startswith("8-bit activations:"):
            return tuple(t.upper() for t in line.split(":", 1)[1].split())
    raise RuntimeError("`ward version` does not list the 8-bit activation types: %r" % r.stdout)


def quantize_available():
    r = subprocess.run([BIN, "quantize", "--help"], capture_output=True, text=True)
    return r.returncode == 0 and "not built" not in (r.stdout + r.stderr).lower()


def quantized_cases(tmp, tag):
    # Q8_0 / Q4_0 written by the Python writer (rows multiple of 32)
    qkw = dict(n_embd=64, n_ff=128, n_vocab=320, seed=4)
    for wt in ("Q8_0", "Q4_0"):
        p = os.path.join(tmp, "llama_" + wt + ".gguf")
        make_model(p, wtype=wt, **qkw)
        check("llama_gqa/" + wt + tag, p, tmp)
    p = os.path.join(tmp, "qwen2_Q8_0.gguf")
    make_model(p, arch="qwen2", wtype="Q8_0", bias=True, tied=True, **qkw)
    check("qwen2_tied/Q8_0" + tag, p, tmp)

    # K-quants and the other legacy types via `ward quantize` (rows multiple of 256)
    if not quantize_available():
        print("note: `ward quantize` not built; K-quant cases skipped")
        return
    src = os.path.join(tmp, "k_src.gguf")
    make_model(src, n_embd=256, n_head=4, n_head_kv=2, n_ff=256, n_vocab=288, seed=5)
    for qt in ("q4_k", "q5_k", "q6_k", "q5_0", "q4_1"):
        dst = os.path.join(tmp, "k_" + qt + ".gguf")
        r = subprocess.run([BIN, "quantize", src, dst, qt], capture_output=True, text=True)
        if r.returncode != 0:
            FAILS.append("quantize %s failed: %s" % (qt, r.stderr.strip()[-300:]))
            continue
        check("llama_256/" + qt + tag, dst, tmp)


def main():
    global INT8_TYPES
    if not os.path.exists(BIN):
        print("ward binary not found at %s" % BIN)
        return 1
    INT8_TYPES = int8_types()
    print("8-bit activations here:", " ".join(INT8_TYPES))
    with tempfile.TemporaryDirectory(prefix="ward-fwd-") as tmp:
        cases = {
            "llama_gqa_tied_ropefreqs": dict(tied=True, rope_freqs=True, seed=1),
            "llama_mha_untied_odd": dict(n_embd=80, n_head=4, n_head_kv=4, n_ff=72, n_vocab=301, seed=2),
            "qwen2_bias_gqa": dict(arch="qwen2", n_head_kv=1, n_ff=128, n_vocab=320, bias=True,
                                   base=1e6, seed=3),
        }
        for name, kw in cases.items():
            p32 = os.path.join(tmp, name + ".f32.gguf")
            make_model(p32, **kw)
            ids32 = check(name + "/F32", p32, tmp)
            p16 = os.path.join(tmp, name + ".f16.gguf")
            make_model(p16, wtype="F16", **kw)
            ids16 = check(name + "/F16", p16, tmp)
            if ids16 != ids32:
                FAILS.append("%s: greedy ids differ between F32 %s and F16 %s" % (name, ids32, ids16))

        quantized_cases(tmp, "")
        # again with packing off: the row-major integer kernels (Q8_0, Q4_0,
        # Q5_0) and the f32 path of the K-quants
        os.environ["WARD_REPACK"] = "0"
        INT8_TYPES = int8_types()
        print("with WARD_REPACK=0, 8-bit activations:", " ".join(INT8_TYPES))
        quantized_cases(tmp, "/rowmajor")
        del os.environ["WARD_REPACK"]

    if FAILS:
        for f in FAILS:
            print("FAIL:", f)
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
