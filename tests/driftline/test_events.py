from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from driftline.events import (
    EventLimits,
    Rejected,
    check_label_event,
    check_prediction_event,
    clean_custom_metrics,
    deadletter_record,
    decode_message,
    parse_timestamp,
)

LIMITS = EventLimits(max_message_bytes=10_000, max_features=5, max_string_length=8)


def event(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {"model": "fraud", "features": {"amount": 1.5}, "prediction": 0.9}
    base.update(overrides)
    return base


def test_valid_event_is_kept_and_ts_normalised() -> None:
    decoded = decode_message(orjson.dumps(event(ts="2026-11-21T12:00:00.500Z")), LIMITS)
    assert decoded.rejected == []
    assert decoded.events[0]["ts"] == pytest.approx(1_795_262_400.5)


def test_array_keeps_valid_events_and_rejects_each_bad_one_with_its_index() -> None:
    payload = [event(), {"features": {}}, event(prediction={"a": 1}), event(model="churn")]
    decoded = decode_message(orjson.dumps(payload), LIMITS)
    assert [e["model"] for e in decoded.events] == ["fraud", "churn"]
    assert [(r.index, r.model) for r in decoded.rejected] == [(1, None), (2, "fraud")]
    assert "'model' is required" in decoded.rejected[0].reason
    assert orjson.loads(decoded.rejected[1].raw) == payload[2]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"", "empty message"),
        (b"{nope", "not valid JSON"),
        (b"x" * 10_001, "over the limit"),
        (b"42", "must be a JSON object"),
    ],
)
def test_whole_message_rejections(value: bytes, reason: str) -> None:
    decoded = decode_message(value, LIMITS)
    assert decoded.events == []
    assert reason in decoded.rejected[0].reason
    assert decoded.rejected[0].raw == value


SCHEMA_VIOLATIONS = [
    (event(features=[1, 2]), "'features' must be an object"),
    (event(features={"a": [1]}), "feature 'a' is a list"),
    (event(features={"a": "123456789"}), "string of 9 characters"),
    (event(features={str(i): i for i in range(6)}), "6 features, over the limit of 5"),
    ({"model": "m", "features": {}}, "'prediction' is required"),
    (event(prediction=[]), "class probabilities"),
    (event(prediction=["a"]), "class probabilities"),
    (event(ts="yesterday"), "not an RFC 3339 timestamp"),
    (event(ts="2026-11-21T12:00:00"), "no time zone"),
    (event(latency_ms=-1), "non-negative"),
    (event(segment={"channel": 3}), "string -> string"),
    (event(id=7), "'id' must be a string"),
    (event(model=""), "'model' is required"),
    (event(model="a::b"), "reserved for pipeline stages"),
    (event(prediction={"a": 1}), "'prediction' must be"),
    (event(version=True), "'version' must be a string"),
    (event(stage=3), "'stage' must be a string"),
    (event(latency_ms=True), "non-negative"),
    (event(ts=True), "'ts' must be"),
    (event(segment={"channel": "123456789"}), "longer than 8"),
    (event(features={"a": None, "b": {"c": 1}}), "feature 'b' is a dict"),
]


@pytest.mark.parametrize(("bad", "reason"), SCHEMA_VIOLATIONS)
def test_schema_violations_have_actionable_reasons(bad: dict[str, object], reason: str) -> None:
    assert reason in (check_prediction_event(bad, LIMITS) or "")


@pytest.mark.parametrize(("bad", "reason"), SCHEMA_VIOLATIONS)
def test_a_bad_event_in_an_array_costs_only_itself(bad: dict[str, object], reason: str) -> None:
    """Arrays are checked whole in C first (msgspec); one bad event sends the message to the
    event-by-event path, which keeps the others and names the culprit."""
    decoded = decode_message(orjson.dumps([event(), bad, event(model="churn")]), LIMITS)
    assert [e["model"] for e in decoded.events] == ["fraud", "churn"]
    assert len(decoded.rejected) == 1 and decoded.rejected[0].index == 1
    assert reason in decoded.rejected[0].reason


