import numpy as np
import pytest
from scipy import stats

from detectors.drift.ks import KS_MIN_EFFECT, ks_test
from detectors.drift.result import DriftWhen
from detectors.reference import NumericReference


@pytest.mark.parametrize("n_current", [50, 5_000])  # exact and asymptotic p-values
def test_matches_scipy_on_the_reference_sample(n_current: int) -> None:
    rng = np.random.default_rng(1)
    ref = NumericReference.from_values(rng.normal(size=10_000), sample_size=2_000)
    current = rng.normal(0.1, 1.0, size=n_current)
    expected = stats.ks_2samp(ref.sample, current)
    result = ks_test(ref, current)
    assert result.statistic == pytest.approx(expected.statistic)
    assert result.effect_size == result.statistic
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-2, abs=1e-6)
    assert (result.n_reference, result.n_current) == (2_000, n_current)
    assert result.drift_when is DriftWhen.P_VALUE_AND_EFFECT
    assert result.min_effect == KS_MIN_EFFECT


def test_statistic_by_hand() -> None:
    ref = NumericReference.from_values(np.array([1.0, 2.0, 3.0, 4.0]))
    result = ks_test(ref, np.array([3.0, 4.0, 5.0, 6.0]))
    assert result.statistic == pytest.approx(0.5)  # ECDFs at 2: 0.5 vs 0


def test_missing_values_are_ignored() -> None:
    rng = np.random.default_rng(2)
    ref = NumericReference.from_values(rng.normal(size=1_000))
    current = rng.normal(size=300)
    with_gaps = np.insert(current, [0, 10, 200], np.nan)
    assert ks_test(ref, with_gaps) == ks_test(ref, current)


@pytest.mark.parametrize("current", [np.array([]), np.full(20, np.nan)])
def test_empty_window_is_no_evidence(current: np.ndarray) -> None:
    ref = NumericReference.from_values(np.arange(100.0))
    result = ks_test(ref, current)
    assert (result.n_current, result.p_value, result.effect_size) == (0, 1.0, 0.0)
    assert not result.is_drift()


def test_constant_feature() -> None:
    ref = NumericReference.from_values(np.full(500, 3.0))
    assert not ks_test(ref, np.full(200, 3.0)).is_drift()
    moved = ks_test(ref, np.full(200, 4.0))
    assert moved.statistic == 1.0 and moved.is_drift()


def test_min_effect_override() -> None:
    rng = np.random.default_rng(4)
    ref = NumericReference.from_values(rng.normal(size=20_000))
    current = rng.normal(0.5, 1.0, size=1_000)
    assert ks_test(ref, current).is_drift()
    strict = ks_test(ref, current, min_effect=0.5)
    assert strict.min_effect == 0.5 and not strict.is_drift()
