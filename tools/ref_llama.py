#!/usr/bin/python3
"""Independent numpy reference of the llama / qwen2 forward pass, for
conformance tests of ward's C engine.

Written from the math, deliberately NOT following the C code's structure:
  - weights are dequantized here (own numpy decoders for every supported
    type, from the block layouts in shared/reference/engine-formats.md s.2),
  - computation is float64, whole sequence at once, no KV cache (a causal
    mask over the full [T, T] score matrix),
  - RoPE is applied the Hugging Face way (rotate_half over (i, i + d/2)
    pairs). For "llama" GGUFs the converter permuted Q/K rows into Meta's
    interleaved order; we undo that permutation on the weights and then use
    rotate_half, which is the same rotation as adjacent-pair RoPE on the
    permuted weights. qwen2 weights are not permuted (NEOX order already).

Usage as a library:
    m = load("model.gguf"); logits = forward(m, [1, 2, 3])   # [T, n_vocab]
Command line:
    ref_llama.py MODEL --prompt-ids 1,2,3 [-n N]   -> {"ids": [...greedy...]}
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gguf_writer import read_gguf  # noqa: E402  (file parsing only)

QK = 32
QK_K = 256


def _f16(u16):
    return u16.view(np.float16).astype(np.float64)


def _blocks(data, nbytes, fields):
    buf = np.frombuffer(data, dtype=np.uint8)
    dt = np.dtype(fields)
    assert dt.itemsize == nbytes
    return buf.view(dt)


def _scale_min_k4(sc):
    """sc: [nb, 12] uint8 -> (scales [nb, 8], mins [nb, 8]) 6-bit values."""
    sc = sc.astype(np.int64)
    s = np.zeros((sc.shape[0], 8), np.int64)
    m = np.zeros((sc.shape[0], 8), np.int64)
    for j in range(8):
        if j < 4:
            s[:, j] = sc[:, j] & 63
            m[:, j] = sc[:, j + 4] & 63
        else:
            s[:, j] = (sc[:, j + 4] & 0xF) | ((sc[:, j - 4] >> 6) << 4)
            m[:, j] = (sc[:, j + 4] >> 4) | ((sc[:, j] >> 6) << 4)
    return s, m


def dequant(tname, data, n):
    """bytes holding n elements of type tname -> float64 array [n]."""
    buf = np.frombuffer(data, dtype=np.uint8)
    if tname == "F32":
        return buf.view("<f4")[:n].astype(np.float64)
    if tname == "F16":
        return buf.view("<f2")[:n].astype(np.float64)
    if tname == "BF16":
        return (buf.view("<u2")[:n].astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    if tname == "Q8_0":
        b = _blocks(data, 34, [("d", "<u2"), ("qs", "i1", 32)])
        return (b["qs"].astype(np.float64) * _f16(b["d"])[:, None]).reshape(-1)
    if tname == "Q4_0":
        b = _blocks(data, 18, [("d", "<u2"), ("qs", "u1", 16)])
        q = np.concatenate([b["qs"] & 0xF, b["qs"] >> 4], axis=1).astype(np.float64) - 8
        return (q * _f16(b["d"])[:, None]).reshape(-1)
    if tname == "Q4_1":
        b = _blocks(data, 20, [("d", "<u2"), ("m", "<u2"), ("qs", "u1", 16)])
        q = np.concatenate([b["qs"] & 0xF, b["qs"] >> 4], axis=1).astype(np.float64)
        return (q * _f16(b["d"])[:, None] + _f16(b["m"])[:, None]).reshape(-1)
    if tname == "Q5_0":
        b = _blocks(data, 22, [("d", "<u2"), ("qh", "<u4"), ("qs", "u1", 16)])
        h = b["qh"].astype(np.int64)[:, None]
        j = np.arange(16)[None, :]
        lo = (b["qs"] & 0xF).astype(np.int64) | (((h >> j) & 1) << 4)
        hi = (b["qs"] >> 4).astype(np.int64) | (((h >> (j + 16)) & 1) << 4)
        q = np.concatenate([lo, hi], axis=1).astype(np.float64) - 16
        return (q * _f16(b["d"])[:, None]).reshape(-1)
    if tname in ("Q4_K", "Q5_K"):
        if tname == "Q4_K":
            b = _blocks(data, 144, [("d", "<u2"), ("dmin", "<u2"), ("sc", "u1", 12), ("qs", "u1", 128)])
        else:
            b = _blocks(data, 176, [("d", "<u2"), ("dmin", "<u2"), ("sc", "u1", 12), ("qh", "u1", 32),
                                    ("qs", "u1", 128)])
        s, m = _scale_min_k4(b["sc"])
        d, dmin = _f16(b["d"])[:, None], _f16(b["dmin"])[:, None]
        out = np.zeros((len(b), QK_K))
        for c in range(4):
            q = b["qs"][:, 32 * c:32 * c + 32].astype(np.int64)
            lo, hi = q & 0xF, q >> 4
            if tname == "Q5_K":
                qh = b["qh"].astype(np.int64)
                lo = lo + np.where(qh & (1 << (2 * c)), 16, 0)
                hi = hi + np.where(qh & (2 << (2 * c)), 16, 0)
            out[:, 64 * c:64 * c + 32] = d * s[:, 2 * c:2 * c + 1] * lo - dmin * m[:, 2 * c:2 * c + 1]
            out[:, 64 * c + 32:64 * c + 64] = d * s[:, 2 * c + 1:2 * c + 2] * hi - dmin * m[:, 2 * c + 1:2 * c + 2]
        return out.reshape(-1)
    if tname == "Q6_K":
        b = _blocks(data, 210, [("ql", "u1", 128), ("qh", "u1", 64), ("sc", "i1", 16), ("d", "<u2")])
        d = _f16(b["d"])[:, None]
        out = np.zeros((len(b), QK_K))
        for half in range(2):
            ql = b["ql"][:, 64 * half:64 * half + 64].astype(np.int64)
            qh = b["qh"][:, 32 * half:32 * half + 32].astype(np.int64)
            sc = b["sc"][:, 8 * half:8 * half + 8].astype(np.float64)
            base = 128 * half
            for l in range(32):
                i = l // 16
                q1 = ((ql[:, l] & 0xF) | (((qh[:, l] >> 0) & 3) << 4)) - 32
                q2 = ((ql[:, l + 32] & 0xF) | (((qh[:, l] >> 2) & 3) << 4)) - 32
                q3 = ((ql[:, l] >> 4) | (((qh[:, l] >> 4) & 3) << 4)) - 32
                q4 = ((ql[:, l + 32] >> 4) | (((qh[:, l] >> 6) & 3) << 4)) - 32
                out[:, base + l] = d[:, 0] * sc[:, i] * q1
                out[:, base + l + 32] = d[:, 0] * sc[:, i + 2] * q2
                out[:, base + l + 64] = d[:, 0] * sc[:, i + 4] * q3
                out[:, base + l + 96] = d[:, 0] * sc[:, i + 6] * q4
        return out.reshape(-1)
    raise ValueError("ref_llama: unsupported tensor type " + tname)


def _kv(kvs, key, default=None):
    if key in kvs:
        v = kvs[key][1]
        return v[0] if isinstance(v, list) else v
    if default is None:
        raise KeyError("missing key " + key)
    return default


# GGML types whose matrix products ward computes on 8-bit activations
# (Q8_0, Q4_0, Q5_0: src/engine/kern.h "Q8 activations").
ACT_Q8_TYPES = ("Q8_0", "Q4_0", "Q5_0")


def quantize_act(x):
    """Rounds the last axis of x as ward quantizes activations: blocks of 32,
    scale amax / 127, values round-half-even(x * 127 / amax). The input,
    127 / amax, the product and the scale are float32, as in ward."""
    shape = x.shape
    b = x.astype(np.float32).reshape(-1, 32)
    amax = np.abs(b).max(axis=1, keepdims=True)
    safe = np.where(amax > 0, amax, np.float32(1.0))
    inv = np.where(amax > 0, np.float32(127.0) / safe, np.float32(0.0)).astype(np.float32)
    q = np.clip(np.rint((b * inv).astype(np.float32)), -127, 127)
    d = (amax / np.float32(127.0)).astype(np.float32)
    return (q.astype(np.float64) * d.astype(np.float64)).reshape(shape)


def _mm(x, w, q8):
    """x @ w.T, with x quantized first where ward's integer path applies."""
    return (quantize_act(x) if q8 else x) @ w.T


