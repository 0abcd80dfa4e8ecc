"""The submit command's pure parts: inputs, URLs, progress and summary."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from runtime_server.cli import Summary, UsageError, api_base, load_document, main, parse_jsonl, progress_bar, summarize


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("http://h:7840", "http://h:7840"),
        ("http://h:7840/api/v1", "http://h:7840"),
        ("h:7840", "http://h:7840"),
        ("https://runtime.example/x/", "https://runtime.example"),
    ],
)
def test_api_base_drops_any_path(url: str, base: str) -> None:
    assert api_base(url) == base


def test_jsonl_values_one_per_line() -> None:
    assert parse_jsonl('{"value": 1}\n2\n[3]\n', "in.jsonl") == [{"value": 1}, 2, [3]]
    assert parse_jsonl("", "in.jsonl") == []


@pytest.mark.parametrize(("text", "message"), [('{"a": 1}\n\n{"a": 2}\n', "in.jsonl line 2: not JSON"), ("1\n{oops\n", "in.jsonl line 2: not JSON")])
def test_jsonl_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_jsonl(text, "in.jsonl")


def test_flow_file_errors_are_named(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"cannot read --flow .*missing.yaml"):
        load_document(tmp_path / "missing.yaml", "--flow")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(UsageError, match=r"bad.json is not valid JSON"):
        load_document(bad, "--flow")


@pytest.mark.parametrize(
    ("items", "bar"),
    [
        ({"total": 20, "completed": 0, "failed": 0}, "[" + "." * 30 + "] 0/20 done, 0 failed"),
        ({"total": 20, "completed": 9, "failed": 1}, "[" + "#" * 15 + "." * 15 + "] 10/20 done, 1 failed"),
        ({"total": 3, "completed": 3}, "[" + "#" * 30 + "] 3/3 done, 0 failed"),
    ],
)
def test_progress_bar(items: dict[str, int], bar: str) -> None:
    assert progress_bar(items) == bar


def test_summary_counts_and_rate() -> None:
    results: list[Any] = [{"outcome": "success", "result": 1}, {"outcome": "failed", "error": {}}, None, {"outcome": "success"}]
    summary = summarize(results, 2.0)
    assert summary == Summary(succeeded=2, failed=2, seconds=2.0)
    assert summary.line() == "succeeded 2, failed 2, time 2.00s, 2.0 runs/s"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--flow", "{flow}", "--input-json", "{nope"], "--input-json is not JSON"),
        (["--flow", "{flow}", "--inputs", "/no/such.jsonl"], "cannot read --inputs /no/such.jsonl"),
        (["--flow", "{flow}", "--inputs", "{flow}", "--max-concurrent", "0"], "--max-concurrent must be at least 1"),
        (["--flow", "{flow}", "--input-json", "1", "--url", "http://127.0.0.60:9"], "POST http://127.0.0.60:9/api/v1/flows failed"),
    ],
)
def test_bad_invocations_exit_2_with_a_message(tmp_path: Path, argv: list[str], message: str) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text("steps: []\n")
    err = io.StringIO()
    assert main(["submit", *(arg.replace("{flow}", str(flow)) for arg in argv)], io.StringIO(), err) == 2
    assert message in err.getvalue()
