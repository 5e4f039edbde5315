"""Path and query parameters that several routes share, with their bounds."""

from __future__ import annotations

from typing import Annotated

from fastapi import HTTPException, Path, Query, status

from api.errors import invalid
from api.timeparse import MAX_TIME_LENGTH
from driftline.cuts import RESERVED, version_cut
from driftline.store import Store

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
Version = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=MAX_NAME,
        description="a model version: that version's own figures (its cut), not the whole model's",
    ),
]


def cut_of(store: Store, model: str, segment: str, version: str | None, stage: str = "") -> str:
    """The cut label a query asks for: a slice (``segment=``) or a version (``version=``),
    one at a time. An unknown version is a 404 that lists the model's versions."""
    if segment.startswith(RESERVED):
        raise invalid(("query", "segment"), "a slice never starts with '@': use version=", segment)
    if version is None:
        return segment
    if segment:
        raise invalid(
            ("query", "version"), "ask for a slice (segment=) or a version, not both", version
        )
    known = store.model_versions(model)
    if version not in known:
        shown = ", ".join(repr(v) for v in known[:20]) or "none yet"
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"model {model!r} has no stored windows of version {version!r} (versions: {shown})",
        )
    return version_cut(version)
