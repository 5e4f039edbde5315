"""The retrainer's I/O: take a job, read labelled events, train, compare, register, promote.

The training and the comparison are pure (``retrainer/train.py``, ``retrainer/evaluate.py``);
this module reads the store, writes the job's state changes (``driftline/store/jobs.py``), the
registry and the model's new reference, and announces promotions on
``driftline.model-updates``.

:func:`run_retrainer` owns admission: it consumes the requests on ``driftline.retrain-jobs``
(keyed by model, so a model's requests reach one consumer, in order) and decides each at once,
writing the queued job or the refusal; admitted jobs train one at a time on a second thread,
so a long job never holds up the decisions that API clients wait for.
"""

from __future__ import annotations

import logging
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from detectors.drift.window import ModelReference
from driftline import topics
from driftline.messages import PROMOTED, ROLLED_BACK, ModelUpdate, RetrainRequest
from driftline.settings import Settings
from driftline.store import StoredReference, Stores
from driftline.store.jobs import Admission, RetrainJob
from driftline.store.labels import Joined
from driftline.units import split_unit
from retrainer.data import Example, TrainingError
from retrainer.evaluate import compare, error_breakdown, split_training_dev
from retrainer.registry import Registry, VersionInfo, VersionNotFound
from retrainer.train import TrainConfig, TrainedModel, predict, train

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes, bytes], None]  # topic, key, value
HOLDOUT_FRACTION = 0.2  # the newest labelled events: challenger and champion are judged there
LABEL_POLL_S = 5.0
REFERENCE_ROWS = 5_000  # newest training rows profiled as the promoted version's reference


