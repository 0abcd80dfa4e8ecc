"""Every command in bench/ runs, with tiny parameters, and prints its table (so none rots unnoticed).

Each runs as a subprocess, as documented in docs/benchmarks.md, and must exit 0 and print the
line that closes its table. The figures are not checked: at these sizes they mean nothing.
bench/bench_proxy.py has its own smoke test next to the proxy's tests.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import pytest

from tests.support.netns import netns_available
from tests.support.postgres import unavailable_reason
from tests.support.processes import REPO_ROOT, ManagedProcess

NEEDS_NETNS = "needs root and iproute2: upstream's stepflow-server binds every interface, so it runs in a network namespace"


@dataclass(frozen=True)
class Bench:
    script: str
    args: list[str]
    prints: list[str]
    """Lines (or parts of lines) the output must contain: the table's header and its last part."""
    skip: str | None = field(default=None)


def benches() -> list[Bench]:
    no_netns = None if netns_available() else NEEDS_NETNS
    return [
        Bench("ab_runtime.py", ["--rounds", "1", "--seconds", "0.3"], ["| runtime | runs/s (median) |", "| work tree |", "work tree / base:"], no_netns),
        Bench(
            "bench_component_server.py",
            ["--seconds", "0.1", "--rounds", "1", "--dispatch-calls", "300"],
            ["ours/theirs", "store_and_retrieve_blob", "cost vs ours"],
        ),
        Bench("bench_plugin_transport.py", ["--calls", "10"], ["CPU vs default", "/store_and_retrieve_blob", "no httpx (ours)"]),
        Bench(
            "bench_runtime.py",
            ["--seconds", "0.3", "--rss-runs", "1000", *([] if netns_available() else ["--no-upstream"])],
            ["| conc | ours runs/s |", "| 32 |", "runs kept", "    1000 |"],
        ),
        Bench(
            "bench_runtime_vs_upstream.py",
            ["--seconds", "0.3", "--rounds", "1", "--topology", "one-pod"],
            ["| flow | conc | ours runs/s |", "| bidirectional | 32 |"],
            no_netns,
        ),
        Bench(
            "bench_pg_driver.py",
            ["--seconds", "0.1", "--rounds", "1", "--concurrency", "2"],
            ["| workload | conc | asyncpg ops/s |", "| read one | 2 |"],
            unavailable_reason(),
        ),
        Bench(
            "bench_stores.py",
            ["--seconds", "0.2", "--rounds", "1", "--recovery", "20"],
            ["| flow | conc | memory runs/s |", "| builtin | 32 |", "bytes per run", "| postgres | 20 |"],
            unavailable_reason(),
        ),
        Bench(
            "bench_replicas.py",
            ["--seconds", "0.2", "--rounds", "1", "--failover", "10"],
            ["| flow | conc | one replica runs/s |", "| builtin | 32 |", "kill to all resumed"],
            no_netns or unavailable_reason(),
        ),
        Bench(
            "soak.py",
            ["--runs", "100000", "--seconds", "3", "--concurrency", "4", "--chaos-every", "0.7"],
            ["| soak | |", "| lost (must be 0) | 0 |", "| process | RSS first (MiB) |"],
        ),
        Bench(
            "soak.py",
            ["--runs", "100000", "--seconds", "4", "--concurrency", "4", "--chaos-every", "100", "--kill-runtime-every", "1.5"],
            ["| soak | |", "runtime killed", "| lost (must be 0) | 0 |", "| a run ended twice (must be 0) | 0 |"],
        ),
    ]


@pytest.mark.parametrize("bench", benches(), ids=lambda bench: bench.script)
def test_bench_runs_and_prints_its_table(bench: Bench) -> None:
    if bench.skip:
        pytest.skip(bench.skip)
    result = subprocess.run([sys.executable, f"bench/{bench.script}", *bench.args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=100)
    assert result.returncode == 0, f"bench/{bench.script} {' '.join(bench.args)} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    missing = [line for line in bench.prints if line not in result.stdout]
    assert missing == [], f"bench/{bench.script} did not print {missing}:\n{result.stdout[-3000:]}"


def test_passthrough_proxy_copies_bytes_both_ways(tmp_path) -> None:
    """bench/passthrough_proxy.py (bench_proxy.py --floor's floor) between a client and an echo server."""
    echo = socket.create_server(("127.0.0.240", 0))
    threading.Thread(target=_echo_once, args=(echo,), daemon=True).start()
    listen = "127.0.0.240:18470"
    proxy = ManagedProcess(
        "passthrough", [sys.executable, "bench/passthrough_proxy.py", listen, f"127.0.0.240:{echo.getsockname()[1]}"], tmp_path / "passthrough.log"
    ).start()
    try:
        with _connect(proxy, ("127.0.0.240", 18470)) as client:
            client.sendall(b"ping through the floor")
            assert client.recv(100) == b"ping through the floor"
    finally:
        proxy.stop()
        echo.close()


def _echo_once(server: socket.socket) -> None:
    connection, _ = server.accept()
    with connection:
        while data := connection.recv(100):
            connection.sendall(data)


def _connect(process: ManagedProcess, address: tuple[str, int], seconds: float = 10.0) -> socket.socket:
    """A connection to the process once it listens (bounded)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return socket.create_connection(address, timeout=5)
        except OSError:
            if not process.alive() or time.monotonic() > deadline:
                raise AssertionError(f"{process.name} never listened on {address}:\n{process.log()}") from None
            time.sleep(0.05)
