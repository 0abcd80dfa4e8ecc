"""Runs and blobs in a database (SQLite or PostgreSQL), written ahead through the journal.

The runtime keeps live runs in memory as always; this store makes them durable. A new run's
row and every journal entry go through the group-commit writer; ``written(record)`` returns
once they are committed, which is how the runtime orders its writes (a run is durable
before ``POST /runs`` answers, a dispatch before its request leaves, a result before the
run is reported finished). Reads and recovery rebuild runs from their rows (``rows.py``).
The database itself is behind ``Backend``: ``sqlite_backend.py``, ``postgres_backend.py``.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import msgspec

from runtime_server.blobs import encode_blob
from runtime_server.runs.clock import now_ns
from runtime_server.runs.group_commit import GroupCommitWriter
from runtime_server.runs.record import PENDING, RunRecord
from runtime_server.runs.rows import Batch, CorruptRun, JournalRow, RunEnd, RunRow, listed, replay
from runtime_server.runs.store import RunQuery
from telemetry.logs import log_event

logger = logging.getLogger(__name__)
T = TypeVar("T")
RETENTION_INTERVAL_SECONDS = 1.0


class StoreUnavailable(Exception):
    """The database cannot be used now: the message says why without the password.

    ``lasting`` when waiting will not help (wrong password, unknown database, a schema newer
    than this runtime): the runtime then refuses to start instead of waiting."""

    def __init__(self, message: str, lasting: bool = False) -> None:
        super().__init__(message)
        self.lasting = lasting


class Backend(Protocol):
    name: str

    async def open(self) -> None:
        """Connect and bring the schema up to date (raises StoreUnavailable)."""

    async def close(self) -> None: ...

    async def commit(self, batch: Batch) -> None:
        """Everything in the batch, in one transaction."""

    async def run(self, run_id: str) -> tuple[RunRow, list[JournalRow]] | None: ...

    async def runs(self, query: RunQuery) -> list[RunRow]: ...

    async def run_id_submitted_as(self, submit_key: str) -> str | None: ...

    async def acquire_lease(self, owner: str, ttl_ms: int) -> int:
        """Hold ``owner``'s lease from now, at a new epoch (which fences out any earlier holder)."""

    async def renew_lease(self, owner: str, epoch: int, ttl_ms: int) -> bool:
        """Extend the lease; False when it expired or another holder took a newer epoch."""

    async def release_lease(self, owner: str, epoch: int) -> None: ...

    async def expired_owners(self, owner: str) -> list[str]: ...

    async def claim_runs(self, previous: str, owner: str, epoch: int, limit: int) -> list[tuple[str, bool]]:
        """Take unfinished runs of ``previous`` (expired, or ``owner`` itself at an older epoch):
        (run id, whether a cancel was asked), oldest first."""

    async def request_cancel(self, run_id: str) -> bool: ...

    async def cancels_requested(self, run_ids: list[str]) -> list[str]:
        """Which of these running runs a cancel was asked of (through another replica)."""

    async def listen(self, on_ended: Callable[[str], None], on_cancel: Callable[[str], None]) -> Any:
        """Hear runs end and cancels asked (PostgreSQL's LISTEN); returns what to close, or None."""

    async def delete_run(self, run_id: str) -> bool: ...

    async def blob(self, blob_id: str) -> tuple[bytes, str] | None: ...

    async def delete_blob(self, blob_id: str) -> bool: ...

    async def evict(self, max_runs: int, finished_before_ns: int) -> int:
        """Delete finished runs beyond the count or older than the age, oldest first; how many."""

    async def sizes(self) -> tuple[int, int, int]:
        """(runs, blobs, blob bytes), from the store's own counters (no scan)."""

    def describe(self, error: BaseException) -> str:
        """The error as an operator should read it, never with the password."""

    def refuses(self, error: BaseException) -> bool:
        """Whether a commit's error is the database refusing the rows themselves (waiting cannot help)."""


