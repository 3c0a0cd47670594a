#!/usr/bin/python3
"""SentencePiece-style BPE vocabulary for ward's default model (stdlib only).

Training: byte-pair merges learned over space-prefixed words ("▁word"), as
SentencePiece's BPE does; the vocabulary is laid out like a llama SPM model:
  0 <unk> (type 2), 1 <s>, 2 </s> (type 3), 3..258 <0x00>..<0xFF> (type 6),
  then merged pieces in merge order (score = -rank), then single characters
  (scores below every merge), then the ChatML markers (type 3).

Encoding (encode()) follows llama.cpp's SPM algorithm exactly (see
shared/reference/engine-formats.md §3.2): text is split around control
tokens, a space is prepended to each text fragment that is first or follows
a control token, spaces become ▁, then adjacent pairs whose concatenation is
in the vocabulary are merged best score first (ties: leftmost), and anything
left that is not a token falls back to <0xNN> byte tokens. Training data is
tokenized with this same function, so the model sees exactly the token
sequences ward's engine will produce.
"""
import collections
import heapq
import re

SPACE = "\u2581"
UNK, BOS, EOS = 0, 1, 2
N_BYTES = 256
BYTE0 = 3  # id of <0x00>
TYPE_NORMAL, TYPE_UNKNOWN, TYPE_CONTROL, TYPE_BYTE = 1, 2, 3, 6
CHAT_SPECIALS = ["<|im_start|>", "<|im_end|>"]

# Words are "▁" followed by non-space characters, or runs without ▁; newlines
# stand alone. No piece ever holds a newline or a non-initial ▁, which is
# what makes per-word encoding (and its cache) equal to whole-text encoding.
_WORD = re.compile("%s[^%s\n]*|[^%s\n]+|\n" % (SPACE, SPACE, SPACE))


class Vocab:
    def __init__(self, tokens, scores, types):
        self.tokens, self.scores, self.types = tokens, scores, types
        self.index = {t: i for i, t in enumerate(tokens)}
        self.specials = sorted([t for t, ty in zip(tokens, types) if ty == TYPE_CONTROL and t not in ("<s>", "</s>")],
                               key=len, reverse=True)
        self._cache = {}

    def __len__(self):
        return len(self.tokens)

    # -- encoding (llama.cpp SPM) ------------------------------------------
    def _encode_word(self, word):
        ids = self._cache.get(word)
        if ids is not None:
            return ids
        sym = list(word)  # code points
        if len(sym) == 0:
            return []
        alive = [True] * len(sym)
        nxt = list(range(1, len(sym) + 1))
        prv = list(range(-1, len(sym) - 1))
        heap = []

        def push(left, right):
            if left < 0 or right >= len(sym):
                return
            t = self.index.get(sym[left] + sym[right])
            if t is not None:
                # max score first, then smallest left index
                heapq.heappush(heap, (-self.scores[t], left, right, sym[left] + sym[right]))

        for i in range(len(sym) - 1):
            push(i, i + 1)
        while heap:
            _, left, right, text = heapq.heappop(heap)
            if not alive[left] or not alive[right] or nxt[left] != right or sym[left] + sym[right] != text:
                continue  # stale
            sym[left] = text
            alive[right] = False
            nxt[left] = nxt[right]
            if nxt[right] < len(sym):
                prv[nxt[right]] = left
            push(prv[left], left)
            push(left, nxt[left])
        ids = []
        i = 0
        while i < len(sym):
            t = self.index.get(sym[i])
            if t is not None:
                ids.append(t)
            else:
                ids.extend(BYTE0 + b for b in sym[i].encode("utf-8"))
            i = nxt[i]
        self._cache[word] = ids
        return ids

    def _encode_text(self, text):
        ids = []
        for w in _WORD.findall(text.replace(" ", SPACE)):
            ids.extend(self._encode_word(w))
        return ids

    def encode(self, text, bos=True):
        """Token ids for text; control-token strings in text become those tokens."""
        out = [BOS] if bos else []
        pos, prev_special = 0, True
        pat = re.compile("|".join(re.escape(s) for s in self.specials)) if self.specials else None
        while pos <= len(text):
            m = pat.search(text, pos) if pat else None
            end = m.start() if m else len(text)
            frag = text[pos:end]
            if frag:
                out.extend(self._encode_text((" " if prev_special else "") + frag))
                prev_special = False
            if not m:
                break
            out.append(self.index[m.group(0)])
            prev_special = True
            pos = m.end()
        return out

    def decode(self, ids):
        bs = bytearray()
        for i in ids:
            ty = self.types[i]
            if ty == TYPE_BYTE:
                bs.append(i - BYTE0)
            elif ty == TYPE_NORMAL:
                bs += self.tokens[i].replace(SPACE, " ").encode("utf-8")
        s = bs.decode("utf-8", errors="replace")
        return s[1:] if s.startswith(" ") else s


def train(texts, vocab_size):
    """Learns merges from texts (strings with ChatML markers) up to vocab_size."""
    words = collections.Counter()
    chars = set(chr(c) for c in range(0x21, 0x7F))  # printable ASCII always present
    chars.add(SPACE)
    spec = re.compile("|".join(re.escape(s) for s in CHAT_SPECIALS))
    for t in texts:
        for frag in spec.split(t):
            for w in _WORD.findall((" " + frag).replace(" ", SPACE)):
                if w != "\n":
                    words[w] += 1
                    chars.update(w)
    n_fixed = 3 + N_BYTES + len(chars) + len(CHAT_SPECIALS)
    n_merges = vocab_size - n_fixed
    if n_merges < 0:
        raise ValueError("vocab_size %d too small (needs %d fixed pieces)" % (vocab_size, n_fixed))
    # words as symbol lists; pair counts updated incrementally
    seqs = [list(w) for w in words]
    freq = [words[w] for w in words]
    pairs = collections.Counter()
    where = collections.defaultdict(set)
    for i, s in enumerate(seqs):
        for a, b in zip(s, s[1:]):
            pairs[(a, b)] += freq[i]
            where[(a, b)].add(i)
    merges = []
    seen = set(chars)
    while len(merges) < n_merges and pairs:
        (a, b), c = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        if c < 2:
            break
        new = a + b
        for i in list(where[(a, b)]):
            s, f = seqs[i], freq[i]
            for x, y in zip(s, s[1:]):
                pairs[(x, y)] -= f
                where[(x, y)].discard(i)
            j, out = 0, []
            while j < len(s):
                if j + 1 < len(s) and s[j] == a and s[j + 1] == b:
                    out.append(new)
                    j += 2
                else:
                    out.append(s[j])
                    j += 1
            seqs[i] = out
            for x, y in zip(out, out[1:]):
                pairs[(x, y)] += f
                where[(x, y)].add(i)
        pairs = collections.Counter({k: v for k, v in pairs.items() if v > 0})
        if new not in seen:
            merges.append(new)
            seen.add(new)
    tokens = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(N_BYTES)]
    types = [TYPE_UNKNOWN, TYPE_CONTROL, TYPE_CONTROL] + [TYPE_BYTE] * N_BYTES
    scores = [0.0] * len(tokens)
    for r, m in enumerate(merges):
        tokens.append(m); types.append(TYPE_NORMAL); scores.append(-float(r))
    for k, ch in enumerate(sorted(chars)):
        tokens.append(ch); types.append(TYPE_NORMAL); scores.append(-float(len(merges) + k))
    for s in CHAT_SPECIALS:
        tokens.append(s); types.append(TYPE_CONTROL); scores.append(0.0)
    return Vocab(tokens, scores, types)
