#!/usr/bin/env python3
"""kustomize_lite: renders the subset of kustomize that ward's deploy/ uses.

The tests must render deploy/base and deploy/overlays/* without network access
and without a kustomize binary (kustomize is not packaged in Debian 12), so this
implements exactly the fields those kustomization.yaml files use and rejects
every other field instead of silently ignoring it:

  resources   files (multi-document YAML) and directories holding a
              kustomization.yaml, rendered recursively
  namespace   sets metadata.namespace on every namespaced object
  labels      [{pairs, includeSelectors, includeTemplates}] as in kustomize
  images      [{name, newName, newTag, digest}] on pod-spec containers
  patches     strategic-merge patches (a YAML mapping, targeted by its own
              apiVersion/kind/metadata.name) and JSON 6902 patches (a YAML list
              of operations, targeted by `target`), inline or by `path`

Usage: kustomize_lite.py DIR  -> prints the rendered objects as YAML documents.
As a library: render(dir) -> list of dicts.

Requires python3-yaml (Debian). Only local files are read: a remote resource
(URL or git reference) is an error.
"""

import copy
import os
import sys

import yaml

# Nesting limit for directories that include each other, so a cycle is an error
# and not a stack overflow.
MAX_DEPTH = 16

# Kinds that are not namespaced among those a ward deployment could contain;
# every other kind (including unknown CRDs) gets the namespace, as kustomize does.
CLUSTER_SCOPED = {
    "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
    "PersistentVolume", "StorageClass", "PriorityClass", "ClusterServingRuntime",
    "ClusterStorageContainer", "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration", "SecurityContextConstraints",
}

KNOWN_FIELDS = {"apiVersion", "kind", "resources", "namespace", "labels", "images", "patches"}

# Strategic-merge keys for the lists that ward's manifests patch. Lists not named
# here are replaced wholesale, which is also what kustomize does for args etc.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
}

# Where pod templates sit, for labels(includeTemplates) and images.
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


class KustomizeError(Exception):
    pass


