"""The worker's ``/metrics``: its counters, read at scrape time (``driftline/metrics.py``).

Nothing here runs per event: the pipeline, the label agent, the outbox and the webhook
dispatcher keep plain numbers, and :class:`WorkerCollector` turns them into series when
Prometheus asks. The values are read from the scrape thread without a lock: a scrape may see
one counter a batch ahead of another, never a torn number.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from alarms.state import AlertState
from driftline.metrics import REASON_CLASS_NAMES, counts_by, histogram
from driftline.notify import DELIVERY_OUTCOMES
from streams.alarms import AlarmService
from streams.labels import LabelStats
from streams.worker import PredictionWorker

OPEN_STATES = tuple(s.value for s in AlertState if s.is_open)


class WorkerCollector(Collector):
    """The series of one prediction worker (and its label agent and alarm service)."""

    def __init__(
        self,
        worker: PredictionWorker,
        labels: LabelStats | None = None,
        alarms: AlarmService | None = None,
    ) -> None:
        self.worker = worker
        self.labels = labels
        self.alarms = alarms

    def collect(self) -> Iterator[Metric]:
        stats = self.worker.stats
        labels = self.labels
        messages = CounterMetricFamily(
            "driftline_worker_messages", "Kafka messages consumed, by topic", labels=["topic"]
        )
        messages.add_metric(["predictions"], stats.messages)
        events = CounterMetricFamily(
            "driftline_worker_events", "Events decoded, by topic", labels=["topic"]
        )
        events.add_metric(["predictions"], stats.events)
        dead = CounterMetricFamily(
            "driftline_worker_dead_letters",
            "Events and messages sent to driftline.deadletter, by topic and reason class",
            labels=["topic", "reason"],
        )
        for reason in REASON_CLASS_NAMES:
            dead.add_metric(["predictions", reason], stats.dead_letter_reasons.get(reason, 0))
        store_errors = CounterMetricFamily(
            "driftline_worker_store_errors",
            "Store writes and passes that failed (retried), by topic",
            labels=["topic"],
        )
        store_errors.add_metric(["predictions"], stats.store_errors)
        if labels is not None:
            messages.add_metric(["labels"], labels.messages)
            events.add_metric(["labels"], labels.labels)
            for reason in REASON_CLASS_NAMES:
                dead.add_metric(["labels", reason], labels.dead_letter_reasons.get(reason, 0))
            store_errors.add_metric(["labels"], labels.store_errors)
        yield from (messages, events, dead, store_errors)
        yield CounterMetricFamily(
            "driftline_worker_windows_stored", "Closed windows stored", value=stats.windows_stored
        )
        yield CounterMetricFamily(
            "driftline_worker_windows_set_aside",
            "Closed windows the store rejected for their content (see /v1/set-aside)",
            value=stats.windows_set_aside,
        )
        yield CounterMetricFamily(
            "driftline_worker_stale_messages",
            "Messages fetched before a rebalance, dropped and replayed",
            value=stats.stale_dropped,
        )
        yield histogram(
            "driftline_worker_store_write_seconds",
            "Time to write a group of closed windows to the store",
            stats.store_write_s,
        )
        yield histogram(
            "driftline_worker_window_close_delay_seconds",
            "Wall-clock time a window was stored after its end in event time",
            stats.close_delay_s,
        )
        yield from self._windows()
        yield GaugeMetricFamily(
            "driftline_worker_dead_letters_unsent",
            "Dead letters not yet confirmed on the broker (their offsets stay uncommitted)",
            value=self.worker.outbox.backlog,
        )
        if self.alarms is not None:
            yield from self._alarms(self.alarms)

    def _windows(self) -> Iterator[Metric]:
        manager = self.worker.manager
        states = list(manager.models.values())
        newest = max((s.max_ts for s in states), default=float("-inf"))
        yield GaugeMetricFamily(
            "driftline_worker_units", "Models and pipeline stages this worker has seen",
            value=len(states),
        )  # fmt: skip
        yield GaugeMetricFamily(
            "driftline_worker_open_windows", "Windows open for events",
            value=sum(len(s.windows) for s in states),
        )  # fmt: skip
        yield GaugeMetricFamily(
            "driftline_worker_unstored_windows", "Closed windows waiting to be stored",
            value=len(manager.unstored),
        )  # fmt: skip
        if newest != float("-inf"):
            yield GaugeMetricFamily(
                "driftline_worker_event_time_lag_seconds",
                "Wall clock minus the newest event time seen (how far behind the stream is)",
                value=time.time() - newest,
            )

    def _alarms(self, alarms: AlarmService) -> Iterator[Metric]:
        open_alerts = GaugeMetricFamily(
            "driftline_alerts", "Open alerts of the models this worker evaluates, by state",
            labels=["state"],
        )  # fmt: skip
        counts = counts_by((a.state.value for a in alarms.open_alerts()), OPEN_STATES)
        for state, count in counts.items():
            open_alerts.add_metric([state], count)
        yield open_alerts
        deliveries = CounterMetricFamily(
            "driftline_webhook_deliveries",
            "Webhook delivery state changes, by outcome (failed: given up)",
            labels=["outcome"],
        )
        for outcome in DELIVERY_OUTCOMES:
            deliveries.add_metric([outcome], getattr(alarms.dispatcher.stats, outcome))
        yield deliveries
