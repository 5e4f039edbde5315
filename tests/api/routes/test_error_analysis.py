"""``GET /v1/models/{model}/error-analysis`` through the API, on both store backends: each
declared segment value of the labelled examples with its shares, its error, the gap and the
potential gain, ranked; baselines; a regressor's MAE; what a model without labels gets."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from driftline.settings import Settings
from driftline.store import Store, Stores
from driftline.store.labels import LabelRow, LabelStore, PredictionRow

T = 1_700_000_000


def seed(
    labels: LabelStore,
    model: str,
    rows: list[tuple[dict[str, str], Any, Any]],
    features: list[dict[str, Any]] | None = None,
) -> None:
    """(segment, prediction, label) per example, and its features (``{"x": 1.0}`` if none)."""
    labels.write_predictions(
        PredictionRow(
            model, "", f"{model}{i}", T + i, T // 60 * 60, "1",
            {"model": model, "id": f"{model}{i}", "prediction": p, "segment": segment,
             "features": features[i] if features else {"x": 1.0}},
        )
        for i, (segment, p, _) in enumerate(rows)
    )  # fmt: skip
    labels.write_labels(
        [
            LabelRow(model, "", f"{model}{i}", y, (T + 100) * 1000)
            for i, (_, _, y) in enumerate(rows)
        ]
    )


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    rng = np.random.default_rng(0)
    rows: list[tuple[dict[str, str], Any, Any]] = []
    # 600 examples: mobile (a third) wrong half the time, web wrong a tenth; country BR (a
    # tenth) wrong 80 % of the time on either channel
    for i in range(600):
        channel = "mobile" if i % 3 == 0 else "web"
        country = "BR" if i % 10 == 0 else "FR"
        wrong_p = 0.8 if country == "BR" else (0.5 if channel == "mobile" else 0.1)
        y = int(rng.random() < 0.5)
        p = (1 - y) if rng.random() < wrong_p else y
        rows.append(({"channel": channel, "country": country}, 0.9 if p else 0.1, y))
    seed(LabelStore(store.backend), "fraud", rows)
    price = [({"region": "north" if i % 2 else "south"}, 10.0, 10.0 + (4.0 if i % 2 else 1.0))
             for i in range(100)]  # fmt: skip
    seed(LabelStore(store.backend), "price", price)
    with TestClient(create_app(Settings(), Stores(store))) as c:
        yield c


def rows_by_name(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The declared groups' rows (segments and tags), by name."""
    return {r["name"]: r for r in body["rows"] if r["kind"] != "slice"}


def test_segments_ranked_by_potential_gain(client: TestClient) -> None:
    body = client.get("/v1/models/fraud/error-analysis").json()
    assert body["task"] == "classification" and body["examples"] == 600
    rows = rows_by_name(body)
    assert set(rows) == {"channel=mobile", "channel=web", "country=BR", "country=FR"}
    mobile, web = rows["channel=mobile"], rows["channel=web"]
    assert mobile["size"] == 200 and mobile["share_of_data"] == pytest.approx(1 / 3)
    assert mobile["error"] > web["error"] + 0.2  # mobile is worse
    assert mobile["share_of_errors"] + web["share_of_errors"] == pytest.approx(1.0)
    assert mobile["gap"] == pytest.approx(mobile["error"] - body["error"])
    for r in body["rows"]:  # no baseline: the room to a perfect model, times the share
        assert r["kind"] == "segment" and r["baseline"] is None
        assert r["potential_gain"] == pytest.approx(r["error"] * r["share_of_data"])
    gains = [r["potential_gain"] for r in body["rows"]]
    assert gains == sorted(gains, reverse=True)


def test_baselines_per_group_and_for_all(client: TestClient) -> None:
    # BR's cases are hard even for people: a human-level error of 0.7 leaves little to gain
    body = client.get(
        "/v1/models/fraud/error-analysis", params={"baseline": ["country=BR=0.7", "0.05"]}
    ).json()
    rows = rows_by_name(body)
    br = rows["country=BR"]
    assert br["baseline"] == 0.7
    assert br["potential_gain"] == pytest.approx(max(0.0, br["error"] - 0.7) * br["share_of_data"])
    assert rows["channel=web"]["baseline"] == 0.05
    bad = client.get("/v1/models/fraud/error-analysis", params={"baseline": "lots"})
    assert bad.status_code == 422 and "baseline" in bad.text
    small = client.get("/v1/models/fraud/error-analysis", params={"min_size": 100}).json()
    assert "country=BR" not in rows_by_name(small)  # 60 examples