def _load_docs(path):
    with open(path, "r", encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    for d in docs:
        if not isinstance(d, dict) or "kind" not in d or "apiVersion" not in d:
            raise KustomizeError("%s: every document must be an object with apiVersion and kind" % path)
    return docs


def _kustomization(dirpath):
    for name in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        p = os.path.join(dirpath, name)
        if os.path.isfile(p):
            with open(p, "r", encoding="utf-8") as f:
                k = yaml.safe_load(f) or {}
            if not isinstance(k, dict):
                raise KustomizeError("%s: not a mapping" % p)
            unknown = set(k) - KNOWN_FIELDS
            if unknown:
                raise KustomizeError("%s: fields not supported by kustomize_lite: %s"
                                     % (p, ", ".join(sorted(unknown))))
            return k
    raise KustomizeError("%s: no kustomization.yaml" % dirpath)


def _gvk(obj):
    api = obj.get("apiVersion", "")
    group, _, version = api.rpartition("/")
    return group, version, obj.get("kind")


def _set_labels(meta_parent, key, pairs):
    m = meta_parent.setdefault(key, {})
    if m is None:
        m = meta_parent[key] = {}
    m.update(pairs)


def _pod_template(obj):
    if obj.get("kind") in WORKLOAD_KINDS:
        return obj.get("spec", {}).get("template")
    if obj.get("kind") == "CronJob":
        return obj.get("spec", {}).get("jobTemplate", {}).get("spec", {}).get("template")
    return None


def _apply_labels(objs, entry):
    pairs = entry.get("pairs") or {}
    sel = bool(entry.get("includeSelectors", False))
    tmpl = bool(entry.get("includeTemplates", False)) or sel
    for o in objs:
        _set_labels(o.setdefault("metadata", {}), "labels", pairs)
        t = _pod_template(o)
        if tmpl and t is not None:
            _set_labels(t.setdefault("metadata", {}), "labels", pairs)
        if sel:
            kind = o.get("kind")
            spec = o.setdefault("spec", {})
            if kind == "Service":
                _set_labels(spec, "selector", pairs)
            elif kind in WORKLOAD_KINDS:
                _set_labels(spec.setdefault("selector", {}), "matchLabels", pairs)
            elif kind == "NetworkPolicy":
                _set_labels(spec.setdefault("podSelector", {}), "matchLabels", pairs)


def _container_lists(obj):
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return []
    out = [spec.get("containers"), spec.get("initContainers")]
    t = _pod_template(obj)
    if t is not None:
        ts = t.get("spec", {})
        out += [ts.get("containers"), ts.get("initContainers")]
    return [l for l in out if isinstance(l, list)]


def _split_image(image):
    """'reg/name:tag@sha256:..' -> (name, tag or None, digest or None)."""
    digest = None
    if "@" in image:
        image, digest = image.split("@", 1)
    tag = None
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        image, tag = image[:colon], image[colon + 1:]
    return image, tag, digest


def _apply_images(objs, images):
    for o in objs:
        for lst in _container_lists(o):
            for c in lst:
                if not isinstance(c, dict) or "image" not in c:
                    continue
                name, tag, digest = _split_image(c["image"])
                for im in images:
                    if im.get("name") != name:
                        continue
                    new = im.get("newName", name)
                    if im.get("digest"):
                        c["image"] = "%s@%s" % (new, im["digest"])
                    elif im.get("newTag") is not None:
                        c["image"] = "%s:%s" % (new, im["newTag"])
                    elif digest:
                        c["image"] = "%s@%s" % (new, digest)
                    elif tag:
                        c["image"] = "%s:%s" % (new, tag)
                    else:
                        c["image"] = new
                    break


def strategic_merge(base, patch):
    """Merges patch into base (both JSON-like), returning the result. Mappings
    merge recursively, a null value deletes a key, lists named in MERGE_KEYS
    merge element-wise by their key, other lists are replaced."""
    if not isinstance(base, dict) or not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(base)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        elif k in MERGE_KEYS and isinstance(v, list) and isinstance(out.get(k), list):
            key = MERGE_KEYS[k]
            merged = list(out[k])
            for item in v:
                idx = None
                if isinstance(item, dict) and key in item:
                    for i, cur in enumerate(merged):
                        if isinstance(cur, dict) and cur.get(key) == item[key]:
                            idx = i
                            break
                if idx is None:
                    merged.append(copy.deepcopy(item))
                else:
                    merged[idx] = strategic_merge(merged[idx], item)
            out[k] = merged
        else:
            out[k] = strategic_merge(out.get(k), v) if isinstance(v, dict) else copy.deepcopy(v)
    return out


def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise KustomizeError("JSON pointer must start with '/': %r" % path)
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc, parts):
    cur = doc
    for p in parts:
        if isinstance(cur, list):
            try:
                cur = cur[int(p)]
            except (ValueError, IndexError):
                raise KustomizeError("JSON pointer element %r not found" % p)
        elif isinstance(cur, dict):
            if p not in cur:
                raise KustomizeError("JSON pointer element %r not found" % p)
            cur = cur[p]
        else:
            raise KustomizeError("JSON pointer goes through a scalar at %r" % p)
    return cur


def json6902(doc, ops):
    """Applies RFC 6902 add/remove/replace/test operations to doc in place."""
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise KustomizeError("JSON 6902 operation needs op and path: %r" % (op,))
        parts = _pointer(op["path"])
        if not parts:
            raise KustomizeError("JSON 6902 on the whole document is not supported")
        parent = _walk(doc, parts[:-1])
        last = parts[-1]
        kind = op["op"]
        if kind == "test":
            if _walk(doc, parts) != op.get("value"):
                raise KustomizeError("JSON 6902 test failed at %s" % op["path"])
            continue
        if isinstance(parent, list):
            if last == "-" and kind == "add":
                parent.append(copy.deepcopy(op["value"]))
                continue
            try:
                i = int(last)
            except ValueError:
                raise KustomizeError("bad list index %r" % last)
            if not 0 <= i <= len(parent) - (0 if kind == "add" else 1):
                raise KustomizeError("list index %d out of range at %s" % (i, op["path"]))
            if kind == "add":
                parent.insert(i, copy.deepcopy(op["value"]))
            elif kind == "remove":
                del parent[i]
            elif kind == "replace":
                parent[i] = copy.deepcopy(op["value"])
            else:
                raise KustomizeError("unsupported JSON 6902 op %r" % kind)
        elif isinstance(parent, dict):
            if kind in ("remove", "replace") and last not in parent:
                raise KustomizeError("JSON 6902 %s: %s does not exist" % (kind, op["path"]))
            if kind in ("add", "replace"):
                parent[last] = copy.deepcopy(op["value"])
            elif kind == "remove":
                del parent[last]
            else:
                raise KustomizeError("unsupported JSON 6902 op %r" % kind)
        else:
            raise KustomizeError("JSON 6902 parent of %s is a scalar" % op["path"])


