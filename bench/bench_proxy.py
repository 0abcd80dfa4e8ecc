"""Affinity proxy vs HAProxy vs direct-to-pod, side by side in one run.

    python bench/bench_proxy.py [--pods fast|upstream|ours] [--generator wrk|h2load] [--seconds 3] [--rounds 5] [--connections 1,16,64] [--floor] [--compare DIR]
    python bench/bench_proxy.py --in-process N [--compare DIR]

Starts three pods (127.0.0.44-46:8080), a loopback DNS server, our proxy (logging and
metrics on, as shipped) and HAProxy (Debian package, one thread, round-robin over the same
pods and pinned on ``Stepflow-Instance-Id`` as ours, config written to a temp dir), then
drives each with ``wrk`` posting the same ``components/execute`` of ``/double``: every
second request carries a ``Stepflow-Instance-Id`` pin (the three pods in turn), the others
are routed round-robin. Prints req/s, p50, p99 and the proxy process's CPU per request
(user + system, from /proc) per target and connection count, the throughput ratio
against HAProxy and the p50 each proxy adds. Pods: ``fast`` (default, ``fast_pod.py``:
answers in microseconds, so the proxy is the bottleneck), ``upstream`` (stepflow-py 0.9.2)
or ``ours``; with real pods it then measures the SSE first-event latency (a new connection
per stream, as the runtime makes, POST of ``store_and_retrieve_blob`` until its first
event arrives). ``--floor`` adds a byte pass-through on uvloop (``passthrough_proxy.py``):
what an asyncio proxy costs before it parses anything. Needs the ``haproxy`` and ``wrk``
Debian packages. ``--generator h2load`` drives every target with nghttp2's h2load over HTTP/1.1
instead (Debian's ``nghttp2-client``): another client, whose requests are all routed round-robin
(it sends one request shape, so none is pinned). ``--in-process N`` measures only the proxy's Python per request: its protocol
objects driven in this process with the tests' fake transports (CPU µs and the exact, repeatable
count of interpreted Python calls per request: mypyc-compiled functions are not counted), for this
checkout (compiled when built, then as Python) and ``--compare``'s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import affinity_proxy
from local_fleet.dns_server import write_records
from tests.support.pods import POD_PORT, start_pod
from tests.support.processes import ManagedProcess, python_process

NAME = "component-server.stepflow-demo.svc.cluster.local"
PODS = ["127.0.0.44", "127.0.0.45", "127.0.0.46"]
HOST = "127.0.0.40"
DNS_PORT, OURS_PORT, OURS_METRICS_PORT, HAPROXY_PORT, FLOOR_PORT, OTHER_PORT, OTHER_METRICS_PORT = 15440, 18440, 19440, 18441, 18442, 18443, 19443
FLOOR = "uvloop pass-through (floor)"
DIRECT = "direct (1 pod)"
BODY = '{"jsonrpc":"2.0","id":"bench","method":"components/execute","params":{"component":"/double","input":{"value":3},"attempt":1,"observability":{}}}'
WRK_SCRIPT = """
local body = '%(body)s'
local pins = {%(pins)s}
local requests = {}
local n = 0
init = function(args)
  local plain = {["Content-Type"] = "application/json", ["Accept"] = "application/json, text/event-stream"}
  for _, pin in ipairs(pins) do
    requests[#requests + 1] = wrk.format("POST", "/", plain, body)
    local pinned = {["Stepflow-Instance-Id"] = pin}
    for k, v in pairs(plain) do pinned[k] = v end
    requests[#requests + 1] = wrk.format("POST", "/", pinned, body)
  end
end
request = function()
  n = n %% #requests + 1
  return requests[n]
end
"""
"""Every second request is pinned, to each pod in turn; the others go round-robin."""
HAPROXY_CONFIG = """
global
    maxconn 4096
    nbthread 1
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    option http-keep-alive
frontend bench
    bind {host}:{port}
    default_backend pods
backend pods
    balance roundrobin
    http-reuse always
{pins}
{servers}
"""
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
LOADS = {"wrk": "wrk -t1, half the requests pinned", "h2load": "h2load --h1 -t1, none of the requests pinned"}
PACKAGES = {"haproxy": "haproxy", "wrk": "wrk", "h2load": "nghttp2-client"}
"""The Debian package of each tool the bench runs."""


@dataclass
class Result:
    target: str
    connections: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_us_per_request: float | None
    """The proxy process's user + system CPU over the run divided by the requests it served (None: no proxy)."""


def _field(pattern: str, out: str) -> str:
    """A figure the load generator always prints; if it did not, say which and show what it printed."""
    found = re.search(pattern, out)
    if found is None:
        raise RuntimeError(f"the load generator printed no {pattern!r}:\n{out}")
    return found.group(1)


def _milliseconds(text: str) -> float:
    found = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if found is None:
        raise RuntimeError(f"not a wrk duration: {text!r}")
    value, unit = found.groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


Load = Callable[[str, str, int, int, "int | None"], Result]
"""One run of the load generator: (url, target, connections, seconds, the proxy's pid) -> its result."""


def run_measured(command: list[str], pid: int | None) -> tuple[str, float | None]:
    """Run a load generator: what it printed, and the proxy's CPU seconds over the run (None: no proxy)."""
    cpu_before = cpu_seconds(pid) if pid is not None else 0.0
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return out, cpu_seconds(pid) - cpu_before if pid is not None else None


def per_request_us(cpu: float | None, requests: int) -> float | None:
    return cpu * 1e6 / requests if cpu is not None and requests else None


def wrk_load(workdir: Path, instance_ids: list[str]) -> Load:
    """wrk with the Lua script of ``WRK_SCRIPT``: every second request pinned."""
    script = workdir / "post.lua"
    script.write_text(WRK_SCRIPT % {"body": BODY, "pins": ", ".join(f'"{pin}"' for pin in instance_ids)})
    return lambda url, target, connections, seconds, pid: run_wrk(script, url, target, connections, seconds, pid)


def run_wrk(script: Path, url: str, target: str, connections: int, seconds: int, pid: int | None = None) -> Result:
    out, cpu = run_measured(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url], pid)
    rps = float(_field(r"Requests/sec:\s+([\d.]+)", out))
    total = int(_field(r"(\d+) requests in", out))
    p50 = _milliseconds(_field(r"\s50%\s+(\S+)", out))
    p99 = _milliseconds(_field(r"\s99%\s+(\S+)", out))
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return Result(target, connections, rps, p50, p99, errors, per_request_us(cpu, total))


def h2load_load(workdir: Path) -> Load:
    """h2load (nghttp2) over HTTP/1.1: another client's timing and framing; it sends one request
    shape, so every request is routed round-robin (none pinned)."""
    body = workdir / "body.json"
    body.write_text(BODY)
    log = workdir / "h2load.log"
    return lambda url, target, connections, seconds, pid: run_h2load(body, log, url, target, connections, seconds, pid)


def run_h2load(body: Path, log: Path, url: str, target: str, connections: int, seconds: int, pid: int | None = None) -> Result:
    """p50 and p99 from h2load's per-request log (its summary has only mean and spread), which h2load
    appends to: it is removed before each run."""
    log.unlink(missing_ok=True)
    command = ["h2load", "--h1", "-t1", f"-c{connections}", f"-D{seconds}", "-d", str(body), "-H", "content-type: application/json", f"--log-file={log}", url]
    out, cpu = run_measured(command, pid)
    rps = float(_field(r"finished in [\d.]+m?s, ([\d.]+) req/s", out))
    counts = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out)
    if counts is None:
        raise RuntimeError(f"h2load printed no request counts:\n{out}")
    done, succeeded = map(int, counts.groups())
    statuses = [line.split("\t") for line in log.read_text().splitlines() if line]
    durations_ms = sorted(int(fields[2]) / 1000 for fields in statuses)
    errors = done - succeeded + sum(1 for fields in statuses if not fields[1].startswith("2"))
    p50, p99 = (statistics.quantiles(durations_ms, n=100)[i] for i in (49, 98)) if len(durations_ms) > 1 else (0.0, 0.0)
    return Result(target, connections, rps, p50, p99, errors, per_request_us(cpu, done))


