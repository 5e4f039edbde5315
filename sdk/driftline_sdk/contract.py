"""The event contract (DESIGN.md): what a prediction event and a label event may hold.

Each check returns the reason an event breaks the contract, written for the person who sent it,
or None. Nothing here does I/O: the SDK checks an event before it is queued, and the platform's
worker and HTTP ingest run the same checks on what they receive.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

_SCALARS = (int, float, str, bool)
DECIDED_BY = ("model", "human")  # who decided a case: the model, or a person it deferred to
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
    # custom metrics (``metrics``: name -> number): names per event, and a name's length
    max_custom_metrics: int = 64
    max_custom_metric_name_length: int = 64
    max_classes: int = 1000  # class probabilities in one prediction
    # event times are plausible within this range around the time they are received
    max_age_s: float = 10 * 365 * 86400.0
    max_future_s: float = 86400.0
    # a dead letter keeps at most this many bytes of the original (with its size and hash)
    max_deadletter_raw_bytes: int = DEADLETTER_RAW_BYTES


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
    shadow = event.get("shadow")
    if shadow is not None and type(shadow) is not bool:
        return "'shadow' must be true (a shadow prediction, not acted on), false or null"
    decided_by = event.get("decided_by")
    if decided_by is not None and decided_by not in DECIDED_BY:
        return '\'decided_by\' must be "model" or "human" (who made the decision), or null'
    segment = event.get("segment")
    if segment is not None:
        if type(segment) is not dict or not all(type(v) is str for v in segment.values()):
            return "'segment' must be an object of string -> string"
        if len(segment) > limits.max_segment_keys:
            return f"'segment' has {len(segment)} keys, over the limit of {limits.max_segment_keys}"
        if any(len(k) > limits.max_name_length for k in segment):
            return f"a 'segment' key is longer than {limits.max_name_length} characters"
        if any(k[:1] == "@" for k in segment):
            # "@version=2" and the like are the labels of Driftline's own cuts
            return "a 'segment' key cannot start with '@' (reserved for version and other cuts)"
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
    if label is None:
        # an outcome known later (a click) may come as custom metrics alone
        if type(event.get("metrics")) is dict and event["metrics"]:
            return _check_time(event)
        return (
            "'label' is required and must be a number, string or bool "
            "(or send 'metrics' alone, for outcomes that are not a label)"
        )
    if type(label) not in _SCALARS:
        return "'label' is required and must be a number, string or bool"
    if type(label) is str and len(label) > limits.max_string_length:
        return f"'label' is longer than {limits.max_string_length} characters"
    if type(label) is float and not math.isfinite(label):
        return "'label' must be a finite number"
    return _check_time(event)


def _check_time(event: dict[str, Any]) -> str | None:
    try:
        event["ts"] = parse_timestamp(event.get("ts"))
    except ValueError as exc:
        return str(exc)
    return None


# A custom metric's name becomes part of stored metric names (``custom.<name>.<stat>``), so it
# is a plain word: letters, digits, "_", "-", "."; it starts with a letter or "_"
_CUSTOM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


def _custom_value_reason(name: str, value: Any, limits: EventLimits) -> str | None:
    if type(name) is not str or not name or not _CUSTOM_NAME.fullmatch(name):
        return (
            f"custom metric name {_show(str(name))} is not a plain name (letters, digits, "
            "'_', '-', '.'; starting with a letter or '_')"
        )
    if len(name) > limits.max_custom_metric_name_length:
        return (
            f"custom metric name {_show(name)} is longer than "
            f"{limits.max_custom_metric_name_length} characters"
        )
    kind = type(value)
    if kind is bool:
        return f"custom metric {name!r} is a bool; send 1 or 0"
    if kind is not int and kind is not float:
        return f"custom metric {name!r} is a {kind.__name__}; use a number"
    if not math.isfinite(value):
        return f"custom metric {name!r} must be a finite number"
    return None


def clean_custom_metrics(event: dict[str, Any], limits: EventLimits) -> str | None:
    """Keep the valid part of an event's ``metrics`` (name -> number) and drop the rest: the
    event's ``metrics`` is replaced (the object sent is left as it was) or removed. Returns why
    something was dropped, or None. Bad custom metrics never cost the event
    itself: its prediction, features and label count as if they had not been sent.

    A null value is an absent metric. ``metrics`` that is not an object, or that holds more
    than ``max_custom_metrics`` names, is dropped whole; otherwise only the bad entries are.

    >>> event = {"metrics": {"ctr": 1, "redo": "yes", "gpu_mem_mb": 5120.0, "dwell": None}}
    >>> clean_custom_metrics(event, EventLimits())
    "custom metric 'redo' is a str; use a number"
    >>> event
    {'metrics': {'ctr': 1, 'gpu_mem_mb': 5120.0}}
    """
    metrics = event.get("metrics")
    if metrics is None:
        event.pop("metrics", None)
        return None
    if type(metrics) is not dict:
        del event["metrics"]
        return f"'metrics' must be an object of name -> number, got {type(metrics).__name__}"
    if len(metrics) > limits.max_custom_metrics:
        del event["metrics"]
        return (
            f"'metrics' has {len(metrics)} names, over the limit of {limits.max_custom_metrics}; "
            "none was kept"
        )
    kept: dict[str, float] = {}
    reasons: list[str] = []
    for name, value in metrics.items():
        if value is None:
            continue
        reason = _custom_value_reason(name, value, limits)
        if reason is None:
            kept[name] = value
        else:
            reasons.append(reason)
    if kept:
        event["metrics"] = kept
    else:
        del event["metrics"]
    if not reasons:
        return None
    more = f" (and {len(reasons) - 1} more dropped)" if len(reasons) > 1 else ""
    return reasons[0] + more
