"""A window whose labels are still landing is tested again at every quality pass; each look
spends a share of alpha, the share of its labels already in against the reference windows'
coverage (``partial_window_p_value``), so the looks together do not page more often than one
test of the complete window. On both store backends."""

from __future__ import annotations

import time

import pytest

from detectors.quality import partial_window_p_value, reference_coverage
from driftline.store import Store
from driftline.store.labels import LabelRow, LabelStore, PredictionRow
from streams.quality import QualityConfig, QualityTracker
from streams.segments import SegmentValues

WINDOW = 60


def _window(labels: LabelStore, start: int, events: int, labelled: int, errors: int) -> None:
    """``events`` predictions of 1 in the window at ``start``; the first ``labelled`` of them
    labelled, ``errors`` of those 0 (misclassified)."""
    ids = [f"w{start}-{i}" for i in range(events)]
    labels.write_predictions(
        [
            PredictionRow(
                "loans",
                "",
                i,
                start + 1,
                start,
                "1",
                {"model": "loans", "id": i, "prediction": 1, "features": {"x": 1.0}},
            )
            for i in ids
        ]
    )
    labels.write_labels(
        [
            LabelRow("loans", "", i, 0 if k < errors else 1, int((start + 2) * 1000))
            for k, i in enumerate(ids[:labelled])
        ]
    )


def test_a_partly_labelled_window_is_tested_at_its_share_of_alpha(store: Store) -> None:
    now = int(time.time() // WINDOW) * WINDOW
    first = now - 8 * WINDOW
    labels = LabelStore(store.backend)
    # the reference: five windows of 100 events, all labelled, 10 % misclassified
    for k in range(5):
        _window(labels, first + k * WINDOW, 100, 100, 10)
    # then a window of 400 events, a quarter labelled so far: 17 % misclassified, a p-value
    # of 0.02 alone; at a quarter of the labels it is not yet a drop
    late = first + 6 * WINDOW
    _window(labels, late, 400, 100, 17)
    tracker = QualityTracker(
        labels,
        store,
        QualityConfig(window_seconds=WINDOW, min_labels=30, flag_detectors=()),
        SegmentValues(),
    )
    tracker.run()

    def test_row() -> tuple[float, float | None, bool]:
        [row] = [
            r
            for r in store.drift_results("loans", start=late, end=late + 1)
            if r.test == "quality_drop"
        ]
        assert row.p_value is not None
        return row.p_value, row.adjusted_p_value, row.drifted

    def flagged() -> float:
        [point] = store.metrics("loans", name="drift.concept", start=late, end=late + 1)
        return point.value

    p_value, adjusted, drifted = test_row()
    assert 0.0125 < p_value < 0.05
    # the reference windows' coverage is 1: a share of 1/4, cubed
    assert adjusted == pytest.approx(min(1.0, 64 * p_value))
    assert not drifted and flagged() == 0.0
    # the rest of its labels land, as misclassified (17 %): at full alpha, a drop
    labels.write_labels(
        [
            LabelRow("loans", "", f"w{late}-{i}", 0 if i < 151 else 1, int((late + 3) * 1000))
            for i in range(100, 400)
        ]
    )
    tracker.run()
    p_value, adjusted, drifted = test_row()
    assert p_value < 0.01 and adjusted is None
    assert drifted and flagged() == 1.0


def test_the_share_is_against_the_reference_windows_coverage() -> None:
    # a model whose windows are a tenth labelled when complete: a window a tenth labelled is
    # tested at full alpha, one a twentieth labelled at an eighth of it
    history = {("", "1"): {s: {"labels.count": 50.0, "labels.coverage": 0.1} for s in range(5)}}
    [full] = reference_coverage(history, windows=5, min_labels=30).values()
    assert full == 0.1
    assert partial_window_p_value(0.02, 0.1, full) == 0.02
    assert partial_window_p_value(0.02, 0.05, full) == pytest.approx(0.16)
    assert partial_window_p_value(0.02, 0.0, full) == 1.0
    # a store of before the coverage was kept: no share known, the p-value as it is
    del history[("", "1")][0]["labels.coverage"]
    assert reference_coverage(history, windows=5, min_labels=30) == {}
