"""Alarm rules: thresholds on window metrics, evaluated by the worker as windows are stored."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response, status

from alarms.payload import rfc3339
from alarms.rules import Rule
from api.alarm_schemas import RuleCreate, RulePublic
from api.auth import ADMIN_ONLY
from api.deps import AlarmStoreDep
from api.limits import ConfigBodyRoute
from api.rendering import render_each
from api.schemas import Responses, error
from driftline.store.alarms import RuleRecord

router = APIRouter(prefix="/v1/rules", tags=["rules"], route_class=ConfigBodyRoute)
RuleId = Annotated[str, Path(max_length=100)]
NOT_FOUND: Responses = {404: error("no rule with this id")}


def _rule(body: RuleCreate, rule_id: str, origin: str) -> Rule:
    return Rule(
        id=rule_id,
        name=body.name,
        metric=body.metric,
        comparison=body.comparison,
        threshold=body.threshold,
        model=body.model,
        feature=body.feature,
        segment="*" if body.version else body.segment,
        version=body.version,
        category=body.category,
        for_windows=body.for_windows,
        keep_firing_for=body.keep_firing_for,
        severity=body.severity,
        labels=dict(body.labels),
        actions=tuple(dict.fromkeys(body.actions)),
        description=body.description,
        enabled=body.enabled,
        origin=origin,
    )


def _public(record: RuleRecord) -> RulePublic:
    rule = record.rule
    return RulePublic.model_validate(
        {
            "id": rule.id,
            "name": rule.name,
            "metric": rule.metric,
            "model": rule.model,
            "feature": rule.feature,
            "segment": "*" if rule.version else rule.segment,
            "version": rule.version,
            "category": rule.category,
            "comparison": rule.comparison,
            "threshold": rule.threshold,
            "for": rule.for_windows,
            "keep_firing_for": rule.keep_firing_for,
            "severity": rule.severity,
            "labels": dict(rule.labels),
            "actions": list(rule.actions),
            "description": rule.description,
            "enabled": rule.enabled,
            "origin": rule.origin,
            # the default rules are seeded with no time of their own
            "created_at": rfc3339(record.created_at) if record.created_at else None,
            "updated_at": rfc3339(record.updated_at) if record.updated_at else None,
        }
    )


def _not_found(rule_id: str) -> HTTPException:
    return HTTPException(
        status.HTTP_404_NOT_FOUND, f"no rule {rule_id!r}: GET /v1/rules lists the rules"
    )


@router.get("")
def read_rules(
    store: AlarmStoreDep,
    metric: str | None = Query(None, max_length=200, description="only rules on this metric"),
) -> list[RulePublic]:
    """Every rule, default ones included (``origin: default``)."""
    chosen = [r for r in store.rules() if metric is None or r.rule.metric == metric]
    return render_each(chosen, _public, "rule", lambda r: r.rule.id)


@router.post("", status_code=status.HTTP_201_CREATED, responses=ADMIN_ONLY)
def create_rule(body: RuleCreate, store: AlarmStoreDep) -> RulePublic:
    """A new rule; the worker picks it up within ``DRIFTLINE_ALARM_REFRESH_S``."""
    return _public(store.put_rule(_rule(body, uuid.uuid4().hex[:16], "user")))


@router.get("/{rule_id}", responses=NOT_FOUND)
def read_rule(rule_id: RuleId, store: AlarmStoreDep) -> RulePublic:
    record = store.rule(rule_id)
    if record is None:
        raise _not_found(rule_id)
    return _public(record)


@router.put("/{rule_id}", responses={**ADMIN_ONLY, **NOT_FOUND})
def update_rule(rule_id: RuleId, body: RuleCreate, store: AlarmStoreDep) -> RulePublic:
    """Replace a rule. Its open alerts carry on under the new settings."""
    record = store.rule(rule_id)
    if record is None:
        raise _not_found(rule_id)
    rule = _rule(body, rule_id, record.rule.origin)
    return _public(store.put_rule(rule, created_at=record.created_at or None))


@router.delete(
    "/{rule_id}", status_code=status.HTTP_204_NO_CONTENT, responses={**ADMIN_ONLY, **NOT_FOUND}
)
def delete_rule(rule_id: RuleId, store: AlarmStoreDep) -> Response:
    """Delete a rule; its open alerts resolve at the model's next window."""
    if not store.delete_rule(rule_id):
        raise _not_found(rule_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
