"""Response and request bodies, named by role (``ThingPublic``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

Responses = dict[int | str, dict[str, Any]]  # a route's documented answers besides the 2xx


class ErrorPublic(BaseModel):
    """Every error but a validation error (422): what was wrong and what to do."""

    detail: str


def error(description: str) -> dict[str, Any]:
    """A documented error answer (for a route's ``responses=``)."""
    return {"model": ErrorPublic, "description": description}


class ValidationIssuePublic(BaseModel):
    """One item of a 422's ``detail``, as FastAPI writes them."""

    loc: list[str | int]
    msg: str
    type: str


class HealthPublic(BaseModel):
    status: str
    store: str
    version: str


class ModelSummaryPublic(BaseModel):
    model: str
    first_window: str = Field(description="start of the oldest stored window (RFC 3339)")
    last_window: str = Field(description="start of the newest stored window (RFC 3339)")
    events: int = Field(description="events counted in stored windows")
    windows: int
    stages: list[str] = Field(
        default_factory=list, description="pipeline stages monitored under this model"
    )


class FeaturePublic(BaseModel):
    name: str
    kind: str


class VersionTrafficPublic(BaseModel):
    version: str
    events: int = Field(description="its events in every stored window")
    share: float = Field(description="its share of the model's events over the last hour")
    events_last_hour: int = Field(description="over the hour before the model's newest window")
    last_window: str = Field(description="the newest window it had traffic in")


class ModelPublic(ModelSummaryPublic):
    versions: list[str]
    traffic: list[VersionTrafficPublic] = Field(
        default_factory=list, description="per version, from its own figures (version=)"
    )
    features: list[FeaturePublic]
    metrics: list[str]
    segments: list[str] = Field(description="slices its metrics are broken down by")


class PointPublic(BaseModel):
    window_start: str
    value: float | None
    version: str


class SeriesPublic(BaseModel):
    metric: str
    feature: str
    category: str
    window_seconds: int
    points: list[PointPublic]


class MetricsPublic(BaseModel):
    model: str
    series: list[SeriesPublic]


class RejectedPublic(BaseModel):
    index: int | None
    reason: str


class IngestPublic(BaseModel):
    accepted: int
    rejected: list[RejectedPublic]
    dropped: list[RejectedPublic] = Field(
        default_factory=list,
        description="accepted events whose bad custom metrics ('metrics') were dropped: the "
        "event itself was sent and counts; only those metrics were left out",
    )


class IngestRefusedPublic(IngestPublic):
    """422 of the ingest endpoints: the standard ``detail`` list (one item per rejected
    event, ``loc`` ``["body", index]``), and the same counts as a 202."""

    detail: list[ValidationIssuePublic]
