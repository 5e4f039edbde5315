"""The window pipeline: decode → windows → stored rows → dead letters.

Events are decoded in bounded chunks, folded into the open windows (``streams/windowing.py``),
and each closed window is turned into rows by ``streams/window_rows.py`` and written on the
process's store thread, oldest first. Dead letters go through the outbox
(``streams/deadletters.py``). The offsets to commit are the window manager's, held back by the
outbox; the worker (``streams/worker.py``) commits them on each tick.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import orjson

from driftline.events import (
    STORE_MAX_TS,
    STORE_MIN_TS,
    DeadLetter,
    Decoded,
    EventLimits,
    Rejected,
    decode_message,
)
from driftline.metrics import Timings, reason_class
from driftline.store import MetricPoint, OffsetMark, SetAsideWindow, Store
from driftline.units import split_unit, unit_of
from streams.deadletters import DeadLetterOutbox
from streams.drift import DriftAnalyzer, read_references
from streams.raw_predictions import RawPredictions
from streams.restore import PartitionRestore
from streams.store_thread import StoreThread
from streams.window_rows import WindowResult, window_rows
from streams.windowing import TP, ClosedWindow, Message, WindowManager

log = logging.getLogger(__name__)

STORE_GROUP_WINDOWS = 64
SET_ASIDE_METRIC = "store.windows_set_aside"
MAX_UNSENT_LETTERS = 10_000  # dead letters waiting for the broker before intake pauses
REFERENCE_POLL_S = 5.0


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
        # kept events whose bad custom metrics were dropped: said on the dead-letter topic
        dead.extend(DeadLetter(r, tp, offset) for r in decoded.dropped)
        for event in decoded.events:  # a pipeline stage is monitored as a unit of its own
            if event.get("stage"):
                event["model"] = unit_of(event["model"], event["stage"])
        messages.append(Message(tp, offset, broker_ts, decoded.events, invalid))
        events += len(decoded.events)
    return messages, dead, index


@dataclass
class PipelineStats:
    messages: int = 0
    events: int = 0
    dead_letters: int = 0
    windows_stored: int = 0
    store_errors: int = 0
    windows_set_aside: int = 0  # rejected by the store for their content (windows_set_aside)
    stale_dropped: int = 0  # fetched before a rebalance; replayed from the committed offset
    first_message_at: float | None = None  # wall clock, for throughput figures
    # per reason class (driftline/metrics.py): counted per dead letter, which are rare
    dead_letter_reasons: Counter[str] = field(default_factory=Counter)
    store_write_s: Timings = field(default_factory=Timings)  # per write of a group of windows
    # wall clock at storing minus the window's end in event time, per stored window
    close_delay_s: Timings = field(default_factory=Timings)


class WindowPipeline:
    def __init__(
        self,
        store: Store,
        manager: WindowManager,
        limits: EventLimits,
        log_ids: dict[str, str],
        thread: StoreThread,
        outbox: DeadLetterOutbox,
        raw: RawPredictions,
        partitions: PartitionRestore,
        max_events: int = 5_000,
        drift: DriftAnalyzer | None = None,
    ) -> None:
        self.store = store
        self.manager = manager
        self.limits = limits
        self.log_ids = log_ids  # topic name -> log identity (topic id)
        self.thread = thread
        self.outbox = outbox
        self.raw = raw  # the raw predictions kept for the label join
        self.partitions = partitions
        self.max_events = max_events
        self.drift = drift
        self._references_stamp = 0
        self._last_reference_poll = 0.0
        self._store_lock = asyncio.Lock()
        self.stats = PipelineStats()
        # called on the event loop after each window is stored (the CLI prints them; alarm
        # evaluation hooks in here): keep hooks quick and hand slow work to a queue
        self.on_stored: list[Callable[[WindowResult], None]] = []
        # after a window is set aside, with its store.windows_set_aside point (alarms hook in)
        self.on_set_aside: list[Callable[[MetricPoint], None]] = []

    async def process(
        self, raw: Sequence[tuple[TP, int, float, bytes | None]], stale: int = 0
    ) -> None:
        """One micro-batch of messages, in partition order (``stale``: how many the agent
        dropped as fetched before a rebalance).

        Decoded in chunks of about ``max_events`` events, each folded into the windows before
        the next is decoded, so memory stays bounded whatever the size of the messages.
        """
        stats = self.stats
        stats.stale_dropped += stale
        if stale:
            log.warning(
                "dropped %d messages fetched before a rebalance: they are replayed from the "
                "committed offset (%d so far)",
                stale,
                stats.stale_dropped,
            )
        await self.partitions.ready.wait()
        generation = self.partitions.generation
        if stats.first_message_at is None:
            stats.first_message_at = time.time()
        start = 0
        while start < len(raw):
            messages, dead, start = decode_batch(raw, self.limits, start, self.max_events)
            stats.messages += len(messages)
            stats.events += sum(len(m.events) for m in messages)
            await self.raw.keep(messages)
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
                stats.dead_letter_reasons[reason_class(letter.rejected.reason)] += 1
            await self.outbox.send(dead)
            await self._drain_outbox()
            # Let the consumer move fetched messages into the stream buffer (and fetch more)
            # between chunks: without it, fetching stops while a micro-batch is processed and
            # the worker then idles for a round trip (about a fifth of the time, measured).
            await asyncio.sleep(0)
            if self.partitions.generation != generation:
                # a rebalance came in meanwhile: the rest is replayed from the committed offset
                self.stats.stale_dropped += len(raw) - start
                log.warning(
                    "a rebalance came in: %d messages of this batch are left to the replay "
                    "from the committed offset",
                    len(raw) - start,
                )
                return
        if self.manager.close_due(time.time()):
            await self.store_closed()

    async def close_and_store(self) -> None:
        """Close the windows that are due, store every closed one; reload uploaded references
        every ``REFERENCE_POLL_S``."""
        if time.monotonic() - self._last_reference_poll >= REFERENCE_POLL_S:
            self._last_reference_poll = time.monotonic()
            try:
                await self.reload_references()
            except Exception:
                log.exception("could not reload references; keeping the ones loaded")
        self.manager.close_due(time.time())
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
        started = time.perf_counter()
        try:
            await self.thread.run(
                self.store.write_window,
                [p for r in results for p in r.points],
                marks,
                [row for r in results for row in r.drift_rows],
                # made here, on the store thread, one at a time (see LearnedReference)
                (ref.stored() for r in results for ref in r.learned_references),
            )
        finally:
            self.stats.store_write_s.observe(time.perf_counter() - started)

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
        now = time.time()
        for result in results:
            profile = result.window.profile
            self.stats.close_delay_s.observe(max(0.0, now - (profile.start + profile.seconds)))
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
        point = MetricPoint(model, start, profile.seconds, SET_ASIDE_METRIC, 1.0, stage=stage)
        log.error(
            "set aside window %d of %r (%d events): the store rejects it (%s); other windows go on",
            profile.start,
            window.model,
            record.events,
            reason,
        )
        try:
            await self.thread.run(self.store.set_aside, record)
            await self.thread.run(self.store.write_window, [point], [])
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
        """Everything stored for a closed window (``streams/window_rows.py``)."""
        return window_rows(window, self.drift)

    async def reload_references(self, everything: bool = False) -> None:
        """Pick up references uploaded through the API (possibly by another process).

        ``everything`` (at start and after a rebalance): every stored reference, learned ones
        included. Otherwise only uploads newer than the last load: the worker's own learned
        references are already in memory, and re-reading them all every few seconds would
        cost as much memory as they take (a sample per feature per model version).
        """
        if self.drift is None:
            return
        stamp = await self.thread.run(self.store.references_stamp)
        if everything or stamp > self._references_stamp:
            since = None if everything else self._references_stamp
            # read on the store thread, each decoded and packed before the next (one decoded
            # profile at a time, not every model's), then loaded here on the event loop
            rows = functools.partial(self.store.iter_references, uploaded_since=since)
            loaded = await self.thread.run(lambda: read_references(rows()))
            self.drift.book.load(loaded)
        self._references_stamp = max(stamp, self._references_stamp)
