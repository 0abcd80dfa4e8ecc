"""The durable store's tables, as numbered migrations per dialect (a version table records them).

Migration N is applied once, in order, at start when ``autoMigrate`` is on (PostgreSQL does it
under an advisory lock, so two runtimes starting at once cannot both apply it). A database
whose version is newer than this code knows is refused: an older runtime must not write it.

Indexes serve exactly the reads the runtime makes: listing newest first (with a filter),
a runtime's unfinished runs, a component's submitted run by key, retention oldest first.
"""

from __future__ import annotations

_COMMON = [
    """CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        created_ns BIGINT NOT NULL,
        status TEXT NOT NULL,
        flow_id TEXT NOT NULL,
        flow_name TEXT,
        root_run_id TEXT NOT NULL,
        parent_run_id TEXT,
        owner TEXT NOT NULL,
        submit_key TEXT UNIQUE,
        spec {BLOB} NOT NULL,
        completed_ns BIGINT,
        counts {BLOB}
    )""",
    "CREATE INDEX runs_created ON runs (created_ns DESC)",
    "CREATE INDEX runs_status_created ON runs (status, created_ns DESC)",
    "CREATE INDEX runs_flow_created ON runs (flow_name, created_ns DESC)",
    "CREATE INDEX runs_root ON runs (root_run_id)",
    "CREATE INDEX runs_parent ON runs (parent_run_id)",
    "CREATE INDEX runs_unfinished ON runs (owner, created_ns) WHERE status = 'running'",
    "CREATE INDEX runs_finished ON runs (completed_ns) WHERE status != 'running'",
    """CREATE TABLE journal (
        run_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        at_ns BIGINT NOT NULL,
        kind TEXT NOT NULL,
        item_index INTEGER,
        step_id TEXT,
        attempt INTEGER,
        status TEXT,
        instance_id TEXT,
        detail {BLOB},
        PRIMARY KEY (run_id, seq)
    )""",
    "CREATE TABLE blobs (blob_id TEXT PRIMARY KEY, blob_type TEXT NOT NULL, body {BLOB} NOT NULL)",
    "CREATE TABLE store_sizes (id INTEGER PRIMARY KEY CHECK (id = 1), runs BIGINT NOT NULL, blobs BIGINT NOT NULL, blob_bytes BIGINT NOT NULL)",
    "INSERT INTO store_sizes VALUES (1, 0, 0, 0)",
]

_REPLICAS = [
    "ALTER TABLE runs ADD COLUMN owner_epoch BIGINT NOT NULL DEFAULT 0",
    "ALTER TABLE runs ADD COLUMN cancel_requested BOOLEAN NOT NULL DEFAULT FALSE",
    "CREATE TABLE leases (orchestrator_id TEXT PRIMARY KEY, epoch BIGINT NOT NULL, expires_at_ms BIGINT NOT NULL)",
]
"""Migration 2: replicas. Each runtime holds a lease (renewed, with an expiry); each run names
its owner and the owner's lease epoch when it took the run, which fences every write."""


_SIZE_SHARES = ["CREATE TABLE store_size_shares (owner TEXT PRIMARY KEY, runs BIGINT NOT NULL, blobs BIGINT NOT NULL, blob_bytes BIGINT NOT NULL)"]
"""Migration 3 (PostgreSQL): each replica counts what its commits add in a row of its own, so
replicas committing at once do not queue on one row's lock; the store's size is the sum of the
shares and of ``store_sizes`` (kept, so a replica still on the old code counts as before)."""


def _dialect(blob: str, extra_for_replicas: list[str], size_shares: list[str]) -> list[list[str]]:
    migrations = (_COMMON, _REPLICAS + extra_for_replicas, size_shares)
    return [[statement.replace("{BLOB}", blob) for statement in migration] for migration in migrations]


MIGRATIONS: dict[str, list[list[str]]] = {
    "sqlite": _dialect("BLOB", [], []),  # one writer: its one row has no one to wait for
    "postgres": _dialect("BYTEA", ["CREATE SEQUENCE lease_epochs"], _SIZE_SHARES),
}
"""Epochs are never reused, even for a replica whose lease row was deleted: PostgreSQL draws them
from one sequence; SQLite (one machine) from the highest epoch it has seen."""
"""Per dialect, migration 1, 2, ...: each a list of statements applied in one transaction."""

VERSION_TABLE = "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_ns BIGINT NOT NULL)"


class SchemaError(Exception):
    pass


def pending(dialect: str, current: int, auto_migrate: bool) -> list[tuple[int, list[str]]]:
    """The migrations to apply to a database at version ``current`` (raises SchemaError)."""
    migrations = MIGRATIONS[dialect]
    if current > len(migrations):
        raise SchemaError(f"the database's schema is version {current}, newer than this runtime knows ({len(migrations)}): upgrade the runtime")
    todo = [(number, migrations[number - 1]) for number in range(current + 1, len(migrations) + 1)]
    if todo and not auto_migrate:
        raise SchemaError(f"the database's schema is version {current}, this runtime needs {len(migrations)}: start once with autoMigrate: true, or migrate it")
    return todo
