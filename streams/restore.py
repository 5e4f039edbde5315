"""Partition restore: after each rebalance, load what the store knows about the newly owned
partitions before any of their events are processed.

That is the offset marks of the stored windows (so replayed events of stored windows are not
counted twice), the windows stored through each unit, the categories and segment values the
units have shown, and whatever the other parts load first (``prepare``: the references, the
units that have labels). Faust can resume its streams while the partitions-assigned handler is
still awaiting the store, so processing waits for :attr:`PartitionRestore.ready`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence

from driftline.store import OffsetMark, Store
from driftline.units import split_unit
from streams.store_thread import StoreThread
from streams.windowing import TP, WindowManager

log = logging.getLogger(__name__)


class PartitionRestore:
    def __init__(
        self,
        store: Store,
        manager: WindowManager,
        log_ids: dict[str, str],
        thread: StoreThread,
        prepare: Sequence[Callable[[], Awaitable[None]]] = (),
    ) -> None:
        self.store = store
        self.manager = manager
        self.log_ids = log_ids  # topic name -> log identity (topic id)
        self.thread = thread
        self.prepare = list(prepare)
        self.ready = asyncio.Event()  # the owned partitions are restored
        self.generation = 0  # bumped on each revocation; a batch taken before it is stale
        self._taken_over = False  # partitions assigned since the last take_over()
        self._retry: asyncio.Future[None] | None = None

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

    def forget(self, revoked: Iterable[TP]) -> None:
        self.generation += 1
        self.ready.clear()  # until the next assignment has been restored
        gone = list(revoked)
        if gone:
            # uncommon in a steady group: say it, so that a stall or a replay can be traced
            log.warning(
                "partitions revoked (rebalance %d): %s; their open windows are replayed",
                self.generation,
                ", ".join(f"{t}[{p}]" for t, p in sorted(gone)),
            )
        self.manager.forget(gone)

    def take_over(self) -> bool:
        """Whether partitions were assigned since the last call (the quality pass rescans)."""
        taken, self._taken_over = self._taken_over, False
        return taken

    async def _restore(self, owned: set[TP]) -> None:
        for step in self.prepare:
            await step()
        run = self.thread.run
        topic_of = {log_id: topic for topic, log_id in self.log_ids.items()}
        marks: list[OffsetMark] = await run(self.store.offset_marks, list(self.log_ids.values()))
        self.manager.restore_stored(await run(self.store.stored_through))
        units = set()
        for mark in marks:
            tp = (topic_of[mark.log_id], mark.partition)
            if tp in owned:
                self.manager.restore(
                    mark.model, tp, mark.next_offset, mark.window_start, mark.seen_below
                )
                units.add(mark.model)
        for unit in units:
            model, stage = split_unit(unit)
            self.manager.restore_categories(
                unit, await run(self.store.known_categories, model, stage)
            )
            self.manager.segments.restore(unit, await run(self.store.segments, model, stage))

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
        self.ready.set()
