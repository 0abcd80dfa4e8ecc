"""Our demo pod against stepflow-py 0.9.2's, side by side in one run.

    python bench/bench_component_server.py [--seconds 1.5] [--rounds 3] [--dispatch-calls 20000]

Starts both pods on loopback (ours on 127.0.0.38, upstream on 127.0.0.39, port 8080),
drives each with the same raw keep-alive HTTP/1.1 client (httpx would be the
bottleneck), and prints req/s, p50, p99 and ours/theirs. ``store_and_retrieve_blob``
answers over SSE; the benchmark plays the runtime and answers both callbacks with
POSTs carrying the instance header. A second table times JSON-RPC dispatch alone:
jsonrpcserver against the msgspec path the pod uses (docs/decisions.md). Needs the
``interop`` and ``bench`` extras (``scripts/setup test,interop,bench``).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.pods import POD_PORT, start_pod
from wire_protocol import jsonrpc
from wire_protocol.sse import EventStreamDecoder

OURS, THEIRS = "127.0.0.38", "127.0.0.39"
MAX_REQUESTS_PER_RUN = 200_000
WARM_UP_SECONDS = 0.5


def execute_body(request_id: str, component: str, value: Any) -> bytes:
    params = {"component": component, "input": value, "attempt": 1, "observability": {"run_id": "bench", "step_id": "s"}}
    return jsonrpc.request(request_id, jsonrpc.COMPONENTS_EXECUTE, params)


class Connection:
    """One keep-alive HTTP/1.1 connection speaking just enough of the protocol for the pods."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self._reader, self._writer, self._host = reader, writer, host

    @classmethod
    async def open(cls, host: str) -> Connection:
        reader, writer = await asyncio.open_connection(host, POD_PORT)
        return cls(reader, writer, host)

    def close(self) -> None:
        self._writer.close()

    async def post(self, body: bytes, extra_headers: bytes = b"") -> tuple[int, dict[bytes, bytes]]:
        head = (
            b"POST / HTTP/1.1\r\nhost: " + self._host.encode() + b"\r\ncontent-type: application/json\r\n"
            b"accept: application/json, text/event-stream\r\n" + extra_headers + b"content-length: " + str(len(body)).encode() + b"\r\n\r\n"
        )
        self._writer.write(head + body)
        raw = await self._reader.readuntil(b"\r\n\r\n")
        lines = raw.split(b"\r\n")
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
        return int(lines[0].split(b" ", 2)[1]), headers

    async def body(self, headers: dict[bytes, bytes]) -> bytes:
        return await self._reader.readexactly(int(headers[b"content-length"]))

    async def chunks(self) -> AsyncIterator[bytes]:
        """The chunks of a chunked body, as the server wrote them."""
        while True:
            size = int((await self._reader.readuntil(b"\r\n"))[:-2], 16)
            if size == 0:
                await self._reader.readuntil(b"\r\n")
                return
            yield (await self._reader.readexactly(size + 2))[:-2]


async def call_double(main: Connection, _: Connection, request_id: str) -> None:
    status, headers = await main.post(execute_body(request_id, "/double", {"value": 3}))
    body = await main.body(headers)
    if status != 200 or b'"result":6.0' not in body:
        raise RuntimeError(f"double failed: {status} {body[:200]!r}")


async def call_blob(main: Connection, answers: Connection, request_id: str) -> None:
    """Execute store_and_retrieve_blob and answer its blobs/put and blobs/get like the runtime."""
    data = {"request": request_id, "payload": "x" * 64}
    status, headers = await main.post(execute_body(request_id, "/store_and_retrieve_blob", {"data": data}))
    instance = b"stepflow-instance-id: " + headers[b"stepflow-instance-id"] + b"\r\n"
    decoder, blobs = EventStreamDecoder(), {}
    async for chunk in main.chunks():
        for event in decoder.feed(chunk):
            message = msgspec.json.decode(event)
            if message.get("method") == jsonrpc.BLOBS_PUT:
                stored = msgspec.json.encode(message["params"]["data"])
                blob_id = hashlib.sha256(stored).hexdigest()
                blobs[blob_id] = message["params"]["data"]
                reply = jsonrpc.success(message["id"], {"blob_id": blob_id})
            elif message.get("method") == jsonrpc.BLOBS_GET:
                reply = jsonrpc.success(message["id"], {"data": blobs[message["params"]["blob_id"]], "blob_type": "data"})
            elif message.get("id") == request_id and "result" in message:
                continue
            else:
                raise RuntimeError(f"blob execution failed: {event[:300]}")
            answer_status, answer_headers = await answers.post(reply, instance)
            await answers.body(answer_headers)
            if answer_status != 202:
                raise RuntimeError(f"callback answer refused: {answer_status}")
    if status != 200:
        raise RuntimeError(f"blob execute answered {status}")


@dataclass
class Figures:
    requests_per_second: float
    p50_ms: float
    p99_ms: float


