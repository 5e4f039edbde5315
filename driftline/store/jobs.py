"""Retraining jobs: queued → running → succeeded | failed | rejected.

A job is a row per state change in ``retrain_jobs`` (ReplacingMergeTree by write time, read
with FINAL). Whoever enqueues (the alarm service, the API) asks :meth:`JobStore.request`
first: at most one active (queued or running) job per model, and none within the cooldown of
the model's previous job. The retrainer checks again when it takes a job, so a race between
two enqueuers still trains once.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from driftline.store.base import Backend

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


@dataclass(frozen=True)
class Admission:
    job: RetrainJob | None  # None: refused
    why: str


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
        self._lock = threading.Lock()  # request(): check and write as one step in-process
        self._last_version = 0

    def _version(self) -> int:
        self._last_version = max(time.time_ns(), self._last_version + 1)
        return self._last_version

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

    def request(self, job: RetrainJob, cooldown_s: float) -> Admission:
        """Record ``job`` as queued unless the model has an active job or is cooling down."""
        with self._lock:
            why = admit(self.jobs(job.model), job.requested_at, cooldown_s)
            if why is not None:
                return Admission(None, why)
            return Admission(self.write(job.with_log(f"queued ({job.reason})")), "queued")

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
