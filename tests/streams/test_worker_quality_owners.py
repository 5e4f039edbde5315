"""Two workers sharing one ClickHouse server, each consuming one partition: each scores the
quality of the units it consumes, and only those (the pass is not repeated per worker)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import orjson
from helpers import in_process_worker

from driftline import topics
from driftline.store import Store
from streams.labels import label_rows
from streams.quality import QualityConfig, QualityTracker, ScoredWindow
from streams.worker import PredictionWorker

WINDOW = 10


def consumer(
    store: Store, partition: int, clock: Callable[[], float] = time.time
) -> tuple[PredictionWorker, QualityTracker]:
    worker = in_process_worker(
        store, log_ids={topics.PREDICTIONS: "owners-test"}, restored=False, keep_events="all"
    )
    config = QualityConfig(window_seconds=WINDOW, min_labels=5)
    tracker = QualityTracker(worker.labels, store, config, worker.manager.segments, clock)
    asyncio.run(worker.restore([(topics.PREDICTIONS, partition)]))
    return worker, tracker


def test_each_unit_is_scored_by_the_worker_that_consumes_it(server_store: Store) -> None:
    store = server_store
    start = int(time.time() // WINDOW) * WINDOW - 3 * WINDOW
    workers = [consumer(store, 0), consumer(store, 1)]
    scored: list[list[ScoredWindow]] = [[], []]
    for (worker, _), mine in zip(workers, scored, strict=True):
        worker.on_quality.append(mine.append)

    def events(model: str, stage: str | None = None) -> list[dict[str, object]]:
        return [
            {"model": model, "stage": stage, "id": f"{i}", "ts": start + 1,
             "features": {"x": float(i)}, "prediction": 1}
            for i in range(10)
        ]  # fmt: skip

    async def scenario() -> None:
        # partition 0 carries model "a" and its stage "a::asr"; partition 1 carries "b"
        for partition, batch in ((0, events("a") + events("a", "asr")), (1, events("b"))):
            worker, _ = workers[partition]
            await worker.process([((topics.PREDICTIONS, partition), 0, start + 1.0,
                                   orjson.dumps(batch))])  # fmt: skip
            assert await worker.raw.flush()
        labels = [
            {"model": model, "stage": stage, "id": f"{i}", "label": 1, "ts": start + 5}
            for model, stage in (("a", None), ("a", "asr"), ("b", None))
            for i in range(8)
        ]
        workers[0][0].labels.write_labels(label_rows(labels, start + 5.0))
        for worker, tracker in workers:  # both passes see every changed window ...
            await worker.score_quality(tracker)

    asyncio.run(scenario())
    # ... and each scores only its own units, once
    assert sorted(w.unit for w in scored[0]) == ["a", "a::asr"]
    assert [w.unit for w in scored[1]] == ["b"]
    for model, stage in (("a", ""), ("a", "asr"), ("b", "")):
        points = store.metrics(model, name="labels.count", start=start, end=start + 1, stage=stage)
        assert [p.value for p in points] == [8.0]
    for worker, _ in workers:
        worker.close()


def test_a_worker_taking_partitions_over_rescores_what_changed_before(server_store: Store) -> None:
    store = server_store
    start = int(time.time() // WINDOW) * WINDOW - 3 * WINDOW
    tp = (topics.PREDICTIONS, 0)
    batch = [
        {"model": "c", "id": f"{i}", "ts": start + 1, "features": {"x": 1.0}, "prediction": 1}
        for i in range(10)
    ]
    message = (tp, 0, start + 1.0, orjson.dumps(batch))
    first, _ = consumer(store, 0)
    # the new owner started a minute after the labels landed: without looking back, it would
    # take them for its predecessor's business
    later, tracker = consumer(store, 0, clock=lambda: time.time() + 60)
    scored: list[ScoredWindow] = []
    later.on_quality.append(scored.append)

    async def scenario() -> None:
        await first.process([message])
        assert await first.raw.flush()
        labels = [{"model": "c", "id": f"{i}", "label": 1, "ts": start + 5} for i in range(8)]
        first.labels.write_labels(label_rows(labels, start + 5.0))
        first.forget([tp])  # the partition moves before the first worker's next pass
        await later.process([message])  # its uncommitted events are replayed to the new owner
        await later.score_quality(tracker)

    asyncio.run(scenario())
    assert [w.unit for w in scored] == ["c"]
    for worker in (first, later):
        worker.close()
