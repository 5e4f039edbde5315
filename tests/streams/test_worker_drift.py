"""Drift through the real pipeline: uploaded reference, events on a real broker, results in
a real ClickHouse server."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import numpy as np
import orjson
from helpers import wait_until
from kafka import KafkaProducer

from detectors.drift.window import ModelReference
from driftline import topics
from driftline.broker import EmbeddedBroker
from driftline.store import Store, StoredReference
from driftline.store.server import ServerBackend

BASE = 1_700_000_000
StartWorker = Callable[[dict[str, str]], subprocess.Popen[bytes]]


def events(rng: np.random.Generator, n: int, ts: int, shift: float) -> list[dict[str, object]]:
    return [
        {
            "model": "fraud",
            "features": {f"f{j}": float(rng.normal(shift if j == 3 else 0.0, 1)) for j in range(8)}
            | {"country": str(rng.choice(["FR", "DE"]))},
            "prediction": float(rng.random()),
            "ts": ts + i / n,
        }
        for i in range(n)
    ]


def test_drifted_window_names_the_shifted_feature(
    broker: EmbeddedBroker, worker_env: dict[str, str], start_worker: StartWorker,
    clickhouse_url: str,
) -> None:  # fmt: skip
    store = Store(ServerBackend(clickhouse_url))
    store.init_schema()
    rng = np.random.default_rng(0)
    reference = ModelReference.from_rows(events(rng, 5000, BASE, 0.0), "*")
    store.save_reference(StoredReference("fraud", "*", "uploaded", reference.to_dict(), BASE))
    start_worker({**worker_env, "DRIFTLINE_STREAMING_DETECTORS": '{"fraud": ["adwin"]}'})
    raw = KafkaProducer(bootstrap_servers=broker.bootstrap)
    windows = [(BASE, 0.0), (BASE + 10, 0.0), (BASE + 20, 1.0), (BASE + 30, 0.0)]
    for ts, shift in windows:
        batch = events(rng, 1500, ts, shift)
        for i in range(0, len(batch), 500):
            raw.send(topics.PREDICTIONS, key=b"fraud", value=orjson.dumps(batch[i : i + 500]))
    raw.send(topics.PREDICTIONS, key=b"fraud", value=orjson.dumps(events(rng, 1, BASE + 60, 0)))
    raw.flush()
    raw.close()

    def drifted(start: int) -> set[str] | None:
        rows = [
            r for r in store.drift_results("fraud", start=start, end=start + 1) if r.in_decision
        ]
        if not rows:
            return None  # not tested (yet)
        return {r.feature for r in rows if r.drifted}

    wait_until(lambda: drifted(BASE + 30) is not None, what="the fourth window's drift")
    assert drifted(BASE) == set()
    assert drifted(BASE + 10) == set()
    assert drifted(BASE + 20) == {"f3"}  # 1 sigma in one of 9 features
    assert drifted(BASE + 30) == set()
    share = store.metrics("fraud", name="drift.share_drifted", start=BASE + 20, end=BASE + 21)
    assert share[0].value == 1 / 9
    rows = store.drift_results("fraud", start=BASE + 20, end=BASE + 21)
    adwin = {r.feature for r in rows if r.test == "adwin" and r.drifted}
    assert "f3" in adwin  # river's ADWIN, per event, fires on the shifted feature too
