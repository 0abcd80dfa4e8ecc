"""The contract between the flow engine and the things that execute components.

The engine resolves a step's input, routes its component path to a plugin and calls
``execute``. Plugins never see flows; the remote plugin reaches back into the
runtime (blobs, runs) only through the ``Callbacks`` it is handed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from wire_protocol.messages import ComponentInfo, Observability


class Callbacks(Protocol):
    """What a component may ask of the runtime while it runs (protocol.md §5.7-5.10).

    ``handle`` takes the method name and the decoded params object and returns the
    result object, or raises ``CallbackError`` with the JSON-RPC code to answer with.
    """

    async def handle(self, method: str, params: Any) -> Any: ...


class CallbackError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


class ExecuteRequest(msgspec.Struct, frozen=True):
    """A Struct, not a frozen dataclass: one is made per step, and that ``__init__`` costs 0.9 µs against 0.1."""

    component: str
    """The name after routing, e.g. ``/double`` for step component ``/python/double``."""
    input: Any
    attempt: int
    observability: Observability
    callbacks: Callbacks
    traceparent: str | None = None
    tracestate: str | None = None
    deadline_seconds: float | None = None
    """Total time allowed for this execution (None: the plugin's own default)."""
    answered_by: Callable[[str], None] | None = None
    """Told the instance id of the pod that answered (``Stepflow-Instance-Id``), when it sends one."""


class ComponentFailed(Exception):
    """The component ran and reported an error: not retried unless the step's onError says so."""

    def __init__(self, message: str, code: int | None = None, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.data = data


class TransportFailed(Exception):
    """The call could not be completed (connect, stream, deadline, refused callback).

    ``retriable`` says whether running the step again from the start, on another pod,
    may succeed; the remote plugin already spent its own retry budget when it raises.
    """

    def __init__(self, message: str, retriable: bool = True, attempts: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.retriable = retriable
        self.attempts = attempts


@dataclass
class PluginHealth:
    healthy: bool
    detail: dict[str, Any] = field(default_factory=dict)


class Plugin(Protocol):
    name: str

    async def start(self) -> None:
        """Prepare the plugin. Must not fail because a remote server is down."""

    async def close(self) -> None: ...

    async def list_components(self) -> list[ComponentInfo]: ...

    async def execute(self, request: ExecuteRequest) -> Any:
        """Return the component's output, or raise ComponentFailed / TransportFailed."""

    def health(self) -> PluginHealth: ...
