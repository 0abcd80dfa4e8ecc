"""Component-server pods on distinct loopback addresses (127.0.0.11, .12, ... port 8080).

Three kinds: ours (``component_server.demo``), the upstream reference
(``tests/interop/upstream_demo_pod.py`` on stepflow-py 0.9.2), same components, same port;
and ``chaos`` (``tests/reliability/chaos_pod.py``: ours plus a ledger of executions).
"""

from __future__ import annotations

from pathlib import Path

from tests.support.processes import REPO_ROOT, ManagedProcess, python_process

POD_PORT = 8080


def pod_address(index: int) -> str:
    """Pod 0 is 127.0.0.11, pod 1 is 127.0.0.12, ..."""
    return f"127.0.0.{11 + index}"


def start_pod(kind: str, address: str, log_dir: Path, extra_args: list[str] | None = None, env: dict[str, str] | None = None) -> ManagedProcess:
    """Start one pod (``kind`` is ``ours``, ``upstream`` or ``chaos``) and wait until /health answers."""
    name = f"pod-{kind}-{address}"
    if kind == "ours":
        command = ["-m", "component_server.demo", "--host", address, "--port", str(POD_PORT), *(extra_args or [])]
    elif kind == "upstream":
        command = [str(REPO_ROOT / "tests" / "interop" / "upstream_demo_pod.py"), "--host", address, "--port", str(POD_PORT)]
    elif kind == "chaos":
        command = [str(REPO_ROOT / "tests" / "reliability" / "chaos_pod.py"), "--host", address, "--port", str(POD_PORT), *(extra_args or [])]
    else:
        raise ValueError(f"unknown pod kind {kind!r}")
    pod = python_process(name, command, log_dir, {"POD_NAME": f"{kind}-pod-{address.rsplit('.', 1)[1]}", **(env or {})})
    pod.start().wait_healthy(f"http://{address}:{POD_PORT}/health")
    return pod
