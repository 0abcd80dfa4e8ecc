"""Our runtime as a real process on a loopback address: its config, start-up and readiness."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.processes import ManagedProcess, python_process


def remote_plugin_config(url: str | list[str], **plugin_options: Any) -> str:
    """The k8s demo's config (config.md §6): the fleet at ``url`` (or at several proxies' ``urls``)
    as plugin ``k8s_components`` (with ``plugin_options``, e.g. ``idleTimeoutSeconds=5``) for
    ``/python/...``, builtins for the rest."""
    options = "".join(f"    {key}: {value}\n" for key, value in plugin_options.items())
    where = f'url: "{url}"' if isinstance(url, str) else "urls: [" + ", ".join(f'"{each}"' for each in url) + "]"
    return (
        "plugins:\n"
        "  builtin:\n    type: builtin\n"
        f"  k8s_components:\n    type: stepflow\n    {where}\n{options}"
        "routes:\n"
        '  "/python/{*component}":\n    - plugin: k8s_components\n'
        '  "/{*component}":\n    - plugin: builtin\n'
    )


def start_runtime(
    config: Path | None, address: str, log_dir: Path, port: int = 7840, metrics_port: int = 0, env: dict[str, str] | None = None
) -> tuple[ManagedProcess, str]:
    """Start ``python -m runtime_server`` and wait for health; returns (process, API base URL)."""
    args = ["-m", "runtime_server", "--host", address, "--port", str(port), "--metrics-port", str(metrics_port)]
    if config is not None:
        args += ["--config", str(config)]
    process = python_process(f"runtime-{address}-{port}", args, log_dir, env)
    base = f"http://{address}:{port}/api/v1"
    process.start().wait_healthy(f"{base}/health")
    return process, base


def start_runtime_with_text(config_yaml: str, address: str, log_dir: Path, port: int = 7840) -> tuple[ManagedProcess, str]:
    """``start_runtime`` with the config given as YAML text (written next to the log)."""
    config = log_dir / f"runtime-{address}-{port}.yml"
    config.write_text(config_yaml)
    return start_runtime(config, address, log_dir, port)


def wait_plugins_healthy(api: str, runtime: ManagedProcess | None = None, seconds: float = 15.0) -> None:
    """The runtime's plugins initialize in the background and runs before that fail: wait
    (bounded) until ``{api}/health`` says every one is healthy."""
    deadline = time.monotonic() + seconds
    while True:
        health = httpx.get(f"{api}/health").json()
        if all(plugin["healthy"] for plugin in health["plugins"].values()):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the runtime's plugins never became healthy: {health}\n{runtime.log() if runtime else ''}")
        time.sleep(0.1)
