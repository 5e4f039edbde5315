"""Model quality from (prediction, label) pairs, and a one-sided test for a quality drop.

Inputs are decoded JSON values. A prediction is a number, a string, a bool, a list of class
probabilities, or None (not scorable); a label is a number, a string or a bool. The task is
inferred unless given (``infer_task``): lists, strings and bools are classification; numbers
all in [0, 1] against labels all 0/1 are the positive-class scores of a binary classifier
(positive class "1", predicted when the score is at least ``threshold``); other numbers are
regression. A classification given explicitly with other numbers treats them as class labels.

Classification reports accuracy, error rate, per-class precision / recall / F1 / support and
their macro averages (the honest headline when classes are skewed: a class that is never
predicted scores 0, never NaN), plus log loss, expected calibration error and ROC AUC
(binary: of the score; probability lists: macro one-vs-rest; only while every class is in
the labels) where the model gives probabilities, and the predicted and actual positive
rates for binary models.
Regression reports MAE, RMSE and bias (mean of prediction - label). Pairs that cannot be
scored (no prediction, a label of the wrong kind) are counted in ``unscorable``, not dropped
silently.

``QualityStats`` keeps the sufficient statistics of the per-pair errors (0/1 misclassified,
or absolute error); it merges across windows and round-trips through JSON, and
``quality_drop_test`` compares two of them: drift only when the current window is *worse*.
A unit's reference quality pools its first labelled windows (``reference_stats``), rebuilt
from the few figures each window keeps (``history_values``, ``stats_from_metrics``).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> labels = rng.integers(0, 2, 2_000)
>>> good = np.clip(labels + rng.normal(0.0, 0.35, 2_000), 0.0, 1.0)
>>> worse = np.clip(labels + rng.normal(0.0, 0.6, 2_000), 0.0, 1.0)
>>> before = score_quality(good.tolist(), labels.tolist())
>>> before.task, before.count, round(before.metric_value("quality.error_rate"), 2)
('classification', 2000, 0.07)
>>> after = score_quality([*worse.tolist(), None], [*labels.tolist(), 1])
>>> after.count, after.unscorable, round(after.metric_value("quality.error_rate"), 2)
(2000, 1, 0.2)
>>> quality_drop_test(before.stats, after.stats).is_drift()
True
>>> quality_drop_test(after.stats, before.stats).is_drift()  # an improvement is not drift
False
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, TypeGuard, TypeVar, cast, get_args

import numpy as np
import numpy.typing as npt
from scipy import stats as scipy_stats

from detectors.drift.result import DriftTestResult, DriftWhen, FloatArray, no_evidence

Task = Literal["classification", "regression"]
TASKS: tuple[Task, ...] = get_args(Task)
Prediction = float | int | str | bool | list[float] | None
# a window's predictions: a list of them, or (a batch caller's) an array of scores or of
# probability rows
Predictions = Sequence[Prediction] | npt.NDArray[Any]
Label = float | int | str | bool
IntArray = npt.NDArray[np.int64]

OTHER_CLASS = "__other__"  # the per-class row of every class beyond ``max_classes``
LOG_LOSS_EPS = 1e-15
CALIBRATION_BINS = 10
# Defaults of ``quality_drop_test``: 5 points more misclassified; 10% larger MAE.
QUALITY_DROP_MIN_EFFECT: Mapping[Task, float] = {"classification": 0.05, "regression": 0.1}
# A perfect reference (MAE 0) makes any error an unbounded relative increase; it is reported
# as this finite value, because stores and JSON drop infinities.
MAX_RELATIVE_EFFECT = 1e6


class QualityMetric(NamedTuple):
    """One metric value; ``category`` is the class for per-class metrics, else ""."""

    metric: str
    category: str
    value: float


@dataclass(frozen=True)
class QualityStats:
    """Sufficient statistics of the per-pair errors of one window, mergeable.

    ``error_sum`` is the misclassified count (classification) or the sum of absolute errors
    (regression); ``error_sq_sum`` the sum of their squares. ``task`` is None only when
    nothing was scored.
    """

    task: Task | None
    n: int = 0
    error_sum: float = 0.0
    error_sq_sum: float = 0.0

    def __post_init__(self) -> None:
        if self.task is not None and self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; use one of {', '.join(TASKS)}")
        if self.n < 0 or (self.task is None and self.n > 0):
            raise ValueError(f"stats of {self.n} scored pairs need a task and n >= 0")

    @classmethod
    def from_errors(cls, task: Task | None, errors: FloatArray) -> QualityStats:
        values = np.asarray(errors, dtype=np.float64)
        return cls(task, int(values.size), float(values.sum()), float(np.square(values).sum()))

    @property
    def mean_error(self) -> float | None:
        """Error rate (classification) or MAE (regression); None when empty."""
        return self.error_sum / self.n if self.n else None

    def merge(self, other: QualityStats) -> QualityStats:
        if self.task is not None and other.task is not None and self.task != other.task:
            raise ValueError(f"cannot merge {self.task} quality with {other.task} quality")
        return QualityStats(
            self.task or other.task,
            self.n + other.n,
            self.error_sum + other.error_sum,
            self.error_sq_sum + other.error_sq_sum,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "n": self.n,
            "error_sum": self.error_sum,
            "error_sq_sum": self.error_sq_sum,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QualityStats:
        task = data.get("task")
        if task is not None and task not in TASKS:
            raise ValueError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
        return cls(task, int(data["n"]), float(data["error_sum"]), float(data["error_sq_sum"]))


@dataclass(frozen=True, eq=False)  # eq=False: arrays have no single truth value
class QualityResult:
    """The quality of one batch of pairs; ``errors`` has one value per scored pair, in order."""

    task: Task | None
    count: int
    unscorable: int
    metrics: tuple[QualityMetric, ...]
    errors: FloatArray
    stats: QualityStats

    def metric_value(self, metric: str, category: str = "") -> float | None:
        """The value of one metric (None when it was not computed)."""
        for row in self.metrics:
            if row.metric == metric and row.category == category:
                return row.value
        return None


# ---- reading decoded JSON values -------------------------------------------------------


def _is_number(value: object) -> TypeGuard[int | float]:
    # bool is an int subclass, but a JSON true is not the number 1 here
    if isinstance(value, float):
        return math.isfinite(value)
    # compared, not converted: a huge JSON integer must not overflow float()
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 1e308


def _plain_numbers(values: object) -> TypeGuard[npt.NDArray[Any]]:
    """Whether ``values`` is a numeric array numpy converts whole (a masked one is not: its
    masked entries are missing, as its ``tolist`` says)."""
    numeric = isinstance(values, np.ndarray) and values.dtype.kind in "fiu"
    return numeric and not isinstance(values, np.ma.MaskedArray)


def _types(values: Sequence[object] | npt.NDArray[Any]) -> set[type]:
    """The types of the values but None; a 1-D numeric array's values count as floats."""
    if _plain_numbers(values) and values.ndim == 1:
        return {float} if values.size else set()  # NaN and inf judged as in a list
    kinds = set(map(type, values))  # map and set in C: the fast path's check is cheap
    kinds.discard(type(None))
    return kinds


