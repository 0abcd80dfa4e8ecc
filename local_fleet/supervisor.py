"""Starts, scales and stops the local fleet: DNS, pods, proxies and the runtimes.

Order matters the way it does in a cluster: the database first (with several runtimes),
DNS, then pods (registered in DNS once healthy), then proxies (which discover the pods),
then the runtimes (whose plugin talks to the proxies). Stopping goes the other way; pods
leave DNS before they stop.

One runtime keeps its runs in SQLite. Several runtimes are replicas sharing a throwaway
PostgreSQL server (local_fleet/postgres.py) with one config: each owns the runs it accepted
by a lease, and the others take over a replica's runs when it dies (docs/operations.md).
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from local_fleet.dns_server import write_records
from local_fleet.postgres import PostgresServer
from local_fleet.processes import ManagedProcess, python_process
from local_fleet.topology import METRICS_PORT, POD_PORT, SERVICE_NAME, Topology
from telemetry.logs import log_event

logger = logging.getLogger("local_fleet")


RECOVERY = "recovery:\n  enabled: true\n  leaseTtlSecs: 6\n  checkIntervalSecs: 1\n  maxStartupRecovery: 10000\n  maxClaimsPerCheck: 1000\n"
"""The replicas' recovery settings: upstream 0.13's keys with the runtime's defaults, written out to be seen and changed."""
RUNTIME_STOP_SECONDS = 25.0
"""SIGTERM to SIGKILL for a runtime: its shutdown grace (SHUTDOWN_GRACE_SECONDS, 20 s by default) and a margin."""


def runtime_config(proxy_urls: list[str], database_url: str | None = None, replicated: bool = False) -> str:
    """The demo config (config.md §6) with the fleet reached through every proxy (``urls``: no Service
    spreads the load here), and runs kept in ``database_url`` (durable: a restarted runtime resumes them);
    ``replicated`` adds the ``recovery`` section by which replicas take over each other's runs."""
    store = f'storageConfig:\n  databaseUrl: "{database_url}"\n' if database_url else ""
    store += RECOVERY if replicated else ""
    return (
        "plugins:\n"
        "  builtin:\n    type: builtin\n"
        "  k8s_components:\n    type: stepflow\n"
        "    urls:\n" + "".join(f'      - "{url}"\n' for url in proxy_urls) + "routes:\n"
        '  "/python/{*component}":\n    - plugin: k8s_components\n'
        '  "/builtin/{*component}":\n    - plugin: builtin\n'
        '  "/{*component}":\n    - plugin: builtin\n' + store
    )


