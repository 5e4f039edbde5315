import numpy as np
import pytest

from detectors.drift.ks import ks_test
from detectors.drift.prediction import class_references, prediction_drift
from detectors.drift.psi import psi_numeric
from detectors.reference import NumericReference


def _probabilities(alphas: list[float], n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(alphas, size=n)


def test_one_result_per_class_equal_to_the_column_test() -> None:
    reference, current = _probabilities([2, 2, 2], 3_000, 0), _probabilities([3, 2, 1], 800, 1)
    refs = class_references(reference, sample_size=1_000)
    results = prediction_drift(refs, current)
    assert list(results) == ["0", "1", "2"]
    for k in range(3):
        column_ref = NumericReference.from_values(reference[:, k], sample_size=1_000)
        assert results[str(k)] == ks_test(column_ref, current[:, k])
    assert results["0"].is_drift() and results["2"].is_drift()


def test_rows_with_missing_predictions_are_dropped() -> None:
    reference, current = _probabilities([1, 1], 500, 2), _probabilities([1, 1], 200, 3)
    gappy = np.vstack((current, [[np.nan, np.nan], [0.3, np.nan]]))
    refs = class_references(np.vstack((reference, [[np.nan, 0.5]])))
    assert refs[0].count == 500
    assert prediction_drift(refs, gappy) == prediction_drift(refs, current)
    assert prediction_drift(refs, gappy)["1"].n_current == 200


def test_other_numeric_tests_plug_in() -> None:
    refs = class_references(_probabilities([2, 2], 2_000, 4))
    results = prediction_drift(refs, _probabilities([2, 2], 500, 5), test=psi_numeric)
    assert {r.test for r in results.values()} == {"psi"}


def test_shape_errors_say_what_is_wrong() -> None:
    refs = class_references(_probabilities([1, 1, 1], 100, 6))
    with pytest.raises(ValueError, match="3 classes"):
        prediction_drift(refs[:2], _probabilities([1, 1, 1], 10, 7))
    with pytest.raises(ValueError, match="2-D"):
        prediction_drift(refs, np.array([0.2, 0.8]))