def _as_numbers(
    values: Sequence[object] | npt.NDArray[Any], kinds: set[type] | None = None
) -> FloatArray:
    """Each value as a float; NaN for anything that is not a finite number (bools included).
    ``kinds``: the values' ``_types``, when the caller has them. ``values`` may be a 1-D
    array: a numeric one is converted whole; any other (bool, text, objects) value by value,
    as the same values in a list."""
    numbers: FloatArray | None = None
    if isinstance(values, np.ndarray) and not _plain_numbers(values):
        values = values.tolist()
        kinds = None
    if (_types(values) if kinds is None else kinds) <= {int, float}:
        # the fast path for plain numeric columns (None becomes NaN); a huge int overflows
        with contextlib.suppress(OverflowError):
            numbers = np.asarray(values, dtype=np.float64)
    if numbers is None:
        numbers = np.array([float(v) if _is_number(v) else np.nan for v in values])
    return np.where(np.isfinite(numbers), numbers, np.nan)


def _binary_label(label: object) -> bool | None:
    """True / False for a 0/1-like label (bool, 0 or 1, "0"/"1"/"true"/"false"), else None."""
    if isinstance(label, bool):
        return label
    if _is_number(label):
        return True if label == 1 else False if label == 0 else None
    if isinstance(label, str):
        return {"1": True, "true": True, "0": False, "false": False}.get(label.strip().lower())
    return None


def _binary_labels(labels: Sequence[Label]) -> FloatArray:
    """1.0 / 0.0 for each 0/1-like label, NaN for any other."""
    if _types(labels) <= {int, float}:
        numbers = _as_numbers(labels)
        return np.where((numbers == 0) | (numbers == 1), numbers, np.nan)
    bits = (_binary_label(y) for y in labels)
    return np.array([np.nan if b is None else float(b) for b in bits], dtype=np.float64)


