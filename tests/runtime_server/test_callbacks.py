"""What a running component may ask of the runtime (runtime_server/callbacks.py), in-process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runtime_server.callbacks import RunCallbacks
from runtime_server.config import settings_from_data
from runtime_server.plugins.base import CallbackError
from runtime_server.runtime import Runtime
from wire_protocol import jsonrpc

ECHO_FLOW = {"name": "echo", "steps": [], "output": {"echo": {"$input": "$"}}}
ENDLESS_FLOW = {
    "name": "endless",
    "steps": [
        {
            "id": "loop",
            "component": "/iterate",
            "input": {"flow": {"$literal": {"steps": [], "output": {"next": {"$input": "$"}}}}, "initial_input": 0, "max_iterations": 10_000_000},
        }
    ],
    "output": {"$step": "loop"},
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def runtime_with(tmp_path: Path, **limits: Any) -> Runtime:
    config: dict[str, Any] = {"plugins": {"builtin": {"type": "builtin"}}, "routes": {"/{*component}": [{"plugin": "builtin"}]}}
    return Runtime(settings_from_data({**config, "limits": limits} if limits else config, tmp_path))


@pytest.mark.anyio
async def test_runs_submit_waits_and_returns_the_results(tmp_path: Path) -> None:
    runtime = runtime_with(tmp_path)
    parent = runtime.submit(runtime.flows.prepare(ENDLESS_FLOW), [{}])
    flow = runtime.flows.prepare(ECHO_FLOW)
    await runtime.flows.store(flow)
    status = await RunCallbacks(runtime, parent).handle(jsonrpc.RUNS_SUBMIT, {"flowId": flow.flow_id, "inputs": [{"a": 1}], "wait": True})
    assert status.status == "completed"
    runtime.cancel(parent)


@pytest.mark.anyio
async def test_runs_submit_is_refused_at_the_runtimes_run_limit_and_creates_nothing(tmp_path: Path) -> None:
    runtime = runtime_with(tmp_path, maxConcurrentRuns=1)
    parent = runtime.submit(runtime.flows.prepare(ENDLESS_FLOW), [{}])
    flow = runtime.flows.prepare(ECHO_FLOW)
    await runtime.flows.store(flow)
    with pytest.raises(CallbackError) as refused:
        await RunCallbacks(runtime, parent).handle(jsonrpc.RUNS_SUBMIT, {"flowId": flow.flow_id, "inputs": [{"a": 1}]})
    assert refused.value.code == jsonrpc.SERVER_ERROR and "limits.maxConcurrentRuns = 1" in refused.value.message
    assert runtime.runs_in_flight == 1
    runtime.cancel(parent)
