#!/usr/bin/env python3
"""Checks the Containerfile's structure without a container engine.

- two stages: `debian:12 AS build`, then `debian:12-slim`;
- the runtime stage installs only runtime libraries (no compiler, no -dev),
  with --no-install-recommends and the apt lists removed;
- it runs as a numeric, non-zero USER, EXPOSEs 8080, and its exec-form
  ENTRYPOINT is the binary copied from the build stage followed by `serve`;
- nothing is fetched from the network (no curl/wget, no `| sh`, no ADD URL,
  no git clone);
- the model lands where deploy/base's `--model` expects it, and the build
  stage installs the -dev packages scripts/deps.sh names;
- when a (non-sanitizer) ward binary is built, every shared library it needs
  belongs to a package the runtime stage installs or debian:12-slim ships.
Malformed Containerfiles (bad USER, curl | sh, a single stage) must be caught.
"""

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

c = Check("test_deploy_containerfile")

BUILD_IMAGES = {"debian:12", "docker.io/library/debian:12"}
RUNTIME_IMAGES = {"debian:12-slim", "docker.io/library/debian:12-slim"}
# What the runtime stage may install, and what debian:12-slim already has.
RUNTIME_ALLOWED = {"libjansson4", "libssl3", "ca-certificates"}
IN_SLIM = {"libc6", "libgcc-s1", "libzstd1", "zlib1g"}


def parse(text):
    """-> list of stages, each {'from': image, 'name': alias, 'instr': [(CMD, args)]}."""
    lines, cur = [], ""
    for raw in text.splitlines():
        s = raw.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        if s.startswith("#"):
            continue
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        cur += s
        lines.append(cur)
        cur = ""
    if cur:
        lines.append(cur)
    stages = []
    for ln in lines:
        m = re.match(r"(\w+)\s+(.*)$", ln)
        if not m:
            raise ValueError("unparsable line: %r" % ln)
        ins, args = m.group(1).upper(), m.group(2).strip()
        if ins == "FROM":
            fm = re.match(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$", args, re.I)
            if not fm:
                raise ValueError("bad FROM: %r" % args)
            stages.append({"from": fm.group(1), "name": fm.group(2), "instr": []})
        elif ins == "ARG" and not stages:
            continue
        elif not stages:
            raise ValueError("%s before FROM" % ins)
        else:
            stages[-1]["instr"].append((ins, args))
    return stages


def apt_packages(stage):
    pkgs = []
    for ins, args in stage["instr"]:
        if ins != "RUN":
            continue
        for part in re.split(r"&&|;", args):
            words = part.split()
            if len(words) >= 2 and words[0] == "apt-get" and "install" in words:
                pkgs += [w for w in words[words.index("install") + 1:] if not w.startswith("-")]
    return pkgs


def problems(text, model_path):
    p = []
    try:
        st = parse(text)
    except ValueError as e:
        return [str(e)]
    if len(st) != 2:
        return ["want exactly 2 stages, got %d" % len(st)]
    build, run = st
    if build["from"] not in BUILD_IMAGES or (build["name"] or "").lower() != "build":
        p.append("first stage must be `FROM debian:12 AS build`")
    if run["from"] not in RUNTIME_IMAGES:
        p.append("runtime stage must be FROM debian:12-slim")
    low = text.lower()
    if re.search(r"\b(curl|wget)\b", low):
        p.append("curl/wget used: nothing may be downloaded outside apt")
    if re.search(r"\|\s*(ba|da|z)?sh\b", low):
        p.append("a pipe into a shell")
    if re.search(r"^\s*add\s+\S*https?://", low, re.M) or "git clone" in low:
        p.append("remote ADD or git clone")
    # Runtime stage contents.
    rp = apt_packages(run)
    extra = set(rp) - RUNTIME_ALLOWED
    if extra:
        p.append("runtime stage installs more than runtime libraries: %s" % sorted(extra))
    for ins, args in run["instr"]:
        if ins == "RUN" and "apt-get install" in args:
            if "--no-install-recommends" not in args:
                p.append("runtime apt-get install without --no-install-recommends")
            if "rm -rf /var/lib/apt/lists" not in args:
                p.append("runtime stage keeps the apt lists")
    users = [a for i, a in run["instr"] if i == "USER"]
    if not users:
        p.append("runtime stage has no USER")
    else:
        um = re.fullmatch(r"(\d+)(?::(\d+))?", users[-1])
        if not um or int(um.group(1)) == 0:
            p.append("USER must be a numeric non-zero UID (runAsNonRoot checks it): %r" % users[-1])
    if "8080" not in [a for i, a in run["instr"] if i == "EXPOSE"]:
        p.append("runtime stage does not EXPOSE 8080")
    eps = [a for i, a in run["instr"] if i == "ENTRYPOINT"]
    try:
        ep = json.loads(eps[-1]) if eps else None
    except ValueError:
        ep = None
    if not isinstance(ep, list) or len(ep) != 2 or ep[1] != "serve":
        p.append("ENTRYPOINT must be exec form [<ward>, \"serve\"]")
        return p
    copies = [a.split() for i, a in run["instr"] if i == "COPY"]
    if not any(a[0] == "--from=build" and a[-1] == ep[0] for a in copies):
        p.append("the ENTRYPOINT binary %s is not copied from the build stage" % ep[0])
    if not any(a[0] != "--from=build" and a[-1] == model_path and a[-2] == "models/default.gguf" for a in copies):
        p.append("models/default.gguf is not copied to %s (deploy/base --model)" % model_path)
    cmds = [a for i, a in run["instr"] if i == "CMD"]
    try:
        cmd = json.loads(cmds[-1]) if cmds else []
    except ValueError:
        cmd = None
    if not isinstance(cmd, list) or "--api-keys-dir" not in cmd:
        p.append("the default CMD must require a key directory (--api-keys-dir)")
    after_user = False
    for ins, args in run["instr"]:
        after_user = after_user or ins == "USER"
        if after_user and ins == "RUN" and "apt-get" in args:
            p.append("apt-get after USER (it would fail as non-root)")
    return p


def deps_dev_packages():
    with open(os.path.join(SRC, "scripts", "deps.sh")) as f:
        text = f.read()
    m = re.search(r"need=\((.*?)\)", text, re.S)
    # Test-only libraries (cmocka, clang's runtimes) are not needed: the image
    # builds with WARD_BUILD_TESTS=OFF.
    test_only = ("libclang", "libcmocka")
    return {w for w in m.group(1).split() if w.endswith("-dev") and not w.startswith(test_only)} if m else set()


def needed_packages(binary):
    """Debian packages that provide the binary's DT_NEEDED libraries."""
    out = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True, check=True).stdout
    sonames = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)
    ldc = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    pkgs = {}
    for so in sonames:
        m = re.search(r"^\s*%s \(libc6,x86-64[^)]*\) => (\S+)" % re.escape(so), ldc, re.M) or \
            re.search(r"^\s*%s \([^)]*\) => (\S+)" % re.escape(so), ldc, re.M)
        if not m:
            pkgs[so] = None
            continue
        path = os.path.realpath(m.group(1))
        r = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
        if r.returncode != 0:   # merged /usr: dpkg may know the /lib spelling
            alt = path[4:] if path.startswith("/usr/") else "/usr" + path
            r = subprocess.run(["dpkg", "-S", alt], capture_output=True, text=True)
        pkgs[so] = r.stdout.split(":")[0] if r.returncode == 0 else None
    return pkgs


