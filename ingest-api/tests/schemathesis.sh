#!/usr/bin/env bash
# Fuzzes a running ingest-api from its own /openapi.json with schemathesis (pinned, from PyPI, in a venv
# cached under $SL_CACHE). Fails on any 5xx, any status or header or body the document does not describe,
# and on accepted bad data or refused good data.
#
# Usage: ingest-api/tests/schemathesis.sh [--max-examples N]
# Prints `schemathesis: N passed, N failed` last (one suite), so dev/test can run it as a dev/test.d script.
# Needs the local broker (dev/kafka/up); builds ingest-api, creates a throw-away dataset (the shipped
# orders contract under a unique name) so fuzz data never reaches the real topics, serves it on a free
# loopback port, runs schemathesis, and stops the server.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/../../dev/lib.sh"
[[ -f $SL_STATE/env ]] && source "$SL_STATE/env"
[[ -n ${KAFKA_BOOTSTRAP_SERVERS:-} ]] || sl_die "KAFKA_BOOTSTRAP_SERVERS unset: run dev/up and source .streamlake/env"

max_examples=50
while (($#)); do
  case $1 in
    --max-examples) max_examples=$2; shift 2 ;;
    *) sl_die "unknown argument $1" ;;
  esac
done

version=4.32.5
venv=$SL_CACHE/venvs/schemathesis-$version
if [[ ! -f $venv/.complete ]]; then
  sl_log "installing schemathesis $version into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "schemathesis==$version"
  touch "$venv/.complete"
fi

summary() { echo "schemathesis: $1 passed, $2 failed"; }
cargo build --quiet --locked -p streamlake-ingest-api --bin ingest-api >&2 || { summary 0 1; exit 1; }
api=$CARGO_TARGET_DIR/debug/ingest-api

work=$(mktemp -d)
pid=""
cleanup() {
  [[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

dataset=st-$(head -c 5 /dev/urandom | od -An -tx1 | tr -d ' \n')
mkdir "$work/contracts"
cp "$SL_ROOT/contracts/orders.v1.json" "$work/contracts/$dataset.v1.json"
export STREAMLAKE_CONTRACTS_DIR=$work/contracts STREAMLAKE_RAW_RETENTION_MS=3600000 STREAMLAKE_DLQ_RETENTION_MS=3600000
"$api" topics --raw-partitions 1 >&2 || { summary 0 1; exit 1; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
RUST_LOG=warn "$api" serve --listen-addr "127.0.0.1:$port" >"$work/api.log" 2>&1 &
pid=$!
sl_wait_until "ingest-api on port $port" 30 curl -fsS "http://127.0.0.1:$port/readyz" ||
  { cat "$work/api.log" >&2; summary 0 1; exit 1; }

sl_log "schemathesis $version against http://127.0.0.1:$port/openapi.json (dataset $dataset)"
status=0
"$venv/bin/schemathesis" run "http://127.0.0.1:$port/openapi.json" \
  --checks all --exclude-checks ignored_auth,use_after_free,ensure_resource_availability \
  --max-examples "$max_examples" --seed 42 --workers 1 || status=$?
if ((status != 0)); then
  sl_log "schemathesis failed; last lines of the API log:"
  tail -20 "$work/api.log" >&2
  summary 0 1
else
  summary 1 0
fi
exit "$status"
