"""The prediction worker's wiring: decode → windows → store → dead letters → commit.

Agents stay thin (``streams/app.py``); the statistics live in ``detectors/``, the window and
offset bookkeeping in ``streams/windowing.py``. Store calls are blocking client calls, so they
run on one worker thread, in window order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from driftline.events import EventLimits, Rejected, deadletter_record, decode_message
from driftline.store import MetricPoint, OffsetMark, Store
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
    raw: Iterable[tuple[TP, int, float, bytes | None]], limits: EventLimits
) -> tuple[list[Message], list[DeadLetter]]:
    """Decode (partition, offset, broker time, value) tuples into messages and dead letters."""
    messages: list[Message] = []
    dead: list[DeadLetter] = []
    for tp, offset, broker_ts, value in raw:
        decoded = decode_message(value, limits)
        invalid: dict[str, int] = {}
        if decoded.rejected:
            dead.extend(DeadLetter(r, tp, offset) for r in decoded.rejected)
            invalid = dict(Counter(r.model for r in decoded.rejected if r.model))
        messages.append(Message(tp, offset, broker_ts, decoded.events, invalid))
    return messages, dead


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


class PredictionWorker:
    def __init__(
        self,
        store: Store,
        manager: WindowManager,
        limits: EventLimits,
        log_ids: dict[str, str],
        send_deadletter: SendDeadLetter,
    ) -> None:
        self.store = store
        self.manager = manager
        self.limits = limits
        self.log_ids = log_ids  # topic name -> log identity (topic id)
        self._send_deadletter = send_deadletter
        self._store_lock = asyncio.Lock()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="driftline-store")
        self.windows_stored = 0
        self.store_errors = 0
        # called after each window is stored (the CLI prints them; alarms hook in here)
        self.on_stored: list[Callable[[ClosedWindow], None]] = []

    async def _in_store_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def process(self, raw: Sequence[tuple[TP, int, float, bytes | None]]) -> None:
        """One micro-batch of messages, in partition order."""
        messages, dead = decode_batch(raw, self.limits)
        self.manager.add(messages, time.time())
        for letter in dead:
            await self._send_deadletter(
                letter.rejected.model.encode() if letter.rejected.model else None,
                letter.record(),
            )
        if self.manager.close_due(time.time()):
            await self.store_closed()

    async def tick(self, commit: Callable[[dict[TP, int]], Awaitable[Any]]) -> None:
        """Close idle windows, retry unstored ones, commit what is stored."""
        self.manager.close_due(time.time())
        await self.store_closed()
        offsets = self.manager.committable()
        if offsets:
            await commit(offsets)

    async def store_closed(self) -> None:
        """Store closed windows oldest first; on failure keep them (and their offsets) held."""
        async with self._store_lock:
            for window in self.manager.unstored:
                marks = [
                    OffsetMark(window.model, self.log_ids[t], p, offset, window.profile.start)
                    for (t, p), offset in window.marks.items()
                    if t in self.log_ids
                ]
                try:
                    await self._in_store_thread(
                        self.store.write_window, window_points(window), marks
                    )
                except Exception:
                    self.store_errors += 1
                    log.exception(
                        "could not store window %s of %s; will retry, offsets stay uncommitted",
                        window.profile.start,
                        window.model,
                    )
                    return
                self.manager.mark_stored([window])
                self.windows_stored += 1
                for hook in self.on_stored:
                    try:
                        hook(window)
                    except Exception:
                        log.exception("window hook failed")

    async def restore(self, assigned: Iterable[TP]) -> None:
        """Load stored offset marks (and what models have shown) for newly owned partitions."""
        owned = set(assigned)
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

    def forget(self, revoked: Iterable[TP]) -> None:
        self.manager.forget(revoked)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
