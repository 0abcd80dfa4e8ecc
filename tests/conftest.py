"""Fixtures every test directory can use: a throwaway PostgreSQL server (local_fleet/postgres.py, re-exported by tests/support/postgres.py).

And the ``pure`` marker: tests of the I/O-free cores, to run alone in a tight loop (README).
Every test in ``PURE_MODULES`` is marked (add a module there when it tests a pure core), and
``-m pure`` collects only those modules, so the subset runs in about a second. A test marked
pure may not connect or bind a socket or start a process: each attempt fails the test, so
the marker stays true.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from tests.support.postgres import PostgresServer, unavailable_reason


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """One server for the whole session, removed at its end; tests that stop or kill it use ``private_postgres``."""
    yield from _server(tmp_path_factory)


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> str:
    """A fresh empty database on the session's server, so no test sees another's runs."""
    return postgres.create_database()


@pytest.fixture
def private_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A server of this test's own (about 2 s to start): for tests that restart or kill it."""
    yield from _server(tmp_path_factory)


def _server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    if (reason := unavailable_reason()) is not None:
        pytest.skip(reason)
    server = PostgresServer(tmp_path_factory.mktemp("postgres"))
    try:
        yield server.start()
    finally:
        server.remove()


# -- the pure marker ---------------------------------------------------------------

PURE_MODULES = frozenset(
    {
        "tests/wire_protocol/test_correlation.py",
        "tests/wire_protocol/test_jsonrpc.py",
        "tests/wire_protocol/test_sse.py",
        "tests/telemetry/test_clock.py",
        "tests/telemetry/test_logs.py",
        "tests/telemetry/test_metrics.py",
        "tests/affinity_proxy/test_http_pieces.py",
        "tests/affinity_proxy/test_membership_and_routing.py",
        "tests/affinity_proxy/test_pipeline_in_process.py",
        "tests/affinity_proxy/test_metrics.py",
        "tests/component_server/test_sdk.py",
        "tests/component_server/test_settings.py",
        "tests/runtime_server/test_blob_ids.py",
        "tests/runtime_server/test_deadlines.py",
        "tests/runtime_server/test_expressions.py",
        "tests/runtime_server/test_flow_model.py",
        "tests/runtime_server/test_group_commit.py",
        "tests/runtime_server/test_resume.py",
        "tests/runtime_server/test_lease_rules.py",
        "tests/runtime_server/test_run_ids.py",
        "tests/runtime_server/test_stepflow_plugin_core.py",
        "tests/runtime_server/test_store_settings.py",
        "tests/observability/test_trace_context.py",
        "tests/ui/test_fleet_counts.py",
    }
)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """With ``-m pure``, test modules outside PURE_MODULES are not even imported."""
    if config.getoption("markexpr") != "pure" or not collection_path.name.startswith("test_") or collection_path.suffix != ".py":
        return None
    return collection_path.relative_to(config.rootpath).as_posix() not in PURE_MODULES


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.split("::", 1)[0] in PURE_MODULES:
            item.add_marker(pytest.mark.pure)


def _refuse(what: str) -> Callable[..., NoReturn]:
    def refused(*args: object, **kwargs: object) -> NoReturn:
        raise AssertionError(f"a test marked pure tried to {what}: keep the I/O out of it, or do not mark it pure")

    return refused


@pytest.fixture(autouse=True)
def _pure_means_no_io(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    if request.node.get_closest_marker("pure") is not None:
        monkeypatch.setattr(socket.socket, "connect", _refuse("connect a socket"))
        monkeypatch.setattr(socket.socket, "connect_ex", _refuse("connect a socket"))
        monkeypatch.setattr(socket.socket, "bind", _refuse("bind a socket"))
        monkeypatch.setattr(subprocess.Popen, "__init__", _refuse("start a process"))
    yield
