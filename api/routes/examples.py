"""Labelled examples of a model, for error analysis: its stored predictions joined with their
latest labels, each judged as the quality pass judges it (``detectors.quality.pair_errors``).

One read takes at most ``EXAMPLES_MAX_ROWS`` candidates, the newest labelled predictions of
the range (``LabelStore.examples``); filters, sampling and paging run over those. Each row
carries its tags (``api/routes/tags.py``): the example tags of its id and the rule tags whose
condition holds for it, evaluated here, at read time.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, HTTPException, Query, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from api.deps import LabelStoreDep, TagStoreDep
from api.errors import invalid
from api.params import MAX_NAME, MAX_TAG, TAG_PATTERN, ModelName, Stage
from api.routes.tags import not_found
from api.schemas import error
from api.timeparse import MAX_TIME_LENGTH, parse_time
from detectors.conditions import Condition, ConditionError, parse
from detectors.quality import pair_errors
from driftline.cuts import RESERVED
from driftline.store.labels import EXAMPLES_MAX_ROWS, Joined, LabelStore
from driftline.store.tags import RuleTag

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/models", tags=["examples"])

MAX_LIMIT = 1000
# the labelled read's range and version (the error analysis takes them too)
OnlyVersion = Annotated[
    str | None, Query(min_length=1, max_length=MAX_NAME, description="only this version")
]
FromEventTime = Annotated[
    str | None,
    Query(max_length=MAX_TIME_LENGTH, description="from this event time (epoch s, RFC 3339)"),
]
BeforeEventTime = Annotated[
    str | None, Query(max_length=MAX_TIME_LENGTH, description="before this event time")
]
Sample = Literal["newest", "random", "stratified"]
Format = Literal["json", "jsonl", "csv", "parquet"]
MEDIA_TYPES: dict[str, str] = {
    "jsonl": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
}
# the columns of csv and parquet before the flattened features and segment
# (``tags``: the row's tags joined by ';', which no tag name holds)
COLUMNS = ("id", "ts", "version", "prediction", "label", "correct", "error", "label_ts", "tags")


class ExamplePublic(BaseModel):
    id: str
    ts: str = Field(description="the prediction's event time (RFC 3339)")
    version: str
    features: dict[str, Any]
    segment: dict[str, str]
    prediction: Any
    label: Any = Field(description="the latest label of the id")
    correct: bool | None = Field(
        description="classification: whether the prediction was right (None: regression, or "
        "a pair that cannot be scored)"
    )
    error: float | None = Field(
        description="0/1 (misclassified) for classification, |prediction - label| for "
        "regression; None when the pair cannot be scored"
    )
    label_ts: str = Field(description="the latest label's time (RFC 3339)")
    tags: list[str] = Field(
        description="sorted: the example tags naming its id and the rule tags whose condition "
        "holds for it (GET /v1/models/{model}/tags)"
    )


class ExamplesPublic(BaseModel):
    model: str
    stage: str
    task: Literal["classification", "regression"] | None = Field(
        description="inferred from the candidates' pairs, as the quality pass does"
    )
    candidates: int = Field(description="labelled predictions read (newest first)")
    truncated: bool = Field(
        description=f"the read stopped at {EXAMPLES_MAX_ROWS} candidates: older ones were "
        "not considered (narrow start/end)"
    )
    total: int = Field(description="candidates that pass the filters")
    offset: int
    next_offset: int | None = Field(description="the next page's offset; None: the last page")
    rows: list[ExamplePublic]


def _segment(text: str) -> tuple[str, str] | None:
    if text == "":
        return None
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise invalid(("query", "segment"), "segment is key=value, e.g. channel=mobile", text)
    if key.startswith(RESERVED):
        raise invalid(("query", "segment"), "a segment key never starts with '@'", text)
    return key, value


def _rfc3339(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _rank(seed: int, key: str) -> bytes:
    """A row's place in the seed's shuffle: the same for the same seed and id, whatever else
    the read holds, so pages of one seed stay put."""
    return hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest()


def _subject(j: Joined, task: str | None, err: float | None) -> dict[str, Any]:
    """What a rule tag's condition reads of a row."""
    return {
        "features": j.event.get("features") or {},
        "segment": j.event.get("segment") or {},
        "prediction": j.event.get("prediction"),
        "label": j.label,
        "correct": None if task != "classification" or err is None else err == 0.0,
        "error": err,
    }