def test_a_regressor_gets_mean_absolute_errors(client: TestClient) -> None:
    body = client.get("/v1/models/price/error-analysis", params={"min_size": 1}).json()
    assert body["task"] == "regression" and body["error"] == pytest.approx(2.5)
    rows = rows_by_name(body)
    assert rows["region=north"]["error"] == pytest.approx(4.0)
    assert rows["region=north"]["share_of_errors"] == pytest.approx(0.8)
    assert body["rows"][0]["name"] == "region=north"


def test_a_model_without_labels_is_told_what_to_send(client: TestClient) -> None:
    reply = client.get("/v1/models/nobody/error-analysis")
    assert reply.status_code == 404 and "POST /v1/labels" in reply.json()["detail"]


def test_tags_are_rows_too(client: TestClient) -> None:
    """An example tag (ids) and a rule tag (a condition over the examples) each get a row."""
    ids = [f"fraud{i}" for i in range(0, 600, 3)][:50]  # 50 mobile examples
    assert (
        client.post("/v1/models/fraud/tags", json={"tag": "reviewed", "ids": ids}).status_code
        == 200
    )
    rule = client.put("/v1/models/fraud/tags/brazil", json={"condition": 'segment.country == "BR"'})
    assert rule.status_code == 200
    rows = rows_by_name(client.get("/v1/models/fraud/error-analysis").json())
    assert rows["reviewed"]["kind"] == "tag" and rows["reviewed"]["size"] == 50
    # the rule tag is the same group as the declared segment value
    assert rows["brazil"]["size"] == rows["country=BR"]["size"] == 60
    assert rows["brazil"]["error"] == pytest.approx(rows["country=BR"]["error"])


def test_slices_nobody_declared_are_discovered(store: Store) -> None:
    """A failing slice that is no segment (two features together) is found, with its q-value;
    with discover=false only the declared groups are rows."""
    rng = np.random.default_rng(2)
    rows = []
    features = []
    for _ in range(3000):
        amount = float(rng.lognormal(4.0, 1.0))
        country = str(rng.choice(["FR", "DE", "BR"], p=[0.5, 0.35, 0.15]))
        planted = country == "BR" and amount < 30.0
        wrong = rng.random() < (0.6 if planted else 0.08)
        y = int(rng.random() < 0.5)
        p = (1 - y) if wrong else y
        rows.append(({"channel": str(rng.choice(["web", "mobile"]))}, 0.9 if p else 0.1, y))
        features.append({"amount": amount, "country": country})
    seed(LabelStore(store.backend), "shop", rows, features)
    with TestClient(create_app(Settings(), Stores(store))) as client:
        body = client.get("/v1/models/shop/error-analysis").json()
        plain = client.get("/v1/models/shop/error-analysis", params={"discover": "false"}).json()
    found = [r for r in body["rows"] if r["kind"] == "slice"]
    assert found, body["rows"]
    # (ranked by potential gain with the rest: the wider country=BR may come first)
    [planted] = [r for r in found if "country=BR" in r["name"] and "amount<" in r["name"]]
    assert planted["q_value"] < 0.05 and planted["error"] > 0.4, found
    assert not [r for r in plain["rows"] if r["kind"] == "slice"]


def test_a_feature_its_segment_repeats_is_one_row(store: Store) -> None:
    """A model segmented by its own ``channel`` feature: mobile fails, and is one row (the
    declared segment value), not again as a discovered slice of the feature."""
    rng = np.random.default_rng(3)
    rows: list[tuple[dict[str, str], Any, Any]] = []
    features = []
    for i in range(2000):
        channel = "mobile" if i % 2 else "web"
        y = int(rng.random() < 0.5)
        p = (1 - y) if rng.random() < (0.5 if channel == "mobile" else 0.05) else y
        rows.append(({"channel": channel}, 0.9 if p else 0.1, y))
        features.append({"channel": channel, "x": float(i % 7)})
    seed(LabelStore(store.backend), "app", rows, features)
    with TestClient(create_app(Settings(), Stores(store))) as client:
        body = client.get("/v1/models/app/error-analysis").json()
    named = [(r["kind"], r["name"]) for r in body["rows"]]
    assert named.count(("segment", "channel=mobile")) == 1, named
    assert not [
        n for k, n in named if k == "slice" and n in ("channel=mobile", "segment.channel=mobile")
    ]
