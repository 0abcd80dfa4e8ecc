"""What a running component may ask of the runtime (protocol.md §5.7-5.10).

One ``RunCallbacks`` per execution of a step, handed to the plugin in its ExecuteRequest.
Errors carry the codes and messages upstream uses, so upstream SDKs react the same way.
A run a component submits is keyed by the execution that asked (run, item, step, and the
how-manieth submit of that execution): the same step run again after a recovery gets the
same run back instead of a second one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec

from runtime_server import metrics
from runtime_server.blobs import BLOB_TYPES, is_blob_id
from runtime_server.flow.model import FlowParseError
from runtime_server.flow_catalog import NotAFlow
from runtime_server.plugins.base import CallbackError
from runtime_server.runs.ids import is_run_id
from runtime_server.runs.rows import RunRefused
from runtime_server.runs.views import run_status
from wire_protocol import jsonrpc
from wire_protocol.messages import PARAMS_BY_METHOD, GetBlobParams, GetBlobResult, GetRunParams, PutBlobParams, PutBlobResult, RunStatus, SubmitRunParams

if TYPE_CHECKING:
    from runtime_server.runs.record import RunRecord
    from runtime_server.runtime import Runtime


class RunCallbacks:
    __slots__ = ("_runtime", "_record", "_item_index", "_step_id", "_submits", "instance_id", "made")

    def __init__(self, runtime: Runtime, record: RunRecord, item_index: int = 0, step_id: str = "") -> None:
        self._runtime = runtime
        self._record = record
        self._item_index = item_index
        self._step_id = step_id
        self._submits = 0
        self.instance_id: str | None = None
        """The pod that answered this execution, as the plugin reports it."""
        self.made: dict[str, int] | None = None
        """Callbacks this execution made, by method (None: none)."""

    def answered_by(self, instance_id: str) -> None:
        self.instance_id = instance_id

    def next_submit_key(self) -> str:
        """The key of this execution's next sub-run: the same for the same step run again after a restart."""
        key = f"{self._record.run_id}/{self._item_index}/{self._step_id}/{self._submits}"
        self._submits += 1
        return key

    async def handle(self, method: str, params: Any) -> Any:
        handler = _HANDLERS.get(method)
        self.made = made = self.made or {}
        counted = method if handler is not None else "other"  # a pod names methods: keep the keys bounded
        made[counted] = made.get(counted, 0) + 1
        if handler is None:
            metrics.CALLBACKS.labels(method, "unknown_method").inc()
            raise CallbackError(jsonrpc.METHOD_NOT_FOUND, f"Method not found: {method}")
        if not isinstance(params, msgspec.Struct):
            try:
                params = msgspec.convert(params, PARAMS_BY_METHOD[method])
            except msgspec.ValidationError as error:
                metrics.CALLBACKS.labels(method, "error").inc()
                raise CallbackError(jsonrpc.INVALID_PARAMS, f"Invalid params for {method}: {error}") from None
        try:
            result = await handler(self, params)
        except CallbackError:
            metrics.CALLBACKS.labels(method, "error").inc()
            raise
        metrics.CALLBACKS.labels(method, "success").inc()
        return result

    async def _put_blob(self, params: PutBlobParams) -> PutBlobResult:
        if params.blob_type not in BLOB_TYPES:
            raise CallbackError(jsonrpc.SERVER_ERROR, "Failed to put blob", f"blob_type must be data or flow, got {params.blob_type!r}")
        if params.blob_type == "flow":
            try:
                prepared = self._runtime.flows.prepare(params.data)
            except FlowParseError as error:
                raise CallbackError(jsonrpc.SERVER_ERROR, "Failed to put blob", f"not a valid flow: {error}") from None
            if not await self._runtime.flows.store(prepared):
                raise CallbackError(jsonrpc.SERVER_ERROR, "Failed to put blob", "the flow has fatal validation errors")
            return PutBlobResult(prepared.flow_id)
        return PutBlobResult(await self._runtime.blobs.put(params.data, params.blob_type))

    async def _get_blob(self, params: GetBlobParams) -> GetBlobResult:
        blob = await self._runtime.blobs.get(params.blob_id) if is_blob_id(params.blob_id) else None
        if blob is None:
            raise CallbackError(jsonrpc.SERVER_ERROR, "Failed to get blob", f"no blob with id {params.blob_id!r}")
        return GetBlobResult(blob[0], blob[1])  # type: ignore[arg-type]  # a stored blob_type is always "data" or "flow" (BlobType); the store keeps it as str

    async def _submit_run(self, params: SubmitRunParams) -> RunStatus:
        try:
            prepared = await self._runtime.flows.get(params.flow_id)
        except (NotAFlow, FlowParseError):
            prepared = None
        if prepared is None:
            raise CallbackError(jsonrpc.NOT_FOUND, f"Not found: flow with ID '{params.flow_id}'")
        if not params.inputs:
            raise CallbackError(jsonrpc.INVALID_VALUE, "inputs must hold at least one item")
        key = self.next_submit_key()
        record = await self._runtime.submitted_run(key)
        if record is None:
            self._check_run_capacity()
            record = self._runtime.submit(prepared, params.inputs, overrides=params.overrides, max_concurrency=params.max_concurrency, submit_key=key)
            try:
                await self._runtime.journaled(record)
            except RunRefused as refused:
                raise CallbackError(jsonrpc.SERVER_ERROR, "Failed to submit run", str(refused)) from None
        if params.wait:
            record = await self._runtime.wait(record)
        return run_status(record, include_results=params.wait)

    def _check_run_capacity(self) -> None:
        """A component's runs count against the same bound as the API's (limits.maxConcurrentRuns)."""
        in_flight, limit = self._runtime.runs_in_flight, self._runtime.settings.limits.max_concurrent_runs
        if in_flight >= limit:
            raise CallbackError(
                jsonrpc.SERVER_ERROR,
                f"{in_flight} runs are in flight, the limit of the runtime (limits.maxConcurrentRuns = {limit}); nothing was created, retry later",
            )

    async def _get_run(self, params: GetRunParams) -> RunStatus:
        if not is_run_id(params.run_id):
            raise CallbackError(jsonrpc.INVALID_VALUE, "Invalid value for field 'run_id': expected valid UUID")
        record = await self._runtime.get_run(params.run_id)
        if record is None:
            raise CallbackError(jsonrpc.NOT_FOUND, f"Not found: run with ID '{params.run_id}'")
        if params.wait:
            record = await self._runtime.wait(record)
        return run_status(record, include_results=params.include_results, by_completion=params.result_order == "by_completion")


_HANDLERS: dict[str, Callable[[RunCallbacks, Any], Awaitable[Any]]] = {
    jsonrpc.BLOBS_PUT: RunCallbacks._put_blob,
    jsonrpc.BLOBS_GET: RunCallbacks._get_blob,
    jsonrpc.RUNS_SUBMIT: RunCallbacks._submit_run,
    jsonrpc.RUNS_GET: RunCallbacks._get_run,
}
