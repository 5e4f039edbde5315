"""The quality pass: join labels to predictions per window and score what changed.

Every ``quality_interval_s`` the worker asks the store which windows changed since the last
pass — windows that got labels, windows of labelled models that got predictions, windows
whose label horizon just ended — and recomputes each of them whole, from both stored sides
(``driftline/store/labels.py``). Recomputing a whole window is idempotent, so a quality
figure simply improves as labels land, and a restart loses nothing.

Per window and per slice (``segment`` values, capped per key): ``labels.count``,
``labels.coverage`` (share of the window's predictions labelled within the horizon; next to
every quality figure), ``labels.unlabelled`` once the horizon has passed, label quality
(``labels.conflicts``: labelled ids that have had two different labels, the latest of which
counts; ``labels.delay_p50`` and ``labels.delay_p95``: seconds from prediction to label), and
the quality metrics of ``detectors/quality.py``. Concept drift: the window's quality against the
reference quality (the unit's first labelled windows) with a one-sided test, and river's
error-stream detectors fed with each newly joined pair in event-time order. Labels are also
counted per arrival window (``labels.received``, ``labels.unmatched``: no such prediction).

Shadow mode: a window's shadow predictions (stored apart, joined to the same labels by id) are
the shadow cut (``@shadow=true``), with the usual label and quality figures of the shadow
version and its own drop test, and never count in the whole window or its other cuts. On the
same cut, the shadow and the live model are compared on the labelled ids they share
(``shadow.quality.*``, ``detectors/shadow.py``: both qualities and a paired test).

With several workers, each scores only the units (model or ``model::stage``) whose predictions
it consumes: the owner of the partitions their events are in. A worker that takes partitions
over looks back ``RESCAN_S`` further once, for what changed while they moved. Label arrival
counts are cheap and need no prediction: every worker writes them (the same rows).
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from alarms.rules import is_estimated_metric
from detectors.concept import ErrorStreamDetector, detectors_for
from detectors.estimation import Estimate
from detectors.profile import OUTCOME_PREFIX, ProfileConfig, outcome_rows
from detectors.quality import (
    QualityResult,
    QualityStats,
    history_values,
    partial_window_p_value,
    quality_drop_test,
    reference_coverage,
    reference_stats,
    score_quality,
)
from detectors.shadow import shadow_quality_rows
from driftline.cuts import SHADOW_CUT, cut_version, decided_by_cut, version_cut
from driftline.store import DriftRow, MetricPoint, Store
from driftline.store.labels import Joined, LabelStore, WindowKey
from driftline.units import unit_of
from streams.drift import change_point_row, test_result_row
from streams.estimation import (
    AVAILABLE,
    EstimationConfig,
    EstimatorBook,
    Fitted,
    drop_points,
    error_points,
    estimate,
    estimate_points,
)
from streams.segments import SegmentValues
from streams.window_rows import dominant_version

log = logging.getLogger(__name__)

SAFETY_MS = 5_000  # a pass looks back this much further: inserts become visible late
RESCAN_S = 120.0  # after a rebalance: covers the previous owner's last pass and the handover


@dataclass(frozen=True)
class QualityConfig:
    window_seconds: int = 60
    horizon_s: float = 7 * 86400.0
    reference_windows: int = 5
    min_labels: int = 30  # labelled pairs a window (or slice) needs to be tested or referenced
    alpha: float = 0.05
    detectors: tuple[str, ...] = ("ddm", "eddm", "hddm_a", "hddm_w", "adwin")
    # The error-stream detectors that raise the concept-drift flag. All configured ones run and
    # are stored; DDM and EDDM at river's defaults fired on most stationary 5,000-event streams
    # in our measurements (detectors/concept.py), ADWIN and HDDM_A on none.
    flag_detectors: tuple[str, ...] = ("hddm_a", "adwin")
    # outcome metrics (labels.custom.*): the sample behind their percentiles, and the names cap
    outcome_profile: ProfileConfig = field(default_factory=ProfileConfig)
    # label-free estimates of quality (streams/estimation.py)
    estimation: EstimationConfig = field(default_factory=EstimationConfig)


@dataclass(frozen=True)
class ScoredWindow:
    unit: str  # the model, or model::stage
    window_start: int
    points: list[MetricPoint]
    drift_rows: list[DriftRow] = field(default_factory=list)
    # some outcome metric (labels.custom.*) of the whole window has min_labels values
    outcomes_tested: bool = False
    # the whole window's quality was estimated and tested for harm (drift.harm is set)
    estimated: bool = False

    @property
    def tested(self) -> bool:
        """Whether the window had enough labels for the drop test (``drift.concept`` is set).
        Alarms only look at such windows: a window whose labels are still arriving says
        nothing yet, and must not clear an alert for lack of evidence."""
        return any(p.metric == "drift.concept" and not p.segment for p in self.points)

    def estimated_points(self) -> list[MetricPoint]:
        """The window's estimated quality and harm test (``quality.estimated.*``,
        ``drift.estimated_drop``, ``drift.harm``): the rules see them as soon as the window's
        predictions are estimated, long before its labels are in."""
        return [p for p in self.points if is_estimated_metric(p.metric)]

    def outcome_points(self) -> list[MetricPoint]:
        """The window's outcome metrics (``labels.custom.*``): the rules see them once one has
        ``min_labels`` values, tested or not (a model whose outcomes come without labels is
        never tested, and its outcome rules must still work)."""
        return [p for p in self.points if p.metric.startswith(OUTCOME_PREFIX + ".")]


def labelled_share(result: QualityResult, members: int) -> float:
    """The share of a cut's ``members`` predictions that are labelled (scorable or not), as
    ``labels.coverage`` counts it."""
    return (result.count + result.unscorable) / members if members else 0.0


def slices_of(rows: Sequence[Joined], slice_of: Callable[[str, str], str]) -> dict[str, list[int]]:
    """Row indices per "key=value" segment slice, named by ``slice_of(key, value)``: the window
    pipeline's names (``streams/segments.py``), so quality and traffic slices match."""
    out: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        for key, value in (row.event.get("segment") or {}).items():
            out[slice_of(key, value)].append(i)
    return dict(out)


