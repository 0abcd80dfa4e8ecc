"""``databaseUrl`` as upstream writes it: which store it names, ``${VAR}`` from the environment,
and the password kept out of every message. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
SQLITE_PREFIXES = ("sqlite://", "sqlite:")
POSTGRES_SCHEMES = ("postgres", "postgresql")


class DatabaseUrlError(ValueError):
    pass


def substitute(text: str, environment: Mapping[str, str]) -> str:
    """``${NAME}`` replaced by the variable's value (a Secret mounted as env); unset is an error."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environment:
            raise DatabaseUrlError(f"databaseUrl uses ${{{name}}}, but the environment variable {name} is not set")
        return environment[name]

    return _VARIABLE.sub(value, text)


def store_type_of(url: str) -> str:
    """``sqlite`` or ``postgres``, from the URL's scheme."""
    if url.startswith(SQLITE_PREFIXES):
        return "sqlite"
    if urlsplit(url).scheme in POSTGRES_SCHEMES:
        return "postgres"
    raise DatabaseUrlError(f"databaseUrl must start with sqlite: or postgres(ql)://, got {redact(url, url)!r}")


def sqlite_path(database_url: str) -> str:
    """``sqlite:/data/x.db?mode=rwc`` (upstream's form), ``sqlite:///data/x.db`` or a bare path -> a file path."""
    path = database_url
    for prefix in SQLITE_PREFIXES:
        if path.startswith(prefix):
            path = path[len(prefix) :]
            break
    return path.split("?", 1)[0] or ":memory:"


def redact(text: str, url: str) -> str:
    """``text`` with the URL's password (raw and percent-decoded) replaced by ``***``."""
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    if not password:
        return text
    for spelling in {password, unquote(password)}:
        text = text.replace(spelling, "***")
    return text
