"""Monitored units: a model, or one stage of a multi-model pipeline.

An event's optional ``stage`` (e.g. ``vad`` → ``asr``) names a component of a pipeline; each
stage is monitored like a model of its own. Inside the worker a unit is one string, so windows,
offsets, references and alerts need no second key: the model's name for a plain model,
``model::stage`` for a stage. Stored rows split it back into their ``model`` and ``stage``
columns, which is what the API filters on.

>>> unit_of("voice", "asr"), split_unit("voice::asr"), split_unit("fraud")
('voice::asr', ('voice', 'asr'), ('fraud', ''))
"""

from __future__ import annotations

SEPARATOR = "::"


def unit_of(model: str, stage: str | None) -> str:
    return f"{model}{SEPARATOR}{stage}" if stage else model


def split_unit(unit: str) -> tuple[str, str]:
    """(model, stage); the stage is '' for a plain model."""
    model, _, stage = unit.partition(SEPARATOR)
    return model, stage
