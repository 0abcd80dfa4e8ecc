"""The demo of demo.md against any runtime URL: the local fleet's or a cluster's.

It speaks only the upstream REST API (store each flow, then ``POST /runs`` with an
input list), so it runs unchanged against Stepflow 0.9.0 too. It checks every output,
then reports how executions spread over pods and whether every callback reached the
pod that asked, from the proxies' and pods' metrics when their URLs are given.
Given several runtime URLs (replicas on one database) it sends its runs to them in turn,
reads each run back from another replica, and reports which replica ran what.
Exit status: 0 only if every check held.

Run: ``python -m local_fleet.demo --runtime-url http://127.0.0.3:7840 [--runtime-url URL ...] [--proxy-metrics URL ...] [--pod-metrics URL ...]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from local_fleet.metrics_view import FleetMetrics, scrape

WORKFLOWS = Path(__file__).resolve().parents[1] / "demo" / "workflows"
RUN_TIMEOUT_SECONDS = 120.0


def blob_id_of(data: Any) -> str:
    """Upstream's blob id: SHA-256 of the compact JSON, keys in the order given."""
    return hashlib.sha256(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()


def simple_expected(value: float) -> dict[str, float]:
    doubled = 2.0 * value
    return {"original": value, "doubled": doubled, "squared": doubled**2, "sum": value + doubled**2}


@dataclass
class DemoReport:
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    runs: int = 0
    started: float = field(default_factory=time.monotonic)

    def check(self, name: str, held: bool, detail: str = "") -> None:
        self.checks.append((name, held, detail))

    @property
    def failed(self) -> list[tuple[str, bool, str]]:
        return [entry for entry in self.checks if not entry[1]]


class RuntimeClient:
    def __init__(self, url: str, token: str | None) -> None:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url + "/api/v1", headers=headers, timeout=RUN_TIMEOUT_SECONDS)

    def store_flow(self, name: str) -> str:
        flow = yaml.safe_load((WORKFLOWS / f"{name}.yaml").read_text())
        answer = self._http.post("/flows", json={"flow": flow})
        answer.raise_for_status()
        return answer.json()["flowId"]

    def run(self, flow_id: str, inputs: list[Any], max_concurrency: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"flowId": flow_id, "input": inputs}
        if max_concurrency is not None:
            body["maxConcurrency"] = max_concurrency
        answer = self._http.post("/runs", json=body)
        answer.raise_for_status()
        return answer.json()

    def items(self, run_id: str) -> list[dict[str, Any]]:
        answer = self._http.get(f"/runs/{run_id}/items")
        answer.raise_for_status()
        return answer.json()["items"]

    def details(self, run_id: str) -> dict[str, Any]:
        answer = self._http.get(f"/runs/{run_id}")
        answer.raise_for_status()
        return answer.json()


class RuntimePool:
    """The runtimes the demo spreads its runs over (replicas sharing one database, or one runtime): each run goes
    to the next in turn, and is read back from the one after it, so every replica must answer for every run."""

    def __init__(self, urls: list[str], token: str | None) -> None:
        self.clients = [RuntimeClient(url, token) for url in urls]
        self._turn = 0
        self.sent_to: dict[str, int] = {}
        """Run id -> the index of the client it was sent to."""

    def store_flow(self, name: str) -> str:
        """Stored through every runtime: each answers the same content-addressed id."""
        flow_ids = {client.store_flow(name) for client in self.clients}
        if len(flow_ids) != 1:
            raise ValueError(f"the runtimes gave flow {name} different ids: {sorted(flow_ids)}")
        return flow_ids.pop()

    def run(self, flow_id: str, inputs: list[Any], max_concurrency: int | None = None) -> dict[str, Any]:
        index = self._turn % len(self.clients)
        self._turn += 1
        run = self.clients[index].run(flow_id, inputs, max_concurrency)
        self.sent_to[run["runId"]] = index
        return run

    def reader(self, run_id: str) -> RuntimeClient:
        """Another runtime than the one the run was sent to (the same one when there is only one)."""
        return self.clients[(self.sent_to[run_id] + 1) % len(self.clients)]

    def replica_of(self, run_id: str) -> str:
        """The replica that ran the run: its ``orchestratorId`` in the run's details, read from another replica;
        the URL the run was sent to if the runtime does not say (Stepflow 0.9.0)."""
        return str(self.reader(run_id).details(run_id).get("orchestratorId") or self.clients[self.sent_to[run_id]].url)


def output_of(run: dict[str, Any]) -> Any:
    result = run.get("result") or {}
    return result.get("result") if result.get("outcome") == "success" else result


def run_simple(client: RuntimePool, report: DemoReport) -> None:
    flow_id = client.store_flow("simple-test-workflow")
    for value in range(1, 11):
        run = client.run(flow_id, [{"value": value}])
        report.runs += 1
        got = output_of(run)
        report.check(f"simple value={value}", got == simple_expected(value), f"got {got}")


def run_bidirectional(client: RuntimePool, report: DemoReport) -> None:
    flow_id = client.store_flow("bidirectional-test-workflow")
    for index in range(1, 6):
        data = {"test": f"value{index}", "number": index, "timestamp": "1700000000"}
        run = client.run(flow_id, [{"data": data}])
        report.runs += 1
        got = output_of(run)
        expected = {"blob_id": blob_id_of(data), "retrieved_data": data}
        report.check(f"bidirectional #{index}", got == expected, f"got {got}")


