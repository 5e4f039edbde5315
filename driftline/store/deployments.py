"""Deployments: a candidate version brought in beside a baseline, step by step, and the
verdicts the canary judge gave each window.

The tables are ``schema.DEPLOYMENTS`` and ``schema.DEPLOYMENT_VERDICTS``. A deployment is a row
per change in ``deployments`` (ReplacingMergeTree by write time, read
with FINAL): ``active`` while it runs, then ``promoted`` or ``rolled_back``. ``step`` indexes
``steps`` (the candidate's traffic share, in %); ``step_started`` is the first window of the
step, from which the judge reads the two versions' stored figures. Verdicts are a row per
(deployment, window) in ``deployment_verdicts``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from detectors.canary import CanaryConfig
from driftline.messages import ModelUpdate
from driftline.store.base import Backend

ACTIVE = "active"
ENDED = ("promoted", "rolled_back")
STRATEGIES = ("canary", "blue_green")

COLUMNS = (
    "id",
    "model",
    "strategy",
    "baseline",
    "candidate",
    "steps",
    "step_windows",
    "gates",
    "state",
    "step",
    "step_started",
    "reason",
    "by",
    "created_at",
    "updated_at",
    "written_at",
)
VERDICT_COLUMNS = (
    "deployment_id",
    "model",
    "window_start",
    "step",
    "share",
    "decision",
    "reason",
    "evidence",
    "written_at",
)


@dataclass(frozen=True)
class Deployment:
    id: str
    model: str
    strategy: str
    baseline: str
    candidate: str
    steps: tuple[float, ...]  # the candidate's traffic share per step, in %, ending at 100
    step_windows: int
    gates: Mapping[str, float] = field(default_factory=dict)  # CanaryConfig overrides
    state: str = ACTIVE
    step: int = 0
    step_started: int = 0  # the first window (epoch s) of the current step
    reason: str = ""  # why it ended, or the last step's verdict
    by: str = ""  # who or what ended it: "judge", "rule:<id>", a person
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def share(self) -> float:
        """The candidate's traffic share now, in % (0 once rolled back)."""
        if self.state == "rolled_back":
            return 0.0
        if self.state == "promoted":
            return 100.0
        return self.steps[min(self.step, len(self.steps) - 1)]

    def split(self) -> dict[str, float]:
        """The traffic split serving code should apply now: version -> share (%)."""
        share = self.share
        split = {self.candidate: share, self.baseline: 100.0 - share}
        return {version: s for version, s in split.items() if s > 0}


@dataclass(frozen=True)
class StepVerdict:
    deployment_id: str
    model: str
    window_start: int
    step: int
    share: float
    decision: str  # promote | hold | rollback | wait
    reason: str
    evidence: Mapping[str, Any] = field(default_factory=dict)


