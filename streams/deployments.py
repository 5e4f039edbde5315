"""Canary and blue-green deployments, judged in the worker as each window is stored.

For a model with an active deployment (``driftline/store/deployments.py``), every stored
window is judged: the baseline's and the candidate's own figures over the current step (their
version cuts: ``traffic.count``, ``traffic.invalid``, ``output.null_rate``, ``latency.p95``,
``labels.count`` and ``quality.error_rate``, read back from the store, so a restarted worker
judges as the one before it) go window by window to the sequential judge of
``detectors/canary.py``. Its verdict for the newest window is stored; ``promote`` moves the
deployment to its next step (or ends it, promoted, after 100 %), ``rollback`` ends it rolled
back. Each change is announced on ``driftline.model-updates`` with the traffic split serving
code should apply (``ModelUpdate.split``; the SDK's ``TrafficSplit`` follows it).

A blue-green deployment is one step at 100 %: the candidate takes all the traffic at once, and
is judged against the baseline's windows just before the switch.

The judging runs on a thread of its own (store reads), fed by the worker's ``on_stored`` hook.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from detectors.canary import ArmWindow, CanaryJudge, MetricEvidence, Verdict, Versus
from driftline.cuts import version_cut
from driftline.messages import PROMOTED, ROLLED_BACK, ModelUpdate
from driftline.store import Store
from driftline.store.deployments import (
    CANARY_STEP,
    ENDED,
    Deployment,
    DeploymentStore,
    StepVerdict,
    judge_config,
    split_update,
)

log = logging.getLogger(__name__)

Publish = Callable[[ModelUpdate], None]
Notify = Callable[[Deployment, str, str], None]  # (deployment, change, reason)
ARM_METRICS = (
    "traffic.count",
    "traffic.invalid",
    "output.null_rate",
    "latency.p95",
    "labels.count",
    "quality.error_rate",
    # on the cut of whichever version had less of the window: it against the other
    "versus.inputs.p_value",
    "versus.output.p_value",
)


@dataclass(frozen=True)
class ArmSeries:
    """One version's stored figures, per window start."""

    windows: Mapping[int, Mapping[str, float]]

    def arm(self, start: int) -> ArmWindow:
        figures = self.windows.get(start, {})
        events = int(figures.get("traffic.count", 0))
        labelled = int(figures.get("labels.count", 0))
        errors = round(figures.get("quality.error_rate", 0.0) * labelled)
        p95 = figures.get("latency.p95")
        return ArmWindow(
            events=events,
            invalid=min(events, int(figures.get("traffic.invalid", 0))),
            nulls=min(events, round(figures.get("output.null_rate", 0.0) * events)),
            labelled=labelled,
            errors=min(labelled, errors),
            latency_p95=p95 if events and p95 is not None and p95 > 0 else None,
        )

    def versus(self, start: int) -> Versus | None:
        """The window's comparison of this version's profile with the other's, if stored
        on this version's cut."""
        figures = self.windows.get(start, {})
        inputs, output = figures.get("versus.inputs.p_value"), figures.get("versus.output.p_value")
        if inputs is None and output is None:
            return None
        return Versus(_p_value(inputs), _p_value(output))


def _p_value(value: float | None) -> float | None:
    return None if value is None else min(max(value, 0.0), 1.0)


def read_arm(store: Store, model: str, version: str, start: int, end: int) -> ArmSeries:
    """A version's figures in the windows [start, end), from its cut (or the whole of the
    windows it had to itself)."""
    by_window: dict[int, dict[str, float]] = {}
    for metric in ARM_METRICS:
        for p in store.metrics(
            model, name=metric, feature="", start=start, end=end, segment=version_cut(version)
        ):
            if p.category == "" and p.value is not None:
                by_window.setdefault(p.window_start, {})[metric] = p.value
    return ArmSeries(by_window)