def run_parallel(client: RuntimePool, report: DemoReport) -> None:
    flow_id = client.store_flow("parallel-bidirectional-test")
    for index in range(1, 6):
        data = {"workflow_id": index}
        run = client.run(flow_id, [data])
        report.runs += 1
        got = output_of(run)
        expected = {f"blob_id_{n}": blob_id_of(data) for n in (1, 2, 3)}
        report.check(f"parallel #{index}", got == expected, f"got {got}")


def run_batch(client: RuntimePool, report: DemoReport) -> None:
    flow_id = client.store_flow("simple-test-workflow")
    values = list(range(1, 21))
    run = client.run(flow_id, [{"value": value} for value in values], max_concurrency=5)
    report.runs += len(values)
    report.check("batch of 20 (max 5 at a time) completed", run.get("status") == "completed", f"status {run.get('status')}")
    items = sorted(client.reader(run["runId"]).items(run["runId"]), key=lambda item: item["itemIndex"])
    outputs = [(item.get("result") or {}).get("result") for item in items]
    report.check("batch outputs", outputs == [simple_expected(value) for value in values], f"{len(outputs)} items")


EXPECTED_CALLBACKS = 5 * 2 + 5 * 3 * 2
"""Each store_and_retrieve_blob makes two callbacks: 5 bidirectional runs, 5 parallel runs of 3."""


def check_affinity(metrics: FleetMetrics, report: DemoReport) -> None:
    report.check(
        f"every callback pinned to its pod ({metrics.pinned_ok} pinned answers, {EXPECTED_CALLBACKS} expected)",
        metrics.pinned_ok >= EXPECTED_CALLBACKS and metrics.pinned_failed == 0,
        f"pinned ok {metrics.pinned_ok}, pinned failed {metrics.pinned_failed}",
    )
    report.check("no request for an unknown instance", metrics.instance_gone == 0, f"instance_gone {metrics.instance_gone}")


def runs_by_replica(pool: RuntimePool, report: DemoReport) -> dict[str, float]:
    """How many runs each replica ran; with several runtimes, each ran some and every run was read from a peer."""
    counts: dict[str, float] = {}
    unread = []
    for run_id in pool.sent_to:
        try:
            replica = pool.replica_of(run_id)
        except httpx.HTTPError as error:
            unread.append(f"{run_id}: {error}")
            continue
        counts[replica] = counts.get(replica, 0) + 1
    if len(pool.clients) > 1:
        report.check(f"every run read back from another replica ({len(pool.sent_to)} runs)", not unread, "; ".join(unread[:3]))
        report.check(f"every replica ran runs ({len(counts)} of {len(pool.clients)})", len(counts) == len(pool.clients), f"runs per replica {counts}")
    return counts


def print_counts(title: str, what: str, counted: str, counts: dict[str, float]) -> None:
    print(f"\n{title}")
    print(f"  {what:<32} {counted:>10}")
    for name, count in sorted(counts.items()):
        print(f"  {name:<32} {count:>10.0f}")


def print_report(report: DemoReport, metrics: FleetMetrics | None, replicas: dict[str, float]) -> None:
    elapsed = time.monotonic() - report.started
    print(f"\nDemo: {report.runs} runs in {elapsed:.1f}s")
    if replicas:
        print_counts("Runs per runtime replica", "replica (orchestratorId)", "runs", replicas)
    if metrics is not None and metrics.executions_by_pod:
        print_counts("Executions per pod", "pod", "executions", metrics.executions_by_pod)
        print_counts("Requests per proxy", "proxy", "requests", metrics.requests_by_proxy)
        print(
            f"\nAffinity: {metrics.pinned_ok:.0f} callbacks pinned to their pod, {metrics.pinned_failed:.0f} refused, "
            f"{metrics.instance_gone:.0f} for unknown instances; {metrics.round_robin:.0f} new requests round-robin"
        )
    print("\nChecks")
    for name, held, detail in report.checks:
        print(f"  [{'ok' if held else 'FAIL'}] {name}" + ("" if held else f": {detail}"))
    verdict = "FAILED" if report.failed else "passed"
    print(f"\n{len(report.checks) - len(report.failed)} passed, {len(report.failed)} failed: demo {verdict}")


def run_demo(runtime_urls: list[str], proxy_metrics: list[str], pod_metrics: list[str], token: str | None) -> bool:
    pool = RuntimePool(runtime_urls, token)
    report = DemoReport()
    for stage in (run_simple, run_bidirectional, run_parallel, run_batch):
        try:
            stage(pool, report)
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as error:  # an unexpected answer fails the stage, not the report
            report.check(stage.__name__, False, f"{type(error).__name__}: {error}")
    replicas = runs_by_replica(pool, report)
    metrics = scrape(proxy_metrics, pod_metrics) if proxy_metrics or pod_metrics else None
    if metrics is not None and proxy_metrics:
        check_affinity(metrics, report)
    print_report(report, metrics, replicas)
    return not report.failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the demo of demo.md against a runtime.")
    parser.add_argument(
        "--runtime-url", action="append", default=[], help="a runtime's URL (repeatable: replicas take the runs in turn; default http://127.0.0.1:7840)"
    )
    parser.add_argument("--proxy-metrics", action="append", default=[], help="a proxy's /metrics URL (repeatable)")
    parser.add_argument("--pod-metrics", action="append", default=[], help="a pod's /metrics URL (repeatable)")
    args = parser.parse_args(argv)
    ok = run_demo(args.runtime_url or ["http://127.0.0.1:7840"], args.proxy_metrics, args.pod_metrics, os.environ.get("STEPFLOW_API_TOKEN"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
