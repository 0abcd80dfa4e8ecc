"""The recovery rig: hold pods, one runtime on a durable store, and the means to crash either.

Addresses are this module's own: the runtime on 127.0.0.190 (API 7890, metrics 9890), hold
pods on 127.0.0.191-193 (port 8080), PostgreSQL on 127.0.0.199. Everything is a real
process on a real socket; ``kill_runtime`` is SIGKILL to the runtime's process group and
``restart_runtime`` starts it again with the same orchestrator id, config and store. A rig's
addresses, id and file names are its fields, so replicas.py runs two on one database.
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.recovery.ledger import Ledger
from tests.support.processes import REPO_ROOT, ManagedProcess, python_process
from tests.support.scrape import scrape, total
from tests.support.waiting import wait_until

RUNTIME_HOST = "127.0.0.190"
RUNTIME_PORT = 7890
METRICS_PORT = 9890
POD_HOSTS = ("127.0.0.191", "127.0.0.192", "127.0.0.193")
POD_PORT = 8080
POSTGRES_HOST = "127.0.0.199"
ORCHESTRATOR_ID = "recovery-runtime-1"
HOLD_POD = REPO_ROOT / "tests" / "recovery" / "hold_pod.py"
SCHEMA = "https://stepflow.org/schemas/v1/flow.json"
TERMINAL = ("completed", "failed", "cancelled")
PLUGIN_OPTIONS: dict[str, Any] = {
    "connectTimeoutSeconds": 1,
    "idleTimeoutSeconds": 30,
    "totalTimeoutSeconds": 60,
    "callbackTimeoutSeconds": 5,
    "connectRetries": 1,
    "initializeRetrySeconds": 0.2,
}
"""Short enough that a pod that stays down fails its step in about a second, long enough for any hold."""
TLS = ssl.create_default_context()
"""Every client shares it: httpx builds a new one per client otherwise, ~0.3 s each on a busy machine."""


# -- flows -------------------------------------------------------------------------------


def from_input() -> dict[str, Any]:
    return {"$input": "value"}


def from_step(step_id: str) -> dict[str, Any]:
    return {"$step": step_id, "path": "value"}


def step(step_id: str, component: str, values: list[Any], add: float = 1, **extra: Any) -> dict[str, Any]:
    """A step of hold_pod.py (``hold``, ``record``, ``spawn``) answering ``sum(values) + add``."""
    entry: dict[str, Any] = {"id": step_id, "component": f"/python/{component}", "input": {"values": values, "add": add}}
    on_error = extra.pop("onError", None)
    entry["input"].update(extra)
    if on_error is not None:
        entry["onError"] = on_error
    return entry


def flow(name: str, steps: list[dict[str, Any]], output_step: str) -> dict[str, Any]:
    return {"schema": SCHEMA, "name": name, "steps": steps, "output": {"value": from_step(output_step)}}


# -- stores ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Store:
    """A durable store as the runtime's config names it."""

    kind: str
    """``sqlite`` or ``postgres``."""
    database_url: str
    path: Path | None = None
    """The SQLite file, for tests that open it behind the runtime's back."""

    def config(self) -> str:
        return f'storageConfig:\n  type: {self.kind}\n  databaseUrl: "{self.database_url}"\n'


def sqlite_store(work_dir: Path) -> Store:
    path = work_dir / "runs.db"
    return Store("sqlite", f"sqlite:{path}?mode=rwc", path)


def healthy(process: ManagedProcess, url: str) -> bool:
    """``url`` answers 2xx (``ManagedProcess.wait_healthy`` without its new client, and so its ~0.3 s, per poll)."""
    assert process.alive(), f"{process.name} exited:\n{process.log()}"
    try:
        with httpx.Client(timeout=1.0, verify=TLS) as client:
            return client.get(url).is_success
    except httpx.HTTPError:
        return False


# -- pods --------------------------------------------------------------------------------


