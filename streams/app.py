"""The Faust app: one agent profiles prediction events, one timer closes windows and commits.

Events are already keyed by model, so no ``group_by`` is needed (which also avoids the loss of
events on restart seen with Faust 0.15.3 when an agent re-keyed a backlog).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import faust
from faust.types import TP
from prometheus_client import CollectorRegistry

from detectors.profile import ProfileConfig
from detectors.streaming import StreamingSpec
from driftline import topics
from driftline.events import deadletter_max_bytes
from driftline.settings import Settings
from driftline.store import Stores
from streams.alarms import attach_alarms
from streams.batching import take_batches
from streams.drift import drift_analyzer
from streams.estimation import EstimationConfig
from streams.labels import LabelWorker
from streams.metrics import WorkerCollector
from streams.quality import QualityConfig, QualityTracker
from streams.transport import consumer_of
from streams.windowing import WindowConfig, WindowManager
from streams.worker import PredictionWorker

TICK_SECONDS = 1.0
SLICE_CATEGORIES = 50  # distinct values counted per feature in a slice's profile


def is_current(message: Any, app: faust.App) -> bool:
    """Whether a message was fetched in the consumer's current generation.

    On a rebalance Faust clears the agents' queues, but events already taken into a
    ``take_batches`` batch are still yielded afterwards. The worker has forgotten the revoked
    partitions' windows by then, and Faust seeks them back to the committed offset, so such an
    event would be counted twice (or fold into a partial copy of a stored window). It is
    dropped instead: the replay after the seek delivers it again.
    """
    generation = message.generation_id
    return generation is None or generation == app.consumer_generation_id


def broker_urls(bootstrap: str) -> list[str]:
    return [f"driftline://{host.strip()}" for host in bootstrap.split(",") if host.strip()]


def window_config(settings: Settings) -> WindowConfig:
    """How the worker's windows are profiled, from the settings."""
    return WindowConfig(
        window_seconds=settings.window_seconds,
        allowed_lateness_s=settings.allowed_lateness_s,
        idle_close_s=settings.idle_close_s,
        profile=ProfileConfig(
            settings.sample_size, settings.max_categories, settings.max_window_custom_metrics
        ),
        max_segment_values=settings.max_segment_values,
        slice_profile=ProfileConfig(
            settings.segment_sample_size,
            min(settings.max_categories, SLICE_CATEGORIES),
            settings.max_window_custom_metrics,
        ),
        streaming={
            model: tuple(StreamingSpec.of(name) for name in names)
            for model, names in settings.streaming_detectors.items()
        },
    )


