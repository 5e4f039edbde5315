from __future__ import annotations

import base64

import orjson
import pytest

from driftline.events import (
    EventLimits,
    check_label_event,
    check_prediction_event,
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
