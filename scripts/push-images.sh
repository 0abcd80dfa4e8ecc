#!/usr/bin/env bash
# Push the images built by scripts/build-images.sh to $REGISTRY (default localhost:5000,
# the registry inside the Lima VM). kind does not need this: kind-up.sh loads the images
# straight into the cluster.
#
# Usage: scripts/push-images.sh      (same ENGINE, REGISTRY and TAG as build-images.sh)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

no_arguments "$@"

select_engine
for image in $IMAGES; do
  say "pushing $(image_ref "$image")"
  if [ "${ENGINE_CMD[0]}" = docker ]; then
    run docker push "$(image_ref "$image")"
  else
    # nerdctl only falls back to plain HTTP when told to; the local registry has no TLS.
    case "$REGISTRY" in
      localhost:* | 127.0.0.1:*) run "${ENGINE_CMD[@]}" push --insecure-registry "$(image_ref "$image")" ;;
      *) run "${ENGINE_CMD[@]}" push "$(image_ref "$image")" ;;
    esac
  fi
done
say "pushed to $REGISTRY"