def judge_step(
    store: Store, deployment: Deployment, window_start: int, window_seconds: int
) -> Verdict:
    """The verdict of ``deployment``'s current step after ``window_start``, from every window of
    the step so far, judged in order (the judge is sequential: it may look at each)."""
    w = window_seconds
    first = deployment.step_started
    end = window_start + w
    windows = list(range(first, end, w))
    candidate = read_arm(store, deployment.model, deployment.candidate, first, end)
    if deployment.strategy == "blue_green":
        # the baseline has no traffic once switched: its windows before the switch, in order
        before = first - len(windows) * w
        old = read_arm(store, deployment.model, deployment.baseline, before, first)
        baseline_windows = list(range(before, first, w))
    else:
        old = read_arm(store, deployment.model, deployment.baseline, first, end)
        baseline_windows = windows
    judge = CanaryJudge(judge_config(deployment))
    verdict = judge.update(ArmWindow(0), ArmWindow(0)) if not windows else None
    for mine, theirs in zip(windows, baseline_windows, strict=True):
        # a canary's two versions share each window; a blue-green switch's never do
        versus = (candidate.versus(mine) or old.versus(theirs)) if mine == theirs else None
        verdict = judge.update(old.arm(theirs), candidate.arm(mine), versus)
    assert verdict is not None
    return verdict


