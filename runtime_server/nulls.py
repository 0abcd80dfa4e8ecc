"""Explicit ``null`` means absent (issue 14): upstream's Python SDK writes every unset option as null.

Applied one level at a time, where an object's keys are options (a flow, a step, ``onError``, a
request body, the config and its plugin entries), never inside values, where null is data.
"""

from __future__ import annotations

from typing import Any


def without_nulls(data: dict[str, Any]) -> dict[str, Any]:
    """The object with its ``null`` members left out (the object itself when it has none)."""
    if None not in data.values():
        return data
    return {key: value for key, value in data.items() if value is not None}
