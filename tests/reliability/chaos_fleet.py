"""A fleet to break on purpose: DNS, chaos pods, affinity proxies (one by default), the runtime, and the verdicts.

Built from the shared test parts (tests/support/) on this suite's own addresses:
DNS, proxy and runtime on 127.0.0.100, pods on 127.0.0.101 and up (port 8080). Pods are
``tests/reliability/chaos_pod.py`` processes writing one shared ledger of executions.
The fleet can kill, pause (SIGSTOP: accepts, never answers), add and unpublish pods,
restart the proxy on its address and take DNS down; ``judge`` reads every run back
through the REST API. Used by tests/reliability/test_chaos.py and bench/soak.py.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from local_fleet.dns_server import write_records
from tests.e2e.fleet import wait_terminal
from tests.support.pods import start_pod
from tests.support.processes import ManagedProcess
from tests.support.runtime import remote_plugin_config, start_runtime_with_text, wait_plugins_healthy
from tests.support.services import start_dns, start_proxy

HUB = "127.0.0.100"
DNS_LISTEN = f"{HUB}:8090"
SERVICE = "chaos.fleet.test"
FAST_DEADLINES = {"connectTimeoutSeconds": 1, "idleTimeoutSeconds": 2, "totalTimeoutSeconds": 4, "callbackTimeoutSeconds": 2, "connectRetries": 4}
"""Short plugin deadlines (runtime_server/plugins/remote/settings.py) so every failure ends in seconds."""
SCHEMA = "https://stepflow.org/schemas/v1/flow.json"


def pod_address(index: int) -> str:
    """Pod 0 is 127.0.0.101, pod 1 is 127.0.0.102, ... (at most 39 pods)."""
    if not 0 <= index < 39:
        raise ValueError(f"pod index {index} is outside this suite's range 127.0.0.101-139")
    return f"127.0.0.{101 + index}"


def one_step_flow(component: str, step_input: dict[str, Any]) -> dict[str, Any]:
    """A flow of one step ``component`` (``/python/work``...) whose input fields come from the run's input."""
    fields = {key: {"$input": key} for key in step_input}
    return {
        "schema": SCHEMA,
        "name": f"chaos{component.replace('/', '-')}",
        "steps": [{"id": "step", "component": component, "input": fields}],
        "output": {"$step": "step"},
    }


