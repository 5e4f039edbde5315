"""References (PUT/GET) and drift results of a model."""

from __future__ import annotations

import io
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Literal

import orjson
from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from api.auth import ADMIN_ONLY
from api.deps import SettingsDep, StoreDep
from api.errors import invalid
from api.params import (
    MAX_NAME,
    DecidedBy,
    EndTime,
    ModelName,
    Segment,
    Shadow,
    Stage,
    StartTime,
    Version,
    cut_of,
)
from api.rendering import json_response
from api.schemas import error
from api.timeparse import iso, parse_time
from detectors.drift.window import PREDICTION, ModelReference
from detectors.reference import NumericReference
from driftline.events import EventLimits, check_prediction_event
from driftline.store import MetricPoint, Store, StoredReference

router = APIRouter(prefix="/v1/models", tags=["drift"])
_VALUE = {"anyOf": [{"type": "number"}, {"type": "string"}, {"type": "boolean"}, {"type": "null"}]}
REFERENCE_ROW = {
    "type": "object",
    "description": "{features: {...}, prediction} or a flat row (every key but prediction "
    "is a feature), as in a prediction event",
    "properties": {
        "features": {"type": "object", "additionalProperties": _VALUE},
        "prediction": {"anyOf": [*_VALUE["anyOf"], {"type": "array", "items": {"type": "number"}}]},
    },
    "additionalProperties": _VALUE,
}


class ProfilePublic(BaseModel):
    name: str
    kind: str
    count: int
    missing: int


class ReferencePublic(BaseModel):
    model: str
    version: str
    source: str
    created_at: str
    features: list[ProfilePublic]
    prediction: ProfilePublic | None


class DriftTestPublic(BaseModel):
    feature: str
    test: str
    statistic: float
    p_value: float | None
    adjusted_p_value: float | None
    effect_size: float
    min_effect: float
    drifted: bool
    in_decision: bool
    drift_when: str


class DriftWindowPublic(BaseModel):
    window_start: str
    window_seconds: int
    reference: str
    share_drifted: float
    max_effect: float
    drifted_features: list[str]
    prediction_drifted: bool | None
    concept_drifted: bool | None = Field(
        None,
        description="the stored drift.concept flag, as alarms see it: the quality-drop test "
        "on labelled events or an error-stream detector flagged the window (None: no labelled "
        "events scored yet)",
    )
    results: list[DriftTestPublic]


class DriftPublic(BaseModel):
    model: str
    windows: list[DriftWindowPublic]
    truncated: bool = Field(
        False,
        description="more tests matched than one answer holds: the newest windows are "
        "answered whole, older ones in the range left out (a window with more tests than "
        "that alone: its first ones)",
    )


# tests in one answer: 100 windows of 100 features with 5 tests each
DRIFT_ROWS = 50_000


def _test_public(row: Sequence[Any]) -> dict[str, Any]:
    """A ``DriftTestPublic`` of a row of ``Store.drift_tests``."""
    feature, test, statistic, p, adjusted, effect, min_effect, drifted, decision, when = row[2:12]
    return {
        "feature": feature,
        "test": test,
        "statistic": float(statistic),
        "p_value": None if p is None else float(p),
        "adjusted_p_value": None if adjusted is None else float(adjusted),
        "effect_size": float(effect),
        "min_effect": float(min_effect),
        "drifted": bool(drifted),
        "in_decision": bool(decision),
        "drift_when": when,
    }


def _public(stored: StoredReference) -> ReferencePublic:
    reference = ModelReference.from_dict(stored.profile)

    def profile(name: str, ref: Any) -> ProfilePublic:
        kind = "numeric" if isinstance(ref, NumericReference) else "categorical"
        return ProfilePublic(name=name, kind=kind, count=ref.count, missing=ref.missing)

    return ReferencePublic(
        model=stored.model,
        version=stored.version,
        source=stored.source,
        created_at=iso(stored.created_at),
        features=[profile(n, r) for n, r in sorted(reference.features.items())],
        prediction=None if reference.output is None else profile(PREDICTION, reference.output),
    )


PARQUET_TYPES = ("application/vnd.apache.parquet", "application/x-parquet")


def _csv_reference(body: bytes, version: str) -> ModelReference:
    """A CSV training sample's reference, built from its columns (the reference its rows
    would make, ``ModelReference.from_columns``): numeric columns go as they are, others as
    their values, NaN read as missing; a ``prediction`` column is the output."""
    return _file_reference(body, version, "csv")