# (segment, model version) -> window start -> metric -> value
History = dict[tuple[str, str], dict[int, dict[str, float]]]


@dataclass
class _Measured:
    """A window's coverage and quality, before the drop test."""

    model: str
    stage: str
    start: int
    version: str
    shadow_version: str = ""  # the shadow predictions' version, when the window has some
    points: list[MetricPoint] = field(default_factory=list)
    drift_rows: list[DriftRow] = field(default_factory=list)
    results: dict[str, tuple[QualityResult, int]] = field(default_factory=dict)  # by slice
    fired: tuple[str, ...] = ()  # error-stream detectors that fired in this window
    # by cut: its estimates, and the estimator's reference (the version's) if the cut is a
    # whole version (the window, a version's or the shadow cut), else None (a slice)
    estimates: dict[str, tuple[list[Estimate], Fitted | None]] = field(default_factory=dict)
    outcomes_tested: bool = False  # some outcome metric has min_labels values (whole window)
    complete: bool = False  # its label horizon has passed: no label of it will come

    def point(
        self, w: int, metric: str, value: float, segment: str = "", category: str = ""
    ) -> None:
        self.points.append(
            MetricPoint(
                self.model,
                self.start,
                w,
                metric,
                value,
                "",
                category,
                segment,
                self.stage,
                self.version_of(segment),
            )
        )

    def version_of(self, segment: str) -> str:
        """The version a cut's figures are of: its own for a version cut, the shadow's for the
        shadow cut, else the window's."""
        if segment == SHADOW_CUT:
            return self.shadow_version
        return cut_version(segment) or self.version


