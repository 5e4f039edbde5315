"""Decoding Kafka message values against the event contract, and dead-letter records.

A message value is one event object or a JSON array of them. Each invalid element becomes a
:class:`Rejected` carrying its bytes and a reason a person can act on; valid events in the same
array are kept. The checks themselves are the SDK's (``driftline_sdk.contract``), so a service
and the platform refuse the same events with the same reasons. Nothing here does I/O: the
worker and the HTTP ingest share it.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import typing
from dataclasses import dataclass, field
from typing import Any

import msgspec
import orjson
from driftline_sdk.contract import (
    DEADLETTER_RAW_BYTES,
    STORE_MAX_TS,
    STORE_MIN_TS,
    EventLimits,
    check_label_event,
    check_prediction_event,
    clean_custom_metrics,
    parse_timestamp,
    time_reason,
)

__all__ = [  # the contract's names, for the platform's modules that import them from here
    "DEADLETTER_RAW_BYTES",
    "STORE_MAX_TS",
    "STORE_MIN_TS",
    "DeadLetter",
    "Decoded",
    "EventLimits",
    "Rejected",
    "check_label_event",
    "check_prediction_event",
    "clean_custom_metrics",
    "deadletter_max_bytes",
    "deadletter_record",
    "decode_message",
    "model_of",
    "parse_timestamp",
    "time_reason",
]


@dataclass(frozen=True, slots=True)
class Rejected:
    """One event (or a whole message) that broke the contract."""

    reason: str
    raw: bytes
    index: int | None = None  # position inside an array message; None: the whole message
    model: str | None = None
    # set when the event itself was kept and only this field of it was dropped ("metrics")
    dropped: str | None = None


@dataclass(slots=True)
class Decoded:
    """Valid events (``ts`` normalised to epoch seconds or None) and what was rejected."""

    events: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    # kept events whose bad custom metrics were dropped: the original event and the reason
    dropped: list[Rejected] = field(default_factory=list)


@functools.lru_cache(maxsize=8)
def _array_decoder(limits: EventLimits) -> msgspec.json.Decoder[Any]:
    """A decoder that checks a whole array of prediction events against the schema in C, as
    it parses (msgspec). Fields outside the schema are not kept. It is the fast path only: on
    any failure the message is decoded and checked event by event (below), so reasons and
    partial acceptance are the same whichever path ran."""
    t: Any = typing  # the types are built at run time, from the limits
    meta = msgspec.Meta
    text = t.Annotated[str, meta(max_length=limits.max_string_length)]
    name = t.Annotated[str, meta(max_length=limits.max_name_length)]
    number = t.Union[int, float]
    probabilities = t.Annotated[t.List[number], meta(min_length=1, max_length=limits.max_classes)]
    event = t.TypedDict(
        "PredictionEvent",
        {
            "model": t.Annotated[str, meta(min_length=1, max_length=limits.max_name_length)],
            # feature names are checked after decoding, once per distinct name (a key
            # constraint here costs a check per key per event)
            "features": t.Annotated[
                t.Dict[str, t.Union[int, float, text, bool, None]],
                meta(max_length=limits.max_features),
            ],
            "prediction": t.Union[int, float, text, bool, None, probabilities],
            "version": t.NotRequired[t.Union[name, int, None]],
            "id": t.NotRequired[t.Optional[name]],
            "stage": t.NotRequired[t.Optional[name]],
            "latency_ms": t.NotRequired[t.Optional[t.Annotated[float, meta(ge=0)]]],
            "segment": t.NotRequired[
                t.Optional[
                    t.Annotated[t.Dict[name, text], meta(max_length=limits.max_segment_keys)]
                ]
            ],
            "ts": t.NotRequired[t.Union[float, str, None]],
            "shadow": t.NotRequired[t.Optional[bool]],
            "decided_by": t.NotRequired[t.Optional[t.Literal["model", "human"]]],
            # names are checked after decoding; bad ones send the message down the slow path
            "metrics": t.NotRequired[
                t.Optional[
                    t.Annotated[
                        t.Dict[str, t.Union[int, float, None]],
                        meta(max_length=limits.max_custom_metrics),
                    ]
                ]
            ],
        },
    )
    return msgspec.json.Decoder(t.List[event])


def _decode_valid_array(
    value: bytes, limits: EventLimits, clock: _Clock | None
) -> list[dict[str, Any]] | None:
    """Every event of an array message when all are valid (``ts`` normalised), else None."""
    try:
        events: list[dict[str, Any]] = _array_decoder(limits).decode(value)
    except msgspec.MsgspecError:
        return None
    names = set().union(*[event["features"] for event in events])
    if names and max(map(len, names)) > limits.max_name_length:
        return None
    for event in events:
        if "::" in event["model"]:
            return None
        segment = event.get("segment")
        if segment and any(k[:1] == "@" for k in segment):
            return None  # a reserved key: the slow path says why
        if "metrics" in event and clean_custom_metrics(event, limits) is not None:
            return None  # the slow path keeps the event and says what was dropped
        ts = event.get("ts")
        if type(ts) is str:
            try:
                event["ts"] = parse_timestamp(ts)
            except ValueError:
                return None
        if clock is not None and clock.reason(event, limits) is not None:
            return None
    return events


@dataclass(frozen=True, slots=True)
class _Clock:
    """When a message was received, and the broker's timestamp for events without ``ts``."""

    now: float
    broker_ts: float | None

    def reason(self, event: dict[str, Any], limits: EventLimits) -> str | None:
        ts = event.get("ts")
        if ts is not None:
            return time_reason(ts, self.now, limits)
        if self.broker_ts is None:
            return None
        return time_reason(self.broker_ts, self.now, limits, "no 'ts', and the broker timestamp")