class DurableRunStore:
    durable = True

    def __init__(self, backend: Backend, owner: str, max_runs: int, max_age_seconds: float, lease_ttl_seconds: float = 6.0) -> None:
        self.backend = backend
        self.owner = owner
        self.epoch = 0
        """This runtime's lease epoch: every write is fenced by it (``Batch.fence``)."""
        self.lease_ttl_ms = int(lease_ttl_seconds * 1000)
        self._max_runs = max_runs
        self._max_age_ns = int(max_age_seconds * 1e9)
        self.writer = GroupCommitWriter(backend.commit, owner, backend.describe, refuses=backend.refuses)
        self.evictions = 0
        self.sizes = (0, 0, 0)
        self.connect_problem: str | None = "not connected yet"
        self._retention: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Connect (raises StoreUnavailable); then the writer and the retention task run."""
        await self.backend.open()
        await self.acquire_lease()
        self.connect_problem = None
        self.sizes = await self.backend.sizes()
        self.writer.start()
        self._retention = asyncio.create_task(self._retain(), name="run-retention")

    @property
    def problem(self) -> str | None:
        """Why the store cannot take writes now, or None."""
        return self.connect_problem or self.writer.problem

    def created(self, record: RunRecord) -> None:
        self.writer.track(record)

    def ended(self, record: RunRecord) -> None:
        """Nothing to do: the run's last entry marked it dirty, and the writer writes its end."""

    async def written(self, record: RunRecord) -> None:
        await self.writer.written(record)

    def adopt(self, record: RunRecord) -> None:
        self.writer.adopt(record)

    def forget(self, run_id: str) -> None:
        self.writer.forget(run_id)

    async def read(self, read: Awaitable[T]) -> T:
        """A read from the database; failing, the API answers 503 with the reason (no password)."""
        try:
            return await read
        except StoreUnavailable:
            raise
        except Exception as error:  # noqa: BLE001 - the driver's own errors: connection lost, server shutting down, ...
            raise StoreUnavailable(self.backend.describe(error)) from None

    async def get(self, run_id: str) -> RunRecord | None:
        found = await self.read(self.backend.run(run_id))
        if found is None:
            return None
        row, entries = found
        try:
            return replay(row, entries)
        except CorruptRun as error:
            return _unreadable(row, str(error))

    async def list(self, query: RunQuery) -> list[RunRecord]:
        return [listed(row) for row in await self.read(self.backend.runs(query))]

    async def delete(self, run_id: str) -> bool:
        return await self.read(self.backend.delete_run(run_id))

    async def submitted_as(self, submit_key: str) -> RunRecord | None:
        run_id = await self.read(self.backend.run_id_submitted_as(submit_key))
        return None if run_id is None else await self.get(run_id)

    async def acquire_lease(self) -> None:
        """A new epoch for this runtime: what it wrote under the old one is fenced off (raises StoreUnavailable)."""
        self.epoch = await self.read(self.backend.acquire_lease(self.owner, self.lease_ttl_ms))
        self.writer.fence = (self.owner, self.epoch)

    async def renew_lease(self) -> bool:
        return await self.read(self.backend.renew_lease(self.owner, self.epoch, self.lease_ttl_ms))

    async def release_lease(self) -> None:
        await self.read(self.backend.release_lease(self.owner, self.epoch))

    async def expired_owners(self) -> builtins.list[str]:
        return await self.read(self.backend.expired_owners(self.owner))

    async def request_cancel(self, run_id: str) -> bool:
        return await self.read(self.backend.request_cancel(run_id))

    async def claim(self, previous: str, limit: int) -> builtins.list[tuple[RunRecord | CorruptRun, bool]]:  # builtins.: here list is the method
        """Take up to ``limit`` unfinished runs of ``previous`` (a peer whose lease expired, or this
        runtime's own runs of an earlier epoch) as they were journaled, each with whether a cancel
        was asked. A run that cannot be read back is ended ``failed`` here, naming the problem."""
        claimed: builtins.list[tuple[RunRecord | CorruptRun, bool]] = []
        for run_id, cancel_requested in await self.read(self.backend.claim_runs(previous, self.owner, self.epoch, limit)):
            found = await self.read(self.backend.run(run_id))
            if found is None:
                continue
            row, entries = found
            try:
                claimed.append((replay(row, entries), cancel_requested))
            except CorruptRun as error:
                await self._end_unreadable(row, entries, str(error))
                claimed.append((error, cancel_requested))
        return claimed

    async def _end_unreadable(self, row: RunRow, entries: builtins.list[JournalRow], message: str) -> None:
        record = _unreadable(row, message)
        seq = max((entry.seq for entry in entries), default=-1) + 1
        error = msgspec.json.encode({"error": {"code": 500, "message": message}})
        entry = JournalRow(row.run_id, seq, now_ns(), "run_completed", None, None, None, "failed", None, error)
        counts = msgspec.json.encode(record.item_counts())
        await self.backend.commit(Batch(entries=[entry], ends=[RunEnd("failed", entry.at_ns, counts, row.run_id)]))
        log_event(logger, "run_unreadable", logging.ERROR, run_id=row.run_id, error=message)

    def __len__(self) -> int:
        return self.sizes[0]

    async def close(self) -> None:
        if self._retention is not None:
            self._retention.cancel()
        await self.writer.close()
        await self.backend.close()

    async def _retain(self) -> None:
        while True:
            await asyncio.sleep(RETENTION_INTERVAL_SECONDS)
            try:
                self.evictions += await self.backend.evict(self._max_runs, time.time_ns() - self._max_age_ns)
                self.sizes = await self.backend.sizes()
            except Exception as error:  # noqa: BLE001 - retention waits for the database like everything else
                log_event(logger, "retention_failed", logging.WARNING, error=self.backend.describe(error))


