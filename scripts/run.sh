#!/usr/bin/env bash
# `make run`: serve the default model (or $WARD_MODEL) on http://127.0.0.1:8080
# behind an API key from the local key store. On first start it creates the key
# and prints it once, with the curl commands to try it; later starts reuse the
# store and say how to make a new key.
set -euo pipefail
cd "$(dirname "$0")/.."

WARD=${WARD:-build/ward}
MODEL=${WARD_MODEL:-models/default.gguf}
HOST=${WARD_HOST:-127.0.0.1}
PORT=${WARD_PORT:-8080}
STATE=${WARD_HOME:-.ward}
KEYS="$STATE/keys.json"
URL="http://$HOST:$PORT"

if [ ! -f "$MODEL" ]; then
  echo "ward: model file '$MODEL' not found (set WARD_MODEL=/path/model.gguf)" >&2
  exit 1
fi
mkdir -p "$STATE"
chmod 700 "$STATE"

if [ ! -s "$KEYS" ]; then
  # The key is printed once, here, and never stored in plaintext.
  key=$("$WARD" keys create default --keys-file "$KEYS" | head -n 1)
  cat <<MSG
API key: $key

ward is starting on $URL with model $MODEL. Keep the key: it is shown only once.

Try the seed's request with the key (200 and a completion):

  curl -s $URL/v1/completions \\
    -H "Authorization: Bearer $key" \\
    -H "Content-Type: application/json" \\
    -d '{"model": "$(basename "$MODEL" .gguf)", "prompt": "What is Kubernetes?", "max_tokens": 128, "temperature": 1, "top_p": 1, "n": 1, "stream": false, "logprobs": 0, "echo": false, "stop": ["string"], "presence_penalty": 0, "frequency_penalty": 0, "best_of": 1, "user": "string", "top_k": -1, "ignore_eos": false, "use_beam_search": false, "stop_token_ids": [0], "skip_special_tokens": true, "spaces_between_special_tokens": true, "repetition_penalty": 1, "min_p": 0, "include_stop_str_in_output": false, "length_penalty": 1}'

And without it (401, WWW-Authenticate and X-Ext-Auth-Reason headers):

  curl -si $URL/v1/completions -H "Content-Type: application/json" \\
    -d '{"model": "$(basename "$MODEL" .gguf)", "prompt": "What is Kubernetes?", "max_tokens": 512}'

MSG
else
  cat <<MSG
ward is starting on $URL with model $MODEL, using the key store $KEYS.
Make a new key with:  $WARD keys create NAME --keys-file $KEYS
List or revoke keys:  $WARD keys list --keys-file $KEYS ; $WARD keys revoke NAME --keys-file $KEYS

MSG
fi

exec "$WARD" serve --model "$MODEL" --keys-file "$KEYS" --host "$HOST" --port "$PORT" \
  --served-model-name "${WARD_SERVED_MODEL_NAME:-$(basename "$MODEL" .gguf)}"
