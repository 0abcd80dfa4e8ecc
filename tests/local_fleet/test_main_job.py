"""The README's main job, as a user runs it: ``python -m local_fleet run`` and ``up``.

Real processes on the cluster's loopback topology (DNS 127.0.0.2, runtime 127.0.0.3 and with
``--runtimes 2`` a second one on 127.0.0.4 and a PostgreSQL server, pods 127.0.0.11-13, proxies
127.0.0.21-22). What is checked is what the user sees: the report, the exit code, and that
nothing is left listening afterwards.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from local_fleet.demo import WORKFLOWS, simple_expected
from local_fleet.postgres import unavailable_reason
from local_fleet.topology import METRICS_PORT, POD_PORT, Topology
from tests.support.processes import REPO_ROOT

TOPOLOGY = Topology()
REPLICAS = Topology(runtimes=2)
LISTENERS = [
    *[(REPLICAS.runtime_address_of(index), port) for index in range(REPLICAS.runtimes) for port in (REPLICAS.runtime_port, METRICS_PORT)],
    *[(TOPOLOGY.pod_address(index), port) for index in range(TOPOLOGY.pods) for port in (POD_PORT, METRICS_PORT)],
    *[(TOPOLOGY.proxy_address(index), port) for index in range(TOPOLOGY.proxies) for port in (POD_PORT, METRICS_PORT)],
]


needs_postgres = pytest.mark.skipif(unavailable_reason() is not None, reason=f"--runtimes 2 needs PostgreSQL: {unavailable_reason()}")


def fleet_command(mode: str, work_dir: Path, *flags: str) -> list[str]:
    return [sys.executable, "-m", "local_fleet", mode, "--work-dir", str(work_dir), *flags]


def still_listening() -> list[tuple[str, int]]:
    found = []
    for address in LISTENERS:
        with socket.socket() as probe:
            probe.settimeout(0.5)
            if probe.connect_ex(address) == 0:
                found.append(address)
    return found


def wait_until_quiet(timeout: float = 10.0) -> list[tuple[str, int]]:
    deadline = time.monotonic() + timeout
    while (listening := still_listening()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return listening


def read_until(process: subprocess.Popen[str], marker: str, timeout: float = 60.0) -> str:
    """Collect stdout lines until one contains ``marker`` (the fleet prints its URLs when up)."""
    assert process.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"never printed {marker!r}; output so far:\n{''.join(seen)}")


IGNORING_SIGINT = [sys.executable, "-c", "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); os.execv(sys.argv[1], sys.argv[1:])"]
"""Runs a command with SIGINT ignored, as a non-interactive shell's ``cmd &`` starts it (exec keeps an ignored signal ignored)."""


def start_up(tmp_path: Path, *options: str, sigint_ignored: bool = False) -> subprocess.Popen[str]:
    """``python -m local_fleet up`` with its commands on stdin, its report on stdout, its own log lines in ``fleet.stderr``."""
    command = [*(IGNORING_SIGINT if sigint_ignored else []), *fleet_command("up", tmp_path, *options)]
    with open(tmp_path / "fleet.stderr", "w") as stderr:  # the child keeps its own descriptor
        return subprocess.Popen(command, cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True)


def wait_for_exit(process: subprocess.Popen[str], work_dir: Path, timeout: float = 30.0) -> None:
    """The fleet exits within ``timeout``; if not, the failure shows the end of every log it kept."""
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        kept = [work_dir / "fleet.stderr", *sorted((work_dir / "logs").glob("*.log"))]
        logs = "".join(f"\n== {log.name}\n{log.read_text(errors='replace')[-1500:]}" for log in kept if log.exists())
        raise AssertionError(f"the fleet did not exit within {timeout}s of the signal; its logs:{logs}") from None


def stop(process: subprocess.Popen[str]) -> None:
    """Ends the fleet even if a test failed half-way; its children die with it (PDEATHSIG)."""
    if process.poll() is None:
        process.kill()
        process.wait()


@pytest.fixture
def quiet_topology() -> None:
    busy = still_listening()
    if busy:
        pytest.fail(f"the local fleet's addresses are already in use: {busy}")


