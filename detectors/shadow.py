"""How a shadow model's outputs compare with the live model's on the same requests.

A shadow prediction that shares its ``id`` with a live prediction of the same model, in the
same window, is a pair (live output, shadow output). Per window:

* ``shadow.joined``: the pairs;
* ``shadow.agreement``: the share of pairs whose decisions agree (classification: the same
  class; class probabilities: the same argmax);
* ``shadow.mean_abs_diff`` and ``shadow.mean_diff`` (shadow minus live), for numeric outputs;
* ``shadow.output_shift``: how far apart the two output distributions are over the pairs:
  the two-sample Kolmogorov-Smirnov statistic for numbers, the total variation distance
  between the class frequencies for classes (0: the same, 1: disjoint).

>>> rows = shadow_rows([("a", "a"), ("a", "b"), ("b", "b"), (None, "a")])
>>> {r.metric: round(r.value, 3) for r in rows}
{'shadow.joined': 3.0, 'shadow.agreement': 0.667, 'shadow.output_shift': 0.333}
>>> [(r.metric, round(r.value, 3)) for r in shadow_rows([(0.2, 0.3), (0.4, 0.6)])][1:3]
[('shadow.mean_abs_diff', 0.15), ('shadow.mean_diff', 0.15)]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from scipy import stats

from detectors.profile import MetricRow


def _decision(output: Any) -> str | None:
    """A classifier's decision: its class, or the argmax of its class probabilities."""
    if output is None:
        return None
    if type(output) is list:
        return str(int(np.argmax(output))) if output else None
    if type(output) is bool:
        return "true" if output else "false"
    return str(output)


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
        return [
            *rows,
            MetricRow("shadow.mean_abs_diff", "", "", float(np.abs(diff).mean())),
            MetricRow("shadow.mean_diff", "", "", float(diff.mean())),
            MetricRow("shadow.output_shift", "", "", shift),
        ]
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
