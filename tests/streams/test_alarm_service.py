"""The worker's alarm service: store → evaluate → notify, with a real store and receiver.

Windows are fed straight to the service here; tests/streams/test_alarm_worker.py runs the
same path inside `driftline worker` on a real broker.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import orjson
import pytest
from helpers import wait_until
from helpers.webhook_receiver import WebhookReceiver

from alarms.routing import Matcher, Silence, Subscription
from alarms.rules import DEFAULT_RULES, Comparison, Rule
from driftline import topics
from driftline.messages import RetrainRequest
from driftline.settings import Settings
from driftline.store import MetricPoint, Stores
from driftline.store.alarms import AlarmStore
from streams.alarms import AlarmService

W = 1_700_000_000
SETTINGS = Settings(
    default_rules=False,
    alarm_refresh_s=0.1,
    webhook_backoff_s=0.05,
    webhook_backoff_max_s=0.2,
    repeat_interval_s=3600,
)
AGE_RULE = Rule(
    "age", "AgeMissing", "input.missing_rate", Comparison.GT, 0.1, feature="age",
    actions=("notify", "retrain"),
)  # fmt: skip


@pytest.fixture
def alarm_store(stores: Stores) -> AlarmStore:
    return stores.alarms


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        yield r


Published = list[tuple[str, bytes, Any]]


@pytest.fixture
def services(stores: Stores) -> Iterator[Callable[..., tuple[AlarmService, Published]]]:
    started: list[AlarmService] = []

    def start(**settings: Any) -> tuple[AlarmService, Published]:
        published: Published = []
        service = AlarmService(
            stores.alarms,
            stores.jobs,
            SETTINGS.model_copy(update=settings),
            publish=lambda t, k, v: published.append((t, k, orjson.loads(v))),
        ).start()
        started.append(service)
        return service, published

    yield start
    for service in started:
        service.stop()


def window(service: AlarmService, i: int, age_missing: float) -> None:
    points = [
        MetricPoint("fraud", W + 10 * i, 10, "traffic.count", 100.0),
        MetricPoint("fraud", W + 10 * i, 10, "input.missing_rate", age_missing, feature="age"),
    ]
    service.evaluate_window("fraud", W + 10 * i, points)


def test_firing_and_resolved_are_delivered_signed_published_and_logged(
    alarm_store: AlarmStore, receiver: WebhookReceiver, services: Callable[..., Any]
) -> None:
    alarm_store.put_rule(AGE_RULE)
    alarm_store.put_subscription(Subscription("hook", receiver.url, secret="k"))
    service, published = services()
    window(service, 0, 0.5)
    wait_until(lambda: receiver.received, timeout=5, what="the firing notification")
    window(service, 1, 0.0)
    wait_until(lambda: len(receiver.received) == 2, timeout=5, what="the resolved one")

    firing, resolved = (r.json for r in receiver.received)
    assert (firing["event"], resolved["event"]) == ("firing", "resolved")
    assert firing["alert"]["id"] == resolved["alert"]["id"]
    assert firing["alert"]["value"] == 0.5 and resolved["alert"]["state"] == "resolved"
    assert firing["subscription_id"] == "hook" and firing["repeat"] is False
    assert all(r.signed_by("k") for r in receiver.received)
    assert [(t, e.get("event")) for t, _, e in published] == [
        (topics.ALERTS, "firing"),
        (topics.RETRAIN_JOBS, None),
        (topics.ALERTS, "resolved"),
    ]
    assert published[1][2]["model"] == "fraud" and published[1][1] == b"fraud"
    service.flush()
    wait_until(lambda: {d.status for d in alarm_store.deliveries("hook")} == {"delivered"},
               timeout=5, what="the delivery log")  # fmt: skip
    [alert] = alarm_store.alerts()
    assert alert.state == "resolved" and alert.notified_at is not None


def test_silenced_alerts_are_recorded_not_sent_then_sent_when_the_silence_ends(
    alarm_store: AlarmStore, receiver: WebhookReceiver, services: Callable[..., Any]
) -> None:
    alarm_store.put_rule(AGE_RULE)
    alarm_store.put_subscription(Subscription("hook", receiver.url))
    silence = Silence("quiet", (Matcher("feature", "age"),), 0.0, time.time() + 3600)
    alarm_store.put_silence(silence)
    service, published = services()
    window(service, 0, 0.5)
    service.flush()
    [logged] = alarm_store.deliveries("hook")
    assert logged.status == "silenced" and "quiet" in logged.error
    assert [e["event"] for t, _, e in published if t == topics.ALERTS] == ["firing"]
    time.sleep(0.3)
    assert receiver.received == []
    alarm_store.delete_silence("quiet")  # the service reloads silences every 0.1 s
    wait_until(lambda: receiver.received, timeout=5, what="the firing once unsilenced")
    assert receiver.received[0].json["repeat"] is False


def test_a_hanging_receiver_does_not_hold_up_evaluation_or_storage(
    alarm_store: AlarmStore, receiver: WebhookReceiver, services: Callable[..., Any]
) -> None:
    alarm_store.put_rule(AGE_RULE)
    alarm_store.put_subscription(Subscription("hook", receiver.url))
    receiver.hold.clear()
    service, _ = services()
    for i in range(6):  # fire, resolve, fire, ...: every window has a notification
        window(service, i, 0.5 if i % 2 == 0 else 0.0)
    service.flush()
    assert len(alarm_store.alerts(states=("resolved",))) == 3  # all stored meanwhile
    wait_until(lambda: receiver.attempts == 1, timeout=5, what="the first request, hanging")
    assert receiver.received == []
    receiver.hold.set()
    wait_until(lambda: len(receiver.received) == 6, timeout=10, what="all six, once released")
    events = [e for e, _ in receiver.events()]
    assert events == ["firing", "resolved"] * 3  # in order


def test_long_firing_alerts_are_notified_again(
    alarm_store: AlarmStore, receiver: WebhookReceiver, services: Callable[..., Any]
) -> None:
    alarm_store.put_rule(AGE_RULE)
    alarm_store.put_subscription(Subscription("hook", receiver.url))
    service, _ = services(repeat_interval_s=0.5)
    window(service, 0, 0.5)
    wait_until(lambda: len(receiver.received) >= 3, timeout=10, what="two repeats")
    assert [r.json["repeat"] for r in receiver.received[:3]] == [False, True, True]
    assert len({r.json["alert"]["id"] for r in receiver.received}) == 1


def test_a_firing_alert_retries_retraining_after_a_rejected_job_until_one_succeeds(
    alarm_store: AlarmStore, stores: Stores, services: Callable[..., Any]
) -> None:
    alarm_store.put_rule(AGE_RULE)
    jobs = stores.jobs
    service, published = services(retrain_cooldown_s=0.5)

    def requests() -> list[str]:
        """The requests sent so far, each decided as the retrainer does on receiving it."""
        sent = [e for t, _, e in published if t == topics.RETRAIN_JOBS]
        for e in sent:
            jobs.decide(RetrainRequest.from_bytes(orjson.dumps(e)), 0.5)
        return [e["job_id"] for e in sent]

    def ended(job_id: str, state: str) -> None:  # what the retrainer would write
        job = jobs.job(job_id)
        assert job is not None and job.state == "queued"
        now = time.time()
        jobs.write(replace(job, state=state, started_at=now, finished_at=now))

    window(service, 0, 0.5)
    wait_until(lambda: len(requests()) == 1, timeout=5, what="the first job")
    time.sleep(1.0)
    assert len(requests()) == 1  # queued, not yet ended: nothing more is asked
    ended(requests()[0], "rejected")  # its challenger was not promoted
    wait_until(lambda: len(requests()) == 2, timeout=5, what="a retry after the cooldown")
    first, second = (jobs.job(i) for i in requests())
    assert first is not None and second is not None
    assert second.alert_id == first.alert_id and second.requested_at - first.requested_at >= 0.5
    ended(requests()[1], "succeeded")
    time.sleep(1.5)
    assert len(requests()) == 2  # a promotion ends the asking, although the alert still fires
    window(service, 1, 0.0)  # resolved: no retry either way
    service.flush()
    assert [j.state for j in jobs.jobs("fraud")] == ["succeeded", "rejected"]


def test_a_firing_alert_only_asks_the_retrainer_once_per_pending_or_active_job(
    alarm_store: AlarmStore, stores: Stores, services: Callable[..., Any]
) -> None:
    """Admission is the retrainer's (one decider per model, across processes): the worker
    writes no job, and does not ask again while its request awaits the decision or the job
    it asked for is active (asking would only fill the jobs list with refusals)."""
    alarm_store.put_rule(AGE_RULE)
    jobs = stores.jobs
    service, published = services()

    def requests() -> list[dict[str, Any]]:
        service.flush()
        return [e for t, _, e in published if t == topics.RETRAIN_JOBS]

    window(service, 0, 0.5)
    [request] = requests()
    assert jobs.jobs("fraud") == []  # requested, not admitted: the retrainer decides
    window(service, 1, 0.0)
    window(service, 2, 0.5)  # a new alert fires while the request awaits its decision
    assert len(requests()) == 1
    admitted = jobs.decide(RetrainRequest.from_bytes(orjson.dumps(request)), 3600).job
    assert admitted is not None and admitted.alert_id == request["alert_id"]
    window(service, 3, 0.0)
    window(service, 4, 0.5)  # and again while the job is queued
    assert len(requests()) == 1
    assert [j.state for j in jobs.jobs("fraud")] == ["queued"]


def test_restart_while_firing_neither_fires_again_nor_loses_the_resolve(
    alarm_store: AlarmStore, receiver: WebhookReceiver, services: Callable[..., Any]
) -> None:
    alarm_store.put_rule(AGE_RULE)
    alarm_store.put_subscription(Subscription("hook", receiver.url))
    first, _ = services()
    window(first, 0, 0.5)
    wait_until(lambda: receiver.received, timeout=5, what="the firing notification")
    first.stop()

    second, published = services()
    assert [a.state for a in second.open_alerts()] == ["firing"]
    window(second, 0, 0.5)  # the same window replayed: nothing happens
    window(second, 1, 0.7)  # still firing: no new alert, no notification
    window(second, 2, 0.0)
    wait_until(lambda: len(receiver.received) == 2, timeout=5, what="the resolved one")
    time.sleep(0.2)
    alert_id = receiver.events()[0][1]
    assert receiver.events() == [("firing", alert_id), ("resolved", alert_id)]
    assert [e["event"] for t, _, e in published if t == topics.ALERTS] == ["resolved"]


def test_default_rules_are_seeded_and_can_be_turned_off(
    alarm_store: AlarmStore, services: Callable[..., Any]
) -> None:
    off, _ = services(default_rules=False)
    assert alarm_store.rules() == []
    window(off, 0, 0.5)
    off.flush()
    assert alarm_store.alerts() == []

    on, _ = services(default_rules=True)
    assert {r.rule.id for r in alarm_store.rules()} == {r.id for r in DEFAULT_RULES}
    for i in range(2):  # the default missing-rate rule fires after 2 windows over 10 %
        window(on, i, 0.5)
    on.flush()
    [alert] = alarm_store.alerts()
    assert (alert.rule_id, alert.state, alert.feature) == ("default-missing-rate", "firing", "age")


def test_deployment_changes_reach_subscribers_as_alerts_of_their_own(
    alarm_store: AlarmStore, receiver: WebhookReceiver, services: Callable[..., Any]
) -> None:
    from driftline.store.deployments import Deployment

    alarm_store.put_subscription(Subscription("hook", receiver.url))
    alarm_store.put_subscription(Subscription("pager", receiver.url, severities=("critical",)))
    service, published = services()
    service.refresh()
    canary = Deployment("d1", "ads", "canary", "1", "2", (5.0, 25.0, 100.0), 3, step=1)
    service.deployment_changed(canary, "step", "step 1 passed: no metric worse than tolerated")
    rolled = replace(canary, state="rolled_back", by="rule:nulls")
    service.deployment_changed(rolled, "rolled_back", "output.null_rate is worse than tolerated")
    wait_until(lambda: len(receiver.received) == 3, timeout=5, what="three deliveries")
    service.flush()
    by_name = [(r.json["subscription_id"], r.json["alert"]["rule_name"]) for r in receiver.received]
    # the pager subscription takes critical alerts only: the rollback, not the step
    assert sorted(by_name) == [
        ("hook", "DeploymentRolledBack"),
        ("hook", "DeploymentStepPassed"),
        ("pager", "DeploymentRolledBack"),
    ]
    rollback = next(r.json for r in receiver.received if r.json["subscription_id"] == "pager")
    assert rollback["event"] == "firing"
    alert = rollback["alert"]
    assert (alert["model"], alert["severity"], alert["value"]) == ("ads", "critical", 0.0)
    assert alert["labels"]["version"] == "2" and alert["labels"]["by"] == "rule:nulls"
    assert "null_rate" in alert["description"]
    assert [e["alert"]["rule_name"] for t, _, e in published if t == topics.ALERTS] == [
        "DeploymentStepPassed",
        "DeploymentRolledBack",
    ]
    # events, not states: stored closed, never repeated, listed with the model's version
    stored = {a.rule_name: a for a in alarm_store.alerts()}
    assert {a.state for a in stored.values()} == {"resolved"}
    assert stored["DeploymentRolledBack"].segment == "@version=2"
    assert service.open_alerts() == []


def default_rule(rule_id: str) -> Rule:
    """A shipped rule as a user's (these services do not seed or run the defaults)."""
    return replace(next(r for r in DEFAULT_RULES if r.id == rule_id), origin="user")


