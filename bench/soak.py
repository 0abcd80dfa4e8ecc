"""Soak: mixed demo runs through a fleet that a chaos loop keeps breaking (issue 7, item 2).

    .venv/bin/python bench/soak.py [--runs 10000] [--seconds 180] [--concurrency 24] [--chaos-every 3]

A fleet on loopback (tests/reliability/chaos_fleet.py: DNS, chaos pods that are the demo
pod plus a ledger, one affinity proxy, the runtime) on 127.0.0.100 (ports 8081/8091/8181)
and pods on 127.0.0.121-139. The four demo flows are submitted, ``wait: true``, by
``--concurrency`` clients until ``--runs`` runs or ``--seconds`` have passed, whichever
comes first (the table says which). Every ``--chaos-every`` seconds the chaos loop does the
next of: SIGKILL a pod (it leaves DNS a second later), add a pod, drain a pod (leave DNS,
SIGTERM), add a pod; 2 to 5 pods stay up. Afterwards every run is read back through the
REST API: succeeded, failed, retried (a step's attempt 2+ in its journal), lost (submitted
but not found, must be 0), hung (not terminal, or no answer within the client's 120 s,
must be 0); completed outputs are checked against the demo's expected values; the pods'
ledger shows whether any step ran twice under one attempt number (must be 0). RSS of every
process at its first and last sample. Exits non-zero if lost, hung or duplicated are not 0.

``--kill-runtime-every S`` (issue 15): the runtime keeps its runs in SQLite and is killed with
SIGKILL every S seconds and started again, pods and proxy left alone. Clients then submit
with ``wait: false`` (a refused or broken submit was not acknowledged: it is sent again) and
wait with ``GET /runs/{id}?wait=true``, asking again through the restarts. Besides the
above, every acknowledged run must end exactly once (one ``run_completed`` in its journal)
with its output right.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.fleet import WORKFLOWS
from tests.reliability.chaos_fleet import HUB, ChaosFleet, pod_address, same_attempt_twice
from tests.support.processes import ManagedProcess

FIRST_POD, LAST_POD = 20, 38
"""Pod indexes 20-38: 127.0.0.121-139 (the chaos tests use 127.0.0.101 and up)."""
MIN_PODS, MAX_PODS = 2, 5
CLIENT_TIMEOUT_SECONDS = 120.0
SOAK_DEADLINES = {"connectTimeoutSeconds": 1, "idleTimeoutSeconds": 5, "totalTimeoutSeconds": 10, "callbackTimeoutSeconds": 2, "connectRetries": 5}
BLOB_DATA = {"test": "value1", "number": 1, "timestamp": "1700000000"}


def _sha(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, separators=(",", ":")).encode()).hexdigest()


def _simple(n: int) -> tuple[dict[str, Any], Any]:
    value = n % 50
    doubled = 2.0 * value
    return {"value": value}, {"original": value, "doubled": doubled, "squared": doubled**2, "sum": value + doubled**2}


def _bidirectional(n: int) -> tuple[dict[str, Any], Any]:
    data = {**BLOB_DATA, "number": n}
    return {"data": data}, {"blob_id": _sha(data), "retrieved_data": data}


def _parallel(n: int) -> tuple[dict[str, Any], Any]:
    run_input = {"workflow_id": n}
    return run_input, {f"blob_id_{k}": _sha(run_input) for k in (1, 2, 3)}


def _batch(n: int) -> tuple[dict[str, Any], Any]:
    return {"value": 5, "iterations": 3}, {"final_result": 441.0, "fibonacci_result": 21.0}


MIX = {"simple-test-workflow": _simple, "bidirectional-test-workflow": _bidirectional, "parallel-bidirectional-test": _parallel, "batch-workflow": _batch}
"""Flow name -> (run number -> (input, the output subset it must produce))."""


@dataclass
class Submission:
    flow: str
    run_id: str | None
    status: str
    seconds: float
    correct: bool


@dataclass
class Memory:
    """RSS in MiB of every process, first and last sample."""

    first: dict[str, float] = field(default_factory=dict)
    last: dict[str, float] = field(default_factory=dict)

    def sample(self, processes: dict[str, ManagedProcess]) -> None:
        for name, process in processes.items():
            rss = _rss_mib(process.pid) if process.alive() else None
            if rss is not None:
                self.first.setdefault(name, rss)
                self.last[name] = rss


def _rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


async def _tick(stop: asyncio.Event, every: float) -> bool:
    """After ``every`` seconds, True; False at once when ``stop`` is set meanwhile (the loop ends)."""
    try:
        await asyncio.wait_for(stop.wait(), every)
    except TimeoutError:
        return True
    return False


class Chaos:
    """Kill, add, drain, add, ... every ``every`` seconds, keeping MIN_PODS..MAX_PODS pods."""

    def __init__(self, fleet: ChaosFleet, every: float, memory: Memory) -> None:
        self.fleet = fleet
        self.every = every
        self.memory = memory
        self.actions: Counter[str] = Counter()
        self.random = random.Random(7)  # noqa: S311 - a seeded, repeatable chaos schedule; nothing secret

    def processes(self) -> dict[str, ManagedProcess]:
        named = {"dns": self.fleet.dns, "runtime": self.fleet.runtime}
        named.update({f"proxy :{port}": proxy for port, proxy in self.fleet.proxies.items()})
        named.update({f"pod {address} (pid {pod.pid})": pod for address, pod in self.fleet.pods.items()})
        return {name: process for name, process in named.items() if process is not None}

    def live(self) -> list[str]:
        return [address for address in self.fleet.published if self.fleet.pods[address].alive()]

    async def run(self, stop: asyncio.Event) -> None:
        cycle = ["kill", "add", "drain", "add"]
        step = 0
        while await _tick(stop, self.every):
            await getattr(self, "_" + cycle[step % len(cycle)])()
            step += 1
            self.memory.sample(self.processes())

    def _victim(self) -> str | None:
        """A live pod to take away, unless that would leave fewer than MIN_PODS."""
        live = self.live()
        return self.random.choice(live) if len(live) > MIN_PODS else None

    async def _kill(self) -> None:
        if (victim := self._victim()) is None:
            return
        self.fleet.kill_pod(victim)
        self.actions["killed"] += 1
        await asyncio.sleep(1.0)  # the endpoint leaves the Service a moment after the node dies
        self.fleet.unpublish(victim)

    async def _add(self) -> None:
        if len(self.live()) >= MAX_PODS:
            return
        free = [pod_address(i) for i in range(FIRST_POD, LAST_POD + 1) if pod_address(i) not in self.fleet.pods or not self.fleet.pods[pod_address(i)].alive()]
        await asyncio.to_thread(self.fleet.add_pod, free[0])
        self.actions["added"] += 1

    async def _drain(self) -> None:
        if (victim := self._victim()) is None:
            return
        self.fleet.unpublish(victim)
        self.actions["drained"] += 1
        await asyncio.to_thread(self.fleet.pods[victim].stop, 30.0)


class RuntimeKiller:
    """SIGKILL the runtime every ``every`` seconds and start it again (its runs are in SQLite)."""

    def __init__(self, fleet: ChaosFleet, every: float) -> None:
        self.fleet = fleet
        self.every = every
        self.kills = 0

    async def run(self, stop: asyncio.Event) -> None:
        runtime = self.fleet.runtime
        assert runtime is not None
        while await _tick(stop, self.every):
            runtime.kill()
            self.kills += 1
            runtime.start()
            await asyncio.to_thread(runtime.wait_healthy, f"{self.fleet.runtime_url}/api/v1/health", 60)


RESTART_RETRY_SECONDS = 0.2


async def _submit_durably(client: httpx.AsyncClient, body: dict[str, Any], ends: float) -> str | None:
    """``POST /runs`` (wait: false) until the runtime acknowledges it; None if it never did before ``ends``."""
    while time.monotonic() < ends + CLIENT_TIMEOUT_SECONDS:
        try:
            response = await client.post("/api/v1/runs", json={**body, "wait": False})
            if response.status_code == 202:
                return str(response.json()["runId"])
        except httpx.HTTPError:
            pass  # not acknowledged: nothing was promised, send it again
        await asyncio.sleep(RESTART_RETRY_SECONDS)
    return None


async def _wait_durably(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    """The run's details once it ended and its item's result, asking again through runtime restarts."""
    deadline = time.monotonic() + CLIENT_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            run = (await client.get(f"/api/v1/runs/{run_id}", params={"wait": "true", "timeoutSecs": 30})).json()
            if run.get("status") not in ("running", None):
                items = (await client.get(f"/api/v1/runs/{run_id}/items")).json()["items"]
                return {**run, "result": items[0].get("result", {})}
        except (httpx.HTTPError, ValueError, KeyError):
            await asyncio.sleep(RESTART_RETRY_SECONDS)
    return {"status": "no answer"}


async def submit_all(
    fleet: ChaosFleet, flow_ids: dict[str, str], runs: int, seconds: float, concurrency: int, durable: bool = False
) -> tuple[list[Submission], str]:
    """Submit until ``runs`` runs or ``seconds``; returns the submissions and which limit stopped it."""
    submissions: list[Submission] = []
    ends = time.monotonic() + seconds
    counter = iter(range(runs))
    names = list(MIX)

    async def client_loop(client: httpx.AsyncClient) -> None:
        while time.monotonic() < ends:
            number = next(counter, None)
            if number is None:
                return
            name = names[number % len(names)]
            run_input, expected = MIX[name](number)
            started = time.perf_counter()
            body = {"flowId": flow_ids[name], "input": [run_input]}
            try:
                answer: dict[str, Any]
                if durable:
                    run_id = await _submit_durably(client, body, ends)
                    answer = await _wait_durably(client, run_id) if run_id else {"status": "not acknowledged"}
                    answer["runId"] = run_id
                else:
                    answer = (await client.post("/api/v1/runs", json={**body, "wait": True})).json()
            except httpx.HTTPError:
                submissions.append(Submission(name, None, "no answer", time.perf_counter() - started, False))
                continue
            result = answer.get("result", {}).get("result") or {}
            correct = answer.get("status") == "completed" and all(result.get(key) == value for key, value in expected.items())
            submissions.append(Submission(name, answer.get("runId"), answer.get("status", "?"), time.perf_counter() - started, correct))

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=fleet.runtime_url, timeout=CLIENT_TIMEOUT_SECONDS, limits=limits) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
    return submissions, ("--runs" if len(submissions) >= runs else "--seconds")


async def read_back(fleet: ChaosFleet, submissions: list[Submission]) -> dict[str, Any]:
    """Every run in the runtime (listed, paged) and every journal; retried = a step's attempt 2+."""
    listed: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=fleet.runtime_url, timeout=60) as client:
        offset = 0
        while page := (await client.get("/api/v1/runs", params={"limit": 10_000, "offset": offset})).json()["runs"]:
            listed.update({run["runId"]: run["status"] for run in page})
            offset += len(page)
        gate = asyncio.Semaphore(16)

        async def journal(run_id: str) -> tuple[bool, bool]:
            """(a step's attempt 2+, the run ended more than once)."""
            async with gate:
                events = (await client.get(f"/api/v1/runs/{run_id}/events")).json()["events"]
            ends = sum(1 for event in events if event["kind"] == "run_completed")
            return any((event.get("attempt") or 1) >= 2 for event in events), ends > 1

        flags = await asyncio.gather(*(journal(run_id) for run_id in listed))
    answered = [s.run_id for s in submissions if s.run_id]
    return {
        "listed": len(listed),
        "lost": sum(1 for run_id in answered if run_id not in listed),
        "not_terminal": sum(1 for status in listed.values() if status == "running"),
        "retried": sum(retried for retried, _ in flags),
        "ended_twice": sum(twice for _, twice in flags),
        "statuses": Counter(listed.values()),
    }


