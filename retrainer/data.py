"""Labelled examples, the feature spec fitted on them, and their encoding as tensors.

A ``FeatureSpec`` is everything needed to turn raw feature mappings into model inputs the same
way at training and at prediction time, and it is plain JSON (``to_dict`` / ``from_dict``), so
it is stored beside the weights.

Encoding rules, chosen so that no input can crash or poison a prediction:

- A feature is **numeric** when every present training value is a number or a bool (bools are
  numeric 0/1, so a flag and a 0/1 integer column mean the same thing); otherwise it is
  **categorical** and every value is spelled as a string (``True`` -> ``"true"``, ``3.0`` ->
  ``"3"``). Missing is ``None``, NaN or an absent key.
- Numeric values are standardised with the training mean and standard deviation and clipped to
  +-100 (one absurd value must not overflow float32 into inf/NaN logits); a missing value
  becomes 0 (the mean) and sets that feature's missing indicator, so "missing" stays
  learnable. A string arriving in a numeric feature counts as missing.
- A categorical vocabulary keeps the ``max_categories`` most frequent training values (ties by
  spelling); index 0 is reserved for missing and for values outside the vocabulary, so unseen
  categories at prediction time are just "unknown".
- Labels: classification classes are the sorted label spellings, with bools and integral
  floats spelled like integers so ``False``/``0``/``0.0`` are all class ``"0"`` (binary 0/1
  labels give classes ``["0", "1"]``). Regression targets are standardised; predictions are
  mapped back with ``label_mean`` / ``label_std``.

>>> rows = [(20, "free", False), (40, "pro", True), (None, "pro", False), (35, True, True)]
>>> examples = [Example({"age": a, "plan": p}, label=y) for a, p, y in rows]
>>> spec = fit_spec(examples)
>>> spec.task, spec.classes, spec.numeric_names, spec.categorical_names
('classification', ('0', '1'), ('age',), ('plan',))
>>> encoded = encode(spec, examples)
>>> encoded.numeric.shape, encoded.categorical.tolist(), encoded.target.tolist()
(torch.Size([4, 2]), [[2], [1], [1], [3]], [0, 1, 0, 1])
>>> encode_features(spec, [{"plan": "enterprise"}]).categorical.tolist()  # unseen -> 0
[[0]]
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, cast

import numpy as np
import torch

FeatureValue = float | int | str | bool | None
Label = float | int | str | bool
Task = Literal["classification", "regression"]
TASKS: tuple[Task, ...] = ("classification", "regression")

MAX_CATEGORIES = 50
# a standardised value this far out is an outlier either way; clipping keeps float32 finite
_CLIP = 100.0
_SPEC_FORMAT = 1


class TrainingError(ValueError):
    """The examples cannot train a model; the message says what was wrong and what to do."""


@dataclass(frozen=True)
class Example:
    """One labelled example. ``label`` None (or NaN) means not known yet: training skips it.

    ``segment`` holds the slices the example belongs to (``{"region": "eu"}``); ``ts`` is the
    epoch time in seconds, used to keep the newest examples for validation.
    """

    features: Mapping[str, FeatureValue]
    label: Label | None
    segment: Mapping[str, str] = field(default_factory=dict)
    ts: float = 0.0


@dataclass(frozen=True)
class NumericFeature:
    name: str
    mean: float
    std: float


@dataclass(frozen=True)
class CategoricalFeature:
    """``vocabulary[i]`` is encoded as ``i + 1``; 0 means missing or unknown."""

    name: str
    vocabulary: tuple[str, ...]


@dataclass(frozen=True)
class FeatureSpec:
    task: Task
    numeric: tuple[NumericFeature, ...]
    categorical: tuple[CategoricalFeature, ...]
    classes: tuple[str, ...] = ()
    label_mean: float = 0.0
    label_std: float = 1.0

    @property
    def numeric_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.numeric)

    @property
    def categorical_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.categorical)

    @property
    def n_numeric_inputs(self) -> int:
        """Standardised values followed by one missing indicator per numeric feature."""
        return 2 * len(self.numeric)

    @property
    def cardinalities(self) -> tuple[int, ...]:
        """Embedding rows per categorical feature, index 0 (unknown) included."""
        return tuple(len(f.vocabulary) + 1 for f in self.categorical)

    @property
    def n_outputs(self) -> int:
        """One logit per class (two for binary), or one value for regression."""
        return len(self.classes) if self.task == "classification" else 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": _SPEC_FORMAT,
            "task": self.task,
            "numeric": [{"name": f.name, "mean": f.mean, "std": f.std} for f in self.numeric],
            "categorical": [
                {"name": f.name, "vocabulary": list(f.vocabulary)} for f in self.categorical
            ],
            "classes": list(self.classes),
            "label_mean": self.label_mean,
            "label_std": self.label_std,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        if data.get("format") != _SPEC_FORMAT or data.get("task") not in TASKS:
            raise ValueError(f"not a feature spec (format {_SPEC_FORMAT}): {dict(data)!r:.200}")
        return cls(
            task=cast(Task, data["task"]),
            numeric=tuple(
                NumericFeature(str(f["name"]), float(f["mean"]), float(f["std"]))
                for f in data["numeric"]
            ),
            categorical=tuple(
                CategoricalFeature(str(f["name"]), tuple(str(v) for v in f["vocabulary"]))
                for f in data["categorical"]
            ),
            classes=tuple(str(c) for c in data["classes"]),
            label_mean=float(data["label_mean"]),
            label_std=float(data["label_std"]),
        )


class Encoded(NamedTuple):
    numeric: torch.Tensor  # float32, (n, spec.n_numeric_inputs)
    categorical: torch.Tensor  # int64, (n, len(spec.categorical))
    target: torch.Tensor | None  # int64 class index or float32 standardised value; (n,)


def label_key(label: object) -> str | None:
    """The class spelling of a label, or None when it is missing."""
    if label is None or isinstance(label, str):
        return label
    if isinstance(label, bool):
        return "1" if label else "0"
    return _category(label)


def label_number(label: object) -> float | None:
    """A regression target as a float, or None when missing or not a number."""
    if isinstance(label, int | float) and math.isfinite(label):
        return float(label)
    return None


def infer_task(labels: Sequence[object]) -> Task:
    """Regression when every label is a non-bool number and there are more than two distinct
    values or any non-integer; classification otherwise. Integer class codes beyond 0/1 read
    as regression by this rule: pass the task explicitly for those."""
    present = [label for label in labels if label_key(label) is not None]
    if not present or any(isinstance(v, bool) or not isinstance(v, int | float) for v in present):
        return "classification"
    numbers = {float(cast(float, v)) for v in present}
    integral = all(v.is_integer() for v in numbers)
    return "regression" if len(numbers) > 2 or not integral else "classification"


def fit_spec(
    examples: Sequence[Example], task: Task | None = None, *, max_categories: int = MAX_CATEGORIES
) -> FeatureSpec:
    """The spec of ``examples``; examples without a label are ignored."""
    labelled = [e for e in examples if label_key(e.label) is not None]
    if not labelled:
        raise TrainingError(
            f"none of the {len(examples)} examples has a label; join labels to predictions "
            "(send label events) before retraining"
        )
    task = task or infer_task([e.label for e in labelled])
    columns: dict[str, list[FeatureValue]] = {}
    for example in labelled:
        for name, value in example.features.items():
            columns.setdefault(name, []).append(value)
    numeric, categorical = [], []
    for name in sorted(columns):
        present = [v for v in columns[name] if _category(v) is not None]
        if all(isinstance(v, int | float) for v in present):
            numbers = np.array([_number(v) for v in present], dtype=np.float64)
            values = numbers[~np.isnan(numbers)]
            mean = float(values.mean()) if values.size else 0.0
            std = float(values.std()) if values.size else 1.0
            numeric.append(NumericFeature(name, mean, std if std > 1e-12 else 1.0))
        else:
            counts = Counter(_category(v) for v in present)
            ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            vocabulary = tuple(str(value) for value, _ in ranked[:max_categories])
            categorical.append(CategoricalFeature(name, vocabulary))
    if not numeric and not categorical:
        raise TrainingError("the examples have no features; a model needs at least one input")
    if task == "classification":
        classes = tuple(sorted({cast(str, label_key(e.label)) for e in labelled}))
        if len(classes) < 2:
            raise TrainingError(
                f"every label is {classes[0]!r}; classification needs at least two classes: "
                "wait for labels of the other class, or widen the training window"
            )
        return FeatureSpec(task, tuple(numeric), tuple(categorical), classes)
    targets = [label_number(e.label) for e in labelled]
    if any(t is None for t in targets):
        bad = next(e.label for e, t in zip(labelled, targets, strict=True) if t is None)
        raise TrainingError(f"regression needs numeric labels, got {bad!r}; check the task")
    y = np.array(targets, dtype=np.float64)
    if float(y.std()) <= 1e-12:
        raise TrainingError(f"every label is {y[0]:g}; there is nothing to learn from them")
    return FeatureSpec(
        task,
        tuple(numeric),
        tuple(categorical),
        label_mean=float(y.mean()),
        label_std=float(y.std()),
    )


def encode_features(spec: FeatureSpec, rows: Sequence[Mapping[str, FeatureValue]]) -> Encoded:
    """Model inputs for feature mappings (no target)."""
    values = np.array(
        [[_number(row.get(f.name)) for f in spec.numeric] for row in rows], dtype=np.float64
    ).reshape(len(rows), len(spec.numeric))
    missing = np.isnan(values)
    means = np.array([f.mean for f in spec.numeric])
    stds = np.array([f.std for f in spec.numeric])
    standard = np.where(missing, 0.0, np.clip((values - means) / stds, -_CLIP, _CLIP))
    numeric = np.concatenate([standard, missing.astype(np.float64)], axis=1)
    indices = [{v: i + 1 for i, v in enumerate(f.vocabulary)} for f in spec.categorical]
    categorical = np.array(
        [
            [
                _index_of(row.get(f.name), index)
                for f, index in zip(spec.categorical, indices, strict=True)
            ]
            for row in rows
        ],
        dtype=np.int64,
    ).reshape(len(rows), len(spec.categorical))
    return Encoded(
        torch.from_numpy(numeric.astype(np.float32)), torch.from_numpy(categorical), None
    )


def encode(spec: FeatureSpec, examples: Sequence[Example]) -> Encoded:
    """Inputs and target; every example needs a label the spec knows (ValueError otherwise)."""
    inputs = encode_features(spec, [e.features for e in examples])
    if spec.task == "classification":
        index = {c: i for i, c in enumerate(spec.classes)}
        keys = [label_key(e.label) for e in examples]
        unknown = [k for k in keys if k not in index]
        if unknown:
            raise ValueError(f"label {unknown[0]!r} is not one of the classes {spec.classes}")
        target = torch.tensor([index[cast(str, k)] for k in keys], dtype=torch.int64)
    else:
        numbers = [label_number(e.label) for e in examples]
        if any(n is None for n in numbers):
            raise ValueError("regression examples need numeric labels")
        y = (np.array(numbers, dtype=np.float64) - spec.label_mean) / spec.label_std
        target = torch.from_numpy(y.astype(np.float32))
    return inputs._replace(target=target)


def incompatibility(champion: FeatureSpec, challenger: FeatureSpec) -> str | None:
    """Why a model of ``champion``'s spec cannot be fine-tuned on ``challenger``'s data.

    Vocabularies and normalisation may differ. A warm start keeps the champion's whole spec,
    so embedding rows and first-layer weights keep meaning what they meant: categories new
    since the champion encode as unknown (index 0), and numeric features are standardised
    with the champion's statistics (fine-tuning absorbs a drifted mean; re-fitting it would
    silently shift every first-layer weight). A from-scratch retrain picks up new categories.
    """
    if champion.task != challenger.task:
        return f"the task changed from {champion.task} to {challenger.task}"
    for kind, old, new in [
        ("numeric", champion.numeric_names, challenger.numeric_names),
        ("categorical", champion.categorical_names, challenger.categorical_names),
        ("class", champion.classes, challenger.classes),
    ]:
        if old != new:
            return f"the {kind} names changed from {list(old)} to {list(new)}"
    return None


def compatible(a: FeatureSpec, b: FeatureSpec) -> bool:
    """Same task, feature names and classes (see ``incompatibility``)."""
    return incompatibility(a, b) is None


def _category(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def _index_of(value: object, index: Mapping[str, int]) -> int:
    key = _category(value)
    return 0 if key is None else index.get(key, 0)


def _number(value: object) -> float:
    if not isinstance(value, int | float):  # bool is an int: 0/1
        return math.nan
    try:
        number = float(value)
    except OverflowError:  # an int beyond float range
        return math.nan
    return number if math.isfinite(number) else math.nan
