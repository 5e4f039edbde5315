"""Alarms end to end: real Tansu broker → `driftline worker` → real ClickHouse server →
a real webhook receiver, through a receiver outage and a worker killed while firing."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from typing import Any

import orjson
from helpers import wait_until
from helpers.webhook_receiver import WebhookReceiver
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from alarms.routing import Subscription
from alarms.rules import Comparison, Rule
from driftline import topics
from driftline.broker import EmbeddedBroker, free_port
from driftline.store import Store
from driftline.store.alarms import AlarmStore
from driftline.store.server import ServerBackend

BASE = 1_700_000_000
StartWorker = Callable[[dict[str, str]], subprocess.Popen[bytes]]


def published_alerts(bootstrap: str) -> list[Any]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, consumer_timeout_ms=1000)
    consumer.assign([TopicPartition(topics.ALERTS, 0)])
    consumer.seek_to_beginning()
    found = [orjson.loads(m.value) for m in consumer]
    consumer.close()
    return found


def test_alert_fires_to_a_receiver_that_comes_up_late_and_resolves_after_a_worker_kill(
    broker: EmbeddedBroker,
    worker_env: dict[str, str],
    start_worker: StartWorker,
    clickhouse_url: str,
) -> None:
    store = Store(ServerBackend(clickhouse_url))
    store.init_schema()
    alarms = AlarmStore(store.backend)
    alarms.put_rule(
        Rule("age", "AgeMissing", "input.missing_rate", Comparison.GT, 0.5, feature="age")
    )
    port = free_port()  # the receiver is down when the alert fires
    alarms.put_subscription(Subscription("hook", f"http://127.0.0.1:{port}/hook", secret="k"))
    env = {
        **worker_env,
        "DRIFTLINE_DEFAULT_RULES": "false",
        "DRIFTLINE_ALARM_REFRESH_S": "0.5",
        "DRIFTLINE_WEBHOOK_BACKOFF_S": "0.2",
        "DRIFTLINE_WEBHOOK_BACKOFF_MAX_S": "0.5",
    }
    raw = KafkaProducer(bootstrap_servers=broker.bootstrap)

    def send(ts: int, age: float | None, n: int = 1) -> None:
        for _ in range(n):
            event = {"model": "fraud", "features": {"age": age}, "prediction": 0.5, "ts": ts}
            raw.send(topics.PREDICTIONS, key=b"fraud", value=orjson.dumps(event))
        raw.flush()

    first = start_worker(env)
    send(BASE + 1, None, 20)  # window BASE: age all missing
    send(BASE + 25, 30.0)  # closes it
    wait_until(
        lambda: [d.attempts for d in alarms.deliveries("hook")] >= [2],
        timeout=60,
        what="the firing notification retried while the receiver is down",
    )
    with WebhookReceiver(port) as receiver:
        wait_until(lambda: receiver.received, timeout=10, what="the firing notification")
        wait_until(lambda: [d.status for d in alarms.deliveries("hook")] == ["delivered"],
                   timeout=10, what="the delivery logged")  # fmt: skip
        [firing] = alarms.alerts(states=("firing",))
        first.send_signal(signal.SIGKILL)  # killed while the alert fires
        first.wait()

        send(BASE + 26, 31.0, 20)  # window BASE+20: nothing missing
        send(BASE + 45, 32.0)  # closes it
        start_worker(env)
        wait_until(lambda: len(receiver.received) >= 2, timeout=60, what="the resolved one")
        wait_until(lambda: alarms.alerts(states=("resolved",)), timeout=10, what="stored")

    notes = [r.json for r in receiver.received]
    assert [(n["event"], n["alert"]["id"]) for n in notes] == [
        ("firing", firing.id),
        ("resolved", firing.id),
    ]
    assert all(r.signed_by("k") for r in receiver.received)
    assert notes[0]["alert"]["value"] == 1.0 and notes[1]["alert"]["value"] == 0.0
    assert notes[0]["alert"]["active_since"] == "2023-11-14T22:13:20Z"
    # The receiver has the resolved POST before the worker logs its answer: wait for the log.
    wait_until(lambda: [d.status for d in alarms.deliveries("hook")] == ["delivered"] * 2,
               timeout=10, what="both deliveries logged")  # fmt: skip
    delivered = alarms.deliveries("hook")
    assert max(d.attempts for d in delivered) >= 3  # the outage cost the firing retries
    assert [(a["event"], a["alert"]["id"]) for a in published_alerts(broker.bootstrap)] == [
        ("firing", firing.id),
        ("resolved", firing.id),
    ]
    raw.close()
    store.close()
