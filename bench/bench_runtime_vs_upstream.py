"""Our runtime against upstream ``stepflow-server`` 0.9.0 on the demo's fleet, in one run.

    python bench/bench_runtime_vs_upstream.py [--seconds 3] [--rounds 3] [--pod ours|upstream] [--topology demo|one-pod]

Needs root: upstream binds every interface, so everything runs inside a fresh network
namespace (``perf-*``) with only loopback (tests/support/netns.py). The demo's topology:
a DNS server, three pods behind one affinity proxy (tests/e2e/fleet.py); our runtime and
upstream's both use the demo config pointing at that proxy. The same raw keep-alive client
(bench/raw_http.py) posts ``POST /api/v1/runs`` (wait) in closed loops at concurrency 8 and
32 and checks every result. Rounds alternate between the runtimes; each side's median
round is reported, with the CPU per run (user + system) of the runtime process and of the
fleet (proxy and pods) while that runtime drove it. ``--topology one-pod``: one pod and no
proxy, both runtimes configured with the pod's URL (the setup the issue's reference figure
for upstream was taken in).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.raw_http import RawConnection
from tests.e2e.fleet import DNS_LISTEN, HUB, WORKFLOWS, Fleet
from tests.support.netns import inside_new_netns
from tests.support.pods import start_pod
from tests.support.processes import ManagedProcess
from tests.support.runtime import remote_plugin_config, start_runtime_with_text, wait_plugins_healthy
from tests.support.services import start_dns
from tests.support.upstream_server import start_upstream_server

PODS = ["127.0.0.61", "127.0.0.62", "127.0.0.63"]
PROXY_PORT, OURS_PORT, THEIRS_PORT = 8090, 7870, 7871
Flows = dict[str, tuple[Path, dict[str, Any], dict[str, Any]]]
FLOWS: Flows = {  # name: (file, item, fields the result must have)
    "simple": (WORKFLOWS / "simple-test-workflow.yaml", {"value": 3}, {"original": 3, "doubled": 6, "squared": 36, "sum": 39}),
    "bidirectional": (WORKFLOWS / "bidirectional-test-workflow.yaml", {"data": {"k": 1}}, {"retrieved_data": {"k": 1}}),
}
RUN_TIMEOUT = 10.0
"""Longer than any run takes here; upstream leaves a run unanswered forever when a callback answer is lost."""


@dataclass
class Side:
    name: str
    address: tuple[str, int]
    process: ManagedProcess
    fleet: list[ManagedProcess]
    """The proxy and pods both runtimes share: what this runtime's calls cost them is measured too."""
    flow_ids: dict[str, str]
    more: list[tuple[tuple[str, int], ManagedProcess]] = field(default_factory=list)
    """Further replicas of this runtime (bench_replicas.py): the load's connections are spread over all, their CPU counted."""
    fleet_pids: Callable[[], list[int]] | None = None
    """Instead of ``fleet``'s processes: whose CPU is the fleet's (a database's backends come and go)."""

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [self.address, *(address for address, _ in self.more)]

    @property
    def runtime_pids(self) -> list[int]:
        return [self.process.pid, *(process.pid for _, process in self.more)]


@dataclass
class Round:
    runs_per_second: float
    latencies: list[float]
    cpu_us_per_run: float
    fleet_cpu_us_per_run: float
    hung: bool = False


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drive(side: Side, flow: str, concurrency: int, seconds: float, flows: Flows = FLOWS) -> Round:
    _, item, expected = flows[flow]
    body = msgspec.json.encode({"flowId": side.flow_ids[flow], "input": [item]})
    latencies: list[float] = []
    stop = time.perf_counter() + seconds

    async def worker(index: int) -> None:
        addresses = side.addresses
        connection = await RawConnection.open(*addresses[index % len(addresses)])
        try:
            while time.perf_counter() < stop:
                started = time.perf_counter()
                status, answer = await asyncio.wait_for(connection.post("/api/v1/runs", body), RUN_TIMEOUT)
                run = msgspec.json.decode(answer)
                result = run.get("result", {}).get("result") or {}
                if status != 200 or run.get("status") != "completed" or any(result.get(key) != value for key, value in expected.items()):
                    raise RuntimeError(f"{side.name}: run did not complete as expected: {status} {answer[:300]!r}")
                latencies.append(time.perf_counter() - started)
        finally:
            connection.close()

    fleet = side.fleet_pids() if side.fleet_pids is not None else [process.pid for process in side.fleet]

    def cpu() -> tuple[float, float]:
        return sum(map(cpu_seconds, side.runtime_pids)), sum(map(_cpu_if_alive, fleet))

    cpu_before, began = cpu(), time.perf_counter()
    try:
        await asyncio.gather(*(worker(index) for index in range(concurrency)))
    except TimeoutError:
        return Round(0.0, [], float("nan"), float("nan"), hung=True)
    elapsed, cpu_after, runs = time.perf_counter() - began, cpu(), max(1, len(latencies))
    return Round(len(latencies) / elapsed, latencies, (cpu_after[0] - cpu_before[0]) / runs * 1e6, (cpu_after[1] - cpu_before[1]) / runs * 1e6)


def _cpu_if_alive(pid: int) -> float:
    try:
        return cpu_seconds(pid)
    except FileNotFoundError:  # a database backend that ended meanwhile
        return 0.0


def sides_on(fleet: list[ManagedProcess], runtimes: list[tuple[str, tuple[str, int], ManagedProcess]], flows: Flows = FLOWS) -> list[Side]:
    """One side per (name, address, process), all measured on the same proxy and pods, each with the bench's flows stored."""
    shared = [process for process in fleet if process.name != "dns"]
    sides = [Side(name, address, process, shared, {}) for name, address, process in runtimes]
    for side in sides:
        side.flow_ids = {flow: store(side, flow_file) for flow, (flow_file, _, _) in flows.items()}
    return sides


