"""What an ``alertmanager`` subscription sends: alerts as Prometheus posts them to
Alertmanager's ``/api/v2/alerts``.

Each alert is one object of the JSON array: ``labels`` (its identity: Alertmanager groups,
silences and inhibits on them), ``annotations`` (text that may change between sends),
``startsAt``, ``endsAt`` and ``generatorURL``. A firing alert's ``endsAt`` lies a few re-send
intervals ahead, so Alertmanager resolves it by itself if Driftline stops sending; a resolve
is the same labels with ``endsAt`` set to when it resolved.

>>> from alarms.rules import Comparison
>>> from alarms.state import AlertState
>>> alert = Alert("a1", "r1", "AgeMissing", "fraud::canary", "age", "", "input.missing_rate",
...               Comparison.GT, 0.1, "warning", AlertState.FIRING, 0.5, 1_700_000_000,
...               1_700_000_010, fired_at=1_700_000_020,
...               labels={"alertname": "AgeMissing", "model": "fraud::canary", "team-x": "ml"})
>>> doc = alertmanager_alert(alert, ends_at=1_700_000_200, dashboard_url="http://dl:8000/")
>>> doc["labels"]["model"], doc["labels"]["stage"], doc["labels"]["team_x"]
('fraud', 'canary', 'ml')
>>> doc["startsAt"], doc["endsAt"], doc["generatorURL"]
('2023-11-14T22:13:40Z', '2023-11-14T22:16:40Z', 'http://dl:8000/#/models/fraud')
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from alarms.findings import describe
from alarms.payload import rfc3339
from alarms.state import Alert

UNIT_SEPARATOR = "::"  # a model's stage unit, as driftline.units names it
MAX_LABELS = 50  # the rule's own labels beyond the identity ones (as api/alarm_schemas bounds them)
MAX_LABEL_VALUE = 1024
_INVALID = re.compile(r"[^a-zA-Z0-9_]")
_UNRESERVED = re.compile(r"[^A-Za-z0-9._~-]")


def _quote(text: str) -> str:
    """Percent-encoding of a URL fragment part (urllib is I/O's side of the stdlib here).

    >>> _quote("fraud v2/ü")
    'fraud%20v2%2F%C3%BC'
    """
    return _UNRESERVED.sub(lambda m: "".join(f"%{b:02X}" for b in m[0].encode()), text)


IDENTITY = ("alertname", "model", "stage", "severity", "rule_id", "feature", "segment", "metric")


def label_name(key: str) -> str:
    """A valid Prometheus label name (``[a-zA-Z_][a-zA-Z0-9_]*``) for a rule's label key.

    >>> label_name("team-x"), label_name("9lives"), label_name("")
    ('team_x', '_9lives', '_')
    """
    name = _INVALID.sub("_", key)
    return name if name and not name[0].isdigit() else "_" + name


def alertmanager_labels(alert: Alert) -> dict[str, str]:
    """The rule's labels (names made valid; identity names win), then the alert's identity;
    empty values are left out (Alertmanager treats an empty label as an absent one)."""
    model, _, stage = alert.model.partition(UNIT_SEPARATOR)
    identity = {
        "alertname": alert.rule_name,
        "model": model,
        "stage": stage,
        "severity": alert.severity,
        "rule_id": alert.rule_id,
        "feature": alert.feature,
        "segment": alert.segment,
        "metric": alert.metric,
    }
    labels: dict[str, str] = {}
    for key, value in sorted(_own_labels(alert.labels).items())[:MAX_LABELS]:
        labels.setdefault(label_name(key), str(value)[:MAX_LABEL_VALUE])
    labels.update(identity)
    return {k: v for k, v in labels.items() if v}


def _own_labels(labels: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if k not in IDENTITY}


def alertmanager_alert(alert: Alert, *, ends_at: float, dashboard_url: str) -> dict[str, Any]:
    """One alert as Alertmanager takes it; ``ends_at``: the resolve time, or for a firing
    alert when Alertmanager should consider it resolved if no re-send comes."""
    model = alert.model.partition(UNIT_SEPARATOR)[0]
    value = f"{alert.value:.6g}" if math.isfinite(alert.value) else ""
    where = "".join(
        f" {name}={v!r}"
        for name, v in (("feature", alert.feature), ("segment", alert.segment))
        if v
    )
    annotations = {
        "summary": f"{alert.rule_name} on {alert.model}{where}",
        "description": alert.description
        or f"{alert.metric} = {value or 'n/a'} {alert.comparison} {alert.threshold:g}",
        "value": value,
        "threshold": f"{alert.threshold:g}",
        "alert_id": alert.id,
        # where the trouble is: the top slice the alert found when it fired
        "top_slice": describe(alert.findings[0]) if alert.findings else "",
    }
    starts = alert.fired_at if alert.fired_at is not None else alert.updated_at
    return {
        "labels": alertmanager_labels(alert),
        "annotations": {k: v for k, v in annotations.items() if v},
        "startsAt": rfc3339(starts),
        "endsAt": rfc3339(ends_at),
        "generatorURL": f"{dashboard_url.rstrip('/')}/#/models/{_quote(model)}",
    }
