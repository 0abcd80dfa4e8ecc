"""Two runtimes on one PostgreSQL database, on the recovery rig's hold pods (issue 16).

Addresses are this module's own: replica A on 127.0.0.230, B on 127.0.0.231 (API 7890, metrics
9890 each), hold pods on 127.0.0.232-233 (port 8080), with ``recovery: {leaseTtlSecs: 2, checkIntervalSecs: 0.25}`` so a dead replica's
runs are taken in about 2-3 s. Each replica is a ``Rig`` of its own (its own orchestrator id,
log files and signals); they share one ledger, whose ``explain`` gives every replica's log.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.recovery.harness import METRICS_PORT, RUNTIME_PORT, PodSet, Rig, Store
from tests.recovery.ledger import Ledger
from tests.support.waiting import wait_until

REPLICA_HOSTS = ("127.0.0.230", "127.0.0.231")
POD_HOSTS = ("127.0.0.232", "127.0.0.233")
LEASE_TTL = 2.0
CHECK_INTERVAL = 0.25
RECOVERY = f"recovery:\n  leaseTtlSecs: {LEASE_TTL}\n  checkIntervalSecs: {CHECK_INTERVAL}\n"
FAILOVER_SECONDS = 15.0
"""How long a test waits for a peer to take a dead replica's run (the TTL plus a check, on a busy machine)."""


def replica_id(index: int) -> str:
    return f"replica-{'ab'[index]}"


@dataclass
class Replicas:
    """Replicas A and B (``self[0]``, ``self[1]``), started together."""

    rigs: list[Rig]
    ledger: Ledger

    @classmethod
    def make(cls, work_dir: Path, store: Store, pods: PodSet, grace: float = 5.0, **options: Any) -> Replicas:
        rigs = [
            Rig(
                work_dir,
                store,
                pods,
                host=host,
                port=RUNTIME_PORT,
                metrics_port=METRICS_PORT,
                orchestrator_id=replica_id(index),
                name=replica_id(index),
                extra_config=RECOVERY + options.pop("extra_config", ""),
                extra_args=["--shutdown-grace-seconds", str(grace)],
                **options,
            )
            for index, host in enumerate(REPLICA_HOSTS)
        ]
        replicas = cls(rigs, rigs[0].ledger)
        replicas.ledger = Ledger(rigs[0].ledger.directory, rigs[0].ledger.offset, replicas.logs)
        for rig in rigs:
            rig.ledger = replicas.ledger
        return replicas

    def __getitem__(self, index: int) -> Rig:
        return self.rigs[index]

    def __iter__(self) -> Iterator[Rig]:
        return iter(self.rigs)

    def start(self, *indexes: int) -> Replicas:
        """Start the replicas named (all by default) side by side, then wait until each is ready."""
        chosen = [self.rigs[index] for index in (indexes or range(len(self.rigs)))]
        self.rigs[0].pods.ensure(self.rigs[0].pod_count)
        for rig in chosen:
            rig.start_runtime(wait_ready=False)
        for rig in chosen:
            rig.wait_ready()
        return self

    def stop(self) -> None:
        for rig in self.rigs:
            if rig.runtime is not None:
                rig.runtime.signal(signal.SIGCONT)  # a frozen one must die too
            rig.stop()

    def logs(self) -> str:
        return "\n".join(rig.runtime_log() for rig in self.rigs)

    def alive(self) -> list[Rig]:
        return [rig for rig in self.rigs if rig.runtime is not None and rig.runtime.alive()]

    # -- what every replica says ---------------------------------------------------------

    def wait_runs(self, run_ids: list[str], seconds: float = 30.0) -> dict[str, dict[str, Any]]:
        return self.alive()[0].wait_runs(run_ids, seconds)

    def same_everywhere(self, path: str) -> Any:
        """The JSON of ``GET path`` from every live replica, which must all agree; that answer."""
        answers = [rig.get(path) for rig in self.alive()]
        assert all(answer == answers[0] for answer in answers), f"the replicas disagree on {path}: {answers}"
        return answers[0]

    def result(self, run_id: str) -> Any:
        """Item 0's result, read from every live replica (they must agree)."""
        return self.same_everywhere(f"/runs/{run_id}/items")["items"][0].get("result")

    def owner(self, run_id: str) -> str:
        return str(self.same_everywhere(f"/runs/{run_id}")["orchestratorId"])

    def log_events(self, index: int, event: str) -> list[dict[str, Any]]:
        """The replica's JSON log lines (all its starts) whose ``event`` is ``event``."""
        rig = self.rigs[index]
        found = []
        for n in range(1, rig.starts + 1):
            path = rig.work_dir / f"{rig.name}-{n}.log"
            for line in path.read_text(errors="replace").splitlines() if path.exists() else []:
                if line.startswith("{") and f'"{event}"' in line:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue
                    if entry.get("event") == event:
                        found.append(entry)
        return found

    def wait_log(self, index: int, event: str, seconds: float = FAILOVER_SECONDS) -> list[dict[str, Any]]:
        wait_until(lambda: self.log_events(index, event), f"{replica_id(index)} never logged {event}:\n{self.logs()}", seconds)
        return self.log_events(index, event)


def journal(rig: Rig, run_id: str, kind: str, step_id: str | None = None) -> list[dict[str, Any]]:
    return [event for event in rig.events(run_id) if event.get("kind") == kind and (step_id is None or event.get("stepId") == step_id)]


def follow_events(rig: Rig, run_id: str, seconds: float = 30.0) -> list[dict[str, Any]]:
    """The run's events SSE stream from ``rig``, read until the server ends it (the run's end)."""
    events = []
    deadline = time.monotonic() + seconds
    with rig.client(timeout=seconds) as client, client.stream("GET", f"/runs/{run_id}/events", headers={"Accept": "text/event-stream"}) as response:
        assert response.status_code == 200, f"events stream: {response.status_code}"
        for line in response.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
            assert time.monotonic() < deadline, f"the events stream did not end in {seconds}s: {events}"
    return events


def submit_anywhere(clients: list[httpx.Client], body: dict[str, Any], first: int) -> tuple[str | None, int]:
    """POST the run to replica ``first``, and to the other when refused (503, or no answer); (run id or None, tries)."""
    for tries, index in enumerate((first, 1 - first), start=1):
        try:
            response = clients[index].post("/runs", json=body)
        except httpx.HTTPError:
            continue
        if response.status_code in (200, 202):
            return str(response.json()["runId"]), tries
    return None, 2