@dataclass
class PodSet:
    """Hold pods on 127.0.0.191-193 (or ``hosts``), shared by the tests of a session (each starts in
    ~2 s on this machine); a test that kills one gets it back from ``ensure`` before the next test."""

    directory: Path
    hosts: tuple[str, ...] = POD_HOSTS
    processes: dict[str, ManagedProcess] = field(default_factory=dict)
    started: int = 0

    @staticmethod
    def name(index: int) -> str:
        return f"hold-{'abc'[index]}"

    def url(self, index: int) -> str:
        return f"http://{self.hosts[index]}:{POD_PORT}"

    def start(self, index: int) -> ManagedProcess:
        name = self.name(index)
        self.started += 1
        args = [str(HOLD_POD), "--host", self.hosts[index], "--port", str(POD_PORT), "--metrics-port", "0"]
        pod = python_process(f"{name}-{self.started}", args, self.directory, {"POD_NAME": name, "HOLD_DIR": str(self.directory)})
        pod.start()
        wait_until(lambda: healthy(pod, f"{self.url(index)}/health"), f"pod {name} never became healthy:\n{pod.log()}", 20)
        self.processes[name] = pod
        return pod

    def ensure(self, count: int) -> None:
        """Pods 0 .. count-1 running (started or started again)."""
        for index in range(count):
            pod = self.processes.get(self.name(index))
            if pod is None or not pod.alive():
                self.start(index)

    def kill(self, name: str) -> None:
        self.processes[name].kill()

    def stop(self) -> None:
        for pod in self.processes.values():
            pod.kill()


# -- the rig -----------------------------------------------------------------------------