@pytest.mark.timeout(120)
def test_run_brings_the_fleet_up_runs_the_demo_reports_and_cleans_up(tmp_path: Path, quiet_topology: None) -> None:
    done = subprocess.run(fleet_command("run", tmp_path), cwd=REPO_ROOT, capture_output=True, text=True, timeout=110)
    report = done.stdout
    assert done.returncode == 0, report + done.stderr[-3000:]
    assert "demo passed" in report
    assert "0 failed" in report
    executions = [line.split() for line in report.splitlines() if line.strip().startswith("127.0.0.1")]
    assert sorted(row[0] for row in executions) == ["127.0.0.11", "127.0.0.12", "127.0.0.13"]
    assert all(float(row[1]) > 0 for row in executions), "every pod took part"
    proxies = [line.split() for line in report.splitlines() if line.strip().startswith("127.0.0.2")]
    assert sorted(row[0] for row in proxies) == ["127.0.0.21", "127.0.0.22"]
    assert all(float(row[1]) > 0 for row in proxies), "the runtime used both proxies"
    assert "[ok] every callback pinned to its pod" in report
    assert wait_until_quiet() == []


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("stop_signal", "sigint_ignored"),
    [(signal.SIGINT, False), (signal.SIGINT, True), (signal.SIGTERM, False)],
    ids=["ctrl-c", "ctrl-c-started-with-sigint-ignored", "sigterm"],
)
def test_up_stays_up_for_manual_use_until_interrupted(tmp_path: Path, quiet_topology: None, stop_signal: signal.Signals, sigint_ignored: bool) -> None:
    process = start_up(tmp_path, sigint_ignored=sigint_ignored)
    try:
        urls = read_until(process, "commands:")
        assert TOPOLOGY.runtime_url in urls
        assert all(address in still_listening() for address in LISTENERS if address[0] != REPLICAS.runtime_address_of(1))
        process.send_signal(stop_signal)
        wait_for_exit(process, tmp_path)
        assert wait_until_quiet() == []
    finally:
        stop(process)


@pytest.mark.timeout(120)
def test_a_fleet_killed_outright_leaves_nothing_behind(tmp_path: Path, quiet_topology: None) -> None:
    process = start_up(tmp_path)
    read_until(process, "commands:")
    stop(process)  # SIGKILL: no chance to clean up in Python
    assert wait_until_quiet() == []


@pytest.mark.timeout(120)
def test_up_survives_a_killed_pod_and_scales(tmp_path: Path, quiet_topology: None) -> None:
    process = start_up(tmp_path)
    assert process.stdin is not None
    try:
        read_until(process, "commands:")
        process.stdin.write("kill 1\nscale 4\ndemo\nquit\n")
        process.stdin.flush()
        report = read_until(process, "demo ")
        assert "demo passed" in report, report
        assert "127.0.0.14" in report, "the pod added by 'scale 4' took work"
        assert process.wait(30) == 0
        assert wait_until_quiet() == []
    finally:
        stop(process)


