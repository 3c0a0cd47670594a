"""ward serve over TLS: HTTPS requests, TLS >= 1.2 only, plain HTTP on the
TLS port refused without harm, and the certificate re-read when its files
change (rotation without restart)."""
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import warnings

warnings.simplefilter("ignore", DeprecationWarning)  # TLSv1_1 is named on purpose

sys.path.insert(0, os.path.dirname(__file__))
import wardlib  # noqa: E402

if not shutil.which("openssl"):
    print("SKIP: the openssl command is not installed")
    sys.exit(wardlib.SKIP)

c = wardlib.Check("test_http_tls")
tmp = tempfile.mkdtemp(prefix="ward-tls-")


def make_cert(name, cn):
    cert, key = os.path.join(tmp, name + ".crt"), os.path.join(tmp, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=" + cn],
                   check=True, capture_output=True, timeout=30)
    return cert, key


def peer_cert(port, min_version=None, max_version=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if min_version:
        ctx.minimum_version = min_version
    if max_version:
        ctx.maximum_version = max_version
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        with ctx.wrap_socket(s) as t:
            return t.getpeercert(binary_form=True), t.version()


try:
    cert_a, key_a = make_cert("a", "ward-a")
    cert_b, key_b = make_cert("b", "ward-b")
    live_cert, live_key = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
    shutil.copy(cert_a, live_cert)
    shutil.copy(key_a, live_key)

    with wardlib.start_ward(["--auth", "off", "--tls-cert", live_cert, "--tls-key", live_key]) as w:
        c.eq(w.find_logs("listening", "ward.server")[0].get("tls"), True, "listening line says tls")
        url = "https://127.0.0.1:%d" % w.port
        st, h, body = wardlib.request("GET", url + "/health")
        c.eq(st, 200, "HTTPS /health")
        c.eq(body, b'{"status":"ok"}', "HTTPS body")
        for i in range(3):  # several requests, fresh connections
            c.eq(wardlib.request("GET", url + "/version")[0], 200, "HTTPS request %d" % i)

        der, ver = peer_cert(w.port)
        c.ok(ver in ("TLSv1.2", "TLSv1.3"), "negotiated %s" % ver)
        der12, ver12 = peer_cert(w.port, max_version=ssl.TLSVersion.TLSv1_2)
        c.eq(ver12, "TLSv1.2", "TLS 1.2 accepted")
        try:
            peer_cert(w.port, max_version=ssl.TLSVersion.TLSv1_1)
            c.ok(False, "TLS 1.1 must be refused")
        except (ssl.SSLError, ConnectionResetError, OSError):
            c.ok(True, "TLS 1.1 refused")

        # plain HTTP to the TLS port: refused, server unharmed
        resp = wardlib.raw(w.port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", timeout=3)
        c.ok(b"HTTP/1.1 200" not in resp, "plain HTTP not served on the TLS port")
        c.ok(w.alive(), "alive after plain HTTP on the TLS port")

        # rotation: new files are picked up without a restart (checked at most once a second)
        time.sleep(1.1)
        shutil.copy(cert_b, live_cert + ".new")
        shutil.copy(key_b, live_key + ".new")
        os.replace(live_key + ".new", live_key)
        os.replace(live_cert + ".new", live_cert)
        st_now = time.time() + 5
        os.utime(live_cert, (st_now, st_now))
        os.utime(live_key, (st_now, st_now))
        with open(cert_b, "rb") as f:
            want_b = ssl.PEM_cert_to_DER_cert(f.read().decode())
        got = None
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            got, _ = peer_cert(w.port)
            if got == want_b:
                break
            time.sleep(0.3)
        c.ok(got == want_b, "rotated certificate served")
        c.ok(got != der, "certificate changed")
        c.ok(any(l.get("msg") == "certificate reloaded" for l in w.logs()), "reload logged")
        c.eq(wardlib.request("GET", url + "/health")[0], 200, "HTTPS after rotation")

        # a broken rotation keeps the old pair
        with open(live_cert, "w") as f:
            f.write("not a certificate\n")
        time.sleep(1.2)
        got2, _ = peer_cert(w.port)
        c.eq(got2, want_b, "broken files keep the previous certificate")
        c.eq(w.stop(), 0, "exit 0")
        c.ok(not any("PRIVATE KEY" in l for l in w.stderr_lines()), "no key material in the logs")

    # bad key path: one clear error, exit 1
    r = subprocess.run([wardlib.ward_bin(), "serve", "--auth", "off", "--port", "0", "--tls-cert", cert_a,
                        "--tls-key", os.path.join(tmp, "missing.key")], capture_output=True, text=True, timeout=20)
    c.eq(r.returncode, 1, "missing key file -> exit 1")
    c.ok("missing.key" in r.stderr, "error names the key file")
finally:
    shutil.rmtree(tmp, ignore_errors=True)

c.done()