def test_valid_arrays_decode_the_same_on_both_paths() -> None:
    payload = [
        event(),
        event(features={"n": 3, "f": 2.5, "s": "FR", "b": True, "z": None}, prediction=1),
        event(prediction=[0.25, 0.75], version=3, id="x", stage="asr", latency_ms=4),
        event(prediction="cat", segment={"channel": "web"}, ts="2026-11-21T12:00:00Z"),
        event(prediction=None, ts=1_795_262_400, version=None, id=None, segment=None),
        event(prediction=False, features={}, ts=1_795_262_400.25),
    ]
    fast = decode_message(orjson.dumps(payload), LIMITS)  # one valid array: the C path
    slow = [decode_message(orjson.dumps(e), LIMITS) for e in payload]  # objects: the Python one
    assert fast.rejected == [] and all(d.rejected == [] for d in slow)
    assert fast.events == [d.events[0] for d in slow]
    assert [type(v) for v in fast.events[1]["features"].values()] == [
        int, float, str, bool, type(None)
    ]  # fmt: skip
    assert fast.events[3]["ts"] == 1_795_262_400.0 and type(fast.events[4]["ts"]) is float


def test_fields_outside_the_schema_are_not_kept_on_either_path() -> None:
    extra = event(note={"free": "form"})
    for payload in ([extra], extra, [extra, {"bad": 1}]):  # C path, Python path, fallback
        assert decode_message(orjson.dumps(payload), LIMITS).events == [event()]


def test_nulls_and_all_scalar_types_are_valid() -> None:
    ok = event(
        features={"a": None, "b": True, "c": "x", "d": 3},
        prediction=[0.2, 0.8],
        ts=1_700_000_000,
        segment={"channel": "web"},
        stage="asr",
        version=3,
    )
    assert check_prediction_event(ok, LIMITS) is None
    assert check_prediction_event(event(prediction=None), LIMITS) is None


def test_label_events() -> None:
    assert check_label_event({"model": "m", "id": "1", "label": 1}, LIMITS) is None
    assert "'id' is required" in (check_label_event({"model": "m", "label": 1}, LIMITS) or "")
    assert "'label'" in (check_label_event({"model": "m", "id": "1"}, LIMITS) or "")
    decoded = decode_message(b'[{"model": "m", "id": "1", "label": "spam"}]', LIMITS, labels=True)
    assert decoded.events and not decoded.rejected


def test_parse_timestamp() -> None:
    assert parse_timestamp(None) is None
    assert parse_timestamp(12) == 12.0
    assert parse_timestamp("1970-01-01T00:00:10+00:00") == 10.0
    with pytest.raises(ValueError, match="epoch seconds"):
        parse_timestamp({"t": 1})


def test_deadletter_record_carries_reason_source_and_original_bytes() -> None:
    rejected = decode_message(b"\xff\xfe not utf-8", LIMITS).rejected[0]
    record = orjson.loads(deadletter_record(rejected, "driftline.predictions", 3, 41))
    assert record["topic"] == "driftline.predictions"
    assert (record["partition"], record["offset"], record["index"]) == (3, 41, None)
    assert "not valid JSON" in record["reason"]
    assert base64.b64decode(record["raw_base64"]) == b"\xff\xfe not utf-8"

    text = decode_message(b"{nope", LIMITS).rejected[0]
    assert orjson.loads(deadletter_record(text, "t", 0, 1))["raw"] == "{nope"


NOW = 1_795_262_400.0  # 2026-11-21T12:00:00Z


@pytest.mark.parametrize(
    ("ts", "why"),
    [
        ("9999-12-31T23:59:59Z", "outside what the store holds"),  # legal RFC 3339
        (1e300, "outside what the store holds"),  # overflowed the window arithmetic
        (-1.0, "outside what the store holds"),
        ("0001-01-01T00:00:00Z", "outside what the store holds"),
        (NOW + 2 * 86400, "in the future"),  # beyond max_future_s (a day)
        (NOW * 1000, "outside what the store holds"),  # milliseconds sent as seconds
        (NOW - 11 * 365 * 86400, "in the past"),  # beyond max_age_s (ten years)
    ],
)
def test_an_event_time_the_store_cannot_hold_is_rejected_on_both_paths(
    ts: object, why: str
) -> None:
    """Issue 13, point 1: such an event stopped storage for every model."""
    good, bad = event(ts=NOW - 5), event(ts=ts)
    single = decode_message(orjson.dumps(bad), LIMITS, now=NOW)
    assert single.events == [] and why in single.rejected[0].reason
    array = decode_message(orjson.dumps([good, bad, good]), LIMITS, now=NOW)  # the msgspec path
    assert len(array.events) == 2 and [r.index for r in array.rejected] == [1]
    assert why in array.rejected[0].reason


def test_a_broker_timestamp_stands_for_a_missing_ts_and_is_checked_too() -> None:
    value = orjson.dumps([event(), event()])
    assert len(decode_message(value, LIMITS, now=NOW, broker_ts=NOW - 1).events) == 2
    far = decode_message(value, LIMITS, now=NOW, broker_ts=NOW + 10 * 86400)
    assert far.events == [] and len(far.rejected) == 2
    assert "broker timestamp" in far.rejected[0].reason


