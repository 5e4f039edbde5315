"""The HTTP API over a real store (both backends) and a real broker for ingest."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest
from fastapi.testclient import TestClient
from kafka import KafkaConsumer, TopicPartition

from api.main import create_app
from api.schemas import MetricsPublic
from driftline import topics
from driftline.broker import EmbeddedBroker, ensure_topics
from driftline.settings import Settings
from driftline.store import MetricPoint, Store, Stores
from driftline.topics import topic_partitions

W = 1_700_000_000


@pytest.fixture
def client(store: Store, broker: EmbeddedBroker) -> Iterator[TestClient]:
    ensure_topics(broker.bootstrap, topic_partitions(predictions=1, labels=1))
    settings = Settings(kafka_bootstrap=broker.bootstrap, max_request_bytes=4096)
    for i in range(3):
        store.write_window(
            [
                MetricPoint("fraud", W + 60 * i, 60, "traffic.count", 100.0 + i, version="2"),
                MetricPoint("fraud", W + 60 * i, 60, "input.mean", 1.0 * i, feature="amount"),
                MetricPoint("fraud", W + 60 * i, 60, "input.category_freq", 1.0, "country", "FR"),
            ],
            [],
        )
    app = create_app(settings, Stores(store))
    with TestClient(app) as c:
        yield c
    app.state.ingest.close()


def read_topic(bootstrap: str, topic: str) -> list[bytes]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, consumer_timeout_ms=1000)
    consumer.assign([TopicPartition(topic, 0)])
    consumer.seek_to_beginning()
    values = [m.value for m in consumer]
    consumer.close()
    return values


def test_health_and_models(client: TestClient) -> None:
    assert client.get("/health").json()["status"] == "ok"
    assert client.get("/v1/models").json() == [
        {
            "model": "fraud",
            "first_window": "2023-11-14T22:13:20Z",
            "last_window": "2023-11-14T22:15:20Z",
            "events": 303,
            "windows": 3,
            "stages": [],
        }
    ]
    model = client.get("/v1/models/fraud").json()
    assert model["versions"] == ["2"]
    assert model["features"] == [
        {"name": "amount", "kind": "numeric"},
        {"name": "country", "kind": "categorical"},
    ]
    missing = client.get("/v1/models/nobody")
    assert missing.status_code == 404 and "no stored windows" in missing.json()["detail"]


def test_metrics_as_time_series_with_filters(client: TestClient) -> None:
    body = client.get(
        "/v1/models/fraud/metrics",
        params={"name": "traffic.count", "start": "2023-11-14T22:14:20Z", "end": W + 180},
    ).json()
    [series] = body["series"]
    assert series["metric"] == "traffic.count" and series["window_seconds"] == 60
    assert [(p["window_start"], p["value"]) for p in series["points"]] == [
        ("2023-11-14T22:14:20Z", 101.0),
        ("2023-11-14T22:15:20Z", 102.0),
    ]
    by_feature = client.get("/v1/models/fraud/metrics", params={"feature": "country"}).json()
    assert {(s["metric"], s["category"]) for s in by_feature["series"]} == {
        ("input.category_freq", "FR")
    }
    # rendered from plain dicts (api.rendering.json_response), still the documented answer,
    # series ordered by (metric, feature, category)
    every = client.get("/v1/models/fraud/metrics")
    assert every.headers["content-type"] == "application/json"
    assert MetricsPublic.model_validate(every.json()).model_dump() == every.json()
    keys = [(s["metric"], s["feature"], s["category"]) for s in every.json()["series"]]
    assert keys == sorted(keys) and len(keys) == 3
    bad = client.get("/v1/models/fraud/metrics", params={"start": "last tuesday"})
    assert bad.status_code == 422
    [problem] = bad.json()["detail"]
    assert problem["loc"] == ["query", "start"] and "RFC 3339" in problem["msg"]


def test_metrics_per_hour_or_day_from_the_rollups(client: TestClient) -> None:
    """step= answers one point a bucket (the windows pooled, each once); without step the
    answer is the windows themselves, as before."""
    hourly = client.get(
        "/v1/models/fraud/metrics", params={"name": "traffic.count", "step": "3600"}
    ).json()
    [series] = hourly["series"]
    assert series["window_seconds"] == 3600
    assert series["points"] == [
        {"window_start": "2023-11-14T22:00:00Z", "value": 101.0, "version": "2"}
    ]
    daily = client.get(
        "/v1/models/fraud/metrics",
        params={"name": "traffic.count", "step": 86400, "agg": "sum", "start": W + 120},
    ).json()
    assert daily["series"][0]["points"] == [
        {"window_start": "2023-11-14T00:00:00Z", "value": 303.0, "version": "2"}
    ]
    by_feature = client.get(
        "/v1/models/fraud/metrics", params={"feature": "amount", "step": 3600, "agg": "max"}
    ).json()
    assert [(s["metric"], s["points"][0]["value"]) for s in by_feature["series"]] == [
        ("input.mean", 2.0)
    ]
    versioned = client.get(
        "/v1/models/fraud/metrics",
        params={"name": "traffic.count", "step": 3600, "agg": "sum", "version": "2"},
    ).json()
    assert versioned["series"][0]["points"][0]["value"] == 303.0
    for bad in ({"step": 60}, {"step": 3600, "agg": "median"}):
        reply = client.get("/v1/models/fraud/metrics", params=bad)
        assert reply.status_code == 422, reply.text


@pytest.mark.parametrize("start", ["inf", "nan", "1e300", "-1", "9999-12-31T23:59:59Z"])
def test_query_times_out_of_range_are_refused(client: TestClient, start: str) -> None:
    """A time no window can have is a mistake: 422, not a 500 (inf) or an empty answer."""
    for path in ("/v1/models/fraud/metrics", "/v1/models/fraud/drift"):
        reply = client.get(path, params={"start": start})
        assert reply.status_code == 422, (path, reply.text)
        [problem] = reply.json()["detail"]
        assert problem["loc"] == ["query", "start"] and "2106" in problem["msg"]


def test_http_ingest_puts_valid_events_on_kafka_and_reports_bad_ones(
    client: TestClient, broker: EmbeddedBroker
) -> None:
    good = {"model": "fraud", "features": {"amount": 3.0}, "prediction": 0.2}
    reply = client.post("/v1/events", content=orjson.dumps([good, {"model": "fraud"}, good]))
    assert reply.status_code == 202
    assert reply.json() == {
        "accepted": 2,
        "rejected": [
            {
                "index": 1,
                "reason": "'features' is required (an object; use {} when the model has no inputs)",
            }
        ],
        "dropped": [],
    }
    [message] = read_topic(broker.bootstrap, topics.PREDICTIONS)
    assert [e["features"] for e in orjson.loads(message)] == [good["features"]] * 2
    [letter] = read_topic(broker.bootstrap, topics.DEADLETTER)
    assert orjson.loads(letter)["index"] == 1


def test_http_ingest_keeps_an_event_whose_custom_metrics_are_bad_and_says_why(
    client: TestClient, broker: EmbeddedBroker
) -> None:
    """Bad custom metrics cost the event nothing else: it is sent without them, the reply
    lists what was dropped, and the dead letter says that only its metrics were."""
    event = {"model": "fraud", "features": {"amount": 3.0}, "prediction": 0.2}
    fine = {**event, "metrics": {"ctr": 1, "gpu_mem_mb": 5120.5}}
    bad = {**event, "metrics": {"ctr": "yes", "gpu_mem_mb": 10}}
    too_many = {**event, "metrics": {f"m{i}": i for i in range(65)}}
    reply = client.post("/v1/events", content=orjson.dumps([fine, bad, too_many]))
    assert reply.status_code == 202
    assert reply.json() == {
        "accepted": 3,
        "rejected": [],
        "dropped": [
            {"index": 1, "reason": "custom metric 'ctr' is a str; use a number"},
            {"index": 2, "reason": "'metrics' has 65 names, over the limit of 64; none was kept"},
        ],
    }
    [message] = read_topic(broker.bootstrap, topics.PREDICTIONS)
    sent = orjson.loads(message)
    assert [e.get("metrics") for e in sent] == [fine["metrics"], {"gpu_mem_mb": 10}, None]
    assert all(e["features"] == event["features"] for e in sent)
    letters = [orjson.loads(m) for m in read_topic(broker.bootstrap, topics.DEADLETTER)]
    assert [(letter["index"], letter["dropped"]) for letter in letters] == [
        (1, "metrics"),
        (2, "metrics"),
    ]
    assert orjson.loads(letters[0]["raw"])["metrics"] == bad["metrics"]  # as it was sent
    # an outcome known later comes on a label event, with or without a label
    outcome = {"model": "fraud", "id": "p-1", "metrics": {"clicked": 1}}
    reply = client.post("/v1/labels", json=[outcome, {"model": "fraud", "id": "p-2"}])
    assert reply.status_code == 202
    assert reply.json()["accepted"] == 1
    assert "or send 'metrics' alone" in reply.json()["rejected"][0]["reason"]


def test_http_ingest_errors_are_clear(client: TestClient) -> None:
    not_json = client.post("/v1/events", content=b"{")
    assert not_json.status_code == 422
    [problem] = not_json.json()["detail"]
    assert problem["type"] == "json_invalid" and "not valid JSON" in problem["msg"]
    none_valid = client.post("/v1/events", json=[{"model": "m"}, {"features": {}}])
    assert none_valid.status_code == 422
    body = none_valid.json()
    assert body["accepted"] == 0 and len(body["rejected"]) == 2
    assert [(p["loc"], p["type"]) for p in body["detail"]] == [
        (["body", 0], "invalid_event"),
        (["body", 1], "invalid_event"),
    ]
    assert "'features' is required" in body["detail"][0]["msg"]
    too_big = client.post("/v1/events", content=b" " * 5000)
    assert too_big.status_code == 413 and "limit is 4096" in too_big.json()["detail"]
