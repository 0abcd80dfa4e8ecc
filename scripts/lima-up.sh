#!/usr/bin/env bash
# Start (or create) the Lima VM running k3s and the local image registry, and write a
# kubeconfig for it on the host.
#
# Usage: scripts/lima-up.sh
#   LIMA_INSTANCE    VM name (default stepflow)
#   LIMA_VM_TYPE     vz or qemu (default: vz on macOS 13+, qemu elsewhere);
#                    only used when the VM is created (lima/k3s-vz.yaml, lima/k3s-qemu.yaml)
#   LIMA_KUBECONFIG  where the kubeconfig goes (default ~/.kube/stepflow-lima.yaml,
#                    context name stepflow-lima)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

no_arguments "$@"

need limactl "Install Lima: brew install lima (docs/deployment.md)."
need kubectl "Install kubectl: brew install kubectl."

vm_type="${LIMA_VM_TYPE:-}"
if [ -z "$vm_type" ]; then
  vm_type=qemu
  if [ "$(uname -s)" = Darwin ] && [ "$(sw_vers -productVersion | cut -d. -f1)" -ge 13 ]; then
    vm_type=vz
  fi
fi

# 1. The VM.
status="$(lima_status)"
case "$status" in
  Running) say "Lima VM $LIMA_INSTANCE is already running" ;;
  Stopped) run limactl start --tty=false "$LIMA_INSTANCE" ;;
  "")
    say "creating Lima VM $LIMA_INSTANCE ($vm_type) with k3s: the first start downloads an Ubuntu image and k3s"
    run limactl start --tty=false --name="$LIMA_INSTANCE" "$ROOT/lima/k3s-$vm_type.yaml"
    ;;
  *) die "Lima VM $LIMA_INSTANCE is $status: try limactl stop -f $LIMA_INSTANCE, then run this again" ;;
esac

# 2. The registry k3s pulls from (lima/k3s-*.yaml points k3s at it). Host network, so
#    k3s' containerd reaches it at localhost:5000 inside the VM.
registry_state="$(limactl shell "$LIMA_INSTANCE" sudo nerdctl inspect --format '{{.State.Running}}' stepflow-registry 2>/dev/null || true)"
case "$registry_state" in
  true) say "registry stepflow-registry is already running" ;;
  false) run limactl shell "$LIMA_INSTANCE" sudo nerdctl start stepflow-registry ;;
  *)
    run limactl shell "$LIMA_INSTANCE" sudo nerdctl run -d --restart=always --network=host \
      --name stepflow-registry -e REGISTRY_HTTP_ADDR=0.0.0.0:5000 registry:2
    ;;
esac

# 3. The kubeconfig. k3s writes one for https://127.0.0.1:6443, which Lima forwards to
#    the host. Rewritten every time: k3s' certificates change when the VM is recreated.
say "writing $LIMA_KUBECONFIG (context stepflow-lima)"
mkdir -p "$(dirname "$LIMA_KUBECONFIG")"
tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT
run limactl shell "$LIMA_INSTANCE" cat /etc/rancher/k3s/k3s.yaml >"$tmp"
run kubectl --kubeconfig "$tmp" config rename-context default stepflow-lima >/dev/null
chmod 600 "$tmp"
mv "$tmp" "$LIMA_KUBECONFIG"

say "waiting for the k3s node to be Ready"
for _ in $(seq 1 60); do
  if [ -n "$(kubectl --kubeconfig "$LIMA_KUBECONFIG" get nodes -o name 2>/dev/null)" ]; then
    break
  fi
  sleep 2
done
run kubectl --kubeconfig "$LIMA_KUBECONFIG" wait --for=condition=Ready node --all --timeout=180s

say "k3s is ready. Use it with:"
echo "  export KUBECONFIG=$LIMA_KUBECONFIG"
echo "Then: scripts/build-images.sh --push && scripts/deploy.sh local && scripts/cluster-demo.sh"
echo "(or all of it: scripts/lima-demo.sh)"
