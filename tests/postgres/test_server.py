"""The throwaway PostgreSQL server the durable-store tests run on (local_fleet/postgres.py, re-exported by tests/support/postgres.py), checked itself."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.support.postgres import PostgresServer, process_running


def query(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    """One statement's rows, on a connection of its own."""
    return asyncio.run(_on_connection(url, lambda connection: connection.fetch(sql, *args)))


def execute(url: str, script: str) -> None:
    """Several statements, no parameters."""
    asyncio.run(_on_connection(url, lambda connection: connection.execute(script)))


async def _on_connection(url: str, use: Callable[[asyncpg.Connection], Awaitable[Any]]) -> Any:
    connection = await asyncpg.connect(url, timeout=5)
    try:
        return await use(connection)
    finally:
        await connection.close()


def test_connects_with_the_password_over_loopback_with_fsync_on(postgres: PostgresServer, postgres_url: str) -> None:
    row = query(
        postgres_url,
        "SELECT current_user, current_setting('fsync') AS fsync, current_setting('listen_addresses') AS listen, inet_server_addr()::text AS address",
    )[0]
    assert (row["current_user"], row["fsync"], row["listen"], row["address"]) == ("stepflow", "on", "127.0.0.1", "127.0.0.1/32")
    assert postgres_url.startswith(f"postgresql://stepflow:{postgres.password}@127.0.0.1:{postgres.port}/")


def test_a_wrong_password_is_refused(postgres: PostgresServer, postgres_url: str) -> None:
    with pytest.raises(asyncpg.InvalidPasswordError):
        query(postgres_url.replace(postgres.password, "wrong"), "SELECT 1")


def test_each_test_gets_an_empty_database_of_its_own(postgres: PostgresServer, postgres_url: str) -> None:
    execute(postgres_url, "CREATE TABLE runs (id text PRIMARY KEY)")
    other = postgres.create_database()
    assert other != postgres_url
    assert query(other, "SELECT count(*) FROM pg_tables WHERE tablename = 'runs'")[0][0] == 0
    assert postgres.create_database("named") == postgres.url("named")


def test_restart_keeps_the_data_and_the_url(private_postgres: PostgresServer) -> None:
    url = private_postgres.create_database("kept")
    execute(url, "CREATE TABLE t (n int); INSERT INTO t VALUES (1), (2)")
    before = private_postgres.pid
    private_postgres.restart()
    assert private_postgres.pid != before
    assert [row["n"] for row in query(url, "SELECT n FROM t ORDER BY n")] == [1, 2]


def test_kill_drops_every_connection_and_a_start_recovers_what_was_committed(private_postgres: PostgresServer) -> None:
    url = private_postgres.create_database("crashed")
    execute(url, "CREATE TABLE t (n int)")

    async def commit_then_lose_the_server() -> None:
        connection = await asyncpg.connect(url, timeout=5)
        await connection.execute("INSERT INTO t VALUES (1)")
        await connection.execute("BEGIN; INSERT INTO t VALUES (2)")  # never committed
        backends = [row["pid"] for row in await connection.fetch("SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend'")]
        await asyncio.to_thread(private_postgres.kill)
        assert not private_postgres.alive() and not any(process_running(pid) for pid in backends)
        with pytest.raises((asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError)):
            await connection.fetch("SELECT 1")
        connection.terminate()

    asyncio.run(commit_then_lose_the_server())
    private_postgres.start()
    assert [row["n"] for row in query(url, "SELECT n FROM t")] == [1]
    assert "database system was interrupted" in private_postgres.log() or "not properly shut down" in private_postgres.log()


def test_remove_stops_the_server_and_deletes_its_files(tmp_path: Path) -> None:
    server = PostgresServer(tmp_path).start()
    data_dir, pid = server.data_dir, server.pid
    assert data_dir.parent.parent == Path("/tmp") and (data_dir / "PG_VERSION").exists()
    server.remove()
    assert not data_dir.parent.exists() and not process_running(pid)
    with pytest.raises(OSError):
        os.kill(pid, 0)


def test_a_server_that_cannot_start_says_why_with_its_log(postgres: PostgresServer, tmp_path: Path) -> None:
    taken = PostgresServer(tmp_path, port=postgres.port)
    try:
        with pytest.raises(RuntimeError, match=r"(?s)exited during start-up.*could not (bind|create listen socket)"):
            taken.start()
    finally:
        taken.remove()