def load(path, act_q8=False):
    """The model's weights, dequantized to float64. act_q8: True (the types of
    ACT_Q8_TYPES) or a list of GGML type names whose products quantize their
    input as ward does (m[..."_q8"] flags)."""
    kvs, tensors, _, _ = read_gguf(path)
    arch = _kv(kvs, "general.architecture")
    if arch not in ("llama", "qwen2"):
        raise ValueError("ref_llama: unsupported architecture " + arch)

    def W(name):
        t = tensors[name]
        n = int(np.prod(t["ne"]))
        return dequant(t["type"], t["data"], n).reshape(tuple(reversed(t["ne"])))

    def opt(name):
        return W(name) if name in tensors else None

    types = ACT_Q8_TYPES if act_q8 is True else tuple(act_q8 or ())

    def q8(name):
        return name in tensors and tensors[name]["type"] in types

    n_embd = _kv(kvs, arch + ".embedding_length")
    n_head = _kv(kvs, arch + ".attention.head_count")
    hp = dict(
        arch=arch,
        n_layer=_kv(kvs, arch + ".block_count"),
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=_kv(kvs, arch + ".attention.head_count_kv", n_head),
        eps=_kv(kvs, arch + ".attention.layer_norm_rms_epsilon"),
        base=_kv(kvs, arch + ".rope.freq_base", 10000.0),
    )
    hp["head_dim"] = _kv(kvs, arch + ".attention.key_length", n_embd // n_head)
    m = dict(hp=hp, tok_embd=W("token_embd.weight"), out_norm=W("output_norm.weight"),
             rope_freqs=opt("rope_freqs.weight"))
    m["output"] = opt("output.weight")
    m["output_q8"] = q8("output.weight")
    if m["output"] is None:
        m["output"] = m["tok_embd"]
        m["output_q8"] = q8("token_embd.weight")
    layers = []
    for i in range(hp["n_layer"]):
        p = "blk.%d." % i
        L = {k: opt(p + k + ".weight") for k in ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                                                  "ffn_norm", "ffn_gate", "ffn_up", "ffn_down")}
        for k in ("attn_q", "attn_k", "attn_v", "attn_output"):
            L[k + "_b"] = opt(p + k + ".bias")
        for k in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"):
            L[k + "_q8"] = q8(p + k + ".weight")
        if arch == "llama":
            # back to the Hugging Face (rotate_half) row order
            L["attn_q"] = _unpermute(L["attn_q"], hp["n_head"])
            L["attn_k"] = _unpermute(L["attn_k"], hp["n_head_kv"])
            if L["attn_q_b"] is not None:
                L["attn_q_b"] = _unpermute(L["attn_q_b"], hp["n_head"])
                L["attn_k_b"] = _unpermute(L["attn_k_b"], hp["n_head_kv"])
        layers.append(L)
    m["layers"] = layers
    return m


