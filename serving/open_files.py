"""A server's open-file limit: the soft limit raised to the hard one at start.

Every connection is a file descriptor, and the proxy holds two a request (client and pod).
Many distributions start processes with a soft limit of 1024 under a far higher hard limit;
at a low limit the proxy failed its pod connects with EMFILE (and its DNS lookups with it)
from about half as many concurrent requests. HAProxy and nginx raise their limit the same way.
"""

from __future__ import annotations

import contextlib
import resource

NR_OPEN_DEFAULT = 1 << 20
"""Linux's default ceiling (fs.nr_open): a soft limit cannot be infinite, so an infinite hard limit means this."""


def raised_soft_limit(soft: int, hard: int, infinity: int = resource.RLIM_INFINITY) -> int | None:
    """The soft limit to ask for, or None to keep ``soft`` (already as high as can be had)."""
    wanted = NR_OPEN_DEFAULT if hard == infinity else hard
    return wanted if soft != infinity and soft < wanted else None


def raise_open_file_limit() -> None:
    """Raise the soft RLIMIT_NOFILE as far as the hard limit allows (``open_file_limit`` then says how far)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = raised_soft_limit(soft, hard)
    if wanted is not None:
        with contextlib.suppress(ValueError, OSError):  # a ceiling below the hard limit (fs.nr_open, a sandbox): keep what there is
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def open_file_limit() -> int:
    """The soft limit in force, for a server's start line."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
