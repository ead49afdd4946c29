#!/usr/bin/env bash
# The proxy's routes with plain curl.
#   AZURE_AI_ENDPOINT=http://127.0.0.1:8000 AZURE_AI_KEY=... examples/curl.sh
set -euo pipefail
ENDPOINT="${AZURE_AI_ENDPOINT:-http://127.0.0.1:8000}"
KEY="${AZURE_AI_KEY:-}"
API="api-version=2024-05-01-preview"
auth=()
[ -n "$KEY" ] && auth=(-H "api-key: $KEY")

echo "# GET /info"
curl -sS --fail-with-body "${auth[@]}" "$ENDPOINT/info?$API"
echo

echo "# POST /chat/completions"
curl -sS --fail-with-body "${auth[@]}" -H "content-type: application/json" "$ENDPOINT/chat/completions?$API" \
  -d '{"messages":[{"role":"user","content":"Say hello in five words."}],"max_tokens":32}'
echo

echo "# POST /chat/completions (stream)"
curl -sS -N --fail-with-body "${auth[@]}" -H "content-type: application/json" "$ENDPOINT/chat/completions?$API" \
  -d '{"messages":[{"role":"user","content":"Count to three."}],"max_tokens":16,"stream":true}'

echo "# an error: an api-version the endpoint does not serve"
curl -sS "${auth[@]}" -H "content-type: application/json" "$ENDPOINT/chat/completions?api-version=2023-01-01" \
  -d '{"messages":[{"role":"user","content":"hi"}]}'
echo
