"""The control messages on Kafka: each round-trips, says what is wrong with bad input, and
ignores fields it does not know (so fields added later do not break older consumers)."""

from __future__ import annotations

import doctest
import math
import re
from dataclasses import replace
from typing import Any

import orjson
import pytest

from alarms.payload import alert_event
from alarms.rules import Comparison
from alarms.state import Alert, AlertState
from driftline.messages import PROMOTED, ROLLED_BACK, AlertEvent, ModelUpdate, RetrainRequest

ALERT = Alert(
    "a1", "r1", "AgeMissing", "fraud", "age", "channel=web", "input.missing_rate",
    Comparison.GT, 0.1, "warning", AlertState.FIRING, 0.5, 1_700_000_000, 1_700_000_010,
    labels={"team": "risk"}, actions=("notify", "retrain"), description="ages go missing",
    fired_at=1_700_000_020.25,
)  # fmt: skip
UPDATE = ModelUpdate("fraud", "2", PROMOTED, "job 7: better", 1_700_000_000.5, "1")
REQUEST = RetrainRequest("j1", "fraud", "alert", 1_700_000_000.0, "a1", "r1")


def edited(message: bytes, **changes: Any) -> bytes:
    """``message`` with fields changed (a value of ``...``: the field removed)."""
    payload = orjson.loads(message)
    payload.update(changes)
    return orjson.dumps({k: v for k, v in payload.items() if v is not ...})


def test_a_retrain_request_round_trips_and_a_bare_one_is_completed() -> None:
    assert RetrainRequest.from_bytes(REQUEST.to_bytes()) == REQUEST
    assert REQUEST.key == b"fraud"
    bare = RetrainRequest.from_bytes(b'{"model": "fraud"}')
    assert bare.reason == "external" and bare.job_id and math.isfinite(bare.requested_at)


def test_a_model_update_round_trips_with_the_fields_sent_today() -> None:
    assert ModelUpdate.from_bytes(UPDATE.to_bytes()) == UPDATE
    assert UPDATE.key == b"fraud"
    assert orjson.loads(UPDATE.to_bytes()) == {
        "model": "fraud",
        "version": "2",
        "previous_version": "1",
        "event": "promoted",
        "reason": "job 7: better",
        "at": 1_700_000_000.5,
    }
    first = replace(UPDATE, version="1", event=ROLLED_BACK, previous_version=None)
    assert ModelUpdate.from_bytes(first.to_bytes()) == first


def test_an_alert_event_round_trips_as_on_the_topic_and_as_a_webhook_body() -> None:
    on_topic = AlertEvent(ALERT, "firing", 1_700_000_021.5)
    assert on_topic.to_bytes() == orjson.dumps(alert_event(ALERT, "firing", 1_700_000_021.5))
    assert AlertEvent.from_bytes(on_topic.to_bytes()) == on_topic
    assert on_topic.key == b"fraud"
    webhook = replace(on_topic, repeat=True, delivery_id="d1", subscription_id="hook")
    body = orjson.loads(webhook.to_bytes())
    assert (body["repeat"], body["delivery_id"], body["subscription_id"]) == (True, "d1", "hook")
    assert AlertEvent.from_bytes(webhook.to_bytes()) == webhook


def test_a_decoded_alert_keeps_its_document_and_defaults_the_rest() -> None:
    resolved = replace(
        ALERT, state=AlertState.RESOLVED, value=math.nan, resolved_at=1_700_000_030.0,
        breaches=3, notified_at=1_700_000_020.25, updated_at=1_700_000_030.0,
    )  # fmt: skip
    decoded = AlertEvent.from_bytes(AlertEvent(resolved, "resolved", 1_700_000_030.0).to_bytes())
    assert math.isnan(decoded.alert.value)  # not finite: null on the wire
    assert (decoded.alert.breaches, decoded.alert.notified_at, decoded.alert.updated_at) == (
        0, None, 0.0,
    )  # fmt: skip
    assert replace(decoded.alert, value=0.0) == replace(
        resolved, value=0.0, breaches=0, notified_at=None, updated_at=0.0
    )


