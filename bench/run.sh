#!/usr/bin/env bash
# Benchmark: azure-openai-proxy against a direct connection and against nginx
# as a plain reverse proxy, all on this machine. See docs/benchmarks.md.
#
#   bench/run.sh          full run (about 17 minutes once the tools are installed)
#   bench/run.sh quick    short run (about 2 minutes)
#
# Environment:
#   BENCH_BIN=path        use this proxy binary instead of building one
#   BENCH_PGO=0           measure `cargo build --release` instead of the profile-guided build
#                         (scripts/build-pgo.sh, which the container images ship); with PGO the
#                         plain build also runs in the JSON throughput rounds
#   BENCH_OUT=dir         where results and logs go (default: a new dir under /tmp)
#   BENCH_RATE=N          fixed request rate of the open-loop latency test (default 2000/s)
#   BENCH_CONNS=N         wrk connections (default 64)
#   BENCH_ROUNDS=N        rounds of the throughput and fixed-rate tests (default 5 in full mode)
#   BENCH_IDLE_POLL=0     skip the second streaming pass with idle polling (see below)
#
# Rounds: the throughput and fixed-rate latency tests run ROUNDS times, the paths taking turns
# within each round (direct, nginx, ours, relay, then again), so that a slow stretch of a shared
# machine falls on all of them alike; the report gives medians and each round's ours/nginx.
#
# Like against like: ours logs one line per request by default, so each request is also
# measured through nginx with an access log (buffered, 64 kB), and the short JSON request through
# a second instance of ours with RUST_LOG=warn (no access log); the targets compare ours and
# nginx both with a log (and for the short request both without), and, strictest, ours with its
# log against nginx without.
#
# CPU placement (2 cores): the proxy under test (nginx or ours) runs on CPU 0;
# the load generators and the upstreams run on CPU 1.
#
# Idle polling: on a KVM guest whose cpuidle driver is haltpoll with guest_halt_poll_ns 0 (an
# idle CPU halts at once, and waking it costs tens of microseconds), the streaming latency test
# runs a second time with guest_halt_poll_ns at the kernel's default (200000: an idle CPU polls
# for up to 200 us before halting), as root only, and the setting is put back on exit. Both
# passes are reported.
#
# Installs what it lacks: nginx-light and wrk (apt, as root), oha (cargo
# install --locked, into ~/.cargo/bin; about 9 minutes the first time on
# 2 cores) and a Python venv with uvloop and h2 under
# ~/.cache/azure-openai-proxy/bench-venv.
set -euo pipefail

MODE=${1:-full}
case "$MODE" in
  full) DUR=6; WARM=2; STREAMS=200; MEM_NGINX=1; ROUNDS=${BENCH_ROUNDS:-5} ;;
  quick) DUR=3; WARM=1; STREAMS=50; MEM_NGINX=0; ROUNDS=${BENCH_ROUNDS:-1} ;;
  *) echo "usage: $0 [full|quick]" >&2; exit 2 ;;
esac
RATE=${BENCH_RATE:-2000}
CONNS=${BENCH_CONNS:-64}
HOLD_SMALL=1000
HOLD_LARGE=10000

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
OUT=${BENCH_OUT:-$(mktemp -d /tmp/aop-bench.XXXXXX)}
mkdir -p "$OUT"
RES="$OUT/results.env"
: > "$RES"
# shellcheck source=bench/common.sh
. "$BENCH_DIR/common.sh"
VENV="$HOME/.cache/azure-openai-proxy/bench-venv"
PY="$VENV/bin/python"
OHA=""

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
put() { echo "$1=$2" >> "$RES"; }

