"""Alerts: the life cycle of broken rules (pending → firing → resolved)."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status

from alarms.payload import alert_document, rfc3339
from alarms.state import Alert, AlertState
from api.alarm_schemas import AlertPublic
from api.deps import AlarmStoreDep
from api.errors import invalid
from api.params import Version
from api.rendering import render_each
from api.schemas import error
from driftline.cuts import cut_version, version_cut

router = APIRouter(prefix="/v1/alerts", tags=["alerts"])

STATES = tuple(str(s) for s in AlertState)
SHOWN_BY_DEFAULT = ("pending", "firing", "resolved")


def _public(alert: Alert) -> AlertPublic:
    return AlertPublic.model_validate(
        {
            **alert_document(alert),
            "version": cut_version(alert.segment) or "",
            "notified_at": rfc3339(alert.notified_at),
            "updated_at": rfc3339(alert.updated_at),
        }
    )


def _states(value: str | None) -> tuple[str, ...]:
    if not value:
        return SHOWN_BY_DEFAULT
    states = tuple(s for s in re.split(r"[,|\s]+", value) if s)
    unknown = [s for s in states if s not in STATES]
    if unknown:
        message = f"unknown state {unknown[0]!r}: use one or more of {', '.join(STATES)}"
        raise invalid(("query", "state"), message, value)
    return states


@router.get("")
def read_alerts(
    store: AlarmStoreDep,
    state: str | None = Query(
        None,
        max_length=200,
        description="firing, pending, resolved or inactive; several with , or | "
        "(default: pending, firing and resolved)",
    ),
    model: str | None = Query(None, max_length=1000),
    rule_id: str | None = Query(None, max_length=100),
    version: Version = None,
    limit: int = Query(1000, ge=1, le=100_000),
) -> list[AlertPublic]:
    """Alerts, most recently updated first, with their values and timestamps. ``version``:
    only the alerts on that version's own figures (rules with a ``version``)."""
    segment = None if version is None else version_cut(version)
    found = store.alerts(
        states=_states(state), model=model, rule_id=rule_id, segment=segment, limit=limit
    )
    return render_each(found, _public, "alert", lambda a: a.id)


@router.get("/{alert_id}", responses={404: error("no alert with this id")})
def read_alert(alert_id: Annotated[str, Path(max_length=100)], store: AlarmStoreDep) -> AlertPublic:
    alert = store.alert(alert_id)
    if alert is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert {alert_id!r}")
    return _public(alert)
