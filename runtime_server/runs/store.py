"""Where runs live: the interface, and the in-memory store with a retention bound.

Upstream keeps every run forever (~15 KiB each); here finished runs beyond ``max_runs``
or older than ``max_age_seconds`` are evicted, oldest first, so memory stays flat.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Protocol

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
    evictions: int

    def put(self, record: RunRecord) -> None:
        """Insert or replace (called when a run starts and when it finishes)."""

    def get(self, run_id: str) -> RunRecord | None: ...

    def list(self, query: RunQuery) -> list[RunRecord]:
        """Matching runs, newest first, after offset/limit."""

    def delete(self, run_id: str) -> bool: ...

    def __len__(self) -> int: ...

    def close(self) -> None: ...


class MemoryRunStore:
    def __init__(self, max_runs: int = 10_000, max_age_seconds: float = 3600.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._runs: OrderedDict[str, tuple[float, RunRecord]] = OrderedDict()
        self._max_runs = max_runs
        self._max_age = max_age_seconds
        self._clock = clock
        self.evictions = 0

    def put(self, record: RunRecord) -> None:
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
            self.evictions += 1

    def get(self, run_id: str) -> RunRecord | None:
        entry = self._runs.get(run_id)
        return None if entry is None else entry[1]

    def list(self, query: RunQuery) -> list[RunRecord]:
        self._evict()
        matching = [record for _, record in reversed(self._runs.values()) if query.matches(record)]
        matching.sort(key=lambda record: record.created_ns, reverse=True)
        return matching[query.offset : query.offset + query.limit]

    def delete(self, run_id: str) -> bool:
        return self._runs.pop(run_id, None) is not None

    def __len__(self) -> int:
        return len(self._runs)

    def close(self) -> None:
        self._runs.clear()
