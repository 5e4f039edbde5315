import math

import numpy as np
import pytest
from scipy import stats

from detectors.drift.missing_rate import MISSING_RATE_MIN_EFFECT, missing_rate_test
from detectors.drift.result import DriftWhen
from detectors.profile import CategoricalSummary, NumericSummary
from detectors.reference import CategoricalReference, NumericReference


def _counted(missing: int, count: int) -> CategoricalReference:
    return CategoricalReference.from_counts(
        {"x": count - missing} if count > missing else {}, missing
    )


def test_z_and_p_by_hand_and_against_chi_square() -> None:
    result = missing_rate_test(_counted(100, 10_000), _counted(60, 1_000))
    pooled = 160 / 11_000
    z = (0.06 - 0.01) / math.sqrt(pooled * (1 - pooled) * (1 / 10_000 + 1 / 1_000))
    assert result.statistic == pytest.approx(z)
    # a two-proportion z-test is the 2 x 2 chi-square test: z^2 = chi2, same p-value
    table = [[100, 9_900], [60, 940]]
    chi2 = stats.chi2_contingency(table, correction=False)
    assert result.statistic**2 == pytest.approx(chi2.statistic)
    assert result.p_value == pytest.approx(chi2.pvalue)
    assert result.drift_when is DriftWhen.P_VALUE_AND_EFFECT


def test_effect_is_cohens_h() -> None:
    result = missing_rate_test(_counted(100, 10_000), _counted(60, 1_000))
    h = 2 * math.asin(math.sqrt(0.06)) - 2 * math.asin(math.sqrt(0.01))
    assert result.effect_size == pytest.approx(h)
    assert result.min_effect == MISSING_RATE_MIN_EFFECT and result.is_drift()
    fewer = missing_rate_test(_counted(60, 1_000), _counted(100, 10_000))
    assert fewer.statistic < 0 and fewer.effect_size == pytest.approx(h)


def test_tiny_change_in_a_huge_window_is_not_drift() -> None:
    result = missing_rate_test(_counted(10_000, 1_000_000), _counted(11_000, 1_000_000))
    assert result.p_value is not None and result.p_value < 1e-9
    assert not result.is_drift()


def test_all_missing_edges() -> None:
    both = missing_rate_test(_counted(10, 10), _counted(5, 5))
    assert (both.statistic, both.p_value, both.effect_size) == (0.0, 1.0, 0.0)
    broke = missing_rate_test(_counted(0, 1_000), _counted(200, 200))
    assert broke.effect_size == pytest.approx(math.pi) and broke.is_drift()
    empty = missing_rate_test(_counted(0, 1_000), _counted(0, 0))
    assert (empty.n_current, empty.p_value, empty.is_drift()) == (0, 1.0, False)


def test_reads_references_and_window_summaries() -> None:
    values = np.array([1.0, np.nan, 3.0, 4.0] * 250)
    reference = NumericReference.from_values(values)  # 25% missing
    window = NumericSummary(sample_size=16)
    window.update(np.array([np.nan, np.nan, 1.0, 2.0] * 100), 0, np.random.default_rng(0))
    assert missing_rate_test(reference, window).is_drift()  # 50% missing
    categories = CategoricalSummary(max_categories=10)
    categories.update(np.array(["a", None, "b", "c"] * 100, dtype=object))
    assert not missing_rate_test(reference, categories).is_drift()  # 25% again
