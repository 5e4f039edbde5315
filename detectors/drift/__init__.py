"""Batch two-sample drift tests: one test per module, one table from names to tests.

Every test is a pure function ``test(reference, current, *, min_effect=...)`` that returns a
frozen ``DriftTestResult`` saying which direction means drift. Numeric tests take a
``NumericReference`` and the window's values (NaN = missing); categorical tests take a
``CategoricalReference`` and the window's category counts. ``missing_rate_test`` works for
both kinds, and ``decide`` turns one window's results into a decision with multiple-testing
control. (A class-probability output is tested class by class, each class's probability as
a numeric column: ``detectors.drift.window``.)

>>> import numpy as np
>>> from detectors.reference import NumericReference
>>> rng = np.random.default_rng(0)
>>> ref = NumericReference.from_values(rng.normal(size=10_000))
>>> window = rng.normal(0.5, 1.0, size=1_000)
>>> decide({name: test(ref, window) for name, test in NUMERIC_TESTS.items()}).drifted
('jensen_shannon', 'ks', 'psi', 'wasserstein')
"""

from collections.abc import Mapping

from detectors.drift.chi_square import chi_square_test
from detectors.drift.decision import DriftDecision, FeatureDecision, decide
from detectors.drift.jensen_shannon import jensen_shannon_categorical, jensen_shannon_numeric
from detectors.drift.ks import ks_test
from detectors.drift.missing_rate import missing_rate_test
from detectors.drift.psi import psi_categorical, psi_numeric
from detectors.drift.result import CategoricalTest, DriftTestResult, DriftWhen, NumericTest
from detectors.drift.total_variation import total_variation_test
from detectors.drift.wasserstein import wasserstein_test

NUMERIC_TESTS: Mapping[str, NumericTest] = {
    "ks": ks_test,
    "wasserstein": wasserstein_test,
    "psi": psi_numeric,
    "jensen_shannon": jensen_shannon_numeric,
}

CATEGORICAL_TESTS: Mapping[str, CategoricalTest] = {
    "chi_square": chi_square_test,
    "psi": psi_categorical,
    "jensen_shannon": jensen_shannon_categorical,
    "total_variation": total_variation_test,
}

__all__ = [
    "CATEGORICAL_TESTS",
    "NUMERIC_TESTS",
    "CategoricalTest",
    "DriftDecision",
    "DriftTestResult",
    "DriftWhen",
    "FeatureDecision",
    "NumericTest",
    "chi_square_test",
    "decide",
    "jensen_shannon_categorical",
    "jensen_shannon_numeric",
    "ks_test",
    "missing_rate_test",
    "psi_categorical",
    "psi_numeric",
    "total_variation_test",
    "wasserstein_test",
]
