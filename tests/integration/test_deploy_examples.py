#!/usr/bin/env python3
"""Runs examples/rest_requests.py and examples/rest_requests.ipynb against a
real ward started with the base Deployment's flags (key in a kubelet-style
Secret directory), as a user following docs/walkthrough.md would.

- the notebook is valid nbformat 4 JSON and its code cells are exactly the
  `# %%` cells of the script (so the two cannot drift apart);
- the script, given WARD_URL and WARD_API_KEY, prints `with token: 200 OK`
  with a completion and `without token: 401 Unauthorized` with the seed's
  challenge and reason, exits 0, and never prints the key;
- the notebook's code cells, executed in order in one namespace (no Jupyter
  needed), print the same;
- with a wrong key the script reports the 401 and exits 1.
Skips (77) until `ward serve --api-keys-dir` and the completions API exist,
or when python3-requests is missing. Without models/default.gguf it uses the
rotation test's tiny random-weight model.
"""

import contextlib
import io
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile

SRC = os.environ.get("WARD_SRC") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tools"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import wardlib  # noqa: E402
from wardlib import Check  # noqa: E402

SCRIPT = os.path.join(SRC, "examples", "rest_requests.py")
NOTEBOOK = os.path.join(SRC, "examples", "rest_requests.ipynb")
# Generation on CPU (slower under ASan); the seed asks for 128 tokens.
RUN_TIMEOUT_S = 300

c = Check("test_deploy_examples")


def skip(msg):
    """Skips (77), unless a static check already failed: then that failure is reported."""
    if c.failed:
        c.done()
    print("SKIP: " + msg)
    sys.exit(77)


def script_cells():
    src = open(SCRIPT, encoding="utf-8").read()
    parts = re.split(r"^(# %%.*)$", src, flags=re.M)
    return [parts[i + 1].strip("\n") for i in range(1, len(parts), 2) if "script only" not in parts[i]]


def notebook_cells():
    nb = json.load(open(NOTEBOOK, encoding="utf-8"))
    c.eq(nb.get("nbformat"), 4, "notebook is nbformat 4")
    c.ok(isinstance(nb.get("metadata"), dict) and isinstance(nb.get("cells"), list), "notebook has metadata and cells")
    ids = set()
    code = []
    for cell in nb.get("cells", []):
        c.ok(cell.get("cell_type") in ("markdown", "code", "raw"), "known cell type %r" % cell.get("cell_type"))
        c.ok(isinstance(cell.get("source"), (list, str)), "cell source is a string or list")
        cid = cell.get("id")
        c.ok(isinstance(cid, str) and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", cid) and cid not in ids,
             "cell id %r valid and unique (nbformat 4.5)" % cid)
        ids.add(cid)
        src = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        if cell.get("cell_type") == "code":
            c.ok(cell.get("outputs") == [] and cell.get("execution_count") is None,
                 "code cell committed without outputs")
            code.append(src)
    return code


def check_output(out, what, key, real_model):
    c.ok(re.search(r"^with token: 200 OK$", out, re.M) is not None, "%s: with token -> 200" % what)
    # The text may span lines; the tiny random model may also stop at once (EOS).
    m = re.search(r"^text: (.*?)^without token:", out, re.M | re.S)
    c.ok(m is not None, "%s: a completion text is printed" % what)
    if m is not None and real_model:
        c.ok(len(m.group(1).strip()) > 0, "%s: the default model's completion is not empty" % what)
    c.ok(re.search(r"^object: text_completion", out, re.M) is not None, "%s: object text_completion" % what)
    c.ok(re.search(r"^without token: 401 Unauthorized$", out, re.M) is not None, "%s: without token -> 401" % what)
    c.ok('WWW-Authenticate: Bearer realm="kubernetes-user"' in out, "%s: the seed's challenge" % what)
    c.ok("X-Ext-Auth-Reason: credential not found" in out, "%s: the seed's reason" % what)
    c.ok(key not in out, "%s: the key is never printed" % what)


