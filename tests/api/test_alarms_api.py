"""Rules, alerts, subscriptions and silences over HTTP, on a real store (both backends)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from alarms.routing import Matcher, Silence
from alarms.rules import Comparison, Rule, RuleIndex
from alarms.state import evaluate
from api.main import create_app
from driftline.settings import Settings
from driftline.store import MetricPoint, Store, Stores
from driftline.store.alarms import AlarmStore, Delivery

KEY = {"Authorization": "Bearer let-me-in"}
RULE = {
    "name": "AgeMissing",
    "metric": "input.missing_rate",
    "feature": "age",
    "comparison": ">",
    "threshold": 0.1,
    "for": 2,
    "severity": "critical",
    "labels": {"team": "risk"},
}


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    settings = Settings(
        kafka_bootstrap="127.0.0.1:1",  # nothing here sends events
        api_key=SecretStr("let-me-in"),
        max_config_request_bytes=2048,
    )
    app = create_app(settings, Stores(store))
    with TestClient(app, headers=KEY) as c:  # reads need the key too (test_auth.py)
        yield c


def test_rules_crud(client: TestClient) -> None:
    created = client.post("/v1/rules", json=RULE, headers=KEY)
    assert created.status_code == 201, created.text
    rule = created.json()
    assert rule["for"] == 2 and rule["keep_firing_for"] == 0 and rule["origin"] == "user"
    assert (rule["model"], rule["segment"], rule["actions"]) == ("*", "*", ["notify"])
    assert client.get(f"/v1/rules/{rule['id']}").json() == rule
    assert [r["id"] for r in client.get("/v1/rules").json()] == [rule["id"]]
    assert client.get("/v1/rules", params={"metric": "latency.p99"}).json() == []

    changed = client.put(
        f"/v1/rules/{rule['id']}", json={**RULE, "threshold": 0.3, "for": 1}, headers=KEY
    )
    assert changed.status_code == 200
    assert (changed.json()["threshold"], changed.json()["for"]) == (0.3, 1)
    assert changed.json()["created_at"] == rule["created_at"]

    assert client.delete(f"/v1/rules/{rule['id']}", headers=KEY).status_code == 204
    missing = client.get(f"/v1/rules/{rule['id']}")
    assert missing.status_code == 404 and "GET /v1/rules" in missing.json()["detail"]
    assert client.delete(f"/v1/rules/{rule['id']}", headers=KEY).status_code == 404
    assert client.put("/v1/rules/nope", json=RULE, headers=KEY).status_code == 404


@pytest.mark.parametrize(
    "bad",
    [
        {"comparison": "=="},
        {"threshold": "inf"},
        {"metric": "not a metric"},
        {"for": 0},
        {"severity": "page-everyone"},
        {"actions": ["email"]},
        {"labels": {"bad label": "x"}},
        {"unknown": 1},
        # strict types: what the schema says, never coerced
        {"enabled": 0},
        {"enabled": "yes"},
        {"for": "2"},
        {"for": 2.0},
        {"threshold": "0.1"},
        {"threshold": True},
    ],
)
def test_rule_validation(client: TestClient, bad: dict[str, object]) -> None:
    reply = client.post("/v1/rules", json={**RULE, **bad}, headers=KEY)
    assert reply.status_code == 422, reply.text
    assert {"loc", "msg", "type"} <= set(reply.json()["detail"][0])


def test_a_rule_whose_label_values_are_not_strings_is_refused_and_reads_go_on(
    client: TestClient,
) -> None:
    """Regression (issue 13): such a rule made every later GET /v1/rules answer 500."""
    for labels in ('{"team": 1}', '{"team": true}', '{"team": null}', '{"team": ["risk"]}',
                   '{"team": {"a": "b"}}', '{"team": "\\ud800"}'):  # fmt: skip
        # (the last: a lone surrogate, a JSON string that is no Unicode text)
        body = orjson.dumps({**RULE, "labels": "LABELS"}).replace(b'"LABELS"', labels.encode())
        reply = client.post("/v1/rules", content=body, headers={"Content-Type": "application/json"})
        assert reply.status_code == 422, (labels, reply.text)
        [problem] = reply.json()["detail"]
        assert problem["loc"][0] == "body" and problem["msg"]
        assert client.get("/v1/rules").status_code == 200


@pytest.mark.parametrize(
    "body",
    [b'{"threshold": NaN}', b'{"threshold": Infinity}', b'{"threshold": 1e999}',
     b'{"threshold": -Infinity}'],
)  # fmt: skip
def test_numbers_that_are_not_finite_are_refused(client: TestClient, body: bytes) -> None:
    """JSON has no NaN or Infinity, yet Python's json module reads them (and 1e999 as inf)."""
    rule = orjson.dumps({**RULE, "threshold": 0}).replace(b'"threshold":0', body[1:-1])
    reply = client.post("/v1/rules", content=rule, headers={"Content-Type": "application/json"})
    assert reply.status_code == 422, reply.text
    assert reply.json()["detail"][0]["type"] == "json_invalid"


