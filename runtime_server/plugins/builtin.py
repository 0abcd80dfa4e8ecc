"""Built-in components that need no network (config.md §5).

Left out: ``/openai`` (calls an external service) and ``/load_file`` (reads the
runtime's file system on behalf of any flow author). Subflows run as child runs with
``parentRunId`` set, so they show up in the run list.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from runtime_server.blobs import is_blob_id
from runtime_server.flow.model import FlowParseError
from runtime_server.flow.prepared import PreparedFlow
from runtime_server.flow.results import Failed, to_wire
from runtime_server.flow_catalog import NotAFlow
from runtime_server.plugins.base import ComponentFailed, ExecuteRequest, PluginHealth
from wire_protocol.messages import ComponentInfo

if TYPE_CHECKING:
    from runtime_server.runtime import Runtime


class PutBlobInput(msgspec.Struct):
    data: Any
    blob_type: Literal["data", "flow"] = "data"


class GetBlobInput(msgspec.Struct):
    blob_id: str


class EvalInput(msgspec.Struct):
    flow_id: str
    input: Any = None


class MapInput(msgspec.Struct):
    workflow: dict[str, Any]
    items: list[Any]
    max_concurrency: int | None = None


class IterateInput(msgspec.Struct):
    flow: dict[str, Any]
    initial_input: Any = None
    max_iterations: int = 1000


class CreateMessagesInput(msgspec.Struct):
    user_prompt: str
    system_instructions: str | None = None


Handler = Callable[["BuiltinPlugin", Any, ExecuteRequest], Awaitable[Any]]


class BuiltinPlugin:
    remote = False
    """Runs in the runtime's process: the engine journals no dispatch before calling it."""

    def __init__(self, name: str, runtime: Runtime) -> None:
        self.name = name
        self._runtime = runtime

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def health(self) -> PluginHealth:
        return PluginHealth(True, {"components": len(_COMPONENTS)})

    def serves(self, component: str) -> bool:
        return component in _COMPONENTS

    async def list_components(self) -> list[ComponentInfo]:
        return [
            ComponentInfo(component=name, description=description, input_schema=msgspec.json.schema(input_type), output_schema={"type": "object"})
            for name, (input_type, _, description) in sorted(_COMPONENTS.items())
        ]

    async def execute(self, request: ExecuteRequest) -> Any:
        entry = _COMPONENTS.get(request.component)
        if entry is None:
            raise ComponentFailed(f"Unknown builtin component '{request.component}' (builtins: {', '.join(sorted(_COMPONENTS))})")
        input_type, handler, _ = entry
        try:
            arguments: Any = msgspec.convert(request.input, input_type)
        except msgspec.ValidationError as error:
            raise ComponentFailed(f"Invalid input for {request.component}: {error}") from None
        return await handler(self, arguments, request)

    def _flow_from_data(self, data: dict[str, Any], field: str) -> PreparedFlow:
        try:
            prepared = self._runtime.flows.prepare(data)
        except FlowParseError as error:
            raise ComponentFailed(f"'{field}' is not a valid flow: {error}") from None
        if not prepared.runnable:
            raise ComponentFailed(f"'{field}' has fatal validation errors: " + "; ".join(d.formatted for d in prepared.diagnostics.fatal))
        return prepared

    async def _put_blob(self, arguments: PutBlobInput, request: ExecuteRequest) -> Any:
        if arguments.blob_type == "flow":
            prepared = self._flow_from_data(arguments.data, "data")
            await self._runtime.flows.store(prepared)
            return {"blob_id": prepared.flow_id}
        return {"blob_id": await self._runtime.blobs.put(arguments.data, "data")}

    async def _get_blob(self, arguments: GetBlobInput, request: ExecuteRequest) -> Any:
        if not is_blob_id(arguments.blob_id):
            raise ComponentFailed(f"blob_id must be 64 lowercase hex characters, got {arguments.blob_id!r}")
        blob = await self._runtime.blobs.get(arguments.blob_id)
        if blob is None:
            raise ComponentFailed(f"Blob '{arguments.blob_id}' not found")
        return {"data": blob[0]}

    async def _eval(self, arguments: EvalInput, request: ExecuteRequest) -> Any:
        try:
            prepared = await self._runtime.flows.get(arguments.flow_id)
        except NotAFlow as error:
            raise ComponentFailed(str(error)) from None
        if prepared is None:
            raise ComponentFailed(f"Flow '{arguments.flow_id}' not found (store it with put_blob blob_type flow)")
        child = await self._runtime.run_subflow(prepared, [arguments.input], request.observability.run_id, submit_key=_submit_key(request))
        return {"result": to_wire(child.item_outcomes[0]), "run_id": request.observability.run_id}

    async def _map(self, arguments: MapInput, request: ExecuteRequest) -> Any:
        if not arguments.items:
            return {"results": [], "successful": 0, "failed": 0}
        prepared = self._flow_from_data(arguments.workflow, "workflow")
        child = await self._runtime.run_subflow(prepared, arguments.items, request.observability.run_id, arguments.max_concurrency, _submit_key(request))
        failures = sum(isinstance(outcome, Failed) for outcome in child.item_outcomes)
        return {"results": [to_wire(outcome) for outcome in child.item_outcomes], "successful": len(arguments.items) - failures, "failed": failures}

    async def _iterate(self, arguments: IterateInput, request: ExecuteRequest) -> Any:
        prepared = self._flow_from_data(arguments.flow, "flow")
        current = arguments.initial_input
        for iteration in range(1, arguments.max_iterations + 1):
            outcome = (await self._runtime.run_subflow(prepared, [current], request.observability.run_id, submit_key=_submit_key(request))).item_outcomes[0]
            if isinstance(outcome, Failed):
                raise ComponentFailed(f"iteration {iteration} failed: {outcome.error.message}", outcome.error.code, outcome.error.data)
            if isinstance(outcome, dict) and "result" in outcome:
                return {"result": outcome["result"], "iterations": iteration, "terminated": False}
            if not isinstance(outcome, dict) or "next" not in outcome:
                raise ComponentFailed(f"iteration {iteration}: the flow's output must be an object with 'result' (stop) or 'next' (continue)", 400)
            current = outcome["next"]
        return {"result": current, "iterations": arguments.max_iterations, "terminated": True}

    async def _create_messages(self, arguments: CreateMessagesInput, request: ExecuteRequest) -> Any:
        messages = [{"role": "system", "content": arguments.system_instructions}] if arguments.system_instructions else []
        return {"messages": [*messages, {"role": "user", "content": arguments.user_prompt}]}


def _submit_key(request: ExecuteRequest) -> str | None:
    """The child run's key from the execution's callbacks (the engine's ``RunCallbacks``), so a
    map or eval re-run after a restart finds the child it started; None when called otherwise."""
    next_key = getattr(request.callbacks, "next_submit_key", None)
    return next_key() if next_key is not None else None


_COMPONENTS: dict[str, tuple[type, Handler, str]] = {
    "/put_blob": (PutBlobInput, BuiltinPlugin._put_blob, "Store JSON data (or a flow) as a content-addressed blob"),
    "/get_blob": (GetBlobInput, BuiltinPlugin._get_blob, "Fetch a blob by id"),
    "/eval": (EvalInput, BuiltinPlugin._eval, "Run a stored flow once as a subflow"),
    "/map": (MapInput, BuiltinPlugin._map, "Run an inline flow once per item as one subflow run"),
    "/iterate": (IterateInput, BuiltinPlugin._iterate, "Run an inline flow repeatedly until it outputs 'result'"),
    "/create_messages": (CreateMessagesInput, BuiltinPlugin._create_messages, "Build chat messages from a prompt"),
}
