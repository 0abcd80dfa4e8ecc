"""A throwaway PostgreSQL cluster for the recovery tests (a stand-in until tests/support/postgres.py lands).

Debian's server binaries, run as the ``postgres`` user when the tests run as root (the server
refuses root), listening on this module's loopback address only, fsync on, password auth
(scram) so a wrong password is refused. ``kill`` is a machine crash (SIGKILL to the whole
server, backends included); ``start`` after it runs the server's crash recovery.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

BIN = Path("/usr/lib/postgresql/15/bin")
HOST = "127.0.0.199"
PORT = 5499
USER = "postgres"
PASSWORD = "recovery-pw-7f3a"


def available() -> bool:
    return (BIN / "postgres").exists() and shutil.which("psql") is not None


class PostgresServer:
    def __init__(self, work_dir: Path, host: str = HOST, port: int = PORT) -> None:
        self.host, self.port = host, port
        self._log_path = work_dir / "postgres.log"
        # Owned by the server's user: pytest's own temporary folders are 0700 root.
        self._root = Path(tempfile.mkdtemp(prefix="stepflow-recovery-pg-"))
        self._data = self._root / "data"
        self._process: subprocess.Popen[bytes] | None = None
        self._as_user = pwd.getpwnam(USER) if os.geteuid() == 0 else None
        self._initdb()

    def _initdb(self) -> None:
        password_file = self._root / "pw"
        password_file.write_text(PASSWORD + "\n")
        if self._as_user is not None:
            os.chown(self._root, self._as_user.pw_uid, self._as_user.pw_gid)
            os.chown(password_file, self._as_user.pw_uid, self._as_user.pw_gid)
        command = [str(BIN / "initdb"), "-D", str(self._data), "-U", USER, "--auth=scram-sha-256", f"--pwfile={password_file}", "-E", "UTF8", "--no-sync"]
        done = subprocess.run(command, capture_output=True, text=True, **self._user())
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stdout}{done.stderr}")

    def _user(self) -> dict[str, object]:
        return {"user": self._as_user.pw_uid, "group": self._as_user.pw_gid, "extra_groups": []} if self._as_user else {}

    def start(self, timeout: float = 20.0) -> "PostgresServer":
        args = [str(BIN / "postgres"), "-D", str(self._data), "-h", self.host, "-p", str(self.port), "-k", str(self._root), "-c", "fsync=on", "-c", "max_connections=100"]
        with open(self._log_path, "ab") as log:
            self._process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **self._user())  # type: ignore[call-overload]
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start on {self.host}:{self.port}:\n{self.log()}")
            time.sleep(0.05)
        return self

    def ready(self) -> bool:
        return subprocess.run([str(BIN / "pg_isready"), "-q", "-h", self.host, "-p", str(self.port)], check=False).returncode == 0

    def stop(self) -> None:
        """Fast shutdown (SIGINT): clients are disconnected, everything committed is kept."""
        self._end(signal.SIGINT)

    def kill(self) -> None:
        """SIGKILL to the server and its backends: a crash; the next start recovers from the WAL."""
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(10)

    def restart(self) -> "PostgresServer":
        self.stop()
        return self.start()

    def _end(self, signum: int) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signum)
        try:
            self._process.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()

    def url(self, database: str = "postgres", password: str = PASSWORD) -> str:
        return f"postgresql://{USER}:{password}@{self.host}:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        done = subprocess.run(["psql", self.url(database), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-c", sql], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"psql failed on {sql!r}: {done.stderr}")
        return done.stdout

    def create_database(self, name: str) -> str:
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def log(self, tail: int = 4000) -> str:
        try:
            return self._log_path.read_text(errors="replace")[-tail:]
        except FileNotFoundError:
            return ""

    def remove(self) -> None:
        self.kill()
        shutil.rmtree(self._root, ignore_errors=True)