def decode_message(
    value: bytes | None,
    limits: EventLimits,
    *,
    labels: bool = False,
    now: float | None = None,
    broker_ts: float | None = None,
) -> Decoded:
    """Decode one Kafka message value into valid events and rejected ones.

    With ``now`` (when the message was received), an event whose time (its ``ts``, else
    ``broker_ts``) is outside what the store holds or :func:`time_reason`'s plausible range is
    rejected: it could not be put in a window.
    """
    clock = None if now is None else _Clock(now, broker_ts)
    out = Decoded()
    if not value:
        out.rejected.append(Rejected("empty message: expected a JSON event or array", b""))
        return out
    if len(value) > limits.max_message_bytes:
        out.rejected.append(
            Rejected(
                f"message is {len(value)} bytes, over the limit of {limits.max_message_bytes}; "
                "send smaller arrays",
                value,
            )
        )
        return out
    if not labels and value[:1] == b"[":
        events = _decode_valid_array(value, limits, clock)
        if events is not None:
            out.events = events
            return out
    try:
        payload = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        out.rejected.append(Rejected(f"not valid JSON: {exc}", value))
        return out
    check = check_label_event if labels else check_prediction_event
    trim = _no_trim if labels else _schema_fields
    if type(payload) is list:
        keep = out.events.append
        for index, event in enumerate(payload):
            reason = check(event, limits)
            if reason is None and clock is not None:
                reason = clock.reason(event, limits)
            if reason is None:
                _clean(event, limits, out, index)
                keep(trim(event))
            else:
                model = model_of(event, limits)
                out.rejected.append(Rejected(reason, orjson.dumps(event), index, model))
        return out
    reason = check(payload, limits)
    if reason is None and clock is not None:
        reason = clock.reason(payload, limits)
    if reason is None:
        _clean(payload, limits, out, None)
        out.events.append(trim(payload))
    else:
        out.rejected.append(Rejected(reason, value, None, model_of(payload, limits)))
    return out