# ---------------------------------------------------------------- tools
install_tools() {
  local need_apt=()
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)
  command -v wrk >/dev/null || need_apt+=(wrk)
  command -v taskset >/dev/null || need_apt+=(util-linux)
  command -v ss >/dev/null || need_apt+=(iproute2)
  command -v pgrep >/dev/null || need_apt+=(procps)
  command -v curl >/dev/null || need_apt+=(curl)
  python3 -c 'import ensurepip, venv' 2>/dev/null || need_apt+=(python3-venv)
  if [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "need root to apt-get install ${need_apt[*]}" >&2; exit 1
    fi
    log "apt-get install ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq "${need_apt[@]}" >"$OUT/apt.log" 2>&1 || {
      apt-get update -qq >>"$OUT/apt.log" 2>&1
      apt-get install -y -qq "${need_apt[@]}" >>"$OUT/apt.log" 2>&1
    }
  fi
  export PATH="$PATH:/usr/sbin:$HOME/.cargo/bin"
  if command -v oha >/dev/null; then
    OHA=$(command -v oha)
  else
    log "cargo install oha --locked (first time only; takes several minutes)"
    if cargo install oha --locked >"$OUT/oha-install.log" 2>&1; then
      OHA="$HOME/.cargo/bin/oha"
    else
      echo "cargo install oha failed: see $OUT/oha-install.log" >&2; exit 1
    fi
  fi
  if ! "$PY" -c 'import uvloop, h2' 2>/dev/null; then
    log "creating $VENV (uvloop, h2)"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q uvloop h2 >"$OUT/pip.log" 2>&1
  fi
}

# ---------------------------------------------------------------- processes
PIDS=()
NGINX_WORKERS=()
HALT_POLL=/sys/module/haltpoll/parameters/guest_halt_poll_ns
HALT_POLL_WAS=""
cleanup() {
  local pid _ alive
  if [ -n "$HALT_POLL_WAS" ]; then echo "$HALT_POLL_WAS" > "$HALT_POLL" 2>/dev/null || true; fi
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 50); do
    alive=0
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for pid in "${PIDS[@]}" "${NGINX_WORKERS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

forget() { # removes a PID from PIDS after it was stopped
  local keep=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}
stop() {
  kill -TERM "$1" 2>/dev/null || true
  local _
  for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  forget "$1"
}
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
conns_to() { ss -Htn state established "( sport = :$1 )" | wc -l; }
wait_conns_below() { # port, count
  local _
  for _ in $(seq 150); do [ "$(conns_to "$1")" -lt "$2" ] && return 0; sleep 0.1; done
  return 0
}