def _class_name(value: object) -> str | None:
    """A class label as text: 1 and 1.0 are the same class "1"; bools are "true"/"false"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if _is_number(value):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    return None


def _class_index(label: object) -> int | None:
    """A label naming a column of a probability list: 2, 2.0 or "2"."""
    if isinstance(label, str) and label.strip().isdecimal():
        return int(label)
    if _is_number(label) and label >= 0 and float(label).is_integer():
        return int(label)
    return None


def _check_pairs(predictions: Sequence[Prediction], labels: Sequence[Label]) -> None:
    if len(predictions) != len(labels):
        raise ValueError(
            f"{len(predictions)} predictions but {len(labels)} labels: pass them in pairs"
        )


def _all_scores(predictions: Sequence[Prediction]) -> bool:
    """Whether every prediction present is a number in [0, 1] (and there is one)."""
    types = _types(predictions)
    if not types or not types <= {int, float}:
        return False
    numbers = _as_numbers(predictions)
    present = numbers[~np.isnan(numbers)]
    return bool(present.size) and bool(((present >= 0.0) & (present <= 1.0)).all())


def infer_task(predictions: Sequence[Prediction], labels: Sequence[Label]) -> Task | None:
    """The task the pairs describe, or None when there is nothing to score.

    Scores in [0, 1] are a binary classifier's when every numeric or bool label beside them
    is 0/1 (and there is one); labels of neither kind are unscorable either way, so they do
    not decide. A numeric label other than 0/1 makes the pairs a regression.
    """
    _check_pairs(predictions, labels)
    if any(issubclass(t, list | tuple | str | bool) for t in _types(predictions)):
        return "classification"
    present = ~np.isnan(_as_numbers(predictions))
    numbers = _as_numbers(labels)[present]
    if _all_scores(predictions):
        bits = _binary_labels(labels)[present]
        # labels of no usable kind are unscorable either way; any other number is a target
        if (~np.isnan(bits)).any() and not (np.isnan(bits) & ~np.isnan(numbers)).any():
            return "classification"
    return "regression" if (~np.isnan(numbers)).any() else None


# ---- classification --------------------------------------------------------------------


@dataclass(frozen=True)
class _Encoded:
    """Scored classification pairs as class codes, with probabilities where there are some."""

    classes: tuple[str, ...]
    y_true: IntArray
    y_pred: IntArray
    prob_true: FloatArray | None = None  # the model's probability of the true class
    confidence: FloatArray | None = None  # its probability of the class it predicted
    positive: int | None = None  # the positive class's code, for a binary model
    # the model's probabilities, a column per class (a binary score s is [1 - s, s])
    probabilities: FloatArray | None = None


def _encode_scores(
    predictions: Sequence[Prediction], labels: Sequence[Label], threshold: float
) -> _Encoded:
    score, truth = _as_numbers(predictions), _binary_labels(labels)
    scored = (score >= 0.0) & (score <= 1.0) & ~np.isnan(truth)  # NaN compares False
    score, y_true = score[scored], truth[scored].astype(np.int64)
    y_pred = (score >= threshold).astype(np.int64)
    return _Encoded(
        classes=("0", "1"),
        y_true=y_true,
        y_pred=y_pred,
        prob_true=np.where(y_true == 1, score, 1.0 - score),
        confidence=np.where(y_pred == 1, score, 1.0 - score),
        positive=1,
        probabilities=np.column_stack([1.0 - score, score]),
    )


def _encode_booleans(predictions: Sequence[Prediction], labels: Sequence[Label]) -> _Encoded:
    predicted = np.array([float(p) if isinstance(p, bool) else np.nan for p in predictions])
    truth = _binary_labels(labels)
    scored = ~np.isnan(predicted) & ~np.isnan(truth)
    y_true, y_pred = truth[scored].astype(np.int64), predicted[scored].astype(np.int64)
    return _Encoded(("false", "true"), y_true, y_pred, positive=1)


def _encode_names(predictions: Sequence[Prediction], labels: Sequence[Label]) -> _Encoded:
    truth, predicted = [], []
    for p, y in zip(predictions, labels, strict=True):
        name, label = _class_name(p), _class_name(y)
        if name is not None and label is not None:
            truth.append(label)
            predicted.append(name)
    classes, codes = np.unique(np.array(truth + predicted, dtype=object), return_inverse=True)
    codes = codes.astype(np.int64)
    return _Encoded(tuple(str(c) for c in classes), codes[: len(truth)], codes[len(truth) :])


def _probability_rows(rows: Sequence[Prediction], width: int) -> FloatArray:
    """Rows as an array; a row that is not numeric becomes NaN (and is then unscorable)."""
    try:
        return np.array(rows, dtype=np.float64).reshape(len(rows), width)
    except (TypeError, ValueError):
        matrix = np.full((len(rows), width), np.nan)
        for i, row in enumerate(rows):
            try:
                matrix[i] = np.asarray(row, dtype=np.float64)
            except (TypeError, ValueError):  # a row with a non-numeric entry
                continue
        return matrix


def _class_indices(labels: Sequence[Label]) -> FloatArray:
    """Each label as a column index of a probability list (2, 2.0 or "2"); NaN if it is none."""
    if _types(labels) <= {int, float}:
        numbers = _as_numbers(labels)
        return np.where((numbers >= 0) & (numbers == np.floor(numbers)), numbers, np.nan)
    indices = (_class_index(y) for y in labels)
    return np.array([np.nan if i is None else float(i) for i in indices], dtype=np.float64)


def probability_matrix(
    predictions: Predictions, width: int, keep: npt.NDArray[np.bool_] | None = None
) -> tuple[FloatArray, IntArray]:
    """The probability lists of ``width`` columns (and ``keep``), each divided by its sum, and
    the positions they came from; rows of another width, non-numeric, negative or all-zero
    rows are left out (unscorable). ``predictions`` may be an array of rows (a batch
    caller's): a numeric one of ``width`` columns is taken whole, any other judged row by row
    as the same rows in a list."""
    if isinstance(predictions, np.ndarray):
        numeric = _plain_numbers(predictions) and predictions.ndim == 2
        if not (numeric and predictions.shape[1] == width):
            predictions = predictions.tolist()
    matrix = _uniform_rows(predictions, width)
    if matrix is not None:  # every row a list / tuple of ``width`` values: no per-row loop
        if keep is None:  # every row: no copy of the matrix
            return _normalised(matrix, np.arange(len(predictions)))
        scored = np.flatnonzero(keep)
        return _normalised(matrix[scored], scored)
    lengths = np.fromiter(
        (len(p) if isinstance(p, list | tuple) else -1 for p in predictions),
        dtype=np.int64,
        count=len(predictions),
    )
    wanted = lengths == width if keep is None else (lengths == width) & keep
    scored = np.flatnonzero(wanted)
    every = scored.size == len(predictions)
    rows = list(predictions) if every else [predictions[i] for i in scored.tolist()]
    return _normalised(_probability_rows(rows, width), scored)


def _uniform_rows(predictions: Predictions, width: int) -> FloatArray | None:
    """The rows as one array when every row is a plain list or tuple of ``width`` numbers (the
    common case, converted in C); None when any row is not, for the careful path. The same
    numbers the careful path gives (its ``np.array`` converts each entry as ``fromiter`` does)."""
    if isinstance(predictions, np.ndarray):  # probability_matrix's numeric array of rows
        # in C order, as a list's rows give it: the window's row-wise passes read it alike
        return np.ascontiguousarray(predictions, dtype=np.float64)
    if not predictions or not set(map(type, predictions)) <= {list, tuple}:
        return None
    rows = cast("Sequence[Sequence[object]]", predictions)
    if set(map(len, rows)) != {width}:  # ragged
        return None
    try:  # the flat iterator: twice as fast as np.array's walk of nested lists
        flat = itertools.chain.from_iterable(rows)
        matrix = np.fromiter(flat, dtype=np.float64, count=len(rows) * width)
    except (TypeError, ValueError, OverflowError):  # a non-numeric or nested entry
        return None
    return matrix.reshape(len(rows), width)


# up to this many columns numpy's sum(axis=1) adds a row's values one after another (wider
# rows are summed pairwise, in blocks of 8), so adding the columns gives its very bits
SEQUENTIAL_COLUMNS = 7


def row_sums(matrix: FloatArray) -> FloatArray:
    """``matrix.sum(axis=1)`` of a 2-D array, to the bit: a narrow matrix's (a window of
    probability lists) as its columns added in turn, 8x faster than the reduction over short
    rows and, unlike a product with ones, without BLAS threads (OpenBLAS spun a second thread
    for one of 5,000 x 2)."""
    k = matrix.shape[1]
    if k == 0 or k > SEQUENTIAL_COLUMNS:  # a C-order row's sum: another layout adds otherwise
        totals: FloatArray = np.ascontiguousarray(matrix).sum(axis=1)
        return totals
    totals = matrix[:, 0].copy()
    for j in range(1, k):
        totals += matrix[:, j]
    return totals


def _normalised(matrix: FloatArray, scored: IntArray) -> tuple[FloatArray, IntArray]:
    totals = row_sums(matrix)
    # NaN or inf in a row makes its total one; a negative entry shows in the minimum
    clean = matrix.size > 0 and matrix.min() >= 0  # the whole array's minimum: one pass
    if clean and np.isfinite(totals).all() and (totals > 0).all():
        # rows are divided by their sum so that log loss is defined for slightly unnormalised
        return matrix / totals[:, None], scored
    valid = np.isfinite(totals) & (totals > 0)
    if matrix.size:
        valid &= matrix.min(axis=1) >= 0
    return matrix[valid] / totals[valid, None], scored[valid]


def _encode_probabilities(predictions: Sequence[Prediction], labels: Sequence[Label]) -> _Encoded:
    lengths = [len(p) if isinstance(p, list | tuple) else -1 for p in predictions]
    # Rows of the most common width are scored; others cannot be lined up with them.
    width = Counter(n for n in lengths if n >= 0).most_common(1)[0][0]
    index = _class_indices(labels)
    matrix, rows = probability_matrix(predictions, width, index < width)  # NaN: False
    y_true = index[rows].astype(np.int64)
    y_pred = np.argmax(matrix, axis=1).astype(np.int64) if width else y_true
    return _Encoded(
        classes=tuple(str(k) for k in range(width)),
        y_true=y_true,
        y_pred=y_pred,
        prob_true=matrix[np.arange(y_true.size), y_true],
        confidence=matrix[np.arange(y_true.size), y_pred],
        probabilities=matrix,
    )


def _encode(
    predictions: Sequence[Prediction], labels: Sequence[Label], threshold: float
) -> _Encoded:
    types = _types(predictions)
    if any(issubclass(t, list | tuple) for t in types):
        return _encode_probabilities(predictions, labels)
    if types and all(issubclass(t, bool) for t in types):
        return _encode_booleans(predictions, labels)
    if _all_scores(predictions):
        return _encode_scores(predictions, labels, threshold)
    return _encode_names(predictions, labels)


def _divide(numerator: FloatArray, denominator: FloatArray) -> FloatArray:
    """numerator / denominator, 0 where the denominator is 0 (an undefined rate scores 0)."""
    out = np.zeros(np.shape(numerator), dtype=np.float64)
    return np.divide(numerator, denominator, out=out, where=denominator > 0)


def _per_class(
    y_true: IntArray, y_pred: IntArray, k: int
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Precision, recall, F1 and support of each of ``k`` class codes."""
    hits = y_true[y_true == y_pred]
    tp = np.bincount(hits, minlength=k).astype(np.float64)
    support = np.bincount(y_true, minlength=k).astype(np.float64)
    predicted = np.bincount(y_pred, minlength=k).astype(np.float64)
    precision, recall = _divide(tp, predicted), _divide(tp, support)
    return precision, recall, _divide(2 * precision * recall, precision + recall), support


