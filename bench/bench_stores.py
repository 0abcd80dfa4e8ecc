"""What durability costs: the runtime with its runs in memory, in SQLite and in PostgreSQL, side by side.

    python bench/bench_stores.py [--seconds 3] [--rounds 3] [--recovery 1000]

One of our pods (it answers in microseconds, so the runtime is what is measured), three
runtimes on it, one per store: in memory, a SQLite file (WAL, synchronous=NORMAL) and a
throwaway PostgreSQL server (fsync on, tests/support/postgres.py). Each runtime is driven in
closed loops at concurrency 8 and 32 (bench/bench_runtime_vs_upstream.py's client), rounds
alternating between them; the median round of each is reported with the runtime's CPU per
run, and each durable store's throughput as a ratio of memory's. Then the size of each
database per run kept, and with ``--recovery N``: N runs left in flight (a step that sleeps),
the runtime killed with SIGKILL and started again, the time from its start until all N runs
have their interrupted step dispatched again (``runtime_steps_in_flight`` reaches N).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_runtime_vs_upstream import FLOWS, Flows, Side, alternating_rounds, cells, sides_on, stop_all
from tests.support.pods import start_pod
from tests.support.postgres import PostgresServer
from tests.support.processes import ManagedProcess, python_process
from tests.support.runtime import remote_plugin_config, wait_plugins_healthy

HUB, POD, SLOW_POD = "127.0.0.71", "127.0.0.72", "127.0.0.73"
PORTS = {"memory": 7881, "sqlite": 7882, "postgres": 7883}
RECOVERY_PORT, RECOVERY_METRICS = 7884, 9884
BENCH_FLOWS: Flows = {
    **FLOWS,
    "builtin": (Path(__file__).parent / "flows" / "three-builtin-steps.yaml", {"prompt": "hi"}, {"first": {"messages": [{"role": "user", "content": "hi"}]}}),
}
SLEEP_FLOW = {"name": "sleep", "steps": [{"id": "s", "component": "/python/sleep", "input": {"seconds": 600}}], "output": {"$step": "s"}}


def store_section(store: str, database_url: str | None) -> str:
    return "" if database_url is None else f'storageConfig:\n  type: {store}\n  databaseUrl: "{database_url}"\n'


def start_runtime(name: str, store: str, database_url: str | None, pod_url: str, port: int, log_dir: Path, metrics_port: int = 0) -> ManagedProcess:
    config = log_dir / f"runtime-{name}.yml"
    config.write_text(remote_plugin_config(pod_url, idleTimeoutSeconds=5, totalTimeoutSeconds=900) + store_section(store, database_url))
    args = ["-m", "runtime_server", "--config", str(config), "--host", HUB, "--port", str(port), "--metrics-port", str(metrics_port), "--orchestrator-id", name]
    process = python_process(f"runtime-{name}", args, log_dir)
    process.start().wait_healthy(f"http://{HUB}:{port}/api/v1/health", 30)
    wait_plugins_healthy(f"http://{HUB}:{port}/api/v1", process)
    return process


def database_bytes(store: str, database_url: str) -> int:
    if store == "sqlite":
        path = Path(database_url.removeprefix("sqlite:").split("?")[0])
        return sum(file.stat().st_size for file in path.parent.glob(path.name + "*"))
    import asyncpg

    async def size() -> int:
        connection = await asyncpg.connect(database_url)
        try:
            return int(await connection.fetchval("SELECT pg_database_size(current_database())"))
        finally:
            await connection.close()

    return asyncio.run(size())


def run_count(side: Side) -> int:
    runs = httpx.get(f"http://{side.address[0]}:{side.address[1]}/api/v1/runs", params={"limit": 10_000}, timeout=30).json()["runs"]
    return len(runs)


def compare(sides: list[Side], flow: str, concurrency: int, seconds: float, rounds: int) -> str:
    results = alternating_rounds(sides, flow, concurrency, seconds, rounds, BENCH_FLOWS)
    memory = statistics.median(r.runs_per_second for r in results["memory"])
    ratios = [f"{statistics.median(r.runs_per_second for r in results[name]) / memory:.2f}x" for name in ("sqlite", "postgres")]
    return f"| {flow} | {concurrency} | {cells(results['memory'])} | {cells(results['sqlite'])} | {ratios[0]} | {cells(results['postgres'])} | {ratios[1]} |"


def throughput(pod_url: str, urls: dict[str, str | None], seconds: float, rounds: int, log_dir: Path) -> None:
    runtimes = {name: start_runtime(name, name, urls[name], pod_url, PORTS[name], log_dir) for name in PORTS}
    try:
        sides = sides_on([], [(name, (HUB, PORTS[name]), process) for name, process in runtimes.items()], BENCH_FLOWS)
        print(f"one pod, three runtimes (memory, SQLite, PostgreSQL); {rounds} alternating rounds of {seconds}s per cell, median round\n")
        print(
            "| flow | conc | memory runs/s | p50 ms | p99 ms | CPU µs/run | fleet | SQLite runs/s | p50 ms | p99 ms | CPU µs/run | fleet | SQLite/memory "
            "| PostgreSQL runs/s | p50 ms | p99 ms | CPU µs/run | fleet | PostgreSQL/memory |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for flow in BENCH_FLOWS:
            for concurrency in (8, 32):
                print(compare(sides, flow, concurrency, seconds, rounds), flush=True)
        print("\n| store | runs kept | database bytes | bytes per run |\n|---|---|---|---|")
        for side in sides[1:]:
            kept, size = run_count(side), database_bytes(side.name, urls[side.name] or "")
            print(f"| {side.name} | {kept} | {size} | {size // max(kept, 1)} |")
    finally:
        stop_all(list(runtimes.values()))


def steps_in_flight(metrics_url: str) -> float:
    try:
        text = httpx.get(metrics_url, timeout=2).text
    except httpx.HTTPError:
        return -1
    return next((float(line.split()[1]) for line in text.splitlines() if line.startswith("runtime_steps_in_flight ")), -1)


def recovery(count: int, urls: dict[str, str | None], log_dir: Path) -> None:
    """N runs in flight, SIGKILL, start again: seconds until every run's step is dispatched again."""
    slow_pod = python_process(
        "slow-pod", [str(Path(__file__).parent / "slow_pod.py"), "--host", SLOW_POD, "--port", "8080", "--max-concurrency", str(count * 2)], log_dir
    )
    slow_pod.start().wait_healthy(f"http://{SLOW_POD}:8080/health")
    print(f"\n{count} runs in flight, runtime killed (SIGKILL) and started again: seconds from its start to all {count} steps dispatched again\n")
    print("| store | runs | start to ready s | start to all resumed s |\n|---|---|---|---|")
    try:
        for store in ("sqlite", "postgres"):
            print(recover_once(store, urls[store], count, f"http://{SLOW_POD}:8080", log_dir), flush=True)
    finally:
        slow_pod.stop()


