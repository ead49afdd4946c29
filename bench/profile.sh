#!/usr/bin/env bash
# CPU profile of azure-openai-proxy under the benchmark's non-streaming load:
# nginx (CPU 1) serves a fixed chat answer, the proxy runs on CPU 0, wrk
# (CPU 1) drives it with 64 connections, and `perf record` samples the proxy.
#
#   bench/profile.sh            flat profile by symbol and by crate
#   bench/profile.sh dwarf      also inclusive (children) times, via DWARF unwinding
#
# Needs perf (apt-get install linux-perf), nginx and wrk (bench/run.sh installs those).
# BENCH_BIN=path uses that binary instead of target/release/azure-openai-proxy.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
BIN=${BENCH_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/release/azure-openai-proxy}
OUT=${BENCH_OUT:-$(mktemp -d /tmp/aop-profile.XXXXXX)}
mkdir -p "$OUT"
export PATH="$PATH:/usr/sbin"
command -v perf >/dev/null || { echo "perf is missing: apt-get install -y linux-perf" >&2; exit 1; }
[ -x "$BIN" ] || (cd "$REPO" && cargo build --release --quiet)

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
taskset -c 1 nginx -p "$OUT" -c "$OUT/upstream.conf" -g 'daemon off;' &
PIDS+=($!)
taskset -c 0 "$BIN" --port "$PX" --upstream-url "http://127.0.0.1:$UP" --engine vllm \
  --model-type chat-completion --model-name m >"$OUT/proxy.log" 2>&1 &
PROXY=$!
PIDS+=("$PROXY")
wait_port "$PX"

URL="http://127.0.0.1:$PX/chat/completions?api-version=2024-05-01-preview"
export WRK_BODY='{"messages":[{"role":"user","content":"Hello"}],"model":"m"}'
taskset -c 1 wrk -t1 -c64 -d2s -s "$BENCH_DIR/post.lua" "$URL" >/dev/null
taskset -c 1 wrk -t1 -c64 -d12s -s "$BENCH_DIR/post.lua" "$URL" >"$OUT/wrk.txt" &
WRK=$!
sleep 1
perf record -q -F 1999 -p "$PROXY" -o "$OUT/perf.data" -- sleep 8 2>/dev/null
if [ "${1:-}" = dwarf ]; then
  perf record -q -F 499 --call-graph dwarf,16384 -p "$PROXY" -o "$OUT/perf-dwarf.data" -- sleep 2 2>/dev/null
fi
wait "$WRK"
grep -E 'Requests/sec' "$OUT/wrk.txt"

perf report -i "$OUT/perf.data" --no-children --sort dso -g none --stdio 2>/dev/null >"$OUT/by-dso.txt"
perf report -i "$OUT/perf.data" --no-children --sort dso,symbol -g none --stdio 2>/dev/null \
  | grep '%' >"$OUT/flat.txt"
echo "== by object"
grep '%' "$OUT/by-dso.txt" | sed -n 1,6p
echo "== hottest symbols (self time)"
sed -n 1,40p "$OUT/flat.txt" | cut -c1-180
echo "== self time by crate (user space) / kernel / libc"
python3 - "$OUT/flat.txt" <<'EOF'
import collections, re, sys
agg = collections.Counter()
for line in open(sys.argv[1]):
    m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)", line)
    if not m:
        continue
    pct, dso, kind, sym = float(m.group(1)), m.group(2), m.group(3), m.group(4).strip()
    if kind == "k":
        agg["kernel"] += pct
    elif dso.startswith("libc"):
        alloc = re.search(r"malloc|free|_int_|unlink_chunk|consolidate|tcache", sym)
        agg["libc malloc/free" if alloc else "libc other"] += pct
    else:
        s = sym.replace("core::ptr::drop_in_place<", "").lstrip("<&")
        agg[s.split("::")[0]] += pct
for k, v in agg.most_common(20):
    print(f"{v:6.2f}%  {k}")
EOF
if [ "${1:-}" = dwarf ]; then
  echo "== inclusive time (children), top entries"
  perf report -i "$OUT/perf-dwarf.data" --children --sort symbol -g none --stdio 2>/dev/null \
    | grep '%' | cut -c1-180 >"$OUT/children.txt"
  sed -n 1,80p "$OUT/children.txt"
fi
echo "perf data: $OUT"
