"""Fixtures for the deployment tests: rendered kustomizations and the tools' paths."""

import subprocess
from pathlib import Path

import pytest
import yaml

from .tools import find_tool

REPO_ROOT = Path(__file__).resolve().parents[2]

# The kustomizations that must render, and the overlays meant for deployment.
KUSTOMIZATIONS = ["base", "overlays/local", "overlays/kind", "overlays/postgres"]


@pytest.fixture(scope="session")
def kubectl() -> str:
    return find_tool("kubectl")


@pytest.fixture(scope="session")
def shellcheck() -> str:
    return find_tool("shellcheck")


@pytest.fixture(scope="session")
def hadolint() -> str:
    return find_tool("hadolint")


def render(kubectl: str, kustomization: str) -> list[dict]:
    """`kubectl kustomize k8s/<kustomization>` as a list of objects."""
    result = subprocess.run(
        [kubectl, "kustomize", str(REPO_ROOT / "k8s" / kustomization)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"kustomize k8s/{kustomization} failed:\n{result.stderr}"
    return [obj for obj in yaml.safe_load_all(result.stdout) if obj]


_rendered: dict[str, list[dict]] = {}


@pytest.fixture(params=KUSTOMIZATIONS)
def rendered(request, kubectl) -> list[dict]:
    """The objects of one kustomization (each test runs once per kustomization)."""
    if request.param not in _rendered:
        _rendered[request.param] = render(kubectl, request.param)
    return _rendered[request.param]
