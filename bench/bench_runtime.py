"""Runtime core benchmark: a flow of three built-in steps through the REST API.

    /tmp/venv0/bin/python bench/bench_runtime.py [--seconds 4] [--rss-runs 100000]

Prints runs/s and latency percentiles at concurrency 1, 8 and 32 (ratios against
concurrency 1), then the runtime's RSS as runs accumulate up to ``--rss-runs``: the
engine and run store in-process, with the default retention bound.
"""

from __future__ import annotations

import argparse
import asyncio
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

from tests.support.processes import python_process  # noqa: E402

ADDRESS = "127.0.0.51"
PORT = 7850
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


class RawConnection:
    """A minimal keep-alive HTTP/1.1 client: httpx costs more CPU than the server it measures."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls) -> "RawConnection":
        return cls(*await asyncio.open_connection(ADDRESS, PORT))

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        head = f"POST {path} HTTP/1.1\r\nHost: {ADDRESS}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        self._writer.write(head.encode() + body)
        status_line, *header_lines = (await self._reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")
        length = next(int(line.split(":", 1)[1]) for line in header_lines if line.lower().startswith("content-length:"))
        return int(status_line.split()[1]), await self._reader.readexactly(length)

    def close(self) -> None:
        self._writer.close()


async def _client_loop(flow_id: str, deadline: float, latencies: list[float]) -> None:
    connection = await RawConnection.open()
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


async def measure(concurrency: int, seconds: float) -> tuple[float, float, float]:
    connection = await RawConnection.open()
    flow_id = msgspec.json.decode((await connection.post("/api/v1/flows", msgspec.json.encode({"flow": FLOW})))[1])["flowId"]
    connection.close()
    await _client_loop(flow_id, time.perf_counter() + 0.5, [])
    latencies: list[float] = []
    started = time.perf_counter()
    await asyncio.gather(*(_client_loop(flow_id, started + seconds, latencies) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    quantiles = statistics.quantiles(latencies, n=100)
    return len(latencies) / elapsed, quantiles[49] * 1000, quantiles[98] * 1000


def throughput_table(seconds: float) -> None:
    with tempfile.TemporaryDirectory() as log_dir:
        server = python_process("bench-runtime", ["-m", "runtime_server", "--host", ADDRESS, "--port", str(PORT), "--metrics-port", "0"], Path(log_dir), {"LOG_LEVEL": "warning"})
        base = f"http://{ADDRESS}:{PORT}/api/v1"
        server.start().wait_healthy(f"{base}/health")
        try:
            print(f"{'concurrency':>11} | {'runs/s':>8} | {'ratio':>6} | {'p50 ms':>7} | {'p99 ms':>7}")
            print("-" * 52)
            baseline = None
            for concurrency in (1, 8, 32):
                rate, p50, p99 = asyncio.run(measure(concurrency, seconds))
                baseline = baseline or rate
                print(f"{concurrency:>11} | {rate:>8.0f} | {rate / baseline:>5.2f}x | {p50:>7.2f} | {p99:>7.2f}")
        finally:
            server.stop()


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def accumulate(total: int) -> None:
    from runtime_server.config import load_settings
    from runtime_server.runtime import Runtime

    runtime = Runtime(load_settings(None))
    prepared = runtime.flows.prepare(FLOW)
    runtime.flows.store(prepared)
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
    parser.add_argument("--rss-only", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.rss_only:
        asyncio.run(accumulate(arguments.rss_runs))
        return
    print("Throughput: POST /runs (wait) of a 3-step built-in flow, one runtime process\n")
    throughput_table(arguments.seconds)
    print(f"\nMemory: {arguments.rss_runs} runs in one process (default retention: 10,000 runs / 1 h)\n")
    subprocess.run([sys.executable, __file__, "--rss-only", "--rss-runs", str(arguments.rss_runs)], check=True, env={"LOG_LEVEL": "warning", "PYTHONPATH": str(REPO)})


if __name__ == "__main__":
    main()