def code_version() -> str:
    """The package version, and the git commit when running from a checkout."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        text = version("driftline")
    except PackageNotFoundError:
        text = "unknown"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{text}+{commit}" if commit else text


def examples_of(rows: Sequence[Joined]) -> list[Example]:
    return [
        Example(
            features=r.event.get("features") or {},
            label=r.label,
            segment=r.event.get("segment") or {},
            ts=r.ts,
        )
        for r in rows
    ]


def registry_of(settings: Settings) -> Registry:
    return Registry(settings.data_dir / "models")


class Retrainer:
    def __init__(
        self,
        settings: Settings,
        stores: Stores,
        registry: Registry,
        publish: Publish | None = None,
        clock: Callable[[], float] = time.time,
        stop: threading.Event | None = None,
    ) -> None:
        self.settings = settings
        self.stores = stores
        self.jobs = stores.jobs
        self.labels = stores.labels
        self.alarms = stores.alarms
        self.registry = registry
        self.publish = publish
        self._clock = clock
        self._stop = stop or threading.Event()  # set: a job waiting for labels gives up
        self._code_version = code_version()

    # -- deciding and taking jobs -----------------------------------------------------------
    def decide(self, request: RetrainRequest) -> Admission:
        """Admit or refuse one request of ``driftline.retrain-jobs`` (stored either way)."""
        admission = self.jobs.decide(request, self.settings.retrain_cooldown_s)
        if admission.job is None:
            log.info("retrain request for %s refused: %s", request.model, admission.why)
        return admission

    def take(self, job_id: str) -> RetrainJob | None:
        """Run an admitted job; returns it as it ended (None: not queued any more, e.g. a
        job already run, admitted again by a replayed request)."""
        job = self.jobs.job(job_id)
        if job is None or job.state != "queued":
            return None
        running = [
            j
            for j in self.jobs.jobs(job.model, state="running")
            if j.id != job.id and self._clock() - (j.started_at or 0) < 6 * 3600
        ]
        if running:  # queued by an earlier version, which admitted in each requester
            return self.jobs.write(
                replace(
                    job.with_log(f"job {running[0].id} is already running for this model"),
                    state="rejected",
                    finished_at=self._clock(),
                )
            )
        return self.run(job)

    def handle(self, request: RetrainRequest) -> RetrainJob | None:
        """Decide a request and run its job at once (None: refused, or already run).
        :func:`run_retrainer` does the two on different threads."""
        admission = self.decide(request)
        return None if admission.job is None else self.take(admission.job.id)

    def queued(self) -> list[str]:
        """Jobs admitted but not yet run (by a retrainer that stopped), oldest first."""
        return [j.id for j in reversed(self.jobs.jobs(state="queued"))]

    def recover(self) -> list[RetrainJob]:
        """Jobs left running by a retrainer that died: failed, so the model can train again."""
        failed = []
        for job in self.jobs.jobs(state="running"):
            failed.append(
                self.jobs.write(
                    replace(
                        job.with_log("the retrainer stopped while this job ran; retry it"),
                        state="failed",
                        finished_at=self._clock(),
                    )
                )
            )
        return failed

    # -- one job --------------------------------------------------------------------------
    def run(self, job: RetrainJob) -> RetrainJob:
        now = self._clock()
        start, end = self.data_range(job, now)
        job = self.jobs.write(
            replace(
                job.with_log(f"training on labelled events from {_iso(start)} to {_iso(end)}"),
                state="running",
                started_at=now,
                data_start=start,
                data_end=end,
            )
        )
        try:
            return self._train_and_decide(job, start, end)
        except TrainingError as exc:
            return self._finish(job, "failed", f"cannot train: {exc}")
        except Exception as exc:
            log.exception("retraining job %s failed", job.id)
            return self._finish(job, "failed", f"internal error: {exc!r}")

    def data_range(self, job: RetrainJob, now: float) -> tuple[float, float]:
        """Labelled events since the alert's breach began (the world as it is now), at most
        ``retrain_lookback_s`` back; for a manual job, the whole lookback."""
        start = now - self.settings.retrain_lookback_s
        if job.alert_id:
            alert = self.alarms.alert(job.alert_id)
            if alert is not None:
                start = max(start, float(alert.active_since))
        return start, now

    def _train_and_decide(self, job: RetrainJob, start: float, end: float) -> RetrainJob:
        model, stage = split_unit(job.model)
        needed = self.settings.retrain_min_examples
        waited_until = self._clock() + self.settings.retrain_label_wait_s
        while True:  # labels come late: an alert-triggered job may have to wait for them
            end = max(end, self._clock())
            rows = self.labels.labelled_events(
                model, stage, start=start, end=end, horizon_s=self.settings.label_horizon_s
            )
            if len(rows) >= needed or self._clock() >= waited_until:
                break
            job = self.jobs.write(job.with_log(f"waiting for labels: {len(rows)} of {needed}"))
            if self._stop.wait(LABEL_POLL_S):
                raise TrainingError("the retrainer stopped while this job waited for labels")
        if end > (job.data_end or 0):
            job = self.jobs.write(replace(job, data_end=end))
        examples = examples_of(rows)
        if len(examples) < needed:
            raise TrainingError(
                f"{len(examples)} labelled events between {_iso(start)} and {_iso(end)}; at "
                f"least {needed} are needed. Send labels to {topics.LABELS} (or POST "
                "/v1/labels) for this model's predictions, then retry"
            )
        cut = int(len(examples) * (1 - HOLDOUT_FRACTION))
        training, holdout = examples[:cut], examples[cut:]
        champion_info = self.registry.champion(job.model)
        champion = self.registry.load(job.model, champion_info.version) if champion_info else None
        config = TrainConfig(seed=self.settings.retrain_seed, epochs=self.settings.retrain_epochs)
        job = self.jobs.write(
            job.with_log(
                f"{len(training)} training and {len(holdout)} holdout events; "
                + (
                    f"warm start from version {champion_info.version}"
                    if champion_info
                    else "no champion: training from scratch"
                )
            )
        )
        # a random tenth of the training period held out (training-dev): with the training
        # and the holdout errors it splits the error into bias, variance and data mismatch
        fitted, training_dev = split_training_dev(training, seed=self.settings.retrain_seed)
        challenger = train(fitted, config, warm_start=champion)
        comparison = compare(
            champion, challenger, holdout, primary=self.settings.retrain_primary_metric
        )
        breakdown = error_breakdown(
            challenger,
            fitted,
            training_dev,
            holdout,
            human=self.settings.retrain_human_error.get(job.model),
        )
        errors = breakdown.to_dict() if breakdown is not None else None
        info = self.registry.register(
            job.model,
            challenger,
            {
                "parent_version": champion_info.version if champion_info else None,
                "code_version": self._code_version,
                "evaluation": comparison.to_dict(),
                "errors": errors,
                "trigger": {"job_id": job.id, "reason": job.reason, "alert_id": job.alert_id},
            },
        )
        metrics = {
            "primary_metric": comparison.primary_metric,
            "challenger": dict(comparison.challenger),
            "champion": dict(comparison.champion) if comparison.champion else None,
            "n_training": len(fitted),
            "n_training_dev": len(training_dev),
            "n_holdout": comparison.n_holdout,
            "warm_started": challenger.warm_started,
            "training": dict(challenger.metrics),
            "errors": errors,
        }
        job = replace(job, version=info.version, metrics=metrics)
        job = self.jobs.write(job.with_log(f"registered version {info.version}"))
        if not comparison.promote:
            self.registry.reject(job.model, info.version, comparison.reason)
            return self._finish(job, "rejected", f"not promoted: {comparison.reason}")
        policy = self.settings.retrain_policy.get(job.model, self.settings.retrain_default_policy)
        if policy == "auto":
            self.promote(job.model, info.version, f"job {job.id}: {comparison.reason}", challenger)
            return self._finish(
                job, "succeeded", f"promoted version {info.version}: {comparison.reason}"
            )
        return self._finish(
            job,
            "succeeded",
            f"version {info.version} is better ({comparison.reason}); policy 'manual': promote "
            f"it with POST /v1/models/{job.model}/versions/{info.version}/promote",
        )

    def _finish(self, job: RetrainJob, state: str, line: str) -> RetrainJob:
        log.info("retraining job %s for %s: %s — %s", job.id, job.model, state, line)
        return self.jobs.write(replace(job.with_log(line), state=state, finished_at=self._clock()))

    # -- promotion ------------------------------------------------------------------------
    def promote(
        self, model: str, version: str, reason: str, trained: TrainedModel | None = None
    ) -> VersionInfo:
        """Serve ``version`` (forward or back), refresh its reference, tell serving code."""
        return promote_version(
            self.registry, self.stores, self.publish, model, version, reason, trained
        )


def promote_version(
    registry: Registry,
    stores: Stores,
    publish: Publish | None,
    model: str,
    version: str,
    reason: str,
    trained: TrainedModel | None = None,
) -> VersionInfo:
    """Make ``version`` the champion (a rollback when it is older), store a reference profile
    of its training data and predictions for that version, publish ``driftline.model-updates``."""
    current = registry.champion(model)
    if current is not None and int(version) < int(current.version):
        info = registry.rollback(model, version, reason)
    else:
        info = registry.promote(model, version, reason)
    trained = trained or registry.load(model, version)
    unit_model, stage = split_unit(model)
    rows = stores.labels.labelled_events(
        unit_model, stage, start=info.data_start, end=info.data_end + 1
    )[-REFERENCE_ROWS:]
    if rows:
        features = [r.event.get("features") or {} for r in rows]
        predictions = predict(trained, features)
        reference = ModelReference.from_rows(
            [{"features": f, "prediction": p} for f, p in zip(features, predictions, strict=True)],
            version,
        )
        stores.store.save_reference(
            StoredReference(model, version, "uploaded", reference.to_dict(), int(time.time()))
        )
    if publish is not None:
        rolled_back = info.history[-1].get("event") == "rolled_back"  # the registry's word
        update = ModelUpdate(
            model,
            version,
            ROLLED_BACK if rolled_back else PROMOTED,
            reason,
            time.time(),
            previous_version=current.version if current else None,
        )
        publish(topics.MODEL_UPDATES, update.key, update.to_bytes())
    return info


def follow_deployment(registry: Registry, update: ModelUpdate) -> VersionInfo | None:
    """The registry's side of a deployment that ended promoted (``driftline.model-updates``
    with a ``split``, from the worker's judge): the candidate becomes the champion, so that
    retraining warm-starts from, and compares with, what serves. Only the change the
    deployment made is followed: its baseline must be the champion now (a replayed old
    announcement changes nothing); a model or version the registry does not hold is not its
    business (None). The rollback of an active deployment needs nothing (the baseline was the
    champion throughout); that of a promoted one makes the baseline the champion again."""
    if update.event not in (PROMOTED, ROLLED_BACK) or update.split is None:
        return None
    champion = registry.champion(update.model)
    if champion is None or champion.version != update.previous_version:
        return None  # a rollback of an active deployment: its baseline is the champion still
    try:
        registry.version(update.model, update.version)
    except VersionNotFound:
        return None
    reason = f"deployment: {update.reason}"
    older = update.version.isdigit() and int(update.version) < int(champion.version)
    if update.event == ROLLED_BACK and older:  # a promoted deployment undone
        info = registry.rollback(update.model, update.version, reason)
    else:
        info = registry.promote(update.model, update.version, reason)
    log.info("registry follows the deployment: version %s of %s is the champion",
             update.version, update.model)  # fmt: skip
    return info


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


# -- the process ------------------------------------------------------------------------
def kafka_publisher(bootstrap: str) -> tuple[Publish, Callable[[], None]]:
    """A synchronous publish (waits for the broker) and its close."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap.split(","), acks=1, linger_ms=5)

    def publish(topic: str, key: bytes, value: bytes) -> None:
        producer.send(topic, key=key, value=value).get(timeout=30)

    return publish, lambda: producer.close(timeout=5)


