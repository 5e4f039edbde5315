"""The network's shape contract with the feature spec."""

import pytest
import torch

from retrainer.data import CategoricalFeature, FeatureSpec, NumericFeature
from retrainer.model import TabularNet, embedding_dim

SPEC = FeatureSpec(
    "regression",
    (NumericFeature("a", 0.0, 1.0), NumericFeature("b", 0.0, 1.0)),
    (CategoricalFeature("few", ("x", "y")), CategoricalFeature("many", tuple("abcdefghijklmnop"))),
)


@pytest.mark.parametrize(("cardinality", "dim"), [(1, 1), (3, 2), (17, 8), (1000, 8)])
def test_embedding_width_grows_with_the_vocabulary_up_to_eight(cardinality: int, dim: int) -> None:
    assert embedding_dim(cardinality) == dim


def test_inputs_and_outputs_follow_the_spec() -> None:
    net = TabularNet.for_spec(SPEC, hidden=(16, 8))
    assert [e.num_embeddings for e in net.embeddings] == [3, 17]
    first = net.mlp[0]
    assert isinstance(first, torch.nn.Linear) and first.in_features == 4 + 2 + 8
    out = net(torch.zeros(7, 4), torch.tensor([[0, 16]] * 7))
    assert out.shape == (7, 1)


def test_dropout_does_not_change_the_state_dict_keys() -> None:
    plain = TabularNet.for_spec(SPEC, hidden=(16, 8)).state_dict()
    dropped = TabularNet.for_spec(SPEC, hidden=(16, 8), dropout=0.3).state_dict()
    assert plain.keys() == dropped.keys()
