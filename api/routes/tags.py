"""Tags on a model's labelled examples, added after the fact for error analysis.

Two kinds, one name space per unit (model, stage): an **example tag** names prediction ids
(``POST /v1/models/{model}/tags``); a **rule tag** holds a condition over an example's
features, segment, prediction and label (``PUT /v1/models/{model}/tags/{tag}``), evaluated
when examples are read, so it covers the stored examples and those stored later. A name is
one kind or the other (409 otherwise). ``GET /v1/models/{model}/examples`` shows each row's
tags and keeps the rows of one with ``tag=``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from api.alarm_schemas import STRICT_BODY
from api.auth import ADMIN_ONLY
from api.deps import TagStoreDep
from api.errors import invalid
from api.limits import ConfigBodyRoute
from api.params import MAX_NAME, MAX_TAG, TAG_PATTERN, ModelName, Stage, TagName
from api.schemas import Responses, error
from detectors.conditions import MAX_LENGTH, ConditionError, parse
from driftline.store.tags import ExampleTag, RuleTag, TagStore

router = APIRouter(prefix="/v1/models", tags=["tags"], route_class=ConfigBodyRoute)

MAX_IDS = 1000  # ids one request tags or untags
Id = Annotated[str, Field(min_length=1, max_length=MAX_NAME)]
NOT_FOUND: Responses = {404: error("the model (and stage) has no tag of this name")}
CONFLICT: Responses = {409: error("the name is a tag of the other kind")}


class ExampleTagCreate(BaseModel):
    """Tag these prediction ids (their ``id`` in ``POST /v1/events``); ids already tagged stay
    as they were. An id need not have a stored prediction yet."""

    model_config = STRICT_BODY

    tag: str = Field(
        min_length=1, max_length=MAX_TAG, pattern=TAG_PATTERN, examples=["mislabelled"]
    )
    ids: list[Id] = Field(min_length=1, max_length=MAX_IDS)


class ExampleTagWritten(BaseModel):
    model: str
    stage: str
    tag: str
    added: int = Field(description="ids newly tagged")
    count: int = Field(description="ids the tag names now")


class RuleTagCreate(BaseModel):
    """A condition over an example (the grammar: README, "Error analysis"), e.g.
    ``amount > 500 and country == "BR"``."""

    model_config = STRICT_BODY

    condition: str = Field(
        min_length=1,
        max_length=MAX_LENGTH,
        examples=['segment.channel == "mobile" and not correct'],
    )


class RuleTagPublic(BaseModel):
    tag: str
    condition: str
    created_at: str
    updated_at: str


class ExampleTagPublic(BaseModel):
    tag: str
    count: int = Field(description="ids it names")
    created_at: str = Field(description="when its oldest id was tagged")
    updated_at: str = Field(description="when its newest id was tagged")


class TagsPublic(BaseModel):
    model: str
    stage: str
    rules: list[RuleTagPublic]
    examples: list[ExampleTagPublic]


class TagPublic(BaseModel):
    tag: str
    kind: Literal["rule", "examples"]
    condition: str | None = Field(description="a rule tag's condition")
    count: int | None = Field(description="the ids an example tag names")
    created_at: str
    updated_at: str


def _time(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _rule(r: RuleTag) -> RuleTagPublic:
    return RuleTagPublic(
        tag=r.tag,
        condition=r.condition,
        created_at=_time(r.created_at),
        updated_at=_time(r.updated_at),
    )


def _examples(e: ExampleTag) -> ExampleTagPublic:
    return ExampleTagPublic(
        tag=e.tag, count=e.count, created_at=_time(e.created_at), updated_at=_time(e.updated_at)
    )


def _where(model: str, stage: str) -> str:
    return f"model {model!r}" + (f" (stage {stage!r})" if stage else "")


def not_found(model: str, stage: str, tag: str) -> HTTPException:
    return HTTPException(
        status.HTTP_404_NOT_FOUND,
        f"{_where(model, stage)} has no tag {tag!r}: GET /v1/models/{model}/tags lists them",
    )


def _conflict(model: str, stage: str, tag: str, kind: str) -> HTTPException:
    other = "a rule tag" if kind == "rule" else "an example tag"
    return HTTPException(
        status.HTTP_409_CONFLICT,
        f"{tag!r} is {other} of {_where(model, stage)}: a name is one kind of tag; pick "
        f"another name, or DELETE /v1/models/{model}/tags/{tag} first",
    )


@router.get("/{model}/tags")
async def read_tags(model: ModelName, tags: TagStoreDep, stage: Stage = "") -> TagsPublic:
    """The unit's rule tags (name, condition) and example tags (name, how many ids)."""
    rules = await run_in_threadpool(tags.rule_tags, model, stage)
    examples = await run_in_threadpool(tags.example_tags, model, stage)
    return TagsPublic(
        model=model,
        stage=stage,
        rules=[_rule(r) for r in rules],
        examples=[_examples(e) for e in examples],
    )


