"""Label-free quality estimation: a window's quality before (or without) its labels.

Two estimators in the manner of NannyML, fitted once on a labelled reference and then applied
to unlabelled windows:

* ``CBPE`` (confidence-based performance estimation) for classifiers that give probabilities.
  An isotonic calibration map, fitted on the reference pairs, turns each score into the
  probability that the event is positive (one map per class column, one-vs-rest, rows then
  renormalised, for probability lists), when it helps: maps that do not lower the
  calibration error of held-out reference rows in every one of ``CV_FOLDS`` folds (a
  probability list's maps judged together, as they are applied) are the identity, the model's
  scores taken at their word. Scores whose maps are the identity may still be a little over-
  or under-confident as a whole: they are temperature-scaled (a probability list's logarithms
  times one factor, renormalised; a binary score's logit times it; Guo et al. 2017, fitted by
  log-loss on the reference pairs) when the likelihood-ratio test of that factor against 1
  gives p < ``TEMPERATURE_P``. One parameter adds little noise to a calibrated model. The
  window's predicted classes come from the *raw* scores, as the model decides; the expected
  confusion matrix under the calibrated probabilities gives accuracy, per-class and macro
  precision / recall / F1 (ratios of the expected counts) and the expected ROC AUC. The
  estimate follows covariate shift (scores moving towards the threshold lower it) but not
  concept drift (P(y | score) changing): that needs labels.
* ``DLE`` (direct loss estimation) for regressors: a small numpy MLP, fitted on the reference,
  predicts each event's absolute and squared error from its features and prediction (numeric
  inputs clipped to the reference's range, so that it stays flat beyond it); the squared
  error's estimate is the mean of that network's and the absolute error's squared times the
  reference's E[e^2] / E[|e|]^2 (see ``SHAPE_WEIGHT``).

Every ``Estimate`` carries a band (95% by default) for the window's *realised* metric: the
uncertainty of the labels the window will get, each event's outcome drawn from its calibrated
probability (CBPE) or predicted error distribution (DLE), by the delta method. CBPE's does
not include the estimator's own error (a calibration map fitted on a finite reference), so
keep the reference at ``MIN_REFERENCE_PAIRS`` pairs or (much) more; DLE's adds the error
model's relative error of the mean on held-out reference rows (a bias every window shares).

``estimated_drop_test`` compares an estimate with a reference's measured ``QualityStats`` the
way ``quality_drop_test`` compares two measured windows.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> scores = rng.beta(0.6, 0.6, 5_000)  # a calibrated binary model: y ~ Bernoulli(score)
>>> labels = (rng.random(5_000) < scores).astype(int)
>>> cbpe = CBPE.fit(scores.tolist(), labels.tolist())
>>> window = rng.beta(0.6, 0.6, 1_000)
>>> truth = (rng.random(1_000) < window).astype(int)
>>> accuracy = next(e for e in cbpe.estimate(window.tolist()) if e.metric.endswith("accuracy"))
>>> realised = float(((window >= 0.5) == truth).mean())
>>> abs(accuracy.value - realised) < 0.03, accuracy.lower < realised < accuracy.upper
(True, True)
>>> CBPE.fit(["cat"] * 300, ["cat"] * 300)
Traceback (most recent call last):
...
detectors.estimation.EstimationUnavailable: ... class probabilities ...
"""

from __future__ import annotations

import functools
import itertools
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt
from scipy import optimize, special
from scipy import stats as scipy_stats

from detectors.drift.result import DriftTestResult, FloatArray, no_evidence
from detectors.quality import (
    QUALITY_DROP_MIN_EFFECT,
    Label,
    Prediction,
    Predictions,
    QualityStats,
    _as_numbers,
    _class_name,
    _encode,
    _types,
    drop_result,
    infer_task,
    probability_matrix,
    relative_rise,
    row_sums,
    sorted_weighted_roc_auc,
    weighted_roc_auc,
)

MIN_REFERENCE_PAIRS = 200  # fewer labelled reference pairs: EstimationUnavailable("no_labels")
PREFIX = "quality.estimated."
CV_FOLDS = 5  # CBPE: folds of the reference that decide whether calibrating helps
ECE_BINS = 10  # bins of the calibration error those folds compare
# folds of CV_FOLDS the map must win to be applied: all of them (a calibrated model's map
# wins each about half the time, all 5 by chance 1 in 32; 4 of 5 would be 6 in 32)
CALIBRATION_WINS = CV_FOLDS
TOP_CATEGORIES = 20  # DLE one-hot encodes this many reference categories per feature, + other
HIDDEN_UNITS = 64
# DLE trains this many networks, each with another fifth of the reference held out for its
# early stopping, and averages them: one network's estimate moved by up to 0.6-1.2x its MAE
# against a window's realised error with the seed alone (car price, chunks of 5,000); the mean
# of five folds' networks is a bagged estimate whose seed matters far less
MEMBERS = 5
# DLE's L2 penalty on the network's weights (inputs and targets standardised): a flexible
# network for less bias (the error's rise at a reference's edge, which 32 units at 1e-3
# smoothed into an overshoot: 2.3x NannyML's MAE on sim_hetero), its variance averaged out
# by the ensemble (MEMBERS)
PENALTY = 1e-4
MAX_ITERATIONS = 300  # L-BFGS-B iterations at most; it stops early on a held-out 20%:
PATIENCE = 20  # after this many iterations without a better held-out loss
# DLE clips each numeric input (and the prediction) to these percentiles of the reference:
# beyond them the network would extrapolate the error linearly (upwards, typically), where
# it has seen no errors; clipped, it stays flat there, as a tree model's estimate does
CLIP_PERCENTILES = (1.0, 99.0)  # the outer 1 % hold too few errors to shape a rise
BLOCK_ROWS = 256  # rows per matrix product (see _blocks)
INFERENCE_ROWS = 512  # DLE.estimate's rows per product (float32, and one network of all)
# DLE's estimate of an event's e^2 is the mean of two: the e^2 network's (no assumption on the
# error's distribution, but its target is heavy-tailed: a normal error's e^2 has variance
# 2 sigma^4, so the fit is noisy where the reference is thin) and the |e| network's squared
# times the reference's E[e^2] / E[|e|]^2 (a lighter-tailed target, exact when the error's
# shape is the same everywhere and only its scale varies, as a heteroscedastic normal's).
# On sim_hetero, chunks of 5,000, the RMSE's MAE was 0.98-1.05x NannyML's with the e^2
# network alone and 1.00-1.18x with the |e| one (seeds 0-2), 0.94x with their mean (all three
# seeds); on car price 0.55-0.59x each way
SHAPE_WEIGHT = 0.5

# a feature's values over a window's rows, as DLE reads them
Column = list[object] | npt.NDArray[Any]
# DLE's window: a feature row per prediction, or a column (a sequence or 1-D array) per feature
Columns = Mapping[str, Sequence[object] | npt.NDArray[Any]]
Features = Sequence[Mapping[str, object]] | Columns

Reason = Literal["no_probabilities", "no_labels", "one_class", "not_regression", "no_features"]


