# dev/demo.d/common.sh — output, step bookkeeping and small platform helpers for dev/demo. Source it.
# shellcheck shell=bash

if [[ -t 1 ]]; then
  C_B=$'\033[1m' C_OK=$'\033[32m' C_BAD=$'\033[31m' C_WARN=$'\033[33m' C_DIM=$'\033[2m' C_0=$'\033[0m'
else
  C_B='' C_OK='' C_BAD='' C_WARN='' C_DIM='' C_0=''
fi

banner() { printf '\n%s%s%s\n' "$C_B" "$*" "$C_0"; }
say() { printf '   %s\n' "$*"; }
# show: evidence (command output), indented under the narration (colours of dev/lib.sh dropped off a terminal).
if [[ -t 1 ]]; then
  show() { sed "s/^/     ${C_DIM}│${C_0} /"; }
else
  show() { sed -e 's/\x1b\[[0-9;]*m//g' -e 's/^/     │ /'; }
fi
pass() { printf '   %s✔%s %s\n' "$C_OK" "$C_0" "$*"; }
fail() {
  printf '   %s✘ %s%s\n' "$C_BAD" "$*" "$C_0"
  STEP_OK=false
}
# check DESCRIPTION CMD...: the evidence CMD decides; the step fails if it does not hold.
check() {
  local desc=$1
  shift
  if "$@"; then pass "$desc"; else fail "$desc"; fi
}

STEP_IDS=() STEP_TITLES=() STEP_RESULTS=() STEP_TIMES=()
# run_step ID TITLE FUNCTION: a function returns 0 (its checks decide), 1 (failed early) or 3 (not yet there).
run_step() {
  local id=$1 title=$2 fn=$3 started=$SECONDS rc result
  printf '\n%s── Step %s. %s%s\n' "$C_B" "$id" "$title" "$C_0"
  STEP_OK=true
  "$fn"
  rc=$?
  if ((rc == 3)); then
    result="NOT YET"
  elif ((rc == 0)) && [[ $STEP_OK == true ]]; then
    result=ok
  else
    result=FAILED
  fi
  STEP_IDS+=("$id") STEP_TITLES+=("$title") STEP_RESULTS+=("$result") STEP_TIMES+=($((SECONDS - started)))
  [[ $result == ok ]]
}

summary() {
  local i passed=0 failed=0 notyet=0 colour
  banner "Summary (run $RUN)"
  printf '   %-5s %-78s %-8s %s\n' STEP WHAT RESULT TIME
  for i in "${!STEP_IDS[@]}"; do
    case ${STEP_RESULTS[$i]} in
      ok) passed=$((passed + 1)) colour=$C_OK ;;
      FAILED) failed=$((failed + 1)) colour=$C_BAD ;;
      *) notyet=$((notyet + 1)) colour=$C_WARN ;;
    esac
    printf '   %-5s %-78s %s%-8s%s %ss\n' "${STEP_IDS[$i]}" "${STEP_TITLES[$i]:0:78}" "$colour" \
      "${STEP_RESULTS[$i]}" "$C_0" "${STEP_TIMES[$i]}"
  done
  echo
  if ((notyet)); then
    say "NOT YET: the feature is not in this checkout; it counts neither as passed nor as failed."
  fi
  printf 'demo: %d passed, %d failed%s\n' "$passed" "$failed" "$( ((notyet)) && echo ", $notyet not yet")"
  ((failed == 0))
}

# Small platform helpers.
kube() { "$SL_STATE/bin/kubectl" "$@"; }
lake() { python3 "$DEMO_LIB/lake.py" "$@"; }
# jget FILE EXPR: a value out of a JSON file (EXPR is Python over `d`); jtrue FILE EXPR: whether EXPR holds.
jget() { python3 "$DEMO_LIB/lake.py" json "$1" "$2"; }
jtrue() { python3 "$DEMO_LIB/lake.py" json "$1" "'' if ($2) else sys.exit(1)" >/dev/null 2>&1; }
now_rfc3339() { date -u +%Y-%m-%dT%H:%M:%S.%3NZ; }

# post PATH FILE BODY: POST BODY to the API; the answer goes to FILE, the HTTP status to stdout.
post() {
  curl -sS -o "$2" -w '%{http_code}' -XPOST "$STREAMLAKE_API_URL$1" \
    -H 'content-type: application/json' -H 'X-StreamLake-Source: dev-demo' -d "$3" || echo 000
}

