"""The worker end to end: real Tansu broker → `driftline worker` → real ClickHouse server."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from helpers import wait_until
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from driftline import Monitor, topics
from driftline.broker import EmbeddedBroker
from driftline.store import Store

BASE = 1_700_000_000  # window starts are multiples of 10 s
StartWorker = Callable[[dict[str, str]], subprocess.Popen[bytes]]


def value(store: Store, model: str, metric: str, start: int, feature: str = "") -> float | None:
    points = store.metrics(model, name=metric, feature=feature, start=start, end=start + 1)
    return points[0].value if points else None


def read_topic(bootstrap: str, topic: str, expected: int) -> list[Any]:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=500
    )
    consumer.assign([TopicPartition(topic, 0)])
    consumer.seek_to_beginning()
    records: list[Any] = []
    for _ in range(60):
        records.extend(consumer)
        if len(records) >= expected:
            break
    consumer.close()
    return records


def test_events_become_window_metrics_and_bad_input_is_dead_lettered(
    broker: EmbeddedBroker,
    worker_env: dict[str, str],
    start_worker: StartWorker,
    server_store: Store,
) -> None:
    start_worker(worker_env)
    with Monitor(broker.bootstrap) as monitor:
        for i in range(1200):  # arrays of 500 events keyed by model
            monitor.log_prediction(
                "fraud",
                {"amount": float(i % 10), "country": "FR" if i % 4 else "DE", "age": None},
                prediction=0.25,
                ts=BASE + (i % 10),
                latency_ms=float(i % 100),
            )
    raw = KafkaProducer(bootstrap_servers=broker.bootstrap)
    for _ in range(30):  # one event per message, as any Kafka client may send
        event = {"model": "fraud", "features": {"amount": 4.5}, "prediction": 0.25, "ts": BASE + 5}
        raw.send(topics.PREDICTIONS, key=b"fraud", value=orjson.dumps(event))
    broken_at = raw.send(topics.PREDICTIONS, key=b"fraud", value=b"{broken").get(timeout=10)
    bad_items = [{"model": "fraud", "features": {"amount": [1]}, "prediction": 1}, {"model": "x"}]
    raw.send(topics.PREDICTIONS, key=b"fraud", value=orjson.dumps(bad_items))
    closer = {"model": "fraud", "features": {"amount": 1.0}, "prediction": 0.5, "ts": BASE + 25}
    raw.send(topics.PREDICTIONS, key=b"fraud", value=orjson.dumps(closer))
    raw.flush()

    wait_until(lambda: value(server_store, "fraud", "traffic.count", BASE), what="first window")
    assert value(server_store, "fraud", "traffic.count", BASE) == 1230
    assert value(server_store, "fraud", "input.missing_rate", BASE, "age") == 1.0
    mean = value(server_store, "fraud", "input.mean", BASE, "amount")
    assert mean == pytest.approx((1200 * 4.5 + 30 * 4.5) / 1230)
    assert value(server_store, "fraud", "latency.p50", BASE) == pytest.approx(49.5, abs=1)

    letters = [orjson.loads(r.value) for r in read_topic(broker.bootstrap, topics.DEADLETTER, 3)]
    reasons = sorted(letter["reason"].split(":")[0] for letter in letters)
    assert reasons == [
        "'features' is required (an object; use {} when the model has no inputs)",
        "feature 'amount' is a list; use a number, string, bool or null",
        "not valid JSON",
    ]
    broken = next(letter for letter in letters if letter["raw"] == "{broken")
    assert broken["topic"] == topics.PREDICTIONS and broken["partition"] == 0
    assert broken["offset"] == broken_at.offset

    # a late event: its window is stored, so it is counted in the oldest open window
    late = {"model": "fraud", "features": {"amount": 1.0}, "prediction": 0.5, "ts": BASE + 3}
    raw.send(topics.PREDICTIONS, key=b"fraud", value=orjson.dumps(late))
    for ts in (BASE + 45, BASE + 65):
        raw.send(topics.PREDICTIONS, key=b"fraud", value=orjson.dumps({**closer, "ts": ts}))
    raw.flush()
    raw.close()
    wait_until(
        lambda: value(server_store, "fraud", "traffic.count", BASE + 40), what="fifth window"
    )
    assert value(server_store, "fraud", "traffic.late", BASE + 20) == 1
    # invalid events of a known model are counted in its oldest open window; the broken
    # JSON names no model and is only dead-lettered
    invalid = server_store.metrics("fraud", name="traffic.invalid")
    assert sum(p.value for p in invalid) == 1
    assert value(server_store, "fraud", "traffic.count", BASE) == 1230  # not touched


def test_killed_worker_replays_without_losing_or_double_counting(
    broker: EmbeddedBroker,
    worker_env: dict[str, str],
    start_worker: StartWorker,
    server_store: Store,
) -> None:
    raw = KafkaProducer(bootstrap_servers=broker.bootstrap)

    def send(model: str, ts: int, n: int = 1) -> None:
        for _ in range(n):
            event = {"model": model, "features": {"x": 1.0}, "prediction": 1.0, "ts": ts}
            raw.send(topics.PREDICTIONS, key=model.encode(), value=orjson.dumps(event))
        raw.flush()

    first = start_worker(worker_env)
    send("b", BASE + 1, 5)  # offsets 0-4: b's first window
    send("a", BASE + 1, 5)  # offsets 5-9: a's window stays open (a's watermark never moves)
    send("b", BASE + 2, 5)  # offsets 10-14
    send("b", BASE + 25)  # offset 15 closes b's first window
    wait_until(lambda: value(server_store, "b", "traffic.count", BASE), what="b's window")
    assert value(server_store, "b", "traffic.count", BASE) == 10
    first.send_signal(signal.SIGKILL)  # no clean shutdown: a's open window is lost in memory
    first.wait()

    send("a", BASE + 2, 3)
    send("a", BASE + 25)  # closes a's first window
    send("b", BASE + 45)  # closes b's second window
    # the replay in batches of one message each (any message is over a byte bound of 1)
    start_worker({**worker_env, "DRIFTLINE_BATCH_MAX_BYTES": "1"})
    wait_until(lambda: value(server_store, "a", "traffic.count", BASE), what="a's window")
    wait_until(lambda: value(server_store, "b", "traffic.count", BASE + 20), what="b's second")
    raw.close()
    # a's window was rebuilt from the replay: nothing lost; b's stored window was not
    # refolded from the replayed part of its events: nothing counted twice
    assert value(server_store, "a", "traffic.count", BASE) == 8
    assert value(server_store, "b", "traffic.count", BASE) == 10
    assert value(server_store, "b", "traffic.count", BASE + 20) == 1
