"""Calibration of the default minimum effects: what they catch and what they ignore."""

import numpy as np
import pytest

from detectors.drift import CATEGORICAL_TESTS, NUMERIC_TESTS, ks_test, missing_rate_test
from detectors.reference import CategoricalReference, NumericReference

SEEDS = range(20)


def test_half_sigma_shift_in_a_thousand_events_is_drift() -> None:
    flagged = {name: 0 for name in NUMERIC_TESTS}
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        ref = NumericReference.from_values(rng.normal(size=50_000))
        window = rng.normal(0.5, 1.0, size=1_000)
        for name, test in NUMERIC_TESTS.items():
            flagged[name] += test(ref, window).is_drift()
    assert flagged["ks"] >= 19
    assert all(n >= 19 for n in flagged.values()), flagged


def test_two_percent_sigma_shift_in_huge_windows_is_not_drift() -> None:
    significant = 0
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        # a large reference sample, so the KS test has the power to see the tiny shift
        ref = NumericReference.from_values(rng.normal(size=400_000), sample_size=200_000)
        window = rng.normal(0.02, 1.0, size=100_000)
        ks = ks_test(ref, window)
        significant += ks.p_value is not None and ks.p_value < 0.05
        for name, test in NUMERIC_TESTS.items():
            assert not test(ref, window).is_drift(), (name, seed)
    assert significant >= 15  # significant, but below every minimum effect


def test_no_false_alarms_on_stationary_windows_of_a_thousand() -> None:
    rng = np.random.default_rng(99)
    ref = NumericReference.from_values(rng.normal(size=50_000))
    alarms = {name: 0 for name in NUMERIC_TESTS}
    for _ in range(100):
        window = rng.normal(size=1_000)
        for name, test in NUMERIC_TESTS.items():
            alarms[name] += test(ref, window).is_drift()
    assert all(n <= 1 for n in alarms.values()), alarms


@pytest.mark.parametrize(
    ("shares", "n", "drift"),
    # 50/50 -> 75/25 is drift for every categorical test; the defaults differ below that:
    # about 10 points of moved mass for chi-square and TVD, 16 for PSI, 18 for JS
    [((0.75, 0.25), 1_000, True), ((0.501, 0.499), 1_000_000, False)],
)
def test_categorical_defaults(shares: tuple[float, float], n: int, drift: bool) -> None:
    ref = CategoricalReference.from_counts({"a": 500_000, "b": 500_000})
    for seed in SEEDS:
        a = int(np.random.default_rng(seed).binomial(n, shares[0]))
        window = {"a": a, "b": n - a}
        for name, test in CATEGORICAL_TESTS.items():
            assert test(ref, window).is_drift() is drift, (name, seed)


def test_missing_rate_defaults() -> None:
    ref = CategoricalReference.from_counts({"x": 99_000}, missing=1_000)  # 1%
    rng = np.random.default_rng(0)
    for _ in SEEDS:
        broken = int(rng.binomial(1_000, 0.05))
        window = CategoricalReference.from_counts({"x": 1_000 - broken}, missing=broken)
        assert missing_rate_test(ref, window).is_drift()
        creeping = int(rng.binomial(1_000_000, 0.012))
        window = CategoricalReference.from_counts({"x": 1_000_000 - creeping}, missing=creeping)
        result = missing_rate_test(ref, window)
        assert result.p_value is not None and result.p_value < 0.05 and not result.is_drift()
