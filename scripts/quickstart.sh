#!/usr/bin/env bash
# One command from a fresh clone to an Azure AI endpoint answering through the Azure SDK:
#   builds the proxy (release), installs the CPU engine (llama.cpp + SmolLM2-135M, cached),
#   starts the engine and the proxy on 127.0.0.1:8000 (no key), waits until it is ready, and
#   runs examples/chat.py and examples/stream.py with the azure-ai-inference SDK.
#
#   scripts/quickstart.sh             leave the engine and the proxy running afterwards
#   scripts/quickstart.sh --no-keep   stop them when done
#   scripts/quickstart.sh --stop      stop the ones a previous run left running
#
# Environment: AOP_QUICKSTART_PORT (proxy, default 8000), AOP_QUICKSTART_ENGINE_PORT (default 8081).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${AOP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/azure-openai-proxy}"
STATE="$CACHE/quickstart"
PORT="${AOP_QUICKSTART_PORT:-8000}"
ENGINE_PORT="${AOP_QUICKSTART_ENGINE_PORT:-8081}"
ENDPOINT="http://127.0.0.1:$PORT"

keep=1
case "${1:-}" in
  "") ;;
  --no-keep) keep=0 ;;
  --stop) stop_only=1 ;;
  -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
  *) echo "usage: $0 [--no-keep | --stop]" >&2; exit 2 ;;
esac

step() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'quickstart: %s\n' "$*" >&2; exit 1; }

# Stops the processes a previous run recorded, checking each PID still runs what we started.
stop_recorded() {
  local f pid what
  for f in "$STATE/engine.pid" "$STATE/proxy.pid"; do
    [ -s "$f" ] || continue
    pid="$(cat "$f")"
    what="$(basename "$f" .pid)"
    if kill -0 "$pid" 2>/dev/null && grep -qE 'llama_cpp|azure-openai-proxy' "/proc/$pid/cmdline" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      printf 'stopped the %s (PID %s)\n' "$what" "$pid" >&2
    fi
    rm -f "$f"
  done
}

if [ -n "${stop_only:-}" ]; then
  stop_recorded
  exit 0
fi

# Waits until URL answers 200; fails early if PID exits.
wait_for() {
  local url="$1" pid="$2" what="$3" log="$4" seconds="${5:-180}"
  local deadline=$((SECONDS + seconds))
  while [ $SECONDS -lt $deadline ]; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 30 "$log" >&2 || true
      die "the $what exited before $url answered (log: $log)"
    fi
    if python3 - "$url" <<'PYEOF' 2>/dev/null; then
import sys, urllib.request
sys.exit(0 if urllib.request.urlopen(sys.argv[1], timeout=2).status == 200 else 1)
PYEOF
      return 0
    fi
    sleep 0.5
  done
  tail -n 30 "$log" >&2 || true
  die "the $what did not answer at $url within $seconds s (log: $log)"
}

port_busy() {
  python3 - "$1" <<'PYEOF'
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(0)
sys.exit(1)
PYEOF
}

command -v cargo >/dev/null || die "cargo is not installed (https://rustup.rs)"
command -v python3 >/dev/null || die "python3 is not installed"
mkdir -p "$STATE"

step "1/5 building the proxy (cargo build --release)"
(cd "$REPO" && cargo build --release --bin azure-openai-proxy)
PROXY_BIN="$REPO/target/release/azure-openai-proxy"

step "2/5 installing the engine: llama.cpp's server + SmolLM2-135M (cached in $CACHE)"
bash "$REPO/scripts/engine.sh" install

step "3/5 preparing the Python client (azure-ai-inference, in a cached venv)"
# shellcheck source=conformance/venv.sh
. "$REPO/conformance/venv.sh"
conformance_venv

step "4/5 starting the engine on 127.0.0.1:$ENGINE_PORT and the proxy on $ENDPOINT"
stop_recorded
port_busy "$ENGINE_PORT" && die "port $ENGINE_PORT is in use; set AOP_QUICKSTART_ENGINE_PORT to a free one"
port_busy "$PORT" && die "port $PORT is in use; set AOP_QUICKSTART_PORT to a free one"

ENGINE_LOG="$STATE/engine.log"
PROXY_LOG="$STATE/proxy.log"
nohup bash "$REPO/scripts/engine.sh" chat "$ENGINE_PORT" >"$ENGINE_LOG" 2>&1 </dev/null &
ENGINE_PID=$!
echo "$ENGINE_PID" >"$STATE/engine.pid"
finished=0
# A failed run never leaves processes behind; a finished one keeps them unless --no-keep.
trap 'if [ "$keep" = 0 ] || [ "$finished" = 0 ]; then stop_recorded; fi' EXIT
wait_for "http://127.0.0.1:$ENGINE_PORT/v1/models" "$ENGINE_PID" engine "$ENGINE_LOG"

nohup "$PROXY_BIN" --host 127.0.0.1 --port "$PORT" --upstream-url "http://127.0.0.1:$ENGINE_PORT" \
  >"$PROXY_LOG" 2>&1 </dev/null &
PROXY_PID=$!
echo "$PROXY_PID" >"$STATE/proxy.pid"
wait_for "$ENDPOINT/ready" "$PROXY_PID" proxy "$PROXY_LOG" 60
echo "ready: $ENDPOINT (engine PID $ENGINE_PID, proxy PID $PROXY_PID)" >&2

step "5/5 asking through the azure-ai-inference SDK"
export AZURE_AI_ENDPOINT="$ENDPOINT"
unset AZURE_AI_KEY
echo "--- examples/chat.py \"What is the capital of France?\""
"$CONFORMANCE_PY" "$REPO/examples/chat.py" "What is the capital of France?"
echo "--- examples/stream.py \"Write one sentence about the sea.\""
"$CONFORMANCE_PY" "$REPO/examples/stream.py" "Write one sentence about the sea."

finished=1
if [ "$keep" = 1 ]; then
  cat <<EOF

The endpoint stays up at $ENDPOINT (no key; 127.0.0.1 only).
  engine: PID $ENGINE_PID, log $ENGINE_LOG
  proxy:  PID $PROXY_PID, log $PROXY_LOG
Try:   AZURE_AI_ENDPOINT=$ENDPOINT $CONFORMANCE_PY examples/tools.py
       AZURE_AI_ENDPOINT=$ENDPOINT examples/curl.sh
Stop:  scripts/quickstart.sh --stop     (or: kill $PROXY_PID $ENGINE_PID)
EOF
else
  echo
  echo "done; stopping the engine and the proxy (--no-keep)"
fi
