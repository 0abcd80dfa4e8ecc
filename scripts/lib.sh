# shellcheck shell=bash disable=SC2034  # the variables are used by the scripts that source this file
# Shared by the scripts in this folder: the settings (environment variables, with their
# defaults) and small helpers that print what they do. Sourced, never run.
# Written for bash 3.2 too (macOS' /bin/bash): no associative arrays, no mapfile.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# --- settings -------------------------------------------------------------------------
REGISTRY="${REGISTRY:-localhost:5000}"      # where images are tagged and pushed
TAG="${TAG:-latest}"                        # image tag (the overlays use "latest")
NAMESPACE="${NAMESPACE:-stepflow-demo}"     # fixed by docs/architecture.md
LIMA_INSTANCE="${LIMA_INSTANCE:-stepflow}"  # Lima VM name
LIMA_KUBECONFIG="${LIMA_KUBECONFIG:-$HOME/.kube/stepflow-lima.yaml}"
KIND_CLUSTER="${KIND_CLUSTER:-stepflow}"    # kind cluster name (context kind-stepflow)
LOCAL_PORT="${LOCAL_PORT:-7840}"            # where port-forward.sh exposes the runtime
KUBECTL_CONTEXT="${KUBECTL_CONTEXT:-}"      # empty: kubectl's current context

# The three images, each with its Dockerfile (build context: the repo root).
IMAGES="stepflow-runtime stepflow-proxy stepflow-component-server"
# The Deployments, in the order they must become ready: the runtime initializes its
# "stepflow" plugin through the proxies at startup, the proxies need the pods.
DEPLOYMENTS="component-server stepflow-load-balancer stepflow-server"

dockerfile_for() {
  case "$1" in
    stepflow-runtime) echo docker/runtime.Dockerfile ;;
    stepflow-proxy) echo docker/proxy.Dockerfile ;;
    stepflow-component-server) echo docker/component-server.Dockerfile ;;
    *) die "unknown image $1" ;;
  esac
}

image_ref() { echo "$REGISTRY/$1:$TAG"; }

# --- output ---------------------------------------------------------------------------
# The comment block at the top of the running script, as its --help.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
# For a script that takes no arguments: --help prints its usage, anything else is refused.
no_arguments() {
  case "${1:-}" in
    -h | --help) usage; exit 0 ;;
    "") ;;
    *) die "unknown argument $1 (try --help)" ;;
  esac
}

# Print a command (shell-quoted), then run it.
run() {
  printf '+' >&2
  printf ' %q' "$@" >&2
  printf '\n' >&2
  "$@"
}

# need COMMAND HINT: fail early, saying how to get COMMAND.
need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is not installed. $2"
}

# --- kubectl --------------------------------------------------------------------------
# "${KUBECTL[@]}" is kubectl talking to KUBECTL_CONTEXT (or the current context).
KUBECTL=(kubectl)
if [ -n "$KUBECTL_CONTEXT" ]; then
  KUBECTL=(kubectl --context "$KUBECTL_CONTEXT")
fi

current_context() {
  if [ -n "$KUBECTL_CONTEXT" ]; then
    echo "$KUBECTL_CONTEXT"
  else
    kubectl config current-context 2>/dev/null || echo "(none)"
  fi
}

# --- container engine -----------------------------------------------------------------
lima_status() {
  limactl list --format '{{.Status}}' "$LIMA_INSTANCE" 2>/dev/null || true
}

# Sets ENGINE_CMD (an array) to the command that builds and pushes images:
#   docker, nerdctl, or nerdctl inside the Lima VM (ENGINE=lima; needs no engine on the
#   host). ENGINE picks one; by default the first that works.
select_engine() {
  local engine="${ENGINE:-}"
  if [ -z "$engine" ]; then
    if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
      engine=docker
    elif command -v nerdctl >/dev/null 2>&1; then
      engine=nerdctl
    elif command -v limactl >/dev/null 2>&1 && [ "$(lima_status)" = Running ]; then
      engine=lima
    else
      die "no container engine: start Docker, install nerdctl, or run scripts/lima-up.sh (see docs/deployment.md)"
    fi
  fi
  case "$engine" in
    docker)
      need docker "Install Docker, or set ENGINE=nerdctl or ENGINE=lima."
      # RUN --mount in the Dockerfiles needs BuildKit (the default since Docker 23).
      export DOCKER_BUILDKIT=1
      ENGINE_CMD=(docker)
      ;;
    nerdctl)
      need nerdctl "Install nerdctl, or set ENGINE=docker or ENGINE=lima."
      ENGINE_CMD=(nerdctl)
      ;;
    lima)
      need limactl "Install Lima (brew install lima)."
      [ "$(lima_status)" = Running ] || die "Lima VM $LIMA_INSTANCE is not running: scripts/lima-up.sh"
      case "$ROOT/" in
        "$HOME"/*) ;;
        *) die "the repo ($ROOT) must be under your home directory, which the Lima VM mounts" ;;
      esac
      ENGINE_CMD=(limactl shell --workdir "$ROOT" "$LIMA_INSTANCE" sudo nerdctl)
      ;;
    *) die "ENGINE must be docker, nerdctl or lima (got $engine)" ;;
  esac
  say "container engine: $engine"
}
