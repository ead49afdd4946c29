# shellcheck shell=bash
# Sourced by conformance/run.sh and scripts/quickstart.sh: makes (or reuses) the Python venv with
# the Azure SDKs and the test tools pinned in conformance/requirements.txt, and sets CONFORMANCE_PY
# to its python. The venv lives in the cache, outside the repo, and is rebuilt only when the
# requirements change (their hash is kept beside it) or it is broken.
#
#   . conformance/venv.sh && conformance_venv && "$CONFORMANCE_PY" script.py

conformance_venv() {
  local here cache venv req stamp want py
  here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  cache="${AOP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/azure-openai-proxy}"
  venv="${AOP_CONFORMANCE_VENV:-$cache/conformance-venv}"
  req="$here/requirements.txt"
  stamp="$venv/.requirements.sha256"
  py="${AOP_PYTHON:-python3}"
  want="$(sha256sum "$req" | cut -d' ' -f1)"
  if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] &&
    "$venv/bin/python" -c 'import azure.ai.inference, openai, pytest, aiohttp' 2>/dev/null; then
    CONFORMANCE_PY="$venv/bin/python"
    return 0
  fi
  printf '[venv] creating %s (azure-ai-inference, openai, pytest; about a minute)\n' "$venv" >&2
  mkdir -p "$cache"
  rm -rf "$venv"
  "$py" -m venv "$venv" || { printf '[venv] %s -m venv failed (install python3-venv?)\n' "$py" >&2; return 1; }
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2 || return 1
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >&2 || {
    printf '[venv] pip install -r %s failed\n' "$req" >&2
    return 1
  }
  printf '%s\n' "$want" >"$stamp"
  CONFORMANCE_PY="$venv/bin/python"
  printf '[venv] ready: %s\n' "$CONFORMANCE_PY" >&2
}
