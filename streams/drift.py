"""Drift analysis of closed windows in the worker: pick the reference, test, learn references.

The tests are pure (``detectors/drift``); this keeps the per-model reference state
(``streams/references.py``) and the shape of the ``drift_results`` rows, which
``streams/window_rows.py`` builds for each window and cut.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from detectors.drift.result import DriftTestResult, DriftWhen
from detectors.drift.window import (
    DriftConfig,
    DriftReport,
    ModelReference,
    compare_window,
    compare_windows,
)
from detectors.profile import WindowProfile
from driftline.settings import Settings
from driftline.store import DriftRow, StoredReference
from streams.references import ReferenceBook, ReferencePolicy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LearnedReference:
    """A reference a window completed, to store. Its stored form (``stored()``: a JSON-ready
    dict, one Python float per sample value, ten times the size of the reference itself) is
    made when it is written, one at a time, not for every reference of a group of windows."""

    unit: str
    reference: ModelReference
    created_at: int

    def stored(self) -> StoredReference:
        ref = self.reference
        return StoredReference(self.unit, ref.version, ref.source, ref.to_dict(), self.created_at)


def read_references(references: Iterable[StoredReference]) -> list[tuple[str, ModelReference]]:
    """(model, reference) of each stored reference that can be read (the others are logged).
    Taken one at a time: with ``Store.iter_references`` only one decoded profile is held."""
    loaded = []
    for stored in references:
        try:
            loaded.append((stored.model, ModelReference.from_dict(stored.profile)))
        except (KeyError, TypeError, ValueError):
            log.exception("unreadable reference for %s version %s", stored.model, stored.version)
    return loaded


class DriftAnalyzer:
    def __init__(
        self, book: ReferenceBook, config: DriftConfig, *, slices_decision_only: bool = True
    ) -> None:
        self.book = book
        self.config = config
        # a segment slice's tests (``compare(slice_=True)``): those its decision rests on,
        # and KS by the Kolmogorov tail at the effective size, for all its features at once: a
        # slice's sample (<= 256 values) against the model's reference (up to 5,000) is the
        # regime where it matches the exact p-value (``DriftConfig.ks_exact_max_pairs``), and
        # the exact recursion was most of a slice's cost (30 slices x 40 features x ~0.3 ms)
        tests = replace(config, ks_exact_max_pairs=0)
        self.slice_config = (
            replace(tests, numeric_tests=(), categorical_tests=())
            if slices_decision_only
            else tests
        )

    def load(self, references: Iterable[StoredReference]) -> None:
        self.book.load(read_references(references))

    def analyze(
        self, unit: str, version: str, profile: WindowProfile
    ) -> tuple[DriftReport | None, list[LearnedReference]]:
        """A whole window against its version's reference (None: none yet), and the reference
        this window completes, if any (to store)."""
        report = self.compare(unit, version, profile)
        drifted = bool(report and report.drifted_features)
        learned = self.book.observe(unit, version, profile, drifted)
        if learned is None:
            return report, []
        log.info("learned a %s reference for %s version %s", learned.source, unit, version)
        return report, [LearnedReference(unit, learned, int(time.time()))]

    def compare(
        self, unit: str, version: str, profile: WindowProfile, *, slice_: bool = False
    ) -> DriftReport | None:
        """A window (or a cut of it: cuts never learn a reference) against the reference of
        ``version``; None without one, or without events. ``slice_``: a segment slice, tested
        with ``slice_config``."""
        reference = self.book.reference_for(unit, version)
        if reference is None or not profile.count:
            return None
        return compare_window(reference, profile, self.slice_config if slice_ else self.config)

    def compare_slices(
        self, unit: str, version: str, profiles: Sequence[WindowProfile]
    ) -> list[DriftReport | None]:
        """``compare(unit, version, profile, slice_=True)`` of each segment slice of a
        window, the same reports, their tests batched together (``compare_windows``)."""
        reference = self.book.reference_for(unit, version)
        if reference is None:
            return [None] * len(profiles)
        tested = [p for p in profiles if p.count]
        reports = iter(compare_windows(reference, tested, self.slice_config))
        return [next(reports) if p.count else None for p in profiles]


def drift_analyzer(settings: Settings) -> DriftAnalyzer | None:
    """The worker's drift analysis as the settings configure it; None when it is off."""
    if not settings.drift_enabled:
        return None
    return DriftAnalyzer(
        ReferenceBook(
            ReferencePolicy(
                settings.reference_mode,
                settings.reference_windows,
                settings.reference_min_events,
            )
        ),
        DriftConfig(
            alpha=settings.drift_alpha,
            correction=settings.drift_correction,
            numeric_tests=settings.drift_numeric_tests,
            categorical_tests=settings.drift_categorical_tests,
        ),
        slices_decision_only=settings.slice_drift_tests == "decision",
    )


def drift_rows(
    model: str,
    stage: str,
    profile: WindowProfile,
    report: DriftReport | None,
    segment: str = "",
) -> list[DriftRow]:
    """Window tests (with their decision) and streaming change points as ``drift_results``."""
    rows = []
    if report is not None:
        for r in report.rows:
            rows.append(
                test_result_row(
                    model,
                    stage,
                    segment,
                    profile.start,
                    profile.seconds,
                    r.feature,
                    r.result,
                    drifted=r.drifted,
                    in_decision=r.in_decision,
                    reference=report.reference,
                    adjusted_p_value=r.adjusted_p_value,
                )
            )
    for (feature, detector), fired in sorted(profile.change_points.items()):
        rows.append(
            change_point_row(
                model,
                stage,
                profile.start,
                profile.seconds,
                feature,
                detector,
                fired,
                profile.count,
                "streaming",
                segment,
            )
        )
    return rows


def test_result_row(
    model: str,
    stage: str,
    segment: str,
    start: int,
    seconds: int,
    feature: str,
    result: DriftTestResult,
    *,
    drifted: bool,
    in_decision: bool,
    reference: str,
    adjusted_p_value: float | None = None,
) -> DriftRow:
    """A two-sample test's result in one window, as a ``drift_results`` row."""
    return DriftRow(
        model=model,
        window_start=start,
        window_seconds=seconds,
        feature=feature,
        test=result.test,
        statistic=result.statistic,
        p_value=result.p_value,
        adjusted_p_value=adjusted_p_value,
        effect_size=result.effect_size,
        min_effect=result.min_effect,
        drifted=drifted,
        in_decision=in_decision,
        drift_when=str(result.drift_when),
        n_reference=result.n_reference,
        n_current=result.n_current,
        reference=reference,
        segment=segment,
        stage=stage,
    )


def change_point_row(
    model: str,
    stage: str,
    start: int,
    seconds: int,
    feature: str,
    detector: str,
    fired: int,
    n: int,
    reference: str,
    segment: str = "",
) -> DriftRow:
    """A streaming detector's change points in one window (no p-value: drift when it fired)."""
    return DriftRow(
        model=model,
        window_start=start,
        window_seconds=seconds,
        feature=feature,
        test=detector,
        statistic=float(fired),
        p_value=None,
        adjusted_p_value=None,
        effect_size=float(fired),
        min_effect=1.0,
        drifted=fired > 0,
        in_decision=False,
        drift_when=str(DriftWhen.EFFECT_ONLY),
        n_reference=0,
        n_current=n,
        reference=reference,
        segment=segment,
        stage=stage,
    )
