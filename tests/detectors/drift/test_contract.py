"""Every test in the tables goes through the same checks."""

import dataclasses
import json
from collections.abc import Mapping

import numpy as np
import pytest

from detectors.drift import CATEGORICAL_TESTS, NUMERIC_TESTS, CategoricalTest, NumericTest
from detectors.drift.result import DriftTestResult, DriftWhen
from detectors.reference import CategoricalReference, NumericReference

RNG = np.random.default_rng(11)
NUMERIC_REF = NumericReference.from_values(RNG.normal(size=20_000))
SAME = RNG.normal(size=2_000)
SHIFTED = RNG.normal(0.6, 1.0, size=2_000)
CATEGORY_REF = CategoricalReference.from_counts({"a": 5_000, "b": 3_000, "c": 2_000})
SAME_COUNTS = {"a": 1_010, "b": 590, "c": 400}
SHIFTED_COUNTS = {"a": 600, "b": 600, "c": 400, "new": 400}


def _check_shape(name: str, result: DriftTestResult) -> None:
    assert result.test == name
    has_p = result.p_value is not None
    assert result.drift_when is (DriftWhen.P_VALUE_AND_EFFECT if has_p else DriftWhen.EFFECT_ONLY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.effect_size = 9.0  # type: ignore[misc]


@pytest.mark.parametrize("name", sorted(NUMERIC_TESTS))
def test_numeric_contract(name: str) -> None:
    test: NumericTest = NUMERIC_TESTS[name]
    same, shifted = test(NUMERIC_REF, SAME), test(NUMERIC_REF, SHIFTED)
    _check_shape(name, same)
    assert not same.is_drift() and shifted.is_drift()
    assert shifted.effect_size > same.effect_size
    assert test(NUMERIC_REF, SHIFTED) == shifted  # deterministic
    assert not test(NUMERIC_REF, SHIFTED, min_effect=10.0).is_drift()
    restored = NumericReference.from_dict(json.loads(json.dumps(NUMERIC_REF.to_dict())))
    assert test(restored, SHIFTED) == shifted
    for empty in (
        test(NUMERIC_REF, np.full(4, np.nan)),
        test(NumericReference.from_values(np.full(4, np.nan)), SAME),
    ):
        assert empty.effect_size == 0.0 and empty.p_value in (None, 1.0)
        assert not empty.is_drift()


@pytest.mark.parametrize("name", sorted(CATEGORICAL_TESTS))
def test_categorical_contract(name: str) -> None:
    test: CategoricalTest = CATEGORICAL_TESTS[name]
    same, shifted = test(CATEGORY_REF, SAME_COUNTS), test(CATEGORY_REF, SHIFTED_COUNTS)
    _check_shape(name, same)
    assert not same.is_drift() and shifted.is_drift()
    assert shifted.effect_size > same.effect_size
    assert not test(CATEGORY_REF, SHIFTED_COUNTS, min_effect=10.0).is_drift()
    restored = CategoricalReference.from_dict(json.loads(json.dumps(CATEGORY_REF.to_dict())))
    assert test(restored, SHIFTED_COUNTS) == shifted
    empty_window: Mapping[str, int] = {}
    for empty in (
        test(CATEGORY_REF, empty_window),
        test(CategoricalReference.from_values([None]), SAME_COUNTS),
    ):
        assert empty.effect_size == 0.0 and not empty.is_drift()
    only_unseen = test(CATEGORY_REF, {"never-seen": 500})
    assert only_unseen.is_drift()


def test_tables_list_every_test() -> None:
    assert sorted(NUMERIC_TESTS) == ["jensen_shannon", "ks", "psi", "wasserstein"]
    assert sorted(CATEGORICAL_TESTS) == ["chi_square", "jensen_shannon", "psi", "total_variation"]