@router.post("/{model}/tags", responses={**ADMIN_ONLY, **CONFLICT})
async def tag_examples(
    model: ModelName, body: ExampleTagCreate, tags: TagStoreDep, stage: Stage = ""
) -> ExampleTagWritten:
    """Tag prediction ids (at most 1000 a request): an example tag, made on first use."""
    if await run_in_threadpool(tags.rule_tag, model, stage, body.tag):
        raise _conflict(model, stage, body.tag, "rule")
    added = await run_in_threadpool(tags.add_ids, model, stage, body.tag, body.ids)
    found = await run_in_threadpool(tags.example_tag, model, stage, body.tag)
    return ExampleTagWritten(
        model=model, stage=stage, tag=body.tag, added=added, count=found.count if found else 0
    )


@router.get("/{model}/tags/{tag}", responses=NOT_FOUND)
async def read_tag(
    model: ModelName, tag: TagName, tags: TagStoreDep, stage: Stage = ""
) -> TagPublic:
    """One tag: a rule tag's condition, or how many ids an example tag names (its rows:
    ``GET /v1/models/{model}/examples?tag=``)."""
    rule = await run_in_threadpool(tags.rule_tag, model, stage, tag)
    if rule is not None:
        shown = _rule(rule)
        return TagPublic(
            tag=tag,
            kind="rule",
            condition=rule.condition,
            count=None,
            created_at=shown.created_at,
            updated_at=shown.updated_at,
        )
    found = await run_in_threadpool(tags.example_tag, model, stage, tag)
    if found is None:
        raise not_found(model, stage, tag)
    listed = _examples(found)
    return TagPublic(
        tag=tag,
        kind="examples",
        condition=None,
        count=found.count,
        created_at=listed.created_at,
        updated_at=listed.updated_at,
    )


@router.put("/{model}/tags/{tag}", responses={**ADMIN_ONLY, **CONFLICT})
async def put_rule_tag(
    model: ModelName, tag: TagName, body: RuleTagCreate, tags: TagStoreDep, stage: Stage = ""
) -> RuleTagPublic:
    """Create or replace a rule tag: every example its condition holds for carries it, those
    stored before and after. A condition that does not parse is a 422 that says at which
    character and what was expected there."""
    try:
        parse(body.condition)
    except ConditionError as exc:
        raise invalid(
            ("body", "condition"),
            f"the condition does not parse: {exc}",
            body.condition,
            kind="condition_syntax",
            ctx={"position": exc.position, "expected": exc.expected, "found": exc.found},
        ) from None
    if await run_in_threadpool(tags.example_tag, model, stage, tag):
        raise _conflict(model, stage, tag, "examples")
    return _rule(await run_in_threadpool(tags.put_rule_tag, model, stage, tag, body.condition))


@router.delete(
    "/{model}/tags/{tag}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**ADMIN_ONLY, **NOT_FOUND},
)
async def delete_tag(
    model: ModelName,
    tag: TagName,
    tags: TagStoreDep,
    stage: Stage = "",
    id: Annotated[
        list[str] | None,
        Query(
            description="untag only these ids of an example tag (repeat: id=a&id=b; at most "
            f"{MAX_IDS}); without: delete the whole tag"
        ),
    ] = None,
) -> Response:
    """Delete a tag by name (rule or example tag), or, with ``id=``, untag those ids of an
    example tag (ids it does not name are skipped)."""
    if id is not None:
        _check_ids(id)
    await run_in_threadpool(_delete, tags, model, stage, tag, id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _check_ids(ids: list[str]) -> None:
    if len(ids) > MAX_IDS:
        raise invalid(("query", "id"), f"at most {MAX_IDS} ids a request", len(ids))
    for i, value in enumerate(ids):
        if not 1 <= len(value) <= MAX_NAME:
            raise invalid(("query", "id", i), f"an id is 1 to {MAX_NAME} characters", value)


def _delete(tags: TagStore, model: str, stage: str, tag: str, ids: list[str] | None) -> None:
    if tags.rule_tag(model, stage, tag) is not None:
        if ids is not None:
            raise invalid(
                ("query", "id"),
                f"{tag!r} is a rule tag: its examples are those its condition holds for, it "
                "names no ids (change the condition with PUT, or delete the tag)",
                ids,
            )
        tags.delete_rule_tag(model, stage, tag)
        return
    if tags.example_tag(model, stage, tag) is None:
        raise not_found(model, stage, tag)
    tags.remove_ids(model, stage, tag, ids)
