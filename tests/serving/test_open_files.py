"""The servers raise their soft open-file limit to the hard one (a low soft limit fails the proxy's pod connects)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

import pytest

from serving.open_files import NR_OPEN_DEFAULT, raised_soft_limit
from tests.support.processes import REPO_ROOT

INFINITY = resource.RLIM_INFINITY
SOFT = 256


@pytest.mark.parametrize(
    ("soft", "hard", "asked"),
    [
        (1024, 524288, 524288),
        (1024, INFINITY, NR_OPEN_DEFAULT),
        (524288, 524288, None),
        (INFINITY, INFINITY, None),
        (2 * NR_OPEN_DEFAULT, INFINITY, None),
    ],
)
def test_the_soft_limit_asked_for(soft: int, hard: int, asked: int | None) -> None:
    assert raised_soft_limit(soft, hard) == asked


def _low_soft_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (SOFT, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))


@pytest.mark.skipif(resource.getrlimit(resource.RLIMIT_NOFILE)[1] <= SOFT, reason="the hard limit leaves nothing to raise")
def test_the_proxy_started_at_a_low_soft_limit_runs_at_the_hard_one() -> None:
    """A real proxy process started at a soft limit of 256 (as a shell's ulimit would) says the limit it runs with."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    command = [sys.executable, "-m", "affinity_proxy", "--listen", "127.0.0.93:18593", "--upstream", "pods.invalid:8080", "--metrics-listen", "off"]
    with subprocess.Popen(command, cwd=REPO_ROOT, preexec_fn=_low_soft_limit, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proxy:
        try:
            assert proxy.stdout is not None
            deadline = time.monotonic() + 20
            lines = [""]
            while '"proxy_listening"' not in lines[-1] and time.monotonic() < deadline:
                lines.append(proxy.stdout.readline())
                assert lines[-1], "the proxy exited before it listened:\n" + "".join(lines)
            listening = json.loads(lines[-1])
            assert listening["open_files"] == (hard if hard != INFINITY else NR_OPEN_DEFAULT)
            with open(f"/proc/{proxy.pid}/limits") as limits:
                assert any(row.startswith("Max open files") and row.split()[3] == str(listening["open_files"]) for row in limits)
        finally:
            proxy.terminate()
