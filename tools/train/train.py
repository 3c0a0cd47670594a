#!/usr/bin/python3
"""Trains ward's default model (models/default.gguf) on the CPU.

    nice -n 19 /usr/bin/python3 tools/train/train.py --out models/default.gguf

Steps (each cached in --work, so an interrupted run resumes from the last
checkpoint and --export-only re-exports without training):
  1. corpus.py generates the documents (fixed seed);
  2. spm_bpe.py learns a SentencePiece-style BPE vocabulary and tokenizes
     every document exactly as ward's SPM tokenizer will;
  3. a llama-architecture transformer (RMSNorm, RoPE on adjacent pairs,
     SwiGLU, untied output) is trained with AdamW on random 192-token windows;
  4. the weights are exported with tools/gguf_writer.py.

RoPE: the model rotates adjacent pairs (x[2i], x[2i+1]) of each head, the
layout GGUF llama files use (ggml "NORM" rope), so Q/K weights are exported
as they are, with no permutation. A Hugging Face-style model (rotate-half)
would need the permutation instead; check_gguf.py verifies the export by
recomputing the logits from the GGUF file with numpy.

Needs Debian packages python3-torch and libopenblas0-pthread (without OpenBLAS,
torch falls back to the reference BLAS and trains about 5x slower).
"""
import argparse
import json
import math
import os
import sys
import time

# one BLAS thread: the training shares the machine (see docs/default-model.md)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))
import corpus  # noqa: E402
import spm_bpe  # noqa: E402

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


# ---------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------
class Cfg:
    def __init__(self, **kw):
        self.vocab, self.dim, self.layers, self.heads = kw["vocab"], kw["dim"], kw["layers"], kw["heads"]
        self.ffn, self.ctx, self.eps, self.rope_base = kw["ffn"], kw["ctx"], 1e-5, 10000.0

    def as_dict(self):
        return dict(vocab=self.vocab, dim=self.dim, layers=self.layers, heads=self.heads, ffn=self.ffn, ctx=self.ctx)


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(hd, n, base):
    inv = base ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)  # theta_i = base^(-2i/hd)
    ang = torch.arange(n, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cos(ang).float(), torch.sin(ang).float()


def rope(x, cos, sin):
    """x [B, H, T, hd]: rotates adjacent pairs (x[2i], x[2i+1]) (GGUF llama layout)."""
    x0, x1 = x[..., 0::2], x[..., 1::2]
    c, s = cos[: x.shape[2]], sin[: x.shape[2]]
    return torch.stack((x0 * c - x1 * s, x0 * s + x1 * c), dim=-1).flatten(-2)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c.dim
        self.attn_norm, self.ffn_norm = RMSNorm(d, c.eps), RMSNorm(d, c.eps)
        self.wq, self.wk, self.wv, self.wo = (nn.Linear(d, d, bias=False) for _ in range(4))
        self.w_gate, self.w_up = nn.Linear(d, c.ffn, bias=False), nn.Linear(d, c.ffn, bias=False)
        self.w_down = nn.Linear(c.ffn, d, bias=False)
        self.h = c.heads

    def forward(self, x, cos, sin, mask):
        B, T, D = x.shape
        hd = D // self.h
        y = self.attn_norm(x)
        q, k, v = (w(y).view(B, T, self.h, hd).transpose(1, 2) for w in (self.wq, self.wk, self.wv))
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        att = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(hd))
        att = att.masked_fill(mask[:T, :T], float("-inf")).softmax(-1)
        x = x + self.wo((att @ v).transpose(1, 2).reshape(B, T, D))
        y = self.ffn_norm(x)
        return x + self.w_down(F.silu(self.w_gate(y)) * self.w_up(y))


