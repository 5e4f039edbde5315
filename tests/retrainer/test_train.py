"""Training: it learns, it is reproducible, it warm-starts only when it should."""

import math

import numpy as np
import pytest
import torch
from helpers.retrainer_synthetic import Table, binary, examples, table

from retrainer.data import Example, FeatureValue
from retrainer.train import (
    Prediction,
    TrainConfig,
    TrainedModel,
    TrainingError,
    predict,
    predict_classes,
    predict_scores,
    train,
)

FAST = TrainConfig(epochs=15, batch_size=64, hidden=(32, 16))


def probability(prediction: Prediction) -> float:
    assert isinstance(prediction, float)
    return prediction


def accuracy(model: TrainedModel, holdout: list[Example]) -> float:
    predicted = predict_classes(model, holdout)
    return float(np.mean([p == str(e.label) for p, e in zip(predicted, holdout, strict=True)]))


@pytest.fixture(scope="module")
def champion() -> TrainedModel:
    data = table(1500, seed=1)
    return train(examples(data, binary(data.x1 + data.x2 > 0)), FAST)


def test_learns_a_separable_rule(champion: TrainedModel) -> None:
    holdout = table(1000, seed=2)
    assert accuracy(champion, examples(holdout, binary(holdout.x1 + holdout.x2 > 0))) > 0.9
    assert champion.spec.classes == ("0", "1")
    assert champion.metrics["validation_accuracy"] > 0.9
    assert champion.n_examples == 1500
    assert (champion.data_start, champion.data_end) == (0.0, 1499.0)


def test_learns_a_rule_that_needs_the_categorical_feature() -> None:
    data, holdout = table(1500, seed=3), table(1000, seed=4)
    model = train(examples(data, binary((data.color == "red") ^ (data.x1 > 0))), FAST)
    assert (
        accuracy(model, examples(holdout, binary((holdout.color == "red") ^ (holdout.x1 > 0))))
        > 0.9
    )


def test_regression_error_is_well_below_the_label_spread() -> None:
    data, holdout = table(1500, seed=5), table(1000, seed=6)

    def target(t: Table) -> list[float]:
        return [float(v) for v in 3 * t.x1 - 2 * t.x2 + 4 * (t.color == "red") + 10]

    model = train(examples(data, target(data)), FAST)
    assert model.spec.task == "regression"
    truth = np.array(target(holdout))
    predicted = np.array(predict(model, examples(holdout, target(holdout))))
    assert np.abs(predicted - truth).mean() < 0.15 * truth.std()
    assert model.metrics["validation_mae"] < 0.15 * truth.std()


def test_multiclass_predictions_are_probabilities_in_class_order() -> None:
    data = table(600, seed=7)
    model = train(examples(data, [str(c) for c in data.color], drop=["x1"]), FAST)
    assert model.spec.classes == ("blue", "green", "red")
    rows: list[dict[str, FeatureValue]] = [
        {"color": "blue", "x2": 0.0},
        {"color": "red", "x2": 0.0},
    ]
    [blue, red] = predict(model, rows)
    assert isinstance(blue, list) and isinstance(red, list)
    assert sum(blue) == pytest.approx(1.0)
    assert blue[0] > 0.9 and red[2] > 0.9


def test_same_inputs_give_identical_weights_and_leave_global_rng_alone() -> None:
    data = table(300, seed=8)
    rows = examples(data, binary(data.x1 > 0))
    config = TrainConfig(epochs=3, hidden=(16,), dropout=0.1)
    torch.manual_seed(123)
    expected_draw = torch.rand(1)
    torch.manual_seed(123)
    first = train(rows, config)
    assert torch.equal(torch.rand(1), expected_draw)  # training forked the global RNG
    second = train(rows, config)
    other_seed = train(rows, TrainConfig(epochs=3, hidden=(16,), dropout=0.1, seed=1))
    assert first.state_dict.keys() == second.state_dict.keys()
    assert all(torch.equal(first.state_dict[k], second.state_dict[k]) for k in first.state_dict)
    assert not torch.equal(first.state_dict["mlp.0.weight"], other_seed.state_dict["mlp.0.weight"])
    assert first.metrics == second.metrics