def recover_once(store: str, database_url: str | None, count: int, pod_url: str, log_dir: Path) -> str:
    metrics_url = f"http://{HUB}:{RECOVERY_METRICS}/metrics"
    runtime = start_runtime(f"recovery-{store}", store, database_url, pod_url, RECOVERY_PORT, log_dir, RECOVERY_METRICS)
    api = f"http://{HUB}:{RECOVERY_PORT}/api/v1"
    with httpx.Client(timeout=60) as client:
        flow_id = client.post(f"{api}/flows", json={"flow": SLEEP_FLOW}).json()["flowId"]
        for _ in range(count):
            client.post(f"{api}/runs", json={"flowId": flow_id, "input": [{}], "wait": False}).raise_for_status()
    wait_until(lambda: steps_in_flight(metrics_url) >= count, 60, "runs dispatched before the kill")
    runtime.kill()
    started = time.perf_counter()
    again = python_process(f"runtime-recovery-{store}-again", runtime.args[1:], log_dir).start()
    try:
        wait_until(lambda: _healthy(api), 60, "health after the restart")
        ready = time.perf_counter() - started
        wait_until(lambda: steps_in_flight(metrics_url) >= count, 60, "every run resumed")
        resumed = time.perf_counter() - started
    finally:
        again.kill()
    return f"| {store} | {count} | {ready:.2f} | {resumed:.2f} |"


def _healthy(api: str) -> bool:
    try:
        return httpx.get(f"{api}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.02)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per round (at most 30)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per store and cell (at most 9)")
    parser.add_argument("--recovery", type=int, default=1000, help="runs in flight at the kill (0: skip; at most 5000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        log_dir = Path(work)
        (log_dir / "postgres").mkdir()
        postgres = PostgresServer(log_dir / "postgres")
        postgres.start()
        try:
            urls: dict[str, str | None] = {"memory": None, "sqlite": f"sqlite:{log_dir / 'bench.db'}?mode=rwc", "postgres": postgres.create_database("bench")}
            pod = start_pod("ours", POD, log_dir)
            try:
                throughput(f"http://{POD}:8080", urls, min(args.seconds, 30.0), min(max(args.rounds, 1), 9), log_dir)
            finally:
                pod.stop()
            if args.recovery > 0:
                urls = {**urls, "sqlite": f"sqlite:{log_dir / 'recovery.db'}?mode=rwc", "postgres": postgres.create_database("recovery")}
                recovery(min(args.recovery, 5000), urls, log_dir)
        finally:
            postgres.remove()


if __name__ == "__main__":
    main()
