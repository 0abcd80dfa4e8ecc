"""The upstream Rust ``stepflow-server`` 0.9.0 (from stepflow-orchestrator), for interop tests.

It binds every interface: start it only inside ``netns.inside_new_netns()``. It sends
``initialize`` to every plugin at startup and exits if one is down, so start the pods
(or proxy) it names first.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import stepflow_orchestrator

from tests.e2e.scripted_pod import ScriptedPod
from tests.support.netns import inside_new_netns
from tests.support.processes import REPO_ROOT, ManagedProcess
from tests.support.runtime import start_runtime_with_text

BINARY = Path(stepflow_orchestrator.__file__).parent / "bin" / "stepflow-server"
CORPUS = REPO_ROOT / "tests" / "conformance" / "corpus"


def corpus_config(pod_url: str | None = None) -> str:
    """Every flow of the conformance corpus runs under it: its mock plugin, builtins under /builtin/
    and at the root; with ``pod_url``, also ``/python/{*component}`` on that component server."""
    mock_plugins = (CORPUS / "mock" / "stepflow-config.yml").read_text().split("plugins:\n", 1)[1].rstrip()
    mock_plugins, mock_routes = mock_plugins.split("\nroutes:\n", 1)
    pod_plugin = f'  python:\n    type: stepflow\n    url: "{pod_url}"\n' if pod_url else ""
    pod_route = '  "/python/{*component}":\n    - plugin: python\n' if pod_url else ""
    return (
        "plugins:\n  builtin:\n    type: builtin\n"
        + mock_plugins
        + "\n"
        + pod_plugin
        + "routes:\n"
        + mock_routes
        + "\n"
        + pod_route
        + '  "/builtin/{*component}":\n    - plugin: builtin\n  "/{*component}":\n    - plugin: builtin\n'
    )


def start_upstream_server(config_yaml: str, port: int, log_dir: Path) -> ManagedProcess:
    config_path = log_dir / f"upstream-config-{port}.yml"
    config_path.write_text(config_yaml)
    server = ManagedProcess(
        f"stepflow-server-{port}",
        [str(BINARY), "--port", str(port), "--config", str(config_path), "--log-level", "warn"],
        log_dir / f"stepflow-server-{port}.log",
    )
    server.start().wait_healthy(f"http://127.0.0.1:{port}/api/v1/health", timeout=30)
    return server


@dataclass(frozen=True)
class Servers:
    """The API base URLs of upstream's server and ours, started with the same config."""

    upstream: str
    ours: str

    def both(self) -> dict[str, str]:
        return {"upstream": self.upstream, "ours": self.ours}


@contextlib.contextmanager
def both_servers(config_yaml: str, log_dir: Path, upstream_port: int = 7840, our_port: int = 7841) -> Iterator[Servers]:
    """Upstream's server and ours side by side on 127.0.0.1: start them inside a namespace of your own."""
    upstream = start_upstream_server(config_yaml, upstream_port, log_dir)
    try:
        ours, our_api = start_runtime_with_text(config_yaml, "127.0.0.1", log_dir, our_port)
        try:
            yield Servers(f"http://127.0.0.1:{upstream_port}/api/v1", our_api)
        finally:
            ours.stop()
    finally:
        upstream.stop()


@contextlib.contextmanager
def both_servers_with_scripted_pod(log_dir: Path, pod_host: str, pod_port: int, netns_prefix: str) -> Iterator[Servers]:
    """Both servers on ``corpus_config`` with a scripted pod (tests/e2e/scripted_pod.py) for ``/python/...``,
    all in a network namespace of their own."""
    with inside_new_netns(netns_prefix):
        pod = ScriptedPod(pod_host, pod_port).start()
        try:
            with both_servers(corpus_config(pod.url), log_dir) as servers:
                yield servers
        finally:
            pod.stop()
