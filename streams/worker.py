"""The prediction worker's wiring: decode → windows → store → dead letters → commit.

Agents stay thin (``streams/app.py``); the statistics live in ``detectors/``, the window and
offset bookkeeping in ``streams/windowing.py``. Store calls are blocking client calls, so they
run on one worker thread, in window order.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Container, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from detectors.drift.window import DriftReport
from driftline.events import (
    STORE_MAX_TS,
    STORE_MIN_TS,
    DeadLetter,
    Decoded,
    EventLimits,
    Rejected,
    decode_message,
)
from driftline.settings import KeepEvents
from driftline.store import (
    DriftRow,
    MetricPoint,
    OffsetMark,
    SetAsideWindow,
    Store,
    StoredReference,
)
from driftline.store.labels import LabelStore, PredictionBatch
from driftline.units import split_unit, unit_of
from streams.deadletters import DeadLetterOutbox, SendDeadLetter
from streams.drift import DriftAnalyzer, dominant_version

if TYPE_CHECKING:
    from streams.labels import LabelStats
    from streams.quality import QualityTracker, ScoredWindow
from streams.windowing import TP, ClosedWindow, Message, WindowManager

log = logging.getLogger(__name__)

__all__ = ["DeadLetter", "PredictionWorker", "SendDeadLetter", "decode_batch"]


def decode_batch(
    raw: Sequence[tuple[TP, int, float, bytes | None]],
    limits: EventLimits,
    start: int = 0,
    max_events: int | None = None,
    now: float | None = None,
) -> tuple[list[Message], list[DeadLetter], int]:
    """Decode (partition, offset, broker time, value) tuples from ``start`` on.

    Stops once ``max_events`` events are decoded; returns the messages, the dead letters and
    the index to continue from. ``now``: when they were received (default: the clock), for
    the plausibility of event times.
    """
    messages: list[Message] = []
    dead: list[DeadLetter] = []
    events = 0
    index = start
    received = time.time() if now is None else now
    while index < len(raw) and (max_events is None or events < max_events):
        tp, offset, broker_ts, value = raw[index]
        index += 1
        try:
            decoded = decode_message(value, limits, now=received, broker_ts=broker_ts)
        except Exception as exc:  # a decoder bug costs this message a dead letter, not the worker
            log.exception("could not decode the message at %s[%d]@%d", *tp, offset)
            decoded = Decoded(rejected=[Rejected(f"internal error: {exc!r}", value or b"")])
        invalid: dict[str, int] = {}
        if decoded.rejected:
            dead.extend(DeadLetter(r, tp, offset) for r in decoded.rejected)
            invalid = dict(Counter(r.model for r in decoded.rejected if r.model))
        for event in decoded.events:  # a pipeline stage is monitored as a unit of its own
            if event.get("stage"):
                event["model"] = unit_of(event["model"], event["stage"])
        messages.append(Message(tp, offset, broker_ts, decoded.events, invalid))
        events += len(decoded.events)
    return messages, dead, index


def keep_predictions(
    messages: Iterable[Message],
    window_seconds: int,
    into: PredictionBatch,
    only: Container[str] | None = None,
) -> None:
    """Add the events that carry an ``id`` to ``into`` (rows of the ``predictions`` table, for
    the label join): a few list appends per event and one JSON dump per call. ``only``: the
    units (``model`` or ``model::stage``) to keep; None keeps every one."""
    if only is not None and not only:
        return  # no unit has sent labels yet: nothing to look at
    models, stages, ids = into.models, into.stages, into.ids
    stamps, windows, versions = into.ts, into.window_starts, into.versions
    kept = []
    for message in messages:
        broker_ts = message.broker_ts
        for event in message.events:
            event_id = event.get("id")
            if event_id is None or (only is not None and event["model"] not in only):
                continue
            ts = event.get("ts")
            if ts is None:
                ts = broker_ts
            model, stage = split_unit(event["model"])
            models.append(model)
            stages.append(stage)
            ids.append(event_id)
            stamps.append(ts)
            windows.append(int(ts // window_seconds) * window_seconds)
            version = event.get("version")
            versions.append(version if type(version) is str else str(version or "unknown"))
            kept.append(event)
    if kept:
        into.events.append(orjson.dumps(kept))


def window_points(window: ClosedWindow) -> list[MetricPoint]:
    """The window's metrics, and each slice's with its ``segment`` ("channel=mobile")."""
    profile = window.profile
    version = profile.versions.most_common(1)[0][0] if profile.versions else ""
    model, stage = split_unit(window.model)
    points: list[MetricPoint] = []
    for segment, part in (("", profile), *sorted(window.slices.items())):
        points.extend(
            MetricPoint(
                model=model,
                window_start=profile.start,
                window_seconds=profile.seconds,
                metric=row.metric,
                value=row.value,
                feature=row.feature,
                category=row.category,
                segment=segment,
                stage=stage,
                version=version,
            )
            for row in part.metrics(window.known_categories)
        )
    return points


STORE_GROUP_WINDOWS = 64
SET_ASIDE_METRIC = "store.windows_set_aside"
MAX_UNSENT_LETTERS = 10_000  # dead letters waiting for the broker before intake pauses
EVENT_FLUSH_ROWS = 20_000  # raw predictions buffered before a write (also flushed every tick)
REFERENCE_POLL_S = 5.0
LABELLED_POLL_S = 30.0  # how often the models that have labels are read from the store


@dataclass(frozen=True)
class WindowResult:
    """A stored window and everything written for it."""

    window: ClosedWindow
    points: list[MetricPoint]
    drift: DriftReport | None = None  # None: no reference yet (or drift analysis off)
    drift_rows: list[DriftRow] = field(default_factory=list)
    learned_references: list[StoredReference] = field(default_factory=list)

    @property
    def model(self) -> str:
        return self.window.model

    @property
    def window_start(self) -> int:
        return self.window.profile.start


@dataclass
class WorkerStats:
    messages: int = 0
    events: int = 0
    dead_letters: int = 0
    windows_stored: int = 0
    store_errors: int = 0
    windows_set_aside: int = 0  # rejected by the store for their content (windows_set_aside)
    stale_dropped: int = 0  # fetched before a rebalance; replayed from the committed offset
    first_message_at: float | None = None  # wall clock, for throughput figures


class PredictionWorker:
    def __init__(
        self,
        store: Store,
        manager: WindowManager,
        limits: EventLimits,
        log_ids: dict[str, str],
        send_deadletter: SendDeadLetter,
        max_events: int = 5_000,
        drift: DriftAnalyzer | None = None,
        keep_events: KeepEvents = "none",
    ) -> None:
        self.store = store
        self.labels = LabelStore(store.backend)
        self.keep_events = keep_events
        # units that have sent labels: with "labelled", only their predictions are kept
        self.labelled: set[str] = set()
        self._last_labelled_poll = 0.0
        self._events = PredictionBatch()  # raw predictions not yet written
        self._writing: asyncio.Future[bool] | None = None  # a write of them in flight
        self.manager = manager
        self.limits = limits
        self.log_ids = log_ids  # topic name -> log identity (topic id)
        # every dead letter of the prediction and label agents, held until it is on the broker
        self.outbox = DeadLetterOutbox(send_deadletter, limits.max_deadletter_raw_bytes)
        self.max_events = max_events
        self.drift = drift
        self._references_stamp = 0
        # Set once the owned partitions' offset marks and the references are loaded. Faust can
        # resume its streams while the partitions-assigned handler is still awaiting the store,
        # so processing waits for it: otherwise replayed events of stored windows slip through
        # and the first windows are tested without their reference.
        self._restored = asyncio.Event()
        self._generation = 0  # bumped on each revocation; a batch taken before it is stale
        self._taken_over = False  # partitions assigned since the last quality pass
        self._retry: asyncio.Future[None] | None = None
        self._last_reference_poll = 0.0
        self._store_lock = asyncio.Lock()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="driftline-store")
        self.stats = WorkerStats()
        # called on the event loop after each window is stored (the CLI prints them; alarm
        # evaluation hooks in here): keep hooks quick and hand slow work to a queue
        self.on_stored: list[Callable[[WindowResult], None]] = []
        self.on_quality: list[Callable[[ScoredWindow], None]] = []  # after each quality pass
        # after a window is set aside, with its store.windows_set_aside point (alarms hook in)
        self.on_set_aside: list[Callable[[MetricPoint], None]] = []
        self.label_stats: LabelStats | None = None

    async def _in_store_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    run_blocking = _in_store_thread  # for the label agent: the same single store thread

    async def score_quality(self, tracker: QualityTracker) -> None:
        """One quality pass (``streams/quality.py``) over the units this worker consumes; its
        windows go to ``on_quality`` hooks. Skipped until the assignment is restored."""
        if not self._restored.is_set():
            return
        if self._taken_over:
            self._taken_over = False
            tracker.rescan()
        owned = frozenset(self.manager.models)  # read here: the pass runs in the store thread
        try:
            scored: list[ScoredWindow] = await self._in_store_thread(
                tracker.run, owned.__contains__
            )
        except Exception:
            self.stats.store_errors += 1
            log.exception("quality pass failed; the next one covers its windows too")
            return
        for window in scored:
            for hook in self.on_quality:
                try:
                    hook(window)
                except Exception:
                    log.exception("quality hook failed")

    async def drop_expired(self, keep_days: int) -> None:
        try:
            dropped = await self._in_store_thread(self.labels.drop_expired, keep_days)
        except Exception:
            log.exception("could not drop expired raw predictions and labels")
            return
        if dropped:
            log.info("dropped expired partitions: %s", ", ".join(dropped))

    async def process(self, raw: Sequence[tuple[TP, int, float, bytes | None]]) -> None:
        """One micro-batch of messages, in partition order.

        Decoded in chunks of about ``max_events`` events, each folded into the windows before
        the next is decoded, so memory stays bounded whatever the size of the messages.
        """
        await self._restored.wait()
        generation = self._generation
        stats = self.stats
        if stats.first_message_at is None:
            stats.first_message_at = time.time()
        start = 0
        while start < len(raw):
            messages, dead, start = decode_batch(raw, self.limits, start, self.max_events)
            stats.messages += len(messages)
            stats.events += sum(len(m.events) for m in messages)
            if self.keep_events != "none":
                only = self.labelled if self.keep_events == "labelled" else None
                keep_predictions(messages, self.manager.config.window_seconds, self._events, only)
                await self._spill_events()
            for failed in self.manager.add(messages, time.time()):
                dead.append(
                    DeadLetter(
                        Rejected(failed.reason, orjson.dumps(failed.event), None, failed.model),
                        failed.tp,
                        failed.offset,
                    )
                )
            del messages
            stats.dead_letters += len(dead)
            await self.outbox.send(dead)
            await self._drain_outbox()
            # Let the consumer move fetched messages into the stream buffer (and fetch more)
            # between chunks: without it, fetching stops while a micro-batch is processed and
            # the worker then idles for a round trip (about a fifth of the time, measured).
            await asyncio.sleep(0)
            if self._generation != generation:
                # a rebalance came in meanwhile: the rest is replayed from the committed offset
                self.stats.stale_dropped += len(raw) - start
                return
        if self.manager.close_due(time.time()):
            await self.store_closed()

    async def _drain_outbox(self) -> None:
        """While too many dead letters wait for the broker, stop taking events (back-pressure:
        they wait in Kafka, uncommitted) and retry them."""
        delay = 0.5
        while self.outbox.backlog > MAX_UNSENT_LETTERS:
            await self.outbox.settle()
            if self.outbox.backlog <= MAX_UNSENT_LETTERS:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _spill_events(self) -> None:
        """Once ``EVENT_FLUSH_ROWS`` raw predictions are buffered, write them in the background
        (the store thread; chDB and the driver release the GIL) while the next events are
        decoded: at most one write in flight and one buffer filling, so memory stays bounded
        however large the micro-batch. While the store fails, stop taking events until it
        takes these (back-pressure: they wait in Kafka, uncommitted)."""
        if len(self._events) < EVENT_FLUSH_ROWS:
            return
        if await self._settle():
            rows, self._events = self._events, PredictionBatch()
            self._writing = asyncio.ensure_future(self._write_events(rows))
            return
        delay = 0.5
        while not await self.flush_events():
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _settle(self) -> bool:
        """Wait for the write in flight; False if it failed (its rows are buffered again)."""
        writing = self._writing
        if writing is None:
            return True
        written = await writing  # the tick and the agent may both wait for the same write
        if self._writing is writing:
            self._writing = None
        return written

    async def _write_events(self, rows: PredictionBatch) -> bool:
        try:
            await self._in_store_thread(self.labels.write_predictions, rows)
        except Exception:
            self.stats.store_errors += 1
            log.exception("could not store %d raw predictions; will retry", len(rows))
            rows.extend(self._events)  # before the ones buffered since, in order
            self._events = rows
            return False
        return True

    async def flush_events(self) -> bool:
        """Write every buffered raw prediction, after the write in flight; False (and kept)
        when the store failed."""
        if not await self._settle():
            return False
        if not self._events:
            return True
        rows, self._events = self._events, PredictionBatch()
        return await self._write_events(rows)

    def note_labelled(self, units: Iterable[str]) -> None:
        """Units whose labels were just stored (by this process's label agent)."""
        self.labelled.update(units)

    async def _poll_labelled(self, now: bool = False) -> None:
        """Units with labels in the store (sent through another worker, or before a restart),
        every ``LABELLED_POLL_S``; ``now``: whenever it was last read."""
        if self.keep_events != "labelled":
            return
        if not now and time.monotonic() - self._last_labelled_poll < LABELLED_POLL_S:
            return
        self._last_labelled_poll = time.monotonic()
        try:
            units = await self._in_store_thread(self.labels.labelled_units)
        except Exception:
            log.exception("could not read which models have labels; keeping the ones known")
            return
        self.labelled.update(unit_of(model, stage) for model, stage in units)

    async def tick(self, commit: Callable[[dict[TP, int]], Awaitable[Any]]) -> None:
        """Close idle windows, retry unstored ones, commit what is stored."""
        await self._poll_labelled()
        if time.monotonic() - self._last_reference_poll >= REFERENCE_POLL_S:
            self._last_reference_poll = time.monotonic()
            try:
                await self.reload_references()
            except Exception:
                log.exception("could not reload references; keeping the ones loaded")
        self.manager.close_due(time.time())
        await self.store_closed()
        if not await self.flush_events():
            return  # the offsets of unwritten raw predictions must not be committed
        await self.outbox.settle()
        offsets = self.outbox.hold(self.manager.committable())
        if offsets:
            await commit(offsets)

    async def store_closed(self) -> None:
        """Store closed windows oldest first, in groups (bounded memory when many close at once).

        Each group is one write: its metrics, then its offset marks. When the store fails, the
        group and every later window stay held (offsets uncommitted) and are retried on the
        next tick. When it rejects the group's rows themselves (``Backend.rejects_data``), the
        windows are written one by one, and one that the store rejects alone, twice, is set
        aside (:meth:`_set_aside`) so that no window can block the others.
        """
        async with self._store_lock:
            windows = self.manager.unstored
            for first in range(0, len(windows), STORE_GROUP_WINDOWS):
                group = windows[first : first + STORE_GROUP_WINDOWS]
                results = [self.analyze(window) for window in group]
                try:
                    await self._write(results)
                except Exception as exc:
                    if not self.store.backend.rejects_data(exc):
                        self._store_failed(len(windows) - first)
                        return
                    if not await self._store_one_by_one(results):
                        self._store_failed(len(windows) - first)
                        return
                    continue
                self._stored(results)

    async def _write(self, results: Sequence[WindowResult]) -> None:
        marks = [
            OffsetMark(
                r.window.model,
                self.log_ids[t],
                p,
                offset,
                r.window.profile.start,
                r.window.seen.get((t, p), 0),
            )
            for r in results
            for (t, p), offset in r.window.marks.items()
            if t in self.log_ids
        ]
        await self._in_store_thread(
            self.store.write_window,
            [p for r in results for p in r.points],
            marks,
            [row for r in results for row in r.drift_rows],
            [ref for r in results for ref in r.learned_references],
        )

    async def _store_one_by_one(self, results: Sequence[WindowResult]) -> bool:
        """Write each window alone, setting aside those whose rows the store rejects; False
        (nothing more done) when the store fails for another reason."""
        for result in results:
            for attempt in (1, 2):
                try:
                    await self._write([result])
                except Exception as exc:
                    if not self.store.backend.rejects_data(exc):
                        return False
                    if attempt == 2:
                        await self._set_aside(result.window, exc)
                    continue
                self._stored([result])
                break
        return True

    def _store_failed(self, held: int) -> None:
        self.stats.store_errors += 1
        log.exception(
            "could not store %d closed windows; will retry, offsets stay uncommitted", held
        )

    def _stored(self, results: Sequence[WindowResult]) -> None:
        self.manager.mark_stored([r.window for r in results])
        self.stats.windows_stored += len(results)
        for result in results:
            for hook in self.on_stored:
                try:
                    hook(result)
                except Exception:
                    log.exception("window hook failed")

    async def _set_aside(self, window: ClosedWindow, exc: Exception) -> None:
        """Record a window the store cannot take (``windows_set_aside``, with the reason) and
        count it (``store.windows_set_aside``, which the default ``WindowSetAside`` rule alerts
        on), then go on as if it were stored: its events are accounted for, not retried."""
        model, stage = split_unit(window.model)
        profile = window.profile
        now = time.time()
        reason = f"{exc.__class__.__name__}: {exc}"[:2000]
        record = SetAsideWindow(
            model,
            stage,
            profile.start,
            profile.seconds,
            profile.count + profile.late + profile.invalid,
            reason,
            now,
        )
        # the count goes in a window the store can hold: this one, or the current one
        start = profile.start
        if not STORE_MIN_TS <= start <= STORE_MAX_TS:
            start = int(now // profile.seconds) * profile.seconds
        point = MetricPoint(
            model, start, profile.seconds, SET_ASIDE_METRIC, 1.0, stage=stage
        )
        log.error(
            "set aside window %d of %r (%d events): the store rejects it (%s); other windows "
            "go on",
            profile.start,
            window.model,
            record.events,
            reason,
        )
        try:
            await self._in_store_thread(self.store.set_aside, record)
            await self._in_store_thread(self.store.write_window, [point], [])
        except Exception:
            log.exception("could not record the window set aside")
        self.manager.mark_stored([window])
        self.stats.windows_set_aside += 1
        for hook in self.on_set_aside:
            try:
                hook(point)
            except Exception:
                log.exception("set-aside hook failed")

    def analyze(self, window: ClosedWindow) -> WindowResult:
        """Everything stored for a closed window: its profile's metrics and its drift."""
        points = window_points(window)
        if self.drift is None:
            return WindowResult(window, points)
        outcome = self.drift.analyze(window)
        model, stage = split_unit(window.model)
        version = points[0].version if points else ""
        rows = list(outcome.rows)
        reports = [("", outcome.report)]
        for segment, profile in sorted(window.slices.items()):
            report, slice_rows = self.drift.analyze_slice(
                window.model, dominant_version(window.profile), segment, profile
            )
            reports.append((segment, report))
            rows.extend(slice_rows)
        for segment, report in reports:
            if report is not None:
                points.extend(
                    MetricPoint(
                        model,
                        window.profile.start,
                        window.profile.seconds,
                        metric,
                        value,
                        feature=feature,
                        segment=segment,
                        stage=stage,
                        version=version,
                    )
                    for metric, feature, value in report.metrics
                )
        return WindowResult(window, points, outcome.report, rows, outcome.learned)

    async def reload_references(self, everything: bool = False) -> None:
        """Pick up references uploaded through the API (possibly by another process).

        ``everything`` (at start and after a rebalance): every stored reference, learned ones
        included. Otherwise only uploads newer than the last load: the worker's own learned
        references are already in memory, and re-reading them all every few seconds would
        cost as much memory as they take (a sample per feature per model version).
        """
        if self.drift is None:
            return
        stamp = await self._in_store_thread(self.store.references_stamp)
        if everything:
            self.drift.load(await self._in_store_thread(self.store.references))
        elif stamp > self._references_stamp:
            since = self._references_stamp
            self.drift.load(
                await self._in_store_thread(
                    functools.partial(self.store.references, uploaded_since=since)
                )
            )
        self._references_stamp = max(stamp, self._references_stamp)

    async def _restore(self, owned: set[TP]) -> None:
        """Load stored offset marks (and what models have shown) for newly owned partitions,
        and the references, before any of their events are processed."""
        await self.reload_references(everything=True)
        await self._poll_labelled(now=True)
        topic_of = {log_id: topic for topic, log_id in self.log_ids.items()}
        marks: list[OffsetMark] = await self._in_store_thread(
            self.store.offset_marks, list(self.log_ids.values())
        )
        self.manager.restore_stored(await self._in_store_thread(self.store.stored_through))
        models = set()
        for mark in marks:
            tp = (topic_of[mark.log_id], mark.partition)
            if tp in owned:
                self.manager.restore(
                    mark.model, tp, mark.next_offset, mark.window_start, mark.seen_below
                )
                models.add(mark.model)
        for model in models:
            known = await self._in_store_thread(self.store.known_categories, *split_unit(model))
            self.manager.restore_categories(model, known)
            slices = await self._in_store_thread(self.store.segments, *split_unit(model))
            self.manager.segments.restore(model, slices)

    async def restore(self, assigned: Iterable[TP]) -> None:
        """Restore newly owned partitions; processing resumes once this has succeeded. If the
        store is unreachable, retry in the background: events wait, uncommitted, meanwhile."""
        owned = set(assigned)
        try:
            await self._restore(owned)
        except Exception:
            log.exception("could not restore offsets and references; retrying")
            self._retry = asyncio.ensure_future(self._restore_until_done(owned))
            return
        self._restored_now()

    async def _restore_until_done(self, owned: set[TP]) -> None:
        delay = 1.0
        while True:
            await asyncio.sleep(delay)
            try:
                await self._restore(owned)
            except Exception:
                log.exception("could not restore offsets and references; retrying")
                delay = min(delay * 2, 30.0)
                continue
            self._restored_now()
            return

    def _restored_now(self) -> None:
        self._taken_over = True
        self._restored.set()

    def forget(self, revoked: Iterable[TP]) -> None:
        self._generation += 1
        self._restored.clear()  # until the next assignment has been restored
        self.manager.forget(revoked)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
