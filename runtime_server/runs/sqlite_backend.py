"""The durable store on SQLite (WAL, ``synchronous=NORMAL``): the embedded choice for one machine.

One connection, used from one thread of its own, so the event loop never waits for a
commit's fsync and statements never interleave; the group-commit writer (``group_commit.py``)
sends one batch at a time. A file that cannot be written (disk full, read-only) fails the
commit, which the writer keeps and tries again.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from runtime_server.runs.clock import now_ns
from runtime_server.runs.durable_store import StoreUnavailable
from runtime_server.runs.rows import RUN_COLUMNS as _RUN_COLUMNS
from runtime_server.runs.rows import Batch, JournalRow, RunRow, RunsLost
from runtime_server.runs.schema import VERSION_TABLE, SchemaError, pending
from runtime_server.runs.store import RunQuery

T = TypeVar("T")
EVICT_CHUNK = 10_000
_FILTERS = (("status", "status"), ("flow_name", "flow_name"), ("root_run_id", "root_run_id"), ("parent_run_id", "parent_run_id"))


class SqliteBackend:
    name = "sqlite"

    def __init__(self, path: str, auto_migrate: bool = True) -> None:
        self._path = path
        self._auto_migrate = auto_migrate
        self._db: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")

    async def _call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._db is None:
            raise StoreUnavailable("the SQLite store is not open")
        db = self._db
        return await asyncio.get_running_loop().run_in_executor(self._thread, work, db)

    async def open(self) -> None:
        try:
            self._db = await asyncio.get_running_loop().run_in_executor(self._thread, self._connect)
        except SchemaError as error:
            raise StoreUnavailable(f"cannot open the SQLite store {self._path}: {error}", lasting=True) from None
        except (sqlite3.Error, OSError) as error:
            raise StoreUnavailable(f"cannot open the SQLite store {self._path}: {error}") from None

    def _connect(self) -> sqlite3.Connection:
        if self._path != ":memory:":
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # WAL: a commit survives the process (kill, OOM), not a power cut (decisions.md)
        db.execute("PRAGMA busy_timeout=5000")
        db.execute(VERSION_TABLE)
        current = db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
        for number, statements in pending("sqlite", current, self._auto_migrate):
            db.execute("BEGIN IMMEDIATE")
            for statement in statements:
                db.execute(statement)
            db.execute("INSERT INTO schema_version VALUES (?, ?)", (number, now_ns()))
            db.execute("COMMIT")
        return db

    async def close(self) -> None:
        if self._db is not None:
            await self._call(lambda db: db.close())
            self._db = None
        self._thread.shutdown(wait=False)

    async def commit(self, batch: Batch) -> None:
        await self._call(lambda db: _commit(db, batch))

    async def run(self, run_id: str) -> tuple[RunRow, list[JournalRow]] | None:
        return await self._call(lambda db: _run(db, run_id))

    async def runs(self, query: RunQuery) -> list[RunRow]:
        clauses = [(f"{column} = ?", getattr(query, attribute)) for attribute, column in _FILTERS if getattr(query, attribute) is not None]
        where = (" WHERE " + " AND ".join(clause for clause, _ in clauses)) if clauses else ""
        sql = f"SELECT {_RUN_COLUMNS} FROM runs{where} ORDER BY created_ns DESC LIMIT ? OFFSET ?"
        values = (*(value for _, value in clauses), query.limit, query.offset)
        return await self._call(lambda db: [RunRow(*row) for row in db.execute(sql, values).fetchall()])

    async def run_id_submitted_as(self, submit_key: str) -> str | None:
        row = await self._call(lambda db: db.execute("SELECT run_id FROM runs WHERE submit_key = ?", (submit_key,)).fetchone())
        return None if row is None else row[0]

    async def delete_run(self, run_id: str) -> bool:
        return await self._call(lambda db: _delete_runs(db, [run_id]) > 0)

    async def blob(self, blob_id: str) -> tuple[bytes, str] | None:
        row = await self._call(lambda db: db.execute("SELECT body, blob_type FROM blobs WHERE blob_id = ?", (blob_id,)).fetchone())
        return None if row is None else (bytes(row[0]), row[1])

    async def delete_blob(self, blob_id: str) -> bool:
        return await self._call(lambda db: _delete_blob(db, blob_id))

    async def evict(self, max_runs: int, finished_before_ns: int) -> int:
        return await self._call(lambda db: _evict(db, max_runs, finished_before_ns))

    # -- leases: the same rules as PostgreSQL's, on this machine's clock (one machine shares the file)

    async def acquire_lease(self, owner: str, ttl_ms: int) -> int:
        def work(db: sqlite3.Connection) -> int:
            return _transaction(
                db,
                lambda: db.execute(
                    """INSERT INTO leases VALUES (?, (SELECT COALESCE(MAX(epoch), 0) + 1 FROM leases), ?) ON CONFLICT (orchestrator_id)
                   DO UPDATE SET epoch = (SELECT MAX(epoch) + 1 FROM leases), expires_at_ms = excluded.expires_at_ms RETURNING epoch""",
                    (owner, _now_ms() + ttl_ms),
                ).fetchone()[0],
            )

        return await self._call(work)

    async def renew_lease(self, owner: str, epoch: int, ttl_ms: int) -> bool:
        sql = "UPDATE leases SET expires_at_ms = ? WHERE orchestrator_id = ? AND epoch = ? AND expires_at_ms > ?"
        return await self._call(lambda db: db.execute(sql, (_now_ms() + ttl_ms, owner, epoch, _now_ms())).rowcount > 0)

    async def release_lease(self, owner: str, epoch: int) -> None:
        await self._call(lambda db: db.execute("UPDATE leases SET expires_at_ms = 0 WHERE orchestrator_id = ? AND epoch = ?", (owner, epoch)))

    async def expired_owners(self, owner: str) -> list[str]:
        sql = "SELECT orchestrator_id FROM leases WHERE expires_at_ms <= ? AND orchestrator_id != ?"
        return await self._call(lambda db: [row[0] for row in db.execute(sql, (_now_ms(), owner)).fetchall()])

    async def claim_runs(self, previous: str, owner: str, epoch: int, limit: int) -> list[tuple[str, bool]]:
        return await self._call(lambda db: _transaction(db, lambda: _claim(db, previous, owner, epoch, limit)))

    async def request_cancel(self, run_id: str) -> bool:
        sql = "UPDATE runs SET cancel_requested = 1 WHERE run_id = ? AND status = 'running'"
        return await self._call(lambda db: db.execute(sql, (run_id,)).rowcount > 0)

    async def cancels_requested(self, run_ids: list[str]) -> list[str]:
        marks = ", ".join("?" * len(run_ids))
        sql = f"SELECT run_id FROM runs WHERE run_id IN ({marks}) AND cancel_requested AND status = 'running'"
        return await self._call(lambda db: [row[0] for row in db.execute(sql, run_ids).fetchall()]) if run_ids else []

    async def listen(self, on_ended: Callable[[str], None], on_cancel: Callable[[str], None]) -> None:
        """Nothing to hear: SQLite serves one runtime, which sees its own runs end."""
        return None

    async def sizes(self) -> tuple[int, int, int]:
        row = await self._call(lambda db: db.execute("SELECT runs, blobs, blob_bytes FROM store_sizes").fetchone())
        return row[0], row[1], row[2]

    def refuses(self, error: BaseException) -> bool:
        return isinstance(error, (sqlite3.DataError, sqlite3.IntegrityError, OverflowError))

    def describe(self, error: BaseException) -> str:
        return f"SQLite store {self._path}: {type(error).__name__}: {error}"


def _transaction(db: sqlite3.Connection, work: Callable[[], T]) -> T:
    db.execute("BEGIN IMMEDIATE")
    try:
        result = work()
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return result


def _commit(db: sqlite3.Connection, batch: Batch) -> None:
    def work() -> None:
        if batch.fence is not None:
            _check_fence(db, batch)
        if batch.blobs:
            _insert_blobs(db, batch.blobs)
        if batch.runs:
            inserted = db.executemany(f"INSERT OR IGNORE INTO runs ({_RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", batch.runs).rowcount
            db.execute("UPDATE store_sizes SET runs = runs + ?", (inserted,))
        if batch.entries:
            db.executemany("INSERT OR REPLACE INTO journal VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", batch.entries)
        if batch.ends:
            db.executemany("UPDATE runs SET status = ?, completed_ns = ?, counts = ? WHERE run_id = ?", batch.ends)

    _transaction(db, work)


def _check_fence(db: sqlite3.Connection, batch: Batch) -> None:
    """As PostgreSQL's: the batch only for runs this owner still holds at its epoch (BEGIN
    IMMEDIATE holds the database's write lock, so no claim comes in between)."""
    assert batch.fence is not None
    run_ids = batch.existing_run_ids()
    if not run_ids:
        return
    owner, epoch = batch.fence
    marks = ", ".join("?" * len(run_ids))
    held = {row[0] for row in db.execute(f"SELECT run_id FROM runs WHERE run_id IN ({marks}) AND owner = ? AND owner_epoch = ?", (*run_ids, owner, epoch))}
    if held != run_ids:
        raise RunsLost(run_ids - held)


