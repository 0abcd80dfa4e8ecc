"""Flow ids and blob ids: stepflow-server 0.9.0 and ours give the same, byte for byte.

Both servers run side by side in a network namespace of their own with one config (the
conformance corpus's builtin and mock plugins). Every demo flow and every conformance
flow is stored on both; the ids and the normalised flows served back must be equal.
Blob ids come from the builtin ``put_blob`` on both, for the spellings that
tests/runtime_server/test_blob_ids.py pins down.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.runtime_server.test_blob_ids import SPELLINGS
from tests.support.netns import inside_new_netns, netns_available
from tests.support.processes import REPO_ROOT
from tests.support.upstream_server import BINARY, CORPUS, Servers, both_servers, corpus_config

FLOWS = sorted(CORPUS.rglob("*.yaml")) + sorted((REPO_ROOT / "demo" / "workflows").glob("*.yaml"))
BLOB_FLOW = CORPUS / "builtins" / "blob_test.yaml"

pytestmark = pytest.mark.skipif(not netns_available() or not BINARY.exists(), reason="needs root, iproute2 and stepflow-server")


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    with inside_new_netns("updiff"), both_servers(corpus_config(), tmp_path_factory.mktemp("flow-ids")) as started:
        yield started


def store(api: str, flow: Any) -> dict[str, Any]:
    answer = httpx.post(f"{api}/flows", json={"flow": flow}, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.parametrize("path", FLOWS, ids=[str(path.relative_to(REPO_ROOT)) for path in FLOWS])
def test_stored_flow_has_upstreams_id_and_form(servers: Servers, path: Path) -> None:
    flow = yaml.safe_load(path.read_text())
    stored = {side: store(api, flow) for side, api in servers.both().items()}
    assert stored["ours"]["flowId"] == stored["upstream"]["flowId"]
    assert stored["ours"]["stored"] == stored["upstream"]["stored"]
    served = {side: httpx.get(f"{api}/flows/{stored[side]['flowId']}", timeout=10).json()["flow"] for side, api in servers.both().items()}
    assert served["ours"] == served["upstream"]


@pytest.fixture(scope="module")
def blob_flow_ids(servers: Servers) -> dict[str, str]:
    flow = yaml.safe_load(BLOB_FLOW.read_text())
    return {side: store(api, flow)["flowId"] for side, api in servers.both().items()}


@pytest.mark.parametrize(("data", "spelling"), SPELLINGS, ids=[s.decode()[:40] for _, s in SPELLINGS])
def test_put_blob_gives_upstreams_blob_id(servers: Servers, blob_flow_ids: dict[str, str], data: Any, spelling: bytes) -> None:
    results = {}
    for side, api in servers.both().items():
        answer = httpx.post(f"{api}/runs", json={"flowId": blob_flow_ids[side], "input": [{"data": data}]}, timeout=10).json()
        assert answer["status"] == "completed", answer
        results[side] = answer["result"]["result"]
    assert results["upstream"]["blob_id"] == hashlib.sha256(spelling).hexdigest()
    assert results["ours"] == results["upstream"]
