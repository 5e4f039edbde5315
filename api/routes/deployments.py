"""Deployments: bring a candidate version in beside a baseline (canary: step by step; blue-
green: all at once), judged by the worker window by window (``streams/deployments.py``)."""

from __future__ import annotations

import itertools
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.auth import ADMIN_ONLY
from api.deps import IngestDep, SettingsDep, StoreDep, StoresDep
from api.errors import invalid
from api.limits import ConfigBodyRoute
from api.params import MAX_NAME, ModelName
from api.schemas import error
from api.timeparse import iso
from driftline import topics
from driftline.messages import ModelUpdate
from driftline.store.deployments import (
    ACTIVE,
    CANARY_STEP,
    GATES,
    Deployment,
    DeploymentStore,
    StepVerdict,
    judge_config,
    split_update,
)

router = APIRouter(prefix="/v1/models", tags=["deployments"], route_class=ConfigBodyRoute)
Version = Annotated[str, Field(min_length=1, max_length=MAX_NAME)]
DeploymentId = Annotated[str, Path(max_length=100)]


class DeploymentCreate(BaseModel):
    """A canary (``steps``: the candidate's share per step, in %, ending at 100) or a blue-green
    switch (one step at 100 %). ``gates``: the judge's tolerances and minimums."""

    model_config = ConfigDict(extra="forbid", strict=True)

    strategy: Literal["canary", "blue_green"]
    baseline: Version = Field(description="the version serving now")
    candidate: Version = Field(description="the version brought in")
    steps: list[float] = Field(default_factory=lambda: [5.0, 25.0, 50.0, 100.0], max_length=20)
    step_windows: int = Field(3, ge=1, le=1000, description="windows each step is judged over")
    gates: dict[str, float] = Field(
        default_factory=dict,
        description=f"judge settings: {', '.join(GATES)} (detectors/canary.py CanaryConfig)",
    )

    @model_validator(mode="after")
    def _valid_plan(self) -> DeploymentCreate:
        if self.baseline == self.candidate:
            raise ValueError("the candidate must be another version than the baseline")
        if self.strategy == "blue_green":
            if self.steps not in ([5.0, 25.0, 50.0, 100.0], [100.0]):
                raise ValueError("a blue_green switch has one step, at 100: leave 'steps' out")
            self.steps = [100.0]
        steps = self.steps
        if not steps or steps[-1] != 100:
            raise ValueError(f"steps must end at 100 (all traffic to the candidate); got {steps}")
        if any(not 0 < s <= 100 for s in steps) or any(
            a >= b for a, b in itertools.pairwise(steps)
        ):
            raise ValueError(f"steps must rise strictly, each in (0, 100]; got {steps}")
        return self


class VerdictPublic(BaseModel):
    window_start: str
    step: int
    share: float = Field(description="the candidate's share (%) during the step")
    decision: Literal["promote", "hold", "rollback", "wait"]
    reason: str
    evidence: dict[str, Any]


class DeploymentPublic(BaseModel):
    id: str
    model: str
    strategy: str
    baseline: str
    candidate: str
    steps: list[float]
    step_windows: int
    gates: dict[str, float]
    state: Literal["active", "promoted", "rolled_back"]
    step: int
    share: float = Field(description="the candidate's share of the traffic now (%)")
    split: dict[str, float] = Field(description="version -> share (%) serving should apply")
    step_started: str
    reason: str
    by: str = Field(description="who or what ended it: judge, rule:<id>, or a person")
    created_at: str
    updated_at: str
    verdicts: list[VerdictPublic] = Field(default_factory=list)


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    by: str = Field("api", min_length=1, max_length=200, description="who asks for it")
    reason: str = Field("rolled back through the API", max_length=2000)


def _public(d: Deployment, verdicts: list[StepVerdict] | None = None) -> DeploymentPublic:
    return DeploymentPublic(
        id=d.id,
        model=d.model,
        strategy=d.strategy,
        baseline=d.baseline,
        candidate=d.candidate,
        steps=list(d.steps),
        step_windows=d.step_windows,
        gates=dict(d.gates),
        state=d.state,
        step=d.step,
        share=d.share,
        split=d.split(),
        step_started=iso(d.step_started),
        reason=d.reason,
        by=d.by,
        created_at=iso(int(d.created_at)),
        updated_at=iso(int(d.updated_at)),
        verdicts=[
            VerdictPublic(
                window_start=iso(v.window_start),
                step=v.step,
                share=v.share,
                decision=v.decision,
                reason=v.reason,
                evidence=dict(v.evidence),
            )
            for v in verdicts or []
        ],
    )


def _deployments(stores: Any) -> DeploymentStore:
    store: DeploymentStore = stores.deployments
    return store


