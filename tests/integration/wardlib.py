"""wardlib: shared helpers for ward's integration tests (stdlib only).

Typical use:

    import wardlib
    with wardlib.start_ward(["--max-body-bytes", "4096"]) as w:
        status, headers, body = wardlib.request("GET", w.url + "/health")
        assert status == 200
        assert any(l.get("msg") == "request" for l in w.logs())

start_ward() runs `$WARD_BIN serve --port 0 --host 127.0.0.1 <args>`, reads its
stderr (JSON log lines) on a thread and returns once the "listening" line
(logger "ward.server") announces the bound port. Ward.stop() sends SIGTERM and
returns the exit status. Tests that need ../shared call need_shared(), which
skips (exit 77) when it is absent.
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

SKIP = 77  # ctest SKIP_RETURN_CODE


def ward_bin():
    b = os.environ.get("WARD_BIN")
    if not b:
        src = os.environ.get("WARD_SRC", os.path.join(os.path.dirname(__file__), "..", ".."))
        b = os.path.join(src, "build", "ward")
    if not os.access(b, os.X_OK):
        sys.stderr.write("wardlib: ward binary not found (set WARD_BIN): %s\n" % b)
        sys.exit(1)
    return b


def need_shared():
    """Returns the path of ../shared, or exits 77 (skip) when it is missing."""
    d = os.environ.get("WARD_SHARED", "")
    if not d or not os.path.isdir(d):
        print("SKIP: WARD_SHARED (../shared) is not available in this checkout")
        sys.exit(SKIP)
    return d


def under_asan():
    return os.environ.get("WARD_UNDER_ASAN") == "1"


class WardError(Exception):
    pass


class Ward:
    """A running `ward serve`. Use as a context manager or call stop()."""

    def __init__(self, proc, host):
        self.proc = proc
        self.host = host
        self.port = None
        self._lines = []          # raw stderr lines (str)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._eof = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    # -- stderr collection -------------------------------------------------
    def _read(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._cond:
                self._lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def stderr_lines(self):
        """All stderr lines so far, raw."""
        with self._lock:
            return list(self._lines)

    def logs(self):
        """Stderr lines that parse as JSON objects (the structured log)."""
        out = []
        for line in self.stderr_lines():
            try:
                o = json.loads(line)
            except ValueError:
                continue
            if isinstance(o, dict):
                out.append(o)
        return out

    def find_logs(self, msg=None, logger=None):
        return [l for l in self.logs()
                if (msg is None or l.get("msg") == msg) and (logger is None or l.get("logger") == logger)]

    def wait_log(self, pred, timeout=5.0):
        """Waits until a parsed log line satisfies pred(line); returns it or raises WardError."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            with self._cond:
                lines = self._lines[seen:]
                seen = len(self._lines)
                eof = self._eof
            for line in lines:
                try:
                    o = json.loads(line)
                except ValueError:
                    continue
                if isinstance(o, dict) and pred(o):
                    return o
            if eof:
                raise WardError("ward exited before the expected log line; stderr:\n" + "\n".join(self.stderr_lines()[-30:]))
            left = deadline - time.monotonic()
            if left <= 0:
                raise WardError("timed out waiting for a log line; stderr tail:\n" + "\n".join(self.stderr_lines()[-30:]))
            with self._cond:
                if len(self._lines) == seen and not self._eof:
                    self._cond.wait(min(left, 0.2))

    # -- addresses ---------------------------------------------------------
    @property
    def url(self):
        return "http://%s:%d" % (self.host, self.port)

    def alive(self):
        return self.proc.poll() is None

    # -- lifecycle -----------------------------------------------------------
    def stop(self, sig=signal.SIGTERM, timeout=20.0):
        """Sends sig (SIGTERM), waits, returns the exit status (negative = killed by a signal)."""
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise WardError("ward did not exit within %.0fs of signal %d" % (timeout, sig))
        self._reader.join(5)
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            try:
                self.stop()
            except WardError:
                pass
        return False


