import math

import numpy as np
import pytest
from scipy import stats

from detectors.drift.chi_square import CHI_SQUARE_MIN_EFFECT, chi_square_test
from detectors.drift.result import DriftWhen
from detectors.reference import CategoricalReference


def test_matches_scipy_contingency_test() -> None:
    ref = CategoricalReference.from_counts({"a": 400, "b": 350, "c": 250})
    current = {"a": 120, "b": 50, "c": 30}
    result = chi_square_test(ref, current)
    expected = stats.chi2_contingency([[400, 350, 250], [120, 50, 30]], correction=False)
    assert result.statistic == pytest.approx(expected.statistic)
    assert result.p_value == pytest.approx(expected.pvalue)
    assert (result.n_reference, result.n_current) == (1_000, 200)
    assert result.drift_when is DriftWhen.P_VALUE_AND_EFFECT
    assert result.min_effect == CHI_SQUARE_MIN_EFFECT


def test_effect_is_cramers_v_at_equal_sample_sizes() -> None:
    ref = CategoricalReference.from_counts({"a": 50, "b": 50})
    result = chi_square_test(ref, {"a": 60, "b": 40})
    assert result.effect_size == pytest.approx(math.sqrt(0.5 * (0.01 / 1.1 + 0.01 / 0.9)))
    # with equal sample sizes it is the textbook Cramer's V, sqrt(chi2 / N)
    assert result.effect_size == pytest.approx(math.sqrt(result.statistic / 200))
    # a bigger reference changes the p-value, not the effect
    big = chi_square_test(
        CategoricalReference.from_counts({"a": 50_000, "b": 50_000}), {"a": 60, "b": 40}
    )
    assert big.effect_size == pytest.approx(result.effect_size)
    assert big.p_value is not None and result.p_value is not None
    assert big.p_value < result.p_value


def test_unseen_categories_are_drift_evidence() -> None:
    ref = CategoricalReference.from_counts({"a": 100})
    result = chi_square_test(ref, {"a": 90, "z": 6, "y": 4})
    expected = stats.chi2_contingency([[100, 0], [90, 10]], correction=False)
    assert result.statistic == pytest.approx(expected.statistic)
    assert result.effect_size == pytest.approx(math.sqrt(0.5 * (0.01 / 1.9 + 0.01 / 0.1)))
    assert result.is_drift()


def test_single_category_and_disjoint_categories() -> None:
    ref = CategoricalReference.from_counts({"only": 40})
    same = chi_square_test(ref, {"only": 7})
    assert (same.statistic, same.p_value, same.effect_size) == (0.0, 1.0, 0.0)
    assert same.n_current == 7 and not same.is_drift()
    disjoint = chi_square_test(ref, {"other": 30})
    assert disjoint.effect_size == pytest.approx(1.0) and disjoint.is_drift()


def test_empty_window_is_no_evidence() -> None:
    ref = CategoricalReference.from_counts({"a": 3, "b": 4})
    result = chi_square_test(ref, {"a": 0})
    assert (result.n_current, result.p_value, result.is_drift()) == (0, 1.0, False)


def test_effect_threshold_ignores_tiny_significant_changes() -> None:
    ref = CategoricalReference.from_counts({"a": 500_000, "b": 500_000})
    result = chi_square_test(ref, {"a": 505_000, "b": 495_000})
    assert result.p_value is not None and result.p_value < 1e-6
    assert result.effect_size < 0.02 and not result.is_drift()
    assert np.isclose(result.effect_size, math.sqrt(0.5 * 2 * 0.005**2 / 1.005), rtol=1e-2)
