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
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson

from detectors.drift.window import DriftReport
from driftline.events import EventLimits, Rejected, deadletter_record, decode_message
from driftline.store import DriftRow, MetricPoint, OffsetMark, Store, StoredReference
from streams.drift import DriftAnalyzer
from streams.windowing import TP, ClosedWindow, Message, WindowManager

log = logging.getLogger(__name__)

SendDeadLetter = Callable[[bytes | None, bytes], Awaitable[Any]]


@dataclass(frozen=True)
class DeadLetter:
    rejected: Rejected
    tp: TP
    offset: int

    def record(self) -> bytes:
        topic, partition = self.tp
        return deadletter_record(self.rejected, topic, partition, self.offset)


def decode_batch(
    raw: Sequence[tuple[TP, int, float, bytes | None]],
    limits: EventLimits,
    start: int = 0,
    max_events: int | None = None,
) -> tuple[list[Message], list[DeadLetter], int]:
    """Decode (partition, offset, broker time, value) tuples from ``start`` on.

    Stops once ``max_events`` events are decoded; returns the messages, the dead letters and
    the index to continue from.
    """
    messages: list[Message] = []
    dead: list[DeadLetter] = []
    events = 0
    index = start
    while index < len(raw) and (max_events is None or events < max_events):
        tp, offset, broker_ts, value = raw[index]
        index += 1
        decoded = decode_message(value, limits)
        invalid: dict[str, int] = {}
        if decoded.rejected:
            dead.extend(DeadLetter(r, tp, offset) for r in decoded.rejected)
            invalid = dict(Counter(r.model for r in decoded.rejected if r.model))
        messages.append(Message(tp, offset, broker_ts, decoded.events, invalid))
        events += len(decoded.events)
    return messages, dead, index


def window_points(window: ClosedWindow) -> list[MetricPoint]:
    profile = window.profile
    version = profile.versions.most_common(1)[0][0] if profile.versions else ""
    return [
        MetricPoint(
            model=window.model,
            window_start=profile.start,
            window_seconds=profile.seconds,
            metric=row.metric,
            value=row.value,
            feature=row.feature,
            category=row.category,
            version=version,
        )
        for row in profile.metrics(window.known_categories)
    ]


STORE_GROUP_WINDOWS = 64
REFERENCE_POLL_S = 5.0


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
        max_events: int = 10_000,
        drift: DriftAnalyzer | None = None,
    ) -> None:
        self.store = store
        self.manager = manager
        self.limits = limits
        self.log_ids = log_ids  # topic name -> log identity (topic id)
        self._send_deadletter = send_deadletter
        self.max_events = max_events
        self.drift = drift
        self._references_stamp = 0
        # Set once the owned partitions' offset marks and the references are loaded. Faust can
        # resume its streams while the partitions-assigned handler is still awaiting the store,
        # so processing waits for it: otherwise replayed events of stored windows slip through
        # and the first windows are tested without their reference.
        self._restored = asyncio.Event()
        self._retry: asyncio.Future[None] | None = None
        self._last_reference_poll = 0.0
        self._store_lock = asyncio.Lock()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="driftline-store")
        self.stats = WorkerStats()
        # called on the event loop after each window is stored (the CLI prints them; alarm
        # evaluation hooks in here): keep hooks quick and hand slow work to a queue
        self.on_stored: list[Callable[[WindowResult], None]] = []

    async def _in_store_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def process(self, raw: Sequence[tuple[TP, int, float, bytes | None]]) -> None:
        """One micro-batch of messages, in partition order.

        Decoded in chunks of about ``max_events`` events, each folded into the windows before
        the next is decoded, so memory stays bounded whatever the size of the messages.
        """
        await self._restored.wait()
        stats = self.stats
        if stats.first_message_at is None:
            stats.first_message_at = time.time()
        start = 0
        while start < len(raw):
            messages, dead, start = decode_batch(raw, self.limits, start, self.max_events)
            stats.messages += len(messages)
            stats.events += sum(len(m.events) for m in messages)
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
            for letter in dead:
                await self._send_deadletter(
                    letter.rejected.model.encode() if letter.rejected.model else None,
                    letter.record(),
                )
        if self.manager.close_due(time.time()):
            await self.store_closed()

    async def tick(self, commit: Callable[[dict[TP, int]], Awaitable[Any]]) -> None:
        """Close idle windows, retry unstored ones, commit what is stored."""
        if time.monotonic() - self._last_reference_poll >= REFERENCE_POLL_S:
            self._last_reference_poll = time.monotonic()
            try:
                await self.reload_references()
            except Exception:
                log.exception("could not reload references; keeping the ones loaded")
        self.manager.close_due(time.time())
        await self.store_closed()
        offsets = self.manager.committable()
        if offsets:
            await commit(offsets)

    async def store_closed(self) -> None:
        """Store closed windows oldest first, in groups (bounded memory when many close at once).

        Each group is one write: its metrics, then its offset marks. On failure the group and
        every later window stay held (offsets uncommitted) and are retried on the next tick.
        """
        async with self._store_lock:
            windows = self.manager.unstored
            for first in range(0, len(windows), STORE_GROUP_WINDOWS):
                group = windows[first : first + STORE_GROUP_WINDOWS]
                results = [self.analyze(window) for window in group]
                points = [p for result in results for p in result.points]
                drift = [row for result in results for row in result.drift_rows]
                learned = [ref for result in results for ref in result.learned_references]
                marks = [
                    OffsetMark(window.model, self.log_ids[t], p, offset, window.profile.start)
                    for window in group
                    for (t, p), offset in window.marks.items()
                    if t in self.log_ids
                ]
                try:
                    await self._in_store_thread(
                        self.store.write_window, points, marks, drift, learned
                    )
                except Exception:
                    self.stats.store_errors += 1
                    log.exception(
                        "could not store %d closed windows; will retry, offsets stay uncommitted",
                        len(windows) - first,
                    )
                    return
                self.manager.mark_stored(group)
                self.stats.windows_stored += len(group)
                for result in results:
                    for hook in self.on_stored:
                        try:
                            hook(result)
                        except Exception:
                            log.exception("window hook failed")

    def analyze(self, window: ClosedWindow) -> WindowResult:
        """Everything stored for a closed window: its profile's metrics and its drift."""
        points = window_points(window)
        if self.drift is None:
            return WindowResult(window, points)
        outcome = self.drift.analyze(window)
        if outcome.report is not None:
            version = points[0].version if points else ""
            points.extend(
                MetricPoint(
                    window.model,
                    window.profile.start,
                    window.profile.seconds,
                    metric,
                    value,
                    feature=feature,
                    version=version,
                )
                for metric, feature, value in outcome.report.metrics
            )
        return WindowResult(window, points, outcome.report, outcome.rows, outcome.learned)

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
        topic_of = {log_id: topic for topic, log_id in self.log_ids.items()}
        marks: list[OffsetMark] = await self._in_store_thread(
            self.store.offset_marks, list(self.log_ids.values())
        )
        models = set()
        for mark in marks:
            tp = (topic_of[mark.log_id], mark.partition)
            if tp in owned:
                self.manager.restore(mark.model, tp, mark.next_offset, mark.window_start)
                models.add(mark.model)
        for model in models:
            known = await self._in_store_thread(self.store.known_categories, model)
            self.manager.restore_categories(model, known)

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
        self._restored.set()

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
            self._restored.set()
            return

    def forget(self, revoked: Iterable[TP]) -> None:
        self._restored.clear()  # until the next assignment has been restored
        self.manager.forget(revoked)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