def _natural(name: str) -> tuple[int, int, str]:
    return (0, int(name), "") if name.isdecimal() else (1, 0, name)


def _class_rows(encoded: _Encoded, present: IntArray, max_classes: int) -> list[QualityMetric]:
    """Per-class metrics; the classes beyond ``max_classes`` by support fold into one."""
    k = len(encoded.classes)
    support = np.bincount(encoded.y_true, minlength=k)
    predicted = np.bincount(encoded.y_pred, minlength=k)
    ranked = sorted(
        present.tolist(),
        key=lambda c: (-support[c], -predicted[c], _natural(encoded.classes[c])),
    )
    kept = sorted(ranked[:max_classes], key=lambda c: _natural(encoded.classes[c]))
    names = [encoded.classes[c] for c in kept]
    fold = np.full(k, len(kept), dtype=np.int64)
    fold[kept] = np.arange(len(kept))
    if len(ranked) > max_classes:
        names.append(OTHER_CLASS)
    actual, predicted_class = fold[encoded.y_true], fold[encoded.y_pred]
    columns = _per_class(actual, predicted_class, len(kept) + 1)
    rows = []
    for i, name in enumerate(names):
        for metric, values in zip(("precision", "recall", "f1", "support"), columns, strict=True):
            rows.append(QualityMetric(f"quality.{metric}", name, float(values[i])))
    # the confusion counts, a row per non-empty cell: category "<actual>|<predicted>"
    width = len(kept) + 1
    cells = np.bincount(actual * width + predicted_class, minlength=width * width)
    for cell in np.flatnonzero(cells):
        a, b = divmod(int(cell), width)
        rows.append(
            QualityMetric("quality.confusion", f"{names[a]}|{names[b]}", float(cells[cell]))
        )
    return rows


