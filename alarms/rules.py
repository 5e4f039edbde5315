"""Threshold rules over window metrics, and an index that finds the rules a point can break.

A rule names one metric and, optionally, which models, features, segments and categories it
watches (an exact name or a glob: ``*``, ``?``, ``[..]``). The comparison says explicitly which
side of the threshold is bad:

>>> rule = Rule("r1", "AgeMissing", "input.missing_rate", Comparison.GT, 0.1, feature="age")
>>> rule.comparison.breached(0.25, rule.threshold), rule.comparison.breached(0.1, rule.threshold)
(True, False)
>>> index = RuleIndex([rule])
>>> [r.id for r in index.candidates("input.missing_rate", "fraud", "age")]
['r1']
>>> index.candidates("input.missing_rate", "fraud", "amount")
()
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from fnmatch import translate
from typing import Literal

RESERVED = (
    "@"  # cut labels of Driftline's own kinds (driftline/cuts.py, which alarms/ can't import)
)
VERSION_PREFIX = RESERVED + "version="

SEVERITIES = ("info", "warning", "critical")
ACTIONS = ("notify", "retrain", "rollback")
ANY = "*"


class Comparison(StrEnum):
    """Which side of the threshold breaks the rule."""

    GT = ">"
    GE = ">="
    LT = "<"
    LE = "<="

    def breached(self, value: float, threshold: float) -> bool:
        return _OPERATORS[self](value, threshold)

    def worse(self, a: float, b: float) -> float:
        """Of two breaching values, the one further past the threshold."""
        return max(a, b) if self in (Comparison.GT, Comparison.GE) else min(a, b)


_OPERATORS: dict[Comparison, Callable[[float, float], bool]] = {
    Comparison.GT: operator.gt,
    Comparison.GE: operator.ge,
    Comparison.LT: operator.lt,
    Comparison.LE: operator.le,
}


def is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


@dataclass(frozen=True)
class Selector:
    """An exact value, or a glob; ``*`` matches everything, including the empty string."""

    pattern: str
    _regex: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        regex = re.compile(translate(self.pattern)) if is_glob(self.pattern) else None
        object.__setattr__(self, "_regex", regex)

    def matches(self, value: str) -> bool:
        if self._regex is None:
            return value == self.pattern
        return self.pattern == ANY or self._regex.match(value) is not None


@dataclass(frozen=True)
class Rule:
    """A threshold alarm on one metric.

    ``for_windows`` consecutive breaching windows make an alert fire (1: the first one);
    a firing alert resolves after ``keep_firing_for`` + 1 consecutive clear windows.
    """

    id: str
    name: str
    metric: str
    comparison: Comparison
    threshold: float
    model: str = ANY
    feature: str = ANY
    segment: str = ANY
    category: str = ANY
    # a model version (exact or glob): the rule then watches that version's cut, not the
    # whole model or its slices. Kept as the cut label in ``segment`` ("@version=2")
    version: str = ""
    for_windows: int = 1
    keep_firing_for: int = 0
    severity: str = "warning"
    labels: Mapping[str, str] = field(default_factory=dict)
    actions: tuple[str, ...] = ("notify",)
    description: str = ""
    enabled: bool = True
    origin: str = "user"  # "default": one of DEFAULT_RULES
    _selectors: tuple[Selector, ...] = field(init=False, repr=False, compare=False)
    # (position in (feature, segment, category), selector) of the selectors that can say no
    _narrowing: tuple[tuple[int, Selector], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.version:
            if self.segment not in (ANY, "") and self.segment != VERSION_PREFIX + self.version:
                raise ValueError(
                    "a rule watches a segment slice or a version, not both: leave 'segment' "
                    f"out of a rule with a version (got segment {self.segment!r})"
                )
            object.__setattr__(self, "segment", VERSION_PREFIX + self.version)
        elif self.segment.startswith(VERSION_PREFIX):  # as stored
            object.__setattr__(self, "version", self.segment[len(VERSION_PREFIX) :])
        patterns = (self.model, self.feature, self.segment, self.category)
        selectors = tuple(Selector(p) for p in patterns)
        object.__setattr__(self, "_selectors", selectors)
        narrowing = tuple((i, s) for i, s in enumerate(selectors[1:]) if s.pattern != ANY)
        object.__setattr__(self, "_narrowing", narrowing)

    @property
    def watches_every_series(self) -> bool:
        """True when feature, segment and category are all ``*``."""
        return not self._narrowing

    def selects(self, model: str, feature: str, segment: str = "", category: str = "") -> bool:
        model_s, feature_s, segment_s, category_s = self._selectors
        if segment[:1] == RESERVED and segment_s.pattern[:1] != RESERVED:
            return False  # a cut of Driftline's own (a version) is watched only when named
        return (
            model_s.matches(model)
            and feature_s.matches(feature)
            and segment_s.matches(segment)
            and category_s.matches(category)
        )


MAX_CACHED_SERIES = 1_000_000

Series = tuple[str, str, str, str, str]  # (metric, model, feature, segment, category)
Watch = tuple[Rule, Callable[[float, float], bool], float]  # a rule, its test, its threshold


class RuleIndex:
    """Enabled rules by metric and model, and the rules of each series, cached.

    Which rules watch a series (metric, model, feature, segment, category) is worked out on
    its first point and cached, in two steps: the rules of (metric, model), split into those
    that watch every series and those that narrow it down; then, per series, the latter's
    checks, only where (metric, model) has such rules (the other series need no entry).
    Evaluating a window costs a dict lookup or two per point and one comparison per rule that
    watches the series.
    """

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        self.rules: dict[str, Rule] = {r.id: r for r in rules if r.enabled}
        self._exact: dict[tuple[str, str], list[Rule]] = {}
        self._globbed: dict[str, list[Rule]] = {}
        for rule in self.rules.values():
            if is_glob(rule.model):
                self._globbed.setdefault(rule.metric, []).append(rule)
            else:
                self._exact.setdefault((rule.metric, rule.model), []).append(rule)
        self._of_model: dict[
            tuple[str, str], tuple[tuple[Watch, ...], tuple[tuple[Rule, tuple[Watch, ...]], ...]]
        ] = {}
        self._of_series: dict[Series, tuple[Watch, ...]] = {}

    def __len__(self) -> int:
        return len(self.rules)

    @property
    def watches_versions(self) -> bool:
        """Whether some rule selects a version (and so must see one-version windows, which
        store no version cut, as that version's cut too)."""
        return any(rule.version for rule in self.rules.values())

    def watched(self, metric: str, model: str) -> bool:
        """Whether some rule watches some series of (metric, model): when not, ``watches``
        is empty for every one of its series."""
        found, narrowing = self._model_rules(metric, model)
        return bool(found or narrowing)

    def _model_rules(
        self, metric: str, model: str
    ) -> tuple[tuple[Watch, ...], tuple[tuple[Rule, tuple[Watch, ...]], ...]]:
        of_model = self._of_model.get((metric, model))
        if of_model is None:
            of_model = self._of_model[(metric, model)] = self._rules_of(metric, model)
        return of_model

    def watches(
        self, metric: str, model: str, feature: str = "", segment: str = "", category: str = ""
    ) -> tuple[Watch, ...]:
        """The rules that watch this series, each with its comparison and threshold."""
        found, narrowing = self._model_rules(metric, model)
        if not narrowing:
            # every rule of (metric, model), or none, watches each of its series: no series
            # cache, whose entries (one per feature, slice and category of each model, most
            # of them watched by no rule) would cost more memory than the model's reference
            return () if segment[:1] == RESERVED else found
        key = (metric, model, feature, segment, category)
        cached = self._of_series.get(key)
        if cached is not None:
            return cached
        if segment[:1] == RESERVED:  # a version cut: only the rules that name a version
            found = ()
            narrowing = tuple(g for g in narrowing if g[0].segment[:1] == RESERVED)
        values = (feature, segment, category)
        for rule, watches in narrowing:  # one check per distinct selector triple
            for i, selector in rule._narrowing:  # Selector.matches, inlined: the cold path
                regex = selector._regex
                if (values[i] != selector.pattern) if regex is None else not regex.match(values[i]):
                    break
            else:
                found += watches
        if len(self._of_series) >= MAX_CACHED_SERIES:
            self._of_series.clear()  # bounded memory, whatever the number of series
        self._of_series[key] = found
        return found

    def _rules_of(
        self, metric: str, model: str
    ) -> tuple[tuple[Watch, ...], tuple[tuple[Rule, tuple[Watch, ...]], ...]]:
        """(metric, model)'s rules: those that watch every series, and the others grouped by
        their (feature, segment, category) selectors, with one rule of each group to check."""
        rules = (*self._exact.get((metric, model), ()), *self._globbed.get(metric, ()))
        selected = [r for r in rules if r._selectors[0].matches(model)]
        every = tuple(_watch(r) for r in selected if r.watches_every_series)
        groups: dict[tuple[str, str, str], list[Rule]] = {}
        for r in selected:
            if not r.watches_every_series:
                groups.setdefault((r.feature, r.segment, r.category), []).append(r)
        narrowing = tuple((g[0], tuple(_watch(r) for r in g)) for g in groups.values())
        return every, narrowing

    def candidates(
        self, metric: str, model: str, feature: str = "", segment: str = "", category: str = ""
    ) -> tuple[Rule, ...]:
        return tuple(w[0] for w in self.watches(metric, model, feature, segment, category))


def _watch(rule: Rule) -> Watch:
    return (rule, _OPERATORS[rule.comparison], rule.threshold)


LABEL_METRIC_PREFIXES = ("quality.", "labels.", "drift.concept", "drift.quality_drop")
# estimated quality and the harm test on it: from predictions alone, in the quality pass
ESTIMATED_METRIC_PREFIXES = ("quality.estimated.", "drift.estimated_drop", "drift.harm")


def is_estimated_metric(metric: str) -> bool:
    """Estimated quality (``quality.estimated.*``) and the harm test on it."""
    return metric.startswith(ESTIMATED_METRIC_PREFIXES)


def is_label_metric(metric: str) -> bool:
    """Metrics computed from joined labels, later than the window's own metrics."""
    return metric.startswith(LABEL_METRIC_PREFIXES) and not is_estimated_metric(metric)


MetricKind = Literal["window", "labels", "estimates"]


# asked for every point of every window (682,500 times in the 100 x 50 bench, 3x faster
# cached); a window's metric names are few, the cache is bounded anyway
@functools.lru_cache(maxsize=4096)
def metric_kind(metric: str) -> MetricKind:
    """When a metric is known: with the window, as its labels land, or once its predictions
    are estimated. Each kind's alerts move only on evaluations of that kind."""
    if is_estimated_metric(metric):
        return "estimates"
    return "labels" if is_label_metric(metric) else "window"


def is_data_drift_metric(metric: str) -> bool:
    """A window's drift of inputs or outputs from the reference (``drift.share_drifted``,
    ``drift.prediction_drifted`` …), not of quality: a critical rule on one is demoted to a
    warning while the model's estimated quality holds (``streams/alarms.py``)."""
    return metric.startswith("drift.") and metric_kind(metric) == "window"


# Shipped for every model (model "*") unless DRIFTLINE_DEFAULT_RULES=false; editable and
# deletable through the API like any rule. Thresholds are absolute: tune them per model.
DEFAULT_RULES = (
    Rule(
        "default-drift-share",
        "DriftShareHigh",
        "drift.share_drifted",
        Comparison.GE,
        0.5,
        segment="",
        for_windows=2,
        keep_firing_for=1,
        severity="critical",
        description="half or more of the model's inputs drifted from the reference",
        origin="default",
    ),
    Rule(
        "default-missing-rate",
        "FeatureMissingRateHigh",
        "input.missing_rate",
        Comparison.GT,
        0.1,
        segment="",
        for_windows=2,
        keep_firing_for=1,
        description="more than 10 % of a feature's values are null or absent",
        origin="default",
    ),
    Rule(
        "default-null-output",
        "NullPredictionsHigh",
        "output.null_rate",
        Comparison.GT,
        0.05,
        segment="",
        for_windows=2,
        keep_firing_for=1,
        description="more than 5 % of predictions are null",
        origin="default",
    ),
    Rule(
        "default-concept-drift",
        "ConceptDrift",
        "drift.concept",
        Comparison.GE,
        1.0,
        segment="",
        for_windows=1,
        keep_firing_for=2,
        severity="critical",
        description="model quality on labelled events dropped below the reference's",
        origin="default",
    ),
    Rule(
        "default-estimated-harm",
        "EstimatedQualityDrop",
        "drift.harm",
        Comparison.GE,
        1.0,
        segment="",
        for_windows=1,
        keep_firing_for=2,
        severity="critical",
        description="the model's estimated quality (from its own probabilities or, for a "
        "regressor, its estimated error; no labels needed) dropped significantly below its "
        "reference, by at least the quality-drop test's minimum effect. Assumes the scores' "
        "calibration on the reference still holds: it cannot see concept drift (labels can)",
        origin="default",
    ),
    Rule(
        "default-window-set-aside",
        "WindowSetAside",
        "store.windows_set_aside",
        Comparison.GE,
        1.0,
        segment="",
        for_windows=1,
        keep_firing_for=5,
        severity="critical",
        description="the store rejected a window's rows (GET /v1/windows-set-aside says why); "
        "its events are counted there, not in the model's metrics",
        origin="default",
    ),
    Rule(
        "default-latency-p99",
        "LatencyP99High",
        "latency.p99",
        Comparison.GT,
        1000.0,
        segment="",
        for_windows=3,
        keep_firing_for=1,
        description="99th percentile prediction latency above one second",
        origin="default",
    ),
)
