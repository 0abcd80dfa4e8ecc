"""A pod whose one component, ``/sleep``, waits as long as asked: runs left in flight for a kill.

python bench/slow_pod.py --host HOST --port PORT [--max-concurrency N]
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from component_server import ComponentServer, parse_settings, serve

server = ComponentServer()


class SleepInput(msgspec.Struct):
    seconds: float


@server.component
async def sleep(input: SleepInput) -> dict[str, float]:
    await asyncio.sleep(input.seconds)
    return {"slept": input.seconds}


if __name__ == "__main__":
    serve(server, parse_settings(description=__doc__))
