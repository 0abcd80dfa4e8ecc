"""The engine through the Runtime, in-process: onError, retries, concurrency, cancel, subflows, stores.

A scripted plugin (the real Plugin interface, answers chosen per test) stands in for a
component server so timing and failures are exact.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from runtime_server.config import settings_from_data
from runtime_server.flow.results import Failed
from runtime_server.plugins.base import ComponentFailed, ExecuteRequest, PluginHealth, TransportFailed
from runtime_server.runs.store import RunQuery
from runtime_server.runtime import Runtime
from wire_protocol.messages import ComponentInfo


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class ScriptedPlugin:
    """Executes ``/ok`` (echo), ``/slow`` (sleeps), ``/flaky`` (fails until attempt N), ``/down`` (transport), ``/buggy`` (raises)."""

    name = "scripted"

    def __init__(self) -> None:
        self.calls: list[ExecuteRequest] = []
        self.in_flight = 0
        self.peak = 0

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def list_components(self) -> list[ComponentInfo]:
        return []

    def health(self) -> PluginHealth:
        return PluginHealth(True)

    async def execute(self, request: ExecuteRequest) -> Any:
        self.calls.append(request)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: ExecuteRequest) -> Any:
        if request.component == "/slow":
            await asyncio.sleep(request.input.get("seconds", 0.05))
        if request.component == "/flaky" and request.attempt < request.input["succeed_on"]:
            raise ComponentFailed(f"attempt {request.attempt} failed")
        if request.component == "/down":
            raise TransportFailed("connection refused", retriable=request.input.get("retriable", True))
        if request.component == "/buggy":
            raise KeyError("a bug in the plugin")
        return {"echo": request.input, "attempt": request.attempt}


def make_runtime(tmp_path: Path, store: dict[str, Any] | None = None) -> tuple[Runtime, ScriptedPlugin]:
    settings = settings_from_data(
        {
            "plugins": {"builtin": {"type": "builtin"}, "scripted": {"type": "mock"}},
            "routes": {"/s/{*component}": [{"plugin": "scripted"}], "/{*component}": [{"plugin": "builtin"}]},
            **({"stateStore": store} if store else {}),
        },
        tmp_path,
    )
    runtime = Runtime(settings)
    plugin = ScriptedPlugin()
    runtime.plugins["scripted"] = plugin
    return runtime, plugin


async def run_flow(runtime: Runtime, flow: dict[str, Any], inputs: list[Any], **options: Any) -> Any:
    prepared = runtime.flows.prepare({"name": "t", **flow})
    return await runtime.wait(runtime.submit(prepared, inputs, **options))


def step(step_id: str, component: str, step_input: Any = None, **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "component": component, "input": step_input, **extra}


@pytest.mark.anyio
async def test_retry_really_retries_with_rising_attempt_numbers(tmp_path: Path) -> None:
    runtime, plugin = make_runtime(tmp_path)
    flow = {"steps": [step("f", "/s/flaky", {"succeed_on": 3}, onError={"action": "retry", "maxAttempts": 3})], "output": {"$step": "f"}}
    record = await run_flow(runtime, flow, [{}])
    assert record.item_outcomes[0] == {"echo": {"succeed_on": 3}, "attempt": 3}
    assert [call.attempt for call in plugin.calls] == [1, 2, 3]
    assert [event.kind for event in record.events() if event.step_id] == ["step_started", "step_retried", "step_retried", "step_succeeded"]


@pytest.mark.anyio
async def test_retry_is_bounded_then_fails(tmp_path: Path) -> None:
    runtime, plugin = make_runtime(tmp_path)
    flow = {"steps": [step("f", "/s/flaky", {"succeed_on": 99}, onError={"action": "retry", "maxAttempts": 2})], "output": {"$step": "f"}}
    record = await run_flow(runtime, flow, [{}])
    assert len(plugin.calls) == 2
    assert record.status == "failed"
    assert record.item_outcomes[0].error.message == 'step "f" failed'


@pytest.mark.anyio
async def test_fail_action_does_not_retry_and_use_default_replaces_the_failure(tmp_path: Path) -> None:
    runtime, plugin = make_runtime(tmp_path)
    flow = {
        "steps": [
            step("plain", "/s/flaky", {"succeed_on": 2}),
            step("dflt", "/s/flaky", {"succeed_on": 2}, onError={"action": "useDefault", "defaultValue": {"v": 0}}),
        ],
        "output": {"a": {"$coalesce": [{"$step": "dflt"}]}, "b": {"$step": "plain"}},
    }
    record = await run_flow(runtime, flow, [{}])
    assert len(plugin.calls) == 2
    assert record.steps["dflt"].outcome == {"v": 0}
    assert isinstance(record.steps["plain"].outcome, Failed)


@pytest.mark.anyio
async def test_retriable_transport_failure_reruns_the_step_a_bounded_number_of_times(tmp_path: Path) -> None:
    runtime, plugin = make_runtime(tmp_path)
    record = await run_flow(runtime, {"steps": [step("d", "/s/down", {})], "output": {"$step": "d"}}, [{}])
    assert [call.attempt for call in plugin.calls] == [1, 2, 3]
    assert record.status == "failed"
    plugin.calls.clear()
    await run_flow(runtime, {"steps": [step("d", "/s/down", {"retriable": False})], "output": {"$step": "d"}}, [{}])
    assert len(plugin.calls) == 1


@pytest.mark.anyio
async def test_a_step_lost_in_transport_is_rerun_after_a_growing_pause(tmp_path: Path) -> None:
    runtime, _ = make_runtime(tmp_path)
    pauses: list[float] = []

    async def record_pause(seconds: float) -> None:
        pauses.append(seconds)

    runtime.engine._sleep = record_pause
    await run_flow(runtime, {"steps": [step("d", "/s/down", {})], "output": {"$step": "d"}}, [{}])
    assert pauses == [0.05, 0.1]


@pytest.mark.anyio
async def test_a_plugin_that_raises_fails_the_step_and_the_run_finishes(tmp_path: Path) -> None:
    runtime, plugin = make_runtime(tmp_path)
    flow = {"steps": [step("b", "/s/buggy", {}), step("ok", "/s/ok", {"x": 1})], "output": {"b": {"$step": "b"}, "ok": {"$step": "ok"}}}
    record = await asyncio.wait_for(run_flow(runtime, flow, [{}]), 5)
    assert record.status == "failed"
    assert len(plugin.calls) == 2  # not re-run: a bug is not a transport failure
    assert "KeyError" in str(record.steps["b"].outcome.error.data)
    assert record.steps["ok"].outcome == {"echo": {"x": 1}, "attempt": 1}


@pytest.mark.anyio
async def test_independent_steps_run_in_parallel_by_default_and_respect_max_concurrency(tmp_path: Path) -> None:
    runtime, plugin = make_runtime(tmp_path)
    flow = {"steps": [step(f"s{i}", "/s/slow", {"seconds": 0.05}) for i in range(4)], "output": [{"$step": f"s{i}"} for i in range(4)]}
    await run_flow(runtime, flow, [{}])
    assert plugin.peak == 4
    plugin.peak = 0
    await run_flow(runtime, flow, [{}, {}, {}], max_concurrency=2)
    assert plugin.peak == 2
    assert len(plugin.calls) == 4 + 12


@pytest.mark.anyio
async def test_failed_step_fails_dependants_without_calling_them_but_others_continue(tmp_path: Path) -> None:
    runtime, plugin = make_runtime(tmp_path)
    flow = {
        "steps": [step("bad", "/s/flaky", {"succeed_on": 9}), step("after", "/s/ok", {"$step": "bad"}), step("other", "/s/ok", {"x": 1})],
        "output": {"a": {"$step": "after"}, "b": {"$step": "other"}},
    }
    record = await run_flow(runtime, flow, [{}])
    assert sorted(call.component for call in plugin.calls) == ["/flaky", "/ok"]
    assert record.steps["after"].outcome == record.steps["bad"].outcome
    assert record.steps["other"].status == "completed"


@pytest.mark.anyio
async def test_unknown_component_fails_the_step_naming_path_and_routes(tmp_path: Path) -> None:
    runtime, _ = make_runtime(tmp_path)
    record = await run_flow(runtime, {"steps": [step("x", "nope")], "output": {"$step": "x"}}, [{}])
    message = record.item_outcomes[0].error.message
    assert "error routing component" in message and "'nope'" in message and "/s/{*component}" in message


@pytest.mark.anyio
async def test_cancel_really_stops_execution(tmp_path: Path) -> None:
    runtime, plugin = make_runtime(tmp_path)
    prepared = runtime.flows.prepare({"steps": [step("a", "/s/slow", {"seconds": 5}), step("b", "/s/ok", {"$step": "a"})], "output": {"$step": "b"}})
    record = runtime.submit(prepared, [{}])
    await asyncio.sleep(0.05)
    runtime.cancel(record)
    await asyncio.wait_for(runtime.wait(record), 1)
    assert record.status == "cancelled"
    assert [call.component for call in plugin.calls] == ["/slow"]
    assert record.item_counts()["cancelled"] == 1


@pytest.mark.anyio
async def test_subflows_are_child_runs(tmp_path: Path) -> None:
    runtime, _ = make_runtime(tmp_path)
    inner = {"steps": [step("m", "/create_messages", {"user_prompt": {"$input": "$"}})], "output": {"$step": "m"}}
    flow = {"steps": [step("map", "/map", {"workflow": {"$literal": inner}, "items": ["a", "b"]})], "output": {"$step": "map", "path": "successful"}}
    record = await run_flow(runtime, flow, [{}])
    assert record.item_outcomes[0] == 2
    children = await runtime.list_runs(RunQuery(parent_run_id=record.run_id))
    assert len(children) == 1 and children[0].root_run_id == record.run_id and len(children[0].inputs) == 2


@pytest.mark.anyio
async def test_memory_store_keeps_a_bounded_number_of_runs(tmp_path: Path) -> None:
    runtime, _ = make_runtime(tmp_path, {"type": "inMemory", "maxRuns": 5})
    for value in range(12):
        await run_flow(runtime, {"steps": [], "output": {"$input": "v"}}, [{"v": value}])
    assert len(runtime.runs) == 5
    assert runtime.runs.evictions == 7


@pytest.mark.anyio
async def test_sqlite_store_keeps_runs_and_flows_across_a_restart(tmp_path: Path) -> None:
    store = {"type": "sqlite", "databaseUrl": f"sqlite:{tmp_path / 'state.db'}?mode=rwc"}
    runtime, _ = make_runtime(tmp_path, store)
    await runtime.start()
    await runtime.connected()
    prepared = runtime.flows.prepare({"name": "keep", "steps": [], "output": {"$input": "v"}})
    await runtime.flows.store(prepared)
    record = await runtime.wait(runtime.submit(prepared, [{"v": 41}]))
    await runtime.close()
    reopened, _ = make_runtime(tmp_path, store)
    await reopened.start()
    await reopened.connected()
    again = await reopened.get_run(record.run_id)
    assert again is not None and again.status == "completed" and again.item_outcomes == [41] and again.flow_name == "keep"
    assert await reopened.flows.get(prepared.flow_id) is not None
    await reopened.close()
