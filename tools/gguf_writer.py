#!/usr/bin/python3
"""ward's own GGUF v3 writer (and a small reader for tests), stdlib + numpy.

Written from the GGUF format description (shared/reference/engine-formats.md
section 1); layout: magic "GGUF", u32 version 3, u64 tensor count, u64 KV
count, KVs, tensor infos, zero padding to the alignment, tensor data (each
tensor padded to the alignment). Little-endian throughout.

    w = GGUFWriter("model.gguf")
    w.add_str("general.architecture", "llama")
    w.add_u32("llama.block_count", 2)
    w.add_tensor("token_embd.weight", emb)            # float32 [n_vocab, n_embd]
    w.add_tensor("blk.0.attn_q.weight", wq, type="Q8_0")
    w.write()

A numpy array of shape [rows, cols] is written with ne = (cols, rows), i.e.
ne[0] is the fastest-varying (last numpy) axis. Q8_0 and Q4_0 are quantized
here with the same float32 arithmetic as ward's C reference quantizer
(src/engine/quant.c), so both produce identical bytes.

Command line: gguf_writer.py dump FILE   (prints KVs and tensor infos)
"""
import struct
import sys

import numpy as np

GGUF_MAGIC = b"GGUF"
GGUF_VERSION = 3
DEFAULT_ALIGNMENT = 32
MAX_NAME = 64  # tensor names are < 64 bytes (ggml's GGML_MAX_NAME includes the NUL)
MAX_DIMS = 4

# GGUF metadata value types
T_UINT8, T_INT8, T_UINT16, T_INT16, T_UINT32, T_INT32, T_FLOAT32, T_BOOL, \
    T_STRING, T_ARRAY, T_UINT64, T_INT64, T_FLOAT64 = range(13)
_SCALAR_FMT = {T_UINT8: "<B", T_INT8: "<b", T_UINT16: "<H", T_INT16: "<h", T_UINT32: "<I",
               T_INT32: "<i", T_FLOAT32: "<f", T_BOOL: "<?", T_UINT64: "<Q", T_INT64: "<q",
               T_FLOAT64: "<d"}

# ggml tensor types: name -> (id, elements per block, bytes per block)
TENSOR_TYPES = {
    "F32": (0, 1, 4), "F16": (1, 1, 2), "Q4_0": (2, 32, 18), "Q4_1": (3, 32, 20),
    "Q5_0": (6, 32, 22), "Q5_1": (7, 32, 24), "Q8_0": (8, 32, 34), "Q8_1": (9, 32, 36),
    "Q2_K": (10, 256, 84), "Q3_K": (11, 256, 110), "Q4_K": (12, 256, 144),
    "Q5_K": (13, 256, 176), "Q6_K": (14, 256, 210), "Q8_K": (15, 256, 292), "BF16": (30, 1, 2),
}
TYPE_NAMES = {v[0]: k for k, v in TENSOR_TYPES.items()}
WRITABLE_TYPES = ("F32", "F16", "Q8_0", "Q4_0")


def _align(x, a):
    return x + (a - x % a) % a


def _gguf_str(s):
    b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    return struct.pack("<Q", len(b)) + b


def _f32_blocks(arr):
    x = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.all(np.isfinite(x)):
        raise ValueError("cannot quantize non-finite values")
    if x.size % 32:
        raise ValueError("row length must be a multiple of 32 to quantize")
    return x.reshape(-1, 32)


def _roundf(v):
    """C's roundf (half away from zero), exactly, for float32 arrays."""
    a = np.abs(v)
    f = np.floor(a)
    r = f + (a - f >= np.float32(0.5)).astype(np.float32)
    return np.copysign(r, v)


def _inv(d):
    out = np.zeros_like(d)
    np.divide(np.float32(1.0), d, out=out, where=d != 0)
    return out


def quantize_q8_0(arr):
    """float array (size a multiple of 32) -> Q8_0 bytes: per block f16 d, i8 qs[32]."""
    x = _f32_blocks(arr)
    amax = np.abs(x).max(axis=1)
    d = amax / np.float32(127.0)
    q = np.clip(_roundf(x * _inv(d)[:, None]), -127, 127).astype(np.int8)
    blk = np.zeros(x.shape[0], dtype=np.dtype([("d", "<u2"), ("qs", "i1", 32)]))
    blk["d"] = d.astype(np.float16).view(np.uint16)
    blk["qs"] = q
    return blk.tobytes()


