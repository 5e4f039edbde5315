import pytest

from detectors.drift.result import DriftWhen
from detectors.drift.total_variation import TOTAL_VARIATION_MIN_EFFECT, total_variation_test
from detectors.reference import CategoricalReference


def test_by_hand() -> None:
    ref = CategoricalReference.from_counts({"a": 50, "b": 30, "c": 20})
    result = total_variation_test(ref, {"a": 38, "b": 42, "c": 20})
    assert result.statistic == pytest.approx(0.12)
    assert result.effect_size == result.statistic and result.is_drift()
    assert (result.p_value, result.drift_when) == (None, DriftWhen.EFFECT_ONLY)
    assert (result.n_reference, result.n_current) == (100, 100)
    assert result.min_effect == TOTAL_VARIATION_MIN_EFFECT
    assert not total_variation_test(ref, {"a": 48, "b": 32, "c": 20}).is_drift()


def test_unseen_categories_count_as_moved_mass() -> None:
    ref = CategoricalReference.from_counts({"a": 100})
    assert total_variation_test(ref, {"a": 97, "new": 3}).statistic == pytest.approx(0.03)
    assert total_variation_test(ref, {"new": 5, "newer": 5}).statistic == pytest.approx(1.0)


def test_reference_categories_absent_from_window() -> None:
    ref = CategoricalReference.from_counts({"a": 50, "b": 50})
    result = total_variation_test(ref, {"a": 10})
    assert result.statistic == pytest.approx(0.5) and result.is_drift()


def test_empty_window_is_no_evidence() -> None:
    ref = CategoricalReference.from_counts({"a": 1})
    result = total_variation_test(ref, {})
    assert (result.effect_size, result.is_drift()) == (0.0, False)
