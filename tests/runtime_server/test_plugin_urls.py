"""The stepflow plugin with several proxy URLs (``urls:``): spread, skip a dead one, answer where asked."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from local_fleet.supervisor import runtime_config
from runtime_server.plugins.remote.settings import RemoteSettings, SettingsError
from runtime_server.plugins.remote.urls import Rotation, plugin_urls
from runtime_server.plugins.stepflow_http import StepflowHttpPlugin, create_plugin
from tests.e2e.scripted_pod import ScriptedPod
from tests.runtime_server.test_stepflow_plugin import execute_request, wait_healthy
from tests.support.runtime import start_runtime_with_text, wait_plugins_healthy

POD_A, POD_B, NOBODY, RUNTIME = "127.0.0.180", "127.0.0.181", "127.0.0.182", "127.0.0.183"
SETTINGS = RemoteSettings(connect_timeout_seconds=1.0, idle_timeout_seconds=2.0, total_timeout_seconds=10.0, callback_timeout_seconds=2.0, connect_retries=3)
BLOB_PUT = ["blobs/put", {"data": {"k": 1}, "blob_type": "data"}]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def pods() -> Iterator[tuple[ScriptedPod, ScriptedPod]]:
    first, second = ScriptedPod(POD_A, instance_id="pod-a").start(), ScriptedPod(POD_B, instance_id="pod-b").start()
    yield first, second
    first.stop()
    second.stop()


async def started(urls: list[str]) -> StepflowHttpPlugin:
    plugin = StepflowHttpPlugin("fleet", urls, SETTINGS)
    await plugin.start()
    await wait_healthy(plugin)
    return plugin


@pytest.fixture
async def both(pods: tuple[ScriptedPod, ScriptedPod]) -> AsyncIterator[StepflowHttpPlugin]:
    plugin = await started([pods[0].url, pods[1].url])
    yield plugin
    await plugin.close()


@pytest.mark.anyio
async def test_executions_alternate_over_the_urls_and_answers_go_back_where_asked(both: StepflowHttpPlugin, pods: tuple[ScriptedPod, ScriptedPod]) -> None:
    before = [len(pod.executes()) for pod in pods]
    for n in range(6):
        output = await both.execute(execute_request("/ask", {"calls": [BLOB_PUT], "n": n}))
        assert "result" in output["answers"][0]
    for pod, count in zip(pods, before, strict=True):
        assert len(pod.executes()) - count == 3
        assert {headers["stepflow-instance-id"] for headers, _ in pod.callback_answers()} == {pod.instance_id}
    assert both.health().detail["urls"] == [pods[0].url, pods[1].url]


@pytest.mark.anyio
async def test_a_dead_url_is_skipped_and_every_run_succeeds(pods: tuple[ScriptedPod, ScriptedPod]) -> None:
    plugin = await started([f"http://{NOBODY}:8080", pods[1].url])
    try:
        before = len(pods[1].executes())
        for n in range(6):
            assert (await plugin.execute(execute_request("/echo", {"n": n})))["params"]["input"] == {"n": n}
        assert len(pods[1].executes()) - before == 6
        assert plugin.health().healthy
        assert [c.component for c in await plugin.list_components()]
    finally:
        await plugin.close()


def test_the_local_fleet_config_runs_flows_through_the_live_url_and_health_names_both(pods: tuple[ScriptedPod, ScriptedPod], tmp_path: Path) -> None:
    urls = [f"http://{NOBODY}:8080", pods[1].url]
    runtime, api = start_runtime_with_text(runtime_config(urls), RUNTIME, tmp_path, 8080)
    flow = {
        "schema": "https://stepflow.org/schemas/v1/flow.json",
        "name": "echo",
        "steps": [{"id": "echo", "component": "/python/echo", "input": {"$input": "$"}}],
        "output": {"$step": "echo"},
    }
    try:
        wait_plugins_healthy(api, runtime)
        assert httpx.get(f"{api}/health").json()["plugins"]["k8s_components"]["urls"] == urls
        answer = httpx.post(f"{api}/runs", json={"flow": flow, "input": [{"n": n} for n in range(4)]}, timeout=30).json()
        items = httpx.get(f"{api}/runs/{answer['runId']}/items").json()["items"]
    finally:
        runtime.stop()
    assert answer["status"] == "completed", answer
    assert [item["result"]["result"]["params"]["input"] for item in items] == [{"n": n} for n in range(4)]


@pytest.mark.parametrize(
    ("turns", "expected"),
    [
        (1, [0]),
        (3, [0, 1, 2]),
        (5, [0, 1, 2, 0, 1]),
    ],
)
def test_rotation_takes_urls_in_turn(turns: int, expected: list[int]) -> None:
    rotation = Rotation(("a", "b", "c"))
    assert [rotation.take() for _ in range(turns)] == expected


@pytest.mark.parametrize(("count", "index", "following"), [(1, 0, 0), (2, 0, 1), (2, 1, 0), (3, 2, 0)])
def test_a_retry_moves_to_the_following_url(count: int, index: int, following: int) -> None:
    assert Rotation(tuple("abc"[:count])).after(index) == following


@pytest.mark.parametrize(
    ("options", "urls"),
    [
        ({"url": "http://p:8080"}, ("http://p:8080",)),
        ({"urls": ["http://p0:8080", "https://p1:8443"]}, ("http://p0:8080", "https://p1:8443")),
    ],
)
def test_url_or_urls_give_the_list(options: dict[str, Any], urls: tuple[str, ...]) -> None:
    assert plugin_urls("fleet", options) == urls


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"url": "http://p:8080", "urls": ["http://q:8080"]}, "give either 'url' or 'urls', not both"),
        ({"urls": []}, "'urls' must be a non-empty list of http:// or https:// URLs, got []"),
        ({"urls": "http://p:8080"}, "'urls' must be a non-empty list"),
        ({"urls": ["http://p:8080", "p1:8080"]}, "'urls[1]' must be an http:// or https:// URL, got 'p1:8080'"),
        ({"urls": ["http://p:8080", None]}, "'urls[1]' must be an http:// or https:// URL, got None"),
    ],
)
def test_bad_url_lists_are_named(options: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        create_plugin("fleet", {"type": "stepflow", **options}, None)