def _row(
    j: Joined,
    task: str | None,
    err: float | None,
    tagged: set[str],
    rules: dict[str, Condition],
) -> dict[str, Any]:
    subject = _subject(j, task, err)
    held = {name for name, condition in rules.items() if condition.holds(subject)}
    return {
        "id": j.id,
        "ts": _rfc3339(j.ts),
        "version": j.version,
        "features": subject["features"],
        "segment": subject["segment"],
        "prediction": subject["prediction"],
        "label": j.label,
        "correct": subject["correct"],
        "error": err,
        "label_ts": _rfc3339(j.label_ms / 1000),
        "tags": sorted(tagged | held),
    }


def _conditions(rules: Sequence[RuleTag]) -> dict[str, Condition]:
    """The rule tags parsed; one stored condition that no longer parses is logged, not used."""
    parsed: dict[str, Condition] = {}
    for rule in rules:
        try:
            parsed[rule.tag] = parse(rule.condition)
        except ConditionError as exc:
            log.warning("rule tag %r left out: its condition does not parse: %s", rule.tag, exc)
    return parsed


Pair = tuple[Joined, float | None]


def _holding(pairs: list[Pair], task: str | None, condition: Condition) -> list[Pair]:
    return [(j, e) for j, e in pairs if condition.holds(_subject(j, task, e))]


def _flat_column(values: Sequence[Any]) -> list[Any]:
    """A column parquet and csv can hold: numbers, bools or strings as they are (None
    missing), and any other mix (or lists) as JSON text."""
    kinds = {type(v) for v in values} - {type(None)}
    if kinds <= {int, float}:
        return [None if v is None else float(v) for v in values] if float in kinds else list(values)
    if kinds in ({bool}, {str}):
        return list(values)
    return [None if v is None else orjson.dumps(v).decode() for v in values]


def _frame(rows: Sequence[dict[str, Any]]) -> Any:
    import pandas as pd

    features = sorted({name for r in rows for name in r["features"]})
    keys = sorted({key for r in rows for key in r["segment"]})
    columns: dict[str, list[Any]] = {c: [r[c] for r in rows] for c in COLUMNS}
    columns["tags"] = [";".join(r["tags"]) for r in rows]
    for name in features:
        columns[f"feature.{name}"] = [r["features"].get(name) for r in rows]
    for key in keys:
        columns[f"segment.{key}"] = [r["segment"].get(key) for r in rows]
    flat = {name: _flat_column(values) for name, values in columns.items()}
    return pd.DataFrame({name: pd.Series(v, dtype=object) for name, v in flat.items()})


def _render(page: ExamplesPublic, rows: list[dict[str, Any]], fmt: Format) -> Response:
    headers = {
        "X-Total-Count": str(page.total),
        "X-Candidates-Truncated": "true" if page.truncated else "false",
    }
    if page.next_offset is not None:
        headers["X-Next-Offset"] = str(page.next_offset)
    if fmt == "jsonl":
        body = b"".join(orjson.dumps(r) + b"\n" for r in rows)
    elif fmt == "csv":
        body = _frame(rows).to_csv(index=False).encode()
    else:
        buffer = io.BytesIO()
        frame = _frame(rows)
        for name in frame.columns:  # object columns of one kind: let pandas type them
            frame[name] = frame[name].infer_objects()
        frame.to_parquet(buffer, index=False)
        body = buffer.getvalue()
    return Response(body, media_type=MEDIA_TYPES[fmt], headers=headers)


ROW_HEADERS = {
    "X-Total-Count": {"description": "rows passing the filters", "schema": {"type": "integer"}},
    "X-Next-Offset": {
        "description": "the next page's offset (absent on the last page)",
        "schema": {"type": "integer"},
    },
    "X-Candidates-Truncated": {
        "description": f"true: the read stopped at {EXAMPLES_MAX_ROWS} candidates",
        "schema": {"type": "string", "enum": ["true", "false"]},
    },
}


