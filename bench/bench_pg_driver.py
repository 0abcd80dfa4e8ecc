"""asyncpg against psycopg 3 (async, with its pool) for the PostgreSQL run store, side by side in one run.

    python bench/bench_pg_driver.py [--seconds 2] [--rounds 3] [--batch 16] [--concurrency 8,32]

Three sides: asyncpg as it comes (its pool resets every connection on release, a round trip),
asyncpg without that reset (what the store uses) and psycopg 3. Starts a throwaway PostgreSQL server (tests/support/postgres.py: Debian's binaries, loopback,
fsync on) and drives it from this process, on uvloop as the runtime runs, with each driver
through a pool of as many connections as there are concurrent clients. Two workloads, the
two the store does most: ``journal batch``, one transaction inserting ``--batch`` journal-like
rows (what a group commit writes; ``executemany``, which both drivers pipeline), and ``read one``,
a run's row by primary key. Rounds alternate between the drivers (first one, then the other
first); each cell is the median round. CPU µs per operation next to the throughput: this
process's (the driver, as the runtime would spend it) and the server's (postmaster and backends).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_runtime_vs_upstream import cpu_seconds
from tests.support.postgres import PostgresServer, unavailable_reason

SCHEMA = """
CREATE TABLE journal (run_id text NOT NULL, seq integer NOT NULL, kind text NOT NULL, step_id text, attempt integer NOT NULL,
                      at double precision NOT NULL, payload bytea NOT NULL, PRIMARY KEY (run_id, seq));
CREATE TABLE runs (run_id text PRIMARY KEY, status text NOT NULL, created_at double precision NOT NULL, payload bytea NOT NULL);
INSERT INTO runs SELECT 'run-' || n, 'completed', extract(epoch FROM now()), convert_to(repeat('{"k":1}', 40), 'UTF8') FROM generate_series(0, 9999) AS n;
"""
READ_ROWS = 10_000
PAYLOAD = b'{"result":{"outcome":"success","result":{"original":3,"doubled":6,"squared":36,"sum":39}},"instance":"pod-7f9c"}' * 2
INSERT_DOLLAR = "INSERT INTO journal (run_id, seq, kind, step_id, attempt, at, payload) VALUES ($1, $2, $3, $4, $5, $6, $7)"
READ_DOLLAR = "SELECT run_id, status, created_at, payload FROM runs WHERE run_id = $1"
INSERT_PERCENT, READ_PERCENT = (re.sub(r"\$\d+", "%s", sql) for sql in (INSERT_DOLLAR, READ_DOLLAR))
"""psycopg's placeholders."""


class Driver(Protocol):
    name: str

    async def open(self, url: str, size: int) -> None: ...
    async def insert_batch(self, rows: list[tuple[Any, ...]]) -> None: ...
    async def read_one(self, run_id: str) -> Any: ...
    async def close(self) -> None: ...


class Asyncpg:
    """``reset_on_release``: asyncpg's default, a round trip per release (``RESET ALL``, ``UNLISTEN *``,
    advisory locks released); the store has no session state to reset, so it turns that off."""

    def __init__(self, reset_on_release: bool) -> None:
        self.name = "asyncpg" if reset_on_release else "asyncpg, no reset"
        self.reset_on_release = reset_on_release

    async def open(self, url: str, size: int) -> None:
        options: dict[str, Any] = {} if self.reset_on_release else {"reset": _no_reset}
        self.pool = await asyncpg.create_pool(url, min_size=size, max_size=size, **options)

    async def insert_batch(self, rows: list[tuple[Any, ...]]) -> None:
        async with self.pool.acquire() as connection, connection.transaction():
            await connection.executemany(INSERT_DOLLAR, rows)

    async def read_one(self, run_id: str) -> Any:
        return await self.pool.fetchrow(READ_DOLLAR, run_id)

    async def close(self) -> None:
        await self.pool.close()


async def _no_reset(connection: asyncpg.Connection) -> None:
    """Nothing to undo: the store sets no session state and takes only transaction-scoped locks."""


class Psycopg:
    name = "psycopg 3"

    async def open(self, url: str, size: int) -> None:
        from psycopg_pool import AsyncConnectionPool

        self.pool = AsyncConnectionPool(url, min_size=size, max_size=size, kwargs={"autocommit": True}, open=False)
        await self.pool.open(wait=True, timeout=30)

    async def insert_batch(self, rows: list[tuple[Any, ...]]) -> None:
        async with self.pool.connection() as connection, connection.transaction(), connection.cursor() as cursor:
            await cursor.executemany(INSERT_PERCENT, rows)

    async def read_one(self, run_id: str) -> Any:
        async with self.pool.connection() as connection:
            return await (await connection.execute(READ_PERCENT, (run_id,))).fetchone()

    async def close(self) -> None:
        await self.pool.close()


@dataclass
class Round:
    ops_per_second: float
    client_cpu_us: float
    server_cpu_us: float


