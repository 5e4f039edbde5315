"""``GET /v1/models/{model}/error-analysis``: one row per group of labelled examples (each
declared segment value, and each tag), ranked by potential gain (``detectors/error_analysis.py``).

It reads the same labelled examples as ``/examples`` (the newest ``EXAMPLES_MAX_ROWS`` of the
range), judged as the quality pass judges them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from api.deps import LabelStoreDep, TagStoreDep
from api.errors import invalid
from api.params import MAX_NAME, ModelName, Stage
from api.routes.examples import _conditions, _subject
from api.schemas import error
from api.timeparse import MAX_TIME_LENGTH, parse_time
from detectors.error_analysis import error_table
from detectors.quality import pair_errors
from driftline.store.labels import EXAMPLES_MAX_ROWS, Joined
from driftline.store.tags import RuleTag, TagStore

router = APIRouter(prefix="/v1/models", tags=["examples"])

MAX_BASELINES = 100


class GroupPublic(BaseModel):
    kind: Literal["segment", "tag", "slice"]
    name: str = Field(description="segment key=value, a tag's name, or a slice's predicates")
    size: int
    share_of_data: float
    share_of_errors: float
    error: float = Field(description="error rate (classification) or MAE (regression)")
    gap: float = Field(description="error minus the overall error")
    baseline: float | None = Field(description="the error the group could reach (yours)")
    potential_gain: float = Field(description="(error - baseline, or error) x share of data")


class ErrorAnalysisPublic(BaseModel):
    model: str
    stage: str
    task: Literal["classification", "regression"] | None
    examples: int = Field(description="labelled examples judged (scorable pairs)")
    truncated: bool = Field(
        description=f"the read stopped at {EXAMPLES_MAX_ROWS} labelled predictions (the newest)"
    )
    error: float = Field(description="the overall error rate or MAE")
    rows: list[GroupPublic]


def _baselines(values: list[str]) -> tuple[dict[str, float], float | None]:
    """``name=0.05`` per group, and a bare number for every other group."""
    named: dict[str, float] = {}
    default = None
    for text in values:
        name, sep, number = text.rpartition("=")
        try:
            value = float(number)
        except ValueError:
            value = float("nan")
        if not 0.0 <= value < float("inf"):
            raise invalid(
                ("query", "baseline"),
                "a baseline is a number >= 0 (the error a group could reach, e.g. human "
                "level), alone for every group or as name=number for one",
                text,
            )
        if sep:
            named[name] = value
        else:
            default = value
    return named, default


@router.get(
    "/{model}/error-analysis",
    responses={404: error("no labels are stored for the model (and stage)")},
)
async def read_error_analysis(
    model: ModelName,
    labels: LabelStoreDep,
    tag_store: TagStoreDep,
    stage: Stage = "",
    version: Annotated[
        str | None, Query(min_length=1, max_length=MAX_NAME, description="only this version")
    ] = None,
    start: Annotated[
        str | None,
        Query(max_length=MAX_TIME_LENGTH, description="from this event time (epoch s, RFC 3339)"),
    ] = None,
    end: Annotated[
        str | None, Query(max_length=MAX_TIME_LENGTH, description="before this event time")
    ] = None,
    baseline: Annotated[
        list[str],
        Query(
            max_length=MAX_BASELINES,
            description="the error a group could reach (e.g. human level): a number for every "
            "group, or name=number for one (segment key=value or a tag), repeatable",
        ),
    ] = [],  # noqa: B006 (FastAPI copies a query list's default)
    min_size: Annotated[int, Query(ge=1, le=EXAMPLES_MAX_ROWS)] = 30,
) -> ErrorAnalysisPublic:
    """Where the model's errors are: each declared segment value and each tag (example tags,
    and rule tags evaluated on the examples) of its labelled examples, with its share of data
    and of errors, its error and the gap to the overall one, ranked by potential gain,
    (error - baseline) x share of data: what fixing the group would take off the overall
    error."""
    named, default = _baselines(baseline)
    lo, hi = parse_time(start, "start"), parse_time(end, "end")
    if lo is not None and hi is not None and lo >= hi:
        raise invalid(("query", "end"), "'end' must be after 'start'", end)
    if not await run_in_threadpool(labels.has_labels, model, stage):
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"model {model!r} (stage {stage!r}) has no labels stored: send predictions with "
            "an 'id' to POST /v1/events, then their labels with the same 'id' to POST "
            "/v1/labels",
        )
    read = await run_in_threadpool(labels.examples, model, stage, start=lo, end=hi, version=version)
    rules = await run_in_threadpool(tag_store.rule_tags, model, stage)
    return await run_in_threadpool(
        _table, model, stage, read, named, default, min_size, tag_store, rules
    )


def _table(
    model: str,
    stage: str,
    read: list[Joined],
    named: dict[str, float],
    default: float | None,
    min_size: int,
    tag_store: TagStore,
    rules: list[RuleTag],
) -> ErrorAnalysisPublic:
    task, judged = pair_errors([j.event.get("prediction") for j in read], [j.label for j in read])
    scored = [(j, e) for j, e in zip(read, judged, strict=True) if e is not None]
    errors = [e for _, e in scored]
    groups: dict[tuple[str, str], list[int]] = {}
    for i, (j, _) in enumerate(scored):
        for key, value in (j.event.get("segment") or {}).items():
            groups.setdefault(("segment", f"{key}={value}"), []).append(i)
    tagged = tag_store.tags_of(model, stage, [j.id for j, _ in scored])
    conditions = _conditions(rules)
    for i, (j, e) in enumerate(scored):
        subject = _subject(j, task, e)
        held = {name for name, condition in conditions.items() if condition.holds(subject)}
        for name in tagged.get(j.id, set()) | held:
            groups.setdefault(("tag", name), []).append(i)
    overall, table = error_table(errors, groups, named, default_baseline=default, min_size=min_size)
    return ErrorAnalysisPublic(
        model=model,
        stage=stage,
        task=task,
        examples=overall.size,
        truncated=len(read) >= EXAMPLES_MAX_ROWS,
        error=overall.error,
        rows=[GroupPublic(**vars(r)) for r in table],
    )
