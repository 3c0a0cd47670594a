#!/usr/bin/python3
"""`ward quantize`: converts a small F32 model (written by tools/gguf_writer.py)
to every type; the result loads, keeps metadata and 1-D tensors, and decodes
close to the input. Already-quantized and malformed inputs fail clearly."""
import os
import subprocess
import sys
import tempfile

import numpy as np

SRC = os.environ.get("WARD_SRC", os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("WARD_BIN", os.path.join(SRC, "build", "ward"))
sys.path.insert(0, os.path.join(SRC, "tools"))
from gguf_writer import GGUFWriter, dequantize, quantize_q8_0, read_gguf  # noqa: E402

FAILS = []


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print("FAIL:", what)


def ward(*args):
    p = subprocess.run([BIN, "quantize", *args], capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def make_model(path, rng):
    w = GGUFWriter(path)
    w.add_str("general.architecture", "llama")
    w.add_str("general.name", "ward-test")
    w.add_u32("llama.block_count", 1)
    w.add_f32("llama.attention.layer_norm_rms_epsilon", 1e-5)
    w.add_bool("tokenizer.ggml.add_bos_token", True)
    w.add_arr_str("tokenizer.ggml.tokens", ["<unk>", "<s>", "</s>", "a"])
    w.add_arr_f32("tokenizer.ggml.scores", [0.0, 0.0, 0.0, -1.0])
    w.add_arr_i32("tokenizer.ggml.token_type", [2, 3, 3, 1])
    t = {
        "token_embd.weight": rng.standard_normal((8, 256)).astype(np.float32),   # K-quant rows
        "blk.0.attn_q.weight": rng.standard_normal((16, 64)).astype(np.float32),  # legacy rows only
        "blk.0.odd.weight": rng.standard_normal((4, 40)).astype(np.float32),      # fits no block
        "output_norm.weight": rng.standard_normal(256).astype(np.float32),        # 1-D: kept
    }
    for name, a in t.items():
        w.add_tensor(name, a)
    w.write()
    return t


def main():
    if not os.access(BIN, os.X_OK):
        print("ward binary not found at %s" % BIN)
        return 1
    rng = np.random.default_rng(7)
    tmp = tempfile.mkdtemp(prefix="ward_gguf_cli_")
    src = os.path.join(tmp, "f32.gguf")
    tensors = make_model(src, rng)
    src_kvs, _, _, _ = read_gguf(src)

    # type -> (expected type of [8,256], of [16,64], general.file_type, max rel RMSE)
    cases = {
        "q8_0": ("Q8_0", "Q8_0", 7, 0.01), "q4_0": ("Q4_0", "Q4_0", 2, 0.15),
        "q4_1": ("Q4_1", "Q4_1", 3, 0.15), "q5_0": ("Q5_0", "Q5_0", 8, 0.08),
        "q4_k": ("Q4_K", "Q5_0", 14, 0.15), "q5_k": ("Q5_K", "Q5_0", 16, 0.08),
        "q6_k": ("Q6_K", "Q8_0", 18, 0.04), "f16": ("F16", "F16", 1, 0.001),
        "bf16": ("BF16", "BF16", 32, 0.01),
    }
    for qt, (t_emb, t_q, ftype, tol) in cases.items():
        out = os.path.join(tmp, qt + ".gguf")
        rc, so, se = ward(src, out, qt.upper() if qt == "q8_0" else qt)  # type is case-insensitive
        check(rc == 0, "%s: exit %d (%s)" % (qt, rc, se.strip()))
        if rc != 0:
            continue
        check("tensors converted" in so, "%s: summary line" % qt)
        kvs, ts, version, align = read_gguf(out)
        check(version == 3 and align == 32, "%s: version/alignment" % qt)
        for k, v in src_kvs.items():
            check(kvs.get(k) == v, "%s: KV %s copied" % (qt, k))
        check(kvs.get("general.file_type") == (4, ftype), "%s: general.file_type %r" % (qt, kvs.get("general.file_type")))
        check(ts["token_embd.weight"]["type"] == t_emb, "%s: token_embd type %s" % (qt, ts["token_embd.weight"]["type"]))
        check(ts["blk.0.attn_q.weight"]["type"] == t_q, "%s: attn_q type %s" % (qt, ts["blk.0.attn_q.weight"]["type"]))
        want_odd = t_emb if qt in ("f16", "bf16") else "F32"  # float types have no block
        check(ts["blk.0.odd.weight"]["type"] == want_odd, "%s: 40-wide rows -> %s" % (qt, want_odd))
        check(ts["output_norm.weight"]["type"] == "F32", "%s: 1-D norm kept F32" % qt)
        check(ts["output_norm.weight"]["data"] == tensors["output_norm.weight"].tobytes(), "%s: norm bytes" % qt)
        check(ts["token_embd.weight"]["ne"] == (256, 8), "%s: dims kept" % qt)
        for name in ("token_embd.weight", "blk.0.attn_q.weight"):
            t = ts[name]
            if t["type"] in ("Q8_0", "Q4_0", "F16", "BF16"):
                x = tensors[name].ravel()
                y = dequantize(t["type"], t["data"], x.size)
                err = float(np.sqrt(np.mean((y - x) ** 2) / np.mean(x ** 2)))
                check(err < tol, "%s: %s relative RMSE %.4f >= %.4f" % (qt, name, err, tol))
        if qt == "q8_0":  # C and Python reference quantizers agree byte for byte
            check(ts["token_embd.weight"]["data"] == quantize_q8_0(tensors["token_embd.weight"]),
                  "q8_0: C output differs from tools/gguf_writer.py")
        # re-quantizing a quantized model is refused
        if qt not in ("f16", "bf16"):
            rc, _, se = ward(out, os.path.join(tmp, "again.gguf"), "q4_0")
            check(rc == 1 and "already quantized" in se, "%s: requantize refused (%d %s)" % (qt, rc, se.strip()))
    check(not os.path.exists(os.path.join(tmp, "again.gguf")), "no output for refused input")

    # f16 input converts further (float input of any width)
    rc, _, se = ward(os.path.join(tmp, "f16.gguf"), os.path.join(tmp, "f16_q8.gguf"), "q8_0")
    check(rc == 0, "f16 -> q8_0: %d %s" % (rc, se.strip()))

    # malformed inputs: exit 1 with the reader's message, nothing written
    data = open(src, "rb").read()
    bad = os.path.join(tmp, "bad.gguf")
    for blob, want in ((data[:100], "gguf: "), (b"NOPE" + data[4:], "bad magic"),
                       (data[:4] + b"\x07\0\0\0" + data[8:], "unsupported version 7")):
        open(bad, "wb").write(blob)
        rc, _, se = ward(bad, os.path.join(tmp, "bad_out.gguf"), "q8_0")
        check(rc == 1 and want in se and se.count("\n") == 1, "malformed (%s): %d %r" % (want, rc, se))
    check(not os.path.exists(os.path.join(tmp, "bad_out.gguf")), "no output for malformed input")

    # usage errors and help
    rc, _, se = ward(src)
    check(rc == 2 and "expected IN.gguf OUT.gguf TYPE" in se, "usage: %d %s" % (rc, se))
    rc, _, se = ward(src, os.path.join(tmp, "x.gguf"), "q3_x")
    check(rc == 2 and "unknown type 'q3_x'" in se, "bad type: %d %s" % (rc, se))
    rc, so, _ = ward("--help")
    check(rc == 0 and so.startswith("usage: ward quantize"), "help")
    rc, _, se = ward(os.path.join(tmp, "missing.gguf"), os.path.join(tmp, "x.gguf"), "q8_0")
    check(rc == 1 and "cannot open" in se, "missing input: %d %s" % (rc, se))
    rc, _, se = ward(src, os.path.join(tmp, "no", "such", "dir.gguf"), "q8_0")
    check(rc == 1 and "cannot create" in se, "unwritable output: %d %s" % (rc, se))

    for f in os.listdir(tmp):
        os.unlink(os.path.join(tmp, f))
    os.rmdir(tmp)
    if FAILS:
        print("%d failure(s)" % len(FAILS))
        return 1
    print("ok: ward quantize, %d types" % len(cases))
    return 0


if __name__ == "__main__":
    sys.exit(main())
