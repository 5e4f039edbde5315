"""Train a ``TabularNet`` on labelled examples: a pure function from examples to weights.

``train`` does no I/O. It sorts the examples by time and holds the newest
``validation_fraction`` back for early stopping (the model that is kept is the one from the
best validation epoch), because what matters after drift is how well the model does on the
most recent data. The spec is fitted on the training part only, so every category in the
vocabulary has an embedding that was actually trained.

Same examples and config -> bit-identical weights on CPU: the seed drives initialisation,
dropout and a private ``torch.Generator`` for shuffling, inside ``torch.random.fork_rng`` so
the caller's global random state is left alone. On a GPU the run is seeded the same way, but
cuBLAS and embedding gradients are not bitwise reproducible.

Warm start: given a previous model whose spec is compatible (``data.incompatibility``) and
whose hidden sizes match, training starts from its weights and keeps its spec; otherwise it
starts from scratch and ``warm_start_skipped`` says why.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from retrainer.data import (
    Encoded,
    Example,
    FeatureSpec,
    FeatureValue,
    Task,
    TrainingError,
    encode,
    encode_features,
    fit_spec,
    incompatibility,
    label_key,
)
from retrainer.model import TabularNet

__all__ = [
    "TrainConfig",
    "TrainedModel",
    "TrainingError",
    "predict",
    "predict_classes",
    "predict_scores",
    "train",
    "warm_start_mismatch",
]

Row = Example | Mapping[str, FeatureValue]
Prediction = float | list[float]


@dataclass(frozen=True)
class TrainConfig:
    """``task`` None: the warm start's task, else inferred from the labels
    (``data.infer_task``). ``device`` None: CUDA when available, else CPU.

    ``cpu_threads``: torch's intra-op threads while training on CPU (restored afterwards).
    One, because these layers are too small to split: on two busy cores a second thread made
    a 20k-row training 2-5x slower, not faster. None leaves torch's setting alone.
    """

    seed: int = 0
    epochs: int = 30
    batch_size: int = 256
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    hidden: tuple[int, ...] = (64, 32)
    dropout: float = 0.0
    validation_fraction: float = 0.2
    max_epochs_without_improvement: int = 5
    min_examples: int = 20
    task: Task | None = None
    device: str | None = None
    cpu_threads: int | None = 1

    def __post_init__(self) -> None:
        problems = [
            "epochs, batch_size and max_epochs_without_improvement must be >= 1"
            if min(self.epochs, self.batch_size, self.max_epochs_without_improvement) < 1
            else "",
            "learning_rate must be > 0 and weight_decay >= 0"
            if not (self.learning_rate > 0 and self.weight_decay >= 0)
            else "",
            "hidden sizes must be >= 1" if any(h < 1 for h in self.hidden) else "",
            "dropout must be in [0, 1)" if not 0 <= self.dropout < 1 else "",
            "validation_fraction must be in [0, 0.9]"
            if not 0 <= self.validation_fraction <= 0.9
            else "",
            "min_examples must be >= 2" if self.min_examples < 2 else "",
            "cpu_threads must be >= 1 or None"
            if self.cpu_threads is not None and self.cpu_threads < 1
            else "",
        ]
        if any(problems):
            raise ValueError("bad TrainConfig: " + "; ".join(p for p in problems if p))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "hidden": list(self.hidden)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "hidden" in values:
            values["hidden"] = tuple(int(h) for h in values["hidden"])
        return cls(**values)


@dataclass(frozen=True)
class TrainedModel:
    """Weights (CPU tensors; treat them as read-only) and everything needed to use them.

    ``metrics``: ``train_loss``, ``validation_loss`` and ``validation_accuracy`` or
    ``validation_mae`` (when there was a validation tail), ``epochs``, ``best_epoch``,
    ``n_train``, ``n_validation``. ``data_start`` / ``data_end``: the examples' time range.
    """

    spec: FeatureSpec
    state_dict: Mapping[str, torch.Tensor]
    config: TrainConfig
    metrics: Mapping[str, float]
    n_examples: int
    warm_started: bool
    data_start: float
    data_end: float
    warm_start_skipped: str | None = None


def train(
    examples: Sequence[Example],
    config: TrainConfig | None = None,
    warm_start: TrainedModel | None = None,
) -> TrainedModel:
    """Train on the labelled ``examples``; raises ``TrainingError`` when they cannot be used."""
    config = config or TrainConfig()
    labelled = sorted((e for e in examples if label_key(e.label) is not None), key=_ts)
    if len(labelled) < config.min_examples:
        raise TrainingError(
            f"{len(labelled)} labelled examples (of {len(examples)}); training needs at least "
            f"{config.min_examples}: wait for more labels or widen the training window"
        )
    n_validation = int(len(labelled) * config.validation_fraction)
    head, tail = labelled[: len(labelled) - n_validation], labelled[len(labelled) - n_validation :]
    task = config.task or (warm_start.spec.task if warm_start else None)
    spec = fit_spec(head, task)
    skipped = warm_start_mismatch(warm_start, spec, config) if warm_start else None
    warm = warm_start if warm_start is not None and skipped is None else None
    spec = warm.spec if warm else spec
    if spec.task == "classification":  # a class seen only in the newest data can't be scored
        tail = [e for e in tail if label_key(e.label) in spec.classes]
    device = _device(config.device)
    with _reproducible(config.seed, device, config.cpu_threads) as generator:
        net = TabularNet.for_spec(spec, config.hidden, config.dropout)
        if warm:
            net.load_state_dict(warm.state_dict)
        net.to(device)
        metrics = _fit(net, spec, encode(spec, head), encode(spec, tail), config, generator)
    return TrainedModel(
        spec=spec,
        state_dict={k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
        config=config,
        metrics={**metrics, "n_train": float(len(head)), "n_validation": float(len(tail))},
        n_examples=len(labelled),
        warm_started=warm is not None,
        data_start=_ts(labelled[0]),
        data_end=_ts(labelled[-1]),
        warm_start_skipped=f"warm start not used: {skipped}" if skipped else None,
    )


def warm_start_mismatch(
    warm_start: TrainedModel, spec: FeatureSpec, config: TrainConfig
) -> str | None:
    """Why ``warm_start``'s weights cannot start a model of ``spec`` / ``config``, or None."""
    if warm_start.config.hidden != config.hidden:
        return f"hidden sizes changed from {warm_start.config.hidden} to {config.hidden}"
    return incompatibility(warm_start.spec, spec)


