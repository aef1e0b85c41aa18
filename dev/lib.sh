# Shared helpers for the dev/ scripts. Source it; it defines paths and process bookkeeping.
#
# State (pids, logs, data, generated config) lives under $SL_STATE, by default .streamlake/ at the
# repository root. Build outputs that survive `dev/down` and are shared between checkouts (Go binaries,
# Maven jars, the Cargo target dir) live under $SL_CACHE.
# shellcheck shell=bash

SL_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SL_STATE=${STREAMLAKE_STATE:-$SL_ROOT/.streamlake}
SL_CACHE=${STREAMLAKE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/streamlake}
export SL_ROOT SL_STATE SL_CACHE
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$SL_CACHE/target}

# Fixed loopback ports, chosen away from the usual defaults so a developer's own Kafka or cluster is untouched.
export SL_KAFKA_PORT=${SL_KAFKA_PORT:-19092}
export SL_KAFKA_CONTROLLER_PORT=${SL_KAFKA_CONTROLLER_PORT:-19093}
export SL_ETCD_PORT=${SL_ETCD_PORT:-12379}
export SL_ETCD_PEER_PORT=${SL_ETCD_PEER_PORT:-12380}
export SL_APISERVER_PORT=${SL_APISERVER_PORT:-16443}
export SL_GCS_PORT=${SL_GCS_PORT:-14443}
export SL_GCS_BUCKET=${SL_GCS_BUCKET:-streamlake-dev}

mkdir -p "$SL_STATE"/{pids,logs,bin,data,run} "$SL_CACHE"

sl_log() { printf '\033[1;34m[dev]\033[0m %s\n' "$*" >&2; }
sl_die() { printf '\033[1;31m[dev] error:\033[0m %s\n' "$*" >&2; exit 1; }

# The kernel's start time of a pid (clock ticks since boot): with the pid it names one process for good.
sl_proc_start() { awk '{print $22}' "/proc/$1/stat" 2>/dev/null; }

# sl_running NAME: true if the process recorded under NAME is alive and is the one we started.
sl_running() {
  local f=$SL_STATE/pids/$1.pid pid start
  [[ -f $f ]] || return 1
  read -r pid start <"$f" || return 1
  [[ -n $pid && $(sl_proc_start "$pid") == "$start" ]]
}

sl_pid() { local pid _; read -r pid _ <"$SL_STATE/pids/$1.pid" && echo "$pid"; }

# sl_start NAME CMD...: run CMD in its own session, stdout/stderr to logs/NAME.log, pid recorded.
sl_start() {
  local name=$1; shift
  if sl_running "$name"; then sl_log "$name already running (pid $(sl_pid "$name"))"; return 0; fi
  local log=$SL_STATE/logs/$name.log
  printf '\n==== %s starting: %s\n' "$(date -Is)" "$*" >>"$log"
  setsid "$@" </dev/null >>"$log" 2>&1 &
  local pid=$!
  local start=""
  for _ in 1 2 3 4 5 6 7 8 9 10; do start=$(sl_proc_start "$pid") && [[ -n $start ]] && break; sleep 0.05; done
  echo "$pid $start" >"$SL_STATE/pids/$name.pid"
  sl_log "$name started (pid $pid, log $log)"
}

# sl_stop NAME [GRACE_SECONDS]: SIGTERM the process group we started, SIGKILL after the grace period.
sl_stop() {
  local name=$1 grace=${2:-20} pid
  if ! sl_running "$name"; then rm -f "$SL_STATE/pids/$name.pid"; return 0; fi
  pid=$(sl_pid "$name")
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  local waited=0
  while sl_running "$name" && ((waited < grace * 10)); do sleep 0.1; waited=$((waited + 1)); done
  if sl_running "$name"; then
    sl_log "$name did not stop within ${grace}s; killing"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
  fi
  rm -f "$SL_STATE/pids/$name.pid"
  sl_log "$name stopped"
}

# sl_wait_until DESCRIPTION TIMEOUT_SECONDS CMD...: poll CMD until it succeeds; fail with the description.
sl_wait_until() {
  local desc=$1 timeout=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || { sl_log "timed out after ${timeout}s waiting for $desc"; return 1; }
    sleep 0.5
  done
}

# sl_env_set KEY VALUE: record an export in $SL_STATE/env, the file users and tests source.
sl_env_set() {
  local f=$SL_STATE/env key=$1 value=$2
  touch "$f"
  grep -v "^export $key=" "$f" >"$f.tmp" || true
  printf 'export %s=%q\n' "$key" "$value" >>"$f.tmp"
  mv "$f.tmp" "$f"
}

# sl_cached_build KEY OUTPUT BUILD_CMD...: run BUILD_CMD only if OUTPUT is missing or was built for another KEY.
sl_cached_build() {
  local key=$1 out=$2; shift 2
  if [[ -x $out && -f $out.key && $(cat "$out.key") == "$key" ]]; then return 0; fi
  mkdir -p "$(dirname "$out")"
  "$@" || return 1
  echo "$key" >"$out.key"
}
