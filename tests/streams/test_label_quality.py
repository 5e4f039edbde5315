"""Label quality in the quality pass: a second, different label for an id is counted
(``labels.conflicts``; the latest label is the one scored), a label sent again is not, and
label delays have percentiles (``labels.delay_p50`` / ``labels.delay_p95``). On both store
backends."""

from __future__ import annotations

import time

import numpy as np
import pytest

from driftline.store import Store
from driftline.store.labels import LabelRow, LabelStore, PredictionRow
from streams.quality import QualityConfig, QualityTracker
from streams.segments import SegmentValues

WINDOW = 60


def test_conflicting_labels_are_counted_and_delays_have_percentiles(store: Store) -> None:
    start = int(time.time() // WINDOW) * WINDOW - 3 * WINDOW
    labels = LabelStore(store.backend)
    ids = [f"e{i}" for i in range(100)]
    labels.write_predictions(
        [
            PredictionRow(
                "spam",
                "",
                i,
                start + 1,
                start,
                "1",
                {"model": "spam", "id": i, "prediction": 1, "features": {"x": 1.0}},
            )
            for i in ids
        ]
    )
    delays = np.arange(1, 101, dtype=float)  # label k arrives k seconds after its prediction
    first = [
        LabelRow("spam", "", i, 1, int((start + 1 + d) * 1000))
        for i, d in zip(ids, delays, strict=True)
    ]
    # five ids relabelled differently later (the latest counts), three sent again unchanged
    later = (start + 200) * 1000
    relabelled = [LabelRow("spam", "", i, 0, later) for i in ids[:5]]
    resent = [LabelRow("spam", "", i, 1, later) for i in ids[5:8]]
    labels.write_labels(first + relabelled + resent)
    tracker = QualityTracker(
        labels, store, QualityConfig(window_seconds=WINDOW, min_labels=1), SegmentValues()
    )
    tracker.run()

    def stored(metric: str) -> float:
        [point] = store.metrics("spam", name=metric, start=start, end=start + 1)
        return point.value

    assert stored("labels.count") == 100
    assert stored("labels.conflicts") == 5
    assert stored("quality.accuracy") == pytest.approx(0.95)  # the five now say 0
    # the delays, with the five relabelled at 199 s and the three re-sent at 199 s too
    final = delays.copy()
    final[:8] = 199.0
    assert stored("labels.delay_p50") == pytest.approx(float(np.percentile(final, 50)))
    assert stored("labels.delay_p95") == pytest.approx(float(np.percentile(final, 95)))
