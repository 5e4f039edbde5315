import numpy as np
import pytest
from scipy import stats

from detectors.drift.result import DriftWhen
from detectors.drift.wasserstein import WASSERSTEIN_MIN_EFFECT, wasserstein_test
from detectors.reference import NumericReference


def test_by_hand_in_reference_standard_deviations() -> None:
    ref = NumericReference.from_values(np.array([0.0, 1.0, 2.0, 3.0]))
    result = wasserstein_test(ref, np.array([1.0, 2.0, 3.0, 4.0, np.nan]))
    assert result.statistic == pytest.approx(1.0)  # every unit of mass moves by 1
    assert result.effect_size == pytest.approx(1.0 / np.std([0, 1, 2, 3], ddof=1))
    assert (result.p_value, result.drift_when) == (None, DriftWhen.EFFECT_ONLY)
    assert result.n_current == 4


def test_matches_scipy_and_is_unit_free() -> None:
    rng = np.random.default_rng(5)
    values, current = rng.gamma(2.0, size=8_000), rng.gamma(2.3, size=1_500)
    ref = NumericReference.from_values(values, sample_size=3_000)
    result = wasserstein_test(ref, current)
    expected = stats.wasserstein_distance(ref.sample, current)
    assert result.statistic == pytest.approx(expected)
    assert ref.std is not None
    assert result.effect_size == pytest.approx(expected / ref.std)
    scaled = wasserstein_test(
        NumericReference.from_values(values * 1e3, sample_size=3_000), current * 1e3
    )
    assert scaled.effect_size == pytest.approx(result.effect_size)


def test_shift_in_sigma_units() -> None:
    rng = np.random.default_rng(6)
    ref = NumericReference.from_values(rng.normal(50.0, 10.0, size=50_000))
    result = wasserstein_test(ref, rng.normal(55.0, 10.0, size=5_000))
    assert result.effect_size == pytest.approx(0.5, abs=0.05)
    assert result.is_drift() and result.min_effect == WASSERSTEIN_MIN_EFFECT


def test_constant_reference_does_not_divide_by_zero() -> None:
    ref = NumericReference.from_values(np.full(100, 3.0))
    same = wasserstein_test(ref, np.full(50, 3.0))
    assert (same.statistic, same.effect_size) == (0.0, 0.0) and not same.is_drift()
    moved = wasserstein_test(ref, np.full(50, 4.0))
    pooled = np.concatenate((np.full(100, 3.0), np.full(50, 4.0))).std()
    assert moved.effect_size == pytest.approx(1.0 / pooled)
    assert np.isfinite(moved.effect_size) and moved.is_drift()


def test_empty_window_and_empty_reference() -> None:
    ref = NumericReference.from_values(np.arange(10.0))
    assert wasserstein_test(ref, np.full(3, np.nan)).effect_size == 0.0
    nothing = NumericReference.from_values(np.full(3, np.nan))
    result = wasserstein_test(nothing, np.arange(10.0))
    assert (result.n_reference, result.effect_size, result.is_drift()) == (0, 0.0, False)