def test_names_segments_and_classes_are_bounded() -> None:
    limits = EventLimits(max_name_length=8, max_segment_keys=2, max_classes=3)
    cases = {
        "'model' is longer": event(model="m" * 9),
        "feature name": event(features={"f" * 9: 1.0}),
        "'version' is longer": event(version="v" * 9),
        "'id' is longer": event(id="i" * 9),
        "'stage' is longer": event(stage="s" * 9),
        "3 keys": event(segment={"a": "1", "b": "2", "c": "3"}),
        "'segment' key": event(segment={"k" * 9: "1"}),
        "4 classes": event(prediction=[0.1, 0.2, 0.3, 0.4]),
    }
    for why, bad in cases.items():
        for value in (orjson.dumps(bad), orjson.dumps([bad])):  # object and array paths
            [rejected] = decode_message(value, limits).rejected
            assert why in rejected.reason, (why, rejected.reason)
    assert decode_message(orjson.dumps(event(version=12)), limits).events  # a number is fine


def test_a_huge_value_is_quoted_short_in_the_reason() -> None:
    [rejected] = decode_message(orjson.dumps(event(ts="x" * 9_000)), LIMITS).rejected
    assert "is not an RFC 3339 timestamp" in rejected.reason and len(rejected.reason) < 200


def test_an_oversize_message_makes_a_bounded_dead_letter_with_size_and_hash() -> None:
    """Issue 13, point 2: the dead letter of a 2 MB message carried it whole, over the
    producer's request size, and its send crashed the agent."""
    import hashlib

    from driftline.events import deadletter_max_bytes

    limits = EventLimits()
    value = orjson.dumps([event(features={"text": "é" * 1000})] * 1000)
    assert len(value) > 2_000_000
    [rejected] = decode_message(value, limits).rejected
    letter = deadletter_record(rejected, "driftline.predictions", 0, 7)
    assert len(letter) <= deadletter_max_bytes(limits) < 1_048_576
    record = orjson.loads(letter)
    assert record["raw_truncated"] is True and record["raw_bytes"] == len(value)
    assert record["raw_sha256"] == hashlib.sha256(value).hexdigest()
    assert value.decode().startswith(record["raw"])  # a cut character is dropped, not mangled
    small = orjson.loads(deadletter_record(decode_message(b"{no", limits).rejected[0], "t", 0, 0))
    assert (small["raw"], small["raw_truncated"], small["raw_bytes"]) == ("{no", False, 3)
    worst = Rejected("x" * 10_000, b"\x01" * 200_000, None, "m" * limits.max_name_length)
    assert len(deadletter_record(worst, "t", 0, 0)) <= deadletter_max_bytes(limits)


@pytest.mark.parametrize(
    ("metrics", "kept", "reason"),
    [
        (
            {"ctr": 1, "p95_ms": 12.5, "a.b-c_d": -3},
            {"ctr": 1, "p95_ms": 12.5, "a.b-c_d": -3},
            None,
        ),
        ({"ctr": None}, None, None),  # null: absent
        ({}, None, None),
        ({"ctr": True}, None, "custom metric 'ctr' is a bool; send 1 or 0"),
        ({"ctr": "1", "ok": 2}, {"ok": 2}, "custom metric 'ctr' is a str; use a number"),
        ({"ctr": [1]}, None, "custom metric 'ctr' is a list; use a number"),
        ({"ctr": float("inf")}, None, "custom metric 'ctr' must be a finite number"),
        ({"x" * 65: 1}, None, "custom metric name 'xxxxxxxx"),
        ({"has space": 1, "9lives": 1}, None, "custom metric name 'has space' is not a plain"),
        ([1, 2], None, "'metrics' must be an object of name -> number, got list"),
        ({f"m{i}": 1 for i in range(65)}, None, "'metrics' has 65 names, over the limit of 64"),
    ],
)
def test_bad_custom_metrics_are_dropped_and_the_rest_is_kept(
    metrics: Any, kept: dict[str, float] | None, reason: str | None
) -> None:
    event = {"model": "m", "features": {}, "prediction": 1, "metrics": metrics}
    assert check_prediction_event(event, EventLimits()) is None  # the event itself is fine
    said = clean_custom_metrics(event, EventLimits())
    assert event.get("metrics") == kept
    if reason is None:
        assert said is None
    else:
        assert said is not None and said.startswith(reason)
    if isinstance(metrics, dict) and len(metrics) == 2 and kept is None and reason:
        assert said is not None and said.endswith("(and 1 more dropped)")
