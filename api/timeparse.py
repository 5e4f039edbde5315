"""Times the API takes: epoch seconds or RFC 3339, within what the store holds.

A ClickHouse ``DateTime`` holds 1970-01-01 to 2106-02-07 (32-bit unsigned seconds); a time
outside that range can only be a mistake, and one stored would break every read of it.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated

from pydantic import PlainValidator, WithJsonSchema

from api.errors import invalid

EPOCH_MAX = 4_294_967_295  # 2106-02-07T06:28:15Z
MAX_TIME_LENGTH = 40  # an RFC 3339 time with nanoseconds and an offset is 35 characters
RANGE = f"between 1970-01-01T00:00:00Z and 2106-02-07T06:28:15Z (epoch 0 to {EPOCH_MAX})"


def to_epoch(value: str | float) -> float:
    """Epoch seconds of a number, a numeric string or an RFC 3339 time; ValueError says why
    not (naive times are UTC).

    >>> to_epoch("2023-11-14T22:13:20Z"), to_epoch("1700000000"), to_epoch(0)
    (1700000000.0, 1700000000.0, 0.0)
    """
    if isinstance(value, str):
        try:
            epoch = float(value)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                message = f"must be epoch seconds or an RFC 3339 time, got {value!r}"
                raise ValueError(message) from None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            epoch = parsed.timestamp()
    else:
        epoch = float(value)
    if not (math.isfinite(epoch) and 0 <= epoch <= EPOCH_MAX):
        raise ValueError(f"must be {RANGE}, got {value!r}")
    return epoch


def _body_time(value: object) -> float | str:
    """A request body's time: epoch seconds as a JSON number, or an RFC 3339 string."""
    if isinstance(value, str):
        if len(value) > MAX_TIME_LENGTH:
            raise ValueError(f"an RFC 3339 time has at most {MAX_TIME_LENGTH} characters")
        try:
            float(value)
        except ValueError:
            to_epoch(value)
            return value
        raise ValueError(f"epoch seconds are a number, not a string: got {value!r}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return to_epoch(value)
    raise ValueError(f"a time is epoch seconds (a number) or an RFC 3339 string, got {value!r}")


# one validator, so that a bad time gets one message rather than one per member of a union
Time = Annotated[
    float | str,
    PlainValidator(_body_time),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": EPOCH_MAX},
                {"type": "string", "format": "date-time", "maxLength": MAX_TIME_LENGTH},
            ]
        }
    ),
]


def parse_time(value: str | None, name: str) -> int | None:
    """A query parameter's time; a 422 (``loc: ["query", name]``) when it is not one."""
    if value is None or value == "":
        return None
    try:
        return int(to_epoch(value))
    except ValueError as exc:
        raise invalid(("query", name), f"'{name}' {exc}", value) from None


@lru_cache(maxsize=1 << 16)
def iso(epoch: int) -> str:
    """An epoch second as ISO 8601 UTC text. Cached: a read repeats each window's start once
    per series (50 features x 360 windows at 6 hours), and formatting took half of it."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
