#!/usr/bin/env python3
"""Query a ward server the way the seed's notebook queries its model server.

It sends the seed's completion request ("What is Kubernetes?") to
$WARD_URL/v1/completions twice: with `Authorization: Bearer $WARD_API_KEY`
(expect 200 and a completion) and without any token (expect 401 with
`WWW-Authenticate: Bearer realm=...`). It prints each status and the text or
the denial reason, never the key. Exit status 0 when both answers are as
expected.

    WARD_URL=http://127.0.0.1:8080 WARD_API_KEY=... python3 examples/rest_requests.py

Optional: WARD_MODEL_NAME (default: the first model the server lists),
WARD_CA_BUNDLE (a CA file for https), WARD_INSECURE=1 (skip TLS verification,
like the seed's `curl -k`; only for self-signed test clusters).

The `# %%` markers split it into the cells of examples/rest_requests.ipynb,
which holds the same code.
"""

# %%
import os
import sys

import requests

url = os.environ.get("WARD_URL", "http://127.0.0.1:8080").rstrip("/")
token = os.environ.get("WARD_API_KEY", "")
infer_endpoint = url + "/v1/completions"
if os.environ.get("WARD_CA_BUNDLE"):
    verify = os.environ["WARD_CA_BUNDLE"]
else:
    verify = os.environ.get("WARD_INSECURE") != "1"
if not token:
    print("WARD_API_KEY is not set: the first request will be refused too")

model = os.environ.get("WARD_MODEL_NAME", "")
if not model:
    # /v1/models is protected like every /v1 path, so ask with the token.
    r = requests.get(url + "/v1/models", headers={"Authorization": "Bearer " + token},
                     timeout=30, verify=verify)
    if r.status_code == 200 and r.json().get("data"):
        model = r.json()["data"][0]["id"]
    else:
        model = "llama3"
print("endpoint:", infer_endpoint, "model:", model)

# The seed's request body (vLLM's completion parameters).
body = {
    "model": model,
    "prompt": "What is Kubernetes?",
    "max_tokens": 128,
    "temperature": 1,
    "top_p": 1,
    "n": 1,
    "stream": False,
    "logprobs": 0,
    "echo": False,
    "stop": ["string"],
    "presence_penalty": 0,
    "frequency_penalty": 0,
    "best_of": 1,
    "user": "string",
    "top_k": -1,
    "ignore_eos": False,
    "use_beam_search": False,
    "stop_token_ids": [0],
    "skip_special_tokens": True,
    "spaces_between_special_tokens": True,
    "repetition_penalty": 1,
    "min_p": 0,
    "include_stop_str_in_output": False,
    "length_penalty": 1,
}


def show(label, resp):
    """Prints the status line and the completion text or the denial reason."""
    print("%s: %d %s" % (label, resp.status_code, resp.reason))
    if resp.status_code == 200:
        doc = resp.json()
        print("object:", doc.get("object"), "model:", doc.get("model"))
        print("text:", doc["choices"][0]["text"])
    else:
        for h in ("WWW-Authenticate", "X-Ext-Auth-Reason"):
            if h in resp.headers:
                print("%s: %s" % (h, resp.headers[h]))
        if resp.content:
            print("body:", resp.text[:500])


# %%
# With the bearer token: 200 and a completion.
with_token = requests.post(infer_endpoint, json=body, timeout=300, verify=verify,
                           headers={"Authorization": "Bearer " + token})
show("with token", with_token)

# %%
# Without a token: 401 Unauthorized, as in the seed.
without_token = requests.post(infer_endpoint, json=body, timeout=300, verify=verify)
show("without token", without_token)

# %%
ok = with_token.status_code == 200 and without_token.status_code == 401
print("result:", "as expected" if ok else "UNEXPECTED")

# %% script only (the notebook ends with the cell above)
if __name__ == "__main__":
    sys.exit(0 if ok else 1)
