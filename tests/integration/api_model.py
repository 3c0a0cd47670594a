"""api_model: a tiny random-weight llama GGUF for the API integration tests.

SentencePiece-style vocabulary: <unk>, <s>, </s>, the 256 byte tokens (so any
text tokenizes), ChatML control tokens, and a few hundred words ("\u2581What",
"\u2581is", ...) so that prompts become short token lists. Random weights:
the text is gibberish but deterministic for a given seed / greedy decoding.
"""
import os
import sys

import numpy as np

SRC = os.environ.get("WARD_SRC", os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tools"))
import gguf_writer  # noqa: E402

WORDS = ("What is Kubernetes ? Hello world the a of and to in it you are helpful assistant who "
         "container pod cluster node service deploy string model secure token bearer key").split()
CHATML = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + " \
         "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
NAME = "ward-api-test"
N_CTX = 256


def vocab(n_extra_words=300):
    toks = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)]
    types = [2, 3, 3] + [6] * 256
    for t in ("<|im_start|>", "<|im_end|>"):
        toks.append(t)
        types.append(3)
    for w in WORDS:
        toks.append("\u2581" + w)
        types.append(1)
    for ch in ["\u2581"] + list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ?.,!"):
        toks.append(ch)
        types.append(1)
    i = 0
    base = len(toks)
    while len(toks) < base + n_extra_words:
        toks.append("\u2581w%d" % i)
        types.append(1)
        i += 1
    scores = [0.0] * len(toks)
    # longer pieces first for SPM merges
    for k, t in enumerate(toks):
        if types[k] == 1:
            scores[k] = -float(k) / 1000.0
    return toks, scores, types


def make_model(path, seed=0, n_embd=32, n_layer=2, n_head=4, n_head_kv=2, n_ff=64, template=CHATML):
    rng = np.random.default_rng(seed)
    hd = n_embd // n_head
    toks, scores, types = vocab()
    n_vocab = len(toks)
    w = gguf_writer.GGUFWriter(path)
    w.add_llama_hparams("llama", NAME, N_CTX, n_embd, n_layer, n_ff, n_head, n_head_kv)
    w.add_spm_vocab(toks, scores, types)
    if template:
        w.add_str("tokenizer.chat_template", template)

    def mat(rows, cols, gain=1.0):
        return (rng.standard_normal((rows, cols)) * gain / np.sqrt(cols)).astype(np.float32)

    def norm(n):
        return (1.0 + 0.2 * rng.standard_normal(n)).astype(np.float32)

    w.add_tensor("token_embd.weight", rng.standard_normal((n_vocab, n_embd)).astype(np.float32))
    w.add_tensor("output_norm.weight", norm(n_embd))
    out = mat(n_vocab, n_embd, 4.0)
    out[2, :] *= 0.0  # EOS rarely wins, so generations run to max_tokens unless told otherwise
    w.add_tensor("output.weight", out)
    for i in range(n_layer):
        p = "blk.%d." % i
        w.add_tensor(p + "attn_norm.weight", norm(n_embd))
        w.add_tensor(p + "attn_q.weight", mat(n_head * hd, n_embd, 2.0))
        w.add_tensor(p + "attn_k.weight", mat(n_head_kv * hd, n_embd, 2.0))
        w.add_tensor(p + "attn_v.weight", mat(n_head_kv * hd, n_embd))
        w.add_tensor(p + "attn_output.weight", mat(n_embd, n_head * hd))
        w.add_tensor(p + "ffn_norm.weight", norm(n_embd))
        w.add_tensor(p + "ffn_gate.weight", mat(n_ff, n_embd))
        w.add_tensor(p + "ffn_up.weight", mat(n_ff, n_embd))
        w.add_tensor(p + "ffn_down.weight", mat(n_embd, n_ff))
    w.write()
    return n_vocab
