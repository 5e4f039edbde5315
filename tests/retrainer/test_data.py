"""Feature specs: what is numeric, what is categorical, and how odd values are encoded."""

import json
import math

import pytest
import torch

from retrainer.data import (
    Example,
    FeatureSpec,
    FeatureValue,
    Label,
    TrainingError,
    compatible,
    encode,
    encode_features,
    fit_spec,
    incompatibility,
    infer_task,
)


def labelled(rows: list[dict[str, FeatureValue]], labels: list[Label]) -> list[Example]:
    return [Example(row, label) for row, label in zip(rows, labels, strict=True)]


def test_bools_are_numeric_and_strings_categorical() -> None:
    spec = fit_spec(
        labelled(
            [{"flag": True, "n": 1, "kind": "a"}, {"flag": False, "n": 3, "kind": 2}],
            [0, 1],
        )
    )
    assert spec.numeric_names == ("flag", "n")
    assert spec.categorical_names == ("kind",)
    flag = spec.numeric[0]
    assert (flag.mean, flag.std) == (0.5, 0.5)
    # a number in a categorical feature is spelled like a category: 2 and 2.0 are "2"
    assert spec.categorical[0].vocabulary == ("2", "a")


def test_missing_values_standardise_to_zero_and_set_the_indicator() -> None:
    spec = fit_spec(labelled([{"x": 1.0}, {"x": 3.0}, {"x": None}], [0, 1, 1]))
    assert (spec.numeric[0].mean, spec.numeric[0].std) == (2.0, 1.0)
    encoded = encode_features(spec, [{"x": 3.0}, {"x": None}, {}, {"x": math.nan}, {"x": "7"}])
    assert encoded.numeric.tolist() == [[1.0, 0.0]] + [[0.0, 1.0]] * 4


def test_absurd_numbers_stay_finite() -> None:
    spec = fit_spec(labelled([{"x": 1.0}, {"x": 3.0}], [0, 1]))
    encoded = encode_features(spec, [{"x": 1e300}, {"x": -(10**400)}, {"x": math.inf}])
    assert torch.isfinite(encoded.numeric).all()
    assert encoded.numeric[0, 0] == 100.0


def test_unknown_and_missing_categories_share_index_zero() -> None:
    spec = fit_spec(labelled([{"c": "a"}, {"c": "b"}, {"c": "b"}], [0, 1, 1]))
    assert spec.categorical[0].vocabulary == ("b", "a")  # most frequent first
    encoded = encode_features(spec, [{"c": "a"}, {"c": "b"}, {"c": "zzz"}, {"c": None}, {}])
    assert encoded.categorical[:, 0].tolist() == [2, 1, 0, 0, 0]


def test_vocabulary_keeps_the_most_frequent_categories() -> None:
    values = [f"v{i % 7}" for i in range(70)] + ["v0"] * 5 + ["v1"] * 3
    rows: list[dict[str, FeatureValue]] = [{"c": value} for value in values]
    spec = fit_spec(labelled(rows, [i % 2 for i in range(len(rows))]), max_categories=3)
    assert spec.categorical[0].vocabulary == ("v0", "v1", "v2")
    assert spec.cardinalities == (4,)


@pytest.mark.parametrize(
    ("labels", "task", "classes"),
    [
        ([0, 1, 1], "classification", ("0", "1")),
        ([True, False], "classification", ("0", "1")),
        ([0.0, 1.0, 1], "classification", ("0", "1")),
        (["cat", "dog", "ant"], "classification", ("ant", "cat", "dog")),
        ([1.5, 2.5, 1.5], "regression", ()),
        ([1, 2, 3], "regression", ()),
    ],
)
def test_task_and_classes_follow_the_labels(
    labels: list[Label], task: str, classes: tuple[str, ...]
) -> None:
    spec = fit_spec(labelled([{"x": float(i)} for i in range(len(labels))], labels))
    assert (spec.task, spec.classes) == (task, classes)


def test_regression_targets_are_standardised() -> None:
    examples = labelled([{"x": 0.0}, {"x": 1.0}, {"x": 2.0}], [10.0, 20.0, 30.0])
    spec = fit_spec(examples)
    assert spec.label_mean == 20.0
    target = encode(spec, examples).target
    assert target is not None
    assert target.tolist() == pytest.approx([-1.2247, 0.0, 1.2247], abs=1e-4)


def test_integer_class_codes_can_be_forced_to_classification() -> None:
    assert infer_task([0, 1, 2]) == "regression"
    spec = fit_spec(labelled([{"x": 0.0}] * 3, [0, 1, 2]), task="classification")
    assert spec.classes == ("0", "1", "2")


def test_spec_round_trips_through_json() -> None:
    rows: list[dict[str, FeatureValue]] = [{"x": 1.0, "c": "a"}, {"x": 2.0, "c": "b"}]
    spec = fit_spec(labelled(rows, [1.5, 2.5]), task="regression")
    assert FeatureSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    with pytest.raises(ValueError, match="not a feature spec"):
        FeatureSpec.from_dict({"task": "clustering"})


def test_labels_outside_the_classes_are_an_error_when_encoding() -> None:
    spec = fit_spec(labelled([{"x": 1.0}, {"x": 2.0}], ["a", "b"]))
    with pytest.raises(ValueError, match="'c' is not one of the classes"):
        encode(spec, labelled([{"x": 1.0}], ["c"]))


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ([None, None], "none of the 2 examples has a label"),
        (["a", "a", None], "every label is 'a'"),
    ],
)
def test_unusable_labels_say_what_to_do(labels: list[Label | None], message: str) -> None:
    examples = [Example({"x": 1.0}, label) for label in labels]
    with pytest.raises(TrainingError, match=message):
        fit_spec(examples)


def test_regression_rejects_text_labels_and_constant_targets() -> None:
    with pytest.raises(TrainingError, match="numeric labels"):
        fit_spec(labelled([{"x": 1.0}, {"x": 2.0}], [1.0, "high"]), task="regression")
    with pytest.raises(TrainingError, match="nothing to learn"):
        fit_spec(labelled([{"x": 1.0}, {"x": 2.0}], [4.5, 4.5]), task="regression")
    with pytest.raises(TrainingError, match="no features"):
        fit_spec(labelled([{}, {}], [0, 1]))


def test_compatibility_ignores_vocabulary_and_statistics_but_not_names() -> None:
    base = fit_spec(labelled([{"x": 1.0, "c": "a"}, {"x": 2.0, "c": "b"}], [0, 1]))
    drifted = fit_spec(labelled([{"x": 9.0, "c": "z"}, {"x": 5.0, "c": "y"}], [1, 0]))
    renamed = fit_spec(labelled([{"y": 1.0, "c": "a"}, {"y": 2.0, "c": "b"}], [0, 1]))
    three = fit_spec(labelled([{"x": 1.0, "c": "a"}] * 3, [0, 1, 2]), task="classification")
    assert compatible(base, drifted)
    assert not compatible(base, renamed)
    assert incompatibility(base, renamed) == "the numeric names changed from ['x'] to ['y']"
    assert not compatible(base, three)
    regression = fit_spec(labelled([{"x": 1.0, "c": "a"}] * 3, [0.5, 1.0, 2.0]))
    assert incompatibility(base, regression) == (
        "the task changed from classification to regression"
    )
