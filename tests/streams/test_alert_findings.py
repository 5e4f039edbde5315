"""Alerts name where their trouble is, on both store backends: a concept-drift alert the
slice of its labelled examples where the model fails (searched as it fires, before the
webhook goes out), a data-drift alert the declared slices whose inputs shifted most; the
findings are stored, sent, served by the API and survive a restart."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import wait_until
from helpers.webhook_receiver import WebhookReceiver

from alarms.routing import Subscription
from alarms.rules import Comparison, Rule
from api.main import create_app
from driftline.settings import Settings
from driftline.store import MetricPoint, Store, Stores
from driftline.store.labels import LabelRow, PredictionRow
from streams.alarms import AlarmService

W = 1_700_000_000
WINDOW = 60
SETTINGS = Settings(
    default_rules=False, alarm_refresh_s=0.1, window_seconds=WINDOW, webhook_backoff_s=0.05
)
CONCEPT = Rule("concept", "ConceptDrift", "drift.concept", Comparison.GE, 1.0, segment="")
DRIFT = Rule("drift", "DriftShareHigh", "drift.share_drifted", Comparison.GE, 0.5, segment="")


@pytest.fixture
def stores(store: Store) -> Stores:
    return Stores(store)


@pytest.fixture
def receiver(stores: Stores) -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        stores.alarms.put_subscription(Subscription("hook", r.url))
        yield r


@pytest.fixture
def service(stores: Stores) -> Iterator[AlarmService]:
    service = AlarmService(stores.alarms, stores.jobs, SETTINGS, labels=stores.labels).start()
    yield service
    service.stop()


def seed_planted_slice(stores: Stores, n: int = 3000) -> None:
    """Labelled examples of two windows: the model is wrong 10 % of the time, and 70 % of the
    time on country=BR with amount under 20 (about 4 % of the rows)."""
    rng = np.random.default_rng(7)
    predictions, labels = [], []
    for i in range(n):
        country = str(rng.choice(["BR", "FR", "DE"], p=[0.12, 0.5, 0.38]))
        amount = float(rng.lognormal(3.5, 0.8))
        channel = "mobile" if i % 2 else "web"
        y = int(rng.random() < 0.5)
        wrong = rng.random() < (0.7 if country == "BR" and amount < 20 else 0.1)
        p = 1 - y if wrong else y
        ts = W + (i % (2 * WINDOW))
        event = {
            "model": "fraud",
            "id": f"e{i}",
            "features": {"country": country, "amount": round(amount, 2), "items": i % 5},
            "prediction": 0.9 if p else 0.1,
            "segment": {"channel": channel},
        }
        predictions.append(
            PredictionRow("fraud", "", f"e{i}", ts, ts // WINDOW * WINDOW, "1", event)
        )
        labels.append(LabelRow("fraud", "", f"e{i}", y, (W + 300) * 1000))
    stores.labels.write_predictions(predictions)
    stores.labels.write_labels(labels)


def concept_window(service: AlarmService, start: int) -> None:
    points = [MetricPoint("fraud", start, WINDOW, "drift.concept", 1.0)]
    service.evaluate_window("fraud", start, points, from_labels=True)


def test_a_concept_drift_alert_names_its_failing_slice_before_it_is_sent(
    stores: Stores, receiver: WebhookReceiver, service: AlarmService
) -> None:
    stores.alarms.put_rule(CONCEPT)
    service.refresh()
    seed_planted_slice(stores)
    concept_window(service, W)
    wait_until(lambda: receiver.received, timeout=20, what="the firing notification")
    sent = receiver.received[0].json["alert"]["findings"]
    top = sent["items"][0]
    assert top["kind"] == "errors" and "country=BR" in top["slice"] and "amount<" in top["slice"]
    assert top["value"] > 0.5 and top["reference"] < 0.15 and top["q_value"] < 0.05
    assert 20 < top["size"] < 150
    # the examples of its one breaching window so far (half of those seeded)
    assert sent["note"] == "searched 1500 labelled examples of its windows"

    # stored with the alert, kept on the open alert as the next window moves it, and served
    concept_window(service, W + WINDOW)
    service.flush()
    [alert] = stores.alarms.alerts()
    assert alert.last_window == W + WINDOW and alert.findings[0].slice == top["slice"]
    with TestClient(create_app(Settings(), stores)) as client:
        [public] = client.get("/v1/alerts").json()
    assert public["findings"]["items"][0] == top

    # a restarted worker loads the open alert with its findings and does not search again
    service.stop()
    again = AlarmService(stores.alarms, stores.jobs, SETTINGS, labels=stores.labels).start()
    try:
        assert again.open_alerts()[0].findings == alert.findings
    finally:
        again.stop()


def test_without_labels_the_alert_says_why_it_names_no_slice(
    stores: Stores, receiver: WebhookReceiver, service: AlarmService
) -> None:
    stores.alarms.put_rule(CONCEPT)
    service.refresh()
    concept_window(service, W)
    wait_until(lambda: receiver.received, timeout=20, what="the firing notification")
    findings = receiver.received[0].json["alert"]["findings"]
    assert findings["items"] == []
    assert findings["note"] == "not searched: 0 labelled examples in its windows, fewer than 30"


def test_an_alert_on_a_slice_searches_within_it(
    stores: Stores, receiver: WebhookReceiver, service: AlarmService
) -> None:
    stores.alarms.put_rule(Rule("c", "Concept", "drift.concept", Comparison.GE, 1.0))
    service.refresh()
    seed_planted_slice(stores)
    points = [MetricPoint("fraud", W, WINDOW, "drift.concept", 1.0, segment="channel=web")]
    service.evaluate_window("fraud", W, points, from_labels=True)
    wait_until(lambda: receiver.received, timeout=20, what="the firing notification")
    findings = receiver.received[0].json["alert"]["findings"]
    assert findings["note"] == "searched 750 labelled examples of its windows (channel=web)"
    assert all("channel" not in f["slice"] for f in findings["items"])
    assert "country=BR" in findings["items"][0]["slice"]


def drift_points(start: int) -> list[MetricPoint]:
    """A window where the inputs shifted on mobile, less on web, and on version 2's cut most
    (a version is not a slice)."""

    def p(metric: str, value: float, segment: str = "", feature: str = "") -> MetricPoint:
        return MetricPoint("fraud", start, WINDOW, metric, value, feature, segment=segment)

    return [
        p("drift.share_drifted", 0.6),
        p("drift.max_effect", 0.3),
        p("traffic.count", 1000.0),
        p("drift.max_effect", 0.45, "channel=mobile"),
        p("traffic.count", 600.0, "channel=mobile"),
        p("drift.max_effect", 0.08, "channel=web"),
        p("traffic.count", 400.0, "channel=web"),
        p("drift.max_effect", 0.9, "@version=2"),
        p("drift.ks.effect", 0.2, "channel=web", "amount"),
    ]


def test_a_data_drift_alert_names_the_slices_that_shifted_most(
    stores: Stores, receiver: WebhookReceiver, service: AlarmService
) -> None:
    stores.alarms.put_rule(DRIFT)
    service.refresh()
    service.evaluate_window("fraud", W, drift_points(W))
    wait_until(lambda: receiver.received, timeout=20, what="the firing notification")
    findings: dict[str, Any] = receiver.received[0].json["alert"]["findings"]
    assert [(f["kind"], f["slice"], f["size"]) for f in findings["items"]] == [
        ("shift", "channel=mobile", 600),
        ("shift", "channel=web", 400),
    ]
    assert findings["items"][0]["value"] == 0.45 and findings["items"][0]["reference"] == 0.3
    assert (
        findings["note"] == "declared slices ranked by the inputs' drift in the window that fired"
    )