def _calibration_error(confidence: FloatArray, correct: FloatArray) -> float:
    """Expected calibration error over equal-width bins of the predicted class's probability."""
    bins = np.minimum((confidence * CALIBRATION_BINS).astype(np.int64), CALIBRATION_BINS - 1)
    gap = np.bincount(bins, weights=correct, minlength=CALIBRATION_BINS) - np.bincount(
        bins, weights=confidence, minlength=CALIBRATION_BINS
    )
    # sum over bins of (n_b / n) |accuracy_b - confidence_b| = sum |hits_b - conf_sum_b| / n
    return float(np.abs(gap).sum() / confidence.size)


def weighted_roc_auc(scores: FloatArray, positive: FloatArray) -> float | None:
    """ROC AUC of ``scores`` where event i is positive with probability ``positive[i]``.

    With 0/1 ``positive`` (labels) it is the measured AUC, U / (n1 n0) of the Mann-Whitney
    test with ties counted half. With probabilities it is the AUC against soft labels: each
    event is a positive of weight p and a negative of weight 1 - p (what ``roc_auc_score``
    gives the events written twice with those sample weights), so the ratio of the expected
    weight of (positive, negative) pairs ranked in order, ties half, to that of all such
    pairs; an event's own two halves are a tied pair. (Leaving them out, the ratio of the
    expected counts of distinct pairs, moves it by about (AUC - 1/2) * sum(p q) / (P Q), some
    1e-4 at 1,000 events: below what a window's realised AUC varies by, on either side.)
    O(n log n); None when there is no pair (a class absent).
    """
    # a column of a matrix is strided: sorting a contiguous copy takes half the time; any
    # sort will do (3x faster than a stable one): tied scores are summed as one group
    order = np.argsort(np.ascontiguousarray(scores))
    return sorted_weighted_roc_auc(scores[order], positive[order])


def sorted_weighted_roc_auc(s: FloatArray, p: FloatArray) -> float | None:
    """``weighted_roc_auc`` of scores ``s`` already in ascending order."""
    q = 1.0 - p
    if s.size == 0:
        return None
    new = s[1:] != s[:-1]
    if new.all():  # no tied scores: each event is its own group
        pos, neg = p, q
    else:
        starts = np.flatnonzero(np.r_[True, new])
        pos = np.add.reduceat(p, starts)
        neg = np.diff(np.r_[starts, s.size]) - pos  # each group's size less its positives
    below = np.cumsum(neg) - neg  # the negative weight of lower scores
    pairs = float(pos.sum() * neg.sum())
    if pairs <= 1e-12:
        return None
    ordered = float((pos * below).sum() + 0.5 * (pos * neg).sum())
    return min(1.0, max(0.0, ordered / pairs))


def _measured_auc(encoded: _Encoded) -> float | None:
    """Binary: the AUC of the score; probability lists: macro one-vs-rest over the columns.
    None when a class is absent from the labels (the AUC is undefined)."""
    matrix = encoded.probabilities
    k = 0 if matrix is None else matrix.shape[1]
    if matrix is None or k < 2 or np.bincount(encoded.y_true, minlength=k).min() == 0:
        return None
    columns = [1] if k == 2 else range(k)
    aucs = [
        weighted_roc_auc(matrix[:, c], (encoded.y_true == c).astype(np.float64)) for c in columns
    ]
    present = [a for a in aucs if a is not None]
    return float(np.mean(present)) if len(present) == len(aucs) else None


