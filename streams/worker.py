"""The prediction worker: its parts, built once per process and handed to each other.

- the window pipeline (``streams/pipeline.py``): decode → windows → stored rows;
- the raw-prediction buffer for the label join (``streams/raw_predictions.py``);
- the partition restore after a rebalance (``streams/restore.py``);
- the label side: the label agent (``streams/labels.py``) and the quality passes
  (``streams/quality.py``), which the app wires to these parts;
- one store thread (``streams/store_thread.py``) for every blocking store call, and one
  dead-letter outbox (``streams/deadletters.py``) for the prediction and the label agents.

Agents stay thin (``streams/app.py``); the statistics live in ``detectors/``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from driftline.events import EventLimits
from driftline.settings import KeepEvents
from driftline.store import Stores
from streams.deadletters import DeadLetterOutbox, SendDeadLetter
from streams.drift import DriftAnalyzer
from streams.pipeline import WindowPipeline
from streams.quality import QualityTracker, ScoredWindow
from streams.raw_predictions import RawPredictions
from streams.restore import PartitionRestore
from streams.store_thread import StoreThread
from streams.windowing import TP, WindowManager

log = logging.getLogger(__name__)

__all__ = ["PredictionWorker", "SendDeadLetter"]


class PredictionWorker:
    def __init__(
        self,
        stores: Stores,
        manager: WindowManager,
        limits: EventLimits,
        log_ids: dict[str, str],
        send_deadletter: SendDeadLetter,
        max_events: int = 5_000,
        drift: DriftAnalyzer | None = None,
        keep_events: KeepEvents = "none",
    ) -> None:
        store = self.store = stores.store
        self.labels = stores.labels
        self.thread = StoreThread()
        # every dead letter of the prediction and label agents, held until it is on the broker
        self.outbox = DeadLetterOutbox(send_deadletter, limits.max_deadletter_raw_bytes)
        self.raw = RawPredictions(
            self.labels, self.thread, keep_events, manager.config.window_seconds
        )
        self.partitions = PartitionRestore(store, manager, log_ids, self.thread)
        self.pipeline = WindowPipeline(
            store,
            manager,
            limits,
            log_ids,
            self.thread,
            self.outbox,
            self.raw,
            self.partitions,
            max_events,
            drift,
        )
        # loaded before a newly owned partition's events are processed
        self.partitions.prepare += [
            lambda: self.pipeline.reload_references(everything=True),
            lambda: self.raw.poll_labelled(now=True),
        ]
        self.manager = manager
        self.stats = self.pipeline.stats
        self.process = self.pipeline.process
        self.on_stored = self.pipeline.on_stored
        self.on_set_aside = self.pipeline.on_set_aside
        self.on_quality: list[Callable[[ScoredWindow], None]] = []  # after each quality pass
        self.on_close: list[Callable[[], None]] = []  # before the store thread stops

    async def tick(self, commit: Callable[[dict[TP, int]], Awaitable[Any]]) -> None:
        """Close idle windows, retry unstored ones, commit what is stored."""
        await self.raw.poll_labelled()
        await self.pipeline.close_and_store()
        if not await self.raw.flush():
            return  # the offsets of unwritten raw predictions must not be committed
        await self.outbox.settle()
        offsets = self.outbox.hold(self.manager.committable())
        if offsets:
            await commit(offsets)

    async def score_quality(self, tracker: QualityTracker) -> None:
        """One quality pass (``streams/quality.py``) over the units this worker consumes; its
        windows go to ``on_quality`` hooks. Skipped until the assignment is restored."""
        if not self.partitions.ready.is_set():
            return
        if self.partitions.take_over():
            tracker.rescan()
        owned = frozenset(self.manager.models)  # read here: the pass runs in the store thread
        try:
            scored: list[ScoredWindow] = await self.thread.run(tracker.run, owned.__contains__)
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
            dropped = await self.thread.run(self.labels.drop_expired, keep_days)
        except Exception:
            log.exception("could not drop expired raw predictions and labels")
            return
        if dropped:
            log.info("dropped expired partitions: %s", ", ".join(dropped))

    async def restore(self, assigned: Iterable[TP]) -> None:
        await self.partitions.restore(assigned)

    def forget(self, revoked: Iterable[TP]) -> None:
        self.partitions.forget(revoked)

    def close(self) -> None:
        """Stop what was attached (the alarm service), then the store thread."""
        for hook in self.on_close:
            try:
                hook()
            except Exception:
                log.exception("close hook failed")
        self.thread.close()
