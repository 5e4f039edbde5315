"""Alertmanager as a receiver: Driftline's alerts in a real Alertmanager, grouped by model,
silenced and inhibited there, and passed on to a webhook behind it.

Windows are fed straight to the worker's alarm service (as in test_alarm_service.py), on a
real store; Alertmanager is Debian's prometheus-alertmanager on a loopback port.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_until
from helpers.alertmanager import Alertmanager
from helpers.webhook_receiver import WebhookReceiver

from alarms.routing import Subscription
from alarms.rules import Comparison, Rule
from driftline.broker import free_port
from driftline.settings import Settings
from driftline.store import MetricPoint, Stores
from streams.alarms import AlarmService

W = 1_700_000_000
SETTINGS = Settings(
    default_rules=False,
    alarm_refresh_s=0.1,
    alertmanager_resend_s=1,
    webhook_backoff_s=0.05,
    webhook_backoff_max_s=0.2,
    repeat_interval_s=3600,
    dashboard_url="http://dashboard.test:8000",
)
AGE = Rule(
    "age", "AgeMissing", "input.missing_rate", Comparison.GT, 0.1, feature="age",
    labels={"team-x": "ml"},
)  # fmt: skip
TRAFFIC = Rule("traffic", "TrafficLow", "traffic.count", Comparison.LT, 50, severity="critical")
CONFIG = """
route:
  receiver: hook
  group_by: [model]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: {hook}
        send_resolved: true
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
    equal: [model]
