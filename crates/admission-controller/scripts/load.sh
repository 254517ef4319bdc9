#!/usr/bin/env bash
# Load benchmark of the admission controller on loopback: apiserver-sim and one replica (release
# builds), N copies of the Pod Security restricted policy, then wrk POSTing AdmissionReviews of a
# Pod create straight to /validate/fail at concurrency 1, 16 and 64, for each N given.
#
#   crates/admission-controller/scripts/load.sh [SECONDS] [POLICY COUNT...]   (default: 10 1)
#
# Needs wrk (apt-get install wrk), python3 with PyYAML, and curl. Prints rps, p50/p99 latency
# and the replica's resident memory idle and under load. Every process it starts is stopped.
set -euo pipefail
cd "$(dirname "$0")/../../.."
seconds=${1:-10}
shift || true
counts=("${@:-1}")
target=${CARGO_TARGET_DIR:-target}
# LOAD_SKIP_BUILD=1 uses the release binaries as they are.
if [ "${LOAD_SKIP_BUILD:-}" != 1 ]; then
  cargo build --release -q -p kyverno-admission-controller -p apiserver-sim
fi

run() {
policies=$1
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
"$target/release/apiserver-sim" --crds crds --kubeconfig "$work/kubeconfig" >"$work/sim.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/kubeconfig" ] && break; sleep 0.1; done
server=$(awk '/server:/ {print $2}' "$work/kubeconfig")
token=$(awk '/token:/ {print $2}' "$work/kubeconfig")
api() { curl -sk -H "Authorization: Bearer $token" -H 'Content-Type: application/json' "$@"; }
api -X POST "$server/api/v1/namespaces" -d '{"metadata":{"name":"kyverno"}}' >/dev/null

python3 - "$policies" >"$work/policies.jsonl" <<'PY'
import json, sys, yaml
policy = yaml.safe_load(open("examples/policies/pod-security-restricted.yaml"))
for index in range(int(sys.argv[1])):
    policy["metadata"]["name"] = f"pod-security-restricted-{index}"
    print(json.dumps(policy))
PY
while read -r policy; do
  api -X POST "$server/apis/kyverno.io/v1/clusterpolicies" -d "$policy" >/dev/null
done <"$work/policies.jsonl"

KUBECONFIG="$work/kubeconfig" RUST_LOG=warn "$target/release/admission-controller" \
  --webhook-addr 127.0.0.1:19443 --metrics-addr 127.0.0.1:18000 >"$work/controller.log" 2>&1 &
controller=$!
pids+=($controller)
for _ in $(seq 300); do
  [ "$(curl -sk -o /dev/null -w '%{http_code}' https://127.0.0.1:19443/health/readiness)" = 200 ] && break
  sleep 0.1
done

python3 >"$work/review.json" <<'PY'
import json
pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bench", "namespace": "default",
    "labels": {"app": "bench"}},
  "spec": {"securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [{"name": "app", "image": "registry.example/app:1.0",
      "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}]}}
print(json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
  "uid": "00000000-0000-0000-0000-000000000000",
  "kind": {"group": "", "version": "v1", "kind": "Pod"},
  "resource": {"group": "", "version": "v1", "resource": "pods"},
  "name": "bench", "namespace": "default", "operation": "CREATE",
  "userInfo": {"username": "bench", "groups": ["system:authenticated"]}, "object": pod}}))
PY
# The policies are in force: the hardened Pod is admitted, a privileged one denied.
answer() {
  curl -sk -H 'Content-Type: application/json' --data-binary @- 'https://127.0.0.1:19443/validate/fail?timeout=10s'
}
case "$(answer <"$work/review.json")" in *'"allowed":true'*) ;; *) echo "the hardened Pod is not admitted"; exit 1 ;; esac
for _ in $(seq 100); do
  denied=$(sed 's/"allowPrivilegeEscalation": false/"privileged": true/' "$work/review.json" | answer)
  case "$denied" in *'"allowed":false'*) break ;; esac
  sleep 0.1
done
case "$denied" in *'"allowed":false'*) ;; *) echo "the privileged Pod is not denied: $denied"; exit 1 ;; esac
cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$work/review.json", "r")
wrk.body = f:read("*a")
f:close()
LUA
rss() { awk '/VmRSS/ {printf "%.1f MiB", $2 / 1024}' "/proc/$controller/status"; }
echo "policies: $policies, idle RSS: $(rss)"
printf '%-12s %10s %10s %10s %12s\n' concurrency rps p50 p99 'RSS (load)'
for connections in 1 16 64; do
  threads=$(( connections < 2 ? 1 : 2 ))
  wrk -t "$threads" -c "$connections" -d "${seconds}s" --latency -s "$work/post.lua" \
    'https://127.0.0.1:19443/validate/fail?timeout=10s' >"$work/wrk.txt" &
  load=$!
  sleep $(( seconds / 2 ))
  memory=$(rss)
  wait "$load"
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.txt")
  p50=$(awk '$1 == "50%" {print $2}' "$work/wrk.txt")
  p99=$(awk '$1 == "99%" {print $2}' "$work/wrk.txt")
  printf '%-12s %10s %10s %10s %12s\n' "$connections" "$rps" "$p50" "$p99" "$memory"
  if grep -q 'Non-2xx' "$work/wrk.txt"; then grep 'Non-2xx' "$work/wrk.txt"; fi
done
curl -s http://127.0.0.1:18000/metrics | grep -m1 '^kyverno_policy_results_total' || true
cleanup
trap - EXIT
}

for count in "${counts[@]}"; do
  run "$count"
done