# ---------------------------------------------------------------- payloads
BODY='{"messages":[{"role":"user","content":"Hello"}],"model":"m"}'
SBODY='{"messages":[{"role":"user","content":"Hello"}],"model":"m","stream":true}'
AZ_PATH='/chat/completions?api-version=2024-05-01-preview'
# The route and the headers of the openai SDK's AzureOpenAI client (bench/post-sdk.lua).
SDK_PATH='/openai/deployments/m/chat/completions?api-version=2024-10-21'
OAI_PATH='/v1/chat/completions'
# A long conversation (32 messages, about 64 kB), as real chat requests with context are: what
# the proxy checks grows with the body, what nginx does barely does.
BIG_BODY=$(python3 -c '
import json
text = " ".join(["the quick brown fox jumps over the lazy dog, \"quoted\" and caf\u00e9"] * 30)
msgs = [{"role": ("user", "assistant")[i % 2], "content": f"{i}: {text}"} for i in range(32)]
print(json.dumps({"messages": msgs, "temperature": 0.5, "max_tokens": 100}))')
sse_event() { # content, finish_reason (JSON), role part
  printf 'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"m","choices":[{"index":0,"delta":{%s"content":"%s"},"finish_reason":%s}]}\\n\\n' "$3" "$1" "$2"
}
SSE_TEXT="$(sse_event "" null '"role":"assistant",')$(sse_event Hello null "")$(sse_event '!' null "")$(sse_event ' How' null "")$(sse_event ' can' null "")$(sse_event ' I help?' '"stop"' "")data: [DONE]\\n\\n"

# ---------------------------------------------------------------- configs
write_nginx_upstream() {
  cat > "$OUT/nginx-upstream.conf" <<EOF
worker_processes 1;
worker_rlimit_nofile 19000;
pid $OUT/nginx-upstream.pid;
error_log $OUT/nginx-upstream-error.log warn;
events { worker_connections 18000; }
http {
  access_log off;
  keepalive_requests 1000000000;
  keepalive_timeout 600s;
  server {
    listen 127.0.0.1:$UP_JSON backlog=4096;
    location = /v1/models { default_type application/json; return 200 '$MODELS_JSON'; }
    location / { default_type application/json; return 200 '$CHAT_JSON'; }
  }
  server {
    listen 127.0.0.1:$UP_SSE backlog=4096;
    location = /v1/models { default_type application/json; return 200 '$MODELS_JSON'; }
    location / { default_type text/event-stream; return 200 '$SSE_TEXT'; }
  }
}
EOF
}

write_nginx_proxy() {
  cat > "$OUT/nginx-proxy.conf" <<EOF
worker_processes 1;
worker_rlimit_nofile 19500;
pid $OUT/nginx-proxy.pid;
error_log $OUT/nginx-proxy-error.log warn;
events { worker_connections 19000; }
http {
  access_log off;
  keepalive_requests 1000000000;
  keepalive_timeout 600s;
  proxy_http_version 1.1;
  proxy_set_header Connection "";
  proxy_buffering off;
  proxy_read_timeout 600s;
  upstream up_json { server 127.0.0.1:$UP_JSON; keepalive 256; keepalive_requests 1000000000; }
  upstream up_sse  { server 127.0.0.1:$UP_SSE;  keepalive 256; keepalive_requests 1000000000; }
  upstream up_lat  { server 127.0.0.1:$UP_LAT;  keepalive 64; }
  upstream up_hold { server 127.0.0.1:$UP_HOLD; keepalive 64; }
  server { listen 127.0.0.1:$NG_JSON backlog=4096; location / { proxy_pass http://up_json; } }
  # The same with an access log, as nginx is run in production: one line per request,
  # written in 64 kB batches (ours also batches its lines).
  server {
    listen 127.0.0.1:$NG_LOG backlog=4096;
    access_log $OUT/nginx-access.log combined buffer=64k flush=1s;
    location / { proxy_pass http://up_json; }
  }
  server {
    listen 127.0.0.1:$NG_SSE_LOG backlog=4096;
    access_log $OUT/nginx-access-sse.log combined buffer=64k flush=1s;
    location / { proxy_pass http://up_sse; }
  }
  server { listen 127.0.0.1:$NG_SSE  backlog=4096; location / { proxy_pass http://up_sse; } }
  server { listen 127.0.0.1:$NG_LAT  backlog=4096; location / { proxy_pass http://up_lat; } }
  server { listen 127.0.0.1:$NG_HOLD1 backlog=4096; location / { proxy_pass http://up_hold; } }
  server { listen 127.0.0.1:$NG_HOLD2 backlog=4096 http2; location / { proxy_pass http://up_hold; } }
}
EOF
}

start_nginx() { # cpu, conf; sets LAST_PID to the master's PID
  taskset -c "$1" nginx -p "$OUT" -c "$2" -g 'daemon off;' >>"$OUT/nginx-stdout.log" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

OUR_PID=""
start_ours() { # upstream port, listen port, log name; env: OUR_LOG (RUST_LOG), OUR_BIN (binary)
  env ${OUR_LOG:+RUST_LOG=$OUR_LOG} taskset -c 0 "${OUR_BIN:-$BIN}" --port "$2" --upstream-url "http://127.0.0.1:$1" --engine vllm \
    --model-type chat-completion --model-name m >"$OUT/$3.log" 2>&1 &
  OUR_PID=$!
  PIDS+=("$OUR_PID")
  wait_port "$2"
}

check_ok() { # url body -> fails loudly unless 200
  local code
  code=$(curl -s -o "$OUT/check.out" -w '%{http_code}' -m 5 -X POST -H 'content-type: application/json' -d "$2" "$1" || true)
  if [ "$code" != 200 ]; then
    echo "sanity check failed: POST $1 answered $code: $(head -c 300 "$OUT/check.out")" >&2
    exit 1
  fi
}

# ---------------------------------------------------------------- measurements
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run_wrk() { # key, url, body, [PID of the proxy under test, to measure its CPU time], [wrk script]
  local f="$OUT/wrk-$1.txt" t0=0 t1=0 s0 s1 script="$BENCH_DIR/${5:-post.lua}"
  WRK_BODY="$3" taskset -c 1 wrk -t1 -c"$CONNS" -d"${WARM}s" -s "$script" "$2" >/dev/null 2>&1 || true
  [ -n "${4:-}" ] && t0=$(cpu_ticks "$4")
  s0=$(date +%s%N)
  WRK_BODY="$3" taskset -c 1 wrk -t1 -c"$CONNS" -d"${DUR}s" --latency -s "$script" "$2" >"$f" 2>&1
  s1=$(date +%s%N)
  if [ -n "${4:-}" ]; then
    t1=$(cpu_ticks "$4")
    local reqs hz
    reqs=$(awk '/requests in/ {print $1}' "$f")
    hz=$(getconf CLK_TCK)
    put "cpu_$1" "$(awk -v t=$((t1 - t0)) -v hz="$hz" -v ns=$((s1 - s0)) 'BEGIN {printf "%.0f", 100 * t / hz / (ns / 1e9)}')"
    put "cpu_us_$1" "$(awk -v t=$((t1 - t0)) -v hz="$hz" -v n="$reqs" 'BEGIN {printf "%.1f", 1e6 * t / hz / n}')"
  fi
  local rps non2xx sockerr
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$f")
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$f"); non2xx=${non2xx:-0}
  sockerr=$(awk '/Socket errors/ {s=0; for (i=1; i<=NF; i++) if ($i ~ /^[0-9]+,?$/) s+=$i; print s}' "$f")
  sockerr=${sockerr:-0}
  put "rps_$1" "$rps"
  put "rps_err_$1" "$((non2xx + sockerr))"
  log "wrk $1: $rps req/s (errors: $((non2xx + sockerr)))"
}

run_oha() { # key, url
  local f="$OUT/oha-$1.json"
  taskset -c 1 "$OHA" -z 1s -q "$RATE" -c 32 --no-tui --output-format quiet -m POST \
    -H 'content-type: application/json' -d "$BODY" "$2" >/dev/null 2>&1 || true
  taskset -c 1 "$OHA" -z "${DUR}s" -q "$RATE" --latency-correction -c 32 --no-tui --output-format json \
    -m POST -H 'content-type: application/json' -d "$BODY" "$2" >"$f"
  python3 - "$f" "$1" >>"$RES" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1])); k = sys.argv[2]
p = d["latencyPercentiles"]
ok = d["statusCodeDistribution"].get("200", 0)
# Requests still in flight when the time is up are not failures.
errors = {e: c for e, c in d["errorDistribution"].items() if "deadline" not in e}
total = sum(d["statusCodeDistribution"].values()) + sum(errors.values())
print(f"lat_p50_{k}={p['p50']*1e6:.1f}")
print(f"lat_p99_{k}={p['p99']*1e6:.1f}")
print(f"lat_p999_{k}={p['p99.9']*1e6:.1f}")
print(f"lat_rps_{k}={d['summary']['requestsPerSec']:.0f}")
print(f"lat_err_{k}={total-ok}")
EOF
  log "oha $1: $(grep "^lat_p50_$1=" "$RES" | tail -1 | cut -d= -f2) us p50 at $RATE req/s"
}

run_stream_latency() { # key, url
  local f="$OUT/stream-$1.json"
  taskset -c 1 "$PY" "$BENCH_DIR/stream_latency.py" --url "$2" --streams "$STREAMS" >"$f"
  python3 - "$f" "$1" >>"$RES" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1])); k = sys.argv[2]
for name in ("ttft", "chunk", "gap"):
    for p in (50, 99):
        print(f"{name}_p{p}_{k}={d[f'{name}_p{p}_us']}")
print(f"stream_err_{k}={d['errors']}")
EOF
  log "stream latency $1: ttft p50 $(grep "^ttft_p50_$1=" "$RES" | cut -d= -f2) us"
}

hold() { # key, pid to measure, url, n, proto, upstream hold port
  local ready="$OUT/hold-$1.ready" hp
  rm -f "$ready"
  taskset -c 1 "$PY" "$BENCH_DIR/hold_streams.py" --url "$3" --n "$4" --proto "$5" \
    --ready-file "$ready" --hold-seconds 120 >"$OUT/hold-$1.log" 2>&1 &
  hp=$!
  PIDS+=("$hp")
  local _
  for _ in $(seq 1200); do [ -s "$ready" ] && break; sleep 0.1; done
  sleep 1 # let allocations settle
  put "rss_$1" "$(rss_kb "$2")"
  put "open_$1" "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ready"])' "$ready" 2>/dev/null || echo 0)"
  put "upconns_$1" "$(conns_to "$6")"
  log "hold $1: $(cat "$ready" 2>/dev/null) rss $(rss_kb "$2") kB, upstream conns $(conns_to "$6")"
  stop "$hp"
  wait_conns_below "$6" 5
}

# ---------------------------------------------------------------- main
install_tools
PLAIN_BIN=""
if [ -n "${BENCH_BIN:-}" ]; then
  BIN=$BENCH_BIN
  BUILD="given (BENCH_BIN)"
else
  log "cargo build --release"
  (cd "$REPO" && cargo build --release --quiet)
  BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/azure-openai-proxy"
  BUILD="cargo build --release"
  if [ "${BENCH_PGO:-1}" != 0 ]; then
    # The profile-guided build the container images ship; the plain one runs beside it in the
    # JSON throughput rounds (what `cargo install` gives).
    log "scripts/build-pgo.sh (profile-guided build; about 10 minutes the first time)"
    PLAIN_BIN=$BIN
    BIN=$(cd "$REPO" && scripts/build-pgo.sh 2>"$OUT/build-pgo.log")
    BUILD="profile-guided (scripts/build-pgo.sh)"
  fi
fi
# The no-op TCP relay: what any process in the path costs on this machine.
(cd "$REPO" && cargo build --release --quiet --example relay)
RELAY="${CARGO_TARGET_DIR:-$REPO/target}/release/examples/relay"
ulimit -n "$(ulimit -Hn)"

read -r UP_JSON UP_SSE UP_LAT UP_HOLD NG_JSON NG_SSE NG_LAT NG_HOLD1 NG_HOLD2 OURS RL_JSON RL_LAT OURS_PLAIN NG_LOG OURS_QUIET NG_SSE_LOG <<<"$(free_ports 16)"

put machine_cpu "\"$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)\""
put machine_cores "$(nproc)"
put machine_mem_mb "$(awk '/^MemTotal/ {print int($2/1024)}' /proc/meminfo)"
put machine_kernel "$(uname -r)"
put nginx_version "$(nginx -v 2>&1 | sed 's/.*nginx\///')"
put wrk_version "\"$(wrk -v 2>&1 | head -1 | awk '{print $2}')\""
put oha_version "$("$OHA" --version | awk '{print $2}')"
TREE="$(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$REPO" && git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo +dirty)"
# A given binary may not be the tree's: say which it is.
put commit "\"${BENCH_BIN:+$BENCH_BIN, with the tree at }$TREE\""
put build "\"$BUILD\""
put mode "$MODE"
put dur "$DUR"
put rounds "$ROUNDS"
put rate "$RATE"
put conns "$CONNS"
put streams "$STREAMS"
put load_before "\"$(cut -d' ' -f1-3 /proc/loadavg)\""
put started "\"$(date -u +%FT%TZ)\""

write_nginx_upstream
write_nginx_proxy
start_nginx 1 "$OUT/nginx-upstream.conf"
start_nginx 0 "$OUT/nginx-proxy.conf"; NGINX_PROXY_MASTER=$LAST_PID
taskset -c 1 "$PY" "$BENCH_DIR/sse_upstream.py" --port "$UP_LAT" --interval-ms 10 --events 6 \
  >"$OUT/sse-lat.log" 2>&1 &
PIDS+=($!)
taskset -c 1 "$PY" "$BENCH_DIR/sse_upstream.py" --port "$UP_HOLD" --interval-ms 5000 --events 100000 \
  >"$OUT/sse-hold.log" 2>&1 &
PIDS+=($!)
taskset -c 0 "$RELAY" "$RL_JSON" "127.0.0.1:$UP_JSON" >"$OUT/relay-json.log" 2>&1 &
RELAY_JSON_PID=$!
PIDS+=("$RELAY_JSON_PID")
taskset -c 0 "$RELAY" "$RL_LAT" "127.0.0.1:$UP_LAT" >"$OUT/relay-lat.log" 2>&1 &
PIDS+=($!)
for p in "$UP_JSON" "$UP_SSE" "$UP_LAT" "$UP_HOLD" "$NG_JSON" "$NG_LOG" "$NG_SSE_LOG" "$NG_HOLD2" "$RL_JSON" "$RL_LAT"; do wait_port "$p"; done
for m in "${PIDS[@]:0:2}"; do
  while read -r w; do NGINX_WORKERS+=("$w"); done < <(pgrep -P "$m")
done
NGINX_WORKER=$(pgrep -P "$NGINX_PROXY_MASTER" | head -1)

D="http://127.0.0.1"
# Our proxy in front of the fast JSON upstream: idle memory, then throughput and latency.
start_ours "$UP_JSON" "$OURS" ours-json
sleep 1
put rss_idle "$(rss_kb "$OUR_PID")"
check_ok "$D:$UP_JSON$OAI_PATH" "$BODY"
check_ok "$D:$NG_JSON$OAI_PATH" "$BODY"
check_ok "$D:$OURS$AZ_PATH" "$BODY"
check_ok "$D:$OURS$SDK_PATH" "$BODY"
PLAIN_PID=""
if [ -n "$PLAIN_BIN" ]; then
  PGO_PID=$OUR_PID
  OUR_BIN=$PLAIN_BIN start_ours "$UP_JSON" "$OURS_PLAIN" ours-plain
  PLAIN_PID=$OUR_PID
  OUR_PID=$PGO_PID
  check_ok "$D:$OURS_PLAIN$AZ_PATH" "$BODY"
fi
# Ours with per-request logging off (RUST_LOG=warn), measured against nginx without its access
# log, as ours with its access log is against nginx with one: like against like.
MAIN_PID=$OUR_PID
OUR_LOG=warn start_ours "$UP_JSON" "$OURS_QUIET" ours-json-warn
QUIET_PID=$OUR_PID
OUR_PID=$MAIN_PID
check_ok "$D:$OURS_QUIET$AZ_PATH" "$BODY"
check_ok "$D:$NG_LOG$OAI_PATH" "$BODY"

put big_body_kb "$((${#BIG_BODY} / 1024))"
check_ok "$D:$OURS$AZ_PATH" "$BIG_BODY"
for round in $(seq "$ROUNDS"); do
  log "round $round of $ROUNDS: max throughput, non-streaming (wrk, $CONNS connections, ${DUR}s)"
  run_wrk direct "$D:$UP_JSON$OAI_PATH" "$BODY"
  run_wrk nginx "$D:$NG_JSON$OAI_PATH" "$BODY" "$NGINX_WORKER"
  run_wrk ours "$D:$OURS$AZ_PATH" "$BODY" "$OUR_PID"
  run_wrk lnginx "$D:$NG_LOG$OAI_PATH" "$BODY" "$NGINX_WORKER"
  run_wrk ours_warn "$D:$OURS_QUIET$AZ_PATH" "$BODY" "$QUIET_PID"
  [ -z "$PLAIN_PID" ] || run_wrk ours_plain "$D:$OURS_PLAIN$AZ_PATH" "$BODY" "$PLAIN_PID"
  run_wrk relay "$D:$RL_JSON$OAI_PATH" "$BODY" "$RELAY_JSON_PID"
  log "round $round of $ROUNDS: max throughput, the request as the openai SDK sends it (20 headers)"
  run_wrk kdirect "$D:$UP_JSON$OAI_PATH" "$BODY" "" post-sdk.lua
  run_wrk knginx "$D:$NG_JSON$OAI_PATH" "$BODY" "$NGINX_WORKER" post-sdk.lua
  run_wrk kours "$D:$OURS$SDK_PATH" "$BODY" "$OUR_PID" post-sdk.lua
  run_wrk klnginx "$D:$NG_LOG$OAI_PATH" "$BODY" "$NGINX_WORKER" post-sdk.lua
  log "round $round of $ROUNDS: max throughput, $((${#BIG_BODY} / 1024)) kB requests"
  run_wrk bdirect "$D:$UP_JSON$OAI_PATH" "$BIG_BODY"
  run_wrk bnginx "$D:$NG_JSON$OAI_PATH" "$BIG_BODY" "$NGINX_WORKER"
  run_wrk bours "$D:$OURS$AZ_PATH" "$BIG_BODY" "$OUR_PID"
  log "round $round of $ROUNDS: latency at a fixed $RATE req/s (oha, open loop, latency correction)"
  run_oha direct "$D:$UP_JSON$OAI_PATH"
  run_oha nginx "$D:$NG_JSON$OAI_PATH"
  run_oha ours "$D:$OURS$AZ_PATH"
  run_oha relay "$D:$RL_JSON$OAI_PATH"
done
put rss_after_load "$(rss_kb "$OUR_PID")"
stop "$OUR_PID"
stop "$QUIET_PID"
[ -z "$PLAIN_PID" ] || stop "$PLAIN_PID"

start_ours "$UP_SSE" "$OURS" ours-sse
check_ok "$D:$OURS$AZ_PATH" "$SBODY"
for round in $(seq "$ROUNDS"); do
  log "round $round of $ROUNDS: max throughput, streaming (6 events per answer, served at once)"
  run_wrk sdirect "$D:$UP_SSE$OAI_PATH" "$SBODY"
  run_wrk snginx "$D:$NG_SSE$OAI_PATH" "$SBODY" "$NGINX_WORKER"
  run_wrk sours "$D:$OURS$AZ_PATH" "$SBODY" "$OUR_PID"
  run_wrk slnginx "$D:$NG_SSE_LOG$OAI_PATH" "$SBODY" "$NGINX_WORKER"
done
stop "$OUR_PID"

log "streaming latency against a 10 ms/event upstream ($STREAMS streams each)"
start_ours "$UP_LAT" "$OURS" ours-lat
run_stream_latency direct "$D:$UP_LAT$OAI_PATH"
run_stream_latency nginx "$D:$NG_LAT$OAI_PATH"
run_stream_latency ours "$D:$OURS$AZ_PATH"
run_stream_latency relay "$D:$RL_LAT$OAI_PATH"
if [ "${BENCH_IDLE_POLL:-1}" != 0 ] && [ -w "$HALT_POLL" ] && [ "$(cat "$HALT_POLL")" = 0 ]; then
  log "streaming latency again with idle CPUs polling (guest_halt_poll_ns 200000)"
  HALT_POLL_WAS=0
  echo 200000 > "$HALT_POLL"
  for k in direct nginx ours relay; do
    case $k in
      direct) u="$D:$UP_LAT$OAI_PATH" ;; nginx) u="$D:$NG_LAT$OAI_PATH" ;;
      ours) u="$D:$OURS$AZ_PATH" ;; relay) u="$D:$RL_LAT$OAI_PATH" ;;
    esac
    run_stream_latency "${k}_poll" "$u"
  done
  echo 0 > "$HALT_POLL"
  HALT_POLL_WAS=""
  put idle_poll 1
fi
stop "$OUR_PID"

log "memory with open streams"
start_ours "$UP_HOLD" "$OURS" ours-hold
sleep 1
put rss_idle_hold "$(rss_kb "$OUR_PID")"
hold ours_1k "$OUR_PID" "$D:$OURS$AZ_PATH" "$HOLD_SMALL" h1 "$UP_HOLD"
hold ours_10k "$OUR_PID" "$D:$OURS$AZ_PATH" "$HOLD_LARGE" h2 "$UP_HOLD"
sleep 1
put rss_after_hold "$(rss_kb "$OUR_PID")"
stop "$OUR_PID"
if [ "$MEM_NGINX" = 1 ] && [ -n "$NGINX_WORKER" ]; then
  put rss_nginx_idle "$(rss_kb "$NGINX_WORKER")"
  hold nginx_1k "$NGINX_WORKER" "$D:$NG_HOLD1$OAI_PATH" "$HOLD_SMALL" h1 "$UP_HOLD"
  hold nginx_10k "$NGINX_WORKER" "$D:$NG_HOLD2$OAI_PATH" "$HOLD_LARGE" h2 "$UP_HOLD"
fi

put load_after "\"$(cut -d' ' -f1-3 /proc/loadavg)\""
python3 "$BENCH_DIR/report.py" "$RES" | tee "$OUT/report.md"
log "results and logs: $OUT"
