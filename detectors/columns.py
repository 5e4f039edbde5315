"""Turn a micro-batch of one model's events into typed NumPy columns, once per batch.

A feature's kind is fixed by the first non-null value the model sends (number or bool:
numeric; string: categorical) and kept in ``kinds``. Values of the other kind are not errors:
in a numeric feature they count as type mismatches (and missing); in a categorical feature
numbers are taken as their text (a zip code sent as 75001 is the category "75001").
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors.feature_values import (
    all_names,
    carried_by_all,
    columns_of,
    columns_or_none,
    float_block,
    float_rows,
    same_names,
)

FloatArray = npt.NDArray[np.float64]
ObjectArray = npt.NDArray[np.object_]
BoolArray = npt.NDArray[np.bool_]

_NAN = float("nan")
_TEXT_OR_NULL = frozenset({str, type(None)})


class Kind(StrEnum):
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    PROBABILITIES = "probabilities"  # predictions only: a vector of class probabilities


@dataclass(frozen=True)
class Column:
    """One feature (or the prediction) for every event of a batch.

    ``values``: float64 with NaN for missing (numeric); object array of str or None
    (categorical); 2-D float64 with NaN rows for missing (probabilities).
    ``mismatched``: rows whose value had the wrong type (counted, treated as missing).
    """

    kind: Kind
    values: npt.NDArray[Any]
    mismatched: BoolArray | None = None

    def take(self, rows: npt.NDArray[np.intp]) -> Column:
        mismatched = None if self.mismatched is None else self.mismatched[rows]
        return Column(self.kind, self.values[rows], mismatched)


def kind_of(value: Any) -> Kind | None:
    """The kind a first non-null value gives a feature (None for null)."""
    if value is None:
        return None
    if type(value) is str:
        return Kind.CATEGORICAL
    if type(value) is list:
        return Kind.PROBABILITIES
    return Kind.NUMERIC


def _numeric(values: Sequence[Any]) -> Column:
    try:
        return Column(Kind.NUMERIC, np.array(values, dtype=np.float64))  # None is NaN
    except (ValueError, TypeError):
        pass
    mismatched = np.array([type(v) not in (int, float, bool) and v is not None for v in values])
    clean = [_NAN if bad or v is None else v for v, bad in zip(values, mismatched, strict=True)]
    return Column(Kind.NUMERIC, np.array(clean, dtype=float), mismatched)


def _categorical(values: Sequence[Any]) -> Column:
    if set(map(type, values)) <= _TEXT_OR_NULL:
        return Column(Kind.CATEGORICAL, _object_array(values))
    text = [v if v is None or type(v) is str else _as_text(v) for v in values]
    return Column(Kind.CATEGORICAL, _object_array(text))


def _object_array(values: Sequence[Any]) -> ObjectArray:
    out = np.empty(len(values), dtype=object)  # a copy of the references, nothing inspected
    out[:] = values
    return out


def _as_text(value: Any) -> str:
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) is float and value.is_integer():
        return str(int(value))
    return str(value)


def _probabilities(values: Sequence[Any], width: int) -> Column:
    rows = np.full((len(values), width), _NAN)
    mismatched = np.zeros(len(values), dtype=bool)
    for i, v in enumerate(values):
        if v is None:
            continue
        if type(v) is list and len(v) == width:
            rows[i] = v
        else:
            mismatched[i] = True
    return Column(Kind.PROBABILITIES, rows, mismatched if mismatched.any() else None)


def build_column(values: Sequence[Any], kind: Kind, width: int = 0) -> Column:
    if kind is Kind.NUMERIC:
        return _numeric(values)
    if kind is Kind.CATEGORICAL:
        return _categorical(values)
    return _probabilities(values, width)


def _feature_columns(dicts: list[dict[str, Any]], schema: ModelSchema) -> dict[str, Column]:
    """Every feature the batch's events carry, as a column (``detectors/feature_values.py``
    reads the values). The numeric features the schema knows and every event carries make one
    block; if one of them is missing from an event or holds a value that is not a number,
    each feature is built on its own (what a string in a numeric feature is: ``_numeric``)."""
    names = same_names(dicts)
    if names is not None:
        try:
            return _columns(names, *_read_same_names(dicts, names, schema), schema)
        except KeyError:  # not the same names after all
            pass
    names = all_names(dicts)
    values = dict(zip(names, columns_or_none(dicts, names), strict=True))
    numeric = [n for n in names if schema.features.get(n) is Kind.NUMERIC]
    block = None
    if numeric and carried_by_all(dicts, numeric):
        block = float_block([values[n] for n in numeric])
    return _columns(names, block, values, schema)


def _read_same_names(
    dicts: list[dict[str, Any]], names: list[str], schema: ModelSchema
) -> tuple[FloatArray | None, dict[str, tuple[Any, ...]]]:
    """The numeric block and the other columns, read from events that all carry ``names``
    (KeyError if one does not)."""
    numeric = [n for n in names if schema.features.get(n) is Kind.NUMERIC]
    block = float_rows(dicts, numeric) if numeric else None
    rest = (
        names if block is None else [n for n in names if schema.features.get(n) is not Kind.NUMERIC]
    )
    return block, dict(zip(rest, columns_of(dicts, rest), strict=True))


def _columns(
    names: list[str],
    block: FloatArray | None,
    values: Mapping[str, tuple[Any, ...]],
    schema: ModelSchema,
) -> dict[str, Column]:
    """The batch's columns: the numeric block's first, when there is one, then the others, as
    ``build_batch`` always ordered them."""
    columns: dict[str, Column] = {}
    if block is None:
        rest = names
    else:
        numeric = [n for n in names if schema.features.get(n) is Kind.NUMERIC]
        columns.update(
            (n, Column(Kind.NUMERIC, row)) for n, row in zip(numeric, block, strict=True)
        )
        rest = [n for n in names if schema.features.get(n) is not Kind.NUMERIC]
    for name in rest:
        if schema.features.get(name) is Kind.NUMERIC:
            try:  # None is NaN to numpy; a number in a string is parsed, as float() does
                columns[name] = Column(Kind.NUMERIC, np.array(values[name], dtype=np.float64))
                continue
            except (ValueError, TypeError):
                pass  # a value of another type: the general path counts it
        columns[name] = _general_column(name, values[name], schema)
    return columns


def _first_non_null(values: Iterable[Any]) -> Any:
    return next((v for v in values if v is not None), None)


@dataclass(frozen=True)
class EventBatch:
    """Columns for ``size`` events of one model."""

    size: int
    ts: FloatArray
    latency_ms: FloatArray
    features: Mapping[str, Column]
    prediction: Column | None  # None until the model has sent a non-null prediction
    versions: ObjectArray
    # custom metrics (the events' ``metrics``): per name, NaN where an event did not send it
    custom: Mapping[str, FloatArray] = field(default_factory=dict)
    # what the cuts are made of, None when no event of the batch says: each event's segment
    # mapping (or None), whether it is a shadow prediction, and who decided ("model", "human")
    segments: ObjectArray | None = None
    shadow: BoolArray | None = None
    decided_by: ObjectArray | None = None

    def take(self, rows: npt.NDArray[np.intp]) -> EventBatch:
        return EventBatch(
            size=int(rows.size),
            ts=self.ts[rows],
            latency_ms=self.latency_ms[rows],
            features={name: col.take(rows) for name, col in self.features.items()},
            prediction=None if self.prediction is None else self.prediction.take(rows),
            versions=self.versions[rows],
            custom={name: values[rows] for name, values in self.custom.items()},
            segments=None if self.segments is None else self.segments[rows],
            shadow=None if self.shadow is None else self.shadow[rows],
            decided_by=None if self.decided_by is None else self.decided_by[rows],
        )


@dataclass
class ModelSchema:
    """What a model's events have shown so far: the kind of each feature and of its output."""

    features: MutableMapping[str, Kind]
    prediction: Kind | None = None
    prediction_width: int = 0


