"""Alarm rules: thresholds on window metrics, evaluated by the worker as windows are stored."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, HTTPException, Query, Response, status

from alarms.payload import rfc3339
from alarms.rules import Rule
from api.alarm_schemas import RuleCreate, RulePublic
from api.deps import AlarmStoreDep, ApiKeyDep
from api.limits import ConfigBodyRoute
from driftline.store.alarms import RuleRecord

router = APIRouter(prefix="/v1/rules", tags=["rules"], route_class=ConfigBodyRoute)


def _rule(body: RuleCreate, rule_id: str, origin: str) -> Rule:
    return Rule(
        id=rule_id,
        name=body.name,
        metric=body.metric,
        comparison=body.comparison,
        threshold=body.threshold,
        model=body.model,
        feature=body.feature,
        segment=body.segment,
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
            "segment": rule.segment,
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
    metric: str | None = Query(None, description="only rules on this metric"),
) -> list[RulePublic]:
    """Every rule, default ones included (``origin: default``)."""
    return [_public(r) for r in store.rules() if metric is None or r.rule.metric == metric]


@router.post("", status_code=status.HTTP_201_CREATED, dependencies=[ApiKeyDep])
def create_rule(body: RuleCreate, store: AlarmStoreDep) -> RulePublic:
    """A new rule; the worker picks it up within ``DRIFTLINE_ALARM_REFRESH_S``."""
    return _public(store.put_rule(_rule(body, uuid.uuid4().hex[:16], "user")))


@router.get("/{rule_id}")
def read_rule(rule_id: str, store: AlarmStoreDep) -> RulePublic:
    record = store.rule(rule_id)
    if record is None:
        raise _not_found(rule_id)
    return _public(record)


@router.put("/{rule_id}", dependencies=[ApiKeyDep])
def update_rule(rule_id: str, body: RuleCreate, store: AlarmStoreDep) -> RulePublic:
    """Replace a rule. Its open alerts carry on under the new settings."""
    record = store.rule(rule_id)
    if record is None:
        raise _not_found(rule_id)
    rule = _rule(body, rule_id, record.rule.origin)
    return _public(store.put_rule(rule, created_at=record.created_at or None))


@router.delete("/{rule_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[ApiKeyDep])
def delete_rule(rule_id: str, store: AlarmStoreDep) -> Response:
    """Delete a rule; its open alerts resolve at the model's next window."""
    if not store.delete_rule(rule_id):
        raise _not_found(rule_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