def main():
    try:
        import requests  # noqa: F401
        import kustomize_lite
        import k8s_sim
    except ImportError as e:
        skip("%s (scripts/deps.sh installs python3-requests and python3-yaml)" % e)

    # Static checks first: they need no server.
    nb_code = notebook_cells()
    py_code = script_cells()
    c.ok(len(py_code) >= 3, "the script has its # %% cells")
    c.eq([s.strip() for s in nb_code], [s.strip() for s in py_code], "notebook code cells == script cells")

    binary = wardlib.ward_bin()
    r = subprocess.run([binary, "serve", "--help"], capture_output=True, text=True, timeout=30)
    if "Not built yet" in r.stdout + r.stderr or "--api-keys-dir" not in r.stdout + r.stderr:
        skip("`ward serve --api-keys-dir` is not built yet")
    objs = kustomize_lite.render(os.path.join(SRC, "deploy", "base"))
    ctr = next(o for o in objs if o["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]
    tmp = tempfile.mkdtemp(prefix="ward-deploy-ex-")
    key = secrets.token_hex(32)
    try:
        model = os.environ.get("WARD_TEST_MODEL") or os.path.join(SRC, "models", "default.gguf")
        real_model = os.path.isfile(model)
        if not real_model:
            # Any model exercises the client; the rotation test knows how to write one.
            from test_deploy_secret_rotation import tiny_model
            try:
                model = tiny_model(os.path.join(tmp, "tiny.gguf"))
            except ImportError as e:
                skip("no models/default.gguf and cannot write a test model (%s)" % e)
        mount = os.path.join(tmp, "keys")
        os.mkdir(mount)
        k8s_sim.project_secret(mount, {"api_key": key}, 0o440)
        args = k8s_sim.replace_flags(ctr["args"], {"--api-keys-dir": mount, "--model": model},
                                     drop=("--host", "--port"))
        with wardlib.start_ward(args, timeout=60) as w:
            # (POST /v1/completions with an unknown model is a 404 too, so ask /v1/models.)
            st, _, _ = wardlib.request("GET", w.url + "/v1/models", headers={"Authorization": "Bearer " + key})
            if st in (404, 405):
                skip("the OpenAI API is not routed yet")
            env = dict(os.environ, WARD_URL=w.url, WARD_API_KEY=key)
            env.pop("WARD_MODEL_NAME", None)
            r = subprocess.run([sys.executable, SCRIPT], env=env, capture_output=True, text=True,
                               timeout=RUN_TIMEOUT_S)
            out = r.stdout + r.stderr
            if r.returncode != 0:
                print(out.replace(key, "<key>")[-2000:])
            c.eq(r.returncode, 0, "script exits 0")
            check_output(out, "script", key, real_model)

            # The notebook: its code cells in order, in one namespace.
            buf = io.StringIO()
            saved = {k: os.environ.get(k) for k in ("WARD_URL", "WARD_API_KEY", "WARD_MODEL_NAME")}
            os.environ["WARD_URL"], os.environ["WARD_API_KEY"] = w.url, key
            os.environ.pop("WARD_MODEL_NAME", None)
            ns = {"__name__": "__notebook__"}
            try:
                with contextlib.redirect_stdout(buf):
                    for i, code in enumerate(nb_code):
                        exec(compile(code, "rest_requests.ipynb[cell %d]" % i, "exec"), ns)
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
            check_output(buf.getvalue(), "notebook", key, real_model)
            c.ok(ns.get("ok") is True, "notebook's summary cell sets ok = True")

            # A wrong key: the script says so and fails.
            env["WARD_API_KEY"] = secrets.token_hex(32)
            env["WARD_MODEL_NAME"] = k8s_sim.ward_flags(ctr["args"])["--served-model-name"]
            r = subprocess.run([sys.executable, SCRIPT], env=env, capture_output=True, text=True,
                               timeout=RUN_TIMEOUT_S)
            c.eq(r.returncode, 1, "script exits 1 with a wrong key")
            c.ok(re.search(r"^with token: 401 Unauthorized$", r.stdout, re.M) is not None,
                 "script reports 401 for a wrong key")
            c.ok("X-Ext-Auth-Reason: the API Key provided is invalid" in r.stdout,
                 "script prints Authorino's invalid-key reason")
            c.ok(env["WARD_API_KEY"] not in r.stdout + r.stderr, "wrong key not printed either")
            w.stop()
            c.ok(key not in "\n".join(w.stderr_lines()), "the key is not in ward's log")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    c.done()


if __name__ == "__main__":
    main()
