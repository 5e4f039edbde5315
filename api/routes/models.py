from __future__ import annotations

import math
from functools import partial
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query, Response, status

from api.deps import StoreDep
from api.errors import invalid
from api.params import (
    MAX_NAME,
    DecidedBy,
    EndTime,
    ModelName,
    Segment,
    Shadow,
    Stage,
    StartTime,
    Version,
    cut_of,
)
from api.rendering import json_response
from api.schemas import (
    FeaturePublic,
    MetricsPublic,
    ModelPublic,
    ModelSummaryPublic,
    VersionTrafficPublic,
    error,
)
from api.timeparse import iso, parse_time
from driftline.store import MetricPoint, Store
from driftline.store.schema import ROLLUPS

router = APIRouter(prefix="/v1/models", tags=["models"])


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": row["model"],
        "first_window": iso(row["first_window"]),
        "last_window": iso(row["last_window"]),
        "events": row["events"],
        "windows": row["windows"],
        "stages": row.get("stages", []),
    }


@router.get("")
def read_models(store: StoreDep) -> list[ModelSummaryPublic]:
    """Every model with at least one stored window."""
    return [ModelSummaryPublic(**_summary(row)) for row in store.models()]


@router.get("/{model}", responses={404: error("the model has no stored windows (yet)")})
def read_model(model: ModelName, store: StoreDep) -> ModelPublic:
    row = next(iter(store.models(model)), None)
    if row is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"model {model!r} has no stored windows yet: send events for it, then wait for "
            "its first window to close (window length + allowed lateness)",
        )
    return ModelPublic(
        **_summary(row),
        versions=store.model_versions(model),
        traffic=_traffic(store, model, int(row["last_window"])),
        features=[FeaturePublic(name=n, kind=k) for n, k in store.model_features(model)],
        metrics=store.metric_names(model),
        segments=store.segments(model),
    )


def _traffic(store: Store, model: str, last_window: int) -> list[VersionTrafficPublic]:
    """Each version's traffic, all told and over the last hour: its share is what a canary
    or a blue-green switch has reached."""
    recent = {
        r["version"]: r["events"] for r in store.version_traffic(model, since=last_window - 3600)
    }
    total = sum(recent.values())
    return [
        VersionTrafficPublic(
            version=r["version"],
            events=r["events"],
            share=recent.get(r["version"], 0) / total if total else 0.0,
            events_last_hour=recent.get(r["version"], 0),
            last_window=iso(r["last_window"]),
        )
        for r in store.version_traffic(model)
    ]


@router.get(
    "/{model}/metrics",
    response_model=MetricsPublic,
    responses={404: error("the model has no windows of this version")},
)
def read_metrics(
    model: ModelName,
    store: StoreDep,
    name: str | None = Query(
        None, max_length=200, description="metric name, e.g. input.missing_rate"
    ),
    feature: str | None = Query(
        None, max_length=MAX_NAME, description="feature name; '' for model-level metrics"
    ),
    start: StartTime = None,
    end: EndTime = None,
    segment: Segment = "",
    stage: Stage = "",
    version: Version = None,
    shadow: Shadow = None,
    decided_by: DecidedBy = None,
    limit: int = Query(10_000, ge=1, le=100_000),
    step: int | None = Query(
        None,
        description="3600 or 86400: one point per hour or day (UTC) instead of one per window, "
        "read from rollups the store keeps as windows are written: ask for it on long ranges "
        "(a week of 60 s windows is 10,080 points a series, 168 hourly). Buckets are whole: "
        "every bucket holding a window start of [start, end); a point's window_start is its "
        "bucket's start, its version the newest window's, and the series' window_seconds is "
        "the step",
    ),
    agg: Literal["mean", "sum", "min", "max", "last"] = Query(
        "mean",
        description="with step: what a bucket's point is, from its windows' values: their "
        "mean, sum (counts: traffic.count per hour), min, max, or the newest window's value",
    ),
) -> Response:
    """Per-window metric values as time series, one series per (metric, feature, category);
    with ``step``, per hour or day. ``version``: one version's own figures, from the windows it
    had traffic in."""
    segment = cut_of(store, model, segment, version, stage, shadow, decided_by)
    since, until = parse_time(start, "start"), parse_time(end, "end")
    if step is not None and step not in ROLLUPS:
        raise invalid(("query", "step"), "step is 3600 (hourly) or 86400 (daily)", step)
    read = (
        partial(store.metric_buckets, model, step, agg=agg)
        if step is not None
        else partial(store.metrics, model)
    )
    points = read(
        name=name,
        feature=feature,
        start=since,
        end=until,
        segment=segment,
        stage=stage,
        limit=limit,
    )
    return json_response({"model": model, "series": _as_series(points)})


def _as_series(points: list[MetricPoint]) -> list[dict[str, Any]]:
    """The points as ``SeriesPublic`` series, in plain dicts (see ``json_response``)."""
    series: dict[tuple[str, str, str], dict[str, Any]] = {}
    for p in points:
        key = (p.metric, p.feature, p.category)
        s = series.get(key)
        if s is None:
            s = series[key] = {
                "metric": p.metric,
                "feature": p.feature,
                "category": p.category,
                "window_seconds": p.window_seconds,
                "points": [],
            }
        value = None if math.isnan(p.value) or math.isinf(p.value) else p.value
        s["points"].append(
            {"window_start": iso(p.window_start), "value": value, "version": p.version}
        )
    return [series[key] for key in sorted(series)]
