"""``storageConfig`` in upstream 0.13's forms and ``recovery``, as the config parses them; ``databaseUrl``'s
store type, ``${VAR}`` substitution and redaction (runtime_server/config.py, runtime_server/runs/database_url.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runtime_server.config import ConfigError, RecoverySettings, StoreSettings, settings_from_data, store_settings
from runtime_server.runs.database_url import redact, sqlite_path, store_type_of

ENVIRONMENT = {"PGPASSWORD": "s3cret"}
PG = "postgresql://stepflow:${PGPASSWORD}@db:5432/stepflow"
PG_SUBSTITUTED = "postgresql://stepflow:s3cret@db:5432/stepflow"

FORMS = [
    ("nothing: in memory", {}, StoreSettings()),
    ("simple sqlite", {"storageConfig": {"type": "sqlite", "databaseUrl": "sqlite:/data/x.db?mode=rwc"}}, ("sqlite", "sqlite:/data/x.db?mode=rwc")),
    ("simple postgres", {"storageConfig": {"type": "postgres", "databaseUrl": PG}}, ("postgres", PG_SUBSTITUTED)),
    ("postgres:// spelling", {"storageConfig": {"type": "postgres", "databaseUrl": "postgres://u@db/s"}}, ("postgres", "postgres://u@db/s")),
    ("type from the URL", {"storageConfig": {"databaseUrl": PG}}, ("postgres", PG_SUBSTITUTED)),
    ("0.9's stateStore", {"stateStore": {"type": "sqlite", "databaseUrl": "sqlite:/data/x.db"}}, ("sqlite", "sqlite:/data/x.db")),
    (
        "expanded, one store",
        {"storageConfig": {"metadata": {"type": "postgres", "databaseUrl": PG}, "blobs": {"type": "postgres", "databaseUrl": PG}}},
        ("postgres", PG_SUBSTITUTED),
    ),
]


@pytest.mark.parametrize(("name", "data", "expected"), FORMS, ids=[row[0] for row in FORMS])
def test_every_form_names_its_store(name: str, data: dict[str, Any], expected: Any) -> None:
    settings = store_settings(data, ENVIRONMENT)
    if isinstance(expected, StoreSettings):
        assert settings == expected
    else:
        assert (settings.type, settings.database_url) == expected and settings.durable and settings.auto_migrate


REFUSED = [
    ("unknown type", {"storageConfig": {"type": "redis"}}, "must be one of"),
    ("durable without URL", {"storageConfig": {"type": "postgres"}}, "databaseUrl is required"),
    ("type and URL disagree", {"storageConfig": {"type": "sqlite", "databaseUrl": PG}}, "is a postgres URL"),
    ("unset variable", {"storageConfig": {"databaseUrl": "postgresql://u:${NOPE}@db/s"}}, "NOPE is not set"),
    ("unknown scheme", {"storageConfig": {"databaseUrl": "mysql://u:pw@db/s"}}, "must start with sqlite: or postgres"),
    (
        "expanded, two stores",
        {"storageConfig": {"metadata": {"type": "postgres", "databaseUrl": PG}, "journal": {"type": "sqlite", "databaseUrl": "sqlite:/x.db"}}},
        "must name the same store",
    ),
    ("autoMigrate not a boolean", {"storageConfig": {"databaseUrl": PG, "autoMigrate": "yes"}}, "autoMigrate must be true or false"),
    ("not a mapping", {"storageConfig": "sqlite"}, "must be a mapping"),
]


@pytest.mark.parametrize(("name", "data", "message"), REFUSED, ids=[row[0] for row in REFUSED])
def test_a_bad_store_is_a_clear_error(name: str, data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        store_settings(data, ENVIRONMENT)


def test_the_password_never_shows_in_an_error() -> None:
    with pytest.raises(ConfigError) as caught:
        store_settings({"storageConfig": {"databaseUrl": "mysql://u:hunter2@db/s"}}, ENVIRONMENT)
    assert "hunter2" not in str(caught.value)
    assert redact("connect to postgresql://u:p%40ss@db failed: p@ss", "postgresql://u:p%40ss@db") == "connect to postgresql://u:***@db failed: ***"


@pytest.mark.parametrize(
    ("url", "kind", "path"),
    [("sqlite:/data/x.db?mode=rwc", "sqlite", "/data/x.db"), ("sqlite:///data/x.db", "sqlite", "/data/x.db"), ("postgresql://db/s", "postgres", None)],
)
def test_urls_as_upstream_writes_them(url: str, kind: str, path: str | None) -> None:
    assert store_type_of(url) == kind
    if path is not None:
        assert sqlite_path(url) == path


BUILTINS = {"plugins": {"builtin": {"type": "builtin"}}, "routes": {"/{*component}": [{"plugin": "builtin"}]}}


def test_recovery_defaults_fail_over_within_ten_seconds_and_bad_values_are_refused() -> None:
    settings = settings_from_data({**BUILTINS, "recovery": {"leaseTtlSecs": 4, "maxClaimsPerCheck": 50}}, Path("/"))
    assert settings.recovery == RecoverySettings(lease_ttl_seconds=4.0, max_claims_per_check=50)
    defaults = RecoverySettings()
    assert defaults.lease_ttl_seconds + defaults.check_interval_seconds <= 10
    with pytest.raises(ConfigError, match="must not exceed"):
        settings_from_data({**BUILTINS, "recovery": {"leaseTtlSecs": 2, "checkIntervalSecs": 3}}, Path("/"))