@router.get(
    "/{model}/examples",
    response_model=ExamplesPublic,
    responses={
        200: {
            "description": "a page of rows: JSON (with paging), or JSON lines, CSV or Parquet "
            "(paging in the headers)",
            "content": {
                "application/x-ndjson": {"schema": {"type": "string"}},
                "text/csv": {"schema": {"type": "string"}},
                "application/vnd.apache.parquet": {
                    "schema": {"type": "string", "format": "binary"}
                },
            },
            "headers": ROW_HEADERS,
        },
        404: error("no labels are stored for the model (and stage), or it has no such tag"),
    },
)
async def read_examples(
    model: ModelName,
    labels: LabelStoreDep,
    tag_store: TagStoreDep,
    stage: Stage = "",
    version: OnlyVersion = None,
    segment: Annotated[
        str, Query(max_length=2 * MAX_NAME + 1, description="only events with segment key=value")
    ] = "",
    start: FromEventTime = None,
    end: BeforeEventTime = None,
    tag: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=MAX_TAG,
            pattern=TAG_PATTERN,
            description="only the examples carrying this tag (an example or a rule tag)",
        ),
    ] = None,
    errors: Annotated[bool, Query(description="only the wrong ones (error >= min_error)")] = False,
    min_error: Annotated[
        float | None,
        Query(
            gt=0,
            le=1e300,
            description="what counts as wrong: error >= this (default 1, misclassified, for a "
            "classifier; a regressor needs one for errors= and sample=stratified)",
        ),
    ] = None,
    sample: Annotated[
        Sample,
        Query(
            description="newest first; random (seeded); stratified: wrong and right ones "
            "alternating, equal numbers where there are enough (seeded; unscorable rows left "
            "out)"
        ),
    ] = "newest",
    seed: Annotated[int, Query(ge=0, le=2**63 - 1, description="the shuffle's seed")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    offset: Annotated[int, Query(ge=0, le=EXAMPLES_MAX_ROWS)] = 0,
    format: Annotated[Format, Query(description="json, jsonl, csv or parquet")] = "json",
) -> Response | ExamplesPublic:
    """Labelled predictions of a model with their latest labels, each judged right or wrong
    as the quality pass judges it: for error analysis.

    The read takes the newest ``EXAMPLES_MAX_ROWS`` (100,000) labelled predictions of the range
    (``start``/``end`` on event time); ``errors``, ``segment``, sampling and paging apply to
    those. csv and parquet flatten ``features`` to ``feature.<name>`` columns and ``segment``
    to ``segment.<key>`` (lists and mixed columns as JSON text), and ``tags`` to text joined
    by ``;``.
    """
    cut = _segment(segment)
    read = await read_labelled(labels, model, stage, start, end, version, cut)
    task, judged = pair_errors([j.event.get("prediction") for j in read], [j.label for j in read])
    pairs = list(zip(read, judged, strict=True))
    if cut is not None:
        key, value = cut
        pairs = [(j, e) for j, e in pairs if (j.event.get("segment") or {}).get(key) == value]
    rules = _conditions(await run_in_threadpool(tag_store.rule_tags, model, stage))
    if tag is not None and tag in rules:
        pairs = await run_in_threadpool(_holding, pairs, task, rules[tag])
    elif tag is not None:
        named = await run_in_threadpool(tag_store.ids_with, model, stage, tag)
        if not named:
            raise not_found(model, stage, tag)
        pairs = [(j, e) for j, e in pairs if j.id in named]
    if task == "regression" and min_error is None and (errors or sample == "stratified"):
        name = "errors" if errors else "sample"
        raise invalid(
            ("query", name),
            f"model {model!r} is a regressor: every prediction has an error; say which are "
            "wrong with min_error= (an absolute error)",
            errors if errors else sample,
        )
    bar = 1.0 if min_error is None else min_error
    if errors:
        pairs = [(j, e) for j, e in pairs if e is not None and e >= bar]
    if sample == "random":
        pairs.sort(key=_by(seed))
    elif sample == "stratified":
        wrong = sorted((p for p in pairs if p[1] is not None and p[1] >= bar), key=_by(seed))
        right = sorted((p for p in pairs if p[1] is not None and p[1] < bar), key=_by(seed))
        pairs = [p for two in zip(wrong, right, strict=False) for p in two]
        shorter = min(len(wrong), len(right))
        pairs += wrong[shorter:] + right[shorter:]
    shown = pairs[offset : offset + limit]
    tagged = await run_in_threadpool(tag_store.tags_of, model, stage, [j.id for j, _ in shown])
    rows = [_row(j, task, e, tagged.get(j.id, set()), rules) for j, e in shown]
    after = offset + len(rows)
    page = ExamplesPublic(
        model=model,
        stage=stage,
        task=task,
        candidates=len(read),
        truncated=len(read) >= EXAMPLES_MAX_ROWS,
        total=len(pairs),
        offset=offset,
        next_offset=after if after < len(pairs) else None,
        rows=[ExamplePublic(**r) for r in rows],
    )
    if format == "json":
        return page
    return await run_in_threadpool(_render, page, rows, format)


async def read_labelled(
    labels: LabelStore,
    model: str,
    stage: str,
    start: str | None,
    end: str | None,
    version: str | None,
    segment: tuple[str, str] | None = None,
) -> list[Joined]:
    """The bounded read behind the examples and the error analysis: the newest labelled
    predictions of the range; a 422 for a range that ends before it starts, a 404 that says
    what to send for a unit without labels."""
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
    return await run_in_threadpool(
        labels.examples, model, stage, start=lo, end=hi, version=version, segment=segment
    )


def _by(seed: int) -> Callable[[Pair], bytes]:
    def key(pair: Pair) -> bytes:
        return _rank(seed, pair[0].id)

    return key
