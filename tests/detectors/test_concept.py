import pickle

import numpy as np
import pytest
from river.base import BinaryDriftDetector

from detectors.concept import ERROR_DETECTORS, ErrorStreamDetector, detectors_for
from detectors.quality import score_quality

CLASSIFICATION = list(ERROR_DETECTORS)
BINARY = ["ddm", "eddm", "hddm_a", "hddm_w"]


def _errors(seed: int, before: float = 0.1, after: float = 0.4, n: int = 2_000) -> np.ndarray:
    """``n`` 0/1 errors at rate ``before``, then ``n`` at rate ``after``."""
    rng = np.random.default_rng(seed)
    return np.concatenate((rng.random(n) < before, rng.random(n) < after)).astype(np.float64)


def _river_detection_points(name: str, errors: np.ndarray) -> list[int]:
    detector, points = ERROR_DETECTORS[name](), []
    for i, x in enumerate(errors.tolist()):
        detector.update(bool(x) if name in BINARY else x)
        if detector.drift_detected:
            points.append(i)
    return points


def test_the_table_and_which_task_each_detector_watches() -> None:
    assert set(ERROR_DETECTORS) == {"ddm", "eddm", "hddm_a", "hddm_w", "adwin"}
    assert detectors_for("classification") == tuple(ERROR_DETECTORS)
    assert detectors_for("regression") == ("adwin",)
    for name in BINARY:
        assert isinstance(ERROR_DETECTORS[name](), BinaryDriftDetector)
    with pytest.raises(ValueError, match="unknown task"):
        detectors_for("ranking")  # type: ignore[arg-type]


# quiet budgets over ten stationary streams of 5,000 errors at 10%; EDDM with river's
# defaults fires on most of them (see the module docstring), so it has no budget here
@pytest.mark.parametrize(
    ("name", "budget"), [("adwin", 0), ("hddm_a", 0), ("hddm_w", 0), ("ddm", 20)]
)
def test_a_stationary_stream_seldom_fires(name: str, budget: int) -> None:
    total = 0
    for seed in range(10):
        detector = ErrorStreamDetector(name)
        detector.update_many(np.random.default_rng(seed).random(5_000) < 0.1)
        total += detector.detections
    assert total <= budget


@pytest.mark.parametrize("name", CLASSIFICATION)
@pytest.mark.parametrize("seed", [100, 101, 102])
def test_a_jump_in_the_error_rate_fires_soon_after_the_change(name: str, seed: int) -> None:
    errors = _errors(seed)
    detector = ErrorStreamDetector(name)
    detector.update_many(errors[:2_000])
    assert detector.update_many(errors[2_000:2_500]) >= 1  # within 500 errors of the change
    assert detector.last_detection_index is not None and detector.last_detection_index >= 2_000


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_same_detections_as_river_itself(name: str) -> None:
    errors = _errors(7)
    expected = _river_detection_points(name, errors)
    detector = ErrorStreamDetector(name)
    assert detector.update_many(errors) == len(expected) == detector.detections > 0
    assert detector.last_detection_index == expected[-1]
    assert detector.n_seen == errors.size


def test_parameters_reach_river() -> None:
    errors = _errors(8)
    strict = ErrorStreamDetector("ddm", drift_threshold=6.0)
    default = ErrorStreamDetector("ddm")
    assert strict.update_many(errors) < default.update_many(errors)
    assert strict.params == {"drift_threshold": 6.0}
    assert repr(strict) == "ErrorStreamDetector('ddm', task='classification', drift_threshold=6.0)"


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_micro_batches_and_missing_values_do_not_change_the_result(name: str) -> None:
    errors = _errors(9)
    whole = ErrorStreamDetector(name)
    whole.update_many(errors)
    chunked = ErrorStreamDetector(name)
    fired = sum(chunked.update_many(chunk) for chunk in np.array_split(errors, 7))
    assert (fired, chunked.last_detection_index) == (whole.detections, whole.last_detection_index)
    gappy = np.column_stack((np.full(errors.size, np.nan), errors)).ravel()
    with_gaps = ErrorStreamDetector(name)
    assert with_gaps.update_many(gappy) == whole.detections
    assert whole.last_detection_index is not None
    assert with_gaps.last_detection_index == 2 * whole.last_detection_index + 1
    assert with_gaps.n_seen == 2 * errors.size


def test_regression_errors_go_to_adwin() -> None:
    rng = np.random.default_rng(10)
    errors = np.abs(np.concatenate((rng.normal(0, 1, 2_000), rng.normal(0, 3, 2_000))))
    detector = ErrorStreamDetector("adwin", task="regression")
    assert detector.update_many(errors[:2_000]) == 0
    assert detector.update_many(errors[2_000:]) >= 1
    assert detector.last_detection_index is not None and detector.last_detection_index >= 2_000


@pytest.mark.parametrize("name", BINARY)
def test_regression_refuses_binary_detectors(name: str) -> None:
    with pytest.raises(ValueError, match="regression error stream needs one of: adwin"):
        ErrorStreamDetector(name, task="regression")


@pytest.mark.parametrize("name", BINARY)
def test_binary_detectors_refuse_other_errors_and_keep_their_state(name: str) -> None:
    detector = ErrorStreamDetector(name)
    detector.update_many([0.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="takes 0/1 errors"):
        detector.update_many([0.0, 0.5])
    assert detector.n_seen == 3


def test_bad_names_and_values_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown error-stream detector 'kswin'"):
        ErrorStreamDetector("kswin")
    with pytest.raises(ValueError, match="unknown task"):
        ErrorStreamDetector("adwin", task="ranking")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finite"):
        ErrorStreamDetector("adwin", task="regression").update_many([1.0, np.inf])


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_pickling_keeps_the_state(name: str) -> None:
    errors = _errors(11)
    original = ErrorStreamDetector(name)
    original.update_many(errors[:2_500])
    restored = pickle.loads(pickle.dumps(original))
    assert (restored.name, restored.task, restored.n_seen) == (name, "classification", 2_500)
    assert restored.detections == original.detections
    assert restored.update_many(errors[2_500:]) == original.update_many(errors[2_500:])
    assert restored.last_detection_index == original.last_detection_index
    assert restored.detections == original.detections


def test_watches_the_errors_that_score_quality_returns() -> None:
    rng = np.random.default_rng(12)
    labels = rng.integers(0, 2, 4_000)
    noise = np.concatenate((rng.normal(0, 0.3, 2_000), rng.normal(0, 0.8, 2_000)))
    scores = np.clip(labels + noise, 0.0, 1.0)
    errors = score_quality(scores.tolist(), labels.tolist()).errors
    detector = ErrorStreamDetector("hddm_a")
    assert detector.update_many(errors[:2_000]) == 0
    assert detector.update_many(errors[2_000:]) >= 1
