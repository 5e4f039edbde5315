"""driftline/metrics.py: reason classes, histograms, the /metrics server, jobs by state."""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Iterator
from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from driftline.metrics import (
    REASON_CLASS_NAMES,
    MetricsPortError,
    MetricsServer,
    RetrainJobsCollector,
    Timings,
    histogram,
    new_registry,
    reason_class,
    serve_metrics,
)
from driftline.store import Store
from driftline.store.jobs import JobStore, RetrainJob


def values(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("not valid JSON: unexpected end of data: line 1 column 8 (char 7)", "invalid_json"),
        ("an event must be a JSON object, got int", "invalid_json"),
        ("empty message: expected a JSON event or array", "empty_message"),
        ("message is 2000000 bytes, over the limit of 1048576; split it", "message_too_large"),
        ("'ts' '2026-13-01' is not an RFC 3339 timestamp", "event_time"),
        ("'prediction' is required (null when the model gave no output)", "missing_field"),
        ("feature 'amount' is a list; use a number, string, bool or null", "features"),
        ("'segment' has 30 keys, over the limit of 16", "segment"),
        ("'model' is longer than 256 characters", "name"),
        ("internal error: ValueError('x')", "internal_error"),
        ("a reason written after this table", "other"),
    ],
)
def test_each_reason_falls_in_one_bounded_class(reason: str, expected: str) -> None:
    assert reason_class(reason) == expected
    assert expected in REASON_CLASS_NAMES


def test_timings_are_exposed_as_a_cumulative_histogram() -> None:
    timings = Timings(bounds=(0.1, 1.0))
    for seconds in (0.05, 0.1, 0.5, 3.0):
        timings.observe(seconds)
    registry = CollectorRegistry()

    class One(Collector):
        def collect(self) -> Iterator[Metric]:
            yield histogram("driftline_test_seconds", "a test", timings)

    registry.register(One())
    found = values(registry)
    bucket = "driftline_test_seconds_bucket"
    assert found[(bucket, (("le", "0.1"),))] == 2  # le: 0.1 itself is in the first bucket
    assert found[(bucket, (("le", "1.0"),))] == 3
    assert found[(bucket, (("le", "+Inf"),))] == 4
    assert found[("driftline_test_seconds_count", ())] == 4
    assert found[("driftline_test_seconds_sum", ())] == pytest.approx(3.65)


def test_the_server_serves_and_stops_and_a_busy_port_is_a_clear_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = MetricsServer(new_registry(), "127.0.0.1", 0).start()
    port = server.port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        assert b"process_resident_memory_bytes" in reply.read()
    with pytest.raises(MetricsPortError, match=f"127.0.0.1:{port}.*another process has the port"):
        MetricsServer(new_registry(), "127.0.0.1", port).start()
    with caplog.at_level(logging.ERROR):
        assert serve_metrics(new_registry(), "127.0.0.1", port, "worker") is None
    assert "the worker runs without /metrics" in caplog.text
    server.stop()
    MetricsServer(new_registry(), "127.0.0.1", port).start().stop()  # free again once stopped
    assert serve_metrics(new_registry(), "127.0.0.1", 0, "worker") is None  # 0: off


def test_retraining_jobs_are_counted_by_their_latest_state(store: Store) -> None:
    jobs = JobStore(store.backend)
    registry = new_registry()
    registry.register(RetrainJobsCollector(jobs))
    found = values(registry)
    assert found[("driftline_retrain_jobs", (("state", "queued"),))] == 0
    first = jobs.write(RetrainJob.new("fraud", "drift"))
    jobs.write(replace(first, state="running"))
    jobs.write(replace(first, state="succeeded"))
    jobs.write(RetrainJob.new("churn", "manual"))
    found = values(registry)
    by_state = {
        dict(k[1])["state"]: v for k, v in found.items() if k[0] == "driftline_retrain_jobs"
    }
    assert by_state == {
        "queued": 1,
        "running": 0,
        "succeeded": 1,
        "failed": 0,
        "rejected": 0,
    }
