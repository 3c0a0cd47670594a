#!/usr/bin/env python3
"""Checks that docs/walkthrough.md's commands agree with the manifests they
drive, so the walkthrough works as written:

- every ```bash block parses (`bash -n`);
- `kubectl/oc apply -k DIR` names a directory that renders;
- each `create secret generic NAME --from-literal=ENTRY=...` creates a Secret
  that some rendered overlay declares, in that overlay's namespace, with
  ENTRY as its key entry (ward.io/key-entry);
- each `get secret NAME ... {.data.ENTRY}` and `patch secret` reads/writes
  an entry the manifests declare;
- `deployment/NAME`, `service/NAME`, `route NAME`, `inferenceservice NAME`
  exist in the rendered objects;
- the curl request body is the seed's (same fields and values as
  examples/rest_requests.py), and the realm shown is the manifests' realm.
Broken copies of the walkthrough must be reported.
"""

import ast
import json
import os
import re
import shutil
import subprocess
import sys

SRC = os.environ.get("WARD_SRC") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tools"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wardlib import Check  # noqa: E402

try:
    import kustomize_lite
except ImportError as e:
    print("SKIP: %s (scripts/deps.sh installs python3-yaml)" % e)
    sys.exit(77)
import k8s_sim  # noqa: E402

DOC = os.path.join(SRC, "docs", "walkthrough.md")
c = Check("test_deploy_walkthrough")


def bash_blocks(text):
    return re.findall(r"^```bash\n(.*?)^```", text, re.S | re.M)


def logical_lines(block):
    return block.replace("\\\n", " ").splitlines()


def rendered():
    """{kustomize dir (relative): objects}."""
    out = {}
    for d in ("deploy/base", "deploy/overlays/openshift", "deploy/overlays/kserve"):
        out[d] = kustomize_lite.render(os.path.join(SRC, d))
    return out


def ns_of(line, default):
    m = re.search(r"(?:-n|--namespace)[ =](\S+)", line)
    return m.group(1) if m else default


def problems(text, overlays):
    p = []
    blocks = bash_blocks(text)
    if len(blocks) < 8:
        p.append("expected the walkthrough's bash blocks, found %d" % len(blocks))
    bash = shutil.which("bash")
    for i, b in enumerate(blocks):
        if bash:
            r = subprocess.run([bash, "-n"], input=b, capture_output=True, text=True)
            if r.returncode != 0:
                p.append("bash block %d does not parse: %s" % (i, r.stderr.strip()[:200]))
    objs = [(d, o) for d, objs in overlays.items() for o in objs]
    secrets = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for _, o in objs if o["kind"] == "Secret"}
    names = {(o["kind"].lower(), o["metadata"]["name"]) for _, o in objs}
    entries = {o["metadata"]["name"]: o["metadata"].get("annotations", {}).get("ward.io/key-entry")
               for _, o in objs if o["kind"] == "Secret"}
    applied = set()
    current_ns = None
    for b in blocks:
        for line in logical_lines(b):
            line = line.strip()
            if line.startswith("#"):
                continue
            m = re.search(r"\b(?:kubectl|oc) create namespace (\S+)", line) or re.search(r"\boc new-project (\S+)", line)
            if m:
                current_ns = m.group(1)
            m = re.search(r"\b(?:kubectl|oc) apply -k (\S+)", line)
            if m:
                d = m.group(1).rstrip("/")
                if d not in overlays:
                    p.append("apply -k %s: not one of the rendered kustomizations" % d)
                applied.add(d)
            m = re.search(r"create secret generic (\S+) .*--from-literal=([\w.-]+)=", line)
            if m:
                ns = ns_of(line, current_ns)
                sec = secrets.get((ns, m.group(1)))
                if sec is None:
                    p.append("create secret %s in namespace %s: no such Secret in the manifests" % (m.group(1), ns))
                elif entries.get(m.group(1)) != m.group(2):
                    p.append("create secret %s: entry %s, manifests expect %s" % (m.group(1), m.group(2), entries.get(m.group(1))))
            for m in re.finditer(r"get secret (\S+) .*?\{\.data\.([\w.-]+)\}", line):
                if entries.get(m.group(1)) != m.group(2):
                    p.append("get secret %s: reads %s, the key entry is %s" % (m.group(1), m.group(2), entries.get(m.group(1))))
            for m in re.finditer(r"\b(deployment|service|inferenceservice|route)[/ ]([a-z0-9$][\w$-]*)", line):
                kind, name = m.group(1), m.group(2)
                if "$" in name or name in ("-o",):
                    continue
                if (kind, name) not in names:
                    p.append("%s %s is not in the manifests" % (kind, name))
    for want in ("deploy/base", "deploy/overlays/openshift", "deploy/overlays/kserve"):
        if want not in applied:
            p.append("the walkthrough never applies %s" % want)
    # The seed's rotation command: TOKEN_NAME-MODEL_SERVER-sa and /data/<entry>.
    m = re.search(r'TOKEN_NAME="(\S+)"', text)
    m2 = re.search(r'MODEL_SERVER="(\S+)"', text)
    m3 = re.search(r'NAMESPACE="(\S+)"', text)
    m4 = re.search(r'"path": "/data/([\w.-]+)"', text)
    if not (m and m2 and m3 and m4):
        p.append("the seed's kubectl patch rotation is missing")
    else:
        name = "%s-%s-sa" % (m.group(1), m2.group(1))
        if (m3.group(1), name) not in secrets:
            p.append("rotation patches %s/%s, which the manifests do not declare" % (m3.group(1), name))
        elif entries.get(name) != m4.group(1):
            p.append("rotation replaces /data/%s, the key entry is %s" % (m4.group(1), entries.get(name)))
    m = re.search(r'patch secret (\S+) --type merge\s+-p \'\{"stringData":\{"([\w.-]+)"', text)
    if not m or entries.get(m.group(1)) != m.group(2):
        p.append("the base rotation (merge patch) does not write the Secret's key entry")
    return p