def create_app(
    settings: Settings,
    stores: Stores,
    log_ids: dict[str, str],
    registry: CollectorRegistry | None = None,
) -> tuple[faust.App, PredictionWorker]:
    """A Faust app wired to the process's ``stores``, and its worker (counters, hooks,
    shutdown).

    ``log_ids`` comes from :func:`driftline.broker.log_ids`. ``registry``: the process's
    Prometheus registry, where the worker's series (``streams/metrics.py``) are added.
    """
    session_timeout = settings.consumer_session_timeout_s
    app = faust.App(
        settings.consumer_group,
        broker=broker_urls(settings.kafka_bootstrap),
        store="memory://",
        autodiscover=False,
        web_enabled=False,
        topic_disable_leader=True,
        topic_allow_declare=False,
        broker_session_timeout=session_timeout,
        broker_heartbeat_interval=min(3.0, session_timeout / 3),
        broker_rebalance_timeout=max(session_timeout, 10.0),
        consumer_auto_offset_reset="earliest",
        # throughput settings measured in PERF-NOTES.md
        stream_wait_empty=False,
        broker_check_crcs=False,
        consumer_max_fetch_size=8 * 1024 * 1024,
        stream_buffer_maxsize=settings.stream_buffer_messages,
        # a dead letter is bounded (driftline/events.py): the producer is sized for the largest
        producer_max_request_size=max(1_048_576, deadletter_max_bytes(settings.event_limits())),
    )
    predictions = app.topic(
        topics.PREDICTIONS, key_serializer="raw", value_serializer="raw", acks=False
    )
    deadletter = app.topic(topics.DEADLETTER, key_serializer="raw", value_serializer="raw")

    async def send_deadletter(key: bytes | None, value: bytes) -> Any:
        return await deadletter.send(key=key, value=value)

    manager = WindowManager(window_config(settings))
    drift = drift_analyzer(settings)
    limits = settings.event_limits()
    worker = PredictionWorker(
        stores,
        manager,
        limits,
        log_ids,
        send_deadletter,
        settings.batch_max_events,
        drift,
        keep_events=settings.keep_events,
    )
    labels_topic = app.topic(
        topics.LABELS, key_serializer="raw", value_serializer="raw", acks=False
    )
    label_worker = LabelWorker(
        worker.labels, limits, worker.outbox, worker.thread.run, worker.raw.note_labelled
    )
    quality = QualityTracker(
        stores.labels,
        stores.store,
        QualityConfig(
            window_seconds=settings.window_seconds,
            horizon_s=settings.label_horizon_s,
            reference_windows=settings.quality_reference_windows,
            min_labels=settings.quality_min_labels,
            alpha=settings.drift_alpha,
            detectors=settings.concept_detectors,
            flag_detectors=settings.concept_flag_detectors,
            outcome_profile=ProfileConfig(
                settings.sample_size, settings.max_categories, settings.max_window_custom_metrics
            ),
            estimation=EstimationConfig(
                enabled=settings.estimation_enabled,
                reference_windows=settings.estimation_reference_windows,
                reference_pairs=settings.estimation_reference_pairs,
                min_labels=settings.quality_min_labels,
                alpha=settings.drift_alpha,
            ),
        ),
        manager.segments,
    )
    # alarm rules evaluated as each window is stored; open alerts loaded from the store now
    alarms = attach_alarms(app, worker, settings, stores)
    if registry is not None:
        registry.register(WorkerCollector(worker, label_worker.stats, alarms))

    batches = partial(
        take_batches,
        max_messages=settings.batch_max_messages,
        max_bytes=settings.batch_max_bytes,
        within=settings.batch_within_s,
    )

    @app.agent(predictions, name="profile_predictions", concurrency=1)
    async def profile_predictions(stream: Any) -> None:
        async for events in batches(stream):
            current = [e.message for e in events if is_current(e.message, app)]
            await worker.process(
                [(m.tp, m.offset, m.timestamp, m.value) for m in current],
                stale=len(events) - len(current),
            )

    async def commit(offsets: dict[tuple[str, int], int]) -> None:
        await app.producer.flush()  # dead letters of these messages are on the broker first
        await consumer_of(app).commit_offsets({TP(t, p): o for (t, p), o in offsets.items()})

    @app.agent(labels_topic, name="store_labels", concurrency=1)
    async def store_labels(stream: Any) -> None:
        async for events in batches(stream):
            current = [e.message for e in events if is_current(e.message, app)]
            await label_worker.process(
                [(m.tp, m.offset, m.timestamp, m.value) for m in current], commit
            )

    @app.timer(TICK_SECONDS, name="close_windows_and_commit")  # type: ignore[untyped-decorator]
    async def close_windows_and_commit() -> None:
        await worker.tick(commit)

    @app.timer(settings.quality_interval_s, name="score_labelled_windows")  # type: ignore[untyped-decorator]
    async def score_labelled_windows() -> None:
        await worker.score_quality(quality)

    @app.timer(3600.0, name="drop_expired_events")  # type: ignore[untyped-decorator]
    async def drop_expired_events() -> None:
        await worker.drop_expired(settings.event_retention_days)

    # mode types the handler's `signal` keyword with an unresolvable forward reference, which
    # no handler can satisfy; the ignores are limited to that argument check.
    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def restore_offsets(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        assigned: set[TP] = args[0] if args else kwargs["assigned"]
        await worker.restore((tp.topic, tp.partition) for tp in assigned)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def forget_partitions(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        revoked: set[TP] = args[0] if args else kwargs["revoked"]
        worker.forget((tp.topic, tp.partition) for tp in revoked)

    return app, worker