class EstimationUnavailable(ValueError):
    """Why no estimate can be made; ``reason`` is a short code, ``str(exc)`` a sentence that
    says what to send. Codes: "no_probabilities" (hard class predictions, strings, bools),
    "no_labels" (fewer than ``MIN_REFERENCE_PAIRS`` labelled reference pairs), "one_class"
    (reference labels of a single class), "not_regression" (DLE given class predictions or
    labels), "no_features" (DLE given feature rows that do not line up with the predictions).
    """

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason: str = reason

    def __reduce__(self) -> tuple[type[EstimationUnavailable], tuple[str, str]]:
        return type(self), (self.reason, str(self))  # pickles with its reason


@dataclass(frozen=True)
class Estimate:
    """One estimated metric; [lower, upper] is a band for the window's *realised* value.

    ``n`` is the count of events behind it (0 when unknown).
    """

    metric: str  # e.g. "quality.estimated.accuracy"
    category: str  # the class for per-class metrics, else ""
    value: float
    lower: float
    upper: float
    n: int = 0


def _estimates(
    names: Sequence[tuple[str, str]],
    values: FloatArray,
    variances: FloatArray,
    z: float,
    n: int,
    top: float = 1.0,
) -> list[Estimate]:
    """``_estimate`` of each (metric, category) at once."""
    half = z * np.sqrt(np.maximum(variances, 0.0))  # a NaN variance stays NaN ...
    # ... and its bounds are the limits (fmax / fmin)
    lower, upper = np.fmax(values - half, 0.0), np.fmin(values + half, top)
    return [
        Estimate(PREFIX + metric, category, value, low, high, n)
        for (metric, category), value, low, high in zip(
            names, values.tolist(), lower.tolist(), upper.tolist(), strict=True
        )
    ]


@functools.lru_cache(maxsize=64)
def _metric_names(k: int) -> tuple[tuple[str, str], ...]:
    """The (metric, category) of CBPE's estimates of k classes, in order, but the AUC."""
    macro = [(m, "") for m in ("accuracy", "error_rate", *(f"{m}_macro" for m in _PER_CLASS))]
    return (*macro, *((m, str(c)) for m in _PER_CLASS for c in range(k)))


_PER_CLASS = ("precision", "recall", "f1")


@functools.lru_cache(maxsize=16)
def _z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence {confidence} is a probability: use a value in (0, 1)")
    return float(scipy_stats.norm.ppf(0.5 + confidence / 2.0))


def _estimate(
    metric: str, category: str, value: float, variance: float, z: float, n: int, top: float = 1.0
) -> Estimate:
    return _estimates(((metric, category),), np.array([value]), np.array([variance]), z, n, top)[0]


# ---- CBPE ------------------------------------------------------------------------------


IDENTITY = (np.array([0.0, 1.0]), np.array([0.0, 1.0]))  # the raw scores kept as they are
# the temperature: the factor on a probability list's logarithms (a binary score's logit) is
# searched in this range (1: none; below 1 softens over-confident scores); a probability of 0
# counts as LOG_FLOOR,
# so that one confident mistake gives a large but finite log-loss
TEMPERATURE_FACTORS = (0.05, 20.0)
LOG_FLOOR = 1e-12
TEMPERATURE_P = 0.001  # the likelihood-ratio test's p-value below which a factor is applied


def _log_probabilities(matrix: FloatArray) -> FloatArray:
    return np.log(np.maximum(matrix, LOG_FLOOR))


def _scaled(matrix: FloatArray, factor: float) -> FloatArray:
    """Probability lists temperature-scaled: the softmax of their logarithms times ``factor``."""
    if factor == 1.0:
        return matrix
    # softmax(factor log p) is p^factor over its row sum: p <= 1 and the factor is at most
    # TEMPERATURE_FACTORS' 20, so each power lies in [LOG_FLOOR^20, 1] (no overflow; the floor
    # keeps a row's sum positive); half the cost of scipy's softmax (its row maxima, exp, sums)
    powers = np.maximum(matrix, LOG_FLOOR) ** factor
    scaled: FloatArray = powers / row_sums(powers)[:, None]
    return scaled


def _log_loss(factor: float, logs: FloatArray, y_true: npt.NDArray[np.int64]) -> float:
    scored = special.log_softmax(logs * factor, axis=1)
    return -float(np.mean(scored[np.arange(y_true.size), y_true]))


def _fit_factor(logs: FloatArray, y_true: npt.NDArray[np.int64]) -> float:
    found = optimize.minimize_scalar(
        _log_loss, bounds=TEMPERATURE_FACTORS, args=(logs, y_true), method="bounded"
    )
    return float(found.x)


def _temperature(matrix: FloatArray, y_true: npt.NDArray[np.int64]) -> float:
    """The factor on a probability list's logarithms that minimises the reference's log-loss,
    when the likelihood-ratio test of that one parameter against 1 (the lists as they are:
    2 n (loss(1) - loss(factor)), chi-square with 1 degree of freedom) gives p below
    ``TEMPERATURE_P``; else 1 (none). A parametric test, as the family has one parameter: a
    calibrated model's lists are scaled by chance 1 time in 1,000 (none of 200 seeded Dirichlet
    models of 5,000 pairs were); the benchmark's credit card model gives p ~ 1e-48 at 60,000
    pairs and 1e-11 at 10,000 (its factor 0.91 and 0.90: a little over-confident)."""
    n = y_true.size
    logs = _log_probabilities(matrix)
    factor = _fit_factor(logs, y_true)
    statistic = 2.0 * n * (_log_loss(1.0, logs, y_true) - _log_loss(factor, logs, y_true))
    return factor if float(scipy_stats.chi2.sf(max(statistic, 0.0), 1)) < TEMPERATURE_P else 1.0


