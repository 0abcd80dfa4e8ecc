"""What a running component can ask of the runtime: blobs, carried over its SSE stream."""

from __future__ import annotations

from typing import Any

from component_server.callbacks import CallbackHub, CallbackLimitExceeded, Emit
from wire_protocol import jsonrpc
from wire_protocol.messages import BlobType, GetBlobParams, GetBlobResult, Observability, PutBlobParams, PutBlobResult


class Context:
    """Handed to components declared as ``def f(input, context)``; one per execution."""

    def __init__(self, hub: CallbackHub, emit: Emit, observability: Observability, attempt: int, max_callbacks: int | None = None) -> None:
        self._hub = hub
        self._emit = emit
        self._observability = observability
        self.attempt = attempt
        self._max_callbacks = max_callbacks
        self._callbacks = 0

    @property
    def run_id(self) -> str | None:
        return self._observability.run_id

    @property
    def flow_id(self) -> str | None:
        return self._observability.flow_id

    @property
    def step_id(self) -> str | None:
        return self._observability.step_id

    async def put_blob(self, data: Any, blob_type: BlobType = "data") -> str:
        """Store JSON data in the runtime; returns its content-addressed id (SHA-256 hex)."""
        params = PutBlobParams(data=data, blob_type=blob_type, observability=self._observability)
        result: PutBlobResult = await self._call(jsonrpc.BLOBS_PUT, params, PutBlobResult)
        return result.blob_id

    async def get_blob(self, blob_id: str) -> Any:
        params = GetBlobParams(blob_id=blob_id, observability=self._observability)
        result: GetBlobResult = await self._call(jsonrpc.BLOBS_GET, params, GetBlobResult)
        return result.data

    async def _call(self, method: str, params: Any, result_type: type[Any]) -> Any:
        self._callbacks += 1
        if self._max_callbacks is not None and self._callbacks > self._max_callbacks:
            raise CallbackLimitExceeded(
                f"{method} refused: this execution already made {self._max_callbacks} callbacks, the pod's limit per execution "
                "(--max-callbacks-per-execution, env MAX_CALLBACKS_PER_EXECUTION)"
            )
        return await self._hub.call(self._emit, method, params, result_type)
