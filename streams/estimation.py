"""Estimated quality in the quality pass: what the model's quality is before its labels land.

A classifier that sends probabilities gets CBPE, a regressor DLE (``detectors/estimation.py``),
each fitted per (unit, model version) on the version's first labelled windows: its reference,
the same windows its measured quality is judged against. Every window of a labelled model is
then estimated as soon as its predictions are stored (the quality pass already visits such
windows), as a whole and per cut, beside the measured figures that labels bring later:

* ``quality.estimated.<metric>`` with ``.lower`` and ``.upper`` (a 95 % band of the window's
  realised metric), for the metrics the estimator gives;
* ``quality.estimated.available`` on the whole window: 1, or 0 with the reason as its category
  (``no_probabilities``, ``no_labels``, ``one_class`` …), which the API turns into what to send;
* once the window's labels are complete (its label horizon has passed), the estimation error
  ``quality.estimated.<metric>.error`` (estimated - measured) and, for the headline metric
  (accuracy, MAE), ``.error_z``: the error over the uncertainty of both sides, which the API
  pools into a verdict on how far the estimates can be trusted for this model.

An estimator is refitted when its reference windows have gathered a quarter more labels than
it was fitted on (their labels keep landing for a while), and kept in memory: a restarted
worker fits it again from the store.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from detectors.estimation import (
    CBPE,
    DLE,
    Estimate,
    EstimationUnavailable,
    estimated_drop_test,
)
from detectors.quality import QualityResult, QualityStats, infer_task, score_quality
from driftline.cuts import SHADOW_CUT, version_cut
from driftline.store.labels import Joined

ESTIMATED = "quality.estimated."
AVAILABLE = "quality.estimated.available"
HEADLINE = {"classification": "accuracy", "regression": "mae"}
REFIT_GROWTH = 1.25  # refit once the reference windows hold this many times the pairs fitted on

# (segment, version) -> window start -> metric -> value: the quality pass's History
History = Mapping[tuple[str, str], Mapping[int, Mapping[str, float]]]


@dataclass(frozen=True)
class EstimationConfig:
    enabled: bool = True
    reference_windows: int = 5  # at least this many labelled windows
    reference_pairs: int = 2_000  # then more windows until this many labelled pairs
    max_reference_windows: int = 50
    min_labels: int = 30  # a window's labels to count as a reference window
    alpha: float = 0.05


@dataclass(frozen=True)
class Fitted:
    """A version's estimator, or why it has none (``reason``, ``message``)."""

    estimator: CBPE | DLE | None
    pairs: int  # labelled pairs it was fitted on (or found)
    task: str = ""
    reason: str = ""
    message: str = ""
    # the measured quality of the pairs it was fitted on, and the start of its last window:
    # a later window's estimate of the version as a whole is tested against it for harm
    reference: QualityStats | None = None
    last_start: int = 0

    @property
    def method(self) -> str:
        return "cbpe" if isinstance(self.estimator, CBPE) else "dle" if self.estimator else ""


def reference_windows(history: History, version: str, config: EstimationConfig) -> list[int]:
    """The starts of ``version``'s estimation reference: its first windows with
    ``min_labels`` labels (whole or as a version cut), at least ``reference_windows`` of them,
    then more until ``reference_pairs`` labelled pairs; [] while it has too few."""
    counts: dict[int, float] = {}
    for key in (("", version), (version_cut(version), version), (SHADOW_CUT, version)):
        for start, values in history.get(key, {}).items():
            n = values.get("labels.count", 0.0)
            if n >= config.min_labels:
                counts[start] = max(counts.get(start, 0.0), n)
    picked: list[int] = []
    pairs = 0.0
    for start in sorted(counts):
        if len(picked) >= config.reference_windows and pairs >= config.reference_pairs:
            break
        if len(picked) >= config.max_reference_windows:
            break
        picked.append(start)
        pairs += counts[start]
    return picked if len(picked) >= config.reference_windows else []


def labelled_pairs(history: History, version: str, starts: Sequence[int]) -> int:
    out = 0.0
    for start in starts:
        out += max(
            history.get(key, {}).get(start, {}).get("labels.count", 0.0)
            for key in (("", version), (version_cut(version), version), (SHADOW_CUT, version))
        )
    return int(out)


def fit(rows: Sequence[Joined]) -> Fitted:
    """The estimator of a version from its reference windows' labelled rows."""
    labelled = [r for r in rows if r.label is not None and r.event.get("prediction") is not None]
    predictions = [r.event.get("prediction") for r in labelled]
    labels = [r.label for r in labelled]
    if not labelled:
        return Fitted(None, 0, "", "no_labels", NO_LABELS)
    task = infer_task(predictions, labels)
    try:
        if task == "classification":
            estimator: CBPE | DLE = CBPE.fit(predictions, labels)
        elif task == "regression":
            features = [r.event.get("features") or {} for r in labelled]
            estimator = DLE.fit(features, predictions, labels)
        else:
            return Fitted(None, len(labelled), "", "no_labels", NO_LABELS)
    except EstimationUnavailable as exc:
        return Fitted(None, len(labelled), task or "", exc.reason, str(exc))
    measured = score_quality(predictions, labels, task=task).stats
    return Fitted(estimator, len(labelled), task, reference=measured)


