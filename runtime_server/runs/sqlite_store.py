"""Runs in SQLite, for runs that must survive a restart. Same interface as the memory store.

Writes happen when a run starts and when it finishes; WAL keeps those cheap. A run that
was still running when the process died is reported ``failed`` on the next start.
"""

from __future__ import annotations

import sqlite3

import msgspec

from runtime_server.runs.clock import now_ns
from runtime_server.runs.record import RunRecord
from runtime_server.runs.store import RunQuery

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    created_ns INTEGER NOT NULL,
    status TEXT NOT NULL,
    flow_name TEXT,
    root_run_id TEXT NOT NULL,
    parent_run_id TEXT,
    state BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_created ON runs (created_ns DESC);
"""
_FILTERS = (("status", "status"), ("flow_name", "flow_name"), ("root_run_id", "root_run_id"), ("parent_run_id", "parent_run_id"))


def sqlite_path(database_url: str) -> str:
    """``sqlite:/data/x.db?mode=rwc`` (upstream's form) or a bare path → a file path."""
    path = database_url.removeprefix("sqlite://").removeprefix("sqlite:")
    return path.split("?", 1)[0] or ":memory:"


class SqliteRunStore:
    def __init__(self, path: str, max_runs: int = 1_000_000) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._max_runs = max_runs
        self.evictions = 0
        self._fail_interrupted_runs()

    def _fail_interrupted_runs(self) -> None:
        rows = self._db.execute("SELECT state FROM runs WHERE status = 'running'").fetchall()
        for (state,) in rows:
            record = RunRecord.from_state(msgspec.json.decode(state))
            record.status = "failed"
            record.completed_ns = now_ns()
            record.record_event("run_completed", status="failed", error={"code": 500, "message": "the runtime restarted while this run was running"})
            self.put(record)

    def put(self, record: RunRecord) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?)",
            (record.run_id, record.created_ns, record.status, record.flow_name, record.root_run_id, record.parent_run_id, msgspec.json.encode(record.to_state())),
        )
        if record.finished and self._max_runs < len(self):
            evicted = self._db.execute(
                "DELETE FROM runs WHERE run_id IN (SELECT run_id FROM runs WHERE status != 'running' ORDER BY created_ns LIMIT ?)",
                (len(self) - self._max_runs,),
            ).rowcount
            self.evictions += evicted

    def get(self, run_id: str) -> RunRecord | None:
        row = self._db.execute("SELECT state FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else RunRecord.from_state(msgspec.json.decode(row[0]))

    def list(self, query: RunQuery) -> list[RunRecord]:
        clauses = [(f"{column} = ?", getattr(query, attribute)) for attribute, column in _FILTERS if getattr(query, attribute) is not None]
        where = (" WHERE " + " AND ".join(clause for clause, _ in clauses)) if clauses else ""
        rows = self._db.execute(
            f"SELECT state FROM runs{where} ORDER BY created_ns DESC LIMIT ? OFFSET ?",
            (*(value for _, value in clauses), query.limit, query.offset),
        ).fetchall()
        return [RunRecord.from_state(msgspec.json.decode(state)) for (state,) in rows]

    def delete(self, run_id: str) -> bool:
        return self._db.execute("DELETE FROM runs WHERE run_id = ?", (run_id,)).rowcount > 0

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]

    def close(self) -> None:
        self._db.close()
