#!/usr/bin/env python3
"""Renders deploy/base and deploy/overlays/* and checks every object.

Rendering uses tools/kustomize_lite.py (no network, no kustomize binary); when
`kubectl kustomize` works on this machine its output must be identical. Checks
cover what the API server and kubelet would reject or what would silently
break ward: required fields, image, ports, probe paths, the hardening fields,
resources, that Services, NetworkPolicies and Routes select what exists, and
that the key Secret is mounted as a whole directory at the path given to
`--api-keys-dir`. A few deliberately broken copies prove the checks bite, and
the renderer's own error paths are exercised on malformed kustomizations.
"""

import copy
import os
import re
import shutil
import subprocess
import sys
import tempfile

SRC = os.environ.get("WARD_SRC") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tools"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

try:
    import yaml
except ImportError:
    print("SKIP: python3-yaml is not installed (scripts/deps.sh installs it)")
    sys.exit(77)

import k8s_sim  # noqa: E402
import kustomize_lite  # noqa: E402
from wardlib import Check  # noqa: E402

BASE = os.path.join(SRC, "deploy", "base")
OPENSHIFT = os.path.join(SRC, "deploy", "overlays", "openshift")
KSERVE = os.path.join(SRC, "deploy", "overlays", "kserve")
IMAGE = "quay.io/ward/ward:0.1.0"
PORT = 8080
REALM = "kubernetes-user"
LIVE, READY = "/v2/health/live", "/v2/health/ready"
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

c = Check("test_deploy_manifests")


def find(objs, kind, name=None):
    hits = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    return hits[0] if len(hits) == 1 else None


_UNITS = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
          "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40}


def quantity(q):
    """Kubernetes resource quantity -> float; ValueError when malformed."""
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?", str(q))
    if not m:
        raise ValueError("bad quantity %r" % q)
    return float(m.group(1)) * _UNITS[m.group(2) or ""]


# ------------------------------------------------------------------ checks --
# Each returns a list of problems (strings) so the negative cases below can
# assert that a broken object is reported.

def check_meta(o, namespaced=True):
    p = []
    for f in ("apiVersion", "kind"):
        if not o.get(f):
            p.append("%s missing" % f)
    name = o.get("metadata", {}).get("name")
    if not name or not NAME_RE.match(name) or len(name) > 253:
        p.append("%s: bad metadata.name %r" % (o.get("kind"), name))
    if namespaced and not o.get("metadata", {}).get("namespace"):
        p.append("%s/%s: no namespace" % (o.get("kind"), name))
    return p


