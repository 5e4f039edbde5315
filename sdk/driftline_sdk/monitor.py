"""Producer SDK: ``Monitor`` batches events into JSON-array messages keyed by model.

``log_prediction`` and ``log_label`` only validate and append to an in-memory buffer; a
background thread connects (retrying while Kafka is unreachable), sends full batches at once and
partial ones after ``linger_s``. When the buffer is full (broker down for long), new events are
dropped and counted rather than blocking the caller's request path; delivery failures are
counted and passed to ``on_error``.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from kafka import KafkaProducer

from driftline_sdk import topics
from driftline_sdk.contract import (
    EventLimits,
    check_label_event,
    check_prediction_event,
    clean_custom_metrics,
    time_reason,
)

log = logging.getLogger(__name__)

ErrorHandler = Callable[[Exception, int], None]  # (error, events lost; 0: still buffered)


def encode_batches(
    events: Iterable[dict[str, Any]], max_batch: int = 500
) -> Iterator[tuple[bytes, bytes, int]]:
    """(key, value, event count) per Kafka message: JSON arrays of ≤ ``max_batch`` events,
    keyed by model so that one model's events stay in one partition, in order."""
    by_model: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_model.setdefault(event["model"], []).append(event)
    for model, group in by_model.items():
        for i in range(0, len(group), max_batch):
            chunk = group[i : i + max_batch]
            yield model.encode(), orjson.dumps(chunk), len(chunk)


@dataclass
class DeliveryStats:
    sent: int = 0  # events the broker acknowledged
    failed: int = 0  # events whose send failed
    dropped: int = 0  # events refused because the buffer was full
    # events sent without some of their custom metrics (not numbers, bad names, too many)
    metrics_dropped: int = 0


