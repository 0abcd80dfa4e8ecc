#!/usr/bin/env bash
# Run the demo (docs: ../shared/spec/demo.md) against the fleet in the cluster, with the
# same driver and summary as the local fleet: python -m local_fleet.demo.
#
# Usage: scripts/cluster-demo.sh [extra arguments for local_fleet.demo]
#   Starts a background port-forward to the runtime if it does not answer yet.
#   PYTHON: the interpreter that has this project installed (default python3).
#   STEPFLOW_API_TOKEN: taken from the Secret stepflow-api-token when not set.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

case "${1:-}" in
  -h | --help) sed -n '2,9p' "$0"; exit 0 ;;
esac

PYTHON="${PYTHON:-python3}"
need "$PYTHON" "Set PYTHON to an interpreter with this project installed."
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

say "running the demo against http://localhost:$LOCAL_PORT (context $(current_context))"
run "$PYTHON" -m local_fleet.demo --runtime-url "http://localhost:$LOCAL_PORT" "$@"
