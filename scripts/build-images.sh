#!/usr/bin/env bash
# Build the three images (runtime, proxy, component pod) from the repo root and tag
# them $REGISTRY/<name>:$TAG (default localhost:5000/<name>:latest).
#
# Usage: scripts/build-images.sh [--push]
#   --push (or PUSH=1)  push them afterwards with scripts/push-images.sh
#   ENGINE=docker|nerdctl|lima   which engine builds (default: the first that works;
#                                lima = nerdctl inside the Lima VM)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

push="${PUSH:-0}"
for arg in "$@"; do
  case "$arg" in
    --push) push=1 ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument $arg (try --help)" ;;
  esac
done

select_engine
cd "$ROOT"
for image in $IMAGES; do
  say "building $(image_ref "$image")"
  run "${ENGINE_CMD[@]}" build -f "$(dockerfile_for "$image")" -t "$(image_ref "$image")" .
done
say "built: $(for image in $IMAGES; do printf '%s ' "$(image_ref "$image")"; done)"

if [ "$push" = 1 ]; then
  exec "$ROOT/scripts/push-images.sh"
fi
