#!/usr/bin/env bash
# vLLM and azure-openai-proxy in one container: vLLM's OpenAI-compatible server listens on an
# internal port, the proxy on the public one (docs/containers.md).
#
#   vllm-entrypoint.sh [vLLM arguments...]     e.g.  Qwen/Qwen2.5-0.5B-Instruct --max-model-len 4096
#
# The arguments go to `vllm serve` unchanged, with --host and --port added unless given. MODEL_ID
# names the model when no argument does (as --model). When vLLM itself requires a key (--api-key
# or VLLM_API_KEY), the proxy sends it (AOP_UPSTREAM_API_KEY).

# ---- engine-specific part ---------------------------------------------------------------------
ENGINE=vllm
ENGINE_DISPLAY=vLLM
DEFAULT_ENGINE_CMD="vllm serve"
HOST_FLAGS=(--host)
PORT_FLAGS=(--port)

engine_setup() {
  # The model is vLLM's first argument or --model.
  if [[ -n ${MODEL_ID:-} ]] && ! has_flag --model && [[ ${engine_args[0]:--} == -* ]]; then
    engine_args+=(--model "$MODEL_ID")
  fi
  if [[ -n ${VLLM_API_KEY:-} && -z ${AOP_UPSTREAM_API_KEY:-} ]]; then
    export AOP_UPSTREAM_API_KEY=$VLLM_API_KEY
  fi
}

# ---- common part: identical in tgi-, vllm-, sglang- and tei-entrypoint.sh ---------------------
# (tests/entrypoints checks that it stays identical; change all four together.)
#
# Environment (docs/containers.md has the full table):
#   PORT / AOP_PORT      the proxy's public port (AOP_PORT wins; default 80)
#   AOP_HOST             the proxy's address (default 0.0.0.0)
#   ENGINE_PORT          the engine's internal port (default 8080); a --port in the engine's
#                        arguments is used instead, unless ENGINE_PORT says otherwise (refused)
#   ENGINE_HOST          the engine's address (default 127.0.0.1: not reachable from outside)
#   ENGINE_CMD           the engine command, split on blanks (default: see the top of this file)
#   ENGINE_ARGS          more engine arguments, split on blanks, put after the command line's
#   MODEL_ID             the model, when no argument names one (for platforms without arguments)
#   AOP_API_KEYS / API_KEY / AOP_API_KEY_FILE
#                        the keys clients must send; with none, the proxy is started with
#                        --allow-unauthenticated (authenticate in front, e.g. Azure ML's gateway)
#   PROXY_USER           user the proxy runs as when started as root (default nobody; root or
#                        empty: no switch); it keeps only CAP_NET_BIND_SERVICE, for ports < 1024
#   PROXY_BIN            the proxy binary (default azure-openai-proxy on PATH)
#   ENGINE_STOP_TIMEOUT  seconds the engine gets after SIGTERM before SIGKILL (default 30)
#   AOP_*                every other proxy setting (azure-openai-proxy --help)
#
# Life cycle: the engine and the proxy start together; the proxy's /health answers at once and its
# /ready turns 200 when the engine answers. SIGTERM or SIGINT stops the proxy first (it drains the
# requests in flight, bounded by AOP_SHUTDOWN_TIMEOUT), then the engine; a second signal stops
# both at once. The script exits with 0 after such a stop when both stopped cleanly. When either
# child exits on its own, the other is stopped and the script exits with that child's code.
# Exit codes of its own: 2 for a configuration error, 127 for a missing command.

set -uo pipefail

PROG="${ENGINE}-entrypoint"
log() { printf '[%s] %s\n' "$PROG" "$*" >&2; }
die() {
  local code=$1
  shift
  log "error: $*"
  exit "$code"
}

# Signals first: as PID 1 the script would not even see a SIGTERM it has no trap for.
stop_signal=""
engine_pid=""
proxy_pid=""
# shellcheck disable=SC2317 # called by the traps below
on_signal() {
  if [[ -z $stop_signal ]]; then
    stop_signal=$1
    log "SIG$1: stopping the proxy (it drains the requests in flight), then $ENGINE_DISPLAY"
  else
    log "SIG$1 again: stopping $ENGINE_DISPLAY and the proxy now"
    kill -TERM ${engine_pid:+"$engine_pid"} ${proxy_pid:+"$proxy_pid"} 2>/dev/null
  fi
}
trap 'on_signal TERM' TERM
trap 'on_signal INT' INT

