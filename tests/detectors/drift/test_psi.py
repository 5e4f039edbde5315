import math

import numpy as np
import pytest

from detectors.drift.histograms import smooth
from detectors.drift.psi import PSI_MIN_EFFECT, psi, psi_categorical, psi_numeric
from detectors.drift.result import DriftWhen
from detectors.reference import CategoricalReference, NumericReference


def test_psi_formula_by_hand() -> None:
    p, q = np.array([0.5, 0.5]), np.array([0.6, 0.4])
    assert psi(p, q, epsilon=0.0) == pytest.approx(0.1 * math.log(1.2) - 0.1 * math.log(0.8))
    assert psi(p, q) == pytest.approx(psi(p, q, epsilon=0.0), rel=1e-3)
    assert psi(p, p) == 0.0


def test_numeric_uses_reference_quantile_bins() -> None:
    ref = NumericReference.from_values(np.arange(1.0, 101.0), bins=4)
    current = np.concatenate((np.full(50, 10.0), np.full(50, 90.0), [np.nan]))
    result = psi_numeric(ref, current)
    p, q = smooth(np.full(4, 0.25)), smooth(np.array([0.5, 0.0, 0.0, 0.5]))
    assert result.statistic == pytest.approx(float(np.sum((q - p) * np.log(q / p))))
    assert result.effect_size == result.statistic
    assert (result.p_value, result.drift_when) == (None, DriftWhen.EFFECT_ONLY)
    assert (result.n_reference, result.n_current) == (100, 100)
    assert result.is_drift() and result.min_effect == PSI_MIN_EFFECT


def test_empty_bins_stay_finite() -> None:
    ref = NumericReference.from_values(np.arange(100.0), bins=10)
    result = psi_numeric(ref, np.full(100, 1e6))  # everything in the top bin
    assert np.isfinite(result.statistic) and result.is_drift()
    assert psi_numeric(ref, np.full(100, 1e6), epsilon=1e-6).statistic > result.statistic


def test_constant_reference_has_one_bin_and_no_psi_signal() -> None:
    # one bin cannot show a change; KS and Wasserstein cover constant features
    ref = NumericReference.from_values(np.full(100, 2.0))
    assert psi_numeric(ref, np.full(100, 7.0)).statistic == 0.0


def test_categorical_by_hand_and_unseen_categories() -> None:
    ref = CategoricalReference.from_counts({"a": 50, "b": 50})
    shifted = psi_categorical(ref, {"a": 60, "b": 40})
    assert shifted.statistic == pytest.approx(psi(np.array([0.5, 0.5, 0]), np.array([0.6, 0.4, 0])))
    assert psi_categorical(ref, {"a": 50, "b": 50}).statistic == pytest.approx(0.0)
    unseen = psi_categorical(ref, {"a": 50, "c": 30, "d": 20})
    expected = psi(np.array([0.5, 0.5, 0.0]), np.array([0.5, 0.0, 0.5]))
    assert unseen.statistic == pytest.approx(expected)
    assert unseen.is_drift()


def test_categorical_empty_window() -> None:
    ref = CategoricalReference.from_counts({"a": 5})
    result = psi_categorical(ref, {})
    assert (result.n_current, result.effect_size, result.is_drift()) == (0, 0.0, False)
    with pytest.raises(ValueError, match="non-negative"):
        psi_categorical(ref, {"a": -1})
