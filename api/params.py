"""Path and query parameters that several routes share, with their bounds."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from api.timeparse import MAX_TIME_LENGTH

# names are as long as an event's strings may be (DRIFTLINE_MAX_STRING_LENGTH's default)
MAX_NAME = 1024

ModelName = Annotated[str, Path(max_length=MAX_NAME)]
StartTime = Annotated[
    str | None,
    Query(max_length=MAX_TIME_LENGTH, description="from this window start (epoch s or RFC 3339)"),
]
EndTime = Annotated[
    str | None, Query(max_length=MAX_TIME_LENGTH, description="before this window start")
]
Segment = Annotated[
    str, Query(max_length=2 * MAX_NAME + 1, description="slice, e.g. channel=mobile ('' = all)")
]
Stage = Annotated[
    str, Query(max_length=MAX_NAME, description="pipeline stage ('' = the model itself)")
]