# order KEY [CURRENCY] [AMOUNT_JSON] [ITEMS_JSON]: an orders event (valid with the defaults).
order() {
  local key=$1 currency=${2:-EUR} amount=${3:-'"12.50"'} items=${4:-'[{"sku":"sku-1","quantity":1,"unit_price":"12.50"}]'}
  printf '{"order_id":"%s","customer_id":"c-demo","currency":"%s","amount":%s,"created_at":"%s","line_items":%s}' \
    "$key" "$currency" "$amount" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$items"
}

# send_valid KEY: POST one valid order, record its key in $KEYS, print "HTTP partition offset".
send_valid() {
  local key=$1 out=$WORK/post-$1.json code
  code=$(post "/ingest/$DATASET" "$out" "$(order "$key")")
  if [[ $code == 200 ]]; then
    echo "$key" >>"$KEYS"
    echo "$code $(jget "$out" "str(d['partition']) + ' ' + str(d['offset'])")"
  else
    echo "$code - -"
  fi
}

# dlq_read FROM_OFFSET COUNT OUT: at most COUNT records of the DLQ topic (one partition) from an offset into OUT
# as lines `offset<TAB>header:value | header:value ...<TAB>key<TAB>value`.
dlq_read() {
  kafka-console-consumer --bootstrap-server "$KAFKA_BOOTSTRAP_SERVERS" --topic "$DLQ" --partition 0 \
    --offset "$1" --max-messages "$2" --timeout-ms 4000 \
    --formatter-property print.offset=true --formatter-property print.key=true \
    --formatter-property print.headers=true --formatter-property 'headers.separator= | ' \
    2>/dev/null | sed 's/^Offset://' >"$3"
}

dlq_end() { kafka-get-offsets --bootstrap-server "$KAFKA_BOOTSTRAP_SERVERS" --topic "$DLQ" 2>/dev/null | awk -F: '$2 == 0 { print $3 }'; }

# group_offsets GROUP OUT: committed offsets of a group on the raw topic, as lines `partition offset`.
group_offsets() {
  kafka-consumer-groups --bootstrap-server "$KAFKA_BOOTSTRAP_SERVERS" --describe --group "$1" 2>/dev/null |
    awk -v t="$RAW" '$2 == t { print $3, $4 }' | sort -n >"$2"
}

# watch_cr PLURAL NAME TIMEOUT DONE_PHASES: prints a row each time the phase or progress changes, like
# `kubectl get PLURAL -w`, until a phase matches DONE_PHASES (a regex); the object ends up in $WORK/NAME.json.
watch_cr() {
  local plural=$1 name=$2 timeout=$3 done=$4 started=$SECONDS row last="" phase
  printf '%-8s %-34s %-8s %-22s %s\n' ELAPSED NAME DATASET PHASE PROGRESS | show
  while ((SECONDS - started < timeout)); do
    row=$(kube -n "$NS" get "$plural" "$name" -o jsonpath='{.spec.dataset}{"\t"}{.status.phase}{"\t"}{.status.progress}' 2>/dev/null)
    if [[ $row != "$last" ]]; then
      IFS=$'\t' read -r ds phase progress <<<"$row"
      printf '%-8s %-34s %-8s %-22s %s\n' "+$((SECONDS - started))s" "$name" "$ds" "${phase:-<none>}" "${progress:-}" | show
      last=$row
    fi
    phase=$(cut -f2 <<<"$row")
    [[ -n $phase && $phase =~ ^($done)$ ]] && break
    sleep 0.5
  done
  kube -n "$NS" get "$plural" "$name" -o json >"$WORK/$name.json"
}

# Resources this run created, deleted at the end unless STREAMLAKE_DEMO_KEEP is set.
CREATED=()
DEMO_PIDS_STATE="" # the private state dir of step 2c's emulator and consumer
demo_cleanup() {
  if [[ -n $DEMO_PIDS_STATE ]]; then
    SL_STATE=$DEMO_PIDS_STATE sl_stop demo-consumer 20 2>/dev/null
    SL_STATE=$DEMO_PIDS_STATE sl_stop gcs-emulator 10 2>/dev/null
    kafka-consumer-groups --bootstrap-server "$KAFKA_BOOTSTRAP_SERVERS" --delete --group "streamlake-$RUN-sink" \
      >/dev/null 2>&1 || true
  fi
  if [[ -n ${STREAMLAKE_DEMO_KEEP:-} ]]; then
    say "kept: ${CREATED[*]:-nothing} and $WORK"
    return
  fi
  # Deleting a Replay that still holds the consumers gives them back (its finalizer); $WORK has their JSON.
  for obj in "${CREATED[@]}"; do kube -n "$NS" delete "$obj" --wait=false >/dev/null 2>&1; done
  if [[ " ${STEP_RESULTS[*]} " == *" FAILED "* ]]; then
    say "evidence of this run kept in $WORK"
  else
    rm -rf "$WORK"
  fi
}
