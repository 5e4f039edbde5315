"""The label side of the join: decode label events, store them, commit.

Labels are stored as they come (``labels`` table, keyed by model, stage and id) and joined with
the stored predictions by the quality pass (``streams/quality.py``), so the order in which a
prediction and its label arrive does not matter, a worker restart loses no pending join (both
sides are in the store), and a label for an id nobody predicted is counted, not an error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from driftline.events import DeadLetter, EventLimits, decode_message
from driftline.metrics import reason_class
from driftline.store.labels import LabelRow, LabelStore
from driftline.units import unit_of
from streams.deadletters import DeadLetterOutbox
from streams.windowing import TP

log = logging.getLogger(__name__)

Commit = Callable[[dict[TP, int]], Awaitable[Any]]


@dataclass
class LabelStats:
    messages: int = 0
    labels: int = 0
    dead_letters: int = 0
    store_errors: int = 0
    dead_letter_reasons: Counter[str] = field(default_factory=Counter)  # driftline/metrics.py


def label_rows(events: Sequence[dict[str, Any]], broker_ts: float) -> list[LabelRow]:
    """``label_ms``: the label's own ``ts`` when given, else when the broker got it."""
    rows = []
    for event in events:
        ts = event.get("ts")
        when = broker_ts if ts is None else ts
        rows.append(
            LabelRow(
                event["model"],
                event.get("stage") or "",
                event["id"],
                event.get("label"),
                int(when * 1000),
                event.get("metrics"),
            )
        )
    return rows


class LabelWorker:
    def __init__(
        self,
        labels: LabelStore,
        limits: EventLimits,
        outbox: DeadLetterOutbox,
        run_blocking: Callable[..., Awaitable[Any]],
        on_labelled: Callable[[set[str]], None] | None = None,
    ) -> None:
        self.labels = labels
        self.limits = limits
        self._outbox = outbox  # shared with the prediction worker
        self._run_blocking = run_blocking  # the worker's store thread
        self._on_labelled = on_labelled  # the units of each stored batch (model or model::stage)
        self.stats = LabelStats()

    async def process(
        self, raw: Sequence[tuple[TP, int, float, bytes | None]], commit: Commit
    ) -> None:
        """Store one micro-batch of label messages, then commit past them.

        While the store is down this retries with back-off and takes nothing new: the labels
        wait in Kafka, uncommitted.
        """
        if not raw:
            return
        rows: list[LabelRow] = []
        dead: list[DeadLetter] = []
        offsets: dict[TP, int] = {}
        for tp, offset, broker_ts, value in raw:
            decoded = decode_message(
                value, self.limits, labels=True, now=time.time(), broker_ts=broker_ts
            )
            rows.extend(label_rows(decoded.events, broker_ts))
            dead.extend(DeadLetter(r, tp, offset) for r in decoded.rejected + decoded.dropped)
            offsets[tp] = max(offset + 1, offsets.get(tp, 0))
        self.stats.messages += len(raw)
        self.stats.labels += len(rows)
        delay = 0.5
        while rows:
            try:
                await self._run_blocking(self.labels.write_labels, rows)
                if self._on_labelled is not None:
                    self._on_labelled({unit_of(r.model, r.stage) for r in rows})
                break
            except Exception:
                self.stats.store_errors += 1
                log.exception("could not store %d labels; retrying in %.1f s", len(rows), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        self.stats.dead_letters += len(dead)
        self.stats.dead_letter_reasons.update(reason_class(d.rejected.reason) for d in dead)
        await self._outbox.send(dead)
        await self._outbox.settle()
        await commit(self._outbox.hold(offsets))
