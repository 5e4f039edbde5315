"""The control messages on Kafka: one class per topic, used by its producers and consumers.

* :class:`RetrainRequest` on ``driftline.retrain-jobs``: the API and the alarm service ask, the
  retrainer decides (``driftline/store/jobs.py``).
* :class:`ModelUpdate` on ``driftline.model-updates``: the retrainer and the API announce the
  version that serves a model now; serving code reloads it.
* :class:`AlertEvent` on ``driftline.alerts``: an alert firing or resolved, the same document
  a webhook subscriber receives.

Each is keyed by its model. ``from_bytes`` raises ValueError saying what is wrong, so a
consumer logs a bad message and skips it. Fields unknown to a class are ignored, so a field
added later (with a default) does not break consumers that predate it.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from alarms.findings import findings_of
from alarms.payload import PAYLOAD_VERSION, alert_event
from alarms.rules import Comparison
from alarms.state import Alert, AlertState

PROMOTED = "promoted"
ROLLED_BACK = "rolled_back"  # back to an older version
ALERT_EVENTS = ("firing", "resolved")


@dataclass(frozen=True)
class RetrainRequest:
    """A request for a retraining job: the message on ``driftline.retrain-jobs`` (key: the
    model). The job, or the refusal, is written under ``job_id`` once the retrainer decides.

    >>> request = RetrainRequest("r1", "fraud", "manual", 1_700_000_000.0)
    >>> RetrainRequest.from_bytes(request.to_bytes()) == request
    True
    >>> RetrainRequest.from_bytes(b'{"reason": "manual"}')
    Traceback (most recent call last):
    ...
    ValueError: a retrain request needs a "model" (a non-empty string)
    """

    job_id: str
    model: str
    reason: str  # "alert", "manual"; "external" for a tool's request that gives none
    requested_at: float
    alert_id: str = ""
    rule_id: str = ""

    @classmethod
    def new(
        cls, model: str, reason: str, *, alert_id: str = "", rule_id: str = ""
    ) -> RetrainRequest:
        return cls(uuid.uuid4().hex, model, reason, time.time(), alert_id, rule_id)

    @property
    def key(self) -> bytes:
        return self.model.encode()

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "job_id": self.job_id,
                "model": self.model,
                "reason": self.reason,
                "alert_id": self.alert_id,
                "rule_id": self.rule_id,
                "requested_at": self.requested_at,
            }
        )

    @classmethod
    def from_bytes(cls, value: bytes) -> RetrainRequest:
        """Raises ValueError saying what is wrong. Only ``model`` is required, so any Kafka
        client can ask; a request without ``job_id`` gets one (a replay of it after a crash
        may then be refused as a duplicate of itself)."""
        payload = _object(value, "a retrain request")
        model = _name(payload, "model", "a retrain request")
        job_id = payload.get("job_id") or uuid.uuid4().hex
        if not isinstance(job_id, str):
            raise ValueError('"job_id" must be a string')
        requested_at = _epoch(payload.get("requested_at", time.time()), "requested_at")
        return cls(
            job_id,
            model,
            str(payload.get("reason") or "external"),
            requested_at,
            str(payload.get("alert_id") or ""),
            str(payload.get("rule_id") or ""),
        )


@dataclass(frozen=True)
class ModelUpdate:
    """The version that serves a model now: the message on ``driftline.model-updates`` (key:
    the model). Serving code loads ``version`` from the registry when it hears one.

    >>> update = ModelUpdate("fraud", "2", PROMOTED, "job 7: better", 1_700_000_000.5, "1")
    >>> ModelUpdate.from_bytes(update.to_bytes()) == update
    True
    >>> ModelUpdate.from_bytes(b'{"model": "fraud", "version": 2, "event": "promoted"}')
    Traceback (most recent call last):
    ...
    ValueError: a model update needs a "version" (a non-empty string)
    """

    model: str
    version: str
    event: str  # PROMOTED or ROLLED_BACK; a newer sender may send others
    reason: str
    at: float  # when it was announced (epoch s)
    previous_version: str | None = None  # the version it replaces (None: the first one)
    # a deployment's traffic split to apply now: version -> share (%), the candidate first
    # (None: all traffic to ``version``)
    split: Mapping[str, float] | None = None

    @property
    def key(self) -> bytes:
        return self.model.encode()

    def to_bytes(self) -> bytes:
        body: dict[str, Any] = {
            "model": self.model,
            "version": self.version,
            "previous_version": self.previous_version,
            "event": self.event,
            "reason": self.reason,
            "at": self.at,
        }
        if self.split is not None:
            body["split"] = dict(self.split)
        return orjson.dumps(body)

    @classmethod
    def from_bytes(cls, value: bytes) -> ModelUpdate:
        """Raises ValueError saying what is wrong."""
        what = "a model update"
        payload = _object(value, what)
        previous = payload.get("previous_version")
        if previous is not None and (not isinstance(previous, str) or not previous):
            raise ValueError('"previous_version" must be a non-empty string or null')
        split = payload.get("split")
        if split is not None and not (
            isinstance(split, dict)
            and all(isinstance(v, str) and type(s) in (int, float) and 0 <= s <= 100
                    for v, s in split.items())
        ):  # fmt: skip
            raise ValueError('"split" must be an object of version -> share in [0, 100], or null')
        return cls(
            model=_name(payload, "model", what),
            version=_name(payload, "version", what),
            event=_name(payload, "event", what),
            reason=_text(payload, "reason"),
            at=_epoch(payload.get("at"), "at"),
            previous_version=previous,
            split=None if split is None else {v: float(s) for v, s in split.items()},
        )


@dataclass(frozen=True)
class AlertEvent:
    """An alert firing or resolved: the message on ``driftline.alerts`` (key: the model), and
    the body of a webhook notification, which also says who it is for.

    The document is ``alarms.payload.alert_event``'s. Times go as RFC 3339 text, to the
    millisecond; of the alert, the fields of its public document go (``alert_document``): a
    decoded alert has the defaults for the others (``breaches``, ``clears``, ``notified_at``,
    ``updated_at``).

    >>> from alarms.rules import Comparison
    >>> alert = Alert("a1", "r1", "AgeMissing", "fraud", "age", "", "input.missing_rate",
    ...               Comparison.GT, 0.1, "warning", AlertState.FIRING, 0.5, 1_700_000_000,
    ...               1_700_000_010, fired_at=1_700_000_020.25)
    >>> event = AlertEvent(alert, "firing", 1_700_000_020.25)
    >>> AlertEvent.from_bytes(event.to_bytes()) == event
    True
    >>> AlertEvent.from_bytes(b'{"version": "1", "event": "fired", "alert": {}}')
    Traceback (most recent call last):
    ...
    ValueError: an alert event's "event" must be one of firing, resolved (got 'fired')
    """

    alert: Alert
    event: str  # "firing" or "resolved"
    created_at: float  # when the notification was made, not when an attempt went out
    # a webhook notification's own fields (None: not sent, as on the topic)
    repeat: bool | None = None
    delivery_id: str | None = None
    subscription_id: str | None = None

    @property
    def key(self) -> bytes:
        return self.alert.model.encode()

    def to_bytes(self) -> bytes:
        extra = {
            name: value
            for name, value in (
                ("repeat", self.repeat),
                ("delivery_id", self.delivery_id),
                ("subscription_id", self.subscription_id),
            )
            if value is not None
        }
        return orjson.dumps(alert_event(self.alert, self.event, self.created_at, **extra))

    @classmethod
    def from_bytes(cls, value: bytes) -> AlertEvent:
        """Raises ValueError saying what is wrong."""
        payload = _object(value, "an alert event")
        if payload.get("version") != PAYLOAD_VERSION:
            raise ValueError(
                f'an alert event\'s "version" must be {PAYLOAD_VERSION!r} (got '
                f"{payload.get('version')!r}): a newer Driftline sent it"
            )
        event = payload.get("event")
        if event not in ALERT_EVENTS:
            raise ValueError(
                f'an alert event\'s "event" must be one of {", ".join(ALERT_EVENTS)} '
                f"(got {event!r})"
            )
        repeat = payload.get("repeat")
        if repeat is not None and not isinstance(repeat, bool):
            raise ValueError('"repeat" must be true, false or absent')
        document = payload.get("alert")
        if not isinstance(document, Mapping):
            raise ValueError('an alert event needs an "alert" (a JSON object)')
        return cls(
            _alert(document),
            str(event),
            _instant(payload.get("created_at"), "created_at"),
            repeat,
            _optional_text(payload, "delivery_id"),
            _optional_text(payload, "subscription_id"),
        )


def _alert(document: Mapping[str, Any]) -> Alert:
    """An alert from its public document (``alarms.payload.alert_document``)."""
    what = 'an alert event\'s "alert"'
    state, comparison = document.get("state"), document.get("comparison")
    if state not in tuple(AlertState):
        raise ValueError(f'{what}: "state" must be one of {", ".join(AlertState)} (got {state!r})')
    if comparison not in tuple(Comparison):
        raise ValueError(
            f'{what}: "comparison" must be one of {", ".join(Comparison)} (got {comparison!r})'
        )
    labels = document.get("labels") or {}
    if not isinstance(labels, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise ValueError('"labels" must be an object of strings')
    actions = document.get("actions") or []
    if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
        raise ValueError('"actions" must be a list of strings')
    value = document.get("value")
    fired_at, resolved_at = document.get("fired_at"), document.get("resolved_at")
    findings, findings_note = findings_of(document.get("findings"))
    return Alert(
        id=_name(document, "id", what),
        rule_id=_text(document, "rule_id"),
        rule_name=_text(document, "rule_name"),
        model=_name(document, "model", what),
        feature=_text(document, "feature"),
        segment=_text(document, "segment"),
        metric=_name(document, "metric", what),
        comparison=Comparison(comparison),
        threshold=_number(document.get("threshold"), "threshold"),
        severity=_text(document, "severity"),
        state=AlertState(state),
        value=math.nan if value is None else _number(value, "value"),  # None: not finite
        active_since=int(_instant(document.get("active_since"), "active_since")),
        last_window=int(_instant(document.get("last_window"), "last_window")),
        labels=dict(labels),
        actions=tuple(actions),
        description=_text(document, "description"),
        fired_at=None if fired_at is None else _instant(fired_at, "fired_at"),
        resolved_at=None if resolved_at is None else _instant(resolved_at, "resolved_at"),
        findings=findings,
        findings_note=findings_note,
    )


# -- field readers: each raises ValueError naming the field ---------------------------------
def _object(value: bytes | None, what: str) -> Mapping[str, Any]:
    if not value:  # a tombstone (null value) or an empty message
        raise ValueError(f"{what} must be a JSON object (the message is empty)")
    payload = orjson.loads(value)  # orjson.JSONDecodeError is a ValueError
    if not isinstance(payload, Mapping):
        raise ValueError(f"{what} must be a JSON object")
    return payload


def _name(payload: Mapping[str, Any], field: str, what: str) -> str:
    value = payload.get(field)
    if not isinstance(value, str) or not value:
        raise ValueError(f'{what} needs a "{field}" (a non-empty string)')
    return value


def _text(payload: Mapping[str, Any], field: str) -> str:
    """A string field; empty when absent or null."""
    return _optional_text(payload, field) or ""


def _optional_text(payload: Mapping[str, Any], field: str) -> str | None:
    value = payload.get(field)
    if value is not None and not isinstance(value, str):
        raise ValueError(f'"{field}" must be a string')
    return value


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f'"{field}" must be a number')
    if not math.isfinite(value):
        raise ValueError(f'"{field}" must be finite')
    return float(value)


def _epoch(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f'"{field}" must be a number (epoch seconds)')
    return _number(value, field)  # finite


def _instant(value: Any, field: str) -> float:
    """Epoch seconds from RFC 3339 text (``alarms.payload.rfc3339``)."""
    if not isinstance(value, str):
        raise ValueError(f'"{field}" must be an RFC 3339 time, e.g. "2023-11-14T22:13:20Z"')
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f'"{field}" is not an RFC 3339 time: {value!r}') from None
    if parsed.tzinfo is None:
        raise ValueError(f'"{field}" needs a time zone (e.g. "Z"): {value!r}')
    return parsed.timestamp()
