#!/usr/bin/env bash
# The conformance suite: real Azure SDK clients against the proxy, in front of a mock engine
# and/or the real CPU engine (llama.cpp + SmolLM2-135M).
#
#   conformance/run.sh [mock|real|all] [pytest args...]      (default: all)
#
# Makes or reuses the venv (conformance/venv.sh), builds the proxy (cargo build), installs the real
# engine when asked for (scripts/engine.sh install, cached; the real tests are skipped with the
# reason if it fails), then runs pytest. Environment:
#   AOP_PROXY_BIN=path     test this binary instead of building target/debug/azure-openai-proxy
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"

mode="${1:-all}"
[ $# -gt 0 ] && shift
case "$mode" in
  mock) backends=mock ;;
  real) backends=real ;;
  all) backends=mock,real ;;
  -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
  *) echo "usage: $0 [mock|real|all] [pytest args...]" >&2; exit 2 ;;
esac

# shellcheck source=conformance/venv.sh
. "$HERE/venv.sh"
conformance_venv

if [ -z "${AOP_PROXY_BIN:-}" ]; then
  echo "[conformance] cargo build" >&2
  (cd "$REPO" && cargo build --quiet --bin azure-openai-proxy)
fi

if [ "$mode" != mock ] && [ -z "${AOP_REAL_SKIP:-}" ]; then
  echo "[conformance] scripts/engine.sh install (cached after the first run)" >&2
  if ! bash "$REPO/scripts/engine.sh" install; then
    export AOP_REAL_SKIP="scripts/engine.sh install failed: the real-engine tests are skipped"
    echo "[conformance] $AOP_REAL_SKIP" >&2
  fi
fi

cd "$HERE"
echo "[conformance] pytest --backends $backends $*" >&2
exec "$CONFORMANCE_PY" -m pytest --backends "$backends" "$@"
