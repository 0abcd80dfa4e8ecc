"""After the demo flows through a real fleet, the metrics of runtime, proxy and pods agree.

The demo of demo.md (simple, bidirectional, parallel, a batch) runs through the local
fleet's runtime (with its bearer token), one affinity proxy and three pods; then every
/metrics endpoint is scraped and the counts must add up across services.
"""

from __future__ import annotations

import httpx
import pytest

from local_fleet.__main__ import demo
from local_fleet.demo import EXPECTED_CALLBACKS
from tests.observability.conftest import ObservedFleet
from tests.support.scrape import Snapshot, delta

PLUGIN = "k8s_components"
SETTLE_SCRAPES = 50


def run_ids(observed: ObservedFleet) -> set[str]:
    with observed.api() as api:
        return {run["runId"] for run in api.get("/runs", params={"limit": 10_000}).json()["runs"]}


def executions_settled(observed: ObservedFleet, before: Snapshot) -> Snapshot:
    """A pod counts an execution just after its answer has left: scrape until the pods caught up."""
    for _ in range(SETTLE_SCRAPES):
        after = Snapshot.take(observed.metrics_urls())
        if delta(before, after, "pod", "component_executions_total") >= delta(before, after, "runtime", "runtime_component_calls_total", plugin=PLUGIN):
            return after
    return after


@pytest.fixture(scope="module")
def demo_counts(observed: ObservedFleet) -> tuple[Snapshot, Snapshot, set[str]]:
    """(metrics before, metrics after, ids of the runs the demo submitted)."""
    runs_before = run_ids(observed)
    before = Snapshot.take(observed.metrics_urls())
    assert demo(observed.fleet), "the demo failed (its report is in the captured stdout)"
    after = executions_settled(observed, before)
    return before, after, run_ids(observed) - runs_before


def test_the_demo_runs_with_the_fleets_token_and_nothing_without_it(observed: ObservedFleet) -> None:
    answer = httpx.get(f"{observed.topology.runtime_url}/api/v1/runs")
    assert answer.status_code == 401 and answer.json()["code"] == 401


def test_pods_executed_what_the_runtime_called(demo_counts: tuple[Snapshot, Snapshot, set[str]]) -> None:
    before, after, _ = demo_counts
    calls = delta(before, after, "runtime", "runtime_component_calls_total", plugin=PLUGIN)
    assert calls > 0
    assert delta(before, after, "pod", "component_executions_total") == calls
    assert delta(before, after, "pod", "component_executions_total", outcome="success") == delta(
        before, after, "runtime", "runtime_component_calls_total", plugin=PLUGIN, outcome="success"
    )
    assert delta(before, after, "pod", "component_execution_duration_seconds_count") == calls
    assert delta(before, after, "runtime", "runtime_component_call_duration_seconds_count", plugin=PLUGIN) == calls
    assert delta(before, after, "proxy", "affinity_proxy_requests_total", decision="round_robin") == calls


def test_every_callback_served_was_pinned_and_answered_at_its_pod(demo_counts: tuple[Snapshot, Snapshot, set[str]]) -> None:
    before, after, _ = demo_counts
    served = delta(before, after, "runtime", "runtime_callbacks_total", outcome="success")
    assert served == EXPECTED_CALLBACKS
    assert delta(before, after, "runtime", "runtime_callbacks_total") == served, "no callback failed, went undelivered or was refused"
    assert delta(before, after, "proxy", "affinity_proxy_requests_total", decision="pinned", status="202") == served
    assert delta(before, after, "proxy", "affinity_proxy_requests_total", decision="pinned") == served
    assert delta(before, after, "pod", "component_callback_duration_seconds_count") == served


def test_runs_counted_match_runs_submitted(demo_counts: tuple[Snapshot, Snapshot, set[str]]) -> None:
    before, after, submitted = demo_counts
    assert submitted
    assert delta(before, after, "runtime", "runtime_runs_total") == len(submitted)
    assert delta(before, after, "runtime", "runtime_runs_total", status="completed") == len(submitted)
    assert delta(before, after, "runtime", "runtime_run_duration_seconds_count") == len(submitted)
    assert after.total("runtime", "runtime_runs_in_flight") == 0 and after.total("runtime", "runtime_steps_in_flight") == 0


def test_nothing_was_retried_rejected_or_lost(demo_counts: tuple[Snapshot, Snapshot, set[str]]) -> None:
    before, after, _ = demo_counts
    assert delta(before, after, "runtime", "runtime_retries_total") == 0
    assert delta(before, after, "pod", "component_rejections_total") == 0
    assert after.total("pod", "component_executions_in_flight") == 0
    assert after.total("proxy", "affinity_proxy_members", state="active") == 3
