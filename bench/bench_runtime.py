"""Runtime core benchmark: a flow of three built-in steps through the REST API.

    /tmp/venv0/bin/python bench/bench_runtime.py [--seconds 4] [--rss-runs 100000]

Prints runs/s and latency percentiles at concurrency 1, 8 and 32, ours next to upstream's
``stepflow-server`` 0.9.0 running the same flow on its own built-ins (in a private network
namespace, as it binds every interface; skipped without root), then the runtime's RSS as runs accumulate up to ``--rss-runs``: the
engine and run store in-process, with the default retention bound.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.raw_http import RawConnection  # noqa: E402 - after REPO is put on sys.path
from tests.support.netns import inside_new_netns, netns_available  # noqa: E402 - after REPO is put on sys.path
from tests.support.runtime import start_runtime  # noqa: E402 - after REPO is put on sys.path
from tests.support.upstream_server import start_upstream_server  # noqa: E402 - after REPO is put on sys.path

ADDRESS = "127.0.0.185"
PORT = 7850
UPSTREAM_PORT = 7851
UPSTREAM_CONFIG = 'plugins:\n  builtin:\n    type: builtin\nroutes:\n  "/{*component}":\n    - plugin: builtin\n'
FLOW = {
    "name": "three-builtins",
    "steps": [
        {"id": "messages", "component": "/create_messages", "input": {"user_prompt": {"$input": "text"}}},
        {"id": "put", "component": "/put_blob", "input": {"data": {"$step": "messages"}, "blob_type": "data"}},
        {"id": "get", "component": "/get_blob", "input": {"blob_id": {"$step": "put", "path": "blob_id"}}},
    ],
    "output": {"$step": "get", "path": "data"},
}
INPUT = {"text": "hello"}


async def _client_loop(target: tuple[str, int], flow_id: str, deadline: float, latencies: list[float]) -> None:
    connection = await RawConnection.open(*target)
    body = msgspec.json.encode({"flowId": flow_id, "input": [INPUT]})
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            status, answer = await connection.post("/api/v1/runs", body)
            if status != 200 or b'"status":"completed"' not in answer:
                raise RuntimeError(f"run failed: {status} {answer!r}")
            latencies.append(time.perf_counter() - started)
    finally:
        connection.close()


async def measure(target: tuple[str, int], concurrency: int, seconds: float) -> tuple[float, float, float]:
    connection = await RawConnection.open(*target)
    flow_id = msgspec.json.decode((await connection.post("/api/v1/flows", msgspec.json.encode({"flow": FLOW})))[1])["flowId"]
    connection.close()
    await _client_loop(target, flow_id, time.perf_counter() + 0.5, [])
    latencies: list[float] = []
    started = time.perf_counter()
    await asyncio.gather(*(_client_loop(target, flow_id, started + seconds, latencies) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    quantiles = statistics.quantiles(latencies, n=100)
    return len(latencies) / elapsed, quantiles[49] * 1000, quantiles[98] * 1000


def _row(concurrency: int, ours: tuple[float, float, float], theirs: tuple[float, float, float] | None) -> str:
    cells = f"| {concurrency} | {ours[0]:.0f} | {ours[1]:.2f} | {ours[2]:.2f} |"
    if theirs is None:
        return cells + " - | - | - | - |"
    return cells + f" {theirs[0]:.0f} | {theirs[1]:.2f} | {theirs[2]:.2f} | **{ours[0] / theirs[0]:.2f}x** |"


def throughput_table(seconds: float, with_upstream: bool) -> None:
    """Ours and (inside a private network namespace) upstream's stepflow-server, alternately."""
    with tempfile.TemporaryDirectory() as log_dir, contextlib.ExitStack() as stack:
        if with_upstream:
            stack.enter_context(inside_new_netns("perf-bench"))
        ours, _ = start_runtime(None, ADDRESS, Path(log_dir), port=PORT, env={"LOG_LEVEL": "warning"})
        stack.callback(ours.stop)
        if with_upstream:
            theirs = start_upstream_server(UPSTREAM_CONFIG, UPSTREAM_PORT, Path(log_dir))
            stack.callback(theirs.stop)
        print("| conc | ours runs/s | p50 ms | p99 ms | upstream runs/s | p50 ms | p99 ms | ours/upstream |")
        print("|---|---|---|---|---|---|---|---|")
        for concurrency in (1, 8, 32):
            mine = asyncio.run(measure((ADDRESS, PORT), concurrency, seconds))
            upstream = asyncio.run(measure(("127.0.0.1", UPSTREAM_PORT), concurrency, seconds)) if with_upstream else None
            print(_row(concurrency, mine, upstream))


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def accumulate(total: int, tuned_gc: bool = True) -> None:
    from runtime_server.config import load_settings
    from runtime_server.runtime import Runtime
    from serving.gc_tuning import tune_gc

    runtime = Runtime(load_settings(None))
    await runtime.start()
    if tuned_gc:
        tune_gc()  # as python -m runtime_server does
    prepared = runtime.flows.prepare(FLOW)
    await runtime.flows.store(prepared)
    checkpoints = {total // 10, total // 2, total}
    print(f"{'runs':>8} | {'RSS MiB':>8} | {'runs kept':>9} | {'evicted':>8}")
    print("-" * 44)
    print(f"{0:>8} | {rss_mib():>8.1f} | {0:>9} | {0:>8}")
    done = 0
    while done < total:
        batch = min(500, total - done)
        records = [runtime.submit(prepared, [INPUT]) for _ in range(batch)]
        for record in records:
            await runtime.wait(record)
        done += batch
        if done in checkpoints:
            gc.collect()
            print(f"{done:>8} | {rss_mib():>8.1f} | {len(runtime.runs):>9} | {runtime.runs.evictions:>8}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=4.0, help="measuring time per concurrency level")
    parser.add_argument("--rss-runs", type=int, default=100_000)
    parser.add_argument("--no-upstream", action="store_true", help="skip upstream's stepflow-server (needs root for a network namespace)")
    parser.add_argument("--rss-only", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.rss_only:
        asyncio.run(accumulate(arguments.rss_runs))
        return
    print("Throughput: POST /runs (wait) of a 3-step built-in flow, one runtime process\n")
    throughput_table(arguments.seconds, netns_available() and not arguments.no_upstream)
    print(f"\nMemory: {arguments.rss_runs} runs in one process (default retention: 10,000 runs / 1 h)\n")
    subprocess.run(
        [sys.executable, __file__, "--rss-only", "--rss-runs", str(arguments.rss_runs)], check=True, env={"LOG_LEVEL": "warning", "PYTHONPATH": str(REPO)}
    )


if __name__ == "__main__":
    main()
