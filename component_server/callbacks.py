"""Requests a component sends to the runtime inside its SSE stream, and their answers.

The runtime answers each one with a separate POST, which the pod matches by id. Unlike
upstream, a callback that gets no answer fails after a bounded time instead of hanging
the step forever.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from wire_protocol import jsonrpc
from wire_protocol.correlation import PendingRequests, UnknownRequestId

Emit = Callable[[bytes], Awaitable[None]]
"""Writes one JSON-RPC message as an event on the execution's SSE stream."""


class CallbackError(Exception):
    """The runtime answered a callback with a JSON-RPC error."""

    def __init__(self, method: str, error: jsonrpc.Error) -> None:
        super().__init__(f"{method} failed: runtime error {error.code}: {error.message}")
        self.error = error


class CallbackTimeout(TimeoutError):
    """No answer within the pod's callback timeout: the answer was lost or went to another pod."""


class CallbackLimitExceeded(Exception):
    """One execution asked for more callbacks than the pod allows (a runaway loop, most likely)."""


class CallbackHub:
    """Every outstanding callback of this pod, by id (ids are unique to this process)."""

    def __init__(self, instance_id: str, timeout_seconds: float, observe: Callable[[str, float], None], clock: Callable[[], float] = time.perf_counter) -> None:
        self._pending: PendingRequests[asyncio.Future[jsonrpc.Envelope]] = PendingRequests(prefix=f"{instance_id}/")
        self._timeout = timeout_seconds
        self._observe = observe
        self._clock = clock

    async def call(self, emit: Emit, method: str, params: msgspec.Struct, result_type: type[Any]) -> Any:
        request_id = self._pending.new_id()
        answer: asyncio.Future[jsonrpc.Envelope] = asyncio.get_running_loop().create_future()
        self._pending.add(request_id, answer)
        started = self._clock()
        try:
            await emit(jsonrpc.request(request_id, method, params))
            envelope = await asyncio.wait_for(answer, self._timeout)
        except TimeoutError:
            raise CallbackTimeout(
                f"{method} got no answer from the runtime within {self._timeout:g}s (callback id {request_id}); the answer was lost or reached another pod"
            ) from None
        finally:
            self._pending.discard(request_id)
            self._observe(method, self._clock() - started)
        if envelope.error is not msgspec.UNSET:
            raise CallbackError(method, envelope.error)
        return jsonrpc.decode_result(envelope, result_type)

    def answer(self, envelope: jsonrpc.Envelope) -> bool:
        """Hand a POSTed-back response to its waiting callback; False if nobody waits for that id."""
        try:
            waiter = self._pending.take(envelope.id)  # type: ignore[arg-type]  # a response always has an id (None only in a request-less error, which has no waiter)
        except UnknownRequestId:
            return False
        if not waiter.done():
            waiter.set_result(envelope)
        return True

    def __len__(self) -> int:
        return len(self._pending)
