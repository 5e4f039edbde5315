"""Retraining jobs and model versions (``retrainer/``): queue, list, promote, roll back."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, status
from fastapi.concurrency import run_in_threadpool
from kafka.errors import KafkaError
from pydantic import BaseModel, ConfigDict, Field

from api.auth import ADMIN_ONLY
from api.deps import IngestDep, JobStoreDep, RegistryDep, StoresDep
from api.errors import invalid
from api.limits import StrictJSONRoute
from api.params import MAX_NAME
from api.schemas import error
from driftline import topics
from driftline.messages import RetrainRequest
from driftline.store.jobs import Admission, RetrainJob
from retrainer.registry import VersionNotFound
from retrainer.worker import promote_version

router = APIRouter(prefix="/v1", tags=["retraining"], route_class=StrictJSONRoute)
# the registry's names (retrainer/registry.py): a model names a directory, versions count up
RegistryModel = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
RegistryVersion = Annotated[str, Path(pattern=r"^[1-9][0-9]{0,17}$")]
DECISION_WAIT_S = 10.0  # POST .../retrain: how long to wait for the retrainer's decision
DECISION_POLL_S = 0.1


class RetrainJobPublic(BaseModel):
    id: str
    model: str
    state: str = Field(
        description="queued, running, succeeded, failed or rejected; requested: asked for, "
        "not yet decided by the retrainer (only in the answer to POST .../retrain)"
    )
    reason: str = Field(description="alert or manual")
    alert_id: str | None
    rule_id: str | None
    requested_at: float
    started_at: float | None
    finished_at: float | None
    data_start: float | None = Field(description="labelled events trained on: from (epoch s)")
    data_end: float | None
    version: str | None = Field(description="the version it trained")
    metrics: dict[str, Any]
    log: list[str]


class VersionPublic(BaseModel):
    model: str
    version: str
    status: str = Field(description="candidate, champion, retired or rejected")
    created_at: float
    parent_version: str | None
    data_start: float
    data_end: float
    n_examples: int
    config: dict[str, Any]
    metrics: dict[str, Any]
    code_version: str | None
    warm_started: bool
    warm_start_skipped: str | None
    trigger: dict[str, Any] | None
    history: list[dict[str, Any]]


class VersionsPublic(BaseModel):
    model: str
    champion: str | None
    versions: list[VersionPublic]


class PromoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    reason: str = Field("", max_length=2000)


@router.get("/retrain-jobs")
def read_retrain_jobs(
    jobs: JobStoreDep,
    model: str | None = Query(None, max_length=MAX_NAME),
    state: str | None = Query(
        None, max_length=100, description="queued, running, succeeded, failed, rejected"
    ),
    limit: int = Query(100, ge=1, le=1000),
) -> list[RetrainJobPublic]:
    """Newest first, each with its reason (the alert), data range, metrics and log."""
    return [RetrainJobPublic(**job.to_dict()) for job in jobs.jobs(model, state, limit)]


@router.get("/retrain-jobs/{job_id}", responses={404: error("no job with this id")})
def read_retrain_job(
    job_id: Annotated[str, Path(max_length=100)], jobs: JobStoreDep
) -> RetrainJobPublic:
    job = jobs.job(job_id)
    if job is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"no retraining job {job_id!r} (a request not yet decided by the retrainer has none)",
        )
    return RetrainJobPublic(**job.to_dict())


@router.post(
    "/models/{model}/retrain",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        **ADMIN_ONLY,
        409: error("a job is active for the model, or it is cooling down"),
        503: error("Kafka did not take the request"),
    },
)
async def create_retrain_job(
    model: RegistryModel,
    jobs: JobStoreDep,
    ingest: IngestDep,
    wait: float = Query(
        DECISION_WAIT_S, ge=0, le=60, description="seconds to wait for the retrainer's decision"
    ),
) -> RetrainJobPublic:
    """Ask for a retraining job by hand. The retrainer decides, by the same rules as for
    alarms (one active job per model, the cooldown after the last one), however many clients
    and API replicas ask at once. Answers the queued job (202) or why not (409) once decided;
    ``requested`` (202) if not decided within ``wait`` s: follow its ``id`` with
    ``GET /v1/retrain-jobs/{id}``."""
    request = RetrainRequest.new(model, "manual")
    try:
        await run_in_threadpool(
            ingest.publish, topics.RETRAIN_JOBS, request.key, request.to_bytes()
        )
    except Exception as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"could not request the job on Kafka at {ingest.bootstrap}: {exc}",
        ) from exc
    deadline = time.monotonic() + wait
    while (job := await run_in_threadpool(jobs.job, request.job_id)) is None:
        if time.monotonic() >= deadline:
            requested = replace(RetrainJob.requested(request), state="requested").with_log(
                f"requested: not decided by the retrainer within {wait:g} s (is it running?)"
            )
            return RetrainJobPublic(**requested.to_dict())
        await asyncio.sleep(DECISION_POLL_S)
    admission = Admission(job)
    if admission.job is None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"not queued: {admission.why}")
    return RetrainJobPublic(**job.to_dict())


@router.get("/models/{model}/versions")
def read_versions(model: RegistryModel, registry: RegistryDep) -> VersionsPublic:
    """Every registered version, oldest first, with its data range, parameters, metrics and
    code version; ``champion`` is the one serving."""
    try:
        versions = registry.versions(model)
        champion = registry.champion(model)
    except ValueError as exc:
        raise invalid(("path", "model"), str(exc), model) from None
    return VersionsPublic(
        model=model,
        champion=champion.version if champion else None,
        versions=[VersionPublic(**v.to_dict()) for v in versions],
    )


@router.post(
    "/models/{model}/versions/{version}/promote",
    responses={
        **ADMIN_ONLY,
        404: error("no such version of the model"),
        409: error("the version cannot be promoted (e.g. it was rejected)"),
        503: error("promoted in the registry, but Kafka did not take the announcement"),
    },
)
async def promote_model_version(
    model: RegistryModel,
    version: RegistryVersion,
    stores: StoresDep,
    registry: RegistryDep,
    ingest: IngestDep,
    body: PromoteRequest | None = None,
) -> VersionPublic:
    """Serve ``version``: a candidate after review, or an earlier version (a rollback).
    Publishes ``driftline.model-updates`` and refreshes the version's reference profile."""
    reason = (body.reason if body else "") or "promoted through the API"
    try:
        info = await run_in_threadpool(
            promote_version,
            registry,
            stores,
            ingest.publish,
            model,
            version,
            reason,
        )
    except VersionNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except ValueError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except KafkaError as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"version {version} of {model!r} is the champion in the registry, but "
            f"driftline.model-updates could not be sent on Kafka at {ingest.bootstrap} ({exc}): "
            "serving code has not been told. Promote it again once Kafka is back.",
        ) from exc
    return VersionPublic(**info.to_dict())
