"""Where an alert's trouble is: the slices it names when it fires.

Two kinds of finding:

* ``errors``, for an alert on measured quality or concept drift (:func:`wants_error_slices`):
  the slices of the labelled examples of the alert's windows where the model fails most,
  found by slice discovery (``detectors/slices.py``: SliceLine's scoring, an exact test per
  slice, Benjamini-Hochberg over every slice tried). ``value`` is the slice's error (rate, or
  MAE for a regressor), ``reference`` the rest's, and ``q_value`` the adjusted p-value that
  the slice is worse than the rest. The worker searches when the alert fires, on its alarm
  thread (``driftline/findings.py``), before anyone is notified.
* ``shift``, for an alert on data or prediction drift (``alarms.rules.is_data_drift_metric``):
  the declared slices (segment ``key=value`` cuts) whose inputs shifted most in the window
  that fired it, from the drift tests the window already ran on each slice
  (:func:`shifted_slices`, no extra work). ``value`` is the slice's drift effect (KS D, the
  chi-square test's effect, or the change of the missing rate, whichever is largest: the
  alert's feature's, or every input's for a model-level metric), ``reference`` the same of
  the whole window, and ``size`` the slice's events in that window.

>>> from types import SimpleNamespace as P
>>> def point(metric, feature, segment, value):
...     return P(metric=metric, feature=feature, segment=segment, value=value, stage="")
>>> points = [point("drift.ks.effect", "amount", "", 0.2),
...           point("drift.ks.effect", "amount", "channel=web", 0.05),
...           point("drift.ks.effect", "amount", "channel=mobile", 0.4),
...           point("traffic.count", "", "channel=mobile", 600.0)]
>>> [found] = shifted_slices("drift.drifted", "amount", points, k=1)
>>> found.slice, found.value, found.reference, found.size
('channel=mobile', 0.4, 0.2, 600)
>>> describe(found)
'channel=mobile (drift effect 0.4 against 0.2 overall, 600 events)'
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

FindingKind = Literal["errors", "shift"]
MAX_FINDINGS = 5  # kept on an alert
MAX_SLICE_TEXT = 512  # a slice's text is cut here (three predicates on long names)
MAX_NOTE = 1024

# the drift effects a window stores per feature and cut (``detectors/drift/window.py``): the
# decision tests' and the missing-rate test's, all on a 0..1 scale
EFFECT_METRICS = ("drift.ks.effect", "drift.chi_square.effect", "drift.missing_rate.effect")
OUTPUT_EFFECT_PREFIX = "drift.prediction."
OUTPUT_EFFECTS = ("drift.prediction.ks.effect", "drift.prediction.chi_square.effect")
WINDOW_EFFECT = "drift.max_effect"  # the largest decided effect of a window's inputs


@dataclass(frozen=True)
class Finding:
    """One slice an alert names (see the module docstring for the two kinds)."""

    kind: FindingKind
    slice: str  # "segment.channel=mobile ∧ amount<20.5", or a cut "channel=mobile"
    size: int  # the slice's labelled examples (errors) or events in the window (shift)
    value: float  # its error, or its drift effect
    reference: float  # the rest's error, or the whole window's drift effect
    q_value: float | None = None  # errors: that the slice is worse, FDR-adjusted

    def __post_init__(self) -> None:
        # cut here, for every maker: a longer text would not be read back (``from_dict``)
        if len(self.slice) > MAX_SLICE_TEXT:
            object.__setattr__(self, "slice", self.slice[: MAX_SLICE_TEXT - 1] + "…")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "slice": self.slice,
            "size": self.size,
            "value": _finite(self.value),
            "reference": _finite(self.reference),
            "q_value": None if self.q_value is None else _finite(self.q_value),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        """Raises ValueError saying what is wrong (an alert event from another process)."""
        kind = data.get("kind")
        if kind not in ("errors", "shift"):
            raise ValueError(f'a finding\'s "kind" must be errors or shift (got {kind!r})')
        text = data.get("slice")
        if not isinstance(text, str) or not text or len(text) > MAX_SLICE_TEXT:
            raise ValueError(f'a finding\'s "slice" must be text of 1 to {MAX_SLICE_TEXT} chars')
        size = data.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError('a finding\'s "size" must be a whole number >= 0')
        q_value = data.get("q_value")
        return cls(
            kind,
            text,
            size,
            _number(data.get("value"), "value"),
            _number(data.get("reference"), "reference"),
            None if q_value is None else _number(q_value, "q_value"),
        )


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _number(value: Any, name: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f'a finding\'s "{name}" must be a number or null')
    return float(value)


def describe(finding: Finding) -> str:
    """One line, for logs and Alertmanager annotations."""
    if finding.kind == "shift":
        size = f", {finding.size} events" if finding.size else ""
        return (
            f"{finding.slice} (drift effect {finding.value:.3g} against "
            f"{finding.reference:.3g} overall{size})"
        )
    q = f", q {finding.q_value:.2g}" if finding.q_value is not None else ""
    return (
        f"{finding.slice} (error {finding.value:.3g} against {finding.reference:.3g} "
        f"elsewhere, {finding.size} examples{q})"
    )


def wants_error_slices(metric: str) -> bool:
    """An alert on measured quality or concept drift: its error slices are searched."""
    return (metric.startswith("quality.") and not metric.startswith("quality.estimated")) or (
        metric == "drift.concept"
    )


class Point(Protocol):
    """What evaluation reads of a stored metric point (``driftline.store.MetricPoint``)."""

    @property
    def metric(self) -> str: ...
    @property
    def feature(self) -> str: ...
    @property
    def segment(self) -> str: ...
    @property
    def category(self) -> str: ...
    @property
    def stage(self) -> str: ...
    @property
    def value(self) -> float: ...


def shifted_slices(
    metric: str, feature: str, points: Iterable[Point], *, k: int = 3
) -> list[Finding]:
    """The declared slices of one window whose inputs shifted most, largest effect first, at
    most ``k``: for an alert on ``metric`` (a data or prediction drift metric) of ``feature``
    ('' for a model-level one), from the window's stored points of every cut. Version,
    shadow and decider cuts are not slices here (``driftline.cuts``: their labels start
    with ``@``), nor is a slice without a drift effect."""
    output = metric.startswith(OUTPUT_EFFECT_PREFIX) or metric == "drift.prediction_drifted"
    effects: dict[str, float] = {}
    sizes: dict[str, int] = {}
    for p in points:
        if p.stage or p.segment.startswith("@") or not math.isfinite(p.value):
            continue
        if p.metric == "traffic.count" and not p.feature:
            sizes[p.segment] = int(p.value)
            continue
        if not _effect_of(p, feature, output):
            continue
        effects[p.segment] = max(effects.get(p.segment, -math.inf), p.value)
    whole = effects.pop("", math.nan)
    ranked = sorted(((v, s) for s, v in effects.items() if v > 0), key=lambda t: (-t[0], t[1]))
    return [Finding("shift", s, sizes.get(s, 0), v, whole) for v, s in ranked[:k]]


def _effect_of(p: Point, feature: str, output: bool) -> bool:
    """Whether a point is a drift effect that ranks slices for this alert."""
    if output:  # the output's decision test (class by class for probabilities)
        return p.metric in OUTPUT_EFFECTS
    if feature:
        return p.feature == feature and p.metric in EFFECT_METRICS
    return p.metric == WINDOW_EFFECT


def findings_of(data: Any) -> tuple[tuple[Finding, ...], str]:
    """Findings and their note from the stored or sent JSON (``{"items": [...], "note": ""}``);
    raises ValueError on a malformed document."""
    if data is None or data == "":
        return (), ""
    if not isinstance(data, Mapping):
        raise ValueError('"findings" must be an object with "items" and "note"')
    items, note = data.get("items", []), data.get("note", "")
    if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
        raise ValueError('"findings.items" must be a list of objects')
    if not isinstance(note, str):
        raise ValueError('"findings.note" must be text')
    return tuple(Finding.from_dict(i) for i in items[:MAX_FINDINGS]), note[:MAX_NOTE]


def findings_document(findings: Sequence[Finding], note: str) -> dict[str, Any]:
    return {"items": [f.to_dict() for f in findings], "note": note}
