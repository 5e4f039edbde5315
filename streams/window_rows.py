"""The one route from a closed window to its stored rows.

:func:`window_rows` turns a closed window, and its drift analysis, into everything written for
it: the metrics and the drift rows of the whole window and of each of its cuts (the segment
slices, ``key=value``, and the model versions, ``@version=<v>``: ``driftline/cuts.py``),
addressed the same way (``segment``, ``stage``, ``version``
columns). The unit name is split once, and the window's version is decided once
(:func:`window_version`); nothing downstream decides either again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from detectors.drift.window import (
    DriftConfig,
    DriftReport,
    ModelReference,
    compare_window,
    versus_metrics,
)
from detectors.profile import WindowProfile
from detectors.shadow import shadow_rows
from driftline.cuts import SHADOW_CUT, cut_version, decided_by_cut, is_reserved, version_cut
from driftline.store import DriftRow, MetricPoint
from driftline.units import split_unit
from streams.drift import DriftAnalyzer, LearnedReference, drift_rows
from streams.windowing import ClosedWindow

UNKNOWN_VERSION = "unknown"  # events that carry no version


def dominant_version(versions: Counter[str]) -> str:
    """The one version rule: the most common version (ties: the first seen), or ``"unknown"``
    when there is none. A window's metrics and its drift reference (:func:`window_version`)
    and its quality figures (``streams/quality.py``) are stored under it."""
    return versions.most_common(1)[0][0] if versions else UNKNOWN_VERSION


def window_version(profile: WindowProfile) -> str:
    return dominant_version(profile.versions)


@dataclass(frozen=True)
class WindowResult:
    """A stored window and everything written for it."""

    window: ClosedWindow
    points: list[MetricPoint]
    drift: DriftReport | None = None  # None: no reference yet (or drift analysis off)
    drift_rows: list[DriftRow] = field(default_factory=list)
    learned_references: list[LearnedReference] = field(default_factory=list)

    @property
    def model(self) -> str:
        return self.window.model

    @property
    def window_start(self) -> int:
        return self.window.profile.start


@dataclass(frozen=True)
class _Rows:
    """Row maker for one window: its address, with the cut columns left to each row."""

    model: str
    stage: str
    start: int
    seconds: int
    version: str

    def points(
        self, segment: str, values: Iterable[tuple[str, str, str, float]]
    ) -> list[MetricPoint]:
        """``values``: (metric, feature, category, value)."""
        return [
            MetricPoint(
                self.model,
                self.start,
                self.seconds,
                metric,
                value,
                feature,
                category,
                segment,
                self.stage,
                self.version,
            )
            for metric, feature, category, value in values
        ]


def window_rows(window: ClosedWindow, drift: DriftAnalyzer | None = None) -> WindowResult:
    """Every row stored for ``window``: for the whole window and for each cut, its profile's
    metrics and, with ``drift``, its drift test rows and drift metrics.

    Each version is tested against its own reference and learns it (its warm-up windows): the
    whole window when it has one version, else each version's cut, while the whole and its
    segment slices are compared with the reference of the window's version without learning.
    A window of one version has no version cut: its whole rows (``version`` column) are that
    version's, and the store reads them as its cut (``Store.metrics(segment="@version=…")``),
    so the usual case costs neither a second profile nor a second copy of its rows."""
    profile = window.profile
    model, stage = split_unit(window.model)
    version = window_version(profile)
    versioned = any(cut_version(label) is not None for label in window.cuts)
    parts: list[tuple[str, WindowProfile]] = [("", profile), *sorted(window.cuts.items())]
    points: list[MetricPoint] = []
    tests: list[DriftRow] = []
    report = None
    learned: list[LearnedReference] = []
    sliced: dict[str, DriftReport | None] = {}  # the segment slices', tested together
    if drift is not None:
        slices = [(label, part) for label, part in parts if label and not is_reserved(label)]
        found = drift.compare_slices(window.model, version, [part for _, part in slices])
        sliced = {label: report for (label, _), report in zip(slices, found, strict=True)}
    for label, part in parts:
        # a version cut is its version's; the shadow cut, its own (the candidate's) version's
        part_version = cut_version(label) or (
            window_version(part) if label == SHADOW_CUT else version
        )
        rows = _Rows(model, stage, profile.start, profile.seconds, part_version)
        # (a MetricRow is the (metric, feature, category, value) tuple itself)
        points += rows.points(label, part.metrics(window.known_categories))
        if drift is None:
            continue
        if (label == "" and not versioned) or cut_version(label) is not None:
            part_report, part_learned = drift.analyze(window.model, part_version, part)
            learned += part_learned
        elif label in sliced:  # a segment slice, tested only as its decision needs
            part_report = sliced[label]  # (slice_drift_tests)
        else:
            part_report = drift.compare(window.model, version, part)
        if label == "":
            report = part_report
        tests += drift_rows(model, stage, part, part_report, label)
        if part_report is not None:
            points += rows.points(label, ((m, f, "", v) for m, f, v in part_report.metrics))
    if drift is not None and versioned:
        points += _versus_rows(window, model, stage, version, drift.config)
    shadow = window.cuts.get(SHADOW_CUT)
    if shadow is not None:  # the shadow model against the live one, on the same requests
        rows = _Rows(model, stage, profile.start, profile.seconds, window_version(shadow))
        points += rows.points(SHADOW_CUT, shadow_rows(window.shadow_pairs))
    human = window.cuts.get(decided_by_cut("human"))
    if human is not None or decided_by_cut("model") in window.cuts:
        # how much is automated: the share of the window's (live) cases people decided
        share = (human.count if human is not None else 0) / profile.count if profile.count else 0.0
        points += _Rows(model, stage, profile.start, profile.seconds, version).points(
            "", [("traffic.human_share", "", "", share)]
        )
    return WindowResult(window, points, report, tests, learned)


def _versus_rows(
    window: ClosedWindow, model: str, stage: str, version: str, config: DriftConfig
) -> list[MetricPoint]:
    """Each other version of a window against the window's own version, on the same traffic
    (a canary and its baseline): the drift tests of its cut with the version's cut as the
    reference, as ``versus.*`` rows on its cut. Inputs that differ mean requests are routed by
    something that matters, or feature code differs; the canary judge reads them."""
    base = window.cuts.get(version_cut(version))
    if base is None or not base.count:
        return []
    reference = ModelReference.from_profiles([base], version, source="versus")
    profile = window.profile
    points: list[MetricPoint] = []
    for label, part in sorted(window.cuts.items()):
        other = cut_version(label)
        if other is None or other == version or not part.count:
            continue
        report = compare_window(reference, part, config, tag=f"versus:{version}")
        rows = _Rows(model, stage, profile.start, profile.seconds, other)
        points += rows.points(label, ((m, f, "", v) for m, f, v in versus_metrics(report)))
    return points
