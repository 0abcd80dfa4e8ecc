"""``python -m runtime_server submit``: store a flow, run it on one input or a batch, report.

Talks to the REST API only (rest-api.md §7.1, upstream's ``stepflow submit``): ``POST
/api/v1/flows``, then ``POST /api/v1/runs`` with every input as one run's items. It asks
for ``"wait": false`` and follows the run's item counts to draw progress; a server that
always waits (upstream) simply answers with the finished run. Exit status: 0 all items
succeeded (or ``--no-wait``), 1 some item failed, 2 the request could not be made.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import httpx
import yaml

TERMINAL = frozenset({"completed", "failed", "cancelled"})
POLL_SECONDS = 0.2
BAR_WIDTH = 30


class UsageError(Exception):
    """Something the user can fix: the message says what and where."""


class Unreachable(UsageError):
    """The runtime did not answer (restarting, or its store away: 503); worth asking again."""


RECONNECT_SECONDS = 0.5


# -- pure parts ----------------------------------------------------------------------------


def api_base(url: str) -> str:
    """Upstream joins absolute paths onto ``--url``, so any path the user gave is dropped."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if not parts.netloc:
        raise UsageError(f"--url {url!r} has no host")
    return f"{parts.scheme}://{parts.netloc}"


def parse_jsonl(text: str, source: str) -> list[Any]:
    """One JSON value per line; a trailing newline is fine, a blank line in the middle is not."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    values = []
    for number, line in enumerate(lines, start=1):
        try:
            values.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise UsageError(f"{source} line {number}: not JSON ({exc.msg}): {line[:80]!r}") from None
    return values


def load_document(path: Path, what: str) -> Any:
    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from None
    try:
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise UsageError(f"{what} {path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from None


@dataclass(frozen=True)
class Summary:
    succeeded: int
    failed: int
    seconds: float

    @property
    def runs_per_second(self) -> float:
        return (self.succeeded + self.failed) / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        return f"succeeded {self.succeeded}, failed {self.failed}, time {self.seconds:.2f}s, {self.runs_per_second:.1f} runs/s"


def summarize(results: list[Any], seconds: float) -> Summary:
    succeeded = sum(1 for result in results if isinstance(result, dict) and result.get("outcome") == "success")
    return Summary(succeeded, len(results) - succeeded, seconds)


def progress_bar(items: dict[str, int]) -> str:
    total = max(items.get("total", 0), 1)
    done = items.get("completed", 0) + items.get("failed", 0) + items.get("cancelled", 0)
    filled = BAR_WIDTH * done // total
    return f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{items.get('total', 0)} done, {items.get('failed', 0)} failed"


# -- the shell -----------------------------------------------------------------------------


class Api:
    """The REST calls ``submit`` makes; every failure becomes a UsageError naming the call."""

    def __init__(self, base: str, token: str | None, timeout: float) -> None:
        auth = {"authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(base_url=base, headers=auth, timeout=timeout)

    def close(self) -> None:
        self._client.close()

    def call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            response = self._client.request(method, path, json=body)
        except httpx.TransportError as exc:
            raise Unreachable(f"{method} {self._client.base_url}{path} failed: {exc or type(exc).__name__}") from None
        except httpx.HTTPError as exc:
            raise UsageError(f"{method} {self._client.base_url}{path} failed: {exc}") from None
        if response.status_code == 503:
            raise Unreachable(f"{method} {path} answered HTTP 503: {_message(response)}")
        if response.status_code >= 400:
            raise UsageError(f"{method} {path} answered HTTP {response.status_code}: {_message(response)}")
        try:
            return response.json()
        except ValueError:
            raise UsageError(f"{method} {path} answered HTTP {response.status_code} with no JSON: {response.text[:200]!r}") from None


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    return str(body.get("message") or body.get("error") or body) if isinstance(body, dict) else str(body)


def _inputs(args: argparse.Namespace) -> tuple[list[Any], bool]:
    """The items and whether this is a batch (``--inputs``)."""
    if args.inputs is not None:
        path = Path(args.inputs)
        try:
            return parse_jsonl(path.read_text(), str(path)), True
        except OSError as exc:
            raise UsageError(f"cannot read --inputs {path}: {exc.strerror}") from None
    if args.input_json is not None:
        return [_json_option("--input-json", args.input_json)], False
    if args.input is not None:
        return [load_document(Path(args.input), "--input")], False
    return [None], False


def _json_option(name: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{name} is not JSON ({exc.msg}): {text[:80]!r}") from None


def _store_flow(api: Api, flow: Any, err: TextIO) -> str:
    stored = api.call("POST", "/api/v1/flows", {"flow": flow, "dryRun": False})
    for diagnostic in stored.get("diagnostics", {}).get("diagnostics", []):
        if diagnostic.get("level") in ("fatal", "error"):
            print(f"{diagnostic.get('level')}: {diagnostic.get('formatted') or diagnostic.get('kind')} at {diagnostic.get('path', '$')}", file=err)
    if not stored.get("stored"):
        raise UsageError("the server did not store the flow (see the diagnostics above)")
    return str(stored["flowId"])


def _follow(api: Api, run: dict[str, Any], show_progress: bool, deadline: float, err: TextIO) -> dict[str, Any]:
    """Poll the run until it is terminal, redrawing the progress bar when it moves. A runtime
    that stops answering (a restart: a durable store resumes the run) is asked again until
    ``deadline``, and the user is told."""
    drawn = ""
    while run.get("status") not in TERMINAL:
        if time.monotonic() > deadline:
            raise UsageError(f"run {run.get('runId')} still {run.get('status')} when --timeout ran out")
        time.sleep(POLL_SECONDS)
        run = _reconnecting(api, f"/api/v1/runs/{run['runId']}", deadline, err)
        bar = progress_bar(run.get("items", {}))
        if show_progress and bar != drawn:
            print(f"\r{bar}", end="", file=err, flush=True)
            drawn = bar
    if show_progress:
        print(f"\r{progress_bar(run.get('items', {}))}", file=err, flush=True)
    return run


def _reconnecting(api: Api, path: str, deadline: float, err: TextIO) -> Any:
    """``GET path``, asked again while the runtime is unreachable, until ``deadline``."""
    lost: Unreachable | None = None
    while True:
        try:
            answer = api.call("GET", path)
        except Unreachable as exc:
            if time.monotonic() + RECONNECT_SECONDS > deadline:
                raise
            if lost is None:
                print(f"\nlost the runtime ({exc}); reconnecting and waiting for the run again", file=err, flush=True)
            lost = exc
            time.sleep(RECONNECT_SECONDS)
            continue
        if lost is not None:
            print("reconnected to the runtime; still waiting for the run", file=err, flush=True)
        return answer


def submit(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    flow = load_document(Path(args.flow), "--flow")
    inputs, batch = _inputs(args)
    if not inputs:
        print("no inputs: nothing submitted", file=err)
        return 0
    api = Api(api_base(args.url), args.token or os.environ.get("STEPFLOW_API_TOKEN"), args.timeout)
    try:
        started = time.monotonic()
        body: dict[str, Any] = {"flowId": _store_flow(api, flow, err), "input": inputs, "wait": False}
        if args.max_concurrent is not None:
            body["maxConcurrency"] = args.max_concurrent
        if args.overrides_json is not None:
            body["overrides"] = _json_option("--overrides-json", args.overrides_json)
        run = api.call("POST", "/api/v1/runs", body)
        if not args.wait:
            print(json.dumps({"runId": run.get("runId"), "status": run.get("status")}), file=out)
            return 0
        show = args.progress if args.progress is not None else err.isatty()
        run = _follow(api, run, show, started + args.timeout, err)
        if len(inputs) == 1 and "result" in run:
            results = [run["result"]]
        else:
            results = [item.get("result") for item in _reconnecting(api, f"/api/v1/runs/{run['runId']}/items", started + args.timeout, err)["items"]]
    finally:
        api.close()
    summary = summarize(results, time.monotonic() - started)
    _report(args, out, err, run, results, summary, batch)
    return 0 if summary.failed == 0 and run.get("status") == "completed" else 1


def _report(args: argparse.Namespace, out: TextIO, err: TextIO, run: dict[str, Any], results: list[Any], summary: Summary, batch: bool) -> None:
    if args.json:
        report = {
            "runId": run.get("runId"),
            "status": run.get("status"),
            "succeeded": summary.succeeded,
            "failed": summary.failed,
            "seconds": round(summary.seconds, 3),
            "runsPerSecond": round(summary.runs_per_second, 2),
            "results": results,
        }
        print(json.dumps(report), file=out)
        return
    target = open(args.output, "w") if args.output else out  # noqa: SIM115 - closed below
    try:
        if batch:
            for result in results:
                print(json.dumps(result), file=target)
        else:
            print(json.dumps(results[0], indent=2), file=target)
    finally:
        if target is not out:
            target.close()
    print(summary.line(), file=err)


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="python -m runtime_server")
    commands = main.add_subparsers(dest="command", required=True)
    cmd = commands.add_parser("submit", help="run a flow on one input or a batch of inputs")
    cmd.add_argument("--url", default="http://localhost:7840", help="the runtime (any path is ignored)")
    cmd.add_argument("--token", help="bearer token of the runtime API (default: $STEPFLOW_API_TOKEN)")
    cmd.add_argument("--flow", required=True, help="flow file, YAML or JSON")
    given = cmd.add_mutually_exclusive_group()
    given.add_argument("--input-json", help="one input as JSON")
    given.add_argument("--input", help="one input from a YAML or JSON file")
    given.add_argument("--inputs", help="a batch: one JSON input per line")
    cmd.add_argument("--max-concurrent", type=int, help="at most this many step executions of the batch at a time")
    cmd.add_argument("--overrides-json", help="step overrides as JSON")
    cmd.add_argument("--wait", action=argparse.BooleanOptionalAction, default=True, help="wait for the run to finish (default)")
    cmd.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None, help="draw a progress bar (default: when stderr is a terminal)")
    cmd.add_argument("--json", action="store_true", help="print one JSON report: run id, status, counts, time, results")
    cmd.add_argument("--output", help="write results here instead of stdout")
    cmd.add_argument("--timeout", type=float, default=3600.0, help="give up waiting after this many seconds")
    return main


def main(argv: list[str] | None = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    args = parser().parse_args(argv)
    if args.max_concurrent is not None and args.max_concurrent < 1:
        print("error: --max-concurrent must be at least 1", file=err)
        return 2
    try:
        return submit(args, out, err)
    except UsageError as exc:
        print(f"error: {exc}", file=err)
        return 2
