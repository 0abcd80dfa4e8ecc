"""Affinity proxy vs HAProxy vs direct-to-pod, side by side in one run.

    python bench/bench_proxy.py [--pods upstream|ours] [--seconds 3] [--rounds 5] [--connections 1,16,64] [--floor]

Starts three pods (127.0.0.44-46:8080), a loopback DNS server, our proxy (logging and
metrics on, as shipped) and HAProxy (Debian package, round-robin over the same pods,
config written to a temp dir), then drives each with ``wrk`` posting the same
``components/execute`` of ``/double``. Prints req/s, p50 and p99 per target and
connection count, the throughput ratio ours/HAProxy and the p50 each proxy adds; then
the SSE first-event latency (a new connection per stream, as the runtime makes, POST of
``store_and_retrieve_blob`` until its first event arrives) for each target. ``--floor`` adds a
byte pass-through on uvloop (``passthrough_proxy.py``): what an asyncio proxy costs before
it parses anything. Needs the ``haproxy`` and ``wrk`` Debian packages.
"""

from __future__ import annotations

import argparse
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from local_fleet.dns_server import write_records
from tests.support.pods import POD_PORT, start_pod
from tests.support.processes import ManagedProcess, python_process

NAME = "component-server.stepflow-demo.svc.cluster.local"
PODS = ["127.0.0.44", "127.0.0.45", "127.0.0.46"]
HOST = "127.0.0.40"
DNS_PORT, OURS_PORT, OURS_METRICS_PORT, HAPROXY_PORT, FLOOR_PORT = 15440, 18440, 19440, 18441, 18442
FLOOR = "uvloop pass-through (floor)"
BODY = '{"jsonrpc":"2.0","id":"bench","method":"components/execute","params":{"component":"/double","input":{"value":3},"attempt":1,"observability":{}}}'
WRK_SCRIPT = f"""
wrk.method = "POST"
wrk.body = '{BODY}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
"""
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
{servers}
"""


@dataclass
class Result:
    target: str
    connections: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


def _milliseconds(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]  # wrk always prints this; if it did not, the AttributeError says so here
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(url: str, target: str, connections: int, seconds: int, script: Path) -> Result:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        check=True, capture_output=True, text=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]  # wrk always prints this; if it did not, the AttributeError says so here
    p50 = _milliseconds(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]  # wrk always prints this; if it did not, the AttributeError says so here
    p99 = _milliseconds(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]  # wrk always prints this; if it did not, the AttributeError says so here
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return Result(target, connections, rps, p50, p99, errors)


SSE_BODY = BODY.replace('"/double","input":{"value":3}', '"/store_and_retrieve_blob","input":{"data":{"k":1}}').encode()


def first_event_ms(host: str, port: int, samples: int) -> tuple[float, float]:
    """p50 and p99 of the time from connecting to the first SSE event of a stream."""
    request = (
        b"POST / HTTP/1.1\r\nhost: %s\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\n"
        b"content-length: %d\r\n\r\n%s" % (host.encode(), len(SSE_BODY), SSE_BODY)
    )
    timings = []
    for _ in range(samples):
        started = time.perf_counter()
        with socket.create_connection((host, port), timeout=5) as sock:
            sock.sendall(request)
            received = b""
            while b"\n\n" not in received.partition(b"\r\n\r\n")[2]:
                chunk = sock.recv(65536)
                if not chunk:
                    raise RuntimeError(f"stream from {host}:{port} ended before its first event: {received!r}")
                received += chunk
        timings.append((time.perf_counter() - started) * 1000)
    quantiles = statistics.quantiles(timings, n=100)
    return quantiles[49], quantiles[98]


def median_rounds(targets: dict[str, str], connections: int, args: argparse.Namespace, script: Path) -> list[Result]:
    """The machine is shared: rounds alternate between the targets, and each row is a target's median round by req/s."""
    rounds: dict[str, list[Result]] = {name: [] for name in targets}
    for _ in range(args.rounds):
        for name, url in targets.items():
            rounds[name].append(run_wrk(url, name, connections, args.seconds, script))
    return [sorted(results, key=lambda r: r.requests_per_second)[len(results) // 2] for results in rounds.values()]


def start_haproxy(workdir: Path) -> ManagedProcess:
    servers = "\n".join(f"    server pod{i} {address}:{POD_PORT}" for i, address in enumerate(PODS))
    config = workdir / "haproxy.cfg"
    config.write_text(HAPROXY_CONFIG.format(host=HOST, port=HAPROXY_PORT, servers=servers))
    haproxy = ManagedProcess("haproxy", ["haproxy", "-db", "-f", str(config)], workdir / "haproxy.log")
    haproxy.start()
    return haproxy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", choices=["upstream", "ours"], default="upstream")
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--connections", default="1,16,64")
    parser.add_argument("--sse-samples", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--floor", action="store_true", help="also measure a byte pass-through on uvloop (no parsing, routing, logs or metrics)")
    args = parser.parse_args()
    for tool in ("wrk", "haproxy"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: apt-get install {tool}")
    workdir = Path(tempfile.mkdtemp(prefix="bench-proxy-"))
    script = workdir / "post.lua"
    script.write_text(WRK_SCRIPT)
    records = workdir / "records.json"
    write_records(records, {NAME: PODS})
    processes: list[ManagedProcess] = []
    try:
        processes += [start_pod(args.pods, address, workdir) for address in PODS]
        processes.append(python_process("dns", ["-m", "local_fleet.dns_server", "--listen", f"{HOST}:{DNS_PORT}", "--records", str(records)], workdir).start())
        ours = python_process("proxy", ["-m", "affinity_proxy", "--listen", f"{HOST}:{OURS_PORT}", "--upstream", f"{NAME}:{POD_PORT}",
                                        "--dns-server", f"{HOST}:{DNS_PORT}", "--metrics-listen", f"{HOST}:{OURS_METRICS_PORT}"], workdir)
        processes.append(ours.start())
        processes.append(start_haproxy(workdir))
        if args.floor:
            pods = [f"{address}:{POD_PORT}" for address in PODS]
            processes.append(python_process("floor", [str(Path(__file__).with_name("passthrough_proxy.py")), f"{HOST}:{FLOOR_PORT}", *pods], workdir).start())
        ours.wait_healthy(f"http://{HOST}:{OURS_PORT}/health")
        _wait_members(OURS_PORT, len(PODS))
        targets = {
            "direct (1 pod)": f"http://{PODS[0]}:{POD_PORT}/",
            "haproxy": f"http://{HOST}:{HAPROXY_PORT}/",
            "ours": f"http://{HOST}:{OURS_PORT}/",
        }
        if args.floor:
            _wait_listening(HOST, FLOOR_PORT)
            targets[FLOOR] = f"http://{HOST}:{FLOOR_PORT}/"
        for url in targets.values():
            run_wrk(url, "warm-up", 8, 1, script)
        results = [result for c in map(int, args.connections.split(",")) for result in median_rounds(targets, c, args, script)]
        print_table(results, args)
        endpoints = {"direct (1 pod)": (PODS[0], POD_PORT), "haproxy": (HOST, HAPROXY_PORT), "ours": (HOST, OURS_PORT)}
        print(f"\n| SSE first event ({args.sse_samples} streams, new connection each) | p50 ms | p99 ms |\n|---|---|---|")
        for name, (host, port) in endpoints.items():
            p50, p99 = first_event_ms(host, port, args.sse_samples)
            print(f"| {name} | {p50:.3f} | {p99:.3f} |")
    finally:
        for process in reversed(processes):
            process.stop()


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
    import time

    import httpx

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if httpx.get(f"http://{HOST}:{port}/health").json()["members"]["active"] == count:
            return
        time.sleep(0.1)
    raise SystemExit("our proxy never saw all pods")


def print_table(results: list[Result], args: argparse.Namespace) -> None:
    print(f"\npods: {args.pods} x{len(PODS)}, wrk -t1, median of {args.rounds} alternating runs of {args.seconds}s per row, POST components/execute /double\n")
    print("| connections | target | req/s | p50 ms | p99 ms | errors | vs haproxy req/s | p50 added vs direct ms |")
    print("|---|---|---|---|---|---|---|---|")
    by_key = {(r.target, r.connections): r for r in results}
    for r in results:
        haproxy = by_key[("haproxy", r.connections)]
        direct = by_key[("direct (1 pod)", r.connections)]
        ratio = f"{r.requests_per_second / haproxy.requests_per_second:.2f}x" if r.target in ("ours", FLOOR) else ""
        added = f"{r.p50_ms - direct.p50_ms:+.3f}" if r.target != "direct (1 pod)" else ""
        print(f"| {r.connections} | {r.target} | {r.requests_per_second:,.0f} | {r.p50_ms:.3f} | {r.p99_ms:.3f} | {r.errors} | {ratio} | {added} |")


if __name__ == "__main__":
    main()
