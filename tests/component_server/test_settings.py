"""Pod configuration: flags beat environment, environment beats defaults."""

from __future__ import annotations

import re
import socket

import pytest

from component_server.settings import Settings, new_instance_id, parse_settings


def test_defaults() -> None:
    settings = parse_settings([], {})
    assert settings == Settings(pod_name=socket.gethostname())


def test_environment_then_flags() -> None:
    environ = {"MAX_CONCURRENCY": "8", "CALLBACK_TIMEOUT_SECONDS": "2.5", "DRAIN_GRACE_SECONDS": "3", "METRICS_PORT": "0", "POD_NAME": "component-server-0"}
    from_env = parse_settings([], environ)
    assert (from_env.max_concurrency, from_env.callback_timeout_seconds, from_env.drain_grace_seconds, from_env.metrics_port, from_env.pod_name) == (
        8,
        2.5,
        3.0,
        0,
        "component-server-0",
    )
    from_flags = parse_settings(["--host", "127.0.0.31", "--port", "0", "--max-concurrency", "4", "--metrics-port", "9191"], environ)
    assert (from_flags.host, from_flags.port, from_flags.max_concurrency, from_flags.metrics_port) == ("127.0.0.31", 0, 4, 9191)


def test_a_limit_below_one_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_settings(["--max-concurrency", "0"], {})
    assert "--max-concurrency must be at least 1, got 0" in capsys.readouterr().err


def test_instance_ids_are_pod_name_and_8_hex_and_differ_per_process() -> None:
    first, second = new_instance_id("component-server-7d9f"), new_instance_id("component-server-7d9f")
    assert re.fullmatch(r"component-server-7d9f-[0-9a-f]{8}", first) and first != second
