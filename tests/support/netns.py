"""Run a test inside a fresh network namespace with only loopback up.

Upstream's ``stepflow-server`` binds every interface and has no host flag, so tests
that start it move themselves (this thread) into a namespace of their own first:
everything they then start inherits it, and nothing can leave loopback. The namespace
is deleted afterwards. Needs root and iproute2 (CI runs as root).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def netns_available() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns failed: {os.strerror(errno)}")


@contextlib.contextmanager
def inside_new_netns(prefix: str = "sftest") -> Iterator[str]:
    """Create a namespace, bring its loopback up, enter it; on exit return and delete it."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        original = os.open("/proc/self/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{name}", os.O_RDONLY)
        try:
            _setns(target)
            try:
                yield name
            finally:
                _setns(original)
        finally:
            os.close(target)
            os.close(original)
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)