def build_batch(events: list[dict[str, Any]], ts: FloatArray, schema: ModelSchema) -> EventBatch:
    """Columns for validated events of one model; ``ts`` is their event time (seconds)."""
    columns = _feature_columns(list(map(_FEATURES, events)), schema)
    # features the model sent before but that are absent from this batch are all missing
    for name, kind in schema.features.items():
        if name not in columns:
            columns[name] = build_column([None] * len(events), kind)

    prediction = _prediction_column(list(map(_PREDICTION, events)), schema)
    latency = np.array(_field(events, "latency_ms"), dtype=float)  # None is NaN to numpy
    versions = _field(events, "version")
    if set(map(type, versions)) != {str}:
        versions = [v if type(v) is str else str(v or "unknown") for v in versions]
    return EventBatch(
        len(events),
        ts,
        latency,
        columns,
        prediction,
        _object_array(versions),
        custom_columns(events),
        segments=_objects(_field(events, "segment")),
        shadow=_shadow(events),
        decided_by=_objects(_field(events, "decided_by")),
    )


_FEATURES = operator.itemgetter("features")
_PREDICTION = operator.itemgetter("prediction")


def _field(events: list[dict[str, Any]], name: str) -> list[Any]:
    """Each event's ``name`` (None where it has none), with no Python code run per event."""
    return list(map(operator.methodcaller("get", name), events))


