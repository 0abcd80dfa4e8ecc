"""The deployment docs point at files that exist and at the commands the scripts run."""

import re

import pytest

from .conftest import REPO_ROOT

DOCS = [REPO_ROOT / "docs/deployment.md", REPO_ROOT / "docs/troubleshooting.md"]
# The overlay deployment.md shows how to write.
EXAMPLES = {"k8s/overlays/mine", "k8s/overlays/mine/kustomization.yaml"}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_repo_path_mentioned_exists(doc):
    text = doc.read_text()
    paths = set(re.findall(r"(?<![\w/.~-])((?:scripts|k8s|lima|docker|config|tests)/[\w./-]*\w)", text))
    assert paths, "the doc names no files?"
    missing = sorted(p for p in paths - EXAMPLES if not (REPO_ROOT / p).exists())
    assert missing == []


def test_the_deployment_doc_covers_every_script():
    text = (REPO_ROOT / "docs/deployment.md").read_text()
    ours = ["lima-up.sh", "lima-demo.sh", "kind-up.sh", "build-images.sh", "push-images.sh", "deploy.sh", "port-forward.sh", "cluster-demo.sh"]
    assert [name for name in ours if f"scripts/{name}" not in text] == []
    assert all((REPO_ROOT / "scripts" / name).exists() for name in ours)
