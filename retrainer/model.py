"""``TabularNet``: one embedding per categorical feature, concatenated with the numeric
inputs, then an MLP (linear, leaky ReLU, dropout per hidden layer). Small on purpose: the
retrainer fits thousands of rows of a handful of features in seconds on a CPU, and tabular
data rarely rewards anything deeper.

>>> import torch
>>> from retrainer.data import CategoricalFeature, FeatureSpec, NumericFeature
>>> spec = FeatureSpec("classification", (NumericFeature("age", 40.0, 10.0),),
...                    (CategoricalFeature("plan", ("free", "pro")),), classes=("0", "1"))
>>> net = TabularNet.for_spec(spec, hidden=(16,))
>>> net(torch.zeros(5, spec.n_numeric_inputs), torch.zeros(5, 1, dtype=torch.long)).shape
torch.Size([5, 2])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from retrainer.data import FeatureSpec

MAX_EMBEDDING_DIM = 8
# Leaky rather than plain ReLU: fine-tuning a confident champion on a flipped concept pushed
# 88% of the second layer's ReLUs below zero for every input, and the dead units left it at
# chance however long it trained; with a 0.01 slope they recover within a few epochs.
LEAKY_SLOPE = 0.01


def embedding_dim(cardinality: int) -> int:
    """About half the categories, at most ``MAX_EMBEDDING_DIM``: a feature with three values
    needs two dimensions, not eight."""
    return max(1, min(MAX_EMBEDDING_DIM, (cardinality + 1) // 2))


class TabularNet(nn.Module):
    """Logits (one per class) for classification, one standardised value for regression."""

    def __init__(
        self,
        n_numeric_inputs: int,
        cardinalities: Sequence[int],
        n_outputs: int,
        hidden: Sequence[int] = (64, 32),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(c, embedding_dim(c)) for c in cardinalities)
        width = n_numeric_inputs + sum(embedding_dim(c) for c in cardinalities)
        layers: list[nn.Module] = []
        for size in hidden:
            # Dropout(0) is the identity; keeping it fixes the state-dict keys, so a model
            # trained with dropout can warm-start one without and the other way round
            layers += [nn.Linear(width, size), nn.LeakyReLU(LEAKY_SLOPE), nn.Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, n_outputs))
        self.mlp = nn.Sequential(*layers)

    @classmethod
    def for_spec(
        cls, spec: FeatureSpec, hidden: Sequence[int] = (64, 32), dropout: float = 0.0
    ) -> TabularNet:
        return cls(spec.n_numeric_inputs, spec.cardinalities, spec.n_outputs, hidden, dropout)

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        embedded = [emb(categorical[:, i]) for i, emb in enumerate(self.embeddings)]
        out: torch.Tensor = self.mlp(torch.cat([numeric, *embedded], dim=1))
        return out