SSE_BODY = BODY.replace('"/double","input":{"value":3}', '"/store_and_retrieve_blob","input":{"data":{"k":1}}').encode()


def first_event_ms(host: str, port: int, samples: int) -> tuple[float, float]:
    """p50 and p99 of the time from connecting to the first SSE event of a stream; TimeoutError naming
    the stream if one has none within 5 s."""
    request = (
        b"POST / HTTP/1.1\r\nhost: %s\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\n"
        b"content-length: %d\r\n\r\n%s" % (host.encode(), len(SSE_BODY), SSE_BODY)
    )
    timings = []
    for index in range(samples):
        started = time.perf_counter()
        with socket.create_connection((host, port), timeout=5) as sock:
            sock.sendall(request)
            received = b""
            while b"\n\n" not in received.partition(b"\r\n\r\n")[2]:
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    raise TimeoutError(f"stream {index + 1} had no event within 5 s") from None
                if not chunk:
                    raise RuntimeError(f"stream from {host}:{port} ended before its first event: {received!r}")
                received += chunk
        timings.append((time.perf_counter() - started) * 1000)
    quantiles = statistics.quantiles(timings, n=100)
    return quantiles[49], quantiles[98]


def median_rounds(targets: dict[str, tuple[str, int | None]], connections: int, args: argparse.Namespace, load: Load) -> list[Result]:
    """The machine is shared: rounds alternate between the targets, and each row is a target's median round by req/s."""
    rounds: dict[str, list[Result]] = {name: [] for name in targets}
    for _ in range(args.rounds):
        for name, (url, pid) in targets.items():
            rounds[name].append(load(url, name, connections, args.seconds, pid))
    return [sorted(results, key=lambda r: r.requests_per_second)[len(results) // 2] for results in rounds.values()]


def start_haproxy(workdir: Path, instance_ids: list[str]) -> ManagedProcess:
    """Round-robin, and a request pinned to an instance goes to that instance's server, as ours does."""
    servers = "\n".join(f"    server pod{i} {address}:{POD_PORT}" for i, address in enumerate(PODS))
    pins = "\n".join(f"    use-server pod{i} if {{ req.hdr(stepflow-instance-id) -m str {pin} }}" for i, pin in enumerate(instance_ids))
    config = workdir / "haproxy.cfg"
    config.write_text(HAPROXY_CONFIG.format(host=HOST, port=HAPROXY_PORT, pins=pins, servers=servers))
    haproxy = ManagedProcess("haproxy", ["haproxy", "-db", "-f", str(config)], workdir / "haproxy.log")
    haproxy.start()
    return haproxy


def start_ours(name: str, checkout: Path | None, port: int, metrics_port: int, workdir: Path) -> ManagedProcess:
    """Our proxy as shipped (logging, metrics, DNS discovery on); from ``checkout`` instead of this tree if given."""
    flags = [
        "--listen",
        f"{HOST}:{port}",
        "--upstream",
        f"{NAME}:{POD_PORT}",
        "--dns-server",
        f"{HOST}:{DNS_PORT}",
        "--metrics-listen",
        f"{HOST}:{metrics_port}",
    ]
    if checkout is None:
        return python_process(name, ["-m", "affinity_proxy", *flags], workdir).start()
    code = f"import sys; sys.path.insert(0, {str(checkout.resolve())!r}); sys.argv[1:] = {flags!r}; from affinity_proxy.__main__ import main; main()"
    return python_process(name, ["-c", code], workdir).start()


def start_pods(kind: str, workdir: Path) -> list[ManagedProcess]:
    if kind != "fast":
        return [start_pod(kind, address, workdir) for address in PODS]
    script = str(Path(__file__).with_name("fast_pod.py"))
    pods = [python_process(f"fast-pod-{address}", [script, f"{address}:{POD_PORT}", fast_instance_id(address)], workdir).start() for address in PODS]
    for pod, address in zip(pods, PODS, strict=True):
        pod.wait_healthy(f"http://{address}:{POD_PORT}/health")
    return pods


def fast_instance_id(address: str) -> str:
    return f"fast-pod-{address.rsplit('.', 1)[1]}"


def instance_id_of(address: str) -> str:
    import httpx

    return httpx.get(f"http://{address}:{POD_PORT}/health").json()["instanceId"]


IN_PROCESS_ANSWER = b'{"jsonrpc":"2.0","id":"bench","result":{"outcome":"success","result":{"doubled":6}}}'


def in_process(requests: int) -> tuple[float, float]:
    """(CPU µs, Python calls) per request of the proxy's protocol objects alone, in this process.

    The real parsers, pipeline, accounting and batched log lines (to /dev/null), three pods,
    the bench's requests (half pinned), on uvloop as shipped; the transports are the tests' fakes, so
    no syscalls are counted (the fakes' Python methods are). The call count is exact and repeatable
    on a loaded machine; the time is the best of three batches.
    """
    import cProfile
    import logging
    import pstats

    import uvloop

    from telemetry.log_batching import batch_log_writes
    from telemetry.logs import configure_logging
    from tests.affinity_proxy.in_process import FakeTransport, Rig

    class Discard(FakeTransport):
        def write(self, data: bytes | bytearray | memoryview) -> None:
            pass

    pins = [None, "pod-a", None, "pod-b", None, "pod-c"]
    heads = [
        b"POST / HTTP/1.1\r\nHost: 127.0.0.40\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
        + (b"Stepflow-Instance-Id: %s\r\n" % pin.encode() if pin else b"")
        for pin in pins
    ]
    requests_bytes = [head + b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY.encode()) for head in heads]
    answer = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(IN_PROCESS_ANSWER), IN_PROCESS_ANSWER)

    async def run(devnull: TextIO) -> tuple[float, float]:
        configure_logging("affinity-proxy", "info")
        logging.getLogger().handlers[0].setStream(devnull)  # type: ignore[attr-defined]  # configure_logging's StreamHandler
        batch = batch_log_writes()
        rig = Rig(["pod-a", "pod-b", "pod-c"])
        pods = [rig.pod_connection(pod) for pod in ("pod-a", "pod-b", "pod-c")]
        client = rig.client()
        for transport in (*(pod.transport for pod in pods), client._transport):
            transport.__class__ = Discard

        async def one(index: int) -> None:
            client.data_received(requests_bytes[index % len(requests_bytes)])
            for pod in pods:
                if pod.sink is not None:
                    pod.data_received(answer)
                    break
            await asyncio.sleep(0)  # the loop turn after the reads: the outbox's flush runs, as shipped

        for index in range(requests):  # warm-up: every route, pool and log piece made
            await one(index)
        best = float("inf")
        for _ in range(3):
            started = time.process_time()
            for index in range(requests):
                await one(index)
            best = min(best, time.process_time() - started)
        profile = cProfile.Profile()
        profile.enable()
        for index in range(requests):
            await one(index)
        profile.disable()
        calls = pstats.Stats(profile).total_calls  # type: ignore[attr-defined]  # set by pstats
        if batch is not None:
            batch.detach()
        return best / requests * 1e6, calls / requests

    with open(os.devnull, "w") as devnull:
        return uvloop.run(run(devnull))  # the loop the proxy runs on: its call_soon is C, as shipped