def predict_scores(model: TrainedModel, rows: Sequence[Row]) -> npt.NDArray[np.float64]:
    """Class probabilities, shape (n, len(classes)), or regression values, shape (n,)."""
    net = TabularNet.for_spec(model.spec, model.config.hidden, model.config.dropout)
    net.load_state_dict(model.state_dict)
    net.eval()
    features = [row.features if isinstance(row, Example) else row for row in rows]
    inputs = encode_features(model.spec, features)
    with torch.no_grad():
        out = net(inputs.numeric, inputs.categorical).double()
    if model.spec.task == "classification":
        return np.asarray(torch.softmax(out, dim=1).numpy(), dtype=np.float64)
    values = np.asarray(out[:, 0].numpy(), dtype=np.float64)
    return values * model.spec.label_std + model.spec.label_mean


def predict(model: TrainedModel, rows: Sequence[Row]) -> list[Prediction]:
    """Binary: probability of ``spec.classes[1]``; multi-class: probabilities in
    ``spec.classes`` order; regression: the value."""
    scores = predict_scores(model, rows)
    if model.spec.task == "regression":
        return [float(v) for v in scores]
    if len(model.spec.classes) == 2:
        return [float(p) for p in scores[:, 1]]
    return [[float(p) for p in row] for row in scores]


def predict_classes(model: TrainedModel, rows: Sequence[Row]) -> list[str]:
    """The most probable class of each row (classification only)."""
    if model.spec.task != "classification":
        raise ValueError("predict_classes needs a classification model; use predict()")
    scores = predict_scores(model, rows)
    return [model.spec.classes[i] for i in scores.argmax(axis=1)] if len(rows) else []