@dataclass
class Rig:
    work_dir: Path
    store: Store
    pods: PodSet
    pod_count: int = 1
    plugin_options: dict[str, Any] = field(default_factory=lambda: dict(PLUGIN_OPTIONS))
    extra_config: str = ""
    env: dict[str, str] = field(default_factory=dict)
    host: str = RUNTIME_HOST
    port: int = RUNTIME_PORT
    metrics_port: int = METRICS_PORT
    orchestrator_id: str = ORCHESTRATOR_ID
    name: str = "runtime"
    """Its config and log files' prefix in ``work_dir`` (replicas share one)."""
    extra_args: list[str] = field(default_factory=list)
    runtime: ManagedProcess | None = None
    starts: int = 0
    ledger: Ledger = field(init=False)

    def __post_init__(self) -> None:
        self.ledger = Ledger.fresh(self.pods.directory, self.runtime_log)

    # -- processes ---------------------------------------------------------------------

    @property
    def api(self) -> str:
        return f"http://{self.host}:{self.port}/api/v1"

    def start(self) -> Rig:
        self.pods.ensure(self.pod_count)
        self.start_runtime()
        return self

    def config_text(self) -> str:
        urls = ", ".join(f'"{self.pods.url(index)}"' for index in range(self.pod_count))
        options = "".join(f"    {key}: {value}\n" for key, value in self.plugin_options.items())
        return (
            self.store.config()
            + self.extra_config
            + "plugins:\n  builtin:\n    type: builtin\n"
            + f"  hold:\n    type: stepflow\n    urls: [{urls}]\n{options}"
            + 'routes:\n  "/python/{*component}":\n    - plugin: hold\n  "/{*component}":\n    - plugin: builtin\n'
        )

    def start_runtime(self, wait_ready: bool = True) -> ManagedProcess:
        """Start (or start again) the runtime: same config, store and orchestrator id every time."""
        config = self.work_dir / f"{self.name}.yml"
        config.write_text(self.config_text())
        self.starts += 1
        self.runtime = python_process(f"{self.name}-{self.starts}", self.runtime_args(config), self.work_dir, self.env)
        self.runtime.start()
        if wait_ready:
            self.wait_ready()
        return self.runtime

    def runtime_args(self, config: Path) -> list[str]:
        return [
            "-m",
            "runtime_server",
            "--config",
            str(config),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--metrics-port",
            str(self.metrics_port),
            "--orchestrator-id",
            self.orchestrator_id,
            *self.extra_args,
        ]

    def wait_ready(self, seconds: float = 20.0) -> None:
        """Health 200 with every plugin initialized (the runtime exiting early fails at once, with its log)."""

        def ready() -> bool:
            if self.runtime is None or not self.runtime.alive():
                raise AssertionError(f"the runtime exited:\n{self.runtime_log()}")
            answer = self.probe("/health")
            return answer is not None and answer[0] == 200 and all(plugin.get("healthy") for plugin in answer[1].get("plugins", {}).values())

        wait_until(ready, f"the runtime never became ready:\n{self.runtime_log()}", seconds)

    def kill_runtime(self) -> None:
        assert self.runtime is not None
        self.runtime.kill()

    def restart_runtime(self, wait_ready: bool = True) -> ManagedProcess:
        if self.runtime is not None:
            self.runtime.kill()
        return self.start_runtime(wait_ready)

    def crash_while(self, step_id: str, count: int = 1, attempt: int | None = None) -> None:
        """SIGKILL the runtime once ``count`` executions of ``step_id`` are held, wait until the pods
        saw their connections go (so no held execution can complete later), start it again."""
        self.ledger.wait_for("start", step_id, count, attempt=attempt)
        self.kill_runtime()
        self.ledger.wait_for("cancelled", step_id, count, attempt=attempt)
        self.start_runtime()

    def stop(self) -> None:
        """The runtime only: its end cancels whatever the pods still hold (the pods stay for the next test)."""
        if self.runtime is not None:
            self.runtime.kill()

    def runtime_log(self, tail: int = 6000) -> str:
        return "\n".join(
            f"--- {self.name} start {n}\n{(self.work_dir / f'{self.name}-{n}.log').read_text(errors='replace')[-tail:]}"
            for n in range(1, self.starts + 1)
            if (self.work_dir / f"{self.name}-{n}.log").exists()
        )

    # -- the API -----------------------------------------------------------------------

    def client(self, timeout: float = 10.0) -> httpx.Client:
        return httpx.Client(base_url=self.api, timeout=timeout, verify=TLS)

    def store_flow(self, definition: dict[str, Any]) -> str:
        with self.client() as client:
            response = client.post("/flows", json={"flow": definition})
        assert response.status_code == 200, f"storing the flow: {response.status_code} {response.text}"
        return str(response.json()["flowId"])

    def submit(self, definition: dict[str, Any], value: float, flow_id: str | None = None) -> str:
        """Create a run without waiting; its id."""
        body: dict[str, Any] = {"flowId": flow_id} if flow_id else {"flow": definition}
        with self.client() as client:
            response = client.post("/runs", json={**body, "input": [{"value": value}], "wait": False})
        assert response.status_code in (200, 202), f"creating a run: {response.status_code} {response.text}"
        return str(response.json()["runId"])

    def get(self, path: str, **params: Any) -> Any:
        with self.client() as client:
            response = client.get(path, params=params)
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
        return response.json()

    def probe(self, path: str) -> tuple[int, Any] | None:
        """(status, JSON or text) of a GET, or None when the runtime cannot be reached: for faults."""
        try:
            with self.client(timeout=5.0) as client:
                response = client.get(path)
        except httpx.HTTPError:
            return None
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, response.text

    def result(self, run_id: str) -> Any:
        """Item 0's result (``{"outcome": ..., "result"|"error": ...}``)."""
        return self.get(f"/runs/{run_id}/items")["items"][0].get("result")

    def steps(self, run_id: str) -> dict[str, dict[str, Any]]:
        return self.get(f"/runs/{run_id}/steps")["steps"]

    def events(self, run_id: str) -> list[dict[str, Any]]:
        return self.get(f"/runs/{run_id}/events")["events"]

    def wait_runs(self, run_ids: list[str], seconds: float = 30.0) -> dict[str, dict[str, Any]]:
        """Every run's details once it has ended; fails naming the runs still going and the runtime's log."""
        deadline = time.monotonic() + seconds
        ended: dict[str, dict[str, Any]] = {}
        with self.client() as client:
            while len(ended) < len(run_ids):
                for run_id in run_ids:
                    if run_id not in ended and (details := client.get(f"/runs/{run_id}").json()).get("status") in TERMINAL:
                        ended[run_id] = details
                if len(ended) < len(run_ids):
                    still = [run_id for run_id in run_ids if run_id not in ended]
                    if time.monotonic() > deadline:
                        raise AssertionError(f"{len(still)} runs still going after {seconds}s, e.g. {still[:3]}{self.ledger.tail()}\n{self.runtime_log()}")
                    time.sleep(0.05)
        return ended

    def metric(self, name: str, **labels: str) -> float:
        return total(scrape(f"http://{self.host}:{self.metrics_port}/metrics"), name, **labels)
