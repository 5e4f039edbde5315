"""Raw predictions kept for the label join: buffered from the window pipeline's messages and
written in the background, so that the quality pass (``streams/quality.py``) can join labels
that arrive later.

``keep_events`` says which: ``"none"``, ``"all"``, or ``"labelled"`` (only the units that have
sent labels: learned from this process's label agent and, every ``LABELLED_POLL_S``, from the
store). The offsets of messages whose predictions are not written yet must not be committed:
:meth:`RawPredictions.flush` says whether everything taken is in the store.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Container, Iterable
from typing import Any

import orjson

from driftline.settings import KeepEvents
from driftline.store.labels import LabelStore, PredictionBatch
from driftline.units import split_unit, unit_of
from streams.store_thread import StoreThread
from streams.windowing import Message

log = logging.getLogger(__name__)

EVENT_FLUSH_ROWS = 20_000  # raw predictions buffered before a write (also flushed every tick)
LABELLED_POLL_S = 30.0  # how often the models that have labels are read from the store


def keep_predictions(
    messages: Iterable[Message],
    window_seconds: int,
    into: PredictionBatch,
    only: Container[str] | None = None,
) -> None:
    """Add the events that carry an ``id`` to ``into`` (rows of the ``predictions`` table, for
    the label join; shadow predictions to ``into.shadows``, rows of ``shadow_predictions``, as
    a shadow shares its live twin's id): a few list appends per event and one JSON dump per
    call and side. ``only``: the units (``model`` or ``model::stage``) to keep; None keeps
    every one."""
    if only is not None and not only:
        return  # no unit has sent labels yet: nothing to look at
    # per side (live, shadow): the events kept and their event times
    taken: tuple[tuple[list[dict[str, Any]], list[float]], ...] = (([], []), ([], []))
    for message in messages:
        broker_ts = message.broker_ts
        for event in message.events:
            if event.get("id") is None or (only is not None and event["model"] not in only):
                continue
            ts = event.get("ts")
            events, stamps = taken[event.get("shadow") is True]
            events.append(event)
            stamps.append(broker_ts if ts is None else ts)
    live, shadow = taken
    if live[0]:
        _add(into, *live, window_seconds)
    if shadow[0]:
        _add(into.shadow_batch(), *shadow, window_seconds)


def _add(
    into: PredictionBatch, events: list[dict[str, Any]], stamps: list[float], window_seconds: int
) -> None:
    """Append the rows of ``events`` (event times ``stamps``) to ``into``, and one JSON dump."""
    models, stages, ids = into.models, into.stages, into.ids
    windows, versions = into.window_starts, into.versions
    for event, ts in zip(events, stamps, strict=True):
        model, stage = split_unit(event["model"])
        models.append(model)
        stages.append(stage)
        ids.append(event["id"])
        windows.append(int(ts // window_seconds) * window_seconds)
        version = event.get("version")
        versions.append(version if type(version) is str else str(version or "unknown"))
    into.ts.extend(stamps)
    into.events.append(orjson.dumps(events))


class RawPredictions:
    """The buffer of raw predictions not yet written, with at most one write in flight."""

    def __init__(
        self,
        labels: LabelStore,
        thread: StoreThread,
        keep_events: KeepEvents,
        window_seconds: int,
    ) -> None:
        self.labels = labels
        self.thread = thread
        self.keep_events = keep_events
        self.window_seconds = window_seconds
        # units that have sent labels: with "labelled", only their predictions are kept
        self.labelled: set[str] = set()
        self._last_labelled_poll = 0.0
        self._events = PredictionBatch()  # raw predictions not yet written
        self._writing: asyncio.Future[bool] | None = None  # a write of them in flight
        self.store_errors = 0

    async def keep(self, messages: Iterable[Message]) -> None:
        """Buffer the predictions of ``messages`` that the mode keeps; once
        ``EVENT_FLUSH_ROWS`` are buffered, write them in the background (the store thread;
        chDB and the driver release the GIL) while the next events are decoded: at most one
        write in flight and one buffer filling, so memory stays bounded however large the
        micro-batch. While the store fails, stop taking events until it takes these
        (back-pressure: they wait in Kafka, uncommitted)."""
        if self.keep_events == "none":
            return
        only = self.labelled if self.keep_events == "labelled" else None
        keep_predictions(messages, self.window_seconds, self._events, only)
        if len(self._events) < EVENT_FLUSH_ROWS:
            return
        if await self._settle():
            rows, self._events = self._events, PredictionBatch()
            self._writing = asyncio.ensure_future(self._write(rows))
            return
        delay = 0.5
        while not await self.flush():
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def flush(self) -> bool:
        """Write every buffered raw prediction, after the write in flight; False (and kept)
        when the store failed."""
        if not await self._settle():
            return False
        if not self._events:
            return True
        rows, self._events = self._events, PredictionBatch()
        return await self._write(rows)

    async def _settle(self) -> bool:
        """Wait for the write in flight; False if it failed (its rows are buffered again)."""
        writing = self._writing
        if writing is None:
            return True
        written = await writing  # the tick and the agent may both wait for the same write
        if self._writing is writing:
            self._writing = None
        return written

    async def _write(self, rows: PredictionBatch) -> bool:
        try:
            await self.thread.run(self.labels.write_predictions, rows)
        except Exception:
            self.store_errors += 1
            log.exception("could not store %d raw predictions; will retry", len(rows))
            rows.extend(self._events)  # before the ones buffered since, in order
            self._events = rows
            return False
        return True

    @property
    def writing(self) -> bool:
        """Whether a write is in flight."""
        return self._writing is not None

    def note_labelled(self, units: Iterable[str]) -> None:
        """Units whose labels were just stored (by this process's label agent)."""
        self.labelled.update(units)

    async def poll_labelled(self, now: bool = False) -> None:
        """Units with labels in the store (sent through another worker, or before a restart),
        every ``LABELLED_POLL_S``; ``now``: whenever it was last read."""
        if self.keep_events != "labelled":
            return
        if not now and time.monotonic() - self._last_labelled_poll < LABELLED_POLL_S:
            return
        self._last_labelled_poll = time.monotonic()
        try:
            units = await self.thread.run(self.labels.labelled_units)
        except Exception:
            log.exception("could not read which models have labels; keeping the ones known")
            return
        self.labelled.update(unit_of(model, stage) for model, stage in units)
