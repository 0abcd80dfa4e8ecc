"""``python -m affinity_proxy --listen HOST:PORT --upstream NAME:PORT [--dns-server IP:PORT] [--metrics-listen HOST:PORT]``"""

from __future__ import annotations

import asyncio
import signal

import uvloop

from affinity_proxy.config import load
from affinity_proxy.proxy import Proxy
from serving.gc_tuning import tune_gc
from serving.open_files import raise_open_file_limit
from telemetry.log_batching import batch_log_writes
from telemetry.logs import configure_logging


async def _main() -> None:
    config = load()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    logs = batch_log_writes()
    tune_gc()
    raise_open_file_limit()
    try:
        await Proxy(config).serve(stop)
    finally:
        if logs is not None:
            logs.detach()


def main() -> None:
    configure_logging("affinity-proxy")
    uvloop.run(_main())


if __name__ == "__main__":
    main()
