"""The garbage collector tuned for a server's hot path: shared by the runtime and the proxy."""

from __future__ import annotations

import gc


def tune_gc() -> None:
    """Startup objects leave the collector's view, and young collections run 30x less often:
    a run (or a proxied request) allocates many short-lived containers, and with the default
    threshold (700) the collector cost ~7% of the runtime's CPU per run and ~1.5% of the
    proxy's instructions per request (docs/decisions.md, "Runtime: garbage collector")."""
    gc.freeze()
    gc.set_threshold(20_000, 50, 20)
