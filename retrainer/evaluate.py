"""Champion / challenger: should a freshly trained model replace the one in production?

Both models score the same holdout (labelled examples neither was trained on, normally the
newest). The primary metric is **accuracy** for classification, with log loss breaking exact
ties: accuracy is what the product sees, and a tolerance in accuracy points ("0.02 = two
points") means the same thing on every segment, while log loss has no natural scale. For
regression it is **MAE**, in label units.

The challenger is promoted only if it is better overall *and* not materially worse on any
tracked segment with at least ``min_segment_examples`` holdout examples (smaller segments are
reported but too noisy to veto). "Materially worse" is two things at once:

* worse by more than ``tolerance``: accuracy points for classification, a relative MAE
  increase for regression (0.02 = 2% higher MAE), because an absolute MAE tolerance would
  depend on the label's units; and
* worse beyond chance: a one-sided paired test on the segment's examples (both models score
  the same rows) gives a p-value below ``significance``. For accuracy that is McNemar's exact
  test (of the rows exactly one model gets right, does the champion win more than a fair coin
  would?); for MAE, the Wilcoxon signed-rank test on the per-row absolute errors.

Without the test, a few hundred holdout rows are too few for a tolerance of two points: on
170 rows one point is under two rows, and a challenger that serves a segment exactly as well
as the champion is vetoed about a third of the time by sampling noise alone.

With no champion the challenger faces the best *constant* guess on the same holdout (the
majority class with the class frequencies as probabilities, or the label median): a model
that cannot beat a constant learned nothing useful, or its labels are broken, and should not
be the first to serve.

Skewed classes. Accuracy rewards a model that always predicts the majority class, so:

* the primary metric of a classifier is configurable (``primary``): ``accuracy`` (the
  default), ``f1_macro``, or ``recall:<class>`` (the recall of one class, e.g. the fraud one);
* every class is judged on its own F1 (``class=<class>``): a challenger whose F1 on a class
  falls by more than ``class_tolerance`` beyond chance (a one-sided paired bootstrap over the
  holdout rows, both models on the same resamples) is not promoted, however well it does
  overall. F1, not recall: a better model may move errors between classes (after a concept
  drift the fix often costs one class some recall and gains the other much more), while
  giving a class up costs its F1 whatever else improves;
* a classifier that predicts a single class for the whole holdout while its labels have
  several is never promoted, whatever its scores: on skewed data that is the majority guess.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from detectors.paired import p_more_errors
from retrainer.data import Example, Task, label_key, label_number
from retrainer.train import TrainedModel, predict_scores

Pointwise = dict[str, npt.NDArray[np.float64]]  # metric name -> one value per example
_EPS = 1e-15  # probability floor in log loss, so one confident mistake costs ~34.5, not inf


@dataclass(frozen=True)
class SegmentComparison:
    """One ``key=value`` slice of the holdout. ``worse_by`` > 0: the challenger is worse by
    that much (accuracy points, or relative MAE); ``p_value``: the chance of a gap at least
    that much in the champion's favour if both models were equally good there (one-sided,
    paired); ``decisive``: tracked and large enough to veto a promotion."""

    segment: str
    n: int
    champion: Mapping[str, float] | None
    challenger: Mapping[str, float]
    worse_by: float | None
    decisive: bool
    p_value: float | None = None

    def vetoes(self, tolerance: float, significance: float) -> bool:
        return (
            self.decisive
            and (self.worse_by or 0.0) > tolerance
            and (self.p_value if self.p_value is not None else 1.0) < significance
        )


@dataclass(frozen=True)
class Comparison:
    task: Task
    primary_metric: str
    higher_is_better: bool
    n_holdout: int
    challenger: Mapping[str, float]
    champion: Mapping[str, float] | None
    baseline: Mapping[str, float] | None  # the constant guess, when there is no champion
    segments: tuple[SegmentComparison, ...]
    tolerance: float
    significance: float
    min_segment_examples: int
    promote: bool
    reason: str
    class_tolerance: float = 0.10

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare(
    champion: TrainedModel | None,
    challenger: TrainedModel,
    holdout: Sequence[Example],
    *,
    tracked_segments: Collection[str] | None = None,
    min_segment_examples: int = 30,
    tolerance: float = 0.02,
    significance: float = 0.05,
    primary: str = "accuracy",
    class_tolerance: float = 0.10,
) -> Comparison:
    """Score both models on ``holdout`` and decide. ``tracked_segments``: segment keys
    (``"region"``: every value) or ``"key=value"`` strings; None tracks every key (the
    ``label=<class>`` segments are always tracked, with ``class_tolerance``: a better model
    may move some errors between classes, not give a class up). ``primary``: a classifier's
    metric, ``accuracy``, ``f1_macro`` or ``recall:<class>``; a regressor's is always
    ``mae``."""
    task = challenger.spec.task
    if champion is not None and champion.spec.task != task:
        raise ValueError(
            f"the champion does {champion.spec.task}, the challenger {task}: a change of task "
            "cannot be compared on one metric; promote the challenger deliberately instead"
        )
    if isinstance(tracked_segments, str):  # one key, not its characters
        tracked_segments = (tracked_segments,)
    usable = [e for e in holdout if _target(task, e) is not None]
    if task == "regression":
        primary = "mae"
    elif primary not in ("accuracy", "f1_macro") and not primary.startswith("recall:"):
        raise ValueError(
            f"primary metric {primary!r}: a classifier is judged on accuracy, f1_macro or "
            "recall:<class>"
        )
    overall: dict[str, float] = {}
    before = baseline = None
    segments: tuple[SegmentComparison, ...] = ()
    if not usable:
        promote = False
        reason = f"no labelled holdout examples (of {len(holdout)}): cannot judge the challenger"
    else:
        everything = np.arange(len(usable))
        new = _pointwise(challenger, usable)
        old = _pointwise(champion, usable) if champion else None
        overall = _means(new, everything)
        segments = tuple(
            _segment(name, index, new, old, _tracked(name, tracked_segments), min_segment_examples)
            for name, index in sorted(_segments(usable).items())
        )
        if old is not None:
            segments += _class_f1(new, old, min_segment_examples)
        single = _single_class(task, new, usable)
        if old is None:
            baseline = _means(_constant_guess(task, usable), everything)
            promote, reason = _against_baseline(primary, overall, baseline, len(usable))
        else:
            before = _means(old, everything)
            promote, reason = _against_champion(
                primary, overall, before, segments, tolerance, significance, class_tolerance
            )
        if single is not None:
            promote, reason = False, single
        if primary not in overall:  # recall:<class> of a class no holdout label has
            promote, reason = (
                False,
                (
                    f"primary metric {primary!r}: no holdout example has class "
                    f"{primary.split(':', 1)[1]!r}, so it cannot be judged; set "
                    "DRIFTLINE_RETRAIN_PRIMARY_METRIC to a class the labels have"
                ),
            )
    return Comparison(
        task=task,
        primary_metric=primary,
        higher_is_better=task == "classification",
        n_holdout=len(usable),
        challenger=overall,
        champion=before,
        baseline=baseline,
        segments=segments,
        tolerance=tolerance,
        significance=significance,
        min_segment_examples=min_segment_examples,
        class_tolerance=class_tolerance,
        promote=promote,
        reason=reason,
    )


def _against_baseline(
    primary: str, overall: Mapping[str, float], baseline: Mapping[str, float], n: int
) -> tuple[bool, str]:
    scores = (
        f"challenger {primary} {_fmt(primary, overall)} vs constant guess {_fmt(primary, baseline)}"
    )
    if _better(overall, baseline, primary):
        return True, f"no champion; {scores} on {n} holdout examples"
    return False, f"no champion, but {scores} on {n} holdout examples: the model learned nothing"


def _against_champion(
    primary: str,
    overall: Mapping[str, float],
    before: Mapping[str, float],
    segments: Sequence[SegmentComparison],
    tolerance: float,
    significance: float,
    class_tolerance: float,
) -> tuple[bool, str]:
    scores = f"challenger {primary} {_fmt(primary, overall)} vs champion {_fmt(primary, before)}"
    if not _better(overall, before, primary):
        return False, f"{scores} overall: not better"
    worse = [
        s
        for s in segments
        if s.vetoes(class_tolerance if s.segment.startswith(CLASS_SEGMENT) else tolerance,
                    significance)
    ]  # fmt: skip
    material = f"worse by more than {tolerance:g} (p < {significance:g})"
    if any(s.segment.startswith(CLASS_SEGMENT) for s in worse):
        material += f" or a class's F1 down by more than {class_tolerance:g}"
    if not worse:
        return True, f"{scores} overall; no tracked segment {material}"
    worse.sort(key=lambda s: -(s.worse_by or 0.0))

    def shown(s: SegmentComparison) -> str:
        # a class comparison is of F1; a slice's, of accuracy (or MAE): what its veto judged
        metric = next(m for m in ("f1", "accuracy", "mae") if m in s.challenger)
        return f"{_fmt(metric, s.challenger)} vs {_fmt(metric, s.champion or {})}"

    listed = ", ".join(f"{s.segment} ({shown(s)}, n={s.n}, p={s.p_value:.2g})" for s in worse[:3])
    more = f" and {len(worse) - 3} more" if len(worse) > 3 else ""
    return False, f"{scores} overall, but {material} on {listed}{more}"


def _better(a: Mapping[str, float], b: Mapping[str, float], primary: str = "accuracy") -> bool:
    if "mae" in a:
        return a["mae"] < b["mae"]
    mine, theirs = a.get(primary, math.nan), b.get(primary, math.nan)
    if not math.isclose(mine, theirs, abs_tol=1e-12):
        return mine > theirs
    return a["log_loss"] < b["log_loss"]


CLASS_SEGMENT = "class="  # a class's F1, challenger against champion
IS, CALLED = "is:", "called:"  # the per-class indicator columns of a classifier's Pointwise
BOOTSTRAP_RESAMPLES = 999


def _f1(of: npt.NDArray[np.float64], called: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """F1 of a class along the last axis (0 where the class is neither true nor called)."""
    hits = (of * called).sum(axis=-1)
    total = of.sum(axis=-1) + called.sum(axis=-1)
    return np.asarray(np.where(total > 0, 2 * hits / np.maximum(total, 1e-12), 0.0))


def _class_f1(new: Pointwise, old: Pointwise, min_examples: int) -> tuple[SegmentComparison, ...]:
    """Per class with at least ``min_examples`` holdout rows, the challenger's F1 against the
    champion's, and the one-sided paired bootstrap p of "no worse" (the share of resamples of
    the rows in which the challenger's F1 is at least the champion's). Seeded: the same
    holdout gives the same p."""
    if "accuracy" not in new:
        return ()  # a regressor: no classes
    n = len(new["accuracy"])
    rng = np.random.default_rng(0)
    resamples = rng.integers(0, n, (BOOTSTRAP_RESAMPLES, n))
    out = []
    for name in sorted(k for k in new if k.startswith(IS)):
        c = name[len(IS) :]
        of = new[name]
        support = int(of.sum())
        if support < min_examples or f"{CALLED}{c}" not in old:
            continue
        called_new, called_old = new[f"{CALLED}{c}"], old[f"{CALLED}{c}"]
        f1_new, f1_old = float(_f1(of, called_new)), float(_f1(of, called_old))
        boot = _f1(of[resamples], called_new[resamples]) - _f1(of[resamples], called_old[resamples])
        p_value = float((1 + np.sum(boot >= 0)) / (BOOTSTRAP_RESAMPLES + 1))
        out.append(
            SegmentComparison(
                f"{CLASS_SEGMENT}{c}", support, {"f1": f1_old}, {"f1": f1_new},
                f1_old - f1_new, True, p_value,
            )
        )  # fmt: skip
    return tuple(out)


def _single_class(task: Task, new: Pointwise, examples: Sequence[Example]) -> str | None:
    """Why a classifier that predicts one class for every holdout row whose labels have
    several is not promoted (None: it predicts more than one, or the labels are one class)."""
    if task != "classification" or len(examples) < 2:
        return None
    called = [n for n, values in new.items() if n.startswith(CALLED) and values.any()]
    labels = {label_key(e.label) for e in examples}
    if len(called) > 1 or len(labels) < 2:
        return None
    return (
        f"the challenger predicts one class for all {len(examples)} holdout examples while "
        f"their labels have {len(labels)}: on skewed data that is the majority guess, "
        "whatever its accuracy"
    )


def _worse_by(champion: Mapping[str, float], challenger: Mapping[str, float]) -> float:
    if "accuracy" in challenger:
        return champion["accuracy"] - challenger["accuracy"]
    # relative, so the tolerance does not depend on the label's units; the floor keeps a
    # perfect champion from dividing by zero (and the result JSON-safe)
    return (challenger["mae"] - champion["mae"]) / max(champion["mae"], 1e-12)


def _segment(
    name: str,
    index: npt.NDArray[np.intp],
    new: Pointwise,
    old: Pointwise | None,
    tracked: bool,
    min_examples: int,
) -> SegmentComparison:
    challenger = _means(new, index)
    champion = _means(old, index) if old is not None else None
    worse_by = _worse_by(champion, challenger) if champion is not None else None
    p_value = p_worse(new, old, index) if old is not None else None
    decisive = tracked and len(index) >= min_examples
    return SegmentComparison(name, len(index), champion, challenger, worse_by, decisive, p_value)


def p_worse(new: Pointwise, old: Pointwise, index: npt.NDArray[np.intp]) -> float:
    """One-sided paired p-value for "the challenger is worse on these rows"."""
    if "accuracy" in new:  # McNemar's exact test on the rows where exactly one is right
        return p_more_errors(
            1.0 - new["accuracy"][index], 1.0 - old["accuracy"][index], binary=True
        )
    return p_more_errors(new["mae"][index], old["mae"][index], binary=False)


def _pointwise(model: TrainedModel, examples: Sequence[Example]) -> Pointwise:
    scores = predict_scores(model, examples)
    if model.spec.task == "regression":
        y = np.array([_target("regression", e) for e in examples], dtype=np.float64)
        return {"mae": np.abs(scores - y)}
    positions = {c: i for i, c in enumerate(model.spec.classes)}
    truth = np.array([positions.get(label_key(e.label) or "", -1) for e in examples])
    # a label the model never saw as a class gets probability 0: wrong, maximal log loss
    p_true = np.where(truth >= 0, scores[np.arange(len(truth)), np.maximum(truth, 0)], 0.0)
    predicted = scores.argmax(axis=1)
    correct = (predicted == truth).astype(np.float64)
    return {
        "accuracy": correct,
        "log_loss": -np.log(np.clip(p_true, _EPS, 1.0)),
        **_class_indicators(list(model.spec.classes), predicted, truth),
    }


def _class_indicators(
    classes: Sequence[str], predicted: npt.NDArray[np.int64], truth: npt.NDArray[np.int64]
) -> Pointwise:
    """Per class (by name), which rows are of it (``is:<c>``) and which the model called it
    (``called:<c>``): f1_macro and each class's recall come from them (``_means``)."""
    out: Pointwise = {}
    for i, name in enumerate(classes):
        out[f"{IS}{name}"] = (truth == i).astype(np.float64)
        out[f"{CALLED}{name}"] = (predicted == i).astype(np.float64)
    return out


