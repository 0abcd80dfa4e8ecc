"""Child processes of the local fleet (and of tests and benchmarks): start, wait healthy, stop.

Every wait is bounded; every process is stopped (SIGTERM, then SIGKILL), and runs in
its own process group so a kill takes its children too. Output goes to a log file.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: Linux sends SIGKILL when the parent dies, even by SIGKILL,
    so no pod or proxy outlives the fleet (each child has its own session, so Ctrl-C in a
    terminal reaches only the parent, which stops the children in order). Linux ties this to
    the creating thread, so it is armed only for children of the main thread."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class ManagedProcess:
    name: str
    args: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> ManagedProcess:
        environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1", **self.env}
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            self.args,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
            cwd=REPO_ROOT,
            start_new_session=True,
            preexec_fn=_die_with_parent if threading.current_thread() is threading.main_thread() else None,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_healthy(self, url: str, timeout: float = 20.0) -> None:
        """Poll ``url`` until it answers 2xx; fail with the process log if it never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited early:\n{self.log()}")
            try:
                if httpx.get(url, timeout=1.0).is_success:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} not healthy at {url} after {timeout}s:\n{self.log()}")

    def signal(self, signum: int) -> None:
        if self.alive():
            assert self.process is not None
            self.process.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL the whole process group: what a node failure looks like."""
        if self.alive():
            assert self.process is not None
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)

    def stop(self, grace: float = 5.0) -> None:
        if not self.alive():
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.kill()

    def log(self, tail: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except FileNotFoundError:
            return ""


def python_process(name: str, module_or_script: list[str], log_dir: Path, env: dict[str, str] | None = None) -> ManagedProcess:
    """A process running this interpreter, e.g. ``["-m", "component_server.demo", ...]``."""
    return ManagedProcess(name, [sys.executable, *module_or_script], log_dir / f"{name}.log", env or {})