def check_container(ctr, pod_sc, volumes, secrets, want_port=PORT, need_resources=True):
    """Container-level checks shared by the Deployment and the KServe predictor."""
    p = []
    where = "container %s" % ctr.get("name")
    if not ctr.get("image"):
        p.append(where + ": no image")
    ports = ctr.get("ports") or []
    if not ports or ports[0].get("containerPort") != want_port:
        p.append(where + ": first containerPort must be %d" % want_port)
    port_names = {pt.get("name") for pt in ports if pt.get("name")}
    port_nums = {pt.get("containerPort") for pt in ports}
    for probe, path in (("livenessProbe", LIVE), ("readinessProbe", READY), ("startupProbe", None)):
        pr = ctr.get(probe)
        if pr is None:
            p.append("%s: no %s" % (where, probe))
            continue
        hg = pr.get("httpGet") or {}
        if path and hg.get("path") != path:
            p.append("%s: %s path %r, want %r" % (where, probe, hg.get("path"), path))
        if hg.get("path") not in (LIVE, READY):
            p.append("%s: %s must use a health path" % (where, probe))
        if hg.get("port") not in port_names and hg.get("port") not in port_nums:
            p.append("%s: %s port %r is not a declared port" % (where, probe, hg.get("port")))
    sc = ctr.get("securityContext") or {}
    if sc.get("allowPrivilegeEscalation") is not False:
        p.append(where + ": allowPrivilegeEscalation must be false")
    if sc.get("readOnlyRootFilesystem") is not True:
        p.append(where + ": readOnlyRootFilesystem must be true")
    if (sc.get("capabilities") or {}).get("drop") != ["ALL"]:
        p.append(where + ": capabilities.drop must be [ALL]")
    if sc.get("privileged"):
        p.append(where + ": privileged")
    if not (sc.get("runAsNonRoot") is True or (pod_sc or {}).get("runAsNonRoot") is True):
        p.append(where + ": runAsNonRoot must be true")
    seccomp = (sc.get("seccompProfile") or (pod_sc or {}).get("seccompProfile") or {}).get("type")
    if seccomp != "RuntimeDefault":
        p.append(where + ": seccompProfile must be RuntimeDefault")
    for uid_field in ("runAsUser",):
        for scx in (sc, pod_sc or {}):
            if scx.get(uid_field) == 0:
                p.append(where + ": %s 0" % uid_field)
    if need_resources:
        res = ctr.get("resources") or {}
        for kind in ("cpu", "memory"):
            try:
                rq = quantity((res.get("requests") or {})[kind])
                lm = quantity((res.get("limits") or {})[kind])
                if rq > lm:
                    p.append("%s: %s request above limit" % (where, kind))
            except (KeyError, ValueError) as e:
                p.append("%s: resources %s: %s" % (where, kind, e))
    # The API key directory: flag -> mount -> Secret volume -> Secret object.
    try:
        flags = k8s_sim.ward_flags(ctr.get("args") or [])
    except k8s_sim.SimError as e:
        return p + ["%s: args: %s" % (where, e)]
    if flags.get("--auth-realm") != REALM:
        p.append(where + ": --auth-realm must be %s (the seed's realm)" % REALM)
    if flags.get("--host") != "0.0.0.0":
        p.append(where + ": --host must be 0.0.0.0 inside a pod")
    if flags.get("--port") != str(want_port):
        p.append(where + ": --port must be %d" % want_port)
    if not flags.get("--model") or not flags.get("--served-model-name"):
        p.append(where + ": --model and --served-model-name are required")
    kd = flags.get("--api-keys-dir")
    mounts = [m for m in ctr.get("volumeMounts") or [] if m.get("mountPath") == kd]
    if not kd or len(mounts) != 1:
        p.append("%s: --api-keys-dir %r is not exactly one volumeMount" % (where, kd))
        return p
    m = mounts[0]
    if m.get("subPath") or m.get("subPathExpr"):
        p.append(where + ": the key Secret must not use subPath (it would never update)")
    if m.get("readOnly") is not True:
        p.append(where + ": the key mount must be readOnly")
    vol = next((v for v in volumes if v.get("name") == m.get("name")), None)
    sv = (vol or {}).get("secret")
    if not sv:
        p.append(where + ": the key mount is not a Secret volume")
        return p
    if sv.get("items"):
        p.append(where + ": Secret volume items would hide rotated keys")
    if sv.get("optional"):
        p.append(where + ": the key Secret must not be optional")
    mode = sv.get("defaultMode", 0o644)
    if mode & 0o002 or mode & 0o222:
        p.append(where + ": key files must not be writable (mode %o)" % mode)
    sec = secrets.get(sv.get("secretName"))
    if sec is None:
        p.append(where + ": Secret %r is not in the rendered set" % sv.get("secretName"))
    return p


def check_secret(sec, entry):
    p = []
    if sec.get("type", "Opaque") != "Opaque":
        p.append("Secret %s: type must be Opaque" % sec["metadata"]["name"])
    if sec.get("data") or sec.get("stringData"):
        p.append("Secret %s: a key value is committed to git" % sec["metadata"]["name"])
    labels = sec["metadata"].get("labels") or {}
    if labels.get("authorino.kuadrant.io/managed-by") != "authorino":
        p.append("Secret %s: Authorino's managed-by label missing" % sec["metadata"]["name"])
    if not labels.get("group"):
        p.append("Secret %s: no selector label `group`" % sec["metadata"]["name"])
    if (sec["metadata"].get("annotations") or {}).get("ward.io/key-entry") != entry:
        p.append("Secret %s: ward.io/key-entry must be %r" % (sec["metadata"]["name"], entry))
    return p


def subset(small, big):
    return bool(small) and all(big.get(k) == v for k, v in small.items())