def _matches(obj, target):
    group, version, kind = _gvk(obj)
    meta = obj.get("metadata", {})
    checks = [("group", group), ("version", version), ("kind", kind),
              ("name", meta.get("name")), ("namespace", meta.get("namespace"))]
    for field, have in checks:
        if field in target and target[field] != have:
            return False
    return True


def _apply_patches(objs, patches, dirpath):
    for p in patches:
        if "path" in p:
            with open(os.path.join(dirpath, p["path"]), "r", encoding="utf-8") as f:
                text = f.read()
        elif "patch" in p:
            text = p["patch"]
        else:
            raise KustomizeError("%s: a patch needs `path` or `patch`" % dirpath)
        body = yaml.safe_load(text)
        target = p.get("target")
        if isinstance(body, list):
            if not target:
                raise KustomizeError("%s: a JSON 6902 patch needs a target" % dirpath)
            hit = [o for o in objs if _matches(o, target)]
            for o in hit:
                json6902(o, body)
        elif isinstance(body, dict):
            if not target:
                g, v, k = _gvk(body)
                target = {"kind": k, "name": body.get("metadata", {}).get("name")}
            hit = [o for o in objs if _matches(o, target)]
            for i, o in enumerate(objs):
                if o in hit:
                    objs[i] = strategic_merge(o, body)
        else:
            raise KustomizeError("%s: a patch must be a mapping or a list" % dirpath)
        if not hit:
            raise KustomizeError("%s: patch matched no object (target %r)" % (dirpath, target))


def render(dirpath, _depth=0):
    """Renders the kustomization in dirpath; returns a list of objects (dicts)."""
    if _depth > MAX_DEPTH:
        raise KustomizeError("%s: resources nested deeper than %d (a cycle?)" % (dirpath, MAX_DEPTH))
    k = _kustomization(dirpath)
    objs = []
    for r in k.get("resources") or []:
        if "://" in r or r.startswith("git@") or r.startswith("github.com/"):
            raise KustomizeError("%s: remote resource %r is not allowed" % (dirpath, r))
        p = os.path.normpath(os.path.join(dirpath, r))
        if os.path.isdir(p):
            objs.extend(render(p, _depth + 1))
        elif os.path.isfile(p):
            objs.extend(_load_docs(p))
        else:
            raise KustomizeError("%s: resource %r not found" % (dirpath, r))
    seen = set()
    for o in objs:
        g, _, kind = _gvk(o)
        key = (g, kind, o.get("metadata", {}).get("namespace"), o.get("metadata", {}).get("name"))
        if key in seen:
            raise KustomizeError("%s: duplicate object %r" % (dirpath, key))
        seen.add(key)
    _apply_patches(objs, k.get("patches") or [], dirpath)
    ns = k.get("namespace")
    if ns:
        for o in objs:
            if o.get("kind") not in CLUSTER_SCOPED:
                o.setdefault("metadata", {})["namespace"] = ns
    for entry in k.get("labels") or []:
        _apply_labels(objs, entry)
    if k.get("images"):
        _apply_images(objs, k["images"])
    return objs


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: kustomize_lite.py DIR\n")
        return 2
    try:
        objs = render(argv[1])
    except (KustomizeError, OSError, yaml.YAMLError) as e:
        sys.stderr.write("kustomize_lite: %s\n" % e)
        return 1
    sys.stdout.write(yaml.safe_dump_all(objs, sort_keys=True, default_flow_style=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
