"""Retraining jobs: requested → queued → running → succeeded | failed | rejected.

The API and the alarm service only *request* a job: a ``driftline.messages.RetrainRequest`` on
``driftline.retrain-jobs``, keyed by model. The retrainer decides each request
(:meth:`JobStore.decide`) and writes the decision under the request's ``job_id``: a queued
job, or a refusal (``rejected``, never started, the reason in its log). The topic is keyed by
model, so one consumer decides all of a model's requests, one at a time and in order: at most
one active (queued or running) job per model, and none within the cooldown of the model's
previous job, however many API replicas and workers ask at once. ClickHouse has no
transactions, so a check-then-write by each requester could not promise that.

A job is a row per state change in ``retrain_jobs`` (ReplacingMergeTree by write time, read
with FINAL).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from driftline.messages import RetrainRequest
from driftline.store.base import Backend
from driftline.store.versions import WriteVersions

ACTIVE = ("queued", "running")
FINISHED = ("succeeded", "failed", "rejected")
COLUMNS = (
    "id",
    "model",
    "state",
    "reason",
    "alert_id",
    "rule_id",
    "requested_at",
    "started_at",
    "finished_at",
    "data_start",
    "data_end",
    "version",
    "metrics",
    "log",
    "written_at",
)


@dataclass(frozen=True)
class RetrainJob:
    id: str
    model: str
    state: str
    reason: str  # "alert", "manual"
    requested_at: float
    alert_id: str = ""
    rule_id: str = ""
    started_at: float | None = None
    finished_at: float | None = None
    data_start: float | None = None
    data_end: float | None = None
    version: str = ""  # the version it trained
    metrics: dict[str, Any] = field(default_factory=dict)
    log: tuple[str, ...] = ()

    @classmethod
    def new(cls, model: str, reason: str, *, alert_id: str = "", rule_id: str = "") -> RetrainJob:
        return cls(uuid.uuid4().hex, model, "queued", reason, time.time(), alert_id, rule_id)

    @classmethod
    def requested(cls, request: RetrainRequest) -> RetrainJob:
        """The job ``request`` asks for, before the decision."""
        return cls(
            request.job_id, request.model, "queued", request.reason, request.requested_at,
            request.alert_id, request.rule_id,
        )  # fmt: skip

    @property
    def refused(self) -> bool:
        """A request refused (a duplicate, or in the cooldown): rejected without starting."""
        return self.state == "rejected" and self.started_at is None

    def with_log(self, line: str, **changes: Any) -> RetrainJob:
        stamp = time.strftime("%H:%M:%SZ", time.gmtime())
        return replace(self, log=(*self.log, f"{stamp} {line}"), **changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "state": self.state,
            "reason": self.reason,
            "alert_id": self.alert_id or None,
            "rule_id": self.rule_id or None,
            "requested_at": self.requested_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "data_start": self.data_start,
            "data_end": self.data_end,
            "version": self.version or None,
            "metrics": self.metrics,
            "log": list(self.log),
        }


REFUSED = "not queued: "  # how a refusal's log line starts


@dataclass(frozen=True)
class Admission:
    """The decision on one request, as stored: the job it queued, or its refusal."""

    decision: RetrainJob

    @property
    def job(self) -> RetrainJob | None:
        """The admitted job (None: refused)."""
        return None if self.decision.refused else self.decision

    @property
    def why(self) -> str:
        """Why it was refused ("queued" when it was not)."""
        if not self.decision.refused:
            return "queued"
        line = self.decision.log[-1].partition(" ")[2] if self.decision.log else ""
        return line.removeprefix(REFUSED)


def admit(previous: Sequence[RetrainJob], now: float, cooldown_s: float) -> str | None:
    """Why a new job for this model must wait (None: it may be queued). ``previous``: the
    model's jobs. Every job that ran starts a cooldown, whatever its outcome; jobs refused as
    duplicates (rejected without starting) do not."""
    for job in previous:
        if job.state in ACTIVE:
            return f"job {job.id} is already {job.state} for this model"
    ran = [j.requested_at for j in previous if j.state in ("succeeded", "failed") or j.started_at]
    if ran and now - max(ran) < cooldown_s:
        wait = cooldown_s - (now - max(ran))
        return f"cooldown: the previous job was {now - max(ran):.0f} s ago; retry in {wait:.0f} s"
    return None


class JobStore:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._versions = WriteVersions()

    def _version(self) -> int:
        return self._versions.next()

    def write(self, job: RetrainJob) -> RetrainJob:
        self.backend.insert(
            "retrain_jobs",
            COLUMNS,
            [
                (
                    job.id,
                    job.model,
                    job.state,
                    job.reason,
                    job.alert_id,
                    job.rule_id,
                    job.requested_at,
                    job.started_at,
                    job.finished_at,
                    job.data_start,
                    job.data_end,
                    job.version,
                    orjson.dumps(job.metrics).decode(),
                    orjson.dumps(list(job.log)).decode(),
                    self._version(),
                )
            ],
        )
        return job

    def decide(self, request: RetrainRequest, cooldown_s: float) -> Admission:
        """Queue the job ``request`` asks for, or record why not (an active job, the cooldown).

        Only the admission owner calls this: the retrainer's consumer of the model's
        partition of ``driftline.retrain-jobs``, one request at a time. A request decided
        already (a replay after a crash) keeps its decision."""
        decided = self.job(request.job_id)
        if decided is not None:
            return Admission(decided)
        job = RetrainJob.requested(request)
        why = admit(self.standing(request.model), request.requested_at, cooldown_s)
        if why is None:
            return Admission(self.write(job.with_log(f"queued ({request.reason})")))
        refusal = job.with_log(f"{REFUSED}{why}", state="rejected", finished_at=time.time())
        return Admission(self.write(refusal))

    def standing(self, model: str, limit: int = 1000) -> list[RetrainJob]:
        """The model's jobs that bear on admission, newest first: active ones, and those that
        ran (each starts a cooldown). Refusals are left out, however many clients were
        refused. Filtered after grouping by id, never on FINAL rows: a state condition there
        may be applied before the latest row is picked (PREWHERE)."""
        rows = self.backend.execute(
            f"SELECT {', '.join(COLUMNS[:-1])} FROM retrain_jobs FINAL WHERE id IN ("
            "SELECT id FROM retrain_jobs WHERE model = %(model)s GROUP BY id "
            "HAVING argMax(state, written_at) != 'rejected' OR max(started_at) IS NOT NULL"
            ") ORDER BY requested_at DESC LIMIT %(limit)s",
            {"model": model, "limit": int(limit)},
        )
        return [_job(r) for r in rows]

    def jobs(
        self, model: str | None = None, state: str | None = None, limit: int = 1000
    ) -> list[RetrainJob]:
        """Newest first."""
        where: list[str] = []
        params: dict[str, Any] = {"limit": int(limit)}
        if model is not None:
            where.append("model = %(model)s")
            params["model"] = model
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self.backend.execute(
            f"SELECT {', '.join(COLUMNS[:-1])} FROM retrain_jobs FINAL {clause} "
            "ORDER BY requested_at DESC LIMIT %(limit)s",
            params,
        )
        jobs = [_job(r) for r in rows]
        return [j for j in jobs if state is None or j.state == state]

    def count_by_state(self) -> dict[str, int]:
        """How many jobs are in each state now (their latest row), every state included."""
        rows = self.backend.execute(
            "SELECT last_state, count() FROM ("
            "SELECT id, argMax(state, written_at) AS last_state FROM retrain_jobs GROUP BY id"
            ") GROUP BY last_state"
        )
        counts = dict.fromkeys((*ACTIVE, *FINISHED), 0)
        counts.update({str(state): int(n) for state, n in rows})
        return counts

    def job(self, job_id: str) -> RetrainJob | None:
        rows = self.backend.execute(
            f"SELECT {', '.join(COLUMNS[:-1])} FROM retrain_jobs FINAL WHERE id = %(id)s",
            {"id": job_id},
        )
        return _job(rows[0]) if rows else None


def _job(r: Sequence[Any]) -> RetrainJob:
    return RetrainJob(
        id=str(r[0]),
        model=str(r[1]),
        state=str(r[2]),
        reason=str(r[3]),
        alert_id=str(r[4]),
        rule_id=str(r[5]),
        requested_at=float(r[6]),
        started_at=None if r[7] is None else float(r[7]),
        finished_at=None if r[8] is None else float(r[8]),
        data_start=None if r[9] is None else float(r[9]),
        data_end=None if r[10] is None else float(r[10]),
        version=str(r[11]),
        metrics=orjson.loads(r[12]) if r[12] else {},
        log=tuple(orjson.loads(r[13])) if r[13] else (),
    )