class DeploymentService:
    """Judges the active deployments as their models' windows are stored."""

    def __init__(
        self,
        deployments: DeploymentStore,
        store: Store,
        window_seconds: int,
        publish: Publish | None = None,
        refresh_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.deployments = deployments
        self.store = store
        self.window_seconds = window_seconds
        self.publish = publish
        self.refresh_s = refresh_s
        self._clock = clock
        # tells alert subscribers of each change: "step", "promoted", "rolled_back"
        self.notify: Notify | None = None
        self._active: dict[str, Deployment] = {}
        self._told: set[tuple[str, str]] = set()  # (deployment id, change) already told
        self._mine: set[str] = set()  # models whose windows this worker judges
        # the latest deployment this worker promoted, per model: it may still be rolled back
        self._promoted: dict[str, Deployment] = {}
        self._loaded = 0.0
        self._jobs: queue.Queue[tuple[str, int] | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    # -- the worker's side ----------------------------------------------------------------
    def start(self) -> DeploymentService:
        self._thread = threading.Thread(target=self._run, name="driftline-deployments", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join(timeout=10)
            self._thread = None

    def on_window(self, model: str, window_start: int) -> None:
        """A stored window of ``model`` (a unit: stages have no deployments)."""
        self._jobs.put((model, window_start))

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                self.judge(*job)
            except Exception:
                log.exception("could not judge the deployment of %s at window %d", *job)

    # -- judging --------------------------------------------------------------------------
    def judge(self, model: str, window_start: int) -> StepVerdict | None:
        """Judge ``model``'s active deployment after one of its windows; act on the verdict."""
        self._mine.add(model)
        deployment = self._deployment(model)
        if deployment is None or window_start < deployment.step_started:
            return None
        verdict = judge_step(self.store, deployment, window_start, self.window_seconds)
        step = StepVerdict(
            deployment.id,
            model,
            window_start,
            deployment.step,
            deployment.share,
            verdict.decision,
            verdict.reason,
            {name: _evidence(e) for name, e in verdict.metrics.items()},
        )
        self.deployments.record_verdict(step)
        if verdict.decision == "promote":
            self._promote(deployment, window_start, verdict.reason)
        elif verdict.decision == "rollback":
            self.rollback(deployment, verdict.reason, by="judge")
        return step

    def _promote(self, deployment: Deployment, window_start: int, reason: str) -> None:
        now = self._clock()
        if deployment.step + 1 < len(deployment.steps):
            moved = self.deployments.update(
                deployment,
                step=deployment.step + 1,
                step_started=window_start + self.window_seconds,
                reason=f"step {deployment.step + 1} passed: {reason}",
            )
            log.info("deployment %s of %s: %.0f%% to %s (%s)", moved.id, moved.model,
                     moved.share, moved.candidate, reason)  # fmt: skip
            self._announce(split_update(moved, CANARY_STEP, moved.reason, now))
            self._tell(moved, f"step{moved.step}", moved.reason)
            self._active[moved.model] = moved
            return
        done = self.deployments.update(deployment, state="promoted", by="judge", reason=reason)
        log.info("deployment %s of %s: %s promoted (%s)", done.id, done.model, done.candidate,
                 reason)  # fmt: skip
        self._announce(split_update(done, PROMOTED, reason, now))
        self._tell(done, "promoted", reason)
        self._active.pop(done.model, None)
        self._promoted[done.model] = done

    def rollback(self, deployment: Deployment, reason: str, by: str) -> Deployment:
        """End ``deployment`` rolled back: all traffic to the baseline again."""
        done = self.deployments.update(deployment, state="rolled_back", by=by, reason=reason)
        log.warning("deployment %s of %s: %s rolled back by %s (%s)", done.id, done.model,
                    done.candidate, by, reason)  # fmt: skip
        self._announce(split_update(done, ROLLED_BACK, reason, self._clock()))
        self._tell(done, "rolled_back", reason)
        self._active.pop(done.model, None)
        return done

    def rollback_model(self, model: str, reason: str, by: str) -> Deployment | None:
        """Roll back ``model``'s active deployment, if it has one (a rule's ``rollback``)."""
        deployment = self.deployments.active(model)
        return None if deployment is None else self.rollback(deployment, reason, by)

    def roll_back(self, model: str, reason: str, by: str) -> None:
        """:meth:`rollback_model`, as the alarm thread calls it (a rule's ``rollback``)."""
        if self.rollback_model(model, reason, by) is None:
            log.info("%s asked to roll back %s, which has no active deployment", by, model)

    def _announce(self, update: ModelUpdate) -> None:
        if self.publish is None:
            return
        try:
            self.publish(update)
        except Exception:
            log.exception("could not announce the traffic split of %s", update.model)

    def _tell(self, deployment: Deployment, change: str, reason: str) -> None:
        """Notify alert subscribers of a change, once (``change``: "step<k>", "promoted" or
        "rolled_back")."""
        if self.notify is None or (deployment.id, change) in self._told:
            return
        self._told.add((deployment.id, change))
        try:
            self.notify(deployment, "step" if change.startswith("step") else change, reason)
        except Exception:
            log.exception("could not notify the change of deployment %s", deployment.id)

    def _deployment(self, model: str) -> Deployment | None:
        now = self._clock()
        if now - self._loaded >= self.refresh_s:
            fresh = {d.model: d for d in self.deployments.all_active()}
            for old in self._active.values():
                current = fresh.get(old.model)
                if (current is not None and current.id == old.id) or old.model not in self._mine:
                    continue
                # ended elsewhere (a rollback through the API): the worker that judges the
                # model tells its subscribers
                ended = self.deployments.deployment(old.id)
                if ended is not None and ended.state in ENDED:
                    self._tell(ended, ended.state, ended.reason)
            for model, promoted in list(self._promoted.items()):
                if model in fresh:  # a newer deployment: this one is history
                    del self._promoted[model]
                    continue
                undone = self.deployments.deployment(promoted.id)
                if undone is not None and undone.state == "rolled_back":
                    self._tell(undone, "rolled_back", undone.reason)
                    del self._promoted[model]
            self._active = fresh
            self._loaded = now
        return self._active.get(model)


def _evidence(e: MetricEvidence) -> dict[str, object]:
    return {
        "baseline": e.baseline,
        "candidate": e.candidate,
        "effect": e.effect,
        "tolerance": e.tolerance,
        "p_value": e.p_value,
        "alpha": e.alpha,
        "samples": e.samples,
        "needed": e.needed,
    }
