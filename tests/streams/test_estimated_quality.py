"""Estimated quality in the quality pass (``streams/estimation.py``), on both store backends:
windows without a single label are estimated from the model's probabilities, a covariate
shift that hurts is flagged as harm, the estimation error is stored once labels are complete,
and the API says what it has, how far to trust it, and what to send when it has nothing."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from driftline.settings import Settings
from driftline.store import MetricPoint, Store, Stores
from driftline.store.labels import LabelRow, LabelStore, PredictionRow
from streams.quality import QualityConfig, QualityTracker
from streams.segments import SegmentValues

W = 60
N = 400  # events a window


def now_start(back: int) -> int:
    return int(time.time() // W) * W - back * W


def write_window(
    store: Store,
    model: str,
    start: int,
    predictions: Sequence[Any],
    truth: Sequence[Any] | None,
    *,
    segment: Sequence[str] | None = None,
    label_ms: int | None = None,
) -> None:
    ids = [f"{model}-{start}-{i}" for i in range(len(predictions))]
    # the window's own metrics, as the window pipeline stores them (the API lists the model)
    store.write_window([MetricPoint(model, start, W, "traffic.count", float(len(ids)))], [])
    labels = LabelStore(store.backend)
    labels.write_predictions(
        PredictionRow(
            model,
            "",
            ident,
            start + 1,
            start,
            "1",
            {
                "model": model,
                "id": ident,
                "prediction": p,
                "features": {"x": 1.0},
                **({"segment": {"channel": segment[i]}} if segment else {}),
            },
        )
        for i, (ident, p) in enumerate(zip(ids, predictions, strict=True))
    )
    if truth is not None:
        at = label_ms if label_ms is not None else (start + 2) * 1000
        labels.write_labels(
            [LabelRow(model, "", i, y, at) for i, y in zip(ids, truth, strict=True)]
        )


def client_status(stores: Stores, url: str) -> int:
    with TestClient(create_app(Settings(kafka_bootstrap="127.0.0.1:9"), stores)) as client:
        return int(client.get(url).status_code)


def calibrated(rng: np.random.Generator, a: float, n: int = N) -> tuple[list[float], list[int]]:
    """Scores of a calibrated binary model (Beta(a, a): small a, confident) and labels drawn
    from them."""
    scores = rng.beta(a, a, n)
    return [round(float(s), 4) for s in scores], [int(y) for y in rng.random(n) < scores]


def tracker(store: Store, **config: Any) -> QualityTracker:
    cfg = QualityConfig(window_seconds=W, min_labels=30, **config)
    return QualityTracker(LabelStore(store.backend), store, cfg, SegmentValues())


def values(store: Store, model: str, metric: str, category: str = "") -> dict[int, float]:
    return {
        p.window_start: p.value for p in store.metrics(model, name=metric) if p.category == category
    }


def test_windows_without_labels_are_estimated_and_a_harmful_shift_is_harm(store: Store) -> None:
    rng = np.random.default_rng(7)
    starts = [now_start(20 - i) for i in range(12)]
    realised: dict[int, float] = {}
    for i, start in enumerate(starts):
        # 0-5: the labelled reference; 6-8: the same, unlabelled; 9-11: scores near 0.5
        scores, truth = calibrated(rng, 0.4 if i < 9 else 6.0)
        realised[start] = float(np.mean((np.array(scores) >= 0.5) == np.array(truth)))
        write_window(store, "fraud", start, scores, truth if i < 6 else None)
    tracker(store).run()

    accuracy = values(store, "fraud", "quality.estimated.accuracy")
    lower = values(store, "fraud", "quality.estimated.accuracy.lower")
    upper = values(store, "fraud", "quality.estimated.accuracy.upper")
    harm = values(store, "fraud", "drift.harm")
    measured = values(store, "fraud", "quality.accuracy")
    assert set(measured) == set(starts[:6])  # labels only there
    assert set(starts[6:]) <= set(accuracy)  # estimates everywhere else too
    for start in starts[6:]:
        assert abs(accuracy[start] - realised[start]) < 0.06
        assert lower[start] <= accuracy[start] <= upper[start]
    # stationary windows hold; the shift that hurts is harm, before any label
    assert [harm[s] for s in starts[6:9]] == [0.0, 0.0, 0.0]
    assert [harm[s] for s in starts[9:]] == [1.0, 1.0, 1.0]
    assert max(accuracy[s] for s in starts[9:]) < min(accuracy[s] for s in starts[6:9]) - 0.15
    assert values(store, "fraud", "quality.estimated.available")[starts[7]] == 1.0
    # per slice too: every cut goes through the same path
    assert values(store, "fraud", "quality.estimated.roc_auc")


def test_a_hard_class_model_gets_no_estimate_and_the_api_says_what_to_send(
    stores: Stores,
) -> None:
    store = stores.store
    rng = np.random.default_rng(3)
    for i in range(7):
        truth = ["spam" if y else "ham" for y in rng.random(N) < 0.3]
        predictions = [t if rng.random() < 0.9 else "ham" for t in truth]
        write_window(store, "mail", now_start(10 - i), predictions, truth if i < 6 else None)
    tracker(store).run()
    available = store.metrics("mail", name="quality.estimated.available")
    # no reference yet in the first windows, then the verdict: nothing to estimate from
    verdicts = [(p.value, p.category) for p in sorted(available, key=lambda p: p.window_start)]
    assert set(verdicts[:5]) == {(0.0, "no_labels")}
    assert set(verdicts[5:]) == {(0.0, "no_probabilities")} and len(verdicts) == 7, verdicts
    assert not values(store, "mail", "quality.estimated.accuracy")
    with TestClient(create_app(Settings(kafka_bootstrap="127.0.0.1:9"), stores)) as client:
        body = client.get("/v1/models/mail/estimation").json()
        assert body["status"] == "unavailable" and body["reason"] == "no_probabilities"
        assert "probability" in body["message"]


def test_the_api_says_to_send_labels_for_a_model_without_any(stores: Stores) -> None:
    store = stores.store
    write_window(store, "nolabels", now_start(3), [0.2, 0.9], None)
    with TestClient(create_app(Settings(kafka_bootstrap="127.0.0.1:9"), stores)) as client:
        body = client.get("/v1/models/nolabels/estimation").json()
    assert body["status"] == "no_labels" and "send labels" in body["message"]


def test_estimation_errors_once_labels_are_complete_and_unreliable_under_concept_drift(
    stores: Stores,
) -> None:
    store = stores.store
    rng = np.random.default_rng(11)
    starts = [now_start(30 - i) for i in range(16)]
    for i, start in enumerate(starts):
        scores, truth = calibrated(rng, 0.4)
        if i >= 9:  # concept drift: the same scores now mean the opposite for a third of cases
            flip = rng.random(N) < 0.35
            truth = [1 - y if f else y for y, f in zip(truth, flip, strict=True)]
        write_window(store, "loans", start, scores, truth)
    # a horizon of 2 windows: all of these windows' labels are complete
    tracker(store, horizon_s=2 * W).run()
    errors = values(store, "loans", "quality.estimated.accuracy.error")
    z = values(store, "loans", "quality.estimated.accuracy.error_z")
    # (the reference's own windows are estimated from the next pass on: one pass here)
    assert set(errors) == set(z) == set(starts[5:])
    assert all(abs(errors[s]) < 0.06 for s in starts[5:9])  # calibrated: close to measured
    assert all(errors[s] > 0.2 for s in starts[9:])  # estimation cannot see concept drift
    with TestClient(create_app(Settings(kafka_bootstrap="127.0.0.1:9"), stores)) as client:
        body = client.get("/v1/models/loans/estimation").json()
        early = client.get("/v1/models/loans/estimation?windows=5").json()
    assert body["method"] == "cbpe" and body["status"] == "unreliable", body
    assert body["reliability"]["concept_drift_windows"] >= 1
    assert "concept drift" in body["message"]
    assert body["estimates"]["accuracy"]["lower"] <= body["estimates"]["accuracy"]["value"]
    assert early["reliability"]["windows"] == 5
    for bad in ("2", "5000", "many"):  # out of bounds, or not a number: refused
        assert client_status(stores, f"/v1/models/loans/estimation?windows={bad}") == 422


def test_a_stationary_calibrated_model_is_reliable(stores: Stores) -> None:
    store = stores.store
    rng = np.random.default_rng(5)
    for i in range(14):
        scores, truth = calibrated(rng, 0.5)
        write_window(store, "steady", now_start(30 - i), scores, truth)
    tracker(store, horizon_s=2 * W).run()
    with TestClient(create_app(Settings(kafka_bootstrap="127.0.0.1:9"), stores)) as client:
        body = client.get("/v1/models/steady/estimation").json()
    assert body["status"] == "estimating" and body["reliability"]["reliable"] is True, body
    assert body["reliability"]["mean_abs_error"] < 0.03
    assert values(store, "steady", "drift.harm") and not any(
        values(store, "steady", "drift.harm").values()
    )


@pytest.mark.parametrize("model", ["multi"])
def test_multi_class_probabilities_are_estimated(store: Store, model: str) -> None:
    rng = np.random.default_rng(9)
    for i in range(8):
        p = rng.dirichlet([0.6, 0.6, 0.6], N)
        truth = [int(rng.choice(3, p=row)) for row in p]
        rows = [[round(float(v), 4) for v in row] for row in p]
        write_window(store, model, now_start(12 - i), rows, truth if i < 6 else None)
    tracker(store).run()
    accuracy = values(store, model, "quality.estimated.accuracy")
    f1 = values(store, model, "quality.estimated.f1_macro")
    assert len(accuracy) >= 2 and all(0.5 < v < 0.95 for v in accuracy.values())
    assert set(f1) == set(accuracy)


def test_a_regressor_gets_an_estimated_error_that_rises_where_it_is_noisy(store: Store) -> None:
    """DLE in the quality pass: a regressor whose error grows with a feature; windows without
    labels that move into the noisy region get a larger estimated MAE."""
    rng = np.random.default_rng(13)
    labels = LabelStore(store.backend)
    starts = [now_start(16 - i) for i in range(10)]
    for i, start in enumerate(starts):
        x = rng.uniform(0.0, 1.0, N) if i < 8 else rng.uniform(0.7, 1.0, N)
        truth = 3.0 * x + rng.normal(0.0, 0.1 + 1.5 * x * x, N)
        ids = [f"reg-{start}-{j}" for j in range(N)]
        store.write_window([MetricPoint("price", start, W, "traffic.count", float(N))], [])
        labels.write_predictions(
            PredictionRow("price", "", ident, start + 1, start, "1",
                          {"model": "price", "id": ident, "prediction": float(3.0 * x[j]),
                           "features": {"x": float(x[j])}})
            for j, ident in enumerate(ids)
        )  # fmt: skip
        if i < 6:
            labels.write_labels(
                [LabelRow("price", "", ident, float(truth[j]), (start + 2) * 1000)
                 for j, ident in enumerate(ids)]
            )  # fmt: skip
    tracker(store).run()
    mae = values(store, "price", "quality.estimated.mae")
    rmse = values(store, "price", "quality.estimated.rmse")
    assert set(starts[6:]) <= set(mae) and set(mae) == set(rmse)
    calm, noisy = mae[starts[7]], mae[starts[9]]
    # E|e| for noise sd 0.1 + 1.5 x^2: about 0.48 over x in [0, 1], 0.95 over [0.7, 1]
    assert 0.38 < calm < 0.6 and 0.8 < noisy < 1.15
    harm = values(store, "price", "drift.harm")
    assert harm[starts[7]] == 0.0 and harm[starts[9]] == 1.0
