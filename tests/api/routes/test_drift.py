"""References and drift results through the API, over both store backends."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

import api.routes.drift as drift_route
from api.main import create_app
from driftline.settings import Settings
from driftline.store import DriftRow, MetricPoint, Store, Stores

W = 1_700_000_000


def drift_row(model: str, start: int, feature: str, drifted: bool) -> DriftRow:
    effect = 0.4 if drifted else 0.01
    return DriftRow(
        model, start, 60, feature, "ks", effect, 1e-6, 1e-5, effect, 0.1, drifted, True,
        "p_value_below_alpha_and_effect_at_least_min", 5000, 2000, "warmup:1",
    )  # fmt: skip


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(), Stores(store))) as c:
        yield c


def test_upload_reference_as_json_rows_or_csv(client: TestClient, store: Store) -> None:
    rows = [
        {"features": {"amount": float(i), "country": "FR" if i % 3 else "DE"}, "prediction": i % 2}
        for i in range(300)
    ]
    reply = client.put("/v1/models/fraud/reference?version=3", content=orjson.dumps(rows))
    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert body["source"] == "uploaded" and body["version"] == "3"
    assert body["features"] == [
        {"name": "amount", "kind": "numeric", "count": 300, "missing": 0},
        {"name": "country", "kind": "categorical", "count": 300, "missing": 0},
    ]
    csv = "amount,country,prediction\n1.5,FR,0.2\n,DE,0.9\n3.0,FR,0.4\n"
    reply = client.put(
        "/v1/models/fraud/reference", content=csv, headers={"Content-Type": "text/csv"}
    )
    assert reply.status_code == 201
    assert reply.json()["features"][0] == {
        "name": "amount",
        "kind": "numeric",
        "count": 3,
        "missing": 1,
    }
    listed = client.get("/v1/models/fraud/reference").json()
    assert [(r["version"], r["source"]) for r in listed] == [("*", "uploaded"), ("3", "uploaded")]
    # a CSV is read by columns: the same reference as its rows sent as JSON
    flat = [{"amount": 1.5, "country": "FR", "prediction": 0.2},
            {"amount": None, "country": "DE", "prediction": 0.9},
            {"amount": 3.0, "country": "FR", "prediction": 0.4}]  # fmt: skip
    assert client.put("/v1/models/fraud/reference?version=7", content=orjson.dumps(flat)).is_success
    profiles = {r.version: r.profile for r in store.references("fraud")}
    assert profiles["7"]["profiles"] == profiles["*"]["profiles"]


def test_json_rows_and_parquet_are_read_by_columns_into_the_reference_rows_make(
    client: TestClient, store: Store
) -> None:
    """JSON rows (nested or flat, a feature some rows lack, mixed kinds, probabilities) and a
    Parquet file make the reference ``ModelReference.from_rows`` makes of the same rows."""
    import io

    import pandas as pd

    from detectors.drift.window import ModelReference

    rows: list[dict[str, Any]] = []
    for i in range(200):
        features: dict[str, Any] = {"amount": float(i % 17), "country": "FR" if i % 3 else "DE"}
        if i % 5:
            features["age"] = i % 60  # absent from every fifth row: missing there
        if i % 7 == 0:
            features["amount"] = None
        features["mixed"] = "x" if i % 11 == 0 else float(i)  # changes kind: a category
        rows.append({"features": features, "prediction": [0.2, 0.8] if i % 2 else [0.7, 0.3]})
    rows[3] = {**rows[3]["features"], "prediction": rows[3]["prediction"]}  # a flat row
    assert client.put("/v1/models/m/reference?version=1", content=orjson.dumps(rows)).is_success
    stored = {r.version: r.profile for r in store.references("m")}
    assert stored["1"] == ModelReference.from_rows(rows, "1").to_dict()

    frame = pd.DataFrame(
        {
            "amount": [1.5, None, 3.0, 4.5],
            "country": ["FR", "DE", None, "FR"],
            "clicked": [True, False, True, None],
            "prediction": [0.2, 0.9, 0.4, 0.1],
        }
    )
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    reply = client.put(
        "/v1/models/m/reference?version=2",
        content=buffer.getvalue(),
        headers={"Content-Type": "application/vnd.apache.parquet"},
    )
    assert reply.status_code == 201, reply.text
    same: list[dict[str, Any]] = [
        {"amount": 1.5, "country": "FR", "clicked": True, "prediction": 0.2},
        {"amount": None, "country": "DE", "clicked": False, "prediction": 0.9},
        {"amount": 3.0, "country": None, "clicked": True, "prediction": 0.4},
        {"amount": 4.5, "country": "FR", "clicked": None, "prediction": 0.1},
    ]
    stored = {r.version: r.profile for r in store.references("m")}
    assert stored["2"]["profiles"] == ModelReference.from_rows(same, "2").to_dict()["profiles"]
    bad = client.put(
        "/v1/models/m/reference",
        content=b"PAR1 not really",
        headers={"Content-Type": "application/vnd.apache.parquet"},
    )
    assert bad.status_code == 422 and "not a readable Parquet file" in bad.text


def test_bad_reference_uploads_say_why(client: TestClient) -> None:
    for body, why in (
        (b"{", "not valid JSON"),
        (b'{"a": 1}', "JSON array"),
        (b"[]", "no rows"),
        (b'[{"a": 1}, {"features": 1}]', "row 1: 'features' must be an object"),  # was a 500
        (b'[{"a": {"b": 1}}]', "row 0"),
    ):
        reply = client.put("/v1/models/m/reference", content=body)
        assert reply.status_code == 422
        [problem] = reply.json()["detail"]
        assert problem["loc"] == ["body"] and why in problem["msg"], problem


def test_drift_results_grouped_per_window(client: TestClient, store: Store) -> None:
    def row(feature: str, test: str, drifted: bool, decision: bool = True) -> DriftRow:
        return DriftRow(
            "fraud",
            W,
            60,
            feature,
            test,
            0.4 if drifted else 0.01,
            1e-6,
            1e-5,
            0.4 if drifted else 0.01,
            0.1,
            drifted,
            decision,
            "p_value_below_alpha_and_effect_at_least_min",
            5000,
            2000,
            "warmup:1",
        )

    # what the worker stores beside the rows: its decision (streams/window_rows.py)
    decided = [
        MetricPoint("fraud", W, 60, "drift.share_drifted", 0.5),
        MetricPoint("fraud", W, 60, "drift.max_effect", 0.4),
        MetricPoint("fraud", W, 60, "drift.prediction_drifted", 1.0),
        MetricPoint("fraud", W, 60, "drift.drifted", 1.0, feature="amount"),
        MetricPoint("fraud", W, 60, "drift.drifted", 0.0, feature="age"),
    ]
    store.write_window(
        decided,
        [],
        [
            row("amount", "ks", True),
            row("amount", "psi", True, False),
            row("age", "ks", False),
            row("__prediction__", "ks", True),
        ],
    )
    body = client.get("/v1/models/fraud/drift", params={"start": W, "end": W + 60}).json()
    [window] = body["windows"]
    assert window["drifted_features"] == ["amount"]
    assert window["share_drifted"] == 0.5 and window["max_effect"] == 0.4
    assert window["prediction_drifted"] is True and window["reference"] == "warmup:1"
    assert len(window["results"]) == 4
    assert client.get("/v1/models/nobody/drift").json() == {
        "model": "nobody",
        "windows": [],
        "truncated": False,
    }
    assert body["truncated"] is False


def test_a_long_range_answers_its_newest_windows_whole_and_says_it_was_cut(
    client: TestClient, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past ``DRIFT_ROWS`` tests, the oldest windows are left out (they were the newest until
    this version: the answer ran oldest first and stopped at the limit), and the decisions of
    the windows answered are all read: ``drift.drifted`` has a point per feature and window,
    more than a metrics read's default limit of 10,000 here (200 features x 60 windows)."""
    features = [f"f{i:03d}" for i in range(200)]
    points, rows = [], []
    for w in range(60):
        start = W + 60 * w
        points.append(MetricPoint("wide", start, 60, "drift.share_drifted", 0.005))
        for f in features:
            drifted = f == "f000" and w == 59  # only in the newest window
            points.append(MetricPoint("wide", start, 60, "drift.drifted", float(drifted), f))
            rows.append(drift_row("wide", start, f, drifted))
    store.write_window(points, [], rows)
    every = client.get("/v1/models/wide/drift").json()
    assert every["truncated"] is False and len(every["windows"]) == 60
    assert every["windows"][-1]["drifted_features"] == ["f000"]
    assert every["windows"][0]["drifted_features"] == []

    monkeypatch.setattr(drift_route, "DRIFT_ROWS", 450)  # two windows and a half
    cut = client.get("/v1/models/wide/drift").json()
    assert cut["truncated"] is True
    assert [w["window_start"] for w in cut["windows"]] == [
        w["window_start"] for w in every["windows"][-2:]
    ]
    assert all(len(w["results"]) == 200 for w in cut["windows"])
    assert cut["windows"][-1]["drifted_features"] == ["f000"]
    # a range that holds only what fits is not cut
    newest = every["windows"][-2]["window_start"]
    fits = client.get("/v1/models/wide/drift", params={"start": newest}).json()
    assert fits["truncated"] is False and len(fits["windows"]) == 2
    monkeypatch.setattr(drift_route, "DRIFT_ROWS", 400)  # exactly those two windows' tests
    exact = client.get("/v1/models/wide/drift", params={"start": newest}).json()
    assert exact["truncated"] is False and len(exact["windows"]) == 2
    # one window with more tests than an answer holds: its first ones, said to be cut
    monkeypatch.setattr(drift_route, "DRIFT_ROWS", 150)
    last = every["windows"][-1]["window_start"]
    one = client.get("/v1/models/wide/drift", params={"start": last}).json()
    assert one["truncated"] is True and len(one["windows"]) == 1
    assert len(one["windows"][0]["results"]) == 150


