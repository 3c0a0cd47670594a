#!/usr/bin/env bash
# The seed demo's curl requests, verbatim (../shared/seed), against ward serving
# a tiny model as "llama3" with a bearer token: 200 with the token and a
# vLLM-shaped completion; 401 without it (empty body, WWW-Authenticate).
set -euo pipefail
: "${WARD_BIN:?}" "${WARD_SRC:?}"
SEED_DIR="${WARD_SHARED:-}/seed"
if [ -z "${WARD_SHARED:-}" ] || [ ! -d "$SEED_DIR" ]; then
  echo "SKIP: WARD_SHARED (../shared/seed) is not available in this checkout"; exit 77
fi
command -v curl >/dev/null || { echo "SKIP: curl not installed"; exit 77; }
tmp=$(mktemp -d); pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

PYTHONPATH="$WARD_SRC/tests/integration" /usr/bin/python3 -c "import api_model; api_model.make_model('$tmp/m.gguf')"
token="seed-demo-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
WARD_API_KEY="$token" "$WARD_BIN" serve --host 127.0.0.1 --port 0 --model "$tmp/m.gguf" \
  --served-model-name llama3 2>"$tmp/log" &
pid=$!
port=""
for _ in $(seq 100); do
  port=$(grep -o '"msg":"listening".*"port":[0-9]*' "$tmp/log" 2>/dev/null | grep -o '[0-9]*$' || true)
  [ -n "$port" ] && break; sleep 0.1
done
[ -n "$port" ] || { cat "$tmp/log"; fail "ward did not start"; }
infer_url="http://127.0.0.1:$port/v1/completions"

# The request bodies, cut verbatim out of the seed document.
/usr/bin/python3 - "$SEED_DIR" "$tmp" <<'PY'
import glob, sys
text = open(sorted(glob.glob(sys.argv[1] + "/*.txt"))[0]).read()
bodies = []
i = 0
while True:
    i = text.find("-d '{", i)
    if i < 0:
        break
    j = text.index("}'", i)
    bodies.append(text[i + 4:j + 1])
    i = j
assert len(bodies) == 2, len(bodies)
for k, b in enumerate(bodies):
    open("%s/body%d.json" % (sys.argv[2], k), "w").write(b)
PY

# 1. with the bearer token (the seed's first command, minus -k/TLS)
curl -sv "$infer_url" \
-H "Authorization: Bearer $token" \
-H "Content-Type: application/json" \
-d "$(cat "$tmp/body0.json")" >"$tmp/out" 2>"$tmp/err" || fail "curl failed"
grep -q '^< HTTP/1.1 200' "$tmp/err" || { cat "$tmp/err" "$tmp/out"; fail "expected 200"; }
grep -qi '^< content-type: application/json' "$tmp/err" || fail "content-type"
! grep -q "$token" "$tmp/log" || fail "the token appears in the server log"
/usr/bin/python3 - "$tmp/out" <<'PY' || fail "response shape"
import json, re, sys
d = json.load(open(sys.argv[1]))
assert re.fullmatch(r"cmpl-[0-9a-f]{32}", d["id"]), d["id"]
assert d["object"] == "text_completion" and d["model"] == "llama3", d
assert isinstance(d["created"], int)
c = d["choices"][0]
assert c["index"] == 0 and isinstance(c["text"], str) and c["finish_reason"] in ("stop", "length"), c
assert "string" not in c["text"], "stop string leaked"
u = d["usage"]
assert u["completion_tokens"] <= 128 and u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"], u
assert c["logprobs"] is not None and len(c["logprobs"]["tokens"]) == u["completion_tokens"], "logprobs: 0 -> sampled logprobs"
PY

# 2. without the token (the seed's second command): 401, empty body
code=$(curl -s -o "$tmp/out2" -D "$tmp/h2" -w '%{http_code}' "$infer_url" \
-H "Content-Type: application/json" \
-d "$(cat "$tmp/body1.json")")
[ "$code" = 401 ] || { cat "$tmp/h2" "$tmp/out2"; fail "expected 401, got $code"; }
grep -qi '^www-authenticate: Bearer' "$tmp/h2" || fail "WWW-Authenticate missing"
echo "test_api_seed_curl: ok"