def quantize_q4_0(arr):
    """float array -> Q4_0 bytes: f16 d = max/-8 (max: signed value of largest
    magnitude), q = min(15, trunc(x/d + 8.5)); low nibbles hold elements 0..15."""
    x = _f32_blocks(arr)
    ax = np.abs(x)
    idx = np.argmax(ax, axis=1)
    mx = x[np.arange(x.shape[0]), idx]
    mx = np.where(ax.max(axis=1) == 0, np.float32(0.0), mx).astype(np.float32)
    d = mx / np.float32(-8.0)
    v = x * _inv(d)[:, None]
    v = v + np.float32(8.5)
    q = np.clip(np.trunc(v), 0, 15).astype(np.uint8)
    blk = np.zeros(x.shape[0], dtype=np.dtype([("d", "<u2"), ("qs", "u1", 16)]))
    blk["d"] = d.astype(np.float16).view(np.uint16)
    blk["qs"] = q[:, :16] | (q[:, 16:] << 4)
    return blk.tobytes()


def dequantize(type_name, data, n):
    """bytes of n elements of a type (F32, F16, BF16, Q8_0, Q4_0) -> float32 array."""
    buf = np.frombuffer(data, dtype=np.uint8)
    if type_name == "F32":
        return buf.view("<f4")[:n].astype(np.float32)
    if type_name == "F16":
        return buf.view("<f2")[:n].astype(np.float32)
    if type_name == "BF16":
        return (buf.view("<u2")[:n].astype(np.uint32) << 16).view(np.float32)
    nb = n // 32
    if type_name == "Q8_0":
        blk = buf[:nb * 34].view(np.dtype([("d", "<u2"), ("qs", "i1", 32)]))
        d = blk["d"].view(np.float16).astype(np.float32)
        return (blk["qs"].astype(np.float32) * d[:, None]).reshape(-1)
    if type_name == "Q4_0":
        blk = buf[:nb * 18].view(np.dtype([("d", "<u2"), ("qs", "u1", 16)]))
        d = blk["d"].view(np.float16).astype(np.float32)
        q = np.concatenate([blk["qs"] & 0xF, blk["qs"] >> 4], axis=1).astype(np.float32) - 8
        return (q * d[:, None]).reshape(-1)
    raise ValueError("dequantize: unsupported type " + type_name)