def report(
    submissions: list[Submission], stopped_by: str, wall: float, back: dict[str, Any], chaos: Chaos, duplicates: int, memory: Memory, command: str
) -> bool:
    latencies = sorted(s.seconds for s in submissions if s.run_id)
    succeeded = sum(1 for s in submissions if s.status == "completed")
    hung = back["not_terminal"] + sum(1 for s in submissions if s.run_id is None)
    rows = [
        ("command", command),
        ("stopped by", f"{stopped_by} after {wall:.0f} s"),
        ("chaos actions", ", ".join(f"{name} {count}" for name, count in sorted(chaos.actions.items()))),
        ("runs submitted", len(submissions)),
        ("runs in the runtime", back["listed"]),
        ("succeeded", succeeded),
        ("succeeded with the expected output", sum(1 for s in submissions if s.correct)),
        ("failed", sum(1 for s in submissions if s.status == "failed")),
        ("retried (a step's attempt >= 2)", back["retried"]),
        ("lost (must be 0)", back["lost"]),
        ("hung (must be 0)", hung),
        ("same (run, step, attempt) ran twice (must be 0)", duplicates),
        ("a run ended twice (must be 0)", back["ended_twice"]),
        (
            "latency p50 / p99 (ms)",
            f"{1000 * statistics.median(latencies):.0f} / {1000 * latencies[int(0.99 * (len(latencies) - 1))]:.0f}" if latencies else "-",
        ),
        ("throughput (runs/s)", f"{len(submissions) / wall:.0f}"),
    ]
    for name, count in Counter(s.flow for s in submissions if s.status != "completed").items():
        rows.append((f"failed: {name}", count))
    print("\n| soak | |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    print("\n| process | RSS first (MiB) | RSS last (MiB) |\n|---|---|---|")
    for name in memory.first:
        print(f"| {name} | {memory.first[name]:.1f} | {memory.last[name]:.1f} |")
    return back["lost"] == 0 and hung == 0 and duplicates == 0 and back["ended_twice"] == 0


async def soak(args: argparse.Namespace, work_dir: Path) -> bool:
    durable = args.kill_runtime_every > 0
    extra = f'storageConfig:\n  databaseUrl: "sqlite:{work_dir / "soak.db"}?mode=rwc"\n' if durable else "stateStore:\n  type: inMemory\n  maxRuns: 1000000\n"
    fleet = ChaosFleet(work_dir, proxy_ports=(8081,), runtime_port=8181, dns_listen=f"{HUB}:8091", deadlines=dict(SOAK_DEADLINES), extra_config=extra)
    await asyncio.to_thread(fleet.start, [pod_address(FIRST_POD + n) for n in range(3)])
    try:
        async with httpx.AsyncClient(base_url=fleet.runtime_url) as client:
            flow_ids = {name: (await client.post("/api/v1/flows", json={"flow": (WORKFLOWS / f"{name}.yaml").read_text()})).json()["flowId"] for name in MIX}
        memory = Memory()
        chaos = Chaos(fleet, args.chaos_every, memory)
        memory.sample(chaos.processes())
        stop = asyncio.Event()
        chaos_task = asyncio.create_task(chaos.run(stop))
        killer = RuntimeKiller(fleet, args.kill_runtime_every)
        killer_task = asyncio.create_task(killer.run(stop)) if durable else None
        started = time.monotonic()
        submissions, stopped_by = await submit_all(fleet, flow_ids, args.runs, args.seconds, args.concurrency, durable)
        wall = time.monotonic() - started
        stop.set()
        await chaos_task
        if killer_task is not None:
            await killer_task
            chaos.actions["runtime killed"] = killer.kills
        memory.sample(chaos.processes())
        back = await read_back(fleet, submissions)
        duplicates = len(same_attempt_twice(fleet.ledger()))
        command = f"bench/soak.py --runs {args.runs} --seconds {args.seconds:g} --concurrency {args.concurrency} --chaos-every {args.chaos_every:g}"
        if durable:
            command += f" --kill-runtime-every {args.kill_runtime_every:g}"
        return report(submissions, stopped_by, wall, back, chaos, duplicates, memory, command)
    finally:
        await asyncio.to_thread(fleet.stop)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=180.0, help="stop submitting after this long even if --runs are not all in")
    parser.add_argument("--concurrency", type=int, default=24, help="runs in flight at once")
    parser.add_argument("--chaos-every", type=float, default=3.0, help="seconds between chaos actions")
    parser.add_argument("--kill-runtime-every", type=float, default=0.0, help="SIGKILL and restart the runtime (runs in SQLite) this often; 0: never")
    parser.add_argument("--keep", type=Path, help="keep logs and the ledger in this directory")
    args = parser.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        ok = asyncio.run(soak(args, args.keep))
    else:
        with tempfile.TemporaryDirectory(prefix="soak-") as work_dir:
            ok = asyncio.run(soak(args, Path(work_dir)))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
