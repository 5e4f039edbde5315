"""What receivers get: the JSON document of an alert event, and its HMAC-SHA256 signature.

The signature header is ``X-Driftline-Signature: sha256=<hex>``, an HMAC-SHA256 of the exact
body bytes under the subscription's secret. A receiver checks it with::

    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    hmac.compare_digest(expected, request.headers["X-Driftline-Signature"])

>>> sign(b"s3cret", b'{"event":"firing"}')
'sha256=e6790fb030b2c20f60000fb00226f1322c48341e4cf3c26982f3d96e2f8d2656'
"""

from __future__ import annotations

import hashlib
import hmac
import math
from datetime import UTC, datetime
from typing import Any

from alarms.findings import findings_document
from alarms.state import Alert

SIGNATURE_HEADER = "X-Driftline-Signature"
DELIVERY_HEADER = "X-Driftline-Delivery"
EVENT_HEADER = "X-Driftline-Event"
PAYLOAD_VERSION = "1"


def sign(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def rfc3339(epoch: float | None) -> str | None:
    """UTC, with milliseconds only when there are any (window starts are whole seconds).

    >>> rfc3339(1700000000), rfc3339(1700000000.25)
    ('2023-11-14T22:13:20Z', '2023-11-14T22:13:20.250Z')
    """
    if epoch is None:
        return None
    spec = "seconds" if epoch == int(epoch) else "milliseconds"
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec=spec)[:-6] + "Z"


def alert_document(alert: Alert) -> dict[str, Any]:
    """An alert as JSON: the payload's ``alert`` and the API's alert body share this shape."""
    return {
        "id": alert.id,
        "state": str(alert.state),
        "rule_id": alert.rule_id,
        "rule_name": alert.rule_name,
        "model": alert.model,
        "feature": alert.feature,
        "segment": alert.segment,
        "metric": alert.metric,
        "comparison": str(alert.comparison),
        "threshold": alert.threshold,
        "value": alert.value if math.isfinite(alert.value) else None,
        "severity": alert.severity,
        "labels": dict(alert.labels),
        "actions": list(alert.actions),
        "description": alert.description,
        "active_since": rfc3339(alert.active_since),
        "last_window": rfc3339(alert.last_window),
        "fired_at": rfc3339(alert.fired_at),
        "resolved_at": rfc3339(alert.resolved_at),
        "findings": findings_document(alert.findings, alert.findings_note),
    }


def alert_event(alert: Alert, event: str, created_at: float, **extra: Any) -> dict[str, Any]:
    """One notification: ``event`` is ``firing`` or ``resolved``; ``extra`` adds fields.
    (Senders and readers of it use ``driftline.messages.AlertEvent``.)

    The body is built once and kept for every retry, so ``created_at`` is when the
    notification was made, not when an attempt went out.
    """
    return {
        "version": PAYLOAD_VERSION,
        "event": event,
        **extra,
        "created_at": rfc3339(created_at),
        "alert": alert_document(alert),
    }