def _isotonic_map(scores: FloatArray, outcome: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Knots (sorted unique scores, P(outcome) there) of the isotonic fit of outcome on score.

    A step function, not smoothed between blocks: interpolating between block centres would
    blur a sharp step (a score that separates the classes) over the scores between them."""
    knots, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    means = np.bincount(inverse, weights=outcome, minlength=knots.size) / counts
    fitted = optimize.isotonic_regression(means, weights=counts.astype(np.float64)).x
    fitted = np.clip(np.asarray(fitted, dtype=np.float64), 0.0, 1.0)
    # a step function: the two ends of each step give the same interpolation as every knot
    # (a short state, a fast np.interp)
    steps = np.flatnonzero(np.diff(fitted) != 0)
    kept = np.unique(np.concatenate([[0, knots.size - 1], steps, steps + 1]))
    return knots[kept], fitted[kept]


def _calibration_error(probability: FloatArray, outcome: FloatArray) -> float:
    """Expected calibration error over ``ECE_BINS`` bins of equal count (NannyML's binning):
    the mean over bins, weighted by size, of |mean probability - share of outcomes|."""
    order = np.argsort(probability, kind="stable")
    starts = np.array([b[0] for b in np.array_split(np.arange(order.size), ECE_BINS) if b.size])
    gap = np.add.reduceat(probability[order], starts) - np.add.reduceat(outcome[order], starts)
    return float(np.abs(gap).sum() / order.size)


def _needs_calibration(
    matrix: FloatArray, columns: Sequence[int], outcomes: Sequence[FloatArray], binary: bool
) -> bool:
    """Whether the isotonic maps of ``columns`` lower the expected calibration error of
    held-out reference rows below that of the raw scores in at least ``CALIBRATION_WINS`` of
    ``CV_FOLDS`` folds (a fixed shuffle: deterministic). The maps of a probability list are
    judged together, as they are applied: each column mapped, the rows renormalised, the
    columns' errors summed (class by class, a small gain of one class's map can hide behind
    another's noise, and the rows' sum of one couples them anyway). A calibrated model keeps
    its scores: there the map, fitted on a finite reference, is the identity plus noise and
    wins each fold about half the time; which of the two scores better on one pooled held-out
    set is a coin flip (NannyML's ``needs_calibration`` pools its splits). A miscalibrated
    model's map wins every fold."""
    n = matrix.shape[0]
    if n < CV_FOLDS * ECE_BINS * 2:
        return True  # too few rows to judge: calibrate, as before the test
    order = np.random.default_rng(0).permutation(n)
    wins = 0
    for held in np.array_split(order, CV_FOLDS):
        train = np.ones(n, dtype=bool)
        train[held] = False
        calibrated = np.column_stack(
            [
                np.interp(matrix[held, c], *_isotonic_map(matrix[train, c], outcome[train]))
                for c, outcome in zip(columns, outcomes, strict=True)
            ]
        )
        if not binary:
            calibrated = _renormalised(calibrated)
        raw = sum(
            _calibration_error(matrix[held, c], outcome[held])
            for c, outcome in zip(columns, outcomes, strict=True)
        )
        mapped = sum(
            _calibration_error(calibrated[:, j], outcome[held])
            for j, outcome in enumerate(outcomes)
        )
        wins += mapped < raw
    return wins >= CALIBRATION_WINS


def _calibration_maps(
    matrix: FloatArray, y_true: npt.NDArray[np.int64], binary: bool
) -> list[tuple[FloatArray, FloatArray]]:
    """The isotonic maps of the class columns (binary: the positive one) when they help on
    held-out rows, else ``IDENTITY`` (that object) for each."""
    columns = [1] if binary else list(range(matrix.shape[1]))
    outcomes = [(y_true == c).astype(np.float64) for c in columns]
    if not _needs_calibration(matrix, columns, outcomes, binary):
        return [IDENTITY] * len(columns)
    return [_isotonic_map(matrix[:, c], o) for c, o in zip(columns, outcomes, strict=True)]


def _is_identity(knots: FloatArray, fitted: FloatArray) -> bool:
    """Whether a calibration map keeps every score in [0, 1] as it is (``IDENTITY``, also
    after a round trip through ``to_dict``)."""
    identity = knots.size == 2 and fitted.size == 2
    return identity and knots.tolist() == [0.0, 1.0] and fitted.tolist() == [0.0, 1.0]


def _renormalised(calibrated: FloatArray) -> FloatArray:
    """Calibrated probability lists divided by their sums (a row whose maps all gave 0 is
    uniform: nothing says which class it is)."""
    totals = row_sums(calibrated)[:, None]
    if (totals > 0).all():
        divided: FloatArray = calibrated / totals
        return divided
    uniform = np.full_like(calibrated, 1.0 / calibrated.shape[1])
    out = np.zeros_like(calibrated)
    divided = np.divide(calibrated, totals, out=out, where=totals > 0)
    return np.where(totals > 0, divided, uniform)


def _hanley_mcneil(auc: float, positives: float, negatives: float) -> float:
    if positives <= 0 or negatives <= 0:
        return 0.0
    q1, q2 = auc / (2.0 - auc), 2.0 * auc * auc / (1.0 + auc)
    spread = auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)
    return max(spread, 0.0) / (positives * negatives)


@dataclass(frozen=True)
class CBPE:
    """Confidence-based performance estimation for a classifier with probabilities.

    ``width`` 0 means binary positive-class scores (predicted positive at ``threshold``);
    otherwise probability lists of ``width`` columns, the predicted class their argmax.
    ``knots[c]`` / ``fitted[c]``: the calibration map of class column c (binary: one map for
    the positive class). Plain values and arrays, round-tripping through ``to_dict``.
    """

    width: int
    threshold: float
    knots: tuple[FloatArray, ...] = field(repr=False)
    fitted: tuple[FloatArray, ...] = field(repr=False)
    n_reference: int = 0
    # the temperature (the factor on a probability list's logarithms, a binary score's logit;
    # 1: none), taken where the maps are the identity
    factor: float = 1.0

    def __post_init__(self) -> None:
        low, high = TEMPERATURE_FACTORS
        if not (self.factor == 1.0 or low <= self.factor <= high):  # NaN fails both
            raise ValueError(
                f"factor {self.factor} is a temperature: use 1 (none) or a value in [{low}, {high}]"
            )

    def __repr__(self) -> str:
        kind = "binary" if self.width == 0 else f"{self.width} classes"
        scaled = f", factor={self.factor:.4g}" if self.factor != 1.0 else ""
        return f"CBPE({kind}, threshold={self.threshold}{scaled}, n_reference={self.n_reference})"

    @classmethod
    def fit(
        cls, predictions: Sequence[Prediction], labels: Sequence[Label], *, threshold: float = 0.5
    ) -> CBPE:
        """The calibration of the reference pairs (``predictions[i]``, ``labels[i]``)."""
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold {threshold} is a probability: use a value in [0, 1]")
        if len(predictions) != len(labels):
            raise ValueError(
                f"{len(predictions)} predictions but {len(labels)} labels: pass them in pairs"
            )
        encoded = _encode(predictions, labels, threshold)
        if encoded.probabilities is None and _types(predictions):
            raise EstimationUnavailable(
                "no_probabilities",
                "quality estimation needs the model's probabilities: send the positive-class "
                "score (a number in [0, 1]) or a list of class probabilities as the prediction, "
                "not the predicted class",
            )
        n = int(encoded.y_true.size)
        if encoded.probabilities is None or n < MIN_REFERENCE_PAIRS:
            raise EstimationUnavailable(
                "no_labels",
                f"quality estimation needs at least {MIN_REFERENCE_PAIRS} labelled reference "
                f"pairs with probabilities; got {n}: send more labels for the reference",
            )
        if np.unique(encoded.y_true).size < 2:
            raise EstimationUnavailable(
                "one_class",
                "the reference labels are all of one class, so nothing says how often the "
                "model is wrong: send a reference with labels of every class",
            )
        matrix = encoded.probabilities
        binary = encoded.positive is not None
        maps = _calibration_maps(matrix, encoded.y_true, binary)
        # scores the isotonic maps keep may still be a little over- or under-confident as a
        # whole: they then take a temperature (one parameter, tested as one)
        kept = all(m is IDENTITY for m in maps)
        factor = _temperature(matrix, encoded.y_true) if kept else 1.0
        return cls(
            width=0 if binary else matrix.shape[1],
            threshold=threshold,
            knots=tuple(k for k, _ in maps),
            fitted=tuple(f for _, f in maps),
            n_reference=n,
            factor=factor,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "threshold": self.threshold,
            "knots": [k.tolist() for k in self.knots],
            "fitted": [f.tolist() for f in self.fitted],
            "n_reference": self.n_reference,
            "factor": self.factor,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CBPE:
        return cls(
            width=int(data["width"]),
            threshold=float(data["threshold"]),
            knots=tuple(np.asarray(k, dtype=np.float64) for k in data["knots"]),
            fitted=tuple(np.asarray(f, dtype=np.float64) for f in data["fitted"]),
            n_reference=int(data.get("n_reference", 0)),
            factor=float(data.get("factor", 1.0)),  # fitted before temperatures: none
        )

    def _binary(self, predictions: Predictions) -> tuple[FloatArray, FloatArray]:
        """The scorable scores in ascending order, and each one's calibrated probability of the
        positive class. The order of a window's events matters to no metric but the AUC,
        which needs them sorted by score; sorted, the predicted positives are a suffix."""
        score = _as_numbers(predictions)
        score = np.sort(score[(score >= 0.0) & (score <= 1.0)])  # NaN compares False
        if self.factor != 1.0:
            score_pair = np.column_stack([1.0 - score, score])
            scaled = _scaled(score_pair, self.factor)[:, 1]  # the logit times the factor
        else:
            scaled = score
        if _is_identity(self.knots[0], self.fitted[0]):
            return score, scaled  # in [0, 1] already: the map keeps it
        positive = np.clip(np.interp(scaled, self.knots[0], self.fitted[0]), 0.0, 1.0)
        return score, positive

    def _decode(self, predictions: Predictions) -> tuple[FloatArray, FloatArray]:
        """(raw scores, calibrated probabilities), a column per class, of the scorable rows
        of probability lists."""
        raw, _ = probability_matrix(predictions, self.width)
        scaled = _scaled(raw, self.factor)
        if all(_is_identity(k, f) for k, f in zip(self.knots, self.fitted, strict=True)):
            return raw, scaled  # the maps keep every score, and the rows sum to 1 already
        calibrated = np.column_stack(
            [
                np.interp(scaled[:, c], k, f)
                for c, (k, f) in enumerate(zip(self.knots, self.fitted, strict=True))
            ]
        ).reshape(raw.shape)
        return raw, _renormalised(calibrated)

    def estimate(self, predictions: Predictions, *, confidence: float = 0.95) -> list[Estimate]:
        """The estimated quality of a window of predictions; [] when none is scorable.

        ``predictions``: as events carry them (scores, or probability lists), or a batch
        caller's array of them (1-D scores, or a row of probabilities per event), which skips
        converting each one. Both give the same estimates."""
        z = _z(confidence)
        # Every sum the metrics and their delta-method variances need comes from one Gram
        # matrix of [1, one-hot(predicted) * hit, p] (n x 2k+1), where hit is the calibrated
        # probability that event i's prediction is right: no per-metric pass over the events
        auc: tuple[float, float] | None
        if self.width == 0:
            score, positive = self._binary(predictions)
            n, k = score.size, 2
            if n == 0:
                return []
            negatives = int(np.searchsorted(score, self.threshold))  # predicted 0: a prefix
            gram = _binary_gram(positive, negatives)
            count = np.array([negatives, n - negatives], dtype=np.float64)
            auc = _binary_auc(score, positive)
        else:
            raw, p = self._decode(predictions)
            n, k = p.shape
            if n == 0:
                return []
            predicted = np.argmax(raw, axis=1)
            rows = np.arange(n)
            stacked = np.zeros((n, 2 * k + 1))
            stacked[:, 0] = 1.0
            stacked[rows, 1 + predicted] = p[rows, predicted]
            stacked[:, k + 1 :] = p
            gram = stacked.T @ stacked
            count = np.bincount(predicted, minlength=k).astype(np.float64)  # known
            auc = self._auc(raw, p)
        tp, support = gram[0, 1 : k + 1], gram[0, k + 1 :]  # expected true positives, labels
        hit_sq = np.diag(gram)[1 : k + 1].copy()  # per predicted class: the sum of hit^2
        cross = gram[1 : k + 1, k + 1 :]  # [g, c]: over events predicted g, the sum of hit p_c
        outer = gram[k + 1 :, k + 1 :]  # [c, d]: the sum of p_c p_d
        # the variance of each event's indicator of its predicted class, and of each class
        spread_predicted = tp - hit_sq
        spread_all = support - np.diag(outer)

        # precision, recall and F1 of each class (rows), as ratios of expected counts, and
        # their delta-method variances: each metric's derivative in event i's indicator of
        # class c is a[c] [i predicted c] - b[c]. A class's metric depends on its own column
        # only; the macro mean's derivative, hit_i a[g_i] - p_i . b, covaries across classes
        # (each event's indicators are one categorical draw): its sum of squares over the
        # events comes from the Gram sums
        both = count + support
        denominators = np.stack([count, support, both])
        defined = denominators > 0

        def ratio(numerators: FloatArray, under: FloatArray) -> FloatArray:
            quotient: FloatArray = np.divide(numerators, under, out=np.zeros((3, k)), where=defined)
            return quotient

        values = ratio(np.stack([tp, tp, 2.0 * tp]), denominators)
        a = ratio(np.array([[1.0], [1.0], [2.0]]).repeat(k, axis=1), denominators)
        b = ratio(np.stack([np.zeros(k), tp, 2.0 * tp]), denominators**2)
        own = a * a - 2.0 * a * b
        per_class = own * spread_predicted + b * b * spread_all
        squares = (own * tp + b * b * support).sum(axis=1)
        derivatives = (a * a) @ hit_sq - 2.0 * ((a @ cross) * b).sum(axis=1)
        derivatives += ((b @ outer) * b).sum(axis=1)
        accuracy = float(tp.sum() / n)
        v_accuracy = float(spread_predicted.sum()) / (n * n)
        out = _estimates(
            _metric_names(k),
            np.concatenate([[accuracy, 1.0 - accuracy], values.mean(axis=1), values.ravel()]),
            np.concatenate(
                [[v_accuracy, v_accuracy], (squares - derivatives) / (k * k), per_class.ravel()]
            ),
            z,
            n,
        )
        if auc is not None:
            out.append(_estimate("roc_auc", "", auc[0], auc[1], z, n))
        return out

    def _auc(self, raw: FloatArray, p: FloatArray) -> tuple[float, float] | None:
        """Expected macro one-vs-rest ROC AUC of probability lists and its variance."""
        values, variances = [], []
        for c in range(p.shape[1]):
            auc = weighted_roc_auc(raw[:, c], p[:, c])
            if auc is None:
                return None
            values.append(auc)
            variances.append(_hanley_mcneil(auc, float(p[:, c].sum()), float((1 - p[:, c]).sum())))
        return float(np.mean(values)), float(np.sum(variances)) / len(values) ** 2


def _binary_auc(score: FloatArray, positive: FloatArray) -> tuple[float, float] | None:
    """Expected ROC AUC of sorted binary scores and its variance."""
    auc = sorted_weighted_roc_auc(score, positive)
    if auc is None:
        return None
    total = float(positive.sum())
    return auc, _hanley_mcneil(auc, total, score.size - total)


def _binary_gram(positive: FloatArray, negatives: int) -> FloatArray:
    """CBPE.estimate's Gram matrix for a binary window from six sums: ``positive`` is each
    event's calibrated P(y = 1) in the order of its score, the first ``negatives`` predicted
    0 (their hit is 1 - p), the rest 1 (hit p). Columns: 1, hit as class 0, hit as class 1,
    p0 = 1 - p, p1 = p."""
    below, above = positive[:negatives], positive[negatives:]
    n_b, n_a = float(below.size), float(above.size)
    s1_b, s2_b = float(below.sum()), float(below @ below)
    s1_a, s2_a = float(above.sum()), float(above @ above)
    n, s1, s2 = n_b + n_a, s1_b + s1_a, s2_b + s2_a
    hit0 = n_b - 2.0 * s1_b + s2_b  # the sum over predicted 0 of (1 - p)^2
    p0p1 = s1 - s2
    gram = np.array(
        [
            [n, n_b - s1_b, s1_a, n - s1, s1],
            [0.0, hit0, 0.0, hit0, s1_b - s2_b],
            [0.0, 0.0, s2_a, s1_a - s2_a, s2_a],
            [0.0, 0.0, 0.0, n - 2.0 * s1 + s2, p0p1],
            [0.0, 0.0, 0.0, 0.0, s2],
        ]
    )
    symmetric: FloatArray = np.triu(gram) + np.triu(gram, 1).T
    return symmetric


# ---- DLE -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Columns:
    """How DLE turns feature rows into numbers: numeric columns (NaN -> the reference median,
    plus a missing indicator) and categorical ones (one-hot over top categories + other)."""

    numeric: tuple[str, ...]
    medians: tuple[float, ...]
    categorical: tuple[str, ...]
    categories: tuple[tuple[str, ...], ...]

    @classmethod
    def fit(cls, features: Sequence[Mapping[str, object]]) -> _Columns:
        names = sorted({str(name) for row in features for name in row})
        numeric, medians, categorical, categories = [], [], [], []
        for name in names:
            values = [row.get(name) for row in features]
            types = _types(values)
            if not types:
                continue
            if types <= {int, float}:
                numbers = _as_numbers(values)
                present = numbers[~np.isnan(numbers)]
                if present.size:
                    numeric.append(name)
                    medians.append(float(np.median(present)))
            elif types <= {str, bool, int, float}:
                counts = Counter(c for c in map(_class_name, values) if c is not None)
                top = sorted(counts, key=lambda c: (-counts[c], c))[:TOP_CATEGORIES]
                categorical.append(name)
                categories.append(tuple(top))
        return cls(tuple(numeric), tuple(medians), tuple(categorical), tuple(categories))

    def encode(self, column: Callable[[str], Column], predicted: FloatArray) -> FloatArray:
        """The input matrix of the rows whose feature values ``column(name)`` gives: a column
        per numeric feature (then its missing indicator) and a one-hot block per categorical
        one, built a column at a time (one pass over the values per feature, the rest in
        numpy)."""
        n = predicted.size
        width = 1 + 2 * len(self.numeric) + sum(len(top) + 1 for top in self.categories)
        x = np.zeros((width, n))  # filled a contiguous row per column, returned transposed
        x[0] = predicted
        j = 1
        for name, median in zip(self.numeric, self.medians, strict=True):
            numbers = _as_numbers(column(name))
            missing = np.isnan(numbers)
            x[j] = numbers
            np.copyto(x[j], median, where=missing)
            x[j + 1] = missing
            j += 2
        rows = np.arange(n)
        for name, top in zip(self.categorical, self.categories, strict=True):
            x[j + _category_codes(column(name), top), rows] = 1.0
            j += len(top) + 1
        return x.T

    def clipped(self) -> list[int]:
        """The encoded columns whose values are clipped to the reference's range: the
        prediction's and each numeric feature's (not the 0/1 indicators)."""
        return [0, *(1 + 2 * i for i in range(len(self.numeric)))]


def _column_reader(features: Sequence[Mapping[str, object]]) -> Callable[[str], list[object]]:
    """A feature's values over the rows (None where a row lacks it); for plain dicts (decoded
    JSON) by ``dict.get`` mapped in C, else a row at a time."""
    if set(map(type, features)) <= {dict}:
        rows = cast("Sequence[dict[str, object]]", features)
        return lambda name: list(map(dict.get, rows, itertools.repeat(name)))
    return lambda name: [row.get(name) for row in features]


def _columns_reader(
    columns: Columns, kept: npt.NDArray[np.intp], n: int
) -> Callable[[str], Column]:
    """A feature's values at the ``kept`` positions of columns of ``n`` values (all None for
    a feature the columns lack, as for rows that lack it)."""
    every = kept.size == n

    def column(name: str) -> Column:
        values = columns.get(name)
        if values is None:
            return [None] * kept.size
        if not isinstance(values, np.ndarray | list):  # a tuple, a pandas Series: by position
            values = np.asarray(values) if hasattr(values, "__array__") else list(values)
        if isinstance(values, np.ndarray):
            return values if every else values[kept]
        return values if every else [values[i] for i in kept.tolist()]

    return column


def _category_codes(values: Column, top: tuple[str, ...]) -> npt.NDArray[np.int64]:
    """Each value's position in ``top`` (``len(top)``: another category or none). Text is its
    own class name: every value is looked up as it is, in C, and only those the lookup does
    not find (another category, or a value that is not text: a number, a bool, None) are
    named, by a dict of their distinct values (``_class_name`` runs once per distinct value,
    keyed by (type, value) since True == 1 == 1.0 are different classes)."""
    if isinstance(values, np.ndarray):
        values = values.tolist()  # the values as a list holds them (a text column: str)
    index = {c: i for i, c in enumerate(top)}
    other = len(top)
    try:
        found = map(index.get, values, itertools.repeat(other))
        codes = np.fromiter(found, dtype=np.int64, count=len(values))
    except TypeError:  # an unhashable value (a list, a dict): one at a time
        return np.fromiter(
            (index.get(_class_name(v) or "", other) for v in values),
            dtype=np.int64,
            count=len(values),
        )
    rest = np.flatnonzero(codes == other)
    unfound = [values[i] for i in rest.tolist()]
    if set(map(type, unfound)) <= {str}:  # other text: another category
        return codes
    keys = list(zip(map(type, unfound), unfound, strict=True))
    code = {key: index.get(_class_name(key[1]) or "", other) for key in set(keys)}
    codes[rest] = np.fromiter(map(code.__getitem__, keys), dtype=np.int64, count=len(keys))
    return codes


def _unpack(theta: FloatArray, d: int, h: int, o: int) -> tuple[FloatArray, ...]:
    i = 0
    w1 = theta[i : i + d * h].reshape(d, h)
    i += d * h
    b1 = theta[i : i + h]
    i += h
    w2 = theta[i : i + h * o].reshape(h, o)
    i += h * o
    return w1, b1, w2, theta[i : i + o]


def _blocks(n: int) -> list[slice]:
    """Row blocks small enough that OpenBLAS multiplies them on one thread: its threads spin
    on a busy machine (a fit took 10 s instead of 0.2 s at load 8 on 2 cores), and blocks that
    fit in cache are faster on one core anyway."""
    return [slice(start, start + BLOCK_ROWS) for start in range(0, n, BLOCK_ROWS)]


def _forward(theta: FloatArray, x: FloatArray, h: int, o: int) -> FloatArray:
    w1, b1, w2, b2 = _unpack(theta, x.shape[1], h, o)
    out = np.empty((x.shape[0], o))
    for rows in _blocks(x.shape[0]):
        out[rows] = np.maximum(x[rows] @ w1 + b1, 0.0) @ w2 + b2
    return out


def _loss(
    theta: FloatArray, x: FloatArray, y: FloatArray, penalty: float, h: int
) -> tuple[float, FloatArray]:
    """Mean squared error + penalty * |weights|^2 of the network, and its gradient."""
    n, d = x.shape
    o = y.shape[1]
    w1, b1, w2, b2 = _unpack(theta, d, h, o)
    squares = 0.0
    g_w1, g_b1 = 2.0 * penalty * w1, np.zeros(h)
    g_w2, g_b2 = 2.0 * penalty * w2, np.zeros(o)
    for rows in _blocks(n):
        xs = x[rows]
        hidden = np.maximum(xs @ w1 + b1, 0.0)
        residual = hidden @ w2 + b2 - y[rows]
        squares += float(np.square(residual).sum())
        d_out = residual * (2.0 / n)
        d_hidden = (d_out @ w2.T) * (hidden > 0.0)
        g_w2 += hidden.T @ d_out
        g_b2 += d_out.sum(axis=0)
        g_w1 += xs.T @ d_hidden
        g_b1 += d_hidden.sum(axis=0)
    value = squares / n + penalty * float(np.square(w1).sum() + np.square(w2).sum())
    return value, np.concatenate([g_w1.ravel(), g_b1, g_w2.ravel(), g_b2])


def _train(
    x: FloatArray,
    y: FloatArray,
    held: tuple[FloatArray, FloatArray],
    penalty: float,
    theta0: FloatArray,
    h: int,
) -> FloatArray:
    """L-BFGS-B on mean squared error + penalty * |weights|^2 with its analytic gradient,
    stopped early: the weights of the iteration best on the ``held`` out (x, y)."""
    o = y.shape[1]
    best_score, best_theta, iteration, best_iteration = math.inf, theta0, 0, 0

    def watch(intermediate_result: optimize.OptimizeResult) -> None:
        nonlocal best_score, best_theta, iteration, best_iteration
        iteration += 1
        theta = np.asarray(intermediate_result.x, dtype=np.float64)
        # the absolute error's column decides (the MAE is the headline)
        score = float(np.square(_forward(theta, held[0], h, o)[:, 0] - held[1][:, 0]).mean())
        if score < best_score:
            best_score, best_theta, best_iteration = score, theta.copy(), iteration
        elif iteration - best_iteration >= PATIENCE:
            raise StopIteration  # no better on the held-out rows for PATIENCE iterations

    optimize.minimize(
        _loss,
        theta0,
        args=(x, y, penalty, h),
        jac=True,
        method="L-BFGS-B",
        callback=watch,
        options={"maxiter": MAX_ITERATIONS},
    )
    return best_theta


def _regression_pairs(
    predictions: Sequence[float | None] | npt.NDArray[Any], labels: Sequence[float] | None
) -> FloatArray:
    kinds = _types(predictions)
    if not (kinds | (_types(labels) if labels is not None else set())) <= {int, float}:
        raise EstimationUnavailable(
            "not_regression",
            "direct loss estimation is for regressors: send numeric predictions and labels "
            "(use CBPE for a classifier's probabilities)",
        )
    return _as_numbers(predictions, kinds)


def _mixed_squares(squares: FloatArray, absolute: FloatArray, shape: float) -> FloatArray:
    """Each event's estimated e^2: the e^2 network's, averaged (SHAPE_WEIGHT) with the |e|
    network's squared times the reference's shape ratio E[e^2] / E[|e|]^2 (none when 0)."""
    if shape <= 0.0:
        return squares
    mixed: FloatArray = (1.0 - SHAPE_WEIGHT) * squares + SHAPE_WEIGHT * shape * absolute**2
    return mixed


@dataclass(frozen=True)
class _Inference:
    """The ensemble as one network for estimate: the members' hidden layers side by side (one
    matrix product instead of one per member, the biases a row of it against a column of
    ones), their output layers stacked and divided by their count (the mean output), the
    inputs no member uses left out, in float32 (a window's mean over its rows does not see the
    rounding, ~1e-7 of it)."""

    keep: npt.NDArray[np.intp]
    mean: FloatArray
    scale: FloatArray
    lower: FloatArray
    upper: FloatArray
    w1: npt.NDArray[np.float32]  # (inputs kept + 1) x (members * hidden), the biases last
    w2: tuple[npt.NDArray[np.float32], ...]  # a column of weights per output
    b2: FloatArray
    target_scale: FloatArray
    # ReLU against an array of zeros: numpy's maximum with a scalar 0 is 4x slower
    zeros: npt.NDArray[np.float32] = field(repr=False)

    @classmethod
    def of(cls, dle: DLE) -> _Inference:
        d, members, h = dle.mean.size, dle.theta.shape[0], dle.hidden
        parts = [_unpack(theta, d, h, 2) for theta in dle.theta]
        w1 = np.concatenate([p[0] for p in parts], axis=1)
        keep = np.flatnonzero(np.any(w1 != 0.0, axis=1))
        b1 = np.concatenate([p[1] for p in parts])
        w2 = np.concatenate([p[2] for p in parts]) / members
        inf = np.full(d, np.inf)
        lower = -inf if dle.lower is None else dle.lower
        upper = inf if dle.upper is None else dle.upper
        return cls(
            keep,
            dle.mean[keep],
            dle.scale[keep],
            lower[keep],
            upper[keep],
            np.vstack([w1[keep], b1]).astype(np.float32),
            tuple(np.ascontiguousarray(w2[:, j], dtype=np.float32) for j in range(2)),
            np.mean([p[3] for p in parts], axis=0),
            dle.target_scale,
            np.zeros((INFERENCE_ROWS, members * h), dtype=np.float32),
        )

    def errors(self, encoded: FloatArray) -> FloatArray:
        """The mean output of the networks, in the targets' units (|e|, e^2 columns)."""
        n = encoded.shape[0]
        x = np.ones((n, self.keep.size + 1), dtype=np.float32)
        standardised = (encoded[:, self.keep] - self.mean) / self.scale
        x[:, :-1] = np.clip(standardised, self.lower, self.upper)
        out = np.empty((2, n))
        # one buffer for every block's hidden layer: a fresh 640 kB array per block is
        # memory the allocator maps and faults in anew each time (2.5x the whole loop)
        buffer = np.empty((min(n, INFERENCE_ROWS), self.w1.shape[1]), dtype=np.float32)
        for start in range(0, n, INFERENCE_ROWS):
            rows = slice(start, start + INFERENCE_ROWS)
            block = x[rows]
            hidden = buffer[: block.shape[0]]
            np.matmul(block, self.w1, out=hidden)
            np.maximum(hidden, self.zeros[: block.shape[0]], out=hidden)
            for j, column in enumerate(self.w2):  # two matrix-vector products: faster than
                np.matmul(hidden, column, out=out[j, rows])  # one with a 2-column matrix
        out = out.T
        out += self.b2
        out *= self.target_scale
        return out


def _check_rows(
    features: Sequence[Mapping[str, object]], predictions: Sequence[object] | npt.NDArray[Any]
) -> None:
    if len(features) != len(predictions):
        raise EstimationUnavailable(
            "no_features",
            f"{len(features)} feature rows but {len(predictions)} predictions: send one "
            "feature row (a mapping, empty if there are none) per prediction",
        )


def _check_columns(columns: Columns, predictions: Sequence[object] | npt.NDArray[Any]) -> None:
    for name, values in columns.items():
        if isinstance(values, Mapping | set | frozenset):  # frame.to_dict()'s {index: value}
            raise EstimationUnavailable(
                "no_features",
                f"feature column {name!r} is a {type(values).__name__}, whose order is not the "
                "predictions': send a list or 1-D array per feature (frame.to_dict('list'))",
            )
        if isinstance(values, str | bytes) or not hasattr(values, "__len__"):
            raise EstimationUnavailable(
                "no_features",
                f"feature column {name!r} is a {type(values).__name__}, not a column: send a "
                "list or 1-D array of values per feature (or a feature row per prediction)",
            )
        if isinstance(values, np.ndarray) and values.ndim != 1:
            raise EstimationUnavailable(
                "no_features",
                f"feature column {name!r} has shape {np.shape(values)}: send a 1-D column",
            )
        if len(values) != len(predictions):
            raise EstimationUnavailable(
                "no_features",
                f"feature column {name!r} has {len(values)} values but there are "
                f"{len(predictions)} predictions: send one value (None if missing) per "
                "prediction",
            )


@dataclass(frozen=True)
class DLE:
    """Direct loss estimation: a one-hidden-layer MLP (ReLU) that predicts each event's
    absolute and squared error from its features and prediction, fitted on the reference.

    State: the column encoding, the inputs' means / scales, the targets' scales and the
    networks' weights (``theta``, a row per network of the ensemble, see ``MEMBERS``), all
    plain values and arrays.
    """

    columns: _Columns = field(repr=False)
    mean: FloatArray = field(repr=False)
    scale: FloatArray = field(repr=False)
    target_scale: FloatArray = field(repr=False)
    theta: FloatArray = field(repr=False)
    hidden: int = HIDDEN_UNITS
    penalty: float = 0.0
    n_reference: int = 0
    # the standardised inputs' range (see CLIP_PERCENTILES); +-inf: not clipped
    lower: FloatArray | None = field(default=None, repr=False)
    upper: FloatArray | None = field(default=None, repr=False)
    # the error model's own relative error of a window's mean |e| and e^2 (see fit)
    model_error: tuple[float, float] = (0.0, 0.0)
    # E[e^2] / E[|e|]^2 of the reference's errors, the ratio that turns the |e| network into a
    # second estimate of e^2 (see SHAPE_WEIGHT); 0: the e^2 network alone (older states)
    shape: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.shape) and self.shape >= 0.0):  # NaN fails both
            raise ValueError(
                f"shape {self.shape} is a ratio of mean squared errors: use 0 (none) or a "
                "finite positive value"
            )

    def __repr__(self) -> str:
        return (
            f"DLE({self.mean.size} inputs, {self.theta.shape[0]} x hidden={self.hidden}, "
            f"penalty={self.penalty:g}, n_reference={self.n_reference})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "numeric": list(self.columns.numeric),
            "medians": list(self.columns.medians),
            "categorical": list(self.columns.categorical),
            "categories": [list(c) for c in self.columns.categories],
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "target_scale": self.target_scale.tolist(),
            "theta": self.theta.tolist(),
            "hidden": self.hidden,
            "penalty": self.penalty,
            "n_reference": self.n_reference,
            "lower": None if self.lower is None else self.lower.tolist(),
            "upper": None if self.upper is None else self.upper.tolist(),
            "model_error": list(self.model_error),
            "shape": self.shape,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DLE:
        columns = _Columns(
            tuple(str(c) for c in data["numeric"]),
            tuple(float(m) for m in data["medians"]),
            tuple(str(c) for c in data["categorical"]),
            tuple(tuple(str(v) for v in c) for c in data["categories"]),
        )

        def array(name: str) -> FloatArray:
            return np.asarray(data[name], dtype=np.float64)

        error = data.get("model_error") or (0.0, 0.0)  # older states: none

        theta = array("theta")
        return cls(
            columns,
            array("mean"),
            array("scale"),
            array("target_scale"),
            theta.reshape(1, -1) if theta.ndim == 1 else theta,  # older states: one network
            int(data["hidden"]),
            float(data["penalty"]),
            int(data.get("n_reference", 0)),
            None if data.get("lower") is None else array("lower"),
            None if data.get("upper") is None else array("upper"),
            (float(error[0]), float(error[1])),
            float(data.get("shape", 0.0)),
        )

    @classmethod
    def fit(
        cls,
        features: Sequence[Mapping[str, object]],
        predictions: Sequence[float | None],
        labels: Sequence[float],
        *,
        seed: int = 0,
    ) -> DLE:
        """The error model of the reference (``features[i]``, ``predictions[i]``, ``labels[i]``)."""
        if isinstance(features, Mapping):
            raise EstimationUnavailable(
                "no_features",
                "DLE.fit takes a feature row (a mapping) per reference prediction, as events "
                "carry them; columns are for estimate",
            )
        _check_rows(features, predictions)
        if len(predictions) != len(labels):
            raise ValueError(
                f"{len(predictions)} predictions but {len(labels)} labels: pass them in pairs"
            )
        predicted = _regression_pairs(predictions, labels)
        if infer_task(predictions, labels) == "classification":
            raise EstimationUnavailable(
                "not_regression",
                "these are a binary classifier's scores (numbers in [0, 1] against 0/1 labels): "
                "estimate its quality with CBPE",
            )
        actual = _as_numbers(labels)
        kept = np.flatnonzero(~np.isnan(predicted) & ~np.isnan(actual))
        if kept.size < MIN_REFERENCE_PAIRS:
            raise EstimationUnavailable(
                "no_labels",
                f"direct loss estimation needs at least {MIN_REFERENCE_PAIRS} labelled "
                f"reference pairs; got {kept.size}: send more labels for the reference",
            )
        rows = [features[i] for i in kept.tolist()]
        columns = _Columns.fit(rows)
        x = np.ascontiguousarray(columns.encode(_column_reader(rows), predicted[kept]))
        mean, scale = x.mean(axis=0), x.std(axis=0)
        constant = scale <= 1e-12  # a feature never missing, a category never "other"
        scale = np.where(constant, 1.0, scale)
        x = (x - mean) / scale
        lower, upper = np.full(x.shape[1], -np.inf), np.full(x.shape[1], np.inf)
        clipped = columns.clipped()
        low, high = np.percentile(x[:, clipped], CLIP_PERCENTILES, axis=0)
        lower[clipped], upper[clipped] = low, high
        x = np.clip(x, lower, upper)  # trained as it is applied
        error = np.abs(predicted[kept] - actual[kept])
        y = np.column_stack([error, error * error])
        target_scale = y.std(axis=0)
        target_scale = np.where(target_scale > 1e-12, target_scale, 1.0)
        y = y / target_scale

        rng = np.random.default_rng(seed)
        n, d = x.shape
        h, o = HIDDEN_UNITS, 2
        thetas = []
        out = np.empty((n, o))  # each row's estimate by the network that did not train on it
        for held in np.array_split(rng.permutation(n), MEMBERS):
            train = np.ones(n, dtype=bool)
            train[held] = False
            theta0 = np.concatenate(
                [
                    rng.normal(0.0, 1.0 / math.sqrt(d), d * h),
                    np.zeros(h),
                    rng.normal(0.0, 1.0 / math.sqrt(h), h * o),
                    y.mean(axis=0),
                ]
            )
            theta = _train(x[train], y[train], (x[held], y[held]), PENALTY, theta0, h)
            # a column constant in the reference is 0 in every row the network saw: its
            # weights are what the penalty left of their random start, and taught nothing;
            # zeroed, the input is ignored (and estimate skips it, see _Inference)
            _unpack(theta, d, h, o)[0][constant] = 0.0
            thetas.append(theta)
            out[held] = np.maximum(_forward(theta, x[held], h, o), 0.0)
        # The band's term for the error model itself. Its bias does not shrink with the
        # window's n (every window shares it), so it is not a per-event variance: it is the
        # relative error of the mean estimate on held-out rows, |mean(estimated) /
        # mean(realised) - 1| for |e| and for e^2, each row estimated by the one network that
        # held it out (so a single network's error, not the ensemble's smaller one, and that
        # figure's own sampling error: it errs wide). The stationary band grows by that much
        # in quadrature; it does not claim to cover extrapolation.
        absolute = out[:, 0] * target_scale[0]
        squares = error * error
        shape = float(squares.mean() / max(float(np.mean(absolute * absolute)), 1e-300))
        out[:, 1] = _mixed_squares(out[:, 1] * target_scale[1], absolute, shape) / target_scale[1]
        realised = y.mean(axis=0)
        relative = np.abs(out.mean(axis=0) / np.where(realised > 0, realised, 1.0) - 1.0)
        return cls(
            columns,
            mean,
            scale,
            target_scale,
            np.stack(thetas),
            h,
            PENALTY,
            int(n),
            lower,
            upper,
            (float(relative[0]), float(relative[1])),
            shape,
        )

    @functools.cached_property
    def _inference(self) -> _Inference:
        return _Inference.of(self)

    def estimate(
        self,
        features: Features,
        predictions: Sequence[float | None] | npt.NDArray[Any],
        *,
        confidence: float = 0.95,
    ) -> list[Estimate]:
        """Estimated MAE and RMSE of a window; events without a prediction are skipped.

        ``features``: a feature row (a mapping) per prediction, as events carry them, or
        the window as columns, a mapping of feature name to a list or 1-D array of its
        values (a batch caller's frame: ``{c: frame[c].to_numpy() for c in frame}``), which
        skips reading every row. Both give the same estimates."""
        z = _z(confidence)
        if isinstance(features, Mapping):
            _check_columns(features, predictions)
        else:
            _check_rows(features, predictions)
        predicted = _regression_pairs(predictions, None)
        kept = np.flatnonzero(~np.isnan(predicted))
        n = int(kept.size)
        if n == 0:
            return []
        if isinstance(features, Mapping):
            column = _columns_reader(features, kept, predicted.size)
        else:
            rows = [features[i] for i in kept.tolist()] if n < len(features) else features
            column = _column_reader(rows)
        out = self._inference.errors(self.columns.encode(column, predicted[kept]))
        absolute = np.maximum(out[:, 0], 0.0)
        squared = np.maximum(_mixed_squares(out[:, 1], absolute, self.shape), absolute * absolute)
        mae = float(absolute.mean())
        mse = float(squared.mean())
        bias_mae, bias_mse = self.model_error[0] * mae, self.model_error[1] * mse
        v_mae = float((squared - absolute * absolute).sum()) / n**2 + bias_mae**2
        # Var(e^2) of a normal error is 2 E[e^2]^2; RMSE = sqrt(MSE) by the delta method
        v_mse = float((2.0 * squared * squared).sum()) / n**2 + bias_mse**2
        rmse = math.sqrt(mse)
        v_rmse = v_mse / (4.0 * mse) if mse > 0 else 0.0
        return [
            _estimate("mae", "", mae, v_mae, z, n, top=math.inf),
            _estimate("rmse", "", rmse, v_rmse, z, n, top=math.inf),
        ]


# ---- the drop test ---------------------------------------------------------------------


def estimated_drop_test(
    reference: QualityStats,
    estimates: Sequence[Estimate],
    *,
    min_effect: float | None = None,
    confidence: float = 0.95,
) -> DriftTestResult:
    """One-sided test that a window's *estimated* quality is worse than the reference's
    measured quality; decide with ``is_drift``.

    Classification compares the estimated error rate with the reference's, regression the
    estimated MAE; effects and default minimum effects are those of ``quality_drop_test``
    (+0.05 error rate; +10% relative MAE), 0 for an improvement. The estimate's standard
    error is read off its band (``confidence`` is the band's, its wider side over z) and
    combined with the reference's sampling error in a z-test.
    """
    task = reference.task
    if min_effect is None:
        min_effect = QUALITY_DROP_MIN_EFFECT[task] if task else 0.0
    wanted = PREFIX + ("error_rate" if task == "classification" else "mae")
    found = [e for e in estimates if e.metric == wanted and e.category == ""]
    if task == "classification" and not found:  # an accuracy alone says the same
        found = [
            Estimate(wanted, "", 1.0 - e.value, 1.0 - e.upper, 1.0 - e.lower, e.n)
            for e in estimates
            if e.metric == PREFIX + "accuracy" and e.category == ""
        ]
    n0 = reference.n
    n1 = found[0].n if found else 0
    if task is None or n0 < 2 or not found:
        return no_evidence("estimated_quality_drop", min_effect, n0, n1, has_p_value=True)
    estimate = found[0]
    m0, m1 = reference.error_sum / n0, estimate.value
    se1 = max(estimate.upper - m1, m1 - estimate.lower, 0.0) / _z(confidence)
    if task == "classification":
        v0 = m0 * (1.0 - m0) / n0
        effect = max(0.0, m1 - m0)
    else:
        v0 = max(0.0, (reference.error_sq_sum - n0 * m0 * m0) / (n0 - 1)) / n0
        effect = relative_rise(m0, m1)
    se = math.sqrt(v0 + se1 * se1)
    if se > 0:
        statistic = (m1 - m0) / se
        p_value = float(scipy_stats.norm.sf(statistic))
    else:
        statistic, p_value = 0.0, 0.0 if m1 > m0 else 1.0
    return drop_result("estimated_quality_drop", statistic, p_value, effect, min_effect, n0, n1)


def errors_beyond_bands(standardised_errors: Sequence[float]) -> float:
    """The chance of estimation errors this large if the bands were right: each window's
    (estimated - measured) over its standard error is then about N(0, 1), so their sum of
    squares is chi-square with one degree of freedom a window. Small: do not trust the
    estimates (their calibration no longer holds, or concept drift). 1.0 for no windows.

    >>> round(errors_beyond_bands([0.5, -1.0, 0.3, 1.2, -0.4]), 2)
    0.71
    >>> errors_beyond_bands([0.5, -1.0, 8.0, 1.2, -0.4]) < 1e-6
    True
    """
    finite = [z for z in standardised_errors if math.isfinite(z)]
    if not finite:
        return 1.0
    return float(scipy_stats.chi2.sf(sum(z * z for z in finite), len(finite)))


__all__ = [
    "CBPE",
    "DLE",
    "MIN_REFERENCE_PAIRS",
    "Estimate",
    "EstimationUnavailable",
    "errors_beyond_bands",
    "estimated_drop_test",
]
