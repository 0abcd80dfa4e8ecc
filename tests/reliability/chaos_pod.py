"""The demo pod plus a ledger, for chaos tests: ``chaos_pod.py --host H --port P [--max-concurrency N]``.

Same SDK and HTTP shell as ``component_server.demo`` (so the same admission, 503s, SSE and
drain), with two more components and two knobs from the environment:

- ``CHAOS_LEDGER``: a file that gets one JSON line per admitted execution, written before
  the component runs, ``{"pod", "run_id", "step_id", "attempt", "component", "at"}``, so a
  test can see side effects even on a pod it kills afterwards.
- ``CHAOS_DELAY_SECONDS``: every execution waits that long first (a slow pod).
- ``CHAOS_DELAY_ATTEMPTS``: only attempts up to this number wait (default: all), so a test
  can have a slow pod's first attempts time out and their re-runs finish wherever they land.

``/work`` (plain JSON answer): waits ``input.seconds``, returns ``{"value": input.value}``.
``/talk`` (bidirectional, SSE): ``input.rounds`` rounds of ``input.callbacks`` concurrent
``blobs/put`` callbacks, ``input.seconds`` apart, then reads the last blob back.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from component_server import Context, app, parse_settings, serve
from component_server.demo import server
from wire_protocol.messages import ExecuteParams


class WorkInput(msgspec.Struct):
    value: Any = None
    seconds: float = 0.0


class TalkInput(msgspec.Struct):
    value: Any = None
    rounds: int = 1
    callbacks: int = 1
    seconds: float = 0.0


@server.component
async def work(input: WorkInput) -> dict[str, Any]:
    """Wait ``seconds``, return ``value``: a plain step whose duration a test chooses."""
    await asyncio.sleep(input.seconds)
    return {"value": input.value}


@server.component
async def talk(input: TalkInput, context: Context) -> dict[str, Any]:
    """Callbacks in flight for as long as a test wants: rounds of concurrent blob puts."""
    blob_id = ""
    for round_number in range(input.rounds):
        puts = [context.put_blob({"value": input.value, "round": round_number, "n": n}) for n in range(input.callbacks)]
        blob_id = (await asyncio.gather(*puts))[-1]
        await asyncio.sleep(input.seconds)
    stored = await context.get_blob(blob_id)
    return {"value": stored["value"], "puts": input.rounds * input.callbacks}


def ledger_line(pod: str, params: ExecuteParams) -> bytes:
    observability = params.observability
    entry = {
        "pod": pod,
        "run_id": observability.run_id,
        "step_id": observability.step_id,
        "attempt": params.attempt,
        "component": params.component,
        "at": time.time(),
    }
    return msgspec.json.encode(entry) + b"\n"


def recording(execute: Any, ledger: str | None, delay: float, delay_attempts: int, pod: str) -> Any:
    """``component_server.app.execute`` with a ledger line (one unbuffered write) and a delay in front
    of attempts up to ``delay_attempts``."""
    descriptor = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if ledger else None

    async def execute_recorded(component: Any, request_id: Any, params: ExecuteParams, context: Any) -> Any:
        if descriptor is not None:
            os.write(descriptor, ledger_line(pod, params))
        if delay and params.attempt <= delay_attempts:
            await asyncio.sleep(delay)
        return await execute(component, request_id, params, context)

    return execute_recorded


if __name__ == "__main__":
    settings = parse_settings(description=__doc__)
    delay = float(os.environ.get("CHAOS_DELAY_SECONDS", "0"))
    delay_attempts = int(os.environ.get("CHAOS_DELAY_ATTEMPTS", str(sys.maxsize)))
    app.execute = recording(app.execute, os.environ.get("CHAOS_LEDGER"), delay, delay_attempts, settings.pod_name)
    serve(server, settings)