class GGUFWriter:
    """Collects KVs and tensors, then write() produces the file in one go.
    Keys must be unique; general.alignment (u32, power of two >= 8) if added
    sets the alignment."""

    def __init__(self, path):
        self.path = path
        self.kvs = []          # (key, type, encoded value bytes)
        self.keys = set()
        self.tensors = []      # (name, type id, ne tuple, data bytes)
        self.names = set()
        self.alignment = DEFAULT_ALIGNMENT

    # -- metadata -----------------------------------------------------------
    def _add(self, key, vtype, payload):
        if not key or key in self.keys:
            raise ValueError("empty or duplicate key %r" % key)
        self.keys.add(key)
        self.kvs.append((key, vtype, payload))

    def _scalar(self, key, vtype, v):
        self._add(key, vtype, struct.pack(_SCALAR_FMT[vtype], v))

    def add_u8(self, key, v): self._scalar(key, T_UINT8, v)
    def add_i8(self, key, v): self._scalar(key, T_INT8, v)
    def add_u16(self, key, v): self._scalar(key, T_UINT16, v)
    def add_i16(self, key, v): self._scalar(key, T_INT16, v)
    def add_i32(self, key, v): self._scalar(key, T_INT32, v)
    def add_u64(self, key, v): self._scalar(key, T_UINT64, v)
    def add_i64(self, key, v): self._scalar(key, T_INT64, v)
    def add_f32(self, key, v): self._scalar(key, T_FLOAT32, v)
    def add_f64(self, key, v): self._scalar(key, T_FLOAT64, v)
    def add_bool(self, key, v): self._scalar(key, T_BOOL, bool(v))

    def add_u32(self, key, v):
        if key == "general.alignment":
            if v < 8 or v & (v - 1):
                raise ValueError("general.alignment must be a power of two >= 8")
            self.alignment = v
        self._scalar(key, T_UINT32, v)

    def add_str(self, key, v):
        self._add(key, T_STRING, _gguf_str(v))

    def add_arr(self, key, elem_type, values):
        if elem_type in (T_ARRAY,):
            raise ValueError("nested arrays are not allowed")
        vals = list(values)
        head = struct.pack("<IQ", elem_type, len(vals))
        if elem_type == T_STRING:
            body = b"".join(_gguf_str(s) for s in vals)
        else:
            fmt = _SCALAR_FMT[elem_type]
            body = np.asarray(vals, dtype=np.dtype(fmt)).tobytes() if vals else b""
        self._add(key, T_ARRAY, head + body)

    def add_llama_hparams(self, arch, name, n_ctx, n_embd, n_layer, n_ff, n_head, n_head_kv, eps=1e-5,
                          rope_base=10000.0):
        """The architecture, name and hyper-parameters of a llama-family
        model (llama, qwen2), under the keys ward and llama.cpp read."""
        self.add_str("general.architecture", arch)
        self.add_str("general.name", name)
        for k, v in (("context_length", n_ctx), ("embedding_length", n_embd), ("block_count", n_layer),
                     ("feed_forward_length", n_ff), ("attention.head_count", n_head),
                     ("attention.head_count_kv", n_head_kv)):
            self.add_u32(arch + "." + k, v)
        self.add_f32(arch + ".attention.layer_norm_rms_epsilon", eps)
        self.add_f32(arch + ".rope.freq_base", rope_base)

    def add_spm_vocab(self, tokens, scores, types, bos=1, eos=2):
        """A SentencePiece-style ("llama") vocabulary and its BOS/EOS ids."""
        self.add_str("tokenizer.ggml.model", "llama")
        self.add_arr_str("tokenizer.ggml.tokens", tokens)
        self.add_arr_f32("tokenizer.ggml.scores", scores)
        self.add_arr_i32("tokenizer.ggml.token_type", types)
        self.add_u32("tokenizer.ggml.bos_token_id", bos)
        self.add_u32("tokenizer.ggml.eos_token_id", eos)

    def add_arr_str(self, key, values): self.add_arr(key, T_STRING, values)
    def add_arr_f32(self, key, values): self.add_arr(key, T_FLOAT32, values)
    def add_arr_i32(self, key, values): self.add_arr(key, T_INT32, values)

    # -- tensors ------------------------------------------------------------
    def add_tensor(self, name, arr, type="F32"):
        """numpy array [.., rows, cols] -> tensor with ne = reversed shape."""
        if type not in WRITABLE_TYPES:
            raise ValueError("add_tensor: type must be one of %s" % (WRITABLE_TYPES,))
        nb = name.encode("utf-8")
        if not nb or len(nb) >= MAX_NAME or name in self.names:
            raise ValueError("bad or duplicate tensor name %r" % name)
        a = np.asarray(arr)
        if a.ndim < 1 or a.ndim > MAX_DIMS or a.size == 0:
            raise ValueError("tensor %r: need 1..4 non-empty dims" % name)
        ne = tuple(int(s) for s in reversed(a.shape))
        if type == "F32":
            data = np.ascontiguousarray(a, dtype="<f4").tobytes()
        elif type == "F16":
            data = np.ascontiguousarray(a, dtype="<f2").tobytes()
        else:
            if ne[0] % 32:
                raise ValueError("tensor %r: row length %d not a multiple of 32" % (name, ne[0]))
            data = quantize_q8_0(a) if type == "Q8_0" else quantize_q4_0(a)
        self.names.add(name)
        self.tensors.append((name, TENSOR_TYPES[type][0], ne, data))

    def add_tensor_raw(self, name, type_name, ne, data):
        """Already-encoded tensor bytes (any known type), ne[0] fastest."""
        tid, be, bb = TENSOR_TYPES[type_name]
        n = int(np.prod(ne))
        if ne[0] % be or len(data) != n // be * bb or name in self.names:
            raise ValueError("add_tensor_raw: bad size, dims or duplicate name for %r" % name)
        self.names.add(name)
        self.tensors.append((name, tid, tuple(int(x) for x in ne), bytes(data)))

    # -- output -------------------------------------------------------------
    def to_bytes(self):
        a = self.alignment
        out = [GGUF_MAGIC, struct.pack("<IQQ", GGUF_VERSION, len(self.tensors), len(self.kvs))]
        for key, vtype, payload in self.kvs:
            out += [_gguf_str(key), struct.pack("<I", vtype), payload]
        off = 0
        offsets = []
        for name, tid, ne, data in self.tensors:
            offsets.append(off)
            out += [_gguf_str(name), struct.pack("<I", len(ne)), struct.pack("<%dQ" % len(ne), *ne),
                    struct.pack("<IQ", tid, off)]
            off = _align(off + len(data), a)
        head = b"".join(out)
        parts = [head, b"\0" * (_align(len(head), a) - len(head))]
        for (name, tid, ne, data), o in zip(self.tensors, offsets):
            parts += [data, b"\0" * (_align(len(data), a) - len(data))]
        return b"".join(parts)

    def write(self):
        with open(self.path, "wb") as f:
            f.write(self.to_bytes())


