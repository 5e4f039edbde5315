"""Synthetic traffic for ``driftline demo``: a fraud model whose inputs drift partway."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from kafka import KafkaProducer

from driftline import topics
from driftline.sdk import Monitor

COUNTRIES = ["FR", "DE", "ES", "IT", "GB"]
COUNTRY_P = [0.35, 0.25, 0.15, 0.15, 0.10]
DRIFTED_COUNTRIES = [*COUNTRIES, "BR"]
DRIFTED_COUNTRY_P = [0.25, 0.20, 0.12, 0.13, 0.10, 0.20]


@dataclass(frozen=True)
class Drift:
    """What changes once the drift starts (all False: a stationary stream)."""

    amount_scale: float = 1.8  # amounts grow: log-mean +0.59
    age_missing: float = 0.20  # from 2 % missing
    new_country: bool = True  # "BR" appears


def fraud_events(
    rng: np.random.Generator, n: int, drifted: bool, drift: Drift
) -> list[dict[str, Any]]:
    """``n`` events of the demo model, as SDK keyword arguments."""
    amount = rng.lognormal(3.5, 0.8, n) * (drift.amount_scale if drifted else 1.0)
    age = rng.normal(40, 12, n).round()
    age_missing = rng.random(n) < (drift.age_missing if drifted else 0.02)
    countries, p = (
        (DRIFTED_COUNTRIES, DRIFTED_COUNTRY_P)
        if drifted and drift.new_country
        else (COUNTRIES, COUNTRY_P)
    )
    country = rng.choice(countries, n, p=p)
    channel = rng.choice(["mobile", "web"], n, p=[0.6, 0.4])
    items = rng.poisson(2.0, n)
    account_days = rng.exponential(400, n).round()
    score = 1 / (1 + np.exp(-(np.log(amount) - 4.5) * 1.5 + account_days / 800))
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


class DemoProducer:
    """Sends the demo model's events at ``rate`` per second, plus a few invalid messages."""

    def __init__(
        self,
        bootstrap: str,
        *,
        rate: float = 200.0,
        drift_after_s: float | None = 90.0,
        drift_duration_s: float | None = None,  # None: the drift never ends
        drift: Drift | None = None,
        say: Callable[[str], None] = print,
        seed: int = 7,
    ) -> None:
        self.bootstrap = bootstrap
        self.rate = rate
        self.drift_after_s = drift_after_s
        self.drift_duration_s = drift_duration_s
        self.drift = drift or Drift()
        self.say = say
        self.rng = np.random.default_rng(seed)
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="driftline-demo", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        monitor = Monitor(self.bootstrap, linger_s=0.1)
        raw = KafkaProducer(bootstrap_servers=self.bootstrap.split(","), client_id="driftline-demo")
        started = time.monotonic()
        drifted = False
        drift_over = False
        next_invalid = started + 5
        try:
            while not self._stop.is_set():
                tick = time.monotonic()
                if (
                    drifted
                    and self.drift_after_s is not None
                    and self.drift_duration_s is not None
                    and tick - started >= self.drift_after_s + self.drift_duration_s
                ):
                    drifted, drift_over = False, True
                    self.say("demo: drift ends now — the stream is back to normal")
                if (
                    not drifted
                    and not drift_over
                    and self.drift_after_s is not None
                    and tick - started >= self.drift_after_s
                ):
                    drifted = True
                    self.say(
                        "demo: injecting drift now — 'amount' x1.8, 'age' 20% missing, "
                        "new 'country' value BR"
                    )
                for event in fraud_events(
                    self.rng, max(1, int(self.rate / 10)), drifted, self.drift
                ):
                    monitor.log_prediction(**event)
                    self.sent += 1
                if tick >= next_invalid:
                    next_invalid = tick + 5
                    self._send_invalid(raw)
                self._stop.wait(max(0.0, 0.1 - (time.monotonic() - tick)))
        finally:
            monitor.close(timeout=10)
            raw.close(timeout=5)

    @staticmethod
    def _send_invalid(raw: KafkaProducer) -> None:
        """Two kinds of bad input, to show the dead-letter topic at work."""
        raw.send(topics.PREDICTIONS, key=b"fraud", value=b"{not json")
        raw.send(
            topics.PREDICTIONS,
            key=b"fraud",
            value=b'[{"model": "fraud", "features": {"amount": [1, 2]}, "prediction": 0.5}]',
        )
