# dev/demo.d/dlq_inspection.sh — step 3 of dev/demo: a DlqInspection over this run's window of the DLQ,
# its counts checked against the DLQ topic read independently. NOT YET (return 3) only when the operator in
# this checkout has no DlqInspection controller at all.
# shellcheck shell=bash

# dlq_window_matches STATUS_JSON WINDOW_FILE: status.total and the counts by error.type/error.stage are
# those of the records in the window file (dlq_read lines).
dlq_window_matches() {
  python3 - "$1" "$2" <<'EOF'
import collections, json, sys
status = json.load(open(sys.argv[1]))["status"]
types, stages, n = collections.Counter(), collections.Counter(), 0
for line in open(sys.argv[2]):
    n += 1
    headers = dict(h.split(":", 1) for h in line.split("\t")[1].split(" | ") if ":" in h)
    types[headers.get("error.type")] += 1
    stages[headers.get("error.stage")] += 1
ok = status.get("total") == n and status.get("byErrorType") == dict(types) and status.get("byErrorStage") == dict(stages)
if not ok:
    print(f"     the topic says: total {n}, by type {dict(types)}, by stage {dict(stages)}")
sys.exit(not ok or n == 0)
EOF
}

dlq_status_summary() {
  jget "$1" "'\n'.join(
    ['window: ' + ', '.join('partition %s offsets [%s, %s)' % (r['partition'], r['start'], r['end']) for r in d['status'].get('ranges', [])),
     'total: %s   byErrorType: %s   byErrorStage: %s' % (d['status'].get('total'), json.dumps(d['status'].get('byErrorType', {})), json.dumps(d['status'].get('byErrorStage', {}))),
     'first/last: %s / %s' % (d['status'].get('firstTimestamp'), d['status'].get('lastTimestamp'))]
    + ['top message: ' + json.dumps(m)[:140] for m in d['status'].get('topMessages', [])[:3]]
    + ['sample: ' + json.dumps(m)[:140] for m in d['status'].get('samples', [])[:2]])"
}

step_dlq_inspection() {
  local name=$RUN-dlq phase="" start end report
  cat >"$WORK/dlqinspection.yaml" <<EOF
apiVersion: streamlake.io/v1alpha1
kind: DlqInspection
metadata:
  name: $name
spec:
  dataset: $DATASET
  since: "$T0"
  maxRecords: 1000
  sampleSize: 3
EOF
  show <"$WORK/dlqinspection.yaml"
  kube -n "$NS" apply -f "$WORK/dlqinspection.yaml" 2>&1 | show
  CREATED+=("dlqinspection/$name")
  for _ in $(seq 1 60); do
    phase=$(kube -n "$NS" get dlqinspection "$name" -o jsonpath='{.status.phase}' 2>/dev/null)
    [[ -n $phase ]] && break
    sleep 0.5
  done
  if [[ -z $phase ]]; then
    if ! grep -qE 'dlq_?inspection::run' "$SL_ROOT/operator/src/main.rs"; then
      say "${C_WARN}NOT YET: DlqInspection is not reconciled yet: the operator in this checkout has no"
      say "DlqInspection controller, so $name has no status after 30 s (the CRD did accept it).${C_0}"
      return 3
    fi
    fail "no status on $name after 30 s, although operator/src/main.rs runs a DlqInspection controller"
    say "(is the deployed operator older than this checkout? dev/platform/up rebuilds and redeploys it)"
    return 1
  fi
  say "kubectl get dlqinspections -w:"
  watch_cr dlqinspections "$name" 90 'Succeeded|Failed'
  check "the DlqInspection Succeeded" test "$(jget "$WORK/$name.json" "d['status'].get('phase', '')")" = Succeeded
  dlq_status_summary "$WORK/$name.json" | show
  read -r start end <<<"$(jget "$WORK/$name.json" \
    "' '.join(str(r[k]) for r in d['status'].get('ranges', [])[:1] for k in ('start', 'end'))")"
  if [[ -z $start || -z $end ]]; then
    fail "status.ranges is empty"
    return 1
  fi
  dlq_read "$start" $((end - start)) "$WORK/dlq-window"
  say "the same window read with kafka-console-consumer (offsets $start..$((end - 1))): $(wc -l <"$WORK/dlq-window") records"
  check "status.total and the counts by error.type and error.stage are those of the DLQ topic" \
    dlq_window_matches "$WORK/$name.json" "$WORK/dlq-window"
  check "the window holds this run's two API rejects and its poison pill" test \
    "$(dlq_count "$WORK/dlq-window" "$RUN-bad-1")$(dlq_count "$WORK/dlq-window" "$RUN-bad-2")$(dlq_count "$WORK/dlq-window" "$RUN-pill")" = 111
  report=$(jget "$WORK/$name.json" "d['status'].get('report', '')")
  say "report: $report"
  check "the full JSON report is in the lake under reports/dlq/" \
    test -f "$LAKE_DIR/${report#"$LAKE"/}" -a "${report/\/reports\/dlq\//}" != "$report"
}