NO_LABELS = (
    "no labelled reference yet: send labels (POST /v1/labels or the SDK's log_label) for at "
    "least the model version's first windows; estimates start once they are in"
)


def estimate(fitted: Fitted, rows: Sequence[Joined]) -> list[Estimate]:
    if fitted.estimator is None or not rows:
        return []
    predictions = [r.event.get("prediction") for r in rows]
    if isinstance(fitted.estimator, CBPE):
        return fitted.estimator.estimate(predictions)
    features = [r.event.get("features") or {} for r in rows]
    return fitted.estimator.estimate(features, predictions)


def measured_name(metric: str) -> str:
    return "quality." + metric[len(ESTIMATED) :]


def estimate_points(estimates: Sequence[Estimate]) -> list[tuple[str, str, float]]:
    """(metric, category, value) rows of a cut's estimates: each value and its band."""
    out = []
    for e in estimates:
        out.append((e.metric, e.category, e.value))
        out.append((e.metric + ".lower", e.category, e.lower))
        out.append((e.metric + ".upper", e.category, e.upper))
    return out


def error_points(
    estimates: Sequence[Estimate], result: QualityResult, members: int
) -> list[tuple[str, str, float]]:
    """Estimated - measured for every estimate with a measured twin, once labels are
    complete; and, for the headline metric, that error in units of the uncertainty of both
    sides (the band's, and the labelled sample's as a part of the window's ``members``)."""
    if result.task is None:
        return []
    out = []
    headline = ESTIMATED + HEADLINE[result.task]
    z = 1.959963984540054
    for e in estimates:
        measured = result.metric_value(measured_name(e.metric), e.category)
        if measured is None or not math.isfinite(measured):
            continue
        error = e.value - measured
        out.append((e.metric + ".error", e.category, error))
        if e.metric == headline and not e.category:
            se_estimate = (e.upper - e.lower) / (2 * z)
            m = result.count
            # the labelled sample's error about the whole window's realised value
            finite = max(0.0, 1.0 - m / members) if members else 0.0
            spread = _pair_variance(result.stats)
            se_sample = math.sqrt(spread / m * finite) if m else 0.0
            se = math.hypot(se_estimate, se_sample)
            out.append((e.metric + ".error_z", "", error / se if se > 0 else 0.0))
    return out


def _pair_variance(stats: QualityStats) -> float:
    if stats.n < 2:
        return 0.0
    mean = stats.error_sum / stats.n
    return max(0.0, stats.error_sq_sum / stats.n - mean * mean)


def drop_points(
    reference: QualityStats, estimates: Sequence[Estimate], alpha: float
) -> tuple[list[tuple[str, str, float]], bool]:
    """The estimated-harm test of one cut against its version's reference quality:
    ``drift.estimated_drop`` (the effect), its p-value, and ``drift.harm`` (1: harm)."""
    test = estimated_drop_test(reference, estimates)
    harm = test.is_drift(alpha)
    rows = [("drift.estimated_drop", "", test.effect_size), ("drift.harm", "", float(harm))]
    if test.p_value is not None:
        rows.append(("drift.estimated_drop.p_value", "", test.p_value))
    return rows, harm


class EstimatorBook:
    """The fitted estimators of one process, per (model, stage, version)."""

    def __init__(
        self,
        config: EstimationConfig,
        load: Callable[[str, str, int, bool], Sequence[Joined]],
    ) -> None:
        self.config = config
        self._load = load  # (model, stage, window start, shadow) -> the window's rows
        self._fitted: dict[tuple[str, str, str], Fitted] = {}

    def get(self, model: str, stage: str, version: str, history: History) -> Fitted | None:
        """The version's estimator, fitted (again) when its reference has grown; None while
        the version has too few labelled windows to have a reference."""
        starts = reference_windows(history, version, self.config)
        if not starts:
            return None
        key = (model, stage, version)
        known = self._fitted.get(key)
        pairs = labelled_pairs(history, version, starts)
        if known is not None and pairs < known.pairs * REFIT_GROWTH:
            return known
        rows: list[Joined] = []
        for start in starts:
            for shadow in (False, True):
                rows.extend(
                    r for r in self._load(model, stage, start, shadow) if r.version == version
                )
        fitted = fit(rows)
        # remember the reference's pair count as the history says, so that the next refit
        # waits for a quarter more labels (not for what fit() could use of them)
        self._fitted[key] = replace(fitted, pairs=max(pairs, 1), last_start=starts[-1])
        return self._fitted[key]