def _constant_guess(task: Task, examples: Sequence[Example]) -> Pointwise:
    if task == "regression":
        y = np.array([_target(task, e) for e in examples], dtype=np.float64)
        return {"mae": np.abs(y - np.median(y))}
    labels = [label_key(e.label) for e in examples]
    counts = Counter(labels)
    majority = min(counts, key=lambda c: (-counts[c], c or ""))
    share = np.array([counts[label] / len(labels) for label in labels])
    correct = np.array([label == majority for label in labels], dtype=np.float64)
    names = sorted((c or "" for c in counts), key=str)
    truth = np.array([names.index(label or "") for label in labels], dtype=np.int64)
    predicted = np.full(len(labels), names.index(majority or ""), dtype=np.int64)
    return {
        "accuracy": correct,
        "log_loss": -np.log(share),
        **_class_indicators(names, predicted, truth),
    }


def _segments(examples: Sequence[Example]) -> dict[str, npt.NDArray[np.intp]]:
    members: dict[str, list[int]] = {}
    for i, example in enumerate(examples):
        for key, value in example.segment.items():
            members.setdefault(f"{key}={value}", []).append(i)
    return {name: np.array(index, dtype=np.intp) for name, index in members.items()}


def _tracked(segment: str, tracked: Collection[str] | None) -> bool:
    return tracked is None or segment in tracked or segment.split("=", 1)[0] in tracked


