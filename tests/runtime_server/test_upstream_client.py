"""The upstream REST client (stepflow-py 0.9.2) against our server: store, run, read back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from stepflow_py.api.api import RunApi
from stepflow_py.api.models.store_flow_response import StoreFlowResponse
from stepflow_py.client import StepflowClient

from tests.support.runtime import start_runtime

CONFORMANCE = Path(__file__).resolve().parents[1] / "conformance" / "corpus"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log_dir = tmp_path_factory.mktemp("upstream-client")
    process, base = start_runtime(CONFORMANCE / "builtins" / "stepflow-config.yml", "127.0.0.55", log_dir)
    try:
        yield base
    finally:
        process.stop()


async def store_raw(client: StepflowClient, flow: dict[str, Any]) -> StoreFlowResponse:
    """``POST /flows`` through the client's own transport and response model.

    ``client.store_flow`` cannot take a flow as a dict: the 0.9.2 client parses it locally
    first and its ValueExpr model rejects every ``$step``/``$input`` ("Multiple matches
    found"). A ``FlowBuilder`` flow it can: tests/interop/test_upstream_client.py.
    """
    api = client._api_client
    params = api.param_serialize(
        "POST", "/flows", header_params={"Content-Type": "application/json", "Accept": "application/json"}, body={"flow": flow, "dryRun": False}
    )
    response = await api.call_api(*params)
    await response.read()
    return api.response_deserialize(response, {"200": "StoreFlowResponse"}).data  # type: ignore[return-value]  # the generated client types data as str; the map picks the model


@pytest.mark.anyio
async def test_upstream_client_stores_runs_and_reads_back(base_url: str) -> None:
    flow = yaml.safe_load((CONFORMANCE / "builtins" / "blob_test.yaml").read_text())
    case = flow["test"]["cases"][0]
    async with StepflowClient.connect(base_url) as client:
        assert await client.is_healthy()
        stored = await store_raw(client, flow)
        assert stored.stored and stored.flow_id
        created = await client.run(stored.flow_id, case["input"])
        assert created.status.value == "completed"
        assert created.result is not None
        assert created.result.to_dict() == case["output"]
        run = await RunApi(client._api_client).get_run(created.run_id)
        assert run.run_id == created.run_id and run.flow_id == stored.flow_id
        assert run.inputs == [case["input"]] and run.items is not None and run.items.completed == 1
        steps = await RunApi(client._api_client).get_run_steps(created.run_id)
        assert set(steps.steps) == {"put_blob", "get_blob"}
        batch = await client.run(stored.flow_id, [c["input"] for c in flow["test"]["cases"]], max_concurrency=1)
        items = await client.get_run_items(batch.run_id)
        assert [item["result"] for item in items] == [c["output"] for c in flow["test"]["cases"]]
