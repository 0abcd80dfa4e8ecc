"""Where runs live: the interface, and the in-memory store with a retention bound.

Upstream keeps every run forever (~15 KiB each); here finished runs beyond ``max_runs``
or older than ``max_age_seconds`` are evicted, oldest first, so memory stays flat.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from runtime_server.runs.record import RunRecord


@dataclass(frozen=True)
class RunQuery:
    status: str | None = None
    flow_name: str | None = None
    root_run_id: str | None = None
    parent_run_id: str | None = None
    limit: int = 100
    offset: int = 0

    def matches(self, record: RunRecord) -> bool:
        return (
            (self.status is None or record.status == self.status)
            and (self.flow_name is None or record.flow_name == self.flow_name)
            and (self.root_run_id is None or record.root_run_id == self.root_run_id)
            and (self.parent_run_id is None or record.parent_run_id == self.parent_run_id)
        )


class RunStore(Protocol):
    """Where runs live. The runtime keeps live runs itself; a store keeps them beyond that.

    In memory, a store only keeps finished runs within the retention bound; a durable store
    (``durable_store.py``) also writes every run ahead as it goes, so that a restart resumes it.
    """

    durable: bool
    evictions: int

    @property
    def problem(self) -> str | None:
        """Why the store cannot take writes now (health says not ready), or None."""

    async def open(self) -> None: ...

    def created(self, record: RunRecord) -> None:
        """A run started (durable: its row and entries are written from now on)."""

    def ended(self, record: RunRecord) -> None:
        """A run reached its end (its last entry is in)."""

    async def written(self, record: RunRecord) -> None:
        """Returns once everything the run journaled so far is durable (at once in memory)."""

    def adopt(self, record: RunRecord) -> None:
        """A run read back by recovery goes on being written."""

    def forget(self, run_id: str) -> None:
        """A run this runtime stopped without an end (another replica holds it): write nothing more of it."""

    async def get(self, run_id: str) -> RunRecord | None: ...

    async def list(self, query: RunQuery) -> list[RunRecord]:
        """Matching runs, newest first, after offset/limit."""

    async def delete(self, run_id: str) -> bool: ...

    async def submitted_as(self, submit_key: str) -> RunRecord | None:
        """The run a component's execution submitted under this key (``RunRecord.submit_key``)."""

    def __len__(self) -> int: ...

    async def close(self) -> None: ...


class MemoryRunStore:
    durable = False
    problem = None

    def __init__(self, max_runs: int = 10_000, max_age_seconds: float = 3600.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._runs: OrderedDict[str, tuple[float, RunRecord]] = OrderedDict()
        self._by_submit_key: dict[str, str] = {}
        self._max_runs = max_runs
        self._max_age = max_age_seconds
        self._clock = clock
        self.evictions = 0

    async def open(self) -> None:
        return None

    def created(self, record: RunRecord) -> None:
        self._put(record)
        if record.submit_key is not None:
            self._by_submit_key[record.submit_key] = record.run_id

    def ended(self, record: RunRecord) -> None:
        self._put(record)

    async def written(self, record: RunRecord) -> None:
        return None

    def adopt(self, record: RunRecord) -> None:
        return None

    def forget(self, run_id: str) -> None:
        return None

    def _put(self, record: RunRecord) -> None:
        self._runs[record.run_id] = (self._clock(), record)
        self._runs.move_to_end(record.run_id)
        self._evict()

    def _evict(self) -> None:
        oldest_allowed = self._clock() - self._max_age
        while self._runs:
            run_id, (stored_at, record) = next(iter(self._runs.items()))
            if len(self._runs) <= self._max_runs and stored_at >= oldest_allowed:
                return
            del self._runs[run_id]
            if record.submit_key is not None:
                self._by_submit_key.pop(record.submit_key, None)
            self.evictions += 1

    async def get(self, run_id: str) -> RunRecord | None:
        entry = self._runs.get(run_id)
        return None if entry is None else entry[1]

    async def list(self, query: RunQuery) -> list[RunRecord]:
        self._evict()
        matching = [record for _, record in reversed(self._runs.values()) if query.matches(record)]
        matching.sort(key=lambda record: record.created_ns, reverse=True)
        return matching[query.offset : query.offset + query.limit]

    async def delete(self, run_id: str) -> bool:
        entry = self._runs.pop(run_id, None)
        if entry is not None and entry[1].submit_key is not None:
            self._by_submit_key.pop(entry[1].submit_key, None)
        return entry is not None

    async def submitted_as(self, submit_key: str) -> RunRecord | None:
        run_id = self._by_submit_key.get(submit_key)
        return None if run_id is None else await self.get(run_id)

    def __len__(self) -> int:
        return len(self._runs)

    async def close(self) -> None:
        self._runs.clear()
