"""``GET /v1/models/{model}/estimation``: whether the model's quality is estimated before its
labels land, with what, how far the estimates can be trusted, and what to send when it is not.

The figures themselves are series like any other (``quality.estimated.*`` on ``/metrics``);
this route reads the worker's verdicts (``quality.estimated.available``, written per window
with the reason when there is no estimate) and pools the estimation errors of the windows
whose labels are complete (``quality.estimated.<headline>.error_z``): estimates whose errors
are far larger than their bands allow are *unreliable*, and the route says the likely cause.
"""

from __future__ import annotations

import math

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, Field

from api.deps import StoreDep
from api.params import ModelName, Stage, Version, cut_of
from api.schemas import error
from api.timeparse import iso
from detectors.estimation import errors_beyond_bands
from driftline.store import MetricPoint

router = APIRouter(prefix="/v1/models", tags=["quality"])

AVAILABLE = "quality.estimated.available"
RELIABILITY_WINDOWS = 20  # the newest complete windows pooled
MIN_RELIABILITY_WINDOWS = 5
RECENT_S = 30 * 86400  # how far back from the model's last window the verdicts are read
UNRELIABLE_P = 0.001  # errors this unlikely under the bands: the estimates are unreliable

WHAT_TO_SEND = {
    "no_labels": (
        "no labelled reference yet: send labels (POST /v1/labels, or the SDK's log_label) for "
        "the model version's first windows, at least 30 a window for 5 windows; estimation is "
        "fitted on them and starts once they are in"
    ),
    "no_probabilities": (
        "the model sends hard classes, so there is nothing to estimate from: send each "
        "prediction as the positive class's probability (a number in [0, 1]) or as a list of "
        "class probabilities"
    ),
    "one_class": (
        "every label of the reference is the same class: estimation needs both outcomes among "
        "the labelled reference events"
    ),
}


class EstimatePublic(BaseModel):
    value: float
    lower: float | None = None
    upper: float | None = None


class ReliabilityPublic(BaseModel):
    windows: int = Field(description="complete windows (labels in) pooled, the newest first")
    mean_abs_error: float | None = Field(description="of the headline metric, estimated - measured")
    p_value: float | None = Field(
        description="chance of errors this large if the bands were right (chi-square of the "
        "standardised errors)"
    )
    reliable: bool | None = Field(description="None until enough windows are complete")
    concept_drift_windows: int = 0
    cause: str = ""


class EstimationPublic(BaseModel):
    model: str
    status: str = Field(description="estimating, unreliable, unavailable or no_labels")
    method: str | None = Field(description="cbpe (classifier probabilities) or dle (regressor)")
    reason: str = ""
    message: str = ""
    window_start: str | None = Field(None, description="the newest estimated window")
    version: str | None = None
    estimates: dict[str, EstimatePublic] = Field(default_factory=dict)
    reliability: ReliabilityPublic | None = None