def _unpermute(w, n_head):
    """Inverse of the converter's permute: rows of each head go from
    interleaved (x0, y0, x1, y1, ...) to halves (x0, x1, ..., y0, y1, ...)."""
    rows = w.shape[0]
    rest = w.shape[1:]
    return w.reshape(n_head, rows // n_head // 2, 2, *rest).swapaxes(1, 2).reshape(w.shape)


def _rms(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def _rope(x, pos, hp, freqs):
    """x: [T, H, D] in rotate_half layout."""
    d = hp["head_dim"]
    inv = hp["base"] ** (-np.arange(0, d, 2, dtype=np.float64) / d)
    if freqs is not None:
        inv = inv / freqs
    ang = np.outer(pos, inv)                      # [T, D/2]
    cos = np.concatenate([np.cos(ang)] * 2, axis=-1)[:, None, :]
    sin = np.concatenate([np.sin(ang)] * 2, axis=-1)[:, None, :]
    rot = np.concatenate([-x[..., d // 2:], x[..., :d // 2]], axis=-1)
    return x * cos + rot * sin


def forward(m, tokens):
    """Logits [T, n_vocab] (float64) for every position of the token list."""
    hp = m["hp"]
    T = len(tokens)
    H, KH, D = hp["n_head"], hp["n_head_kv"], hp["head_dim"]
    pos = np.arange(T, dtype=np.float64)
    x = m["tok_embd"][np.asarray(tokens)]
    mask = np.triu(np.full((T, T), -np.inf), k=1)
    for L in m["layers"]:
        h = _rms(x, L["attn_norm"], hp["eps"])

        def proj(k):
            y = _mm(h, L[k], L[k + "_q8"])
            return y + L[k + "_b"] if L[k + "_b"] is not None else y
        q = proj("attn_q").reshape(T, H, D)
        k = proj("attn_k").reshape(T, KH, D)
        v = proj("attn_v").reshape(T, KH, D)
        q = _rope(q, pos, hp, m["rope_freqs"])
        k = _rope(k, pos, hp, m["rope_freqs"])
        rep = H // KH
        k = np.repeat(k, rep, axis=1)
        v = np.repeat(v, rep, axis=1)
        s = np.einsum("thd,shd->hts", q, k) / np.sqrt(D) + mask
        s = np.exp(s - s.max(axis=-1, keepdims=True))
        s /= s.sum(axis=-1, keepdims=True)
        o = np.einsum("hts,shd->thd", s, v).reshape(T, H * D)
        o = _mm(o, L["attn_output"], L["attn_output_q8"])
        if L["attn_output_b"] is not None:
            o = o + L["attn_output_b"]
        x = x + o
        h = _rms(x, L["ffn_norm"], hp["eps"])
        g = _mm(h, L["ffn_gate"], L["ffn_gate_q8"])
        u = _mm(h, L["ffn_up"], L["ffn_up_q8"])
        x = x + _mm(g / (1 + np.exp(-g)) * u, L["ffn_down"], L["ffn_down_q8"])
    return _mm(_rms(x, m["out_norm"], hp["eps"]), m["output"], m["output_q8"])


def greedy(m, prompt, n):
    ids = list(prompt)
    out = []
    for _ in range(n):
        t = int(np.argmax(forward(m, ids)[-1]))
        out.append(t)
        ids.append(t)
    return out


def main(argv):
    if len(argv) < 3 or argv[1] != "--prompt-ids":
        print(__doc__)
        return 2
    m = load(argv[0])
    prompt = [int(x) for x in argv[2].split(",")]
    n = int(argv[4]) if len(argv) >= 5 and argv[3] == "-n" else 8
    print(json.dumps({"ids": greedy(m, prompt, n)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
