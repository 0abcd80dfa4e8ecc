"""The seven demo components on the upstream SDK (stepflow-py 0.9.2): the reference pod.

Run: ``python tests/interop/upstream_demo_pod.py --host 127.0.0.11 --port 8080``
(instance id ``$POD_NAME-<8 hex>`` like ours). Used by interop tests and benchmarks only.
No ``from __future__ import annotations``: the upstream SDK reads type hints as objects.
"""

import argparse
import asyncio
import os
import time

import msgspec
from stepflow_py.worker import StepflowContext, StepflowServer

server = StepflowServer(include_builtins=False)


class ValueInput(msgspec.Struct):
    value: float


class PairInput(msgspec.Struct):
    a: float
    b: float


class ComputeInput(msgspec.Struct):
    value: float
    iterations: int = 1000


class BlobInput(msgspec.Struct):
    data: dict


@server.component
def double(input: ValueInput) -> dict:
    return {"result": float(input.value * 2)}


@server.component
def square(input: ValueInput) -> dict:
    return {"result": float(input.value**2)}


@server.component
def add(input: PairInput) -> dict:
    return {"result": float(input.a + input.b)}


@server.component
def multiply(input: PairInput) -> dict:
    return {"result": float(input.a * input.b)}


@server.component
def compute_intensive_task(input: ComputeInput) -> dict:
    started = time.perf_counter()
    result = float(input.value)
    for _ in range(int(input.iterations)):
        result = (result * 1.1 + 0.5) % 1000000
    return {"result": result, "processing_time_ms": (time.perf_counter() - started) * 1000}


def _fib(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


@server.component
def fibonacci(input: ValueInput) -> dict:
    n = int(input.value)
    if n < 0 or n > 30:
        raise ValueError(f"value must be between 0 and 30, got {n}")
    return {"result": float(_fib(n))}


@server.component
async def store_and_retrieve_blob(input: BlobInput, context: StepflowContext) -> dict:
    blob_id = await context.put_blob(input.data)
    return {"blob_id": blob_id, "retrieved_data": await context.get_blob(blob_id)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    instance_id = f"{os.environ.get('POD_NAME', 'upstream-pod')}-{os.urandom(4).hex()}"
    asyncio.run(server.run(host=args.host, port=args.port, instance_id=instance_id))


if __name__ == "__main__":
    main()
