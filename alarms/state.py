"""The alert life cycle, as in Prometheus: inactive → pending → firing → resolved.

One open alert per (rule, model, feature, segment). Each stored window of a model moves that
model's alerts one step; :func:`evaluate` is pure and returns the changes, which the caller
applies to its :class:`AlertBook` and stores.

>>> from alarms.rules import Comparison, Rule, RuleIndex
>>> from types import SimpleNamespace as P
>>> rule = Rule("r", "Missing", "input.missing_rate", Comparison.GT, 0.1, for_windows=2)
>>> index, book = RuleIndex([rule]), AlertBook()
>>> def window(start, value):
...     point = P(metric="input.missing_rate", feature="age", segment="", category="",
...               stage="", value=value)
...     changes = evaluate(index, book.of_model("fraud"), "fraud", start, [point], now=start)
...     book.apply(changes)
...     return [str(c.alert.state) for c in changes]
>>> [window(0, 0.3), window(10, 0.4), window(20, 0.0)]
[['pending'], ['firing'], ['resolved']]
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from alarms.findings import Finding, Point
from alarms.rules import VERSION_PREFIX, Comparison, MetricKind, Rule, RuleIndex, metric_kind

AlertKey = tuple[str, str, str, str]  # (rule id, model, feature, segment)


class AlertState(StrEnum):
    PENDING = "pending"  # breaching, for fewer than the rule's `for` windows
    FIRING = "firing"
    RESOLVED = "resolved"  # was firing, then clear: closed
    INACTIVE = "inactive"  # was pending, then clear before firing: closed, never notified

    @property
    def is_open(self) -> bool:
        return self in (AlertState.PENDING, AlertState.FIRING)


@dataclass(frozen=True)
class Alert:
    """One alert: a rule broken for one (model, feature, segment), from pending to closed.

    Times: ``active_since`` and ``last_window`` are window starts (event time, epoch s);
    ``fired_at``, ``resolved_at``, ``notified_at`` and ``updated_at`` are wall-clock epoch s.
    """

    id: str
    rule_id: str
    rule_name: str
    model: str
    feature: str
    segment: str
    metric: str
    comparison: Comparison
    threshold: float
    severity: str
    state: AlertState
    value: float  # the latest value seen (the worst one over categories)
    active_since: int
    last_window: int
    breaches: int = 0  # consecutive breaching windows
    clears: int = 0  # consecutive clear windows while firing
    labels: Mapping[str, str] = field(default_factory=dict)
    actions: tuple[str, ...] = ()
    description: str = ""
    fired_at: float | None = None
    resolved_at: float | None = None
    notified_at: float | None = None  # last notification sent for this firing (not silenced)
    updated_at: float = 0.0
    # where the trouble is (``alarms/findings.py``), set once when the alert fires
    findings: tuple[Finding, ...] = ()
    findings_note: str = ""  # what was searched, or why nothing was

    @property
    def key(self) -> AlertKey:
        return (self.rule_id, self.model, self.feature, self.segment)


@dataclass(frozen=True)
class Change:
    """An alert after one step, and its state before it (None: the alert is new)."""

    alert: Alert
    previous: AlertState | None

    @property
    def event(self) -> str | None:
        """``"firing"`` or ``"resolved"`` when this step is one to tell people about."""
        state = self.alert.state
        if state is AlertState.FIRING and self.previous is not AlertState.FIRING:
            return "firing"
        if state is AlertState.RESOLVED and self.previous is AlertState.FIRING:
            return "resolved"
        return None


def alert_id(key: AlertKey, active_since: int) -> str:
    """Stable: the same breach, evaluated again after a crash, is the same alert."""
    text = "\x1f".join((*key, str(active_since)))
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def alert_labels(rule: Rule, model: str, feature: str, segment: str) -> dict[str, str]:
    """The rule's labels plus the alert's identity, for silences and subscription filters;
    an alert on a version's cut also says ``version``."""
    labels = {
        **rule.labels,
        "alertname": rule.name,
        "rule_id": rule.id,
        "model": model,
        "feature": feature,
        "segment": segment,
        "metric": rule.metric,
        "severity": rule.severity,
    }
    if segment.startswith(VERSION_PREFIX):
        labels["version"] = segment[len(VERSION_PREFIX) :]
    return labels


