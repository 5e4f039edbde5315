"""Custom and business metrics (issue 19, point 4): numbers sent with predictions are
summarised per window and slice as ``custom.<name>.<stat>``; numbers sent with label events
(outcomes such as a click) are joined by id as ``labels.custom.<name>.<stat>``. Bad ones are
dropped with a reason and cost the event nothing else. On both store backends."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest
from helpers import in_process_worker

from driftline import topics
from driftline.events import EventLimits
from driftline.store import Store
from streams.labels import LabelWorker
from streams.quality import QualityConfig, QualityTracker

WINDOW = 10  # in_process_worker's windows
TP = (topics.PREDICTIONS, 0)


def values(
    store: Store, model: str, prefix: str, start: int, segment: str = ""
) -> dict[str, float]:
    points = store.metrics(model, start=start, end=start + 1, segment=segment)
    return {p.metric: p.value for p in points if p.metric.startswith(prefix)}


def prediction(i: int, start: int, **extra: Any) -> dict[str, Any]:
    return {
        "model": "shop",
        "id": f"p{i}",
        "ts": start + 1,
        "features": {"x": float(i)},
        "prediction": 1,
        "segment": {"channel": "web" if i % 2 else "app"},
        **extra,
    }


async def commit(offsets: Any) -> None:
    pass


def test_custom_metrics_per_window_and_slice_and_outcomes_joined_by_id(store: Store) -> None:
    start = int(time.time() // WINDOW) * WINDOW - 3 * WINDOW
    # 40 events: ctr is 1 for the first 10, gpu_mem_mb on every other one; 2 more whose custom
    # metrics are partly or wholly bad, and one without any
    events = [
        prediction(i, start, metrics={"ctr": int(i < 10), **({"gpu": 100 + i} if i % 2 else {})})
        for i in range(40)
    ]
    events.append(prediction(40, start, metrics={"ctr": "yes", "gpu": 500, "x y": 1}))
    events.append(prediction(41, start, metrics={f"m{i}": 1 for i in range(65)}))
    events.append(prediction(42, start))
    letters: list[dict[str, Any]] = []

    async def send(key: bytes | None, value: bytes) -> None:
        letters.append(orjson.loads(value))

    worker = in_process_worker(
        store, send=send, keep_events="all", log_ids={topics.PREDICTIONS: "custom-test"}
    )
    tracker = QualityTracker(
        worker.labels, store, QualityConfig(window_seconds=WINDOW, min_labels=1),
        worker.manager.segments,
    )  # fmt: skip
    labels = [
        # a label first, then its click as an outcome event without a label: both count
        {"model": "shop", "id": "p0", "label": 1, "ts": start + 5},
        {"model": "shop", "id": "p0", "metrics": {"clicked": 1, "dwell_s": 30}, "ts": start + 6},
        {"model": "shop", "id": "p1", "label": 0, "metrics": {"clicked": 0}, "ts": start + 5},
        {"model": "shop", "id": "p2", "metrics": {"clicked": 1}, "ts": start + 7},
        {"model": "shop", "id": "p3", "metrics": {"clicked": "no"}, "ts": start + 7},
    ]

    async def scenario() -> None:
        await worker.process([(TP, 0, start + 1.0, orjson.dumps(events))])
        worker.manager.close_due(time.time() + 7200)  # idle: the window closes
        await worker.pipeline.store_closed()
        assert await worker.raw.flush()
        label_side = LabelWorker(
            worker.labels, EventLimits(), worker.outbox, worker.thread.run, worker.raw.note_labelled
        )
        raw = [((topics.LABELS, 0), 0, start + 5.0, orjson.dumps(labels))]
        await label_side.process(raw, commit)
        await worker.score_quality(tracker)

    asyncio.run(scenario())
    worker.close()

    whole = values(store, "shop", "custom.", start)
    # every event counts in traffic, those whose custom metrics were dropped included
    assert values(store, "shop", "traffic.count", start) == {"traffic.count": 43.0}
    assert whole["custom.ctr.count"] == 40 and whole["custom.ctr.sum"] == 10
    assert whole["custom.ctr.mean"] == pytest.approx(0.25)
    assert whole["custom.ctr.p50"] == 0 and whole["custom.ctr.p95"] == 1
    # gpu: the 20 odd events (101 ... 139), and 500 from the event whose ctr was dropped
    assert whole["custom.gpu.count"] == 21
    assert whole["custom.gpu.sum"] == sum(range(101, 140, 2)) + 500
    assert whole["custom.gpu.p50"] == pytest.approx(121.0)
    assert set(whole) == {f"custom.{n}.{s}" for n in ("ctr", "gpu")
                          for s in ("count", "mean", "sum", "p50", "p95")}  # fmt: skip
    web = values(store, "shop", "custom.", start, "channel=web")
    assert web["custom.ctr.count"] == 20 and web["custom.ctr.sum"] == 5
    assert web["custom.gpu.count"] == 20

    dropped = [(letter["index"], letter["dropped"], letter["reason"]) for letter in letters]
    assert dropped == [
        (40, "metrics", "custom metric 'ctr' is a str; use a number (and 1 more dropped)"),
        (41, "metrics", "'metrics' has 65 names, over the limit of 64; none was kept"),
        (4, "metrics", "custom metric 'clicked' is a str; use a number"),
    ]

    outcomes = values(store, "shop", "labels.custom.", start)
    assert outcomes["labels.custom.clicked.count"] == 3  # p0, p1, p2 (p3's was dropped)
    assert outcomes["labels.custom.clicked.sum"] == 2
    assert outcomes["labels.custom.dwell_s.mean"] == 30
    app = values(store, "shop", "labels.custom.", start, "channel=app")  # p0 and p2
    assert app["labels.custom.clicked.count"] == 2 and app["labels.custom.clicked.mean"] == 1
    # an outcome event is not a label, and does not hide the label sent before it
    assert values(store, "shop", "labels.count", start) == {"labels.count": 2.0}
    joined = {r.id: r for r in worker.labels.window_joined("shop", "", start)}
    assert (joined["p0"].label, joined["p0"].outcomes) == (1, {"clicked": 1, "dwell_s": 30})
    assert (joined["p2"].label, joined["p3"].outcomes) == (None, None)
