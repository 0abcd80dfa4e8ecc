"""Flows kept as blobs, prepared (parsed + validated) once and cached by content hash."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from runtime_server.blobs import BlobStore, encode_blob, is_blob_id
from runtime_server.flow.model import parse_flow
from runtime_server.flow.prepared import PreparedFlow, prepare


class NotAFlow(LookupError):
    pass


def upstream_form(flow_json: dict[str, Any]) -> dict[str, Any]:
    """The normalised flow as upstream hashes and serves it: an empty ``steps`` list is left out."""
    if flow_json.get("steps") == []:
        return {key: value for key, value in flow_json.items() if key != "steps"}
    return flow_json


class FlowCatalog:
    def __init__(self, blobs: BlobStore, cache_size: int = 1024) -> None:
        self._blobs = blobs
        self._prepared: OrderedDict[str, PreparedFlow] = OrderedDict()
        self._raw_to_id: OrderedDict[str, str] = OrderedDict()
        self._cache_size = cache_size
        self._stored: set[str] = set()

    def prepare(self, flow_data: Any) -> PreparedFlow:
        """Parse and validate submitted flow data (raises FlowParseError); nothing is stored."""
        raw_id, _ = encode_blob(flow_data)
        flow_id = self._raw_to_id.get(raw_id)
        if flow_id is not None and flow_id in self._prepared:
            return self._prepared[flow_id]
        flow = parse_flow(flow_data)
        flow_json = upstream_form(flow.to_json())
        flow_id, _ = encode_blob(flow_json)
        prepared = self._prepared.get(flow_id) or prepare(flow_id, flow, flow_json)
        self._remember(raw_id, prepared)
        return prepared

    async def store(self, prepared: PreparedFlow) -> bool:
        """Keep the flow as a blob unless it has fatal diagnostics; True if stored (durably)."""
        if not prepared.runnable:
            return False
        if prepared.flow_id in self._stored:
            return True
        await self._blobs.put_encoded(prepared.flow_id, encode_blob(prepared.flow_json)[1], "flow")
        self._stored.add(prepared.flow_id)
        return True

    async def get(self, flow_id: str) -> PreparedFlow | None:
        """A stored flow, prepared; None if unknown; NotAFlow for a data blob."""
        prepared = self._prepared.get(flow_id)
        if prepared is not None and flow_id in self._stored:
            self._prepared.move_to_end(flow_id)
            return prepared
        if not is_blob_id(flow_id):
            return None
        blob = await self._blobs.get(flow_id)
        if blob is None:
            return None
        data, blob_type = blob
        if blob_type != "flow":
            raise NotAFlow(f"Blob '{flow_id}' is not a flow")
        prepared = prepare(flow_id, parse_flow(data), data)
        self._stored.add(flow_id)
        self._remember(flow_id, prepared)
        return prepared

    def known_ids(self) -> list[str]:
        """The flows stored or read since the runtime started (what the UI's flows page lists first)."""
        return sorted(self._stored)

    async def delete(self, flow_id: str) -> bool:
        self._stored.discard(flow_id)
        self._prepared.pop(flow_id, None)
        return await self._blobs.delete(flow_id)

    def _remember(self, raw_id: str, prepared: PreparedFlow) -> None:
        self._prepared[prepared.flow_id] = prepared
        self._raw_to_id[raw_id] = prepared.flow_id
        while len(self._prepared) > self._cache_size:
            self._prepared.popitem(last=False)
        while len(self._raw_to_id) > self._cache_size:
            self._raw_to_id.popitem(last=False)
