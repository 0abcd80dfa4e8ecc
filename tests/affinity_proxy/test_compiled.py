"""The per-request modules run compiled (mypyc) exactly when built from the sources as they are, and
the in-process tests pass both ways (docs/decisions.md, "the per-request modules compiled by mypyc")."""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import affinity_proxy
from affinity_proxy import COMPILED_MODULES, STAMP, compiled_is_current, sources_digest

REPO_ROOT = Path(__file__).resolve().parents[2]
IN_PROCESS_TESTS = ["test_pipeline_in_process.py", "test_http_pieces.py", "test_accounting.py", "test_membership_and_routing.py", "test_metrics.py"]


def test_the_modules_come_from_where_the_stamp_says() -> None:
    suffix = ".so" if affinity_proxy.COMPILED else ".py"
    for name in COMPILED_MODULES:
        module = importlib.import_module(f"affinity_proxy.{name}")
        assert module.__file__ is not None and module.__file__.endswith(suffix), module.__file__


def test_where_scripts_setup_can_compile_the_modules_they_run_compiled() -> None:
    """So CI (scripts/test runs scripts/setup) runs the tests on what ships, not on the fallback."""
    if os.environ.get("AFFINITY_PROXY_COMPILED") == "0":
        pytest.skip("AFFINITY_PROXY_COMPILED=0: running as Python on purpose")
    headers = Path(sysconfig.get_paths()["include"], "Python.h").exists()
    if importlib.util.find_spec("mypyc") is None or shutil.which("cc") is None or not headers:
        pytest.skip("no mypyc, C compiler or Python headers here: the proxy runs as Python")
    assert affinity_proxy.COMPILED, (
        "compiled modules missing or built from other sources: run scripts/setup (python -m affinity_proxy.build_compiled --if-stale)"
    )


def test_a_stamp_of_other_sources_or_the_switch_means_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(affinity_proxy, "COMPILED_DIR", tmp_path)  # the package's __init__ is never compiled
    monkeypatch.delenv("AFFINITY_PROXY_COMPILED", raising=False)
    assert not compiled_is_current(), "no stamp"
    (tmp_path / STAMP).write_text("0" * 64 + "\n")
    assert not compiled_is_current(), "a stamp of other sources"
    (tmp_path / STAMP).write_text(sources_digest() + "\n")
    assert compiled_is_current()
    monkeypatch.setenv("AFFINITY_PROXY_COMPILED", "0")
    assert not compiled_is_current()


def test_the_in_process_tests_pass_as_python_too() -> None:
    if not affinity_proxy.COMPILED:
        pytest.skip("this run is the Python one already")
    env = {**os.environ, "AFFINITY_PROXY_COMPILED": "0"}
    tests = [f"tests/affinity_proxy/{name}" for name in IN_PROCESS_TESTS]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
