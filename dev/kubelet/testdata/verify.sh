#!/usr/bin/env bash
# Manual end-to-end check of the process kubelet against the running environment (dev/k8s/up, dev/kubelet/up).
# Prints what it observes; exits non-zero at the first expectation that does not hold.
# Usage: dev/kubelet/testdata/verify.sh   (leaves namespace kubelet-test behind for inspection)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../lib.sh"
export KUBECONFIG=$SL_STATE/kubeconfig PATH=$SL_STATE/bin:$PATH
HERE=$(dirname "${BASH_SOURCE[0]}")
NS=kubelet-test
PODS=$SL_STATE/pods
k() { kubectl -n "$NS" "$@"; }
check() { local what=$1; shift; if "$@"; then echo "ok   $what"; else echo "FAIL $what"; exit 1; fi; }
log_of() { cat "$PODS/by-name/${NS}_$1/$2.log" 2>/dev/null; }

kubectl delete namespace "$NS" --ignore-not-found --wait=true --timeout=120s >/dev/null
kubectl apply -f "$HERE/namespace.yaml" >/dev/null

# Deployment: 2 replicas → 2 processes, Running and Ready, each with its own pod IP.
k apply -f "$HERE/deployment-sigterm.yaml" >/dev/null
k rollout status deployment/sigterm-echo --timeout=60s >/dev/null
k get pods -l app=sigterm-echo -o wide
mapfile -t names < <(k get pods -l app=sigterm-echo -o 'jsonpath={range .items[*]}{.metadata.name}{"\n"}{end}')
check "2 pods" test "${#names[@]}" -eq 2
for n in "${names[@]}"; do
  pid=$(cut -d' ' -f1 "$PODS/by-name/${NS}_$n/main.pid")
  check "$n runs as process $pid" kill -0 "$pid"
  check "$n printed its pod IP" grep -q "on 127.42." <(log_of "$n" main)
done
# Scale to 0 → both get SIGTERM, exit, pods go away, Deployment reports 0 replicas.
k scale deployment/sigterm-echo --replicas=0 >/dev/null
sl_wait_until "pods gone" 60 bash -c "[[ -z \$(kubectl -n $NS get pods -l app=sigterm-echo -o name) ]]"
for n in "${names[@]}"; do check "$n log says got SIGTERM" grep -q "got SIGTERM" <(log_of "$n" main); done
check "deployment reports 0 replicas" test "$(k get deployment sigterm-echo -o 'jsonpath={.status.replicas}')" = ""

# Jobs: exit 0 → Complete; exit 1 with backoffLimit 0 → Failed.
k apply -f "$HERE/job-succeeds.yaml" -f "$HERE/job-fails.yaml" >/dev/null
check "job-succeeds Complete" k wait --for=condition=Complete job/job-succeeds --timeout=60s
check "job-fails Failed" k wait --for=condition=Failed job/job-fails --timeout=60s

# Env from a ConfigMap and a Secret.
k apply -f "$HERE/env-sources.yaml" >/dev/null
check "env-sources Succeeded" k wait --for=jsonpath='{.status.phase}'=Succeeded pod/env-sources --timeout=60s
log_of env-sources main
check "env reached the process" grep -qx "MODE=fast PASSWORD=s3cret CFG_LEVEL=3 ARG=fast-kubelet-test OPTIONAL=unset" <(log_of env-sources main)
k apply -f "$HERE/env-missing.yaml" >/dev/null
sl_wait_until "CreateContainerConfigError" 30 bash -c "kubectl -n $NS get pod env-missing -o jsonpath='{.status.containerStatuses[0].state.waiting.reason}' | grep -qx CreateContainerConfigError"
echo "ok   env-missing waits: $(k get pod env-missing -o jsonpath='{.status.containerStatuses[0].state.waiting.message}')"
k create configmap late-config --from-literal=K=arrived >/dev/null
check "env-missing runs once the ConfigMap exists" k wait --for=jsonpath='{.status.phase}'=Succeeded pod/env-missing --timeout=60s

# Readiness probes gate Ready.
k apply -f "$HERE/readiness.yaml" >/dev/null
sleep 2
check "ready-exec not Ready before its file exists" test "$(k get pod ready-exec -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}')" = False
check "ready-http not Ready before it listens" test "$(k get pod ready-http -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}')" = False
check "ready-exec becomes Ready" k wait --for=condition=Ready pod/ready-exec --timeout=30s
check "ready-http becomes Ready" k wait --for=condition=Ready pod/ready-http --timeout=30s

# ServiceAccount RBAC through the per-pod kubeconfig.
k apply -f "$HERE/serviceaccount-rbac.yaml" >/dev/null
check "sa-check finished" k wait --for=jsonpath='{.status.phase}'=Failed pod/sa-check --timeout=60s
check "whoami is the ServiceAccount" grep -qx "system:serviceaccount:$NS:pod-reader" <(log_of sa-check whoami)
check "may list pods" grep -q "pod/sa-check" <(log_of sa-check list-pods)
check "may not list secrets" grep -q "Forbidden" <(log_of sa-check list-secrets)

# Init containers, crash loop, liveness, unknown image, SIGKILL after the grace period.
k apply -f "$HERE/init-containers.yaml" -f "$HERE/crashloop.yaml" -f "$HERE/liveness.yaml" \
  -f "$HERE/unknown-image.yaml" -f "$HERE/ignore-sigterm.yaml" >/dev/null
check "init-order Succeeded" k wait --for=jsonpath='{.status.phase}'=Succeeded pod/init-order --timeout=60s
check "init containers ran in order" test "$(log_of init-order main | tr '\n' ' ')" = "first second main "
sl_wait_until "crashloop restarted" 60 bash -c "(( \$(kubectl -n $NS get pod crashloop -o jsonpath='{.status.containerStatuses[0].restartCount}') >= 1 ))"
echo "ok   crashloop: $(k get pod crashloop -o jsonpath='{.status.phase} restarts={.status.containerStatuses[0].restartCount} lastExit={.status.containerStatuses[0].lastState.terminated.exitCode}')"
sl_wait_until "liveness restarted" 60 bash -c "(( \$(kubectl -n $NS get pod liveness -o jsonpath='{.status.containerStatuses[0].restartCount}') >= 1 ))"
echo "ok   liveness restarted: $(log_of liveness main | tr '\n' ' ')"
sl_wait_until "unknown image waits" 30 bash -c "kubectl -n $NS get pod unknown-image -o jsonpath='{.status.containerStatuses[0].state.waiting.reason}' | grep -q ImagePull"
echo "ok   unknown-image: $(k get pod unknown-image -o jsonpath='{.status.containerStatuses[0].state.waiting.reason}: {.status.containerStatuses[0].state.waiting.message}')"
k wait --for=condition=Ready pod/ignore-sigterm --timeout=30s >/dev/null
start=$SECONDS
k delete pod ignore-sigterm >/dev/null
check "ignore-sigterm removed after its 3 s grace period" test $((SECONDS - start)) -ge 3
check "node still Ready" test "$(kubectl get node streamlake-dev -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}')" = True
k get events --sort-by=.lastTimestamp -o custom-columns=TYPE:.type,REASON:.reason,OBJECT:.involvedObject.name | sort -u -k2,2 | head -20
echo "all checks passed"
