"""Blob and flow ids are upstream's: the SHA-256 of the JSON exactly as serde_json spells it.

Each expected spelling below is what stepflow-server 0.9.0 hashed for that value (found
by comparing its blob ids; tests/interop/test_flow_ids_match_upstream.py checks them live).
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest

from runtime_server.blobs import MemoryBlobStore, encode_blob
from runtime_server.flow_catalog import FlowCatalog

SPELLINGS: list[tuple[Any, bytes]] = [
    ({"b": 2, "a": 1}, b'{"b":2,"a":1}'),
    ({"test": "value1", "number": 1, "timestamp": "1700000000"}, b'{"test":"value1","number":1,"timestamp":"1700000000"}'),
    ({"f": 1.0}, b'{"f":1.0}'),
    ({"f": 1e15}, b'{"f":1000000000000000.0}'),
    ({"f": 1e16}, b'{"f":1e+16}'),
    ({"f": 1.5e100}, b'{"f":1.5e+100}'),
    ({"f": 1e-7}, b'{"f":1e-7}'),
    ({"f": 5e-324}, b'{"f":5e-324}'),
    ({"f": -0.0}, b'{"f":-0.0}'),
    ({"i": 2**64 - 1, "j": -(2**63)}, b'{"i":18446744073709551615,"j":-9223372036854775808}'),
    ({"i": 2**64}, b'{"i":1.8446744073709552e+19}'),
    ({"i": 10**20}, b'{"i":1e+20}'),
    ({"s": "3e5 and 12345678901234567890", "l": [1e21, True, None]}, b'{"s":"3e5 and 12345678901234567890","l":[1e+21,true,null]}'),
    ({"u": "na\u00efve \u2713", "c": '\u0001\t"/'}, '{"u":"na\u00efve \u2713","c":"\\u0001\\t\\"/"}'.encode()),
]


@pytest.mark.parametrize(("data", "spelling"), SPELLINGS, ids=[s.decode()[:40] for _, s in SPELLINGS])
def test_blob_id_is_the_hash_of_upstreams_spelling(data: Any, spelling: bytes) -> None:
    assert encode_blob(data) == (hashlib.sha256(spelling).hexdigest(), spelling)


def test_a_stored_blob_reads_back_as_upstream_reads_it() -> None:
    async def put_and_get() -> Any:
        blobs = MemoryBlobStore()
        return await blobs.get(await blobs.put({"i": 2**64, "f": 1e16}, "data"))

    assert asyncio.run(put_and_get()) == ({"i": 1.8446744073709552e19, "f": 1e16}, "data")


def test_a_flow_without_steps_leaves_the_empty_list_out_of_its_id() -> None:
    prepared = FlowCatalog(MemoryBlobStore()).prepare({"name": "empty", "steps": [], "output": {"a": {"$input": "a"}}})
    spelling = b'{"name":"empty","output":{"a":{"$input":"$.a"}}}'
    assert (prepared.flow_json, prepared.flow_id) == ({"name": "empty", "output": {"a": {"$input": "$.a"}}}, hashlib.sha256(spelling).hexdigest())