def _classification(encoded: _Encoded, max_classes: int) -> tuple[list[QualityMetric], FloatArray]:
    correct = (encoded.y_true == encoded.y_pred).astype(np.float64)
    if correct.size == 0:
        return [], correct
    k = len(encoded.classes)
    precision, recall, f1, support = _per_class(encoded.y_true, encoded.y_pred, k)
    # macro averages run over the classes seen in labels or predictions, not folded ones
    present = np.flatnonzero(support + np.bincount(encoded.y_pred, minlength=k) > 0)
    accuracy = float(correct.mean())
    metrics = [
        QualityMetric("quality.accuracy", "", accuracy),
        QualityMetric("quality.error_rate", "", 1.0 - accuracy),
        QualityMetric("quality.precision_macro", "", float(precision[present].mean())),
        QualityMetric("quality.recall_macro", "", float(recall[present].mean())),
        QualityMetric("quality.f1_macro", "", float(f1[present].mean())),
    ]
    if encoded.prob_true is not None and encoded.confidence is not None:
        clipped = np.clip(encoded.prob_true, LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS)
        metrics.append(QualityMetric("quality.log_loss", "", float(-np.log(clipped).mean())))
        ece = _calibration_error(encoded.confidence, correct)
        metrics.append(QualityMetric("quality.calibration_error", "", ece))
    auc = _measured_auc(encoded)
    if auc is not None:
        metrics.append(QualityMetric("quality.roc_auc", "", auc))
    if encoded.positive is not None:
        rate = float((encoded.y_pred == encoded.positive).mean())
        label_rate = float((encoded.y_true == encoded.positive).mean())
        metrics.append(QualityMetric("quality.positive_rate", "", rate))
        metrics.append(QualityMetric("quality.label_positive_rate", "", label_rate))
    metrics.extend(_class_rows(encoded, present, max_classes))
    return metrics, 1.0 - correct


# ---- regression ------------------------------------------------------------------------


def _regression(
    predictions: Sequence[Prediction], labels: Sequence[Label]
) -> tuple[list[QualityMetric], FloatArray]:
    predicted, actual = _as_numbers(predictions), _as_numbers(labels)
    scored = ~np.isnan(predicted) & ~np.isnan(actual)
    if not scored.any():
        return [], np.zeros(0)
    residual = predicted[scored] - actual[scored]
    errors = np.abs(residual)
    metrics = [
        QualityMetric("quality.mae", "", float(errors.mean())),
        QualityMetric("quality.rmse", "", float(np.sqrt(np.square(residual).mean()))),
        QualityMetric("quality.bias", "", float(residual.mean())),
    ]
    return metrics, errors


# ---- the two entry points --------------------------------------------------------------


def score_quality(
    predictions: Sequence[Prediction],
    labels: Sequence[Label],
    *,
    task: Task | None = None,
    threshold: float = 0.5,
    max_classes: int = 50,
) -> QualityResult:
    """Quality metrics of the pairs (``predictions[i]``, ``labels[i]``)."""
    _check_pairs(predictions, labels)
    if task is not None and task not in TASKS:
        raise ValueError(f"unknown task {task!r}; use one of {', '.join(TASKS)} or None")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold {threshold} is a probability: use a value in [0, 1]")
    if max_classes < 1:
        raise ValueError(f"max_classes must be at least 1, got {max_classes}")
    task = task or infer_task(predictions, labels)
    metrics: list[QualityMetric] = []
    errors: FloatArray = np.zeros(0)
    if task == "classification":
        metrics, errors = _classification(_encode(predictions, labels, threshold), max_classes)
    elif task == "regression":
        metrics, errors = _regression(predictions, labels)
    errors.flags.writeable = False  # the result is frozen; so is the array it holds
    return QualityResult(
        task=task,
        count=int(errors.size),
        unscorable=len(predictions) - int(errors.size),
        metrics=tuple(metrics),
        errors=errors,
        stats=QualityStats.from_errors(task, errors),
    )


def quality_drop_test(
    reference: QualityStats, current: QualityStats, *, min_effect: float | None = None
) -> DriftTestResult:
    """One-sided test that ``current`` is worse than ``reference``; decide with ``is_drift``.

    Classification: a pooled two-proportion z-test of the error rate; the effect is the rise
    in error rate (default min 0.05). Regression: Welch's t-test of the mean absolute error
    from the sufficient statistics; the effect is the relative rise in MAE (default min 0.1).
    Statistics are positive when the current window is worse; effects of an improvement are 0.
    """
    if reference.task is not None and current.task is not None and reference.task != current.task:
        raise ValueError(
            f"cannot compare {current.task} quality with a {reference.task} reference: "
            "score both windows with the same task"
        )
    task = reference.task or current.task
    if min_effect is None:
        min_effect = QUALITY_DROP_MIN_EFFECT[task] if task else 0.0
    n0, n1 = reference.n, current.n
    if task is None or n0 < 2 or n1 < 2:
        return no_evidence("quality_drop", min_effect, n0, n1, has_p_value=True)
    m0, m1 = reference.error_sum / n0, current.error_sum / n1
    if task == "classification":
        statistic, p_value = _two_proportion_z(m0, m1, n0, n1)
        effect = max(0.0, m1 - m0)
    else:
        statistic, p_value = _welch_t(reference, current)
        effect = relative_rise(m0, m1)
    return drop_result("quality_drop", statistic, p_value, effect, min_effect, n0, n1)


