"""A throwaway PostgreSQL server for the local fleet, tests and benchmarks: Debian's binaries, loopback only, removed afterwards.

``initdb`` and ``postgres`` refuse to run as root, so as root they run as the ``postgres``
system user, in a directory under /tmp that it owns (pytest's own temporary directories
are private to root). Local socket connections use peer authentication (only that user,
for ``createdb`` and ``psql``); TCP connections need the password of the ``stepflow`` role,
random per server. fsync stays on, as in production: the tests measure and break the real
thing. The server log is kept in ``work_dir``.
"""

from __future__ import annotations

import atexit
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from local_fleet.processes import _die_with_parent

SYSTEM_USER = "postgres"
ROLE = "stepflow"
DEBIAN_ROOT = Path("/usr/lib/postgresql")
START_SECONDS = 20.0
STOP_SECONDS = 10.0


def find_binaries() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` that has ``initdb`` and ``postgres``."""
    candidates = [path / "bin" for path in DEBIAN_ROOT.glob("*") if (path / "bin" / "initdb").exists() and (path / "bin" / "postgres").exists()]
    return max(candidates, key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0, default=None)


def unavailable_reason() -> str | None:
    """Why no server can be started here, or None if one can."""
    if find_binaries() is None:
        return f"PostgreSQL server binaries not found under {DEBIAN_ROOT}/<version>/bin (Debian package postgresql; scripts/setup installs it as root)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            return f"running as root but there is no {SYSTEM_USER!r} system user to run the server as"
    return None


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class PostgresServer:
    """One PostgreSQL cluster: ``start`` (initdb the first time), ``stop``, ``restart``, ``kill``, and a fresh database per test."""

    def __init__(self, work_dir: Path, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.work_dir = work_dir
        self.host = host
        self.port = port or free_port(host)
        self.user = ROLE
        self.password = secrets.token_urlsafe(18)
        self.log_path = work_dir / f"postgres-{self.port}.log"
        self.binaries = find_binaries()
        self._root: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._databases = 0

    # -- where and as whom -------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        assert self._root is not None, "the server was never started"
        return self._root / "data"

    @property
    def socket_dir(self) -> Path:
        assert self._root is not None, "the server was never started"
        return self._root / "socket"

    def _account(self) -> pwd.struct_passwd | None:
        """The system user to run as: ``postgres`` when we are root, else ourselves (None)."""
        return pwd.getpwnam(SYSTEM_USER) if os.geteuid() == 0 else None

    def _as_account(self) -> dict[str, Any]:
        """Popen's arguments that run a child as the server's user."""
        account = self._account()
        return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []} if account else {}

    def _run(self, tool: str, *args: str, timeout: float = 30.0, cwd: Path | None = None) -> str:
        """A client tool or initdb, as the server's user; its output on failure."""
        assert self.binaries is not None
        result = subprocess.run(
            [str(self.binaries / tool), *args], capture_output=True, text=True, timeout=timeout, cwd=cwd or self._root, **self._as_account()
        )
        if result.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
        return result.stdout

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> PostgresServer:
        """A new cluster on first start (with the ``stepflow`` role), then the server; returns once it accepts connections."""
        if (reason := unavailable_reason()) is not None:
            raise RuntimeError(reason)
        first = self._root is None
        if first:
            self._init_cluster()
        self._spawn()
        if first:
            self._psql("postgres", f"CREATE ROLE {ROLE} LOGIN CREATEDB PASSWORD '{self.password}'")  # token_urlsafe: nothing to quote
        return self

    def _init_cluster(self) -> None:
        """A copy of this process's pristine cluster (initdb takes seconds, a copy a fraction of one)."""
        self._root = _owned_temp_dir(self._account())
        _owned_temp_dir(self._account(), self.socket_dir)
        subprocess.run(["cp", "-a", str(_pristine_cluster(self)), str(self.data_dir)], check=True, timeout=60)

    def _spawn(self) -> None:
        assert self.binaries is not None
        settings = {
            "listen_addresses": self.host,
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
            "fsync": "on",
            "max_connections": "200",
            "shared_buffers": "32MB",
            "password_encryption": "scram-sha-256",
        }
        args = [str(self.binaries / "postgres"), "-D", str(self.data_dir), *(arg for key, value in settings.items() for arg in ("-c", f"{key}={value}"))]
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self._root,
                start_new_session=True,
                preexec_fn=_die_with_parent if threading.current_thread() is threading.main_thread() else None,
                **self._as_account(),
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        """Until postmaster.pid says ``ready`` (the server writes it once it accepts connections); bounded."""
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"postgres exited during start-up:\n{self.log()}")
            try:
                lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
            except OSError:
                lines = []
            if len(lines) >= 8 and lines[0].strip() == str(self.pid) and lines[7].strip() == "ready":
                return
            time.sleep(0.02)
        self.kill()
        raise TimeoutError(f"postgres on {self.host}:{self.port} not ready after {START_SECONDS} s:\n{self.log()}")

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def processes(self) -> list[int]:
        """The postmaster and its children (backends, workers): whose CPU a benchmark counts."""
        return [self.pid, *_children(self.pid)] if self.alive() else []

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        """Fast shutdown (SIGINT: sessions are ended, a checkpoint is written); SIGKILL if it takes too long."""
        if not self.alive():
            return
        assert self._process is not None
        self._process.send_signal(signal.SIGINT)
        try:
            self._process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.kill()

    def restart(self) -> None:
        """Stop cleanly and start again on the same port, with the same data."""
        self.stop()
        self._spawn()

    def kill(self) -> None:
        """SIGKILL the postmaster and its backends at once, as a node failure would: clients see their
        connections reset; the next ``start`` runs crash recovery from the WAL."""
        if not self.alive():
            return
        os.kill(self.pid, signal.SIGSTOP)  # no new backends while we collect them
        children = _children(self.pid)
        os.kill(self.pid, signal.SIGKILL)
        for child in children:
            _kill_quietly(child)
        assert self._process is not None
        self._process.wait(STOP_SECONDS)
        deadline = time.monotonic() + STOP_SECONDS
        while any(process_running(child) for child in children) and time.monotonic() < deadline:
            time.sleep(0.02)

    def remove(self) -> None:
        """Stop the server and delete its data directory."""
        self.stop()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    # -- databases -----------------------------------------------------------------------

    def url(self, database: str, scheme: str = "postgresql") -> str:
        return f"{scheme}://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database owned by the ``stepflow`` role; its URL. Without a name, ``test_<n>``."""
        self._databases += 1
        name = name or f"test_{self._databases}"
        self._run("createdb", "--host", str(self.socket_dir), "--port", str(self.port), "--username", SYSTEM_USER, "--owner", ROLE, name)
        return self.url(name)

    def _psql(self, database: str, sql: str) -> str:
        return self._run(
            "psql",
            "--host",
            str(self.socket_dir),
            "--port",
            str(self.port),
            "--username",
            SYSTEM_USER,
            "--dbname",
            database,
            "--no-psqlrc",
            "--quiet",
            "--tuples-only",
            "--set",
            "ON_ERROR_STOP=1",
            "--command",
            sql,
        )

    def log(self, tail: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except FileNotFoundError:
            return ""


_pristine: Path | None = None


def _pristine_cluster(server: PostgresServer) -> Path:
    """initdb once per process (as ``server``'s user, with its binaries) into a directory removed at exit."""
    global _pristine
    if _pristine is None:
        root = _owned_temp_dir(server._account())
        atexit.register(shutil.rmtree, root, True)
        # --no-sync: initdb's files reach the disk with the first checkpoint; the servers themselves run with fsync on.
        server._run(
            "initdb",
            "--pgdata",
            str(root / "data"),
            "--username",
            SYSTEM_USER,
            "--auth-local",
            "peer",
            "--auth-host",
            "scram-sha-256",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
            "--no-sync",
            "--no-instructions",
            timeout=60,
            cwd=root,
        )
        _pristine = root / "data"
    return _pristine


def _owned_temp_dir(account: pwd.struct_passwd | None, path: Path | None = None) -> Path:
    """A new directory (by default under /tmp, which every user can traverse) owned by ``account``."""
    if path is None:
        path = Path(tempfile.mkdtemp(prefix="stepflow-pg-", dir="/tmp"))
    else:
        path.mkdir(mode=0o700)
    if account is not None:
        os.chown(path, account.pw_uid, account.pw_gid)
    return path


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (the postmaster's backends and workers), from /proc."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    children.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return children


def _kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def process_running(pid: int) -> bool:
    """Exists and is not a zombie."""
    try:
        return (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) != "Z"
    except (OSError, IndexError):
        return False
