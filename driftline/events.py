"""The event contract (DESIGN.md): decoding and validation of Kafka message values.

A message value is one event object or a JSON array of them. Each invalid element becomes a
:class:`Rejected` carrying its bytes and a reason a person can act on; valid events in the same
array are kept. Nothing here does I/O, so the worker, the HTTP ingest and the SDK share it.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import math
import typing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson

_SCALARS = (int, float, str, bool)
_FEATURE_TYPES = frozenset({int, float, bool, str, type(None)})


# What a ClickHouse ``DateTime`` holds (seconds since the epoch, UInt32), less a week so that
# the end of any window (at most a week long) fits too.
STORE_MIN_TS = 0.0
STORE_MAX_TS = float(2**32 - 1 - 7 * 86400)
DEADLETTER_RAW_BYTES = 65_536


@dataclass(frozen=True, slots=True)
class EventLimits:
    max_message_bytes: int = 1_048_576
    max_features: int = 1000
    max_string_length: int = 1024
    # model, version, stage, id, feature names and segment keys
    max_name_length: int = 256
    max_segment_keys: int = 16
    max_classes: int = 1000  # class probabilities in one prediction
    # event times are plausible within this range around the time they are received
    max_age_s: float = 10 * 365 * 86400.0
    max_future_s: float = 86400.0
    # a dead letter keeps at most this many bytes of the original (with its size and hash)
    max_deadletter_raw_bytes: int = DEADLETTER_RAW_BYTES


@dataclass(frozen=True, slots=True)
class Rejected:
    """One event (or a whole message) that broke the contract."""

    reason: str
    raw: bytes
    index: int | None = None  # position inside an array message; None: the whole message
    model: str | None = None


@dataclass(slots=True)
class Decoded:
    """Valid events (``ts`` normalised to epoch seconds or None) and what was rejected."""

    events: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


def parse_timestamp(value: Any) -> float | None:
    """RFC 3339 string or epoch seconds to epoch seconds; raises ValueError when neither."""
    if value is None:
        return None
    kind = type(value)
    if kind is int or kind is float:
        if not math.isfinite(value):
            raise ValueError("'ts' must be a finite number of epoch seconds")
        return float(value)
    if kind is str:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"'ts' {_show(value)} is not an RFC 3339 timestamp") from None
        if parsed.tzinfo is None:
            raise ValueError(f"'ts' {_show(value)} has no time zone; add 'Z' or an offset")
        try:
            return parsed.timestamp()
        except (OverflowError, ValueError):
            raise ValueError(f"'ts' {_show(value)} is out of range") from None
    raise ValueError("'ts' must be an RFC 3339 string or epoch seconds")


def time_reason(ts: float, now: float, limits: EventLimits, what: str = "'ts'") -> str | None:
    """Why an event time cannot be windowed and stored, or None when it is plausible: within
    what the store holds and within ``max_age_s`` before / ``max_future_s`` after ``now``."""
    if not STORE_MIN_TS <= ts <= STORE_MAX_TS:
        return f"{what} {_instant(ts)} is outside what the store holds (1970 to 2106)"
    if ts < now - limits.max_age_s:
        return (
            f"{what} {_instant(ts)} is more than {limits.max_age_s:,.0f} s in the past "
            "(DRIFTLINE_MAX_EVENT_AGE_S)"
        )
    if ts > now + limits.max_future_s:
        return (
            f"{what} {_instant(ts)} is more than {limits.max_future_s:,.0f} s in the future "
            "(DRIFTLINE_MAX_EVENT_FUTURE_S); check the sender's clock and units (seconds)"
        )
    return None


def _instant(ts: float) -> str:
    try:
        return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, ValueError, OSError):
        return f"{ts:g}"


def _show(value: str, limit: int = 64) -> str:
    """A user's value quoted in a reason, cut so that a reason stays short."""
    return repr(value) if len(value) <= limit else f"{value[:limit]!r}… ({len(value)} chars)"


def _check_features(features: Any, limits: EventLimits) -> str | None:
    if type(features) is not dict:
        return "'features' must be an object of name -> number | string | bool | null"
    if len(features) > limits.max_features:
        return f"{len(features)} features, over the limit of {limits.max_features}"
    if features and max(map(len, features)) > limits.max_name_length:
        name = max(features, key=len)
        return f"feature name {_show(name)} is longer than {limits.max_name_length} characters"
    max_len = limits.max_string_length
    for value in features.values():  # hot path: a plain loop beats set/genexpr tricks here
        kind = type(value)
        if kind is float or value is None:
            continue
        if kind is str:
            if len(value) > max_len:
                break
            continue
        if kind is int or kind is bool:
            continue
        break
    else:
        return None
    for name, value in features.items():  # slow path: name the culprit
        kind = type(value)
        if kind is str and len(value) > max_len:
            return f"feature {name!r} is a string of {len(value)} characters (limit {max_len})"
        if kind not in _FEATURE_TYPES:
            return f"feature {name!r} is a {kind.__name__}; use a number, string, bool or null"
    return None


