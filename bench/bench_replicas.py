"""Does a second replica add throughput, and how fast does it take over a dead one's runs?

    python bench/bench_replicas.py [--seconds 3] [--rounds 3] [--failover 1000] [--no-upstream]
    python bench/bench_replicas.py --seconds 0 --failover 1000     # failover only

Needs root (upstream binds every interface: everything runs in a fresh network namespace).
One of our pods (answers in microseconds), a throwaway PostgreSQL server (fsync on), and
three sides driven in alternating rounds by the same closed-loop client
(bench/bench_runtime_vs_upstream.py) at concurrency 32: one runtime on PostgreSQL, two
replicas on one PostgreSQL database (the client's connections spread over both), and
upstream ``stepflow-server`` 0.9.0 (in memory: it has no shared store). Flows: three
built-in steps, and the simple and bidirectional demo flows. Reported: runs/s, p50/p99, the
runtimes' CPU per run (all replicas) and PostgreSQL's, and the ratios two/one and two/upstream.

``--failover N``: N runs in flight on replica A (a step that sleeps), A killed with SIGKILL;
the time from the kill until replica B has resumed its first run, and until all N steps are
dispatched again on B, against the lease TTL.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_runtime_vs_upstream import Side, alternating_rounds, cells, stop_all, store
from bench.bench_stores import BENCH_FLOWS, SLEEP_FLOW, steps_in_flight, wait_until
from tests.support.netns import inside_new_netns
from tests.support.pods import start_pod
from tests.support.postgres import PostgresServer
from tests.support.processes import ManagedProcess, python_process
from tests.support.runtime import remote_plugin_config, wait_plugins_healthy
from tests.support.upstream_server import start_upstream_server

HUB, POD, SLOW_POD = "127.0.0.81", "127.0.0.82", "127.0.0.83"
UPSTREAM_PORT = 7891
LEASE_TTL = 6.0


def start_replica(name: str, database_url: str, pod_url: str, port: int, log_dir: Path, metrics_port: int = 0) -> ManagedProcess:
    config = log_dir / f"runtime-{name}.yml"
    config.write_text(
        remote_plugin_config(pod_url, idleTimeoutSeconds=5, totalTimeoutSeconds=900)
        + f'storageConfig:\n  databaseUrl: "{database_url}"\nrecovery:\n  leaseTtlSecs: {LEASE_TTL}\n  checkIntervalSecs: 0.5\n'
    )
    args = ["-m", "runtime_server", "--config", str(config), "--host", HUB, "--port", str(port), "--metrics-port", str(metrics_port), "--orchestrator-id", name]
    process = python_process(f"runtime-{name}", args, log_dir)
    process.start().wait_healthy(f"http://{HUB}:{port}/api/v1/health", 30)
    wait_plugins_healthy(f"http://{HUB}:{port}/api/v1", process)
    return process


def compare(sides: list[Side], flow: str, concurrency: int, seconds: float, rounds: int) -> str:
    results = alternating_rounds(sides, flow, concurrency, seconds, rounds, BENCH_FLOWS)
    rate = {name: statistics.median(r.runs_per_second for r in rounds_of) for name, rounds_of in results.items()}
    upstream = f"{cells(results['upstream'])} | {rate['two'] / rate['upstream']:.2f}x" if "upstream" in rate else "— | | | | | —"
    return f"| {flow} | {concurrency} | {cells(results['one'])} | {cells(results['two'])} | **{rate['two'] / rate['one']:.2f}x** | {upstream} |"


def throughput(postgres: PostgresServer, seconds: float, rounds: int, with_upstream: bool, log_dir: Path) -> None:
    pod = start_pod("ours", POD, log_dir)
    pod_url = f"http://{POD}:8080"
    processes: list[ManagedProcess] = [pod]
    try:
        one = start_replica("one", postgres.create_database("one"), pod_url, 7881, log_dir)
        two_url = postgres.create_database("two")
        two_a, two_b = start_replica("two-a", two_url, pod_url, 7882, log_dir), start_replica("two-b", two_url, pod_url, 7883, log_dir)
        processes += [one, two_a, two_b]
        sides = [
            Side("one", (HUB, 7881), one, [], {}, fleet_pids=postgres.processes),
            Side("two", (HUB, 7882), two_a, [], {}, [((HUB, 7883), two_b)], postgres.processes),
        ]
        if with_upstream:
            upstream = start_upstream_server(remote_plugin_config(pod_url), UPSTREAM_PORT, log_dir)
            processes.append(upstream)
            sides.append(Side("upstream", ("127.0.0.1", UPSTREAM_PORT), upstream, [], {}))
        for side in sides:
            side.flow_ids = {flow: store(side, flow_file) for flow, (flow_file, _, _) in BENCH_FLOWS.items()}
        print(
            f"one of our pods; {rounds} alternating rounds of {seconds}s per cell, median round; CPU µs/run: the runtimes' (every replica), fleet: PostgreSQL's\n"
        )
        print(
            "| flow | conc | one replica runs/s | p50 ms | p99 ms | CPU µs/run | PostgreSQL | two replicas runs/s | p50 ms | p99 ms | CPU µs/run | PostgreSQL | two/one "
            "| upstream runs/s | p50 ms | p99 ms | CPU µs/run | fleet | two/upstream |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for flow in BENCH_FLOWS:
            print(compare(sides, flow, 32, seconds, rounds), flush=True)
    finally:
        stop_all(list(reversed(processes)))


def failover(postgres: PostgresServer, count: int, log_dir: Path) -> None:
    slow_pod = python_process(
        "slow-pod", [str(Path(__file__).parent / "slow_pod.py"), "--host", SLOW_POD, "--port", "8080", "--max-concurrency", str(count * 2)], log_dir
    )
    slow_pod.start().wait_healthy(f"http://{SLOW_POD}:8080/health")
    url, pod_url = postgres.create_database("failover"), f"http://{SLOW_POD}:8080"
    a = start_replica("failover-a", url, pod_url, 7884, log_dir, 9884)
    b = start_replica("failover-b", url, pod_url, 7885, log_dir, 9885)
    try:
        api = f"http://{HUB}:7884/api/v1"
        with httpx.Client(timeout=60) as client:
            flow_id = client.post(f"{api}/flows", json={"flow": SLEEP_FLOW}).json()["flowId"]
            for _ in range(count):
                client.post(f"{api}/runs", json={"flowId": flow_id, "input": [{}], "wait": False}).raise_for_status()
        wait_until(lambda: steps_in_flight(f"http://{HUB}:9884/metrics") >= count, 120, "the runs dispatched on replica A")
        a.kill()
        killed = time.perf_counter()
        on_b = f"http://{HUB}:9885/metrics"
        wait_until(lambda: steps_in_flight(on_b) >= 1, LEASE_TTL + 30, "replica B's first resumed run")
        first = time.perf_counter() - killed
        wait_until(lambda: steps_in_flight(on_b) >= count, LEASE_TTL + 60, "every run resumed on replica B")
        every = time.perf_counter() - killed
        print(f"\nfailover: {count} runs in flight on replica A, A killed (SIGKILL), lease TTL {LEASE_TTL:.0f}s, checks every 0.5s\n")
        print("| runs | kill to first resumed s | kill to all resumed s | target (TTL + 2 s) |\n|---|---|---|---|")
        print(f"| {count} | {first:.2f} | {every:.2f} | {LEASE_TTL + 2:.0f} |")
    finally:
        stop_all([b, a, slow_pod])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per round (at most 30; 0: failover only)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per side and flow (at most 9)")
    parser.add_argument("--failover", type=int, default=1000, help="runs in flight at the kill (0: skip; at most 5000)")
    parser.add_argument("--no-upstream", action="store_true", help="leave upstream stepflow-server out")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work, inside_new_netns("perf-replicas"):
        log_dir = Path(work)
        (log_dir / "postgres").mkdir()
        postgres = PostgresServer(log_dir / "postgres").start()
        try:
            if args.seconds > 0:
                throughput(postgres, min(args.seconds, 30.0), min(max(args.rounds, 1), 9), not args.no_upstream, log_dir)
            if args.failover > 0:
                failover(postgres, min(args.failover, 5000), log_dir)
        finally:
            postgres.remove()


if __name__ == "__main__":
    main()
