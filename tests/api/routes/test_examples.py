"""``GET /v1/models/{model}/examples`` through the API, over both store backends: stored
predictions joined with their latest labels, judged right or wrong, filtered, sampled, paged
and in each format."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import orjson
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

import api.routes.examples as route
import driftline.store.labels as labels_module
from api.main import create_app
from detectors.quality import pair_errors, score_quality
from driftline.settings import Settings
from driftline.store import Store, Stores
from driftline.store.labels import LabelRow, LabelStore, PredictionRow

T = 1_700_000_000
N = 40
URL = "/v1/models/spam/examples"
# misclassified on purpose; e03 is right at first, relabelled later so that it is wrong
WRONG = {i for i in range(N) if i % 5 == 0} | {3}


def truth(i: int) -> int:
    return (i // 2) % 2


def ts(i: int) -> float:
    return T + 10 * i + 0.25


def event(i: int) -> dict[str, Any]:
    y = truth(i)
    predicted = 1 - y if i % 5 == 0 else y
    features: dict[str, Any] = {"amount": float(i), "country": "FR" if i % 3 else "DE"}
    if i == 1:  # a feature of the segment's name and value: not the segment
        features["channel"] = "mobile"
    return {
        "model": "spam",
        "id": f"e{i:02d}",
        "features": features,
        "prediction": 0.9 if predicted else 0.1,
        "segment": {"channel": "mobile" if i % 2 == 0 else "web"},
    }


def seed_spam(labels: LabelStore) -> None:
    rows = [
        PredictionRow("spam", "", f"e{i:02d}", ts(i), int(ts(i)) // 60 * 60, v, event(i))
        for i in range(N + 2)
        for v in ["1" if i < N // 2 else "2"]
    ]
    labels.write_predictions(rows)
    labels.write_labels(
        [LabelRow("spam", "", f"e{i:02d}", truth(i), int((ts(i) + 100) * 1000)) for i in range(N)]
        # the latest label counts; e40 has no label, e41 only an outcome (no label)
        + [LabelRow("spam", "", "e03", 1 - truth(3), int((ts(3) + 500) * 1000))]
        + [LabelRow("spam", "", "e41", None, int(ts(41) * 1000), {"clicked": 1.0})]
    )


def index(row: dict[str, Any]) -> int:
    return int(row["id"][1:])


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    seed_spam(LabelStore(store.backend))
    with TestClient(create_app(Settings(), Stores(store))) as c:
        yield c


def get(client: TestClient, **params: Any) -> dict[str, Any]:
    reply = client.get(URL, params=params)
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


def test_rows_are_the_labelled_predictions_newest_first_with_their_latest_label(
    client: TestClient,
) -> None:
    body = get(client)
    assert body["task"] == "classification"
    assert (body["candidates"], body["total"], body["truncated"]) == (N, N, False)
    assert [index(r) for r in body["rows"]] == list(range(N - 1, -1, -1))
    assert body["next_offset"] is None
    by_id = {index(r): r for r in body["rows"]}
    assert set(by_id) == set(range(N))  # e40 (unlabelled) and e41 (an outcome alone) are not
    first = by_id[7]
    assert first == {
        "id": "e07",
        "ts": "2023-11-14T22:14:30.250Z",
        "version": "1",
        "features": {"amount": 7.0, "country": "FR"},
        "segment": {"channel": "web"},
        "prediction": 0.9,
        "label": 1,
        "correct": True,
        "error": 0.0,
        "label_ts": "2023-11-14T22:16:10.250Z",
        "tags": [],
    }
    assert by_id[3]["label"] == 0 and by_id[3]["correct"] is False  # relabelled: now wrong
    assert by_id[3]["label_ts"] == "2023-11-14T22:22:10.250Z"
    assert {i for i, r in by_id.items() if not r["correct"]} == WRONG
    assert all(r["error"] == (0.0 if r["correct"] else 1.0) for r in body["rows"])


def test_filters_errors_segment_version_and_time(client: TestClient) -> None:
    def ids(**params: Any) -> set[int]:
        body = get(client, limit=1000, **params)
        assert body["total"] == len(body["rows"])
        return {index(r) for r in body["rows"]}

    assert ids(errors=True) == WRONG
    assert ids(errors=False) == set(range(N))
    mobile = {i for i in range(N) if i % 2 == 0}
    assert ids(segment="channel=mobile") == mobile  # not e01, whose *feature* says mobile
    assert ids(segment="channel=web") == set(range(N)) - mobile
    assert ids(segment="channel=tablet") == set() and ids(segment="country=FR") == set()
    assert ids(version="2") == set(range(N // 2, N))
    assert ids(version="3") == set()
    assert ids(start=str(ts(10)), end=str(ts(15))) == set(range(10, 15))
    assert ids(start="2023-11-14T22:15:00Z") == set(range(10, N))  # RFC 3339 too
    assert ids(errors=True, segment="channel=web", version="1") == {3, 5, 15}


def test_stratified_gives_both_kinds_and_random_is_seeded(client: TestClient) -> None:
    body = get(client, sample="stratified", limit=10)
    kinds = [r["correct"] for r in body["rows"]]
    assert kinds == [False, True] * 5  # alternating: equal numbers while both last
    everything = get(client, sample="stratified", limit=1000)["rows"]
    assert sum(not r["correct"] for r in everything) == len(WRONG)
    assert [r["correct"] for r in everything[: 2 * len(WRONG)]] == [False, True] * len(WRONG)
    assert all(r["correct"] for r in everything[2 * len(WRONG) :])  # then the rest, right ones
    assert {index(r) for r in everything} == set(range(N))

    def order(seed: int, sample: str = "random") -> list[int]:
        return [index(r) for r in get(client, sample=sample, seed=seed, limit=1000)["rows"]]

    assert order(1) == order(1) and order(1, "stratified") == order(1, "stratified")
    assert order(1) != order(2) and order(1, "stratified") != order(2, "stratified")
    assert sorted(order(1)) == list(range(N)) and order(1) != sorted(order(1), reverse=True)
    # a random sample of the errors only: a shuffle of them
    assert sorted(index(r) for r in get(client, sample="random", errors=True)["rows"]) == sorted(
        WRONG
    )


@pytest.mark.parametrize("sample", ["newest", "random", "stratified"])
def test_pages_do_not_overlap_and_cover(client: TestClient, sample: str) -> None:
    whole = [index(r) for r in get(client, sample=sample, seed=7, limit=1000)["rows"]]
    pages: list[int] = []
    offset: int | None = 0
    while offset is not None:
        body = get(client, sample=sample, seed=7, limit=7, offset=offset)
        assert body["offset"] == offset and len(body["rows"]) <= 7
        pages += [index(r) for r in body["rows"]]
        offset = body["next_offset"]
    assert pages == whole and sorted(pages) == list(range(N))
    assert get(client, sample=sample, seed=7, offset=N)["rows"] == []


def test_each_format_holds_the_same_rows(client: TestClient) -> None:
    params = {"limit": 12, "offset": 3, "sample": "random", "seed": 5, "version": "2"}
    rows = get(client, **params)["rows"]
    assert len(rows) == 12
    lines = client.get(URL, params={**params, "format": "jsonl"})
    assert lines.headers["content-type"] == "application/x-ndjson"
    assert lines.headers["x-total-count"] == str(N // 2) and lines.headers["x-next-offset"] == "15"
    assert [orjson.loads(line) for line in lines.text.splitlines()] == rows

    def flat(r: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in r.items() if k not in ("features", "segment")}
        out["tags"] = ";".join(r["tags"])
        out |= {f"feature.{k}": v for k, v in r["features"].items()}
        return out | {f"segment.{k}": v for k, v in r["segment"].items()}

    expected = [flat(r) for r in rows]
    columns = [
        *("id", "ts", "version", "prediction", "label", "correct", "error", "label_ts", "tags"),
        *("feature.amount", "feature.country", "segment.channel"),
    ]
    text = client.get(URL, params={**params, "format": "csv"})
    assert text.headers["content-type"].startswith("text/csv")
    read = list(csv.DictReader(io.StringIO(text.text)))
    assert list(read[0]) == columns
    as_text = [{k: str(v) for k, v in e.items()} for e in expected]
    assert read == as_text
    parquet = client.get(URL, params={**params, "format": "parquet"})
    assert parquet.headers["content-type"] == "application/vnd.apache.parquet"
    frame = pd.read_parquet(io.BytesIO(parquet.content))
    assert list(frame.columns) == columns
    assert frame.to_dict(orient="records") == expected
    assert frame["error"].dtype.kind == "f" and frame["correct"].dtype.kind == "b"


def test_regression_errors_are_absolute_and_need_a_bar(store: Store) -> None:
    labels = LabelStore(store.backend)
    predicted = [1.0, 2.5, 4.0, 10.0]
    actual = [1.5, 2.5, 1.0, 9.0]
    labels.write_predictions(
        [
            PredictionRow("price", "s1", f"p{i}", T + i, T, "1", {"prediction": p, "features": {}})
            for i, p in enumerate(predicted)
        ]
    )
    labels.write_labels(
        [LabelRow("price", "s1", f"p{i}", y, (T + 50) * 1000) for i, y in enumerate(actual)]
    )
    with TestClient(create_app(Settings(), Stores(store))) as client:
        url = "/v1/models/price/examples"
        body = client.get(url, params={"stage": "s1"}).json()
        assert body["task"] == "regression"
        assert [(r["id"], r["error"], r["correct"]) for r in body["rows"]] == [
            ("p3", 1.0, None),
            ("p2", 3.0, None),
            ("p1", 0.0, None),
            ("p0", 0.5, None),
        ]
        for params in ({"errors": "true"}, {"sample": "stratified"}):
            reply = client.get(url, params={"stage": "s1", **params})
            assert reply.status_code == 422
            assert "regressor" in reply.json()["detail"][0]["msg"]
        wrong = client.get(url, params={"stage": "s1", "errors": "true", "min_error": 1.0})
        assert [r["id"] for r in wrong.json()["rows"]] == ["p3", "p2"]
        stratified = client.get(url, params={"stage": "s1", "sample": "stratified", "min_error": 1})
        errors = [r["error"] >= 1.0 for r in stratified.json()["rows"]]
        assert errors == [True, False, True, False]
        # the model itself (stage '') has no labels: a stage is a unit of its own
        assert client.get(url).status_code == 404


@pytest.mark.parametrize(
    ("predictions", "labels"),
    [
        ([[0.2, 0.8], [0.7, 0.3], [0.1, 0.9], [0.5, 0.5, 0.0], None], [1, 1, "1", 0, 0]),
        (["cat", "dog", "cat", 3], ["cat", "cat", "dog", 3.0]),
        ([True, False, True], [True, "true", 0]),
        ([0.2, 0.5, 0.49, 1.0], [0, 1, 1, "x"]),
    ],
)
def test_pair_errors_are_the_quality_pass_errors(predictions: list[Any], labels: list[Any]) -> None:
    task, errors = pair_errors(predictions, labels)
    result = score_quality(predictions, labels)
    assert task == result.task == "classification"
    assert [e for e in errors if e is not None] == result.errors.tolist()
    assert sum(e is None for e in errors) == result.unscorable


def test_a_model_without_labels_is_a_404_that_says_what_to_send(client: TestClient) -> None:
    for model in ("nope", "spam"):
        reply = client.get(
            f"/v1/models/{model}/examples", params={"stage": "x" * (model == "spam")}
        )
        assert reply.status_code == 404
        assert (
            "no labels stored" in reply.json()["detail"] and "/v1/labels" in reply.json()["detail"]
        )


def test_bad_parameters_are_422s_that_say_why(client: TestClient) -> None:
    for params, where, why in (
        ({"segment": "mobile"}, "segment", "key=value"),
        ({"segment": "=mobile"}, "segment", "key=value"),
        ({"segment": "@version=1"}, "segment", "'@'"),
        ({"start": "yesterday"}, "start", "RFC 3339"),
        ({"start": str(T + 10), "end": str(T)}, "end", "after 'start'"),
        ({"limit": 0}, "limit", "greater than or equal to 1"),
        ({"limit": 1001}, "limit", "less than or equal to 1000"),
        ({"sample": "all"}, "sample", "'newest', 'random' or 'stratified'"),
        ({"format": "xml"}, "format", "'json', 'jsonl', 'csv' or 'parquet'"),
        ({"min_error": 0}, "min_error", "greater than 0"),
        ({"offset": -1}, "offset", "greater than or equal to 0"),
    ):
        reply = client.get(URL, params=params)
        assert reply.status_code == 422, (params, reply.text)
        [problem] = reply.json()["detail"]
        assert problem["loc"] == ["query", where] and why in problem["msg"], (params, problem)


def test_a_configured_key_is_required(store: Store) -> None:
    seed_spam(LabelStore(store.backend))
    settings = Settings(api_key=SecretStr("admin-k"), api_read_key=SecretStr("read-k"))
    with TestClient(create_app(settings, Stores(store))) as client:
        for key in (None, "wrong"):
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            for fmt in ("json", "csv"):
                reply = client.get(URL, params={"format": fmt}, headers=headers)
                assert reply.status_code == 401, (key, fmt)
                assert "amount" not in reply.text
        for key in ("read-k", "admin-k"):
            reply = client.get(URL, headers={"Authorization": f"Bearer {key}"})
            assert reply.status_code == 200 and reply.json()["total"] == N


def test_the_read_is_capped_and_says_so(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(labels_module, "EXAMPLES_MAX_ROWS", 15)
    monkeypatch.setattr(route, "EXAMPLES_MAX_ROWS", 15)
    body = get(client, limit=1000, sample="random")
    assert (body["candidates"], body["truncated"]) == (15, True)
    assert {index(r) for r in body["rows"]} == set(range(N - 15, N))  # the newest 15
    reply = client.get(URL, params={"format": "jsonl"})
    assert reply.headers["x-candidates-truncated"] == "true"