def stop_all(processes: list[ManagedProcess | None]) -> None:
    for process in processes:
        if process is not None:
            process.stop()


def store(side: Side, flow_file: Path) -> str:
    flow = yaml.safe_load(flow_file.read_text())
    return httpx.post(f"http://{side.address[0]}:{side.address[1]}/api/v1/flows", json={"flow": flow}, timeout=10).json()["flowId"]


def cells(rounds: list[Round]) -> str:
    """The median round by runs/s: runs/s, p50 and p99 ms, runtime and fleet CPU µs per run."""
    if any(r.hung for r in rounds):
        return "hung | | | | "
    median = sorted(rounds, key=lambda r: r.runs_per_second)[len(rounds) // 2]
    quantiles = statistics.quantiles(median.latencies, n=100)
    return f"{median.runs_per_second:.0f} | {quantiles[49] * 1000:.1f} | {quantiles[98] * 1000:.1f} | {median.cpu_us_per_run:.0f} | {median.fleet_cpu_us_per_run:.0f}"


def alternating_rounds(sides: list[Side], flow: str, concurrency: int, seconds: float, rounds: int, flows: Flows = FLOWS) -> dict[str, list[Round]]:
    """``rounds`` rounds of every side in turn (each after a short warm-up of its connections and caches): side name -> its rounds."""
    results: dict[str, list[Round]] = {side.name: [] for side in sides}
    for _ in range(rounds):
        for side in sides:
            asyncio.run(drive(side, flow, concurrency, 0.3, flows))
            results[side.name].append(asyncio.run(drive(side, flow, concurrency, seconds, flows)))
    return results


def compare(sides: list[Side], flow: str, concurrency: int, seconds: float, rounds: int) -> str:
    results = alternating_rounds(sides, flow, concurrency, seconds, rounds)
    ours, theirs = (statistics.median(r.runs_per_second for r in results[side.name]) for side in sides)
    any_hung = any(r.hung for side_rounds in results.values() for r in side_rounds)
    ratio = "—" if any_hung or not theirs else f"**{ours / theirs:.2f}x**"
    return f"| {flow} | {concurrency} | {cells(results['ours'])} | {cells(results['upstream'])} | {ratio} |"


def start_demo_fleet(pod_kind: str, log_dir: Path) -> tuple[list[ManagedProcess], ManagedProcess, str]:
    """DNS, three pods behind one proxy, our runtime on the proxy: (the fleet, our runtime, the URL both runtimes use)."""
    dns, records = start_dns(log_dir, DNS_LISTEN)
    fleet = Fleet(pod_kind, PODS, PROXY_PORT, OURS_PORT, log_dir)
    try:
        fleet.start(records)
    except BaseException:
        dns.stop()
        raise
    return [dns, *fleet.processes[:-1]], fleet.processes[-1], f"http://{HUB}:{PROXY_PORT}"


def start_one_pod(pod_kind: str, log_dir: Path) -> tuple[list[ManagedProcess], ManagedProcess, str]:
    """One pod, both runtimes straight at it (the issue's reference setup): as ``start_demo_fleet``."""
    pod = start_pod(pod_kind, PODS[0], log_dir)
    url = f"http://{PODS[0]}:8080"
    try:
        ours, api = start_runtime_with_text(remote_plugin_config(url, idleTimeoutSeconds=5, totalTimeoutSeconds=20), HUB, log_dir, OURS_PORT)
        wait_plugins_healthy(api, ours)
    except BaseException:
        pod.stop()
        raise
    return [pod], ours, url


TOPOLOGIES = {
    "demo": (start_demo_fleet, "{n} {kind} pods behind one affinity proxy"),
    "one-pod": (start_one_pod, "one {kind} pod, both runtimes straight at it"),
}


def run(seconds: float, rounds: int, pod_kind: str, topology: str, log_dir: Path) -> None:
    start, description = TOPOLOGIES[topology]
    fleet, ours, url = start(pod_kind, log_dir)
    upstream: ManagedProcess | None = None
    try:
        upstream = start_upstream_server(remote_plugin_config(url), THEIRS_PORT, log_dir)
        sides = sides_on(fleet, [("ours", (HUB, OURS_PORT), ours), ("upstream", ("127.0.0.1", THEIRS_PORT), upstream)])
        print(f"{description.format(n=len(PODS), kind=pod_kind)}; {rounds} alternating rounds of {seconds}s per cell, median round\n")
        print("CPU µs/run: the runtime process's; fleet: the proxy's and pods' for that runtime's runs\n")
        print("| flow | conc | ours runs/s | p50 ms | p99 ms | CPU µs/run | fleet | upstream runs/s | p50 ms | p99 ms | CPU µs/run | fleet | ours/upstream |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for flow in FLOWS:
            for concurrency in (8, 32):
                print(compare(sides, flow, concurrency, seconds, rounds), flush=True)
    finally:
        stop_all([upstream, ours, *reversed(fleet)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per round (at most 30)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per side and cell (at most 9)")
    parser.add_argument("--pod", choices=["ours", "upstream"], default="ours")
    parser.add_argument("--topology", choices=sorted(TOPOLOGIES), default="demo", help="demo: three pods behind a proxy; one-pod: one pod, no proxy")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as logs, inside_new_netns("perf-bench"):
        run(min(args.seconds, 30.0), min(max(args.rounds, 1), 9), args.pod, args.topology, Path(logs))


if __name__ == "__main__":
    main()
