from __future__ import annotations

import functools
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool

from api.deps import ApiKeyDep, IngestDep, SettingsDep
from api.schemas import IngestPublic, RejectedPublic

router = APIRouter(prefix="/v1", tags=["events"])


@router.post(
    "/events",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[ApiKeyDep],
    responses={
        413: {"description": "body over the size limit"},
        422: {"description": "not JSON, or no valid event"},
    },
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
    dependencies=[ApiKeyDep],
    responses={
        413: {"description": "body over the size limit"},
        422: {"description": "not JSON, or no valid label"},
    },
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
        raise HTTPException(422, f"body is not valid JSON: {exc}") from None
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
    )
    if result.accepted == 0 and result.rejected:
        raise HTTPException(422, body_out.model_dump())
    return body_out