def forget_tree_modules() -> None:
    """Drop this tree's modules the bench imported, so ``in_process`` imports another checkout's."""
    for name in [name for name in sys.modules if name.split(".")[0] in ("affinity_proxy", "telemetry", "tests", "local_fleet", "wire_protocol")]:
        del sys.modules[name]


def print_in_process(requests: int, compare: Path | None) -> None:
    """The in-process figures of this checkout (compiled when built, then as Python) and of ``compare``, each in a fresh interpreter."""
    print(
        f"\nin process ({requests} requests, fake transports: Python only)\n\n"
        "| proxy | compiled | CPU µs/request | Python calls/request (interpreted ones) |\n|---|---|---|---|"
    )
    here = Path(__file__).resolve().parents[1]
    if in_process_row("ours", here, requests, compiled=True):
        in_process_row("ours as Python", here, requests, compiled=False)
    if compare is not None:
        in_process_row(f"ours from {compare}", compare, requests, compiled=True)


def in_process_row(name: str, checkout: Path, requests: int, compiled: bool) -> bool:
    """Print one row of ``print_in_process``; whether it ran compiled modules."""
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import bench_proxy; bench_proxy.forget_tree_modules(); "
        f"sys.path.insert(0, {str(checkout.resolve())!r}); import affinity_proxy; "
        f"print(*bench_proxy.in_process({requests}), getattr(affinity_proxy, 'COMPILED', False))"
    )
    env = {**os.environ, "AFFINITY_PROXY_COMPILED": "1" if compiled else "0"}
    out = subprocess.run([sys.executable, "-c", code], cwd=checkout, env=env, capture_output=True, text=True, check=True).stdout.split()
    ran_compiled = out[2] == "True"
    print(f"| {name} | {'yes' if ran_compiled else 'no'} | {float(out[0]):.1f} | {float(out[1]):.0f} |")
    return ran_compiled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", choices=["fast", "upstream", "ours"], default="fast")
    parser.add_argument("--generator", choices=["wrk", "h2load"], default="wrk", help="the load generator (h2load: none of its requests pinned)")
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--connections", default="1,16,64")
    parser.add_argument("--sse-samples", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--floor", action="store_true", help="also measure a byte pass-through on uvloop (no parsing, routing, logs or metrics)")
    parser.add_argument("--compare", type=Path, help="also measure the proxy of another checkout (e.g. the previous version), in the same rounds")
    parser.add_argument("--in-process", type=int, metavar="N", help="only the proxy's Python per request, in process, over N requests (no pods or wrk)")
    args = parser.parse_args()
    if args.in_process:
        print_in_process(args.in_process, args.compare)
        return
    for tool in ("haproxy", args.generator):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: apt-get install {PACKAGES[tool]}")
    if not affinity_proxy.COMPILED:
        print("note: ours runs as Python (its compiled modules are not built from these sources): python -m affinity_proxy.build_compiled", file=sys.stderr)
    workdir = Path(tempfile.mkdtemp(prefix="bench-proxy-"))
    records = workdir / "records.json"
    write_records(records, {NAME: PODS})
    processes: list[ManagedProcess] = []
    try:
        processes += start_pods(args.pods, workdir)
        instance_ids = [instance_id_of(address) for address in PODS]
        load = wrk_load(workdir, instance_ids) if args.generator == "wrk" else h2load_load(workdir)
        processes.append(python_process("dns", ["-m", "local_fleet.dns_server", "--listen", f"{HOST}:{DNS_PORT}", "--records", str(records)], workdir).start())
        ours = start_ours("proxy", None, OURS_PORT, OURS_METRICS_PORT, workdir)
        processes.append(ours)
        haproxy = start_haproxy(workdir, instance_ids)
        processes.append(haproxy)
        targets: dict[str, tuple[str, int | None]] = {
            DIRECT: (f"http://{PODS[0]}:{POD_PORT}/", None),
            "haproxy": (f"http://{HOST}:{HAPROXY_PORT}/", haproxy.pid),
            "ours": (f"http://{HOST}:{OURS_PORT}/", ours.pid),
        }
        if args.compare is not None:
            other = start_ours("proxy-compared", args.compare, OTHER_PORT, OTHER_METRICS_PORT, workdir)
            processes.append(other)
            targets[f"ours from {args.compare}"] = (f"http://{HOST}:{OTHER_PORT}/", other.pid)
            other.wait_healthy(f"http://{HOST}:{OTHER_PORT}/health")
            _wait_members(OTHER_PORT, len(PODS))
        if args.floor:
            pods = [f"{address}:{POD_PORT}" for address in PODS]
            floor = python_process("floor", [str(Path(__file__).with_name("passthrough_proxy.py")), f"{HOST}:{FLOOR_PORT}", *pods], workdir).start()
            processes.append(floor)
            targets[FLOOR] = (f"http://{HOST}:{FLOOR_PORT}/", floor.pid)
            _wait_listening(HOST, FLOOR_PORT)
        ours.wait_healthy(f"http://{HOST}:{OURS_PORT}/health")
        _wait_members(OURS_PORT, len(PODS))
        _wait_listening(HOST, HAPROXY_PORT)
        for url, _ in targets.values():
            load(url, "warm-up", 8, 1, None)
        results = [result for c in map(int, args.connections.split(",")) for result in median_rounds(targets, c, args, load)]
        print_table(results, args)
        if args.pods != "fast":
            print_first_events(args.sse_samples)
    finally:
        for process in reversed(processes):
            process.stop()


def print_first_events(samples: int) -> None:
    # HAProxy last: it keeps a pod connection open after its client left a waiting stream, so the pods
    # fill up (64 executions each; 503 after ~190 streams) and whatever is measured after it stalls.
    endpoints = {DIRECT: (PODS[0], POD_PORT), "ours": (HOST, OURS_PORT), "haproxy": (HOST, HAPROXY_PORT)}
    print(f"\n| SSE first event ({samples} streams, new connection each) | p50 ms | p99 ms |\n|---|---|---|")
    for name, (host, port) in endpoints.items():
        try:
            p50, p99 = first_event_ms(host, port, samples)
        except TimeoutError as stalled:
            print(f"| {name} | {stalled} | |")
            continue
        print(f"| {name} | {p50:.3f} | {p99:.3f} |")


def _wait_listening(host: str, port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listening on {host}:{port}")


def _wait_members(port: int, count: int) -> None:
    import httpx

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if httpx.get(f"http://{HOST}:{port}/health").json()["members"]["active"] == count:
            return
        time.sleep(0.1)
    raise SystemExit("our proxy never saw all pods")


def print_table(results: list[Result], args: argparse.Namespace) -> None:
    print(
        f"\npods: {args.pods} x{len(PODS)}, {LOADS[args.generator]}, median of {args.rounds} alternating runs of {args.seconds}s per row,"
        " POST components/execute /double\n"
    )
    print("| connections | target | req/s | p50 ms | p99 ms | errors | proxy CPU µs/request | vs haproxy req/s | p50 added vs direct ms | p50 vs haproxy ms |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    by_key = {(r.target, r.connections): r for r in results}
    for r in results:
        haproxy = by_key[("haproxy", r.connections)]
        direct = by_key[(DIRECT, r.connections)]
        ratio = f"{r.requests_per_second / haproxy.requests_per_second:.2f}x" if r.target not in ("haproxy", DIRECT) else ""
        added = f"{r.p50_ms - direct.p50_ms:+.3f}" if r.target != DIRECT else ""
        versus = f"{r.p50_ms - haproxy.p50_ms:+.3f}" if r.target not in ("haproxy", DIRECT) else ""
        cpu = f"{r.cpu_us_per_request:.1f}" if r.cpu_us_per_request is not None else ""
        print(
            f"| {r.connections} | {r.target} | {r.requests_per_second:,.0f} | {r.p50_ms:.3f} | {r.p99_ms:.3f} | {r.errors} | {cpu} | {ratio} | {added} | {versus} |"
        )


if __name__ == "__main__":
    main()
