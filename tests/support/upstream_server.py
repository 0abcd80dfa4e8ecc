"""The upstream Rust ``stepflow-server`` 0.9.0 (from stepflow-orchestrator), for interop tests.

It binds every interface: start it only inside ``netns.inside_new_netns()``. It sends
``initialize`` to every plugin at startup and exits if one is down, so start the pods
(or proxy) it names first.
"""

from __future__ import annotations

from pathlib import Path

import stepflow_orchestrator

from tests.support.processes import ManagedProcess

BINARY = Path(stepflow_orchestrator.__file__).parent / "bin" / "stepflow-server"


def remote_plugin_config(url: str) -> str:
    """The k8s demo's config (config.md §6) with the fleet at ``url``."""
    return (
        "plugins:\n"
        "  builtin:\n    type: builtin\n"
        f"  k8s_components:\n    type: stepflow\n    url: \"{url}\"\n"
        "routes:\n"
        "  \"/python/{*component}\":\n    - plugin: k8s_components\n"
        "  \"/{*component}\":\n    - plugin: builtin\n"
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
