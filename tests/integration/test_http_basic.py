"""ward serve: health/version endpoints, 404/405, request ids, keep-alive,
HTTP/1.0, HEAD, access log shape, CLI errors."""
import json
import os
import re
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import wardlib  # noqa: E402

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
c = wardlib.Check("test_http_basic")

# ---- CLI ----
b = wardlib.ward_bin()
r = subprocess.run([b, "serve", "--help"], capture_output=True, text=True, timeout=10)
c.eq(r.returncode, 0, "serve --help exit")
c.ok("--max-header-bytes" in r.stdout and "--tls-cert" in r.stdout, "help lists flags")
for bad in (["--bogus", "1"], ["--port", "70000"], ["--port", "12a"], ["--threads", "0"], ["--log-level", "loud"],
            ["--port"], ["--tls-cert", "x.pem"], ["stray"]):
    r = subprocess.run([b, "serve"] + bad, capture_output=True, text=True, timeout=10)
    c.eq(r.returncode, 2, "exit code for %r" % bad)
    c.eq(len(r.stderr.strip().splitlines()), 1, "one stderr line for %r" % bad)

SECRET = "sk-test-DO-NOT-LOG-0123456789"

# --auth off: these tests are about the HTTP layer (auth has its own)
HTTP_ONLY = ["--auth", "off"]

with wardlib.start_ward(HTTP_ONLY) as w:
    c.ok(w.port > 0, "listening line carries the port")
    lst = w.find_logs("listening", "ward.server")
    c.eq(len(lst), 1, "exactly one listening line")
    c.eq(lst[0].get("host"), "127.0.0.1", "listening host")

    # ---- endpoints ----
    for path, want in (("/health", {"status": "ok"}), ("/v2/health/live", {"live": True}),
                       ("/v2/health/ready", {"ready": True})):
        st, h, body = wardlib.request("GET", w.url + path)
        c.eq(st, 200, path + " status")
        c.eq(json.loads(body), want, path + " body")
        c.eq(h.get("content-type"), "application/json", path + " content-type")
        c.eq(h.get("server"), "ward", path + " Server header")
        c.eq(h.get("content-length"), str(len(body)), path + " Content-Length")
    st, h, body = wardlib.request("GET", w.url + "/version")
    c.eq(st, 200, "/version status")
    c.ok(re.match(r"^\d+\.\d+\.\d+", json.loads(body).get("version", "")), "/version body")

    st, h, body = wardlib.request("GET", w.url + "/nope?x=1")
    c.eq(st, 404, "unknown path 404")
    e = json.loads(body).get("error", {})
    c.ok(set(e) == {"message", "type", "param", "code"} and e["param"] is None, "404 OpenAI error shape")

    st, h, body = wardlib.request("POST", w.url + "/health", body=b"{}")
    c.eq(st, 405, "wrong method 405")
    c.eq(h.get("allow"), "GET, HEAD", "405 Allow header")
    c.ok("error" in json.loads(body), "405 error body")

    st, h, body = wardlib.request("HEAD", w.url + "/health")
    c.eq(st, 200, "HEAD status")
    c.eq(body, b"", "HEAD has no body")
    c.eq(h.get("content-length"), "15", "HEAD Content-Length of the GET body")

    # ---- request ids ----
    st, h, _ = wardlib.request("GET", w.url + "/health", headers={"X-Request-Id": "trace-1.A_b"})
    c.eq(h.get("x-request-id"), "trace-1.A_b", "sane request id echoed")
    for insane in ("bad id", "x" * 129, "a/b", "\u00e9t\u00e9".encode().decode("latin-1"), "a;b"):
        st, h, _ = wardlib.request("GET", w.url + "/health", headers={"X-Request-Id": insane})
        c.eq(st, 200, "status with insane id %r" % insane[:20])
        c.ok(UUID4.match(h.get("x-request-id", "")), "insane id %r replaced by a UUIDv4" % insane[:20])
    st, h, _ = wardlib.request("GET", w.url + "/health")
    c.ok(UUID4.match(h.get("x-request-id", "")), "missing id -> UUIDv4")
    c.eq(len(set(wardlib.request("GET", w.url + "/health")[1]["x-request-id"] for _ in range(5))), 5,
         "fresh ids differ")

    # ---- keep-alive (1.1 default) ----
    s = socket.create_connection(("127.0.0.1", w.port), timeout=5)
    for i in range(3):
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while b'{"status":"ok"}' not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        c.ok(data.startswith(b"HTTP/1.1 200 OK\r\n"), "keep-alive request %d answered" % i)
        c.ok(b"Connection: close" not in data, "keep-alive response %d keeps the connection" % i)
    s.close()

    # ---- HTTP/1.0 ----
    resp = wardlib.raw(w.port, b"GET /health HTTP/1.0\r\n\r\n")
    c.eq(wardlib.parse_status(resp), 200, "HTTP/1.0 request")
    c.ok(b"Connection: close" in resp, "HTTP/1.0 closes by default")
    s = socket.create_connection(("127.0.0.1", w.port), timeout=5)
    s.sendall(b"GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    data = s.recv(4096)
    c.ok(b"Connection: keep-alive" in data, "HTTP/1.0 keep-alive acknowledged")
    s.sendall(b"GET /version HTTP/1.0\r\n\r\n")
    data2 = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data2 += chunk
    c.ok(b'"version"' in data2, "second HTTP/1.0 request on the kept connection")
    s.close()

    # ---- access log ----
    wardlib.request("GET", w.url + "/v2/health/live?token=" + SECRET,
                    headers={"Authorization": "Bearer " + SECRET, "X-Request-Id": "logcheck-1"})
    line = w.wait_log(lambda o: o.get("msg") == "request" and o.get("request id") == "logcheck-1")
    keys = list(line.keys())
    c.eq(keys[:10], ["level", "ts", "logger", "msg", "request id", "method", "path", "status", "duration_ms",
                     "bytes"], "access log field order")
    c.eq(line["logger"], "ward.http", "access logger")
    c.eq(line["path"], "/v2/health/live", "path without the query string")
    c.eq(line["status"], 200, "logged status")
    c.ok(isinstance(line["duration_ms"], float), "duration_ms is a float")
    c.eq(line["bytes"], len(b'{"live":true}'), "logged bytes")

    code = w.stop()
    c.eq(code, 0, "SIGTERM exit code")
    allerr = "\n".join(w.stderr_lines())
    c.ok(SECRET not in allerr, "secret never appears in the logs")
    c.ok(all(json.loads(l) is not None for l in w.stderr_lines()), "every stderr line is JSON")

# ---- several event loops (SO_REUSEPORT) ----
with wardlib.start_ward(HTTP_ONLY + ["--threads", "3"]) as w:
    statuses = [wardlib.request("GET", w.url + "/health")[0] for _ in range(30)]
    c.eq(statuses, [200] * 30, "30 requests over 3 loops")
    c.eq(w.stop(), 0, "multi-loop exit 0")

c.done()
