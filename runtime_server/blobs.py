"""Content-addressed blobs (flows and data): the id is the SHA-256 of the compact JSON.

The JSON is spelled as upstream's serde_json spells it, so ids match theirs byte for byte:
keys in the order received, a positive exponent with its sign (``1e+16``), and an integer
beyond 64 bits as the float it becomes there (tests/interop/test_flow_ids_match_upstream.py).

Blobs are kept as their JSON bytes (what was hashed), decoded on read. Memory by default;
a durable store keeps them in its database beside the runs (``runs/durable_store.py``).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Protocol

import msgspec

BLOB_TYPES = ("data", "flow")
_BLOB_ID = re.compile(r"^[0-9a-f]{64}$")
_encoder = msgspec.json.Encoder()
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_SERDE_INTEGERS = range(-(2**63), 2**64)
_FLOAT_INTEGERS = range(-(2**1024) + 1, 2**1024)


def is_blob_id(value: Any) -> bool:
    return isinstance(value, str) and _BLOB_ID.match(value) is not None


def encode_blob(data: Any) -> tuple[str, bytes]:
    """(blob id, the JSON bytes hashed): upstream's spelling, see the module docstring."""
    body = _encoder.encode(data)
    if _may_spell_numbers_unlike_upstream(body):
        body = _encoder.encode(_upstream_numbers(data))
    return hashlib.sha256(body).hexdigest(), body


def _may_spell_numbers_unlike_upstream(body: bytes) -> bool:
    """A positive exponent (digit, e, digit) or 20 digits in a row (maybe beyond 64 bits) appear.

    Cheap (no regex: Python's costs ~40 ns a byte here); a look-alike in a string only costs
    the tree walk that finds nothing to change.
    """
    digits_as_zero = body.translate(_DIGITS_AS_ZERO)
    return b"0e0" in digits_as_zero or b"00000000000000000000" in digits_as_zero


def _upstream_numbers(value: Any) -> Any:
    """``value`` with each number msgspec spells unlike serde_json replaced by serde_json's text."""
    if isinstance(value, dict):
        return {key: _upstream_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_upstream_numbers(item) for item in value]
    if isinstance(value, float):
        return _upstream_float(value)
    if isinstance(value, int) and not isinstance(value, bool) and value not in _SERDE_INTEGERS and value in _FLOAT_INTEGERS:
        return _upstream_float(float(value))
    return value


def _upstream_float(value: float) -> Any:
    text = _encoder.encode(value)
    if b"e" in text and b"e-" not in text:
        return msgspec.Raw(text.replace(b"e", b"e+"))
    return value


class BlobStore(Protocol):
    async def put(self, data: Any, blob_type: str) -> str: ...

    async def put_encoded(self, blob_id: str, body: bytes, blob_type: str) -> None:
        """Durable when it returns; a flow blob is never turned back into a data blob."""

    async def get(self, blob_id: str) -> tuple[Any, str] | None: ...

    async def delete(self, blob_id: str) -> bool: ...

    @property
    def size_bytes(self) -> int: ...

    def __len__(self) -> int: ...


class MemoryBlobStore:
    def __init__(self) -> None:
        self._blobs: dict[str, tuple[bytes, str]] = {}
        self._size = 0

    async def put(self, data: Any, blob_type: str) -> str:
        blob_id, body = encode_blob(data)
        await self.put_encoded(blob_id, body, blob_type)
        return blob_id

    async def put_encoded(self, blob_id: str, body: bytes, blob_type: str) -> None:
        if blob_id not in self._blobs:
            self._size += len(body)
        elif self._blobs[blob_id][1] == "flow":
            return
        self._blobs[blob_id] = (body, blob_type)

    async def get(self, blob_id: str) -> tuple[Any, str] | None:
        entry = self._blobs.get(blob_id)
        return None if entry is None else (msgspec.json.decode(entry[0]), entry[1])

    async def delete(self, blob_id: str) -> bool:
        entry = self._blobs.pop(blob_id, None)
        if entry is None:
            return False
        self._size -= len(entry[0])
        return True

    @property
    def size_bytes(self) -> int:
        return self._size

    def __len__(self) -> int:
        return len(self._blobs)