def _insert_blobs(db: sqlite3.Connection, blobs: list[tuple[str, str, bytes]]) -> None:
    for blob_id, blob_type, body in blobs:
        known = db.execute("SELECT blob_type FROM blobs WHERE blob_id = ?", (blob_id,)).fetchone()
        if known is None:
            db.execute("INSERT INTO blobs VALUES (?, ?, ?)", (blob_id, blob_type, body))
            db.execute("UPDATE store_sizes SET blobs = blobs + 1, blob_bytes = blob_bytes + ?", (len(body),))
        elif known[0] != "flow" and blob_type == "flow":
            db.execute("UPDATE blobs SET blob_type = 'flow' WHERE blob_id = ?", (blob_id,))


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _claim(db: sqlite3.Connection, previous: str, owner: str, epoch: int, limit: int) -> list[tuple[str, bool]]:
    if previous != owner and db.execute("SELECT 1 FROM leases WHERE orchestrator_id = ? AND expires_at_ms <= ?", (previous, _now_ms())).fetchone() is None:
        return []
    rows = db.execute(
        "SELECT run_id, cancel_requested FROM runs WHERE owner = ? AND status = 'running' AND NOT (owner = ? AND owner_epoch = ?) ORDER BY created_ns LIMIT ?",
        (previous, owner, epoch, limit),
    ).fetchall()
    db.executemany("UPDATE runs SET owner = ?, owner_epoch = ? WHERE run_id = ?", [(owner, epoch, row[0]) for row in rows])
    return [(row[0], bool(row[1])) for row in rows]