@dataclass
class ChaosFleet:
    work_dir: Path
    proxy_ports: tuple[int, ...] = (8080,)
    """One proxy per port on the hub address; the runtime is given all of their URLs."""
    runtime_port: int = 8180
    dns_listen: str = DNS_LISTEN
    deadlines: dict[str, Any] = field(default_factory=lambda: dict(FAST_DEADLINES))
    extra_config: str = ""
    dns: ManagedProcess | None = None
    proxies: dict[int, ManagedProcess] = field(default_factory=dict)
    runtime: ManagedProcess | None = None
    pods: dict[str, ManagedProcess] = field(default_factory=dict)
    published: list[str] = field(default_factory=list)

    @property
    def runtime_url(self) -> str:
        return f"http://{HUB}:{self.runtime_port}"

    @property
    def ledger_path(self) -> Path:
        return self.work_dir / "ledger.jsonl"

    @property
    def records_path(self) -> Path:
        return self.work_dir / "dns-records.json"

    def start(self, pod_addresses: list[str], **pod_options: Any) -> ChaosFleet:
        """DNS, then ``pod_addresses`` (plus pods added before), the proxy, the runtime; all healthy."""
        try:
            self.dns, _ = start_dns(self.work_dir, self.dns_listen, {SERVICE: self.published})
            for address in pod_addresses:
                self.add_pod(address, **pod_options)
            for port in self.proxy_ports:
                self._start_proxy(port)
            urls = [f"http://{HUB}:{port}" for port in self.proxy_ports]
            config = remote_plugin_config(urls[0] if len(urls) == 1 else urls, **self.deadlines) + self.extra_config
            self.runtime, api = start_runtime_with_text(config, HUB, self.work_dir, self.runtime_port)
            wait_plugins_healthy(api, self.runtime)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for pod in self.pods.values():
            pod.signal(signal.SIGCONT)
        for process in [self.runtime, *self.proxies.values(), *self.pods.values(), self.dns]:
            if process is not None:
                process.stop(grace=2)

    # -- pods ------------------------------------------------------------------------

    def add_pod(
        self, address: str, delay: float = 0.0, max_concurrency: int | None = None, publish: bool = True, delay_attempts: int | None = None
    ) -> ManagedProcess:
        """Start a chaos pod (slow by ``delay`` seconds per execution, or only for attempts up to
        ``delay_attempts``) and, once healthy, put it in DNS."""
        env = {"CHAOS_LEDGER": str(self.ledger_path), "CHAOS_DELAY_SECONDS": str(delay)}
        if delay_attempts is not None:
            env["CHAOS_DELAY_ATTEMPTS"] = str(delay_attempts)
        args = ["--metrics-port", "0"] + (["--max-concurrency", str(max_concurrency)] if max_concurrency else [])
        self.pods[address] = start_pod("chaos", address, self.work_dir, args, env)
        if publish:
            self.publish(address)
        return self.pods[address]

    def publish(self, address: str) -> None:
        self.published.append(address)
        write_records(self.records_path, {SERVICE: self.published})

    def unpublish(self, address: str) -> None:
        """The pod leaves DNS, as an endpoint leaves a Service; the process keeps running."""
        self.published.remove(address)
        write_records(self.records_path, {SERVICE: self.published})

    def kill_pod(self, address: str) -> None:
        """SIGKILL: the node died; DNS still names the pod until someone unpublishes it."""
        self.pods[address].kill()

    def pause_pod(self, address: str) -> None:
        """SIGSTOP: the kernel still accepts connections, the pod never answers (not even /health)."""
        os.killpg(self.pods[address].pid, signal.SIGSTOP)

    def resume_pod(self, address: str) -> None:
        os.killpg(self.pods[address].pid, signal.SIGCONT)

    # -- proxy and DNS ------------------------------------------------------------------

    def restart_proxy(self, down_seconds: float = 0.0) -> None:
        """SIGKILL the first proxy, wait, start it again on the same address."""
        self.kill_proxy()
        time.sleep(down_seconds)
        self._start_proxy(self.proxy_ports[0])

    def kill_proxy(self, port: int | None = None) -> None:
        """SIGKILL the proxy on ``port`` (the first one by default)."""
        self.proxies[port or self.proxy_ports[0]].kill()

    def _start_proxy(self, port: int) -> None:
        self.proxies[port] = start_proxy(f"{HUB}:{port}", f"{SERVICE}:8080", self.dns_listen, self.work_dir)

    def dns_down(self) -> None:
        assert self.dns is not None
        self.dns.kill()

    def dns_up(self) -> None:
        assert self.dns is not None
        self.dns.start()

    # -- runs and verdicts --------------------------------------------------------------

    def submit(self, client: httpx.Client, flow: dict[str, Any], run_input: Any) -> str:
        """One run, not waited for; the answer must carry its id."""
        answer = client.post("/api/v1/runs", json={"flow": flow, "input": [run_input], "wait": False})
        assert answer.status_code == 202, answer.text
        return str(answer.json()["runId"])

    def ledger(self) -> list[dict[str, Any]]:
        if not self.ledger_path.exists():
            return []
        return [json.loads(line) for line in self.ledger_path.read_text().splitlines() if line.strip()]

    def logs(self) -> str:
        processes = [self.runtime, *self.proxies.values(), *self.pods.values()]
        return "\n".join(f"--- {p.name}\n{p.log(1500)}" for p in processes if p is not None)


@dataclass
class Verdict:
    """Every submitted run read back through the API once terminal, with its journal and items."""

    runs: dict[str, dict[str, Any]]
    events: dict[str, list[dict[str, Any]]]
    results: dict[str, Any]
    """The one item's result of each run: ``{"outcome": "success", "result": ...}`` or a failure."""

    @property
    def errors(self) -> dict[str, str]:
        return {run_id: json.dumps(result) for run_id, result in self.results.items() if self.runs[run_id]["status"] != "completed"}

    def with_status(self, status: str) -> list[str]:
        return [run_id for run_id, run in self.runs.items() if run["status"] == status]

    def retried(self) -> list[str]:
        """Runs whose journal shows a step's attempt 2 or later."""
        return [run_id for run_id, events in self.events.items() if any((event.get("attempt") or 1) >= 2 for event in events)]

    def seconds(self, run_id: str) -> float:
        run = self.runs[run_id]
        return _epoch(run["completedAt"]) - _epoch(run["createdAt"])


def judge(runtime_url: str, run_ids: list[str], seconds: float) -> Verdict:
    """Wait (bounded) for every run to end, then read runs, journals and failed items' errors."""
    runs = {run["runId"]: run for run in wait_terminal(runtime_url, run_ids, seconds)}
    events: dict[str, list[dict[str, Any]]] = {}
    results: dict[str, Any] = {}
    with httpx.Client(base_url=runtime_url, timeout=30) as client:
        for run_id in runs:
            events[run_id] = client.get(f"/api/v1/runs/{run_id}/events").json()["events"]
            results[run_id] = client.get(f"/api/v1/runs/{run_id}/items").json()["items"][0].get("result")
    return Verdict(runs, events, results)


def same_attempt_twice(ledger: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    """(run, step, attempt) executed more than once: a side effect repeated without the attempt number saying so."""
    counts = Counter((entry["run_id"], entry["step_id"], entry["attempt"]) for entry in ledger)
    return [key for key, count in counts.items() if count > 1]


def executions_by_pod(ledger: list[dict[str, Any]]) -> Counter[str]:
    return Counter(entry["pod"] for entry in ledger)


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
