#!/usr/bin/python3
"""Writes a random-weight Llama GGUF with TinyLlama-1.1B's shape (or a
smaller one with --small) in F16, for bench/engine.sh.

Uses tools/gguf_writer.py for the metadata encoding but streams the tensor
data to the file one tensor at a time, so memory stays at about one tensor
(the largest, 32000 x 2048 F16, is 125 MiB) instead of the whole 2 GiB.

    make_model.py OUT.gguf [--small] [--seed N]
"""
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import gguf_writer as gw  # noqa: E402

TINYLLAMA = dict(n_embd=2048, n_layer=22, n_head=32, n_head_kv=4, n_ff=5632, n_vocab=32000)
SMALL = dict(n_embd=256, n_layer=2, n_head=8, n_head_kv=2, n_ff=512, n_vocab=1024)


def vocab(n):
    """SentencePiece-style vocabulary: specials, 256 byte tokens, words."""
    toks = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)]
    types = [2, 3, 3] + [6] * 256
    while len(toks) < n:
        toks.append("\u2581w%d" % len(toks))
        types.append(1)
    return toks, [0.0] * 259 + [-float(j) for j in range(n - 259)], types


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    out = argv[1]
    hp = SMALL if "--small" in argv else TINYLLAMA
    seed = int(argv[argv.index("--seed") + 1]) if "--seed" in argv else 0
    rng = np.random.default_rng(seed)
    E, L, H, KH, F, V = (hp[k] for k in ("n_embd", "n_layer", "n_head", "n_head_kv", "n_ff", "n_vocab"))
    hd = E // H

    w = gw.GGUFWriter(out)
    w.add_llama_hparams("llama", "ward-bench-tinyllama-shape", 2048, E, L, F, H, KH)
    w.add_u32("llama.rope.dimension_count", hd)
    w.add_u32("general.file_type", 1)  # mostly F16
    w.add_spm_vocab(*vocab(V))

    # (name, shape [rows, cols], kind): kind "mat" is F16 N(0, 1/cols), "norm" F32 ~1
    tensors = [("token_embd.weight", (V, E), "emb"), ("output_norm.weight", (E,), "norm"),
               ("output.weight", (V, E), "mat")]
    for i in range(L):
        p = "blk.%d." % i
        tensors += [(p + "attn_norm.weight", (E,), "norm"), (p + "attn_q.weight", (H * hd, E), "mat"),
                    (p + "attn_k.weight", (KH * hd, E), "mat"), (p + "attn_v.weight", (KH * hd, E), "mat"),
                    (p + "attn_output.weight", (E, H * hd), "mat"), (p + "ffn_norm.weight", (E,), "norm"),
                    (p + "ffn_gate.weight", (F, E), "mat"), (p + "ffn_up.weight", (F, E), "mat"),
                    (p + "ffn_down.weight", (E, F), "mat")]

    def tid_and_size(shape, kind):
        n = int(np.prod(shape))
        return (gw.TENSOR_TYPES["F32"][0], 4 * n) if kind == "norm" else (gw.TENSOR_TYPES["F16"][0], 2 * n)

    def data(shape, kind):
        if kind == "norm":
            return (1.0 + 0.1 * rng.standard_normal(shape, dtype=np.float32)).astype("<f4").tobytes()
        scale = 1.0 if kind == "emb" else 1.0 / np.sqrt(shape[1])
        return (rng.standard_normal(shape, dtype=np.float32) * np.float32(scale)).astype("<f2").tobytes()

    al = w.alignment
    head = [gw.GGUF_MAGIC, struct.pack("<IQQ", gw.GGUF_VERSION, len(tensors), len(w.kvs))]
    for key, vtype, payload in w.kvs:
        head += [gw._gguf_str(key), struct.pack("<I", vtype), payload]
    off = 0
    for name, shape, kind in tensors:
        tid, size = tid_and_size(shape, kind)
        ne = tuple(reversed(shape))
        head += [gw._gguf_str(name), struct.pack("<I", len(ne)), struct.pack("<%dQ" % len(ne), *ne),
                 struct.pack("<IQ", tid, off)]
        off = gw._align(off + size, al)
    hb = b"".join(head)
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(hb + b"\0" * (gw._align(len(hb), al) - len(hb)))
        for name, shape, kind in tensors:
            d = data(shape, kind)
            f.write(d + b"\0" * (gw._align(len(d), al) - len(d)))
    os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
