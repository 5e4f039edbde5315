"""Shared preparation for the binned tests: reference-aligned counts and smoothing.

Numeric values are counted in the reference's quantile bins. Categories are aligned on the
reference's categories plus one last "unseen" bucket that collects every category the
reference never had, so new categories show up as mass where the reference had none.

>>> ref = CategoricalReference.from_counts({"a": 3, "b": 1})
>>> category_counts(ref, {"a": 2, "c": 5, "d": 1})
(array([3., 1., 0.]), array([2., 0., 6.]))
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from detectors.drift.result import FloatArray
from detectors.reference import CategoricalReference, NumericReference

DEFAULT_EPSILON = 1e-4


def present_values(current: FloatArray) -> FloatArray:
    """The window's values as a flat float64 array without NaN (missing)."""
    values = np.asarray(current, dtype=np.float64).ravel()
    return values[~np.isnan(values)]


def bin_proportions(reference: NumericReference, present: FloatArray) -> FloatArray:
    """The share of ``present`` (no NaN, not empty) in each reference bin."""
    return reference.bin_counts(present) / present.size


def category_counts(
    reference: CategoricalReference, current: Mapping[str, int]
) -> tuple[FloatArray, FloatArray]:
    """Reference and current counts per reference category, then the unseen bucket."""
    if any(n < 0 for n in current.values()):
        raise ValueError("category counts must be non-negative")
    known = reference.categories
    ref = np.array([*reference.counts, 0], dtype=np.float64)
    cur = np.array([current.get(c, 0) for c in known] + [0], dtype=np.float64)
    cur[-1] = sum(current.values()) - cur[:-1].sum()
    return ref, cur


def smooth(proportions: FloatArray, epsilon: float = DEFAULT_EPSILON) -> FloatArray:
    """Give empty bins a small share so log ratios stay finite: (p + eps) / (1 + k eps)."""
    return (proportions + epsilon) / (1.0 + proportions.size * epsilon)
