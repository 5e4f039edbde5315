"""The drift tests' own arithmetic gives what the scipy calls it replaces give: the same
statistics and p-values on the same data, to float rounding (the per-call wrappers, not the
maths, were the cost)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from detectors.drift.chi_square import homogeneity
from detectors.drift.ks import ks_asymptotic, ks_statistic
from detectors.drift.missing_rate import missing_rate_test
from detectors.drift.wasserstein import wasserstein_sorted
from detectors.reference import NumericReference


def _samples(seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        (rng.normal(size=5000), rng.normal(shift, scale, size=n))
        for shift, scale, n in [(0, 1, 1000), (0.3, 1, 2000), (0, 2, 700), (1, 1, 5000)]
    ] + [
        # ties: rounded values, and a feature with few distinct values
        (rng.normal(size=5000).round(1), rng.normal(0.1, 1, size=3000).round(1)),
        (rng.integers(0, 5, 5000).astype(float), rng.integers(0, 6, 1500).astype(float)),
    ]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ks_and_wasserstein_match_scipy(seed: int) -> None:
    for ref, cur in _samples(seed):
        reference = np.sort(ref)
        expected = stats.ks_2samp(ref, cur, method="asymp")
        d, p = ks_asymptotic(reference, cur)
        assert d == pytest.approx(float(expected.statistic), abs=1e-15)
        assert ks_statistic(reference, cur) == d
        assert p == pytest.approx(float(expected.pvalue), rel=1e-12, abs=1e-300)
        assert wasserstein_sorted(reference, cur) == pytest.approx(
            stats.wasserstein_distance(ref, cur), rel=1e-12
        )


def test_homogeneity_matches_chi2_contingency() -> None:
    rng = np.random.default_rng(3)
    for k in (2, 3, 8, 40):
        for _ in range(5):
            table = rng.integers(1, 500, size=(2, k)).astype(np.float64)
            expected = stats.chi2_contingency(table, correction=False)
            statistic, p = homogeneity(table)
            assert statistic == pytest.approx(float(expected.statistic), rel=1e-12)
            assert p == pytest.approx(float(expected.pvalue), rel=1e-10, abs=1e-300)


def test_the_missing_rate_tail_is_the_normal_one() -> None:
    ref = NumericReference.from_values(np.where(np.arange(1000) % 10 == 0, np.nan, 1.0))
    cur = NumericReference.from_values(np.where(np.arange(500) % 4 == 0, np.nan, 1.0))
    result = missing_rate_test(ref, cur)
    assert result.p_value == pytest.approx(2 * stats.norm.sf(abs(result.statistic)), rel=1e-12)