class QualityTracker:
    """Runs in the worker's store thread (blocking store calls); state is per process."""

    def __init__(
        self,
        labels: LabelStore,
        store: Store,
        config: QualityConfig,
        segments: SegmentValues,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.labels = labels
        self.store = store
        self.config = config
        self.segments = segments  # the window pipeline's: one slice name per segment value
        self._clock = clock
        # only what was stored after start is "new" (a restart starts the detectors afresh)
        self._since_ms = int(clock() * 1000) - SAFETY_MS
        self._expired_through = clock() - config.horizon_s - config.window_seconds
        self._detectors: dict[tuple[str, str], dict[str, ErrorStreamDetector]] = {}
        self._detections: dict[WindowKey, Counter[str]] = defaultdict(Counter)
        self._estimators = EstimatorBook(
            config.estimation,
            lambda model, stage, start, shadow: labels.window_joined(
                model, stage, start, shadow=shadow
            ),
        )

    def run(self, owned: Callable[[str], bool] | None = None) -> list[ScoredWindow]:
        """One pass: score every changed window of the ``owned`` units (default: all), store
        the results, return them (oldest first) for alarm evaluation."""
        now = self._clock()
        started_ms = int(now * 1000)
        since = self._since_ms - SAFETY_MS
        w = self.config.window_seconds
        expired_edge = now - self.config.horizon_s - w
        dirty = self.labels.windows_with_new_labels(since)
        dirty |= self.labels.windows_with_new_predictions(since)
        if expired_edge > self._expired_through:
            dirty |= self.labels.labelled_windows_between(
                int(self._expired_through), int(expired_edge) + 1
            )
        if owned is not None:
            dirty = {key for key in dirty if owned(unit_of(key[0], key[1]))}
        buckets = self.labels.label_buckets_since(since, w)
        # measure every window first, then test: a window scored in this pass may be one of
        # the first (reference) windows of a later one
        histories: dict[tuple[str, str], History] = {}
        measured = []
        with_shadows = self.labels.shadow_units() if dirty else set()
        for model, stage, start in sorted(dirty, key=lambda k: (k[2], k[0], k[1])):
            history = histories.get((model, stage))
            if history is None:
                history = histories[(model, stage)] = self.store.quality_history(model, stage)
            rows = self.labels.window_joined(model, stage, start)
            shadows = (
                self.labels.window_joined(model, stage, start, shadow=True)
                if (model, stage) in with_shadows
                else []
            )
            window = self.measure(model, stage, start, rows, since, now, shadows, history)
            for segment, (result, members) in window.results.items():
                key = (segment, window.version_of(segment))
                history.setdefault(key, {})[start] = {
                    **history_values(result),
                    "labels.coverage": labelled_share(result, members),
                }
            measured.append(window)
        # per (slice, model version), from the version's first labelled windows: each version
        # is judged against its own start, so a retrained model that does as well as it did
        # when it was promoted shows no drop
        cfg = self.config
        picks = {"windows": cfg.reference_windows, "min_labels": cfg.min_labels}
        references = {key: reference_stats(h, **picks) for key, h in histories.items()}
        coverages = {key: reference_coverage(h, **picks) for key, h in histories.items()}
        scored = []
        for window in measured:
            unit = (window.model, window.stage)
            scored.append(self.test(window, references[unit], coverages[unit]))
        arrivals = [self._arrivals(model, stage, start) for model, stage, start in sorted(buckets)]
        points = [p for s in scored for p in s.points] + [p for a in arrivals for p in a]
        drift_rows = [r for s in scored for r in s.drift_rows]
        if points or drift_rows:
            self.store.write_window(points, [], drift_rows)
        self._since_ms = started_ms
        self._expired_through = max(self._expired_through, expired_edge)
        self._forget_before(now - self.config.horizon_s - 2 * w)
        return scored

    # -- one window -----------------------------------------------------------------------
    def measure(
        self,
        model: str,
        stage: str,
        start: int,
        rows: Sequence[Joined],
        since_ms: int,
        now: float,
        shadows: Sequence[Joined] = (),
        history: History | None = None,
    ) -> _Measured:
        """Coverage and quality of one window, overall and per slice; feeds the detectors.
        ``shadows``: the window's shadow predictions, the shadow cut (and nothing else).
        ``history``: the unit's quality history, for the estimators' references (none: no
        estimates)."""
        cfg = self.config
        w = cfg.window_seconds
        horizon = cfg.horizon_s
        version = dominant_version(Counter(r.version for r in rows))
        expired = start + w + horizon <= now
        # the live rows, then the shadow ones: one index space for every cut
        every = [*rows, *shadows]
        labelled_set = {
            i
            for i, r in enumerate(every)
            if r.label is not None and r.label_ms / 1000 - r.ts <= horizon
        }
        labelled = sorted(i for i in labelled_set if i < len(rows))  # the live ones
        window = _Measured(model, stage, start, version, complete=expired)
        groups: list[tuple[str, list[int]]] = [("", list(range(len(rows))))] if rows else []
        unit = unit_of(model, stage)
        lookup = self.segments.lookup
        groups += sorted(slices_of(rows, lambda k, v: lookup(unit, k, v)).items())
        # every version's cut, uncapped, when there are several (one version's is the whole)
        by_version: dict[str, list[int]] = defaultdict(list)
        for i, r in enumerate(rows):
            by_version[r.version].append(i)
        if len(by_version) > 1:
            groups += [(version_cut(v), members) for v, members in sorted(by_version.items())]
        # who decided: the quality of the cases the model decided, and of those people did
        by_decider: dict[str, list[int]] = defaultdict(list)
        for i, r in enumerate(rows):
            who = r.event.get("decided_by")
            if who is not None:
                by_decider[who].append(i)
        groups += [(decided_by_cut(w), members) for w, members in sorted(by_decider.items())]
        if shadows:
            window.shadow_version = dominant_version(Counter(r.version for r in shadows))
            groups.append((SHADOW_CUT, list(range(len(rows), len(every)))))
        for segment, members in groups:
            mine = [i for i in members if i in labelled_set]
            window.point(w, "labels.count", float(len(mine)), segment)
            window.point(
                w, "labels.coverage", len(mine) / len(members) if members else 0.0, segment
            )
            if expired:
                window.point(w, "labels.unlabelled", float(len(members) - len(mine)), segment)
            if mine:
                # label quality: ids labelled differently more than once, and how late
                conflicts = sum(1 for i in mine if every[i].distinct_labels > 1)
                window.point(w, "labels.conflicts", float(conflicts), segment)
                delays = [every[i].label_ms / 1000 - every[i].ts for i in mine]
                p50, p95 = np.percentile(delays, [50, 95])
                window.point(w, "labels.delay_p50", float(p50), segment)
                window.point(w, "labels.delay_p95", float(p95), segment)
            # business outcomes sent on label events (a click), with or without a label
            outcomes = outcome_rows(
                [every[i].outcomes for i in members], cfg.outcome_profile, start
            )
            for row in outcomes:
                window.point(w, row.metric, row.value, segment)
            if segment == "" and any(
                r.metric.endswith(".count") and r.value >= cfg.min_labels for r in outcomes
            ):
                window.outcomes_tested = True
            if not mine:
                continue
            result = score_quality(
                [every[i].event.get("prediction") for i in mine], [every[i].label for i in mine]
            )
            for metric in result.metrics:
                window.point(w, metric.metric, metric.value, segment, metric.category)
            window.results[segment] = (result, len(members))
        if shadows:
            self._compare_shadow(window, rows, shadows, labelled)
        if history is not None and cfg.estimation.enabled:
            self._estimate(window, groups, every, history, expired)
        if labelled:
            window.fired = self._feed_detectors(model, stage, start, rows, labelled, since_ms)
            detections = self._detections.get((model, stage, start), Counter())
            window.point(w, "drift.concept.detections", float(sum(detections.values())))
            for name, count in sorted(detections.items()):
                window.drift_rows.append(
                    change_point_row(
                        model,
                        stage,
                        start,
                        w,
                        "error",
                        name,
                        count,
                        len(labelled),
                        "streaming:error",
                    )
                )
        return window

    def _estimate(
        self,
        window: _Measured,
        groups: Sequence[tuple[str, list[int]]],
        every: Sequence[Joined],
        history: History,
        complete: bool,
    ) -> None:
        """Estimated quality of every cut (``streams/estimation.py``), with the estimation
        error once the window's labels are complete (``complete``: its horizon has passed)."""
        w = self.config.window_seconds
        fitted: dict[str, Fitted | None] = {}
        for segment, members in groups:
            version = window.version_of(segment)
            if version not in fitted:
                fitted[version] = self._estimators.get(window.model, window.stage, version, history)
            found = fitted[version]
            if segment == "":
                if found is None:
                    window.point(w, AVAILABLE, 0.0, "", "no_labels")
                else:
                    window.point(w, AVAILABLE, float(found.estimator is not None), "", found.reason)
            if found is None or found.estimator is None:
                continue
            estimates = estimate(found, [every[i] for i in members])
            if not estimates:
                continue
            whole = segment == "" or segment == SHADOW_CUT or bool(cut_version(segment))
            window.estimates[segment] = (estimates, found if whole else None)
            for metric, category, value in estimate_points(estimates):
                window.point(w, metric, value, segment, category)
            measured = window.results.get(segment)
            if complete and measured is not None:
                for metric, category, value in error_points(estimates, *measured):
                    window.point(w, metric, value, segment, category)

    def _compare_shadow(
        self,
        window: _Measured,
        rows: Sequence[Joined],
        shadows: Sequence[Joined],
        labelled: Iterable[int],
    ) -> None:
        """The shadow and the live model on the same labelled ids (``shadow.quality.*``)."""
        shadow_of = {r.id: r.event.get("prediction") for r in shadows}
        triples = [
            (rows[i].event.get("prediction"), shadow_of[rows[i].id], rows[i].label)
            for i in labelled
            if rows[i].id in shadow_of
        ]
        for row in shadow_quality_rows(triples):
            window.point(self.config.window_seconds, row.metric, row.value, SHADOW_CUT)

    def test(
        self,
        window: _Measured,
        reference: dict[tuple[str, str], tuple[int, QualityStats]],
        coverage: Mapping[tuple[str, str], float] | None = None,
    ) -> ScoredWindow:
        """The quality-drop test per slice, and the concept-drift flag. ``coverage``: the label
        coverage of each cut's reference windows; a window less labelled than they were, and
        not yet complete, is tested at a share of alpha (``partial_window_p_value``)."""
        cfg = self.config
        w = cfg.window_seconds
        for segment, (result, members) in window.results.items():
            drifted = False
            key = (segment, window.version_of(segment))
            ref = reference.get(key)
            if ref is not None and window.start > ref[0] and result.count >= cfg.min_labels:
                try:
                    test = quality_drop_test(ref[1], result.stats)
                except ValueError:  # the task changed (a new kind of model): no comparison
                    test = None
                if test is not None:
                    adjusted = None
                    if test.p_value is not None and not window.complete:
                        full = (coverage or {}).get(key)
                        share = labelled_share(result, members)
                        adjusted = partial_window_p_value(test.p_value, share, full)
                        adjusted = None if adjusted == test.p_value else adjusted
                    drifted = test.is_drift(cfg.alpha, p_value=adjusted)
                    window.point(w, "drift.quality_drop", test.effect_size, segment)
                    if test.p_value is not None:
                        window.point(w, "drift.quality_drop.p_value", test.p_value, segment)
                    metric = (
                        "quality.error_rate" if result.task == "classification" else "quality.mae"
                    )
                    window.drift_rows.append(
                        test_result_row(
                            window.model,
                            window.stage,
                            segment,
                            window.start,
                            w,
                            metric,
                            test,
                            drifted=drifted,
                            # not one of the window's feature tests (their BH decision)
                            in_decision=False,
                            reference="labelled:first-windows",
                            adjusted_p_value=adjusted,
                        )
                    )
            # the error-stream detectors watch the unit as a whole, not each slice
            flagged = any(name in cfg.flag_detectors for name in window.fired)
            concept = drifted or (not segment and flagged)
            window.point(w, "drift.concept", float(concept), segment)
        estimated = False
        for segment, (estimates, fitted) in window.estimates.items():
            # a version as a whole against the pairs its estimator was fitted on (from its
            # first estimated window on); a slice against its own measured reference
            if fitted is not None and fitted.reference is not None:
                baseline: tuple[int, QualityStats] | None = (fitted.last_start, fitted.reference)
            else:
                baseline = reference.get((segment, window.version_of(segment)))
            if baseline is None or window.start <= baseline[0]:
                continue
            rows, _ = drop_points(baseline[1], estimates, cfg.estimation.alpha)
            for metric, category, value in rows:
                window.point(w, metric, value, segment, category)
            estimated = estimated or segment == ""
        return ScoredWindow(
            unit_of(window.model, window.stage),
            window.start,
            window.points,
            window.drift_rows,
            window.outcomes_tested,
            estimated,
        )

    def _feed_detectors(
        self,
        model: str,
        stage: str,
        start: int,
        rows: Sequence[Joined],
        labelled: Iterable[int],
        since_ms: int,
    ) -> tuple[str, ...]:
        """Feed pairs joined since the last pass to the unit's error-stream detectors, in
        event-time order; returns the detectors that have fired in this window so far."""
        fresh = [
            i
            for i in labelled
            if rows[i].stored_ms > since_ms or rows[i].label_stored_ms > since_ms
        ]
        counts = self._detections[(model, stage, start)]
        if fresh:
            fresh.sort(key=lambda i: rows[i].ts)
            result = score_quality(
                [rows[i].event.get("prediction") for i in fresh], [rows[i].label for i in fresh]
            )
            if result.task is not None and result.errors.size:
                detectors = self._detectors.setdefault((model, stage), {})
                for name in detectors_for(result.task):
                    if name not in self.config.detectors:
                        continue
                    detector = detectors.get(name)
                    if detector is None:
                        detector = detectors[name] = ErrorStreamDetector(name, task=result.task)
                    fired = detector.update_many(result.errors)
                    if fired:
                        counts[name] += fired
        return tuple(name for name, n in counts.items() if n)

    def _arrivals(self, model: str, stage: str, start: int) -> list[MetricPoint]:
        received, unmatched = self.labels.label_bucket_counts(
            model, stage, start, self.config.window_seconds
        )
        w = self.config.window_seconds
        return [
            MetricPoint(model, start, w, "labels.received", float(received), stage=stage),
            MetricPoint(model, start, w, "labels.unmatched", float(unmatched), stage=stage),
        ]

    def rescan(self, seconds: float = RESCAN_S) -> None:
        """Make the next pass look back ``seconds`` further (units this worker just took
        over may have changed since their previous owner's last pass)."""
        self._since_ms = min(self._since_ms, int((self._clock() - seconds) * 1000))
        self._expired_through -= seconds

    def _forget_before(self, cutoff: float) -> None:
        for key in [k for k in self._detections if k[2] < cutoff]:
            del self._detections[key]