class Monitor:
    """Send prediction and label events to Driftline over Kafka.

    >>> monitor = Monitor(bootstrap="127.0.0.1:9092")                    # doctest: +SKIP
    >>> monitor.log_prediction(model="fraud", features={"amount": 12.5},
    ...                        prediction=0.93)                            # doctest: +SKIP
    >>> monitor.close()                                                    # doctest: +SKIP
    """

    def __init__(
        self,
        bootstrap: str = "127.0.0.1:9092",
        *,
        max_batch: int = 500,
        linger_s: float = 0.05,
        max_buffered: int = 100_000,
        on_error: ErrorHandler | None = None,
        producer_config: Mapping[str, Any] | None = None,
    ) -> None:
        self.max_batch = max_batch
        self.linger_s = linger_s
        self.max_buffered = max_buffered
        self.on_error = on_error
        self.stats = DeliveryStats()
        self._limits = EventLimits()
        self._config: dict[str, Any] = {
            "bootstrap_servers": bootstrap.split(","),
            "linger_ms": 5,
            "acks": 1,
            "enable_idempotence": False,  # acks=1: a leader ack is enough here
            "max_block_ms": 2_000,
            "bootstrap_timeout_ms": 5_000,
            "max_request_size": 4 * 1024 * 1024,
            "client_id": "driftline-sdk",
        }
        self._config.update(producer_config or {})
        self._producer: KafkaProducer | None = None  # connected by the sender thread
        self._buffers: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._buffered = 0
        self._in_flight = 0
        self._lock = threading.Condition()
        self._closed = False
        self._sender = threading.Thread(target=self._run, name="driftline-sdk", daemon=True)
        self._sender.start()

    # -- public API -----------------------------------------------------------------------
    def log_prediction(
        self,
        model: str,
        features: Mapping[str, Any],
        prediction: Any,
        *,
        version: str | None = None,
        id: str | None = None,
        ts: float | str | None = None,
        latency_ms: float | None = None,
        segment: Mapping[str, str] | None = None,
        stage: str | None = None,
        metrics: Mapping[str, float] | None = None,
        shadow: bool | None = None,
        decided_by: str | None = None,
    ) -> str:
        """Queue one prediction event; returns its id (generated when not given).

        ``metrics``: custom and business metrics (name -> number: ``{"gpu_mem_mb": 5120}``),
        aggregated per window as ``custom.<name>.<stat>``. Bad entries are dropped with a
        warning (and counted in ``stats.metrics_dropped``); the event is sent without them.
        ``shadow``: a shadow prediction (monitored, not acted on; give it the live one's
        ``id``). ``decided_by``: ``"model"`` or ``"human"``, for cases the model defers.
        """
        event: dict[str, Any] = {
            "model": model,
            "id": id or uuid.uuid4().hex,
            "ts": time.time() if ts is None else ts,
            "features": dict(features),
            "prediction": prediction,
        }
        for key, value in (
            ("version", version),
            ("latency_ms", latency_ms),
            ("segment", dict(segment) if segment else None),
            ("stage", stage),
            ("metrics", dict(metrics) if isinstance(metrics, Mapping) else metrics),
            ("shadow", shadow),
            ("decided_by", decided_by),
        ):
            if value is not None:
                event[key] = value
        reason = _checked(check_prediction_event, event, self._limits)
        if reason is not None:
            raise ValueError(f"invalid prediction event: {reason}")
        self._clean_metrics(event)
        self._append(topics.PREDICTIONS, event)
        return str(event["id"])

    def log_label(
        self,
        model: str,
        id: str,
        label: Any = None,
        *,
        ts: float | str | None = None,
        stage: str | None = None,
        metrics: Mapping[str, float] | None = None,
    ) -> None:
        """Queue the true outcome of an earlier prediction (joined by ``model``, ``stage`` and
        ``id``, whichever of the two arrives first).

        ``metrics``: business outcomes known later (``{"clicked": 1}``), joined to the
        prediction's window and slices as ``labels.custom.<name>.<stat>``; with them the
        ``label`` may be left out.
        """
        event: dict[str, Any] = {"model": model, "id": id, "ts": time.time() if ts is None else ts}
        if label is not None:
            event["label"] = label
        if stage:
            event["stage"] = stage
        if metrics is not None:
            event["metrics"] = dict(metrics) if isinstance(metrics, Mapping) else metrics
        reason = _checked(check_label_event, event, self._limits)
        if reason is not None:
            raise ValueError(f"invalid label event: {reason}")
        self._clean_metrics(event)
        self._append(topics.LABELS, event)

    def flush(self, timeout: float | None = 30.0) -> None:
        """Block until every queued event is acknowledged or has failed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._lock.notify_all()
            while self._buffered or self._in_flight:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(
                        f"{self._buffered + self._in_flight} events not delivered after "
                        f"{timeout}s; is the broker reachable?"
                    )
                self._lock.wait(0.05 if remaining is None else min(0.05, remaining))
        if self._producer is not None:
            self._producer.flush(
                timeout=None if deadline is None else max(0.0, deadline - time.monotonic())
            )

    def close(self, timeout: float | None = 30.0) -> None:
        try:
            self.flush(timeout)
        finally:
            with self._lock:
                self._closed = True
                self._lock.notify_all()
            self._sender.join(timeout=10)
            if self._producer is not None:
                self._producer.close(timeout=5)

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------
    def _clean_metrics(self, event: dict[str, Any]) -> None:
        """Bad custom metrics cost the event nothing else: it is sent without them."""
        reason = clean_custom_metrics(event, self._limits)
        if reason is None:
            return
        with self._lock:
            self.stats.metrics_dropped += 1
            dropped = self.stats.metrics_dropped
        if dropped == 1 or dropped % 1000 == 0:  # a bug sending this on every call stays quiet
            log.warning(
                "Driftline: an event of %r was sent without some custom metrics "
                "(%d such events so far): %s",
                event["model"],
                dropped,
                reason,
            )

    def _append(self, topic: str, event: dict[str, Any]) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("Monitor is closed")
            if self._buffered >= self.max_buffered:
                self.stats.dropped += 1
                self._report(BufferError("Driftline buffer full; event dropped"), 1)
                return
            buffer = self._buffers.setdefault((topic, event["model"]), [])
            buffer.append(event)
            self._buffered += 1
            if len(buffer) >= self.max_batch:
                self._lock.notify_all()

    def _connect(self) -> KafkaProducer | None:
        try:
            self._producer = KafkaProducer(**self._config)
        except Exception as exc:  # broker unreachable: keep buffering, try again
            self._report(exc, 0)
            return None
        return self._producer

    def _run(self) -> None:
        backoff = 0.5
        while True:
            producer = self._producer or self._connect()
            if producer is None:
                with self._lock:
                    if self._closed:  # never connected: what is left is lost
                        self._fail_buffered(ConnectionError("no Kafka broker reachable"))
                        return
                    self._lock.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            with self._lock:
                full = any(len(b) >= self.max_batch for b in self._buffers.values())
                if not full and not self._closed:
                    self._lock.wait(self.linger_s)
                batches = self._buffers
                self._buffers = {}
                taken = sum(len(b) for b in batches.values())
                self._buffered -= taken
                self._in_flight += taken
                closed = self._closed
            for (topic, _), events in batches.items():
                self._send(producer, topic, events)
            if closed and not batches:
                return

    def _fail_buffered(self, error: Exception) -> None:
        lost, self._buffers, self._buffered = self._buffered, {}, 0
        if lost:
            self.stats.failed += lost
            self._lock.notify_all()
            self._report(error, lost)

    def _send(self, producer: KafkaProducer, topic: str, events: list[dict[str, Any]]) -> None:
        for key, value, count in encode_batches(events, self.max_batch):
            try:
                future = producer.send(topic, key=key, value=value)
            except Exception as exc:  # buffer full for max_block_ms, or not connected
                self._done(count, exc)
                continue
            future.add_callback(lambda _meta, n=count: self._done(n, None))
            future.add_errback(lambda exc, n=count: self._done(n, exc))

    def _done(self, count: int, error: Exception | None) -> None:
        with self._lock:
            self._in_flight -= count
            if error is None:
                self.stats.sent += count
            else:
                self.stats.failed += count
            self._lock.notify_all()
        if error is not None:
            self._report(error, count)

    def _report(self, error: Exception, count: int) -> None:
        if count:
            log.warning("Driftline: %d events not delivered: %s", count, error)
        else:
            log.warning("Driftline: cannot reach Kafka yet (events stay buffered): %s", error)
        if self.on_error is not None:
            try:
                self.on_error(error, count)
            except Exception:
                log.exception("Driftline on_error handler failed")


def _checked(
    check: Callable[[Any, EventLimits], str | None], event: dict[str, Any], limits: EventLimits
) -> str | None:
    """Why the worker would refuse ``event`` (its schema, then its time), or None."""
    copy = dict(event)  # the check normalises ``ts`` in place
    reason = check(copy, limits)
    if reason is None and copy.get("ts") is not None:
        reason = time_reason(copy["ts"], time.time(), limits)
    return reason
