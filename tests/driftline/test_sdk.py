"""The SDK against a real broker: arrays keyed by model, labels, and delivery errors."""

from __future__ import annotations

import time
from typing import Any

import pytest
from helpers import consume

from driftline import Monitor, topics
from driftline.broker import EmbeddedBroker, ensure_topics, free_port
from driftline.topics import topic_partitions


def test_events_travel_as_arrays_keyed_by_model(broker: EmbeddedBroker) -> None:
    ensure_topics(broker.bootstrap, topic_partitions(predictions=2, labels=1))
    with Monitor(broker.bootstrap, max_batch=100) as monitor:
        ids = [
            monitor.log_prediction(
                "fraud" if i % 2 else "churn", {"x": i}, prediction=0.1, segment={"c": "web"}
            )
            for i in range(250)
        ]
        monitor.log_label("fraud", ids[1], 1)
    assert monitor.stats.sent == 251 and monitor.stats.failed == 0
    messages = consume(broker.bootstrap, topics.PREDICTIONS, 250)
    assert all(1 <= len(events) <= 100 for _, events in messages)
    assert all({e["model"] for e in events} == {key.decode()} for key, events in messages)
    received = [e for _, events in messages for e in events]
    assert sorted(e["id"] for e in received) == sorted(ids)
    assert all(isinstance(e["ts"], float) and e["segment"] == {"c": "web"} for e in received)
    labels = consume(broker.bootstrap, topics.LABELS, 1)
    assert labels[0][1][0]["id"] == ids[1]


def test_invalid_arguments_raise_at_the_call() -> None:
    monitor = Monitor(f"127.0.0.1:{free_port()}")
    with pytest.raises(ValueError, match="feature 'x' is a dict"):
        monitor.log_prediction("m", {"x": {"nested": 1}}, prediction=1)
    with pytest.raises(ValueError, match="'label' is required"):
        monitor.log_label("m", "id-1", None)
    monitor.close(timeout=1)  # nothing was queued: returns at once


def test_unreachable_broker_never_blocks_and_reports_losses() -> None:
    errors: list[tuple[str, int]] = []
    started = time.monotonic()
    monitor = Monitor(
        f"127.0.0.1:{free_port()}",
        max_buffered=3,
        on_error=lambda exc, n: errors.append((type(exc).__name__, n)),
    )
    for i in range(5):
        monitor.log_prediction("m", {"x": i}, prediction=1)
    assert time.monotonic() - started < 0.5  # the caller's path never waits on Kafka
    assert monitor.stats.dropped == 2
    with pytest.raises(TimeoutError, match="not delivered"):
        monitor.close(timeout=1)
    assert monitor.stats.failed == 3
    assert ("BufferError", 1) in errors and ("ConnectionError", 3) in errors


def test_the_sdk_refuses_an_event_time_the_worker_would_refuse() -> None:
    monitor = Monitor(f"127.0.0.1:{free_port()}")
    with pytest.raises(ValueError, match="store holds"):
        monitor.log_prediction("fraud", {"x": 1.0}, prediction=1, ts="9999-12-31T23:59:59Z")
    with pytest.raises(ValueError, match="in the future"):
        monitor.log_label("fraud", "id-1", 1, ts=time.time() + 30 * 86400)
    monitor.close(timeout=1)


def test_bad_custom_metrics_are_dropped_with_a_warning_and_the_event_is_sent(
    broker: EmbeddedBroker, caplog: pytest.LogCaptureFixture
) -> None:
    ensure_topics(broker.bootstrap, topic_partitions(predictions=1, labels=1))
    with Monitor(broker.bootstrap) as monitor:
        sent_metrics: dict[str, Any] = {"ctr": 1, "gpu_mem_mb": 5120.5, "note": "hi"}
        first = monitor.log_prediction("ads", {"x": 1}, 1, metrics=sent_metrics)
        monitor.log_prediction("ads", {"x": 2}, 0, metrics={"bad name": 1, "ok": float("nan")})
        monitor.log_label("ads", first, metrics={"clicked": 1})  # an outcome, no label
        with pytest.raises(ValueError, match="or send 'metrics' alone"):
            monitor.log_label("ads", first)
    assert monitor.stats.metrics_dropped == 2 and monitor.stats.sent == 3
    assert "custom metric 'note' is a str; use a number" in caplog.text
    [(_, sent)] = consume(broker.bootstrap, topics.PREDICTIONS, 2)
    assert [e.get("metrics") for e in sent] == [{"ctr": 1, "gpu_mem_mb": 5120.5}, None]
    assert [e["features"] for e in sent] == [{"x": 1}, {"x": 2}]
    [(_, labels)] = consume(broker.bootstrap, topics.LABELS, 1)
    assert labels[0]["metrics"] == {"clicked": 1} and "label" not in labels[0]
