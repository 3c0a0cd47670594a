#!/usr/bin/env python3
"""`ward serve --jwt-jwks URL`: the JWKS fetched from an issuer, end to end.

- http://127.0.0.1 JWKS server (Python http.server): a JWT signed by the
  served key passes (not 401), one signed by another key is 401;
- https:// JWKS server with an openssl-made self-signed certificate passed by
  --jwt-jwks-ca: the same, and the content of --jwt-jwks-token-file arrives
  as `Authorization: Bearer` at the JWKS server (the server refuses without
  it); without --jwt-jwks-ca the certificate is not trusted (verification is
  on): a warning and 401;
- an unreachable URL at start: ward still starts, logs one clear warning
  (URL without its query string) and answers 401 to JWTs;
- hygiene: neither the bearer token nor any JWT appears in ward's logs.
"""
import base64
import http.server
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wardlib  # noqa: E402

try:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
except ImportError:  # python3-cryptography is in scripts/deps.sh
    rsa = None

FAILS = []
SECRETS = []  # every token used; none may appear in any log
LOGGER = "ward.service.auth"


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILS.append(what)


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def b64u_int(n):
    return b64u(n.to_bytes((n.bit_length() + 7) // 8, "big"))


def jwt_rs256(key, claims, kid):
    h = {"alg": "RS256", "typ": "JWT", "kid": kid}
    signing = b64u(json.dumps(h).encode()) + "." + b64u(json.dumps(claims).encode())
    sig = key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
    tok = signing + "." + b64u(sig)
    SECRETS.append(tok)
    return tok


class JwksServer:
    """Serves one JWKS document on 127.0.0.1; optionally TLS and a required bearer token."""

    def __init__(self, doc, certfile=None, keyfile=None, want_token=None):
        self.doc = json.dumps(doc).encode()
        self.want_token = want_token
        self.seen_auth = []   # Authorization values received
        self.paths = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                a = self.headers.get("Authorization")
                outer.seen_auth.append(a)
                outer.paths.append(self.path)
                if outer.want_token is not None and a != "Bearer " + outer.want_token:
                    body, code = b'{"error":"unauthorized"}', 401
                else:
                    body, code = outer.doc, 200
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        if certfile:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(certfile, keyfile)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def status(w, tok):
    st, h, _ = wardlib.request("GET", w.url + "/v1/models", headers={"Authorization": "Bearer " + tok})
    return st, h.get("x-ext-auth-reason")


def scan_logs(w, label):
    text = "\n".join(w.stderr_lines())
    leaked = [s for s in SECRETS if s and s in text]
    check(not leaked, "%s: no bearer token or JWT in %d log lines" % (label, len(w.stderr_lines())))


def jwks_logs(w):
    return [l for l in w.find_logs(logger=LOGGER) if "JWKS" in str(l.get("msg"))]


def main():
    if rsa is None:
        print("FAIL python3-cryptography is not installed (scripts/deps.sh)")
        return 1
    tmp = tempfile.mkdtemp(prefix="ward-jwks-url-")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    n = key.public_key().public_numbers()
    doc = {"keys": [{"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256",
                     "n": b64u_int(n.n), "e": b64u_int(n.e)}]}
    now = int(time.time())
    claims = {"iss": "https://issuer.test", "aud": "ward", "sub": "system:serviceaccount:demo:client",
              "exp": now + 600, "iat": now - 5}
    good = jwt_rs256(key, claims, "k1")
    bad = jwt_rs256(other, claims, "k1")
    jwt_args = ["--jwt-issuer", "https://issuer.test", "--jwt-audience", "ward"]

    # 1. plain http
    srv = JwksServer(doc)
    try:
        url = "http://127.0.0.1:%d/openid/v1/jwks" % srv.port
        with wardlib.start_ward(["--jwt-jwks", url] + jwt_args) as w:
            st, r = status(w, good)
            check(st != 401, "http JWKS: JWT from the served key passes (got %s %r)" % (st, r))
            st, r = status(w, bad)
            check(st == 401 and r == "invalid token signature", "http JWKS: JWT from another key -> 401 (%s %r)" % (st, r))
            check(srv.paths == ["/openid/v1/jwks"], "http JWKS: fetched once at start, path sent (%r)" % srv.paths)
            check(srv.seen_auth == [None], "http JWKS: no Authorization header without a token file")
            loaded = [l for l in w.find_logs("identities loaded", LOGGER) if l.get("jwks_keys") == 1]
            check(bool(loaded), "http JWKS: startup log counts 1 JWKS key")
            check(not jwks_logs(w), "http JWKS: no warning")
            scan_logs(w, "http JWKS")
    finally:
        srv.close()

    # 2. https with a self-signed certificate and a bearer token file
    crt, pkey = os.path.join(tmp, "jwks.crt"), os.path.join(tmp, "jwks.key")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", pkey, "-out", crt, "-days", "1", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1"], capture_output=True, timeout=60)
    if r.returncode != 0:
        check(False, "openssl made a test certificate: " + r.stderr.decode(errors="replace")[-200:])
    else:
        sa_token = "eyJhbGciOiJSUzI1NiJ9.sa-" + b64u(os.urandom(24)) + ".sig"
        SECRETS.append(sa_token)
        tokfile = os.path.join(tmp, "token")
        with open(tokfile, "w") as f:
            f.write(sa_token + "\n")
        srv = JwksServer(doc, crt, pkey, want_token=sa_token)
        try:
            url = "https://127.0.0.1:%d/keys?audience=ward" % srv.port
            with wardlib.start_ward(["--jwt-jwks", url, "--jwt-jwks-ca", crt, "--jwt-jwks-token-file", tokfile]
                                    + jwt_args) as w:
                st, r = status(w, good)
                check(st != 401, "https JWKS: JWT from the served key passes (got %s %r)" % (st, r))
                st, r = status(w, bad)
                check(st == 401, "https JWKS: JWT from another key -> 401 (got %s)" % st)
                check(srv.seen_auth[:1] == ["Bearer " + sa_token],
                      "https JWKS: the token file's content was sent as Authorization: Bearer")
                check(srv.paths[:1] == ["/keys?audience=ward"], "https JWKS: path and query sent")
                check(not jwks_logs(w), "https JWKS: no warning")
                scan_logs(w, "https JWKS")
            # Without the CA: verification is on, the self-signed certificate is refused.
            srv.seen_auth.clear()
            with wardlib.start_ward(["--jwt-jwks", url, "--jwt-jwks-token-file", tokfile] + jwt_args) as w:
                st, r = status(w, good)
                check(st == 401, "https JWKS without --jwt-jwks-ca: untrusted certificate -> JWT 401 (got %s)" % st)
                warn = jwks_logs(w)
                check(bool(warn) and warn[0].get("level") in ("warn", "warning", "WARN")
                      and "certificate" in str(warn[0].get("error")),
                      "https JWKS without CA: warning names the certificate (%r)" % (warn[:1],))
                check(not srv.seen_auth, "https JWKS without CA: the token was never sent")
                scan_logs(w, "https JWKS without CA")
        finally:
            srv.close()

    # 3. unreachable at start: a port nothing listens on
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = s.getsockname()[1]
    s.close()
    url = "http://127.0.0.1:%d/jwks?secret-query=abc" % dead
    with wardlib.start_ward(["--jwt-jwks", url] + jwt_args) as w:
        st, r = status(w, good)
        check(st == 401, "unreachable JWKS: ward started, JWT -> 401 (got %s %r)" % (st, r))
        warn = jwks_logs(w)
        check(len(warn) == 1, "unreachable JWKS: one warning line (%d)" % len(warn))
        if warn:
            l = warn[0]
            check(l.get("msg") == "JWKS not loaded" and l.get("url") == "http://127.0.0.1:%d/jwks" % dead
                  and "connect" in str(l.get("error")),
                  "unreachable JWKS: warning has the URL without query and the reason (%r)" % l)
        text = "\n".join(w.stderr_lines())
        check("secret-query" not in text, "unreachable JWKS: the query string is not logged")
        st, h, _ = wardlib.request("GET", w.url + "/health")
        check(st == 200, "unreachable JWKS: server is up (/health %s)" % st)
        scan_logs(w, "unreachable JWKS")

    # 4. invalid combinations are refused at start with a clear message
    for args, want in ((["--jwt-jwks", "https://user:pw@127.0.0.1/"], "user information"),
                       (["--jwt-jwks", "http://127.0.0.1:1/", "--jwt-jwks-token-file", "/dev/null"], "https"),
                       (["--jwt-jwks-ca", "/dev/null"], "--jwt-jwks-ca")):
        p = subprocess.run([wardlib.ward_bin(), "serve", "--host", "127.0.0.1", "--port", "0"] + args,
                           capture_output=True, timeout=30)
        err = p.stderr.decode(errors="replace")
        check(p.returncode != 0 and want in err and "pw@" not in err,
              "bad flags %r refused (rc %s, %r)" % (args[-1], p.returncode, err.strip()[-160:]))

    if FAILS:
        print("%d failure(s)" % len(FAILS))
        return 1
    print("all ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