is_port() { [[ $1 =~ ^[0-9]{1,5}$ ]] && ((10#$1 >= 1 && 10#$1 <= 65535)); }

# split_words NAME TEXT: the array NAME gets TEXT's blank-separated words (no globbing, no quotes).
split_words() {
  local -n into=$1
  into=()
  local word
  for word in $2; do into+=("$word"); done
}
set -f # split_words relies on it: no file name expansion anywhere in this script

# has_flag FLAG: whether the engine's arguments contain FLAG or FLAG=value.
has_flag() {
  local a
  for a in "${engine_args[@]}"; do
    [[ $a == "$1" || $a == "$1="* ]] && return 0
  done
  return 1
}

# flag_value FLAG...: the value the engine's arguments give to any of these flags (the last one
# wins, as in the engines' parsers): "FLAG VALUE", "FLAG=VALUE", or "-xVALUE" for a short flag.
# Returns 1 when no such flag is there, 2 when one lacks its value.
flag_value() {
  local i a f found=1
  flag_value_out=""
  for ((i = 0; i < ${#engine_args[@]}; i++)); do
    a=${engine_args[i]}
    for f in "$@"; do
      if [[ $a == "$f" ]]; then
        ((i + 1 < ${#engine_args[@]})) || return 2
        flag_value_out=${engine_args[i + 1]}
        found=0
      elif [[ $a == "$f="* ]]; then
        flag_value_out=${a#*=}
        found=0
      elif [[ $f == -? && $a == "$f"?* ]]; then
        flag_value_out=${a#"$f"}
        found=0
      fi
    done
  done
  return "$found"
}

# ---- the command lines ----
engine_cmd=()
extra_args=()
split_words engine_cmd "${ENGINE_CMD:-$DEFAULT_ENGINE_CMD}"
((${#engine_cmd[@]} > 0)) || die 2 "ENGINE_CMD is empty"
split_words extra_args "${ENGINE_ARGS:-}"
engine_args=("$@" "${extra_args[@]}")

proxy_port=${AOP_PORT:-${PORT:-80}}
is_port "$proxy_port" || die 2 "the proxy's port (AOP_PORT or PORT) must be a number from 1 to 65535, not '$proxy_port'"
proxy_host=${AOP_HOST:-0.0.0.0}
if [[ -n ${ENGINE_PORT:-} ]]; then
  is_port "$ENGINE_PORT" || die 2 "ENGINE_PORT must be a number from 1 to 65535, not '$ENGINE_PORT'"
fi

flag_value "${PORT_FLAGS[@]}"
case $? in
  0)
    is_port "$flag_value_out" || die 2 "the engine's ${PORT_FLAGS[0]} must be a number from 1 to 65535, not '$flag_value_out'"
    if [[ -n ${ENGINE_PORT:-} && $((10#$flag_value_out)) != "$((10#${ENGINE_PORT}))" ]]; then
      die 2 "conflicting engine ports: ENGINE_PORT=$ENGINE_PORT but the engine's arguments say ${PORT_FLAGS[0]} $flag_value_out; give only one of them"
    fi
    engine_port=$((10#$flag_value_out))
    if ((engine_port == 10#$proxy_port)); then
      die 2 "the engine's arguments ask for ${PORT_FLAGS[0]} $engine_port, the proxy's public port (AOP_PORT/PORT); leave ${PORT_FLAGS[0]} out (the engine then gets ENGINE_PORT, default 8080) or choose another port"
    fi
    ;;
  2) die 2 "${PORT_FLAGS[0]} needs a value" ;;
  *)
    engine_port=$((10#${ENGINE_PORT:-8080}))
    if ((engine_port == 10#$proxy_port)); then
      die 2 "the engine and the proxy cannot both listen on port $engine_port: set ENGINE_PORT (the engine's internal port, default 8080) or PORT/AOP_PORT (the proxy's public port, default 80) to another value"
    fi
    engine_args+=("${PORT_FLAGS[0]}" "$engine_port")
    ;;
esac

flag_value "${HOST_FLAGS[@]}"
case $? in
  0) engine_host=$flag_value_out ;;
  2) die 2 "${HOST_FLAGS[0]} needs a value" ;;
  *)
    engine_host=${ENGINE_HOST:-127.0.0.1}
    engine_args+=("${HOST_FLAGS[0]}" "$engine_host")
    ;;
esac
case $engine_host in
  "" | 0.0.0.0 | :: | "[::]") upstream_host=127.0.0.1 ;;
  \[*) upstream_host=$engine_host ;;
  *:*) upstream_host="[$engine_host]" ;;
  *) upstream_host=$engine_host ;;
esac

# The engine's own key, when its arguments set one, is what the proxy must send it.
if flag_value --api-key && [[ -z ${AOP_UPSTREAM_API_KEY:-} ]]; then
  export AOP_UPSTREAM_API_KEY=$flag_value_out
fi

engine_setup # the engine-specific part's hook: model, engine keys, extra checks

export AOP_ENGINE=${AOP_ENGINE:-$ENGINE}
proxy_args=(--host "$proxy_host" --port "$proxy_port")
if [[ -n ${AOP_CONFIG:-} ]]; then
  log "AOP_CONFIG is set: the proxy takes its engines from $AOP_CONFIG (this engine listens on $upstream_host:$engine_port)"
else
  proxy_args+=(--upstream-url "http://$upstream_host:$engine_port")
fi

if [[ -n ${AOP_API_KEYS:-} || -n ${AOP_API_KEY_FILE:-} ]]; then
  auth="API keys from AOP_API_KEYS/AOP_API_KEY_FILE"
elif [[ -n ${API_KEY:-} ]]; then
  export AOP_API_KEYS=$API_KEY
  auth="API key from API_KEY"
elif [[ -n ${AOP_ALLOW_UNAUTHENTICATED:-} ]]; then
  auth="no API key; AOP_ALLOW_UNAUTHENTICATED=$AOP_ALLOW_UNAUTHENTICATED"
else
  proxy_args+=(--allow-unauthenticated)
  auth="no API key set (AOP_API_KEYS, API_KEY or AOP_API_KEY_FILE): the proxy is started with --allow-unauthenticated, so callers must be authenticated in front of it (Azure ML's endpoint gateway does that)"
fi

proxy_bin=${PROXY_BIN:-azure-openai-proxy}
command -v "$proxy_bin" >/dev/null 2>&1 || die 127 "the proxy binary '$proxy_bin' was not found (PROXY_BIN, PATH)"
proxy_bin=$(command -v "$proxy_bin")
command -v "${engine_cmd[0]}" >/dev/null 2>&1 || die 127 "the engine command '${engine_cmd[0]}' was not found (ENGINE_CMD, PATH)"

# Run the proxy, the one process reachable from outside, as an unprivileged user.
drop=()
proxy_user=${PROXY_USER-nobody}
run_as="user $(id -un 2>/dev/null || id -u)"
if [[ $(id -u) == 0 && -n $proxy_user && $proxy_user != root && $proxy_user != 0 ]]; then
  if ! uid=$(id -u "$proxy_user" 2>/dev/null) || ! gid=$(id -g "$proxy_user" 2>/dev/null); then
    die 2 "PROXY_USER=$proxy_user: no such user"
  elif ! command -v setpriv >/dev/null 2>&1; then
    log "setpriv (util-linux) is missing: the proxy runs as root"
  else
    drop=(setpriv "--reuid=$uid" "--regid=$gid" --clear-groups --no-new-privs)
    if ((10#$proxy_port < 1024)); then
      drop+=("--inh-caps=-all,+net_bind_service" "--ambient-caps=-all,+net_bind_service")
    fi
    drop+=(--)
    if ! "${drop[@]}" true 2>/dev/null; then
      log "cannot switch to PROXY_USER=$proxy_user here (setpriv failed: capabilities dropped?): the proxy runs as root"
      drop=()
    else
      run_as="user $proxy_user"
      "${drop[@]}" test -x "$proxy_bin" ||
        die 2 "PROXY_USER=$proxy_user cannot run $proxy_bin; make it executable by that user or set PROXY_USER=root"
      for f in "${AOP_API_KEY_FILE:-}" "${AOP_CONFIG:-}"; do
        if [[ -n $f ]] && ! "${drop[@]}" test -r "$f"; then
          die 2 "PROXY_USER=$proxy_user cannot read $f; make it readable by that user or set PROXY_USER=root"
        fi
      done
    fi
  fi
fi

# Each child sees only its own secrets: engines such as TGI and TEI read API_KEY themselves.
engine_env=(env -u API_KEY -u AOP_API_KEYS -u AOP_UPSTREAM_API_KEY)
proxy_env=(env -u HF_TOKEN -u HUGGING_FACE_HUB_TOKEN -u API_KEY -u VLLM_API_KEY)
if [[ ! -t 1 && -z ${NO_COLOR+x} ]]; then
  proxy_env+=(NO_COLOR=1) # plain log lines in container logs
fi

# For the log: the command line with the values of key flags hidden.
shown=()
hide=0
for a in "${engine_cmd[@]}" "${engine_args[@]}"; do
  if ((hide)); then
    shown+=("***")
    hide=0
  elif [[ $a == --api-key || $a == --hf-token || $a == --token ]]; then
    shown+=("$a")
    hide=1
  elif [[ $a == --api-key=* || $a == --hf-token=* || $a == --token=* ]]; then
    shown+=("${a%%=*}=***")
  else
    shown+=("$(printf '%q' "$a")")
  fi
done

# The proxy drains for at most AOP_SHUTDOWN_TIMEOUT seconds (its default: 30); a little more here.
proxy_timeout=${AOP_SHUTDOWN_TIMEOUT:-30}
proxy_timeout=${proxy_timeout%%.*}
if [[ $proxy_timeout =~ ^[0-9]{1,6}$ ]]; then
  proxy_timeout=$((10#$proxy_timeout + 5))
else
  proxy_timeout=35
fi
engine_timeout=${ENGINE_STOP_TIMEOUT:-30}
[[ $engine_timeout =~ ^[0-9]{1,6}$ ]] || die 2 "ENGINE_STOP_TIMEOUT must be a whole number of seconds, not '$engine_timeout'"

# ---- supervision ----
if [[ -n $stop_signal ]]; then
  log "stopped before anything started"
  exit 0
fi
log "starting $ENGINE_DISPLAY on $upstream_host:$engine_port: ${shown[*]}"
"${engine_env[@]}" "${engine_cmd[@]}" "${engine_args[@]}" &
engine_pid=$!
log "starting azure-openai-proxy on $proxy_host:$proxy_port as $run_as; $auth"
"${proxy_env[@]}" "${drop[@]}" "$proxy_bin" "${proxy_args[@]}" &
proxy_pid=$!
log "engine pid $engine_pid, proxy pid $proxy_pid; the proxy's /ready answers 200 once $ENGINE_DISPLAY is up"

# wait -n -p (bash 5.1+) tells which child ended; older shells poll.
if ((BASH_VERSINFO[0] > 5 || (BASH_VERSINFO[0] == 5 && BASH_VERSINFO[1] >= 1))) && [[ -z ${_AOP_ENTRYPOINT_POLL:-} ]]; then
  can_wait_p=1
else
  can_wait_p=0
fi

# Sets ended_pid and ended_code when a child ends; returns with ended_pid empty on a stop signal.
wait_first() {
  local code child
  ended_pid=""
  ended_code=""
  while [[ -z $stop_signal ]]; do
    if ((can_wait_p)); then
      unset waited_pid
      wait -n -p waited_pid "$engine_pid" "$proxy_pid"
      code=$?
      if [[ -n ${waited_pid:-} ]]; then
        ended_pid=$waited_pid
        ended_code=$code
        return
      fi
    else
      for child in "$engine_pid" "$proxy_pid"; do
        if ! kill -0 "$child" 2>/dev/null; then
          wait "$child"
          ended_code=$?
          ended_pid=$child
          return
        fi
      done
      sleep 0.5
    fi
  done
}

# stop_child PID NAME TIMEOUT: SIGTERM, SIGKILL after TIMEOUT seconds; sets stopped_code.
stop_child() {
  local pid=$1 name=$2 timeout=$3 killed=0
  local deadline=$((SECONDS + timeout))
  kill -TERM "$pid" 2>/dev/null
  while kill -0 "$pid" 2>/dev/null; do
    if ((!killed && SECONDS >= deadline)); then
      log "$name did not stop within ${timeout} s of SIGTERM: SIGKILL"
      kill -KILL "$pid" 2>/dev/null
      killed=1
    fi
    sleep 0.1
  done
  wait "$pid"
  stopped_code=$?
  log "$name exited with code $stopped_code"
}

wait_first
if [[ -n $ended_pid ]]; then
  if [[ $ended_pid == "$engine_pid" ]]; then
    log "$ENGINE_DISPLAY exited on its own with code $ended_code: stopping the proxy"
    stop_child "$proxy_pid" "the proxy" "$proxy_timeout"
  else
    log "the proxy exited on its own with code $ended_code: stopping $ENGINE_DISPLAY"
    stop_child "$engine_pid" "$ENGINE_DISPLAY" "$engine_timeout"
  fi
  log "exiting with code $ended_code"
  exit "$ended_code"
fi

stop_child "$proxy_pid" "the proxy" "$proxy_timeout"
proxy_code=$stopped_code
stop_child "$engine_pid" "$ENGINE_DISPLAY" "$engine_timeout"
engine_code=$stopped_code
clean() { [[ $1 == 0 || $1 == 130 || $1 == 143 ]]; }
if ! clean "$engine_code"; then
  code=$engine_code
elif ! clean "$proxy_code"; then
  code=$proxy_code
else
  code=0
fi
log "stopped; exiting with code $code"
exit "$code"
