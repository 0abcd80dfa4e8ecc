"""Fixtures of the recovery tests: the shared hold pods, a fresh store per test (SQLite, or a database on
the session's PostgreSQL server), and a PostgreSQL server of their own for the fault tests."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.recovery.harness import POSTGRES_HOST, PodSet, Rig, Store, sqlite_store
from tests.support.postgres import PostgresServer, unavailable_reason

STORES = ("sqlite", "postgres")


@pytest.fixture(scope="session")
def hold_pods(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodSet]:
    pods = PodSet(tmp_path_factory.mktemp("hold-pods"))
    try:
        yield pods
    finally:
        pods.stop()


@pytest.fixture(scope="session")
def fault_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A server of this module's own on 127.0.0.199, for the fault tests that stop and kill it
    (the session's ``postgres`` is shared with other modules and must stay up)."""
    if (reason := unavailable_reason()) is not None:
        pytest.skip(reason)
    server = PostgresServer(tmp_path_factory.mktemp("fault-postgres"), host=POSTGRES_HOST)
    try:
        yield server.start()
    finally:
        server.remove()


@pytest.fixture
def running_postgres(fault_postgres: PostgresServer) -> PostgresServer:
    """The fault tests' server, up (the test before may have stopped it)."""
    return fault_postgres if fault_postgres.alive() else fault_postgres.start()


def postgres_store(server: PostgresServer) -> Store:
    return Store("postgres", server.create_database(f"recovery_{uuid.uuid4().hex[:12]}"))


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "sqlite":
        return sqlite_store(tmp_path)
    return postgres_store(request.getfixturevalue("postgres"))


@pytest.fixture
def make_rig(tmp_path: Path, hold_pods: PodSet) -> Iterator[Callable[..., Rig]]:
    """``make_rig(store, pod_count=1, started=True, **options)``: a rig (started unless told), stopped after the test."""
    rigs: list[Rig] = []

    def make(store: Store, started: bool = True, **options: Any) -> Rig:
        rig = Rig(tmp_path, store, hold_pods, **options)
        rigs.append(rig)
        return rig.start() if started else rig

    yield make
    for rig in rigs:
        rig.stop()
