"""Subscriptions to alerts (webhooks, Alertmanagers), and their delivery log."""

from __future__ import annotations

import time
import uuid
from typing import Annotated
from urllib.parse import urlsplit, urlunsplit

import orjson
from fastapi import APIRouter, HTTPException, Path, Query, Response, status

from alarms.payload import rfc3339
from alarms.routing import Subscription
from api.alarm_schemas import DeliveryPublic, SubscriptionCreate, SubscriptionPublic
from api.auth import ADMIN_ONLY
from api.deps import AlarmStoreDep
from api.errors import invalid
from api.limits import ConfigBodyRoute
from api.rendering import render_each
from api.schemas import Responses, error
from driftline.store.alarms import Delivery

router = APIRouter(prefix="/v1/subscriptions", tags=["subscriptions"], route_class=ConfigBodyRoute)

DELIVERY_STATUSES = ("pending", "retrying", "delivered", "failed", "silenced", "cancelled")
SubscriptionId = Annotated[str, Path(max_length=100)]
NOT_FOUND: Responses = {404: error("no subscription with this id")}


def _shown_url(url: str) -> str:
    """The URL without credentials in it (user:password@ is a secret too)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _public(s: Subscription) -> SubscriptionPublic:
    return SubscriptionPublic(
        id=s.id,
        kind=s.kind,
        url=_shown_url(s.url),
        has_secret=bool(s.secret),
        model=s.model,
        severities=list(s.severities),
        labels=dict(s.labels),
        description=s.description,
        created_at=rfc3339(s.created_at),
    )


def _delivery(d: Delivery) -> DeliveryPublic:
    return DeliveryPublic(
        id=d.id,
        subscription_id=d.subscription_id,
        alert_id=d.alert_id,
        event=d.event,
        status=d.status,
        attempts=d.attempts,
        response_code=d.response_code or None,
        error=d.error,
        created_at=rfc3339(d.created_at),
        next_attempt_at=rfc3339(d.next_attempt_at),
        finished_at=rfc3339(d.finished_at),
        payload=orjson.loads(d.payload),
    )


@router.get("")
def read_subscriptions(store: AlarmStoreDep) -> list[SubscriptionPublic]:
    return render_each(store.subscriptions(), _public, "subscription", lambda s: s.id)


@router.post("", status_code=status.HTTP_201_CREATED, responses=ADMIN_ONLY)
def create_subscription(body: SubscriptionCreate, store: AlarmStoreDep) -> SubscriptionPublic:
    """A ``webhook`` ``url`` gets a signed JSON POST when a selected alert fires or resolves;
    an ``alertmanager`` gets the alerts on its ``/api/v2/alerts``, firing ones re-sent every
    DRIFTLINE_ALERTMANAGER_RESEND_S, resolves with ``endsAt`` set."""
    subscription = Subscription(
        id=uuid.uuid4().hex[:16],
        url=body.url,
        secret=body.secret.get_secret_value() if body.secret else "",
        model=body.model,
        severities=tuple(dict.fromkeys(body.severities)),
        labels=dict(body.labels),
        description=body.description,
        created_at=time.time(),
        kind=body.kind,
    )
    store.put_subscription(subscription)
    return _public(subscription)


@router.get("/{subscription_id}", responses=NOT_FOUND)
def read_subscription(subscription_id: SubscriptionId, store: AlarmStoreDep) -> SubscriptionPublic:
    found = store.subscription(subscription_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no subscription {subscription_id!r}")
    return _public(found)


@router.delete(
    "/{subscription_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**ADMIN_ONLY, **NOT_FOUND},
)
def delete_subscription(subscription_id: SubscriptionId, store: AlarmStoreDep) -> Response:
    """Unsubscribe; deliveries still queued for it are cancelled. Its log stays readable."""
    if not store.delete_subscription(subscription_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no subscription {subscription_id!r}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{subscription_id}/deliveries", responses=NOT_FOUND)
def read_deliveries(
    subscription_id: SubscriptionId,
    store: AlarmStoreDep,
    status_: str | None = Query(
        None, alias="status", max_length=200, description=", ".join(DELIVERY_STATUSES)
    ),
    limit: int = Query(100, ge=1, le=10_000),
) -> list[DeliveryPublic]:
    """The delivery log, newest first: each notification, its attempts and outcome."""
    statuses = tuple(s for s in (status_ or "").split(",") if s)
    unknown = [s for s in statuses if s not in DELIVERY_STATUSES]
    if unknown:
        message = f"unknown status {unknown[0]!r}: use {', '.join(DELIVERY_STATUSES)}"
        raise invalid(("query", "status"), message, status_)
    found = store.deliveries(subscription_id, statuses=statuses, limit=limit)
    if not found and store.subscription(subscription_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no subscription {subscription_id!r}")
    return render_each(found, _delivery, "delivery", lambda d: d.id)
