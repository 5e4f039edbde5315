from __future__ import annotations

import hashlib
import hmac

import orjson
import pytest

from alarms.payload import alert_event, sign
from alarms.routing import Matcher, Silence, Subscription, active_silences, subscribers
from alarms.rules import Comparison, Rule, RuleIndex
from alarms.state import evaluate

LABELS = {"model": "fraud", "feature": "age", "severity": "warning", "team": "risk"}


@pytest.mark.parametrize(
    ("matcher", "expected"),
    [
        (Matcher("model", "fraud"), True),
        (Matcher("model", "churn"), False),
        (Matcher("model", "churn", "!="), True),
        (Matcher("feature", "a.e|amount", "=~"), True),
        (Matcher("feature", "ag", "=~"), False),  # anchored: a prefix is not a match
        (Matcher("team", "ri.*", "!~"), False),
        (Matcher("absent", ""), True),  # a missing label reads as ""
    ],
)
def test_matchers(matcher: Matcher, expected: bool) -> None:
    assert matcher.matches(LABELS) is expected


def test_silence_covers_only_its_time_range_and_all_matchers() -> None:
    silence = Silence("s", (Matcher("model", "fraud"), Matcher("team", "risk")), 100, 200)
    assert [silence.covers(LABELS, t) for t in (99, 100, 199, 200)] == [False, True, True, False]
    partial = Silence("p", (Matcher("model", "fraud"), Matcher("team", "ops")), 0, 1e12)
    assert active_silences([silence, partial], LABELS, now=150) == [silence]


def test_subscription_filters_by_model_severity_and_labels() -> None:
    every = Subscription("all", "http://h/1")
    by_model = Subscription("m", "http://h/2", model="fr*")
    critical = Subscription("c", "http://h/3", severities=("critical",))
    by_label = Subscription("l", "http://h/4", labels={"team": "risk", "feature": "a*"})
    other = Subscription("o", "http://h/5", labels={"team": "ops"})
    found = subscribers([every, by_model, critical, by_label, other], LABELS)
    assert [s.id for s in found] == ["all", "m", "l"]


def test_payload_carries_the_alert_and_the_signature_verifies() -> None:
    rule = Rule("r", "AgeMissing", "input.missing_rate", Comparison.GT, 0.1, labels={"team": "x"})

    class P:
        metric, feature, segment, category, stage, value = (
            "input.missing_rate", "age", "", "", "", 0.25,
        )  # fmt: skip

    [change] = evaluate(RuleIndex([rule]), {}, "fraud", 1_700_000_000, [P()], now=1_700_000_011.5)
    body = orjson.dumps(alert_event(change.alert, "firing", 1_700_000_012, repeat=False))
    doc = orjson.loads(body)
    assert doc["event"] == "firing" and doc["repeat"] is False
    assert doc["alert"]["active_since"] == "2023-11-14T22:13:20Z"
    assert doc["alert"]["fired_at"] == "2023-11-14T22:13:31.500Z"
    assert doc["alert"]["labels"] == {
        "team": "x",
        "alertname": "AgeMissing",
        "rule_id": "r",
        "model": "fraud",
        "feature": "age",
        "segment": "",
        "metric": "input.missing_rate",
        "severity": "warning",
    }
    assert (doc["alert"]["value"], doc["alert"]["comparison"]) == (0.25, ">")
    expected = hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert sign(b"k", body) == f"sha256={expected}"