def evaluate(
    index: RuleIndex,
    open_alerts: Mapping[AlertKey, Alert],
    model: str,
    window_start: int,
    points: Iterable[Point],
    now: float,
    *,
    from_labels: bool = False,
    only_metric: str | None = None,
    kind: MetricKind | None = None,
) -> list[Change]:
    """One stored window of ``model``: every alert it opens, moves or closes.

    Window metrics and label-based metrics (:func:`alarms.rules.is_label_metric`: quality,
    coverage, concept drift) are stored at different times, the latter again as labels land;
    each evaluation only moves alerts of its own kind (``from_labels``), so a window's
    metrics never clear a quality alert for lack of quality points, nor the reverse. Estimated
    quality (:func:`alarms.rules.metric_kind` ``"estimates"``) is a third kind, evaluated
    with ``kind="estimates"``; points of another kind than the evaluation's are ignored.

    ``open_alerts`` are the model's open alerts. A rule's metric that the window lacks counts
    as clear (as a vanished series does in Prometheus); an alert whose rule was deleted or
    disabled closes. Windows no newer than an alert's ``last_window`` (a replay) leave it be.
    Only model-level points (empty ``stage``) are evaluated. ``only_metric``: points of one
    metric, evaluated apart from the window's others (a window set aside by the store), which
    move only the alerts on that metric.
    """
    if kind is None:
        kind = "labels" if from_labels else "window"
    breaching: dict[AlertKey, tuple[Rule, float]] = {}
    seen: dict[AlertKey, float] = {}  # latest clear values of open alerts, for display
    watched = {key[0] for key in open_alerts}  # rule ids with an open alert on this model
    # per metric, whether this evaluation looks at its points: of its kind, and watched by
    # some rule of the model (most of a window's metrics are watched by none)
    looked_at: dict[str, bool] = {}
    for point in points:
        wanted = looked_at.get(point.metric)
        if wanted is None:
            metric = point.metric
            wanted = looked_at[metric] = metric_kind(metric) == kind and index.watched(
                metric, model
            )
        value = point.value
        if not wanted or point.stage or not math.isfinite(value):
            continue
        feature, segment = point.feature, point.segment
        for rule, breached, threshold in index.watches(
            point.metric, model, feature, segment, point.category
        ):
            if breached(value, threshold):
                key = (rule.id, model, feature, segment)
                found = breaching.get(key)
                worst = value if found is None else rule.comparison.worse(found[1], value)
                breaching[key] = (rule, worst)
            elif rule.id in watched:
                key = (rule.id, model, feature, segment)
                if key in open_alerts:
                    seen[key] = value

    changes = []
    for key, alert in open_alerts.items():
        if window_start <= alert.last_window or metric_kind(alert.metric) != kind:
            continue
        if only_metric is not None and alert.metric != only_metric:
            continue
        current = index.rules.get(alert.rule_id)
        hit = breaching.pop(key, None)
        if current is None:
            changes.append(_close(alert, window_start, now))
        elif hit is not None:
            changes.append(_breach(alert, current, hit[1], window_start, now))
        else:
            changes.append(_clear(alert, current, seen.get(key, math.nan), window_start, now))
    for key, (rule, value) in breaching.items():
        if key in open_alerts:
            continue  # a replayed window of an alert that is already open
        changes.append(_open(key, rule, value, window_start, now))
    return changes


def _open(key: AlertKey, rule: Rule, value: float, window_start: int, now: float) -> Change:
    _, model, feature, segment = key
    fires = rule.for_windows <= 1
    alert = Alert(
        id=alert_id(key, window_start),
        rule_id=rule.id,
        rule_name=rule.name,
        model=model,
        feature=feature,
        segment=segment,
        metric=rule.metric,
        comparison=rule.comparison,
        threshold=rule.threshold,
        severity=rule.severity,
        state=AlertState.FIRING if fires else AlertState.PENDING,
        value=value,
        active_since=window_start,
        last_window=window_start,
        breaches=1,
        labels=alert_labels(rule, model, feature, segment),
        actions=rule.actions,
        description=rule.description,
        fired_at=now if fires else None,
        updated_at=now,
    )
    return Change(alert, None)


def _from_rule(alert: Alert, rule: Rule) -> dict[str, Any]:
    """The rule's current settings, for the alert (a rule may be edited while it fires)."""
    return {
        "rule_name": rule.name,
        "comparison": rule.comparison,
        "threshold": rule.threshold,
        "severity": rule.severity,
        "labels": alert_labels(rule, alert.model, alert.feature, alert.segment),
        "actions": rule.actions,
        "description": rule.description,
    }


def _breach(alert: Alert, rule: Rule, value: float, window_start: int, now: float) -> Change:
    breaches = alert.breaches + 1
    state, fired_at = alert.state, alert.fired_at
    if state is AlertState.PENDING and breaches >= rule.for_windows:
        state, fired_at = AlertState.FIRING, now
    after = replace(
        alert,
        **_from_rule(alert, rule),
        state=state,
        value=value,
        last_window=window_start,
        breaches=breaches,
        clears=0,
        fired_at=fired_at,
        updated_at=now,
    )
    return Change(after, alert.state)


def _clear(alert: Alert, rule: Rule, value: float, window_start: int, now: float) -> Change:
    if alert.state is AlertState.FIRING and alert.clears < rule.keep_firing_for:
        after = replace(
            alert,
            **_from_rule(alert, rule),
            value=value,
            last_window=window_start,
            breaches=0,
            clears=alert.clears + 1,
            updated_at=now,
        )
        return Change(after, alert.state)
    return _close(alert, window_start, now, value=value, **_from_rule(alert, rule))


