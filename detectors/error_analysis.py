"""The error-analysis table: where the model's errors are, and where work pays off most.

Given each labelled example's error (0/1 misclassified, or the absolute error of a regressor)
and the groups it belongs to (a declared segment value, a tag, a discovered slice), each group
gets its share of the data, its share of the errors, its error (rate or mean), the gap to the
overall error, and the *potential gain*: (error - baseline) x share of data, what fixing the
group down to its baseline (the human-level error a user sets; 0 without one) would take off
the overall error. Rows are ranked by potential gain: work first where the room for improvement
times the frequency is largest.

>>> errors = [1, 1, 0, 0, 1, 0, 0, 0, 0, 0]
>>> overall, [row] = error_table(errors, {("segment", "channel=mobile"): [0, 1, 2]})
>>> overall.error, row.share_of_data, round(row.share_of_errors, 3), round(row.error, 3)
(0.3, 0.3, 0.667, 0.667)
>>> round(row.gap, 3), round(row.potential_gain, 3)
(0.367, 0.2)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from detectors.slices import Slice

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Overall:
    size: int
    error: float  # error rate (classification) or mean absolute error (regression)
    errors: float  # their sum: misclassified examples, or the total absolute error


@dataclass(frozen=True)
class GroupRow:
    kind: str  # "segment", "tag" or "slice"
    name: str
    size: int
    share_of_data: float
    share_of_errors: float
    error: float
    gap: float  # error - overall error
    baseline: float | None
    potential_gain: float  # (error - baseline, or error) x share of data; never negative
    q_value: float | None = None  # a discovered slice's: worse than the rest, FDR-adjusted


def error_table(
    errors: Sequence[float] | FloatArray,
    groups: Mapping[tuple[str, str], Sequence[int]],
    baselines: Mapping[str, float] | None = None,
    *,
    default_baseline: float | None = None,
    min_size: int = 1,
) -> tuple[Overall, list[GroupRow]]:
    """The overall error and one row per group of at least ``min_size`` examples (a group is
    the positions of its examples in ``errors``), best potential gain first. ``baselines``: by
    group name; ``default_baseline`` for the others."""
    values = np.asarray(errors, dtype=np.float64)
    n = int(values.size)
    total = float(values.sum())
    overall = Overall(n, total / n if n else 0.0, total)
    baselines = baselines or {}
    rows = []
    for (kind, name), members in groups.items():
        rows_of = np.unique(np.asarray(members, dtype=np.int64))
        if rows_of.size and (rows_of[0] < 0 or rows_of[-1] >= n):
            raise ValueError(
                f"group {name!r} names an example outside the {n} given: positions are 0 to {n - 1}"
            )
        size = int(rows_of.size)
        if size < max(1, min_size):
            continue
        group_errors = float(values[rows_of].sum())
        error = group_errors / size
        baseline = baselines.get(name, default_baseline)
        room = error - (baseline if baseline is not None else 0.0)
        share = size / n
        rows.append(
            GroupRow(
                kind=kind,
                name=name,
                size=size,
                share_of_data=share,
                share_of_errors=group_errors / total if total > 0 else 0.0,
                error=error,
                gap=error - overall.error,
                baseline=baseline,
                potential_gain=max(0.0, room) * share,
            )
        )
    rows.sort(key=lambda r: (-r.potential_gain, -r.error, r.kind, r.name))
    return overall, rows


def slice_rows(
    overall: Overall,
    slices: Sequence[Slice],
    baselines: Mapping[str, float] | None = None,
    *,
    default_baseline: float | None = None,
) -> list[GroupRow]:
    """Discovered slices (``detectors/slices.py``) as rows of the table, named by their
    predicates (``country=BR ∧ amount<20.5``)."""
    baselines = baselines or {}
    rows = []
    for s in slices:
        name = s.describe()
        baseline = baselines.get(name, default_baseline)
        share = s.size / overall.size if overall.size else 0.0
        room = s.error_rate - (baseline if baseline is not None else 0.0)
        rows.append(
            GroupRow(
                kind="slice",
                name=name,
                size=s.size,
                share_of_data=share,
                share_of_errors=s.errors / overall.errors if overall.errors > 0 else 0.0,
                error=s.error_rate,
                gap=s.error_rate - overall.error,
                baseline=baseline,
                potential_gain=max(0.0, room) * share,
                q_value=s.q_value,
            )
        )
    return rows