def main():
    path = os.path.join(SRC, "Containerfile")
    with open(path) as f:
        text = f.read()
    sys.path.insert(0, os.path.join(SRC, "tools"))
    import k8s_sim
    try:
        import kustomize_lite
        dep = [o for o in kustomize_lite.render(os.path.join(SRC, "deploy", "base")) if o["kind"] == "Deployment"][0]
        model_path = k8s_sim.ward_flags(dep["spec"]["template"]["spec"]["containers"][0]["args"])["--model"]
    except ImportError:
        model_path = "/usr/share/ward/models/default.gguf"
    errs = problems(text, model_path)
    for e in errs:
        print("  Containerfile: " + e)
    c.ok(not errs, "Containerfile structure")

    build = parse(text)[0]
    have = set(apt_packages(build))
    missing = deps_dev_packages() - have
    c.ok(not missing, "build stage installs the -dev packages of scripts/deps.sh (missing %s)" % sorted(missing))

    # Broken variants must be reported.
    bad = {
        "USER by name": text.replace("USER 10001:10001", "USER ward"),
        "USER root": text.replace("USER 10001:10001", "USER 0"),
        "curl | sh": text.replace("WORKDIR /src", "RUN curl -fsSL https://example.com/i.sh | sh\nWORKDIR /src"),
        "single stage": re.sub(r"FROM docker.io/library/debian:12-slim AS runtime\n", "", text),
        "compiler at runtime": text.replace("libjansson4 libssl3", "libjansson4 libssl3 gcc"),
        "shell-form entrypoint": text.replace('ENTRYPOINT ["/usr/local/bin/ward", "serve"]', "ENTRYPOINT ward serve"),
        "model elsewhere": text.replace("COPY models/default.gguf /usr/share/ward/models/default.gguf",
                                        "COPY models/default.gguf /models/default.gguf"),
        "no key dir in CMD": text.replace('"--api-keys-dir", "/etc/ward/keys", ', ""),
    }
    for what, t in bad.items():
        c.ok(t != text and problems(t, model_path), "a broken Containerfile is reported: " + what)

    # The runtime libraries must cover what the binary links.
    binary = os.environ.get("WARD_BIN", "")
    if os.environ.get("WARD_UNDER_ASAN") == "1":
        print("note: sanitizer build, runtime library check skipped")
    elif not binary or not os.access(binary, os.X_OK) or not shutil.which("readelf") or not shutil.which("dpkg"):
        print("note: no ward binary or readelf/dpkg here, runtime library check skipped")
    else:
        pkgs = needed_packages(binary)
        allowed = RUNTIME_ALLOWED | IN_SLIM
        for so, pkg in sorted(pkgs.items()):
            c.ok(pkg in allowed, "%s (from %s) is installed in the runtime stage" % (so, pkg))
        c.ok("libc.so.6" in pkgs, "the NEEDED scan finds libc.so.6 (sanity)")
    c.done()


if __name__ == "__main__":
    main()
