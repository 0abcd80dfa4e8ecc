"""Upstream's own flow tests (a copy of ../shared/conformance in ``corpus/``) through our REST API.

Each folder's ``stepflow-config.yml`` is the config its flows run under; every
``test.cases`` entry must produce exactly the expected FlowResult.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.runtime import start_runtime

CORPUS = Path(__file__).resolve().parent / "corpus"
FOLDERS = {"": "127.0.0.56", "builtins": "127.0.0.57", "empty": "127.0.0.58", "mock": "127.0.0.59"}


def _cases() -> list[Any]:
    cases = []
    for folder in FOLDERS:
        for path in sorted((CORPUS / folder).glob("*.yaml")):
            flow = yaml.safe_load(path.read_text())
            for case in (flow.get("test") or {}).get("cases") or []:
                cases.append(pytest.param(folder, path, case, id=f"{path.relative_to(CORPUS)}::{case['name']}"))
    return cases


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    log_dir = tmp_path_factory.mktemp("conformance")
    started = {}
    try:
        for folder, address in FOLDERS.items():
            started[folder] = start_runtime(CORPUS / folder / "stepflow-config.yml", address, log_dir)
        yield {folder: base for folder, (_, base) in started.items()}
    finally:
        for process, _ in started.values():
            process.stop()


@pytest.mark.parametrize(("folder", "path", "case"), _cases())
def test_case(servers: dict[str, str], folder: str, path: Path, case: dict[str, Any]) -> None:
    base = servers[folder]
    flow = yaml.safe_load(path.read_text())
    stored = httpx.post(f"{base}/flows", json={"flow": flow}).json()
    assert stored["stored"], stored
    answer = httpx.post(f"{base}/runs", json={"flowId": stored["flowId"], "input": [case["input"]]}, timeout=30).json()
    assert answer["result"] == case["output"]
    assert answer["status"] == ("completed" if case["output"]["outcome"] == "success" else "failed")


def test_corpus_is_not_empty() -> None:
    assert len(_cases()) >= 15