class DeploymentStore:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._lock = threading.Lock()  # one create at a time: at most one active per model

    # -- deployments ----------------------------------------------------------------------
    def create(
        self,
        model: str,
        strategy: str,
        baseline: str,
        candidate: str,
        steps: Sequence[float],
        step_windows: int,
        gates: Mapping[str, float],
        step_started: int,
        now: float | None = None,
    ) -> Deployment:
        """A new active deployment, or ValueError when the model already has one."""
        with self._lock:
            running = self.active(model)
            if running is not None:
                raise ValueError(
                    f"model {model!r} already has an active deployment ({running.id}: "
                    f"{running.baseline} -> {running.candidate}); roll it back or let it end"
                )
            at = time.time() if now is None else now
            deployment = Deployment(
                uuid.uuid4().hex[:12],
                model,
                strategy,
                baseline,
                candidate,
                tuple(float(s) for s in steps),
                int(step_windows),
                dict(gates),
                step_started=int(step_started),
                created_at=at,
                updated_at=at,
            )
            self._write(deployment)
            return deployment

    def update(self, deployment: Deployment, **changes: Any) -> Deployment:
        changed = replace(deployment, **changes, updated_at=time.time())
        self._write(changed)
        return changed

    def _write(self, d: Deployment) -> None:
        row = (
            d.id,
            d.model,
            d.strategy,
            d.baseline,
            d.candidate,
            orjson.dumps(list(d.steps)).decode(),
            d.step_windows,
            orjson.dumps(dict(d.gates)).decode(),
            d.state,
            d.step,
            d.step_started,
            d.reason,
            d.by,
            d.created_at,
            d.updated_at,
            time.time_ns(),
        )
        self.backend.insert("deployments", COLUMNS, [row])

    def deployments(self, model: str | None = None) -> list[Deployment]:
        """Newest first."""
        where = "WHERE model = %(model)s" if model is not None else ""
        rows = self.backend.execute(
            f"SELECT {', '.join(COLUMNS[:-1])} FROM deployments FINAL {where} "
            "ORDER BY created_at DESC, id",
            {"model": model} if model is not None else None,
        )
        return [_deployment(r) for r in rows]

    def deployment(self, deployment_id: str) -> Deployment | None:
        rows = self.backend.execute(
            f"SELECT {', '.join(COLUMNS[:-1])} FROM deployments FINAL WHERE id = %(id)s",
            {"id": deployment_id},
        )
        return _deployment(rows[0]) if rows else None

    def active(self, model: str | None = None) -> Deployment | None:
        found = [d for d in self.deployments(model) if d.state == ACTIVE]
        return found[0] if found else None

    def all_active(self) -> list[Deployment]:
        return [d for d in self.deployments() if d.state == ACTIVE]

    # -- verdicts -------------------------------------------------------------------------
    def record_verdict(self, verdict: StepVerdict) -> None:
        row = (
            verdict.deployment_id,
            verdict.model,
            verdict.window_start,
            verdict.step,
            verdict.share,
            verdict.decision,
            verdict.reason,
            orjson.dumps(dict(verdict.evidence)).decode(),
            time.time_ns(),
        )
        self.backend.insert("deployment_verdicts", VERDICT_COLUMNS, [row])

    def verdicts(self, deployment_id: str, limit: int = 10_000) -> list[StepVerdict]:
        """Oldest window first."""
        rows = self.backend.execute(
            f"SELECT {', '.join(VERDICT_COLUMNS[:-1])} FROM deployment_verdicts FINAL "
            "WHERE deployment_id = %(id)s ORDER BY window_start LIMIT %(limit)s",
            {"id": deployment_id, "limit": int(limit)},
        )
        return [
            StepVerdict(
                str(r[0]),
                str(r[1]),
                int(r[2]),
                int(r[3]),
                float(r[4]),
                str(r[5]),
                str(r[6]),
                orjson.loads(r[7]) if r[7] else {},
            )
            for r in rows
        ]


def _deployment(r: Sequence[Any]) -> Deployment:
    return Deployment(
        id=str(r[0]),
        model=str(r[1]),
        strategy=str(r[2]),
        baseline=str(r[3]),
        candidate=str(r[4]),
        steps=tuple(float(s) for s in orjson.loads(r[5])),
        step_windows=int(r[6]),
        gates=orjson.loads(r[7]) if r[7] else {},
        state=str(r[8]),
        step=int(r[9]),
        step_started=int(r[10]),
        reason=str(r[11]),
        by=str(r[12]),
        created_at=float(r[13]),
        updated_at=float(r[14]),
    )


CANARY_STEP = "canary_step"  # a ModelUpdate event: the candidate's share changed
# the judge's settings a deployment's "gates" may set
GATES = (
    "alpha",
    "min_events",
    "min_labelled",
    "error_rate_tolerance",
    "null_rate_tolerance",
    "invalid_rate_tolerance",
    "latency_tolerance",
    "error_rate_margin",
    "null_rate_margin",
    "invalid_rate_margin",
    "latency_margin",
    "promote_alpha",
)


def judge_config(deployment: Deployment) -> CanaryConfig:
    """The judge of one deployment: its step length and its gates (ValueError when bad)."""
    gates = dict(deployment.gates)
    unknown = sorted(set(gates) - set(GATES))
    if unknown:
        raise ValueError(f"unknown gates {unknown}: a gate is one of {', '.join(GATES)}")
    ints = {"min_events", "min_labelled"}
    values = {k: int(v) if k in ints else float(v) for k, v in gates.items()}
    return CanaryConfig(step_windows=deployment.step_windows, **values)  # type: ignore[arg-type]


def split_update(deployment: Deployment, event: str, reason: str, at: float) -> ModelUpdate:
    """The announcement of a deployment's traffic split now."""
    if deployment.state == "rolled_back":
        version, previous = deployment.baseline, deployment.candidate
    else:
        version, previous = deployment.candidate, deployment.baseline
    return ModelUpdate(
        deployment.model, version, event, reason, at, previous, split=deployment.split()
    )