def check_base_like(objs, openshift):
    dep = find(objs, "Deployment", "ward")
    svc = find(objs, "Service", "ward")
    sec = find(objs, "Secret", "ward-api-key")
    np_ = find(objs, "NetworkPolicy", "ward")
    p = []
    if not (dep and svc and sec and np_):
        return ["base objects missing: %r" % [(o["kind"], o["metadata"]["name"]) for o in objs]]
    for o in objs:
        p += check_meta(o)
    spec = dep["spec"]
    tmpl = spec["template"]
    pod_labels = tmpl["metadata"].get("labels") or {}
    if spec["selector"].get("matchLabels") != {k: pod_labels.get(k) for k in spec["selector"].get("matchLabels", {})}:
        p.append("Deployment selector does not match its pod template labels")
    podspec = tmpl["spec"]
    pod_sc = podspec.get("securityContext") or {}
    secrets = {s["metadata"]["name"]: s for s in objs if s["kind"] == "Secret"}
    ctrs = podspec.get("containers") or []
    if len(ctrs) != 1:
        p.append("Deployment: expected one container")
    for ctr in ctrs:
        p += check_container(ctr, pod_sc, podspec.get("volumes") or [], secrets)
        if ctr.get("image") != IMAGE:
            p.append("Deployment image %r, want %r" % (ctr.get("image"), IMAGE))
    if podspec.get("automountServiceAccountToken") is not False:
        p.append("Deployment: automountServiceAccountToken must be false")
    if openshift:
        for f in ("runAsUser", "runAsGroup", "fsGroup"):
            if f in pod_sc:
                p.append("OpenShift: pod securityContext.%s must be left to the SCC" % f)
    else:
        if not pod_sc.get("runAsUser") or not pod_sc.get("fsGroup"):
            p.append("Kubernetes: runAsUser and fsGroup must be pinned (non-root, Secret readable)")
    p += check_secret(sec, "api_key")
    if not subset(svc["spec"].get("selector") or {}, pod_labels):
        p.append("Service selector matches no pod label set")
    ctr_ports = {pt.get("name") for pt in ctrs[0].get("ports", [])} | {pt["containerPort"] for pt in ctrs[0].get("ports", [])}
    for sp in svc["spec"].get("ports") or []:
        if sp.get("targetPort") not in ctr_ports:
            p.append("Service targetPort %r is not a container port" % sp.get("targetPort"))
    if not subset(np_["spec"]["podSelector"].get("matchLabels") or {}, pod_labels):
        p.append("NetworkPolicy selects no ward pod")
    ing_ports = [pt.get("port") for r in np_["spec"].get("ingress") or [] for pt in r.get("ports") or []]
    if ing_ports != [PORT]:
        p.append("NetworkPolicy ingress ports %r, want [%d]" % (ing_ports, PORT))
    if "Egress" not in np_["spec"].get("policyTypes", []) or np_["spec"].get("egress"):
        p.append("NetworkPolicy must deny all egress")
    if openshift:
        rt = find(objs, "Route", "ward")
        if rt is None:
            return p + ["Route missing"]
        to = rt["spec"].get("to") or {}
        if to.get("kind") != "Service" or to.get("name") != svc["metadata"]["name"]:
            p.append("Route does not point at the ward Service")
        if rt["spec"].get("port", {}).get("targetPort") not in [sp.get("name") for sp in svc["spec"]["ports"]] + [sp.get("targetPort") for sp in svc["spec"]["ports"]]:
            p.append("Route targetPort is not a Service port")
        tls = rt["spec"].get("tls") or {}
        if tls.get("termination") != "edge" or tls.get("insecureEdgeTerminationPolicy") != "Redirect":
            p.append("Route must use edge TLS and redirect plain HTTP")
    return p


