"""``GET /v1/models/{model}/error-analysis``: one row per group of labelled examples (each
declared segment value, and each tag), ranked by potential gain (``detectors/error_analysis.py``).

It reads the same labelled examples as ``/examples`` (the newest ``EXAMPLES_MAX_ROWS`` of the
range), judged as the quality pass judges them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from api.deps import LabelStoreDep, TagStoreDep
from api.errors import invalid
from api.params import ModelName, Stage
from api.routes.examples import (
    BeforeEventTime,
    FromEventTime,
    OnlyVersion,
    _conditions,
    _subject,
    read_labelled,
)
from api.schemas import error
from detectors.error_analysis import error_table, slice_rows
from detectors.slices import Slice
from driftline.findings import failing_slices, judged
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
    q_value: float | None = Field(
        None,
        description="a discovered slice's: that its error is higher than the rest's, "
        "Benjamini-Hochberg adjusted over every slice the search evaluated",
    )


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
    version: OnlyVersion = None,
    start: FromEventTime = None,
    end: BeforeEventTime = None,
    baseline: Annotated[
        list[str],
        Query(
            max_length=MAX_BASELINES,
            description="the error a group could reach (e.g. human level): a number for every "
            "group, or name=number for one (segment key=value or a tag), repeatable",
        ),
    ] = [],  # noqa: B006 (FastAPI copies a query list's default)
    min_size: Annotated[int, Query(ge=1, le=EXAMPLES_MAX_ROWS)] = 30,
    discover: Annotated[
        bool,
        Query(
            description="also search for slices where the model fails (binned features, "
            "categories and segments, up to 3 together; SliceLine scoring, an exact test per "
            "slice, Benjamini-Hochberg)"
        ),
    ] = True,
    slices: Annotated[int, Query(ge=1, le=20, description="discovered slices, at most")] = 5,
) -> ErrorAnalysisPublic:
    """Where the model's errors are: each declared segment value and each tag (example tags,
    and rule tags evaluated on the examples) of its labelled examples, with its share of data
    and of errors, its error and the gap to the overall one, ranked by potential gain,
    (error - baseline) x share of data: what fixing the group would take off the overall
    error."""
    named, default = _baselines(baseline)
    read = await read_labelled(labels, model, stage, start, end, version)
    rules = await run_in_threadpool(tag_store.rule_tags, model, stage)
    return await run_in_threadpool(
        _table, model, stage, read, named, default, min_size, tag_store, rules, discover and slices
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
    discover: int = 0,
) -> ErrorAnalysisPublic:
    examples = judged(read)
    task, errors = examples.task, examples.errors
    scored = list(zip(examples.rows, errors, strict=True))
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
    if discover:
        found = [
            s
            for s in failing_slices(examples, discover)
            if not _declared(s, groups)  # a segment value alone is a row already
        ]
        table = sorted(
            [*table, *slice_rows(overall, found, named, default_baseline=default)],
            key=lambda r: (-r.potential_gain, -r.error, r.kind, r.name),
        )
    return ErrorAnalysisPublic(
        model=model,
        stage=stage,
        task=task,
        examples=overall.size,
        truncated=len(read) >= EXAMPLES_MAX_ROWS,
        error=overall.error,
        rows=[GroupPublic(**vars(r)) for r in table],
    )


def _declared(found: Slice, groups: dict[tuple[str, str], list[int]]) -> bool:
    """A slice of one value of a segment key, or of a feature the segment key repeats (the
    search leaves such a key out, ``driftline.findings.slice_columns``)."""
    [(feature, condition), *more] = found.predicates
    if more or not condition.startswith("== "):
        return False
    key = feature.removeprefix("segment.")
    return feature != key or ("segment", f"{key}={condition[3:]}") in groups
