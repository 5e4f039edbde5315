"""Query-string times: epoch seconds or RFC 3339."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import HTTPException


def parse_time(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(float(value))
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise HTTPException(
            422,
            f"'{name}' must be epoch seconds or an RFC 3339 time, got {value!r}",
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp())


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