class Llama(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.tok = nn.Embedding(c.vocab, c.dim)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.layers))
        self.norm = RMSNorm(c.dim, c.eps)
        self.out = nn.Linear(c.dim, c.vocab, bias=False)
        cos, sin = rope_tables(c.dim // c.heads, c.ctx, c.rope_base)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        self.register_buffer("mask", torch.triu(torch.ones(c.ctx, c.ctx, dtype=torch.bool), 1), persistent=False)
        for n, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * c.layers) if n.endswith(("wo.weight", "w_down.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx):
        x = self.tok(idx)
        for b in self.blocks:
            x = b(x, self.cos, self.sin, self.mask)
        return self.out(self.norm(x))


@torch.no_grad()
def generate(model, ids, n, temperature, rng, eos):
    out = list(ids)
    for _ in range(n):
        logits = model(torch.tensor([out[-model.c.ctx:]]))[0, -1].double()
        if temperature <= 0:
            t = int(logits.argmax())
        else:
            p = torch.softmax(logits / temperature, -1).numpy()
            t = int(rng.choice(len(p), p=p / p.sum()))
        out.append(t)
        if t in eos:
            break
    return out[len(ids):]


# ---------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------
def export(model, vocab, path, wtype):
    import gguf_writer as gw
    c = model.c
    w = gw.GGUFWriter(path)
    w.add_str("general.architecture", "llama")
    w.add_str("general.name", "ward-default")
    w.add_str("general.description", "ward's default model: a tiny llama trained on a corpus written by the project")
    w.add_str("general.license", "Apache-2.0")
    w.add_u32("general.alignment", 32)
    w.add_u32("general.file_type", 1 if wtype == "F16" else 0)
    w.add_u32("llama.context_length", c.ctx_export)
    w.add_u32("llama.embedding_length", c.dim)
    w.add_u32("llama.block_count", c.layers)
    w.add_u32("llama.feed_forward_length", c.ffn)
    w.add_u32("llama.attention.head_count", c.heads)
    w.add_u32("llama.attention.head_count_kv", c.heads)
    w.add_f32("llama.attention.layer_norm_rms_epsilon", c.eps)
    w.add_f32("llama.rope.freq_base", c.rope_base)
    w.add_u32("llama.rope.dimension_count", c.dim // c.heads)
    w.add_u32("llama.vocab_size", c.vocab)
    w.add_str("tokenizer.ggml.model", "llama")
    w.add_arr_str("tokenizer.ggml.tokens", vocab.tokens)
    w.add_arr_f32("tokenizer.ggml.scores", vocab.scores)
    w.add_arr_i32("tokenizer.ggml.token_type", vocab.types)
    w.add_u32("tokenizer.ggml.bos_token_id", spm_bpe.BOS)
    w.add_u32("tokenizer.ggml.eos_token_id", spm_bpe.EOS)
    w.add_u32("tokenizer.ggml.unknown_token_id", spm_bpe.UNK)
    w.add_u32("tokenizer.ggml.eot_token_id", vocab.index["<|im_end|>"])
    w.add_bool("tokenizer.ggml.add_bos_token", True)
    w.add_bool("tokenizer.ggml.add_eos_token", False)
    w.add_bool("tokenizer.ggml.add_space_prefix", True)
    w.add_str("tokenizer.chat_template", CHAT_TEMPLATE)

    def t(x):
        return x.detach().float().numpy()

    w.add_tensor("token_embd.weight", t(model.tok.weight), wtype)
    for i, b in enumerate(model.blocks):
        p = "blk.%d." % i
        w.add_tensor(p + "attn_norm.weight", t(b.attn_norm.weight))
        w.add_tensor(p + "attn_q.weight", t(b.wq.weight), wtype)  # adjacent-pair RoPE: no permutation
        w.add_tensor(p + "attn_k.weight", t(b.wk.weight), wtype)
        w.add_tensor(p + "attn_v.weight", t(b.wv.weight), wtype)
        w.add_tensor(p + "attn_output.weight", t(b.wo.weight), wtype)
        w.add_tensor(p + "ffn_norm.weight", t(b.ffn_norm.weight))
        w.add_tensor(p + "ffn_gate.weight", t(b.w_gate.weight), wtype)
        w.add_tensor(p + "ffn_up.weight", t(b.w_up.weight), wtype)
        w.add_tensor(p + "ffn_down.weight", t(b.w_down.weight), wtype)
    w.add_tensor("output_norm.weight", t(model.norm.weight))
    w.add_tensor("output.weight", t(model.out.weight), wtype)
    w.write()


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description="train ward's default model")
    ap.add_argument("--out", default=os.path.join(HERE, "..", "..", "models", "default.gguf"))
    ap.add_argument("--work", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "ward-train"))
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--corpus-seed", type=int, default=1)
    ap.add_argument("--docs", type=int, default=60000)
    ap.add_argument("--vocab", type=int, default=2048)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--ffn", type=int, default=384)
    ap.add_argument("--seq", type=int, default=192, help="training window (tokens)")
    ap.add_argument("--ctx", type=int, default=2048, help="llama.context_length written to the GGUF")
    ap.add_argument("--batch", type=int, default=24)
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--min-lr", type=float, default=2e-4)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--wd", type=float, default=0.05)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ckpt-every", type=int, default=100)
    ap.add_argument("--dtype", choices=["F16", "F32"], default="F16")
    ap.add_argument("--export-only", action="store_true", help="export the last checkpoint without training")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    os.makedirs(a.work, exist_ok=True)
    t0 = time.time()

    # 1-2: corpus and tokens (cached)
    tok_path = os.path.join(a.work, "tokens-%d-%d-%d.npy" % (a.corpus_seed, a.docs, a.vocab))
    voc_path = os.path.join(a.work, "vocab-%d-%d-%d.json" % (a.corpus_seed, a.docs, a.vocab))
    if os.path.exists(tok_path) and os.path.exists(voc_path):
        with open(voc_path) as f:
            vj = json.load(f)
        vocab = spm_bpe.Vocab(vj["tokens"], vj["scores"], vj["types"])
        data = np.load(tok_path)
    else:
        docs = corpus.generate(a.corpus_seed, a.docs)
        vocab = spm_bpe.train(docs, a.vocab)
        ids = []
        for d in docs:
            ids += vocab.encode(d) + [spm_bpe.EOS]
        data = np.asarray(ids, dtype=np.int16)
        np.save(tok_path, data)
        with open(voc_path, "w") as f:
            json.dump(dict(tokens=vocab.tokens, scores=vocab.scores, types=vocab.types), f)
    print("data: %d tokens, vocab %d, %.1fs" % (len(data), len(vocab), time.time() - t0), flush=True)

    cfg = Cfg(vocab=len(vocab), dim=a.dim, layers=a.layers, heads=a.heads, ffn=a.ffn, ctx=max(a.seq, 512))
    cfg.ctx_export = a.ctx
    model = Llama(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    print("model: %.2fM parameters %s" % (n_params / 1e6, json.dumps(cfg.as_dict())), flush=True)

    decay = [p for p in model.parameters() if p.dim() == 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([dict(params=decay, weight_decay=a.wd), dict(params=no_decay, weight_decay=0.0)],
                            lr=a.lr, betas=(0.9, 0.95))
    ckpt = os.path.join(a.work, "ckpt.pt")
    step = 0
    if os.path.exists(ckpt):
        st = torch.load(ckpt)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step = st["step"]
        print("resumed at step %d" % step, flush=True)

    # batches are drawn from a generator seeded per step, so a resumed run
    # sees the same data as an uninterrupted one
    val = torch.from_numpy(data[-200 * (a.seq + 1):].astype(np.int64)).view(200, a.seq + 1)
    train_data = torch.from_numpy(data[: -200 * (a.seq + 1)].astype(np.int64))

    def lr_at(s):
        if s < a.warmup:
            return a.lr * (s + 1) / a.warmup
        f = (s - a.warmup) / max(1, a.steps - a.warmup)
        return a.min_lr + 0.5 * (a.lr - a.min_lr) * (1 + math.cos(math.pi * min(1.0, f)))

    @torch.no_grad()
    def val_loss():
        model.eval()
        ls = [F.cross_entropy(model(val[i:i + 20, :-1]).reshape(-1, cfg.vocab), val[i:i + 20, 1:].reshape(-1)).item()
              for i in range(0, 200, 20)]
        model.train()
        return sum(ls) / len(ls)

    t_train = time.time()
    loss_avg = None
    while step < a.steps and not a.export_only:
        g = torch.Generator().manual_seed(a.seed * 1000003 + step)
        starts = torch.randint(0, len(train_data) - a.seq - 1, (a.batch,), generator=g)
        batch = torch.stack([train_data[s:s + a.seq + 1] for s in starts.tolist()])
        for grp in opt.param_groups:
            grp["lr"] = lr_at(step)
        logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, cfg.vocab), batch[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        loss_avg = loss.item() if loss_avg is None else 0.95 * loss_avg + 0.05 * loss.item()
        if step % 25 == 0:
            el = time.time() - t_train
            print("step %d loss %.3f lr %.2e  %.0f tok/s  %.1f min" %
                  (step, loss_avg, lr_at(step), 25 * a.batch * a.seq / max(1e-9, el), (time.time() - t0) / 60),
                  flush=True)
            t_train = time.time()
        if step % a.ckpt_every == 0 or step == a.steps:
            torch.save(dict(model=model.state_dict(), opt=opt.state_dict(), step=step), ckpt + ".tmp")
            os.replace(ckpt + ".tmp", ckpt)
            if step % (a.ckpt_every * 4) == 0 or step == a.steps:
                print("step %d val loss %.3f" % (step, val_loss()), flush=True)

    model.eval()
    print("final: step %d val loss %.3f, %.1f min" % (step, val_loss(), (time.time() - t0) / 60), flush=True)
    rng = np.random.default_rng(a.seed)
    eos = {spm_bpe.EOS, vocab.index["<|im_end|>"]}
    for prompt in ["What is Kubernetes?", "What is an API key?", "Once upon a time"]:
        ids = vocab.encode(prompt)
        out = generate(model, ids, 64, 1.0, rng, eos)
        print("sample [T=1] %s ->%s" % (prompt, vocab.decode([spm_bpe.BOS] + out) if out else ""), flush=True)
    export(model, vocab, a.out, a.dtype)
    print("wrote %s (%d bytes)" % (a.out, os.path.getsize(a.out)), flush=True)


if __name__ == "__main__":
    main()
