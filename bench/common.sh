# Shared by the benchmark scripts (sourced, not run): the mock engine's fixed answers, the
# nginx configuration that serves them, free ports and waiting for a listener.

MODELS_JSON='{"object":"list","data":[{"id":"m","object":"model","owned_by":"vllm"}]}'
CHAT_JSON='{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":9,"total_tokens":18}}'

# Writes an nginx configuration to file $1 (pid and error log in directory $2) serving
# CHAT_JSON on port $3, with /v1/models for the proxy's discovery.
write_json_upstream() {
  cat >"$1" <<CONF
worker_processes 1;
pid $2/upstream.pid;
error_log $2/upstream-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000000;
  server {
    listen 127.0.0.1:$3;
    location = /v1/models { default_type application/json; return 200 '$MODELS_JSON'; }
    location / { default_type application/json; return 200 '$CHAT_JSON'; }
  }
}
CONF
}

# N free TCP ports on 127.0.0.1, space-separated.
free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# Waits until something listens on port $1, for at most $2 tenths of a second (default 100).
wait_port() {
  local _
  for _ in $(seq "${2:-100}"); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2; return 1
}