def read_gguf(path_or_bytes):
    """Minimal reader for tests: returns (kvs, tensors, version, alignment);
    kvs maps key -> (type, python value), tensors maps name ->
    dict(type=name, ne=tuple, offset=absolute, nbytes, data=bytes)."""
    if isinstance(path_or_bytes, (bytes, bytearray)):
        b = bytes(path_or_bytes)
    else:
        with open(path_or_bytes, "rb") as f:
            b = f.read()
    pos = 0

    def take(n):
        nonlocal pos
        if pos + n > len(b):
            raise ValueError("truncated at %d" % pos)
        pos += n
        return b[pos - n:pos]

    def rd(fmt):
        return struct.unpack(fmt, take(struct.calcsize(fmt)))[0]

    def rstr():
        return take(rd("<Q")).decode("utf-8", "replace")

    def rval(t):
        if t == T_STRING:
            return rstr()
        if t == T_ARRAY:
            et, n = rd("<I"), rd("<Q")
            return [rval(et) for _ in range(n)]
        return rd(_SCALAR_FMT[t])

    if take(4) != GGUF_MAGIC:
        raise ValueError("bad magic")
    version, nt, nkv = rd("<I"), rd("<Q"), rd("<Q")
    kvs = {}
    for _ in range(nkv):
        k = rstr()
        t = rd("<I")
        kvs[k] = (t, rval(t))
    align = kvs.get("general.alignment", (T_UINT32, DEFAULT_ALIGNMENT))[1]
    infos = []
    for _ in range(nt):
        name = rstr()
        nd = rd("<I")
        ne = tuple(rd("<Q") for _ in range(nd))
        tid, off = rd("<I"), rd("<Q")
        infos.append((name, ne, tid, off))
    start = _align(pos, align)
    tensors = {}
    for name, ne, tid, off in infos:
        tname = TYPE_NAMES.get(tid, "unknown(%d)" % tid)
        _, be, bb = TENSOR_TYPES.get(tname, (tid, 1, 1))
        nbytes = int(np.prod(ne)) // be * bb
        o = start + off
        tensors[name] = dict(type=tname, ne=ne, offset=o, nbytes=nbytes, data=b[o:o + nbytes])
    return kvs, tensors, version, align


def _dump(path):
    kvs, tensors, version, align = read_gguf(path)
    print("version %d, alignment %d, %d KVs, %d tensors" % (version, align, len(kvs), len(tensors)))
    for k, (t, v) in kvs.items():
        s = repr(v)
        print("  %s = %s" % (k, s if len(s) < 80 else s[:77] + "..."))
    for name, t in tensors.items():
        print("  %-32s %-5s %s" % (name, t["type"], list(t["ne"])))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "dump":
        _dump(sys.argv[2])
    else:
        print(__doc__)
        sys.exit(2)
