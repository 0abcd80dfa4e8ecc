#!/usr/bin/env bash
# The whole flow on a Mac: k3s in Lima, images built in the VM and pushed to its
# registry, the local overlay deployed, the demo run against it.
#
# Usage: scripts/lima-demo.sh    (settings: see lima-up.sh and build-images.sh)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

case "${1:-}" in
  -h | --help) usage; exit 0 ;;
esac

"$ROOT/scripts/lima-up.sh"
export KUBECONFIG="$LIMA_KUBECONFIG"
# Build inside the VM by default: no Docker needed on the Mac, and the push goes to the
# VM's own localhost:5000.
export ENGINE="${ENGINE:-lima}"
"$ROOT/scripts/build-images.sh" --push
"$ROOT/scripts/deploy.sh" local --restart
"$ROOT/scripts/cluster-demo.sh"
