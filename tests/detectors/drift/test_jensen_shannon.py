import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from detectors.drift.jensen_shannon import (
    JENSEN_SHANNON_MIN_EFFECT,
    jensen_shannon_categorical,
    jensen_shannon_numeric,
)
from detectors.drift.result import DriftWhen
from detectors.reference import CategoricalReference, NumericReference


def test_numeric_matches_scipy_on_reference_bins() -> None:
    ref = NumericReference.from_values(np.arange(1.0, 101.0), bins=4)
    current = np.array([10.0, 10.0, 30.0, 60.0, 90.0, 95.0, 99.0, 100.0, np.nan])
    result = jensen_shannon_numeric(ref, current)
    expected = jensenshannon([0.25] * 4, [2 / 8, 1 / 8, 1 / 8, 4 / 8], base=2)
    assert result.statistic == pytest.approx(expected)
    assert result.effect_size == result.statistic
    assert (result.p_value, result.drift_when) == (None, DriftWhen.EFFECT_ONLY)
    assert result.min_effect == JENSEN_SHANNON_MIN_EFFECT and result.n_current == 8


def test_bounds_by_hand() -> None:
    ref = CategoricalReference.from_counts({"a": 10})
    assert jensen_shannon_categorical(ref, {"b": 4}).statistic == pytest.approx(1.0)
    same = jensen_shannon_categorical(ref, {"a": 3})
    assert same.statistic == 0.0 and not np.isnan(same.statistic) and not same.is_drift()


def test_categorical_matches_scipy_with_unseen_bucket() -> None:
    ref = CategoricalReference.from_counts({"a": 30, "b": 70})
    result = jensen_shannon_categorical(ref, {"a": 20, "b": 60, "new": 15, "newer": 5})
    expected = jensenshannon([0.3, 0.7, 0.0], [0.2, 0.6, 0.2], base=2)
    assert result.statistic == pytest.approx(expected)
    assert result.is_drift()
    assert not jensen_shannon_categorical(ref, {"a": 29, "b": 71}).is_drift()


def test_empty_sides_are_no_evidence() -> None:
    ref = NumericReference.from_values(np.arange(50.0))
    assert jensen_shannon_numeric(ref, np.array([np.nan])).effect_size == 0.0
    nothing = CategoricalReference.from_values([None])
    assert jensen_shannon_categorical(nothing, {"a": 1}).n_reference == 0
