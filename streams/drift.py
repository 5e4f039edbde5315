"""Drift analysis of closed windows in the worker: pick the reference, test, learn references.

The tests are pure (``detectors/drift``); this keeps the per-model reference state
(``streams/references.py``) and turns reports into store rows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from detectors.drift.result import DriftTestResult, DriftWhen
from detectors.drift.window import DriftConfig, DriftReport, ModelReference, compare_window
from detectors.profile import WindowProfile
from driftline.store import DriftRow, StoredReference
from driftline.units import split_unit
from streams.references import ReferenceBook
from streams.windowing import ClosedWindow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DriftOutcome:
    report: DriftReport | None  # None: no reference yet for this model version
    rows: list[DriftRow]
    learned: list[StoredReference]


def dominant_version(profile: WindowProfile) -> str:
    return profile.versions.most_common(1)[0][0] if profile.versions else "unknown"


class DriftAnalyzer:
    def __init__(self, book: ReferenceBook, config: DriftConfig) -> None:
        self.book = book
        self.config = config

    def load(self, references: Iterable[StoredReference]) -> None:
        loaded = []
        for stored in references:
            try:
                loaded.append((stored.model, ModelReference.from_dict(stored.profile)))
            except (KeyError, TypeError, ValueError):
                log.exception(
                    "unreadable reference for %s version %s", stored.model, stored.version
                )
        self.book.load(loaded)

    def analyze(self, window: ClosedWindow) -> DriftOutcome:
        profile = window.profile
        version = dominant_version(profile)
        reference = self.book.reference_for(window.model, version)
        report = None
        if reference is not None and profile.count:
            report = compare_window(reference, profile, self.config)
        rows = drift_rows(window.model, profile, report)
        drifted = bool(report and report.drifted_features)
        learned = self.book.observe(window.model, version, profile, drifted)
        stored = []
        if learned is not None:
            log.info(
                "learned a %s reference for %s version %s", learned.source, window.model, version
            )
            stored.append(
                StoredReference(
                    window.model,
                    learned.version,
                    learned.source,
                    learned.to_dict(),
                    int(time.time()),
                )
            )
        return DriftOutcome(report, rows, stored)

    def analyze_slice(
        self, unit: str, version: str, segment: str, profile: WindowProfile
    ) -> tuple[DriftReport | None, list[DriftRow]]:
        """A slice's window against the whole model's reference (slices never learn one)."""
        reference = self.book.reference_for(unit, version)
        if reference is None or not profile.count:
            return None, []
        report = compare_window(reference, profile, self.config)
        return report, drift_rows(unit, profile, report, segment)


def drift_rows(
    unit: str, profile: WindowProfile, report: DriftReport | None, segment: str = ""
) -> list[DriftRow]:
    """Window tests (with their decision) and streaming change points as ``drift_results``."""
    model, stage = split_unit(unit)
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