@router.get(
    "/{model}/estimation",
    responses={404: error("the model has no stored windows (yet)")},
)
def read_estimation(
    model: ModelName,
    store: StoreDep,
    version: Version = None,
    stage: Stage = "",
    windows: int = Query(RELIABILITY_WINDOWS, ge=MIN_RELIABILITY_WINDOWS, le=1000),
) -> EstimationPublic:
    """Estimated quality (no labels needed): its status, the newest estimate, reliability."""
    row = next(iter(store.models(model)), None)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"model {model!r} has no stored windows yet")
    # the reads look back RECENT_S from the model's last window: bounded however old it is
    since = int(row["last_window"]) - RECENT_S
    segment = cut_of(store, model, "", version, stage)
    names = set(store.metric_names(model))
    verdicts = None
    if AVAILABLE in names:
        verdicts = _newest(
            store.metrics(
                model, name=AVAILABLE, segment=segment, stage=stage, start=since, limit=100_000
            )
        )
    if verdicts is None:  # the worker has not estimated a window of it: labels are missing
        return EstimationPublic(
            model=model,
            status="no_labels",
            method=None,
            reason="no_labels",
            message=WHAT_TO_SEND["no_labels"],
        )
    if not verdicts.value:
        reason = verdicts.category or "no_labels"
        return EstimationPublic(
            model=model,
            status="no_labels" if reason == "no_labels" else "unavailable",
            method=None,
            reason=reason,
            message=WHAT_TO_SEND.get(reason, f"no estimate: {reason}"),
            window_start=iso(verdicts.window_start),
            version=verdicts.version,
        )
    headline = "mae" if "quality.estimated.mae" in names else "accuracy"
    method = "cbpe" if headline == "accuracy" else "dle"
    start = verdicts.window_start
    newest = [
        p
        for p in store.metrics(model, start=start, end=start + 1, segment=segment, stage=stage)
        if p.metric.startswith("quality.estimated.") and not p.category
    ]
    estimates = _estimates(newest)
    reliability = _reliability(store, model, segment, stage, headline, windows, since)
    unreliable = reliability.reliable is False
    return EstimationPublic(
        model=model,
        status="unreliable" if unreliable else "estimating",
        method=method,
        message=reliability.cause if unreliable else "",
        window_start=iso(start),
        version=verdicts.version,
        estimates=estimates,
        reliability=reliability,
    )


def _newest(points: list[MetricPoint]) -> MetricPoint | None:
    return max(points, key=lambda p: p.window_start) if points else None


def _estimates(points: list[MetricPoint]) -> dict[str, EstimatePublic]:
    values = {p.metric: p.value for p in points}
    out = {}
    for name, value in values.items():
        short = name[len("quality.estimated.") :]
        if "." in short or short == "available" or not math.isfinite(value):
            continue
        lower, upper = values.get(name + ".lower"), values.get(name + ".upper")
        out[short] = EstimatePublic(value=value, lower=lower, upper=upper)
    return out


def _reliability(
    store: StoreDep,
    model: str,
    segment: str,
    stage: str,
    headline: str,
    windows: int,
    since: int,
) -> ReliabilityPublic:
    name = f"quality.estimated.{headline}"
    z = store.metrics(
        model, name=name + ".error_z", segment=segment, stage=stage, start=since, limit=100_000
    )
    z = sorted(z, key=lambda p: p.window_start)[-windows:]
    starts = {p.window_start for p in z}
    # the other figures of those windows only
    first, last = (min(starts), max(starts) + 1) if starts else (0, 0)

    def of(metric: str) -> list[MetricPoint]:
        return store.metrics(
            model, name=metric, segment=segment, stage=stage, start=first, end=last
        )

    errors = {p.window_start: p.value for p in of(name + ".error")}
    concept = sum(1 for p in of("drift.concept") if p.window_start in starts and p.value >= 1.0)
    finite = [p.value for p in z if math.isfinite(p.value)]
    if not finite:
        return ReliabilityPublic(windows=0, mean_abs_error=None, p_value=None, reliable=None)
    abs_errors = [abs(errors[s]) for s in starts if s in errors and math.isfinite(errors[s])]
    mean_abs = sum(abs_errors) / len(abs_errors) if abs_errors else None
    p_value = errors_beyond_bands(finite)
    reliable = None if len(finite) < MIN_RELIABILITY_WINDOWS else p_value >= UNRELIABLE_P
    cause = ""
    if reliable is False:
        if concept:
            cause = (
                f"concept drift was flagged in {concept} of these {len(finite)} windows: the "
                "same inputs now mean something else, which estimation cannot see (it assumes "
                "the reference's calibration holds). Trust the measured quality as labels land"
            )
        else:
            cause = (
                "the estimates miss the measured quality by more than their bands allow: the "
                "scores' calibration on the reference no longer holds (or the reference was "
                "too small). Retrain, or refresh the reference with recent labelled windows"
            )
    return ReliabilityPublic(
        windows=len(finite),
        mean_abs_error=mean_abs,
        p_value=p_value,
        reliable=reliable,
        concept_drift_windows=concept,
        cause=cause,
    )
