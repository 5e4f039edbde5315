import json
import math
from collections.abc import Sequence

import numpy as np
import pytest
from scipy import stats

from detectors.drift.result import DriftWhen
from detectors.quality import (
    MAX_RELATIVE_EFFECT,
    OTHER_CLASS,
    Label,
    Prediction,
    QualityResult,
    QualityStats,
    Task,
    history_values,
    infer_task,
    quality_drop_test,
    reference_stats,
    row_sums,
    score_quality,
    stats_from_metrics,
    weighted_roc_auc,
)


def _value(result: QualityResult, metric: str, category: str = "") -> float:
    value = result.metric_value(metric, category)
    assert value is not None, f"{metric} [{category}] missing from {result.metrics}"
    return value


def _per_class_by_loops(
    predicted: Sequence[str], actual: Sequence[str]
) -> dict[str, tuple[float, float, float, int]]:
    """Precision, recall, F1 and support per class, one pair at a time (the reference)."""
    table = {}
    for c in sorted(set(predicted) | set(actual)):
        tp = sum(1 for p, y in zip(predicted, actual, strict=True) if p == y == c)
        n_pred = sum(1 for p in predicted if p == c)
        n_true = sum(1 for y in actual if y == c)
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / n_true if n_true else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        table[c] = (precision, recall, f1, n_true)
    return table


def _stats(task: Task, errors: np.ndarray) -> QualityStats:
    return QualityStats.from_errors(task, errors)


# ---- classification metrics --------------------------------------------------------