def check_kserve(objs):
    p = []
    for o in objs:
        p += check_meta(o)
    sr = find(objs, "ServingRuntime")
    isvc = find(objs, "InferenceService")
    if not sr or not isvc:
        return p + ["ServingRuntime or InferenceService missing"]
    model = isvc["spec"]["predictor"].get("model") or {}
    if model.get("runtime") != sr["metadata"]["name"]:
        p.append("InferenceService runtime %r is not the ServingRuntime" % model.get("runtime"))
    fmts = [f.get("name") for f in sr["spec"].get("supportedModelFormats") or []]
    if "gguf" not in fmts or (model.get("modelFormat") or {}).get("name") not in fmts:
        p.append("model format gguf not supported by the runtime")
    if not str(model.get("storageUri", "")).startswith("s3://"):
        p.append("storageUri must be s3:// as in the seed")
    if sr["spec"].get("protocolVersions") not in (None, []) and "v1" not in sr["spec"]["protocolVersions"]:
        p.append("protocolVersions excludes v1 (KServe's default protocol)")
    isvc_name = isvc["metadata"]["name"]
    token_secrets = [s for s in objs if s["kind"] == "Secret"]
    want = "llama3auth-%s-sa" % isvc_name
    if [s["metadata"]["name"] for s in token_secrets] != [want]:
        p.append("token Secret must be named %s (RHOAI <token>-<isvc>-sa)" % want)
    for s in token_secrets:
        p += check_secret(s, "token")
    try:
        ctr, vols = k8s_sim.kserve_predictor(sr, isvc)
    except k8s_sim.SimError as e:
        return p + ["KServe merge: %s" % e]
    pod_sc = isvc["spec"]["predictor"].get("securityContext") or {}
    p += check_container(ctr, pod_sc, vols, {s["metadata"]["name"]: s for s in token_secrets})
    flags = k8s_sim.ward_flags(ctr.get("args") or [])
    if not str(flags.get("--model", "")).startswith(k8s_sim.KSERVE_MODEL_DIR + "/"):
        p.append("--model must be under /mnt/models")
    if flags.get("--served-model-name") != isvc_name:
        p.append("--served-model-name must be the InferenceService name after templating")
    np_ = find(objs, "NetworkPolicy")
    if not np_ or (np_["spec"]["podSelector"].get("matchLabels") or {}).get("serving.kserve.io/inferenceservice") != isvc_name:
        p.append("NetworkPolicy must select the predictor pods")
    return p


# ------------------------------------------------------------------- main --