def _fit(
    net: TabularNet,
    spec: FeatureSpec,
    data: Encoded,
    validation: Encoded,
    config: TrainConfig,
    generator: torch.Generator,
) -> dict[str, float]:
    """Train ``net`` in place and leave it at its best validation epoch; that epoch's scores."""
    device = next(net.parameters()).device
    data, validation = _to(data, device), _to(validation, device)
    optimizer = torch.optim.AdamW(
        net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    best: dict[str, float] = {}
    best_state = net.state_dict()
    stale = 0
    for epoch in range(1, config.epochs + 1):
        batches = torch.split(
            torch.randperm(len(data.numeric), generator=generator), config.batch_size
        )
        scores = {
            "train_loss": _epoch(net, optimizer, spec, data, batches),
            "best_epoch": float(epoch),
        }
        if not math.isfinite(scores["train_loss"]):
            raise TrainingError(
                f"training diverged (loss {scores['train_loss']} in epoch {epoch}): lower "
                "learning_rate, or look for extreme labels"
            )
        if len(validation.numeric) == 0:  # nothing held back: keep the last epoch
            best, best_state = scores, net.state_dict()
            continue
        scores |= _validate(net, spec, validation)
        if scores["validation_loss"] < best.get("validation_loss", math.inf) - 1e-6:
            best, stale = scores, 0
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            stale += 1
            if stale >= config.max_epochs_without_improvement:
                break
    net.load_state_dict(best_state)
    return {**best, "epochs": float(epoch)}


def _epoch(
    net: TabularNet,
    optimizer: torch.optim.Optimizer,
    spec: FeatureSpec,
    data: Encoded,
    batches: Sequence[torch.Tensor],
) -> float:
    """One pass over ``batches`` of row indices; the mean training loss."""
    net.train()
    device = data.numeric.device
    total = torch.zeros((), device=device)
    for batch in batches:
        index = batch.to(device)
        loss = _loss(spec, net(data.numeric[index], data.categorical[index]), data, index)
        optimizer.zero_grad()
        torch.autograd.backward(loss)
        optimizer.step()
        total += loss.detach() * len(index)
    return float(total) / max(len(data.numeric), 1)


def _validate(net: TabularNet, spec: FeatureSpec, validation: Encoded) -> dict[str, float]:
    net.eval()
    with torch.no_grad():
        out = net(validation.numeric, validation.categorical)
        everything = torch.arange(len(out), device=out.device)
        scores = {"validation_loss": float(_loss(spec, out, validation, everything))}
        assert validation.target is not None
        if spec.task == "classification":
            correct = out.argmax(dim=1) == validation.target
            scores["validation_accuracy"] = float(correct.double().mean())
        else:
            error = (out[:, 0] - validation.target).abs().double().mean()
            scores["validation_mae"] = float(error) * spec.label_std
    return scores


def _loss(spec: FeatureSpec, out: torch.Tensor, data: Encoded, index: torch.Tensor) -> torch.Tensor:
    assert data.target is not None
    if spec.task == "classification":
        return F.cross_entropy(out, data.target[index])
    return F.mse_loss(out[:, 0], data.target[index])


@contextmanager
def _reproducible(
    seed: int, device: torch.device, cpu_threads: int | None
) -> Iterator[torch.Generator]:
    """Seed torch inside a forked RNG; on CPU also deterministic algorithms and the thread
    count. The caller's global settings are restored afterwards."""
    cuda = []
    if device.type == "cuda":
        cuda = [torch.cuda.current_device() if device.index is None else device.index]
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        if device.type == "cpu":
            torch.use_deterministic_algorithms(True)
            torch.set_num_threads(cpu_threads or threads)
        try:
            yield torch.Generator().manual_seed(seed)
        finally:
            torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
            torch.set_num_threads(threads)


def _device(name: str | None) -> torch.device:
    return torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))


def _to(data: Encoded, device: torch.device) -> Encoded:
    target = None if data.target is None else data.target.to(device)
    return Encoded(data.numeric.to(device), data.categorical.to(device), target)


def _ts(example: Example) -> float:
    return example.ts