def _close(alert: Alert, window_start: int, now: float, **updates: Any) -> Change:
    firing = alert.state is AlertState.FIRING
    after = replace(
        alert,
        **updates,
        state=AlertState.RESOLVED if firing else AlertState.INACTIVE,
        last_window=window_start,
        breaches=0,
        clears=alert.clears + 1 if firing else 0,
        resolved_at=now if firing else None,
        updated_at=now,
    )
    return Change(after, alert.state)


class AlertBook:
    """The open alerts, by model. Closed alerts leave the book (they stay in the store)."""

    def __init__(self, alerts: Iterable[Alert] = ()) -> None:
        self._by_model: dict[str, dict[AlertKey, Alert]] = {}
        self.merge(alerts)

    def of_model(self, model: str) -> Mapping[AlertKey, Alert]:
        return self._by_model.get(model, {})

    def open_alerts(self) -> list[Alert]:
        return [a for alerts in self._by_model.values() for a in alerts.values()]

    def __len__(self) -> int:
        return sum(len(alerts) for alerts in self._by_model.values())

    def apply(self, changes: Iterable[Change]) -> None:
        for change in changes:
            self.put(change.alert)

    def put(self, alert: Alert) -> None:
        alerts = self._by_model.setdefault(alert.model, {})
        if alert.state.is_open:
            alerts[alert.key] = alert
        else:
            alerts.pop(alert.key, None)
            if not alerts:
                del self._by_model[alert.model]

    def merge(self, alerts: Iterable[Alert]) -> None:
        """Add stored open alerts, keeping whichever copy has seen the newer window."""
        for alert in alerts:
            mine = self.of_model(alert.model).get(alert.key)
            if mine is None or (alert.last_window, alert.updated_at) > (
                mine.last_window,
                mine.updated_at,
            ):
                self.put(alert)


def due_notifications(alerts: Iterable[Alert], now: float, repeat_interval_s: float) -> list[Alert]:
    """Firing alerts that want a notification now: never sent yet, or sent long enough ago.

    An alert that was silenced when it fired has never been sent; once its silences end it is
    due (the caller checks silences).
    """
    return [
        a
        for a in alerts
        if a.state is AlertState.FIRING
        and "notify" in a.actions
        and (a.notified_at is None or now - a.notified_at >= repeat_interval_s)
    ]


# A deployment's changes reach subscribers as alerts of this built-in rule (no rule to write):
# each is an event, not a state, so it is notified firing once and stored resolved at once.
DEPLOYMENT_RULE = "deployment"
DEPLOYMENT_ALERTS = {  # a deployment's change -> (alert name, severity)
    "step": ("DeploymentStepPassed", "info"),
    "promoted": ("DeploymentPromoted", "info"),
    "rolled_back": ("DeploymentRolledBack", "critical"),
}


def deployment_alert(
    deployment_id: str,
    model: str,
    baseline: str,
    candidate: str,
    change: str,
    share: float,
    reason: str,
    by: str,
    now: float,
) -> Alert:
    """The alert that tells subscribers of one deployment change (``DEPLOYMENT_ALERTS``): its
    value is the candidate's traffic share (%) after the change; its labels carry the
    candidate's ``version``, the ``deployment`` and ``by`` (who or what decided), so
    subscriptions and silences select deployment alerts as any other.

    >>> a = deployment_alert("d1", "fraud", "1", "2", "rolled_back", 0.0, "nulls", "judge", 5.0)
    >>> a.rule_name, a.severity, a.segment, a.labels["version"], str(a.state)
    ('DeploymentRolledBack', 'critical', '@version=2', '2', 'firing')
    """
    name, severity = DEPLOYMENT_ALERTS[change]
    segment = f"{VERSION_PREFIX}{candidate}"
    text = "\x1f".join((DEPLOYMENT_RULE, deployment_id, change, f"{share:g}"))
    labels = {
        "alertname": name,
        "rule_id": DEPLOYMENT_RULE,
        "model": model,
        "feature": "",
        "segment": segment,
        "metric": "deployment.share",
        "severity": severity,
        "version": candidate,
        "baseline": baseline,
        "deployment": deployment_id,
        "by": by,
    }
    return Alert(
        hashlib.blake2b(text.encode(), digest_size=8).hexdigest(),
        DEPLOYMENT_RULE,
        name,
        model,
        "",
        segment,
        "deployment.share",
        Comparison.GE,
        0.0,
        severity,
        AlertState.FIRING,
        float(share),
        int(now),
        int(now),
        breaches=1,
        labels=labels,
        actions=("notify",),
        description=f"deployment {deployment_id} of {model!r} ({baseline} -> {candidate}): "
        f"{reason}",
        fired_at=now,
        updated_at=now,
    )
