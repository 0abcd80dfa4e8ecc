"""The affinity proxy: between the runtime and the component-server pods.

Discovers pods through DNS (a headless service) and their ``/health`` instance ids,
sends new requests round-robin over active pods, pins requests carrying
``Stepflow-Instance-Id`` to that pod and nowhere else, and streams SSE unbuffered.
Pure cores (``membership``, ``routing``, ``http1``, ``answers``, ``instance_ids``, ``health``) do no I/O;
``discovery``, ``upstream``, ``pipeline``, ``client`` and ``outbox`` are the asyncio shells.

The per-request modules (``COMPILED_MODULES``) run compiled by mypyc when
``build_compiled`` has built them from the sources as they are now (docs/decisions.md, "Affinity
proxy: the per-request modules compiled by mypyc"); otherwise, or with ``AFFINITY_PROXY_COMPILED=0``, as Python.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

COMPILED_MODULES = ("http1", "membership", "routing", "tallies", "accounting", "outbox", "upstream", "pipeline", "client", "proxy")
PACKAGE_DIR = Path(__file__).resolve().parent
COMPILED_DIR = PACKAGE_DIR / "_compiled"
STAMP = "sources.sha256"


def sources_digest() -> str:
    """What the compiled modules must have been built from: these sources, for this Python's ABI (e.g. cpython-311)."""
    digest = hashlib.sha256(sys.implementation.cache_tag.encode())
    for name in COMPILED_MODULES:
        digest.update((PACKAGE_DIR / f"{name}.py").read_bytes())
    return digest.hexdigest()


def compiled_is_current() -> bool:
    """Compiled modules built from the sources as they are now exist (and are not switched off)."""
    if os.environ.get("AFFINITY_PROXY_COMPILED", "1") == "0":
        return False
    try:
        return (COMPILED_DIR / STAMP).read_text().strip() == sources_digest()
    except OSError:
        return False


COMPILED = compiled_is_current()
"""The per-request modules import from ``_compiled`` (found before the sources on the package's path)."""
if COMPILED:
    __path__.insert(0, str(COMPILED_DIR))
