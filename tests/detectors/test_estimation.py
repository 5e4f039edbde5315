"""Label-free quality estimation: CBPE for classifiers, DLE for regressors, and the drop test."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable, Mapping

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from scipy import optimize, special

from detectors.drift.result import FloatArray
from detectors.estimation import (
    CBPE,
    DLE,
    MEMBERS,
    MIN_REFERENCE_PAIRS,
    Estimate,
    EstimationUnavailable,
    _category_codes,
    _loss,
    estimated_drop_test,
)
from detectors.quality import Prediction, QualityStats, _class_name, score_quality

Draw = Callable[[np.random.Generator], tuple[list[Prediction], list[int]]]


def _binary(
    rng: np.random.Generator, n: int, a: float = 0.6, b: float = 0.6
) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """A perfectly calibrated binary model: y ~ Bernoulli(score)."""
    scores = rng.beta(a, b, n)
    return scores, (rng.random(n) < scores).astype(int)


def _by_name(estimates: list[Estimate]) -> dict[tuple[str, str], Estimate]:
    return {(e.metric.removeprefix("quality.estimated."), e.category): e for e in estimates}


def _windows(
    model: CBPE, rng: np.random.Generator, draw: Draw, count: int, metrics: tuple[str, ...]
) -> tuple[dict[str, FloatArray], dict[str, FloatArray]]:
    """(estimated - realised, covered by the band) of each metric over ``count`` windows."""
    errors: dict[str, list[float]] = {m: [] for m in metrics}
    covered: dict[str, list[bool]] = {m: [] for m in metrics}
    for _ in range(count):
        predictions, labels = draw(rng)
        estimates = _by_name(model.estimate(predictions))
        realised = score_quality(predictions, labels)
        for metric in metrics:
            name, _, category = metric.partition(":")
            value = realised.metric_value(f"quality.{name}", category)
            assert value is not None
            estimate = estimates[(name, category)]
            errors[metric].append(estimate.value - value)
            covered[metric].append(estimate.lower <= value <= estimate.upper)
    return (
        {m: np.asarray(v) for m, v in errors.items()},
        {m: np.asarray(v, dtype=float) for m, v in covered.items()},
    )


@pytest.fixture(scope="module")
def calibrated() -> CBPE:
    scores, labels = _binary(np.random.default_rng(1), 5_000)
    return CBPE.fit(scores.tolist(), labels.tolist())


# ---- CBPE, binary ----------------------------------------------------------------------


def test_calibrated_binary_estimates_match_realised_quality(calibrated: CBPE) -> None:
    per_class = tuple(f"{m}:{c}" for m in ("precision", "recall", "f1") for c in "01")
    headline = ("accuracy", "error_rate", "f1_macro", "precision_macro", "recall_macro")
    metrics = (*headline, "roc_auc", *per_class)

    def draw(rng: np.random.Generator) -> tuple[list[Prediction], list[int]]:
        scores, labels = _binary(rng, 1_000)
        return scores.tolist(), labels.tolist()

    errors, covered = _windows(calibrated, np.random.default_rng(2), draw, 200, metrics)
    # measured: 0.009 for accuracy and the macro figures, 0.007 for AUC; bias under 0.002
    for metric in (*headline, "roc_auc"):
        assert np.abs(errors[metric]).mean() < 0.015, metric
        assert abs(errors[metric].mean()) < 0.005, metric  # no bias
    # the 95% band covers the realised value (measured 96.5% for accuracy, 96-97% per class;
    # AUC's Hanley-McNeil band is wider, 98%)
    for metric in metrics:
        assert 0.90 <= covered[metric].mean() <= 0.99, metric


def test_covariate_shift_towards_the_threshold_lowers_the_estimate(calibrated: CBPE) -> None:
    rng = np.random.default_rng(3)
    results = {}
    for name, (a, b) in {"stationary": (0.6, 0.6), "shifted": (3.0, 3.0)}.items():
        scores, labels = _binary(rng, 5_000, a, b)
        estimate = _by_name(calibrated.estimate(scores.tolist()))[("accuracy", "")]
        realised = score_quality(scores.tolist(), labels.tolist()).metric_value("quality.accuracy")
        assert realised is not None
        assert estimate.value == pytest.approx(realised, abs=0.02)
        results[name] = (estimate.value, realised)
    drop_estimated = results["stationary"][0] - results["shifted"][0]
    drop_realised = results["stationary"][1] - results["shifted"][1]
    assert drop_realised > 0.15  # scores near 0.5 are right about 60% of the time, not 80%
    assert drop_estimated == pytest.approx(drop_realised, abs=0.03)


def test_miscalibrated_scores_are_recalibrated() -> None:
    rng = np.random.default_rng(4)
    truth, labels = _binary(rng, 5_000, 2.0, 2.0)
    model = CBPE.fit((truth**3).tolist(), labels.tolist())  # sure of far too little
    errors, naive_errors = [], []
    for _ in range(20):
        window, window_labels = _binary(rng, 1_000, 2.0, 2.0)
        shown = window**3
        estimate = _by_name(model.estimate(shown.tolist()))[("accuracy", "")].value
        realised = float(((shown >= 0.5) == window_labels).mean())
        # the naive expectation takes the scores at their word
        naive = float(np.where(shown >= 0.5, shown, 1.0 - shown).mean())
        errors.append(abs(estimate - realised))
        naive_errors.append(abs(naive - realised))
    # measured 0.017 (a window's realised accuracy alone varies by about 0.015) against 0.25
    assert np.mean(errors) < 0.025
    assert np.mean(naive_errors) > 0.1


def test_a_calibrated_model_keeps_its_scores(calibrated: CBPE) -> None:
    # cross-validation on the reference finds that the isotonic map does not lower the
    # held-out calibration error: the map is the identity, 0.45 stays 0.45 (no bend at 0.5)
    assert calibrated.knots[0].tolist() == [0.0, 1.0]
    assert calibrated.fitted[0].tolist() == [0.0, 1.0]
    rng = np.random.default_rng(6)
    truth, labels = _binary(rng, 5_000, 2.0, 2.0)
    cubed = CBPE.fit((truth**3).tolist(), labels.tolist())
    assert cubed.knots[0].size > 2  # miscalibrated scores are mapped
    scores, labels = _binary(rng, 5_000)
    assert (
        CBPE.fit(scores.tolist(), labels.tolist()).to_dict()
        == CBPE.fit(scores.tolist(), labels.tolist()).to_dict()
    )  # the folds are deterministic


def test_a_slightly_over_confident_score_takes_a_temperature() -> None:
    rng = np.random.default_rng(4)
    scores, labels = _binary(rng, 5_000)
    sharp = special.expit(special.logit(scores) * 1.2)  # its logit a fifth too large
    model = CBPE.fit(sharp.tolist(), labels.tolist())
    assert model.knots[0].tolist() == [0.0, 1.0]  # the isotonic map does not win every fold
    assert model.factor == pytest.approx(1 / 1.2, abs=0.05)
    window, window_labels = _binary(rng, 20_000)
    shown = special.expit(special.logit(window) * 1.2)
    estimate = _by_name(model.estimate(shown.tolist()))[("accuracy", "")].value
    realised = float(((shown >= 0.5) == window_labels).mean())
    naive = float(np.maximum(shown, 1 - shown).mean())
    # measured: 0.0003 off, the scores taken at their word 0.024
    assert abs(estimate - realised) < 0.01 < abs(naive - realised)


def test_estimated_auc_of_certain_probabilities_is_the_measured_auc() -> None:
    rng = np.random.default_rng(5)
    scores = np.round(rng.random(MIN_REFERENCE_PAIRS * 2), 2)
    # the score separates the classes perfectly, but the threshold (0.5) is not where
    labels = (scores > 0.4).astype(int)
    model = CBPE.fit(scores.tolist(), labels.tolist())
    estimates = _by_name(model.estimate(scores.tolist()))
    measured = score_quality(scores.tolist(), labels.tolist())
    for name in ("accuracy", "f1_macro", "precision_macro", "recall_macro", "roc_auc"):
        expected = measured.metric_value(f"quality.{name}")
        assert estimates[(name, "")].value == pytest.approx(expected), name
        # certain outcomes: the realised value is known, the band has no width
        if name != "roc_auc":
            assert estimates[(name, "")].lower == pytest.approx(expected, abs=1e-6), name
    assert estimates[("roc_auc", "")].value == 1.0
    assert estimates[("accuracy", "")].value < 0.95


def test_bands_are_clipped_and_ordered(calibrated: CBPE) -> None:
    scores, _ = _binary(np.random.default_rng(6), 50)
    for estimate in calibrated.estimate(scores.tolist(), confidence=0.99):
        assert 0.0 <= estimate.lower <= estimate.value <= estimate.upper <= 1.0, estimate
        assert estimate.n == 50
    narrow = _by_name(calibrated.estimate(scores.tolist(), confidence=0.5))[("accuracy", "")]
    wide = _by_name(calibrated.estimate(scores.tolist(), confidence=0.99))[("accuracy", "")]
    assert wide.upper - wide.lower > narrow.upper - narrow.lower > 0
    with pytest.raises(ValueError, match="confidence"):
        calibrated.estimate(scores.tolist(), confidence=1.0)


def test_metric_names(calibrated: CBPE) -> None:
    names = {(e.metric, e.category) for e in calibrated.estimate([0.2, 0.9, 0.6])}
    prefix = "quality.estimated."
    expected = {
        (prefix + m, "")
        for m in ("accuracy", "error_rate", "precision_macro", "recall_macro", "f1_macro")
    }
    expected |= {(prefix + m, c) for m in ("precision", "recall", "f1") for c in ("0", "1")}
    expected.add((prefix + "roc_auc", ""))
    assert names == expected


def test_unscorable_predictions_are_skipped_and_an_empty_window_has_no_estimate(
    calibrated: CBPE,
) -> None:
    scores = [0.1, 0.8, 0.45, 0.7]
    noisy: list[Prediction] = [None, 0.1, 1.5, 0.8, "x", 0.45, [0.3, 0.7], 0.7, True]
    assert calibrated.estimate(noisy) == calibrated.estimate(scores)
    assert calibrated.estimate([]) == []
    assert calibrated.estimate([None, None]) == []


def test_round_trip_and_short_repr(calibrated: CBPE) -> None:
    again = CBPE.from_dict(json.loads(json.dumps(calibrated.to_dict())))
    scores = np.random.default_rng(7).random(300).tolist()
    assert again.estimate(scores) == calibrated.estimate(scores)
    assert repr(calibrated) == "CBPE(binary, threshold=0.5, n_reference=5000)"


def test_threshold_moves_the_predicted_class() -> None:
    rng = np.random.default_rng(8)
    scores, labels = _binary(rng, 2_000)
    model = CBPE.fit(scores.tolist(), labels.tolist(), threshold=0.8)
    window, window_labels = _binary(rng, 20_000)
    estimate = _by_name(model.estimate(window.tolist()))[("accuracy", "")].value
    realised = score_quality(window.tolist(), window_labels.tolist(), threshold=0.8)
    assert estimate == pytest.approx(realised.metric_value("quality.accuracy"), abs=0.02)


# ---- CBPE, multi-class -----------------------------------------------------------------


def _dirichlet(rng: np.random.Generator, n: int) -> tuple[list[Prediction], list[int]]:
    probabilities = rng.dirichlet([0.5, 0.5, 0.5], n)
    labels = (rng.random(n)[:, None] > np.cumsum(probabilities, axis=1)).sum(axis=1)
    return probabilities.tolist(), np.minimum(labels, 2).tolist()


def test_multiclass_estimates_match_realised_quality() -> None:
    rng = np.random.default_rng(9)
    model = CBPE.fit(*_dirichlet(rng, 5_000))
    assert repr(model) == "CBPE(3 classes, threshold=0.5, n_reference=5000)"
    metrics = ("accuracy", "f1_macro", "recall_macro", "roc_auc", "f1:0", "precision:2")
    errors, covered = _windows(model, rng, lambda r: _dirichlet(r, 1_000), 60, metrics)
    # measured: 0.009 for accuracy and macro F1, 0.007 for AUC
    for metric in ("accuracy", "f1_macro", "recall_macro", "roc_auc"):
        assert np.abs(errors[metric]).mean() < 0.02, metric
    assert 0.85 <= covered["accuracy"].mean() <= 1.0


def test_multiclass_maps_are_applied_together_or_not_at_all() -> None:
    rng = np.random.default_rng(11)
    calibrated = CBPE.fit(*_dirichlet(rng, 5_000))
    # a calibrated model: every column keeps its scores, and no temperature
    assert all(k.tolist() == [0.0, 1.0] for k in calibrated.knots)
    assert calibrated.factor == 1.0
    probabilities, labels = _dirichlet(rng, 5_000)
    sharp = np.asarray(probabilities) ** 3  # sure of far too much, then renormalised
    sharp /= sharp.sum(axis=1, keepdims=True)
    model = CBPE.fit(sharp.tolist(), labels)
    assert all(k.size > 2 for k in model.knots)  # each column mapped
    window, window_labels = _dirichlet(rng, 2_000)
    shown = np.asarray(window) ** 3
    shown /= shown.sum(axis=1, keepdims=True)
    estimate = _by_name(model.estimate(shown.tolist()))[("accuracy", "")].value
    realised = float((shown.argmax(axis=1) == np.asarray(window_labels)).mean())
    naive = float(shown.max(axis=1).mean())  # the sharpened scores taken at their word
    assert abs(estimate - realised) < 0.03 < abs(naive - realised)


def test_a_slightly_over_confident_list_takes_a_temperature() -> None:
    rng = np.random.default_rng(13)
    probabilities, labels = _dirichlet(rng, 5_000)
    sharp = np.asarray(probabilities) ** 1.2  # a little too sure: the maps do not win every
    sharp /= sharp.sum(axis=1, keepdims=True)  # fold, one factor on the logarithms does
    model = CBPE.fit(sharp.tolist(), labels)
    assert all(k.tolist() == [0.0, 1.0] for k in model.knots)
    assert model.factor == pytest.approx(1 / 1.2, abs=0.05)
    assert (
        repr(model)
        == f"CBPE(3 classes, threshold=0.5, factor={model.factor:.4g}, n_reference=5000)"
    )
    errors, naive = [], []
    for _ in range(20):
        window, window_labels = _dirichlet(rng, 2_000)
        shown = np.asarray(window) ** 1.2
        shown /= shown.sum(axis=1, keepdims=True)
        estimate = _by_name(model.estimate(shown.tolist()))[("accuracy", "")].value
        realised = float((shown.argmax(axis=1) == np.asarray(window_labels)).mean())
        errors.append(estimate - realised)
        naive.append(float(shown.max(axis=1).mean()) - realised)  # taken at their word
    # measured: the scaled estimate is off by 0.008 on average, the raw scores by 0.033
    assert abs(np.mean(errors)) < 0.01 < abs(np.mean(naive))
    again = CBPE.from_dict(json.loads(json.dumps(model.to_dict())))
    assert again.factor == model.factor
    assert again.estimate(sharp[:300].tolist()) == model.estimate(sharp[:300].tolist())
    older = {k: v for k, v in model.to_dict().items() if k != "factor"}  # stored before
    assert CBPE.from_dict(older).factor == 1.0
    for bad in (float("nan"), -1.0, 0.0, 1e9):
        with pytest.raises(ValueError, match="temperature"):
            CBPE.from_dict({**model.to_dict(), "factor": bad})


def test_multiclass_rows_of_another_width_are_skipped() -> None:
    rng = np.random.default_rng(10)
    model = CBPE.fit(*_dirichlet(rng, 1_000))
    rows: list[Prediction] = [[0.2, 0.3, 0.5], [0.9, 0.1], None, [0.7, 0.2, 0.1], 0.4]
    clean: list[Prediction] = [[0.2, 0.3, 0.5], [0.7, 0.2, 0.1]]
    assert model.estimate(rows) == model.estimate(clean)
    assert _by_name(model.estimate(clean))[("accuracy", "")].n == 2


def test_arrays_give_the_estimates_of_lists(calibrated: CBPE) -> None:
    # a batch caller's arrays skip converting each prediction; the rows they hold are
    # judged as the same rows in a list (unscorable ones skipped)
    rng = np.random.default_rng(14)
    scores = rng.beta(0.6, 0.6, 1_000)
    scores[[3, 7, 9]] = [np.nan, 1.5, -0.2]
    assert calibrated.estimate(scores) == calibrated.estimate(scores.tolist())
    assert calibrated.estimate(scores.astype(np.float32)) == calibrated.estimate(
        scores.astype(np.float32).tolist()
    )
    assert calibrated.estimate(np.array([True, False] * 50)) == []  # bools are not scores
    assert calibrated.estimate(np.array([])) == []
    masked = np.ma.masked_array(scores, mask=np.arange(scores.size) % 4 == 0)
    assert calibrated.estimate(masked) == calibrated.estimate(masked.tolist())
    model = CBPE.fit(*_dirichlet(rng, 2_000))
    lists, _ = _dirichlet(rng, 1_000)
    matrix = np.asarray(lists)
    matrix[[1, 2, 3]] = [[0.0, 0.0, 0.0], [np.nan, 0.5, 0.5], [-0.1, 0.6, 0.5]]
    expected = model.estimate(matrix.tolist())
    assert _by_name(expected)[("accuracy", "")].n == 997
    assert model.estimate(matrix) == expected
    assert model.estimate(np.asfortranarray(matrix)) == expected  # a frame's to_numpy()
    mask = np.zeros(matrix.shape, dtype=bool)
    mask[5, 1] = True  # a masked entry: missing, its row unscorable
    masked = np.ma.masked_array(matrix, mask=mask)
    as_lists = [None if i == 5 else row for i, row in enumerate(matrix.tolist())]
    assert model.estimate(masked) == model.estimate(as_lists)
    as_objects = np.empty(len(lists), dtype=object)  # ragged rows: an array of objects
    as_objects[:] = [*matrix.tolist()[:-1], [0.5, 0.5]]
    assert model.estimate(as_objects) == model.estimate(as_objects.tolist())
    assert model.estimate(matrix[:, :2]) == []  # rows of another width


# ---- CBPE, what it cannot estimate -----------------------------------------------------


@pytest.mark.parametrize(
    "predictions",
    [["cat", "dog"] * 150, [True, False] * 150, [3.0, 7.0] * 150],
    ids=["names", "bools", "class numbers"],
)
def test_hard_class_predictions_have_no_probabilities(predictions: list[Prediction]) -> None:
    labels = ["cat", "dog"] * 150 if isinstance(predictions[0], str) else [1, 0] * 150
    with pytest.raises(EstimationUnavailable) as caught:
        CBPE.fit(predictions, labels)
    assert caught.value.reason == "no_probabilities"
    assert "probabilities" in str(caught.value)


def test_too_few_labelled_pairs() -> None:
    scores, labels = _binary(np.random.default_rng(11), MIN_REFERENCE_PAIRS - 1)
    with pytest.raises(EstimationUnavailable) as caught:
        CBPE.fit([*scores.tolist(), None, None], [*labels.tolist(), 1, 0])
    assert caught.value.reason == "no_labels"
    assert str(MIN_REFERENCE_PAIRS) in str(caught.value)
    with pytest.raises(EstimationUnavailable, match="labelled") as empty:
        CBPE.fit([None] * 300, [1] * 300)
    assert empty.value.reason == "no_labels"
    enough = CBPE.fit([*scores.tolist(), 0.5], [*labels.tolist(), 1])
    assert enough.n_reference == MIN_REFERENCE_PAIRS


def test_single_class_reference() -> None:
    scores = np.random.default_rng(12).random(500).tolist()
    with pytest.raises(EstimationUnavailable) as caught:
        CBPE.fit(scores, [1] * 500)
    assert caught.value.reason == "one_class"
    assert isinstance(caught.value, ValueError)
    again = pickle.loads(pickle.dumps(caught.value))  # crosses process boundaries intact
    assert (again.reason, str(again)) == ("one_class", str(caught.value))


def test_unpaired_input_is_an_error() -> None:
    with pytest.raises(ValueError, match="pairs"):
        CBPE.fit([0.1, 0.2], [1])


# ---- DLE -------------------------------------------------------------------------------


def _regression(
    rng: np.random.Generator, n: int, shift: float = 0.0
) -> tuple[list[Mapping[str, object]], list[float | None], list[float]]:
    """Noise whose sd grows with |x0| (and in segment "c"); the model predicts the mean."""
    x = rng.normal(0.0, 1.0, (n, 8))
    x[:, 0] += shift
    segment = rng.choice(["a", "b", "c"], n)
    sd = 0.2 + np.abs(x[:, 0]) + 0.5 * (segment == "c")
    predicted = 2.0 * x[:, 1] + x[:, 2]
    labels = predicted + rng.normal(0.0, 1.0, n) * sd
    features: list[Mapping[str, object]] = [
        {
            **{f"x{j}": float(x[i, j]) for j in range(8)},
            "segment": str(segment[i]),
            "flag": bool(i % 2),
            "x3": None if i % 50 == 0 else float(x[i, 3]),
        }
        for i in range(n)
    ]
    return features, predicted.tolist(), labels.tolist()


def _realised(predictions: list[float | None], labels: list[float]) -> tuple[float, float]:
    error = np.asarray(predictions, dtype=float) - np.asarray(labels)
    return float(np.abs(error).mean()), float(np.sqrt(np.square(error).mean()))


@pytest.fixture(scope="module")
def dle() -> DLE:
    return DLE.fit(*_regression(np.random.default_rng(20), 5_000), seed=0)


def test_dle_estimates_the_error_of_each_window(dle: DLE) -> None:
    rng = np.random.default_rng(21)
    relative: dict[float, list[tuple[float, float]]] = {0.0: [], 1.5: []}
    levels: dict[float, list[float]] = {0.0: [], 1.5: []}
    for window in range(20):
        shift = 1.5 if window % 2 else 0.0
        features, predictions, labels = _regression(rng, 1_000, shift)
        estimates = _by_name(dle.estimate(features, predictions))
        mae, rmse = _realised(predictions, labels)
        relative[shift].append(
            (estimates[("mae", "")].value / mae - 1, estimates[("rmse", "")].value / rmse - 1)
        )
        levels[shift].append(estimates[("mae", "")].value)
        assert estimates[("mae", "")].n == 1_000
    stationary = np.abs(np.asarray(relative[0.0])).mean(axis=0)
    shifted = np.abs(np.asarray(relative[1.5])).mean(axis=0)
    # measured: MAE within 2.7% and RMSE within 3.3% of the realised ones in stationary
    # windows; 2.3% and 8% when x0 moves into the noisy region the reference saw little of
    assert (stationary < 0.05).all(), stationary
    assert shifted[0] < 0.08 and shifted[1] < 0.15, shifted
    # the estimated MAE rises with the noise (realised: from about 0.93 to 1.5)
    assert min(levels[1.5]) > max(levels[0.0]) + 0.3


def test_dle_band_covers_the_realised_mae(dle: DLE) -> None:
    rng = np.random.default_rng(22)
    covered = []
    for _ in range(40):
        features, predictions, labels = _regression(rng, 1_000)
        estimate = _by_name(dle.estimate(features, predictions))[("mae", "")]
        mae, _ = _realised(predictions, labels)
        covered.append(estimate.lower <= mae <= estimate.upper)
        assert 0 < estimate.lower < estimate.value < estimate.upper
    # the band adds the error model's held-out relative error of the mean, not its error under
    # shift
    assert 0.75 <= np.mean(covered) <= 1.0


def test_dle_is_flat_beyond_the_reference(dle: DLE) -> None:
    # inputs are clipped to the reference's 0.5-99.5 percentiles: no extrapolation beyond
    features, predictions, _ = _regression(np.random.default_rng(26), 300)

    def moved(x0: float) -> list[Mapping[str, object]]:
        return [{**row, "x0": x0} for row in features]

    far, farther = dle.estimate(moved(10.0), predictions), dle.estimate(moved(100.0), predictions)
    assert [e.value for e in far] == [e.value for e in farther]
    assert dle.lower is not None and np.isfinite(dle.lower[0]) and not np.isfinite(dle.lower[2])
    assert 0.0 < dle.model_error[0] < 0.1


def test_dle_is_deterministic_for_a_seed(dle: DLE) -> None:
    reference = _regression(np.random.default_rng(20), 5_000)
    again = DLE.fit(*reference, seed=0)
    other = DLE.fit(*reference, seed=1)
    assert np.array_equal(again.theta, dle.theta)
    assert not np.array_equal(other.theta, dle.theta)
    assert repr(dle).startswith("DLE(") and len(repr(dle)) < 100
    restored = DLE.from_dict(json.loads(json.dumps(dle.to_dict())))
    features, predictions, _ = _regression(np.random.default_rng(25), 200)
    assert restored.estimate(features, predictions) == dle.estimate(features, predictions)
    assert dle.theta.shape[0] == MEMBERS  # an ensemble, a network a row
    state = dle.to_dict()
    state["theta"] = state["theta"][0]  # a state of one network, as older versions saved
    single = DLE.from_dict(state)
    assert single.theta.shape[0] == 1
    assert len(single.estimate(features, predictions)) == 2
    # a state from before the |e| network's second estimate of e^2: the e^2 network alone
    assert dle.shape > 1.0
    del state["shape"]
    assert DLE.from_dict(state).shape == 0.0
    assert len(DLE.from_dict(state).estimate(features, predictions)) == 2
    for bad in (float("nan"), float("inf"), -1.0):  # a corrupted state: a clear error
        with pytest.raises(ValueError, match="shape"):
            DLE.from_dict({**state, "shape": bad})


def test_dle_ignores_what_the_reference_never_varied(dle: DLE) -> None:
    # x0 is never missing in the reference: its missing indicator taught the networks nothing,
    # so a missing x0 is estimated as the reference's median x0, not through untrained weights
    features, predictions, _ = _regression(np.random.default_rng(27), 300)
    median = dle.columns.medians[dle.columns.numeric.index("x0")]
    missing = [{**row, "x0": None} for row in features]
    at_median = [{**row, "x0": median} for row in features]
    assert dle.estimate(missing, predictions) == dle.estimate(at_median, predictions)
    # x3's indicator did vary (1 row in 50): it is used
    x3 = dle.columns.numeric.index("x3")
    assert 1 + 2 * x3 + 1 in dle._inference.keep.tolist()


def test_dle_skips_missing_predictions_and_unknown_categories(dle: DLE) -> None:
    features, predictions, _ = _regression(np.random.default_rng(23), 300)
    with_gaps = [*features, {"segment": "never seen", "x0": "text"}, {}]
    assert dle.estimate(with_gaps, [*predictions, None, None]) == dle.estimate(
        features, predictions
    )
    odd = dle.estimate([{"segment": "never seen", "x9": 3}], [0.5])  # nothing known: imputed
    assert len(odd) == 2 and all(e.value >= 0 for e in odd)
    assert dle.estimate([], []) == []


def test_dle_columns_give_the_estimates_of_rows(dle: DLE) -> None:
    features, predictions, _ = _regression(np.random.default_rng(28), 500)
    features = [*features, {"segment": 7, "x0": "text", "x5": True}, {}]
    predictions = [*predictions, 1.0, 2.0]
    predictions[4] = None  # skipped, in either form
    names = {name for row in features for name in row} - {"x7"}  # a column left out
    columns = {name: [row.get(name) for row in features] for name in names}
    rows = [{k: v for k, v in row.items() if k != "x7"} for row in features]
    expected = dle.estimate(rows, predictions)
    assert dle.estimate(columns, predictions) == expected
    arrays = {
        name: np.array(values, dtype=float if name in ("x1", "x2") else object)
        for name, values in columns.items()
    }
    as_numbers = np.array(predictions, dtype=float)  # None: NaN, skipped as well
    assert dle.estimate(arrays, as_numbers) == expected
    # a frame's columns (pandas Series, labelled from 50) and tuples are read by position
    series = {
        name: pd.Series(values, index=range(50, 50 + len(values)))
        for name, values in columns.items()
    }
    assert dle.estimate(series, predictions) == expected  # type: ignore[arg-type]
    tuples = {name: tuple(values) for name, values in columns.items()}
    assert dle.estimate(tuples, predictions) == expected
    masked = np.ma.masked_array(arrays["x1"], mask=np.arange(len(predictions)) % 3 == 0)
    with_mask = {**columns, "x1": [None if i % 3 == 0 else v for i, v in enumerate(columns["x1"])]}
    assert dle.estimate({**arrays, "x1": masked}, predictions) == dle.estimate(
        with_mask, predictions
    )
    # no columns at all: every feature missing, as for empty rows
    assert dle.estimate({}, predictions) == dle.estimate([{}] * len(predictions), predictions)
    with pytest.raises(EstimationUnavailable, match="columns are for estimate"):
        DLE.fit(columns, predictions, [1.0] * len(predictions))  # type: ignore[arg-type]
    for bad, message in [
        ({"x0": 1.0}, "not a column"),
        ({"x0": np.zeros((len(predictions), 2))}, "1-D"),
        ({"x0": [1.0, 2.0]}, "2 values"),
        ({"x0": dict(enumerate(columns["x0"]))}, "is a dict"),  # frame.to_dict()'s default
        ({"x0": set(range(len(predictions)))}, "is a set"),
    ]:
        with pytest.raises(EstimationUnavailable, match=message) as caught:
            dle.estimate(bad, predictions)  # type: ignore[arg-type]
        assert caught.value.reason == "no_features"


@pytest.mark.parametrize(
    "values",
    [
        ["a", "b", "zz", "a", "c"] * 20,
        ["a", 1, 1.0, True, False, None, float("nan"), 2.5, "true", "1", np.str_("b"), "q"],
        ["a", [1, 2], "b", {"x": 1}],  # unhashable: named one by one
    ],
    ids=["text", "mixed", "unhashable"],
)
def test_category_codes_name_every_value_as_a_class(values: list[object]) -> None:
    top = ("a", "1", "true", "b", "2.5")
    index = {c: i for i, c in enumerate(top)}
    expected = [index.get(_class_name(v) or "", len(top)) for v in values]
    assert _category_codes(values, top).tolist() == expected
    assert _category_codes(np.array(values, dtype=object), top).tolist() == expected


def test_dle_gradient_is_the_derivative_of_its_loss() -> None:
    rng = np.random.default_rng(26)
    x, y, h = rng.normal(size=(700, 5)), rng.normal(size=(700, 2)), 4  # 700: several blocks
    theta = rng.normal(size=5 * h + h + h * 2 + 2)
    error = optimize.check_grad(
        lambda t: _loss(t, x, y, 1e-2, h)[0], lambda t: _loss(t, x, y, 1e-2, h)[1], theta
    )
    assert error < 1e-4 * np.linalg.norm(_loss(theta, x, y, 1e-2, h)[1])


def test_dle_input_errors() -> None:
    features, predictions, labels = _regression(np.random.default_rng(24), 300)
    with pytest.raises(EstimationUnavailable) as few:
        DLE.fit(features[:100], predictions[:100], labels[:100])
    assert few.value.reason == "no_labels"
    with pytest.raises(EstimationUnavailable) as classes:
        DLE.fit(features, [[0.2, 0.8]] * 300, [1.0] * 300)  # type: ignore[list-item]
    assert classes.value.reason == "not_regression"
    with pytest.raises(EstimationUnavailable, match="CBPE") as scores:
        DLE.fit(features, [0.2, 0.9, 0.4] * 100, [0, 1, 0] * 100)
    assert scores.value.reason == "not_regression"
    with pytest.raises(EstimationUnavailable) as rows:
        DLE.fit(features[:10], predictions, labels)
    assert rows.value.reason == "no_features"


# ---- the drop test ---------------------------------------------------------------------


def test_no_drop_on_stationary_data(calibrated: CBPE) -> None:
    rng = np.random.default_rng(30)
    scores, labels = _binary(rng, 5_000)
    reference = score_quality(scores.tolist(), labels.tolist()).stats
    results = []
    for _ in range(300):
        window, _ = _binary(rng, 1_000)
        results.append(estimated_drop_test(reference, calibrated.estimate(window.tolist())))
    assert {r.test for r in results} == {"estimated_quality_drop"}
    assert sum(r.is_drift(0.05) for r in results) <= 1  # the minimum effect: +5 points
    # without a minimum effect, the p-values alone are about as often small as they should be
    significant = np.mean([r.p_value is not None and r.p_value < 0.05 for r in results])
    assert significant < 0.12


def test_a_real_drop_is_detected_and_an_improvement_is_not(calibrated: CBPE) -> None:
    rng = np.random.default_rng(31)
    scores, labels = _binary(rng, 5_000)
    reference = score_quality(scores.tolist(), labels.tolist()).stats
    worse, _ = _binary(rng, 1_000, 3.0, 3.0)  # near the threshold: about 40% wrong
    drop = estimated_drop_test(reference, calibrated.estimate(worse.tolist()))
    assert drop.is_drift() and drop.effect_size > 0.1 and drop.statistic > 3
    assert (drop.n_reference, drop.n_current) == (5_000, 1_000)
    better, _ = _binary(rng, 1_000, 0.2, 0.2)  # sure and right more often
    improvement = estimated_drop_test(reference, calibrated.estimate(better.tolist()))
    assert not improvement.is_drift() and improvement.effect_size == 0.0
    assert improvement.statistic < 0
    # an accuracy alone is enough; nothing to compare is no evidence
    accuracy = [e for e in calibrated.estimate(worse.tolist()) if e.metric.endswith("accuracy")]
    assert estimated_drop_test(reference, accuracy).p_value == pytest.approx(drop.p_value)
    assert estimated_drop_test(reference, []).p_value == 1.0
    assert estimated_drop_test(QualityStats(None), accuracy).effect_size == 0.0


def test_regression_drop(dle: DLE) -> None:
    rng = np.random.default_rng(32)
    _, predictions, labels = _regression(rng, 5_000)
    error = np.abs(np.asarray(predictions, dtype=float) - np.asarray(labels))
    reference = QualityStats.from_errors("regression", error)
    same = estimated_drop_test(reference, dle.estimate(*_regression(rng, 1_000)[:2]))
    assert not same.is_drift()
    noisy = estimated_drop_test(reference, dle.estimate(*_regression(rng, 1_000, 1.5)[:2]))
    assert noisy.is_drift() and noisy.effect_size > 0.3  # MAE up by about 60%
    assert noisy.min_effect == pytest.approx(0.1)
