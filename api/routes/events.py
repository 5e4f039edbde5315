from __future__ import annotations

import functools
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from api.auth import ADMIN_ONLY
from api.deps import IngestDep, SettingsDep
from api.errors import issue
from api.schemas import (
    IngestPublic,
    IngestRefusedPublic,
    RejectedPublic,
    Responses,
    ValidationIssuePublic,
    error,
)

router = APIRouter(prefix="/v1", tags=["events"])
# The wire contract (driftline/events.py) as JSON Schema, for the docs and for generated
# clients; the limits are the defaults of DRIFTLINE_MAX_FEATURES, _MAX_STRING_LENGTH...
_NAME: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 256}
_OPTIONAL_NAME: dict[str, Any] = {"anyOf": [_NAME, {"type": "null"}]}
_SCALAR: list[dict[str, Any]] = [
    {"type": "number"},
    {"type": "string", "maxLength": 1024},
    {"type": "boolean"},
]
_TS = {
    "anyOf": [{"type": "number"}, {"type": "string", "format": "date-time"}, {"type": "null"}],
    "description": "RFC 3339 or epoch seconds (default: when the broker got it)",
}
_CUSTOM_METRICS: dict[str, Any] = {
    "anyOf": [
        {
            "type": "object",
            "maxProperties": 64,
            "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_.-]{0,63}$"},
            "additionalProperties": {"anyOf": [{"type": "number"}, {"type": "null"}]},
        },
        {"type": "null"},
    ],
    "description": "custom and business metrics, name -> number (aggregated per window as "
    "custom.<name>.<stat>); bad entries are dropped and listed in 'dropped', the event is kept",
}
PREDICTION_EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["model", "features", "prediction"],
    "properties": {
        "model": {**_NAME, "description": "the model's id (no '::': see 'stage')"},
        "features": {
            "type": "object",
            "maxProperties": 1000,
            "additionalProperties": {"anyOf": [*_SCALAR, {"type": "null"}]},
        },
        "prediction": {
            "anyOf": [
                *_SCALAR,
                {"type": "null"},
                {"type": "array", "items": {"type": "number"}, "minItems": 1, "maxItems": 1000},
            ]
        },
        "version": {"anyOf": [_NAME, {"type": "integer"}, {"type": "null"}]},
        "id": _OPTIONAL_NAME,
        "stage": _OPTIONAL_NAME,
        "ts": _TS,
        "latency_ms": {"anyOf": [{"type": "number", "minimum": 0}, {"type": "null"}]},
        "metrics": _CUSTOM_METRICS,
        "segment": {
            "anyOf": [
                {
                    "type": "object",
                    "maxProperties": 16,
                    "additionalProperties": {"type": "string", "maxLength": 1024},
                },
                {"type": "null"},
            ]
        },
    },
}
LABEL_EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["model", "id", "label"],
    "properties": {
        "model": _NAME,
        "id": {**_NAME, "description": "the id of the prediction it labels"},
        "label": {"anyOf": _SCALAR},
        "stage": _OPTIONAL_NAME,
        "ts": _TS,
        "metrics": {
            **_CUSTOM_METRICS,
            "description": "business outcomes that arrive later (a click), joined to the "
            "prediction by id and aggregated as labels.custom.<name>.<stat>",
        },
    },
}


def _one_or_many(event: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI request body: one event or a JSON array of them."""
    schema = {"oneOf": [event, {"type": "array", "items": event}]}
    content = {"application/json": {"schema": schema}}
    return {"requestBody": {"required": True, "content": content}}


def _answers(what: str) -> Responses:
    return {
        **ADMIN_ONLY,
        413: error("body over DRIFTLINE_MAX_REQUEST_BYTES"),
        422: {"model": IngestRefusedPublic, "description": f"not JSON, or no valid {what}"},
        503: error("Kafka did not take the events"),
    }


@router.post(
    "/events",
    status_code=status.HTTP_202_ACCEPTED,
    responses=_answers("event"),
    openapi_extra=_one_or_many(PREDICTION_EVENT),
)
async def create_events(request: Request, ingest: IngestDep, settings: SettingsDep) -> Any:
    """Ingest one prediction event or a JSON array of them, for services without Kafka.

    Valid events are on the broker when this returns 202; invalid ones are listed with their
    reasons (and also sent to the dead-letter topic). When no event is valid: 422.
    """
    return await _ingest(request, ingest, settings, labels=False)


@router.post(
    "/labels",
    status_code=status.HTTP_202_ACCEPTED,
    responses=_answers("label"),
    openapi_extra=_one_or_many(LABEL_EVENT),
)
async def create_labels(request: Request, ingest: IngestDep, settings: SettingsDep) -> Any:
    """Ingest one label event (``{"model", "id", "label", "ts"?, "stage"?}``) or an array.

    Labels are joined with their predictions by (model, stage, id), in whatever order the two
    arrive; same answers as ``POST /v1/events``.
    """
    return await _ingest(request, ingest, settings, labels=True)


async def _ingest(request: Request, ingest: Any, settings: Any, *, labels: bool) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > settings.max_request_bytes:
        raise HTTPException(
            413,
            f"body is {declared} bytes; the limit is {settings.max_request_bytes}",
        )
    body = await request.body()
    if len(body) > settings.max_request_bytes:
        raise HTTPException(
            413,
            f"body is {len(body)} bytes; the limit is {settings.max_request_bytes}",
        )
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        problem = issue(("body", exc.pos), f"body is not valid JSON: {exc}", None, "json_invalid")
        refused = IngestRefusedPublic(accepted=0, rejected=[], detail=[problem])
        return JSONResponse(refused.model_dump(), status_code=422)
    try:
        result = await run_in_threadpool(functools.partial(ingest.submit, payload, labels=labels))
    except Exception as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"could not deliver events to Kafka at {ingest.bootstrap}: {exc}",
        ) from exc
    body_out = IngestPublic(
        accepted=result.accepted,
        rejected=[RejectedPublic(index=r.index, reason=r.reason) for r in result.rejected],
        dropped=[RejectedPublic(index=r.index, reason=r.reason) for r in result.dropped],
    )
    if result.accepted == 0 and result.rejected:
        detail = [
            ValidationIssuePublic(
                loc=["body"] if r.index is None else ["body", r.index],
                msg=r.reason,
                type="invalid_event",
            )
            for r in result.rejected
        ]
        refused = IngestRefusedPublic(**body_out.model_dump(), detail=detail)
        return JSONResponse(refused.model_dump(), status_code=422)
    return body_out
