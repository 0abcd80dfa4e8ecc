#!/usr/bin/env python3
"""The demo pod that writes down the trace headers of every POST it gets.

``header_pod.py --header-log FILE --host H --port P [the demo pod's other options]``:
same SDK, HTTP shell and components as ``component_server.demo``; ``FILE`` gets one JSON
line per POST, before the pod handles it: ``{"pod", "traceparent", "tracestate",
"stepflow-instance-id"}`` (null when absent), so a test sees exactly what the proxy passed
on, for execute requests and callback answers alike. Pods may share one file.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import Any

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from component_server import parse_settings, serve
from component_server.app import ComponentApp
from component_server.demo import server

RECORDED = (b"traceparent", b"tracestate", b"stepflow-instance-id")


def header_line(pod: str, raw: list[tuple[bytes, bytes]]) -> bytes:
    found = {name: value for name, value in raw if name in RECORDED}
    line = {"pod": pod, **{name.decode(): found[name].decode("latin-1") if name in found else None for name in RECORDED}}
    return msgspec.json.encode(line) + b"\n"


def recording_app(log_path: str) -> type[ComponentApp]:
    descriptor = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    pod = os.environ.get("POD_NAME", "")

    class HeaderRecordingApp(ComponentApp):
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["method"] == "POST":
                os.write(descriptor, header_line(pod, scope["headers"]))
            await super().__call__(scope, receive, send)

    return HeaderRecordingApp


if __name__ == "__main__":
    ours = argparse.ArgumentParser(add_help=False)
    ours.add_argument("--header-log", required=True)
    known, rest = ours.parse_known_args()
    serving = importlib.import_module("component_server.serve")  # the module: the package's attribute "serve" is the function
    serving.ComponentApp = recording_app(known.header_log)  # type: ignore[attr-defined]  # replacing the class serve() builds its app from
    serve(server, parse_settings(rest, description=__doc__))