def relative_rise(m0: float, m1: float) -> float:
    """How much larger ``m1`` is than ``m0``, relatively (0 for no rise); a rise from 0 is
    ``MAX_RELATIVE_EFFECT``."""
    return max(0.0, (m1 - m0) / m0) if m0 > 0 else (MAX_RELATIVE_EFFECT if m1 > 0 else 0.0)


def drop_result(
    test: str,
    statistic: float,
    p_value: float,
    effect: float,
    min_effect: float,
    n0: int,
    n1: int,
) -> DriftTestResult:
    """A quality-drop test's result: drift when significant and at least ``min_effect``."""
    return DriftTestResult(
        test=test,
        statistic=statistic,
        p_value=p_value,
        effect_size=min(effect, MAX_RELATIVE_EFFECT),
        min_effect=min_effect,
        n_reference=n0,
        n_current=n1,
        drift_when=DriftWhen.P_VALUE_AND_EFFECT,
    )


def _two_proportion_z(p0: float, p1: float, n0: int, n1: int) -> tuple[float, float]:
    pooled = (p0 * n0 + p1 * n1) / (n0 + n1)
    se = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n0 + 1.0 / n1))
    z = (p1 - p0) / se if se > 0 else 0.0  # se = 0: both windows all right or all wrong
    return z, float(scipy_stats.norm.sf(z))


def _welch_t(reference: QualityStats, current: QualityStats) -> tuple[float, float]:
    def moments(s: QualityStats) -> tuple[float, float]:
        mean = s.error_sum / s.n
        # clamped: rounding can push the difference of sums a hair below zero
        return mean, max(0.0, (s.error_sq_sum - s.n * mean * mean) / (s.n - 1)) / s.n

    (m0, v0), (m1, v1) = moments(reference), moments(current)
    se2 = v0 + v1
    if se2 <= 0:  # constant errors on both sides: the difference of means is exact
        return 0.0, 0.0 if m1 > m0 else 1.0
    t = (m1 - m0) / math.sqrt(se2)
    df = se2**2 / (v0**2 / (reference.n - 1) + v1**2 / (current.n - 1))
    return t, float(scipy_stats.t.sf(t, df))


# ---- reference quality -----------------------------------------------------------------

# What a window's quality leaves behind for later windows: its label count and error figures,
# by metric name (the stored metrics a unit's quality history is read back from).
HISTORY_METRICS = ("labels.count", "quality.error_rate", "quality.mae", "quality.rmse")

K = TypeVar("K")


def history_values(result: QualityResult) -> dict[str, float]:
    """The ``HISTORY_METRICS`` of one window's result (those it has)."""
    values = {"labels.count": float(result.count)}
    for name in HISTORY_METRICS[1:]:
        value = result.metric_value(name)
        if value is not None:
            values[name] = value
    return values


def stats_from_metrics(values: Mapping[str, float]) -> QualityStats | None:
    """A window's error statistics back from its ``history_values`` (n, error rate / MAE,
    RMSE); None when they do not describe a scored window."""
    n = int(values.get("labels.count", 0))
    if "quality.error_rate" in values:
        errors = values["quality.error_rate"] * n
        return QualityStats("classification", n, errors, errors)
    if "quality.mae" in values and "quality.rmse" in values:
        return QualityStats(
            "regression", n, values["quality.mae"] * n, values["quality.rmse"] ** 2 * n
        )
    return None


def reference_stats(
    history: Mapping[K, Mapping[int, Mapping[str, float]]], *, windows: int, min_labels: int
) -> dict[K, tuple[int, QualityStats]]:
    """The reference quality of each key of ``history`` (window start -> ``history_values``):
    (start of its last reference window, pooled error stats of its first ``windows`` windows
    with at least ``min_labels`` labels). A key with fewer such windows has none yet: not
    enough is known to say what "normal" is.

    >>> first = {"labels.count": 100.0, "quality.error_rate": 0.1}
    >>> reference_stats({"v1": {0: first, 60: first}}, windows=2, min_labels=50)
    {'v1': (60, QualityStats(task='classification', n=200, error_sum=20.0, error_sq_sum=20.0))}
    >>> reference_stats({"v1": {0: first}}, windows=2, min_labels=50)
    {}
    """
    out: dict[K, tuple[int, QualityStats]] = {}
    for key, by_start in history.items():
        picked = _reference_windows(by_start, windows, min_labels)
        if picked is None:
            continue
        stats = None
        for _, values in picked:
            window_stats = stats_from_metrics(values)
            if window_stats is None:
                break
            stats = window_stats if stats is None else stats.merge(window_stats)
        else:
            if stats is not None:
                out[key] = (picked[-1][0], stats)
    return out


# the power of the label share by which a look at a partly labelled window spends alpha
SPENDING_POWER = 3


