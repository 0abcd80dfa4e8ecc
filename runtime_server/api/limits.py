"""The REST API's request limits (docs/limits.md), as checks that raise ``ApiError``.

The measuring is pure and iterative: a body nested 10,000 deep or a YAML flow whose
aliases expand to billions of values is refused after looking at no more than the limit
allows, and never reaches code that recurses or serialises.
"""

from __future__ import annotations

from typing import Any

from runtime_server.api.errors import ApiError
from runtime_server.config import ApiLimits

_END = object()
_CONTAINERS = (dict, list)


class TooDeep(ValueError):
    pass


class TooMany(ValueError):
    pass


def _children(value: Any) -> Any:
    return iter(value.values() if isinstance(value, dict) else value)


def count_values(value: Any, max_depth: int, max_values: float = float("inf")) -> int:
    """Values in JSON-like data as a serialiser would see them: a container shared by YAML
    aliases counts once per use, but is walked once. Raises TooDeep past ``max_depth``
    nested containers, TooMany past ``max_values``."""
    if type(value) not in _CONTAINERS:
        return 1
    walked: dict[int, int] = {}
    stack: list[list[Any]] = [[value, _children(value), 1]]  # container, its children, its count so far
    while True:
        frame = stack[-1]
        child = next(frame[1], _END)
        if child is _END:
            stack.pop()
            walked[id(frame[0])] = frame[2]
            if not stack:
                return int(frame[2])
            stack[-1][2] += frame[2]
            count = stack[-1][2]
        elif type(child) not in _CONTAINERS:
            frame[2] += 1
            count = frame[2]
        elif id(child) in walked:
            frame[2] += walked[id(child)]
            count = frame[2]
        else:
            if len(stack) >= max_depth:
                raise TooDeep(f"more than {max_depth} arrays/objects nested inside each other")
            stack.append([child, _children(child), 1])
            continue
        if count > max_values:
            raise TooMany(f"more than {max_values} values")


def nests_deeper(value: Any, max_depth: int) -> bool:
    """Whether decoded JSON nests more than ``max_depth`` containers deep: level by level, each
    container looked at once (JSON shares nothing, so no bookkeeping: 5x faster than ``count_values``)."""
    level = [value] if type(value) in _CONTAINERS else []
    for _ in range(max_depth):
        if not level:
            return False
        level = [child for container in level for child in (container.values() if type(container) is dict else container) if type(child) in _CONTAINERS]
    return bool(level)


def could_nest_deeper(raw: bytes, max_depth: int) -> bool:
    """Cheap pre-check on the raw JSON: fewer brackets than the limit cannot nest past it."""
    return raw.count(b"[") + raw.count(b"{") > max_depth


def check_depth(value: Any, limits: ApiLimits, what: str) -> None:
    if nests_deeper(value, limits.max_nesting_depth):
        raise too_deep(what, limits)


def too_deep(what: str, limits: ApiLimits) -> ApiError:
    detail = f"more than {limits.max_nesting_depth} arrays/objects nested inside each other"
    return ApiError(400, f"{what} is nested too deeply: {detail} (limit limits.maxNestingDepth = {limits.max_nesting_depth})", limit="maxNestingDepth")


def check_flow_data(data: Any, limits: ApiLimits) -> None:
    """A flow parsed from YAML text: bounded depth, bounded expansion of aliases."""
    try:
        count_values(data, limits.max_nesting_depth, limits.max_flow_values)
    except TooDeep:
        raise too_deep("The flow", limits) from None
    except TooMany as error:
        raise ApiError(
            413,
            f"The flow expands to {error} (YAML aliases count once per use; limit limits.maxFlowValues = {limits.max_flow_values})",
            limit="maxFlowValues",
        ) from None


def check_flow_text(text: str, limits: ApiLimits) -> None:
    size = len(text.encode())
    if size > limits.max_flow_text_bytes:
        raise ApiError(
            413,
            f"The flow text is {size} bytes; the limit is {limits.max_flow_text_bytes} (limits.maxFlowTextBytes): send a large flow as a JSON object",
            limit="maxFlowTextBytes",
        )


def check_flow_steps(data: Any, limits: ApiLimits) -> None:
    steps = data.get("steps") if isinstance(data, dict) else None
    if isinstance(steps, list) and len(steps) > limits.max_flow_steps:
        raise ApiError(413, f"The flow has {len(steps)} steps; the limit is {limits.max_flow_steps} (limits.maxFlowSteps)", limit="maxFlowSteps")


def check_body_size(declared: str | None, limits: ApiLimits) -> None:
    """Refuse a body by its Content-Length before reading any of it."""
    if declared is not None and declared.isdigit() and int(declared) > limits.max_request_bytes:
        raise body_too_large(int(declared), limits)


def body_too_large(size: int | None, limits: ApiLimits) -> ApiError:
    body = "The request body" if size is None else f"The request body of {size} bytes"
    return ApiError(
        413,
        f"{body} is larger than the limit of {limits.max_request_bytes} bytes (limits.maxRequestBytes)",
        limit="maxRequestBytes",
    )


def check_run_capacity(in_flight: int, limits: ApiLimits) -> None:
    if in_flight >= limits.max_concurrent_runs:
        raise ApiError(
            429,
            f"{in_flight} runs are in flight, the limit of the runtime (limits.maxConcurrentRuns = {limits.max_concurrent_runs}); nothing was created, retry later",
            headers={"Retry-After": "1"},
            limit="maxConcurrentRuns",
        )
