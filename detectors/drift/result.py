"""The one result type every batch drift test returns, and the two test signatures.

A p-value means drift when it is *small*, a distance when it is *large*; a result says which
rule applies in ``drift_when`` instead of leaving it to the caller. Every ``effect_size`` is a
distance (0 = same distribution, larger = more different) compared with ``min_effect``, so a
statistically significant but negligible change (tiny shifts seen through huge windows) is
not drift.

An empty sample on either side (no present value in the window, an all-missing reference) is
no evidence: statistic 0, effect 0 and p-value 1 (or None), never NaN, so results can always be
corrected and compared.

>>> r = DriftTestResult("ks", statistic=0.2, p_value=1e-9, effect_size=0.2, min_effect=0.1,
...                     n_reference=5000, n_current=1000,
...                     drift_when=DriftWhen.P_VALUE_AND_EFFECT)
>>> r.is_drift(alpha=0.05), r.is_drift(alpha=1e-12)
(True, False)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import numpy as np
import numpy.typing as npt

from detectors.reference import CategoricalReference, NumericReference

FloatArray = npt.NDArray[np.float64]


class DriftWhen(StrEnum):
    """The rule that turns a result into a drift decision."""

    # p_value < alpha and effect_size >= min_effect (and > 0)
    P_VALUE_AND_EFFECT = "p_value_below_alpha_and_effect_at_least_min"
    # effect_size >= min_effect (and > 0); the test has no p-value
    EFFECT_ONLY = "effect_at_least_min"


@dataclass(frozen=True)
class DriftTestResult:
    """One two-sample test of one feature in one window.

    ``statistic`` is the test's own statistic (KS D, chi-square, z, ...); ``effect_size`` is
    the distance compared with ``min_effect`` (each test's docstring says which and why its
    default is what it is). ``n_reference`` / ``n_current``: the values behind the statistic.
    """

    test: str
    statistic: float
    p_value: float | None
    effect_size: float
    min_effect: float
    n_reference: int
    n_current: int
    drift_when: DriftWhen

    def __post_init__(self) -> None:
        if (self.p_value is None) != (self.drift_when is DriftWhen.EFFECT_ONLY):
            raise ValueError(f"{self.test}: a p-value goes with {DriftWhen.P_VALUE_AND_EFFECT}")
        if self.p_value is not None and not 0.0 <= self.p_value <= 1.0:
            raise ValueError(f"{self.test}: p-value {self.p_value} is not in [0, 1]")
        if math.isnan(self.effect_size) or self.effect_size < 0 or self.min_effect < 0:
            raise ValueError(f"{self.test}: effect sizes are distances, >= 0 and not NaN")

    def is_drift(self, alpha: float = 0.05, *, p_value: float | None = None) -> bool:
        """The decision for this test alone (no multiple-testing correction), or with
        ``p_value`` in place of its own (an adjusted one; ``None``: its own)."""
        # a zero distance (identical, or nothing to compare) is never drift, even at min 0
        large = self.effect_size >= self.min_effect and self.effect_size > 0
        p = self.p_value if p_value is None else p_value
        if p is None:
            return large
        return large and p < alpha


def no_evidence(
    test: str, min_effect: float, n_reference: int, n_current: int, *, has_p_value: bool
) -> DriftTestResult:
    """The result for a test that has nothing to compare (an empty side)."""
    return DriftTestResult(
        test=test,
        statistic=0.0,
        p_value=1.0 if has_p_value else None,
        effect_size=0.0,
        min_effect=min_effect,
        n_reference=n_reference,
        n_current=n_current,
        drift_when=DriftWhen.P_VALUE_AND_EFFECT if has_p_value else DriftWhen.EFFECT_ONLY,
    )


class NumericTest(Protocol):
    """A numeric two-sample test: ``current`` holds the window's values, NaN allowed."""

    def __call__(
        self, reference: NumericReference, current: FloatArray, *, min_effect: float = ...
    ) -> DriftTestResult: ...


class CategoricalTest(Protocol):
    """A categorical two-sample test: ``current`` holds the window's category counts."""

    def __call__(
        self,
        reference: CategoricalReference,
        current: Mapping[str, int],
        *,
        min_effect: float = ...,
    ) -> DriftTestResult: ...
