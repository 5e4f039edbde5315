"""How a shadow model's outputs compare with the live model's on the same requests.

A shadow prediction that shares its ``id`` with a live prediction of the same model, in the
same window, is a pair (live output, shadow output). Per window:

* ``shadow.joined``: the pairs;
* ``shadow.agreement``: the share of pairs whose decisions agree (classification: the same
  class; class probabilities: the same argmax; scores in [0, 1]: the same side of 0.5);
* ``shadow.mean_abs_diff`` and ``shadow.mean_diff`` (shadow minus live), for numeric outputs;
* ``shadow.output_shift``: how far apart the two output distributions are over the pairs:
  the two-sample Kolmogorov-Smirnov statistic for numbers, the total variation distance
  between the class frequencies for classes (0: the same, 1: disjoint).

Once labels arrive, both versions are scored on the same labelled ids (``shadow_quality_rows``,
each side scored as the quality pass scores a window, ``detectors/quality.py``):

* ``shadow.quality.paired``: the labelled pairs (a null output on either side is left out);
* ``shadow.quality.accuracy`` and ``shadow.quality.live_accuracy`` (classification), or
  ``shadow.quality.mae`` and ``shadow.quality.live_mae`` (regression): the shadow's and the
  live model's quality on those pairs;
* ``shadow.quality.p_value``: the two-sided paired test that they differ (``detectors/paired.py``):
  McNemar's exact test on who is right, or Wilcoxon signed-rank on the absolute errors.

The figures are left out when the two sides are not comparable pair for pair: they score as
different tasks, or some pair cannot be scored on one side (a label of the wrong kind).

>>> rows = shadow_rows([("a", "a"), ("a", "b"), ("b", "b"), (None, "a")])
>>> {r.metric: round(r.value, 3) for r in rows}
{'shadow.joined': 3.0, 'shadow.agreement': 0.667, 'shadow.output_shift': 0.333}
>>> {r.metric: round(r.value, 3) for r in shadow_rows([(0.2, 0.3), (0.4, 0.6)])}
... # doctest: +NORMALIZE_WHITESPACE
{'shadow.joined': 2.0, 'shadow.mean_abs_diff': 0.15, 'shadow.mean_diff': 0.15,
 'shadow.output_shift': 0.5, 'shadow.agreement': 0.5}
>>> triples = [("a", "a", "a"), ("b", "a", "a"), ("b", "b", "a"), (None, "a", "a")]
>>> rows = shadow_quality_rows(triples)  # (live, shadow, label): one null live output
>>> {r.metric: round(r.value, 3) for r in rows}  # doctest: +NORMALIZE_WHITESPACE
{'shadow.quality.paired': 3.0, 'shadow.quality.accuracy': 0.667,
 'shadow.quality.live_accuracy': 0.333, 'shadow.quality.p_value': 1.0}
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

from detectors.paired import p_more_errors
from detectors.profile import MetricRow
from detectors.quality import Label, Prediction, score_quality


def _decision(output: Any) -> str | None:
    """A classifier's decision: its class, or the argmax of its class probabilities."""
    if output is None:
        return None
    if type(output) is list:
        return str(int(np.argmax(output))) if output else None
    if type(output) is bool:
        return "true" if output else "false"
    return str(output)


SCORE_THRESHOLD = 0.5  # detectors/quality.py's default threshold for scores


def _scores(values: npt.NDArray[np.float64]) -> bool:
    return bool(values.min() >= 0.0 and values.max() <= 1.0)


def _number(output: Any) -> float | None:
    kind = type(output)
    return float(output) if kind is int or kind is float else None


def shadow_rows(pairs: Iterable[tuple[Any, Any]]) -> list[MetricRow]:
    """The comparison rows of (live output, shadow output) pairs; pairs with a null output
    on either side are left out. Numbers are compared as numbers when both sides are."""
    kept = [(live, shadow) for live, shadow in pairs if live is not None and shadow is not None]
    rows = [MetricRow("shadow.joined", "", "", float(len(kept)))]
    if not kept:
        return rows
    numeric = [(_number(a), _number(b)) for a, b in kept]
    if all(a is not None and b is not None for a, b in numeric):
        live = np.array([a for a, _ in numeric], dtype=float)
        shadow = np.array([b for _, b in numeric], dtype=float)
        diff = shadow - live
        shift = float(stats.ks_2samp(live, shadow).statistic)
        rows += [
            MetricRow("shadow.mean_abs_diff", "", "", float(np.abs(diff).mean())),
            MetricRow("shadow.mean_diff", "", "", float(diff.mean())),
            MetricRow("shadow.output_shift", "", "", shift),
        ]
        if _scores(live) and _scores(shadow):
            # scores in [0, 1]: a binary classifier's, deciding "1" from SCORE_THRESHOLD on,
            # as the quality pass scores them
            agree = float(np.mean((live >= SCORE_THRESHOLD) == (shadow >= SCORE_THRESHOLD)))
            rows.append(MetricRow("shadow.agreement", "", "", agree))
        return rows
    decisions = [(_decision(a), _decision(b)) for a, b in kept]
    agree = sum(a == b for a, b in decisions) / len(decisions)
    return [
        *rows,
        MetricRow("shadow.agreement", "", "", agree),
        MetricRow("shadow.output_shift", "", "", _total_variation(decisions)),
    ]


def _total_variation(decisions: Sequence[tuple[str | None, str | None]]) -> float:
    live = Counter(a for a, _ in decisions)
    shadow = Counter(b for _, b in decisions)
    n = len(decisions)
    return 0.5 * sum(abs(live[c] - shadow[c]) / n for c in live.keys() | shadow.keys())


def shadow_quality_rows(
    pairs: Iterable[tuple[Prediction, Prediction, Label]],
) -> list[MetricRow]:
    """The quality rows of (live output, shadow output, label) triples of the same ids."""
    kept = [(a, b, y) for a, b, y in pairs if a is not None and b is not None]
    rows = [MetricRow("shadow.quality.paired", "", "", float(len(kept)))]
    labels = [y for _, _, y in kept]
    live = score_quality([a for a, _, _ in kept], labels)
    shadow = score_quality([b for _, b, _ in kept], labels)
    if live.task is None or shadow.task != live.task or not live.count == shadow.count == len(kept):
        return rows
    classification = live.task == "classification"
    name = "accuracy" if classification else "mae"
    p_value = p_more_errors(
        shadow.errors, live.errors, binary=classification, alternative="two-sided"
    )
    return [
        *rows,
        MetricRow(f"shadow.quality.{name}", "", "", _score(shadow.errors, classification)),
        MetricRow(f"shadow.quality.live_{name}", "", "", _score(live.errors, classification)),
        MetricRow("shadow.quality.p_value", "", "", p_value),
    ]


def _score(errors: npt.NDArray[np.float64], classification: bool) -> float:
    """Accuracy (errors are 0/1 misclassified) or MAE (errors are absolute errors)."""
    return float(1.0 - errors.mean()) if classification else float(errors.mean())