def runs_per_replica(report: str) -> dict[str, int]:
    """The demo's table of runs per runtime replica: replica -> runs."""
    lines = report.split("Runs per runtime replica\n", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    return {row.split()[0]: int(row.split()[1]) for row in lines}


def database_gone(work_dir: Path) -> bool:
    """The fleet's PostgreSQL server (its log names its port) no longer accepts connections."""
    logs = list((work_dir / "logs").glob("postgres-*.log"))
    assert len(logs) == 1, f"expected one PostgreSQL log, found {logs}"
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", int(logs[0].stem.split("-")[1]))) != 0


@needs_postgres
@pytest.mark.timeout(120)
def test_run_with_two_runtimes_spreads_the_demo_over_both_replicas(tmp_path: Path, quiet_topology: None) -> None:
    done = subprocess.run(fleet_command("run", tmp_path, "--runtimes", "2"), cwd=REPO_ROOT, capture_output=True, text=True, timeout=110)
    report = done.stdout
    assert done.returncode == 0, report + done.stderr[-3000:]
    assert "PostgreSQL, 2 runtimes" in report
    assert all(REPLICAS.runtime_url_of(index) in report for index in range(2)), "both runtimes' URLs are shown"
    assert "demo passed" in report and "0 failed" in report
    replicas = runs_per_replica(report)
    assert set(replicas) == {"stepflow-server-0", "stepflow-server-1"} and all(runs > 0 for runs in replicas.values()), replicas
    assert "[ok] every run read back from another replica" in report
    assert "${POSTGRES_PASSWORD}" in (tmp_path / "stepflow-config.yml").read_text(), "the password stays out of the config file"
    assert wait_until_quiet() == []
    assert database_gone(tmp_path)


@needs_postgres
@pytest.mark.timeout(120)
def test_up_with_two_runtimes_kills_and_restarts_a_runtime(tmp_path: Path, quiet_topology: None) -> None:
    process = start_up(tmp_path, "--runtimes", "2")
    assert process.stdin is not None
    try:
        read_until(process, "commands:")
        process.stdin.write("kill-runtime 1\nkill-runtime 1\n")
        process.stdin.flush()
        assert "error: runtime 1 is not running" in read_until(process, "error:")
        assert (REPLICAS.runtime_address_of(1), REPLICAS.runtime_port) not in still_listening()
        process.stdin.write("start-runtime 1\ndemo\nquit\n")
        process.stdin.flush()
        report = read_until(process, "demo ")
        assert "demo passed" in report, report
        assert len(runs_per_replica(report)) == 2, "the restarted runtime took runs"
        assert process.wait(60) == 0
        assert wait_until_quiet() == []
    finally:
        stop(process)


BATCH = 400
"""Items of a run at concurrency 1: seconds of work, so the run is still going when its runtime is killed."""


def api(url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=f"{url}/api/v1", headers={"authorization": f"Bearer {token}"}, timeout=30)


@needs_postgres
@pytest.mark.timeout(120)
def test_up_with_two_runtimes_fails_a_killed_runtimes_run_over_to_the_other(tmp_path: Path, quiet_topology: None) -> None:
    """kill-runtime with a run in flight: the other replica claims it once the lease expires and finishes it."""
    process = start_up(tmp_path, "--runtimes", "2")
    assert process.stdin is not None
    try:
        shown = read_until(process, "commands:")
        token = next(line.split()[-1] for line in shown.splitlines() if line.strip().startswith("API token"))
        flow = yaml.safe_load((WORKFLOWS / "simple-test-workflow.yaml").read_text())
        with api(REPLICAS.runtime_url_of(1), token) as doomed:
            flow_id = doomed.post("/flows", json={"flow": flow}).json()["flowId"]
            body = {"flowId": flow_id, "input": [{"value": value} for value in range(BATCH)], "maxConcurrency": 1, "wait": False}
            run_id = doomed.post("/runs", json=body).json()["runId"]
            time.sleep(0.5)
            assert doomed.get(f"/runs/{run_id}").json()["status"] == "running", "the run ended before its runtime was killed"
        process.stdin.write("kill-runtime 1\n")
        process.stdin.flush()
        with api(REPLICAS.runtime_url_of(0), token) as survivor:
            run = survivor.get(f"/runs/{run_id}", params={"wait": "true", "timeoutSecs": "60"}, timeout=70).json()
            assert (run["status"], run["orchestratorId"]) == ("completed", "stepflow-server-0"), run
            items = sorted(survivor.get(f"/runs/{run_id}/items").json()["items"], key=lambda item: item["itemIndex"])
            assert [item["result"]["result"] for item in items] == [simple_expected(value) for value in range(BATCH)]
            events = survivor.get(f"/runs/{run_id}/events").json()["events"]
        assert any("run_recovered" in event.values() and event.get("instanceId") == "stepflow-server-0" for event in events), events[-5:]
        process.stdin.write("quit\n")
        process.stdin.flush()
        assert process.wait(60) == 0
        assert wait_until_quiet() == []
    finally:
        stop(process)


def test_more_runtimes_than_addresses_are_refused(tmp_path: Path) -> None:
    done = subprocess.run(fleet_command("run", tmp_path, "--runtimes", "9"), cwd=REPO_ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "--runtimes 9: between 1 and 8" in done.stderr