def _reference_windows(
    by_start: Mapping[int, Mapping[str, float]], windows: int, min_labels: int
) -> list[tuple[int, Mapping[str, float]]] | None:
    """The first ``windows`` windows with at least ``min_labels`` labels, oldest first (None
    if there are fewer): the windows a reference pools."""
    picked = [
        (start, values)
        for start, values in sorted(by_start.items())
        if values.get("labels.count", 0.0) >= min_labels
    ][:windows]
    return picked if len(picked) == windows else None


def reference_coverage(
    history: Mapping[K, Mapping[int, Mapping[str, float]]], *, windows: int, min_labels: int
) -> dict[K, float]:
    """The mean label coverage (``labels.coverage``) of each key's reference windows, those
    ``reference_stats`` pools; a key whose windows do not all carry one has none.

    >>> first = {"labels.count": 100.0, "labels.coverage": 0.5}
    >>> reference_coverage({"v1": {0: first, 60: {**first, "labels.coverage": 0.7}}},
    ...                    windows=2, min_labels=50)
    {'v1': 0.6}
    """
    out: dict[K, float] = {}
    for key, by_start in history.items():
        picked = _reference_windows(by_start, windows, min_labels)
        shares = [v["labels.coverage"] for _, v in picked or () if "labels.coverage" in v]
        if picked and len(shares) == len(picked):
            out[key] = round(sum(shares) / len(shares), 12)
    return out


def partial_window_p_value(
    p_value: float, coverage: float, reference_coverage: float | None
) -> float:
    """A quality-drop p-value made fit for a window whose labels are still landing.

    Such a window is tested again at every quality pass as its labels arrive, and each look is
    a chance of a false alarm: in the demo's regime (``python -m bench.partial_labels``: 312
    events a window, labels 6 to 9 windows late, a pass every 10 s) a stationary window was
    flagged at some look 6.3 % of the time, against 2.6 % for one test of its complete labels.
    Each look here spends alpha by the share ``t`` of the window's labels already in (its
    coverage against the reference windows', the coverage a complete window of this model
    gets; none known: the p-value as it is) as ``alpha * t**3``: little on the first looks, all
    of it once the window is as labelled as the reference, as O'Brien-Fleming bounds do. The
    p-value is divided by ``t**3``: 3.3 % false alarms in the same bench (at 624 events a
    window: 3.7 % at every look, 1.0 % spent, 0.5 % complete), the power of the complete test
    kept, and a large drop still flagged when about half the labels are in.

    >>> partial_window_p_value(0.001, 0.25, 0.5)
    0.008
    >>> partial_window_p_value(0.01, 0.6, 0.5), partial_window_p_value(0.01, 0.1, None)
    (0.01, 0.01)
    """
    if reference_coverage is None or reference_coverage <= 0:
        return p_value
    share = min(1.0, coverage / reference_coverage)
    return min(1.0, p_value / share**SPENDING_POWER) if share > 0 else 1.0


def pair_errors(
    predictions: Sequence[Prediction],
    labels: Sequence[Label],
    *,
    task: Task | None = None,
    threshold: float = 0.5,
) -> tuple[Task | None, list[float | None]]:
    """Each pair's error as ``score_quality`` counts it, in order, None where the pair cannot
    be scored: 0.0 / 1.0 (misclassified) for classification, the absolute error for
    regression. The task is inferred over all the pairs unless given, as there.

    >>> pair_errors([0.9, 0.2, None, 0.7], [1, 1, 0, "x"])
    ('classification', [0.0, 1.0, None, None])
    >>> pair_errors([2.5, 1.0], [2.0, 4.0])
    ('regression', [0.5, 3.0])
    """
    _check_pairs(predictions, labels)
    task = task or infer_task(predictions, labels)
    errors: FloatArray = np.full(len(predictions), np.nan)
    if task == "regression":
        errors = np.abs(_as_numbers(predictions) - _as_numbers(labels))
    elif task == "classification":
        types = _types(predictions)
        if any(issubclass(t, list | tuple) for t in types):
            lengths = [len(p) if isinstance(p, list | tuple) else -1 for p in predictions]
            width = Counter(n for n in lengths if n >= 0).most_common(1)[0][0]
            index = _class_indices(labels)
            matrix, rows = probability_matrix(predictions, width, index < width)
            if rows.size:
                predicted = np.argmax(matrix, axis=1).astype(np.float64)
                errors[rows] = (predicted != index[rows]).astype(np.float64)
        elif types and all(issubclass(t, bool) for t in types):
            bits = np.array([float(p) if isinstance(p, bool) else np.nan for p in predictions])
            truth = _binary_labels(labels)
            scored = ~np.isnan(bits) & ~np.isnan(truth)
            errors = np.where(scored, (bits != truth).astype(np.float64), np.nan)
        elif _all_scores(predictions):
            score, truth = _as_numbers(predictions), _binary_labels(labels)
            scored = (score >= 0.0) & (score <= 1.0) & ~np.isnan(truth)
            wrong = ((score >= threshold).astype(np.float64) != truth).astype(np.float64)
            errors = np.where(scored, wrong, np.nan)
        else:
            for i, (p, y) in enumerate(zip(predictions, labels, strict=True)):
                name, label = _class_name(p), _class_name(y)
                if name is not None and label is not None:
                    errors[i] = float(name != label)
    return task, [None if math.isnan(e) else float(e) for e in errors.tolist()]
