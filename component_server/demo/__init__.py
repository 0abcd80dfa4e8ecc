"""The seven demo components (../shared/spec/demo.md), served by ``python -m component_server.demo``."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from component_server import ComponentServer, Context

server = ComponentServer()


class ValueInput(msgspec.Struct):
    value: float


class PairInput(msgspec.Struct):
    a: float
    b: float


class ComputeInput(msgspec.Struct):
    value: float
    iterations: int = 1000


class BlobInput(msgspec.Struct):
    data: dict[str, Any]


class Result(msgspec.Struct):
    result: float


class ComputeResult(msgspec.Struct):
    result: float
    processing_time_ms: float


class BlobResult(msgspec.Struct):
    blob_id: str
    retrieved_data: Any


@server.component
def double(input: ValueInput) -> Result:
    """Double the input value."""
    return Result(input.value * 2)


@server.component
def square(input: ValueInput) -> Result:
    """Square the input value."""
    return Result(input.value**2)


@server.component
def add(input: PairInput) -> Result:
    """Add a and b."""
    return Result(input.a + input.b)


@server.component
def multiply(input: PairInput) -> Result:
    """Multiply a by b."""
    return Result(input.a * input.b)


@server.component
def compute_intensive_task(input: ComputeInput) -> ComputeResult:
    """Iterate r = (r*1.1 + 0.5) % 1000000, starting from value."""
    started = time.perf_counter()
    result = input.value
    for _ in range(input.iterations):
        result = (result * 1.1 + 0.5) % 1000000
    return ComputeResult(result, (time.perf_counter() - started) * 1000)


def fib(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


@server.component
def fibonacci(input: ValueInput) -> Result:
    """The int(value)-th Fibonacci number, for 0 <= value <= 30."""
    n = int(input.value)
    if n < 0:
        raise ValueError(f"value must be at least 0, got {n}")
    if n > 30:
        raise ValueError(f"value must be at most 30, got {n}")
    return Result(float(fib(n)))


@server.component
async def store_and_retrieve_blob(input: BlobInput, context: Context) -> BlobResult:
    """Store data as a blob in the runtime, then read it back (two callbacks over SSE)."""
    blob_id = await context.put_blob(input.data)
    return BlobResult(blob_id, await context.get_blob(blob_id))
