"""The worker's /metrics (streams/metrics.py): the series say what the worker did."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
from helpers import in_process_worker, wait_until
from helpers.webhook_receiver import WebhookReceiver
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from alarms.routing import Subscription
from alarms.rules import Comparison, Rule
from driftline import topics
from driftline.metrics import REASON_CLASS_NAMES, new_registry
from driftline.settings import Settings
from driftline.store import MetricPoint, Store, Stores
from driftline.store.embedded import EmbeddedBackend
from streams.alarms import AlarmService
from streams.labels import LabelStats
from streams.metrics import WorkerCollector

TP = (topics.PREDICTIONS, 0)
BASE = 1_700_000_000


def samples(registry: object) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, by name and sorted labels."""
    text = generate_latest(registry).decode()  # type: ignore[arg-type]
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_the_exposition_counts_events_dead_letters_by_reason_and_stored_windows(
    server_store: Store,
) -> None:
    letters: list[bytes] = []

    async def keep_letter(key: bytes | None, value: bytes) -> None:
        letters.append(value)

    worker = in_process_worker(server_store, send=keep_letter)
    registry = new_registry()
    labels = LabelStats(messages=4, labels=7)
    registry.register(WorkerCollector(worker, labels))
    events = [
        {"model": "fraud", "features": {"x": float(i)}, "prediction": 0.5, "ts": BASE + i % 5}
        for i in range(25)
    ]
    raw = [
        (TP, 0, float(BASE), orjson.dumps(events[:20])),  # one message, 20 events
        *[(TP, 1 + i, float(BASE), orjson.dumps(e)) for i, e in enumerate(events[20:])],
        (TP, 6, float(BASE), b"{broken"),
        (TP, 7, float(BASE), b"{broken too"),
        (TP, 8, float(BASE), orjson.dumps({"model": "fraud", "prediction": 1})),
    ]

    async def scenario() -> None:
        await worker.process(raw)
        assert worker.manager.close_due(time.time() + 7200)  # idle: the window closes
        await worker.pipeline.store_closed()
        await worker.outbox.settle()

    before = samples(registry)
    assert before[("driftline_worker_events_total", (("topic", "predictions"),))] == 0
    asyncio.run(scenario())
    worker.close()
    assert len(letters) == 3
    after = samples(registry)

    def value(name: str, **labels: str) -> float:
        return after[(name, tuple(sorted(labels.items())))]

    assert value("driftline_worker_messages_total", topic="predictions") == 9
    assert value("driftline_worker_events_total", topic="predictions") == 25
    assert value("driftline_worker_messages_total", topic="labels") == 4
    assert value("driftline_worker_events_total", topic="labels") == 7
    dead = "driftline_worker_dead_letters_total"
    assert value(dead, topic="predictions", reason="invalid_json") == 2
    assert value(dead, topic="predictions", reason="missing_field") == 1
    # every reason class is a series from the start, and only those: bounded cardinality
    reasons = {dict(k[1])["reason"] for k in after if k[0] == dead}
    assert reasons == set(REASON_CLASS_NAMES)
    assert value("driftline_worker_windows_stored_total") == 1
    assert value("driftline_worker_store_write_seconds_count") == 1
    assert value("driftline_worker_store_write_seconds_sum") > 0
    assert value("driftline_worker_window_close_delay_seconds_count") == 1
    # the window ended (event time) in 2023: it was stored years after its end
    assert value("driftline_worker_window_close_delay_seconds_bucket", le="3600.0") == 0
    assert value("driftline_worker_window_close_delay_seconds_bucket", le="+Inf") == 1
    assert value("driftline_worker_open_windows") == 0
    assert value("driftline_worker_unstored_windows") == 0
    assert value("driftline_worker_units") == 1
    assert value("driftline_worker_event_time_lag_seconds") > time.time() - BASE - 60
    assert value("driftline_worker_dead_letters_unsent") == 0
    assert value("process_resident_memory_bytes") > 0


def test_open_alerts_by_state_and_webhook_outcomes(tmp_path: Path) -> None:
    stores = Stores(Store(EmbeddedBackend(tmp_path / "chdb")))
    stores.store.init_schema()
    rule = Rule("age", "AgeMissing", "input.missing_rate", Comparison.GT, 0.1, feature="age")
    stores.alarms.put_rule(rule)
    settings = Settings(default_rules=False, alarm_refresh_s=0.1, webhook_backoff_s=0.05)
    with WebhookReceiver() as receiver:
        stores.alarms.put_subscription(Subscription("hook", receiver.url))
        service = AlarmService(stores.alarms, stores.jobs, settings, publish=None).start()
        worker = in_process_worker(stores.store)
        registry = new_registry()
        registry.register(WorkerCollector(worker, alarms=service))
        try:
            assert samples(registry)[("driftline_alerts", (("state", "firing"),))] == 0
            points = [MetricPoint("fraud", BASE, 10, "input.missing_rate", 0.5, feature="age")]
            service.evaluate_window("fraud", BASE, points)
            wait_until(lambda: receiver.received, timeout=10, what="the webhook")
            service.flush()
            found = samples(registry)
            outcome = "driftline_webhook_deliveries_total"
            wait_until(
                lambda: samples(registry)[(outcome, (("outcome", "delivered"),))] == 1,
                timeout=10,
                what="the delivered webhook counted",
            )
        finally:
            service.stop()
            worker.close()
            stores.close()
    assert found[("driftline_alerts", (("state", "firing"),))] == 1
    assert found[("driftline_alerts", (("state", "pending"),))] == 0
    assert found[(outcome, (("outcome", "pending"),))] == 1
    assert found[(outcome, (("outcome", "failed"),))] == 0