def _parquet_reference(body: bytes, version: str) -> ModelReference:
    """A Parquet training sample's reference, as a CSV's (``_csv_reference``): a column of
    numbers is numeric, any other holds its values, a null is missing."""
    return _file_reference(body, version, "parquet")


def _file_reference(body: bytes, version: str, kind: Literal["csv", "parquet"]) -> ModelReference:
    import pandas as pd

    try:
        read = pd.read_csv if kind == "csv" else pd.read_parquet
        frame = read(io.BytesIO(body))
    except Exception as exc:
        what = "CSV" if kind == "csv" else "Parquet file"
        raise ValueError(f"not a readable {what}: {exc}") from None
    return _frame_reference(frame, version)


def _frame_reference(frame: Any, version: str) -> ModelReference:
    columns: dict[str, Any] = {}
    for name in frame.columns:
        series = frame[name]
        if series.dtype.kind in "fiu" and name != "prediction":
            columns[str(name)] = series.to_numpy(dtype="float64")
        elif not series.hasnans:  # values as an event holds them
            columns[str(name)] = series.tolist()
        else:  # ... None for missing (NaN, None, NA)
            values = series.astype(object)
            columns[str(name)] = values.where(values.notna(), None).tolist()
    prediction = columns.pop("prediction", None)
    return ModelReference.from_columns(columns, prediction, version)


def _rows_reference(rows: list[dict[str, Any]], version: str) -> ModelReference:
    """JSON rows' reference, from their columns: what ``ModelReference.from_rows`` makes of
    them (a feature a row lacks is missing there), without a profile built row by row."""
    features = [
        row["features"]
        if "features" in row
        else {k: v for k, v in row.items() if k != "prediction"}
        for row in rows
    ]
    names = dict.fromkeys(name for f in features for name in f)
    columns = {name: [f.get(name) for f in features] for name in names}
    prediction = [row.get("prediction") for row in rows]
    return ModelReference.from_columns(columns, prediction, version)


def _rows(body: bytes, limits: EventLimits) -> list[dict[str, Any]]:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    if not isinstance(payload, list) or not all(isinstance(r, dict) for r in payload):
        raise ValueError("the body must be a JSON array of row objects (or text/csv)")
    for index, row in enumerate(payload):
        reason = _row_problem(row, limits)
        if reason is not None:
            raise ValueError(f"row {index}: {reason}")
    return payload


def _row_problem(row: dict[str, Any], limits: EventLimits) -> str | None:
    """A row holds what an event holds (features and prediction), checked the same way."""
    features = (
        row["features"]
        if "features" in row
        else {k: v for k, v in row.items() if k != "prediction"}
    )
    event = {"model": "reference", "features": features, "prediction": row.get("prediction")}
    return check_prediction_event(event, limits)


