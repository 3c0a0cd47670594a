"""`make run`'s script as a newcomer meets it: the first start prints
`API key: <key>` and curl commands; the printed commands, run as written, give
200 with a completion (with the key) and 401 with the seed's headers (without);
a second start reuses the key store and prints how to make a new key; the key
never appears in the server's logs."""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
import wardlib  # noqa: E402
import api_model  # noqa: E402

SRC = os.environ.get("WARD_SRC", os.path.join(os.path.dirname(__file__), "..", ".."))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start(env):
    p = subprocess.Popen(["bash", os.path.join(SRC, "scripts", "run.sh")], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return p


def wait_health(port, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/health" % port, timeout=2) as r:
                if r.status == 200:
                    return True
        except Exception:
            time.sleep(0.2)
    return False


def read_until(stream, pattern, timeout=20):
    """Reads lines until one matches; returns all lines read."""
    lines = []
    end = time.time() + timeout
    while time.time() < end:
        line = stream.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if re.search(pattern, line):
            break
    return lines


def curl_commands(text):
    """The shell commands printed after the usage lines (curl ... with \\ continuations)."""
    cmds, cur = [], None
    for line in text.split("\n"):
        s = line.strip()
        if s.startswith("curl "):
            cur = s
        elif cur is not None and s:
            cur += "\n" + s
        if cur is not None and not s.endswith("\\"):
            cmds.append(cur)
            cur = None
    return cmds


def main():
    c = wardlib.Check("test_make_run")
    tmp = tempfile.mkdtemp(prefix="ward-makerun-")
    model = os.path.join(SRC, "models", "default.gguf")
    if not os.path.exists(model) or wardlib.under_asan():
        model = os.path.join(tmp, "tiny.gguf")
        api_model.make_model(model)
    port = free_port()
    env = dict(os.environ, WARD=wardlib.ward_bin(), WARD_MODEL=model, WARD_PORT=str(port),
               WARD_HOME=os.path.join(tmp, "state"))

    p = start(env)
    out = read_until(p.stdout, r"^And without it")
    out += read_until(p.stdout, r"^\s+-d .*512", timeout=5)
    text = "\n".join(out)
    c.ok(out and out[0].startswith("API key: "), "first line is 'API key: <key>' (got %r)" % (out[:1],))
    key = out[0][len("API key: "):].strip() if out else ""
    c.ok(re.fullmatch(r"ward_[A-Za-z0-9_-]{40,}", key) is not None, "key has the ward_ prefix and 256 bits")
    c.ok(wait_health(port), "server answers /health")
    cmds = curl_commands(text)
    c.eq(len(cmds), 2, "two curl commands printed")
    if len(cmds) == 2:
        r = subprocess.run(["bash", "-c", cmds[0] + " -w '\\n%{http_code}'"], capture_output=True, text=True, timeout=120)
        body, _, code = r.stdout.rpartition("\n")
        c.eq(code, "200", "curl with the key")
        c.ok('"text_completion"' in body and '"choices"' in body, "completion JSON returned")
        r = subprocess.run(["bash", "-c", cmds[1]], capture_output=True, text=True, timeout=30)
        head = r.stdout.replace("\r", "")
        c.ok(head.startswith("HTTP/1.1 401"), "curl without the key gives 401")
        c.ok('www-authenticate: bearer realm="ward"' in head.lower(), "WWW-Authenticate header")
        c.ok("x-ext-auth-reason: credential not found" in head.lower(), "X-Ext-Auth-Reason header")
    p.send_signal(signal.SIGTERM)
    try:
        _, err1 = p.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err1 = p.communicate()
    c.eq(p.returncode, 0, "graceful exit on SIGTERM")

    # Second start: the store is reused, no key is printed.
    p = start(env)
    out2 = read_until(p.stdout, r"keys create", timeout=20)
    c.ok(not any(l.startswith("API key:") for l in out2), "no new key on the second start")
    c.ok(any("keys create" in l for l in out2), "second start says how to make a new key")
    c.ok(wait_health(port), "second start serves")
    p.send_signal(signal.SIGTERM)
    try:
        _, err2 = p.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err2 = p.communicate()
    c.ok(key and key not in err1 and key not in err2, "the key is not in the server's logs")
    with open(os.path.join(tmp, "state", "keys.json")) as f:
        c.ok(key not in f.read(), "the key store holds no plaintext key")
    c.done()


if __name__ == "__main__":
    main()
