"""Seeded synthetic tables for the retrainer tests: the rule behind the labels is known."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from retrainer.data import Example, FeatureValue, Label


@dataclass(frozen=True)
class Table:
    """Two standard-normal features, a colour and a region (80% "eu", 20% "us")."""

    x1: npt.NDArray[np.float64]
    x2: npt.NDArray[np.float64]
    color: npt.NDArray[np.str_]
    region: npt.NDArray[np.str_]

    def __len__(self) -> int:
        return len(self.x1)


def table(n: int, seed: int) -> Table:
    rng = np.random.default_rng(seed)
    return Table(
        x1=rng.normal(size=n),
        x2=rng.normal(size=n),
        color=rng.choice(["red", "green", "blue"], size=n),
        region=rng.choice(["eu", "us"], size=n, p=[0.8, 0.2]),
    )


def examples(
    data: Table, labels: Iterable[Label], *, start: float = 0.0, drop: Iterable[str] = ()
) -> list[Example]:
    """One example per row, one second apart from ``start``; ``drop``: features left out."""
    dropped = set(drop)
    out = []
    for i, label in enumerate(labels):
        features: dict[str, FeatureValue] = {
            "x1": float(data.x1[i]),
            "x2": float(data.x2[i]),
            "color": str(data.color[i]),
            "region": str(data.region[i]),
        }
        features = {k: v for k, v in features.items() if k not in dropped}
        out.append(Example(features, label, {"region": str(data.region[i])}, start + i))
    return out


def binary(values: npt.NDArray[np.bool_]) -> list[Label]:
    return [int(v) for v in values]
