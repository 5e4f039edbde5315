"""Alarms in the worker: evaluate each stored window, then store, publish and notify.

Evaluation (pure, ``alarms/``) runs in the ``on_stored`` hook, on the event loop, and takes
microseconds per window. Everything slow happens on one background thread: writing alert
state, making the deliveries (``driftline/notify.py`` sends them on per-subscription
threads), reloading rules, subscriptions and silences, and repeat notifications. Alert state
changes also go to the ``driftline.alerts`` topic, and a firing rule with the ``retrain``
action puts a request on ``driftline.retrain-jobs``: the retrainer decides it and writes the
job (``driftline/store/jobs.py``).

Open alerts are loaded from the store at start (and again after a rebalance), so a restarted
worker neither fires an alert twice nor loses its resolve.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import queue
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

import faust
import orjson

from alarms.alertmanager import alertmanager_alert
from alarms.findings import Finding, describe, shifted_slices, wants_error_slices
from alarms.routing import Silence, Subscription, active_silences, subscribers
from alarms.rules import DEFAULT_RULES, MetricKind, RuleIndex, is_data_drift_metric
from alarms.state import (
    Alert,
    AlertBook,
    AlertState,
    Change,
    deployment_alert,
    due_notifications,
    evaluate,
)
from driftline import topics
from driftline.cuts import VERSION_PREFIX, version_cut
from driftline.findings import alert_error_slices
from driftline.messages import AlertEvent, RetrainRequest
from driftline.notify import RetryPolicy, WebhookDispatcher
from driftline.settings import Settings
from driftline.store import MetricPoint, Stores
from driftline.store.alarms import AlarmStore, Delivery
from driftline.store.deployments import Deployment
from driftline.store.jobs import JobStore, admit
from driftline.store.labels import LabelStore
from driftline.units import split_unit, unit_of
from streams.deployments import DeploymentService
from streams.quality import ScoredWindow
from streams.window_rows import WindowResult
from streams.worker import PredictionWorker

log = logging.getLogger(__name__)
# Alert announcements, one line per firing or resolved alert: `driftline demo` prints these.
announce = logging.getLogger("driftline.alerts")

Publish = Callable[[str, bytes, bytes], None]  # (topic, key, value), called on the event loop
STORE_ATTEMPTS = 3
CLOSED_REMEMBERED = 10_000
ALERTMANAGER_HOLD_RESENDS = 4  # a firing alert sent to Alertmanager ends this many re-sends on
REQUEST_PENDING_S = 600.0  # a retrain request not decided by then is given up for a new one


@dataclass(frozen=True)
class Outcome:
    """What one evaluation leaves for the background thread: alerts to store, notices."""

    alerts: list[Alert]
    notices: list[Notice]


Job = Outcome | Callable[[], None] | None  # None: stop
MAX_BATCH = 10_000


@dataclass(frozen=True)
class Notice:
    """A notification to make: the alert, who gets it, and the silences that mute it."""

    alert: Alert
    event: str  # firing | resolved
    repeat: bool
    targets: tuple[Subscription, ...]
    silenced_by: tuple[Silence, ...]


class AlarmService:
    """The worker's alarms: rules and open alerts in memory, I/O on a background thread."""

    def __init__(
        self,
        store: AlarmStore,
        jobs: JobStore,
        settings: Settings,
        *,
        publish: Publish | None = None,
        dispatcher: WebhookDispatcher | None = None,
        clock: Callable[[], float] = time.time,
        rollback: Callable[[str, str, str], None] | None = None,
        labels: LabelStore | None = None,
    ) -> None:
        self.store = store
        # where a firing quality or concept-drift alert's error slices are searched
        self._labels = labels
        self._searched: OrderedDict[str, tuple[tuple[Finding, ...], str]] = OrderedDict()
        self.settings = settings
        self.publish = publish
        # (model, reason, by): roll back the model's active deployment (a rule's ``rollback``)
        self._rollback = rollback
        self.dispatcher = dispatcher or WebhookDispatcher(
            store,
            RetryPolicy(
                settings.webhook_timeout_s,
                settings.webhook_max_attempts,
                settings.webhook_backoff_s,
                settings.webhook_backoff_max_s,
            ),
            alertmanager_hold_s=ALERTMANAGER_HOLD_RESENDS * settings.alertmanager_resend_s,
        )
        self._clock = clock
        self._lock = threading.Lock()  # the book, the index, subscriptions and silences
        self._index = RuleIndex()
        self._book = AlertBook()
        self._closed: deque[str] = deque(maxlen=CLOSED_REMEMBERED)
        self._subscriptions: dict[str, Subscription] = {}
        self._silences: list[Silence] = []
        self._jobs: queue.Queue[Job] = queue.Queue()
        self._retrain_jobs = jobs  # read only: the retrainer decides
        self._retrain_pending: dict[str, tuple[str, float]] = {}  # model → (job id, sent)
        self._rules_stamp: tuple[int, int] | None = None
        self._next_resend = time.monotonic() + settings.alertmanager_resend_s
        # unit -> (start of its newest estimated window, whether it showed harm)
        self._estimated: dict[str, tuple[int, bool]] = {}
        self._thread = threading.Thread(target=self._run, name="driftline-alarms", daemon=True)

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> AlarmService:
        """Load rules, routes and open alerts (blocking), resume deliveries, start working."""
        if self.settings.default_rules:
            self.store.seed_rules(DEFAULT_RULES)
        self.refresh()
        with self._lock:
            self._book = AlertBook(self.store.open_alerts())
            subscriptions = dict(self._subscriptions)
        resumed = self.dispatcher.resume(subscriptions, self.store.unfinished_deliveries())
        if resumed:
            log.info("resuming %d unfinished webhook deliveries", resumed)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Store what is queued, then stop; unfinished deliveries resume on the next start."""
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join(timeout_s)
        self.dispatcher.stop(timeout_s=min(timeout_s, 5.0))

    def reload(self) -> None:
        """Merge the stored open alerts in (after a rebalance: alerts of models now ours)."""
        self._jobs.put(self._reload)

    def open_alerts(self) -> list[Alert]:
        with self._lock:
            return self._book.open_alerts()

    def flush(self, timeout_s: float = 10.0) -> None:
        """Wait until the jobs queued so far are done (for tests and benchmarks)."""
        done = threading.Event()
        self._jobs.put(done.set)
        if not done.wait(timeout_s):
            raise TimeoutError("the alarm thread did not catch up in time")

    # -- the hook -------------------------------------------------------------------------
    def on_window(self, result: WindowResult) -> None:
        """Evaluate a stored window (on the event loop): quick; I/O is queued."""
        self.evaluate_window(result.model, result.window_start, result.points)

    def evaluate_window(
        self,
        unit: str,
        window_start: int,
        points: Sequence[Any],
        *,
        from_labels: bool = False,
        only_metric: str | None = None,
        kind: MetricKind | None = None,
    ) -> None:
        """``unit``: a model, or ``model::stage`` (its alerts carry that name; the points'
        own ``stage`` column is then ignored). ``only_metric``, ``kind``: see
        ``alarms.state.evaluate``."""
        if split_unit(unit)[1]:
            points = [replace(p, stage="") for p in points]
        if self._index.watches_versions:
            points = with_version_cut(points)
        model = unit
        now = self._clock()
        with self._lock:
            changes = evaluate(
                self._index,
                self._book.of_model(model),
                model,
                window_start,
                points,
                now,
                from_labels=from_labels,
                only_metric=only_metric,
                kind=kind,
            )
            if not changes:
                return
            changes = [self._shift_found(self._demoted(change), points) for change in changes]
            decided: list[Change] = []
            notices: list[Notice] = []
            for change in changes:
                notice = self._notice(change, now)
                if notice is not None:
                    notices.append(notice)
                    change = Change(notice.alert, change.previous)
                decided.append(change)
            self._book.apply(decided)
            self._closed.extend(c.alert.id for c in decided if not c.alert.state.is_open)
        for change in decided:
            if change.event is not None:
                self._announce(change)
                self._publish_change(change, now)
        self._jobs.put(Outcome([c.alert for c in decided], notices))

    def estimated(self, unit: str, window_start: int, harm: bool) -> None:
        """The newest estimate of a unit's quality: a window and whether it showed harm."""
        with self._lock:
            if window_start >= self._estimated.get(unit, (-1, False))[0]:
                self._estimated[unit] = (window_start, harm)

    def quality_holds(self, unit: str, since: int | None = None) -> bool:
        """Whether the unit's newest estimated window showed no harm, and is no older than
        ``since`` (False when its quality is not estimated, or the estimates lag behind the
        drift: then nothing says the drift is harmless)."""
        newest = self._estimated.get(unit)
        if newest is None or newest[1]:
            return False
        return since is None or newest[0] >= since

    def _demoted(self, change: Change) -> Change:
        """A critical data-drift alert fires as a warning while estimated quality holds: drift
        becomes a ticket and harm a page (caller holds the lock). Only estimates of the drift's
        own windows count (from its first breaching window on): while the quality pass has not
        reached them the alert keeps its rule's severity. Each window decides again: once the
        estimates show harm, the rule's own severity is back."""
        alert = change.alert
        if (
            not self.settings.demote_drift_while_quality_holds
            or alert.severity != "critical"
            or not is_data_drift_metric(alert.metric)
            or not self.quality_holds(alert.model, since=alert.active_since)
        ):
            return change
        labels = {**alert.labels, "severity": "warning", "demoted": "estimated quality holds"}
        return Change(replace(alert, severity="warning", labels=labels), change.previous)

    @staticmethod
    def _shift_found(change: Change, points: Sequence[Any]) -> Change:
        """A data-drift alert that fires names the declared slices whose inputs shifted most
        in its window (``alarms.findings.shifted_slices``: from the tests the window already
        ran on each slice)."""
        alert = change.alert
        if (
            change.event != "firing"
            or alert.findings_note
            or not is_data_drift_metric(alert.metric)
        ):
            return change
        if alert.segment:
            note = f"not searched: the alert is on the {alert.segment} cut"
            return Change(replace(alert, findings_note=note), change.previous)
        found = shifted_slices(alert.metric, alert.feature, points)
        what = f"the drift of {alert.feature!r}" if alert.feature else "the inputs' drift"
        note = (
            f"declared slices ranked by {what} in the window that fired"
            if found
            else "no declared slice of the window has a drift effect (declare segments to "
            "see which slices shift)"
        )
        return Change(replace(alert, findings=tuple(found), findings_note=note), change.previous)

    def _notice(self, change: Change, now: float) -> Notice | None:
        """Who to notify of a change, and the alert as notified (caller holds the lock)."""
        alert, event = change.alert, change.event
        if event is None or "notify" not in alert.actions:
            return None
        if event == "resolved" and alert.notified_at is None:
            return None  # its firing was never sent (silenced): nothing to resolve
        silenced_by = tuple(active_silences(self._silences, alert.labels, now))
        targets = tuple(subscribers(self._subscriptions.values(), alert.labels))
        if event == "firing" and not silenced_by:
            alert = replace(alert, notified_at=now)
        return Notice(alert, event, False, targets, silenced_by)

    def deployment_changed(self, deployment: Deployment, change: str, reason: str) -> None:
        """Tell subscribers of a deployment's change (``alarms.state.DEPLOYMENT_ALERTS``): a
        step passed, the candidate promoted or rolled back. From any thread."""
        now = self._clock()
        alert = deployment_alert(
            deployment.id,
            deployment.model,
            deployment.baseline,
            deployment.candidate,
            change,
            deployment.share,
            reason,
            deployment.by or "judge",
            now,
        )
        with self._lock:
            silenced_by = tuple(active_silences(self._silences, alert.labels, now))
            targets = tuple(subscribers(self._subscriptions.values(), alert.labels))
        if not silenced_by:
            alert = replace(alert, notified_at=now)
        announce.info(
            "DEPLOYMENT %s %s %r: version %s at %g%% (%s)",
            change,
            deployment.id,
            deployment.model,
            deployment.candidate,
            deployment.share,
            reason,
        )
        if self.publish is not None:
            message = AlertEvent(alert, "firing", now)
            try:
                self.publish(topics.ALERTS, message.key, message.to_bytes())
            except Exception:
                log.exception("could not publish deployment alert %s", alert.id)
        # an event, not a state: stored closed at once, never repeated
        stored = replace(alert, state=AlertState.RESOLVED, resolved_at=now)
        self._jobs.put(Outcome([stored], [Notice(alert, "firing", False, targets, silenced_by)]))

    def _announce(self, change: Change) -> None:
        if not announce.isEnabledFor(logging.INFO):
            return
        a = change.alert
        where = f"{a.model!r}" + (f" feature={a.feature!r}" if a.feature else "")
        where += f" segment={a.segment!r}" if a.segment else ""
        window = datetime.fromtimestamp(a.last_window, UTC).strftime("%H:%M:%SZ")
        announce.info(
            "ALERT %-8s %s (%s) %s: %s = %.4g %s %g (window %s)",
            change.event,
            a.rule_name,
            a.severity,
            where,
            a.metric,
            a.value,
            a.comparison if change.event == "firing" else "vs",
            a.threshold,
            window,
        )
        if change.event == "firing" and a.findings:
            announce.info(
                "ALERT found    %s %r: top slice %s", a.rule_name, a.model, describe(a.findings[0])
            )

    def _publish_change(self, change: Change, now: float) -> None:
        alert = change.alert
        if change.event == "firing" and "rollback" in alert.actions and self._rollback:
            why = f"alert {alert.id} fired: {alert.rule_name} ({alert.metric} = {alert.value})"
            self._jobs.put(
                functools.partial(self._rollback, alert.model, why, f"rule:{alert.rule_id}")
            )
        if self.publish is None or change.event is None:
            return
        message = AlertEvent(alert, change.event, now)
        try:
            self.publish(topics.ALERTS, message.key, message.to_bytes())
        except Exception:
            log.exception("could not publish alert %s", alert.id)
        if change.event == "firing" and "retrain" in alert.actions:
            self._jobs.put(functools.partial(self._request_retrain, alert))

    def _request_retrain(self, alert: Alert) -> None:
        """On the alarm thread: ask the retrainer for a job, unless the model has one or is
        cooling down as far as the store shows (the retrainer decides; asking only then
        keeps refusals out of the jobs list)."""
        why = self._retrain_blocked(alert.model)
        if why is not None:
            log.info("alert %s asks to retrain %s: not requested (%s)", alert.id, alert.model, why)
            return
        self._send_retrain_request(alert)

    def _retrain_blocked(self, model: str) -> str | None:
        """Why not to ask for a job now: a request of ours awaits its decision, or
        :func:`admit` would refuse it."""
        pending = self._retrain_pending.get(model)
        if pending is not None:
            job_id, sent = pending
            if (
                self._retrain_jobs.job(job_id) is None
                and time.monotonic() - sent < REQUEST_PENDING_S
            ):
                return f"request {job_id} awaits the retrainer's decision"
            del self._retrain_pending[model]
        previous = self._retrain_jobs.standing(model, limit=50)
        return admit(previous, self._clock(), self.settings.retrain_cooldown_s)

    def _send_retrain_request(self, alert: Alert) -> None:
        if self.publish is None:
            return
        request = RetrainRequest.new(alert.model, "alert", alert_id=alert.id, rule_id=alert.rule_id)
        self.publish(topics.RETRAIN_JOBS, request.key, request.to_bytes())
        self._retrain_pending[alert.model] = (request.job_id, time.monotonic())
        log.info("alert %s requested retraining of %s", alert.id, alert.model)

    # -- the background thread ------------------------------------------------------------
    def _run(self) -> None:
        """Jobs in order; consecutive outcomes are stored together (one insert per table)."""
        next_tick = time.monotonic() + self.settings.alarm_refresh_s
        while True:
            outcomes: list[Outcome] = []
            for job in self._take(timeout=max(0.0, next_tick - time.monotonic())):
                if isinstance(job, Outcome):
                    outcomes.append(job)
                    continue
                self._safely(partial(self._store_and_notify, outcomes))
                outcomes = []
                if job is None:
                    return
                self._safely(job)
            self._safely(partial(self._store_and_notify, outcomes))
            if time.monotonic() >= next_tick:
                self._safely(self._tick)
                next_tick = time.monotonic() + self.settings.alarm_refresh_s

    def _take(self, timeout: float) -> list[Job]:
        """The next job (waiting up to ``timeout``) and every one queued behind it."""
        batch: list[Job] = []
        try:
            batch.append(self._jobs.get(timeout=timeout))
            while len(batch) < MAX_BATCH:
                batch.append(self._jobs.get_nowait())
        except queue.Empty:
            pass
        return batch

    @staticmethod
    def _safely(job: Callable[[], None]) -> None:
        try:
            job()
        except Exception:
            log.exception("alarm job failed")

    def _tick(self) -> None:
        self.refresh()
        self._repeat()
        if time.monotonic() >= self._next_resend:
            self._next_resend = time.monotonic() + self.settings.alertmanager_resend_s
            self._resend_to_alertmanagers()
        self._retry_retraining()

    def _resend_to_alertmanagers(self) -> None:
        """Every firing alert that was notified goes again to each ``alertmanager``
        subscription that selects it, in one POST per subscription, so Alertmanager does not
        let it time out (its ``endsAt`` lies 4 re-send intervals ahead). A subscription with
        deliveries still queued (its Alertmanager is down or slow) is skipped this time."""
        now = self._clock()
        with self._lock:
            targets = [s for s in self._subscriptions.values() if s.kind == "alertmanager"]
            firing = [
                a
                for a in self._book.open_alerts()
                if a.state is AlertState.FIRING
                and a.notified_at is not None
                and "notify" in a.actions
                and not active_silences(self._silences, a.labels, now)
            ]
        sends = []
        for subscription in targets:
            selected = [a for a in firing if subscription.selects(a.labels)]
            if not selected or self.dispatcher.backlog(subscription.id):
                continue
            body = self._alertmanager_body(selected, "firing", now)
            delivery_id = uuid.uuid4().hex
            sends.append(
                (subscription, Delivery(delivery_id, subscription.id, "", "firing", body, now))
            )
        self.dispatcher.submit(sends)

    def _alertmanager_body(self, alerts: Sequence[Alert], event: str, now: float) -> bytes:
        firing_until = now + ALERTMANAGER_HOLD_RESENDS * self.settings.alertmanager_resend_s
        return orjson.dumps(
            [
                alertmanager_alert(
                    a,
                    ends_at=firing_until if event == "firing" else (a.resolved_at or now),
                    dashboard_url=self.settings.dashboard_url,
                )
                for a in alerts
            ]
        )

    def _retry_retraining(self) -> None:
        """A firing alert with the ``retrain`` action whose last job failed, or trained a
        challenger that was not promoted, asks again once the model's cooldown has passed:
        by then there are more labelled events since the breach began. A succeeded job ends
        the asking (its new version has to show in the metrics first)."""
        with self._lock:
            firing = [
                a
                for a in self._book.open_alerts()
                if a.state is AlertState.FIRING and "retrain" in a.actions
            ]
        if not firing:
            return
        for alert in firing:
            mine = [
                j for j in self._retrain_jobs.standing(alert.model, 50) if j.alert_id == alert.id
            ]
            if not mine or mine[0].state not in ("failed", "rejected"):
                continue  # never asked (or refused), still running, or succeeded
            if self._retrain_blocked(alert.model) is None:
                log.info(
                    "alert %s still firing after job %s ended %s: retrying",
                    alert.id,
                    mine[0].id,
                    mine[0].state,
                )
                self._send_retrain_request(alert)

    def refresh(self) -> None:
        """Reload rules, subscriptions and silences (they change through the API)."""
        stamp = self.store.rules_stamp()
        index = None
        if stamp != self._rules_stamp:
            index = RuleIndex(
                r.rule
                for r in self.store.rules()
                if self.settings.default_rules or r.rule.origin != "default"
            )
            self._rules_stamp = stamp
        subscriptions = {s.id: s for s in self.store.subscriptions()}
        silences = self.store.silences(expired=False)
        with self._lock:
            if index is not None:
                self._index = index
            self._subscriptions = subscriptions
            self._silences = silences
        self.dispatcher.retire(self.dispatcher.subscription_ids() - subscriptions.keys())

    def _reload(self) -> None:
        stored = self.store.open_alerts()
        with self._lock:
            closed = set(self._closed)
            self._book.merge(a for a in stored if a.id not in closed)

    def _repeat(self) -> None:
        """Firing alerts due a notification: repeats, and firings whose silence ended."""
        now = self._clock()
        notices = []
        with self._lock:
            for alert in due_notifications(
                self._book.open_alerts(), now, self.settings.repeat_interval_s
            ):
                if active_silences(self._silences, alert.labels, now):
                    continue
                repeat = alert.notified_at is not None
                notified = replace(alert, notified_at=now)
                self._book.put(notified)
                targets = tuple(subscribers(self._subscriptions.values(), alert.labels))
                notices.append(Notice(notified, "firing", repeat, targets, ()))
        self._store_and_notify([Outcome([n.alert for n in notices], notices)] if notices else [])

    def _with_error_slices(self, outcomes: Sequence[Outcome]) -> Sequence[Outcome]:
        """A quality or concept-drift alert that fires gets the slices where its model fails,
        searched once, on this thread, before it is stored and anyone is notified
        (``driftline.findings.alert_error_slices``); the open alert keeps them."""
        new: set[str] = set()
        for alert in (a for outcome in outcomes for a in outcome.alerts):
            if (
                self._labels is None
                or alert.state is not AlertState.FIRING
                or alert.findings_note
                or alert.id in self._searched
                or not wants_error_slices(alert.metric)
            ):
                continue
            try:
                found = alert_error_slices(self._labels, alert, self.settings.window_seconds)
            except Exception as exc:
                log.exception("could not search the error slices of alert %s", alert.id)
                found = ((), f"not searched: {type(exc).__name__}")
            self._searched[alert.id] = found
            new.add(alert.id)
            if found[0]:
                announce.info(
                    "ALERT found    %s %r: top slice %s",
                    alert.rule_name,
                    alert.model,
                    describe(found[0][0]),
                )
        while len(self._searched) > CLOSED_REMEMBERED:
            self._searched.popitem(last=False)
        if not self._searched:
            return outcomes

        def filled(alert: Alert) -> Alert:
            found = self._searched.get(alert.id)
            if found is None or alert.findings_note:
                return alert
            return replace(alert, findings=found[0], findings_note=found[1])

        if new:
            with self._lock:
                for alert in self._book.open_alerts():
                    if alert.id in new:
                        self._book.put(filled(alert))
        return [
            Outcome(
                [filled(a) for a in outcome.alerts],
                [replace(n, alert=filled(n.alert)) for n in outcome.notices],
            )
            for outcome in outcomes
        ]

    def _store_and_notify(self, outcomes: Sequence[Outcome]) -> None:
        """Store the alerts (the latest state of each), then make the deliveries."""
        if not outcomes:
            return
        outcomes = self._with_error_slices(outcomes)
        latest = {a.id: a for outcome in outcomes for a in outcome.alerts}
        for attempt in range(1, STORE_ATTEMPTS + 1):
            try:
                self.store.write_alerts(latest.values())
                break
            except Exception:
                log.exception("could not store %d alerts (attempt %d)", len(latest), attempt)
                time.sleep(0.5 * attempt)
        now = self._clock()
        silenced: list[Delivery] = []
        sends: list[tuple[Subscription, Delivery]] = []
        for notice in (n for outcome in outcomes for n in outcome.notices):
            for subscription in notice.targets:
                delivery_id = uuid.uuid4().hex
                if subscription.kind == "alertmanager":
                    body = self._alertmanager_body([notice.alert], notice.event, now)
                else:
                    body = AlertEvent(
                        notice.alert,
                        notice.event,
                        now,
                        repeat=notice.repeat,
                        delivery_id=delivery_id,
                        subscription_id=subscription.id,
                    ).to_bytes()
                delivery = Delivery(
                    delivery_id, subscription.id, notice.alert.id, notice.event, body, now
                )
                if notice.silenced_by:
                    ids = ", ".join(s.id for s in notice.silenced_by)
                    error = f"silenced by {ids}"
                    silenced.append(
                        replace(delivery, status="silenced", error=error, finished_at=now)
                    )
                else:
                    sends.append((subscription, delivery))
        if silenced:
            self.dispatcher.record(*silenced)
        self.dispatcher.submit(sends)


