#!/usr/bin/env bash
# Instructions per request, ours against nginx as a plain reverse proxy, under
# valgrind --tool=callgrind: a figure that does not move with the machine's load, for
# comparing builds where requests per second are too noisy to tell (see docs/benchmarks.md).
#
#   bench/instructions.sh        short chat request, JSON answer (about a minute)
#   BENCH_REQUEST=sdk bench/instructions.sh
#                                the same request with the headers the openai SDK's AzureOpenAI
#                                client sends (bench/post-sdk.lua: twenty headers, nine of them
#                                x-stainless-*), to an Azure OpenAI deployment route
#
# Both proxies serve the same fixed answer from an nginx upstream (CPU 1) and run under
# callgrind on CPU 0; wrk (CPU 1, 8 connections) POSTs the benchmark's one-message chat
# request. Each proxy runs twice, for 1 s and for 4 s of load; the figure is the difference
# in instructions over the difference in requests, so start-up and shutdown cancel out. Counts
# cover every thread of the process (ours: the runtime and the log writer; nginx: its one
# process, `master_process off`). Build-to-build, the same source moves by about ±1 % (inlining
# across the crate changes with unrelated edits), so differences smaller than that are noise.
#
# The pair of runs is repeated (three rounds, ours and nginx taking turns) and the median
# given: the slope still holds a little per-second work (timers, the log writer's wake-ups),
# which the machine's speed spreads over more or fewer requests.
#
# Environment: BENCH_BIN=path uses that binary instead of `cargo build --release`;
# BENCH_OUT=dir keeps the callgrind files there (default: a new dir under /tmp);
# BENCH_ROUNDS=N rounds (default 3); BENCH_WHO=ours measures only this proxy (to compare builds).
# Installs valgrind, nginx-light and wrk with apt when missing (as root).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
OUT=${BENCH_OUT:-$(mktemp -d /tmp/aop-instr.XXXXXX)}
mkdir -p "$OUT"
export PATH="$PATH:/usr/sbin"
log() { printf '[instructions %s] %s\n' "$(date +%T)" "$*" >&2; }

need=()
command -v valgrind >/dev/null || need+=(valgrind)
command -v nginx >/dev/null || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "need root to apt-get install ${need[*]}" >&2; exit 1; }
  log "apt-get install ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >"$OUT/apt.log" 2>&1 || {
    apt-get update -qq >>"$OUT/apt.log" 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >>"$OUT/apt.log" 2>&1
  }
fi
BIN=${BENCH_BIN:-}
if [ -z "$BIN" ]; then
  log "cargo build --release"
  (cd "$REPO" && cargo build --release --quiet)
  BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/azure-openai-proxy
fi

PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

# shellcheck source=bench/common.sh
. "$BENCH_DIR/common.sh"
read -r UP PX <<<"$(free_ports 2)"
write_json_upstream "$OUT/upstream.conf" "$OUT" "$UP"
cat >"$OUT/proxy.conf" <<EOF
pid $OUT/proxy.pid;
error_log $OUT/proxy-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000000;
  proxy_http_version 1.1;
  proxy_set_header Connection "";
  proxy_buffering off;
  upstream up { server 127.0.0.1:$UP; keepalive 64; }
  server { listen 127.0.0.1:$PX; location / { proxy_pass http://up; } }
}
EOF
taskset -c 1 nginx -p "$OUT" -c "$OUT/upstream.conf" -g 'daemon off;' &
PIDS+=($!)
wait_port "$UP"

export WRK_BODY='{"messages":[{"role":"user","content":"Hello"}],"model":"m"}'
case ${BENCH_REQUEST:-short} in
  short) SCRIPT=$BENCH_DIR/post.lua
    OUR_PATH="/chat/completions?api-version=2024-05-01-preview" ;;
  sdk) SCRIPT=$BENCH_DIR/post-sdk.lua
    OUR_PATH="/openai/deployments/m/chat/completions?api-version=2024-10-21" ;;
  *) echo "BENCH_REQUEST: short or sdk, not ${BENCH_REQUEST}" >&2; exit 2 ;;
esac

# One callgrind run: who (ours|nginx), seconds of load; prints "requests instructions".
measure() {
  local who=$1 secs=$2 cg="$OUT/$1-$2s-$round.callgrind" url pid reqs total warm cmd
  if [ "$who" = ours ]; then
    cmd=("$BIN" --port "$PX" --upstream-url "http://127.0.0.1:$UP" --engine vllm
      --model-type chat-completion --model-name m)
    url="http://127.0.0.1:$PX$OUR_PATH"
  else
    cmd=(nginx -p "$OUT" -c "$OUT/proxy.conf" -g 'daemon off; master_process off;')
    url="http://127.0.0.1:$PX/v1/chat/completions"
  fi
  taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$cg" "${cmd[@]}" \
    >"$OUT/$who-$secs.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  wait_port "$PX" 300
  # A warm-up second opens the upstream pool's connections; its requests count too, since
  # their instructions are in the total.
  warm=$(taskset -c 1 wrk -t1 -c8 -d1s -s "$SCRIPT" "$url" | awk '/requests in/ {print $1}')
  reqs=$(taskset -c 1 wrk -t1 -c8 -d"${secs}s" -s "$SCRIPT" "$url" |
    awk '/requests in/ {print $1}')
  reqs=$((warm + reqs))
  kill -INT "$pid"
  wait "$pid" 2>/dev/null || true
  total=$(callgrind_annotate "$cg" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  echo "$reqs $total"
}

ROUNDS=${BENCH_ROUNDS:-3}
WHO=${BENCH_WHO:-ours nginx}
declare -A SLOPES
for round in $(seq "$ROUNDS"); do
  for who in $WHO; do
    log "round $round of $ROUNDS, $who: 1 s and 4 s of load under callgrind"
    read -r r1 t1 <<<"$(measure "$who" 1)"
    read -r r4 t4 <<<"$(measure "$who" 4)"
    [ "$r4" -gt "$r1" ] || { echo "$who: no more requests in 4 s than in 1 s" >&2; exit 1; }
    SLOPES[$who]="${SLOPES[$who]:-} $(( (t4 - t1) / (r4 - r1) ))"
    echo "round $round: $r1 requests, $t1 instructions; $r4 requests, $t4 instructions" >>"$OUT/$who.txt"
  done
done

python3 - "${SLOPES[ours]:-}" "${SLOPES[nginx]:-}" "${BENCH_REQUEST:-short}" <<'PY'
import statistics, sys
ours, nginx = ([int(x) for x in a.split()] for a in sys.argv[1:3])
print(f"instructions per request ({sys.argv[3]} chat request, JSON answer; callgrind, all threads;")
print("median of the rounds, each round's figure in brackets):")
for name, got in (("ours", ours), ("nginx", nginx)):
    if got:
        print(f"  {name:6} {statistics.median(got):8.0f}  {got}")
if ours and nginx:
    print(f"  ours/nginx {statistics.median(ours) / statistics.median(nginx):.2f}x")
PY
echo "callgrind files: $OUT"
