"""Our runtime against upstream ``stepflow-server`` 0.9.0, on the same pod, in one run.

    python bench/bench_runtime_vs_upstream.py [--seconds 4] [--pod ours|upstream]

Needs root: upstream binds every interface, so everything runs inside a fresh network
namespace with only loopback (tests/support/netns.py). One demo pod on 127.0.0.61:8080;
our runtime on 127.0.0.60:7870 and upstream on port 7871, both with the demo config
pointing straight at the pod. Closed-loop clients post ``POST /api/v1/runs`` (wait) at
concurrency 8 and 32, alternating runtimes per cell; prints runs/s, p50, p99 and ours/theirs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runtime_server.plugins.remote.transport import HttptoolsTransport  # noqa: E402
from tests.e2e.fleet import WORKFLOWS, runtime_config, start_runtime  # noqa: E402
from tests.support.netns import inside_new_netns  # noqa: E402
from tests.support.pods import start_pod  # noqa: E402
from tests.support.upstream_server import start_upstream_server  # noqa: E402

POD = "127.0.0.61"
OURS, THEIRS = "http://127.0.0.60:7870", "http://127.0.0.1:7871"
FLOWS = {"simple": ("simple-test-workflow.yaml", {"value": 3}), "bidirectional": ("bidirectional-test-workflow.yaml", {"data": {"k": 1}})}
MAX_RUNS_PER_CELL = 100_000
HUNG = (0.0, float("nan"), float("nan"))


class Hung(Exception):
    """A run never answered (30 s): upstream does this when a callback answer is lost."""


async def drive(url: str, flow_id: str, item: Any, concurrency: int, seconds: float) -> tuple[float, float, float]:
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=url, transport=HttptoolsTransport(), timeout=30) as client:
        body = {"flowId": flow_id, "input": [item]}
        stop = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < stop and len(latencies) < MAX_RUNS_PER_CELL:
                started = time.perf_counter()
                try:
                    answer = (await client.post("/api/v1/runs", json=body)).json()
                except httpx.ReadTimeout:
                    raise Hung(url) from None
                if answer.get("status") != "completed":
                    raise RuntimeError(f"{url}: run did not complete: {answer}")
                latencies.append(time.perf_counter() - started)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    return len(latencies) / elapsed, statistics.median(latencies) * 1000, latencies[int(len(latencies) * 0.99) - 1] * 1000


def measure(url: str, flow_id: str, item: Any, concurrency: int, seconds: float) -> tuple[float, float, float]:
    """Warm up, then measure; a hung run reports zero runs/s instead of ending the benchmark."""
    try:
        asyncio.run(drive(url, flow_id, item, concurrency, 0.5))
        return asyncio.run(drive(url, flow_id, item, concurrency, seconds))
    except Hung:
        return HUNG


def store(url: str, flow_file: str) -> str:
    flow = yaml.safe_load((WORKFLOWS / flow_file).read_text())
    return httpx.post(f"{url}/api/v1/flows", json={"flow": flow}, timeout=10).json()["flowId"]


def run(seconds: float, pod_kind: str, log_dir: Path) -> None:
    started = [start_pod(pod_kind, POD, log_dir)]
    try:
        url = f"http://{POD}:8080"
        started.append(start_runtime(runtime_config(url), 7870, log_dir))
        started.append(start_upstream_server(runtime_config(url), 7871, log_dir))
        print(f"pod: {pod_kind}, {seconds}s per cell, closed loop\n")
        print(f"{'flow':14} {'conc':>4}  {'ours runs/s':>11} {'p50 ms':>7} {'p99 ms':>7}  {'upstream runs/s':>15} {'p50 ms':>7} {'p99 ms':>7}  {'ours/theirs':>11}")
        for name, (flow_file, item) in FLOWS.items():
            ids = {OURS: store(OURS, flow_file), THEIRS: store(THEIRS, flow_file)}
            for concurrency in (8, 32):
                ours = measure(OURS, ids[OURS], item, concurrency, seconds)
                theirs = measure(THEIRS, ids[THEIRS], item, concurrency, seconds)
                ratio = f"{ours[0] / theirs[0]:10.2f}x" if theirs[0] else "  theirs hung"
                print(f"{name:14} {concurrency:>4}  {ours[0]:11.0f} {ours[1]:7.1f} {ours[2]:7.1f}  {theirs[0]:15.0f} {theirs[1]:7.1f} {theirs[2]:7.1f}  {ratio}")
    finally:
        for process in reversed(started):
            process.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--pod", choices=["ours", "upstream"], default="ours")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as logs, inside_new_netns("sfbench"):
        run(min(args.seconds, 30.0), args.pod, Path(logs))


if __name__ == "__main__":
    main()
