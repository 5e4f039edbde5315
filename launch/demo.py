"""Synthetic traffic for ``driftline demo``: a fraud model whose world changes twice.

* Data drift (after ``drift_after_s``, for ``drift_duration_s``): baskets grow, ages go missing,
  a new country appears. The model's inputs move; its quality does not (fraud does not depend
  on them), which is what drift without labels cannot tell you.
* Concept drift (after ``concept_after_s``, until the model is retrained): on the mobile channel
  fraud moves to *small* amounts. The same inputs now mean something else, so only the labels
  show it: quality drops on ``channel=mobile``, the retraining loop takes over.

The served model is a real one: version 1 is trained here (``retrainer/train.py``) on the world
before the change and registered as champion; when the retrainer promotes another version,
``driftline.model-updates`` says so and the producer serves it from the registry from then on.
Labels (drawn from the true fraud probability) follow their predictions after a delay of one
to three windows, for 80 % of the events.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from driftline_sdk import Monitor
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from driftline import topics
from driftline.messages import PROMOTED, ROLLED_BACK, ModelUpdate
from retrainer.data import Example
from retrainer.registry import Registry, VersionNotFound
from retrainer.train import TrainConfig, predict, train

COUNTRIES = ["FR", "DE", "ES", "IT", "GB"]
COUNTRY_P = [0.35, 0.25, 0.15, 0.15, 0.10]
DRIFTED_COUNTRIES = [*COUNTRIES, "BR"]
DRIFTED_COUNTRY_P = [0.25, 0.20, 0.12, 0.13, 0.10, 0.20]


@dataclass(frozen=True)
class Drift:
    """What changes once the drift starts (all False: a stationary stream)."""

    items_scale: float = 2.0  # baskets double (the fraud risk does not depend on them)
    age_missing: float = 0.20  # from 2 % missing
    new_country: bool = True  # "BR" appears


def fraud_probability(
    amount: npt.NDArray[np.float64],
    account_days: npt.NDArray[np.float64],
    mobile: npt.NDArray[np.bool_],
    concept_drifted: bool,
) -> npt.NDArray[np.float64]:
    """The true chance that a transaction is fraud: the world the model tries to learn."""
    signal = (np.log(amount) - 4.5) * 1.5
    if concept_drifted:  # on mobile, fraud moves to small amounts
        signal = np.where(mobile, -signal + 1.0, signal)
    return np.asarray(1 / (1 + np.exp(-signal + account_days / 800)), dtype=np.float64)


def fraud_events(
    rng: np.random.Generator, n: int, drifted: bool, drift: Drift
) -> list[dict[str, Any]]:
    """``n`` events of the demo model, as SDK keyword arguments (prediction: the original
    scoring rule; the producer replaces it with the served model's)."""
    amount = rng.lognormal(3.5, 0.8, n)
    age = rng.normal(40, 12, n).round()
    age_missing = rng.random(n) < (drift.age_missing if drifted else 0.02)
    countries, p = (
        (DRIFTED_COUNTRIES, DRIFTED_COUNTRY_P)
        if drifted and drift.new_country
        else (COUNTRIES, COUNTRY_P)
    )
    country = rng.choice(countries, n, p=p)
    channel = rng.choice(["mobile", "web"], n, p=[0.6, 0.4])
    items = rng.poisson(2.0 * (drift.items_scale if drifted else 1.0), n)
    account_days = rng.exponential(400, n).round()
    score = fraud_probability(amount, account_days, channel == "mobile", False)
    latency = rng.gamma(4.0, 3.0, n)
    events = []
    for i in range(n):
        events.append(
            {
                "model": "fraud",
                "version": "1",
                "features": {
                    "amount": round(float(amount[i]), 2),
                    "age": None if age_missing[i] else float(age[i]),
                    "country": str(country[i]),
                    "channel": str(channel[i]),
                    "items": int(items[i]),
                    "account_days": float(account_days[i]),
                },
                "prediction": round(float(score[i]), 4),
                "latency_ms": round(float(latency[i]), 2),
                "segment": {"channel": str(channel[i])},
            }
        )
    return events


def training_examples(rng: np.random.Generator, n: int) -> list[Example]:
    """Labelled events of the world before any change: version 1's training data."""
    events = fraud_events(rng, n, False, Drift())
    labels = draw_labels(rng, events, concept_drifted=False)
    return [
        Example(e["features"], int(y), e["segment"], time.time())
        for e, y in zip(events, labels, strict=True)
    ]


def draw_labels(
    rng: np.random.Generator, events: list[dict[str, Any]], concept_drifted: bool
) -> npt.NDArray[np.bool_]:
    amount = np.array([e["features"]["amount"] for e in events], dtype=np.float64)
    days = np.array([e["features"]["account_days"] for e in events], dtype=np.float64)
    mobile = np.array([e["segment"]["channel"] == "mobile" for e in events])
    return np.asarray(
        rng.random(len(events)) < fraud_probability(amount, days, mobile, concept_drifted)
    )


def ensure_champion(registry: Registry, say: Callable[[str], None] = print) -> str:
    """Version 1 of the demo model, trained and promoted once per data directory."""
    champion = registry.champion(MODEL)
    if champion is not None:
        return champion.version
    examples = training_examples(np.random.default_rng(1), 4000)
    trained = train(examples, TrainConfig(seed=0, epochs=15))
    info = registry.register(MODEL, trained, {"notes": "the demo's first model"})
    registry.promote(MODEL, info.version, "initial version")
    say(f"demo: trained version {info.version} of {MODEL!r} on 4,000 labelled events")
    return info.version


MODEL = "fraud"


class TrafficThread:
    """A demo's traffic, sent from a daemon thread (``_run``) until :meth:`stop`."""

    def __init__(self, name: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        raise NotImplementedError


class DemoProducer(TrafficThread):
    """Sends the demo model's events at ``rate`` per second and their labels after a delay,
    plus a few invalid messages; serves whichever version the registry says is champion."""

    def __init__(
        self,
        bootstrap: str,
        registry: Registry,
        *,
        rate: float = 200.0,
        drift_after_s: float | None = 90.0,
        drift_duration_s: float | None = None,  # None: the drift never ends
        drift: Drift | None = None,
        concept_after_s: float | None = 240.0,
        label_delay_s: tuple[float, float] = (10.0, 30.0),
        label_share: float = 0.8,
        say: Callable[[str], None] = print,
        seed: int = 7,
    ) -> None:
        self.bootstrap = bootstrap
        self.registry = registry
        self.rate = rate
        self.drift_after_s = drift_after_s
        self.drift_duration_s = drift_duration_s
        self.drift = drift or Drift()
        self.concept_after_s = concept_after_s
        self.label_delay_s = label_delay_s
        self.label_share = label_share
        self.say = say
        self.rng = np.random.default_rng(seed)
        # custom metrics draw from their own stream: the traffic stays what it was without them
        self.serving_rng = np.random.default_rng(seed + 1)
        self.sent = 0
        self.labels_sent = 0
        self.version = ensure_champion(registry, say)
        self.model = registry.load(MODEL, self.version)
        self._pending: list[tuple[float, str, int]] = []  # (due, id, label), a heap
        super().__init__("driftline-demo")

    def _run(self) -> None:
        monitor = Monitor(self.bootstrap, linger_s=0.1)
        raw = KafkaProducer(bootstrap_servers=self.bootstrap.split(","), client_id="driftline-demo")
        updates = _model_updates(self.bootstrap)
        started = time.monotonic()
        drifted = False
        drift_over = False
        concept = False
        next_invalid = started + 5
        try:
            while not self._stop.is_set():
                tick = time.monotonic()
                elapsed = tick - started
                if (
                    drifted
                    and self.drift_after_s is not None
                    and self.drift_duration_s is not None
                    and elapsed >= self.drift_after_s + self.drift_duration_s
                ):
                    drifted, drift_over = False, True
                    self.say("demo: drift ends now — the stream is back to normal")
                if (
                    not drifted
                    and not drift_over
                    and self.drift_after_s is not None
                    and elapsed >= self.drift_after_s
                ):
                    drifted = True
                    self.say(
                        "demo: injecting drift now — 'items' x2, 'age' 20% missing, "
                        "new 'country' value BR"
                    )
                if (
                    not concept
                    and self.concept_after_s is not None
                    and elapsed >= self.concept_after_s
                ):
                    concept = True
                    self.say(
                        "demo: concept drift now — on mobile, fraud moves to small amounts "
                        "(same inputs, new meaning); watch quality, labels and retraining"
                    )
                self._serve_updates(updates)
                self._send_events(monitor, drifted, concept, tick)
                self._send_due_labels(monitor, tick)
                if tick >= next_invalid:
                    next_invalid = tick + 5
                    self._send_invalid(raw)
                self._stop.wait(max(0.0, 0.1 - (time.monotonic() - tick)))
        finally:
            updates.close()
            monitor.close(timeout=10)
            raw.close(timeout=5)

    def _send_events(self, monitor: Monitor, drifted: bool, concept: bool, now: float) -> None:
        events = fraud_events(self.rng, max(1, int(self.rate / 10)), drifted, self.drift)
        scores = predict(self.model, [e["features"] for e in events])
        labels = draw_labels(self.rng, events, concept)
        low, high = self.label_delay_s
        for event, score, label in zip(events, scores, labels, strict=True):
            event["prediction"] = round(float(score), 4)  # type: ignore[arg-type]
            event["version"] = self.version
            # the serving process's own figures, as custom metrics (custom.<name>.<stat>)
            serving = self.serving_rng
            custom = {"gpu_mem_mb": round(float(serving.normal(5120, 60)), 1),
                      "queue_depth": int(serving.poisson(3))}  # fmt: skip
            ident = monitor.log_prediction(**event, metrics=custom)
            self.sent += 1
            if self.rng.random() < self.label_share:
                due = now + float(self.rng.uniform(low, high))
                heapq.heappush(self._pending, (due, ident, int(label)))

    def _send_due_labels(self, monitor: Monitor, now: float) -> None:
        while self._pending and self._pending[0][0] <= now:
            _, ident, label = heapq.heappop(self._pending)
            # a business outcome with the label: the minutes an analyst spent on the case
            minutes = round(float(self.serving_rng.gamma(2.0, 6.0 if label else 1.5)), 1)
            monitor.log_label(MODEL, ident, label, metrics={"review_minutes": minutes})
            self.labels_sent += 1

    def _serve_updates(self, updates: KafkaConsumer) -> None:
        """Serving code's side of ``driftline.model-updates``: load the promoted version."""
        for records in updates.poll(timeout_ms=0).values():
            for record in records:
                try:
                    update = ModelUpdate.from_bytes(record.value)
                except ValueError as exc:
                    self.say(f"demo: skipped a bad model update at offset {record.offset}: {exc}")
                    continue
                if update.model != MODEL or update.version == self.version:
                    continue
                if update.event not in (PROMOTED, ROLLED_BACK):
                    continue  # a deployment's step: this producer serves one version at a time
                try:
                    self.model = self.registry.load(MODEL, update.version)
                except VersionNotFound as exc:
                    self.say(f"demo: cannot serve version {update.version}: {exc}")
                    continue
                self.version = update.version
                self.say(f"demo: now serving version {self.version} of {MODEL!r} ({update.event})")

    @staticmethod
    def _send_invalid(raw: KafkaProducer) -> None:
        """Two kinds of bad input, to show the dead-letter topic at work."""
        raw.send(topics.PREDICTIONS, key=b"fraud", value=b"{not json")
        raw.send(
            topics.PREDICTIONS,
            key=b"fraud",
            value=b'[{"model": "fraud", "features": {"amount": [1, 2]}, "prediction": 0.5}]',
        )


def _model_updates(bootstrap: str) -> KafkaConsumer:
    """Announcements from now on (no group: every serving replica hears every update)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), consumer_timeout_ms=0)
    partition = TopicPartition(topics.MODEL_UPDATES, 0)
    consumer.assign([partition])
    consumer.seek_to_end(partition)
    return consumer
