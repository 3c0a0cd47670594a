#!/usr/bin/env python3
"""k8s_sim: what Kubernetes and KServe do with ward's manifests, done locally.

The deploy tests use it to run the real `ward serve` exactly as a pod would:
with the flags written in deploy/, and with a key directory laid out and
updated the way the kubelet does it for a Secret volume.

  project_secret(dir, payload, mode)
      The kubelet's AtomicWriter: files go into a fresh hidden timestamped
      directory, `..data` is swapped to it with rename(2), each key is a
      symlink `key -> ..data/key`, and the old directory is removed. Called
      again with new data it performs the update that follows
      `kubectl patch secret`; with unchanged data it writes nothing.

  kserve_predictor(runtime, isvc)
      The KServe controller's merge of a ServingRuntime's `kserve-container`
      with an InferenceService's `predictor.model`: args concatenated
      (runtime first), other fields merged, `{{.Name}}`/`{{.Namespace}}`
      filled in, the storage-initializer's /mnt/models mount added.

  ward_flags(args)
      `--flag value` / `--flag=value` pairs as a dict, a later flag
      overriding an earlier one (as ward and KServe's arg concatenation expect).

Only the Python standard library is used.
"""

import os
import re
import shutil
import tempfile
import time

# AtomicWriter rejects payload paths longer than this and components longer
# than NAME_MAX (validatePath in kubernetes pkg/volume/util/atomic_writer.go).
MAX_PAYLOAD_PATH = 4096
MAX_PAYLOAD_COMPONENT = 255

DATA_DIR = "..data"
DATA_TMP = "..data_tmp"

# KServe: the container the controller merges into, and where the
# storage-initializer puts the model (pkg/constants).
KSERVE_CONTAINER = "kserve-container"
KSERVE_MODEL_DIR = "/mnt/models"
KSERVE_MODEL_VOLUME = "kserve-provision-location"

# predictor.model fields that describe the model, not the container.
_MODEL_ONLY_FIELDS = {"modelFormat", "runtime", "runtimeVersion", "protocolVersion",
                      "storageUri", "storage"}


class SimError(Exception):
    pass


# ---------------------------------------------------------------- kubelet --

def _validate_key(key):
    if not key or key.startswith("..") or key.startswith("/") or "/" in key:
        raise SimError("invalid Secret key for a flat volume: %r" % key)
    if len(key) > MAX_PAYLOAD_COMPONENT or len(key) > MAX_PAYLOAD_PATH:
        raise SimError("Secret key too long: %d bytes" % len(key))


def current_version(mount_dir):
    """The `..data` target (the timestamped directory name), or None."""
    try:
        return os.readlink(os.path.join(mount_dir, DATA_DIR))
    except FileNotFoundError:
        return None


def _read_payload(mount_dir, version):
    out = {}
    d = os.path.join(mount_dir, version)
    for name in os.listdir(d):
        with open(os.path.join(d, name), "rb") as f:
            out[name] = f.read()
    return out


def project_secret(mount_dir, payload, mode=0o644):
    """Writes payload ({key: bytes or str}) into mount_dir as the kubelet does.

    Returns True if the volume changed, False when the payload equals what is
    already there (the kubelet then writes nothing, so no event fires)."""
    data = {}
    for k, v in payload.items():
        _validate_key(k)
        data[k] = v.encode() if isinstance(v, str) else bytes(v)
    old = current_version(mount_dir)
    if old is not None and _read_payload(mount_dir, old) == data:
        return False
    # "..YYYY_MM_DD_HH_MM_SS." in UTC plus a random suffix, as os.MkdirTemp.
    prefix = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime())
    new = tempfile.mkdtemp(prefix=prefix, dir=mount_dir)
    os.chmod(new, 0o755)
    for k, v in data.items():
        p = os.path.join(new, k)
        with open(p, "wb") as f:
            f.write(v)
        os.chmod(p, mode)
    tmp = os.path.join(mount_dir, DATA_TMP)
    os.symlink(os.path.basename(new), tmp)
    os.rename(tmp, os.path.join(mount_dir, DATA_DIR))      # the atomic swap
    for k in data:                                           # new keys: after the swap
        link = os.path.join(mount_dir, k)
        if not os.path.lexists(link):
            os.symlink(os.path.join(DATA_DIR, k), link)
    if old is not None:
        for k in _read_payload_names(mount_dir, old):
            if k not in data:
                os.unlink(os.path.join(mount_dir, k))
        shutil.rmtree(os.path.join(mount_dir, old))
    return True


