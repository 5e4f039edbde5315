"""Silences: mute notifications of matching alerts for a while (they are still recorded)."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Response, status

from alarms.payload import rfc3339
from alarms.routing import Matcher, Silence
from api.alarm_schemas import MatcherBody, SilenceCreate, SilencePublic
from api.auth import ADMIN_ONLY
from api.deps import AlarmStoreDep
from api.errors import invalid
from api.limits import ConfigBodyRoute
from api.rendering import render_each
from api.schemas import error
from api.timeparse import EPOCH_MAX, RANGE, to_epoch

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


@router.post("", status_code=status.HTTP_201_CREATED, responses=ADMIN_ONLY)
def create_silence(body: SilenceCreate, store: AlarmStoreDep) -> SilencePublic:
    """Alerts matching every matcher are not sent between ``starts_at`` and ``ends_at``
    (or for ``duration_s``); the delivery log records them as ``silenced``."""
    now = time.time()
    starts_at = now if body.starts_at is None else to_epoch(body.starts_at)
    if body.ends_at is not None:
        ends_at, field = to_epoch(body.ends_at), "ends_at"
    else:
        assert body.duration_s is not None  # SilenceCreate has one or the other
        ends_at, field = starts_at + body.duration_s, "duration_s"
    if ends_at <= starts_at:
        raise invalid(("body", field), f"the silence must end after it starts ({starts_at:.0f})",
                      getattr(body, field))  # fmt: skip
    if ends_at > EPOCH_MAX:
        raise invalid(("body", field), f"the silence must end {RANGE}", getattr(body, field))
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
    return render_each(
        store.silences(expired=expired), lambda s: _public(s, now), "silence", lambda s: s.id
    )


@router.delete(
    "/{silence_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**ADMIN_ONLY, 404: error("no silence with this id")},
)
def delete_silence(
    silence_id: Annotated[str, Path(max_length=100)], store: AlarmStoreDep
) -> Response:
    """End a silence now (it is removed)."""
    if not store.delete_silence(silence_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no silence {silence_id!r}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
