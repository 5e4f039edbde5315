"""Follow a model's traffic split, as Driftline's deployments announce it, and pick a version
for each request.

A canary or blue-green deployment (``POST /v1/models/{model}/deployments``) announces every
change of its split on ``driftline.model-updates``: ``{"model": …, "version": …, "event": …,
"split": {"2": 5.0, "1": 95.0}}``. ``TrafficSplit`` reads that topic from its start in a
background thread, keeps the model's newest split, and ``pick`` maps a request to a version.
With a key (a user or session id) the choice is stable: a key hashes to a point in [0, 100),
and the versions own consecutive ranges in the order the split lists them (the candidate
first), so the keys of a 5 % step stay on the candidate at 25 %.

>>> split = TrafficSplit("fraud", default="1", bootstrap=None)
>>> split.pick("user-7")
'1'
>>> split.apply({"model": "fraud", "version": "2", "event": "canary_step",
...              "split": {"2": 25.0, "1": 75.0}})
True
>>> sorted({split.pick(f"user-{i}") for i in range(200)})
['1', '2']
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
from collections.abc import Mapping
from typing import Any

import orjson

from driftline_sdk import topics

log = logging.getLogger(__name__)


def _point(key: str) -> float:
    """A key's stable place in [0, 100)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 10_000 / 100


class TrafficSplit:
    """The current split of one model's traffic between versions, from Driftline."""

    def __init__(
        self,
        model: str,
        default: str,
        bootstrap: str | None = "127.0.0.1:9092",
        *,
        consumer_config: Mapping[str, Any] | None = None,
    ) -> None:
        self.model = model
        self._split: dict[str, float] = {default: 100.0}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if bootstrap is not None:
            config: dict[str, Any] = {
                "bootstrap_servers": bootstrap.split(","),
                "auto_offset_reset": "earliest",
                "enable_auto_commit": False,
                "group_id": None,
                "client_id": "driftline-traffic-split",
            }
            config.update(consumer_config or {})
            self._thread = threading.Thread(
                target=self._follow, args=(config,), name="driftline-split", daemon=True
            )
            self._thread.start()

    @property
    def split(self) -> dict[str, float]:
        """Version -> share of the traffic (%), as last announced."""
        with self._lock:
            return dict(self._split)

    def pick(self, key: str | None = None) -> str:
        """The version to serve a request with: stable per ``key``, at random without one."""
        point = _point(key) if key is not None else random.uniform(0, 100)
        with self._lock:
            split = self._split
            total = sum(split.values()) or 1.0
            edge = 0.0
            for version, share in split.items():
                edge += 100.0 * share / total
                if point < edge:
                    return version
            return next(reversed(split))

    def apply(self, update: Mapping[str, Any]) -> bool:
        """Take one decoded announcement; True when it was this model's and changed nothing
        wrong. Announcements without a split (a promotion by hand) send everything to their
        version."""
        if update.get("model") != self.model:
            return False
        split = update.get("split")
        version = update.get("version")
        if isinstance(split, dict) and split:
            shares = {str(v): float(s) for v, s in split.items() if isinstance(s, (int, float))}
            shares = {v: s for v, s in shares.items() if s > 0}
        elif isinstance(version, str) and version:
            shares = {version: 100.0}
        else:
            return False
        if not shares:
            return False
        with self._lock:
            self._split = shares
        return True

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> TrafficSplit:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _follow(self, config: dict[str, Any]) -> None:
        from kafka import KafkaConsumer

        consumer = None
        while not self._stop.is_set():
            try:
                if consumer is None:
                    consumer = KafkaConsumer(topics.MODEL_UPDATES, **config)
                for records in consumer.poll(timeout_ms=500).values():
                    for record in records:
                        if record.key is not None and record.key != self.model.encode():
                            continue
                        try:
                            self.apply(orjson.loads(record.value))
                        except (orjson.JSONDecodeError, TypeError, ValueError):
                            log.warning(
                                "Driftline: skipped a bad model update at %d", record.offset
                            )
            except Exception as exc:  # broker away: keep the last split, try again
                log.warning("Driftline: cannot follow %s yet: %s", topics.MODEL_UPDATES, exc)
                if consumer is not None:
                    consumer.close()
                    consumer = None
                self._stop.wait(2.0)
        if consumer is not None:
            consumer.close()