def journal_rows(client: int, number: int, batch: int) -> list[tuple[Any, ...]]:
    run_id = f"run-{os.getpid()}-{client}-{number}-{time.perf_counter_ns()}"
    now = time.time()
    return [(run_id, seq, "step_completed", f"step{seq}", 1, now, PAYLOAD) for seq in range(batch)]


async def drive(driver: Driver, url: str, workload: str, concurrency: int, seconds: float, batch: int, server: PostgresServer) -> Round:
    await driver.open(url, concurrency)
    try:

        def operation(client: int, number: int) -> Awaitable[Any]:
            if workload == "journal batch":
                return driver.insert_batch(journal_rows(client, number, batch))
            return driver.read_one(f"run-{(client * 7919 + number * 104729) % READ_ROWS}")

        await closed_loops(operation, concurrency, 0.2)  # warm: prepared statements, caches
        server_before, client_before, began = server_cpu(server), time.process_time(), time.perf_counter()
        done = await closed_loops(operation, concurrency, seconds)
        elapsed = time.perf_counter() - began
        client_cpu, server_cpu_spent = time.process_time() - client_before, server_cpu(server) - server_before
    finally:
        await driver.close()
    return Round(done / elapsed, client_cpu / done * 1e6, server_cpu_spent / done * 1e6)


async def closed_loops(operation: Callable[[int, int], Awaitable[Any]], concurrency: int, seconds: float) -> int:
    """``concurrency`` clients each doing one operation after another for ``seconds``; how many were done."""
    stop = time.perf_counter() + seconds
    counts = [0] * concurrency

    async def client(index: int) -> None:
        while time.perf_counter() < stop:
            await operation(index, counts[index])
            counts[index] += 1

    await asyncio.gather(*(client(index) for index in range(concurrency)))
    return max(1, sum(counts))


def server_cpu(server: PostgresServer) -> float:
    total = 0.0
    for pid in server.processes():
        try:
            total += cpu_seconds(pid)
        except (OSError, IndexError):
            continue  # a backend that ended between listing and reading
    return total


def median_round(rounds: list[Round]) -> Round:
    return sorted(rounds, key=lambda r: r.ops_per_second)[len(rounds) // 2]


def compare(drivers: list[Driver], urls: dict[str, str], workload: str, concurrency: int, args: argparse.Namespace, server: PostgresServer) -> str:
    results: dict[str, list[Round]] = {driver.name: [] for driver in drivers}
    for index in range(args.rounds):
        for driver in drivers if index % 2 == 0 else drivers[::-1]:
            results[driver.name].append(uvloop.run(drive(driver, urls[driver.name], workload, concurrency, args.seconds, args.batch, server)))
    cells = [median_round(results[driver.name]) for driver in drivers]
    row = " | ".join(f"{r.ops_per_second:.0f} | {r.client_cpu_us:.0f} | {r.server_cpu_us:.0f}" for r in cells)
    best, psycopg = cells[-2], cells[-1]
    return (
        f"| {workload} | {concurrency} | {row} | **{best.ops_per_second / psycopg.ops_per_second:.2f}x** | {best.client_cpu_us / psycopg.client_cpu_us:.2f}x |"
    )


def run(args: argparse.Namespace, work_dir: Path) -> None:
    server = PostgresServer(work_dir).start()
    try:
        drivers: list[Driver] = [Asyncpg(reset_on_release=True), Asyncpg(reset_on_release=False), Psycopg()]
        urls = {driver.name: server.create_database(f"bench_{index}") for index, driver in enumerate(drivers)}
        for url in urls.values():
            uvloop.run(setup_schema(url))
        print(
            f"PostgreSQL {server.binaries.parent.name if server.binaries else '?'} on loopback, fsync on; {args.rounds} alternating rounds of "
            f"{args.seconds:g} s per cell, median round; journal batch = one transaction of {args.batch} rows\n"
        )
        print("CPU µs/op: client = this process (the driver); server = postmaster and backends\n")
        print(
            "| workload | conc | "
            + " | ".join(f"{driver.name} ops/s | client CPU µs/op | server CPU µs/op" for driver in drivers)
            + " | asyncpg (no reset) / psycopg ops/s | client CPU ratio |"
        )
        print("|---|---|" + "---|---|---|" * len(drivers) + "---|---|")
        for workload in ("journal batch", "read one"):
            for concurrency in args.concurrency:
                print(compare(drivers, urls, workload, concurrency, args, server), flush=True)
    finally:
        server.remove()


async def setup_schema(url: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(SCHEMA)
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0, help="measured seconds per round (at most 30)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per driver and cell (at most 9)")
    parser.add_argument("--batch", type=int, default=16, help="journal rows per transaction")
    parser.add_argument("--concurrency", type=lambda text: [int(part) for part in text.split(",")], default=[8, 32])
    args = parser.parse_args()
    args.seconds, args.rounds = min(args.seconds, 30.0), min(max(args.rounds, 1), 9)
    if (reason := unavailable_reason()) is not None:
        raise SystemExit(f"bench_pg_driver: {reason}")
    with tempfile.TemporaryDirectory(prefix="bench-pg-") as work_dir:
        run(args, Path(work_dir))


if __name__ == "__main__":
    main()
