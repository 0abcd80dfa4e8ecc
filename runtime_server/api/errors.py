"""The one exception the API's handlers raise: it becomes a JSON ``{"code", "message", ...}`` answer."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers
        self.extra = extra

    @classmethod
    def stacked(cls, status: int, message: str) -> ApiError:
        """The shape upstream gives errors from its error stack: ``stack`` repeats the message (rest-api.md §1.1)."""
        return cls(status, message, stack=[{"error": message}])
