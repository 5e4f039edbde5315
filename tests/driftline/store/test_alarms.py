"""The alarm tables on chDB and on a real ClickHouse server (Debian's 18.16)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from alarms.routing import Matcher, Silence, Subscription
from alarms.rules import DEFAULT_RULES, Comparison, Rule, RuleIndex
from alarms.state import AlertState, evaluate
from driftline.store import Store
from driftline.store.alarms import SUBSCRIPTION_COLUMNS, AlarmStore, Delivery
from driftline.store.schema import ALARM_SUBSCRIPTIONS


@pytest.fixture
def alarm_store(store: Store) -> AlarmStore:
    return AlarmStore(store.backend)


def test_rules_round_trip_update_and_soft_delete(alarm_store: AlarmStore) -> None:
    rule = Rule(
        "r1", "AgeMissing", "input.missing_rate", Comparison.GE, 0.25, feature="age",
        segment="", for_windows=3, keep_firing_for=2, severity="critical",
        labels={"team": "risk", "quote": "it's"}, actions=("notify", "retrain"),
        description="ages go missing",
    )  # fmt: skip
    created = alarm_store.put_rule(rule)
    assert alarm_store.rule("r1") == created
    assert [r.rule for r in alarm_store.rules()] == [rule]
    alarm_store.put_rule(replace(rule, threshold=0.5), created_at=created.created_at)
    updated = alarm_store.rule("r1")
    assert updated is not None and updated.rule.threshold == 0.5
    assert updated.created_at == created.created_at
    assert alarm_store.delete_rule("r1") and not alarm_store.delete_rule("r1")
    assert alarm_store.rule("r1") is None and alarm_store.rules() == []


def test_seeding_defaults_never_undoes_an_edit_or_a_delete(alarm_store: AlarmStore) -> None:
    alarm_store.seed_rules(DEFAULT_RULES)
    assert [r.rule for r in alarm_store.rules()] == sorted(DEFAULT_RULES, key=lambda r: r.id)
    drift, latency = DEFAULT_RULES[0], DEFAULT_RULES[3]
    alarm_store.put_rule(replace(drift, threshold=0.9))
    alarm_store.delete_rule(latency.id)
    alarm_store.seed_rules(DEFAULT_RULES)  # the next worker start
    found = {r.rule.id: r.rule for r in alarm_store.rules()}
    assert found[drift.id].threshold == 0.9 and latency.id not in found
    assert len(found) == len(DEFAULT_RULES) - 1


def test_alerts_keep_their_latest_state(alarm_store: AlarmStore) -> None:
    rule = Rule("r", "Missing", "input.missing_rate", Comparison.GT, 0.1)

    class P:
        metric, feature, segment, category, stage = "input.missing_rate", "age", "", "", ""

        def __init__(self, value: float) -> None:
            self.value = value

    index = RuleIndex([rule])
    [fired] = evaluate(index, {}, "fraud", 1000, [P(0.5)], now=1010.5)
    alarm_store.write_alerts([fired.alert])
    assert alarm_store.open_alerts() == [fired.alert]
    [resolved] = evaluate(index, {fired.alert.key: fired.alert}, "fraud", 1010, [P(0.0)], 1021)
    alarm_store.write_alerts([resolved.alert])
    assert alarm_store.open_alerts() == []
    assert alarm_store.alerts(states=("resolved",)) == [resolved.alert]
    assert alarm_store.alerts(states=("firing",)) == []
    assert alarm_store.alert(fired.alert.id) == resolved.alert
    assert alarm_store.alerts(model="churn") == []
    nan = replace(resolved.alert, id="x", value=math.nan, state=AlertState.PENDING)
    alarm_store.write_alerts([nan])
    [stored] = alarm_store.open_alerts()
    assert stored.id == "x" and math.isnan(stored.value)


def test_subscriptions_and_silences(alarm_store: AlarmStore) -> None:
    sub = Subscription(
        "s1", "https://example.com/h", secret="k", model="fr*", severities=("critical",),
        labels={"team": "risk"}, created_at=5.0,
    )  # fmt: skip
    alarm_store.put_subscription(sub)
    assert alarm_store.subscriptions() == [sub] and alarm_store.subscription("s1") == sub
    assert alarm_store.delete_subscription("s1") and alarm_store.subscriptions() == []

    ended = Silence("old", (Matcher("model", "fraud"),), 0.0, 10.0)
    live = Silence(
        "live", (Matcher("model", "fraud"), Matcher("feature", "a.*", "=~")), 10.0, 4e9,
        comment="maintenance", created_by="ops",
    )  # fmt: skip
    alarm_store.put_silence(ended)
    alarm_store.put_silence(live)
    assert alarm_store.silences() == [ended, live]
    assert alarm_store.silences(expired=False) == [live]
    assert alarm_store.delete_silence("live") and alarm_store.silences() == [ended]


def test_delivery_log_replaces_each_delivery_as_it_progresses(alarm_store: AlarmStore) -> None:
    first = Delivery("d1", "s1", "a1", "firing", b'{"event": "firing"}', created_at=1.0)
    second = Delivery("d2", "s1", "a1", "resolved", b"{}", created_at=2.0)
    alarm_store.record_deliveries([first, second])
    alarm_store.record_deliveries(
        [replace(first, status="retrying", attempts=1, error="refused", next_attempt_at=3.5)]
    )
    assert [(d.id, d.status) for d in alarm_store.unfinished_deliveries()] == [
        ("d1", "retrying"),
        ("d2", "pending"),
    ]
    done = replace(first, status="delivered", attempts=2, response_code=200, finished_at=4.0)
    alarm_store.record_deliveries([done])
    assert alarm_store.deliveries("s1") == [second, done]  # newest first
    assert alarm_store.deliveries("s1", statuses=("delivered",)) == [done]
    assert alarm_store.deliveries("other") == []


def test_subscriptions_keep_their_kind_and_old_ones_read_as_webhooks(store: Store) -> None:
    """A store from before ``kind`` gets the column; its subscriptions are webhooks."""
    store.backend.execute("DROP TABLE alarm_subscriptions")
    store.backend.execute(ALARM_SUBSCRIPTIONS)  # the table as the previous release made it
    old = SUBSCRIPTION_COLUMNS[:-1]
    assert "kind" not in old
    store.backend.insert(
        "alarm_subscriptions", old, [("old", "http://h/x", "", "*", [], "{}", "", 1.0, 0, 1)]
    )
    store.init_schema()
    store.init_schema()  # nothing to add the second time
    alarms = AlarmStore(store.backend)
    assert alarms.subscription("old") == Subscription("old", "http://h/x", created_at=1.0)
    alarms.put_subscription(Subscription("am", "http://am:9093", kind="alertmanager"))
    assert {s.id: s.kind for s in alarms.subscriptions()} == {
        "old": "webhook",
        "am": "alertmanager",
    }
