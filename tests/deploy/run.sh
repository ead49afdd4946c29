#!/usr/bin/env bash
# Checks of deploy/ (Azure ML and Kubernetes manifests) against the proxy binary and the container
# entrypoints, without a cluster, Azure or Docker: tests/deploy/check_deploy.py says what it checks.
#
#   tests/deploy/run.sh [-k NAME_PART] [-v]
#
# First run: a venv under ~/.cache/azure-openai-proxy/deploy-venv with requirements.txt (about
# 30 s); then a few seconds. AOP_PROXY_BIN=path checks that binary instead of building
# target/debug/azure-openai-proxy. Uses `kubectl kustomize` to cross-check its own rendering when
# kubectl is installed, and hadolint when tests/entrypoints/run.sh has installed it.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/azure-openai-proxy/deploy-venv"
STAMP="$VENV/.requirements.sha256"
want="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  echo "[deploy] installing tests/deploy/requirements.txt into $VENV" >&2
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$HERE/requirements.txt"
  echo "$want" >"$STAMP"
fi
if [ -z "${AOP_PROXY_BIN:-}" ]; then
  (cd "$REPO" && cargo build --quiet --bin azure-openai-proxy)
fi
exec "$VENV/bin/python" "$HERE/check_deploy.py" "$@"