def run_retrainer(
    settings: Settings, stores: Stores, stop: threading.Event, poll_s: float = 1.0
) -> None:
    """Decide the requests on ``driftline.retrain-jobs`` and train the admitted jobs, one at
    a time, until ``stop`` is set. Run one retrainer: it owns admission (and its start fails
    the jobs left running, as by a retrainer that died)."""
    from kafka import KafkaConsumer

    publish, close_producer = kafka_publisher(settings.kafka_bootstrap)
    retrainer = Retrainer(settings, stores, registry_of(settings), publish, stop=stop)
    for job in retrainer.recover():
        log.warning("job %s for %s was left running; marked failed", job.id, job.model)
    consumer = KafkaConsumer(
        topics.RETRAIN_JOBS,
        topics.MODEL_UPDATES,  # deployments that ended promoted: the registry follows
        bootstrap_servers=settings.kafka_bootstrap.split(","),
        group_id="driftline-retrainer",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=int(settings.consumer_session_timeout_s * 1000),
        max_poll_records=1,
    )
    admitted: queue.Queue[str | None] = queue.Queue()
    for job_id in retrainer.queued():
        admitted.put(job_id)
    done = threading.Event()
    trainer = threading.Thread(
        target=train_admitted, args=(retrainer, admitted, done), name="driftline-training"
    )
    trainer.daemon = True
    trainer.start()
    try:
        while not stop.is_set():
            batches = consumer.poll(timeout_ms=int(poll_s * 1000))
            for tp, records in batches.items():
                for record in records:
                    if tp.topic == topics.MODEL_UPDATES:
                        follow_update(retrainer.registry, record.value, record.offset)
                        consumer.commit()
                        continue
                    try:
                        admission = retrainer.decide(RetrainRequest.from_bytes(record.value))
                    except ValueError as exc:  # bad input: said, skipped, never retried
                        log.warning("bad retrain request at offset %d: %s", record.offset, exc)
                    except Exception:  # the store is down: read this request again later
                        log.exception("could not decide a retrain request; retrying")
                        consumer.seek(tp, record.offset)
                        stop.wait(5 * poll_s)
                        break
                    else:
                        if admission.job is not None:
                            admitted.put(admission.job.id)
                    consumer.commit()  # decided and stored: a replay keeps the decision
    finally:
        done.set()
        admitted.put(None)
        trainer.join()  # the job in hand finishes (or gives up waiting, once stop is set)
        consumer.close()
        close_producer()


def follow_update(registry: Registry, value: bytes, offset: int) -> None:
    """One record of ``driftline.model-updates``: :func:`follow_deployment`, bad input said
    and skipped (a registry write that fails is logged: the next promotion fixes it)."""
    try:
        update = ModelUpdate.from_bytes(value)
    except ValueError as exc:
        log.warning("bad model update at offset %d: %s", offset, exc)
        return
    try:
        follow_deployment(registry, update)
    except Exception:  # e.g. the version was rejected in the registry meanwhile
        log.exception("could not follow the model update at offset %d", offset)


def train_admitted(
    retrainer: Retrainer, admitted: queue.Queue[str | None], done: threading.Event
) -> None:
    """The training thread: admitted jobs in order, until ``done``."""
    while (job_id := admitted.get()) is not None and not done.is_set():
        try:
            retrainer.take(job_id)
        except Exception:  # the store is down: the job stays queued; try it again
            log.exception("could not take retraining job %s; retrying", job_id)
            if done.wait(5.0):
                return
            admitted.put(job_id)