def attach_alarms(
    app: faust.App, worker: PredictionWorker, settings: Settings, stores: Stores
) -> AlarmService:
    """Wire alarms into a worker's Faust app: hook, topics, rebalance reload, shutdown."""
    targets = {
        name: app.topic(name, key_serializer="raw", value_serializer="raw")
        for name in (topics.ALERTS, topics.RETRAIN_JOBS, topics.MODEL_UPDATES)
    }
    sending: set[asyncio.Task[Any]] = set()

    def sent(task: asyncio.Task[Any]) -> None:
        sending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("could not publish an alert to Kafka: %s", task.exception())

    def send(topic: str, key: bytes, value: bytes) -> None:
        target = targets[topic]
        task = asyncio.get_running_loop().create_task(target.send(key=key, value=value))
        sending.add(task)
        task.add_done_callback(sent)

    def publish(topic: str, key: bytes, value: bytes) -> None:
        """From the event loop, or from the alarm thread (retraining requests)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            app.loop.call_soon_threadsafe(send, topic, key, value)
        else:
            send(topic, key, value)

    deployments = DeploymentService(
        stores.deployments,
        stores.store,
        settings.window_seconds,
        publish=lambda update: publish(topics.MODEL_UPDATES, update.key, update.to_bytes()),
        refresh_s=settings.alarm_refresh_s,
    ).start()

    def judge_deployment(result: WindowResult) -> None:
        if not split_unit(result.model)[1]:  # pipeline stages have no deployments
            deployments.on_window(result.model, result.window_start)

    worker.on_stored.append(judge_deployment)
    worker.on_close.append(deployments.stop)
    service = AlarmService(
        stores.alarms,
        stores.jobs,
        settings,
        publish=publish,
        rollback=deployments.roll_back,
        labels=stores.labels,
    ).start()
    deployments.notify = service.deployment_changed
    worker.on_stored.append(service.on_window)

    def on_set_aside(point: MetricPoint) -> None:
        unit = unit_of(point.model, point.stage)
        service.evaluate_window(unit, point.window_start, [point], only_metric=point.metric)

    worker.on_set_aside.append(on_set_aside)

    newest_tested: dict[str, int] = {}
    newest_outcomes: dict[str, int] = {}  # windows whose outcome metrics alone went to the rules
    newest_estimated: dict[str, int] = {}

    def on_quality(scored: ScoredWindow) -> None:
        """Label metrics go to the rules once a window has enough labels to be tested, newest
        window first seen only: an older window re-scored as its late labels land is stored
        but does not re-open an alert the newer windows have resolved."""
        unit, start = scored.unit, scored.window_start
        # estimated quality, as soon as a window is estimated (labels need not be in)
        if scored.estimated and start > newest_estimated.get(unit, -1):
            newest_estimated[unit] = start
            points = scored.estimated_points()
            harm = any(p.metric == "drift.harm" and not p.segment and p.value for p in points)
            service.estimated(unit, start, harm)
            service.evaluate_window(unit, start, points, kind="estimates")
        if scored.tested and start > newest_tested.get(unit, -1):
            newest_tested[unit] = start
            newest_outcomes[unit] = max(start, newest_outcomes.get(unit, -1))
            service.evaluate_window(unit, start, scored.points, from_labels=True)
        elif scored.outcomes_tested and start > newest_outcomes.get(unit, -1):
            newest_outcomes[unit] = start
            service.evaluate_window(unit, start, scored.outcome_points(), from_labels=True)

    worker.on_quality.append(on_quality)
    worker.on_close.append(service.stop)  # a worker closed without a Faust shutdown

    # the same signal-handler shape as streams/app.py (see the note there on the ignores)
    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def reload_alerts(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        service.reload()

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def stop_alarms(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        with contextlib.suppress(Exception):
            await asyncio.get_running_loop().run_in_executor(None, service.stop)

    return service


def with_version_cut(points: Sequence[Any]) -> Sequence[Any]:
    """A one-version window's points, and its whole ones again as that version's cut: what
    the store reads for ``version=`` (the window stores no cut of its own), so that a rule on a
    version sees every window of it, whatever the mix."""
    if any(p.segment.startswith(VERSION_PREFIX) for p in points):
        return points
    return [*points, *(replace(p, segment=version_cut(p.version)) for p in points if not p.segment)]