def test_concept_drifted_is_the_stored_flag_error_stream_detectors_included(
    client: TestClient, store: Store
) -> None:
    """Only an error-stream detector (ADWIN) flagged the window; the quality-drop test was not
    significant. The worker stored drift.concept = 1 and the ConceptDrift alert fires on it:
    the API says so too, rather than deciding again from the quality-drop test alone."""

    def row(start: int, feature: str, test: str, drifted: bool = False) -> DriftRow:
        p_value = None if test == "adwin" else 0.4
        return DriftRow(
            "fraud", start, 60, feature, test, 1.0, p_value, p_value, 0.01, 0.05, drifted,
            test == "ks", "p_value_below_alpha", 400, 400, "labelled:first-windows",
        )  # fmt: skip

    store.write_window(
        [
            MetricPoint("fraud", W, 60, "drift.concept", 1.0),
            MetricPoint("fraud", W + 60, 60, "drift.concept", 0.0),
        ],
        [],
        [
            row(W, "quality.error_rate", "quality_drop"),
            row(W, "error", "adwin", drifted=True),
            row(W, "amount", "ks"),
            row(W + 60, "quality.error_rate", "quality_drop"),
            row(W + 60, "amount", "ks"),
            row(W + 120, "amount", "ks"),  # no labels joined yet
        ],
    )
    windows = client.get("/v1/models/fraud/drift").json()["windows"]
    assert [w["concept_drifted"] for w in windows] == [True, False, None]  # None: no labels yet
