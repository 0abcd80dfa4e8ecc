"""Params and results of each Stepflow 0.9 method (protocol.md §5).

Casing is per method, as upstream: initialize, components and blobs are snake_case;
runs/* are camelCase. Optional keys are omitted when unset (``msgspec.UNSET``), never
sent as null; keys upstream requires (``attempt``, ``blob_type``, ``runtime_protocol_version``)
are always sent, even at their default.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from wire_protocol import jsonrpc


class Observability(msgspec.Struct, omit_defaults=True):
    trace_id: str | None = None
    span_id: str | None = None
    run_id: str | None = None
    flow_id: str | None = None
    step_id: str | None = None


class InitializeParams(msgspec.Struct):
    runtime_protocol_version: int = 1
    observability: Observability | msgspec.UnsetType = msgspec.UNSET


class InitializeResult(msgspec.Struct):
    server_protocol_version: int = 1


class ComponentInfo(msgspec.Struct, omit_defaults=True):
    component: str
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None


class ListComponentsResult(msgspec.Struct):
    components: list[ComponentInfo]


class ComponentInfoParams(msgspec.Struct):
    component: str
    observability: Observability | msgspec.UnsetType = msgspec.UNSET


class ComponentInfoResult(msgspec.Struct):
    info: ComponentInfo


class ExecuteParams(msgspec.Struct):
    component: str
    input: Any = None
    attempt: int = 1
    observability: Observability = msgspec.field(default_factory=Observability)


class ExecuteResult(msgspec.Struct):
    output: Any


BlobType = Literal["data", "flow"]


class PutBlobParams(msgspec.Struct):
    data: Any
    blob_type: BlobType
    observability: Observability | msgspec.UnsetType = msgspec.UNSET


class PutBlobResult(msgspec.Struct):
    blob_id: str


class GetBlobParams(msgspec.Struct):
    blob_id: str
    observability: Observability | msgspec.UnsetType = msgspec.UNSET


class GetBlobResult(msgspec.Struct):
    data: Any
    blob_type: BlobType = "data"


class SubmitRunParams(msgspec.Struct, omit_defaults=True, rename="camel"):
    flow_id: str
    inputs: list[Any]
    wait: bool = False
    max_concurrency: int | None = None
    overrides: dict[str, Any] | None = None
    observability: Observability | msgspec.UnsetType = msgspec.UNSET


class GetRunParams(msgspec.Struct, omit_defaults=True, rename="camel"):
    run_id: str
    wait: bool = False
    include_results: bool = False
    result_order: Literal["by_index", "by_completion"] = "by_index"
    observability: Observability | msgspec.UnsetType = msgspec.UNSET


class ItemStatistics(msgspec.Struct):
    total: int = 0
    completed: int = 0
    running: int = 0
    failed: int = 0
    cancelled: int = 0


class ItemResult(msgspec.Struct, omit_defaults=True, rename="camel"):
    item_index: int
    status: str
    result: Any = None
    completed_at: str | None = None


class RunStatus(msgspec.Struct, omit_defaults=True, rename="camel"):
    """RunStatusProtocol: the answer to runs/submit and runs/get."""

    run_id: str
    flow_id: str
    status: str
    items: ItemStatistics
    created_at: str
    flow_name: str | None = None
    completed_at: str | None = None
    results: list[ItemResult] | None = None


PARAMS_BY_METHOD: dict[str, type[msgspec.Struct]] = {
    jsonrpc.INITIALIZE: InitializeParams,
    jsonrpc.COMPONENTS_INFO: ComponentInfoParams,
    jsonrpc.COMPONENTS_EXECUTE: ExecuteParams,
    jsonrpc.BLOBS_PUT: PutBlobParams,
    jsonrpc.BLOBS_GET: GetBlobParams,
    jsonrpc.RUNS_SUBMIT: SubmitRunParams,
    jsonrpc.RUNS_GET: GetRunParams,
}