def _means(pointwise: Pointwise, index: npt.NDArray[np.intp]) -> dict[str, float]:
    """The scores on some rows: the means of the pointwise metrics, and for a classifier
    its macro-F1 over the classes seen there and each class's recall (``recall:<c>``, c the
    class's position in the model's classes)."""
    scores = {
        name: float(values[index].mean())
        for name, values in pointwise.items()
        if not name.startswith((IS, CALLED))
    }
    classes = [name[len(IS) :] for name in pointwise if name.startswith(IS)]
    f1s = []
    for c in classes:
        of, called = pointwise[f"{IS}{c}"][index], pointwise[f"{CALLED}{c}"][index]
        support, calls = float(of.sum()), float(called.sum())
        if not support + calls:
            continue  # a class neither in these labels nor predicted: no say in the macro
        hits = float((of * called).sum())
        f1s.append(2 * hits / (support + calls))
        if support:
            scores[f"recall:{c}"] = hits / support
    if classes:
        scores["f1_macro"] = float(np.mean(f1s)) if f1s else 0.0
    return scores


def _target(task: Task, example: Example) -> str | float | None:
    return label_key(example.label) if task == "classification" else label_number(example.label)


def _fmt(metric: str, scores: Mapping[str, float]) -> str:
    value = scores.get(metric, math.nan)
    return f"{value:.4g}" if metric == "mae" else f"{value:.3f}"


