#!/usr/bin/env bash
# Run the demo (docs: ../shared/spec/demo.md) against the fleet in the cluster, with the
# same driver and summary as the local fleet: python -m local_fleet.demo.
#
# Usage: scripts/cluster-demo.sh [extra arguments for local_fleet.demo]
#   Starts a background port-forward to the runtime if it does not answer yet, and for
#   the run, one port-forward to each proxy's and each pod's metrics port, so the demo
#   can report how executions spread over the pods and check callback affinity.
#   PYTHON: the interpreter that has this project installed (default: .venv/bin/python
#           as made by scripts/setup, else python3).
#   METRICS_PORT_BASE: first local port for the metrics forwards (default 19090).
#   STEPFLOW_API_TOKEN: taken from the Secret stepflow-api-token when not set.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

case "${1:-}" in
  -h | --help) usage; exit 0 ;;
esac

PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
  PYTHON=python3
  [ -x "$ROOT/.venv/bin/python" ] && PYTHON="$ROOT/.venv/bin/python"
fi
need "$PYTHON" "Set PYTHON to an interpreter with this project installed."
need kubectl "See docs/deployment.md."
need curl "Install curl."
if ! "$PYTHON" -c 'import local_fleet.demo' 2>/dev/null; then
  die "$PYTHON cannot import local_fleet.demo: install the project first (pip install -e . in $ROOT)"
fi

"$ROOT/scripts/port-forward.sh" --background

if [ -z "${STEPFLOW_API_TOKEN:-}" ]; then
  token="$("${KUBECTL[@]}" -n "$NAMESPACE" get secret stepflow-api-token -o jsonpath='{.data.token}' 2>/dev/null || true)"
  if [ -n "$token" ]; then
    say "using the bearer token from Secret stepflow-api-token"
    STEPFLOW_API_TOKEN="$(printf '%s' "$token" | base64 --decode)"
    export STEPFLOW_API_TOKEN
  fi
fi

# Metrics: one port-forward per running proxy and pod, stopped when this script ends.
forward_pids=""
stop_metrics_forwards() {
  if [ -n "$forward_pids" ]; then
    # shellcheck disable=SC2086  # a list of pids
    kill $forward_pids 2>/dev/null || true
  fi
}
trap stop_metrics_forwards EXIT

port="${METRICS_PORT_BASE:-19090}"
demo_args=(--runtime-url "http://localhost:$LOCAL_PORT")
for app in stepflow-load-balancer component-server; do
  flag=--pod-metrics
  [ "$app" = stepflow-load-balancer ] && flag=--proxy-metrics
  pods="$("${KUBECTL[@]}" -n "$NAMESPACE" get pods -l "app.kubernetes.io/name=$app" \
    --field-selector=status.phase=Running -o name)"
  for pod in $pods; do
    say "metrics of $pod at http://localhost:$port/metrics"
    "${KUBECTL[@]}" -n "$NAMESPACE" port-forward "$pod" "$port:9090" >/dev/null 2>&1 &
    forward_pids="$forward_pids $!"
    demo_args+=("$flag" "http://localhost:$port/metrics")
    port=$((port + 1))
  done
done

# Wait until every metrics forward answers.
for url in "${demo_args[@]}"; do
  case "$url" in
    */metrics)
      for _ in $(seq 1 30); do
        curl -fsS --max-time 2 -o /dev/null "$url" 2>/dev/null && break
        sleep 0.5
      done
      curl -fsS --max-time 2 -o /dev/null "$url" 2>/dev/null ||
        die "no metrics at $url (is the port taken? set METRICS_PORT_BASE)"
      ;;
  esac
done

say "running the demo against http://localhost:$LOCAL_PORT (context $(current_context))"
run "$PYTHON" -m local_fleet.demo "${demo_args[@]}" "$@"
