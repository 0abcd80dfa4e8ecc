"""Smoke test of ``bench/bench_proxy.py``: tiny parameters, fast pods, every target answers without errors."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from tests.support.processes import REPO_ROOT


def missing(generator: str) -> list[str]:
    return [tool for tool in ("haproxy", generator) if shutil.which(tool) is None]


@pytest.mark.parametrize("generator", ["wrk", "h2load"])
def test_bench_proxy_prints_a_table_with_cpu_per_request(generator: str) -> None:
    if missing(generator):
        pytest.skip(f"bench_proxy needs {missing(generator)} (Debian's haproxy, wrk, nghttp2-client: scripts/setup installs them as root)")
    out = subprocess.run(
        [sys.executable, "bench/bench_proxy.py", "--generator", generator, "--rounds", "1", "--seconds", "1", "--connections", "4"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    rows = {cells[1]: cells for cells in (line.split(" | ") for line in out.splitlines() if re.match(r"\| 4 \|", line))}
    assert set(rows) == {"direct (1 pod)", "haproxy", "ours"}, out
    assert all(cells[5] == "0" for cells in rows.values()), f"errors in {out}"
    assert float(rows["ours"][6]) > 0 and float(rows["haproxy"][6]) > 0, "CPU per request is reported for both proxies"
    assert rows["ours"][7].endswith("x")


def test_bench_proxy_in_process_prints_cpu_and_calls_per_request() -> None:
    out = subprocess.run(
        [sys.executable, "bench/bench_proxy.py", "--in-process", "200"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=True
    ).stdout
    cells = next(line.split(" | ") for line in out.splitlines() if line.startswith("| ours |"))
    assert cells[1] in ("yes", "no") and float(cells[2]) > 0 and 0 < float(cells[3].rstrip(" |")) < 1000, out
    if cells[1] == "yes":
        python = next(line.split(" | ") for line in out.splitlines() if line.startswith("| ours as Python |"))
        assert python[1] == "no" and float(python[3].rstrip(" |")) > float(cells[3].rstrip(" |")), "compiled functions are not counted"