def seed_body_problems(text):
    """The walkthrough's curl body must be the seed's (examples/rest_requests.py's)."""
    src = open(os.path.join(SRC, "examples", "rest_requests.py"), encoding="utf-8").read()
    m = re.search(r"^body = (\{.*?^\})", src, re.S | re.M)
    if not m:
        return ["examples/rest_requests.py has no body"]
    body = ast.literal_eval(m.group(1).replace('"model": model,', '"model": "M",'))
    m = re.search(r"-d '(\{\"model\": \"'\"\$model\"'\", \"prompt\": \"What is Kubernetes\?\".*?\})'", text, re.S)
    if not m:
        return ["the walkthrough's curl with the seed's body is missing"]
    doc = json.loads(m.group(1).replace("'\"$model\"'", "M"))
    diff = sorted(k for k in set(doc) | set(body) if doc.get(k) != body.get(k))
    return ["curl body differs from the seed's in %s" % diff] if diff else []


def main():
    text = open(DOC, encoding="utf-8").read()
    overlays = rendered()
    errs = problems(text, overlays)
    for e in errs:
        print("  walkthrough: " + e)
    c.ok(not errs, "walkthrough commands agree with the manifests")
    errs = seed_body_problems(text)
    for e in errs:
        print("  walkthrough: " + e)
    c.ok(not errs, "walkthrough's curl sends the seed's request")

    base_dep = next(o for o in overlays["deploy/base"] if o["kind"] == "Deployment")
    realm = k8s_sim.ward_flags(base_dep["spec"]["template"]["spec"]["containers"][0]["args"])["--auth-realm"]
    c.ok('Bearer realm="%s"' % realm in text, "walkthrough shows the manifests' realm")

    broken = {
        "wrong Secret entry": text.replace("--from-literal=api_key=", "--from-literal=apikey="),
        "wrong Secret name": text.replace("create secret generic llama3auth-llama3-sa", "create secret generic llama3-token"),
        "wrong namespace": text.replace("kubectl -n demo-rhoai-secured create secret", "kubectl -n demo create secret"),
        "OpenShift project differs": text.replace("oc new-project ward", "oc new-project llm"),
        "missing overlay dir": text.replace("apply -k deploy/overlays/kserve", "apply -k deploy/overlays/kserving"),
        "unknown deployment": text.replace("rollout status deployment/ward", "rollout status deployment/vllm"),
        "rotation of another key": text.replace('"path": "/data/token"', '"path": "/data/api_key"'),
        "unparsable bash": text.replace("kubectl apply -k deploy/base\n", "kubectl apply -k deploy/base (\n", 1),
        "jsonpath of another key": text.replace("{.data.api_key}", "{.data.token}"),
    }
    for what, t in broken.items():
        c.ok(t != text and problems(t, overlays), "a broken walkthrough is reported: " + what)
    bad_body = text.replace('"max_tokens": 128,\n', '"max_tokens": 64,\n', 1)
    c.ok(bad_body != text and seed_body_problems(bad_body), "a changed seed body is reported")
    c.done()


if __name__ == "__main__":
    main()
