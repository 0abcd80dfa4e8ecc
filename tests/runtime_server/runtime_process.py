"""Our runtime as a real process on a loopback address, for API-level tests."""

from __future__ import annotations

from pathlib import Path

from tests.support.processes import ManagedProcess, python_process


def start_runtime(config: Path | None, address: str, log_dir: Path, port: int = 7840, metrics_port: int = 0, env: dict[str, str] | None = None) -> tuple[ManagedProcess, str]:
    """Start ``python -m runtime_server`` and wait for health; returns (process, API base URL)."""
    args = ["-m", "runtime_server", "--host", address, "--port", str(port), "--metrics-port", str(metrics_port)]
    if config is not None:
        args += ["--config", str(config)]
    process = python_process(f"runtime-{address}-{port}", args, log_dir, env)
    base = f"http://{address}:{port}/api/v1"
    process.start().wait_healthy(f"{base}/health")
    return process, base
