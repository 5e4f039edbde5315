"""The alert life cycle, window by window."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from alarms.rules import Comparison, Rule, RuleIndex
from alarms.state import AlertBook, AlertState, Change, due_notifications, evaluate

W = 10


@dataclass(frozen=True)
class P:
    metric: str
    value: float
    feature: str = ""
    segment: str = ""
    category: str = ""
    stage: str = ""


def missing(value: float, feature: str = "age") -> P:
    return P("input.missing_rate", value, feature)


def rule(**kw: object) -> Rule:
    base: dict[str, object] = {
        "id": "r",
        "name": "Missing",
        "metric": "input.missing_rate",
        "comparison": Comparison.GT,
        "threshold": 0.1,
    }
    return Rule(**{**base, **kw})  # type: ignore[arg-type]


class Run:
    """Feeds windows of one model through evaluate and an AlertBook."""

    def __init__(self, *rules: Rule, model: str = "fraud") -> None:
        self.index = RuleIndex(rules)
        self.book = AlertBook()
        self.model = model
        self.window = 0

    def step(self, *points: P, start: int | None = None) -> list[Change]:
        if start is None:
            self.window += W
            start = self.window
        changes = evaluate(
            self.index, self.book.of_model(self.model), self.model, start, points, now=start + 1
        )
        self.book.apply(changes)
        return changes

    def states(self, *windows: Sequence[P]) -> list[list[str]]:
        return [[str(c.alert.state) for c in self.step(*points)] for points in windows]


def test_for_windows_then_fire_then_resolve() -> None:
    run = Run(rule(for_windows=3))
    assert run.states(
        [missing(0.2)], [missing(0.3)], [missing(0.4)], [missing(0.5)], [missing(0)]
    ) == [
        ["pending"],
        ["pending"],
        ["firing"],
        ["firing"],
        ["resolved"],
    ]
    assert len(run.book) == 0


def test_for_one_fires_at_once_and_events_say_what_to_tell() -> None:
    run = Run(rule())
    [fired] = run.step(missing(0.5))
    assert fired.alert.state is AlertState.FIRING and fired.event == "firing"
    assert fired.alert.fired_at == W + 1 and fired.alert.active_since == W
    [still] = run.step(missing(0.6))
    assert still.event is None and still.alert.value == 0.6 and still.alert.breaches == 2
    [resolved] = run.step(missing(0.05))
    assert resolved.event == "resolved" and resolved.alert.resolved_at == 3 * W + 1
    assert resolved.alert.value == 0.05 and resolved.alert.id == fired.alert.id


def test_pending_that_clears_goes_inactive_and_is_never_announced() -> None:
    run = Run(rule(for_windows=2))
    [pending] = run.step(missing(0.5))
    [inactive] = run.step(missing(0.0))
    assert pending.event is None and inactive.event is None
    assert inactive.alert.state is AlertState.INACTIVE and len(run.book) == 0


def test_keep_firing_for_holds_a_flapping_alert() -> None:
    run = Run(rule(keep_firing_for=2))
    states = run.states(
        [missing(0.5)], [missing(0)], [missing(0.5)], [missing(0)], [missing(0)], [missing(0)]
    )
    assert states == [["firing"], ["firing"], ["firing"], ["firing"], ["firing"], ["resolved"]]


def test_a_new_breach_after_resolve_is_a_new_alert() -> None:
    run = Run(rule())
    [first] = run.step(missing(0.5))
    run.step(missing(0.0))
    [second] = run.step(missing(0.5))
    assert second.event == "firing" and second.alert.id != first.alert.id


def test_one_alert_per_feature_and_segment() -> None:
    run = Run(rule(feature="*", segment="*"))
    changes = run.step(
        missing(0.5, "age"),
        missing(0.5, "amount"),
        missing(0.0, "country"),
        P("input.missing_rate", 0.5, "age", segment="channel=web"),
    )
    keys = sorted((c.alert.feature, c.alert.segment) for c in changes)
    assert keys == [("age", ""), ("age", "channel=web"), ("amount", "")]


def test_worst_value_over_categories_is_one_alert() -> None:
    run = Run(rule(metric="input.category_freq", feature="country", threshold=0.3))
    [change] = run.step(
        P("input.category_freq", 0.4, "country", category="FR"),
        P("input.category_freq", 0.6, "country", category="BR"),
        P("input.category_freq", 0.1, "country", category="DE"),
    )
    assert change.alert.value == 0.6


def test_lower_bound_rule() -> None:
    run = Run(rule(metric="traffic.count", comparison=Comparison.LT, threshold=100, feature=""))
    [change] = run.step(P("traffic.count", 3))
    assert change.event == "firing"
    assert run.step(P("traffic.count", 500))[0].event == "resolved"


def test_a_metric_missing_from_the_window_counts_as_clear() -> None:
    run = Run(rule())
    run.step(missing(0.5))
    [change] = run.step(P("traffic.count", 10))
    assert change.event == "resolved" and math.isnan(change.alert.value)


def test_a_deleted_rule_resolves_its_alerts() -> None:
    run = Run(rule())
    run.step(missing(0.5))
    run.index = RuleIndex([])
    [change] = run.step(missing(0.5))
    assert change.event == "resolved"


def test_an_edited_rule_applies_to_its_open_alert() -> None:
    run = Run(rule())
    run.step(missing(0.5))
    run.index = RuleIndex([rule(threshold=0.8, severity="critical")])
    [change] = run.step(missing(0.5))
    assert change.event == "resolved" and change.alert.severity == "critical"


def test_replayed_windows_leave_open_alerts_alone() -> None:
    run = Run(rule(for_windows=2))
    run.step(missing(0.5), start=100)
    assert run.step(missing(0.5), start=100) == []  # the same window again
    assert run.step(missing(0.5), start=90) == []  # an older one
    assert run.book.open_alerts()[0].breaches == 1


def test_stage_points_and_non_finite_values_are_not_evaluated() -> None:
    run = Run(rule())
    assert run.step(P("input.missing_rate", 0.9, "age", stage="ranker")) == []
    assert run.step(missing(float("nan"))) == []


def test_alert_ids_are_stable_across_a_re_evaluation() -> None:
    first, again = Run(rule()), Run(rule())
    assert first.step(missing(0.5))[0].alert.id == again.step(missing(0.5))[0].alert.id


def test_models_are_kept_apart() -> None:
    index, book = RuleIndex([rule()]), AlertBook()
    for model in ("fraud", "churn"):
        book.apply(evaluate(index, book.of_model(model), model, W, [missing(0.5)], now=0))
    assert sorted(a.model for a in book.open_alerts()) == ["churn", "fraud"]
    book.apply(evaluate(index, book.of_model("fraud"), "fraud", 2 * W, [missing(0)], now=0))
    assert [a.model for a in book.open_alerts()] == ["churn"]


def test_book_merge_keeps_the_copy_that_saw_the_newer_window() -> None:
    run = Run(rule())
    run.step(missing(0.5))
    [newer] = run.step(missing(0.7))
    book = AlertBook([newer.alert])
    book.merge([replace(newer.alert, last_window=0, value=0.1)])
    assert book.open_alerts()[0].value == 0.7


def test_due_notifications_repeat_after_the_interval() -> None:
    run = Run(rule(), rule(id="quiet", actions=()))
    run.step(missing(0.5))
    alerts = run.book.open_alerts()
    assert {a.rule_id for a in due_notifications(alerts, now=100, repeat_interval_s=60)} == {"r"}
    sent = [replace(a, notified_at=100) for a in alerts]
    assert due_notifications(sent, now=159, repeat_interval_s=60) == []
    assert len(due_notifications(sent, now=160, repeat_interval_s=60)) == 1


def test_label_metrics_and_window_metrics_do_not_clear_each_other() -> None:
    concept = rule(id="c", metric="drift.concept", comparison=Comparison.GE, threshold=1.0)
    index, book = RuleIndex([rule(for_windows=2), concept]), AlertBook()

    def step(start: int, points: list[P], from_labels: bool) -> list[str]:
        changes = evaluate(
            index, book.of_model("m"), "m", start, points, now=start, from_labels=from_labels
        )
        book.apply(changes)
        return sorted(f"{c.alert.rule_id}:{c.alert.state}" for c in changes)

    assert step(0, [missing(0.5)], False) == ["r:pending"]
    assert step(0, [P("drift.concept", 1.0)], True) == ["c:firing"]
    # the next window's own metrics carry no quality: the concept alert stays as it is
    assert step(W, [missing(0.5)], False) == ["r:firing"]
    # quality computed later for that window: no missing-rate point, the other alert stays
    assert step(W, [P("drift.concept", 0.0)], True) == ["c:resolved"]
    open_states = {a.rule_id: a.state for a in book.of_model("m").values()}
    assert open_states["r"] is AlertState.FIRING
