"""The label join's SQL on both backends: chDB and a real ClickHouse 18.16 server."""

from __future__ import annotations

import time

from driftline.store import Store
from driftline.store.labels import LabelRow, LabelStore, PredictionBatch, PredictionRow

T0 = 1_790_000_040  # a window start (multiple of 60)


def prediction(i: int, *, model: str = "m", stage: str = "", window: int = T0) -> PredictionRow:
    event = {"model": model, "id": f"p{i}", "features": {"x": i}, "prediction": i % 2}
    return PredictionRow(model, stage, f"p{i}", window + i % 60, window, "1", event)


def test_join_takes_the_latest_label_and_reports_unlabelled(store: Store) -> None:
    labels = LabelStore(store.backend)
    labels.write_predictions([prediction(i) for i in range(4)])
    labels.write_predictions([prediction(0)])  # a replay: same row again
    ms = T0 * 1000
    labels.write_labels(
        [
            LabelRow("m", "", "p0", 0, ms + 5_000),
            LabelRow("m", "", "p0", 1, ms + 9_000),  # a correction: the later label wins
            LabelRow("m", "", "p2", 1, ms + 7_000),
            LabelRow("m", "", "ghost", 1, ms + 7_000),  # no such prediction
        ]
    )
    joined = labels.window_joined("m", "", T0)
    assert [(j.id, j.label) for j in joined] == [("p0", 1), ("p1", None), ("p2", 1), ("p3", None)]
    assert joined[0].event["features"] == {"x": 0}
    assert joined[0].label_ms == ms + 9_000
    assert labels.labelled_units() == {("m", "")}
    assert labels.label_bucket_counts("m", "", T0, 60) == (3, 1)  # p0, p2, ghost; ghost unmatched


def test_what_changed_since_a_pass(store: Store) -> None:
    labels = LabelStore(store.backend)
    labels.write_predictions([prediction(i) for i in range(3)])
    labels.write_predictions([prediction(9, stage="asr", window=T0 + 60)])
    assert labels.windows_with_new_predictions(0) == set()  # no labels yet: nothing to score
    before = time.time_ns() // 1_000_000 - 1
    labels.write_labels([LabelRow("m", "", "p1", 1, T0 * 1000 + 1)])
    assert labels.windows_with_new_labels(before) == {("m", "", T0)}
    assert labels.windows_with_new_predictions(0) == {("m", "", T0)}
    assert labels.windows_with_new_labels(time.time_ns() // 1_000_000 + 1000) == set()
    assert labels.label_buckets_since(before, 60) == {("m", "", T0)}
    assert labels.labelled_windows_between(T0, T0 + 60) == {("m", "", T0)}
    assert labels.labelled_windows_between(T0 + 60, T0 + 120) == set()  # asr has no labels


def test_labelled_events_for_training(store: Store) -> None:
    labels = LabelStore(store.backend)
    labels.write_predictions([prediction(i) for i in range(10)])
    labels.write_labels([LabelRow("m", "", f"p{i}", i % 2, (T0 + 100) * 1000) for i in range(6)])
    rows = labels.labelled_events("m", start=T0 + 2, end=T0 + 5)
    assert [(r.id, r.label) for r in rows] == [("p2", 0), ("p3", 1), ("p4", 0)]
    assert len(labels.labelled_events("m", horizon_s=96)) == 2  # p4, p5: label within 96 s


def test_retention_drops_old_partitions(store: Store) -> None:
    labels = LabelStore(store.backend)
    old, recent = T0 - 40 * 86400, T0
    shadow = prediction(1, window=old)._replace(shadow=True)  # kept apart, dropped alike
    labels.write_predictions([prediction(1, window=old), prediction(2, window=recent), shadow])
    labels.write_labels([LabelRow("m", "", "p1", 1, old * 1000)])
    assert [j.id for j in labels.window_joined("m", "", old, shadow=True)] == ["p1"]
    dropped = labels.drop_expired(keep_days=14, now=T0 + 60)
    assert any(d.startswith("predictions:") for d in dropped)
    assert any(d.startswith("shadow_predictions:") for d in dropped)
    assert any(d.startswith("labels:") for d in dropped)
    assert [j.id for j in labels.window_joined("m", "", recent)] == ["p2"]
    assert labels.window_joined("m", "", old) == []
    assert labels.window_joined("m", "", old, shadow=True) == []


def test_the_workers_column_wise_batches_keep_every_event_exactly(store: Store) -> None:
    """What the worker buffers (``keep_predictions``): several chunks in one batch, events
    with awkward text, one without an id (not kept), a stage, and a batch put back in front
    of later ones after a failed write."""
    from streams.raw_predictions import keep_predictions
    from streams.windowing import Message

    awkward = {"text": 'tab\there "quoted" back\\slash\nnewline é 🙂', "list": [1, None, "x"]}
    events = [
        {"model": "m", "id": f"q{i}", "ts": T0 + i, "features": {**awkward, "i": i},
         "prediction": [0.25, 0.75], "version": 3}
        for i in range(5)
    ]  # fmt: skip
    staged = {"model": "m::asr", "id": "s0", "ts": T0 + 1, "features": {}, "prediction": None}
    unnamed = {"model": "m", "ts": T0 + 2, "features": {}, "prediction": 1}
    first, later = PredictionBatch(), PredictionBatch()
    keep_predictions([Message(("t", 0), 0, T0, events[:2], {})], 60, first)
    keep_predictions([Message(("t", 0), 1, T0, [*events[2:], unnamed, staged], {})], 60, later)
    keep_predictions([], 60, later)  # nothing to add
    # a shadow twin (same id) goes to the batch's shadows, not over its live twin
    keep_predictions([Message(("t", 0), 2, T0, [{**events[0], "shadow": True}], {})], 60, later)
    first.extend(later)  # as the worker does when a write failed
    assert len(first) == 7 and len(first.events) == 2
    assert first.shadows is not None and first.shadows.ids == ["q0"]
    LabelStore(store.backend).write_predictions(first)
    labels = LabelStore(store.backend)
    stored = {j.id: j for j in labels.window_joined("m", "", T0)}
    assert sorted(stored) == [f"q{i}" for i in range(5)]
    assert [stored[f"q{i}"].event for i in range(5)] == events
    assert stored["q1"].version == "3" and stored["q1"].ts == T0 + 1
    assert [j.id for j in labels.window_joined("m", "asr", T0)] == ["s0"]
    [twin] = labels.window_joined("m", "", T0, shadow=True)
    assert twin.id == "q0" and twin.event == {**events[0], "shadow": True}
