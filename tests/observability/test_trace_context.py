"""The trace context the runtime creates: one trace per run (a sub-run's is its parent's),
a new span per step, the run id in ``tracestate``, and W3C's wire format both ways."""

from __future__ import annotations

from telemetry.trace import parse_traceparent, run_trace

RUN_ID = "01a22a63-a2c2-749a-9116-b963c4d3388a"


def test_a_run_starts_a_trace_named_by_its_run_id_in_tracestate() -> None:
    first, second = run_trace(RUN_ID), run_trace(RUN_ID)
    assert first.trace_id != second.trace_id, "each run gets its own trace"
    assert first.tracestate() == f"stepflow={RUN_ID}"
    assert parse_traceparent(first.traceparent())[:3] == (first.trace_id, first.span_id, "01")  # type: ignore[index]  # a traceparent we just made always parses


def test_each_step_is_a_new_span_of_the_runs_trace() -> None:
    run = run_trace(RUN_ID)
    steps = [run.child() for _ in range(3)]
    assert {step.trace_id for step in steps} == {run.trace_id}
    assert len({step.span_id for step in steps} | {run.span_id}) == 4
    assert {step.tracestate() for step in steps} == {f"stepflow={RUN_ID}"}


def test_a_sub_run_joins_its_parents_trace() -> None:
    parent = run_trace(RUN_ID)
    child = run_trace("01a22a63-0000-7000-8000-000000000001", parent.trace_id)
    assert child.trace_id == parent.trace_id and child.span_id != parent.span_id
    assert child.tracestate() == "stepflow=01a22a63-0000-7000-8000-000000000001"


def test_malformed_or_all_zero_traceparents_are_ignored() -> None:
    for value in (
        None,
        "",
        "00-xyz-00f067aa0ba902b7-01",
        f"00-{'0' * 32}-00f067aa0ba902b7-01",
        f"00-{'a' * 32}-{'0' * 16}-01",
        "01-" + "a" * 32 + "-" + "b" * 16,
    ):
        assert parse_traceparent(value) is None, value
    parsed = parse_traceparent(" 00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-00 ")
    assert parsed is not None and parsed[:3] == ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "00")
