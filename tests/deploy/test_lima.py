"""The Lima VMs for k3s: the vz and qemu files describe the same VM, their provisioning
scripts are sound, and k3s pulls from the registry the scripts push to."""

import re
import subprocess

import pytest
import yaml

from .conftest import REPO_ROOT
from .images import built_images
from .test_manifests import KUBERNETES_VERSION

LIMA = {vm_type: REPO_ROOT / f"lima/k3s-{vm_type}.yaml" for vm_type in ("vz", "qemu")}


def config(vm_type: str) -> dict:
    return yaml.safe_load(LIMA[vm_type].read_text())


def scripts(vm_type: str) -> list[str]:
    data = config(vm_type)
    return [p["script"] for p in data.get("provision", [])] + [p["script"] for p in data.get("probes", [])]


def registries_yaml(vm_type: str) -> dict:
    """The /etc/rancher/k3s/registries.yaml the provisioning script writes."""
    script = config(vm_type)["provision"][0]["script"]
    body = re.search(r"registries\.yaml <<'YAML'\n(.*?)\nYAML\n", script, re.S)
    assert body, "the provisioning script does not write registries.yaml from a YAML here-document"
    return yaml.safe_load(body.group(1))


@pytest.mark.parametrize("vm_type", LIMA)
def test_vm_type(vm_type):
    assert config(vm_type)["vmType"] == vm_type


def test_vz_and_qemu_describe_the_same_vm():
    vz, qemu = config("vz"), config("qemu")
    vz.pop("vmType"), qemu.pop("vmType")
    assert vz == qemu


@pytest.mark.parametrize("vm_type", LIMA)
def test_provisioning_scripts_are_valid_bash(vm_type, shellcheck, tmp_path):
    for number, script in enumerate(scripts(vm_type)):
        path = tmp_path / f"script-{number}.sh"
        path.write_text(script)
        syntax = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
        assert syntax.returncode == 0, syntax.stderr
        lint = subprocess.run([shellcheck, str(path)], capture_output=True, text=True)
        assert lint.returncode == 0, lint.stdout


@pytest.mark.parametrize("vm_type", LIMA)
def test_k3s_pulls_the_pushed_images_over_http(vm_type):
    """k3s mirrors the registry the images are tagged for (plain HTTP, no TLS there)."""
    registries = {image.ref.split("/")[0] for image in built_images().values()}
    assert len(registries) == 1
    registry = registries.pop()
    mirrors = registries_yaml(vm_type)["mirrors"]
    assert mirrors == {registry: {"endpoint": [f"http://{registry}"]}}
    # ... and lima-up.sh runs that registry on the same port.
    lima_up = (REPO_ROOT / "scripts/lima-up.sh").read_text()
    assert f"REGISTRY_HTTP_ADDR=0.0.0.0:{registry.split(':')[1]}" in lima_up


@pytest.mark.parametrize("vm_type", LIMA)
def test_k3s_is_the_kubernetes_version_the_manifests_are_validated_for(vm_type):
    minor = ".".join(KUBERNETES_VERSION.split(".")[:2])
    assert f"INSTALL_K3S_CHANNEL=v{minor}" in config(vm_type)["provision"][0]["script"]


@pytest.mark.parametrize("vm_type", LIMA)
def test_images_can_be_built_inside_the_vm(vm_type):
    """ENGINE=lima runs `sudo nerdctl build` in the VM on the repo under ~: that needs
    Lima's system containerd (with BuildKit) and the home directory mounted."""
    data = config(vm_type)
    assert data["containerd"] == {"system": True, "user": False}
    assert "~" in [mount["location"] for mount in data["mounts"]]