async def drive(host: str, call: Callable[..., Any], concurrency: int, seconds: float) -> Figures:
    """``concurrency`` workers, each on its own connections, calling until the deadline."""
    latencies: list[float] = []
    counter = iter(range(MAX_REQUESTS_PER_RUN))

    async def worker(index: int, deadline: float, record: bool) -> None:
        main, answers = await Connection.open(host), await Connection.open(host)
        try:
            for number in counter:
                if time.perf_counter() >= deadline:
                    return
                started = time.perf_counter()
                await call(main, answers, f"w{index}-{number}")
                if record:
                    latencies.append(time.perf_counter() - started)
        finally:
            main.close()
            answers.close()

    await asyncio.gather(*(worker(i, time.perf_counter() + min(WARM_UP_SECONDS, seconds), False) for i in range(concurrency)))  # warm-up
    counter = iter(range(MAX_REQUESTS_PER_RUN))
    started = time.perf_counter()
    await asyncio.gather(*(worker(i, started + seconds, True) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return Figures(len(latencies) / elapsed, latencies[len(latencies) // 2] * 1000, latencies[int(len(latencies) * 0.99)] * 1000)


SCENARIOS = [("double", call_double, 1), ("double", call_double, 16), ("store_and_retrieve_blob", call_blob, 1), ("store_and_retrieve_blob", call_blob, 16)]


def pods_table(seconds: float, rounds: int) -> None:
    """Ours and theirs alternate for ``rounds`` rounds; each side's best round is reported, so a burst of other work on the shared machine hurts neither."""
    import uvloop

    with tempfile.TemporaryDirectory(prefix="bench-pods-") as log_dir:
        pods = [start_pod("ours", OURS, Path(log_dir)), start_pod("upstream", THEIRS, Path(log_dir))]
        try:
            print(
                f"{'scenario':<28} {'conc':>4} | {'ours req/s':>10} {'p50 ms':>7} {'p99 ms':>7} | {'theirs req/s':>12} {'p50 ms':>7} {'p99 ms':>7} | {'ours/theirs':>11}"
            )
            for name, call, concurrency in SCENARIOS:
                pairs = [(uvloop.run(drive(OURS, call, concurrency, seconds)), uvloop.run(drive(THEIRS, call, concurrency, seconds))) for _ in range(rounds)]
                ours = max((pair[0] for pair in pairs), key=lambda figures: figures.requests_per_second)
                theirs = max((pair[1] for pair in pairs), key=lambda figures: figures.requests_per_second)
                print(
                    f"{name:<28} {concurrency:>4} | {ours.requests_per_second:>10.0f} {ours.p50_ms:>7.2f} {ours.p99_ms:>7.2f} | "
                    f"{theirs.requests_per_second:>12.0f} {theirs.p50_ms:>7.2f} {theirs.p99_ms:>7.2f} | {ours.requests_per_second / theirs.requests_per_second:>10.2f}x",
                    flush=True,
                )
        finally:
            for pod in pods:
                pod.stop()


def dispatch_table(calls: int = 20_000) -> None:
    """Decode + dispatch + encode one components/execute of double, no HTTP."""
    import jsonrpcserver

    from component_server.demo import server
    from component_server.dispatch import ExecuteJob, dispatch
    from component_server.execution import execute

    body = execute_body("1", "/double", {"value": 3})

    @jsonrpcserver.method(name=jsonrpc.COMPONENTS_EXECUTE)
    def components_execute(component: str, input: Any, attempt: int, observability: dict[str, Any]) -> jsonrpcserver.Result:
        entry = server.get(component)
        assert entry is not None
        return jsonrpcserver.Success({"output": msgspec.to_builtins(entry.function(entry.parse_input(input)))})

    def ours() -> None:
        job = dispatch(jsonrpc.decode_envelope(body), server, lambda _: False)
        assert isinstance(job, ExecuteJob)
        coroutine = execute(job.component, job.request_id, job.params, None)
        try:
            coroutine.send(None)
        except StopIteration:
            pass

    text = body.decode()
    candidates = {
        "msgspec envelope + dispatch (ours)": ours,
        "jsonrpcserver, default validation": lambda: jsonrpcserver.dispatch(text),
        "jsonrpcserver, validation off": lambda: jsonrpcserver.dispatch(text, validator=lambda _: None),
    }
    timings = {}
    for label, run in candidates.items():
        started = time.perf_counter()
        for _ in range(calls):
            run()
        timings[label] = (time.perf_counter() - started) / calls * 1e6
    baseline = timings["msgspec envelope + dispatch (ours)"]
    print(f"\n{'dispatch of components/execute (no HTTP)':<40} | {'us/msg':>7} | {'msgs/s':>8} | {'cost vs ours':>12}")
    for label, micros in timings.items():
        print(f"{label:<40} | {micros:>7.1f} | {1e6 / micros:>8.0f} | {micros / baseline:>11.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=1.5, help="measured seconds per round, scenario and pod")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per scenario (at most 9)")
    parser.add_argument("--dispatch-calls", type=int, default=20_000, help="messages per candidate in the dispatch table")
    args = parser.parse_args()
    print("Shared 2-core machine; client, both pods and other work compete for the same cores.\n")
    pods_table(args.seconds, min(max(args.rounds, 1), 9))
    dispatch_table(max(args.dispatch_calls, 1))


if __name__ == "__main__":
    main()
