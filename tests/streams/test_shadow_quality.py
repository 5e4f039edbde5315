"""Shadow mode once labels arrive (issue 15): shadow predictions are kept apart from their live
twins, joined to the same labels by id, and the quality pass writes on the shadow cut both
versions' quality on the same labelled ids with a paired test, while the live figures, the
examples and the training data never count a shadow row. On both store backends."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy import stats

from driftline.store import Store
from driftline.store.labels import LabelRow, LabelStore, PredictionRow
from streams.quality import QualityConfig, QualityTracker
from streams.segments import SegmentValues

WINDOW = 60


def test_the_shadow_is_scored_on_the_live_models_labelled_ids(store: Store) -> None:
    rng = np.random.default_rng(11)
    start = int(time.time() // WINDOW) * WINDOW - 3 * WINDOW
    labels = rng.normal(100.0, 20.0, 200)
    live = labels + rng.normal(0.0, 1.0, 200)
    shadow = labels + rng.normal(0.0, 3.0, 200)  # the candidate errs about three times more

    def row(ident: str, prediction: float, version: str, shadow: bool = False) -> PredictionRow:
        event = {"model": "price", "id": ident, "ts": start + 1, "prediction": prediction,
                 "version": version, "features": {"x": 1.0}}  # fmt: skip
        if shadow:
            event["shadow"] = True
        return PredictionRow("price", "", ident, start + 1, start, version, event, shadow)

    ids = [f"r{i}" for i in range(200)]
    rows = [row(i, float(p), "1") for i, p in zip(ids, live, strict=True)]
    rows += [row(i, float(p), "2", shadow=True) for i, p in zip(ids, shadow, strict=True)]
    # a live prediction with no shadow twin, and a pair that is never labelled
    rows += [row("solo", 50.0, "1"), row("later", 1.0, "1"), row("later", 9.0, "2", True)]
    label_store = LabelStore(store.backend)
    tracker = QualityTracker(
        label_store, store, QualityConfig(window_seconds=WINDOW, min_labels=1), SegmentValues()
    )
    label_store.write_predictions(rows)
    label_ms = (start + 5) * 1000
    label_store.write_labels(
        [LabelRow("price", "", i, float(y), label_ms) for i, y in zip(ids, labels, strict=True)]
        + [LabelRow("price", "", "solo", 52.0, label_ms)]
    )
    tracker.run()

    def stored(metric: str, cut: str = "") -> float | None:
        points = store.metrics("price", name=metric, start=start, end=start + 1, segment=cut)
        return points[0].value if points else None

    # the live figures: the live rows only (a shadow twin neither replaced nor joined them)
    live_errors = np.abs(live - labels)
    assert stored("labels.count") == 201
    assert stored("labels.coverage") == pytest.approx(201 / 202)
    assert stored("quality.mae") == pytest.approx((live_errors.sum() + 2.0) / 201)
    # the shadow cut: the shadow version's own figures, of its version
    shadow_errors = np.abs(shadow - labels)
    assert stored("labels.count", "@shadow=true") == 200
    assert stored("quality.mae", "@shadow=true") == pytest.approx(shadow_errors.mean())
    points = store.metrics("price", name="quality.mae", start=start, end=start + 1,
                           segment="@shadow=true")  # fmt: skip
    assert [p.version for p in points] == ["2"]
    # both versions on the same 200 labelled ids, and Wilcoxon on the paired absolute errors
    assert stored("shadow.quality.paired", "@shadow=true") == 200
    assert stored("shadow.quality.mae", "@shadow=true") == pytest.approx(shadow_errors.mean())
    assert stored("shadow.quality.live_mae", "@shadow=true") == pytest.approx(live_errors.mean())
    p_value = stats.wilcoxon(shadow_errors - live_errors).pvalue
    assert stored("shadow.quality.p_value", "@shadow=true") == pytest.approx(p_value)
    assert p_value < 1e-6
    # training data and the window's examples are the live predictions
    training = label_store.labelled_events("price")
    assert len(training) == 201 and {r.version for r in training} == {"1"}
    assert all("shadow" not in r.event for r in label_store.window_joined("price", "", start))
    shadows = label_store.window_joined("price", "", start, shadow=True)
    assert len(shadows) == 201 and {r.version for r in shadows} == {"2"}