def start_ward(args=(), env=None, timeout=20.0, host="127.0.0.1"):
    """Starts `ward serve --host host --port 0 <args>` and waits for its "listening" line.

    env adds to (does not replace) the current environment. Raises WardError (with
    stderr) if ward exits or does not listen within timeout seconds.
    """
    e = dict(os.environ)
    if env:
        e.update(env)
    cmd = [ward_bin(), "serve", "--host", host, "--port", "0"] + list(args)
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=e)
    w = Ward(proc, host)
    try:
        line = w.wait_log(lambda o: o.get("logger") == "ward.server" and o.get("msg") == "listening",
                          timeout=timeout)
    except WardError:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        raise
    w.port = int(line["port"])
    return w


def raw(port, data, timeout=5.0, host="127.0.0.1", shut_write=False):
    """Sends data on a fresh TCP connection and returns every byte read until the
    server closes or timeout seconds pass without data. shut_write half-closes
    after sending (some servers wait for more input otherwise)."""
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        if data:
            s.sendall(data)
        if shut_write:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)
    finally:
        s.close()


def parse_status(resp):
    """Status code of the first response in raw bytes, or None."""
    if not resp.startswith(b"HTTP/1."):
        return None
    try:
        return int(resp.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


def parse_response(resp):
    """Splits the first response in raw bytes into (status, {lower-name: value}, body)
    for Content-Length bodies. Returns (None, {}, b"") when it cannot."""
    head, sep, rest = resp.partition(b"\r\n\r\n")
    if not sep:
        return None, {}, b""
    lines = head.split(b"\r\n")
    status = parse_status(lines[0] + b"\r\n")
    hdrs = {}
    for l in lines[1:]:
        k, _, v = l.partition(b":")
        hdrs[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
    n = int(hdrs.get("content-length", "0") or 0)
    return status, hdrs, rest[:n]


def request(method, url, headers=None, body=None, timeout=10.0):
    """One request over http.client. Returns (status, headers, body bytes); headers is a
    dict with lower-case names (last value wins; use request_full for repeats)."""
    status, hlist, data = request_full(method, url, headers, body, timeout)
    return status, {k.lower(): v for k, v in hlist}, data


def request_full(method, url, headers=None, body=None, timeout=10.0):
    """Like request() but headers come back as a list of (name, value) pairs."""
    u = urllib.parse.urlsplit(url)
    if u.scheme == "https":
        import ssl
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(u.hostname, u.port, timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    path = u.path or "/"
    if u.query:
        path += "?" + u.query
    if isinstance(body, str):
        body = body.encode()
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        headers = dict(headers or {})
        headers.setdefault("Content-Type", "application/json")
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return r.status, r.getheaders(), data
    finally:
        conn.close()


def json_request(method, url, body=None, headers=None, timeout=10.0):
    """request() that decodes a JSON response body (None when it is not JSON)."""
    status, hdrs, data = request(method, url, headers, body, timeout)
    try:
        doc = json.loads(data) if data else None
    except ValueError:
        doc = None
    return status, hdrs, doc


def sse_events(data):
    """Splits a text/event-stream body into the list of `data:` payloads (str)."""
    out = []
    for block in data.decode("utf-8").split("\n\n"):
        for line in block.split("\n"):
            if line.startswith("data:"):
                out.append(line[5:].lstrip(" "))
    return out


class Check:
    """Tiny assertion collector: ok(cond, what) records failures; done() exits 0/1."""

    def __init__(self, name):
        self.name = name
        self.failed = 0
        self.passed = 0

    def ok(self, cond, what):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print("FAIL: %s" % what, flush=True)
        return cond

    def eq(self, got, want, what):
        return self.ok(got == want, "%s: got %r, want %r" % (what, got, want))

    def done(self):
        print("%s: %d passed, %d failed" % (self.name, self.passed, self.failed), flush=True)
        sys.exit(1 if self.failed else 0)