@router.put(
    "/{model}/reference",
    status_code=201,
    responses={**ADMIN_ONLY, 413: error("body over DRIFTLINE_MAX_REFERENCE_BYTES")},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "array", "items": REFERENCE_ROW}},
                "text/csv": {"schema": {"type": "string"}},
                PARQUET_TYPES[0]: {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
async def update_reference(
    model: ModelName,
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    version: str = Query(
        "*", max_length=MAX_NAME, description="model version it applies to ('*': any version)"
    ),
) -> ReferencePublic:
    """Upload a training sample as the model's reference; its profile is computed once.

    Body: a JSON array of rows (``{"features": {...}, "prediction": ...}`` or flat
    ``{"amount": 1.5, ..., "prediction": 0.2}``), CSV with ``Content-Type: text/csv``, or
    Parquet with ``Content-Type: application/vnd.apache.parquet``; a ``prediction`` column is
    the output. The profile is built from the columns. The worker picks it up within seconds;
    it replaces warm-up and rolling references.
    """
    body = await request.body()
    if len(body) > settings.max_reference_bytes:
        raise HTTPException(
            413, f"reference is {len(body)} bytes; the limit is {settings.max_reference_bytes}"
        )
    content_type = request.headers.get("content-type", "")
    try:
        if "csv" in content_type:
            reference = await run_in_threadpool(_csv_reference, body, version)
        elif any(kind in content_type for kind in PARQUET_TYPES):
            reference = await run_in_threadpool(_parquet_reference, body, version)
        else:
            rows = _rows(body, settings.event_limits())
            reference = await run_in_threadpool(_rows_reference, rows, version)
    except ValueError as exc:
        raise invalid(("body",), f"cannot build a reference: {exc}", None) from None
    stored = StoredReference(model, version, "uploaded", reference.to_dict(), int(time.time()))
    await run_in_threadpool(store.save_reference, stored)
    return _public(stored)


@router.get("/{model}/reference")
def read_references(model: ModelName, store: StoreDep) -> list[ReferencePublic]:
    """The model's references: uploaded, and learned by the worker (warm-up)."""
    return [_public(r) for r in store.references(model)]


def stored_decisions(
    store: Store,
    model: str,
    start: int | None,
    end: int | None,
    segment: str,
    stage: str,
    limit: int,
) -> dict[int, dict[str, Any]]:
    """Window start → what the worker decided and stored for it: ``share_drifted``,
    ``max_effect``, ``prediction_drifted``, ``drifted_features`` (``streams/window_rows.py``)
    and ``concept_drifted`` (``streams/quality.py``, on which the ConceptDrift alert fires).
    Read, never worked out again here. ``limit``: points read per metric (``drift.drifted``
    has one per feature and window)."""
    decided: dict[int, dict[str, Any]] = defaultdict(dict)

    def points(name: str) -> list[MetricPoint]:
        return store.metrics(
            model, name=name, start=start, end=end, segment=segment, stage=stage, limit=limit
        )

    for name, key in (
        ("drift.share_drifted", "share_drifted"),
        ("drift.max_effect", "max_effect"),
    ):
        for p in points(name):
            decided[p.window_start][key] = p.value
    for name, key in (
        ("drift.prediction_drifted", "prediction_drifted"),
        ("drift.concept", "concept_drifted"),
    ):
        for p in points(name):  # several per window only if versions were stored apart
            window = decided[p.window_start]
            window[key] = bool(window.get(key)) or p.value >= 0.5
    for p in points("drift.drifted"):
        if p.value >= 0.5:
            decided[p.window_start].setdefault("drifted_features", set()).add(p.feature)
    return decided


@router.get(
    "/{model}/drift",
    response_model=DriftPublic,
    responses={404: error("the model has no windows of this version")},
)
def read_drift(
    model: ModelName,
    store: StoreDep,
    start: StartTime = None,
    end: EndTime = None,
    segment: Segment = "",
    stage: Stage = "",
    version: Version = None,
    shadow: Shadow = None,
    decided_by: DecidedBy = None,
) -> Response:
    """Per window: which features drifted, the share, every test with its decision, and the
    concept-drift flag once labels have been joined (the quality-drop test and the
    error-stream detectors, as decided and stored by the worker). At most
    ``DRIFT_ROWS`` tests are answered: past them, the newest windows are kept whole and
    ``truncated`` says that older windows in the range were left out (ask for a shorter range,
    or for the ``drift.drifted`` metric per hour: ``/metrics?name=drift.drifted&step=3600``)."""
    since, until = parse_time(start, "start"), parse_time(end, "end")
    segment = cut_of(store, model, segment, version, stage, shadow, decided_by)
    rows, truncated = store.drift_tests(
        model, start=since, end=until, segment=segment, stage=stage, limit=DRIFT_ROWS
    )
    if not rows:
        return json_response({"model": model, "windows": [], "truncated": False})
    first = int(rows[0][0])
    # drift.drifted has a point per feature and window answered: about one per test row (the
    # floor is what a metrics read takes by default)
    decisions = stored_decisions(store, model, first, until, segment, stage, len(rows) + 10_000)
    by_window: dict[int, list[Sequence[Any]]] = defaultdict(list)
    for row in rows:
        by_window[int(row[0])].append(row)
    windows = []
    for start_s, tests in sorted(by_window.items()):
        decided = decisions.get(start_s, {})
        deciding = [r for r in tests if r[10]] or tests
        windows.append(
            {
                "window_start": iso(start_s),
                "window_seconds": int(tests[0][1]),
                "reference": str(deciding[0][14]),
                "share_drifted": decided.get("share_drifted", 0.0),
                "max_effect": decided.get("max_effect", 0.0),
                "drifted_features": sorted(decided.get("drifted_features", ())),
                "prediction_drifted": decided.get("prediction_drifted"),
                "concept_drifted": decided.get("concept_drifted"),
                "results": [_test_public(r) for r in tests],
            }
        )
    return json_response({"model": model, "windows": windows, "truncated": truncated})