def test_a_critical_drift_alert_is_a_warning_while_estimated_quality_holds(
    alarm_store: AlarmStore, receiver: WebhookReceiver, services: Callable[..., Any]
) -> None:
    """Page on harm, not on drift: the default drift-share rule is critical, but while the
    model's estimated quality holds its alert goes out as a warning; once the estimates show
    harm the next window's notification is critical again, and the harm alert pages."""
    share_rule = default_rule("default-drift-share")
    harm_rule = default_rule("default-estimated-harm")
    alarm_store.put_rule(share_rule)
    alarm_store.put_rule(harm_rule)
    alarm_store.put_subscription(Subscription("hook", receiver.url))
    service, _ = services(repeat_interval_s=0.3)

    def drifted(i: int) -> None:
        point = MetricPoint("fraud", W + 10 * i, 10, "drift.share_drifted", 0.8)
        service.evaluate_window("fraud", W + 10 * i, [point])

    def estimated(i: int, harm: bool) -> None:
        points = [
            MetricPoint(
                "fraud", W + 10 * i, 10, "quality.estimated.accuracy", 0.6 if harm else 0.9
            ),
            MetricPoint("fraud", W + 10 * i, 10, "drift.harm", float(harm)),
        ]
        service.estimated("fraud", W + 10 * i, harm)
        service.evaluate_window("fraud", W + 10 * i, points, kind="estimates")

    estimated(0, harm=False)
    drifted(0)
    drifted(1)  # fires (two windows)
    wait_until(lambda: receiver.received, timeout=5, what="the drift notification")
    first = receiver.received[0].json["alert"]
    assert first["rule_id"] == "default-drift-share" and first["severity"] == "warning"
    assert first["labels"]["severity"] == "warning"
    assert first["labels"]["demoted"] == "estimated quality holds"
    # the estimates now show harm: the harm alert fires (critical), and the drift alert is
    # critical again from its next window on
    estimated(1, harm=True)
    drifted(2)
    wait_until(
        lambda: any(
            r.json["alert"]["rule_id"] == "default-estimated-harm" for r in receiver.received
        ),
        timeout=5,
        what="the harm notification",
    )
    harm = next(
        r.json for r in receiver.received if r.json["alert"]["rule_id"] == "default-estimated-harm"
    )
    assert harm["alert"]["severity"] == "critical" and harm["event"] == "firing"
    [drift] = [a for a in service.open_alerts() if a.rule_id == "default-drift-share"]
    assert drift.severity == "critical" and "demoted" not in drift.labels
    # a window's metrics never move the estimate's alert, nor the reverse
    assert {a.rule_id for a in service.open_alerts()} == {
        "default-drift-share",
        "default-estimated-harm",
    }


def test_without_estimates_a_critical_drift_alert_stays_critical(
    alarm_store: AlarmStore, receiver: WebhookReceiver, services: Callable[..., Any]
) -> None:
    share_rule = default_rule("default-drift-share")
    alarm_store.put_rule(share_rule)
    alarm_store.put_subscription(Subscription("hook", receiver.url))
    service, _ = services()
    for i in range(2):
        point = MetricPoint("fraud", W + 10 * i, 10, "drift.share_drifted", 0.8)
        service.evaluate_window("fraud", W + 10 * i, [point])
    wait_until(lambda: receiver.received, timeout=5, what="the drift notification")
    assert receiver.received[0].json["alert"]["severity"] == "critical"
    # and the option turns demotion off: quality holding or not, drift pages as its rule says
    other, _ = services(demote_drift_while_quality_holds=False)
    other.estimated("churn", W, harm=False)
    for i in range(2):
        point = MetricPoint("churn", W + 10 * i, 10, "drift.share_drifted", 0.8)
        other.evaluate_window("churn", W + 10 * i, [point])
    [churn] = [a for a in other.open_alerts() if a.model == "churn"]
    assert other.quality_holds("churn") and churn.severity == "critical"
