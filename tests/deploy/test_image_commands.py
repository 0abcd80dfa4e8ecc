"""The images' commands, run for real on this machine (no container engine needed).

Each Dockerfile's CMD is started as a process, with only its ports moved to free
loopback ports; the Dockerfile's own HEALTHCHECK command must then pass against it,
SIGTERM (what Kubernetes sends after preStop) must stop it well within the pod's grace
period, and afterwards the HEALTHCHECK must fail. This needs the project installed in
the test environment (scripts/setup does it).
"""

import itertools
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from .conftest import REPO_ROOT, render
from .images import exec_form, healthcheck_command, last
from .manifests import Fleet, pod_spec
from .test_dockerfiles import DOCKERFILES


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def on_loopback(argv: list[str], http: int, metrics: int) -> list[str]:
    """The image's command line with `python` being this interpreter, and the listeners
    moved to 127.0.0.1 and the given ports. Everything else stays as in the image."""
    moved = {
        "--host": "127.0.0.1",
        "--port": str(http),
        "--metrics-port": str(metrics),
        "--listen": f"127.0.0.1:{http}",
        "--metrics-listen": f"127.0.0.1:{metrics}",
    }
    result = [sys.executable if argv[0] == "python" else argv[0]]
    for previous, word in itertools.pairwise(argv):
        result.append(moved.get(previous, word))
    return result


def healthcheck(service: str, http: int) -> subprocess.CompletedProcess:
    """The Dockerfile's HEALTHCHECK command, aimed at the moved port."""
    command = healthcheck_command(DOCKERFILES[service])
    assert command is not None, f"the {service} Dockerfile has no exec-form HEALTHCHECK"
    command = [sys.executable if word == "python" else word for word in command]
    for port in ("7840", "8080"):  # the images' listen ports
        command = [word.replace(f"127.0.0.1:{port}/", f"127.0.0.1:{http}/") for word in command]
    assert any(str(http) in word for word in command), command
    return subprocess.run(command, capture_output=True, text=True, timeout=10)


@pytest.fixture(scope="module")
def grace_periods(kubectl) -> dict[str, int]:
    fleet = Fleet(render(kubectl, "overlays/local"))
    return {service: pod_spec(fleet.deployment(service))["terminationGracePeriodSeconds"] for service in DOCKERFILES}


@pytest.mark.parametrize("service", DOCKERFILES)
def test_image_command_serves_health_and_stops_on_sigterm(service, grace_periods, tmp_path):
    http, metrics = free_port(), free_port()
    argv = on_loopback(exec_form(last(DOCKERFILES[service], "CMD").arguments), http, metrics)
    if service == "runtime":
        # The image's config path, with the file the image copies there.
        config = argv.index("--config") + 1
        argv[config] = str(REPO_ROOT / "config/stepflow-config.yml")
    log = tmp_path / f"{service}.log"
    env = {**os.environ, "POD_NAME": f"test-{service}", "PYTHONPATH": str(REPO_ROOT)}
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"{argv} exited:\n{log.read_text()}"
            if healthcheck(service, http).returncode == 0:
                break
            assert time.monotonic() < deadline, f"HEALTHCHECK never passed:\n{log.read_text()}"
            time.sleep(0.2)

        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace_periods[service])
        except subprocess.TimeoutExpired:
            pytest.fail(f"{service} ignored SIGTERM for the whole {grace_periods[service]}s grace period")
        assert time.monotonic() - started < grace_periods[service]
        assert healthcheck(service, http).returncode != 0, "HEALTHCHECK passes with nothing listening"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
