"""Who hears about an alert: subscriptions that select it, unless a silence covers it.

Both match on the alert's labels (the rule's own labels plus ``alertname``, ``rule_id``,
``model``, ``feature``, ``segment``, ``metric`` and ``severity``), as in Alertmanager.

>>> silence = Silence("s1", (Matcher("model", "fraud"), Matcher("feature", "age|amount", "=~")),
...                   starts_at=0, ends_at=100)
>>> silence.covers({"model": "fraud", "feature": "age"}, now=50)
True
>>> silence.covers({"model": "fraud", "feature": "age"}, now=100)
False
>>> Subscription("w1", "http://127.0.0.1/hook", severities=("critical",)).selects(
...     {"model": "fraud", "severity": "warning"})
False
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from alarms.rules import Selector

MatchOp = Literal["=", "!=", "=~", "!~"]
MATCH_OPS: tuple[MatchOp, ...] = ("=", "!=", "=~", "!~")
SubscriptionKind = Literal["webhook", "alertmanager"]
SUBSCRIPTION_KINDS: tuple[SubscriptionKind, ...] = ("webhook", "alertmanager")


@dataclass(frozen=True)
class Matcher:
    """A label test: equal, not equal, or a (fully anchored) regular expression, or not."""

    name: str
    value: str
    op: MatchOp = "="
    _regex: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        regex = re.compile(self.value) if self.op in ("=~", "!~") else None
        object.__setattr__(self, "_regex", regex)

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.name, "")
        if self._regex is not None:
            found = self._regex.fullmatch(value) is not None
            return found if self.op == "=~" else not found
        return (value == self.value) == (self.op == "=")


@dataclass(frozen=True)
class Silence:
    """Mutes the alerts that every matcher selects, from ``starts_at`` until ``ends_at``."""

    id: str
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float
    comment: str = ""
    created_by: str = ""
    created_at: float = 0.0

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    def covers(self, labels: Mapping[str, str], now: float) -> bool:
        return self.active(now) and all(m.matches(labels) for m in self.matchers)


@dataclass(frozen=True)
class Subscription:
    """A receiver, and which alerts it wants (empty filters: all of them).

    ``kind``: ``webhook`` (Driftline's signed JSON document at ``url``) or ``alertmanager``
    (``url`` is an Alertmanager; alerts go to its ``/api/v2/alerts``, see alarms/alertmanager).
    ``model`` and ``labels`` values are exact names or globs; ``severities`` is a set.
    """

    id: str
    url: str
    secret: str = ""
    model: str = "*"
    severities: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    created_at: float = 0.0
    kind: SubscriptionKind = "webhook"

    def selects(self, labels: Mapping[str, str]) -> bool:
        if self.severities and labels.get("severity", "") not in self.severities:
            return False
        if not Selector(self.model).matches(labels.get("model", "")):
            return False
        return all(Selector(p).matches(labels.get(k, "")) for k, p in self.labels.items())


def active_silences(
    silences: Iterable[Silence], labels: Mapping[str, str], now: float
) -> list[Silence]:
    """The silences that cover an alert with these labels now."""
    return [s for s in silences if s.covers(labels, now)]


def subscribers(
    subscriptions: Iterable[Subscription], labels: Mapping[str, str]
) -> list[Subscription]:
    return [s for s in subscriptions if s.selects(labels)]