"""


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        yield r


@pytest.fixture
def alertmanager(tmp_path: Path, hook: WebhookReceiver) -> Iterator[Alertmanager]:
    with Alertmanager(tmp_path, CONFIG.format(hook=hook.url)) as am:
        yield am


def window(service: AlarmService, model: str, i: int, age_missing: float, count: float) -> None:
    start = W + 10 * i
    points = [
        MetricPoint(model, start, 10, "traffic.count", count),
        MetricPoint(model, start, 10, "input.missing_rate", age_missing, feature="age"),
    ]
    service.evaluate_window(model, start, points)


def by_model(alerts: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(a["labels"]["model"], a["labels"]["alertname"]): a for a in alerts}


def notified(hook: WebhookReceiver) -> list[tuple[str, str, tuple[str, ...]]]:
    """(status, group's model, alertnames) of each notification Alertmanager sent."""
    return [
        (
            n["status"],
            n["groupLabels"]["model"],
            tuple(sorted(a["labels"]["alertname"] for a in n["alerts"])),
        )
        for n in (r.json for r in list(hook.received))
    ]


def test_alerts_reach_alertmanager_grouped_silenced_inhibited_resent_and_resolved(
    stores: Stores, alertmanager: Alertmanager, hook: WebhookReceiver
) -> None:
    store = stores.alarms
    store.put_rule(AGE)
    store.put_rule(TRAFFIC)
    store.put_subscription(Subscription("am", alertmanager.url, kind="alertmanager"))
    now = time.time()
    silence = alertmanager.post(
        "/api/v2/silences",
        {
            "matchers": [{"name": "model", "value": "loans", "isRegex": False, "isEqual": True}],
            "startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 60)),
            "endsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 3600)),
            "createdBy": "test",
            "comment": "loans is being migrated",
        },
    )["silenceID"]
    service = AlarmService(store, stores.jobs, SETTINGS).start()
    try:
        window(service, "fraud", 0, 0.5, 100)  # AgeMissing
        window(service, "churn", 0, 0.5, 10)  # AgeMissing, inhibited by TrafficLow (critical)
        window(service, "loans", 0, 0.5, 100)  # AgeMissing, silenced in Alertmanager

        alerts = wait_until(
            lambda: len(found := by_model(alertmanager.get("/api/v2/alerts"))) == 4 and found,
            timeout=60,
            what="the four alerts in Alertmanager",
        )
        assert isinstance(alerts, dict)
        fraud = alerts["fraud", "AgeMissing"]
        assert fraud["labels"] == {
            "alertname": "AgeMissing",
            "model": "fraud",
            "severity": "warning",
            "rule_id": "age",
            "feature": "age",
            "metric": "input.missing_rate",
            "team_x": "ml",
        }
        assert fraud["annotations"]["value"] == "0.5"
        assert fraud["annotations"]["summary"] == "AgeMissing on fraud feature='age'"
        assert fraud["generatorURL"] == "http://dashboard.test:8000/#/models/fraud"
        assert fraud["status"]["state"] == "active"
        assert alerts["churn", "TrafficLow"]["labels"]["severity"] == "critical"

        def states() -> dict[tuple[str, str], dict[str, Any]]:
            return {k: a["status"] for k, a in by_model(alertmanager.get("/api/v2/alerts")).items()}

        wait_until(
            lambda: (
                states()["churn", "AgeMissing"]["inhibitedBy"]
                and states()["loans", "AgeMissing"]["silencedBy"] == [silence]
            ),
            timeout=60,
            what="the inhibition and the silence to act",
        )
        assert states()["fraud", "AgeMissing"]["state"] == "active"
        [stored] = alertmanager.get("/api/v2/silences")
        assert stored["id"] == silence and stored["status"]["state"] == "active"

        groups = {g["labels"]["model"]: g for g in alertmanager.get("/api/v2/alerts/groups")}
        assert set(groups) == {"fraud", "churn", "loans"}
        assert len(groups["churn"]["alerts"]) == 2

        wait_until(
            lambda: (
                {("firing", "fraud", ("AgeMissing",)), ("firing", "churn", ("TrafficLow",))}
                <= set(notified(hook))
            ),
            timeout=60,
            what="Alertmanager's notifications to the webhook behind it",
        )
        assert all(model != "loans" for _, model, _ in notified(hook))  # silenced
        assert all("AgeMissing" not in names for _, m, names in notified(hook) if m == "churn")

        # no new window: the re-send moves endsAt on, so Alertmanager does not time it out
        first_end = fraud["endsAt"]
        wait_until(
            lambda: (
                by_model(alertmanager.get("/api/v2/alerts"))["fraud", "AgeMissing"]["endsAt"]
                > first_end
            ),
            timeout=60,
            what="a re-send of the firing alerts",
        )
        resends = [d for d in store.deliveries("am") if d.alert_id == ""]
        assert resends and all(d.event == "firing" for d in resends)

        window(service, "fraud", 1, 0.0, 100)  # resolves
        wait_until(
            lambda: ("fraud", "AgeMissing") not in by_model(alertmanager.get("/api/v2/alerts")),
            timeout=60,
            what="the resolve to reach Alertmanager",
        )
        wait_until(
            lambda: ("resolved", "fraud", ("AgeMissing",)) in notified(hook),
            timeout=60,
            what="Alertmanager's resolved notification",
        )
        service.flush()
        wait_until(
            lambda: all(d.status == "delivered" for d in store.deliveries("am")),
            timeout=30,
            what="every delivery to Alertmanager logged as delivered",
        )
    finally:
        service.stop()


def test_a_dead_alertmanager_means_retried_deliveries_not_a_stuck_worker(
    stores: Stores, tmp_path: Path
) -> None:
    """Nothing listens at the URL: deliveries are retried, then failed, and logged."""
    store = stores.alarms
    store.put_rule(AGE)
    store.put_subscription(
        Subscription("am", f"http://127.0.0.1:{free_port()}", kind="alertmanager")
    )
    service = AlarmService(
        store, stores.jobs, SETTINGS.model_copy(update={"webhook_max_attempts": 2})
    ).start()
    try:
        window(service, "fraud", 0, 0.5, 100)
        service.flush()
        wait_until(
            lambda: [d.status for d in store.deliveries("am") if d.alert_id] == ["failed"],
            timeout=30,
            what="the delivery to fail after its retries",
        )
        [failed] = [d for d in store.deliveries("am") if d.alert_id]
        assert failed.attempts == 2 and failed.response_code == 0
        assert service.open_alerts()  # the worker goes on
    finally:
        service.stop()
