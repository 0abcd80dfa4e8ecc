"""Step and item outcomes: any value is a success; a ``Failed`` carries a FlowError.

Keeping success as the bare value (no wrapper) keeps the hot path allocation-free.
"""

from __future__ import annotations

from typing import Any

import msgspec


class FlowError(msgspec.Struct, omit_defaults=True):
    code: int
    message: str
    data: Any = None


class Failed:
    __slots__ = ("error",)

    def __init__(self, error: FlowError) -> None:
        self.error = error

    def __repr__(self) -> str:
        return f"Failed({self.error!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Failed) and other.error == self.error


def failed(code: int, message: str, data: Any = None) -> Failed:
    return Failed(FlowError(code, message, data))


def to_wire(outcome: Any) -> dict[str, Any]:
    """The FlowResult JSON object upstream clients parse."""
    if isinstance(outcome, Failed):
        return {"outcome": "failed", "error": msgspec.to_builtins(outcome.error)}
    return {"outcome": "success", "result": outcome}


def from_wire(result: dict[str, Any]) -> Any:
    """Inverse of ``to_wire``, for results read back from storage or a mock table."""
    if result.get("outcome") == "failed":
        error = result.get("error") or {}
        return failed(int(error.get("code", 500)), str(error.get("message", "failed")), error.get("data"))
    return result.get("result")