def _general_column(name: str, values: Sequence[Any], schema: ModelSchema) -> Column:
    """A feature's column of any kind, its kind the schema's or its first non-null value's."""
    kind = schema.features.get(name)
    if kind is None:
        kind = kind_of(_first_non_null(values))
        if kind is None:  # all null so far: missing values of a kind not known yet
            kind = Kind.NUMERIC
        else:
            schema.features[name] = kind
    return build_column(values, kind)


def _prediction_column(predictions: list[Any], schema: ModelSchema) -> Column | None:
    if schema.prediction is None:
        first = _first_non_null(predictions)
        schema.prediction = kind_of(first)
        if type(first) is bool:
            schema.prediction = Kind.CATEGORICAL
        if schema.prediction is Kind.PROBABILITIES:
            schema.prediction_width = len(first)
    if schema.prediction is None:
        return None
    if schema.prediction is Kind.CATEGORICAL:
        predictions = [_as_text(p) if type(p) is bool else p for p in predictions]
    return build_column(predictions, schema.prediction, schema.prediction_width)


def columns_batch(
    features: Mapping[str, FloatArray | list[Any]], prediction: list[Any] | None
) -> EventBatch:
    """The batch of a table given by columns (an uploaded reference): what ``build_batch``
    makes of the same rows, without making the rows. A float array is a numeric column with
    NaN for missing; a list holds the values as an event would (None for missing)."""
    sizes = {len(values) for values in features.values()}
    if prediction is not None:
        sizes.add(len(prediction))
    if len(sizes) > 1:
        raise ValueError(f"the columns have different lengths: {sorted(sizes)}")
    n = sizes.pop() if sizes else 0
    schema = ModelSchema(features={})
    columns: dict[str, Column] = {}
    for name, values in features.items():
        if isinstance(values, np.ndarray) and values.dtype == np.float64:
            schema.features[name] = Kind.NUMERIC
            columns[name] = Column(Kind.NUMERIC, values)
        else:
            columns[name] = _general_column(name, list(values), schema)
    predicted = _prediction_column(prediction if prediction is not None else [None] * n, schema)
    return EventBatch(
        n, np.zeros(n), np.full(n, _NAN), columns, predicted, np.full(n, "unknown", dtype=object)
    )


def _objects(values: list[Any]) -> ObjectArray | None:
    """``values`` as a 1-D object array, or None when none is set."""
    if not any(values):
        return None
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _shadow(events: list[dict[str, Any]]) -> BoolArray | None:
    sent = _field(events, "shadow")
    if not any(map(operator.is_, sent, itertools.repeat(True))):
        return None
    return np.array([flag is True for flag in sent], dtype=bool)


def custom_columns(events: list[dict[str, Any]]) -> dict[str, FloatArray]:
    """Per custom metric name, its value in each event (NaN where absent). The contract has
    already left only finite numbers in ``metrics`` (``driftline_sdk.contract``)."""
    metrics = _field(events, "metrics")
    sent = list(filter(None, metrics))
    if not sent:
        return {}
    names: set[str] = set().union(*sent)
    dicts = [m or {} for m in metrics]
    return {
        name: np.array([_NAN if (v := d.get(name)) is None else v for d in dicts], dtype=float)
        for name in sorted(names)
    }