def _read_payload_names(mount_dir, version):
    return os.listdir(os.path.join(mount_dir, version))


# ------------------------------------------------------------------ ward --

def ward_flags(args):
    """Parses `--flag value` and `--flag=value`; the last occurrence wins."""
    flags = {}
    i = 0
    args = list(args)
    while i < len(args):
        a = args[i]
        if not a.startswith("--"):
            raise SimError("unexpected positional argument %r" % a)
        if "=" in a:
            k, v = a.split("=", 1)
            flags[k] = v
            i += 1
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            flags[a] = args[i + 1]
            i += 2
        else:
            flags[a] = None
            i += 1
    return flags


def replace_flags(args, replace=None, drop=()):
    """Returns args as `--flag value` pairs with some values replaced and some
    flags dropped; order is kept."""
    replace = replace or {}
    out = []
    for k, v in ward_flags(args).items():
        if k in drop:
            continue
        v = replace.get(k, v)
        out.append(k)
        if v is not None:
            out.append(v)
    return out


# ----------------------------------------------------------------- KServe --

_TEMPLATE = re.compile(r"\{\{\s*\.(\w+)\s*\}\}")


def _fill(value, meta):
    if isinstance(value, str):
        def sub(m):
            field = m.group(1)
            if field not in ("Name", "Namespace"):
                raise SimError("template field .%s is not simulated" % field)
            return str(meta.get(field.lower(), ""))
        out = _TEMPLATE.sub(sub, value)
        if "{{" in out:
            raise SimError("unsupported template in %r" % value)
        return out
    if isinstance(value, list):
        return [_fill(v, meta) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, meta) for k, v in value.items()}
    return value


def _merge_named(base, extra, key):
    out = [dict(x) for x in base or []]
    for item in extra or []:
        for i, cur in enumerate(out):
            if cur.get(key) == item.get(key):
                out[i] = dict(cur, **item)
                break
        else:
            out.append(dict(item))
    return out


def kserve_predictor(runtime, isvc):
    """Returns (container, volumes) of the predictor pod KServe would build."""
    containers = runtime.get("spec", {}).get("containers") or []
    rc = next((c for c in containers if c.get("name") == KSERVE_CONTAINER), None)
    if rc is None:
        raise SimError("failed to find %s in ServingRuntime containers" % KSERVE_CONTAINER)
    pred = isvc.get("spec", {}).get("predictor") or {}
    model = pred.get("model") or {}
    merged = dict(rc)
    for k, v in model.items():
        if k in _MODEL_ONLY_FIELDS:
            continue
        if k == "args":
            merged["args"] = list(rc.get("args") or []) + list(v)
        elif k in ("env", "volumeMounts", "ports"):
            key = {"env": "name", "volumeMounts": "mountPath", "ports": "containerPort"}[k]
            merged[k] = _merge_named(rc.get(k), v, key)
        else:
            merged[k] = v
    merged["name"] = KSERVE_CONTAINER
    volumes = _merge_named(runtime.get("spec", {}).get("volumes"), pred.get("volumes"), "name")
    if model.get("storageUri") or model.get("storage"):
        merged["volumeMounts"] = list(merged.get("volumeMounts") or []) + [
            {"name": KSERVE_MODEL_VOLUME, "mountPath": KSERVE_MODEL_DIR, "readOnly": True}]
        volumes.append({"name": KSERVE_MODEL_VOLUME, "emptyDir": {}})
    meta = isvc.get("metadata", {})
    return _fill(merged, meta), volumes