@pytest.mark.parametrize(
    ("decode", "message"),
    [
        (RetrainRequest, REQUEST.to_bytes()),
        (ModelUpdate, UPDATE.to_bytes()),
        (AlertEvent, AlertEvent(ALERT, "firing", 0).to_bytes()),
    ],
)
def test_fields_a_newer_sender_adds_are_ignored(
    decode: type[RetrainRequest | ModelUpdate | AlertEvent], message: bytes
) -> None:
    newer = edited(message, traffic_split={"2": 0.1, "1": 0.9})
    assert decode.from_bytes(newer) == decode.from_bytes(message)


BAD_REQUESTS = [
    (b"", "the message is empty"),
    (b"{not json", "unexpected character"),
    (b"[]", "must be a JSON object"),
    (b'{"model": ""}', 'needs a "model"'),
    (b'{"model": "m", "job_id": 7}', '"job_id" must be a string'),
    (b'{"model": "m", "requested_at": "yesterday"}', '"requested_at" must be a number'),
    (b'{"model": "m", "requested_at": true}', '"requested_at" must be a number'),
]
BAD_UPDATES = [
    (edited(UPDATE.to_bytes(), model=...), 'needs a "model"'),
    (edited(UPDATE.to_bytes(), version=2), 'needs a "version"'),
    (edited(UPDATE.to_bytes(), event=""), 'needs a "event"'),
    (edited(UPDATE.to_bytes(), previous_version=1), '"previous_version" must be'),
    (edited(UPDATE.to_bytes(), reason=["x"]), '"reason" must be a string'),
    (edited(UPDATE.to_bytes(), at=...), '"at" must be a number'),
    (b"null", "must be a JSON object"),
]
GOOD_ALERT = AlertEvent(ALERT, "firing", 1_700_000_021.0).to_bytes()


def alert_edited(**changes: Any) -> bytes:
    payload = orjson.loads(GOOD_ALERT)
    payload["alert"] = orjson.loads(edited(orjson.dumps(payload["alert"]), **changes))
    return orjson.dumps(payload)


BAD_ALERTS = [
    (edited(GOOD_ALERT, version="2"), "\"version\" must be '1'"),
    (edited(GOOD_ALERT, event="fired"), '"event" must be one of firing, resolved'),
    (edited(GOOD_ALERT, alert=...), 'needs an "alert"'),
    (edited(GOOD_ALERT, repeat="yes"), '"repeat" must be'),
    (edited(GOOD_ALERT, created_at=1_700_000_021), '"created_at" must be an RFC 3339 time'),
    (edited(GOOD_ALERT, created_at="soon"), '"created_at" is not an RFC 3339 time'),
    (edited(GOOD_ALERT, created_at="2023-11-14T22:13:20"), "needs a time zone"),
    (alert_edited(state="open"), '"state" must be one of pending'),
    (alert_edited(comparison="=="), '"comparison" must be one of >'),
    (alert_edited(id=...), 'needs a "id"'),
    (alert_edited(threshold="0.1"), '"threshold" must be a number'),
    (alert_edited(value=True), '"value" must be a number'),
    (alert_edited(labels={"team": 1}), '"labels" must be an object of strings'),
    (alert_edited(actions="notify"), '"actions" must be a list of strings'),
    (alert_edited(last_window=...), '"last_window" must be an RFC 3339 time'),
]


@pytest.mark.parametrize(
    ("decode", "message", "why"),
    [(RetrainRequest, m, w) for m, w in BAD_REQUESTS]
    + [(ModelUpdate, m, w) for m, w in BAD_UPDATES]
    + [(AlertEvent, m, w) for m, w in BAD_ALERTS],
)
def test_bad_input_is_a_value_error_that_says_what_is_wrong(
    decode: type[RetrainRequest | ModelUpdate | AlertEvent], message: bytes, why: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(why)):
        decode.from_bytes(message)


@pytest.mark.parametrize("decode", [RetrainRequest, ModelUpdate, AlertEvent])
def test_a_tombstone_is_a_value_error_not_a_crash(
    decode: type[RetrainRequest | ModelUpdate | AlertEvent],
) -> None:
    """Kafka hands a null value as None: consumers skip ValueErrors, anything else looked
    like a store outage to the retrainer, which read the same message again forever."""
    with pytest.raises(ValueError, match="the message is empty"):
        decode.from_bytes(None)  # type: ignore[arg-type]


def test_the_examples_in_the_docstrings_hold() -> None:
    """``driftline/`` is not collected for doctests (``testpaths``): run its examples here."""
    import driftline.messages

    assert doctest.testmod(driftline.messages).failed == 0
