"""JSON-RPC correlation: which answer belongs to which outstanding request.

Pure bookkeeping, generic over what waits (an asyncio future in the servers, a plain
value in tests), so the matching rules are tested without sockets or event loops.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from wire_protocol.jsonrpc import RequestId

Waiter = TypeVar("Waiter")


class UnknownRequestId(KeyError):
    """An answer arrived for an id nobody is waiting for (late, duplicate or forged)."""


@dataclass
class PendingRequests(Generic[Waiter]):
    """Outstanding requests by id. Ids are unique for the life of the table."""

    prefix: str = ""
    _waiters: dict[RequestId, Waiter] = field(default_factory=dict)
    _counter: itertools.count[int] = field(default_factory=itertools.count)

    def new_id(self) -> str:
        return f"{self.prefix}{next(self._counter)}"

    def add(self, request_id: RequestId, waiter: Waiter) -> None:
        if request_id in self._waiters:
            raise ValueError(f"request id {request_id!r} is already pending")
        self._waiters[request_id] = waiter

    def take(self, request_id: RequestId) -> Waiter:
        """Remove and return the waiter for an answer; UnknownRequestId if there is none."""
        try:
            return self._waiters.pop(request_id)
        except KeyError:
            raise UnknownRequestId(request_id) from None

    def discard(self, request_id: RequestId) -> None:
        """Forget a request that timed out or was cancelled; a late answer is then unknown."""
        self._waiters.pop(request_id, None)

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._waiters

    def __len__(self) -> int:
        return len(self._waiters)