def test_string_classes_by_hand() -> None:
    predicted = ["cat", "dog", "cat", "cat", "bird", "dog"]
    actual = ["cat", "cat", "dog", "cat", "bird", "dog"]
    result = score_quality(predicted, actual)
    assert (result.task, result.count, result.unscorable) == ("classification", 6, 0)
    assert result.errors.tolist() == [0.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    assert _value(result, "quality.accuracy") == pytest.approx(4 / 6)
    assert _value(result, "quality.error_rate") == pytest.approx(2 / 6)
    # cat: 2 right of 3 predicted, of 3 true; dog: 1 of 2, of 2; bird: 1 of 1
    for cls, expected in {"cat": 2 / 3, "dog": 1 / 2, "bird": 1.0}.items():
        for metric in ("precision", "recall", "f1"):
            assert _value(result, f"quality.{metric}", cls) == pytest.approx(expected)
    assert _value(result, "quality.support", "cat") == 3
    for metric in ("precision_macro", "recall_macro", "f1_macro"):
        assert _value(result, f"quality.{metric}") == pytest.approx(13 / 18)
    # no probabilities, no binary positive class
    assert result.metric_value("quality.log_loss") is None
    assert result.metric_value("quality.positive_rate") is None


def test_binary_scores_by_hand() -> None:
    scores = [0.9, 0.2, 0.6, 0.4]
    result = score_quality(scores, [1, 0, 0, 1])
    assert result.task == "classification"
    # predicted 1, 0, 1, 0: right, right, wrong, wrong
    assert result.errors.tolist() == [0.0, 0.0, 1.0, 1.0]
    expected_loss = -(math.log(0.9) + math.log(0.8) + math.log(0.4) + math.log(0.4)) / 4
    assert _value(result, "quality.log_loss") == pytest.approx(expected_loss)
    # confidences 0.9, 0.8, 0.6, 0.6 fall in bins 9, 8, 6, 6 with accuracies 1, 1, 0
    expected_ece = (abs(1 - 0.9) + abs(1 - 0.8) + 2 * abs(0 - 0.6)) / 4
    assert _value(result, "quality.calibration_error") == pytest.approx(expected_ece)
    assert _value(result, "quality.positive_rate") == 0.5
    assert _value(result, "quality.label_positive_rate") == 0.5
    assert _value(result, "quality.precision", "1") == pytest.approx(0.5)
    assert _value(result, "quality.recall", "0") == pytest.approx(0.5)
    # the same labels as bools, floats or text give the same answer
    for labels in ([True, False, False, True], [1.0, 0.0, 0.0, 1.0], ["1", "0", "0", "1"]):
        again = score_quality(scores, labels)
        assert again.metrics == result.metrics


def test_threshold_moves_the_predicted_class() -> None:
    result = score_quality([0.3, 0.6, 0.1], [1, 1, 0], threshold=0.25)
    assert result.errors.tolist() == [0.0, 0.0, 0.0]
    assert _value(result, "quality.positive_rate") == pytest.approx(2 / 3)


def test_probability_lists_by_hand() -> None:
    probabilities = [[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3], [0.3, 0.4, 0.3]]
    result = score_quality(probabilities, [0, 2, 0, "1"])
    # predicted 0, 2, 1, 1
    assert result.errors.tolist() == [0.0, 0.0, 1.0, 0.0]
    expected_loss = -(math.log(0.7) + math.log(0.6) + math.log(0.2) + math.log(0.4)) / 4
    assert _value(result, "quality.log_loss") == pytest.approx(expected_loss)
    # one pair per bin (0.7, 0.6, 0.5, 0.4) with accuracies 1, 1, 0, 1
    expected_ece = (0.3 + 0.4 + 0.5 + 0.6) / 4
    assert _value(result, "quality.calibration_error") == pytest.approx(expected_ece)
    assert _value(result, "quality.precision", "0") == 1.0
    assert _value(result, "quality.recall", "0") == 0.5
    assert _value(result, "quality.f1", "1") == pytest.approx(2 / 3)
    assert _value(result, "quality.f1", "2") == 1.0
    assert result.metric_value("quality.positive_rate") is None  # not a binary score


def test_binary_roc_auc_is_the_mann_whitney_u_with_ties() -> None:
    rng = np.random.default_rng(40)
    labels = rng.integers(0, 2, 500)
    scores = np.round(np.clip(0.3 * labels + rng.random(500) * 0.7, 0.0, 1.0), 1)  # many ties
    result = score_quality(scores.tolist(), labels.tolist())
    positives, negatives = scores[labels == 1], scores[labels == 0]
    u = stats.mannwhitneyu(positives, negatives).statistic
    assert _value(result, "quality.roc_auc") == pytest.approx(u / (positives.size * negatives.size))
    # by hand: of the 4 (positive, negative) pairs, 0.9 > 0.2, 0.9 > 0.6, 0.4 > 0.2, 0.4 < 0.6
    assert _value(score_quality([0.9, 0.2, 0.6, 0.4], [1, 0, 0, 1]), "quality.roc_auc") == 0.75


def test_multiclass_roc_auc_is_the_macro_one_vs_rest() -> None:
    rng = np.random.default_rng(41)
    matrix = rng.dirichlet([1.0, 1.0, 1.0], 300)
    labels = rng.integers(0, 3, 300)
    result = score_quality(matrix.tolist(), labels.tolist())
    aucs = []
    for c in range(3):
        inside, outside = matrix[labels == c, c], matrix[labels != c, c]
        u = stats.mannwhitneyu(inside, outside).statistic
        aucs.append(u / (inside.size * outside.size))
    assert _value(result, "quality.roc_auc") == pytest.approx(np.mean(aucs))


def test_roc_auc_is_omitted_when_a_class_is_absent_or_there_are_no_probabilities() -> None:
    assert score_quality([0.2, 0.7, 0.9], [1, 1, 1]).metric_value("quality.roc_auc") is None
    missing = score_quality([[0.5, 0.3, 0.2], [0.1, 0.8, 0.1]], [0, 1])  # no label of class 2
    assert missing.metric_value("quality.roc_auc") is None
    assert score_quality(["a", "b"], ["a", "b"]).metric_value("quality.roc_auc") is None
    assert score_quality([True, False], [1, 0]).metric_value("quality.roc_auc") is None


def test_weighted_roc_auc_of_probabilities_is_the_expected_pair_order() -> None:
    scores = np.array([0.1, 0.5, 0.5, 0.9])
    positive = np.array([0.2, 0.5, 0.6, 0.9])
    ordered = pairs = 0.0
    for i in range(4):  # every (positive half, negative half) pair, an event's own included
        for j in range(4):
            weight = positive[i] * (1 - positive[j])
            pairs += weight
            ordered += weight * (1.0 if scores[i] > scores[j] else 0.5 * (scores[i] == scores[j]))
    assert weighted_roc_auc(scores, positive) == pytest.approx(ordered / pairs)
    # the events written twice, as positives weighted p and negatives weighted 1 - p
    doubled_scores = np.concatenate([scores, scores])
    doubled = np.concatenate([np.ones(4), np.zeros(4)])
    weights = np.concatenate([positive, 1 - positive])
    ranked = pairs_w = 0.0
    for up in np.flatnonzero(doubled == 1).tolist():
        for down in np.flatnonzero(doubled == 0).tolist():
            w = weights[up] * weights[down]
            pairs_w += w
            a, b = doubled_scores[up], doubled_scores[down]
            ranked += w * (1.0 if a > b else 0.5 * (a == b))
    assert weighted_roc_auc(scores, positive) == pytest.approx(ranked / pairs_w)
    assert weighted_roc_auc(scores, np.ones(4)) is None
    assert weighted_roc_auc(np.zeros(0), np.zeros(0)) is None


def test_probability_rows_are_normalised_and_bad_rows_are_unscorable() -> None:
    predictions: list[Prediction] = [
        [2.0, 1.0, 1.0],  # sums to 4: probability of class 0 is 0.5
        [0.5, 0.5],  # another width than the rest
        [0.2, -0.1, 0.9],  # a negative probability
        [0.0, 0.0, 0.0],  # nothing to normalise
        [0.1, 0.2, 0.7],  # label out of range below
        [0.6, 0.2, 0.2],  # label is not a class index below
        None,
        [0.2, 0.2, 0.6],
    ]
    labels: list[Label] = [0, 0, 1, 1, 3, "cat", 0, 2.0]
    result = score_quality(predictions, labels)
    assert (result.count, result.unscorable) == (2, 6)
    expected_loss = -(math.log(0.5) + math.log(0.6)) / 2
    assert _value(result, "quality.log_loss") == pytest.approx(expected_loss)


def test_matches_a_pair_by_pair_reference_with_a_class_never_predicted() -> None:
    rng = np.random.default_rng(3)
    actual = rng.choice(["a", "b", "c", "d"], size=500, p=[0.5, 0.3, 0.15, 0.05]).tolist()
    # the model never predicts "d" and confuses the others at random
    predicted = [y if rng.random() < 0.7 else str(rng.choice(["a", "b", "c"])) for y in actual]
    predicted = [p if p != "d" else "a" for p in predicted]
    result = score_quality(predicted, actual)
    reference = _per_class_by_loops(predicted, actual)
    for cls, (precision, recall, f1, support) in reference.items():
        assert _value(result, "quality.precision", cls) == pytest.approx(precision)
        assert _value(result, "quality.recall", cls) == pytest.approx(recall)
        assert _value(result, "quality.f1", cls) == pytest.approx(f1)
        assert _value(result, "quality.support", cls) == support
    assert _value(result, "quality.precision", "d") == 0.0
    macro_f1 = sum(r[2] for r in reference.values()) / len(reference)
    assert _value(result, "quality.f1_macro") == pytest.approx(macro_f1)


def test_skewed_classes_are_scored_honestly() -> None:
    actual = ["neg"] * 990 + ["pos"] * 10
    result = score_quality(["neg"] * 1_000, actual)  # always the majority class
    assert _value(result, "quality.accuracy") == pytest.approx(0.99)
    for metric in ("precision", "recall", "f1"):
        assert _value(result, f"quality.{metric}", "pos") == 0.0  # never predicted: 0, not NaN
    f1_neg = 2 * 0.99 / 1.99
    assert _value(result, "quality.f1_macro") == pytest.approx((f1_neg + 0.0) / 2)
    assert all(math.isfinite(m.value) for m in result.metrics)


def test_binary_scores_with_a_rare_positive_class() -> None:
    labels = [0] * 99 + [1]
    result = score_quality([0.1] * 100, labels)
    assert _value(result, "quality.precision", "1") == 0.0
    assert _value(result, "quality.positive_rate") == 0.0
    assert _value(result, "quality.label_positive_rate") == pytest.approx(0.01)
    assert all(math.isfinite(m.value) for m in result.metrics)


def test_bool_predictions_are_classes_true_and_false() -> None:
    result = score_quality([True, False, True, None], [1, 0, False, True])
    assert (result.count, result.unscorable) == (3, 1)
    assert result.errors.tolist() == [0.0, 0.0, 1.0]
    assert _value(result, "quality.precision", "true") == 0.5
    assert _value(result, "quality.positive_rate") == pytest.approx(2 / 3)


def test_numbers_as_classes_when_the_task_is_given() -> None:
    result = score_quality([0, 2, 1, 2], [0.0, 2, 2, "2"], task="classification")
    assert result.errors.tolist() == [0.0, 0.0, 1.0, 0.0]
    assert _value(result, "quality.support", "2") == 3
    assert infer_task([0, 2, 1, 2], [0, 2, 2, 2]) == "regression"  # numbers alone: regression


def test_max_classes_folds_the_smallest_classes() -> None:
    supports = {"a": 50, "b": 40, "c": 30, "d": 20, "e": 10}
    actual = [c for c, n in supports.items() for _ in range(n)]
    predicted = [{"d": "e", "e": "d", "c": "a"}.get(c, c) for c in actual]
    folded = score_quality(predicted, actual, max_classes=3)
    whole = score_quality(predicted, actual)
    categories = [m.category for m in folded.metrics if m.metric == "quality.support"]
    assert categories == ["a", "b", "c", OTHER_CLASS]
    assert _value(folded, "quality.support", OTHER_CLASS) == 30
    # d and e swapped are wrong as classes, but right for the folded class
    assert _value(folded, "quality.recall", OTHER_CLASS) == 1.0
    assert _value(folded, "quality.recall", "c") == 0.0
    # headline metrics are computed before folding
    for metric in ("quality.accuracy", "quality.f1_macro", "quality.precision_macro"):
        assert _value(folded, metric) == _value(whole, metric)


# ---- regression metrics ------------------------------------------------------------


def test_regression_by_hand() -> None:
    result = score_quality([3, 5, 2.5, 8], [2, 5, 4, 10])
    assert (result.task, result.count) == ("regression", 4)
    # residuals 1, 0, -1.5, -2
    assert result.errors.tolist() == [1.0, 0.0, 1.5, 2.0]
    assert _value(result, "quality.mae") == pytest.approx(4.5 / 4)
    assert _value(result, "quality.rmse") == pytest.approx(math.sqrt(7.25 / 4))
    assert _value(result, "quality.bias") == pytest.approx(-2.5 / 4)
    assert result.metric_value("quality.error_rate") is None
    assert result.metric_value("quality.accuracy") is None


def test_regression_skips_unusable_pairs() -> None:
    predictions: list[Prediction] = [3.0, None, 4.0, 5.0, 6.0, 7.0]
    labels: list[Label] = [2.0, 1.0, "abc", True, 6.5, 10**400]
    result = score_quality(predictions, labels)
    assert (result.task, result.count, result.unscorable) == ("regression", 2, 4)
    assert result.errors.tolist() == [1.0, 0.5]


def test_scores_can_be_regressed_when_asked() -> None:
    result = score_quality([0.2, 0.9], [0, 1], task="regression")
    assert _value(result, "quality.mae") == pytest.approx(0.15)


# ---- task inference and bad input -------------------------------------------------------


@pytest.mark.parametrize(
    ("predictions", "labels", "task"),
    [
        ([[0.2, 0.8], [0.6, 0.4]], [1, 0], "classification"),
        (["a", "b"], ["a", "a"], "classification"),
        ([True, None], [True, False], "classification"),
        ([0.2, 0.7, None], [0, 1.0, 0], "classification"),
        ([0.2, 0.7], [True, False], "classification"),
        ([0.2, 0.7], [0, "not a label"], "classification"),  # the bad label is unscorable
        ([0.2, 0.7], [0, 0.5], "regression"),  # 0.5 is a target, not a class
        ([0.2, 1.7], [0, 1], "regression"),
        ([12.0, 3], [10.5, 2], "regression"),
        ([None, None], [1, 0], None),
        ([], [], None),
        ([1.5, 2.5], ["x", "y"], None),  # numbers against text: nothing to score
    ],
)
def test_infer_task(predictions: list[Prediction], labels: list[Label], task: str | None) -> None:
    assert infer_task(predictions, labels) == task


def test_nothing_scorable_gives_an_empty_result() -> None:
    result = score_quality([None, None], [1, 0])
    assert (result.task, result.count, result.unscorable, result.metrics) == (None, 0, 2, ())
    assert result.errors.size == 0
    assert result.stats == QualityStats(None)
    given = score_quality([None], ["a"], task="classification")
    assert (given.task, given.count, given.metrics) == ("classification", 0, ())


def test_errors_are_read_only_and_in_input_order() -> None:
    result = score_quality(["a", None, "b", "c"], ["b", "a", "b", "a"])
    assert result.errors.tolist() == [1.0, 0.0, 1.0]
    with pytest.raises(ValueError):
        result.errors[0] = 0.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task": "ranking"}, "unknown task"),
        ({"threshold": 1.5}, "threshold"),
        ({"max_classes": 0}, "max_classes"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        score_quality([0.5], [1], **kwargs)  # type: ignore[arg-type]


def test_unpaired_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="2 predictions but 1 labels"):
        score_quality([0.5, 0.1], [1])


# ---- sufficient statistics -----------------------------------------------------------


def test_stats_merge_like_the_whole_batch() -> None:
    rng = np.random.default_rng(5)
    predictions, labels = rng.normal(size=300).tolist(), rng.normal(size=300).tolist()
    whole = score_quality(predictions, labels).stats
    merged = score_quality(predictions[:120], labels[:120]).stats.merge(
        score_quality(predictions[120:], labels[120:]).stats
    )
    assert merged.task == whole.task == "regression"
    assert merged.n == whole.n == 300
    assert merged.error_sum == pytest.approx(whole.error_sum)
    assert merged.error_sq_sum == pytest.approx(whole.error_sq_sum)
    assert QualityStats(None).merge(whole) == whole == whole.merge(QualityStats(None))


def test_classification_stats_count_the_misclassified() -> None:
    stats_ = score_quality(["a", "b", "b"], ["a", "a", "a"]).stats
    assert (stats_.task, stats_.n, stats_.error_sum, stats_.error_sq_sum) == (
        "classification",
        3,
        2.0,
        2.0,
    )
    assert stats_.mean_error == pytest.approx(2 / 3)
    assert QualityStats(None).mean_error is None


def test_stats_round_trip_through_json() -> None:
    stats_ = QualityStats("regression", 10, 4.5, 3.25)
    assert QualityStats.from_dict(json.loads(json.dumps(stats_.to_dict()))) == stats_
    assert QualityStats.from_dict(QualityStats(None).to_dict()) == QualityStats(None)
    with pytest.raises(ValueError, match="unknown task"):
        QualityStats.from_dict({"task": "ranking", "n": 1, "error_sum": 0, "error_sq_sum": 0})


def test_stats_of_different_tasks_do_not_merge() -> None:
    with pytest.raises(ValueError, match="cannot merge classification quality"):
        QualityStats("classification", 5, 1.0, 1.0).merge(QualityStats("regression", 5, 1, 1))
    with pytest.raises(ValueError, match="need a task"):
        QualityStats(None, 3)


# ---- the quality drop test -------------------------------------------------------------


def _classification_stats(n: int, errors: int) -> QualityStats:
    return QualityStats("classification", n, float(errors), float(errors))


def test_same_error_rate_is_not_drift() -> None:
    rng = np.random.default_rng(11)
    n, draws = 5_000, 2_000
    results = [
        quality_drop_test(
            _classification_stats(n, int(rng.binomial(n, 0.1))),
            _classification_stats(n, int(rng.binomial(n, 0.1))),
        )
        for _ in range(draws)
    ]
    assert not any(r.is_drift() for r in results)  # the min effect keeps noise out
    # and the one-sided p-value alone is calibrated: about alpha of them fall below it
    below = sum(r.p_value is not None and r.p_value < 0.05 for r in results) / draws
    assert 0.035 <= below <= 0.065


def test_detects_a_rise_from_10_to_30_percent_with_500_each() -> None:
    rng = np.random.default_rng(12)
    reference = _stats("classification", (rng.random(500) < 0.1).astype(float))
    current = _stats("classification", (rng.random(500) < 0.3).astype(float))
    result = quality_drop_test(reference, current)
    assert result.is_drift()
    assert result.test == "quality_drop"
    assert result.drift_when is DriftWhen.P_VALUE_AND_EFFECT
    assert result.statistic > 0
    assert result.effect_size == pytest.approx(current.error_sum / 500 - reference.error_sum / 500)
    assert (result.n_reference, result.n_current, result.min_effect) == (500, 500, 0.05)


def test_an_improvement_is_not_drift() -> None:
    result = quality_drop_test(_classification_stats(500, 150), _classification_stats(500, 50))
    assert not result.is_drift()
    assert result.statistic < 0
    assert result.effect_size == 0.0
    assert result.p_value is not None and result.p_value > 0.99


def test_a_small_significant_rise_is_not_drift_unless_asked() -> None:
    reference, current = (
        _classification_stats(100_000, 10_000),
        _classification_stats(100_000, 11_000),
    )
    assert not quality_drop_test(reference, current).is_drift()  # 1 point < 5 points
    assert quality_drop_test(reference, current, min_effect=0.005).is_drift()


def test_regression_drop_is_a_relative_rise_in_mae() -> None:
    rng = np.random.default_rng(13)
    reference_errors = np.abs(rng.normal(0.0, 1.0, 2_000))
    current_errors = np.abs(rng.normal(0.0, 1.5, 1_000))
    result = quality_drop_test(
        _stats("regression", reference_errors), _stats("regression", current_errors)
    )
    assert result.is_drift()
    expected = current_errors.mean() / reference_errors.mean() - 1.0
    assert result.effect_size == pytest.approx(expected)
    assert result.min_effect == 0.1
    # the statistic and p-value are Welch's one-sided t-test on the raw errors
    welch = stats.ttest_ind(
        current_errors, reference_errors, equal_var=False, alternative="greater"
    )
    assert result.statistic == pytest.approx(welch.statistic)
    assert result.p_value == pytest.approx(welch.pvalue)


def test_regression_same_or_better_is_not_drift() -> None:
    rng = np.random.default_rng(14)
    reference = _stats("regression", np.abs(rng.normal(0.0, 1.0, 5_000)))
    same = _stats("regression", np.abs(rng.normal(0.0, 1.0, 5_000)))
    better = _stats("regression", np.abs(rng.normal(0.0, 0.5, 5_000)))
    assert not quality_drop_test(reference, same).is_drift()
    improved = quality_drop_test(reference, better)
    assert (improved.is_drift(), improved.effect_size) == (False, 0.0)


def test_a_perfect_reference_gives_a_finite_effect() -> None:
    reference = QualityStats("regression", 100, 0.0, 0.0)
    result = quality_drop_test(reference, QualityStats("regression", 100, 50.0, 40.0))
    assert result.effect_size == MAX_RELATIVE_EFFECT
    assert result.is_drift()
    constant = quality_drop_test(reference, QualityStats("regression", 100, 0.0, 0.0))
    assert (constant.is_drift(), constant.effect_size, constant.p_value) == (False, 0.0, 1.0)


@pytest.mark.parametrize(
    ("reference", "current"),
    [
        (QualityStats(None), QualityStats("classification", 500, 100.0, 100.0)),
        (QualityStats("classification", 500, 10.0, 10.0), QualityStats("classification", 1)),
        (QualityStats("regression", 1, 3.0, 9.0), QualityStats("regression", 400, 9.0, 9.0)),
        (QualityStats(None), QualityStats(None)),
    ],
)
def test_an_empty_side_is_no_evidence(reference: QualityStats, current: QualityStats) -> None:
    result = quality_drop_test(reference, current)
    assert (result.statistic, result.p_value, result.effect_size) == (0.0, 1.0, 0.0)
    assert not result.is_drift()


def test_all_right_on_both_sides_has_no_nan() -> None:
    result = quality_drop_test(_classification_stats(100, 0), _classification_stats(100, 0))
    assert result.p_value is not None and not math.isnan(result.p_value)
    assert not result.is_drift()


def test_tasks_must_match() -> None:
    with pytest.raises(ValueError, match="cannot compare regression quality with a classif"):
        quality_drop_test(_classification_stats(100, 5), QualityStats("regression", 100, 5, 5))


# ---- reference quality -----------------------------------------------------------------


def test_a_windows_history_values_give_back_its_error_stats() -> None:
    rng = np.random.default_rng(11)
    labels = rng.normal(size=400)
    regression = score_quality((labels + rng.normal(0, 0.5, 400)).tolist(), labels.tolist())
    back = stats_from_metrics(history_values(regression))
    assert back is not None and (back.task, back.n) == ("regression", 400)
    assert back.error_sum == pytest.approx(regression.stats.error_sum)
    assert back.error_sq_sum == pytest.approx(regression.stats.error_sq_sum)
    classes = score_quality(["a", "b", "b", "a"], ["a", "a", "b", "b"])
    assert history_values(classes) == {"labels.count": 4.0, "quality.error_rate": 0.5}
    assert stats_from_metrics(history_values(classes)) == classes.stats
    assert stats_from_metrics({"labels.count": 10.0}) is None  # nothing scored
    assert stats_from_metrics({"labels.count": 10.0, "quality.mae": 1.0}) is None  # no RMSE


def _window(labels: float, error_rate: float | None = 0.1) -> dict[str, float]:
    values = {"labels.count": labels}
    if error_rate is not None:
        values["quality.error_rate"] = error_rate
    return values


def test_reference_pools_the_first_windows_with_enough_labels() -> None:
    history = {
        ("", "1"): {
            0: _window(10),
            60: _window(100, 0.1),
            120: _window(300, 0.2),
            180: _window(100),
        },
        ("", "2"): {0: _window(100)},  # a new version: not enough windows of its own yet
        ("k=v", "1"): {0: _window(100), 60: _window(100, None)},  # a window without figures
    }
    reference = reference_stats(history, windows=2, min_labels=50)
    assert list(reference) == [("", "1")]
    start, pooled = reference[("", "1")]
    assert start == 120  # window 0 has too few labels, 180 is past the first two
    assert (pooled.task, pooled.n) == ("classification", 400)
    assert pooled.error_sum == pytest.approx(10 + 60)


def test_confusion_counts_a_row_per_non_empty_cell() -> None:
    predictions = ["cat", "cat", "dog", "dog", "dog", "bird"]
    labels = ["cat", "dog", "dog", "dog", "cat", "bird"]
    result = score_quality(predictions, labels, task="classification")
    cells = {m.category: m.value for m in result.metrics if m.metric == "quality.confusion"}
    assert cells == {"bird|bird": 1, "cat|cat": 1, "cat|dog": 1, "dog|cat": 1, "dog|dog": 2}
    assert sum(cells.values()) == result.count
    # skewed labels, a majority-class model: its confusion shows the minority never predicted
    skewed = score_quality([0] * 100, [0] * 95 + [1] * 5, task="classification")
    confusion = {m.category: m.value for m in skewed.metrics if m.metric == "quality.confusion"}
    assert confusion == {"0|0": 95, "1|0": 5}


@pytest.mark.parametrize("k", [0, 1, 2, 3, 7, 8, 12])
def test_row_sums_are_numpy_s_to_the_bit(k: int) -> None:
    rng = np.random.default_rng(k)
    matrix = rng.dirichlet(np.ones(max(k, 1)), 1_000)[:, :k] * 1e3
    for layout in (matrix, np.asfortranarray(matrix)):
        assert np.array_equal(row_sums(layout), matrix.sum(axis=1))