def _clean(event: dict[str, Any], limits: EventLimits, out: Decoded, index: int | None) -> None:
    """Drop an event's bad custom metrics (the event is kept), recording what and why."""
    if "metrics" not in event:
        return
    sent = event["metrics"]  # replaced, never changed, by the clean-up
    reason = clean_custom_metrics(event, limits)
    if reason is not None:
        original = orjson.dumps({**event, "metrics": sent})
        out.dropped.append(Rejected(reason, original, index, model_of(event, limits), "metrics"))


_PREDICTION_FIELDS = frozenset(
    {
        "model",
        "features",
        "prediction",
        "version",
        "id",
        "stage",
        "latency_ms",
        "segment",
        "ts",
        "metrics",
        "shadow",
        "decided_by",
    }
)


def _schema_fields(event: dict[str, Any]) -> dict[str, Any]:
    """The event without fields outside the schema, as the array fast path decodes it."""
    if event.keys() <= _PREDICTION_FIELDS:
        return event
    return {k: v for k, v in event.items() if k in _PREDICTION_FIELDS}


def _no_trim(event: dict[str, Any]) -> dict[str, Any]:
    return event


def model_of(event: Any, limits: EventLimits) -> str | None:
    """The model an invalid event names, when that name is valid (for its dead letter's key
    and the model's ``traffic.invalid``)."""
    if type(event) is not dict:
        return None
    model = event.get("model")
    if type(model) is str and 0 < len(model) <= limits.max_name_length and "::" not in model:
        return model
    return None


MAX_REASON_CHARS = 1000


def deadletter_record(
    rejected: Rejected,
    topic: str,
    partition: int,
    offset: int,
    max_raw_bytes: int = DEADLETTER_RAW_BYTES,
) -> bytes:
    """The dead-letter message: the reason, where the bytes came from, and the bytes themselves.

    ``raw`` holds the original bytes as text when they are UTF-8, else ``raw_base64``. Past
    ``max_raw_bytes`` only that many are kept (``raw_truncated``); ``raw_bytes`` and
    ``raw_sha256`` always describe the whole original, so the record's size is bounded (at
    most about six times ``max_raw_bytes``, JSON escapes included) and it can always be sent.
    """
    raw = rejected.raw
    reason = rejected.reason
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[:MAX_REASON_CHARS] + "…"
    record: dict[str, Any] = {
        "reason": reason,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "index": rejected.index,
        "model": rejected.model,
        "raw_bytes": len(raw),
        "raw_sha256": hashlib.sha256(raw).hexdigest(),
        "raw_truncated": len(raw) > max_raw_bytes,
    }
    if rejected.dropped is not None:
        # the event was kept (and counted) without this field: replaying it would count it twice
        record["dropped"] = rejected.dropped
    kept = raw[:max_raw_bytes]
    text = _utf8_prefix(kept, truncated=len(raw) > max_raw_bytes)
    if text is not None:
        record["raw"] = text
    else:
        record["raw_base64"] = base64.b64encode(kept).decode("ascii")
    return orjson.dumps(record)


def deadletter_max_bytes(limits: EventLimits) -> int:
    """An upper bound on the size of one dead-letter record (producers are sized for it)."""
    escaped = 6 * limits.max_deadletter_raw_bytes  # the worst case: every byte a \\u00XX escape
    return escaped + 6 * (MAX_REASON_CHARS + 2 * limits.max_name_length) + 4096


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A rejected event (or message) and where it was read: one dead-letter record."""

    rejected: Rejected
    tp: tuple[str, int]  # (topic, partition) it was read from
    offset: int

    @property
    def key(self) -> bytes | None:
        return self.rejected.model.encode() if self.rejected.model else None

    def record(self, max_raw_bytes: int = DEADLETTER_RAW_BYTES) -> bytes:
        topic, partition = self.tp
        return deadletter_record(self.rejected, topic, partition, self.offset, max_raw_bytes)


def _utf8_prefix(data: bytes, *, truncated: bool) -> str | None:
    """``data`` as text if it is UTF-8 (a character cut by the truncation is dropped)."""
    for cut in range(4 if truncated else 1):
        try:
            return data[: len(data) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
    return None