def _check_prediction(prediction: Any, limits: EventLimits) -> str | None:
    kind = type(prediction)
    if prediction is None or kind is int or kind is float or kind is bool:
        return None
    if kind is str:
        if len(prediction) > limits.max_string_length:
            return f"'prediction' is longer than {limits.max_string_length} characters"
        return None
    if kind is list:
        if len(prediction) > limits.max_classes:
            return f"'prediction' has {len(prediction)} classes, over {limits.max_classes}"
        if prediction and all(type(p) in (int, float) for p in prediction):
            return None
        return "'prediction' list must hold class probabilities (a non-empty list of numbers)"
    return "'prediction' must be a number, string, bool, null or a list of class probabilities"


def _check_name(event: dict[str, Any], field: str, limits: EventLimits) -> str | None:
    value = event.get(field)
    if value is None:
        return None
    if type(value) is not str:
        return f"'{field}' must be a string"
    if len(value) > limits.max_name_length:
        return f"'{field}' is longer than {limits.max_name_length} characters"
    return None


def _check_optional(event: dict[str, Any], limits: EventLimits) -> str | None:
    version = event.get("version")
    if type(version) is int:  # a version number is taken as its name
        version = None
    reason = (
        (_check_name(event, "version", limits) if version is not None else None)
        or _check_name(event, "id", limits)
        or _check_name(event, "stage", limits)
    )
    if reason is not None:
        return reason
    latency = event.get("latency_ms")
    if latency is not None and (type(latency) not in (int, float) or latency < 0):
        return "'latency_ms' must be a non-negative number"
    segment = event.get("segment")
    if segment is not None:
        if type(segment) is not dict or not all(type(v) is str for v in segment.values()):
            return "'segment' must be an object of string -> string"
        if len(segment) > limits.max_segment_keys:
            return f"'segment' has {len(segment)} keys, over the limit of {limits.max_segment_keys}"
        if any(len(k) > limits.max_name_length for k in segment):
            return f"a 'segment' key is longer than {limits.max_name_length} characters"
        if any(len(v) > limits.max_string_length for v in segment.values()):
            return f"a 'segment' value is longer than {limits.max_string_length} characters"
    ts = event.get("ts")
    if ts is not None and (type(ts) is not float or not math.isfinite(ts)):
        try:
            event["ts"] = parse_timestamp(ts)
        except ValueError as exc:
            return str(exc)
    return None


def _check_model(event: dict[str, Any], limits: EventLimits) -> str | None:
    model = event.get("model")
    if type(model) is not str or not model:
        return "'model' is required and must be a non-empty string"
    if len(model) > limits.max_name_length:
        return f"'model' is longer than {limits.max_name_length} characters"
    if "::" in model:
        return "'model' cannot contain '::' (reserved for pipeline stages: use 'stage')"
    return None


def check_prediction_event(event: Any, limits: EventLimits) -> str | None:
    """The reason ``event`` breaks the prediction schema, or None. Normalises ``ts`` in place."""
    if type(event) is not dict:
        return f"an event must be a JSON object, got {type(event).__name__}"
    reason = _check_model(event, limits)
    if reason is not None:
        return reason
    if "features" not in event:
        return "'features' is required (an object; use {} when the model has no inputs)"
    reason = _check_features(event["features"], limits)
    if reason is not None:
        return reason
    if "prediction" not in event:
        return "'prediction' is required (null when the model gave no output)"
    return _check_prediction(event["prediction"], limits) or _check_optional(event, limits)


def check_label_event(event: Any, limits: EventLimits) -> str | None:
    """The reason ``event`` breaks the label schema, or None. Normalises ``ts`` in place."""
    if type(event) is not dict:
        return f"a label must be a JSON object, got {type(event).__name__}"
    reason = _check_model(event, limits)
    if reason is not None:
        return reason
    if type(event.get("id")) is not str:
        return "'id' is required: the id of the prediction this label belongs to"
    reason = _check_name(event, "id", limits) or _check_name(event, "stage", limits)
    if reason is not None:
        return reason
    label = event.get("label")
    if label is None or type(label) not in _SCALARS:
        return "'label' is required and must be a number, string or bool"
    if type(label) is str and len(label) > limits.max_string_length:
        return f"'label' is longer than {limits.max_string_length} characters"
    if type(label) is float and not math.isfinite(label):
        return "'label' must be a finite number"
    try:
        event["ts"] = parse_timestamp(event.get("ts"))
    except ValueError as exc:
        return str(exc)
    return None


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
                keep(trim(event))
            else:
                model = model_of(event, limits)
                out.rejected.append(Rejected(reason, orjson.dumps(event), index, model))
        return out
    reason = check(payload, limits)
    if reason is None and clock is not None:
        reason = clock.reason(payload, limits)
    if reason is None:
        out.events.append(trim(payload))
    else:
        out.rejected.append(Rejected(reason, value, None, model_of(payload, limits)))
    return out


_PREDICTION_FIELDS = frozenset(
    {"model", "features", "prediction", "version", "id", "stage", "latency_ms", "segment", "ts"}
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
