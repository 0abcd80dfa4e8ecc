"""Fixtures of the recovery tests: the shared hold pods, one PostgreSQL cluster, a fresh store per test."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.recovery import postgres as pg
from tests.recovery.harness import PodSet, Rig, Store, sqlite_store

STORES = ("sqlite", "postgres")


@pytest.fixture(scope="session")
def hold_pods(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodSet]:
    pods = PodSet(tmp_path_factory.mktemp("hold-pods"))
    try:
        yield pods
    finally:
        pods.stop()


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pg.PostgresServer]:
    if not pg.available():
        pytest.skip("PostgreSQL server binaries are not installed (scripts/setup installs them as root)")
    server = pg.PostgresServer(tmp_path_factory.mktemp("postgres"))
    try:
        yield server.start()
    finally:
        server.remove()


@pytest.fixture
def running_postgres(postgres_server: pg.PostgresServer) -> pg.PostgresServer:
    """The cluster, up (a fault test before may have stopped it)."""
    if not postgres_server.ready():
        postgres_server.start()
    return postgres_server


def postgres_store(server: pg.PostgresServer) -> Store:
    return Store("postgres", server.create_database(f"recovery_{uuid.uuid4().hex[:12]}"))


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "sqlite":
        return sqlite_store(tmp_path)
    return postgres_store(request.getfixturevalue("running_postgres"))


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