def compare_with_kubectl(path, objs):
    """Compares with `kubectl kustomize` when it runs here; True when compared."""
    kubectl = shutil.which("kubectl")
    if not kubectl:
        return False
    try:
        r = subprocess.run([kubectl, "kustomize", path], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    if r.returncode != 0:
        print("note: kubectl kustomize failed here, not compared: %s" % r.stderr.decode()[:200])
        return False

    def key(o):
        return (o["apiVersion"], o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
    real = {key(o): o for o in yaml.safe_load_all(r.stdout) if o}
    lite = {key(o): o for o in objs}
    c.eq(sorted(lite), sorted(real), "%s: same objects as kubectl kustomize" % path)
    for k in lite:
        c.ok(lite[k] == real.get(k), "%s: %r renders like kubectl kustomize" % (path, k))
    return True


def renderer_rejects(files, what):
    """Writes a throw-away kustomization and asserts kustomize_lite refuses it."""
    d = tempfile.mkdtemp(prefix="ward-kl-")
    try:
        for name, text in files.items():
            p = os.path.join(d, name)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "w") as f:
                f.write(text)
        try:
            kustomize_lite.render(d)
        except kustomize_lite.KustomizeError as e:
            c.ok(True, what)
            return str(e)
        except yaml.YAMLError:
            c.ok(True, what)
            return "yaml"
        c.ok(False, "kustomize_lite accepted: " + what)
        return ""
    finally:
        shutil.rmtree(d)


def main():
    rendered = {}
    for path, fn in ((BASE, lambda o: check_base_like(o, False)),
                     (OPENSHIFT, lambda o: check_base_like(o, True)),
                     (KSERVE, check_kserve)):
        try:
            objs = kustomize_lite.render(path)
        except kustomize_lite.KustomizeError as e:
            c.ok(False, "render %s: %s" % (path, e))
            continue
        rendered[path] = objs
        problems = fn(objs)
        for pr in problems:
            c.ok(False, "%s: %s" % (os.path.relpath(path, SRC), pr))
        c.ok(not problems, "%s validates" % os.path.relpath(path, SRC))
        compare_with_kubectl(path, objs)

    # The checks must catch real mistakes: break a copy, expect a report.
    if BASE in rendered:
        objs = rendered[BASE]
        breakers = {
            "subPath key mount": lambda o: find(o, "Deployment")["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][0].update(subPath="api_key"),
            "wrong readiness path": lambda o: find(o, "Deployment")["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"].update(path="/healthz"),
            "capabilities kept": lambda o: find(o, "Deployment")["spec"]["template"]["spec"]["containers"][0]["securityContext"].pop("capabilities"),
            "writable root fs": lambda o: find(o, "Deployment")["spec"]["template"]["spec"]["containers"][0]["securityContext"].update(readOnlyRootFilesystem=False),
            "Service selects nothing": lambda o: find(o, "Service")["spec"]["selector"].update({"app.kubernetes.io/name": "other"}),
            "key committed": lambda o: find(o, "Secret").update(stringData={"api_key": "x"}),
            "keys dir not mounted": lambda o: find(o, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"].__setitem__(
                find(o, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"].index("/etc/ward/keys"), "/etc/ward/other"),
            "request above limit": lambda o: find(o, "Deployment")["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"].update(memory="4Gi"),
            "egress allowed": lambda o: find(o, "NetworkPolicy")["spec"].update(egress=[{}]),
        }
        for what, brk in breakers.items():
            bad = copy.deepcopy(objs)
            brk(bad)
            c.ok(check_base_like(bad, False), "a broken base is reported: " + what)
    if KSERVE in rendered:
        objs = rendered[KSERVE]
        breakers = {
            "container renamed": lambda o: find(o, "ServingRuntime")["spec"]["containers"][0].update(name="ward"),
            "token Secret renamed": lambda o: find(o, "Secret")["metadata"].update(name="llama3-token"),
            "keys mount missing": lambda o: find(o, "InferenceService")["spec"]["predictor"]["model"].pop("volumeMounts"),
            "format mismatch": lambda o: find(o, "InferenceService")["spec"]["predictor"]["model"]["modelFormat"].update(name="vLLM"),
        }
        for what, brk in breakers.items():
            bad = copy.deepcopy(objs)
            brk(bad)
            c.ok(check_kserve(bad), "a broken kserve overlay is reported: " + what)

    # kustomize_lite on malformed input: a clear error, never a wrong render.
    res = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"
    renderer_rejects({"kustomization.yaml": "resources: [a.yaml]\ncommonLabels: {a: b}\n", "a.yaml": res},
                     "unsupported field commonLabels")
    renderer_rejects({"kustomization.yaml": "resources: [https://example.com/x.yaml]\n"}, "remote resource")
    renderer_rejects({"kustomization.yaml": "resources: [missing.yaml]\n"}, "missing resource")
    renderer_rejects({"kustomization.yaml": "resources: [sub]\n", "sub/kustomization.yaml": "resources: [..]\n"},
                     "directory cycle")
    renderer_rejects({"kustomization.yaml": "resources: [a.yaml, b.yaml]\n", "a.yaml": res, "b.yaml": res},
                     "duplicate object")
    renderer_rejects({"kustomization.yaml": "resources: [a.yaml]\npatches:\n- target: {kind: ConfigMap, name: zz}\n"
                      "  patch: '[{op: remove, path: /data}]'\n", "a.yaml": res}, "patch that matches nothing")
    renderer_rejects({"kustomization.yaml": "resources: [a.yaml]\npatches:\n- target: {kind: ConfigMap}\n"
                      "  patch: '[{op: remove, path: /data/x}]'\n", "a.yaml": res}, "JSON 6902 remove of a missing path")
    renderer_rejects({"kustomization.yaml": "resources: [a.yaml]\n", "a.yaml": "kind: X\n: [\n"}, "invalid YAML")
    renderer_rejects({"kustomization.yaml": "resources: [a.yaml]\n", "a.yaml": "- 1\n- 2\n"}, "document not an object")

    # Strategic merge and JSON 6902 behave as kustomize's for the cases used.
    merged = kustomize_lite.strategic_merge(
        {"spec": {"containers": [{"name": "a", "args": ["1"], "env": [{"name": "X", "value": "1"}]}]}},
        {"spec": {"containers": [{"name": "a", "args": ["2"], "env": [{"name": "Y", "value": "2"}]},
                                 {"name": "b"}]}})
    c.eq(merged["spec"]["containers"][0]["args"], ["2"], "strategic merge replaces args")
    c.eq([e["name"] for e in merged["spec"]["containers"][0]["env"]], ["X", "Y"], "strategic merge merges env by name")
    c.eq(len(merged["spec"]["containers"]), 2, "strategic merge appends new containers")
    doc = {"a": {"b": [1, 2]}}
    kustomize_lite.json6902(doc, [{"op": "add", "path": "/a/b/-", "value": 3},
                                  {"op": "replace", "path": "/a/b/0", "value": 9},
                                  {"op": "add", "path": "/a/c~1d", "value": "x"}])
    c.eq(doc, {"a": {"b": [9, 2, 3], "c/d": "x"}}, "JSON 6902 add/replace with escapes")
    c.done()


if __name__ == "__main__":
    main()
