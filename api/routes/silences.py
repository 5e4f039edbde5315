"""Silences: mute notifications of matching alerts for a while (they are still recorded)."""

from __future__ import annotations

import time
import uuid
from typing import Literal

from fastapi import APIRouter, HTTPException, Query, Response, status

from alarms.payload import rfc3339
from alarms.routing import Matcher, Silence
from api.alarm_schemas import MatcherBody, SilenceCreate, SilencePublic
from api.deps import AlarmStoreDep, ApiKeyDep
from api.limits import ConfigBodyRoute
from api.timeparse import parse_time

router = APIRouter(prefix="/v1/silences", tags=["silences"], route_class=ConfigBodyRoute)


def _status(s: Silence, now: float) -> Literal["pending", "active", "expired"]:
    if now < s.starts_at:
        return "pending"
    return "active" if now < s.ends_at else "expired"


def _public(s: Silence, now: float) -> SilencePublic:
    return SilencePublic(
        id=s.id,
        matchers=[MatcherBody(name=m.name, value=m.value, op=m.op) for m in s.matchers],
        starts_at=rfc3339(s.starts_at),
        ends_at=rfc3339(s.ends_at),
        status=_status(s, now),
        comment=s.comment,
        created_by=s.created_by,
        created_at=rfc3339(s.created_at),
    )


def _time(value: str | float | None, name: str) -> float | None:
    if value is None or isinstance(value, float | int):
        return value
    return parse_time(value, name)


@router.post("", status_code=status.HTTP_201_CREATED, dependencies=[ApiKeyDep])
def create_silence(body: SilenceCreate, store: AlarmStoreDep) -> SilencePublic:
    """Alerts matching every matcher are not sent between ``starts_at`` and ``ends_at``;
    the delivery log records them as ``silenced``."""
    now = time.time()
    starts_at = _time(body.starts_at, "starts_at") or now
    ends_at = _time(body.ends_at, "ends_at")
    if ends_at is None:
        if body.duration_s is None:
            raise HTTPException(422, "give 'ends_at' or 'duration_s'")
        ends_at = starts_at + body.duration_s
    if ends_at <= starts_at:
        raise HTTPException(422, "'ends_at' must be after 'starts_at'")
    silence = Silence(
        id=uuid.uuid4().hex[:16],
        matchers=tuple(Matcher(m.name, m.value, m.op) for m in body.matchers),
        starts_at=float(starts_at),
        ends_at=float(ends_at),
        comment=body.comment,
        created_by=body.created_by,
        created_at=now,
    )
    store.put_silence(silence)
    return _public(silence, now)


@router.get("")
def read_silences(
    store: AlarmStoreDep,
    expired: bool = Query(True, description="include silences that have ended"),
) -> list[SilencePublic]:
    now = time.time()
    return [_public(s, now) for s in store.silences(expired=expired)]


@router.delete("/{silence_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[ApiKeyDep])
def delete_silence(silence_id: str, store: AlarmStoreDep) -> Response:
    """End a silence now (it is removed)."""
    if not store.delete_silence(silence_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no silence {silence_id!r}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