def _run(db: sqlite3.Connection, run_id: str) -> tuple[RunRow, list[JournalRow]] | None:
    row = db.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    if row is None:
        return None
    entries = db.execute("SELECT * FROM journal WHERE run_id = ? ORDER BY seq", (run_id,)).fetchall()
    return RunRow(*row), [JournalRow(*entry) for entry in entries]


def _delete_runs(db: sqlite3.Connection, run_ids: list[str]) -> int:
    def work() -> int:
        marks = ", ".join("?" * len(run_ids))
        deleted = db.execute(f"DELETE FROM runs WHERE run_id IN ({marks})", run_ids).rowcount
        db.execute(f"DELETE FROM journal WHERE run_id IN ({marks})", run_ids)
        db.execute("UPDATE store_sizes SET runs = runs - ?", (deleted,))
        return deleted

    return _transaction(db, work) if run_ids else 0


def _delete_blob(db: sqlite3.Connection, blob_id: str) -> bool:
    def work() -> bool:
        row = db.execute("DELETE FROM blobs WHERE blob_id = ? RETURNING LENGTH(body)", (blob_id,)).fetchone()
        if row is not None:
            db.execute("UPDATE store_sizes SET blobs = blobs - 1, blob_bytes = blob_bytes - ?", (row[0],))
        return row is not None

    return _transaction(db, work)


def _evict(db: sqlite3.Connection, max_runs: int, finished_before_ns: int) -> int:
    """Old finished runs first, then the oldest finished beyond the count; a chunk at a time."""
    aged = db.execute(
        "SELECT run_id FROM runs WHERE status != 'running' AND completed_ns < ? ORDER BY completed_ns LIMIT ?", (finished_before_ns, EVICT_CHUNK)
    ).fetchall()
    evicted = _delete_runs(db, [row[0] for row in aged])
    excess = min(db.execute("SELECT runs FROM store_sizes").fetchone()[0] - max_runs, EVICT_CHUNK)
    if excess > 0:
        oldest = db.execute("SELECT run_id FROM runs WHERE status != 'running' ORDER BY completed_ns LIMIT ?", (excess,)).fetchall()
        evicted += _delete_runs(db, [row[0] for row in oldest])
    return evicted