def test_warm_start_starts_from_the_champions_weights_and_spec(champion: TrainedModel) -> None:
    data = table(400, seed=9)
    rows = examples(data, binary(data.x1 + data.x2 > 0))
    rows += [Example({"x1": 0.0, "x2": 0.0, "color": "purple", "region": "eu"}, 1, ts=1e9)]
    frozen = TrainConfig(
        epochs=1, batch_size=64, hidden=(32, 16), learning_rate=1e-9, validation_fraction=0
    )
    warm = train(rows, frozen, warm_start=champion)
    assert warm.warm_started and warm.warm_start_skipped is None
    assert warm.spec == champion.spec  # the new "purple" stays unknown, embeddings line up
    probe: list[dict[str, FeatureValue]] = [{"x1": 0.3, "x2": -0.1, "color": "red", "region": "us"}]
    assert predict(warm, probe) == pytest.approx(predict(champion, probe), abs=1e-4)
    cold = train(rows, frozen)
    assert not cold.warm_started
    assert (
        abs(probability(predict(cold, probe)[0]) - probability(predict(champion, probe)[0])) > 1e-3
    )


def test_fine_tuning_on_flipped_labels_adapts(champion: TrainedModel) -> None:
    data, holdout = table(1500, seed=10), table(1000, seed=11)
    # with plain ReLUs this stayed at chance: un-learning the old rule killed the units
    flipped = train(examples(data, binary(data.x1 + data.x2 <= 0)), FAST, warm_start=champion)
    assert flipped.warm_started
    assert accuracy(flipped, examples(holdout, binary(holdout.x1 + holdout.x2 <= 0))) > 0.9


def test_incompatible_warm_start_trains_from_scratch_and_says_why(champion: TrainedModel) -> None:
    data = table(300, seed=12)
    without_x2 = examples(data, binary(data.x1 > 0), drop=["x2"])
    model = train(without_x2, TrainConfig(epochs=2, hidden=(32, 16)), warm_start=champion)
    assert not model.warm_started
    assert model.warm_start_skipped == (
        "warm start not used: the numeric names changed from ['x1', 'x2'] to ['x1']"
    )
    rows = examples(data, binary(data.x1 > 0))
    resized = train(rows, TrainConfig(epochs=2, hidden=(8,)), warm_start=champion)
    assert not resized.warm_started
    assert "hidden sizes changed" in (resized.warm_start_skipped or "")


def test_early_stopping_watches_the_newest_examples() -> None:
    # the newest 20% follow the opposite rule: validation loss rises as the old rule is learnt
    data = table(1000, seed=13)
    labels = binary(data.x1 > 0)
    labels[800:] = binary(data.x1[800:] <= 0)
    rows = examples(data, labels)[::-1]  # input order must not matter, timestamps do
    model = train(rows, TrainConfig(epochs=40, max_epochs_without_improvement=2))
    assert model.metrics["n_validation"] == 200
    assert model.metrics["epochs"] <= model.metrics["best_epoch"] + 2 < 40
    assert model.metrics["validation_accuracy"] < 0.5


def test_missing_values_and_unknown_categories_at_prediction_time() -> None:
    data, holdout = table(1500, seed=14), table(1000, seed=15)
    rows = examples(data, binary(data.x1 > 0))
    missing: list[dict[str, FeatureValue]] = [{"x1": None}, {"x1": math.nan}, {}]
    for i in range(0, len(rows), 5):  # a fifth of x1 missing, in every way it can be missing
        e = rows[i]
        features = {k: v for k, v in e.features.items() if k != "x1"} | missing[i % 3]
        rows[i] = Example(features, e.label, e.segment, e.ts)
    model = train(rows, FAST)
    assert accuracy(model, examples(holdout, binary(holdout.x1 > 0))) > 0.85
    odd: list[dict[str, FeatureValue]] = [
        {"x1": 2.0, "color": "ultraviolet"},
        {},
        {"x1": None, "x2": "n/a", "region": 7},
    ]
    probabilities = [probability(p) for p in predict(model, odd)]
    assert all(0.0 <= p <= 1.0 for p in probabilities)
    assert probabilities[0] > 0.9


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([], "0 labelled examples \\(of 0\\); training needs at least 20"),
        ([Example({"x": float(i)}, i % 2) for i in range(10)], "10 labelled examples"),
        ([Example({"x": float(i)}, None) for i in range(30)], "0 labelled examples \\(of 30\\)"),
        ([Example({"x": float(i)}, "spam") for i in range(30)], "every label is 'spam'"),
    ],
)
def test_unusable_data_raises_training_error(rows: list[Example], message: str) -> None:
    with pytest.raises(TrainingError, match=message):
        train(rows, TrainConfig(epochs=1))


def test_config_is_validated_and_round_trips() -> None:
    config = TrainConfig(hidden=(8, 4), task="regression", device="cpu")
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="dropout must be in"):
        TrainConfig(dropout=1.0)


def test_regression_models_have_no_classes(champion: TrainedModel) -> None:
    assert predict_scores(champion, []).shape == (0, 2)
    data = table(100, seed=16)
    model = train(examples(data, [float(v) for v in data.x1]), TrainConfig(epochs=1))
    with pytest.raises(ValueError, match="needs a classification model"):
        predict_classes(model, [{}])
