"""Every Prometheus metric the runtime exports.

The engine counts component calls, durations and retries for every plugin (so plugins
must not count them again); ``runtime_server.callbacks`` counts callbacks. Those updated
per run, step or call are ``OneThread*`` metrics: only the event loop touches them.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from telemetry.metrics import OneThreadCounter, OneThreadHistogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

RUNS = OneThreadCounter("runtime_runs_total", "Runs finished, by status and flow name", ["status", "flow"])
RUN_DURATION = OneThreadHistogram("runtime_run_duration_seconds", "Run wall time from creation to terminal status", buckets=_LATENCY_BUCKETS)
STEP_DURATION = OneThreadHistogram("runtime_step_duration_seconds", "Step wall time including retries, by outcome", ["outcome"], buckets=_LATENCY_BUCKETS)
RUNS_IN_FLIGHT = Gauge("runtime_runs_in_flight", "Runs not yet terminal")
STEPS_IN_FLIGHT = Gauge("runtime_steps_in_flight", "Step executions in progress")
BLOB_STORE_BYTES = Gauge("runtime_blob_store_bytes", "Bytes of JSON held in the blob store")
BLOB_STORE_BLOBS = Gauge("runtime_blob_store_blobs", "Blobs held in the blob store")
RUN_STORE_RUNS = Gauge("runtime_run_store_runs", "Runs held in the run store")
RUN_STORE_EVICTIONS = Counter("runtime_run_store_evictions_total", "Finished runs evicted by the retention bound")

COMPONENT_CALLS = OneThreadCounter(
    "runtime_component_calls_total", "Component executions by plugin and outcome (success, failed, transport_error)", ["plugin", "outcome"]
)
COMPONENT_CALL_DURATION = OneThreadHistogram(
    "runtime_component_call_duration_seconds", "One component execution, by plugin", ["plugin"], buckets=_LATENCY_BUCKETS
)
RETRIES = Counter(
    "runtime_retries_total", "Step re-executions by reason: on_error_retry, transport (re-run after a broken call), unreachable (connect retried)", ["reason"]
)
CALLBACKS = OneThreadCounter("runtime_callbacks_total", "Callbacks from components, by method and outcome", ["method", "outcome"])

_COMMIT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
JOURNAL_COMMITS = OneThreadCounter("runtime_journal_commits_total", "Group commits of the durable store's journal (each one transaction)")
JOURNAL_ENTRIES = OneThreadCounter("runtime_journal_entries_total", "Journal entries written by group commits (entries per commit = this / commits)")
JOURNAL_COMMIT_SECONDS = OneThreadHistogram(
    "runtime_journal_commit_duration_seconds", "One group commit, from the batch's taking to the database's answer", buckets=_COMMIT_BUCKETS
)
JOURNAL_COMMIT_FAILURES = Counter(
    "runtime_journal_commit_failures_total", "Group commits the database did not take (an outage: tried again; rows it refused: written run by run)"
)
RUNS_RECOVERED = Counter("runtime_runs_recovered_total", "Unfinished runs this runtime resumed from the durable store after a restart")
RUNS_CLAIMED = Counter("runtime_runs_claimed_total", "Runs this replica took over from a peer whose lease expired")
LEASE_RENEWALS = Counter("runtime_lease_renewals_total", "Lease renewals the database confirmed")
LEASE_LOSSES = Counter("runtime_lease_losses_total", "Times this replica found its lease lost and dropped its runs")
RUNS_OWNED = Gauge("runtime_runs_owned", "Runs this replica is running now (its own and those it took over)")