def test_bodies_over_the_limit_are_refused(client: TestClient) -> None:
    big = {**RULE, "description": "x" * 1900, "labels": {"a": "b" * 400}}
    reply = client.post("/v1/rules", content=orjson.dumps(big), headers=KEY)
    assert reply.status_code == 413 and "limit is 2048" in reply.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no content-length: counted while read
        yield b'{"url": "http://127.0.0.1/h", "description": "'
        yield b"x" * 4096
        yield b'"}'

    streamed = client.post("/v1/subscriptions", content=chunks(), headers=KEY)
    assert streamed.status_code == 413


def test_subscriptions_never_show_secrets_and_take_only_http_urls(
    client: TestClient, store: Store
) -> None:
    body = {
        "url": "https://user:pa55@hooks.example.com:8443/driftline?x=1",
        "secret": "top-secret-value",
        "model": "fraud*",
        "severities": ["critical"],
        "labels": {"team": "risk"},
    }
    created = client.post("/v1/subscriptions", json=body, headers=KEY)
    assert created.status_code == 201, created.text
    sub = created.json()
    assert sub["has_secret"] is True
    assert sub["url"] == "https://***@hooks.example.com:8443/driftline?x=1"
    for reply in (
        created,
        client.get("/v1/subscriptions"),
        client.get(f"/v1/subscriptions/{sub['id']}"),
    ):
        assert "top-secret-value" not in reply.text and "pa55" not in reply.text
    stored = AlarmStore(store.backend).subscription(sub["id"])
    assert stored is not None and stored.secret == "top-secret-value"

    for url in ("ftp://example.com/x", "file:///etc/passwd", "javascript:alert(1)", "http://"):
        assert client.post("/v1/subscriptions", json={"url": url}, headers=KEY).status_code == 422

    assert client.delete(f"/v1/subscriptions/{sub['id']}", headers=KEY).status_code == 204
    assert client.get("/v1/subscriptions").json() == []
    assert client.get(f"/v1/subscriptions/{sub['id']}").status_code == 404


