"""The run and blob stores a runtime's settings name: memory, or one database for both."""

from __future__ import annotations

from runtime_server.blobs import BlobStore, MemoryBlobStore
from runtime_server.config import StoreSettings
from runtime_server.runs.database_url import sqlite_path
from runtime_server.runs.durable_store import Backend, DurableBlobStore, DurableRunStore
from runtime_server.runs.store import MemoryRunStore, RunStore


def open_stores(settings: StoreSettings, owner: str, lease_ttl_seconds: float = 6.0) -> tuple[BlobStore, RunStore]:
    """Made, not connected: ``RunStore.open`` connects (and may have to wait for the database)."""
    if not settings.durable or settings.database_url is None:
        return MemoryBlobStore(), MemoryRunStore(settings.max_runs, settings.max_age_seconds)
    backend: Backend
    if settings.type == "sqlite":
        from runtime_server.runs.sqlite_backend import SqliteBackend

        backend = SqliteBackend(sqlite_path(settings.database_url), settings.auto_migrate)
    else:
        from runtime_server.runs.postgres_backend import PostgresBackend

        backend = PostgresBackend(settings.database_url, settings.auto_migrate)
    runs = DurableRunStore(backend, owner, settings.max_runs, settings.max_age_seconds, lease_ttl_seconds)
    return DurableBlobStore(runs), runs
