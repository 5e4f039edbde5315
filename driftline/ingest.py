"""Synchronous ingest for the HTTP API: validate, then produce and wait for the broker."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from driftline_sdk.monitor import encode_batches
from kafka import KafkaProducer

from driftline import topics
from driftline.events import (
    EventLimits,
    Rejected,
    check_label_event,
    check_prediction_event,
    clean_custom_metrics,
    deadletter_record,
    model_of,
    time_reason,
)


@dataclass
class IngestResult:
    accepted: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    # accepted events whose bad custom metrics were dropped (the events themselves were sent)
    dropped: list[Rejected] = field(default_factory=list)


class Ingest:
    """Produces HTTP-posted events to Kafka; the producer connects on first use."""

    def __init__(self, bootstrap: str, limits: EventLimits, timeout_s: float = 10.0) -> None:
        self.bootstrap = bootstrap
        self.limits = limits
        self.timeout_s = timeout_s
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()

    def _connected(self) -> KafkaProducer:
        with self._lock:
            if self._producer is None:
                self._producer = KafkaProducer(
                    bootstrap_servers=self.bootstrap.split(","),
                    acks=1,
                    enable_idempotence=False,
                    linger_ms=2,
                    max_block_ms=int(self.timeout_s * 1000),
                    bootstrap_timeout_ms=int(self.timeout_s * 1000),  # a request waits no longer
                    max_request_size=4 * 1024 * 1024,
                    client_id="driftline-api",
                )
            return self._producer

    def submit(self, payload: Any, *, labels: bool = False) -> IngestResult:
        """Validate events (an object or a list), produce the valid ones, dead-letter the rest.
        ``labels``: label events, to ``driftline.labels``.

        Returns once the broker has acknowledged every message; raises on delivery failure.
        """
        items: Sequence[Any] = payload if isinstance(payload, list) else [payload]
        result = IngestResult()
        valid = []
        check = check_label_event if labels else check_prediction_event
        topic = topics.LABELS if labels else topics.PREDICTIONS
        now = time.time()
        for index, event in enumerate(items):
            reason = check(event, self.limits)
            if reason is None and event.get("ts") is not None:  # else the broker's time: now
                reason = time_reason(event["ts"], now, self.limits)
            if reason is None:
                sent = event.get("metrics")
                dropped = clean_custom_metrics(event, self.limits)
                if dropped is not None:
                    original = _dumps({**event, "metrics": sent})
                    model = model_of(event, self.limits)
                    result.dropped.append(Rejected(dropped, original, index, model, "metrics"))
                valid.append(event)
            else:
                result.rejected.append(
                    Rejected(reason, _dumps(event), index, model_of(event, self.limits))
                )
        producer = self._connected()
        futures = [
            producer.send(topic, key=key, value=value) for key, value, _ in encode_batches(valid)
        ]
        futures += [
            producer.send(
                topics.DEADLETTER,
                value=deadletter_record(r, "http", 0, 0, self.limits.max_deadletter_raw_bytes),
            )
            for r in result.rejected + result.dropped
        ]
        producer.flush(timeout=self.timeout_s)
        for future in futures:
            future.get(timeout=self.timeout_s)
        result.accepted = len(valid)
        return result

    def publish(self, topic: str, key: bytes, value: bytes) -> None:
        """One message, acknowledged by the broker on return (retrain jobs, model updates)."""
        self._connected().send(topic, key=key, value=value).get(timeout=self.timeout_s)

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.close(timeout=5)
                self._producer = None


def _dumps(value: Any) -> bytes:
    import orjson

    return orjson.dumps(value)