# ---- bias, variance and data mismatch -----------------------------------------------------

TRAIN_DEV_FRACTION = 0.1  # of the training period, held out at random: its own distribution


@dataclass(frozen=True)
class ErrorBreakdown:
    """Where a trained model's error comes from (Ng's "bias / variance / data mismatch"):
    its error on what it was trained on, on a random held-out part of the same period
    (training-dev), on the newest events it is judged on (the production holdout), and the
    error a person reaches (``human``, when known). Error: 1 - accuracy, or the MAE."""

    metric: str  # "error_rate" or "mae"
    training: float
    training_dev: float
    holdout: float
    human: float | None

    @property
    def avoidable_bias(self) -> float:
        """Training error above what is reachable (the human level; 0 without one)."""
        return self.training - (self.human if self.human is not None else 0.0)

    @property
    def variance(self) -> float:
        """Error gained on unseen events of the training distribution: overfitting."""
        return self.training_dev - self.training

    @property
    def data_mismatch(self) -> float:
        """Error gained from the training period to the newest events: the world moved."""
        return self.holdout - self.training_dev

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "avoidable_bias": self.avoidable_bias,
            "variance": self.variance,
            "data_mismatch": self.data_mismatch,
        }


T = TypeVar("T")


def split_training_dev(
    examples: Sequence[T], seed: int = 0, fraction: float = TRAIN_DEV_FRACTION
) -> tuple[list[T], list[T]]:
    """(training, training-dev): a seeded random ``fraction`` of the training period held out,
    so that training-dev follows the training distribution (the holdout is the newest events,
    which may not)."""
    rng = np.random.default_rng(seed)
    held = rng.random(len(examples)) < fraction
    return (
        [e for e, h in zip(examples, held, strict=True) if not h],
        [e for e, h in zip(examples, held, strict=True) if h],
    )


def error_breakdown(
    model: TrainedModel,
    training: Sequence[Example],
    training_dev: Sequence[Example],
    holdout: Sequence[Example],
    human: float | None = None,
) -> ErrorBreakdown | None:
    """The model's error on each of the three sets (None when one of them is empty)."""
    if not training or not training_dev or not holdout:
        return None
    regression = model.spec.task == "regression"

    def error(examples: Sequence[Example]) -> float:
        pointwise = _pointwise(model, examples)
        if regression:
            return float(np.nanmean(pointwise["mae"]))
        return 1.0 - float(pointwise["accuracy"].mean())

    return ErrorBreakdown(
        metric="mae" if regression else "error_rate",
        training=error(training),
        training_dev=error(training_dev),
        holdout=error(holdout),
        human=human,
    )
