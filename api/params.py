"""Path and query parameters that several routes share, with their bounds."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import HTTPException, Path, Query, status

from api.errors import invalid
from api.timeparse import MAX_TIME_LENGTH
from driftline.cuts import RESERVED, SHADOW_CUT, decided_by_cut, version_cut
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


Shadow = Annotated[
    bool | None,
    Query(description='true: the shadow predictions\' figures (sent with "shadow": true)'),
]
DecidedBy = Annotated[
    Literal["model", "human"] | None,
    Query(description="the figures of the cases the model, or people, decided"),
]


def cut_of(
    store: Store,
    model: str,
    segment: str,
    version: str | None,
    stage: str = "",
    shadow: bool | None = None,
    decided_by: str | None = None,
) -> str:
    """The cut label a query asks for: a slice (``segment=``), a version (``version=``), the
    shadow predictions (``shadow=true``) or who decided (``decided_by=``), one at a time. An
    unknown version is a 404 that lists the model's versions."""
    if segment.startswith(RESERVED):
        raise invalid(("query", "segment"), "a slice never starts with '@': use version=", segment)
    asked = [
        name
        for name, given in (
            ("segment", bool(segment)),
            ("version", version is not None),
            ("shadow", bool(shadow)),
            ("decided_by", decided_by is not None),
        )
        if given
    ]
    if len(asked) > 1:
        raise invalid(
            ("query", asked[1]),
            f"ask for one cut at a time: {' and '.join(asked)} were both given",
            None,
        )
    if shadow:
        return SHADOW_CUT
    if decided_by is not None:
        return decided_by_cut(decided_by)
    if version is None:
        return segment
    known = store.model_versions(model)
    if version not in known:
        shown = ", ".join(repr(v) for v in known[:20]) or "none yet"
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"model {model!r} has no stored windows of version {version!r} (versions: {shown})",
        )
    return version_cut(version)


# a tag on examples (api/routes/tags.py): a short name, never holding ';' (csv joins tags by it)
MAX_TAG = 100
TAG_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"
TagName = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_TAG,
        pattern=TAG_PATTERN,
        description="letters, digits, '_', '.', '-' (not first: '.', '-')",
    ),
]
