"""Prediction drift for class-probability outputs: one numeric test per class column.

A model's output is an n x classes array of probabilities. Each column is a numeric feature
("how sure is the model of class k"), so prediction drift reuses the numeric tests column by
column; results are keyed by class index as text ("0", "1", ...), like the window profile's
class labels, and can go straight into ``decide``. Rows with any NaN (a missing prediction)
are left out on both sides. Profile the reference once with ``class_references``.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> refs = class_references(rng.dirichlet([4.0, 4.0, 2.0], size=5_000))
>>> same = prediction_drift(refs, rng.dirichlet([4.0, 4.0, 2.0], size=1_000))
>>> {k: r.is_drift() for k, r in same.items()}
{'0': False, '1': False, '2': False}
>>> # mass moves from class 1 to class 0; class 2's share keeps its distribution
>>> skewed = prediction_drift(refs, rng.dirichlet([5.0, 3.0, 2.0], size=1_000))
>>> {k: r.is_drift() for k, r in skewed.items()}
{'0': True, '1': True, '2': False}
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from detectors.drift.ks import ks_test
from detectors.drift.result import DriftTestResult, FloatArray, NumericTest
from detectors.reference import NumericReference


def _complete_rows(probabilities: FloatArray) -> FloatArray:
    rows = np.asarray(probabilities, dtype=np.float64)
    if rows.ndim != 2:
        raise ValueError(f"class probabilities must be a 2-D array, got shape {rows.shape}")
    return rows[~np.isnan(rows).any(axis=1)]


def class_references(probabilities: FloatArray, **options: int) -> tuple[NumericReference, ...]:
    """One reference per class column; ``options`` go to ``NumericReference.from_values``."""
    rows = _complete_rows(probabilities)
    return tuple(NumericReference.from_values(rows[:, k], **options) for k in range(rows.shape[1]))


def prediction_drift(
    references: Sequence[NumericReference], current: FloatArray, test: NumericTest = ks_test
) -> dict[str, DriftTestResult]:
    """``test`` run on each class column of ``current`` against its class reference."""
    rows = _complete_rows(current)
    if rows.shape[1] != len(references):
        raise ValueError(
            f"the window has {rows.shape[1]} classes, the reference {len(references)}: "
            "profile a new reference when the model's classes change"
        )
    return {str(k): test(ref, rows[:, k]) for k, ref in enumerate(references)}