def _found(deployments: DeploymentStore, model: str, deployment_id: str) -> Deployment:
    found = deployments.deployment(deployment_id)
    if found is None or found.model != model:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"no deployment {deployment_id!r} of {model!r}: GET /v1/models/{model}/deployments",
        )
    return found


async def _announce(ingest: Any, update: ModelUpdate, done: str) -> None:
    """Publish the split on driftline.model-updates; a 503 saying what was ``done`` if not."""
    try:
        await run_in_threadpool(ingest.publish, topics.MODEL_UPDATES, update.key, update.to_bytes())
    except Exception as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"{done}, but its traffic split could not be sent on Kafka at {ingest.bootstrap} "
            f"({exc}): serving code has not been told; apply the split by hand",
        ) from exc


@router.post(
    "/{model}/deployments",
    status_code=status.HTTP_201_CREATED,
    responses={
        **ADMIN_ONLY,
        409: error("the model has an active deployment already"),
        503: error("stored, but Kafka did not take the traffic split"),
    },
)
async def create_deployment(
    model: ModelName,
    body: DeploymentCreate,
    store: StoreDep,
    stores: StoresDep,
    ingest: IngestDep,
    settings: SettingsDep,
) -> DeploymentPublic:
    """Start a deployment: stored, and its first traffic split announced on
    ``driftline.model-updates`` (``split``: version -> share; the SDK's ``TrafficSplit``
    follows it). The worker judges every window from then on: a step is promoted after
    ``step_windows`` windows without harm, and rolled back as soon as a harm is proven."""
    known = await run_in_threadpool(store.model_versions, model)
    if body.baseline not in known:
        shown = ", ".join(repr(v) for v in known[:20]) or "none yet"
        raise invalid(
            ("body", "baseline"),
            f"baseline {body.baseline!r} has no stored windows for model {model!r} "
            f"(versions: {shown}): the baseline is the version serving now",
            body.baseline,
        )
    try:
        judge_config(Deployment("", model, body.strategy, "", "", (100.0,), 1, body.gates))
    except (TypeError, ValueError) as exc:
        raise invalid(("body", "gates"), f"bad gates: {exc}", body.gates) from None
    w = settings.window_seconds
    first = (int(time.time()) // w) * w
    try:
        deployment = await run_in_threadpool(
            _deployments(stores).create,
            model,
            body.strategy,
            body.baseline,
            body.candidate,
            body.steps,
            body.step_windows,
            body.gates,
            first,
        )
    except ValueError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    update = split_update(deployment, CANARY_STEP, "deployment started", time.time())
    await _announce(ingest, update, f"deployment {deployment.id} is stored")
    return _public(deployment)


@router.get("/{model}/deployments")
def read_deployments(model: ModelName, stores: StoresDep) -> list[DeploymentPublic]:
    """The model's deployments, newest first (their verdicts: ``GET …/deployments/{id}``)."""
    return [_public(d) for d in _deployments(stores).deployments(model)]


@router.get("/{model}/deployments/{deployment_id}", responses={404: error("no such deployment")})
def read_deployment(
    model: ModelName, deployment_id: DeploymentId, stores: StoresDep
) -> DeploymentPublic:
    """One deployment with the judge's verdict for every window, oldest first."""
    deployments = _deployments(stores)
    found = _found(deployments, model, deployment_id)
    return _public(found, deployments.verdicts(deployment_id))


@router.post(
    "/{model}/deployments/{deployment_id}/rollback",
    responses={
        **ADMIN_ONLY,
        404: error("no such deployment"),
        409: error("the deployment has ended (and is not the model's latest, promoted)"),
        503: error("rolled back, but Kafka did not take the traffic split"),
    },
)
async def rollback_deployment(
    model: ModelName,
    deployment_id: DeploymentId,
    stores: StoresDep,
    ingest: IngestDep,
    body: RollbackRequest | None = None,
) -> DeploymentPublic:
    """Send all traffic back to the baseline now, with a record of who asked and why: an
    active deployment, or the model's latest one after it was promoted (the previous champion
    serves again)."""
    request = body or RollbackRequest()
    deployments = _deployments(stores)
    found = await run_in_threadpool(_found, deployments, model, deployment_id)
    if found.state != ACTIVE:
        # a promoted one can still be undone while it is the model's latest: a blue-green
        # switch (or a finished canary) switched back to its baseline
        newest = (await run_in_threadpool(deployments.deployments, model))[0]
        if found.state != "promoted" or newest.id != found.id:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"deployment {deployment_id} has ended ({found.state}); of the ended ones, "
                "only the model's latest, promoted, can be rolled back",
            )
    done = await run_in_threadpool(
        deployments.update, found, state="rolled_back", by=request.by, reason=request.reason
    )
    update = split_update(done, "rolled_back", request.reason, time.time())
    await _announce(ingest, update, f"deployment {deployment_id} is rolled back in the store")
    return _public(done)
