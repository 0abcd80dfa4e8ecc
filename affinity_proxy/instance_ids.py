"""What a client may put in ``Stepflow-Instance-Id``: the id a pod reported, never an address.

Pure. An id the membership table knows is always routed as it is; only an unknown one is
looked at here, so a malformed or address-shaped value gets a 400 naming the problem at
once instead of a rediscovery and a 503 (the proxy never sends to an address a client names).
"""

from __future__ import annotations

import ipaddress
import re

MAX_LENGTH = 128
_TOKEN = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._~-]{{0,{MAX_LENGTH - 1}}}")


def _is_address(value: str) -> bool:
    host = value
    if value.startswith("["):
        host = value[1:].partition("]")[0]
    elif value.count(":") == 1:
        host = value.partition(":")[0]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def problem(value: str) -> str | None:
    """Why ``value`` cannot be an instance id, or None if it could be one."""
    shown = value if len(value) <= 64 else f"{value[:64]}... ({len(value)} characters)"
    if _is_address(value):
        return f"Stepflow-Instance-Id {shown!r} is an address; it must be the instanceId a pod reported on /health (the proxy never sends a request to an address a client names)"
    if _TOKEN.fullmatch(value) is None:
        return f"Stepflow-Instance-Id {shown!r} is malformed: expected 1 to {MAX_LENGTH} letters, digits, '.', '_', '~' or '-', starting with a letter or digit"
    return None
