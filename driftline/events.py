"""The event contract (DESIGN.md): decoding and validation of Kafka message values.

A message value is one event object or a JSON array of them. Each invalid element becomes a
:class:`Rejected` carrying its bytes and a reason a person can act on; valid events in the same
array are kept. Nothing here does I/O, so the worker, the HTTP ingest and the SDK share it.
"""

from __future__ import annotations

import functools
import typing
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec
import orjson

_SCALARS = (int, float, str, bool)
_FEATURE_TYPES = frozenset({int, float, bool, str, type(None)})


@dataclass(frozen=True, slots=True)
class EventLimits:
    max_message_bytes: int = 1_048_576
    max_features: int = 1000
    max_string_length: int = 1024


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
        return float(value)
    if kind is str:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"'ts' {value!r} is not an RFC 3339 timestamp") from None
        if parsed.tzinfo is None:
            raise ValueError(f"'ts' {value!r} has no time zone; add 'Z' or an offset")
        return parsed.timestamp()
    raise ValueError("'ts' must be an RFC 3339 string or epoch seconds")


def _check_features(features: Any, limits: EventLimits) -> str | None:
    if type(features) is not dict:
        return "'features' must be an object of name -> number | string | bool | null"
    if len(features) > limits.max_features:
        return f"{len(features)} features, over the limit of {limits.max_features}"
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


def _check_prediction(prediction: Any) -> str | None:
    if prediction is None or type(prediction) in _SCALARS:
        return None
    if type(prediction) is list:
        if prediction and all(type(p) in (int, float) for p in prediction):
            return None
        return "'prediction' list must hold class probabilities (a non-empty list of numbers)"
    return "'prediction' must be a number, string, bool, null or a list of class probabilities"


def _check_optional(event: dict[str, Any], limits: EventLimits) -> str | None:
    version = event.get("version")
    if version is not None and type(version) not in (str, int):
        return "'version' must be a string"
    if "id" in event and event["id"] is not None and type(event["id"]) is not str:
        return "'id' must be a string"
    if "stage" in event and event["stage"] is not None and type(event["stage"]) is not str:
        return "'stage' must be a string"
    latency = event.get("latency_ms")
    if latency is not None and (type(latency) not in (int, float) or latency < 0):
        return "'latency_ms' must be a non-negative number"
    segment = event.get("segment")
    if segment is not None:
        if type(segment) is not dict or not all(type(v) is str for v in segment.values()):
            return "'segment' must be an object of string -> string"
        if any(len(v) > limits.max_string_length for v in segment.values()):
            return f"a 'segment' value is longer than {limits.max_string_length} characters"
    ts = event.get("ts")
    if ts is not None and type(ts) is not float:
        try:
            event["ts"] = parse_timestamp(ts)
        except ValueError as exc:
            return str(exc)
    return None


def check_prediction_event(event: Any, limits: EventLimits) -> str | None:
    """The reason ``event`` breaks the prediction schema, or None. Normalises ``ts`` in place."""
    if type(event) is not dict:
        return f"an event must be a JSON object, got {type(event).__name__}"
    model = event.get("model")
    if type(model) is not str or not model:
        return "'model' is required and must be a non-empty string"
    if "::" in model:
        return "'model' cannot contain '::' (reserved for pipeline stages: use 'stage')"
    if "features" not in event:
        return "'features' is required (an object; use {} when the model has no inputs)"
    reason = _check_features(event["features"], limits)
    if reason is not None:
        return reason
    if "prediction" not in event:
        return "'prediction' is required (null when the model gave no output)"
    return _check_prediction(event["prediction"]) or _check_optional(event, limits)


def check_label_event(event: Any, limits: EventLimits) -> str | None:
    """The reason ``event`` breaks the label schema, or None. Normalises ``ts`` in place."""
    if type(event) is not dict:
        return f"a label must be a JSON object, got {type(event).__name__}"
    model = event.get("model")
    if type(model) is not str or not model:
        return "'model' is required and must be a non-empty string"
    if "::" in model:
        return "'model' cannot contain '::' (reserved for pipeline stages: use 'stage')"
    if type(event.get("id")) is not str:
        return "'id' is required: the id of the prediction this label belongs to"
    stage = event.get("stage")
    if stage is not None and type(stage) is not str:
        return "'stage' must be a string"
    label = event.get("label")
    if label is None or type(label) not in _SCALARS:
        return "'label' is required and must be a number, string or bool"
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
    number = t.Union[int, float]
    probabilities = t.Annotated[t.List[number], meta(min_length=1)]
    event = t.TypedDict(
        "PredictionEvent",
        {
            "model": t.Annotated[str, meta(min_length=1)],
            "features": t.Annotated[
                t.Dict[str, t.Union[int, float, text, bool, None]],
                meta(max_length=limits.max_features),
            ],
            "prediction": t.Union[int, float, str, bool, None, probabilities],
            "version": t.NotRequired[t.Union[str, int, None]],
            "id": t.NotRequired[t.Optional[str]],
            "stage": t.NotRequired[t.Optional[str]],
            "latency_ms": t.NotRequired[t.Optional[t.Annotated[float, meta(ge=0)]]],
            "segment": t.NotRequired[t.Optional[t.Dict[str, text]]],
            "ts": t.NotRequired[t.Union[float, str, None]],
        },
    )
    return msgspec.json.Decoder(t.List[event])


def _decode_valid_array(value: bytes, limits: EventLimits) -> list[dict[str, Any]] | None:
    """Every event of an array message when all are valid (``ts`` normalised), else None."""
    try:
        events: list[dict[str, Any]] = _array_decoder(limits).decode(value)
    except msgspec.MsgspecError:
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
    return events


def decode_message(value: bytes | None, limits: EventLimits, *, labels: bool = False) -> Decoded:
    """Decode one Kafka message value into valid events and rejected ones."""
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
        events = _decode_valid_array(value, limits)
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
            if reason is None:
                keep(trim(event))
            else:
                out.rejected.append(Rejected(reason, orjson.dumps(event), index, _model_of(event)))
        return out
    reason = check(payload, limits)
    if reason is None:
        out.events.append(trim(payload))
    else:
        out.rejected.append(Rejected(reason, value, None, _model_of(payload)))
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


def _model_of(event: Any) -> str | None:
    if type(event) is dict and type(event.get("model")) is str and event["model"]:
        return str(event["model"])
    return None


def deadletter_record(rejected: Rejected, topic: str, partition: int, offset: int) -> bytes:
    """The dead-letter message: the reason, where the bytes came from, and the bytes themselves.

    ``raw`` holds the original bytes as text when they are UTF-8, else ``raw_base64``.
    """
    record: dict[str, Any] = {
        "reason": rejected.reason,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "index": rejected.index,
        "model": rejected.model,
    }
    try:
        record["raw"] = rejected.raw.decode("utf-8")
    except UnicodeDecodeError:
        import base64

        record["raw_base64"] = base64.b64encode(rejected.raw).decode("ascii")
    return orjson.dumps(record)
