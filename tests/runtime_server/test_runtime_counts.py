"""What the runtime counts while runs are live: the in-flight gauges, the 429 budget, the totals.

The gauges read the runtime's own counts at scrape time (nothing is incremented per
step), so they must say exactly what is running, and come back to zero.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import REGISTRY

from runtime_server.config import load_settings
from runtime_server.plugins.base import ExecuteRequest, PluginHealth
from runtime_server.runs.record import RunRecord
from runtime_server.runs.store import MemoryRunStore
from runtime_server.runtime import Runtime
from wire_protocol.messages import ComponentInfo

FLOW = {
    "name": "counted",
    "steps": [
        {"id": "a", "component": "/slow", "input": {"n": {"$input": "n"}}},
        {"id": "b", "component": "/slow", "input": {"n": {"$input": "n"}}},
    ],
    "output": {"a": {"$step": "a"}, "b": {"$step": "b"}},
}


class GatedPlugin:
    """Every execution waits at the gate until the test opens it."""

    name = "builtin"

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.waiting = 0

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def health(self) -> PluginHealth:
        return PluginHealth(True)

    async def list_components(self) -> list[ComponentInfo]:
        return []

    async def execute(self, request: ExecuteRequest) -> Any:
        self.waiting += 1
        await self.gate.wait()
        return request.input


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def gated_runtime() -> tuple[Runtime, GatedPlugin]:
    """A runtime whose builtin plugin holds every execution at its gate."""
    runtime = Runtime(load_settings(None))
    plugin = GatedPlugin()
    runtime.plugins["builtin"] = plugin
    return runtime, plugin


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def wait_until(condition: Any) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never held")


@pytest.mark.anyio
async def test_gauges_and_budget_follow_live_runs_and_steps_then_return_to_zero() -> None:
    runtime, plugin = gated_runtime()
    prepared = runtime.flows.prepare(FLOW)
    completed_before = sample("runtime_runs_total", status="completed", flow="counted")

    records = [runtime.submit(prepared, [{"n": n}]) for n in range(3)]
    await wait_until(lambda: plugin.waiting == 6)  # both steps of every run are executing
    assert sample("runtime_runs_in_flight") == 3
    assert sample("runtime_steps_in_flight") == 6
    assert runtime.runs_in_flight == 3

    plugin.gate.set()
    for record in records:
        await runtime.wait(record)
    assert [record.status for record in records] == ["completed"] * 3
    assert sample("runtime_runs_in_flight") == 0 and sample("runtime_steps_in_flight") == 0
    assert runtime.runs_in_flight == 0
    assert sample("runtime_runs_total", status="completed", flow="counted") == completed_before + 3
    await runtime.close()


@pytest.mark.anyio
async def test_a_cancelled_run_leaves_the_counts() -> None:
    runtime, plugin = gated_runtime()
    record = runtime.submit(runtime.flows.prepare(FLOW), [{"n": 1}])
    await wait_until(lambda: plugin.waiting == 2)
    runtime.cancel(record)
    await runtime.wait(record)
    assert record.status == "cancelled"
    assert runtime.runs_in_flight == 0
    assert sample("runtime_runs_in_flight") == 0 and sample("runtime_steps_in_flight") == 0
    await runtime.close()


@pytest.mark.anyio
async def test_a_waiter_given_up_leaves_the_run_and_the_other_waiters_alone() -> None:
    runtime, plugin = gated_runtime()
    record = runtime.submit(runtime.flows.prepare(FLOW), [{"n": 1}])
    impatient, patient = asyncio.create_task(runtime.wait(record)), asyncio.create_task(runtime.wait(record))
    await wait_until(lambda: plugin.waiting == 2)
    impatient.cancel()  # a client that went away, or a callback's deadline
    await asyncio.gather(impatient, return_exceptions=True)
    assert impatient.cancelled() and not patient.done() and record.status == "running"
    plugin.gate.set()
    assert await asyncio.wait_for(patient, 5) is record and record.status == "completed"
    assert await runtime.wait(record) is record  # after the end, at once
    await runtime.close()


class FailingAtTheEnd(MemoryRunStore):
    """A run store that cannot keep a finished run (a full disk, a locked database)."""

    def ended(self, record: RunRecord) -> None:
        raise OSError("disk full")


@pytest.mark.anyio
async def test_a_run_whose_end_cannot_be_stored_still_releases_its_waiters() -> None:
    runtime, plugin = gated_runtime()
    runtime.runs = FailingAtTheEnd()
    record = runtime.submit(runtime.flows.prepare(FLOW), [{"n": 1}])
    waiting = asyncio.create_task(runtime.wait(record))
    await wait_until(lambda: plugin.waiting == 2)
    plugin.gate.set()
    assert await asyncio.wait_for(waiting, 5) is record and record.status == "completed"
    assert await asyncio.wait_for(runtime.wait(record), 5) is record  # a later waiter too
    await runtime.close()