def _unreadable(row: RunRow, message: str) -> RunRecord:
    """A run whose journal cannot be decoded, as the API shows it: failed, saying why."""
    record = RunRecord(row.run_id, row.flow_id, row.flow_name, [], {}, row.root_run_id, row.parent_run_id, status="failed", created_ns=row.created_ns)
    record.completed_ns = row.completed_ns or row.created_ns
    record.counts = {"total": 0, "completed": 0, "running": 0, "failed": 0, "cancelled": 0}
    record.journal = [(record.completed_ns, "run_completed", None, None, None, "failed", {"code": 500, "message": message}, None, PENDING, None)]
    return record


class DurableBlobStore:
    """Blobs in the same database; content-addressed, so recent ones are cached as they are read."""

    def __init__(self, store: DurableRunStore, cache_size: int = 4096) -> None:
        self._store = store
        self._cache: OrderedDict[str, tuple[bytes, str]] = OrderedDict()
        self._cache_size = cache_size

    async def put(self, data: Any, blob_type: str) -> str:
        blob_id, body = encode_blob(data)
        await self.put_encoded(blob_id, body, blob_type)
        return blob_id

    async def put_encoded(self, blob_id: str, body: bytes, blob_type: str) -> None:
        cached = self._cache.get(blob_id)
        if cached is not None and (cached[1] == blob_type or cached[1] == "flow"):
            return
        await self._store.writer.put_blob(blob_id, blob_type, body)
        self._remember(blob_id, (body, "flow" if cached is not None and cached[1] == "flow" else blob_type))

    async def get(self, blob_id: str) -> tuple[Any, str] | None:
        entry = self._cache.get(blob_id)
        if entry is None:
            entry = await self._store.read(self._store.backend.blob(blob_id))
            if entry is None:
                return None
            self._remember(blob_id, entry)
        return msgspec.json.decode(entry[0]), entry[1]

    async def delete(self, blob_id: str) -> bool:
        self._cache.pop(blob_id, None)
        return await self._store.read(self._store.backend.delete_blob(blob_id))

    def _remember(self, blob_id: str, entry: tuple[bytes, str]) -> None:
        self._cache[blob_id] = entry
        self._cache.move_to_end(blob_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    @property
    def size_bytes(self) -> int:
        return self._store.sizes[2]

    def __len__(self) -> int:
        return self._store.sizes[1]