@dataclass
class LocalFleet:
    topology: Topology
    work_dir: Path
    pods: dict[int, ManagedProcess] = field(default_factory=dict)
    proxies: list[ManagedProcess] = field(default_factory=list)
    dns: ManagedProcess | None = None
    runtimes: dict[int, ManagedProcess] = field(default_factory=dict)
    postgres: PostgresServer | None = None
    """The runtimes' shared database when there are several of them."""
    pod_program: list[str] = field(default_factory=lambda: ["-m", "component_server.demo"])
    """What each pod runs before its --host/--port/--metrics-port (tests swap in a variant of the demo pod)."""
    api_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    """The runtime API's bearer token (STEPFLOW_API_TOKEN): new for every fleet, as a Secret would be."""

    @property
    def log_dir(self) -> Path:
        return self.work_dir / "logs"

    @property
    def records_path(self) -> Path:
        return self.work_dir / "dns-records.json"

    @property
    def config_path(self) -> Path:
        return self.work_dir / "stepflow-config.yml"

    @property
    def replicated(self) -> bool:
        return self.topology.runtimes > 1

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._write_runtime_config()
        self._publish_pods()
        self._start_dns()
        for index in range(self.topology.pods):
            self.start_pod(index)
        for index in range(self.topology.proxies):
            self._start_proxy(index)
        for index in range(self.topology.runtimes):
            self.start_runtime(index)

    def stop(self) -> None:
        """Stop everything this fleet started, in reverse order; safe to call twice."""
        for runtime in self.runtimes.values():
            runtime.stop(grace=RUNTIME_STOP_SECONDS)
        for process in [*self.proxies, *self.pods.values(), self.dns]:
            if process is not None:
                process.stop()
        if self.postgres is not None:
            self.postgres.remove()
            self.postgres = None
        self.runtimes.clear()
        self.pods.clear()
        self.proxies.clear()

    def start_pod(self, index: int) -> None:
        address = self.topology.pod_address(index)
        pod = python_process(
            f"pod-{index}",
            [*self.pod_program, "--host", address, "--port", str(POD_PORT), "--metrics-port", str(METRICS_PORT)],
            self.log_dir,
            {"POD_NAME": f"component-server-{index}"},
        )
        pod.start().wait_healthy(f"http://{address}:{POD_PORT}/health")
        self.pods[index] = pod
        self._publish_pods()
        log_event(logger, "pod_started", pod=f"component-server-{index}", address=address)

    def stop_pod(self, index: int, hard: bool = False) -> None:
        """Leave DNS first (as an endpoint leaves a Service), then SIGTERM, or SIGKILL if ``hard``."""
        pod = self.pods.pop(index)
        self._publish_pods()
        pod.kill() if hard else pod.stop(grace=30)
        log_event(logger, "pod_stopped", pod=f"component-server-{index}", hard=hard)

    def scale_pods(self, count: int) -> None:
        for index in range(count):
            if index not in self.pods:
                self.start_pod(index)
        for index in sorted(self.pods, reverse=True):
            if index >= count:
                self.stop_pod(index)
        self.wait_routed()

    def wait_routed(self, timeout: float = 15.0) -> None:
        """Return once every proxy routes new requests to exactly the running pods (discovery is periodic)."""
        wanted = {self.topology.pod_address(index) for index in self.pods}
        deadline = time.monotonic() + timeout
        while self._routed_addresses() != [wanted] * len(self.proxies):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the proxies did not pick up pods {sorted(wanted)} within {timeout}s")
            time.sleep(0.1)

    def _routed_addresses(self) -> list[set[str]]:
        routed = []
        for index in range(len(self.proxies)):
            view = httpx.get(f"{self.topology.proxy_url(index)}/proxy/membership", timeout=2.0).json()
            routed.append({member["address"] for member in view["members"] if member["state"] == "active"})
        return routed

    def urls(self) -> dict[str, str]:
        shown = {}
        for index in sorted(self.runtimes):
            name = f"runtime {index}" if self.replicated else "runtime"
            shown[f"{name} API"] = f"{self.topology.runtime_url_of(index)}/api/v1"
            shown[f"{name} metrics"] = self.topology.runtime_metrics_url_of(index)
        if self.postgres is not None:
            shown["PostgreSQL"] = f"{self.postgres.host}:{self.postgres.port} (database stepflow, user {self.postgres.user})"
        for index in range(len(self.proxies)):
            shown[f"proxy {index}"] = self.topology.proxy_url(index)
            shown[f"proxy {index} metrics"] = self.topology.proxy_metrics_url(index)
        for index in sorted(self.pods):
            shown[f"pod {index}"] = f"http://{self.topology.pod_address(index)}:{POD_PORT}"
        shown["DNS"] = f"{self.topology.dns_server} ({SERVICE_NAME})"
        shown["logs"] = str(self.log_dir)
        return shown

    def _publish_pods(self) -> None:
        write_records(self.records_path, {SERVICE_NAME: [self.topology.pod_address(index) for index in sorted(self.pods)]})

    def _start_dns(self) -> None:
        self.dns = python_process(
            "dns", ["-m", "local_fleet.dns_server", "--listen", self.topology.dns_server, "--records", str(self.records_path)], self.log_dir
        )
        self.dns.start()

    def _start_proxy(self, index: int) -> None:
        address = self.topology.proxy_address(index)
        proxy = python_process(
            f"proxy-{index}",
            [
                "-m",
                "affinity_proxy",
                "--listen",
                f"{address}:{POD_PORT}",
                "--upstream",
                f"{SERVICE_NAME}:{POD_PORT}",
                "--dns-server",
                self.topology.dns_server,
                "--metrics-listen",
                f"{address}:{METRICS_PORT}",
            ],
            self.log_dir,
            {"POD_NAME": f"stepflow-load-balancer-{index}"},
        )
        proxy.start().wait_healthy(f"{self.topology.proxy_url(index)}/health")
        self.proxies.append(proxy)

    def start_runtime(self, index: int) -> None:
        """Runtime ``index`` on its own loopback address, with the fleet's one config and id ``stepflow-server-<index>``
        (a restarted runtime keeps its id, as a StatefulSet's pod keeps its name)."""
        if not 0 <= index < self.topology.runtimes:
            raise ValueError(f"runtime index {index} out of range 0..{self.topology.runtimes - 1} (--runtimes {self.topology.runtimes})")
        if index in self.runtimes and self.runtimes[index].alive():
            raise ValueError(f"runtime {index} is already running")
        address, name = self.topology.runtime_address_of(index), f"stepflow-server-{index}"
        env = {"POD_NAME": name, "STEPFLOW_API_TOKEN": self.api_token}
        if self.postgres is not None:
            env["POSTGRES_PASSWORD"] = self.postgres.password
        runtime = python_process(
            f"runtime-{index}" if self.replicated else "runtime",
            [
                "-m",
                "runtime_server",
                "--config",
                str(self.config_path),
                "--host",
                address,
                "--port",
                str(self.topology.runtime_port),
                "--metrics-port",
                str(METRICS_PORT),
                "--orchestrator-id",
                name,
            ],
            self.log_dir,
            env,
        )
        self.runtimes[index] = runtime
        runtime.start().wait_healthy(f"{self.topology.runtime_url_of(index)}/api/v1/health")
        log_event(logger, "runtime_started", orchestrator_id=name, address=address)

    def stop_runtime(self, index: int, hard: bool = False) -> None:
        """SIGKILL (``hard``: its peers take its runs once its lease expires) or SIGTERM (it finishes what it can
        within its grace period and hands the rest to a peer)."""
        if index not in self.runtimes:
            raise ValueError(f"runtime {index} is not running (running: {sorted(self.runtimes)})")
        runtime = self.runtimes.pop(index)
        runtime.kill() if hard else runtime.stop(grace=RUNTIME_STOP_SECONDS)
        log_event(logger, "runtime_stopped", orchestrator_id=f"stepflow-server-{index}", hard=hard)

    def _write_runtime_config(self) -> None:
        """One runtime: SQLite in the work directory. Several: a new PostgreSQL server, its password taken from the
        runtimes' environment (``${POSTGRES_PASSWORD}``, as the Kubernetes overlay does), never written to the file."""
        if self.replicated:
            self.postgres = PostgresServer(self.log_dir).start()
            self.postgres.create_database("stepflow")
            database_url = f"postgresql://{self.postgres.user}:${{POSTGRES_PASSWORD}}@{self.postgres.host}:{self.postgres.port}/stepflow"
        else:
            database_url = f"sqlite:{(self.work_dir / 'runtime-state.db').resolve()}?mode=rwc"
        proxy_urls = [self.topology.proxy_url(i) for i in range(self.topology.proxies)]
        self.config_path.write_text(runtime_config(proxy_urls, database_url, replicated=self.replicated))