def test_delivery_log(client: TestClient, store: Store) -> None:
    sub = client.post("/v1/subscriptions", json={"url": "http://127.0.0.1:9/h"}, headers=KEY)
    sub_id = sub.json()["id"]
    payload = b'{"event": "firing", "alert": {"id": "a1"}}'
    first = Delivery("d1", sub_id, "a1", "firing", payload, created_at=1_700_000_000.0)
    AlarmStore(store.backend).record_deliveries(
        [replace(first, status="retrying", attempts=2, error="refused", next_attempt_at=1.7e9 + 4)]
    )
    [logged] = client.get(f"/v1/subscriptions/{sub_id}/deliveries").json()
    assert logged["status"] == "retrying" and logged["attempts"] == 2
    assert logged["payload"] == {"event": "firing", "alert": {"id": "a1"}}
    assert logged["next_attempt_at"] == "2023-11-14T22:13:24Z" and logged["response_code"] is None
    only = client.get(f"/v1/subscriptions/{sub_id}/deliveries", params={"status": "delivered"})
    assert only.json() == []
    bad = client.get(f"/v1/subscriptions/{sub_id}/deliveries", params={"status": "lost"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "status"]
    assert client.get("/v1/subscriptions/nobody/deliveries").status_code == 404


def test_silences(client: TestClient) -> None:
    body = {
        "matchers": [
            {"name": "model", "value": "fraud"},
            {"name": "feature", "value": "a.*", "op": "=~"},
        ],
        "starts_at": "2023-11-14T22:13:20Z",
        "ends_at": 4_000_000_000,
        "comment": "maintenance",
    }
    created = client.post("/v1/silences", json=body, headers=KEY)
    assert created.status_code == 201, created.text
    silence = created.json()
    assert silence["status"] == "active" and silence["starts_at"] == "2023-11-14T22:13:20Z"
    short = client.post(
        "/v1/silences", json={"matchers": body["matchers"], "duration_s": 60}, headers=KEY
    ).json()
    assert [s["id"] for s in client.get("/v1/silences").json()] == [silence["id"], short["id"]]
    for bad in (
        {"matchers": [{"name": "model", "value": "(", "op": "=~"}], "duration_s": 1},
        {"matchers": [], "duration_s": 1},
        {"matchers": body["matchers"]},  # no end
        {"matchers": body["matchers"], "starts_at": 10, "ends_at": 5},
        {"matchers": body["matchers"], "ends_at": "next week"},
    ):
        reply = client.post("/v1/silences", json=bad, headers=KEY)
        assert reply.status_code == 422 and reply.json()["detail"][0]["msg"], bad
    assert client.delete(f"/v1/silences/{silence['id']}", headers=KEY).status_code == 204
    assert [s["id"] for s in client.get("/v1/silences").json()] == [short["id"]]


@pytest.mark.parametrize(
    "times",
    [
        {"starts_at": -3.17e16, "duration_s": 60},  # the request of issue 13
        {"starts_at": 0, "ends_at": 1e300},
        {"ends_at": "9999-12-31T23:59:59Z"},
        {"starts_at": "2106-02-07T06:28:15Z", "duration_s": 60},  # ends past what is stored
        {"starts_at": "1700000000", "duration_s": 60},  # epoch seconds are a number
        {"starts_at": True, "duration_s": 60},
        {"starts_at": "x" * 100, "duration_s": 60},
    ],
)
def test_a_silence_time_out_of_range_is_refused_and_reads_go_on(
    client: TestClient, times: dict[str, object]
) -> None:
    """Regression (issue 13): starts_at -3.17e16 was stored, and from then on every
    GET /v1/silences answered 500."""
    body = {"matchers": [{"name": "model", "value": "fraud"}], **times}
    reply = client.post("/v1/silences", json=body)
    assert reply.status_code == 422, reply.text
    [problem] = reply.json()["detail"]
    assert problem["loc"][0] == "body" and problem["loc"][1] in times, problem
    assert client.get("/v1/silences").status_code == 200


def test_a_stored_row_that_cannot_be_shown_is_left_out_of_its_list(
    client: TestClient, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """Rows stored before the bounds (or by another writer) must not break a whole list."""
    alarms = AlarmStore(store.backend)
    matchers = (Matcher("model", "fraud"),)
    alarms.put_silence(Silence("unshowable", matchers, starts_at=-3.17e16, ends_at=1.8e9))
    labels: Any = {"team": 1}  # what the API once let in (issue 13)
    alarms.put_rule(Rule("int-labels", "Old", "input.mean", Comparison.GT, 1.0, labels=labels))
    good = client.post("/v1/silences", json={"matchers": [{"name": "m", "value": "x"}],
                                             "duration_s": 60}).json()  # fmt: skip
    listed = client.get("/v1/silences")
    assert listed.status_code == 200 and [s["id"] for s in listed.json()] == [good["id"]]
    rules = client.get("/v1/rules")
    assert rules.status_code == 200 and "int-labels" not in {r["id"] for r in rules.json()}
    assert "silence unshowable left out" in caplog.text and "rule int-labels" in caplog.text
    # and it can still be deleted by its id
    assert client.delete("/v1/silences/unshowable").status_code == 204


def test_alerts_by_state(client: TestClient, store: Store) -> None:
    rule = Rule("r", "Missing", "input.missing_rate", Comparison.GT, 0.1, feature="*")
    index, alarms = RuleIndex([rule]), AlarmStore(store.backend)
    points = [
        MetricPoint("fraud", 1_700_000_000, 10, "input.missing_rate", 0.5, feature=f)
        for f in ("age", "amount")
    ]
    fired = evaluate(index, {}, "fraud", 1_700_000_000, points, now=1_700_000_011)
    alarms.write_alerts([c.alert for c in fired])
    age = next(c.alert for c in fired if c.alert.feature == "age")
    [resolved] = evaluate(index, {age.key: age}, "fraud", 1_700_000_010, [], now=1_700_000_021)
    alarms.write_alerts([resolved.alert])

    firing = client.get("/v1/alerts", params={"state": "firing"}).json()
    assert [(a["feature"], a["state"], a["value"]) for a in firing] == [("amount", "firing", 0.5)]
    assert firing[0]["active_since"] == "2023-11-14T22:13:20Z"
    assert firing[0]["fired_at"] == "2023-11-14T22:13:31Z" and firing[0]["resolved_at"] is None
    both = client.get("/v1/alerts", params={"state": "firing|resolved"}).json()
    assert sorted(a["state"] for a in both) == ["firing", "resolved"]
    assert len(client.get("/v1/alerts").json()) == 2
    one = client.get(f"/v1/alerts/{age.id}").json()
    assert one["state"] == "resolved" and one["resolved_at"] == "2023-11-14T22:13:41Z"
    exploded = client.get("/v1/alerts", params={"state": "exploded"})
    assert exploded.status_code == 422 and exploded.json()["detail"][0]["loc"] == ["query", "state"]
    assert client.get("/v1/alerts/nope").status_code == 404
    assert client.get("/v1/alerts", params={"model": "churn"}).json() == []


def test_alertmanager_subscriptions_are_unsigned_and_show_their_array_payloads(
    client: TestClient, store: Store
) -> None:
    body = {"kind": "alertmanager", "url": "http://alertmanager:9093", "model": "fraud"}
    created = client.post("/v1/subscriptions", json=body, headers=KEY)
    assert created.status_code == 201, created.text
    sub = created.json()
    assert (sub["kind"], sub["has_secret"], sub["url"]) == (
        "alertmanager",
        False,
        "http://alertmanager:9093",
    )
    stored = AlarmStore(store.backend).subscription(sub["id"])
    assert stored is not None and stored.kind == "alertmanager"
    webhook = client.post("/v1/subscriptions", json={"url": "http://h/x"}, headers=KEY).json()
    assert webhook["kind"] == "webhook"

    for bad in (
        {**body, "secret": "s"},  # Alertmanager checks no signature
        {**body, "kind": "pagerduty"},
        {**body, "url": "http://alertmanager:9093/?x=1"},
    ):
        reply = client.post("/v1/subscriptions", json=bad, headers=KEY)
        assert reply.status_code == 422, bad

    payload = [{"labels": {"alertname": "AgeMissing"}, "endsAt": "2023-11-14T22:16:40Z"}]
    AlarmStore(store.backend).record_deliveries(
        [Delivery("d1", sub["id"], "", "firing", orjson.dumps(payload), 1_700_000_000.0)]
    )
    [delivery] = client.get(f"/v1/subscriptions/{sub['id']}/deliveries").json()
    assert delivery["payload"] == payload and delivery["alert_id"] == ""
