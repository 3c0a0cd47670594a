#!/usr/bin/python3
"""Checks an exported default model by running it from the GGUF file alone.

    /usr/bin/python3 tools/train/check_gguf.py models/default.gguf [--work DIR]

A llama forward pass written with numpy from the GGUF tensors (ggml "NORM"
RoPE: each adjacent pair (x[2i], x[2i+1]) of a head rotated by
pos * base^(-2i/head_dim)), independent of the torch training code. It
  - rebuilds the tokenizer from tokenizer.ggml.* and checks it encodes the
    probe texts as the training tokenizer did (when --work has the vocab);
  - compares its logits with the torch checkpoint in --work (when present):
    this is what catches a wrong Q/K layout, a transposed tensor or a
    missing norm in the export;
  - prints a greedy answer to "What is Kubernetes?" (fluent English is the
    point of the model).
Needs numpy; torch only for the logits comparison. Exit 0 when all checks pass.
"""
import argparse
import glob
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))
import gguf_writer  # noqa: E402
import spm_bpe  # noqa: E402

PROBES = ["What is Kubernetes?", "Tell me about a bearer token.", "héllo  wörld\n<|im_start|>user\nHi<|im_end|>",
          "What is the difference between a container and a virtual machine?"]
MAX_ABS_DIFF = 2e-2  # F16 weights vs float32 torch: logits agree to ~1e-3


class NumpyLlama:
    def __init__(self, path):
        kvs, tensors, _, _ = gguf_writer.read_gguf(path)
        self.kv = {k: v for k, (_, v) in kvs.items()}
        g = self.kv
        self.d, self.L = g["llama.embedding_length"], g["llama.block_count"]
        self.h = g["llama.attention.head_count"]
        self.hkv = g.get("llama.attention.head_count_kv", self.h)
        self.eps, self.base = g["llama.attention.layer_norm_rms_epsilon"], g.get("llama.rope.freq_base", 10000.0)
        self.w = {}
        for name, t in tensors.items():
            n = int(np.prod(t["ne"]))
            a = gguf_writer.dequantize(t["type"], t["data"], n) if t["type"] not in ("F32", "F16") else \
                np.frombuffer(t["data"], dtype="<f4" if t["type"] == "F32" else "<f2").astype(np.float32)
            self.w[name] = a.reshape(tuple(reversed(t["ne"])))
        if "output.weight" not in self.w:
            self.w["output.weight"] = self.w["token_embd.weight"]
        self.vocab = spm_bpe.Vocab(g["tokenizer.ggml.tokens"], g["tokenizer.ggml.scores"], g["tokenizer.ggml.token_type"])

    def _norm(self, x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + self.eps) * w

    def _rope(self, x):  # x [T, H, hd]
        T, _, hd = x.shape
        out = np.empty_like(x)
        for p in range(T):
            for i in range(hd // 2):
                th = p * self.base ** (-2.0 * i / hd)
                c, s = np.cos(th), np.sin(th)
                a, b = x[p, :, 2 * i], x[p, :, 2 * i + 1]
                out[p, :, 2 * i], out[p, :, 2 * i + 1] = a * c - b * s, a * s + b * c
        return out

    def logits(self, ids):
        w, T, hd = self.w, len(ids), self.d // self.h
        x = w["token_embd.weight"][ids].astype(np.float64)
        for l in range(self.L):
            p = "blk.%d." % l
            y = self._norm(x, w[p + "attn_norm.weight"])
            q = self._rope((y @ w[p + "attn_q.weight"].T).reshape(T, self.h, hd))
            k = self._rope((y @ w[p + "attn_k.weight"].T).reshape(T, self.hkv, hd))
            v = (y @ w[p + "attn_v.weight"].T).reshape(T, self.hkv, hd)
            att = np.empty((T, self.h, hd))
            for hh in range(self.h):
                kh = hh * self.hkv // self.h
                s = q[:, hh] @ k[:, kh].T / np.sqrt(hd)
                s = s + np.triu(np.full((T, T), -np.inf), 1)
                s = np.exp(s - s.max(-1, keepdims=True))
                att[:, hh] = (s / s.sum(-1, keepdims=True)) @ v[:, kh]
            x = x + att.reshape(T, self.d) @ w[p + "attn_output.weight"].T
            y = self._norm(x, w[p + "ffn_norm.weight"])
            gt, up = y @ w[p + "ffn_gate.weight"].T, y @ w[p + "ffn_up.weight"].T
            x = x + (gt / (1 + np.exp(-gt)) * up) @ w[p + "ffn_down.weight"].T
        return self._norm(x, w["output_norm.weight"]) @ w["output.weight"].T


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gguf")
    ap.add_argument("--work", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "ward-train"))
    ap.add_argument("-n", type=int, default=48)
    a = ap.parse_args()
    m = NumpyLlama(a.gguf)
    ok = True
    print("model %s: %s, %d layers, dim %d, vocab %d" % (a.gguf, m.kv.get("general.name"), m.L, m.d, len(m.vocab)))

    vocs = sorted(glob.glob(os.path.join(a.work, "vocab-*.json")))
    if vocs:
        with open(vocs[-1]) as f:
            vj = json.load(f)
        ref = spm_bpe.Vocab(vj["tokens"], vj["scores"], vj["types"])
        for s in PROBES:
            if ref.encode(s) != m.vocab.encode(s):
                print("FAIL tokenizer from GGUF differs from training tokenizer on %r" % s)
                ok = False
        print("tokenizer: %s" % ("ok" if ok else "MISMATCH"))

    ids = m.vocab.encode("What is Kubernetes?")
    ckpt = os.path.join(a.work, "ckpt.pt")
    if os.path.exists(ckpt):
        import torch
        import train
        st = torch.load(ckpt)
        tm = train.Llama(train.Cfg(vocab=len(m.vocab), dim=m.d, layers=m.L, heads=m.h,
                                   ffn=m.w["blk.0.ffn_up.weight"].shape[0], ctx=512))
        tm.load_state_dict(st["model"])
        tm.eval()
        probe = m.vocab.encode(PROBES[3])
        with torch.no_grad():
            ref = tm(torch.tensor([probe]))[0].double().numpy()
        diff = float(np.abs(ref - m.logits(probe)).max())
        good = diff < MAX_ABS_DIFF
        ok &= good
        print("logits vs torch checkpoint (step %d): max |diff| %.2e %s" % (st["step"], diff, "ok" if good else "FAIL"))

    out = []
    for _ in range(a.n):
        t = int(np.argmax(m.logits(ids + out)[-1]))
        out.append(t)
        if t in (spm_bpe.EOS, m.vocab.index.get("<|im_end|>")):
            break
    print("greedy: What is Kubernetes? ->%s" % (" " + m.vocab.decode(out)))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
