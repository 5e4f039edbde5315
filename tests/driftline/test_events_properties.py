"""Property-based tests of the event decoder (hypothesis): whatever bytes a message holds, the
decoder never raises, and every event in it is either kept or rejected with a reason, exactly
once; what it keeps is valid; and a dead letter can always be sent (its size is bounded)."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.events import (
    EventLimits,
    check_prediction_event,
    clean_custom_metrics,
    deadletter_max_bytes,
    deadletter_record,
    decode_message,
    time_reason,
)

NOW = 1_795_262_400.0
LIMITS = EventLimits(max_message_bytes=20_000, max_features=6, max_string_length=12,
                     max_name_length=10, max_segment_keys=2, max_classes=4,
                     max_custom_metrics=3, max_custom_metric_name_length=8)  # fmt: skip

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=16)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
short_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
near_now = st.floats(NOW - 86400, NOW + 3600)
timestamps = st.one_of(
    near_now,
    near_now,
    st.floats(NOW - 20 * 365 * 86400, NOW + 5 * 86400),
    st.floats(allow_nan=False, allow_infinity=False),
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    st.text(max_size=30),
)
names = st.text(max_size=10)
good_features = st.dictionaries(names, short_scalars, max_size=5)
# events that are valid or nearly: each field drawn mostly from good values, sometimes bad ones
events = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["fraud", "churn"]) | st.text(max_size=14),
        "features": st.one_of(good_features, good_features, good_features, json_values),
        "prediction": st.one_of(
            short_scalars, short_scalars, st.lists(st.floats(0, 1), max_size=6), json_values
        ),
    },
    optional={
        "ts": timestamps,
        "version": st.one_of(names, names, st.integers(0, 99), json_values),
        "id": st.one_of(names, names, json_values),
        "stage": st.one_of(names, st.none(), st.text(max_size=14)),
        "latency_ms": st.one_of(st.floats(0, 1e6), st.floats(-5, 1e6), json_values),
        "segment": st.one_of(
            st.dictionaries(names, st.text(max_size=14), max_size=3),
            st.dictionaries(names, st.text(max_size=12), max_size=2),
            json_values,
        ),
        "metrics": st.one_of(
            st.dictionaries(
                st.sampled_from(["ctr", "gpu_mem", "a.b-c", "_x"]) | st.text(max_size=10),
                st.none() | st.integers(-(2**63), 2**63 - 1) | st.floats() | scalars,
                max_size=4,
            ),
            json_values,
        ),
        "extra": json_values,
    },
)
items = events | json_values


def messages() -> st.SearchStrategy[bytes]:
    return st.one_of(
        events.map(orjson.dumps),
        st.lists(items, max_size=8).map(orjson.dumps),
        st.binary(max_size=64),
        st.lists(items, min_size=1, max_size=8)
        .map(orjson.dumps)
        .flatmap(lambda b: st.integers(1, len(b)).map(lambda n: b[:n])),  # cut short
    )


@settings(max_examples=500, deadline=None)
@given(value=messages(), broker_ts=st.none() | st.floats(NOW - 100, NOW + 3 * 86400))
def test_every_event_is_kept_or_rejected_exactly_once(
    value: bytes, broker_ts: float | None
) -> None:
    decoded = decode_message(value, LIMITS, now=NOW, broker_ts=broker_ts)
    try:
        payload: Any = orjson.loads(value) if value else None
        parsed = bool(value)
    except orjson.JSONDecodeError:
        parsed = False
    if parsed and type(payload) is list:
        # one outcome per element: kept ones in order, rejected ones by index
        assert len(decoded.events) + len(decoded.rejected) == len(payload)
        indices = [r.index for r in decoded.rejected]
        assert len(set(indices)) == len(indices) and all(i is not None for i in indices)
    else:
        assert len(decoded.events) + len(decoded.rejected) == 1
    for event in decoded.events:
        assert check_prediction_event(dict(event), LIMITS) is None
        assert clean_custom_metrics(dict(event), LIMITS) is None  # what is kept is clean
        assert event.get("metrics", {"ok": 1})  # never an empty or null object
        ts = event.get("ts")
        when = broker_ts if ts is None else ts
        assert when is None or time_reason(when, NOW, LIMITS) is None
    for rejected in decoded.rejected:
        assert rejected.reason
        record = deadletter_record(rejected, "driftline.predictions", 0, 0, 64)
        assert len(record) <= deadletter_max_bytes(LIMITS)
        assert orjson.loads(record)["reason"]
    # an event whose custom metrics were dropped is still kept: one of the kept, said once
    kept = len(decoded.events)
    assert len(decoded.dropped) <= kept
    assert all(d.dropped == "metrics" and d.reason for d in decoded.dropped)


@settings(max_examples=200, deadline=None)
@given(batch=st.lists(events, min_size=1, max_size=6))
def test_an_array_is_decoded_alike_on_the_fast_and_the_slow_path(batch: list[Any]) -> None:
    """The msgspec fast path takes an array only when every event is valid; then it must keep
    what the event-by-event path keeps."""
    fast = decode_message(orjson.dumps(batch), LIMITS, now=NOW)
    one_by_one = [decode_message(orjson.dumps(e), LIMITS, now=NOW) for e in batch]
    assert len(fast.rejected) == sum(len(d.rejected) for d in one_by_one)
    assert fast.events == [e for d in one_by_one for e in d.events]
    assert [d.reason for d in fast.dropped] == [r.reason for d in one_by_one for r in d.dropped]
