"""Fixtures every test directory can use: a throwaway PostgreSQL server (tests/support/postgres.py)."""

from __future__ import annotations

from collections.abc import Iterator

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
