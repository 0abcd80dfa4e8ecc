"""A pod that holds every execution until the test releases it, and records what happened:
``hold_pod.py --host H --port P`` with ``HOLD_DIR`` set (our SDK, so admission, SSE, drain as ours).

Each execution appends JSON lines to ``$HOLD_DIR/ledger.jsonl`` (one unbuffered ``O_APPEND``
write each, so a line survives the pod's SIGKILL): ``{"event", "pod", "run", "step", "attempt",
"at", ...}`` with event ``start``, then ``complete`` (the component returned its answer, to a
runtime still connected) or ``cancelled`` (the runtime's connection went away first: our pod
cancels a context component whose client disconnects, so a held execution of a killed runtime
never completes later), or ``failed`` (the input asked this attempt to fail). Every component
takes a context for that (and for its run, step and attempt), so every answer is SSE.

A held execution polls every 20 ms for a release file in ``$HOLD_DIR/release/``: ``STEP``
(every run's step STEP, now and later), ``STEP@ATTEMPT`` (only that attempt), ``RUN.STEP``
or ``*`` (everything).

``/hold`` (context, SSE): holds, then returns ``{"value": sum(values) + add}``; fails with a
component error after its release when its attempt is in ``failAttempts``.
``/record`` (context, SSE): the same without holding.
``/spawn`` (context, SSE): stores ``flow`` as a flow blob, submits it as a sub-run on
``{"values": values}`` with ``wait``, records ``submitted`` with the sub-run's id, then holds
if ``holdAfter``; returns the sub-run's output value plus ``add`` and the sub-run's id.
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

from component_server import ComponentServer, Context, parse_settings, serve
from wire_protocol import jsonrpc
from wire_protocol.messages import RunStatus, SubmitRunParams

POLL_SECONDS = 0.02
server = ComponentServer()
HOLD_DIR = Path(os.environ.get("HOLD_DIR", "."))
POD = os.environ.get("POD_NAME", "hold-pod")
_ledger = os.open(HOLD_DIR / "ledger.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
(HOLD_DIR / "release").mkdir(exist_ok=True)


class HoldInput(msgspec.Struct, rename="camel"):
    values: list[float] = []
    add: float = 1
    fail_attempts: list[int] = []


class SpawnInput(msgspec.Struct, rename="camel"):
    flow: dict[str, Any]
    values: list[float] = []
    add: float = 1
    hold_after: bool = False


def record(event: str, context: Context, **extra: Any) -> None:
    where = {"run": context.run_id, "step": context.step_id, "attempt": context.attempt}
    os.write(_ledger, msgspec.json.encode({"event": event, "pod": POD, **where, "at": time.time(), **extra}) + b"\n")


_listing: tuple[float, frozenset[str]] = (0.0, frozenset())


def release_files() -> frozenset[str]:
    """The release directory, listed at most once per poll however many executions are held."""
    global _listing
    if time.monotonic() - _listing[0] >= POLL_SECONDS:
        _listing = (time.monotonic(), frozenset(os.listdir(HOLD_DIR / "release")))
    return _listing[1]


def released(context: Context) -> bool:
    names = {"*", f"{context.step_id}", f"{context.step_id}@{context.attempt}", f"{context.run_id}.{context.step_id}"}
    return not names.isdisjoint(release_files())


async def hold(context: Context) -> None:
    """Wait for the test's release; a cancellation (the runtime went away) is recorded and passed on."""
    try:
        while not released(context):
            await asyncio.sleep(POLL_SECONDS)
    except asyncio.CancelledError:
        record("cancelled", context)
        raise


def finish(input: HoldInput, context: Context) -> dict[str, float]:
    if context.attempt in input.fail_attempts:
        record("failed", context)
        raise RuntimeError(f"attempt {context.attempt} of step {context.step_id} fails, as its input asks")
    value = sum(input.values) + input.add
    record("complete", context, value=value)
    return {"value": value}


@server.component(name="hold")
async def hold_component(input: HoldInput, context: Context) -> dict[str, float]:
    """Hold until released, then answer sum(values) + add."""
    record("start", context)
    await hold(context)
    return finish(input, context)


@server.component(name="record")
async def record_component(input: HoldInput, context: Context) -> dict[str, float]:
    """Answer sum(values) + add at once (a context component too, so its step and attempt are known)."""
    record("start", context)
    return finish(input, context)


@server.component(name="spawn")
async def spawn_component(input: SpawnInput, context: Context) -> dict[str, Any]:
    """Run ``flow`` as a sub-run (runs/submit with wait), then hold if asked."""
    record("start", context)
    flow_id = await context.put_blob(input.flow, "flow")
    params = SubmitRunParams(flow_id=flow_id, inputs=[{"values": input.values}], wait=True)
    status: RunStatus = await context._call(jsonrpc.RUNS_SUBMIT, params, RunStatus)
    record("submitted", context, subRun=status.run_id, subStatus=status.status)
    if input.hold_after:
        await hold(context)
    results = status.results or []
    output = results[0].result if results else None
    sub_value = output.get("result", {}).get("value") if isinstance(output, dict) else None
    value = (sub_value or 0) + input.add
    record("complete", context, value=value, subRun=status.run_id)
    return {"value": value, "subRun": status.run_id}


if __name__ == "__main__":
    serve(server, parse_settings(description=__doc__))
