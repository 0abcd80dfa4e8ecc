"""``GET /api/v1/fleet``: what the run inspector's fleet page shows (docs/ui.md).

Each proxy the runtime is configured with (every URL of every ``type: stepflow`` plugin)
is asked for its membership view (``GET /proxy/membership``), all at once and bounded by
a short timeout; a proxy that does not answer is reported with the reason, never hides
the others. Executions per pod are counted from the journals of the newest runs the
runtime keeps: a finished run's count never changes, so it is read and counted once.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import Response

from runtime_server.api.responses import json_response
from runtime_server.plugins.stepflow_http import StepflowHttpPlugin
from runtime_server.runs.store import RunQuery
from runtime_server.runtime import Runtime

MEMBERSHIP_PATH = "/proxy/membership"
PROXY_TIMEOUT_SECONDS = 2.0
COUNTED_RUNS = 500
"""Executions per pod are counted over this many of the newest runs (sub-runs included)."""
EXECUTION_KINDS = {"step_succeeded": "succeeded", "step_failed": "failed", "step_retried": "retried"}
"""Journal entries that end one execution of a step on one pod (a retried step's failed attempt too)."""
UNKNOWN = "unknown"


def executions_by_pod(entries: Iterable[tuple[str, str | None]]) -> dict[str, Counter[str]]:
    """(journal kind, instance id) pairs -> {instance id or "unknown": {succeeded, failed, retried}}."""
    counts: dict[str, Counter[str]] = {}
    for kind, instance_id in entries:
        outcome = EXECUTION_KINDS.get(kind)
        if outcome is not None:
            counts.setdefault(instance_id or UNKNOWN, Counter())[outcome] += 1
    return counts


class ExecutionTally:
    """Executions per pod over the newest runs; a finished run is read and counted once, then remembered."""

    def __init__(self) -> None:
        self._finished: dict[str, dict[str, Counter[str]]] = {}

    async def count(self, runtime: Runtime) -> tuple[int, dict[str, dict[str, int]]]:
        listed = await runtime.list_runs(RunQuery(limit=COUNTED_RUNS))  # a durable store lists runs without their journals
        remembered: dict[str, dict[str, Counter[str]]] = {}
        total: dict[str, Counter[str]] = {}
        for summary in listed:
            counts = self._finished.get(summary.run_id)
            if counts is None:
                record = await runtime.get_run(summary.run_id)
                if record is None:  # deleted or evicted meanwhile
                    continue
                counts = executions_by_pod((event.kind, event.instance_id) for event in record.events())
                if record.journal_complete:
                    remembered[summary.run_id] = counts
            else:
                remembered[summary.run_id] = counts
            for instance_id, outcomes in counts.items():
                total.setdefault(instance_id, Counter()).update(outcomes)
        self._finished = remembered  # runs that left the window are forgotten
        return len(listed), {instance_id: {"total": sum(c.values()), **c} for instance_id, c in sorted(total.items())}


def proxy_urls(runtime: Runtime) -> list[tuple[str, str]]:
    """(plugin name, proxy URL) for every remote plugin's every URL, in config order."""
    return [(name, url) for name, plugin in runtime.plugins.items() if isinstance(plugin, StepflowHttpPlugin) for url in plugin.urls]


async def _membership(client: httpx.AsyncClient, plugin: str, url: str) -> dict[str, Any]:
    view: dict[str, Any] = {"plugin": plugin, "url": url}
    try:
        response = await client.get(httpx.URL(url).copy_with(path=MEMBERSHIP_PATH, query=None))
        body = response.json() if response.is_success else None
    except (httpx.HTTPError, ValueError) as error:
        return {**view, "error": f"{type(error).__name__}: {error}"}
    if not isinstance(body, dict) or not isinstance(body.get("members"), list):
        return {**view, "error": f"{url}{MEMBERSHIP_PATH} answered HTTP {response.status_code} without a membership view (is it our affinity proxy?)"}
    return {**view, "upstream": body.get("upstream"), "members": body["members"]}


async def fleet(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    async with httpx.AsyncClient(timeout=PROXY_TIMEOUT_SECONDS) as client:
        proxies = await asyncio.gather(*(_membership(client, plugin, url) for plugin, url in proxy_urls(runtime)))
    counted, executions = await request.app.state.execution_tally.count(runtime)
    return json_response({"proxies": proxies, "executions": executions, "countedRuns": counted})
